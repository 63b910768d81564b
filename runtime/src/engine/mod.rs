//! The engine: the domain work every front end shares. The `hull` CLI, the
//! monitor and the containerd shim parse their input, call the engine, and
//! print or map what it answers; creating a container from an image and
//! options, starting, stopping, killing, pausing and removing it, and
//! plugging its sandbox into a network happen here, once.
//!
//! One file per lifecycle verb (as youki's libcontainer): [`create`]
//! (from an image and Docker's options, or from a bundle: [`bundle`]),
//! [`start`], [`stop`], [`kill`], [`pause`], [`update`], [`remove`], [`commit`]; [`mounts`]
//! are a new container's volumes and tmpfs mounts, [`volumes`] the volume
//! commands' work; [`network`] is a
//! sandbox's network, which the monitor attaches and [`remove`] lets go of
//! for a sandbox whose monitor died.

mod bundle;
mod commit;
mod create;
mod error;
mod extras;
mod kill;
mod mounts;
pub mod network;
mod options;
mod pause;
mod remove;
mod start;
mod stats;
mod stop;
mod update;
mod volumes;

pub use bundle::{spec_namespace, BundleOptions};
pub use commit::CommitRequest;
pub use create::GUEST_OVERHEAD_MIB;
pub use error::EngineError;
pub use options::{ContainerOptions, EtcOptions, NamespaceModes, ProcessOptions, SecurityOptions};
pub use pause::FrozenVm;
pub use start::wait_for_monitor;

use crate::config::Paths;
use crate::container::{reconcile, ContainerRecord, ContainerStore, Status};
use crate::image::ImageStore;

/// The result of an engine operation.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Hull's containers on this host, under one state root.
#[derive(Debug, Clone)]
pub struct Engine {
    paths: Paths,
}

impl Engine {
    /// The engine over the state in `paths`.
    pub fn new(paths: Paths) -> Engine {
        Engine { paths }
    }

    /// Where its state lives.
    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// The container store.
    pub fn containers(&self) -> Result<ContainerStore> {
        Ok(ContainerStore::open(&self.paths.root)?)
    }

    /// The image store.
    pub fn images(&self) -> Result<ImageStore> {
        Ok(ImageStore::open(&self.paths.image_root())?)
    }

    /// Resolves `reference` (a name, an id or an id prefix) to its record,
    /// checked against reality first (see [`reconcile`]).
    pub fn load(&self, reference: &str) -> Result<(ContainerStore, ContainerRecord)> {
        let store = self.containers()?;
        let id = store.resolve(reference)?;
        let mut record = store.load(&id)?;
        reconcile(&store, &mut record);
        Ok((store, record))
    }
}

/// Whether a container's sandbox is up (its VM runs, or is paused, or is
/// being restarted).
fn is_live(record: &ContainerRecord) -> bool {
    matches!(
        record.state.status,
        Status::Running | Status::Restarting | Status::Paused
    )
}
