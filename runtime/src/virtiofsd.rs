//! One virtiofsd per sandbox, sharing exactly that sandbox's image layers.
//!
//! The share is an empty directory on which the image's layer directories
//! are bind-mounted read-only, inside a mount namespace private to
//! virtiofsd. So the guest sees only its own image (never the whole store),
//! nothing can write to the layers, and no mount is left on the host when
//! virtiofsd ends, however it ends.

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
    /// Absolute path on the host.
    pub source: PathBuf,
    /// Relative path inside the share.
    pub target: PathBuf,
}

/// Mount calls prepared before fork: the child may not allocate.
struct BindPlan {
    source: CString,
    target: CString,
}

fn cpath(path: &Path) -> Result<CString, VirtiofsdError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| VirtiofsdError::BadPath(path.to_path_buf()))
}

/// Starts virtiofsd serving `share_dir` (created here) with `entries`
/// bind-mounted read-only into it, on `socket`. Returns once the socket exists.
pub async fn spawn(program: &Path, share_dir: &Path, entries: &[ShareEntry], socket: &Path) -> Result<Child, VirtiofsdError> {
    let mut binds = Vec::with_capacity(entries.len());
    for entry in entries {
        let target = share_dir.join(&entry.target);
        std::fs::create_dir_all(&target).map_err(|source| VirtiofsdError::Share {
            path: target.clone(),
            source,
        })?;
        binds.push(BindPlan {
            source: cpath(&entry.source)?,
            target: cpath(&target)?,
        });
    }
    let mut command = Command::new(program);
    command
        .arg(format!("--socket-path={}", socket.display()))
        .arg(format!("--shared-dir={}", share_dir.display()))
        // The layers never change, but /etc/hosts does when peers come and
        // go (it is rewritten in place): `auto` revalidates on open.
        .arg("--cache=auto")
        .arg("--sandbox=namespace")
        // overlayfs in the guest reads trusted.overlay.* (opaque directories).
        .arg("--xattr")
        .arg("--readonly")
        // The layers are bind mounts; announced as submounts they become
        // automount points in the guest, which overlayfs refuses as layers.
        .arg("--no-announce-submounts")
        .arg("--log-level=error")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    // SAFETY: the closure runs between fork and exec and only makes system
    // calls on C strings built above.
    unsafe {
        command.pre_exec(move || {
            // Die with the sandbox's owner, whatever kills it.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::unshare(libc::CLONE_NEWNS) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let null = std::ptr::null();
            if libc::mount(null, c"/".as_ptr(), null, libc::MS_REC | libc::MS_PRIVATE, null.cast()) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            for bind in &binds {
                if libc::mount(bind.source.as_ptr(), bind.target.as_ptr(), null, libc::MS_BIND | libc::MS_REC, null.cast()) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let readonly = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV;
                if libc::mount(null, bind.target.as_ptr(), null, readonly, null.cast()) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
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
            return Err(VirtiofsdError::NotReady(format!("no socket after {SOCKET_TIMEOUT:?}")));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(child)
}
