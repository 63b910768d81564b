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
use thiserror::Error;
use tokio::process::{Child, Command};

/// The pinned virtiofsd version the set-up script installs.
pub const VIRTIOFSD_VERSION: &str = "1.14.0";

/// The descriptor virtiofsd gets its listening socket on (`--fd`).
const LISTEN_FD: std::os::fd::RawFd = 3;

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
    /// Its socket could not be made.
    #[error("listening on {path}")]
    Listen {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
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
/// mounted into it, on `socket`. The socket is bound here and handed over
/// listening, so a VMM may connect at once: its connection waits in the
/// backlog while virtiofsd starts, and the two start side by side.
pub fn spawn(
    program: &Path,
    share_dir: &Path,
    entries: &[ShareEntry],
    socket: &Path,
) -> Result<Child, VirtiofsdError> {
    let mounts = mounts::prepare(share_dir, entries)?;
    let share = cpath(share_dir)?;
    let _ = std::fs::remove_file(socket);
    // Ours is dropped on return: virtiofsd then holds the only one, so a
    // VMM connecting to a virtiofsd that died is refused, not left waiting.
    let listener = std::os::unix::net::UnixListener::bind(socket).map_err(|source| {
        VirtiofsdError::Listen {
            path: socket.to_path_buf(),
            source,
        }
    })?;
    let listen_fd = std::os::fd::AsRawFd::as_raw_fd(&listener);
    let mut command = Command::new(program);
    command
        .arg(format!("--fd={LISTEN_FD}"))
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
            // The listening socket, kept open across exec.
            if listen_fd == LISTEN_FD {
                if libc::fcntl(LISTEN_FD, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(listen_fd, LISTEN_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
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
    let child = command.spawn().map_err(|source| VirtiofsdError::Spawn {
        program: program.to_path_buf(),
        source,
    })?;
    drop(listener);
    Ok(child)
}
