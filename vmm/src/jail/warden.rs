//! A pid namespace of the VMM's own, as Firecracker's jailer makes with
//! `--new-pid-ns`: the VMM sees no process but itself, and can signal none.
//!
//! A process cannot enter a new pid namespace itself, only its children
//! can. So, before it opens anything (KVM binds a VM to the process that
//! made it), a jailed hull-vmm forks once:
//! - the child is pid 1 of the new namespace and goes on to be the VMM. It
//!   dies with its parent (`PR_SET_PDEATHSIG`), so a `kill -9` of the pid
//!   the VMM's owner knows ends the guest too;
//! - the parent, the **warden**, is the process the owner started and
//!   waits on. It closes the same jail at once (its own empty root, the
//!   VMM's uid, no capabilities, no new privileges) under a filter that
//!   allows little more than `wait4`, and ends as the child ended: with
//!   its exit code, or killed by the same signal (`SIGSYS` from a seccomp
//!   kill included), so the owner's reports are unchanged.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::{check, JailError};
use crate::config::JailConfig;
use crate::seccomp::{self, Filters, ThreadKind};

/// The child's side: the VMM, in its new pid namespace.
#[derive(Debug)]
pub struct Warded {
    /// The read end of a pipe whose write end only the warden holds: it
    /// reads as closed once the warden is gone.
    warden_alive: OwnedFd,
}

impl Warded {
    /// Arms the parent-death signal again, which a change of credentials
    /// (the jail's) clears, and ends the VMM if the warden is already gone.
    /// Call it after [`super::enter`].
    pub fn rearm(&self) -> Result<(), JailError> {
        arm_parent_death_signal()?;
        let mut poll = libc::pollfd {
            fd: self.warden_alive.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd that outlives the call, no wait.
        let ready = unsafe { libc::poll(&mut poll, 1, 0) };
        check("polling the warden", ready.into())?;
        if poll.revents & (libc::POLLHUP | libc::POLLIN) != 0 {
            // The warden ended before the signal was armed: nobody waits
            // for this VMM any more.
            // SAFETY: ends this process at once.
            unsafe { libc::_exit(1) };
        }
        Ok(())
    }
}

/// Forks into a new pid namespace. Returns in the child, the VMM; in the
/// parent it never returns: the parent jails itself under `jail`, waits for
/// the child and exits as the child did. Call it while the process has one
/// thread, before anything is opened. `filters` holds the warden's (none:
/// the VMM runs without seccomp).
pub fn enter(jail: &JailConfig, filters: Option<&Filters>) -> Result<Warded, JailError> {
    if thread_count() != Some(1) {
        return Err(JailError {
            step: "a pid namespace needs a process of one thread",
            source: std::io::Error::from(std::io::ErrorKind::Unsupported),
        });
    }
    let filter = filters.map(|f| f.program(ThreadKind::Warden));
    let mut ends = [0; 2];
    // SAFETY: pipe2 fills the two descriptors of `ends`.
    check(
        "pipe",
        unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) }.into(),
    )?;
    // SAFETY: pipe2 succeeded, so both are open descriptors owned here.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1])) };
    // SAFETY: flags only.
    check(
        "unshare(CLONE_NEWPID)",
        unsafe { libc::unshare(libc::CLONE_NEWPID) }.into(),
    )?;
    // SAFETY: the process has one thread (checked above), so the child is
    // a whole copy of it and may go on as any process would.
    let child = unsafe { libc::fork() };
    check("fork", child.into())?;
    if child == 0 {
        drop(write_end);
        arm_parent_death_signal()?;
        let warded = Warded {
            warden_alive: read_end,
        };
        // The warden may have died before the signal was armed.
        warded.rearm()?;
        return Ok(warded);
    }
    drop(read_end);
    let status = match guard(jail, filter.as_deref(), child) {
        Ok(status) => status,
        Err(e) => {
            eprintln!("hull-vmm: error: the warden: {e}");
            // SAFETY: ends the child this process forked.
            unsafe { libc::kill(child, libc::SIGKILL) };
            1
        }
    };
    // The write end stays open to the end: the child reads it as alive.
    let _ = &write_end;
    // SAFETY: ends the process with the child's status; no destructor of
    // the copied VMM state must run here.
    unsafe { libc::_exit(status) }
}

/// The warden's life: jailed, filtered, waiting. Returns the code to exit
/// with (after a signal that did not end it when raised again).
fn guard(
    jail: &JailConfig,
    filter: Option<&seccomp::BpfProgram>,
    child: libc::pid_t,
) -> Result<i32, JailError> {
    super::enter(jail)?;
    if let Some(filter) = filter {
        seccomp::apply(ThreadKind::Warden, filter).map_err(|e| JailError {
            step: "installing the warden's filter",
            source: std::io::Error::other(e),
        })?;
    }
    let mut status = 0;
    loop {
        // SAFETY: waits for the one child, into a local.
        let ret = unsafe { libc::waitpid(child, &mut status, 0) };
        if ret == child {
            break;
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(JailError {
                step: "waiting for the VMM",
                source: error,
            });
        }
    }
    if libc::WIFEXITED(status) {
        return Ok(libc::WEXITSTATUS(status));
    }
    let signal = libc::WTERMSIG(status);
    // The warden set no handler, so the signal's default action ends it as
    // it ended the child (a signal whose default is to be ignored could not
    // have).
    // SAFETY: signals this process.
    unsafe { libc::kill(libc::getpid(), signal) };
    Ok(128 + signal)
}

/// SIGKILL when the parent ends.
fn arm_parent_death_signal() -> Result<(), JailError> {
    // SAFETY: integer arguments only.
    let ret = unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    check("PR_SET_PDEATHSIG", ret.into())
}

/// The calling process's thread count, from `/proc/self/stat`.
fn thread_count() -> Option<usize> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // After the command name, which may hold spaces, in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    // num_threads is field 20; `rest` starts at field 3.
    rest.split(' ').nth(17)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thread_count_is_read() {
        let n = thread_count().unwrap();
        assert!(n >= 1, "{n}");
    }
}
