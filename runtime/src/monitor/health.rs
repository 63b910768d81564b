//! Watching a sandbox's processes while the monitor waits on its agent:
//! a VMM or virtiofsd that dies ends the wait at once, with the reason.

use crate::process::process_alive;
use crate::sandbox::Sandbox;
use anyhow::{anyhow, Result};
use std::time::Duration;

/// Fault point `name` for crash-consistency tests: the monitor dies there,
/// or kills its VMM or virtiofsd.
pub(super) fn inject_fault(sandbox: &Sandbox, name: &str) {
    match crate::fault::point(name) {
        Some(crate::fault::Fault::KillVmm) => crate::fault::kill(sandbox.vmm_pid()),
        Some(crate::fault::Fault::KillVirtiofsd) => crate::fault::kill(sandbox.virtiofsd_pid()),
        None => {}
    }
}

/// How often the monitor looks whether the VMM and virtiofsd still run.
pub(super) const HEALTH_INTERVAL: Duration = Duration::from_millis(200);

/// Runs `work` (a request to the agent) unless the sandbox dies first: a
/// guest whose virtiofsd is gone may never answer (its file system waits
/// forever), so the request fails with the reason instead of hanging.
pub(super) async fn while_alive<T>(
    sandbox: &Sandbox,
    work: impl std::future::Future<Output = T>,
) -> Result<T> {
    tokio::pin!(work);
    let mut health = tokio::time::interval(HEALTH_INTERVAL);
    loop {
        tokio::select! {
            done = &mut work => return Ok(done),
            _ = health.tick() => {
                if let Some(reason) = dead_process(sandbox) {
                    return Err(anyhow!(reason));
                }
            }
        }
    }
}

/// Says which of the sandbox's processes is gone, if one is; a VM that
/// ended in a guest kernel panic is reported as that.
pub(super) fn dead_process(sandbox: &Sandbox) -> Option<String> {
    if !sandbox
        .vmm_pid()
        .is_some_and(|pid| process_alive(i64::from(pid)))
    {
        let signal = sandbox
            .vmm_pid()
            .and_then(|pid| crate::process::killed_by(i64::from(pid)));
        return Some(match (sandbox.guest_panic(), signal) {
            (Some(panic), _) => format!("guest kernel panic: {panic}"),
            (None, Some(libc::SIGSYS)) => {
                "the VMM was killed by its seccomp filter (SIGSYS: a system call it may not make)"
                    .into()
            }
            (None, _) => "the VMM exited unexpectedly".into(),
        });
    }
    if !sandbox
        .virtiofsd_pid()
        .is_some_and(|pid| process_alive(i64::from(pid)))
    {
        return Some("virtiofsd exited unexpectedly".into());
    }
    None
}

/// Why the agent connection broke: a dead VMM or virtiofsd (which may take
/// a moment to be seen dead after the connection drops), else the error.
pub(super) async fn describe_sandbox_death(
    sandbox: &Sandbox,
    err: &crate::rpc::RpcError,
) -> String {
    for _ in 0..20 {
        if let Some(reason) = dead_process(sandbox) {
            return reason;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    format!("lost the agent: {err}")
}
