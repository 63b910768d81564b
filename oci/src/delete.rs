//! `delete`: the container's VM and records go; its relay too.

use crate::error::OciError;
use crate::state::{engine, StateDir};
use hull_runtime::container::Status;
use hull_runtime::engine::EngineError;

/// Deletes container `id`; with `force`, a running one is killed first.
pub async fn delete(states: &StateDir, id: &str, force: bool) -> Result<(), OciError> {
    let state = states.load(id)?;
    let engine = engine()?;
    match engine.load(&state.hull_id) {
        Ok((_, record)) => {
            let running = matches!(record.state.status, Status::Running | Status::Paused);
            if running && !force {
                return Err(OciError::State(format!(
                    "cannot delete container {id} that is not stopped: {}",
                    record.state.status.as_str()
                )));
            }
            engine.remove(&state.hull_id, true).await?;
        }
        Err(EngineError::Container(_)) => {}
        Err(err) => return Err(err.into()),
    }
    if state.relay.is_some_and(|relay| relay.is_alive()) {
        // SAFETY: the relay this container's `create` started.
        unsafe { libc::kill(state.pid, libc::SIGKILL) };
    }
    crate::hooks::run_after(
        "poststop",
        &state.bundle,
        &crate::query::oci_state(&state, "stopped"),
    );
    states.remove(id)
}
