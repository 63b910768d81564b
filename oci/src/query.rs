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

/// Prints the container's host processes: its relay, which stands for its
/// init (the processes themselves are the guest's: `docker top` through
/// the relay's pid shows the relay). `json` prints their pids, as runc does.
pub fn ps(states: &StateDir, id: &str, format: &str, ps_args: &[String]) -> Result<(), OciError> {
    let state = states.load(id)?;
    let pids: Vec<i32> = state
        .relay
        .filter(|relay| relay.is_alive())
        .map(|_| vec![state.pid])
        .unwrap_or_default();
    match format {
        "json" => {
            println!(
                "{}",
                serde_json::to_string(&pids).map_err(|e| OciError::Setup(e.to_string()))?
            );
            Ok(())
        }
        "table" => {
            let mut command = std::process::Command::new("ps");
            command.args(ps_args);
            let out = command
                .output()
                .map_err(|e| OciError::Setup(format!("running ps: {e}")))?;
            let text = String::from_utf8_lossy(&out.stdout);
            let mut lines = text.lines();
            if let Some(header) = lines.next() {
                println!("{header}");
                let pid_column = header.split_whitespace().position(|c| c == "PID");
                for line in lines {
                    let pid = pid_column
                        .and_then(|i| line.split_whitespace().nth(i))
                        .and_then(|p| p.parse::<i32>().ok());
                    if pid.is_some_and(|p| pids.contains(&p)) {
                        println!("{line}");
                    }
                }
            }
            Ok(())
        }
        other => Err(OciError::Invalid(format!(
            "invalid format option {other:?}"
        ))),
    }
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
