//! `update`: new limits for a running container, as runc takes them (a
//! `LinuxResources` JSON document from `--resources FILE` or `-` for stdin,
//! which containerd's runc shim sends for `docker update`, and runc's
//! flags). Hull's engine applies them to the container's cgroup in the
//! guest and keeps them for its next start; the VM keeps the size it
//! booted with.

use crate::error::OciError;
use crate::state::{engine, StateDir};
use clap::Args;
use hull_runtime::units::parse_memory;
use oci_spec::runtime::LinuxResources;
use serde_json::{json, Value};
use std::io::Read;
use std::path::PathBuf;

/// Most bytes of a `--resources` document.
const MAX_RESOURCES_BYTES: u64 = 1 << 20;

/// `update`'s arguments (runc's).
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// A file holding the resources (the OCI spec's `linux.resources`), or
    /// `-` for stdin; the flags below change what it says.
    #[arg(long, short)]
    resources: Option<PathBuf>,
    /// Block I/O weight, 10 to 1000.
    #[arg(long = "blkio-weight")]
    blkio_weight: Option<u16>,
    /// CPU CFS period (microseconds).
    #[arg(long = "cpu-period")]
    cpu_period: Option<u64>,
    /// CPU CFS quota (microseconds per period).
    #[arg(long = "cpu-quota")]
    cpu_quota: Option<i64>,
    /// CPU shares (a relative weight).
    #[arg(long = "cpu-share")]
    cpu_share: Option<u64>,
    /// CPUs the container may use (`0-3`, `0,1`).
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    /// Memory nodes the container may use.
    #[arg(long = "cpuset-mems")]
    cpuset_mems: Option<String>,
    /// Memory limit (bytes, or with a unit: `512m`).
    #[arg(long)]
    memory: Option<String>,
    /// Memory soft limit.
    #[arg(long = "memory-reservation")]
    memory_reservation: Option<String>,
    /// Memory plus swap (`-1`: unlimited swap).
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// Most processes the container may have.
    #[arg(long = "pids-limit")]
    pids_limit: Option<i64>,
    /// The container.
    id: String,
}

/// Applies `args` to its container.
pub async fn update(states: &StateDir, args: UpdateArgs) -> Result<(), OciError> {
    let state = states.load(&args.id)?;
    let resources = resources(&args)?;
    Ok(engine()?.update(&state.hull_id, &resources).await?)
}

/// The resources `args` ask for: the document, with what the flags set
/// put over it.
fn resources(args: &UpdateArgs) -> Result<LinuxResources, OciError> {
    let mut document = match &args.resources {
        Some(path) => parse_document(&read_document(path)?)?,
        None => json!({}),
    };
    let bytes = |text: &Option<String>| -> Result<Option<i64>, OciError> {
        text.as_deref()
            .map(|t| match t {
                "-1" => Ok(-1),
                _ => parse_memory(t).map_err(|e| OciError::Invalid(e.to_string())),
            })
            .transpose()
    };
    if let Some(weight) = args.blkio_weight {
        if !(10..=1000).contains(&weight) {
            return Err(OciError::Invalid(format!(
                "invalid --blkio-weight {weight}: it must be 10 to 1000"
            )));
        }
    }
    let flags = [
        ("memory", "limit", bytes(&args.memory)?.map(Value::from)),
        (
            "memory",
            "reservation",
            bytes(&args.memory_reservation)?.map(Value::from),
        ),
        ("memory", "swap", bytes(&args.memory_swap)?.map(Value::from)),
        ("cpu", "period", args.cpu_period.map(Value::from)),
        ("cpu", "quota", args.cpu_quota.map(Value::from)),
        ("cpu", "shares", args.cpu_share.map(Value::from)),
        ("cpu", "cpus", args.cpuset_cpus.clone().map(Value::from)),
        ("cpu", "mems", args.cpuset_mems.clone().map(Value::from)),
        ("pids", "limit", args.pids_limit.map(Value::from)),
        ("blockIO", "weight", args.blkio_weight.map(Value::from)),
    ];
    for (group, field, value) in flags {
        let Some(value) = value else { continue };
        let Some(object) = document.as_object_mut() else {
            break;
        };
        let entry = object.entry(group).or_insert_with(|| json!({}));
        if !entry.is_object() {
            *entry = json!({});
        }
        entry[field] = value;
    }
    serde_json::from_value(document)
        .map_err(|e| OciError::Invalid(format!("decoding the resources: {e}")))
}

/// The text of `--resources PATH` (`-`: stdin), bounded.
fn read_document(path: &std::path::Path) -> Result<String, OciError> {
    let mut text = String::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin()
            .take(MAX_RESOURCES_BYTES)
            .read_to_string(&mut text)
    } else {
        std::fs::File::open(path)
            .and_then(|file| file.take(MAX_RESOURCES_BYTES).read_to_string(&mut text))
    };
    read.map_err(OciError::io("reading", path))?;
    Ok(text)
}

/// A `LinuxResources` document: a JSON object.
fn parse_document(text: &str) -> Result<Value, OciError> {
    match serde_json::from_str(text) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err(OciError::Invalid(
            "decoding the resources: not a JSON object".into(),
        )),
        Err(e) => Err(OciError::Invalid(format!("decoding the resources: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: UpdateArgs,
    }

    fn parse(args: &[&str]) -> UpdateArgs {
        Cli::try_parse_from(std::iter::once("update").chain(args.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn flags_become_resources() {
        let r = resources(&parse(&[
            "--memory",
            "256m",
            "--memory-swap",
            "-1",
            "--cpu-quota",
            "50000",
            "--cpu-period",
            "100000",
            "--pids-limit",
            "64",
            "c1",
        ]))
        .unwrap();
        let memory = r.memory().unwrap();
        assert_eq!(memory.limit(), Some(256 << 20));
        assert_eq!(memory.swap(), Some(-1));
        let cpu = r.cpu().as_ref().unwrap();
        assert_eq!((cpu.quota(), cpu.period()), (Some(50_000), Some(100_000)));
        assert_eq!(r.pids().unwrap().limit(), 64);
    }

    #[test]
    fn a_document_is_read_and_flags_override_it() {
        let path = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            path.path(),
            r#"{"memory":{"limit":104857600},"cpu":{"shares":512,"quota":20000,"period":100000},"pids":{"limit":10}}"#,
        )
        .unwrap();
        let file = path.path().to_str().unwrap();
        let r = resources(&parse(&["-r", file, "--pids-limit", "20", "c1"])).unwrap();
        assert_eq!(r.memory().unwrap().limit(), Some(104_857_600));
        assert_eq!(r.cpu().as_ref().unwrap().shares(), Some(512));
        assert_eq!(r.pids().unwrap().limit(), 20);
        assert!(parse_document("{\"memory\": 3}").is_ok());
        assert!(parse_document("[1]").is_err());
        assert!(parse_document("not json").is_err());
        std::fs::write(path.path(), "{\"memory\": 3}").unwrap();
        assert!(resources(&parse(&["-r", file, "c1"])).is_err());
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(resources(&parse(&["--memory", "lots", "c1"])).is_err());
        assert!(resources(&parse(&["--blkio-weight", "5", "c1"])).is_err());
    }
}
