//! `events`: a container's resource use as runc prints it (`{"type":
//! "stats","id":…,"data":{…}}`, runc's `types.Stats` names), once with
//! `--stats`, else every `--interval` while the container runs. The figures
//! are the guest's: the container's cgroup there, the VM's network.

use crate::error::OciError;
use crate::state::{engine, StateDir};
use hull_protocol::ContainerStats;
use serde_json::{json, Value};
use std::time::Duration;

/// Prints container `id`'s stats: once (`once`), or each `interval` until
/// the container stops.
pub async fn events(
    states: &StateDir,
    id: &str,
    once: bool,
    interval: Duration,
) -> Result<(), OciError> {
    let state = states.load(id)?;
    let engine = engine()?;
    let mut ticks = tokio::time::interval(interval.max(Duration::from_millis(100)));
    let mut first = true;
    loop {
        ticks.tick().await;
        let stats = match engine.stats(&state.hull_id).await {
            Ok(stats) => stats,
            // The container ended: so do its events (runc's end with it too).
            Err(_) if !first => return Ok(()),
            Err(err) => return Err(err.into()),
        };
        first = false;
        println!("{}", stats_event(id, &stats));
        if once {
            return Ok(());
        }
    }
}

/// The event runc prints for `stats` of container `id`.
fn stats_event(id: &str, stats: &ContainerStats) -> Value {
    let nanos = stats.cpu_usage_usec.saturating_mul(1000);
    let mut blkio = Vec::new();
    for (op, value) in [
        ("Read", stats.block_read_bytes),
        ("Write", stats.block_write_bytes),
    ] {
        blkio.push(json!({"op": op, "value": value}));
    }
    json!({
        "type": "stats",
        "id": id,
        "data": {
            "cpu": {
                "usage": {"total": nanos, "kernel": 0, "user": 0},
                "throttling": {},
            },
            "cpuset": {},
            "memory": {
                "usage": {"limit": stats.memory_limit, "usage": stats.memory_usage, "failcnt": 0},
                "swap": {"limit": 0, "failcnt": 0},
                "kernel": {"limit": 0, "failcnt": 0},
                "kernelTCP": {"limit": 0, "failcnt": 0},
            },
            "pids": {"current": stats.pids},
            "blkio": {"ioServiceBytesRecursive": blkio},
            "hugetlb": {},
            "intel_rdt": {},
            "network_interfaces": [{
                "name": "eth0",
                "rx_bytes": stats.net_rx_bytes,
                "rx_packets": 0,
                "rx_errors": 0,
                "rx_dropped": 0,
                "tx_bytes": stats.net_tx_bytes,
                "tx_packets": 0,
                "tx_errors": 0,
                "tx_dropped": 0,
            }],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_have_runcs_shape() {
        let stats = ContainerStats {
            cpu_usage_usec: 1500,
            online_cpus: 1,
            memory_usage: 4096,
            memory_limit: 1 << 20,
            net_rx_bytes: 10,
            net_tx_bytes: 20,
            block_read_bytes: 30,
            block_write_bytes: 40,
            pids: 2,
        };
        let event = stats_event("c1", &stats);
        assert_eq!(event["type"], "stats");
        assert_eq!(event["id"], "c1");
        let data = &event["data"];
        assert_eq!(data["cpu"]["usage"]["total"], 1_500_000);
        assert_eq!(data["memory"]["usage"]["usage"], 4096);
        assert_eq!(data["memory"]["usage"]["limit"], 1 << 20);
        assert_eq!(data["pids"]["current"], 2);
        assert_eq!(data["blkio"]["ioServiceBytesRecursive"][1]["value"], 40);
        assert_eq!(data["network_interfaces"][0]["tx_bytes"], 20);
    }
}
