//! A task's stdio: containerd's FIFOs on one side, the container monitor's
//! streams on the other. Output is copied until the monitor ends the
//! stream; stdin until containerd closes its end (or CloseIO).

use hull_runtime::monitor_link::client::{forward_input, MonitorClient};
use hull_runtime::monitor_link::proto::{STDERR, STDOUT};
use std::io::Read;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The FIFOs containerd gave a task (empty: none).
#[derive(Debug, Clone, Default)]
pub struct Stdio {
    /// containerd writes the task's input here.
    pub stdin: String,
    /// The task's output goes here.
    pub stdout: String,
    /// Its errors go here (nothing, with a terminal).
    pub stderr: String,
    /// The task has a terminal.
    pub terminal: bool,
}

/// The copies running for a task's output.
pub struct OutputCopies {
    copies: Vec<JoinHandle<()>>,
}

impl OutputCopies {
    /// Waits until the output is all written (the monitor ended its streams).
    pub async fn finished(self) {
        for copy in self.copies {
            let _ = copy.await;
        }
    }
}

/// Starts copying the monitor's output streams to the task's FIFOs; call
/// before attaching, so that nothing is missed.
pub fn copy_output(monitor: &MonitorClient, stdio: &Stdio) -> std::io::Result<OutputCopies> {
    let mut copies = Vec::new();
    for (stream, fifo) in [(STDOUT, &stdio.stdout), (STDERR, &stdio.stderr)] {
        let rx = monitor.subscribe(stream);
        if fifo.is_empty() {
            copies.push(tokio::spawn(drain(rx)));
            continue;
        }
        // Read and write: the open neither blocks nor fails while
        // containerd has not opened its end yet.
        let sender = tokio::net::unix::pipe::OpenOptions::new()
            .read_write(true)
            .open_sender(fifo)?;
        copies.push(tokio::spawn(copy_to(rx, sender)));
    }
    Ok(OutputCopies { copies })
}

async fn drain(mut rx: mpsc::Receiver<Vec<u8>>) {
    while let Some(chunk) = rx.recv().await {
        if chunk.is_empty() {
            break;
        }
    }
}

async fn copy_to(mut rx: mpsc::Receiver<Vec<u8>>, mut out: tokio::net::unix::pipe::Sender) {
    while let Some(chunk) = rx.recv().await {
        if chunk.is_empty() || out.write_all(&chunk).await.is_err() {
            break;
        }
    }
}

/// How often the stdin copy looks whether CloseIO asked it to finish.
const CLOSE_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// A task's (or exec's) running stdin copy.
#[derive(Clone, Default)]
pub struct StdinCopy {
    close: Arc<AtomicBool>,
}

impl StdinCopy {
    /// CloseIO: what is buffered in the FIFO still goes in, then the
    /// container's input ends (a client may write and ask at once).
    pub fn close(&self) {
        self.close.store(true, Ordering::SeqCst);
    }
}

/// Copies the task's stdin FIFO to the monitor until containerd closes
/// its end or CloseIO asks (see [`StdinCopy::close`]), then tells the
/// container its input ended. A thread, because the FIFO's open waits for
/// containerd's end.
pub fn copy_stdin(monitor: Arc<MonitorClient>, fifo: &Path) -> StdinCopy {
    let copy = StdinCopy::default();
    let close = copy.close.clone();
    let fifo = PathBuf::from(fifo);
    let handle = tokio::runtime::Handle::current();
    std::thread::spawn(move || {
        let Ok(mut input) = std::fs::File::open(&fifo) else {
            return;
        };
        let timeout =
            nix::poll::PollTimeout::try_from(CLOSE_POLL).unwrap_or(nix::poll::PollTimeout::NONE);
        // Reads what the FIFO holds; nothing once CloseIO asked and the
        // FIFO is empty.
        forward_input(&monitor, &handle, |buffer| loop {
            let ready = {
                let mut fds = [nix::poll::PollFd::new(
                    input.as_fd(),
                    nix::poll::PollFlags::POLLIN,
                )];
                nix::poll::poll(&mut fds, timeout)
            };
            match ready {
                Ok(0) if close.load(Ordering::SeqCst) => return Ok(0),
                Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
                Ok(_) => return input.read(buffer),
                Err(err) => return Err(err.into()),
            }
        });
    });
    copy
}
