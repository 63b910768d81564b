//! A task's resource use as containerd reads it: the cgroups metrics types
//! (v1 on a host with cgroup v1 controllers, v2 on a unified host), so that
//! `ctr task metrics`, `crictl stats` and the kubelet see CPU and memory.
//! The figures are the guest's, for the container's cgroup in the VM.

use containerd_shim::protos::cgroups::metrics as v1;
use containerd_shim::protos::cgroups_v2::metrics as v2;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::MessageDyn;
use hull_protocol::ContainerStats;

/// Whether the host runs cgroup v2 only (containerd then reads v2 metrics).
fn host_is_unified() -> bool {
    std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The metrics for `stats`, packed as containerd expects them.
pub fn metrics(stats: &ContainerStats) -> containerd_shim::Result<Any> {
    let message: Box<dyn MessageDyn> = if host_is_unified() {
        Box::new(v2_metrics(stats))
    } else {
        Box::new(v1_metrics(stats))
    };
    containerd_shim::util::convert_to_any(message)
}

fn v1_metrics(stats: &ContainerStats) -> v1::Metrics {
    v1::Metrics {
        cpu: Some(v1::CPUStat {
            usage: Some(v1::CPUUsage {
                total: stats.cpu_usage_usec.saturating_mul(1000),
                ..Default::default()
            })
            .into(),
            ..Default::default()
        })
        .into(),
        memory: Some(v1::MemoryStat {
            usage: Some(v1::MemoryEntry {
                usage: stats.memory_usage,
                limit: stats.memory_limit,
                ..Default::default()
            })
            .into(),
            ..Default::default()
        })
        .into(),
        pids: Some(v1::PidsStat {
            current: stats.pids,
            ..Default::default()
        })
        .into(),
        network: vec![v1::NetworkStat {
            name: "eth0".into(),
            rx_bytes: stats.net_rx_bytes,
            tx_bytes: stats.net_tx_bytes,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn v2_metrics(stats: &ContainerStats) -> v2::Metrics {
    v2::Metrics {
        cpu: Some(v2::CPUStat {
            usage_usec: stats.cpu_usage_usec,
            ..Default::default()
        })
        .into(),
        memory: Some(v2::MemoryStat {
            usage: stats.memory_usage,
            usage_limit: stats.memory_limit,
            ..Default::default()
        })
        .into(),
        pids: Some(v2::PidsStat {
            current: stats.pids,
            ..Default::default()
        })
        .into(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guests_figures_become_containerds_metrics() {
        let stats = ContainerStats {
            cpu_usage_usec: 1500,
            memory_usage: 4 << 20,
            memory_limit: 64 << 20,
            pids: 3,
            ..Default::default()
        };
        let v1 = v1_metrics(&stats);
        assert_eq!(v1.cpu.usage.total, 1_500_000);
        assert_eq!(v1.memory.usage.usage, 4 << 20);
        assert_eq!(v1.memory.usage.limit, 64 << 20);
        let v2 = v2_metrics(&stats);
        assert_eq!((v2.memory.usage, v2.pids.current), (4 << 20, 3));
        let any = metrics(&stats).unwrap();
        assert!(
            any.type_url.ends_with("io.containerd.cgroups.v1.Metrics")
                || any.type_url.ends_with("io.containerd.cgroups.v2.Metrics"),
            "{}",
            any.type_url
        );
    }
}
