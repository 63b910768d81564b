//! The VMM's own cgroup: whatever a guest that took its VMM over does, the
//! VMM process gets no more memory, CPU and threads than its VM was given,
//! plus the overhead its backend states ([`crate::hypervisor::Overhead`]).
//!
//! `hull/<sandbox id>` under cgroup v2 (`/sys/fs/cgroup`, the `memory`,
//! `cpu` and `pids` controllers enabled down to it), or under each v1
//! hierarchy (`memory`, `cpu`, `pids`) of a hybrid host; in a mount
//! namespace without them (`ip netns exec`), the same hierarchies mounted
//! at `/run/hull-cgroup`. The monitor moves
//! the VMM in between fork and exec, before it runs a single instruction of
//! its own, and removes the cgroup once the VMM is gone.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where cgroup file systems are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The parent of every VMM's cgroup, under each hierarchy.
const PARENT: &str = "hull";
/// The CPU period the quota is given in, in microseconds.
const CPU_PERIOD_US: u64 = 100_000;

/// What the VMM may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Memory, in bytes: guest memory and the VMM's overhead.
    pub memory_bytes: u64,
    /// CPU time per [`CPU_PERIOD_US`], in microseconds.
    pub cpu_quota_us: u64,
    /// Threads.
    pub pids: u64,
}

impl Limits {
    /// The limits of a VM of `vcpus` and `memory_mib`, with the backend's
    /// `overhead`: one CPU more than its vCPUs (device work and the VMM's
    /// own threads).
    pub fn for_vm(vcpus: u32, memory_mib: u32, overhead: crate::hypervisor::Overhead) -> Self {
        Self {
            memory_bytes: (u64::from(memory_mib) + u64::from(overhead.memory_mib)) << 20,
            cpu_quota_us: (u64::from(vcpus) + 1) * CPU_PERIOD_US,
            pids: u64::from(vcpus) + u64::from(overhead.threads),
        }
    }
}

/// One cgroup per hierarchy (one under v2).
#[derive(Debug)]
pub struct VmmCgroup {
    dirs: Vec<PathBuf>,
}

/// The host's cgroup layout, and where it is mounted.
enum Layout {
    /// cgroup v2 only.
    Unified(PathBuf),
    /// v1 hierarchies (a hybrid host's v2 mount holds no controller).
    Legacy(PathBuf),
}

/// Finds the cgroup file systems at /sys/fs/cgroup; when Hull runs in a
/// mount namespace whose /sys has none (`ip netns exec` mounts a /sys of
/// its own), mounts the host's hierarchies in [`PRIVATE_ROOT`] first.
fn layout() -> std::io::Result<Layout> {
    found(Path::new(CGROUP_ROOT)).map_or_else(mount_private, Ok)
}

/// Where Hull mounts the cgroup hierarchies it needs when /sys/fs/cgroup
/// shows none (in the namespace it runs in).
const PRIVATE_ROOT: &str = "/run/hull-cgroup";

/// The controllers a VMM's cgroup limits.
const CONTROLLERS: [&str; 3] = ["memory", "cpu", "pids"];

fn found(root: &Path) -> Option<Layout> {
    if root.join("cgroup.controllers").exists() {
        Some(Layout::Unified(root.to_path_buf()))
    } else if root.join("memory").join("cgroup.procs").exists() {
        Some(Layout::Legacy(root.to_path_buf()))
    } else {
        None
    }
}

fn mount_private() -> std::io::Result<Layout> {
    let root = Path::new(PRIVATE_ROOT);
    if let Some(layout) = found(root) {
        return Ok(layout);
    }
    // `ID:CONTROLLERS:PATH`: v1 hierarchies have an ID above 0.
    let own = std::fs::read_to_string("/proc/self/cgroup")?;
    let v1: Vec<&str> = own
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (id, controllers) = (fields.next()?, fields.next()?);
            (id != "0" && controllers.split(',').any(|c| CONTROLLERS.contains(&c)))
                .then_some(controllers)
        })
        .collect();
    let mount = |dir: &Path, fstype: &std::ffi::CStr, options: &str| {
        std::fs::create_dir_all(dir)?;
        let target = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())?;
        let options = std::ffi::CString::new(options)?;
        // SAFETY: mount(2) with C strings that outlive the call.
        let ret = unsafe {
            libc::mount(
                c"cgroup".as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                options.as_ptr().cast(),
            )
        };
        if ret < 0 {
            let err = std::io::Error::last_os_error();
            return Err(std::io::Error::new(
                err.kind(),
                format!(
                    "no cgroup file system at {CGROUP_ROOT}, and mounting one at {}: {err}",
                    dir.display()
                ),
            ));
        }
        Ok(())
    };
    if v1.is_empty() {
        mount(root, c"cgroup2", "")?;
    } else {
        for controllers in v1 {
            // Named by the controller Hull uses (`cpu` for `cpu,cpuacct`).
            let Some(name) = controllers.split(',').find(|c| CONTROLLERS.contains(c)) else {
                continue;
            };
            let dir = root.join(name);
            if !dir.join("cgroup.procs").exists() {
                mount(&dir, c"cgroup", controllers)?;
            }
        }
    }
    found(root).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no cgroup memory controller, at {CGROUP_ROOT} or mounted at {PRIVATE_ROOT}"),
        )
    })
}

/// Writes `value` to the control file `file` of `dir`.
fn set(dir: &Path, file: &str, value: &str) -> std::io::Result<()> {
    let path = dir.join(file);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|err| std::io::Error::new(err.kind(), format!("{}: {err}", path.display())))
}

/// The directories a sandbox's cgroup is, or would be, in.
fn dirs_of(layout: &Layout, sandbox_id: &str) -> Vec<PathBuf> {
    match layout {
        Layout::Unified(root) => vec![root.join(PARENT).join(sandbox_id)],
        Layout::Legacy(root) => CONTROLLERS
            .iter()
            .map(|controller| root.join(controller))
            .filter(|hierarchy| hierarchy.is_dir())
            .map(|hierarchy| hierarchy.join(PARENT).join(sandbox_id))
            .collect(),
    }
}

impl VmmCgroup {
    /// Makes the cgroup of sandbox `sandbox_id` with `limits`.
    pub fn create(sandbox_id: &str, limits: Limits) -> std::io::Result<Self> {
        let layout = layout()?;
        let cgroup = Self {
            dirs: dirs_of(&layout, sandbox_id),
        };
        // Removed again if a step below fails.
        let made = cgroup.make(&layout, limits);
        if made.is_err() {
            cgroup.remove();
        }
        made.map(|()| cgroup)
    }

    fn make(&self, layout: &Layout, limits: Limits) -> std::io::Result<()> {
        let memory = limits.memory_bytes.to_string();
        let pids = limits.pids.to_string();
        match layout {
            Layout::Unified(root) => {
                let parent = root.join(PARENT);
                std::fs::create_dir_all(&parent)?;
                for dir in [root, &parent] {
                    set(dir, "cgroup.subtree_control", "+memory +cpu +pids")?;
                }
                let dir = &self.dirs[0];
                std::fs::create_dir_all(dir)?;
                set(dir, "memory.max", &memory)?;
                // Past its memory, the VMM is killed rather than swapped.
                set(dir, "memory.swap.max", "0").or_else(ignore_missing)?;
                set(
                    dir,
                    "cpu.max",
                    &format!("{} {CPU_PERIOD_US}", limits.cpu_quota_us),
                )?;
                set(dir, "pids.max", &pids)?;
            }
            Layout::Legacy(_) => {
                for dir in &self.dirs {
                    std::fs::create_dir_all(dir)?;
                    let hierarchy = dir.parent().and_then(Path::parent).unwrap_or(dir);
                    match hierarchy.file_name().and_then(|n| n.to_str()) {
                        Some("memory") => set(dir, "memory.limit_in_bytes", &memory)?,
                        Some("cpu") => {
                            set(dir, "cpu.cfs_period_us", &CPU_PERIOD_US.to_string())?;
                            set(dir, "cpu.cfs_quota_us", &limits.cpu_quota_us.to_string())?;
                        }
                        Some("pids") => set(dir, "pids.max", &pids)?,
                        _ => {}
                    }
                }
            }
        }
        Ok(())
    }

    /// Its `cgroup.procs` files, open for writing: the VMM's spawn writes
    /// `0` to each (see [`join`]) between fork and exec.
    pub fn procs_files(&self) -> std::io::Result<Vec<OwnedFd>> {
        self.dirs
            .iter()
            .map(|dir| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(dir.join("cgroup.procs"))
                    .map(OwnedFd::from)
            })
            .collect()
    }

    /// Removes it; its processes must be gone (a cgroup they just left may
    /// be busy for a moment).
    pub fn remove(&self) {
        for dir in &self.dirs {
            remove_dir(dir);
        }
    }
}

fn ignore_missing(err: std::io::Error) -> std::io::Result<()> {
    match err.kind() {
        std::io::ErrorKind::NotFound => Ok(()),
        _ => Err(err),
    }
}

fn remove_dir(dir: &Path) {
    for _ in 0..50 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return,
            Err(err) if err.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(err) => {
                tracing::warn!("removing cgroup {}: {err}", dir.display());
                return;
            }
        }
    }
    tracing::warn!("cgroup {} is still busy; left", dir.display());
}

/// Removes what is left of sandbox `sandbox_id`'s cgroup (its monitor died).
pub fn remove_leftover(sandbox_id: &str) {
    let Ok(layout) = layout() else {
        return;
    };
    for dir in dirs_of(&layout, sandbox_id) {
        if dir.exists() {
            remove_dir(&dir);
        }
    }
}

/// Moves the calling process into the cgroups whose `cgroup.procs` files
/// are `procs`. Async-signal-safe: for use between fork and exec.
pub fn join(procs: &[OwnedFd]) -> std::io::Result<()> {
    for file in procs {
        // SAFETY: write(2) of two static bytes to a descriptor we own.
        if unsafe { libc::write(file.as_raw_fd(), c"0".as_ptr().cast(), 1) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypervisor::Overhead;

    #[test]
    fn limits_are_the_vm_and_the_stated_overhead() {
        let limits = Limits::for_vm(
            2,
            256,
            Overhead {
                memory_mib: 64,
                threads: 8,
            },
        );
        assert_eq!(limits.memory_bytes, 320 << 20);
        assert_eq!(limits.cpu_quota_us, 300_000);
        assert_eq!(limits.pids, 10);
    }
}
