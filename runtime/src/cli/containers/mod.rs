//! The everyday container commands, with Docker's flags, columns and
//! output, a file each group: [`ps`] (and `port`), [`logs`], [`lifecycle`]
//! (`start`, `stop`, `restart`, `kill`, `rm`, `wait`, `attach`, `pause`,
//! `unpause`, `rename`), [`inspect`] (and `top`), [`changes`] (`diff`,
//! `commit`, `export`) and [`stats`].

mod changes;
mod inspect;
mod lifecycle;
mod logs;
mod ps;
mod stats;

pub use changes::{apply_change, commit, diff, export, CommitArgs, DiffArgs, ExportArgs};
pub use inspect::{inspect, top, InspectArgs, TopArgs};
pub use lifecycle::{
    attach, kill, pause, rename, restart, rm, start, stop, unpause, wait, AttachArgs, KillArgs,
    PauseArgs, RenameArgs, RmArgs, StartArgs, StopArgs, WaitArgs,
};
pub use logs::{logs, LogsArgs};
pub use ps::{port, ps, PortArgs, PsArgs};
pub use stats::{stats, StatsArgs};

use crate::cli::engine;
use crate::config::Paths;
use crate::container::{ContainerRecord, ContainerStore};
use anyhow::Result;

/// Opens the container store and resolves `reference` to a reconciled record.
pub(super) fn load(paths: &Paths, reference: &str) -> Result<(ContainerStore, ContainerRecord)> {
    Ok(engine(paths).load(reference)?)
}

/// Runs `action` on each named container, printing errors as Docker does
/// and failing at the end if any failed.
async fn for_each<F, Fut>(names: &[String], mut action: F) -> Result<i32>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut failed = false;
    for name in names {
        if let Err(err) = action(name.clone()).await {
            eprintln!("hull: {err:#}");
            failed = true;
        }
    }
    Ok(if failed { 1 } else { 0 })
}
