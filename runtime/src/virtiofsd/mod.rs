//! One virtiofsd per sandbox, sharing exactly what that sandbox may see.
//!
//! The share is an empty directory on which the container's root file
//! system (an overlay of the image's layers and the container's writable
//! layer, see [`crate::rootfs`]) and its other files are mounted, inside a
//! mount namespace private to virtiofsd. So the guest sees only its own
//! container (never the image store), nothing can write to the image's
//! layers, and no mount is left on the host when virtiofsd ends, however
//! it ends. A pod's other containers join a running sandbox: their
//! entries are mounted into that namespace then ([`add_entries`]).

mod mounts;

pub use mounts::{add_entries, remove_entries};

use crate::rootfs::OverlayMount;
use mounts::cpath;
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
    /// Mounting into, or unmounting from, a running virtiofsd's share failed.
    #[error("{what} in virtiofsd's share")]
    Running {
        /// What was being done.
        what: String,
        /// Why.
        source: std::io::Error,
    },
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

/// Starts virtiofsd serving `share_dir` (created here) with `entries`
/// mounted into it, on `socket`. Returns once the socket exists.
pub async fn spawn(
    program: &Path,
    share_dir: &Path,
    entries: &[ShareEntry],
    socket: &Path,
) -> Result<Child, VirtiofsdError> {
    let mounts = mounts::prepare(share_dir, entries)?;
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
        // Its own filter (a call outside it kills it), as its default is.
        .arg("--seccomp=kill")
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
            mounts::mount_all(&mounts)?;
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
            // Nothing it executes may gain privileges.
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 {
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
