//! What is in a container: `hull inspect` (containers and images, as
//! Docker's JSON or a template) and `hull top` (its processes in the guest).

use super::load;
use crate::cli::images::open_store;
use crate::cli::output::inspect_text;
use crate::cli::tabwriter::print_table;
use crate::config::Paths;
use crate::container::Status;
use crate::monitor_link::client;
use crate::monitor_link::proto::{MonitorRequest, MonitorResponse};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// `hull top`.
#[derive(Debug, clap::Args)]
pub struct TopArgs {
    /// The container
    container: String,
}

/// Lists a running container's processes, as its guest sees them.
pub async fn top(paths: &Paths, args: TopArgs) -> Result<i32> {
    let (_, record) = load(paths, &args.container)?;
    if record.state.status == Status::Paused {
        bail!(
            "Container {} is paused, unpause the container before top",
            record.id
        );
    }
    if record.state.status != Status::Running {
        bail!("Container {} is not running", record.id);
    }
    let monitor = client::connect(paths, &record.id).await?;
    let MonitorResponse::Processes { processes } = monitor.request(MonitorRequest::Top).await?
    else {
        bail!("unexpected answer from the monitor");
    };
    let rows: Vec<Vec<String>> = processes
        .iter()
        .map(|p| {
            vec![
                if p.uid == 0 {
                    "root".into()
                } else {
                    p.uid.to_string()
                },
                p.pid.to_string(),
                p.ppid.to_string(),
                p.command.clone(),
            ]
        })
        .collect();
    print_table(&["UID", "PID", "PPID", "CMD"], &rows);
    Ok(0)
}

/// `hull inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Format output using a Go template
    #[arg(short, long, value_name = "string")]
    format: Option<String>,
    /// Only this kind of object: container, image or volume
    #[arg(long = "type", value_name = "string")]
    kind: Option<String>,
    /// Containers, images or volumes
    #[arg(required = true)]
    names: Vec<String>,
}

impl InspectArgs {
    /// The same, for one kind of object only (`container inspect`, `image inspect`).
    pub fn of_kind(mut self, kind: &str) -> Self {
        self.kind = Some(kind.to_string());
        self
    }
}

/// An image as `docker image inspect` shows it.
fn image_json(paths: &Paths, name: &str) -> Result<Value> {
    let store = open_store(paths)?;
    let image = store.resolve(name)?;
    let summary = store.list()?.into_iter().find(|s| s.id == image.id);
    // As stored: Docker's own fields (Shell, Healthcheck) are not in the OCI types.
    let config = store
        .config_json(&image)?
        .get_mut("config")
        .map_or(Value::Null, Value::take);
    Ok(json!({
        "Id": image.id.to_string(),
        "RepoTags": image.reference.iter().map(|r| r.familiar_string()).collect::<Vec<_>>(),
        "RepoDigests": [],
        "Created": summary.as_ref().and_then(|s| s.created.clone()).unwrap_or_default(),
        "Config": config,
        "Architecture": image.config.architecture().to_string(),
        "Os": image.config.os().to_string(),
        "Size": summary.map_or(0, |s| s.size),
        "RootFS": { "Type": "layers", "Layers": image.diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>() },
    }))
}

/// A volume as `docker volume inspect` shows it.
fn volume_json(paths: &Paths, name: &str) -> Option<Value> {
    let store = crate::volume::VolumeStore::open(&paths.root).ok()?;
    store.get(name).ok().map(|volume| volume.inspect())
}

/// The kinds of object `inspect` looks for, in its order (Docker's).
const KINDS: [&str; 3] = ["container", "image", "volume"];

/// Prints containers', images' or volumes' details.
pub fn inspect(paths: &Paths, args: InspectArgs) -> Result<i32> {
    if let Some(kind) = args.kind.as_deref().filter(|k| !KINDS.contains(k)) {
        eprintln!("\"{kind}\" is not a valid value for --type");
        return Ok(1);
    }
    let wants = |kind: &str| args.kind.as_deref().is_none_or(|k| k == kind);
    // A bad template fails before anything is looked up, as in Docker.
    inspect_text(args.format.as_deref(), &[])?;
    let mut objects = Vec::new();
    let mut failed = false;
    for name in &args.names {
        let container = wants("container")
            .then(|| load(paths, name).ok())
            .flatten()
            .map(|(_, record)| serde_json::to_value(record));
        let object = match container {
            Some(value) => Some(value.context("serialising the record")?),
            None => wants("image")
                .then(|| image_json(paths, name).ok())
                .flatten()
                .or_else(|| wants("volume").then(|| volume_json(paths, name)).flatten()),
        };
        match object {
            Some(object) => objects.push(object),
            None => {
                eprintln!("hull: Error: No such object: {name}");
                failed = true;
            }
        }
    }
    print!("{}", inspect_text(args.format.as_deref(), &objects)?);
    Ok(if failed { 1 } else { 0 })
}
