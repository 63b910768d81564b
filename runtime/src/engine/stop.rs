//! Stopping a container: its monitor asks the process to end (its stop
//! signal, SIGTERM unless `--stop-signal` or the image's STOPSIGNAL said
//! otherwise; then SIGKILL after the timeout) and tears the sandbox down.

use super::start::wait_for_monitor;
use super::{is_live, Engine, Result};
use crate::monitor_link::client;
use crate::monitor_link::proto::MonitorRequest;

/// Docker's: seconds a process has after its stop signal.
const DEFAULT_STOP_TIMEOUT_SECS: u64 = 10;

impl Engine {
    /// Stops a running container and returns once its monitor is gone;
    /// a container that is not running is left as it is. Without a
    /// timeout, the container's own (`--stop-timeout`), else 10 seconds.
    pub async fn stop(&self, reference: &str, timeout_secs: Option<u64>) -> Result<()> {
        let (store, mut record) = self.load(reference)?;
        if !is_live(&record) {
            return Ok(());
        }
        let timeout_secs = timeout_secs
            .or(record.config.stop_timeout)
            .unwrap_or(DEFAULT_STOP_TIMEOUT_SECS);
        self.resume_if_paused(&store, &mut record).await?;
        if let Ok(monitor) = client::connect(&self.paths, &record.id).await {
            monitor
                .request(MonitorRequest::Stop { timeout_secs })
                .await?;
        }
        crate::fault::point("stop.after-request");
        wait_for_monitor(&store, &record.id).await;
        Ok(())
    }

    /// Stops a container, then starts it again.
    pub async fn restart(&self, reference: &str, timeout_secs: Option<u64>) -> Result<()> {
        self.stop(reference, timeout_secs).await?;
        self.start_detached(reference).await
    }
}
