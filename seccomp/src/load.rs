//! Loading a compiled filter into the calling thread: the one system call
//! a child makes between fork and exec (hull-agent for a container's
//! processes, the monitor for virtiofsd).

use crate::{
    Filter, Result, SeccompError, FILTER_FLAG_LOG, FILTER_FLAG_SPEC_ALLOW, MAX_INSTRUCTIONS,
};

/// `seccomp(2)`'s operation.
const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
/// The flags a filter may ask for.
const KNOWN_FLAGS: u32 = FILTER_FLAG_LOG | FILTER_FLAG_SPEC_ALLOW;

/// A compiled filter, ready for a child to load between fork and exec.
pub struct Loadable {
    program: Vec<libc::sock_filter>,
    flags: libc::c_ulong,
}

impl std::fmt::Debug for Loadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Loadable({} instructions)", self.program.len())
    }
}

impl Loadable {
    /// The compiled `filter`, checked against what the kernel takes.
    pub fn new(filter: &Filter) -> Result<Self> {
        let length = filter.program.len();
        if length == 0 || length > MAX_INSTRUCTIONS {
            return Err(SeccompError::Unloadable(format!(
                "a filter of {length} instructions (1 to {MAX_INSTRUCTIONS} are loaded)"
            )));
        }
        if filter.flags & !KNOWN_FLAGS != 0 {
            return Err(SeccompError::Unloadable(format!(
                "unknown filter flags {:#x}",
                filter.flags
            )));
        }
        let program = filter
            .program
            .iter()
            .map(|i| libc::sock_filter {
                code: i.code,
                jt: i.jt,
                jf: i.jf,
                k: i.k,
            })
            .collect();
        Ok(Self {
            program,
            flags: libc::c_ulong::from(filter.flags),
        })
    }

    /// Its length in instructions.
    pub fn instructions(&self) -> usize {
        self.program.len()
    }

    /// Loads the filter into the calling thread.
    ///
    /// # Safety
    /// Async-signal-safe: one system call on memory `self` owns, so it may
    /// run in the child between `clone` and `execve`.
    pub unsafe fn load(&self) -> Result<(), i32> {
        let program = libc::sock_fprog {
            // `new` keeps it within MAX_INSTRUCTIONS.
            len: self.program.len() as u16,
            filter: self.program.as_ptr().cast_mut(),
        };
        // SAFETY: `program` points at `self.program`, alive for the call.
        let result = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                SECCOMP_SET_MODE_FILTER,
                self.flags,
                &program as *const libc::sock_fprog,
            )
        };
        if result < 0 {
            Err(std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EINVAL))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Instruction;
    use oci_spec::runtime::{LinuxSeccompAction, LinuxSeccompBuilder, LinuxSyscallBuilder};

    const ALLOW: LinuxSeccompAction = LinuxSeccompAction::ScmpActAllow;

    #[test]
    fn only_what_the_kernel_takes_is_loaded() {
        let ret = Instruction {
            code: 6,
            jt: 0,
            jf: 0,
            k: 0x7fff_0000,
        };
        let filter = |length: usize, flags: u32| {
            Loadable::new(&Filter {
                program: vec![ret; length],
                flags,
            })
        };
        assert!(filter(1, FILTER_FLAG_LOG).is_ok());
        assert!(filter(0, 0).is_err());
        assert!(filter(MAX_INSTRUCTIONS + 1, 0).is_err());
        assert!(filter(1, 1).is_err());
    }

    #[test]
    fn the_kernel_takes_the_filter() {
        // getppid answers ENOSYS; everything else runs.
        let compiled = Filter::compile(
            &LinuxSeccompBuilder::default()
                .default_action(ALLOW)
                .syscalls(vec![LinuxSyscallBuilder::default()
                    .names(vec!["getppid".to_string()])
                    .action(LinuxSeccompAction::ScmpActErrno)
                    .errno_ret(libc::ENOSYS as u32)
                    .build()
                    .unwrap()])
                .build()
                .unwrap(),
        )
        .unwrap();
        let filter = Loadable::new(&compiled).unwrap();
        // SAFETY: the child makes system calls only, then exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: plain system calls in the forked child.
            unsafe {
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                if filter.load().is_err() {
                    libc::_exit(2);
                }
                let ppid = libc::syscall(libc::SYS_getppid);
                let err = *libc::__errno_location();
                libc::_exit(if ppid == -1 && err == libc::ENOSYS {
                    0
                } else {
                    1
                });
            }
        }
        let mut status = 0;
        // SAFETY: waiting for the child forked above.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status), "{status:#x}");
        assert_eq!(libc::WEXITSTATUS(status), 0);
    }
}
