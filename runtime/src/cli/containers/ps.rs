//! `hull ps` and `hull port`: the containers, their status and
//! ports, with Docker's filters, columns and formats.

use super::load;
use crate::cli::format::{ago, human_duration, human_size};
use crate::cli::images::open_store;
use crate::cli::output::{print_listing, Columns};
use crate::cli::system::written_bytes;
use crate::cli::template::LABEL_FIELD;
use crate::config::Paths;
use crate::container::reconcile;
use crate::container::{ContainerRecord, ContainerStore, Status};
use crate::timefmt;
use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value};
use std::time::SystemTime;

/// `hull ps`.
#[derive(Debug, clap::Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    all: bool,
    /// Only display container IDs
    #[arg(short, long)]
    quiet: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Format output using a Go template (`table` prefix keeps the header)
    #[arg(long, value_name = "string")]
    format: Option<String>,
    /// Filter output based on conditions provided (id=, name=, status=, ancestor=, exited=, label=)
    #[arg(short, long, value_name = "filter")]
    filter: Vec<String>,
    /// Show the latest created container (includes all states)
    #[arg(short, long)]
    latest: bool,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long, value_name = "int")]
    last: Option<usize>,
    /// Display total file sizes
    #[arg(short, long)]
    size: bool,
}

/// One `ps --filter KEY=VALUE`. Filters with the same key are alternatives
/// (any may match); different keys must all match, as in Docker.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PsFilter {
    key: String,
    value: String,
}

impl PsFilter {
    fn parse(text: &str) -> Result<Self> {
        let (key, value) = text
            .split_once('=')
            .ok_or_else(|| anyhow!("bad format of filter (expected name=value)"))?;
        if !["id", "name", "status", "ancestor", "exited", "label"].contains(&key) {
            bail!("invalid filter '{key}'");
        }
        if key == "status"
            && ![
                "created",
                "restarting",
                "running",
                "removing",
                "paused",
                "exited",
                "dead",
            ]
            .contains(&value)
        {
            bail!("invalid filter 'status={value}'");
        }
        Ok(Self {
            key: key.to_string(),
            value: value.to_string(),
        })
    }

    fn matches(&self, record: &ContainerRecord) -> bool {
        let value = self.value.as_str();
        match self.key.as_str() {
            "id" => record.id.starts_with(value),
            // Docker matches names as a substring (a regular expression, in fact).
            "name" => record.short_name().contains(value.trim_start_matches('/')),
            "status" => record.state.status.as_str() == value,
            "ancestor" => {
                record.config.image == value
                    || record.image == value
                    || record
                        .image
                        .trim_start_matches("sha256:")
                        .starts_with(value)
            }
            "exited" => {
                record.state.status == Status::Exited && record.state.exit_code.to_string() == value
            }
            "label" => match value.split_once('=') {
                Some((k, v)) => record.config.labels.get(k).is_some_and(|l| l == v),
                None => record.config.labels.contains_key(value),
            },
            _ => false,
        }
    }
}

/// Whether `record` passes every filter key.
fn passes(filters: &[PsFilter], record: &ContainerRecord) -> bool {
    crate::filters::all_keys_match(filters, |f| &f.key, |f| f.matches(record))
}

/// The STATUS column: `Up 3 seconds`, `Exited (0) 2 minutes ago`, `Created`.
fn status_text(record: &ContainerRecord) -> String {
    let since = |at: &str| {
        timefmt::parse(at).map(|t| SystemTime::now().duration_since(t).unwrap_or_default())
    };
    match record.state.status {
        Status::Running => format!(
            "Up {}",
            since(&record.state.started_at)
                .map(human_duration)
                .unwrap_or_default()
        ),
        Status::Paused => format!(
            "Up {} (Paused)",
            since(&record.state.started_at)
                .map(human_duration)
                .unwrap_or_default()
        ),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            record.state.exit_code,
            since(&record.state.finished_at)
                .map(human_duration)
                .unwrap_or_default()
        ),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            record.state.exit_code,
            since(&record.state.finished_at)
                .map(human_duration)
                .unwrap_or_default()
        ),
        Status::Created => "Created".into(),
        Status::Removing => "Removal In Progress".into(),
        Status::Dead => "Dead".into(),
    }
}

/// The COMMAND column: the command line, quoted, truncated as Docker does.
fn command_text(record: &ContainerRecord, no_trunc: bool) -> String {
    let mut command = std::iter::once(record.path.as_str())
        .chain(record.args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    if !no_trunc && command.chars().count() > 20 {
        command = command.chars().take(19).collect::<String>() + "…";
    }
    format!("\"{command}\"")
}

/// `ps`'s fields and Docker's names of their columns.
const PS_COLUMNS: Columns = Columns {
    names: &[
        ("ID", "CONTAINER ID"),
        ("Image", "IMAGE"),
        ("Command", "COMMAND"),
        ("CreatedAt", "CREATED AT"),
        ("RunningFor", "CREATED"),
        ("Ports", "PORTS"),
        ("State", "STATE"),
        ("Status", "STATUS"),
        ("Size", "SIZE"),
        ("Names", "NAMES"),
        ("Labels", "LABELS"),
        ("Mounts", "MOUNTS"),
        ("Networks", "NETWORKS"),
        ("LocalVolumes", "LOCAL VOLUMES"),
    ],
    default: "table {{.ID}}\\t{{.Image}}\\t{{.Command}}\\t{{.RunningFor}}\\t{{.Status}}\\t{{.Ports}}\\t{{.Names}}",
};

/// `ps -s`'s table: the default one with a SIZE column.
const PS_SIZE_TABLE: &str = "table {{.ID}}\\t{{.Image}}\\t{{.Command}}\\t{{.RunningFor}}\\t{{.Status}}\\t{{.Ports}}\\t{{.Names}}\\t{{.Size}}";

/// A container as `ps --format` sees it: Docker's fields, each a string.
fn ps_row(record: &ContainerRecord, no_trunc: bool) -> Value {
    let networks: Vec<&str> = record
        .network_settings
        .get("Networks")
        .and_then(Value::as_object)
        .map(|networks| networks.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let labels: Vec<String> = record
        .config
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let id = if no_trunc {
        record.id.clone()
    } else {
        record.id[..12].to_string()
    };
    json!({
        "ID": id,
        "Image": record.config.image,
        "Command": command_text(record, no_trunc),
        "CreatedAt": record.created,
        "RunningFor": ago(Some(&record.created)),
        "Status": status_text(record),
        "State": record.state.status.as_str(),
        "Ports": ports_text(&record.network_settings),
        "Names": record.short_name(),
        "Size": "0B",
        "Labels": labels.join(","),
        LABEL_FIELD: record.config.labels,
        "Mounts": "",
        "Networks": networks.join(","),
        "LocalVolumes": "0",
    })
}

/// Published ports as `(container port/proto, host ip, host port)`, from `NetworkSettings.Ports`.
fn published_ports(settings: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    if let Some(ports) = settings.get("Ports").and_then(Value::as_object) {
        for (container_port, bindings) in ports {
            for binding in bindings.as_array().into_iter().flatten() {
                let field = |name: &str| {
                    binding
                        .get(name)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                out.push((container_port.clone(), field("HostIp"), field("HostPort")));
            }
        }
    }
    out
}

/// The PORTS column: `0.0.0.0:8080->80/tcp, …`.
fn ports_text(settings: &Value) -> String {
    published_ports(settings)
        .into_iter()
        .map(|(container, ip, port)| format!("{ip}:{port}->{container}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `hull port`.
#[derive(Debug, clap::Args)]
pub struct PortArgs {
    /// The container
    container: String,
    /// Only this port (`80` or `80/tcp`)
    private_port: Option<String>,
}

/// Lists a container's port mappings.
pub fn port(paths: &Paths, args: PortArgs) -> Result<i32> {
    let (_, record) = load(paths, &args.container)?;
    let wanted = args.private_port.map(|p| {
        if p.contains('/') {
            p
        } else {
            format!("{p}/tcp")
        }
    });
    let mut found = false;
    for (container, ip, port) in published_ports(&record.network_settings) {
        match &wanted {
            Some(w) if *w != container => continue,
            Some(_) => println!("{ip}:{port}"),
            None => println!("{container} -> {ip}:{port}"),
        }
        found = true;
    }
    if let (Some(wanted), false) = (wanted, found) {
        bail!("No public port '{wanted}' published for {}", args.container);
    }
    Ok(0)
}

/// Lists containers.
pub fn ps(paths: &Paths, args: PsArgs) -> Result<i32> {
    let store = ContainerStore::open(&paths.root)?;
    let mut records = store.list()?;
    for record in records.iter_mut() {
        reconcile(&store, record);
    }
    let filters = args
        .filter
        .iter()
        .map(|f| PsFilter::parse(f))
        .collect::<Result<Vec<_>>>()?;
    // A status or exited filter looks at every container, as in Docker.
    let all = args.all
        || args.latest
        || args.last.is_some()
        || filters
            .iter()
            .any(|f| f.key == "status" || f.key == "exited");
    records.retain(|r| {
        all || matches!(
            r.state.status,
            Status::Running | Status::Restarting | Status::Paused
        )
    });
    records.retain(|r| passes(&filters, r));
    // Newest first already; -l is -n 1.
    if let Some(last) = args.last.or(args.latest.then_some(1)) {
        records.truncate(last);
    }
    if args.quiet {
        for record in &records {
            println!(
                "{}",
                if args.no_trunc {
                    record.id.as_str()
                } else {
                    &record.id[..12]
                }
            );
        }
        return Ok(0);
    }
    let mut rows: Vec<Value> = records.iter().map(|r| ps_row(r, args.no_trunc)).collect();
    let mut columns = PS_COLUMNS;
    if args.size {
        // What each wrote, and with its image's size what it holds in all.
        let images: std::collections::HashMap<String, u64> = open_store(paths)?
            .list()?
            .into_iter()
            .map(|image| (image.id.to_string(), image.size))
            .collect();
        for (row, record) in rows.iter_mut().zip(&records) {
            let written = written_bytes(&store.dir_of(&record.id).join("rw/upper"));
            let virtual_size = written + images.get(&record.image).copied().unwrap_or(0);
            row["Size"] = format!(
                "{} (virtual {})",
                human_size(written),
                human_size(virtual_size)
            )
            .into();
        }
        columns.default = PS_SIZE_TABLE;
    }
    print_listing(args.format.as_deref(), &columns, &rows)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_filters_parse_as_docker_spells_them() {
        assert!(PsFilter::parse("name=web").is_ok());
        assert!(PsFilter::parse("status=exited").is_ok());
        assert_eq!(
            PsFilter::parse("status=sleeping").unwrap_err().to_string(),
            "invalid filter 'status=sleeping'"
        );
        assert_eq!(
            PsFilter::parse("colour=red").unwrap_err().to_string(),
            "invalid filter 'colour'"
        );
        assert!(PsFilter::parse("name").is_err());
    }
}
