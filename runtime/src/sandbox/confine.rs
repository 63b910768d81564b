//! What a sandbox's VMM may reach when it runs unprivileged: the
//! virtiofsd socket, and the descriptors it inherits (the kernel, the
//! initramfs, its taps, its listening sockets, its console), made or opened
//! by the monitor while the spawn is still root. Nothing the monitor later
//! opens by path is in a directory the VMM's user may change: a VMM the
//! guest took over cannot swap a socket or the console for a link.
//!
//! The sandbox directory is 0711: the VMM passes through it to virtiofsd's
//! socket (its own) but lists nothing. The `vmm` directory (sockets,
//! console), the share (where the container's files are mounted) and the
//! monitor's socket (0600) are root's.

use super::SandboxError;
use crate::hypervisor::{Inherited, VmLaunch, VmmUser};
use crate::network::tap::TapOpener;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The VMM's own directory inside the sandbox directory.
pub(super) const VMM_DIR: &str = "vmm";

/// Makes `dir/vmm` and `dir/share` (root's), and closes `dir` to listing;
/// checks that `user` may pass through to `dir`. Returns the VMM's directory.
pub(super) fn prepare_dirs(dir: &Path, user: Option<&VmmUser>) -> Result<PathBuf, SandboxError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SandboxError::Dir { path, source }
    };
    let vmm = dir.join(VMM_DIR);
    let share = dir.join("share");
    for path in [&vmm, &share] {
        std::fs::create_dir_all(path).map_err(io(path))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(io(path))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)).map_err(io(dir))?;
    if let Some(user) = user {
        // The VMM finds virtiofsd's socket by path: every directory above
        // it must let others through.
        for above in dir.ancestors() {
            let mode = std::fs::metadata(above)
                .map_err(io(above))?
                .permissions()
                .mode();
            if mode & 0o001 == 0 {
                return Err(SandboxError::Confine {
                    path: above.to_path_buf(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::PermissionDenied,
                        format!(
                            "the VMM runs as uid {} and cannot pass through it (mode {:o}): \
                             make it searchable by others (chmod o+x), or set HULL_RUN_DIR elsewhere",
                            user.uid,
                            mode & 0o7777
                        ),
                    ),
                });
            }
        }
    }
    Ok(vmm)
}

/// The descriptors a VMM inherits, open in the monitor until the spawn.
pub(super) struct Inheritance {
    files: Vec<(OwnedFd, RawFd)>,
    taps: Vec<(TapOpener, RawFd)>,
}

fn confine_error(path: &Path) -> impl FnOnce(std::io::Error) -> SandboxError {
    let path = path.to_path_buf();
    move |source| SandboxError::Confine { path, source }
}

impl Inheritance {
    /// Opens `launch`'s files and prepares its taps.
    pub(super) fn open(launch: &VmLaunch) -> Result<Self, SandboxError> {
        let mut files = Vec::new();
        let mut taps = Vec::new();
        for inherited in &launch.inherited {
            match inherited {
                Inherited::File { path, fd } => {
                    let file = std::fs::File::open(path).map_err(confine_error(path))?;
                    files.push((OwnedFd::from(file), *fd));
                }
                Inherited::Listener { path, fd } => {
                    let _ = std::fs::remove_file(path);
                    let listener = std::os::unix::net::UnixListener::bind(path)
                        .map_err(confine_error(path))?;
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                        .map_err(confine_error(path))?;
                    files.push((OwnedFd::from(listener), *fd));
                }
                Inherited::Output { path, fd } => {
                    use std::os::unix::fs::OpenOptionsExt;
                    let file = std::fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .mode(0o600)
                        .custom_flags(libc::O_NOFOLLOW)
                        .open(path)
                        .map_err(confine_error(path))?;
                    if let Some(user) = &launch.user {
                        std::os::unix::fs::fchown(&file, Some(user.uid), Some(user.gid))
                            .map_err(confine_error(path))?;
                    }
                    files.push((OwnedFd::from(file), *fd));
                }
                Inherited::Tap { name, fd } => {
                    let opener = TapOpener::new(name)
                        .map_err(|err| SandboxError::Inherit(format!("tap {name}: {err}")))?;
                    taps.push((opener, *fd));
                }
            }
        }
        Ok(Self { files, taps })
    }

    /// Puts every descriptor at its number, open across `exec`. Taps are
    /// opened here, in the namespace the child is in by now.
    ///
    /// # Safety
    /// Async-signal-safe: for a child between `fork` and `exec`.
    pub(super) unsafe fn install(&self) -> std::io::Result<()> {
        let place = |from: RawFd, to: RawFd| {
            // SAFETY: dup2 of a descriptor this process holds; the copy at
            // `to` is not close-on-exec.
            if unsafe { libc::dup2(from, to) } < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        for (file, to) in &self.files {
            place(file.as_raw_fd(), *to)?;
        }
        for (tap, to) in &self.taps {
            // SAFETY: async-signal-safe, as this function is.
            let fd = unsafe { tap.open() }?;
            let placed = place(fd, *to);
            // SAFETY: closing the descriptor opened just above.
            unsafe { libc::close(fd) };
            placed?;
        }
        Ok(())
    }
}

/// Gives a VMM that does not jail itself (QEMU) a mount namespace of its
/// own, in which the host's whole tree is read-only and set-user-ID bits
/// count for nothing: whatever it does as its user, it writes no file on
/// the host (its console, log and sockets are descriptors it inherits;
/// device nodes, /dev/kvm and the tun device, still open). The host's
/// later unmounts still reach it (a slave), so it pins no mount.
///
/// # Safety
/// Async-signal-safe: for a child between `fork` and `exec`, still root.
pub(super) unsafe fn read_only_host() -> std::io::Result<()> {
    crate::mount_api::unshare_mounts(libc::MS_SLAVE)?;
    crate::mount_api::set_recursive(
        c"/",
        crate::mount_api::MOUNT_ATTR_RDONLY | crate::mount_api::MOUNT_ATTR_NOSUID,
    )
}
