//! Where Hull keeps things: state directories and the guest's artefacts.

use std::path::{Path, PathBuf};

/// Default data root, like Docker's /var/lib/docker.
pub const DEFAULT_ROOT: &str = "/var/lib/hull";
/// Default runtime directory for sockets and per-sandbox scratch space.
pub const DEFAULT_RUN_DIR: &str = "/run/hull";
/// Default directory of the guest kernel, initramfs and virtiofsd.
pub const DEFAULT_LIB_DIR: &str = "/usr/local/lib/hull";

/// Hull's directories.
#[derive(Debug, Clone)]
pub struct Paths {
    /// Persistent state: images, containers. `--root` or `HULL_ROOT`.
    pub root: PathBuf,
    /// Volatile state: sockets, sandboxes. `HULL_RUN_DIR`.
    pub run: PathBuf,
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

impl Paths {
    /// From the `--root` flag, else the environment, else the defaults.
    pub fn new(root: Option<PathBuf>) -> Self {
        Self {
            root: root
                .or_else(|| env_path("HULL_ROOT"))
                .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT)),
            run: env_path("HULL_RUN_DIR").unwrap_or_else(|| PathBuf::from(DEFAULT_RUN_DIR)),
        }
    }

    /// Makes the state and run directories, reachable by root alone (mode
    /// 0700, as Docker keeps /var/lib/docker): what is below them (monitor
    /// sockets, logs, containers' files) is no one else's to read or drive.
    /// The run directory is 0711: unprivileged VMMs pass through it to
    /// their own directories, and list nothing (see `sandbox::confine`).
    pub fn restrict(&self) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        for (dir, wanted) in [(&self.root, 0o700), (&self.run, 0o711)] {
            std::fs::create_dir_all(dir)?;
            let mode = std::fs::metadata(dir)?.permissions().mode() & 0o7777;
            if mode != wanted {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(wanted))?;
            }
            // Another user stops here, with the reason, rather than at the
            // first lookup that would read "no such container".
            std::fs::read_dir(dir)?;
        }
        Ok(())
    }

    /// The image store's root.
    pub fn image_root(&self) -> PathBuf {
        self.root.join("image")
    }

    /// Where read-only views of containers' file systems are mounted
    /// (each in a mount namespace of its own; only the empty mount points
    /// appear here, briefly).
    pub fn views_dir(&self) -> PathBuf {
        self.run.join("views")
    }

    /// A sandbox's scratch directory. Short, because unix socket paths
    /// inside it must stay under 108 bytes.
    pub fn sandbox_dir(&self, sandbox_id: &str) -> PathBuf {
        self.run.join(&sandbox_id[..sandbox_id.len().min(12)])
    }
}

/// The files a microVM is made from.
#[derive(Debug, Clone)]
pub struct GuestArtifacts {
    /// Guest kernel.
    pub kernel: PathBuf,
    /// Initramfs with hull-agent.
    pub initrd: PathBuf,
    /// The virtiofsd executable.
    pub virtiofsd: PathBuf,
}

impl GuestArtifacts {
    /// Each from its flag, else its environment variable (`HULL_KERNEL`,
    /// `HULL_INITRD`, `HULL_VIRTIOFSD`), else the lib directory
    /// (`HULL_LIB_DIR`, default /usr/local/lib/hull).
    pub fn resolve(kernel: Option<PathBuf>, initrd: Option<PathBuf>) -> Self {
        let lib = env_path("HULL_LIB_DIR").unwrap_or_else(|| PathBuf::from(DEFAULT_LIB_DIR));
        let pick = |flag: Option<PathBuf>, env: &str, file: &str| {
            flag.or_else(|| env_path(env))
                .unwrap_or_else(|| lib.join(file))
        };
        Self {
            kernel: pick(kernel, "HULL_KERNEL", "vmlinux"),
            initrd: pick(initrd, "HULL_INITRD", "initramfs.img"),
            virtiofsd: pick(None, "HULL_VIRTIOFSD", "virtiofsd"),
        }
    }

    /// The artefacts that are missing, as `what: path` strings.
    pub fn missing(&self) -> Vec<String> {
        [
            ("kernel", &self.kernel),
            ("initramfs", &self.initrd),
            ("virtiofsd", &self.virtiofsd),
        ]
        .into_iter()
        .filter(|(_, path)| !Path::new(path).is_file())
        .map(|(what, path)| format!("{what}: {}", path.display()))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_dirs_are_short() {
        let paths = Paths {
            root: PathBuf::from("/r"),
            run: PathBuf::from("/run/hull"),
        };
        let id = "a".repeat(64);
        assert_eq!(
            paths.sandbox_dir(&id),
            PathBuf::from("/run/hull/aaaaaaaaaaaa")
        );
        assert_eq!(paths.image_root(), PathBuf::from("/r/image"));
    }
}
