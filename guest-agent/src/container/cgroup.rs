//! A container's cgroup v2 group in the guest and the limits from its spec.

use anyhow::{Context, Result};
use hull_protocol::ContainerStats;
use oci_spec::runtime::LinuxResources;
use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The agent's cgroup v2 mount.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The parent group of all containers.
const CONTAINERS_GROUP: &str = "/sys/fs/cgroup/hull";
/// The controllers containers get, when the kernel has them.
const CONTROLLERS: [&str; 5] = ["cpu", "cpuset", "io", "memory", "pids"];

/// One container's group, in its pod's: `/sys/fs/cgroup/hull/<pod>/<id>`,
/// where the pod is the container that booted the VM (a container on its
/// own is its own pod). The pod's group holds no process, so its children
/// may have controllers (cgroup v2's no-internal-process rule).
#[derive(Debug, Clone)]
pub struct Cgroup {
    path: PathBuf,
}

/// Enables `controllers` for the children of `group`, skipping ones the kernel lacks.
fn delegate_controllers(group: &Path) {
    for controller in CONTROLLERS {
        // Each one separately: a single missing controller fails the whole write.
        if let Err(err) = fs::write(
            group.join("cgroup.subtree_control"),
            format!("+{controller}"),
        ) {
            tracing::debug!(
                "controller {controller} not enabled under {}: {err}",
                group.display()
            );
        }
    }
}

/// Maps cgroup v1 `cpu.shares` (2..262144) to v2 `cpu.weight` (1..10000), as runc does.
fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 100;
    }
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

impl Cgroup {
    /// Creates the group of container `container_id` in the group of its
    /// pod `pod` and writes the limits of `resources`.
    pub fn create(
        pod: &str,
        container_id: &str,
        resources: Option<&LinuxResources>,
    ) -> Result<Self> {
        let containers = Path::new(CONTAINERS_GROUP);
        if !containers.exists() {
            delegate_controllers(Path::new(CGROUP_ROOT));
            fs::create_dir(containers).context("creating the containers' cgroup")?;
            delegate_controllers(containers);
        }
        let parent = containers.join(pod);
        match fs::create_dir(&parent) {
            Ok(()) => delegate_controllers(&parent),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(err).context("creating the pod's cgroup"),
        }
        let cgroup = Self {
            path: parent.join(container_id),
        };
        fs::create_dir(&cgroup.path)
            .with_context(|| format!("creating cgroup {}", cgroup.path.display()))?;
        if let Some(resources) = resources {
            if let Err(err) = cgroup.apply(resources) {
                cgroup.remove();
                return Err(err);
            }
        }
        Ok(cgroup)
    }

    fn write(&self, file: &str, value: &str) -> Result<()> {
        fs::write(self.path.join(file), value).with_context(|| format!("setting {file} to {value}"))
    }

    /// Writes the limits of `resources` (at creation, and on update).
    pub fn apply(&self, resources: &LinuxResources) -> Result<()> {
        if let Some(memory) = resources.memory() {
            if let Some(limit) = memory.limit() {
                let value = if limit < 0 {
                    "max".to_string()
                } else {
                    limit.to_string()
                };
                self.write("memory.max", &value)?;
                // The guest has no swap; keep it that way for the container too,
                // so a memory hog is killed instead of paged.
                let _ = self.write("memory.swap.max", "0");
            }
            if let Some(reservation) = memory.reservation() {
                if reservation > 0 {
                    self.write("memory.low", &reservation.to_string())?;
                }
            }
        }
        if let Some(pids) = resources.pids() {
            let limit = pids.limit();
            let value = if limit <= 0 {
                "max".to_string()
            } else {
                limit.to_string()
            };
            self.write("pids.max", &value)?;
        }
        if let Some(cpu) = resources.cpu() {
            if let Some(quota) = cpu.quota() {
                let period = cpu.period().unwrap_or(100_000);
                let quota = if quota <= 0 {
                    "max".to_string()
                } else {
                    quota.to_string()
                };
                self.write("cpu.max", &format!("{quota} {period}"))?;
            }
            if let Some(shares) = cpu.shares() {
                self.write("cpu.weight", &shares_to_weight(shares).to_string())?;
            }
            if let Some(cpus) = cpu.cpus() {
                self.write("cpuset.cpus", cpus)?;
            }
            if let Some(mems) = cpu.mems() {
                self.write("cpuset.mems", mems)?;
            }
        }
        Ok(())
    }

    /// The group's directory, for a clone into it (`CLONE_INTO_CGROUP`).
    pub fn open(&self) -> Result<OwnedFd> {
        let dir = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(&self.path)
            .with_context(|| format!("opening cgroup {}", self.path.display()))?;
        Ok(dir.into())
    }

    /// Whether the OOM killer has killed a process of this group.
    pub fn oom_killed(&self) -> bool {
        self.keyed("memory.events", "oom_kill")
            .is_some_and(|kills| kills > 0)
    }

    /// What the group uses (`hull stats`). Without a memory limit of its
    /// own, the limit is the guest's memory: the VM is the real bound.
    pub fn stats(&self) -> ContainerStats {
        let read = |file: &str| fs::read_to_string(self.path.join(file)).unwrap_or_default();
        let number = |file: &str| read(file).trim().parse::<u64>().ok();
        let (mut block_read_bytes, mut block_write_bytes) = (0u64, 0u64);
        // `MAJ:MIN rbytes=N wbytes=N rios=N …`, a line per device.
        for field in read("io.stat").split_whitespace() {
            match field.split_once('=') {
                Some(("rbytes", n)) => {
                    block_read_bytes = block_read_bytes.saturating_add(n.parse().unwrap_or(0))
                }
                Some(("wbytes", n)) => {
                    block_write_bytes = block_write_bytes.saturating_add(n.parse().unwrap_or(0))
                }
                _ => {}
            }
        }
        let nic = |counter: &str| {
            fs::read_to_string(format!("/sys/class/net/eth0/statistics/{counter}"))
                .ok()
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0)
        };
        ContainerStats {
            cpu_usage_usec: self.keyed("cpu.stat", "usage_usec").unwrap_or(0),
            online_cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            memory_usage: number("memory.current").unwrap_or(0),
            memory_limit: number("memory.max").or_else(guest_memory).unwrap_or(0),
            net_rx_bytes: nic("rx_bytes"),
            net_tx_bytes: nic("tx_bytes"),
            block_read_bytes,
            block_write_bytes,
            pids: number("pids.current").unwrap_or(0),
        }
    }

    /// The value of `key` in one of the group's `key value` files.
    fn keyed(&self, file: &str, key: &str) -> Option<u64> {
        let text = fs::read_to_string(self.path.join(file)).ok()?;
        text.lines().find_map(|line| {
            line.strip_prefix(key)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
    }

    /// Removes the group; it must have no processes left.
    pub fn remove(&self) {
        if let Err(err) = fs::remove_dir(&self.path) {
            if err.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("removing cgroup {}: {err}", self.path.display());
            }
        }
        // The pod's group goes with its last container (busy until then).
        if let Some(pod) = self.path.parent() {
            let _ = fs::remove_dir(pod);
        }
    }
}

/// The guest's memory in bytes (`MemTotal` of /proc/meminfo).
fn guest_memory() -> Option<u64> {
    let meminfo = fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_map_like_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(0), 100);
    }
}
