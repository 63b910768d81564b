//! Starting a container: a monitor of its own (which boots the sandbox and
//! outlives the front end that spawned it), then the word to start.

use super::{is_live, Engine, EngineError, Result};
use crate::container::{monitor_alive, ContainerStore, Status};
use crate::monitor_link::client::{self, MonitorClient, SpawnedMonitor};
use crate::monitor_link::proto::MonitorRequest;
use crate::rpc::RpcError;
use crate::sandbox::remove_runtime_dir;
use std::time::Duration;

impl Engine {
    /// Spawns the monitor of created container `id`; it boots the sandbox
    /// and waits for [`Engine::start`]. Its log is `monitor.log` beside the
    /// container's record.
    pub async fn spawn_monitor(&self, id: &str) -> Result<SpawnedMonitor> {
        let log = self.containers()?.dir_of(id).join("monitor.log");
        Ok(client::spawn(&self.paths, id, &log).await?)
    }

    /// Asks a container's monitor to start it; when the monitor is gone
    /// before answering, the reason is in the container's record.
    pub async fn start(&self, id: &str, monitor: &MonitorClient) -> Result<()> {
        match monitor.request(MonitorRequest::Start).await {
            Ok(_) => Ok(()),
            Err(RpcError::Closed) => {
                let error = self
                    .containers()
                    .and_then(|store| Ok(store.load(id)?))
                    .map(|record| record.state.error)
                    .unwrap_or_default();
                Err(EngineError::Monitor {
                    message: if error.is_empty() {
                        "the container's monitor exited before starting it".into()
                    } else {
                        error
                    },
                    exit_code: None,
                })
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Gives a container that is not running a monitor again (or finds the
    /// one a killed `hull run` left waiting); `None` when it runs already.
    /// [`Engine::start`] then starts it.
    pub async fn prepare_start(&self, reference: &str) -> Result<Option<MonitorClient>> {
        let (store, record) = self.load(reference)?;
        if is_live(&record) {
            return Ok(None);
        }
        // A created container's monitor may be up already, waiting for the
        // word to start (its `hull run` died before saying it).
        if record.state.status == Status::Created && monitor_alive(record.hull_sandbox.monitor_pid)
        {
            if let Ok(monitor) = client::connect(&self.paths, &record.id).await {
                return Ok(Some(monitor));
            }
        }
        // A monitor that is still tearing down the last run owns the directory.
        wait_for_monitor(&store, &record.id).await;
        remove_runtime_dir(&self.paths, &record.id);
        let monitor = self.spawn_monitor(&record.id).await?.client;
        crate::fault::point("start.after-monitor");
        Ok(Some(monitor))
    }

    /// Starts a container that is not running and returns once it runs.
    pub async fn start_detached(&self, reference: &str) -> Result<()> {
        if let Some(monitor) = self.prepare_start(reference).await? {
            let id = self.load(reference)?.1.id;
            self.start(&id, &monitor).await?;
        }
        Ok(())
    }
}

/// Waits until the container's monitor has finished with it.
pub async fn wait_for_monitor(store: &ContainerStore, id: &str) {
    loop {
        match store.load(id) {
            Ok(record) if monitor_alive(record.hull_sandbox.monitor_pid) => {}
            _ => return,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
