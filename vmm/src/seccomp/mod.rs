//! One seccomp filter per kind of thread, as Firecracker has: each thread
//! may make only the system calls (and the `ioctl`, `socket`, `mmap` and
//! `fcntl` arguments) that its own work needs; any other call kills the
//! whole VMM with `SIGSYS` (`SECCOMP_RET_KILL_PROCESS`), which its owner
//! reports.
//!
//! Every thread is started before the filters go on, and no filter allows
//! `clone`, `execve` or `open`: a guest that takes a thread over can start
//! nothing and open nothing. [`rules`] holds the lists.

mod rules;

pub use seccompiler::BpfProgram;
use seccompiler::{SeccompAction, SeccompFilter, TargetArch};
use std::sync::Arc;

/// The kinds of thread hull-vmm runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadKind {
    /// A vCPU: `KVM_RUN`, and the device registers its exits reach (a
    /// device's activation included).
    Vcpu,
    /// The main thread's event loop: the virtio queues, the tap, the vsock
    /// connections.
    Events,
    /// The control socket: pause and resume.
    Api,
    /// The warden outside the VMM's pid namespace
    /// ([`crate::jail::warden`]): it waits for the VMM, and nothing else.
    Warden,
}

/// The filters could not be built or installed.
#[derive(Debug, thiserror::Error)]
#[error("seccomp filter for the {kind:?} thread: {source}")]
pub struct SeccompError {
    /// Which thread's filter.
    pub kind: ThreadKind,
    /// Why.
    #[source]
    pub source: seccompiler::Error,
}

/// The compiled filters, made before the jail closes and installed by each
/// thread on itself.
#[derive(Debug, Clone)]
pub struct Filters {
    vcpu: Arc<BpfProgram>,
    events: Arc<BpfProgram>,
    api: Arc<BpfProgram>,
    warden: Arc<BpfProgram>,
}

impl Filters {
    /// Compiles the filters of every kind of thread.
    pub fn new() -> Result<Self, SeccompError> {
        Ok(Self {
            vcpu: Arc::new(compile(ThreadKind::Vcpu)?),
            events: Arc::new(compile(ThreadKind::Events)?),
            api: Arc::new(compile(ThreadKind::Api)?),
            warden: Arc::new(compile(ThreadKind::Warden)?),
        })
    }

    /// The filter of threads of `kind`.
    pub fn program(&self, kind: ThreadKind) -> Arc<BpfProgram> {
        match kind {
            ThreadKind::Vcpu => self.vcpu.clone(),
            ThreadKind::Events => self.events.clone(),
            ThreadKind::Api => self.api.clone(),
            ThreadKind::Warden => self.warden.clone(),
        }
    }
}

/// Installs `program`, the filter of `kind`, on the calling thread (and sets
/// its `no_new_privs`, which a filter needs).
pub fn apply(kind: ThreadKind, program: &BpfProgram) -> Result<(), SeccompError> {
    seccompiler::apply_filter(program).map_err(|source| SeccompError { kind, source })
}

fn compile(kind: ThreadKind) -> Result<BpfProgram, SeccompError> {
    let error = |source: seccompiler::BackendError| SeccompError {
        kind,
        source: source.into(),
    };
    let filter = SeccompFilter::new(
        rules::for_thread(kind).map_err(error)?,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        TargetArch::x86_64,
    )
    .map_err(error)?;
    filter.try_into().map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_filter_compiles() {
        let filters = Filters::new().unwrap();
        for kind in [
            ThreadKind::Vcpu,
            ThreadKind::Events,
            ThreadKind::Api,
            ThreadKind::Warden,
        ] {
            assert!(!filters.program(kind).is_empty());
        }
    }

    #[test]
    fn a_call_outside_the_filter_kills_the_process_with_sigsys() {
        // In a child of its own: the filter is for life.
        let filters = Filters::new().unwrap();
        let program = filters.program(ThreadKind::Api);
        // SAFETY: fork in a test; the child only installs the filter, makes
        // system calls and exits, all async-signal-safe.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            if apply(ThreadKind::Api, &program).is_err() {
                // SAFETY: ends the child at once.
                unsafe { libc::_exit(2) };
            }
            // SAFETY: getppid is allowed nowhere; the filter kills here.
            unsafe {
                libc::syscall(libc::SYS_getppid);
                libc::_exit(0);
            }
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFSIGNALED(status), "status {status:#x}");
        assert_eq!(libc::WTERMSIG(status), libc::SIGSYS);
    }
}
