//! The layout of a sandbox's virtio-fs share as the guest sees it: where
//! the container's root, its /etc files and its volumes are.

/// The virtio-fs tag of the share holding the image layers.
pub const LAYERS_SHARE_TAG: &str = "hull";

/// The files the container sees in its /etc, kept beside its record as
/// Docker keeps them (`containers/<id>/hosts`, …) and shared read-only with
/// the guest, one bind mount each, under `etc/` in the sandbox's share.
pub const ETC_FILES: [&str; 3] = ["hosts", "hostname", "resolv.conf"];

/// Where [`ETC_FILES`] are in the share.
pub const SHARE_ETC_DIR: &str = "etc";

/// Where the container's root file system is in the share.
pub const ROOTFS_DIR: &str = "rootfs";

/// Where the guest finds `relative` of the share (the agent mounts shares
/// under /run/hull/shares).
pub fn guest_share_path(relative: &std::path::Path) -> String {
    format!("/run/hull/shares/{LAYERS_SHARE_TAG}/{}", relative.display())
}

/// Where the guest finds the container's /etc file `name`.
pub fn guest_etc_file(name: &str) -> String {
    guest_share_path(&std::path::Path::new(SHARE_ETC_DIR).join(name))
}
