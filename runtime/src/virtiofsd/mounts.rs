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
use crate::idmap::{FsIdentity, UserNamespace};
use crate::mount_api::{
    attach, clone_tree, set_recursive, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY,
};
use crate::rootfs::OverlayMount;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Mount calls prepared before fork: the child may not allocate.
pub(super) enum MountPlan {
    Bind {
        source: CString,
        target: CString,
        readonly: bool,
        /// An idmapped copy of `source`, for an unprivileged virtiofsd.
        tree: Option<OwnedFd>,
    },
    Overlay {
        mount: OverlayMount,
        target: CString,
        /// For an unprivileged virtiofsd: idmapped copies of the layers'
        /// directories, each mounted over its directory before the overlay.
        layer_trees: Vec<(OwnedFd, CString)>,
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
/// empty file for a file) and prepares its mount; for a virtiofsd in the
/// user namespace `ns`, through idmapped copies of what it mounts.
pub(super) fn prepare(
    share_dir: &Path,
    entries: &[ShareEntry],
    ns: Option<&UserNamespace>,
) -> Result<Vec<MountPlan>, VirtiofsdError> {
    let mut mounts = Vec::with_capacity(entries.len());
    let mut mapped_dirs: Vec<CString> = Vec::new();
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
        let idmapped = |ns: &UserNamespace, path: &CString, recursive: bool| {
            ns.idmapped_clone(path, recursive)
                .map_err(|source| VirtiofsdError::Idmap {
                    path: PathBuf::from(std::ffi::OsStr::from_bytes(path.as_bytes())),
                    source,
                })
        };
        mounts.push(match &entry.source {
            ShareSource::Bind { path, readonly } => {
                let source = cpath(path)?;
                let tree = ns.map(|ns| idmapped(ns, &source, true)).transpose()?;
                MountPlan::Bind {
                    source,
                    target,
                    readonly: *readonly,
                    tree,
                }
            }
            ShareSource::Overlay(mount) => {
                let mut layer_trees = Vec::new();
                if let Some(ns) = ns {
                    for dir in &mount.layer_dirs {
                        // Once per directory: a second copy would hide the first.
                        if !mapped_dirs.contains(dir) {
                            layer_trees.push((idmapped(ns, dir, false)?, dir.clone()));
                            mapped_dirs.push(dir.clone());
                        }
                    }
                }
                MountPlan::Overlay {
                    mount: mount.clone(),
                    target,
                    layer_trees,
                }
            }
        });
    }
    Ok(mounts)
}

/// Makes the prepared mounts; overlays as `mounter` if it is given (an
/// unprivileged virtiofsd's, see [`crate::idmap`]). Allocates nothing: it
/// also runs between fork and exec. Changes the working directory
/// (overlays mount from theirs).
pub(super) fn mount_all(mounts: &[MountPlan], mounter: Option<&FsIdentity>) -> std::io::Result<()> {
    let null = std::ptr::null();
    let check = |rc: libc::c_long| {
        if rc < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    for plan in mounts {
        match plan {
            MountPlan::Bind {
                source,
                target,
                readonly,
                tree,
            } => {
                match tree {
                    Some(tree) => attach(tree.as_fd(), target)?,
                    // SAFETY: mount(2) on NUL-terminated strings that outlive the call.
                    None => check(
                        unsafe {
                            libc::mount(
                                source.as_ptr(),
                                target.as_ptr(),
                                null,
                                libc::MS_BIND | libc::MS_REC,
                                null.cast(),
                            )
                        }
                        .into(),
                    )?,
                }
                // nodev and nosuid for the host: virtiofsd itself never
                // needs a device or set-user-ID program there. Recursively
                // (mount_setattr): file systems mounted below a `:ro`
                // volume's source are read-only too.
                let ro = if *readonly { MOUNT_ATTR_RDONLY } else { 0 };
                set_recursive(target, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | ro)?;
            }
            MountPlan::Overlay {
                mount,
                target,
                layer_trees,
            } => {
                for (tree, dir) in layer_trees {
                    attach(tree.as_fd(), dir)?;
                }
                // SAFETY: chdir(2) on a NUL-terminated string.
                check(unsafe { libc::chdir(mount.cwd.as_ptr()) }.into())?;
                let flags = libc::MS_NOSUID | libc::MS_NODEV;
                // SAFETY: mount(2) on NUL-terminated strings that outlive the call.
                let mount_overlay = || unsafe {
                    libc::mount(
                        c"overlay".as_ptr(),
                        target.as_ptr(),
                        c"overlay".as_ptr(),
                        flags,
                        mount.data.as_ptr().cast(),
                    )
                };
                let rc = match mounter {
                    // SAFETY: this thread is root's and does nothing else
                    // meanwhile; mount(2) is async-signal-safe.
                    Some(mounter) => unsafe { mounter.scope(mount_overlay) }?,
                    None => mount_overlay(),
                };
                check(rc.into())?;
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
    let server = server_of(virtiofsd_pid)?;
    // A virtiofsd in a user namespace of Hull's is served idmapped copies.
    let ns = UserNamespace::of_process(server).map_err(|source| VirtiofsdError::Running {
        what: format!("reading virtiofsd's user namespace (/proc/{server})"),
        source,
    })?;
    let mounter = ns
        .as_ref()
        .map(|ns| FsIdentity::of(ns.range()))
        .transpose()
        .map_err(|source| VirtiofsdError::Running {
            what: "reading this thread's capabilities".into(),
            source,
        })?;
    let plans = prepare(share_dir, entries, ns.as_ref())?;
    let relative = entries
        .iter()
        .map(|entry| cpath(&entry.target))
        .collect::<Result<Vec<_>, _>>()?;
    in_namespace_of(server, move |enter| {
        // A private copy of the host's namespace: what is mounted here
        // reaches no one else.
        // unshare(2) affects this thread only (it has its own fs from here
        // on), which ends when the closure returns.
        crate::mount_api::unshare_mounts(libc::MS_PRIVATE)
            .map_err(|e| ("making a private mount namespace", e))?;
        mount_all(&plans, mounter.as_ref()).map_err(|e| ("mounting the container's files", e))?;
        let mut trees = Vec::with_capacity(plans.len());
        for plan in &plans {
            trees.push(clone_tree(plan.target(), true).map_err(|e| ("cloning a mount", e))?);
        }
        enter()?;
        for (tree, target) in trees.iter().zip(&relative) {
            // Relative to the share (our working directory now).
            attach(tree.as_fd(), target).map_err(|e| ("attaching a mount", e))?;
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
    let server = server_of(virtiofsd_pid)?;
    in_namespace_of(server, move |enter| {
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

/// virtiofsd's serving process: a child in the namespaces it made, pivoted
/// into the share, so its root is where the share is (the namespace's own
/// root need not be: a chrooted host's is not).
fn server_of(virtiofsd_pid: u32) -> Result<u32, VirtiofsdError> {
    let children = format!("/proc/{virtiofsd_pid}/task/{virtiofsd_pid}/children");
    std::fs::read_to_string(&children)
        .ok()
        .and_then(|children| children.split_whitespace().next()?.parse::<u32>().ok())
        .ok_or_else(|| VirtiofsdError::Running {
            what: format!("finding virtiofsd's server in {children}"),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        })
}

/// Runs `work` on a thread of its own (its namespace changes end with it),
/// handing it a function that enters virtiofsd's mount namespace and its
/// root (the share: relative paths are the share's from there on).
fn in_namespace_of<F>(server: u32, work: F) -> Result<(), VirtiofsdError>
where
    F: FnOnce(&dyn Fn() -> Result<(), Step>) -> Result<(), Step> + Send + 'static,
{
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
