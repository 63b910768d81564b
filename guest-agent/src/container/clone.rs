//! `clone3(2)` as a fork whose child is born in its cgroup.
//!
//! `CLONE_INTO_CGROUP` puts the child in the container's cgroup as it is
//! made: no process of the container ever runs outside its limits, and the
//! agent need not move it there afterwards. Moving a process (a write to
//! `cgroup.procs`) takes the cgroup core's fork-excluding lock for writing,
//! which waits for an RCU grace period: 3-4 ms of every create and exec
//! under QEMU's emulator, against none for a clone into the group.

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::unistd::Pid;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `CLONE_INTO_CGROUP` (linux/sched.h, Linux 5.7); the libc crate names it
/// for glibc only.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Makes a child process as `fork` does (a copy of this address space,
/// running on a copy of this stack), with the namespace flags `flags`, in
/// the cgroup whose directory is `cgroup`. The child runs `child` and exits
/// with what it returns; the parent gets the child's pid.
///
/// # Safety
/// The agent is multi-threaded: the child has other threads' state
/// (allocator locks, the tokio reactor) copied in an unknown condition, so
/// `child` may only make system calls on data prepared before the call, and
/// must not return into code that allocates or takes locks (it does not:
/// the child exits here).
pub unsafe fn fork_into_cgroup(
    flags: CloneFlags,
    cgroup: BorrowedFd<'_>,
    child: impl FnOnce() -> isize,
) -> Result<Pid, Errno> {
    // SAFETY: clone_args is plain integers; all-zero is "no option".
    let mut args: libc::clone_args = unsafe { std::mem::zeroed() };
    args.flags = flags.bits() as u64 | CLONE_INTO_CGROUP;
    args.exit_signal = libc::SIGCHLD as u64;
    args.cgroup = cgroup.as_raw_fd() as u64;
    // SAFETY: clone3 reads `args` (its size given) and, without CLONE_VM
    // and with no stack, returns twice as fork does: 0 in the child, which
    // runs `child` (the caller's promise above) and exits without
    // returning; the child's pid, or -1, in the parent.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut libc::clone_args,
            std::mem::size_of::<libc::clone_args>(),
        )
    };
    match pid {
        0 => {
            let code = child();
            // SAFETY: _exit ends the child without running the parent's
            // exit handlers or flushing its copied buffers.
            unsafe { libc::_exit(code as libc::c_int) }
        }
        -1 => Err(Errno::last()),
        pid => Ok(Pid::from_raw(pid as libc::pid_t)),
    }
}
