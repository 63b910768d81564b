//! A terminal or pipes attached to a container's process through its
//! monitor (`run` without `-d`, `start -a`, `attach`, `exec`): output
//! pumped out, input in with Docker's detach keys, the window's size and
//! signals passed on, until the process ends.

use super::terminal::{self, RawMode};
use super::{engine, ExitWith};
use crate::config::Paths;
use crate::monitor_link::client::MonitorClient;
use crate::monitor_link::proto::{MonitorRequest, MonitorResponse, STDERR, STDIN, STDOUT};
use crate::rpc::RpcError;
use anyhow::{anyhow, bail, Context, Result};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::signal::unix::{signal, SignalKind};

/// After Ctrl-C is passed on, how long the container has to exit before
/// Hull kills it.
const INTERRUPT_GRACE: Duration = Duration::from_secs(2);

/// Turns a failed request to a monitor into `hull`'s error with Docker's
/// exit code.
pub fn start_error(err: RpcError) -> anyhow::Error {
    match err {
        RpcError::Remote { message, exit_code } => ExitWith {
            code: exit_code.unwrap_or(super::EXIT_RUNTIME_ERROR),
            message,
        }
        .into(),
        other => other.into(),
    }
}

/// Copies a stream's output to our stdout or stderr until it ends.
pub(super) fn pump_output(
    mut rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
    to_stderr: bool,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut out: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = if to_stderr {
            Box::new(tokio::io::stderr())
        } else {
            Box::new(tokio::io::stdout())
        };
        while let Some(chunk) = rx.recv().await {
            if chunk.is_empty() || out.write_all(&chunk).await.is_err() {
                break;
            }
            let _ = out.flush().await;
        }
    })
}

/// Attaches the terminal, starts the container when `start` names it,
/// forwards stdin and signals, and returns the container's exit code.
/// `tty`: the container has a terminal of its own.
pub async fn attach_and_wait(
    monitor: &MonitorClient,
    how: Session,
    start: Option<(&Paths, &str)>,
) -> Result<i32> {
    let interactive = how.interactive;
    let outputs = [
        pump_output(monitor.subscribe(STDOUT), false),
        pump_output(monitor.subscribe(STDERR), true),
    ];
    monitor
        .request(MonitorRequest::Attach {
            stdin: interactive,
            stdout: how.output,
            stderr: how.output,
        })
        .await?;
    let wait = monitor.request(MonitorRequest::Wait);
    tokio::pin!(wait);
    if let Some((paths, id)) = start {
        if let Err(err) = engine(paths).start(id, monitor).await {
            // The exit is told right after a failed start; the wait ends it.
            let _ = tokio::time::timeout(Duration::from_secs(5), &mut wait).await;
            return Err(err.into());
        }
    }
    session(monitor, how, wait, outputs).await
}

/// How a session runs.
#[derive(Debug, Clone)]
pub struct Session {
    /// Forward stdin.
    pub interactive: bool,
    /// The process has a terminal: the user's goes raw (with `interactive`)
    /// and its window size is passed on.
    pub tty: bool,
    /// Ctrl-C and SIGTERM go to the container (as Docker's sig-proxy), a
    /// second one or a grace period later SIGKILL; without, Ctrl-C just
    /// ends the session.
    pub proxy_signals: bool,
    /// The keys that leave the session (`--detach-keys`).
    pub detach_keys: DetachKeys,
    /// Show the container's output (`hull build -q` does not).
    pub output: bool,
}

/// Tells the monitor the user's window size, if there is one; a process
/// that is gone or not started yet has nothing to resize, which is fine.
async fn send_window_size(monitor: &MonitorClient) {
    if let Some(size) = terminal::current_size() {
        if let Err(err) = monitor
            .request(MonitorRequest::ResizeTerminal { size })
            .await
        {
            tracing::debug!("resizing the container's terminal: {err}");
        }
    }
}

/// Streams a session (an attach, an exec) until `outcome` answers: stdin
/// to the monitor, output to the terminal, signals and window sizes as
/// `how` says.
pub async fn session(
    monitor: &MonitorClient,
    how: Session,
    outcome: impl std::future::Future<Output = Result<MonitorResponse, RpcError>>,
    outputs: [tokio::task::JoinHandle<()>; 2],
) -> Result<i32> {
    let Session {
        interactive,
        tty,
        proxy_signals,
        detach_keys,
        ..
    } = how;
    tokio::pin!(outcome);
    let mut sigint = signal(SignalKind::interrupt()).context("watching SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("watching SIGTERM")?;
    let mut sigwinch = signal(SignalKind::window_change()).context("watching SIGWINCH")?;
    if tty {
        send_window_size(monitor).await;
    }
    // Restored when this returns, whichever way (detach and errors included).
    let raw_mode = if tty && interactive {
        RawMode::enable().context("setting the terminal to raw mode")?
    } else {
        None
    };
    // Stdin goes to the container until it ends; Docker's detach keys
    // (Ctrl-p Ctrl-q) leave the session with the container running.
    let forward_stdin = async {
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; 32 * 1024];
        let mut detach = detach_keys;
        loop {
            match stdin.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let (data, detached) = detach.scan(&buf[..n]);
                    if !data.is_empty() && monitor.send_input(STDIN, &data).await.is_err() {
                        return false;
                    }
                    if detached {
                        return true;
                    }
                }
            }
        }
        let _ = monitor.send_input(STDIN, &[]).await;
        false
    };
    tokio::pin!(forward_stdin);
    let mut stdin_done = !interactive;
    let mut kill_at: Option<tokio::time::Instant> = None;
    let signal_request = |signal: i32| MonitorRequest::Signal { signal };

    let code = loop {
        let received = tokio::select! {
            result = &mut outcome => match result {
                Ok(MonitorResponse::Exited { exit_code, .. }) => break exit_code,
                Ok(other) => bail!("unexpected answer from the monitor: {other:?}"),
                Err(err) => return Err(start_error(err)),
            },
            detached = &mut forward_stdin, if !stdin_done => {
                if detached {
                    drop(raw_mode);
                    eprintln!("read escape sequence");
                    return Ok(0);
                }
                stdin_done = true;
                continue;
            }
            Some(()) = sigint.recv() => libc::SIGINT,
            Some(()) = sigterm.recv() => libc::SIGTERM,
            Some(()) = sigwinch.recv(), if tty => {
                send_window_size(monitor).await;
                continue;
            }
            _ = tokio::time::sleep_until(kill_at.unwrap_or_else(tokio::time::Instant::now)), if kill_at.is_some() => {
                kill_at = None;
                let _ = monitor.request(signal_request(libc::SIGKILL)).await;
                continue;
            }
        };
        if !proxy_signals {
            break 128 + received;
        }
        let signal = if kill_at.is_some() {
            libc::SIGKILL
        } else {
            received
        };
        let _ = monitor.request(signal_request(signal)).await;
        kill_at.get_or_insert_with(|| tokio::time::Instant::now() + INTERRUPT_GRACE);
    };
    // All output is sent before the answer; let it reach the terminal.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        for output in outputs {
            let _ = output.await;
        }
    })
    .await;
    Ok(code)
}

/// Docker's detach keys: a sequence of keys (Ctrl-p Ctrl-q by default, or
/// `--detach-keys`) that leaves an attached session, the container running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetachKeys {
    sequence: Vec<u8>,
    /// How much of the sequence the last reads ended with (held back).
    matched: usize,
}

impl Default for DetachKeys {
    fn default() -> Self {
        Self {
            sequence: vec![0x10, 0x11],
            matched: 0,
        }
    }
}

impl std::str::FromStr for DetachKeys {
    type Err = anyhow::Error;

    /// Docker's spelling: keys separated by commas, each a single character
    /// or `ctrl-<a-z, @, [, \, ], ^, _>`; e.g. `ctrl-x,x` or `ctrl-@`.
    fn from_str(text: &str) -> Result<Self> {
        let invalid = || anyhow!("Invalid detach keys ({text}) provided");
        let mut sequence = Vec::new();
        for key in text.split(',') {
            let byte = match key.strip_prefix("ctrl-") {
                Some(name) => match name.as_bytes() {
                    [letter @ b'a'..=b'z'] => letter - b'a' + 1,
                    [b'@'] => 0,
                    [symbol @ (b'[' | b'\\' | b']' | b'^' | b'_')] => symbol - b'@',
                    _ => return Err(invalid()),
                },
                None => match key.as_bytes() {
                    [single] if single.is_ascii_graphic() => *single,
                    _ => return Err(invalid()),
                },
            };
            sequence.push(byte);
        }
        Ok(Self {
            sequence,
            matched: 0,
        })
    }
}

impl DetachKeys {
    /// The bytes to pass on, and whether the sequence was typed.
    fn scan(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len() + self.sequence.len());
        for &byte in input {
            if byte == self.sequence[self.matched] {
                self.matched += 1;
                if self.matched == self.sequence.len() {
                    self.matched = 0;
                    return (out, true);
                }
                continue;
            }
            // A false start: what was held back is input after all, and
            // this byte may begin the sequence again.
            out.extend_from_slice(&self.sequence[..self.matched]);
            self.matched = 0;
            if byte == self.sequence[0] {
                self.matched = 1;
                if self.sequence.len() == 1 {
                    self.matched = 0;
                    return (out, true);
                }
            } else {
                out.push(byte);
            }
        }
        (out, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_as_docker_spells_them() {
        let keys: DetachKeys = "ctrl-x,x".parse().unwrap();
        assert_eq!(keys.sequence, [0x18, b'x']);
        assert_eq!("ctrl-@".parse::<DetachKeys>().unwrap().sequence, [0]);
        assert_eq!("ctrl-[".parse::<DetachKeys>().unwrap().sequence, [27]);
        assert!("ctrl-1".parse::<DetachKeys>().is_err());
        assert!("".parse::<DetachKeys>().is_err());
        let mut keys: DetachKeys = "ctrl-x,x".parse().unwrap();
        assert_eq!(keys.scan(b"a\x18b\x18"), (b"a\x18b".to_vec(), false));
        assert_eq!(keys.scan(b"x"), (Vec::new(), true));
    }

    #[test]
    fn detach_keys_are_found_across_reads() {
        let mut keys = DetachKeys::default();
        assert_eq!(keys.scan(b"ab\x10"), (b"ab".to_vec(), false));
        assert_eq!(keys.scan(b"\x11rest"), (Vec::new(), true));
        let mut keys = DetachKeys::default();
        assert_eq!(
            keys.scan(b"\x10x\x10\x10\x11"),
            (b"\x10x\x10".to_vec(), true)
        );
    }
}
