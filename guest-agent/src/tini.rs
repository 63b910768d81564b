//! `run --init`: the agent's own binary, bound read-only at `/dev/init` in
//! the container and started as `/dev/init -- COMMAND...`, is the
//! container's PID 1, as Docker's `docker-init` (tini) is: it starts the
//! command, passes the signals it gets on to it, reaps every orphan the
//! container leaves, and exits as the command did (128 + N when signal N
//! ended it; 127 or 126 when it could not be started).

use hull_protocol::INIT_BINARY;
use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::os::unix::process::CommandExt;

/// The path it is started as.
pub const PATH: &str = "/dev/init";

/// Signals that are about this process itself, not for the command.
const OWN: [Signal; 10] = [
    Signal::SIGKILL,
    Signal::SIGSTOP,
    Signal::SIGBUS,
    Signal::SIGFPE,
    Signal::SIGILL,
    Signal::SIGSEGV,
    Signal::SIGABRT,
    Signal::SIGTRAP,
    Signal::SIGSYS,
    Signal::SIGTTIN,
];

/// Makes [`INIT_BINARY`], a copy of this binary, if a container's spec
/// binds it and it is not there yet: the initramfs the agent came from is
/// gone from the guest's tree, and a bind of `/proc/self/exe` would cross
/// mount namespaces.
pub fn provide_binary(spec: &oci_spec::runtime::Spec) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::os::unix::fs::PermissionsExt;
    static MADE: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let wanted = spec
        .mounts()
        .iter()
        .flatten()
        .any(|m| m.source().as_deref() == Some(std::path::Path::new(INIT_BINARY)));
    let mut made = MADE.lock().unwrap_or_else(|p| p.into_inner());
    if !wanted || *made {
        return Ok(());
    }
    let path = std::path::Path::new(INIT_BINARY);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let staging = path.with_extension("new");
    std::fs::copy("/proc/self/exe", &staging)
        .and_then(|_| std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o555)))
        .and_then(|()| std::fs::rename(&staging, path))
        .with_context(|| format!("making {INIT_BINARY}"))?;
    *made = true;
    Ok(())
}

/// Runs `command` as its init; never returns.
pub fn run(command: &[String]) -> ! {
    let code = supervise(command).unwrap_or_else(|(code, message)| {
        eprintln!("{PATH}: {message}");
        code
    });
    std::process::exit(code)
}

/// The command's exit status, or an exit code and why it could not run.
fn supervise(command: &[String]) -> Result<i32, (i32, String)> {
    let (program, args) = command
        .split_first()
        .ok_or((2, "usage: /dev/init -- COMMAND [ARG...]".to_string()))?;
    let mut waited = SigSet::all();
    for signal in OWN {
        waited.remove(signal);
    }
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&waited), None)
        .map_err(|e| (1, format!("blocking signals: {e}")))?;
    let mut child = std::process::Command::new(program);
    child.args(args);
    // SAFETY: only sigprocmask(2), async-signal-safe, between fork and exec.
    unsafe {
        child.pre_exec(|| {
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
                .map_err(std::io::Error::from)
        });
    }
    let child = match child.spawn() {
        Ok(child) => Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX)),
        Err(err) => {
            let code = match err.kind() {
                std::io::ErrorKind::NotFound => 127,
                _ => 126,
            };
            return Err((code, format!("exec {program} failed: {err}")));
        }
    };
    loop {
        let signal = waited
            .wait()
            .map_err(|e| (1, format!("waiting for signals: {e}")))?;
        if signal != Signal::SIGCHLD {
            let _ = kill(child, signal);
            continue;
        }
        // Every exited child, the command's last: orphans are only reaped.
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == child => return Ok(code),
                Ok(WaitStatus::Signaled(pid, signal, _)) if pid == child => {
                    return Ok(128 + signal as i32)
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}
