//! The kernel's newer mount calls that `libc` does not wrap: detached
//! copies of mounts (open_tree(2)), attaching them (move_mount(2)) and
//! changing a mount's attributes, recursively or through a user
//! namespace's mapping (mount_setattr(2)). Every function here only makes
//! system calls, so children may use them between fork and exec.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `struct mount_attr` of mount_setattr(2) (linux/mount.h).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// The mount is read-only.
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
/// Set-user-ID bits and file capabilities are ignored.
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
/// Device nodes cannot be opened.
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
/// The mount is seen through a user namespace's mapping.
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// move_mount(2): the source is the descriptor itself.
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

fn check(rc: libc::c_long) -> std::io::Result<()> {
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Gives the calling thread a mount namespace of its own (unshare(2)) in
/// which every mount's propagation is `propagation`: `libc::MS_PRIVATE`
/// (nothing mounted on either side reaches the other) or `libc::MS_SLAVE`
/// (the host's later mounts and unmounts still arrive).
pub fn unshare_mounts(propagation: libc::c_ulong) -> std::io::Result<()> {
    // SAFETY: unshare(2), then mount(2) changing propagation only, on a
    // static string.
    unsafe {
        check(libc::unshare(libc::CLONE_NEWNS).into())?;
        check(
            libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | propagation,
                std::ptr::null(),
            )
            .into(),
        )
    }
}

/// Sets `attributes` (`MOUNT_ATTR_*`) on the mount at `path` and on every
/// mount below it.
pub fn set_recursive(path: &CStr, attributes: u64) -> std::io::Result<()> {
    let attr = MountAttr {
        attr_set: attributes,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr(2) reads `attr`, which lives on the stack, and
    // a NUL-terminated path.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
}

/// A detached copy of the mount at `path` (with the mounts below it if
/// `recursive`), closed on exec.
pub fn clone_tree(path: &CStr, recursive: bool) -> std::io::Result<OwnedFd> {
    let mut flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: open_tree(2) on a NUL-terminated string; it returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    check(fd)?;
    // SAFETY: open_tree returned a descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// Makes the detached `tree` (from [`clone_tree`]) and, if `recursive`,
/// the mounts below it seen through the mapping of the user namespace
/// `userns`. Fails with `EINVAL` where the file system cannot be idmapped
/// (overlayfs itself; tmpfs before Linux 6.3).
pub fn idmap(tree: BorrowedFd<'_>, userns: BorrowedFd<'_>, recursive: bool) -> std::io::Result<()> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    let mut at = libc::AT_EMPTY_PATH;
    if recursive {
        at |= libc::AT_RECURSIVE;
    }
    // SAFETY: mount_setattr(2) reads `attr`, which lives on the stack, and
    // changes only the detached tree the caller holds.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            at,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
}

/// Attaches a detached mount (from [`clone_tree`]) at `target`, a path
/// relative to the working directory or absolute.
pub fn attach(tree: BorrowedFd<'_>, target: &CStr) -> std::io::Result<()> {
    // SAFETY: move_mount(2) of a descriptor the caller holds onto a
    // NUL-terminated path.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    })
}
