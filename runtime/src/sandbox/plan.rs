//! The sandbox plan: what `hull create` decides about a container's
//! microVM (its size, backend, layers, network and volumes), written beside
//! the container's record for the monitor that boots it, with the OCI spec
//! it goes with.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What the monitor needs to build the sandbox, written by `hull create`
/// beside the container's record (`sandbox.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxPlan {
    /// `--vmm`, if given.
    pub vmm: Option<String>,
    /// `--kernel`, if given.
    pub kernel: Option<PathBuf>,
    /// `--initrd`, if given.
    pub initrd: Option<PathBuf>,
    /// vCPUs.
    pub vcpus: u32,
    /// Guest memory.
    pub memory_mib: u32,
    /// The image's layer directories on the host, bottom first.
    pub layer_dirs: Vec<PathBuf>,
    /// A root file system prepared by someone else (containerd's bundle
    /// `rootfs`, its snapshot mounted), shared as it is, writes and all,
    /// instead of `layer_dirs` under a writable layer of Hull's.
    #[serde(default)]
    pub root_dir: Option<PathBuf>,
    /// Seconds the guest may take to boot.
    pub boot_timeout_secs: u64,
    /// `--network`: `bridge`, `none` or a network's name.
    #[serde(default = "default_network")]
    pub network: String,
    /// `-p` as given.
    #[serde(default)]
    pub publish: Vec<String>,
    /// `--ip`, if given.
    #[serde(default)]
    pub ip: Option<std::net::Ipv4Addr>,
    /// `--network-alias`: more names other containers know it by.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `-v`: host paths shared into the container.
    #[serde(default)]
    pub volumes: Vec<crate::volume::BindVolume>,
    /// The sandbox this container joins (a pod's other containers join its
    /// sandbox container's VM) and the namespaces it shares there; `None`:
    /// it boots a sandbox of its own, and the rest of the plan sizes it.
    #[serde(default)]
    pub joins: Option<hull_protocol::JoinNamespaces>,
}

/// The file beside a container's record that holds its [`SandboxPlan`].
const PLAN_FILE: &str = "sandbox.json";

/// The OCI spec `hull create` wrote beside the container's record.
pub fn load_spec(container_dir: &std::path::Path) -> Result<oci_spec::runtime::Spec> {
    let path = container_dir.join("spec.json");
    let data = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&data).with_context(|| format!("parsing {}", path.display()))
}

/// What the agent makes in a container's root file system for its mounts
/// (mount points, /dev's device files), relative to the root: Docker keeps
/// these in an init layer, so `diff` and `commit` leave them out.
pub fn mount_points(container_dir: &std::path::Path) -> Result<std::collections::HashSet<PathBuf>> {
    let spec = load_spec(container_dir)?;
    let mut points: std::collections::HashSet<PathBuf> = spec
        .mounts()
        .iter()
        .flatten()
        .filter_map(|m| {
            m.destination()
                .strip_prefix("/")
                .ok()
                .map(std::path::Path::to_path_buf)
        })
        .collect();
    points.extend(
        hull_protocol::DEFAULT_DEVICES
            .iter()
            .map(|d| PathBuf::from("dev").join(d)),
    );
    Ok(points)
}

impl SandboxPlan {
    /// Reads the plan of the container whose directory is `container_dir`.
    pub fn load(container_dir: &std::path::Path) -> Result<SandboxPlan> {
        let path = container_dir.join(PLAN_FILE);
        let data = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&data).with_context(|| format!("parsing {}", path.display()))
    }

    /// The container's part of its sandbox's share.
    pub fn share(&self, id: &str) -> super::ContainerShare {
        super::ContainerShare::of(id, self.joins.as_ref().map(|j| j.container_id.as_str()))
    }

    /// The container's root file system: its image's layers and its own
    /// writable layer in `container_dir`.
    pub fn rootfs(&self, container_dir: &std::path::Path) -> crate::rootfs::RootfsLayers {
        crate::rootfs::RootfsLayers::new(container_dir, self.layer_dirs.clone())
    }

    /// Writes it atomically into `container_dir`.
    pub fn save(&self, container_dir: &std::path::Path) -> Result<()> {
        let (name, data) = self.file()?;
        crate::container::write_atomic(&container_dir.join(name), &data)?;
        Ok(())
    }

    /// Its file's name and contents, for a container being created.
    pub fn file(&self) -> Result<(&'static str, Vec<u8>)> {
        Ok((PLAN_FILE, serde_json::to_vec_pretty(self)?))
    }
}

fn default_network() -> String {
    crate::network::DEFAULT_NETWORK.to_string()
}
