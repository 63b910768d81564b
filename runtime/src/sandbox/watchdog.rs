//! How long a boot may take: the guest's CPU time and the host's load
//! tell a slow boot on a busy host from one that went wrong.

use std::time::{Duration, Instant};

/// A boot may take this many times its timeout in wall-clock time while
/// the host is too busy to give the VMM the CPU time it needs.
pub(super) const BOOT_WALL_FACTOR: u32 = 5;

/// Ends when a boot has taken too long, with the reason. A boot slowed by
/// a loaded host is told apart from one that went wrong: past the timeout,
/// a VMM that had less CPU time than that while the host is overloaded
/// (more runnable tasks than CPUs) gets up to [`BOOT_WALL_FACTOR`] times
/// longer; a guest that used its whole timeout of CPU time, or an idle
/// host's guest that is silent, fails.
pub(super) async fn boot_watchdog(vmm_pid: i64, timeout: Duration, wall_limit: Duration) -> String {
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let wall = started.elapsed();
        let cpu = crate::process::cpu_time_with_children(vmm_pid).unwrap_or_default();
        if cpu >= timeout {
            return format!(
                "no answer from the agent: the guest ran for {:.1}s of CPU time ({:.1}s wall) without reaching it",
                cpu.as_secs_f64(),
                wall.as_secs_f64()
            );
        }
        if wall >= timeout && !host_overloaded() {
            return format!(
                "no answer from the agent within {:.0}s (the VMM used {:.1}s of CPU time)",
                wall.as_secs_f64(),
                cpu.as_secs_f64()
            );
        }
        if wall >= wall_limit {
            return format!(
                "no answer from the agent within {:.0}s: the host is overloaded (the VMM got only {:.1}s of CPU time); retry, or raise --boot-timeout",
                wall.as_secs_f64(),
                cpu.as_secs_f64()
            );
        }
    }
}

/// Whether the host has more runnable tasks than CPUs, now or on average
/// over the last minute (/proc/loadavg: `1min 5min 15min running/total …`).
fn host_overloaded() -> bool {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let Ok(text) = std::fs::read_to_string("/proc/loadavg") else {
        return false;
    };
    let fields: Vec<&str> = text.split_whitespace().collect();
    let load = fields
        .first()
        .and_then(|l| l.parse::<f64>().ok())
        .unwrap_or(0.0);
    let running = fields
        .get(3)
        .and_then(|f| f.split_once('/')?.0.parse::<usize>().ok())
        .unwrap_or(0);
    load > cpus as f64 || running > cpus
}
