//! `hull stats`: CPU, memory, network and block I/O, and processes of
//! running containers, as `docker stats` shows them.

use crate::cli::format::{binary_size, human_size};
use crate::cli::output::{Columns, Format};
use crate::config::Paths;
use crate::container::{ContainerRecord, ContainerStore, Status};
use crate::monitor_link::client;
use crate::monitor_link::proto::{MonitorRequest, MonitorResponse};
use anyhow::Result;
use serde_json::{json, Value};
use std::time::Duration;

/// `hull stats`.
#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    all: bool,
    /// Disable streaming stats and only pull the first result
    #[arg(long)]
    no_stream: bool,
    /// Do not truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Format output using a Go template (`table` prefix keeps the header)
    #[arg(long, value_name = "string")]
    format: Option<String>,
    /// Containers (default: all running)
    containers: Vec<String>,
}

/// One container's row: its record and, if it runs, two samples a moment apart.
struct StatsRow {
    record: ContainerRecord,
    samples: Option<(
        hull_protocol::ContainerStats,
        hull_protocol::ContainerStats,
        Duration,
    )>,
}

/// Resource use of containers, as `docker stats`: CPU from two samples a
/// second apart, memory against the cgroup's limit (or the VM's memory),
/// network and block I/O, processes; every second unless `--no-stream`.
pub async fn stats(paths: &Paths, args: StatsArgs) -> Result<i32> {
    let store = ContainerStore::open(&paths.root)?;
    let ids: Vec<String> = if args.containers.is_empty() {
        store
            .list()?
            .into_iter()
            .filter(|r| args.all || r.state.status == Status::Running)
            .map(|r| r.id)
            .collect()
    } else {
        args.containers
            .iter()
            .map(|name| store.resolve(name))
            .collect::<Result<_, _>>()?
    };
    let format = Format::listing(args.format.as_deref(), STATS_COLUMNS.default)?;
    let sample = |record: ContainerRecord| async move {
        // A paused VM would not answer; a stopped container has nothing to say.
        if record.state.status != Status::Running {
            return None;
        }
        let monitor = client::connect(paths, &record.id).await.ok()?;
        match monitor.request(MonitorRequest::Stats).await {
            Ok(MonitorResponse::Stats { stats }) => Some((std::time::Instant::now(), stats)),
            _ => None,
        }
    };
    let mut previous: Vec<Option<(std::time::Instant, hull_protocol::ContainerStats)>> = Vec::new();
    for id in &ids {
        previous.push(sample(store.load(id)?).await);
    }
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut rows = Vec::new();
        let mut current = Vec::new();
        for (id, before) in ids.iter().zip(&previous) {
            let record = store.load(id)?;
            let now = sample(record.clone()).await;
            let samples = match (before, &now) {
                (Some((t0, s0)), Some((t1, s1))) => Some((*s0, *s1, t1.duration_since(*t0))),
                _ => None,
            };
            rows.push(StatsRow { record, samples });
            current.push(now);
        }
        if !args.no_stream {
            // Docker redraws in place.
            print!("\x1b[2J\x1b[H");
        }
        let values: Vec<Value> = rows
            .iter()
            .map(|row| stats_values(row, args.no_trunc))
            .collect();
        print!("{}", format.render(&STATS_COLUMNS, &values)?);
        if args.no_stream {
            return Ok(0);
        }
        previous = current;
    }
}

/// `stats`'s fields and Docker's names of their columns.
const STATS_COLUMNS: Columns = Columns {
    names: &[
        ("Container", "CONTAINER"),
        ("ID", "CONTAINER ID"),
        ("Name", "NAME"),
        ("CPUPerc", "CPU %"),
        ("MemUsage", "MEM USAGE / LIMIT"),
        ("MemPerc", "MEM %"),
        ("NetIO", "NET I/O"),
        ("BlockIO", "BLOCK I/O"),
        ("PIDs", "PIDS"),
    ],
    default: "table {{.ID}}\\t{{.Name}}\\t{{.CPUPerc}}\\t{{.MemUsage}}\\t{{.MemPerc}}\\t{{.NetIO}}\\t{{.BlockIO}}\\t{{.PIDs}}",
};

/// A row's fields under Docker's `--format` names.
fn stats_values(row: &StatsRow, no_trunc: bool) -> Value {
    let id = if no_trunc {
        row.record.id.clone()
    } else {
        row.record.id[..12].to_string()
    };
    let name = row.record.short_name().to_string();
    let Some((before, now, elapsed)) = row.samples else {
        return json!({"Container": name, "ID": id, "Name": name, "CPUPerc": "--", "MemUsage": "-- / --", "MemPerc": "--", "NetIO": "--", "BlockIO": "--", "PIDs": "--"});
    };
    let cpu = now.cpu_usage_usec.saturating_sub(before.cpu_usage_usec) as f64
        / elapsed.as_micros().max(1) as f64
        * 100.0;
    let mem = now.memory_usage as f64 / now.memory_limit.max(1) as f64 * 100.0;
    json!({
        "Container": name,
        "ID": id,
        "Name": name,
        "CPUPerc": format!("{cpu:.2}%"),
        "MemUsage": format!("{} / {}", binary_size(now.memory_usage), binary_size(now.memory_limit)),
        "MemPerc": format!("{mem:.2}%"),
        "NetIO": format!("{} / {}", human_size(now.net_rx_bytes), human_size(now.net_tx_bytes)),
        "BlockIO": format!("{} / {}", human_size(now.block_read_bytes), human_size(now.block_write_bytes)),
        "PIDs": now.pids.to_string(),
    })
}
