//! The caller's stdio and signals, carried to and from a process in the
//! guest through its monitor's streams: the relay's work for a container's
//! init ([`crate::relay`]) and for an exec'd process ([`crate::exec`]).

use hull_runtime::monitor_link::client::{forward_input, MonitorClient};
use hull_runtime::monitor_link::proto::{TerminalSize, STDERR, STDOUT};
use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the output may take to drain once the process exited.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The signals passed on to the process, as `docker run`'s proxy does.
const FORWARDED: [i32; 6] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// Whether the caller gave the process input: stdin is open and is not
/// /dev/null.
pub fn stdin_is_open() -> bool {
    match nix::sys::stat::fstat(0) {
        Ok(stat) => {
            let is_char = stat.st_mode & libc::S_IFMT == libc::S_IFCHR;
            !(is_char && stat.st_rdev == libc::makedev(1, 3))
        }
        Err(_) => false,
    }
}

/// Copies `monitor`'s stdout and stderr streams to this process's; call
/// before asking for them, so that nothing is missed. Threads: the caller's
/// pipes may block.
pub fn copy_output(monitor: &MonitorClient) -> Vec<JoinHandle<()>> {
    let mut outputs = Vec::new();
    for (stream, fd) in [(STDOUT, 1), (STDERR, 2)] {
        let mut rx = monitor.subscribe(stream);
        // SAFETY: a duplicate of this process's own stdout or stderr.
        let copy = unsafe { libc::dup(fd) };
        // SAFETY: `copy`, if valid, is a new descriptor nothing else owns.
        let mut out = (copy >= 0).then(|| unsafe { std::fs::File::from_raw_fd(copy) });
        outputs.push(std::thread::spawn(move || {
            while let Some(chunk) = rx.blocking_recv() {
                if chunk.is_empty() {
                    break;
                }
                if let Some(file) = out.as_mut() {
                    if file.write_all(&chunk).is_err() {
                        out = None;
                    }
                }
            }
        }));
    }
    outputs
}

/// Waits (bounded) until the copies of [`copy_output`] wrote everything.
pub async fn drain(outputs: Vec<JoinHandle<()>>) {
    let _ = tokio::time::timeout(
        DRAIN_TIMEOUT,
        tokio::task::spawn_blocking(move || {
            for output in outputs {
                let _ = output.join();
            }
        }),
    )
    .await;
}

/// Copies this process's stdin to `monitor` once `ready` says the process
/// runs (`Some(true)`; `None`: it never will), then tells it the input
/// ended. A thread: reading stdin blocks.
pub fn copy_stdin(
    monitor: Arc<MonitorClient>,
    mut ready: impl FnMut() -> Option<bool> + Send + 'static,
) {
    let handle = tokio::runtime::Handle::current();
    std::thread::spawn(move || {
        loop {
            match ready() {
                Some(true) => break,
                Some(false) => std::thread::sleep(Duration::from_millis(20)),
                None => return,
            }
        }
        let mut input = std::io::stdin().lock();
        forward_input(&monitor, &handle, |buffer| input.read(buffer));
    });
}

/// The sizes of the terminal on this process's stdin: now, and each time
/// it changes (SIGWINCH); nothing when stdin is not a terminal.
pub fn window_changes() -> tokio::sync::mpsc::Receiver<TerminalSize> {
    use tokio::signal::unix::{signal, SignalKind};
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    if !crate::console::stdin_is_terminal() {
        return rx;
    }
    // Registered here, before anything can resize the terminal: a SIGWINCH
    // without a handler is lost.
    let Ok(mut changes) = signal(SignalKind::window_change()) else {
        return rx;
    };
    tokio::spawn(async move {
        loop {
            if let Some(size) = crate::console::size_of_stdin() {
                if tx.send(size).await.is_err() {
                    return;
                }
            }
            if changes.recv().await.is_none() {
                return;
            }
        }
    });
    rx
}

/// The signals this process gets that the guest's process should have.
pub fn forwarded_signals() -> tokio::sync::mpsc::Receiver<i32> {
    use tokio::signal::unix::{signal, SignalKind};
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    for number in FORWARDED {
        let Ok(mut stream) = signal(SignalKind::from_raw(number)) else {
            continue;
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                if tx.send(number).await.is_err() {
                    break;
                }
            }
        });
    }
    rx
}
