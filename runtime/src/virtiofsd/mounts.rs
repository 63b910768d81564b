//! The mounts that make a sandbox's share: prepared before virtiofsd starts
//! (and made in its mount namespace between fork and exec), or added to a
//! running virtiofsd's namespace when a container joins the sandbox.
//!
//! Adding works as Kata's and LXD's mount injection does: a thread of our
//! own makes the mounts in a private copy of the host's namespace, clones
//! them as detached trees (open_tree), enters virtiofsd's namespace (whose
//! root is the share) and attaches them there (move_mount). The host never
//! sees them, and they go with virtiofsd however it ends.

use super::{ShareEntry, ShareSource, VirtiofsdError};
use crate::rootfs::OverlayMount;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// `struct mount_attr` of mount_setattr(2) (linux/mount.h).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
/// move_mount(2): the source is the descriptor itself.
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

/// Mount calls prepared before fork: the child may not allocate.
pub(super) enum MountPlan {
    Bind {
        source: CString,
        target: CString,
        readonly: bool,
    },
    Overlay {
        mount: OverlayMount,
        target: CString,
    },
}

impl MountPlan {
    fn target(&self) -> &CString {
        match self {
            MountPlan::Bind { target, .. } | MountPlan::Overlay { target, .. } => target,
        }
    }
}

/// A path as mount(2) takes it.
pub(super) fn cpath(path: &Path) -> Result<CString, VirtiofsdError> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| VirtiofsdError::BadPath(path.to_path_buf()))
}

/// Makes each entry's mount point under `share_dir` (a directory, or an
/// empty file for a file) and prepares its mount.
pub(super) fn prepare(
    share_dir: &Path,
    entries: &[ShareEntry],
) -> Result<Vec<MountPlan>, VirtiofsdError> {
    let mut mounts = Vec::with_capacity(entries.len());
    for entry in entries {
        let target = share_dir.join(&entry.target);
        let share_error = |source| VirtiofsdError::Share {
            path: target.clone(),
            source,
        };
        match &entry.source {
            // A file is bind-mounted onto a file.
            ShareSource::Bind { path, .. } if !path.is_dir() => {
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(share_error)?;
                }
                std::fs::File::create(&target).map_err(share_error)?;
            }
            _ => std::fs::create_dir_all(&target).map_err(share_error)?,
        }
        let target = cpath(&target)?;
        mounts.push(match &entry.source {
            ShareSource::Bind { path, readonly } => MountPlan::Bind {
                source: cpath(path)?,
                target,
                readonly: *readonly,
            },
            ShareSource::Overlay(mount) => MountPlan::Overlay {
                mount: mount.clone(),
                target,
            },
        });
    }
    Ok(mounts)
}

/// Makes the prepared mounts. Allocates nothing: it also runs between fork
/// and exec. Changes the working directory (overlays mount from theirs).
pub(super) fn mount_all(mounts: &[MountPlan]) -> std::io::Result<()> {
    let null = std::ptr::null();
    for plan in mounts {
        match plan {
            MountPlan::Bind {
                source,
                target,
                readonly,
            } => {
                // SAFETY: mount(2) on NUL-terminated strings that outlive the call.
                if unsafe {
                    libc::mount(
                        source.as_ptr(),
                        target.as_ptr(),
                        null,
                        libc::MS_BIND | libc::MS_REC,
                        null.cast(),
                    )
                } < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                // nodev and nosuid for the host: virtiofsd itself never
                // needs a device or set-user-ID program there. Recursively
                // (mount_setattr): file systems mounted below a `:ro`
                // volume's source are read-only too.
                let ro = if *readonly { MOUNT_ATTR_RDONLY } else { 0 };
                let attr = MountAttr {
                    attr_set: MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | ro,
                    attr_clr: 0,
                    propagation: 0,
                    userns_fd: 0,
                };
                let size = std::mem::size_of::<MountAttr>();
                // SAFETY: mount_setattr(2) reads `size` bytes of `attr`, which lives on the stack.
                if unsafe {
                    libc::syscall(
                        libc::SYS_mount_setattr,
                        libc::AT_FDCWD,
                        target.as_ptr(),
                        libc::AT_RECURSIVE,
                        &attr as *const MountAttr,
                        size,
                    )
                } < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
            }
            MountPlan::Overlay { mount, target } => {
                // SAFETY: chdir(2) on a NUL-terminated string.
                if unsafe { libc::chdir(mount.cwd.as_ptr()) } < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let flags = libc::MS_NOSUID | libc::MS_NODEV;
                // SAFETY: mount(2) on NUL-terminated strings that outlive the call.
                if unsafe {
                    libc::mount(
                        c"overlay".as_ptr(),
                        target.as_ptr(),
                        c"overlay".as_ptr(),
                        flags,
                        mount.data.as_ptr().cast(),
                    )
                } < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
            }
        }
    }
    Ok(())
}

/// A step of [`add_entries`] or [`remove_entries`] that failed.
type Step = (&'static str, std::io::Error);

fn last_error(step: &'static str) -> Step {
    (step, std::io::Error::last_os_error())
}

/// Mounts `entries` (their targets relative to the share's root, as at
/// start) into the share of the running virtiofsd `virtiofsd_pid`, whose
/// share is `share_dir` on the host.
pub fn add_entries(
    virtiofsd_pid: u32,
    share_dir: &Path,
    entries: &[ShareEntry],
) -> Result<(), VirtiofsdError> {
    let plans = prepare(share_dir, entries)?;
    let relative = entries
        .iter()
        .map(|entry| cpath(&entry.target))
        .collect::<Result<Vec<_>, _>>()?;
    in_namespace_of(virtiofsd_pid, move |enter| {
        // A private copy of the host's namespace: what is mounted here
        // reaches no one else.
        // SAFETY: unshare(2) affects this thread only (it has its own fs
        // from here on), which ends when the closure returns.
        if unsafe { libc::unshare(libc::CLONE_NEWNS) } < 0 {
            return Err(last_error("making a private mount namespace"));
        }
        let null = std::ptr::null();
        // SAFETY: mount(2) changing propagation only, on a static string.
        if unsafe {
            libc::mount(
                null,
                c"/".as_ptr(),
                null,
                libc::MS_REC | libc::MS_PRIVATE,
                null.cast(),
            )
        } < 0
        {
            return Err(last_error("making the private namespace private"));
        }
        mount_all(&plans).map_err(|e| ("mounting the container's files", e))?;
        let mut trees = Vec::with_capacity(plans.len());
        for plan in &plans {
            let flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | libc::AT_RECURSIVE as u32;
            // SAFETY: open_tree(2) on a NUL-terminated string; it returns a new descriptor.
            let fd = unsafe {
                libc::syscall(
                    libc::SYS_open_tree,
                    libc::AT_FDCWD,
                    plan.target().as_ptr(),
                    flags,
                )
            };
            if fd < 0 {
                return Err(last_error("cloning a mount"));
            }
            // SAFETY: open_tree returned a descriptor nothing else owns.
            trees.push(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) });
        }
        enter()?;
        for (tree, target) in trees.iter().zip(&relative) {
            // SAFETY: move_mount(2) of a descriptor we own onto a
            // NUL-terminated path, relative to the share (our working
            // directory now).
            if unsafe {
                libc::syscall(
                    libc::SYS_move_mount,
                    tree.as_raw_fd(),
                    c"".as_ptr(),
                    libc::AT_FDCWD,
                    target.as_ptr(),
                    MOVE_MOUNT_F_EMPTY_PATH,
                )
            } < 0
            {
                return Err(last_error("attaching a mount"));
            }
        }
        Ok(())
    })
}

/// Unmounts `targets` (relative to the share's root) from the running
/// virtiofsd `virtiofsd_pid`'s share, last first; those not mounted are
/// skipped.
pub fn remove_entries(virtiofsd_pid: u32, targets: &[PathBuf]) -> Result<(), VirtiofsdError> {
    let relative = targets
        .iter()
        .rev()
        .map(|target| cpath(target))
        .collect::<Result<Vec<_>, _>>()?;
    in_namespace_of(virtiofsd_pid, move |enter| {
        // SAFETY: unshare(2) of this thread's fs attributes, so that it may
        // enter another mount namespace; the thread ends with the closure.
        if unsafe { libc::unshare(libc::CLONE_FS) } < 0 {
            return Err(last_error("unsharing the thread's fs attributes"));
        }
        enter()?;
        for target in &relative {
            // SAFETY: umount2(2) on a NUL-terminated path.
            if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } < 0 {
                let err = std::io::Error::last_os_error();
                if !matches!(err.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) {
                    return Err(("unmounting", err));
                }
            }
        }
        Ok(())
    })
}

/// Runs `work` on a thread of its own (its namespace changes end with it),
/// handing it a function that enters virtiofsd's mount namespace and its
/// root (the share: relative paths are the share's from there on).
fn in_namespace_of<F>(virtiofsd_pid: u32, work: F) -> Result<(), VirtiofsdError>
where
    F: FnOnce(&dyn Fn() -> Result<(), Step>) -> Result<(), Step> + Send + 'static,
{
    // virtiofsd serves from a child in the namespace it made, pivoted into
    // the share; its root is where the share is (the namespace's own root
    // need not be: a chrooted host's is not).
    let children = format!("/proc/{virtiofsd_pid}/task/{virtiofsd_pid}/children");
    let server = std::fs::read_to_string(&children)
        .ok()
        .and_then(|children| children.split_whitespace().next()?.parse::<u32>().ok())
        .ok_or_else(|| VirtiofsdError::Running {
            what: format!("finding virtiofsd's server in {children}"),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        })?;
    let open = |what: &str, flags: libc::c_int| {
        let path = format!("/proc/{server}/{what}");
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags)
            .open(&path)
            .map_err(|source| VirtiofsdError::Running {
                what: format!("opening {path}"),
                source,
            })
    };
    let namespace = open("ns/mnt", 0)?;
    let root = open("root", libc::O_PATH | libc::O_DIRECTORY)?;
    let thread = std::thread::Builder::new()
        .name("share-mounts".into())
        .spawn(move || {
            let enter = || {
                // SAFETY: setns(2) on a descriptor we own; this thread's fs
                // attributes are its own (unshared before).
                if unsafe { libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNS) } < 0 {
                    return Err(last_error("entering virtiofsd's mount namespace"));
                }
                // SAFETY: fchdir(2) on a descriptor we own.
                if unsafe { libc::fchdir(root.as_raw_fd()) } < 0 {
                    return Err(last_error("entering virtiofsd's root"));
                }
                Ok(())
            };
            work(&enter)
        })
        .map_err(|source| VirtiofsdError::Running {
            what: "starting a thread".into(),
            source,
        })?;
    match thread.join() {
        Ok(Ok(())) => Ok(()),
        Ok(Err((what, source))) => Err(VirtiofsdError::Running {
            what: what.into(),
            source,
        }),
        Err(_) => Err(VirtiofsdError::Running {
            what: "mounting".into(),
            source: std::io::Error::other("the thread panicked"),
        }),
    }
}
