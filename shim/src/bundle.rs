//! A task's bundle as containerd hands it over: its rootfs mounts (the
//! snapshot), mounted on `bundle/rootfs` for the VM's share, and the pod
//! whose VM it joins.

use crate::error::internal;
use containerd_shim::protos::types::mount::Mount;
use containerd_shim::TtrpcResult;
use std::path::Path;

/// The annotation CRI gives every container of a pod: the pod's sandbox id.
pub const SANDBOX_ID_ANNOTATION: &str = "io.kubernetes.cri.sandbox-id";

/// The annotation CRI gives a container with its role in the pod.
const CONTAINER_TYPE_ANNOTATION: &str = "io.kubernetes.cri.container-type";

/// The task id of the pod's sandbox container, for a pod's other
/// containers (CRI's `container-type: container`), which join its VM: the
/// pod's network (CNI's namespace, attached to the VM), and the IPC, UTS
/// and pid namespaces their spec names, are the sandbox's there.
pub fn pod_sandbox(spec: &oci_spec::runtime::Spec) -> Option<String> {
    let annotations = spec.annotations().as_ref()?;
    if annotations.get(CONTAINER_TYPE_ANNOTATION)? != "container" {
        return None;
    }
    annotations.get(SANDBOX_ID_ANNOTATION).cloned()
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
