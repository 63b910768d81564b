//! `hull volume`: Docker's volume commands over Hull's volume store. The
//! engine does the work; this parses the flags and prints as Docker does.

use super::engine;
use super::output::{inspect_text, print_listing, Columns};
use super::system::{print_deleted, print_reclaimed};
use super::template::LABEL_FIELD;
use crate::config::Paths;
use crate::engine::EngineError;
use crate::volume::{Volume, VolumeError, VolumeFilter, LOCAL_DRIVER};
use anyhow::{bail, Result};
use clap::Subcommand;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// `hull volume …`.
#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume
    #[command(override_usage = "hull volume create [OPTIONS] [VOLUME]")]
    Create {
        /// Specify volume driver name
        #[arg(short, long, value_name = "string", default_value = LOCAL_DRIVER)]
        driver: String,
        /// Set metadata for a volume
        #[arg(long, value_name = "list")]
        label: Vec<String>,
        /// Set driver specific options (the local driver of Hull takes none)
        #[arg(short, long, value_name = "map")]
        opt: Vec<String>,
        /// The volume's name (default: a generated one)
        name: Option<String>,
    },
    /// Display detailed information on one or more volumes
    Inspect {
        /// Format the output using the given Go template
        #[arg(short, long, value_name = "string")]
        format: Option<String>,
        /// Volumes
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// List volumes
    #[command(visible_alias = "list")]
    Ls {
        /// Provide filter values (e.g. 'dangling=true')
        #[arg(short, long, value_name = "filter")]
        filter: Vec<String>,
        /// Pretty-print volumes using a Go template
        #[arg(long, value_name = "string")]
        format: Option<String>,
        /// Only display volume names
        #[arg(short, long)]
        quiet: bool,
    },
    /// Remove all unused local volumes
    Prune {
        /// Remove all unused volumes, not just anonymous ones
        #[arg(short, long)]
        all: bool,
        /// Provide filter values (e.g. 'label=<label>')
        #[arg(long, value_name = "filter")]
        filter: Vec<String>,
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
    },
    /// Remove one or more volumes. You cannot remove a volume that is in use by a container.
    #[command(visible_alias = "remove")]
    Rm {
        /// Force the removal of one or more volumes
        #[arg(short, long)]
        force: bool,
        /// Volumes
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// `volume ls`'s fields and Docker's names for their columns.
const COLUMNS: Columns = Columns {
    names: &[
        ("Name", "VOLUME NAME"),
        ("Driver", "DRIVER"),
        ("Scope", "SCOPE"),
        ("Mountpoint", "MOUNTPOINT"),
        ("Labels", "LABELS"),
        ("Links", "LINKS"),
        ("Size", "SIZE"),
    ],
    default: "table {{.Driver}}\\t{{.Name}}",
};

/// Runs a volume command.
pub async fn run(paths: &Paths, command: VolumeCommand) -> Result<i32> {
    let engine = engine(paths);
    match command {
        VolumeCommand::Create {
            driver,
            label,
            opt,
            name,
        } => {
            if driver != LOCAL_DRIVER {
                return Ok(report(&VolumeError::Driver(driver).into()));
            }
            if let Some(option) = opt.first() {
                bail!("invalid option key: {option:?}: Hull's local driver takes no options");
            }
            match engine.create_volume(name.as_deref(), parse_labels(&label)) {
                Ok(volume) => println!("{}", volume.name),
                Err(err) => return Ok(report(&err)),
            }
        }
        VolumeCommand::Inspect { format, names } => {
            let store = engine.volumes()?;
            let mut objects = Vec::new();
            let mut failed = false;
            for name in &names {
                match store.get(name) {
                    Ok(volume) => objects.push(volume.inspect()),
                    Err(err) => {
                        failed = true;
                        report(&err.into());
                    }
                }
            }
            print!("{}", inspect_text(format.as_deref(), &objects)?);
            return Ok(i32::from(failed));
        }
        VolumeCommand::Ls {
            filter,
            format,
            quiet,
        } => {
            let filters = parse_filters(&filter)?;
            let users = engine.volume_users()?;
            let volumes: Vec<Volume> = engine
                .volumes()?
                .list()?
                .into_iter()
                .filter(|v| VolumeFilter::all_match(&filters, v, users.contains_key(&v.name)))
                .collect();
            if quiet {
                volumes.iter().for_each(|v| println!("{}", v.name));
            } else {
                let rows: Vec<Value> = volumes.iter().map(ls_row).collect();
                print_listing(format.as_deref(), &COLUMNS, &rows)?;
            }
        }
        VolumeCommand::Prune { all, filter, force } => {
            let filters = parse_filters(&filter)?;
            let warning = if all {
                "WARNING! This will remove all local volumes not used by at least one container.\n"
            } else {
                "WARNING! This will remove anonymous local volumes not used by at least one container.\n"
            };
            if !force && !super::system::confirm(warning)? {
                return Ok(0);
            }
            prune(paths, &filters, all)?;
        }
        VolumeCommand::Rm { force, names } => {
            let mut failed = false;
            for name in names {
                match engine.remove_volume(&name, force) {
                    Ok(()) => println!("{name}"),
                    Err(err) => {
                        failed = true;
                        report(&err);
                    }
                }
            }
            return Ok(i32::from(failed));
        }
    }
    Ok(0)
}

/// Removes the volumes no container uses (anonymous ones unless `all`) and
/// prints them, with the space they held, as `docker volume prune` does.
pub fn prune(paths: &Paths, filters: &[VolumeFilter], all: bool) -> Result<()> {
    let (deleted, reclaimed) = engine(paths).prune_volumes(filters, all)?;
    print_deleted("Volumes", &deleted);
    print_reclaimed(reclaimed);
    Ok(())
}

/// A volume as `volume ls --format` sees it.
fn ls_row(volume: &Volume) -> Value {
    json!({
        "Name": volume.name,
        "Driver": volume.driver,
        "Scope": "local",
        "Mountpoint": volume.mountpoint,
        "Labels": volume.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
        LABEL_FIELD: volume.labels,
        "Links": "N/A",
        "Size": "N/A",
    })
}

/// `--label KEY=VALUE` (or `KEY`, with an empty value).
fn parse_labels(labels: &[String]) -> BTreeMap<String, String> {
    labels
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (l.clone(), String::new()),
        })
        .collect()
}

fn parse_filters(filters: &[String]) -> Result<Vec<VolumeFilter>> {
    Ok(filters
        .iter()
        .map(|f| VolumeFilter::parse(f))
        .collect::<Result<Vec<_>, _>>()?)
}

/// Prints a failure as Docker's CLI prints it (`Error: No such volume: x`,
/// `Error response from daemon: remove x: volume is in use - [...]`);
/// returns the exit code, 1.
fn report(err: &EngineError) -> i32 {
    match err {
        EngineError::Volume(VolumeError::NotFound(_)) => eprintln!("Error: {err}"),
        EngineError::Volume(_) => eprintln!("Error response from daemon: {err}"),
        other => eprintln!("hull: {other:#}"),
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_key_value_pairs() {
        let labels = parse_labels(&["a=1".into(), "b".into(), "c=x=y".into()]);
        assert_eq!(labels["a"], "1");
        assert_eq!(labels["b"], "");
        assert_eq!(labels["c"], "x=y");
    }

    #[test]
    fn rows_have_dockers_fields() {
        let volume = Volume {
            name: "data".into(),
            driver: "local".into(),
            created_at: String::new(),
            labels: parse_labels(&["a=1".into(), "b=2".into()]),
            options: BTreeMap::new(),
            mountpoint: "/var/lib/hull/volumes/data/_data".into(),
        };
        let row = ls_row(&volume);
        assert_eq!(row["Labels"], "a=1,b=2");
        assert_eq!(row["Driver"], "local");
        for (field, _) in COLUMNS.names {
            assert!(row.get(field).is_some(), "{field}");
        }
    }
}
