//! Removing a container: its sandbox stopped (with `force`), what a dead
//! monitor left on the network let go of, then its directory.

use super::start::wait_for_monitor;
use super::{is_live, Engine, EngineError, Result};
use crate::container::{monitor_alive, reconcile};
use crate::monitor_link::client;
use crate::monitor_link::proto::MonitorRequest;
use crate::network::NetworkManager;
use crate::sandbox::{remove_runtime_dir, SandboxPlan};

impl Engine {
    /// Removes a container; with `force`, a running one is killed first.
    /// Its volumes stay.
    pub async fn remove(&self, reference: &str, force: bool) -> Result<()> {
        self.remove_container(reference, force, false).await
    }

    /// Removes a container, as [`Self::remove`]; with `anonymous_volumes`
    /// (`rm -v`), the anonymous volumes it alone mounted go with it.
    pub async fn remove_container(
        &self,
        reference: &str,
        force: bool,
        anonymous_volumes: bool,
    ) -> Result<()> {
        let (store, mut record) = self.load(reference)?;
        if is_live(&record) {
            if !force {
                return Err(EngineError::State(format!(
                    "cannot remove container \"{}\": container is running: stop the container before removing or force remove",
                    record.name
                )));
            }
            self.resume_if_paused(&store, &mut record).await?;
        }
        // Running, or created with a monitor waiting for the word to start
        // (its `hull run` was killed): a kill by the user, no restart
        // policy brings it back.
        if monitor_alive(record.hull_sandbox.monitor_pid) {
            if let Ok(monitor) = client::connect(&self.paths, &record.id).await {
                let _ = monitor
                    .request(MonitorRequest::Stop { timeout_secs: 0 })
                    .await;
            }
            wait_for_monitor(&store, &record.id).await;
            if let Ok(current) = store.load(&record.id) {
                record = current;
            }
            reconcile(&store, &mut record);
        }
        if !monitor_alive(record.hull_sandbox.monitor_pid) {
            // A killed monitor could not take its sandbox off the network.
            // What this misses, the next attach removes (its holder is gone).
            let network = NetworkManager::new(self.paths.root.join("network"));
            let released = match SandboxPlan::load(&store.dir_of(&record.id)) {
                Ok(plan) => {
                    super::network::remove_leftovers(&store, &record, &plan, &network).await
                }
                Err(err) => Err(err),
            };
            if let Err(err) = released {
                tracing::warn!("releasing the network of {}: {err:#}", &record.id[..12]);
            }
        }
        crate::fault::point("rm.before-remove");
        remove_runtime_dir(&self.paths, &record.id);
        store.remove(&record)?;
        if anonymous_volumes {
            self.release_anonymous_volumes(&record);
        }
        Ok(())
    }
}
