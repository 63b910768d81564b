//! Debian's containerd, started for a test with a root, state and socket of
//! its own, in the network namespace of a [`Hull`] installation, with
//! Hull's shim (`containerd-shim-hull-v2`) on its `PATH`.

use crate::harness::{eventually, stale, Hull};
use crate::registry::TestRegistry;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// containerd's name for Hull's runtime.
pub const RUNTIME: &str = "io.containerd.hull.v2";

/// Where the CRI tests' images come from: a registry on the loopback of the
/// test's network namespace, which containerd runs in.
const REGISTRY_PORT: u16 = 5000;

/// The sandbox (pause) image of the CRI tests, in their registry.
pub const PAUSE_IMAGE: &str = "127.0.0.1:5000/hull-test/pause:latest";

/// The busybox image of the CRI tests, in their registry.
pub const BUSYBOX_IMAGE: &str = "127.0.0.1:5000/hull-test/busybox:latest";

/// The pods' network: a bridge in the test's network namespace.
const CNI_CONFIG: &str = r#"{
  "cniVersion": "1.0.0",
  "name": "hull-test",
  "plugins": [
    { "type": "bridge", "bridge": "hullcni0", "isGateway": true, "ipMasq": false,
      "ipam": { "type": "host-local", "ranges": [[{ "subnet": "10.99.0.0/24" }]] } },
    { "type": "loopback" }
  ]
}"#;

/// How long containerd may take to open its socket.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A containerd of the test's own.
pub struct Containerd {
    /// The installation whose namespace, scratch space and guest artefacts it uses.
    pub hull: Hull,
    child: Child,
    /// The CRI tests' registry.
    registry: Option<TestRegistry>,
    /// The pod network namespaces (`/run/netns/cni-*`) there were before
    /// it started: the CRI plugin's own, made later, go with it.
    netns_before: Vec<String>,
}

/// The CRI plugin's pod network namespaces now.
fn cri_netns() -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|name| name.starts_with("cni-"))
        .collect()
}

impl Containerd {
    /// Starts containerd (1.6 from Debian: it speaks the shim's task API
    /// v2); panics, loudly, when it or the shim is missing.
    pub fn start() -> Containerd {
        Containerd::start_with(false)
    }

    /// Starts containerd with its CRI plugin: runtime handler `hull` is
    /// Hull's shim, pods get their network from Debian's CNI plugins
    /// (bridge, host-local, loopback) inside the test's network namespace,
    /// and the sandbox image is [`PAUSE_IMAGE`] (push it first).
    pub fn start_with_cri() -> Containerd {
        Containerd::start_with(true)
    }

    fn start_with(cri: bool) -> Containerd {
        let hull = Hull::new();
        // Beside the `hull` under test (HULL_BIN: a release build for bench/run).
        let shim = hull.bin.with_file_name("containerd-shim-hull-v2");
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
        let mut config = format!(
            "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
             [grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n",
            root = dir.join("root").display(),
            state = dir.join("state").display(),
            sock = dir.join("c.sock").display(),
        );
        let registry = cri.then(|| TestRegistry::start(&hull, REGISTRY_PORT, None));
        if let Some(registry) = &registry {
            let net_d = dir.join("net.d");
            std::fs::create_dir_all(&net_d).expect("creating the CNI config directory");
            std::fs::write(net_d.join("10-hull-test.conflist"), CNI_CONFIG)
                .expect("writing the CNI config");
            config.push_str(&format!(
                // restrict_oom_score_adj: where root lacks CAP_SYS_RESOURCE
                // (this machine's bounding set has no bit 24), runc cannot
                // give a pod's containers a lower OOM score than its own.
                "[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"{PAUSE_IMAGE}\"\n  restrict_oom_score_adj = true\n\
                 [plugins.\"io.containerd.grpc.v1.cri\".cni]\n  bin_dir = \"/usr/lib/cni\"\n  conf_dir = \"{}\"\n\
                 [plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  default_runtime_name = \"hull\"\n\
                 [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.hull]\n  runtime_type = \"{RUNTIME}\"\n\
                 [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n\
                 [plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"{addr}\"]\n  endpoint = [\"http://{addr}\"]\n",
                net_d.display(),
                addr = registry.address,
            ));
        } else {
            config.push_str("disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n");
        }
        let config_path = dir.join("config.toml");
        std::fs::write(&config_path, config).expect("writing containerd's config");
        let path = format!(
            "{}:{}",
            shim.parent().unwrap_or(&shim).display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let log = std::fs::File::create(dir.join("containerd.log")).expect("containerd's log");
        let netns_before = cri_netns();
        // In the test's network namespace, but with the host's mounts:
        // `ip netns exec` would mount a sysfs of its own over /sys and hide
        // the cgroup mounts runc needs.
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", hull.netns))
            .args(["containerd", "--config"])
            .arg(&config_path)
            .env("PATH", path)
            .env("HULL_ROOT", hull.root())
            .env("HULL_RUN_DIR", hull.run_dir())
            .env("HULL_LIB_DIR", &hull.lib_dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("containerd's log"))
            .stderr(log)
            .spawn()
            .expect("starting containerd (Debian's containerd package)");
        let containerd = Containerd {
            hull,
            child,
            registry,
            netns_before,
        };
        let up = eventually(START_TIMEOUT, || {
            containerd.ctr(["version"]).status.success()
        });
        assert!(up, "containerd did not start:\n{}", containerd.log());
        containerd
    }

    /// Puts Hull's test images for CRI, [`BUSYBOX_IMAGE`] and
    /// [`PAUSE_IMAGE`], in the test's registry (`hull push`), where the
    /// CRI plugin pulls them from.
    pub fn push_images(&self) {
        let busybox = self.hull.scratch.path().join("busybox.tar");
        crate::write_busybox_archive(&busybox, BUSYBOX_IMAGE).expect("busybox archive");
        let pause = self.hull.scratch.path().join("pause.tar");
        let layer = crate::layer_tar(&crate::busybox_rootfs().expect("busybox")).expect("layer");
        crate::write_oci_archive(
            &pause,
            PAUSE_IMAGE,
            &[layer],
            &crate::ImageSettings {
                // What a pause container does: nothing, until it is stopped.
                // (A full path: the image sets no PATH, which runc needs.)
                cmd: vec![
                    "/bin/sh".into(),
                    "-c".into(),
                    "trap 'exit 0' TERM; while :; do sleep 1; done".into(),
                ],
                ..Default::default()
            },
        )
        .expect("pause archive");
        for (archive, name) in [(&busybox, BUSYBOX_IMAGE), (&pause, PAUSE_IMAGE)] {
            for args in [
                vec![
                    "load".as_ref(),
                    "-q".as_ref(),
                    "-i".as_ref(),
                    archive.as_os_str(),
                ],
                vec!["push".as_ref(), std::ffi::OsStr::new(name)],
            ] {
                let out = self.hull.run(&args);
                assert!(
                    out.status.success(),
                    "hull {args:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
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
        let ours = [
            Some(self.child.id()),
            self.registry.as_ref().map(TestRegistry::pid),
        ];
        let mut left: Vec<String> = self
            .hull
            .processes()
            .into_iter()
            .filter(|pid| !ours.contains(&Some(*pid)))
            .map(|pid| {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                format!(
                    "process {pid}: {}",
                    String::from_utf8_lossy(&cmdline).replace('\0', " ")
                )
            })
            .collect();
        left.extend(
            self.mounts()
                .into_iter()
                .map(|point| format!("mount {point}")),
        );
        left.extend(
            self.new_cri_netns()
                .into_iter()
                .map(|name| format!("pod network namespace /run/netns/{name}")),
        );
        left
    }

    /// Mount points below its scratch directory.
    fn mounts(&self) -> Vec<String> {
        let scratch = self.hull.scratch.path().to_string_lossy().into_owned();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|point| point.starts_with(&scratch))
            .map(str::to_string)
            .collect()
    }

    /// The CRI plugin's pod network namespaces made since it started.
    fn new_cri_netns(&self) -> Vec<String> {
        cri_netns()
            .into_iter()
            .filter(|name| !self.netns_before.contains(name))
            .collect()
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
        let mut points = self.mounts();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for point in points {
            let _ = Command::new("umount").args(["-l", &point]).status();
        }
        // Pods a failed test left: their network namespaces go too.
        for name in self.new_cri_netns() {
            let _ = Command::new("ip").args(["netns", "del", &name]).status();
        }
    }
}
