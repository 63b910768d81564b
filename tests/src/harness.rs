//! Runs the real `hull` binary with a state root and run directory of its own.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The name the shared busybox test image is loaded under.
pub const BUSYBOX_IMAGE: &str = "hull.test/busybox:latest";

/// A `hull` installation for tests: binary, guest artefacts, private state,
/// and a network namespace of its own in which every `hull` command runs, so
/// that bridges, taps and nftables rules never touch the host's network.
pub struct Hull {
    /// The `hull` executable.
    pub bin: PathBuf,
    /// Directory with vmlinux, initramfs.img and virtiofsd.
    pub lib_dir: PathBuf,
    /// The network namespace `hull` runs in.
    pub netns: String,
    /// Scratch space holding `root` and `run`; removed on drop.
    pub scratch: tempfile::TempDir,
}

impl Drop for Hull {
    fn drop(&mut self) {
        // End whatever a failed test left running in the namespace (only
        // processes there are ours), then delete it with all it holds.
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &self.netns]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.netns]).status();
    }
}

/// The workspace's target directory, found from the test executable.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test> → target
    exe.ancestors().nth(3).map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("target"))
}

impl Hull {
    /// A fresh installation. Panics, loudly, if Hull is not built: an
    /// end-to-end test must never pass by skipping.
    pub fn new() -> Self {
        let bin = std::env::var_os("HULL_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| target_dir().join("debug/hull"));
        let lib_dir = std::env::var_os("HULL_LIB_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| target_dir().join("hull"));
        for needed in [bin.clone(), lib_dir.join("vmlinux"), lib_dir.join("initramfs.img"), lib_dir.join("virtiofsd")] {
            assert!(
                needed.exists(),
                "{} is missing: build Hull first (scripts/test.sh does it all)",
                needed.display()
            );
        }
        // Short: sandbox sockets live below it and unix socket paths are limited.
        let scratch = tempfile::Builder::new().prefix("hull-e2e-").tempdir_in("/tmp").expect("creating a scratch dir");
        let suffix = scratch.path().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let netns = format!("hull-test-{}", suffix.trim_start_matches("hull-e2e-"));
        let created = Command::new("ip").args(["netns", "add", &netns]).status().expect("running ip netns add");
        assert!(created.success(), "cannot create network namespace {netns}");
        let hull = Self { bin, lib_dir, netns, scratch };
        assert!(hull.in_netns(["ip", "link", "set", "lo", "up"]).status().expect("ip").success());
        hull
    }

    /// A command run inside this installation's network namespace.
    pub fn in_netns<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.netns]).args(args);
        command
    }

    /// The state root.
    pub fn root(&self) -> PathBuf {
        self.scratch.path().join("root")
    }

    /// The run directory (sandboxes).
    pub fn run_dir(&self) -> PathBuf {
        self.scratch.path().join("run")
    }

    /// A `hull` command with this installation's environment.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut command = self.in_netns(std::iter::once(self.bin.as_os_str().to_owned()).chain(args.into_iter().map(|a| a.as_ref().to_owned())));
        command
            .env("HULL_ROOT", self.root())
            .env("HULL_RUN_DIR", self.run_dir())
            .env("HULL_LIB_DIR", &self.lib_dir)
            .env_remove("HULL_KERNEL")
            .env_remove("HULL_INITRD")
            .env_remove("HULL_VIRTIOFSD")
            .env_remove("HULL_KERNEL_ARGS")
            .stdin(Stdio::null());
        command
    }

    /// Runs `hull ARGS` to completion.
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.command(args).output().expect("running hull")
    }

    /// Runs `hull ARGS` with `input` on its stdin.
    pub fn run_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running hull");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input).expect("writing stdin");
        drop(stdin);
        child.wait_with_output().expect("waiting for hull")
    }

    /// A fresh installation with the busybox test image loaded.
    pub fn with_busybox() -> Self {
        let hull = Self::new();
        hull.load_busybox().expect("loading the busybox test image");
        hull
    }

    /// Builds the busybox test image and loads it.
    pub fn load_busybox(&self) -> Result<()> {
        let archive = self.scratch.path().join("busybox.tar");
        crate::write_busybox_archive(&archive, BUSYBOX_IMAGE)?;
        let output = self.run(["load", "-i", archive.to_str().context("path")?]);
        anyhow::ensure!(output.status.success(), "hull load failed: {}", String::from_utf8_lossy(&output.stderr));
        Ok(())
    }

    /// Sandbox directories left in the run directory.
    pub fn leftover_sandboxes(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.run_dir())
            .map(|dir| dir.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default()
    }
}

impl Default for Hull {
    fn default() -> Self {
        Self::new()
    }
}

/// Stdout as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs `hull ARGS`, asserting success; returns its trimmed stdout.
pub fn ok(hull: &Hull, args: &[&str]) -> String {
    let out = hull.run(args);
    assert!(out.status.success(), "hull {args:?} failed ({:?}): {}", out.status.code(), stderr(&out));
    stdout(&out).trim().to_string()
}

/// Polls `check` until it holds or `timeout` passes; whether it held.
pub fn eventually(timeout: std::time::Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    check()
}
