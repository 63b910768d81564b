//! Pausing and resuming a running VM through its VMM: every vCPU stops
//! where it is (the VMM process keeps running), then goes on. hull-vmm
//! answers on its control socket (see hull-vmm's `api` module), QEMU on QMP.

use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// How long the VMM may take to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest line read from a VMM.
const MAX_LINE: u64 = 64 * 1024;
/// Most lines (QMP events) read while waiting for one answer.
const MAX_LINES: usize = 64;

/// How to reach a VM's VMM for pause and resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmControl {
    /// hull-vmm's control socket: `pause`, `resume`, one line each.
    HullApi(PathBuf),
    /// QEMU's QMP socket.
    Qmp(PathBuf),
}

/// The VMM did not do what it was asked.
#[derive(Debug, Error)]
pub enum ControlError {
    /// Its socket could not be reached or broke.
    #[error("the VMM's control socket: {0}")]
    Io(#[from] std::io::Error),
    /// It did not answer in time.
    #[error("the VMM did not answer within {ANSWER_TIMEOUT:?}")]
    Timeout,
    /// It answered something else.
    #[error("the VMM refused: {0}")]
    Refused(String),
}

impl VmControl {
    /// Stops the VM's vCPUs; returns once they stopped.
    pub async fn pause(&self) -> Result<(), ControlError> {
        self.ask("pause", "stop").await
    }

    /// Lets them run again.
    pub async fn resume(&self) -> Result<(), ControlError> {
        self.ask("resume", "cont").await
    }

    async fn ask(&self, command: &str, qmp_command: &str) -> Result<(), ControlError> {
        tokio::time::timeout(ANSWER_TIMEOUT, async {
            match self {
                VmControl::HullApi(path) => hull_api(path, command).await,
                VmControl::Qmp(path) => qmp(path, qmp_command).await,
            }
        })
        .await
        .map_err(|_| ControlError::Timeout)?
    }
}

/// One bounded line.
async fn read_line(reader: &mut BufReader<UnixStream>) -> Result<String, ControlError> {
    let mut line = String::new();
    let read = reader.take(MAX_LINE).read_line(&mut line).await?;
    if read == 0 {
        return Err(ControlError::Refused("it closed the connection".into()));
    }
    Ok(line.trim().to_string())
}

async fn hull_api(path: &PathBuf, command: &str) -> Result<(), ControlError> {
    let mut reader = BufReader::new(UnixStream::connect(path).await?);
    reader
        .get_mut()
        .write_all(format!("{command}\n").as_bytes())
        .await?;
    match read_line(&mut reader).await?.as_str() {
        "ok" => Ok(()),
        other => Err(ControlError::Refused(other.chars().take(200).collect())),
    }
}

/// QMP: the greeting, `qmp_capabilities`, then the command; events that
/// come in between are skipped.
async fn qmp(path: &PathBuf, command: &str) -> Result<(), ControlError> {
    let mut reader = BufReader::new(UnixStream::connect(path).await?);
    read_line(&mut reader).await?;
    for execute in ["qmp_capabilities", command] {
        reader
            .get_mut()
            .write_all(format!("{{\"execute\":\"{execute}\"}}\n").as_bytes())
            .await?;
        let mut answered = false;
        for _ in 0..MAX_LINES {
            let line = read_line(&mut reader).await?;
            let value: serde_json::Value = serde_json::from_str(&line)
                .map_err(|_| ControlError::Refused(line.chars().take(200).collect()))?;
            if value.get("return").is_some() {
                answered = true;
                break;
            }
            if let Some(error) = value.get("error") {
                return Err(ControlError::Refused(error.to_string()));
            }
        }
        if !answered {
            return Err(ControlError::Refused("no answer among its events".into()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::UnixListener;

    #[tokio::test]
    async fn qmp_answers_are_found_among_events() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut reader = BufReader::new(stream);
            reader
                .get_mut()
                .write_all(b"{\"QMP\": {\"version\": {}}}\n")
                .await
                .unwrap();
            let mut seen = Vec::new();
            for _ in 0..2 {
                let mut line = String::new();
                reader.read_line(&mut line).await.unwrap();
                seen.push(line.trim().to_string());
                reader
                    .get_mut()
                    .write_all(b"{\"event\": \"STOP\"}\n{\"return\": {}}\n")
                    .await
                    .unwrap();
            }
            seen
        });
        VmControl::Qmp(path).pause().await.unwrap();
        assert_eq!(
            server.await.unwrap(),
            [
                "{\"execute\":\"qmp_capabilities\"}",
                "{\"execute\":\"stop\"}"
            ]
        );
    }

    #[tokio::test]
    async fn a_refusal_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.sock");
        let listener = UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buffer = [0u8; 16];
            let _ = stream.read(&mut buffer).await;
            stream.write_all(b"error: no\n").await.unwrap();
        });
        let err = VmControl::HullApi(path).pause().await.unwrap_err();
        assert!(err.to_string().contains("error: no"), "{err}");
    }
}
