//! `kill`: a signal to the container's process; a container not yet
//! started has its VM stopped, as runc's init would die before running.

use crate::error::OciError;
use crate::state::{engine, StateDir};
use hull_runtime::container::Status;
use hull_runtime::monitor_link::client;
use hull_runtime::monitor_link::proto::MonitorRequest;

/// Sends `signal` (default SIGTERM) to container `id`'s process.
pub async fn kill(states: &StateDir, id: &str, signal: Option<&str>) -> Result<(), OciError> {
    let signal = parse_signal(signal.unwrap_or("SIGTERM"))?;
    let state = states.load(id)?;
    let engine = engine()?;
    let (_, record) = engine.load(&state.hull_id)?;
    match record.state.status {
        Status::Running | Status::Paused => Ok(engine.kill(&state.hull_id, signal).await?),
        Status::Created => {
            // Nothing runs to take the signal: the VM goes, and the relay
            // ends as a killed process would.
            let monitor = client::connect(engine.paths(), &state.hull_id)
                .await
                .map_err(|e| OciError::Engine(e.into()))?;
            let _ = monitor
                .request(MonitorRequest::Stop { timeout_secs: 0 })
                .await;
            Ok(())
        }
        _ => Err(OciError::State("container not running".into())),
    }
}

/// A signal by name or number, as an [`OciError`].
pub fn parse_signal(text: &str) -> Result<i32, OciError> {
    hull_runtime::signal::parse_signal(text).map_err(|e| OciError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(parse_signal("KILL").unwrap(), libc::SIGKILL);
        assert_eq!(parse_signal("SIGTERM").unwrap(), libc::SIGTERM);
        assert_eq!(parse_signal("sigusr1").unwrap(), libc::SIGUSR1);
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert!(parse_signal("0").is_err());
        assert!(parse_signal("NOPE").is_err());
    }
}
