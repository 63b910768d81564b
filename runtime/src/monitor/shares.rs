//! What of a container the sandbox's virtio-fs share holds: its root file
//! system, its /etc files and its volumes, at its part of the share.

use crate::container::ContainerStore;
use crate::lockfile::LockFile;
use crate::sandbox::{SandboxPlan, ETC_FILES};
use crate::virtiofsd::{ShareEntry, ShareSource};
use anyhow::{Context, Result};

/// A container's entries in the share, and the lock on its writable layer
/// (held until the share lets go of it: nothing else mounts the layer
/// meanwhile).
pub(super) struct ContainerShares {
    pub(super) entries: Vec<ShareEntry>,
    pub(super) _writable_layer: Option<LockFile>,
}

impl ContainerShares {
    /// The entries of container `id`, whose plan is `plan`.
    pub(super) async fn of(
        store: &ContainerStore,
        id: &str,
        plan: &SandboxPlan,
    ) -> Result<ContainerShares> {
        let layout = plan.share(id);
        let rootfs = plan.rootfs(&store.dir_of(id));
        let (root, writable_layer) = match &plan.root_dir {
            Some(dir) => (
                ShareSource::Bind {
                    path: dir.clone(),
                    readonly: false,
                },
                None,
            ),
            None => {
                let lock = {
                    let rootfs = rootfs.clone();
                    // (flock blocks: while a `cp` into the stopped container finishes.)
                    tokio::task::spawn_blocking(move || rootfs.lock_writable())
                        .await
                        .context("locking the writable layer")??
                };
                (ShareSource::Overlay(rootfs.writable_mount()?), Some(lock))
            }
        };
        let mut entries = vec![ShareEntry {
            target: layout.rootfs(),
            source: root,
        }];
        // A container that joins another's sandbox is on its network: its
        // /etc files are that container's (as Docker's `--network container:`).
        let etc_owner = plan.joins.as_ref().map_or(id, |j| j.container_id.as_str());
        for name in ETC_FILES {
            entries.push(ShareEntry {
                target: layout.etc_file(name),
                source: ShareSource::Bind {
                    path: store.dir_of(etc_owner).join(name),
                    readonly: true,
                },
            });
        }
        for (index, volume) in plan.volumes.iter().enumerate() {
            volume.ensure_source()?;
            entries.push(ShareEntry {
                target: layout.volume(index),
                source: ShareSource::Bind {
                    path: volume.source.clone(),
                    readonly: volume.readonly,
                },
            });
        }
        Ok(ContainerShares {
            entries,
            _writable_layer: writable_layer,
        })
    }
}
