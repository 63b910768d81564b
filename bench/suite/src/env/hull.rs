//! Hull: `hull` in a network namespace of the suite's own, with its state
//! (`HULL_ROOT`, `HULL_RUN_DIR`) in the scratch directory.

use crate::cleanup::{janitor, HullState};
use crate::config::Config;
use crate::proc;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Hull as an environment.
pub struct Hull {
    /// The hull binary.
    pub bin: PathBuf,
    /// Its network namespace.
    pub netns: String,
    root: PathBuf,
    run: PathBuf,
    lib: Option<PathBuf>,
    /// A volume directory for `-v`.
    pub volume: PathBuf,
    /// `--vmm` for `hull run`, if chosen.
    pub vmm: Option<String>,
}

impl Hull {
    /// Makes the namespace and imports the rootfs as [`super::IMAGE`].
    pub fn setup(cfg: &Config, scratch: &Path, rootfs: &Path) -> Result<Hull> {
        let netns = format!("hull-bench-{}", std::process::id());
        super::make_netns(&netns)?;
        let hull = Hull {
            bin: cfg.hull.clone(),
            netns,
            root: scratch.join("hull-root"),
            run: scratch.join("hull-run"),
            lib: cfg.lib_dir.clone(),
            volume: scratch.join("hull-volume"),
            vmm: cfg.vmm.clone(),
        };
        std::fs::create_dir_all(&hull.volume)?;
        janitor().hull(HullState {
            bin: hull.bin.clone(),
            netns: hull.netns.clone(),
            root: hull.root.clone(),
            run: hull.run.clone(),
        });
        let tar = scratch.join("rootfs.tar");
        proc::output(
            Command::new("tar")
                .arg("-C")
                .arg(rootfs)
                .arg("-cf")
                .arg(&tar)
                .arg("."),
        )?;
        proc::output(hull.cmd().arg("import").arg(&tar).arg(super::IMAGE))
            .context("importing the benchmark image into Hull")?;
        Ok(hull)
    }

    /// `hull` in the namespace with the suite's environment; add arguments.
    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns])
            .arg(&self.bin)
            .env("HULL_ROOT", &self.root)
            .env("HULL_RUN_DIR", &self.run)
            .env_remove("HULL_TIMINGS_FILE");
        if let Some(lib) = &self.lib {
            cmd.env("HULL_LIB_DIR", lib);
        }
        cmd
    }

    /// `hull info` as key → value.
    pub fn info(&self) -> Result<BTreeMap<String, String>> {
        let text = proc::output(self.cmd().args(["info", "--format", "json"]))?;
        parse_info(&text)
    }

    /// `hull run --rm IMAGE ARGS`, writing its phases to `timings`.
    pub fn run_rm(&self, timings: Option<&Path>, args: &[&str]) -> Command {
        let mut cmd = self.cmd();
        if let Some(t) = timings {
            cmd.env("HULL_TIMINGS_FILE", t);
        }
        cmd.args(["run", "--rm"]);
        if let Some(vmm) = &self.vmm {
            cmd.args(["--vmm", vmm]);
        }
        cmd.arg(super::IMAGE).args(args);
        cmd
    }

    /// Starts a detached container `name` running `args`, with `extra`
    /// options (`-v`, `-p`, `--network`).
    pub fn run_detached(&self, name: &str, extra: &[String], args: &[&str]) -> Result<()> {
        let mut cmd = self.cmd();
        cmd.args(["run", "-d", "--name", name]);
        if let Some(vmm) = &self.vmm {
            cmd.args(["--vmm", vmm]);
        }
        cmd.args(extra).arg(super::IMAGE).args(args);
        proc::output(&mut cmd).with_context(|| format!("starting Hull container {name}"))?;
        Ok(())
    }

    /// `hull rm -f NAMES`.
    pub fn remove(&self, names: &[String]) -> Result<()> {
        if names.is_empty() {
            return Ok(());
        }
        proc::output(self.cmd().args(["rm", "-f"]).args(names))?;
        Ok(())
    }

    /// The monitors of the running containers: processes in the namespace
    /// whose command line is a monitor's.
    pub fn monitors(&self) -> Vec<u32> {
        crate::cleanup::netns_pids(&self.netns)
            .into_iter()
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|c| String::from_utf8_lossy(&c).contains("__monitor"))
                    .unwrap_or(false)
            })
            .collect()
    }
}

/// `key: value` lines as a map.
pub fn parse_info(text: &str) -> Result<BTreeMap<String, String>> {
    let details: serde_json::Value =
        serde_json::from_str(text).context("hull info --format json")?;
    Ok([
        ("backend", "Backend"),
        ("accel", "Accel"),
        ("accel options", "AccelOptions"),
        ("kvm", "KVM"),
        ("kernel", "GuestKernel"),
        ("initramfs", "Initramfs"),
    ]
    .into_iter()
    .filter_map(|(key, field)| {
        let value = details.get(field)?.as_str()?;
        Some((key.to_string(), value.to_string()))
    })
    .collect())
}

/// The phases of `HULL_TIMINGS_FILE` (ms by name).
pub fn read_timings(path: &Path) -> Result<BTreeMap<String, f64>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {} (no phases recorded)", path.display()))?;
    let map: BTreeMap<String, f64> =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hull_info() {
        let info = parse_info(
            r#"{"Backend": "qemu", "Accel": "tcg", "KVM": "paravirtual (PVM: x: y)", "Images": 1}"#,
        )
        .unwrap();
        assert_eq!(info["backend"], "qemu");
        assert_eq!(info["kvm"], "paravirtual (PVM: x: y)");
    }
}
