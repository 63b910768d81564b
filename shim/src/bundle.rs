//! A task's bundle as containerd hands it over: its rootfs mounts (the
//! snapshot), mounted on `bundle/rootfs` for the VM's share, and the pod
//! rules its spec needs before Hull's engine takes it.

use crate::error::internal;
use containerd_shim::protos::types::mount::Mount;
use containerd_shim::TtrpcResult;
use std::path::Path;

/// The annotation CRI gives a container with its role in the pod.
const CONTAINER_TYPE_ANNOTATION: &str = "io.kubernetes.cri.container-type";

/// A pod's network is its sandbox container's: CRI names the pod's network
/// namespace for it, and `/proc/<sandbox task pid>/ns/net` for the pod's
/// other containers, which here is the host side of the sandbox (its
/// monitor). Until a pod's containers share one VM, the others run without
/// a network (loopback only) rather than take the sandbox's.
pub fn leave_pod_network_to_sandbox(spec: &mut oci_spec::runtime::Spec) {
    let app_container = spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(CONTAINER_TYPE_ANNOTATION))
        .is_some_and(|kind| kind == "container");
    if !app_container {
        return;
    }
    if let Some(namespaces) = spec
        .linux_mut()
        .as_mut()
        .and_then(|l| l.namespaces_mut().as_mut())
    {
        for namespace in namespaces.iter_mut() {
            if namespace.typ() == oci_spec::runtime::LinuxNamespaceType::Network {
                namespace.set_path(None);
            }
        }
    }
}

/// Mounts the rootfs mounts containerd passed on `bundle/rootfs`.
pub async fn mount_rootfs(bundle: &Path, mounts: &[Mount]) -> TtrpcResult<bool> {
    if mounts.is_empty() {
        return Ok(false);
    }
    let target = bundle.join("rootfs");
    tokio::fs::create_dir_all(&target).await.map_err(internal)?;
    for mount in mounts {
        containerd_shim::util::mount_rootfs(mount, &target)
            .await
            .map_err(|err| internal(format!("mounting the rootfs: {err}")))?;
    }
    Ok(true)
}

/// Unmounts `bundle/rootfs` (all that is stacked there).
pub fn unmount_rootfs(bundle: &Path) {
    let target = bundle.join("rootfs");
    for _ in 0..8 {
        if nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH).is_err() {
            break;
        }
    }
}
