//! `hull system`: Hull's state on this host as a whole.

use super::engine;
use super::images::open_store;
use crate::config::Paths;
use crate::container::{ContainerStore, Status};
use crate::network::{NetworkManager, DEFAULT_NETWORK};
use anyhow::{Context, Result};
use clap::Subcommand;
use std::io::{BufRead, Write};

/// `hull system …`.
#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Show Hull disk usage
    Df,
    /// Display system-wide information
    Info(super::info::InfoArgs),
    /// Remove stopped containers, unused networks and dangling images (with -a, all unused images; with --volumes, unused volumes)
    Prune {
        /// Remove all unused images, not just dangling ones
        #[arg(short, long)]
        all: bool,
        /// Prune volumes
        #[arg(long)]
        volumes: bool,
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
    },
    /// Reset Hull to its initial state: remove all containers, images,
    /// volumes and networks, and everything Hull made in the host's network stack
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
        SystemCommand::Df => disk_usage(paths)?,
        SystemCommand::Info(args) => super::info::info(paths, args)?,
        SystemCommand::Prune {
            all,
            volumes,
            force,
        } => {
            let images = if all {
                "all images without at least one container associated to them"
            } else {
                "all dangling images"
            };
            let volume_line = if volumes {
                "  - all anonymous volumes not used by at least one container\n"
            } else {
                ""
            };
            let warning = format!("WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n{volume_line}  - {images}\n");
            if !force && !confirm(&warning)? {
                return Ok(0);
            }
            let mut reclaimed = prune_containers(paths).await?;
            prune_networks(paths).await?;
            if volumes {
                let (deleted, bytes) = engine(paths).prune_volumes(&[], false)?;
                print_deleted("Volumes", &deleted);
                reclaimed += bytes;
            }
            reclaimed += prune_images(paths, all)?;
            print_reclaimed(reclaimed);
        }
        SystemCommand::Reset { force } => {
            let warning = "WARNING! This will remove:\n        - all containers\n        - all networks\n        - all volumes\n        - all images\n        - the bridges, taps and nftables rules Hull made\n";
            if !force && !confirm(warning)? {
                return Ok(0);
            }
            reset(paths).await?;
        }
    }
    Ok(0)
}

/// `hull system df`: Docker's table of images, containers, volumes and
/// build cache, with what removing the unused ones would give back.
fn disk_usage(paths: &Paths) -> Result<()> {
    use super::format::human_size;
    use super::tabwriter::print_table;
    let containers = ContainerStore::open(&paths.root)?;
    let records = containers.list()?;
    let images = open_store(paths)?.list()?;
    let used: std::collections::HashSet<String> = records.iter().map(|r| r.image.clone()).collect();
    let image_size: u64 = images.iter().map(|i| i.size).sum();
    let unused: u64 = images
        .iter()
        .filter(|i| !used.contains(&i.id.to_string()))
        .map(|i| i.size)
        .sum();
    let active_images = images
        .iter()
        .filter(|i| used.contains(&i.id.to_string()))
        .count();
    // A container's size is what it wrote: its writable layer.
    let mut container_size = 0;
    let mut stopped_size = 0;
    for record in &records {
        let size = written_bytes(&containers.dir_of(&record.id).join("rw/upper"));
        container_size += size;
        if !record.state.running {
            stopped_size += size;
        }
    }
    let running = records.iter().filter(|r| r.state.running).count();
    let percent = |part: u64, whole: u64| (part * 100).checked_div(whole).unwrap_or(0);
    let rows = vec![
        vec![
            "Images".to_string(),
            images.len().to_string(),
            active_images.to_string(),
            human_size(image_size),
            format!("{} ({}%)", human_size(unused), percent(unused, image_size)),
        ],
        vec![
            "Containers".to_string(),
            records.len().to_string(),
            running.to_string(),
            human_size(container_size),
            format!(
                "{} ({}%)",
                human_size(stopped_size),
                percent(stopped_size, container_size)
            ),
        ],
        volume_usage(paths)?,
        vec![
            "Build Cache".into(),
            "0".into(),
            "0".into(),
            "0B".into(),
            "0B".into(),
        ],
    ];
    print_table(&["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], &rows);
    Ok(())
}

/// The `Local Volumes` row: how many, how many a container mounts, their
/// size, and what the unused ones hold.
fn volume_usage(paths: &Paths) -> Result<Vec<String>> {
    use super::format::human_size;
    let engine = engine(paths);
    let store = engine.volumes()?;
    let users = engine.volume_users()?;
    let volumes = store.list()?;
    let (mut size, mut unused, mut active) = (0u64, 0u64, 0);
    for volume in &volumes {
        let bytes = store.size(&volume.name);
        size += bytes;
        if users.contains_key(&volume.name) {
            active += 1;
        } else {
            unused += bytes;
        }
    }
    let percent = (unused * 100).checked_div(size).unwrap_or(0);
    Ok(vec![
        "Local Volumes".into(),
        volumes.len().to_string(),
        active.to_string(),
        human_size(size),
        format!("{} ({percent}%)", human_size(unused)),
    ])
}

/// The bytes of the regular files a container wrote (its writable layer,
/// walked by descriptors: a running guest may be changing it).
pub(super) fn written_bytes(upper: &std::path::Path) -> u64 {
    let mut total = 0u64;
    let walked = crate::copy::walk(upper, &mut |entry| {
        if entry.stat.st_mode & libc::S_IFMT == libc::S_IFREG {
            total += u64::try_from(entry.stat.st_size).unwrap_or(0);
        }
    });
    if let Err(err) = walked {
        tracing::debug!("sizing {}: {err}", upper.display());
    }
    total
}

/// Asks as Docker does; anything but y/yes declines.
pub(super) fn confirm(warning: &str) -> Result<bool> {
    eprint!("{warning}Are you sure you want to continue? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// Containers first (they hold images, leases and taps), then images,
/// then networks and whatever of Hull's is left in the network stack.
async fn reset(paths: &Paths) -> Result<()> {
    let containers = ContainerStore::open(&paths.root)?;
    for id in containers.ids()? {
        engine(paths)
            .remove(&id, true)
            .await
            .with_context(|| format!("removing container {}", &id[..id.len().min(12)]))?;
    }
    // No container is left to use any.
    remove_unused_images(paths, true)?;
    engine(paths).prune_volumes(&[], true)?;
    let network = NetworkManager::new(paths.root.join("network"));
    for definition in network.list_networks()? {
        if definition.name != DEFAULT_NETWORK {
            network.remove_network(&definition.id).await?;
        }
    }
    network.teardown_all().await?;
    Ok(())
}

/// `hull container prune`: removes stopped containers (exited, created,
/// dead), as Docker lists them; returns the bytes their writable layers held.
pub async fn prune_containers(paths: &Paths) -> Result<u64> {
    let containers = ContainerStore::open(&paths.root)?;
    let mut deleted = Vec::new();
    let mut reclaimed = 0;
    for mut record in containers.list()? {
        crate::container::reconcile(&containers, &mut record);
        if !matches!(
            record.state.status,
            Status::Exited | Status::Created | Status::Dead
        ) || crate::container::monitor_alive(record.hull_sandbox.monitor_pid)
        {
            continue;
        }
        let written = written_bytes(&containers.dir_of(&record.id).join("rw/upper"));
        engine(paths).remove(&record.id, false).await?;
        reclaimed += written;
        deleted.push(record.id);
    }
    print_deleted("Containers", &deleted);
    Ok(reclaimed)
}

/// `hull image prune [-a]`: removes images no container uses: untagged
/// ones, or with `all` every one; returns the bytes the store gave back.
pub fn prune_images(paths: &Paths, all: bool) -> Result<u64> {
    let before = written_bytes(&paths.image_root());
    let deleted = remove_unused_images(paths, all)?;
    print_deleted("Images", &deleted);
    Ok(before.saturating_sub(written_bytes(&paths.image_root())))
}

/// Removes the images no container uses (untagged ones, or with `all`
/// every one); returns what `rmi` would print of them.
fn remove_unused_images(paths: &Paths, all: bool) -> Result<Vec<String>> {
    let images = open_store(paths)?;
    let used: std::collections::HashSet<String> = ContainerStore::open(&paths.root)?
        .list()?
        .into_iter()
        .map(|c| c.image)
        .collect();
    let mut deleted = Vec::new();
    for image in images.list()? {
        // A build step's image is cache, not dangling (as Docker's).
        let dangling = image.is_untagged() && !image.intermediate;
        if (!all && !dangling) || used.contains(&image.id.to_string()) {
            continue;
        }
        match images.remove(image.id.hex(), true, |_| None) {
            Ok(lines) => deleted.extend(lines),
            // Another name of the same image took it already.
            Err(crate::image::ImageError::NotFound(_)) => {}
            Err(err) => {
                return Err(err).with_context(|| format!("removing image {}", image.id.short()))
            }
        }
    }
    Ok(deleted)
}

/// User networks no container is on.
async fn prune_networks(paths: &Paths) -> Result<()> {
    let network = NetworkManager::new(paths.root.join("network"));
    let mut deleted = Vec::new();
    for definition in network.list_networks()? {
        if definition.name == DEFAULT_NETWORK
            || !network
                .inspect_network(&definition.id)?
                .endpoints
                .is_empty()
        {
            continue;
        }
        network.remove_network(&definition.id).await?;
        deleted.push(definition.name);
    }
    print_deleted("Networks", &deleted);
    Ok(())
}

/// `hull container prune`.
pub async fn prune_containers_command(paths: &Paths, force: bool) -> Result<i32> {
    if force || confirm("WARNING! This will remove all stopped containers.\n")? {
        print_reclaimed(prune_containers(paths).await?);
    }
    Ok(0)
}

/// `hull image prune`.
pub fn prune_images_command(paths: &Paths, all: bool, force: bool) -> Result<i32> {
    let warning = if all {
        "WARNING! This will remove all images without at least one container associated to them.\n"
    } else {
        "WARNING! This will remove all dangling images.\n"
    };
    if force || confirm(warning)? {
        print_reclaimed(prune_images(paths, all)?);
    }
    Ok(0)
}

/// The last line of Docker's container, image, volume and system prunes.
pub(super) fn print_reclaimed(bytes: u64) {
    println!(
        "Total reclaimed space: {}",
        super::format::human_size(bytes)
    );
}

/// Docker's listing of what a prune removed; nothing when nothing was.
pub(super) fn print_deleted(what: &str, deleted: &[String]) {
    if !deleted.is_empty() {
        println!("Deleted {what}:\n{}\n", deleted.join("\n"));
    }
}
