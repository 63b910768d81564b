//! Runs the real `hull` binary with a state root and run directory of its own.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The name the shared busybox test image is loaded under.
pub const BUSYBOX_IMAGE: &str = "hull.test/busybox:latest";

/// A `hull` installation for tests: binary, guest artefacts, private state.
pub struct Hull {
    /// The `hull` executable.
    pub bin: PathBuf,
    /// Directory with vmlinux, initramfs.img and virtiofsd.
    pub lib_dir: PathBuf,
    /// Scratch space holding `root` and `run`; removed on drop.
    pub scratch: tempfile::TempDir,
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
        Self { bin, lib_dir, scratch }
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
        let mut command = Command::new(&self.bin);
        command
            .args(args)
            .env("HULL_ROOT", self.root())
            .env("HULL_RUN_DIR", self.run_dir())
            .env("HULL_LIB_DIR", &self.lib_dir)
            .env_remove("HULL_KERNEL")
            .env_remove("HULL_INITRD")
            .env_remove("HULL_VIRTIOFSD")
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

/// One installation with the busybox image loaded, shared by a test binary.
pub fn shared() -> &'static Hull {
    static SHARED: OnceLock<Hull> = OnceLock::new();
    SHARED.get_or_init(|| {
        let hull = Hull::new();
        hull.load_busybox().expect("loading the busybox test image");
        hull
    })
}

/// Stdout as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
