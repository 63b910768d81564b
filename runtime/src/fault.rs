//! Fault injection for crash-consistency tests: named points in `hull` and
//! the monitor where a test makes a process die as `kill -9` would, or has
//! the monitor kill its VMM or virtiofsd, at exactly that step.
//!
//! The points are the `fail` crate's, configured by the `FAILPOINTS`
//! environment variable (`NAME=return(ACTION)`, several joined by `;`),
//! which the monitor inherits from the `hull` that starts it. ACTION is
//! `die` (the default), `kill-vmm` or `kill-virtiofsd`. Without `FAILPOINTS`
//! every point does nothing.

/// What a test asked for at a point that the caller must do itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Kill the sandbox's VMM with SIGKILL.
    KillVmm,
    /// Kill the sandbox's virtiofsd with SIGKILL.
    KillVirtiofsd,
}

/// Reads `FAILPOINTS` for this process's life; call once, first thing.
pub fn setup() {
    std::mem::forget(fail::FailScenario::setup());
}

/// Fault point `name`: if a test configured it, dies here at once (`die`)
/// or returns what the caller must do.
pub fn point(name: &str) -> Option<Fault> {
    let action = fail::eval(name, |action| action.unwrap_or_else(|| "die".into()))?;
    tracing::warn!(point = name, %action, "fault injection");
    match action.as_str() {
        "kill-vmm" => Some(Fault::KillVmm),
        "kill-virtiofsd" => Some(Fault::KillVirtiofsd),
        _ => {
            // SAFETY: raising a signal has no memory-safety preconditions;
            // SIGKILL ends the process here, as `kill -9` from outside would.
            unsafe { libc::raise(libc::SIGKILL) };
            None
        }
    }
}

/// Kills process `pid` with SIGKILL, for a fault point's kill actions.
pub fn kill(pid: Option<u32>) {
    if let Some(pid) = pid.and_then(|pid| i32::try_from(pid).ok()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}
