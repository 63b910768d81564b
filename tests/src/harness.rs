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
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.netns])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
    }
}

/// The workspace's target directory, found from the test executable.
pub(crate) fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test> → target
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// The newest modification time of the files below `dir`.
fn newest_in(dir: &Path) -> Option<std::time::SystemTime> {
    let mut newest = None;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                pending.push(entry.path());
            } else if let Ok(modified) = meta.modified() {
                newest = newest.max(Some(modified));
            }
        }
    }
    newest
}

/// Fails, saying what to run, when a built artefact is older than the
/// sources it comes from: a test must never pass against a stale `hull`.
/// Checked once per test binary.
fn check_fresh(bin: &Path, lib_dir: &Path) {
    static STALE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let stale = STALE.get_or_init(|| {
        [
            (bin.to_path_buf(), &["runtime/src", "protocol/src"][..]),
            (
                lib_dir.join("initramfs.img"),
                &["guest-agent/src", "protocol/src"][..],
            ),
            (bin.with_file_name("hull-vmm"), &["vmm/src"][..]),
            (
                bin.with_file_name("hull-oci"),
                &["oci/src", "runtime/src", "protocol/src"][..],
            ),
        ]
        .iter()
        .find_map(|(artefact, sources)| stale(artefact, sources))
    });
    if let Some(stale) = stale {
        panic!("{stale}");
    }
}

/// Why `artefact` is stale: it is older than a file below one of
/// `sources` (relative to the repository); `None` when it is fresh or
/// was not built.
pub(crate) fn stale(artefact: &Path, sources: &[&str]) -> Option<String> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let built_at = std::fs::metadata(artefact)
        .and_then(|m| m.modified())
        .ok()?;
    sources.iter().find_map(|source| {
        newest_in(&repo.join(source))
            .is_some_and(|changed| changed > built_at)
            .then(|| {
                format!(
                    "{} is older than {source}: rebuild first (scripts/setup.sh debug, or scripts/test.sh which does it)",
                    artefact.display()
                )
            })
    })
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
        for needed in [
            bin.clone(),
            lib_dir.join("vmlinux"),
            lib_dir.join("initramfs.img"),
            lib_dir.join("virtiofsd"),
        ] {
            assert!(
                needed.exists(),
                "{} is missing: build Hull first (scripts/test.sh does it all)",
                needed.display()
            );
        }
        check_fresh(&bin, &lib_dir);
        // Short: sandbox sockets live below it and unix socket paths are limited.
        let scratch = tempfile::Builder::new()
            .prefix("hull-e2e-")
            .tempdir_in("/tmp")
            .expect("creating a scratch dir");
        // Passable (not listable) by the unprivileged users VMMs run as,
        // as /run is on the way to /run/hull.
        std::fs::set_permissions(
            scratch.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o711),
        )
        .expect("opening the scratch dir to VMMs");
        let suffix = scratch
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let netns = format!("hull-test-{}", suffix.trim_start_matches("hull-e2e-"));
        let created = Command::new("ip")
            .args(["netns", "add", &netns])
            .status()
            .expect("running ip netns add");
        assert!(created.success(), "cannot create network namespace {netns}");
        let hull = Self {
            bin,
            lib_dir,
            netns,
            scratch,
        };
        assert!(hull
            .in_netns(["ip", "link", "set", "lo", "up"])
            .status()
            .expect("ip")
            .success());
        // A new namespace copies the host's forwarding (on wherever Docker
        // ran): the tests start from Linux's default, off.
        assert!(hull
            .in_netns(["sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward"])
            .status()
            .expect("sh")
            .success());
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
        let mut command = self.in_netns(
            std::iter::once(self.bin.as_os_str().to_owned())
                .chain(args.into_iter().map(|a| a.as_ref().to_owned())),
        );
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
        anyhow::ensure!(
            output.status.success(),
            "hull load failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(())
    }

    /// The address leases file of network `name`.
    pub fn leases_file(&self, name: &str) -> PathBuf {
        self.root()
            .join("network/networks")
            .join(name)
            .join("leases.json")
    }

    /// Sandbox directories left in the run directory.
    pub fn leftover_sandboxes(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.run_dir())
            .map(|dir| dir.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default()
    }

    /// Everything a container that is gone could have left behind, one line
    /// each: sandbox and container directories, processes started for this
    /// installation (monitors, VMMs, virtiofsd), taps, address leases, port
    /// reservations, published-port rules and mounts below the scratch
    /// directory. Empty when nothing is left.
    pub fn leftovers(&self) -> Vec<String> {
        let mut left: Vec<String> = self
            .leftover_sandboxes()
            .iter()
            .map(|p| format!("sandbox directory {}", p.display()))
            .collect();
        if let Ok(dir) = std::fs::read_dir(self.root().join("containers")) {
            // (`.names` is the name table, not a container.)
            left.extend(
                dir.flatten()
                    .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                    .map(|e| format!("container directory {}", e.path().display())),
            );
        }
        let scratch = self.scratch.path().to_string_lossy().into_owned();
        for pid in self.processes() {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            left.push(format!(
                "process {pid}: {}",
                String::from_utf8_lossy(&cmdline).replace('\0', " ")
            ));
        }
        let links = self
            .in_netns(["ip", "-o", "link", "show"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        left.extend(
            links
                .lines()
                .filter(|l| l.contains("hulltap"))
                .map(|l| format!("tap: {l}")),
        );
        for network in std::fs::read_dir(self.root().join("network/networks"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let leases =
                std::fs::read_to_string(network.path().join("leases.json")).unwrap_or_default();
            if let Ok(file) = serde_json::from_str::<serde_json::Value>(&leases) {
                for lease in file["leases"].as_array().into_iter().flatten() {
                    left.push(format!(
                        "lease on {}: {lease}",
                        network.file_name().to_string_lossy()
                    ));
                }
            }
        }
        let ports =
            std::fs::read_to_string(self.root().join("network/ports.json")).unwrap_or_default();
        if let Ok(file) = serde_json::from_str::<serde_json::Value>(&ports) {
            let reservations = file
                .get("reservations")
                .or(Some(&file))
                .and_then(|r| r.as_array().cloned())
                .unwrap_or_default();
            left.extend(
                reservations
                    .iter()
                    .map(|r| format!("port reservation: {r}")),
            );
        }
        let rules = self
            .in_netns(["nft", "list", "table", "ip", "hull"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        left.extend(
            rules
                .lines()
                .filter(|l| l.contains(" dnat to "))
                .map(|l| format!("nftables rule: {}", l.trim())),
        );
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        left.extend(
            mounts
                .lines()
                .filter(|l| l.contains(&scratch))
                .map(|l| format!("mount: {l}")),
        );
        left
    }

    /// Live processes whose command line names this installation's scratch
    /// directory (everything Hull starts for it does).
    pub fn processes(&self) -> Vec<u32> {
        let scratch = self.scratch.path().to_string_lossy().into_owned();
        let me = std::process::id();
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| pid != me)
            .filter(|pid| {
                let state =
                    std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let zombie = state
                    .rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
                !zombie
                    && std::fs::read(format!("/proc/{pid}/cmdline"))
                        .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&scratch))
            })
            .collect()
    }

    /// Asserts that nothing is left (see [`Self::leftovers`]), waiting a
    /// little for processes that are on their way out.
    pub fn assert_nothing_left(&self) {
        let clean = crate::harness::eventually(std::time::Duration::from_secs(10), || {
            self.leftovers().is_empty()
        });
        assert!(clean, "left behind:\n{}", self.leftovers().join("\n"));
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
    assert!(
        out.status.success(),
        "hull {args:?} failed ({:?}): {}",
        out.status.code(),
        stderr(&out)
    );
    stdout(&out).trim().to_string()
}

/// `program` run as user and group `id`, with no supplementary groups
/// (`setpriv`, util-linux), to see what another user on the host can do.
pub fn as_user(id: u32, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new("setpriv");
    command
        .arg(format!("--reuid={id}"))
        .arg(format!("--regid={id}"))
        .args(["--clear-groups", "--"])
        .arg(program);
    command
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
