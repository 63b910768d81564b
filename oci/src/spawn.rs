//! Starting a relay (`create`'s and a detached `exec`'s): this binary again,
//! with the caller's stdio or a terminal's slave, in a session of its own,
//! not waited for (the caller's subreaper reaps it); and the pipes it is
//! told things on and answers on.

use crate::console::Console;
use crate::error::OciError;
use crate::state::StateDir;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

/// A relay to start.
pub struct RelaySpec<'a> {
    /// Its hidden verb (`__relay`, `__exec`).
    pub verb: &'static str,
    /// The container.
    pub id: &'a str,
    /// Its environment beyond ours.
    pub env: Vec<(&'static str, String)>,
    /// Descriptors it inherits (pipe ends whose numbers `env` names).
    pub passed: Vec<RawFd>,
    /// A terminal whose slave is its stdio and controlling terminal.
    pub console: Option<&'a Console>,
    /// Whether it gets a network namespace of its own.
    pub new_netns: bool,
    /// What it is called in errors ("relay", "exec's relay").
    pub name: &'static str,
}

/// Starts `relay`; returns its pid. It is not waited for here.
pub fn spawn(states: &StateDir, relay: RelaySpec<'_>) -> Result<i32, OciError> {
    let exe =
        std::env::current_exe().map_err(|e| OciError::Setup(format!("finding hull-oci: {e}")))?;
    let root = states
        .dir_of(relay.id)?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut command = std::process::Command::new(exe);
    command
        .arg("--root")
        .arg(&root)
        .arg(relay.verb)
        .arg(relay.id)
        .envs(relay.env.iter().map(|(k, v)| (k, v)));
    let controlling = relay.console.is_some();
    if let Some(console) = relay.console {
        let stdio = || {
            console
                .slave
                .try_clone()
                .map(std::process::Stdio::from)
                .map_err(|e| OciError::Setup(format!("duplicating the terminal: {e}")))
        };
        command.stdin(stdio()?).stdout(stdio()?).stderr(stdio()?);
    }
    let (passed, new_netns) = (relay.passed, relay.new_netns);
    // SAFETY: between fork and exec, only async-signal-safe calls: the
    // passed descriptors stay open across exec, the relay leaves the
    // caller's session and, if asked, its network namespace.
    unsafe {
        command.pre_exec(move || {
            for &fd in &passed {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if libc::setsid() < 0 || (new_netns && libc::unshare(libc::CLONE_NEWNET) < 0) {
                return Err(std::io::Error::last_os_error());
            }
            // The terminal's slave is its controlling terminal: a window
            // size set on the master reaches it as SIGWINCH.
            if controlling && libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command
        .spawn()
        .map_err(|e| OciError::Setup(format!("starting the {}: {e}", relay.name)))?;
    let pid = i32::try_from(child.id()).map_err(|_| OciError::Setup("pid out of range".into()))?;
    // Not waited for here: the caller's reaper takes its exit status.
    std::mem::forget(child);
    Ok(pid)
}

/// Waits (up to `timeout`) for relay `pid` to say "ready" on `answers`;
/// what else it says is the error. `exited` is the error when it ends
/// without a word, `silent` when it says nothing in time (it is killed).
pub fn await_ready(
    mut answers: std::fs::File,
    pid: i32,
    timeout: Duration,
    exited: &str,
    silent: String,
) -> Result<(), OciError> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut said = String::new();
        let _ = answers.read_to_string(&mut said);
        let _ = tx.send(said);
    });
    match rx.recv_timeout(timeout) {
        Ok(said) if said.trim() == "ready" => Ok(()),
        Ok(said) if !said.trim().is_empty() => Err(OciError::Setup(said.trim().to_string())),
        Ok(_) => Err(OciError::Setup(exited.into())),
        Err(_) => {
            // SAFETY: ends the relay this process started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            Err(OciError::Setup(silent))
        }
    }
}

/// A close-on-exec pipe: (read end, write end).
pub fn pipe() -> Result<(OwnedFd, OwnedFd), OciError> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills both descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(OciError::Setup(format!(
            "pipe: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: both are open descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The pipe end the spawner handed over in variable `name`, if any.
pub fn inherited_pipe(name: &str) -> Option<std::fs::File> {
    let fd: i32 = std::env::var(name).ok()?.parse().ok()?;
    // SAFETY: the spawner opened this descriptor for this process alone
    // and passed its number; nothing else in this process owns it.
    (fd > 2).then(|| unsafe { std::fs::File::from_raw_fd(fd) })
}
