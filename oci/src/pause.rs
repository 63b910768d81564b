//! `pause` and `resume`: the container's whole VM stops and goes on (its
//! vCPUs, through its VMM), as Hull's own `pause` does.

use crate::error::OciError;
use crate::state::{engine, StateDir};

/// Pauses container `id`'s VM.
pub async fn pause(states: &StateDir, id: &str) -> Result<(), OciError> {
    let state = states.load(id)?;
    Ok(engine()?.pause(&state.hull_id).await?)
}

/// Resumes container `id`'s VM.
pub async fn resume(states: &StateDir, id: &str) -> Result<(), OciError> {
    let state = states.load(id)?;
    Ok(engine()?.unpause(&state.hull_id).await?)
}
