//! Debian's containerd, started for a test with a root, state and socket of
//! its own, in the network namespace of a [`Hull`] installation, with
//! Hull's shim (`containerd-shim-hull-v2`) on its `PATH`.

use crate::harness::{eventually, stale, target_dir, Hull};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// containerd's name for Hull's runtime.
pub const RUNTIME: &str = "io.containerd.hull.v2";

/// How long containerd may take to open its socket.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A containerd of the test's own.
pub struct Containerd {
    /// The installation whose namespace, scratch space and guest artefacts it uses.
    pub hull: Hull,
    child: Child,
}

impl Containerd {
    /// Starts containerd (1.6 from Debian: it speaks the shim's task API
    /// v2); panics, loudly, when it or the shim is missing.
    pub fn start() -> Containerd {
        let hull = Hull::new();
        let shim = target_dir().join("debug/containerd-shim-hull-v2");
        assert!(
            shim.exists(),
            "{} is missing: build it first (scripts/setup.sh debug does)",
            shim.display()
        );
        if let Some(stale) = stale(&shim, &["shim/src", "runtime/src", "protocol/src"]) {
            panic!("{stale}");
        }
        let dir = hull.scratch.path().join("containerd");
        std::fs::create_dir_all(&dir).expect("creating containerd's directory");
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n",
                root = dir.join("root").display(),
                state = dir.join("state").display(),
                sock = dir.join("c.sock").display(),
            ),
        )
        .expect("writing containerd's config");
        let path = format!(
            "{}:{}",
            shim.parent().unwrap_or(&shim).display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let log = std::fs::File::create(dir.join("containerd.log")).expect("containerd's log");
        let child = hull
            .in_netns(["containerd", "--config"])
            .arg(&config)
            .env("PATH", path)
            .env("HULL_ROOT", hull.root())
            .env("HULL_RUN_DIR", hull.run_dir())
            .env("HULL_LIB_DIR", &hull.lib_dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("containerd's log"))
            .stderr(log)
            .spawn()
            .expect("starting containerd (Debian's containerd package)");
        let containerd = Containerd { hull, child };
        let up = eventually(START_TIMEOUT, || {
            containerd.ctr(["version"]).status.success()
        });
        assert!(up, "containerd did not start:\n{}", containerd.log());
        containerd
    }

    /// Its socket.
    pub fn socket(&self) -> PathBuf {
        self.hull.scratch.path().join("containerd/c.sock")
    }

    /// Its log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.hull.scratch.path().join("containerd/containerd.log"))
            .unwrap_or_default()
    }

    /// A `ctr` command against it.
    pub fn ctr_command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut command = Command::new("ctr");
        command.arg("-a").arg(self.socket()).args(args);
        command.stdin(Stdio::null());
        command
    }

    /// Runs `ctr ARGS` to completion.
    pub fn ctr<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.ctr_command(args).output().expect("running ctr")
    }

    /// Imports Hull's busybox test image as `busybox:latest`.
    pub fn import_busybox(&self) {
        let archive = self.hull.scratch.path().join("busybox.tar");
        crate::write_busybox_archive(&archive, "busybox:latest").expect("busybox archive");
        let out = self.ctr(["images".as_ref(), "import".as_ref(), archive.as_os_str()]);
        assert!(
            out.status.success(),
            "ctr images import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The shims, monitors, VMMs and virtiofsd processes started for it
    /// that still run, and mounts left below its scratch directory.
    pub fn leftovers(&self) -> Vec<String> {
        let containerd = self.child.id();
        let mut left: Vec<String> = self
            .hull
            .processes()
            .into_iter()
            .filter(|pid| *pid != containerd)
            .map(|pid| {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                format!(
                    "process {pid}: {}",
                    String::from_utf8_lossy(&cmdline).replace('\0', " ")
                )
            })
            .collect();
        let scratch = self.hull.scratch.path().to_string_lossy().into_owned();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        left.extend(
            mountinfo
                .lines()
                .filter_map(|l| l.split(' ').nth(4))
                .filter(|point| point.starts_with(&scratch))
                .map(|point| format!("mount {point}")),
        );
        left
    }

    /// Asserts that nothing is left, waiting a little for what is on its way out.
    pub fn assert_nothing_left(&self) {
        let clean = eventually(Duration::from_secs(20), || self.leftovers().is_empty());
        assert!(clean, "left behind:\n{}", self.leftovers().join("\n"));
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // What a failed test left: shims, monitors, VMMs (by pid: only
        // ours name the scratch directory), then mounts below it.
        for pid in self.hull.processes() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        let scratch = self.hull.scratch.path().to_string_lossy().into_owned();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<&str> = mountinfo
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|point| point.starts_with(&scratch))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for point in points {
            let _ = Command::new("umount").args(["-l", point]).status();
        }
    }
}
