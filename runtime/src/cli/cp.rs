//! `hull cp`: Docker's `docker cp` in both directions, for running and
//! stopped containers alike.
//!
//! Reading always goes through a read-only view of the container's file
//! system (a consistent overlay that never touches the running one's
//! upper directory). Writing goes through the read-write overlay: for a
//! stopped container one mounted for the copy alone, for a running one the
//! overlay virtiofsd serves the guest (`--cache=auto` lets the guest see
//! the new files at once). The copying itself is [`crate::copy`]'s.

use super::containers::load;
use crate::config::Paths;
use crate::container::monitor_alive;
use crate::copy::{self, CopyError, CopyOptions, Tree};
use crate::sandbox::SandboxPlan;
use anyhow::{bail, Context, Result};
use std::io::IsTerminal;

/// `hull cp`.
#[derive(Debug, clap::Args)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short, long)]
    archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long)]
    follow_link: bool,
    /// Suppress progress output during copy. Progress output is automatically suppressed if no terminal is attached
    #[arg(short, long)]
    quiet: bool,
    /// CONTAINER:SRC_PATH, a local SRC_PATH, or - (a tar archive on stdin)
    #[arg(value_name = "SRC")]
    source: String,
    /// CONTAINER:DEST_PATH, a local DEST_PATH, or - (a tar archive on stdout)
    #[arg(value_name = "DEST")]
    destination: String,
}

/// Splits a `cp` argument as Docker does: `CONTAINER:PATH`, unless it is an
/// absolute local path, or a relative one made explicit by a leading `.`
/// (`./file:name`), or has no `:` at all.
fn split_cp_arg(arg: &str) -> (Option<&str>, &str) {
    if arg.starts_with('/') {
        return (None, arg);
    }
    match arg.split_once(':') {
        Some((container, path)) if !container.starts_with('.') => (Some(container), path),
        _ => (None, arg),
    }
}

/// Copies between a container and the host.
pub async fn cp(paths: &Paths, args: CpArgs) -> Result<i32> {
    if args.source.is_empty() {
        bail!("source can not be empty");
    }
    if args.destination.is_empty() {
        bail!("destination can not be empty");
    }
    let options = CopyOptions {
        archive: args.archive,
        follow_link: args.follow_link,
    };
    let (source_container, source_path) = split_cp_arg(&args.source);
    let (dest_container, dest_path) = split_cp_arg(&args.destination);
    // Docker's progress line: on a terminal only, and not with -q.
    let report = !args.quiet && std::io::stderr().is_terminal();
    let (source_path, dest_path) = (source_path.to_string(), dest_path.to_string());
    let paths = paths.clone();
    let copied = match (source_container, dest_container) {
        (Some(_), Some(_)) => bail!("copying between containers is not supported"),
        (None, None) => bail!("must specify at least one container source"),
        (Some(name), None) => {
            let name = name.to_string();
            tokio::task::spawn_blocking(move || {
                copy_out(&paths, &name, &source_path, &dest_path, options)
            })
            .await
            .context("copying")??
        }
        (None, Some(name)) => {
            let name = name.to_string();
            tokio::task::spawn_blocking(move || {
                copy_in(&paths, &name, &source_path, &dest_path, options)
            })
            .await
            .context("copying")??
        }
    };
    if report && args.source != "-" && args.destination != "-" {
        eprintln!(
            "Successfully copied {} to {}",
            super::format::human_size(copied),
            args.destination
        );
    }
    Ok(0)
}

/// Container to host (or to a tar archive on stdout), through a view.
fn copy_out(
    paths: &Paths,
    name: &str,
    source: &str,
    dest: &str,
    options: CopyOptions,
) -> Result<u64> {
    let (store, record) = load(paths, name)?;
    let container_dir = store.dir_of(&record.id);
    let rootfs = SandboxPlan::load(&container_dir)?.rootfs(&container_dir);
    let (name, source, dest) = (name.to_string(), source.to_string(), dest.to_string());
    let copied =
        rootfs.with_view(&paths.views_dir(), move |point| -> Result<u64, CopyError> {
            let container = Tree::container_at(point, &name)?;
            if dest == "-" {
                let stdout = std::io::stdout().lock();
                copy::archive_to(
                    &container,
                    &source,
                    options,
                    std::io::BufWriter::new(stdout),
                )
            } else {
                copy::copy(&container, &source, &Tree::host(), &dest, options)
            }
        })??;
    Ok(copied)
}

/// Host (or a tar archive on stdin) to container: a stopped one through
/// its writable overlay mounted for the copy, a running one through
/// virtiofsd's.
fn copy_in(
    paths: &Paths,
    name: &str,
    source: &str,
    dest: &str,
    options: CopyOptions,
) -> Result<u64> {
    let (store, record) = load(paths, name)?;
    // A container that has just exited: its monitor lets go of the layer first.
    let record =
        crate::container::settled_record(&store, &record.id, std::time::Duration::from_secs(5))?;
    let (name, source, dest) = (name.to_string(), source.to_string(), dest.to_string());
    let write = move |container: Tree| -> Result<u64, CopyError> {
        if source == "-" {
            copy::extract_into(std::io::stdin().lock(), &container, &dest, options).map(|()| 0)
        } else {
            copy::copy(&Tree::host(), &source, &container, &dest, options)
        }
    };
    if monitor_alive(record.hull_sandbox.monitor_pid) {
        if record.hull_sandbox.virtiofsd_pid <= 0 {
            bail!("container {name} is starting or stopping; try again");
        }
        let container = copy::running_rootfs(record.hull_sandbox.virtiofsd_pid, &name)?;
        tracing::debug!(container = %record.id, "copying into the running container");
        return Ok(write(container)?);
    }
    let container_dir = store.dir_of(&record.id);
    let rootfs = SandboxPlan::load(&container_dir)?.rootfs(&container_dir);
    // A start meanwhile waits for the copy: its monitor takes the writable
    // layer's lock first. The other way round, the copy is refused.
    let label = name.clone();
    let copied = match rootfs.with_writable(&paths.views_dir(), move |point| {
        Tree::container_at(point, &label).and_then(write)
    }) {
        Err(crate::rootfs::RootfsError::InUse) => bail!("container {name} is starting; try again"),
        other => other??,
    };
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_split_as_dockers() {
        assert_eq!(split_cp_arg("box:/etc/hosts"), (Some("box"), "/etc/hosts"));
        assert_eq!(split_cp_arg("box:etc"), (Some("box"), "etc"));
        assert_eq!(split_cp_arg("box:"), (Some("box"), ""));
        assert_eq!(split_cp_arg("/tmp/a:b"), (None, "/tmp/a:b"));
        assert_eq!(split_cp_arg("./a:b"), (None, "./a:b"));
        assert_eq!(split_cp_arg("file.txt"), (None, "file.txt"));
        assert_eq!(split_cp_arg("-"), (None, "-"));
    }
}
