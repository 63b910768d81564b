//! `start`: the created container's process runs (its VM is up already).

use crate::error::OciError;
use crate::state::{engine, StateDir};
use hull_runtime::container::Status;
use hull_runtime::monitor_link::client;

/// Starts container `id`'s process.
pub async fn start(states: &StateDir, id: &str) -> Result<(), OciError> {
    let state = states.load(id)?;
    let engine = engine()?;
    let (_, record) = engine.load(&state.hull_id)?;
    if record.state.status != Status::Created {
        return Err(OciError::State(format!(
            "cannot start a container that has {}",
            match record.state.status {
                Status::Exited | Status::Dead => "stopped",
                _ => "already started",
            }
        )));
    }
    let monitor = client::connect(engine.paths(), &state.hull_id)
        .await
        .map_err(|e| OciError::Engine(e.into()))?;
    engine.start(&state.hull_id, &monitor).await?;
    crate::hooks::run_after(
        "poststart",
        &state.bundle,
        &crate::query::oci_state(&state, "running"),
    );
    Ok(())
}
