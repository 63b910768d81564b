//! `hull system`: Hull's state on this host as a whole.

use super::containers::remove_container;
use super::images::open_store;
use crate::config::Paths;
use crate::container::ContainerStore;
use crate::network::{NetworkManager, DEFAULT_NETWORK};
use anyhow::{Context, Result};
use clap::Subcommand;
use std::io::{BufRead, Write};

/// `hull system …`.
#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Reset Hull to its initial state: remove all containers, images and
    /// networks, and everything Hull made in the host's network stack
    /// (bridges, taps, nftables table, ip_forward if Hull turned it on)
    Reset {
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
    },
}

/// Runs a system command.
pub async fn run(paths: &Paths, command: SystemCommand) -> Result<i32> {
    match command {
        SystemCommand::Reset { force } => {
            if !force && !confirm()? {
                return Ok(0);
            }
            reset(paths).await?;
        }
    }
    Ok(0)
}

/// Asks as `podman system reset` does; anything but y/yes declines.
fn confirm() -> Result<bool> {
    eprint!(
        "WARNING! This will remove:\n        - all containers\n        - all networks\n        - all images\n        - the bridges, taps and nftables rules Hull made\nAre you sure you want to continue? [y/N] "
    );
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}

/// Containers first (they hold images, leases and taps), then images,
/// then networks and whatever of Hull's is left in the network stack.
async fn reset(paths: &Paths) -> Result<()> {
    let containers = ContainerStore::open(&paths.root)?;
    for id in containers.ids()? {
        remove_container(paths, &id, true).await.with_context(|| format!("removing container {}", &id[..id.len().min(12)]))?;
    }
    let images = open_store(paths)?;
    for image in images.list()? {
        // Another tag of the same image may have taken it already.
        match images.remove(image.id.hex(), true, |_| None) {
            Ok(_) | Err(crate::image::ImageError::NotFound(_)) => {}
            Err(err) => return Err(err).with_context(|| format!("removing image {}", image.id.short())),
        }
    }
    let network = NetworkManager::new(paths.root.join("network"));
    for definition in network.list_networks()? {
        if definition.name != DEFAULT_NETWORK {
            network.remove_network(&definition.id).await?;
        }
    }
    network.teardown_all().await?;
    Ok(())
}
