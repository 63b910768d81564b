//! A container's record checked against reality: the monitor that should
//! be running it, a VM left frozen by a `hull` that died, a monitor still
//! tearing down an exited container.

use super::{ContainerRecord, ContainerStore, Status};
use crate::process::{process_alive, process_state};
use anyhow::Result;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A container's record once its monitor is done with an exit: right
/// after a container exits, its monitor still tears the sandbox down (and
/// holds the writable layer) for a moment; this waits for that, up to
/// `timeout`. Running, created and restarting containers come back at once.
pub fn settled_record(
    store: &ContainerStore,
    id: &str,
    timeout: Duration,
) -> Result<ContainerRecord> {
    let deadline = Instant::now() + timeout;
    loop {
        let record = store.load(id)?;
        let tearing_down = matches!(record.state.status, Status::Exited | Status::Dead)
            && monitor_alive(record.hull_sandbox.monitor_pid);
        if !tearing_down || Instant::now() >= deadline {
            return Ok(record);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether `pid` is a live Hull monitor (not a process that reused its pid).
pub fn monitor_alive(pid: i64) -> bool {
    process_alive(pid)
        && std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|cmdline| cmdline.split(|&b| b == 0).any(|arg| arg == b"__monitor"))
            .unwrap_or(false)
}

/// The lock a `hull` holds while it keeps a container's VM frozen for a
/// moment (`commit`), beside the container's record.
pub fn freeze_lock_path(container_dir: &std::path::Path) -> PathBuf {
    container_dir.join("freeze.lock")
}

/// Checks whether a container's record still matches reality: a record
/// that says running while its monitor is gone gets marked exited with the
/// reason (the monitor was killed); a running container's VM left frozen
/// by a `hull` that was killed meanwhile runs again. Returns whether the
/// record changed.
pub fn reconcile(store: &ContainerStore, record: &mut ContainerRecord) -> bool {
    let live_states = matches!(
        record.state.status,
        Status::Running | Status::Restarting | Status::Paused
    );
    if live_states && monitor_alive(record.hull_sandbox.monitor_pid) {
        thaw_if_abandoned(store, record);
        return false;
    }
    if !live_states {
        return false;
    }
    // The monitor's children die with it (PDEATHSIG); make sure of it.
    for pid in [
        record.hull_sandbox.vmm_pid,
        record.hull_sandbox.virtiofsd_pid,
    ] {
        if process_alive(pid) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    record.set_exited(137, false, Some("the container's monitor died".into()));
    let _ = store.save(record);
    true
}

/// Resumes a VM stopped for a moment by a `hull` that died before letting
/// it go (no one holds the freeze lock); a VM the user paused stays paused.
fn thaw_if_abandoned(store: &ContainerStore, record: &ContainerRecord) {
    let vmm = record.hull_sandbox.vmm_pid;
    if record.state.paused || process_state(vmm) != Some('T') {
        return;
    }
    if let Ok(Some(_free)) =
        crate::lockfile::LockFile::try_acquire(&freeze_lock_path(&store.dir_of(&record.id)))
    {
        tracing::warn!(
            "resuming the VM of {}, left frozen by a hull that died",
            record.short_name()
        );
        let _ = crate::process::signal_with_children(vmm, nix::sys::signal::Signal::SIGCONT);
    }
}

/// The path of the container's log.
pub fn log_path(store: &ContainerStore, id: &str) -> PathBuf {
    store.dir_of(id).join(format!("{id}-json.log"))
}
