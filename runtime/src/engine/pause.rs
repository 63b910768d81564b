//! Pausing a container: its VM's vCPUs stop where they are (the VMM does
//! it, through its control socket or QMP; its process runs on), memory and
//! all; nothing in the guest notices but the time.

use super::{Engine, EngineError, Result};
use crate::container::{freeze_lock_path, monitor_alive, ContainerRecord, ContainerStore, Status};
use crate::lockfile::LockFile;
use crate::monitor_link::client;
use crate::monitor_link::proto::MonitorRequest;
use anyhow::Context;
use nix::sys::signal::Signal;

impl Engine {
    /// Freezes a running container's VM.
    pub async fn pause(&self, reference: &str) -> Result<()> {
        let (store, mut record) = self.load(reference)?;
        match record.state.status {
            Status::Paused => {
                return Err(EngineError::State(format!(
                    "Container {} is already paused",
                    record.id
                )))
            }
            Status::Running if monitor_alive(record.hull_sandbox.monitor_pid) => {}
            _ => {
                return Err(EngineError::State(format!(
                    "Container {} is not running",
                    record.id
                )))
            }
        }
        // Under the freeze lock until the record says paused: no other
        // command takes the stopped VM for one a dead `hull` left frozen.
        let _freeze = LockFile::acquire(&freeze_lock_path(&store.dir_of(&record.id)))?;
        self.ask_vmm(&record, MonitorRequest::Pause).await?;
        record.set_paused(true);
        store.save(&record)?;
        Ok(())
    }

    /// Lets a paused container's VM run again.
    pub async fn unpause(&self, reference: &str) -> Result<()> {
        let (store, mut record) = self.load(reference)?;
        if record.state.status == Status::Running && vmm_stopped(&record) {
            // Left frozen by a `commit` that was killed before it could let
            // it go on.
            return signal_vmm(&record, Signal::SIGCONT);
        }
        if record.state.status != Status::Paused {
            return Err(EngineError::State(format!(
                "Container {} is not paused",
                record.id
            )));
        }
        self.resume_if_paused(&store, &mut record).await
    }

    /// A paused container's VM runs again (stop, kill and rm need it running).
    pub(super) async fn resume_if_paused(
        &self,
        store: &ContainerStore,
        record: &mut ContainerRecord,
    ) -> Result<()> {
        if !record.state.paused {
            return Ok(());
        }
        self.ask_vmm(record, MonitorRequest::Resume).await?;
        record.set_paused(false);
        store.save(record)?;
        Ok(())
    }
}

impl Engine {
    /// Asks the container's monitor to have its VMM pause or resume the VM.
    async fn ask_vmm(&self, record: &ContainerRecord, request: MonitorRequest) -> Result<()> {
        let monitor = client::connect(&self.paths, &record.id).await?;
        monitor.request(request).await?;
        Ok(())
    }
}

/// Whether the container's VMM process is stopped (`T` in /proc).
fn vmm_stopped(record: &ContainerRecord) -> bool {
    crate::process::process_state(record.hull_sandbox.vmm_pid) == Some('T')
}

fn signal_vmm(record: &ContainerRecord, signal: Signal) -> Result<()> {
    let pid = i32::try_from(record.hull_sandbox.vmm_pid)
        .ok()
        .filter(|pid| *pid > 0)
        .ok_or_else(|| EngineError::State(format!("container {} has no VM", record.id)))?;
    crate::process::signal_with_children(i64::from(pid), signal)
        .with_context(|| format!("sending {signal} to the VM of {}", record.short_name()))?;
    Ok(())
}

/// A running container's VM stopped for a moment (`commit` reads its
/// writable layer at rest), running again when this is dropped.
pub struct FrozenVm {
    record: ContainerRecord,
    /// Held while the VM is frozen: a `hull` killed meanwhile lets it go,
    /// and the next command that sees the VM stopped with no holder resumes
    /// it (see [`crate::container::reconcile`]).
    _freeze: LockFile,
}

impl FrozenVm {
    /// Freezes the container's VM if it runs; a container the user paused
    /// stays paused, untouched, and any other gives `None`.
    pub fn freeze(store: &ContainerStore, record: &ContainerRecord) -> Option<FrozenVm> {
        if record.state.status != Status::Running || !monitor_alive(record.hull_sandbox.monitor_pid)
        {
            return None;
        }
        let freeze = LockFile::acquire(&freeze_lock_path(&store.dir_of(&record.id))).ok()?;
        signal_vmm(record, Signal::SIGSTOP).ok()?;
        Some(FrozenVm {
            record: record.clone(),
            _freeze: freeze,
        })
    }
}

impl Drop for FrozenVm {
    fn drop(&mut self) {
        let _ = signal_vmm(&self.record, Signal::SIGCONT);
    }
}
