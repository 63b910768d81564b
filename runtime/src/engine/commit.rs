//! Committing a container: its writable layer (overlayfs' whiteouts turned
//! into OCI ones) recorded as a new image on top of its image. `hull commit`
//! and `hull build`'s RUN steps both come here.

use super::{Engine, EngineError, FrozenVm, Result};
use crate::container::Status;
use crate::copy::{archive_tree, TreeKind};
use crate::image::{CommitOptions, Digest};
use crate::monitor_link::client;
use crate::monitor_link::proto::MonitorRequest;
use crate::sandbox::{mount_points, SandboxPlan};
use anyhow::Context;
use std::time::Duration;

/// What a commit asks for besides the container.
#[derive(Debug, Clone, Default)]
pub struct CommitRequest {
    /// The image config, history entry and author to record.
    pub options: CommitOptions,
    /// Pause a running container while its layer is read.
    pub pause: bool,
    /// The new image's name, if any.
    pub reference: Option<String>,
}

impl Engine {
    /// Makes a new image of the container `reference`'s changes on top of
    /// its image; returns the new image's id.
    pub async fn commit(&self, reference: &str, request: &CommitRequest) -> Result<Digest> {
        let (store, record) = self.load(reference)?;
        if let Some(name) = &request.reference {
            crate::image::Reference::parse(name)?;
        }
        let images = self.images()?;
        let base = images.resolve(&record.image)?;
        let dir = store.dir_of(&record.id);
        let rootfs = SandboxPlan::load(&dir)?.rootfs(&dir);
        sweep_dead_commits(images.root());
        let layer = images.root().join(format!(
            ".tmp-commit-{}-{}.tar",
            std::process::id(),
            &record.id[..12]
        ));
        // A paused VM cannot change the layer while it is read (nor swap a
        // file for a symlink under the reader): the VMM process is stopped.
        if record.state.status == Status::Running {
            // What the guest still holds in memory (shared mappings) goes to
            // the layer first; a guest that does not answer does not stop the commit.
            if let Ok(monitor) = client::connect(&self.paths, &record.id).await {
                if let Err(err) = tokio::time::timeout(
                    Duration::from_secs(10),
                    monitor.request(MonitorRequest::Sync),
                )
                .await
                {
                    tracing::warn!("the guest did not sync its file systems: {err}");
                }
            }
        }
        let paused = if request.pause {
            FrozenVm::freeze(&store, &record)
        } else {
            None
        };
        crate::fault::point("commit.paused");
        let written = (|| -> anyhow::Result<()> {
            let file = std::fs::File::create(&layer)
                .with_context(|| format!("creating {}", layer.display()))?;
            let hidden = rootfs.hidden_entries(&mount_points(&dir)?)?;
            archive_tree(
                rootfs.upper(),
                TreeKind::Upper,
                hidden,
                std::io::BufWriter::new(file),
            )?;
            Ok(())
        })();
        drop(paused);
        let committed = written.map_err(EngineError::Other).and_then(|()| {
            Ok(images.commit(
                Some(&base),
                Some(&layer),
                &request.options,
                request.reference.as_deref(),
            )?)
        });
        let _ = std::fs::remove_file(&layer);
        committed
    }
}

/// Deletes the layers of commits whose `hull` died while writing them
/// (`.tmp-commit-<pid>-…`, the pid no longer running).
fn sweep_dead_commits(dir: &std::path::Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix(".tmp-commit-")
            .and_then(|rest| rest.split('-').next()?.parse::<i64>().ok());
        if pid.is_some_and(|pid| !crate::process::process_alive(pid)) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
