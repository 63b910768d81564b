//! Sending a signal to a container's process.

use super::{Engine, EngineError, Result};
use crate::container::Status;
use crate::monitor_link::client;
use crate::monitor_link::proto::MonitorRequest;

impl Engine {
    /// Sends `signal` to the container's process (a paused container's VM
    /// runs again first, so that the process can take it).
    pub async fn kill(&self, reference: &str, signal: i32) -> Result<()> {
        let (store, mut record) = self.load(reference)?;
        if !matches!(record.state.status, Status::Running | Status::Paused) {
            return Err(EngineError::State(format!(
                "Cannot kill container: {reference}: Container {} is not running",
                record.id
            )));
        }
        self.resume_if_paused(&store, &mut record).await?;
        let monitor = client::connect(&self.paths, &record.id).await?;
        monitor.request(MonitorRequest::Signal { signal }).await?;
        Ok(())
    }
}
