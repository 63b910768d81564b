//! The jail: what the VMM gives up once its devices are open and before the
//! guest runs a single instruction.
//!
//! hull-vmm starts as root because it opens root's things: `/dev/kvm`, the
//! tap, the kernel, virtiofsd's socket, and it binds the sockets the host
//! reaches it by (so they are root's, and whoever connects to them connects
//! to what root made). Nothing it reads before the jail closes comes from
//! the guest. Then, in this order (QEMU's `-run-with`/`-chroot` model; the
//! same ends as Firecracker's jailer):
//! 1. new mount, ipc and uts namespaces;
//! 2. an empty, read-only tmpfs as its root (`pivot_root`), the host's tree
//!    detached: no path on the host can be opened any more;
//! 3. the configured gid, groups and uid (one per sandbox), which leaves it
//!    no capabilities; no new privileges; not dumpable (no same-uid
//!    `ptrace`, `/proc/PID` root's).
//!
//! The per-thread seccomp filters ([`crate::seccomp`]) follow, once each
//! thread has started.
//!
//! Before any of that, at its very start, a jailed VMM moves into a pid
//! namespace of its own ([`warden`]): it forks, the child (pid 1 there) is
//! the VMM, and the parent, jailed the same way, only waits for it.

pub mod warden;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;

use crate::config::JailConfig;

/// A step of the jail failed; the VMM must not run the guest.
#[derive(Debug, thiserror::Error)]
#[error("jail: {step}: {source}")]
pub struct JailError {
    /// What was being done.
    pub step: &'static str,
    /// Why it failed.
    #[source]
    pub source: std::io::Error,
}

/// Checks a libc return value: `step` failed if it is negative.
pub(crate) fn check(step: &'static str, ret: libc::c_long) -> Result<(), JailError> {
    if ret < 0 {
        Err(JailError {
            step,
            source: std::io::Error::last_os_error(),
        })
    } else {
        Ok(())
    }
}

/// Closes the jail on the calling process. Call it while the process has
/// one thread: credentials and namespaces then hold for every thread that
/// follows.
pub fn enter(jail: &JailConfig) -> Result<(), JailError> {
    let root = CString::new(jail.root.as_os_str().as_bytes()).map_err(|_| JailError {
        step: "the root path contains a NUL byte",
        source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
    })?;
    let null = std::ptr::null::<libc::c_char>();
    // SAFETY: every call below takes C strings that live to the end of the
    // function, null pointers where the kernel allows them, or integers;
    // each result is checked.
    unsafe {
        check(
            "unshare",
            libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS).into(),
        )?;
        // Nothing done here propagates back to the host.
        check(
            "making / private",
            libc::mount(
                null,
                c"/".as_ptr(),
                null,
                libc::MS_REC | libc::MS_PRIVATE,
                null.cast(),
            )
            .into(),
        )?;
        // Two inodes: the root and nothing else can ever be made there.
        check(
            "mounting the empty root",
            libc::mount(
                c"hull-jail".as_ptr(),
                root.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                c"size=4k,nr_inodes=2,mode=0555".as_ptr().cast(),
            )
            .into(),
        )?;
        check("entering the root", libc::chdir(root.as_ptr()).into())?;
        // pivot_root(".", "."): the old root is stacked under the new one,
        // then detached from it.
        check(
            "pivot_root",
            libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()),
        )?;
        check(
            "detaching the host's tree",
            libc::umount2(c".".as_ptr(), libc::MNT_DETACH).into(),
        )?;
        check("chdir /", libc::chdir(c"/".as_ptr()).into())?;
        check(
            "making the root read-only",
            libc::mount(
                null,
                c"/".as_ptr(),
                null,
                libc::MS_REMOUNT
                    | libc::MS_RDONLY
                    | libc::MS_NOSUID
                    | libc::MS_NODEV
                    | libc::MS_NOEXEC,
                null.cast(),
            )
            .into(),
        )?;
        check(
            "setgroups",
            libc::setgroups(jail.groups.len(), jail.groups.as_ptr()).into(),
        )?;
        check(
            "setresgid",
            libc::setresgid(jail.gid, jail.gid, jail.gid).into(),
        )?;
        // From root to another uid, real, effective and saved: the kernel
        // clears the permitted, effective and ambient capabilities.
        check(
            "setresuid",
            libc::setresuid(jail.uid, jail.uid, jail.uid).into(),
        )?;
        check(
            "no_new_privs",
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0).into(),
        )?;
        check(
            "not dumpable",
            libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0).into(),
        )?;
    }
    if !capabilities_are_empty() {
        return Err(JailError {
            step: "capabilities remain after the uid change",
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        });
    }
    Ok(())
}

/// Whether the calling thread's permitted, effective and inheritable
/// capability sets are all empty.
fn capabilities_are_empty() -> bool {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Default, Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget with a version-3 header and the two data elements
    // that version takes; both outlive the call.
    let ret = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    ret == 0
        && data
            .iter()
            .all(|d| d.effective == 0 && d.permitted == 0 && d.inheritable == 0)
}
