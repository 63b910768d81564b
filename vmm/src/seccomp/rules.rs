//! The system calls each kind of thread may make, and the arguments that
//! are checked (x86_64 numbers, from `libc`).
//!
//! - every thread: memory (never executable), futexes, signals returning,
//!   time, reading and writing descriptors it already has, ending;
//! - device work, on vCPU threads (register writes, a device's activation:
//!   vhost-user messages) and on the event loop (the queues): positioned
//!   I/O on the block file, messages on unix sockets, `fdatasync`;
//! - vCPU: `KVM_RUN` and `KVM_GET_REGS` (an internal error's report);
//! - event loop: `epoll`, accepting host connections, a guest-initiated
//!   vsock connection (a unix socket; in the jail no path exists, so it is
//!   refused), non-blocking mode;
//! - api: accepting the host's connections, kicking vCPUs (`tgkill`).

use super::ThreadKind;
use seccompiler::{
    BackendError as Error, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition as Cond,
    SeccompRule,
};
use std::collections::BTreeMap;

/// The rules: each syscall number with its alternatives (none: any arguments).
pub type Rules = BTreeMap<i64, Vec<SeccompRule>>;

/// `_IOR(0xAE, nr, size)`, as the kernel's KVM ioctl numbers are made.
const fn kvm_ior(nr: u64, size: usize) -> u64 {
    (2 << 30) | ((size as u64) << 16) | (0xAE << 8) | nr
}

/// `KVM_RUN`: `_IO(0xAE, 0x80)`.
const KVM_RUN: u64 = 0xAE80;
/// `KVM_GET_REGS`: `_IOR(0xAE, 0x81, struct kvm_regs)`.
const KVM_GET_REGS: u64 = kvm_ior(0x81, std::mem::size_of::<kvm_bindings::kvm_regs>());

/// Calls any thread makes, whatever their arguments.
const EVERY_THREAD: &[libc::c_long] = &[
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_close,
    libc::SYS_futex,
    libc::SYS_sched_yield,
    libc::SYS_nanosleep,
    libc::SYS_clock_nanosleep,
    libc::SYS_clock_gettime,
    libc::SYS_gettimeofday,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigprocmask,
    libc::SYS_sigaltstack,
    libc::SYS_munmap,
    libc::SYS_madvise,
    libc::SYS_brk,
    libc::SYS_mremap,
    libc::SYS_getrandom,
    libc::SYS_gettid,
    libc::SYS_getpid,
    libc::SYS_restart_syscall,
    libc::SYS_exit,
    libc::SYS_exit_group,
];

/// Device work: the block file, vhost-user and vsock messages.
const DEVICE_WORK: &[libc::c_long] = &[
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_preadv,
    libc::SYS_pwritev,
    libc::SYS_fdatasync,
    libc::SYS_fsync,
    libc::SYS_sendmsg,
    libc::SYS_recvmsg,
    libc::SYS_sendto,
    libc::SYS_recvfrom,
    libc::SYS_shutdown,
];

/// The event loop's own calls, whatever their arguments.
const EVENT_LOOP: &[libc::c_long] = &[
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_ctl,
    libc::SYS_accept4,
    libc::SYS_connect,
    libc::SYS_getsockopt,
];

/// The control thread's own calls, whatever their arguments.
const API: &[libc::c_long] = &[
    libc::SYS_accept4,
    libc::SYS_recvfrom,
    libc::SYS_sendto,
    libc::SYS_tgkill,
];

/// The warden's own calls: waiting for the VMM, and ending as it ended.
const WARDEN: &[libc::c_long] = &[libc::SYS_wait4, libc::SYS_kill];

/// The rules of threads of `kind`.
pub fn for_thread(kind: ThreadKind) -> Result<Rules, Error> {
    let mut rules = Rules::new();
    let mut any = |calls: &[libc::c_long]| {
        for &call in calls {
            rules.insert(call, Vec::new());
        }
    };
    any(EVERY_THREAD);
    match kind {
        ThreadKind::Vcpu => any(DEVICE_WORK),
        ThreadKind::Events => {
            any(DEVICE_WORK);
            any(EVENT_LOOP);
        }
        ThreadKind::Api => any(API),
        ThreadKind::Warden => any(WARDEN),
    }
    // Memory is never made executable: a guest that takes a thread over
    // cannot map code of its own.
    for call in [libc::SYS_mmap, libc::SYS_mprotect] {
        rules.insert(call, vec![without_bits(2, libc::PROT_EXEC as u64)?]);
    }
    match kind {
        ThreadKind::Vcpu => {
            rules.insert(libc::SYS_ioctl, ioctls(&[KVM_RUN, KVM_GET_REGS])?);
        }
        ThreadKind::Events => {
            rules.insert(libc::SYS_ioctl, ioctls(&[libc::FIONBIO])?);
            // Only unix sockets (a guest-initiated vsock connection).
            rules.insert(
                libc::SYS_socket,
                vec![SeccompRule::new(vec![Cond::new(
                    0,
                    Len::Dword,
                    Op::Eq,
                    libc::AF_UNIX as u64,
                )?])?],
            );
        }
        ThreadKind::Api | ThreadKind::Warden => {}
    }
    rules.insert(libc::SYS_fcntl, fcntls()?);
    Ok(rules)
}

/// A rule: argument `index` has none of `bits` set.
fn without_bits(index: u8, bits: u64) -> Result<SeccompRule, Error> {
    SeccompRule::new(vec![Cond::new(index, Len::Qword, Op::MaskedEq(bits), 0)?])
}

/// Rules: `ioctl` with one of `requests` (the kernel reads 32 bits).
fn ioctls(requests: &[u64]) -> Result<Vec<SeccompRule>, Error> {
    requests
        .iter()
        .map(|&request| SeccompRule::new(vec![Cond::new(1, Len::Dword, Op::Eq, request)?]))
        .collect()
}

/// Rules: `fcntl` reading or setting flags, and duplicating close-on-exec
/// (`try_clone`).
fn fcntls() -> Result<Vec<SeccompRule>, Error> {
    [
        libc::F_GETFD,
        libc::F_SETFD,
        libc::F_GETFL,
        libc::F_SETFL,
        libc::F_DUPFD_CLOEXEC,
    ]
    .iter()
    .map(|&command| SeccompRule::new(vec![Cond::new(1, Len::Dword, Op::Eq, command as u64)?]))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvm_numbers_are_the_kernels() {
        // As <linux/kvm.h> defines them on x86_64.
        assert_eq!(KVM_GET_REGS, 0x8090_AE81);
    }

    #[test]
    fn no_thread_may_start_anything_or_open_anything() {
        for kind in [
            ThreadKind::Vcpu,
            ThreadKind::Events,
            ThreadKind::Api,
            ThreadKind::Warden,
        ] {
            let rules = for_thread(kind).unwrap();
            for call in [
                libc::SYS_clone,
                libc::SYS_clone3,
                libc::SYS_fork,
                libc::SYS_vfork,
                libc::SYS_execve,
                libc::SYS_execveat,
                libc::SYS_open,
                libc::SYS_openat,
                libc::SYS_openat2,
                libc::SYS_ptrace,
                libc::SYS_mount,
                libc::SYS_unshare,
                libc::SYS_setns,
                libc::SYS_bpf,
                libc::SYS_io_uring_setup,
                libc::SYS_userfaultfd,
            ] {
                assert!(!rules.contains_key(&call), "{kind:?} allows {call}");
            }
        }
        assert!(!for_thread(ThreadKind::Api)
            .unwrap()
            .contains_key(&libc::SYS_ioctl));
    }
}
