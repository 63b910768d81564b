//! `state` and `features`: what the caller asks about a container, and
//! about this runtime.

use crate::error::OciError;
use crate::state::{engine, OciState, StateDir};
use hull_runtime::container::Status;

/// Prints container `id`'s state as the OCI runtime spec has it.
pub async fn state(states: &StateDir, id: &str) -> Result<(), OciError> {
    let state = states.load(id)?;
    let relay_alive = state.relay.is_some_and(|relay| relay.is_alive());
    let status = match engine()?.load(&state.hull_id) {
        Ok((_, record)) => match record.state.status {
            Status::Created if relay_alive => "created",
            Status::Running | Status::Restarting if relay_alive => "running",
            Status::Paused if relay_alive => "paused",
            _ => "stopped",
        },
        Err(_) => "stopped",
    };
    let json = oci_state(&state, status);
    println!(
        "{}",
        serde_json::to_string_pretty(&json).map_err(|e| OciError::Setup(e.to_string()))?
    );
    Ok(())
}

/// The OCI state of a container in `status` (what `state` prints and what
/// hooks read on stdin).
pub fn oci_state(state: &OciState, status: &str) -> serde_json::Value {
    serde_json::json!({
        "ociVersion": "1.0.2",
        "id": state.id,
        "pid": if status == "stopped" { 0 } else { state.pid },
        "status": status,
        "bundle": state.bundle,
        "rootfs": state.rootfs,
        "created": state.created,
        "owner": "",
        "annotations": state.annotations,
    })
}

/// Prints what this runtime supports, in runc's `features` shape.
pub fn features() -> Result<(), OciError> {
    let json = serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.1.0",
        "hooks": [],
        "mountOptions": ["ro", "rw", "bind", "rbind", "nosuid", "nodev", "noexec"],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
            "capabilities": [],
            "cgroup": {"v1": false, "v2": true, "systemd": false, "systemdUser": false},
            "seccomp": {"enabled": true, "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"]},
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false}
        },
        "annotations": {
            "io.github.hull.sandbox": "microvm"
        }
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&json).map_err(|e| OciError::Setup(e.to_string()))?
    );
    Ok(())
}
