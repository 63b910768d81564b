//! One virtiofsd per sandbox, sharing exactly what that sandbox may see.
//!
//! The share is an empty directory on which the container's root file
//! system (an overlay of the image's layers and the container's writable
//! layer, see [`crate::rootfs`]) and its other files are mounted, inside a
//! mount namespace private to virtiofsd. So the guest sees only its own
//! container (never the image store), nothing can write to the image's
//! layers, and no mount is left on the host when virtiofsd ends, however
//! it ends.

use crate::rootfs::OverlayMount;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;
use tokio::process::{Child, Command};

/// The pinned virtiofsd version the set-up script installs.
pub const VIRTIOFSD_VERSION: &str = "1.14.0";

/// How long virtiofsd may take to create its socket.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(10);

/// virtiofsd could not be started.
#[derive(Debug, Error)]
pub enum VirtiofsdError {
    /// Preparing the share failed.
    #[error("preparing the shared directory {path}")]
    Share {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A path cannot be passed to mount(2).
    #[error("path {0} contains a NUL byte")]
    BadPath(PathBuf),
    /// Spawning failed.
    #[error("starting {program}")]
    Spawn {
        /// The executable.
        program: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// virtiofsd exited or never made its socket.
    #[error("virtiofsd did not come up: {0}")]
    NotReady(String),
}

/// A directory to expose inside the share.
#[derive(Debug, Clone)]
pub struct ShareEntry {
    /// Relative path inside the share.
    pub target: PathBuf,
    /// What is mounted there.
    pub source: ShareSource,
}

/// What a [`ShareEntry`] mounts.
#[derive(Debug, Clone)]
pub enum ShareSource {
    /// A host directory, bind-mounted.
    Bind {
        /// Absolute path on the host.
        path: PathBuf,
        /// Whether the guest may only read it.
        readonly: bool,
    },
    /// An overlay (a container's root file system).
    Overlay(OverlayMount),
}

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

/// Mount calls prepared before fork: the child may not allocate.
enum MountPlan {
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

fn cpath(path: &Path) -> Result<CString, VirtiofsdError> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| VirtiofsdError::BadPath(path.to_path_buf()))
}

/// Starts virtiofsd serving `share_dir` (created here) with `entries`
/// mounted into it, on `socket`. Returns once the socket exists.
pub async fn spawn(
    program: &Path,
    share_dir: &Path,
    entries: &[ShareEntry],
    socket: &Path,
) -> Result<Child, VirtiofsdError> {
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
    let share = cpath(share_dir)?;
    let mut command = Command::new(program);
    command
        .arg(format!("--socket-path={}", socket.display()))
        .arg(format!("--shared-dir={}", share_dir.display()))
        // /etc/hosts changes when peers come and go (it is rewritten in
        // place), and `cp` writes into running containers: `auto`
        // revalidates on open.
        .arg("--cache=auto")
        .arg("--sandbox=namespace")
        // Extended attributes in the container (file capabilities, ACLs).
        .arg("--xattr")
        // The entries are mounts of their own; the guest sees one tree.
        .arg("--no-announce-submounts")
        .arg("--log-level=error")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    // SAFETY: the closure runs between fork and exec and only makes system
    // calls on C strings built above.
    unsafe {
        command.pre_exec(move || {
            // Die with the sandbox's owner, whatever kills it.
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) < 0
            {
                return Err(std::io::Error::last_os_error());
            }
            if libc::unshare(libc::CLONE_NEWNS) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let null = std::ptr::null();
            if libc::mount(
                null,
                c"/".as_ptr(),
                null,
                libc::MS_REC | libc::MS_PRIVATE,
                null.cast(),
            ) < 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The share itself becomes a mount (made read-only below, once
            // the entries are mounted in it): the guest can create nothing
            // in its root, which lives on the host's /run.
            if libc::mount(
                share.as_ptr(),
                share.as_ptr(),
                null,
                libc::MS_BIND,
                null.cast(),
            ) < 0
            {
                return Err(std::io::Error::last_os_error());
            }
            for plan in &mounts {
                match plan {
                    MountPlan::Bind {
                        source,
                        target,
                        readonly,
                    } => {
                        if libc::mount(
                            source.as_ptr(),
                            target.as_ptr(),
                            null,
                            libc::MS_BIND | libc::MS_REC,
                            null.cast(),
                        ) < 0
                        {
                            return Err(std::io::Error::last_os_error());
                        }
                        // nodev and nosuid for the host: virtiofsd itself
                        // never needs a device or set-user-ID program there.
                        // Recursively (mount_setattr): file systems mounted
                        // below a `:ro` volume's source are read-only too.
                        let ro = if *readonly { MOUNT_ATTR_RDONLY } else { 0 };
                        let attr = MountAttr {
                            attr_set: MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | ro,
                            attr_clr: 0,
                            propagation: 0,
                            userns_fd: 0,
                        };
                        let size = std::mem::size_of::<MountAttr>();
                        if libc::syscall(
                            libc::SYS_mount_setattr,
                            libc::AT_FDCWD,
                            target.as_ptr(),
                            libc::AT_RECURSIVE,
                            &attr as *const MountAttr,
                            size,
                        ) < 0
                        {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    MountPlan::Overlay { mount, target } => {
                        if libc::chdir(mount.cwd.as_ptr()) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        let flags = libc::MS_NOSUID | libc::MS_NODEV;
                        if libc::mount(
                            c"overlay".as_ptr(),
                            target.as_ptr(),
                            c"overlay".as_ptr(),
                            flags,
                            mount.data.as_ptr().cast(),
                        ) < 0
                        {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                }
            }
            let read_only = libc::MS_REMOUNT
                | libc::MS_BIND
                | libc::MS_RDONLY
                | libc::MS_NOSUID
                | libc::MS_NODEV;
            if libc::mount(null, share.as_ptr(), null, read_only, null.cast()) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::chdir(c"/".as_ptr()) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(|source| VirtiofsdError::Spawn {
        program: program.to_path_buf(),
        source,
    })?;
    let deadline = tokio::time::Instant::now() + SOCKET_TIMEOUT;
    while !socket.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(VirtiofsdError::NotReady(format!("it exited with {status}")));
        }
        if tokio::time::Instant::now() > deadline {
            return Err(VirtiofsdError::NotReady(format!(
                "no socket after {SOCKET_TIMEOUT:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(child)
}
