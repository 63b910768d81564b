//! Starting a container: a monitor of its own (which boots the sandbox and
//! outlives the front end that spawned it), then the word to start.

use super::{is_live, Engine, EngineError, Result};
use crate::container::{monitor_alive, ContainerStore, Status};
use crate::monitor_link::client::{self, MonitorClient, SpawnedMonitor};
use crate::monitor_link::proto::MonitorRequest;
use crate::rpc::RpcError;
use crate::sandbox::{remove_runtime_dir, SandboxPlan};
use std::time::Duration;

impl Engine {
    /// Spawns the monitor of created container `id`; it boots the sandbox
    /// and waits for [`Engine::start`]. Its log is `monitor.log` beside the
    /// container's record. A container created to join another's sandbox
    /// (a pod's) joins it instead: that sandbox's monitor serves it.
    pub async fn spawn_monitor(&self, id: &str) -> Result<SpawnedMonitor> {
        let dir = self.containers()?.dir_of(id);
        if let Some(joins) = SandboxPlan::load(&dir)?.joins {
            return self.join_sandbox(id, &joins.container_id).await;
        }
        Ok(client::spawn(&self.paths, id, &dir.join("monitor.log")).await?)
    }

    /// Container `id` joins the running sandbox of container `sandbox`.
    async fn join_sandbox(&self, id: &str, sandbox: &str) -> Result<SpawnedMonitor> {
        let owner = match self.load(sandbox) {
            Ok((_, owner)) if is_live(&owner) && monitor_alive(owner.hull_sandbox.monitor_pid) => {
                owner
            }
            _ => {
                return Err(EngineError::State(format!(
                    "container {id} joins the sandbox of container {sandbox}, which is not running"
                )))
            }
        };
        let monitor = client::connect(&self.paths, &owner.id).await?;
        monitor
            .request(MonitorRequest::Join { id: id.to_string() })
            .await?;
        Ok(SpawnedMonitor {
            client: client::connect(&self.paths, id).await?,
            pid: u32::try_from(owner.hull_sandbox.monitor_pid).unwrap_or(0),
        })
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

impl Engine {
    /// Returns once the monitor `monitor_pid` has finished with container
    /// `id`: its run directory is gone (the last thing a monitor removes;
    /// the monitor of a sandbox that others joined serves on), or the
    /// monitor is.
    pub async fn torn_down(&self, id: &str, monitor_pid: u32) {
        let run_dir = self.paths.sandbox_dir(id);
        while crate::process::process_alive(i64::from(monitor_pid)) && run_dir.exists() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
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
