//! A running container's resource use (`docker stats`, CRI's
//! ContainerStats, `hull-oci events`): its cgroup in the guest, the
//! guest's network and block I/O, as the agent reads them.

use super::{Engine, EngineError, Result};
use crate::container::{monitor_alive, Status};
use crate::monitor_link::client;
use crate::monitor_link::proto::{MonitorRequest, MonitorResponse};
use hull_protocol::ContainerStats;

impl Engine {
    /// The resource use of a running container. A paused VM cannot answer
    /// and a stopped container has nothing to say: both are errors.
    pub async fn stats(&self, reference: &str) -> Result<ContainerStats> {
        let (_, record) = self.load(reference)?;
        if record.state.status != Status::Running || !monitor_alive(record.hull_sandbox.monitor_pid)
        {
            return Err(EngineError::State(format!(
                "Container {} is not running",
                record.id
            )));
        }
        let monitor = client::connect(&self.paths, &record.id).await?;
        match monitor.request(MonitorRequest::Stats).await? {
            MonitorResponse::Stats { stats } => Ok(stats),
            other => Err(EngineError::Monitor {
                message: format!("unexpected answer to a stats request: {other:?}"),
                exit_code: None,
            }),
        }
    }
}
