//! runc: containers from the same rootfs as Hull's image, with runc's
//! state directory (`--root`) in the scratch area.

use crate::cleanup::janitor;
use crate::proc;
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

/// runc as an environment.
pub struct Runc {
    root: PathBuf,
    bundles: PathBuf,
    rootfs: PathBuf,
    /// A volume directory, bind-mounted as `/vol`.
    pub volume: PathBuf,
}

/// How a runc container is made.
#[derive(Debug, Default, Clone)]
pub struct Spec<'a> {
    /// The process's arguments.
    pub args: Vec<String>,
    /// A network namespace to join (a path), instead of a new one.
    pub netns: Option<&'a Path>,
    /// Host directory → container directory bind mounts.
    pub binds: Vec<(PathBuf, &'a str)>,
}

impl Runc {
    /// runc's state directory and the volume.
    pub fn setup(scratch: &Path, rootfs: &Path) -> Result<Runc> {
        let runc = Runc {
            root: scratch.join("runc-root"),
            bundles: scratch.join("runc-bundles"),
            rootfs: rootfs.to_path_buf(),
            volume: scratch.join("runc-volume"),
        };
        for dir in [&runc.root, &runc.bundles, &runc.volume] {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        janitor().runc_root(runc.root.clone());
        Ok(runc)
    }

    /// `runc --root ROOT`; add arguments.
    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new("runc");
        cmd.arg("--root").arg(&self.root);
        cmd
    }

    /// Writes bundle `id` (runc's default spec, changed by `spec`); returns its directory.
    pub fn bundle(&self, id: &str, spec: &Spec<'_>) -> Result<PathBuf> {
        let dir = self.bundles.join(id);
        std::fs::create_dir_all(&dir)?;
        proc::output(Command::new("runc").arg("spec").arg("--bundle").arg(&dir))
            .context("runc spec")?;
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path)?;
        let mut config: Value = serde_json::from_str(&text)?;
        edit_spec(&mut config, &self.rootfs, spec);
        std::fs::write(&path, serde_json::to_string_pretty(&config)?)?;
        Ok(dir)
    }

    /// `runc run` of bundle `dir` as `id`, in the foreground.
    pub fn run(&self, id: &str, dir: &Path) -> Command {
        let mut cmd = self.cmd();
        cmd.arg("run").arg("--bundle").arg(dir).arg(id);
        cmd
    }

    /// Starts `id` detached.
    pub fn run_detached(&self, id: &str, spec: &Spec<'_>) -> Result<()> {
        let dir = self.bundle(id, spec)?;
        let mut cmd = self.cmd();
        cmd.arg("run").arg("-d").arg("--bundle").arg(&dir).arg(id);
        // runc -d keeps the container's stdio: give it nothing to hold.
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let status = cmd
            .stdin(std::process::Stdio::null())
            .status()
            .with_context(|| format!("starting runc container {id}"))?;
        anyhow::ensure!(status.success(), "runc run -d {id} failed ({status})");
        Ok(())
    }

    /// The pid of container `id`'s init.
    pub fn pid(&self, id: &str) -> Result<u32> {
        let text = proc::output(self.cmd().args(["state", id]))?;
        let state: Value = serde_json::from_str(&text)?;
        state["pid"]
            .as_u64()
            .and_then(|p| u32::try_from(p).ok())
            .with_context(|| format!("runc state {id}: no pid"))
    }

    /// `runc delete -f` of `ids`.
    pub fn remove(&self, ids: &[String]) {
        for id in ids {
            let _ = proc::output(self.cmd().args(["delete", "-f", id]));
        }
    }
}

/// Changes runc's default spec: no terminal, `args`, a writable shared
/// rootfs, `binds` bind-mounted, the network namespace joined.
pub fn edit_spec(config: &mut Value, rootfs: &Path, spec: &Spec<'_>) {
    config["process"]["terminal"] = json!(false);
    config["process"]["args"] = json!(spec.args);
    config["root"] = json!({"path": rootfs, "readonly": false});
    if let Some(mounts) = config["mounts"].as_array_mut() {
        for (host, ctr) in &spec.binds {
            mounts.push(json!({
                "destination": ctr, "type": "bind", "source": host,
                "options": ["rbind", "rw"]
            }));
        }
    }
    if let Some(netns) = spec.netns {
        if let Some(nss) = config["linux"]["namespaces"].as_array_mut() {
            for ns in nss.iter_mut() {
                if ns["type"] == "network" {
                    *ns = json!({"type": "network", "path": netns});
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_the_default_spec() {
        let mut c = json!({
            "process": {"terminal": true, "args": ["sh"]},
            "root": {"path": "rootfs", "readonly": true},
            "mounts": [],
            "linux": {"namespaces": [{"type": "pid"}, {"type": "network"}]}
        });
        let spec = Spec {
            args: vec!["/bin/sleep".into(), "9".into()],
            netns: Some(Path::new("/var/run/netns/x")),
            binds: vec![(PathBuf::from("/s/vol"), "/vol")],
        };
        edit_spec(&mut c, Path::new("/s/rootfs"), &spec);
        assert_eq!(c["process"]["terminal"], json!(false));
        assert_eq!(c["process"]["args"], json!(["/bin/sleep", "9"]));
        assert_eq!(c["root"], json!({"path": "/s/rootfs", "readonly": false}));
        assert_eq!(c["mounts"][0]["source"], json!("/s/vol"));
        assert_eq!(
            c["linux"]["namespaces"][1]["path"],
            json!("/var/run/netns/x")
        );
    }
}
