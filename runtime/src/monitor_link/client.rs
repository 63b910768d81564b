//! The `hull` side of a monitor: spawning one and talking to it.

use super::proto::{MonitorRequest, MonitorResponse, STDIN};
use crate::agent_client::connect_with_retry;
use crate::config::Paths;
use crate::rpc::{RpcClient, RpcError, RpcResponse};
use anyhow::{anyhow, Context, Result};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

/// How long a new monitor may take to open its socket.
const MONITOR_READY_TIMEOUT: Duration = Duration::from_secs(10);

impl RpcResponse for MonitorResponse {
    fn check(self) -> Result<Self, (String, Option<i32>)> {
        match self {
            MonitorResponse::Error { message, exit_code } => Err((message, exit_code)),
            other => Ok(other),
        }
    }
}

/// Most bytes read from a caller's input at once.
const INPUT_CHUNK: usize = 32 * 1024;

/// Sends what `read` gives to the process's stdin, chunk by chunk, until
/// it gives nothing (the input ended, or an error), then tells the process
/// its input ended. Blocking, for a thread of its own (reading a caller's
/// stdin or FIFO blocks); `handle` is the runtime `monitor` lives on.
pub fn forward_input(
    monitor: &MonitorClient,
    handle: &tokio::runtime::Handle,
    mut read: impl FnMut(&mut [u8]) -> std::io::Result<usize>,
) {
    let mut buffer = vec![0u8; INPUT_CHUNK];
    loop {
        match read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if handle
                    .block_on(monitor.send_input(STDIN, &buffer[..n]))
                    .is_err()
                {
                    return;
                }
            }
        }
    }
    let _ = handle.block_on(monitor.send_input(STDIN, &[]));
}

/// Monitors send no events.
#[derive(Debug, serde::Deserialize)]
pub enum NoEvent {}

/// A connection to a container's monitor.
pub type MonitorClient = RpcClient<MonitorRequest, MonitorResponse, NoEvent>;

/// The monitor's socket for a container.
pub fn socket_path(paths: &Paths, id: &str) -> std::path::PathBuf {
    paths.sandbox_dir(id).join("monitor.sock")
}

/// Connects to the monitor of container `id`.
pub async fn connect(paths: &Paths, id: &str) -> Result<MonitorClient, RpcError> {
    let stream = connect_with_retry(&socket_path(paths, id), Duration::from_millis(200)).await?;
    Ok(RpcClient::new(stream, None))
}

/// A monitor this process started.
pub struct SpawnedMonitor {
    /// The connection to it.
    pub client: MonitorClient,
    /// Its process id.
    pub pid: u32,
}

/// Starts the monitor of container `id` as a daemon in its own session,
/// logging to `log`, and returns once its socket answers.
pub async fn spawn(paths: &Paths, id: &str, log: &Path) -> Result<SpawnedMonitor> {
    let exe = std::env::current_exe().context("finding the hull executable")?;
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let mut command = std::process::Command::new(exe);
    command
        .arg("--root")
        .arg(&paths.root)
        .arg("__monitor")
        .arg(id)
        .env("HULL_RUN_DIR", &paths.run)
        .stdin(std::process::Stdio::null())
        .stdout(log_file.try_clone().context("duplicating the log fd")?)
        .stderr(log_file);
    // SAFETY: setsid between fork and exec; the monitor leaves our session
    // so that the terminal's Ctrl-C and hang-up do not reach it.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().context("starting the container monitor")?;
    let socket = socket_path(paths, id);
    let deadline = tokio::time::Instant::now() + MONITOR_READY_TIMEOUT;
    loop {
        if let Ok(stream) = tokio::net::UnixStream::connect(&socket).await {
            // The child is a daemon from here on; a thread reaps it if it
            // ends while we are still around, so it never lingers as a zombie.
            let pid = child.id();
            std::thread::spawn(move || {
                let _ = child.wait();
            });
            return Ok(SpawnedMonitor {
                client: RpcClient::new(stream, None),
                pid,
            });
        }
        if let Ok(Some(status)) = child.try_wait() {
            let said = std::fs::read_to_string(log).unwrap_or_default();
            let last = said.lines().last().unwrap_or("").to_string();
            return Err(anyhow!("the container monitor exited ({status}): {last}"));
        }
        if tokio::time::Instant::now() > deadline {
            let _ = child.kill();
            return Err(anyhow!(
                "the container monitor did not come up within {MONITOR_READY_TIMEOUT:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
