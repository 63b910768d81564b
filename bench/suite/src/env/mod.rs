//! The environments measured side by side: Hull, runc and the bare host,
//! set up in a scratch directory and network namespace of the suite's own.

pub mod host;
pub mod hull;
pub mod runc;

use crate::cleanup::janitor;
use crate::config::Config;
use crate::proc;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workload program's path inside the containers.
pub const WORK_IN_CONTAINER: &str = "/bin/hull-bench-work";
/// The directory on the container's root the file workloads use.
pub const ROOT_DIR: &str = "/var/bench";
/// Where a volume (Hull's `-v`, runc's bind mount) appears in a container.
pub const VOLUME_DIR: &str = "/vol";
/// The image Hull runs: busybox and the workload program.
pub const IMAGE: &str = "hull-bench:latest";
/// busybox applets the rootfs links.
const APPLETS: [&str; 6] = ["sh", "true", "sleep", "httpd", "uname", "cat"];

/// Everything a run shares: the scratch directory, the rootfs, the
/// environments.
pub struct Bench {
    /// The sizes and repeats.
    pub cfg: Config,
    /// The scratch directory (removed at the end).
    pub scratch: PathBuf,
    /// busybox and the workload program: Hull's image and runc's rootfs.
    pub rootfs: PathBuf,
    /// Hull, in its own network namespace.
    pub hull: hull::Hull,
    /// runc, with its state in the scratch directory.
    pub runc: runc::Runc,
    /// The bare host.
    pub host: host::Host,
    /// `hull info`, as key → value.
    pub info: std::collections::BTreeMap<String, String>,
}

/// Where a workload runs.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// In the Hull container of this name.
    Hull(&'a str),
    /// In the runc container of this id.
    Runc(&'a str),
    /// On the host.
    Host,
}

impl Target<'_> {
    /// The environment's key in the results.
    pub fn env(&self) -> &'static str {
        match self {
            Target::Hull(_) => "hull",
            Target::Runc(_) => "runc",
            Target::Host => "host",
        }
    }
}

/// A fresh scratch directory, `/tmp/hull-bench-PID-N`.
fn make_scratch() -> Result<PathBuf> {
    let base = std::env::temp_dir();
    for n in 0..1000 {
        let dir = base.join(format!("hull-bench-{}-{n}", std::process::id()));
        if std::fs::create_dir(&dir).is_ok() {
            janitor().scratch(dir.clone());
            // Unprivileged VMMs reach their directories through it.
            proc::output(Command::new("chmod").arg("711").arg(&dir))?;
            return Ok(dir);
        }
    }
    anyhow::bail!("no scratch directory could be made in {}", base.display())
}

/// Lays out the rootfs: busybox with its applets, the workload program, a
/// web root, the workload directory.
fn make_rootfs(rootfs: &Path, work: &Path, busybox: &Path) -> Result<()> {
    for dir in [
        "bin",
        "www",
        "var/bench",
        "vol",
        "tmp",
        "proc",
        "sys",
        "dev",
    ] {
        std::fs::create_dir_all(rootfs.join(dir))
            .with_context(|| format!("creating {}", rootfs.join(dir).display()))?;
    }
    std::fs::copy(busybox, rootfs.join("bin/busybox"))
        .with_context(|| format!("copying {}", busybox.display()))?;
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet))
            .with_context(|| format!("linking {applet}"))?;
    }
    std::fs::copy(work, rootfs.join("bin/hull-bench-work"))
        .with_context(|| format!("copying {}", work.display()))?;
    std::fs::write(rootfs.join("www/index.html"), "hull-bench\n")?;
    Ok(())
}

/// Makes a network namespace with its loopback up.
pub fn make_netns(name: &str) -> Result<()> {
    proc::output(Command::new("ip").args(["netns", "add", name]))?;
    janitor().netns(name);
    proc::output(
        Command::new("ip").args(["netns", "exec", name, "ip", "link", "set", "lo", "up"]),
    )?;
    Ok(())
}

impl Bench {
    /// Whether `env`'s own clock can time a workload. Not a guest's under
    /// QEMU's emulator: Hull's guest kernel then runs on a jiffies clock
    /// that loses ticks while the vCPU is busy; its workloads are timed by
    /// the host's clock instead (the arrival of their begin and result
    /// lines).
    pub fn own_clock_trusted(&self, env: &str) -> bool {
        env != "hull" || self.info.get("accel").is_some_and(|a| a != "tcg")
    }

    /// Sets everything up: scratch directory, rootfs, Hull's namespace and
    /// image, runc's state directory, the host's directory.
    pub fn setup(cfg: Config) -> Result<Bench> {
        let scratch = make_scratch()?;
        let rootfs = scratch.join("rootfs");
        make_rootfs(&rootfs, &cfg.work, &cfg.busybox)?;
        let hull = hull::Hull::setup(&cfg, &scratch, &rootfs)?;
        let runc = runc::Runc::setup(&scratch, &rootfs)?;
        let host = host::Host::setup(&scratch, &rootfs)?;
        let info = hull.info()?;
        Ok(Bench {
            cfg,
            scratch,
            rootfs,
            hull,
            runc,
            host,
            info,
        })
    }

    /// The command that runs the workload program with `args` in `target`;
    /// `dir` names a container directory (`ROOT_DIR`, `VOLUME_DIR`) that the
    /// host replaces with its own.
    pub fn work(&self, target: Target<'_>, args: &[String]) -> Command {
        match target {
            Target::Hull(name) => {
                let mut cmd = self.hull.cmd();
                cmd.args(["exec", name, WORK_IN_CONTAINER]).args(args);
                cmd
            }
            Target::Runc(id) => {
                let mut cmd = self.runc.cmd();
                cmd.args(["exec", id, WORK_IN_CONTAINER]).args(args);
                cmd
            }
            Target::Host => {
                let args: Vec<String> = args.iter().map(|a| self.host.map_dir(a)).collect();
                let mut cmd = Command::new(self.rootfs.join("bin/hull-bench-work"));
                cmd.args(args);
                cmd
            }
        }
    }
}
