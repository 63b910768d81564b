//! A container's file changes: `hull diff`, `hull commit` (with
//! Docker's `--change`) and `hull export`.

use super::load;
use crate::cli::engine;
use crate::config::Paths;
use crate::copy::archive_tree;
use crate::copy::TreeKind;
use crate::sandbox::{mount_points, SandboxPlan};
use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

/// `hull export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long, value_name = "string")]
    output: Option<std::path::PathBuf>,
    /// The container
    container: String,
}

/// Writes a container's file system (running or not) as a tar archive.
pub async fn export(paths: &Paths, args: ExportArgs) -> Result<i32> {
    use std::io::{IsTerminal, Write};
    let (store, record) = load(paths, &args.container)?;
    let out: Box<dyn Write + Send> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None if std::io::stdout().is_terminal() => {
            bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        }
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let rootfs = SandboxPlan::load(&store.dir_of(&record.id))?.rootfs(&store.dir_of(&record.id));
    let scratch = paths.views_dir();
    // (Walked by descriptors: a running guest's changes meanwhile lead it nowhere.)
    tokio::task::spawn_blocking(move || {
        rootfs.with_view(&scratch, move |root| {
            archive_tree(root, TreeKind::Merged, Default::default(), out)
        })
    })
    .await
    .context("exporting")???;
    Ok(0)
}

/// `hull commit`.
#[derive(Debug, clap::Args)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short, long, value_name = "string")]
    author: Option<String>,
    /// Apply Dockerfile instruction to the created image (CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE)
    #[arg(short, long, value_name = "list")]
    change: Vec<String>,
    /// Commit message
    #[arg(short, long, value_name = "string")]
    message: Option<String>,
    /// Pause container during commit
    #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pause: bool,
    /// The container
    container: String,
    /// The new image's name
    #[arg(value_name = "REPOSITORY[:TAG]")]
    repository: Option<String>,
}

/// Makes a new image of a container's changes (its writable layer, with
/// overlayfs' whiteouts turned into OCI ones) on top of its image.
pub async fn commit(paths: &Paths, args: CommitArgs) -> Result<i32> {
    let (_, record) = load(paths, &args.container)?;
    let mut config = serde_json::Map::new();
    config.insert("Cmd".into(), json!(record.config.cmd));
    config.insert("Entrypoint".into(), json!(record.config.entrypoint));
    config.insert("Env".into(), json!(record.config.env));
    config.insert("WorkingDir".into(), json!(record.config.working_dir));
    config.insert("User".into(), json!(record.config.user));
    for change in &args.change {
        apply_change(&mut config, change)?;
    }
    let request = crate::engine::CommitRequest {
        options: crate::image::CommitOptions {
            author: args.author.clone(),
            message: args.message.clone(),
            created_by: std::iter::once(record.path.clone())
                .chain(record.args.iter().cloned())
                .collect::<Vec<_>>()
                .join(" "),
            config,
        },
        pause: args.pause,
        reference: args.repository.clone(),
    };
    let id = engine(paths).commit(&record.id, &request).await?;
    println!("{id}");
    Ok(0)
}

/// One `--change` instruction, applied to an image config's `config`.
pub fn apply_change(config: &mut serde_json::Map<String, Value>, change: &str) -> Result<()> {
    let (instruction, value) = change
        .trim()
        .split_once(char::is_whitespace)
        .unwrap_or((change.trim(), ""));
    let value = value.trim();
    // Exec form (a JSON array) or shell form, as in a Dockerfile.
    let command = || -> Value {
        serde_json::from_str::<Vec<String>>(value)
            .map_or_else(|_| json!(["/bin/sh", "-c", value]), |list| json!(list))
    };
    match instruction.to_ascii_uppercase().as_str() {
        "CMD" => {
            config.insert("Cmd".into(), command());
        }
        "ENTRYPOINT" => {
            config.insert("Entrypoint".into(), command());
        }
        "WORKDIR" => {
            config.insert("WorkingDir".into(), json!(value));
        }
        "USER" => {
            config.insert("User".into(), json!(value));
        }
        "ENV" => {
            let (key, val) = value
                .split_once('=')
                .or_else(|| value.split_once(' '))
                .ok_or_else(|| anyhow!("ENV needs KEY=VALUE: {change}"))?;
            let env = config.entry("Env").or_insert_with(|| json!([]));
            if let Some(list) = env.as_array_mut() {
                list.retain(|e| {
                    e.as_str()
                        .and_then(|e| e.split_once('='))
                        .is_none_or(|(k, _)| k != key)
                });
                list.push(json!(format!("{key}={}", val.trim())));
            }
        }
        "LABEL" => {
            let (key, val) = value
                .split_once('=')
                .ok_or_else(|| anyhow!("LABEL needs KEY=VALUE: {change}"))?;
            let labels = config.entry("Labels").or_insert_with(|| json!({}));
            if let Some(map) = labels.as_object_mut() {
                map.insert(key.to_string(), json!(val.trim_matches('"')));
            }
        }
        "EXPOSE" => {
            let ports = config.entry("ExposedPorts").or_insert_with(|| json!({}));
            for port in value.split_whitespace() {
                let key = if port.contains('/') {
                    port.to_string()
                } else {
                    format!("{port}/tcp")
                };
                if let Some(map) = ports.as_object_mut() {
                    map.insert(key, json!({}));
                }
            }
        }
        other => bail!("{other} is not a valid change command"),
    }
    Ok(())
}

/// `hull diff`.
#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The container
    container: String,
}

/// Lists the changes to a container's files: `A` added, `C` changed, `D` deleted.
pub async fn diff(paths: &Paths, args: DiffArgs) -> Result<i32> {
    let (store, record) = load(paths, &args.container)?;
    let rootfs = SandboxPlan::load(&store.dir_of(&record.id))?.rootfs(&store.dir_of(&record.id));
    for change in rootfs.changes(&mount_points(&store.dir_of(&record.id))?)? {
        println!("{} {}", change.kind, change.path);
    }
    Ok(0)
}
