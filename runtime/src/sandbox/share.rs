//! The layout of a sandbox's virtio-fs share as the guest sees it: where
//! each container's root, its /etc files and its volumes are.
//!
//! The container that boots the sandbox has its files at the share's root
//! (`rootfs/`, `etc/`, `volumes/N`); each container that joins the sandbox
//! later (a pod's other containers) has the same layout under
//! `containers/<id>/`, mounted into the running virtiofsd when it joins.

use std::path::{Path, PathBuf};

/// The virtio-fs tag of the sandbox's share.
pub const LAYERS_SHARE_TAG: &str = "hull";

/// The files the container sees in its /etc, kept beside its record as
/// Docker keeps them (`containers/<id>/hosts`, …) and shared read-only with
/// the guest, one bind mount each, under `etc/` in the container's part of
/// the share.
pub const ETC_FILES: [&str; 3] = ["hosts", "hostname", "resolv.conf"];

/// Where the agent mounts the share in the guest.
const GUEST_SHARES_DIR: &str = "/run/hull/shares";

/// Where the containers that join a sandbox have their part of the share.
const MEMBERS_DIR: &str = "containers";

/// One container's part of its sandbox's share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerShare {
    /// Relative to the share's root; empty for the sandbox's own container.
    prefix: PathBuf,
}

impl ContainerShare {
    /// The part of the container that boots the sandbox: the share's root.
    pub fn own() -> Self {
        Self {
            prefix: PathBuf::new(),
        }
    }

    /// The part of container `id` (64 hex digits), which joins a running
    /// sandbox.
    pub fn member(id: &str) -> Self {
        Self {
            prefix: Path::new(MEMBERS_DIR).join(id),
        }
    }

    /// The part of container `id` that joins `sandbox` (else boots its own).
    pub fn of(id: &str, sandbox: Option<&str>) -> Self {
        match sandbox {
            Some(_) => Self::member(id),
            None => Self::own(),
        }
    }

    /// The whole part, relative to the share's root (empty for the sandbox's own).
    pub fn dir(&self) -> &Path {
        &self.prefix
    }

    /// The container's root file system, relative to the share's root.
    pub fn rootfs(&self) -> PathBuf {
        self.prefix.join("rootfs")
    }

    /// The container's /etc file `name` (one of [`ETC_FILES`]).
    pub fn etc_file(&self, name: &str) -> PathBuf {
        self.prefix.join("etc").join(name)
    }

    /// The container's volume number `index`.
    pub fn volume(&self, index: usize) -> PathBuf {
        self.prefix.join("volumes").join(index.to_string())
    }

    /// Where the guest finds `relative` of the share.
    pub fn guest_path(relative: &Path) -> String {
        format!(
            "{GUEST_SHARES_DIR}/{LAYERS_SHARE_TAG}/{}",
            relative.display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sandboxs_own_container_is_at_the_root_and_the_others_below() {
        let own = ContainerShare::own();
        assert_eq!(own.rootfs(), Path::new("rootfs"));
        assert_eq!(
            ContainerShare::guest_path(&own.etc_file("hosts")),
            "/run/hull/shares/hull/etc/hosts"
        );
        let member = ContainerShare::member("abc");
        assert_eq!(member.rootfs(), Path::new("containers/abc/rootfs"));
        assert_eq!(
            ContainerShare::guest_path(&member.volume(2)),
            "/run/hull/shares/hull/containers/abc/volumes/2"
        );
        assert_eq!(ContainerShare::of("abc", Some("def")), member);
        assert_eq!(ContainerShare::of("abc", None), own);
    }
}
