//! Hull as dockerd's OCI runtime (`hull-oci`): Debian's real dockerd 20.10
//! and docker CLI, dockerd with its own managed containerd and
//! `--add-runtime hull=…/hull-oci`, all in the test's network namespace and
//! directories; `docker run --runtime hull` gives each container a microVM.

use hull_tests::harness::{Hull, BUSYBOX_IMAGE};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Debian's docker CLI (another may be first on PATH).
const DOCKER: &str = "/usr/bin/docker";
const DOCKERD: &str = "/usr/sbin/dockerd";

/// A dockerd of the test's own.
struct Dockerd<'a> {
    hull: &'a Hull,
    child: Child,
    dir: PathBuf,
}

impl<'a> Dockerd<'a> {
    /// Starts dockerd in `hull`'s network namespace with `hull-oci` as
    /// runtime `hull`, and loads the busybox test image into it.
    fn start(hull: &'a Hull) -> Dockerd<'a> {
        for needed in [DOCKER, DOCKERD] {
            assert!(
                std::path::Path::new(needed).exists(),
                "{needed} is missing: scripts/setup.sh installs docker.io"
            );
        }
        let oci = hull.bin.with_file_name("hull-oci");
        assert!(oci.exists(), "{} is missing: build it first", oci.display());
        let dir = hull.scratch.path().join("docker");
        std::fs::create_dir_all(&dir).unwrap();
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        // nsenter, not `ip netns exec`, which mounts a /sys without the
        // cgroups dockerd needs.
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", hull.netns))
            .arg("--")
            .arg(DOCKERD)
            .arg(format!("--data-root={}", dir.join("data").display()))
            .arg(format!("--exec-root={}", dir.join("exec").display()))
            .arg(format!("--pidfile={}", dir.join("dockerd.pid").display()))
            .arg(format!(
                "--host=unix://{}",
                dir.join("docker.sock").display()
            ))
            .arg(format!("--add-runtime=hull={}", oci.display()))
            // `docker build`'s RUN steps and compose's services too.
            .arg("--default-runtime=hull")
            .arg("--log-level=warn")
            // Hull's state for hull-oci, beside the test's own.
            .env("HULL_ROOT", hull.root())
            .env("HULL_RUN_DIR", hull.run_dir())
            .env("HULL_LIB_DIR", &hull.lib_dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting dockerd");
        let mut dockerd = Dockerd { hull, child, dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !dockerd.docker(&["info"]).status.success() {
            let exited = dockerd.child.try_wait().ok().flatten();
            assert!(
                Instant::now() < deadline && exited.is_none(),
                "dockerd did not come up: {}",
                std::fs::read_to_string(dockerd.dir.join("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let archive = dockerd.dir.join("busybox.tar");
        hull_tests::write_busybox_archive(&archive, BUSYBOX_IMAGE).unwrap();
        let loaded = dockerd.docker(&["load", "-i", archive.to_str().unwrap()]);
        assert!(loaded.status.success(), "docker load: {}", text(&loaded));
        dockerd
    }

    /// The environment that points Docker's clients at this dockerd.
    fn client_env(&self) -> [(&'static str, String); 2] {
        [
            (
                "DOCKER_HOST",
                format!("unix://{}", self.dir.join("docker.sock").display()),
            ),
            (
                "DOCKER_CONFIG",
                self.dir.join("client").display().to_string(),
            ),
        ]
    }

    /// `docker ARGS` against this dockerd.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(DOCKER);
        command
            .envs(self.client_env())
            .args(args)
            .stdin(Stdio::null());
        command
    }

    /// `docker ARGS` on a pty that `driver` (a python script) drives.
    fn on_terminal(&self, driver: &std::path::Path, args: &[&str]) -> Command {
        let mut command = Command::new("python3");
        command
            .arg(driver)
            .arg(DOCKER)
            .args(args)
            .envs(self.client_env())
            .stdin(Stdio::null());
        command
    }

    fn docker(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("running docker")
    }
}

impl Drop for Dockerd<'_> {
    fn drop(&mut self) {
        let ids = self.docker(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.docker(&["rm", "-f", id]);
        }
        // SIGTERM: dockerd stops its containerd; then whatever is left in
        // the namespace goes with it (Hull's Drop).
        // SAFETY: signals the dockerd this test started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The shims outlive containerd: they are ours (their command line
        // names our directory).
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&*self.dir.to_string_lossy()) {
                if let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() {
                    // SAFETY: a process whose command line names this test's directory.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        // dockerd's mounts below the test's directory (overlay2, shm).
        unmount_below(&self.dir);
        let _ = self.hull;
    }
}

/// Detaches the mounts below `dir`, deepest first (what dockerd or podman
/// left there).
fn unmount_below(dir: &std::path::Path) {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with(&*dir.to_string_lossy()))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        let _ = nix::mount::umount2(point, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// The `--root` a runtime was given for container `id`: the directory
/// below `exec_root` that holds `ID/state.json`.
fn state_root_of(exec_root: &std::path::Path, id: &str) -> Option<std::path::PathBuf> {
    let mut dirs = vec![exec_root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        if dir.join(id).join("state.json").is_file() {
            return Some(dir);
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(entry.path());
            }
        }
    }
    None
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn docker_run_with_runtime_hull_boots_a_microvm() {
    let hull = Hull::new();
    let dockerd = Dockerd::start(&hull);
    let run = |args: &[&str]| {
        let mut all = vec!["run", "--runtime", "hull", "--rm"];
        all.extend_from_slice(args);
        dockerd.docker(&all)
    };
    // Hull's guest kernel, not the host's.
    let out = run(&[BUSYBOX_IMAGE, "uname", "-r"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .ends_with("-hull"),
        "{}",
        text(&out)
    );
    // Exit codes, stdout and stderr.
    let out = run(&[BUSYBOX_IMAGE, "sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    // -i: stdin reaches the container.
    let mut child = dockerd
        .command(&[
            "run",
            "--runtime",
            "hull",
            "--rm",
            "-i",
            BUSYBOX_IMAGE,
            "cat",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"through stdin\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through stdin\n");
    // The network dockerd gave it: its bridge's gateway answers.
    let out = run(&[
        BUSYBOX_IMAGE,
        "sh",
        "-c",
        "ip -4 -o addr show eth0; ping -c 1 -W 5 172.17.0.1",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    // -v: a host directory, both ways.
    let volume = hull.scratch.path().join("volume");
    std::fs::create_dir(&volume).unwrap();
    std::fs::write(volume.join("in.txt"), "from the host\n").unwrap();
    let bind = format!("{}:/data", volume.display());
    let out = run(&[
        "-v",
        &bind,
        BUSYBOX_IMAGE,
        "sh",
        "-c",
        "cat /data/in.txt; echo from the guest > /data/out.txt",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from the host\n");
    assert_eq!(
        std::fs::read_to_string(volume.join("out.txt")).unwrap(),
        "from the guest\n"
    );

    // -d -p: served from the namespace's host side; exec, logs, stop,
    // start, restart, kill, rm -f.
    let ok = |args: &[&str]| {
        let out = dockerd.docker(args);
        assert!(out.status.success(), "docker {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    ok(&[
        "run",
        "-d",
        "--runtime",
        "hull",
        "--name",
        "web",
        "-p",
        "8080:80",
        BUSYBOX_IMAGE,
        "sh",
        "-c",
        "echo served > /index.html; echo started; exec httpd -f -p 80 -h /",
    ]);
    let fetched = hull_tests::harness::eventually(Duration::from_secs(30), || {
        hull.in_netns(["wget", "-q", "-O", "-", "http://127.0.0.1:8080/index.html"])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout) == "served\n")
    });
    assert!(fetched, "the published port did not answer");
    assert_eq!(ok(&["exec", "web", "cat", "/index.html"]), "served");
    let out = dockerd.docker(&["exec", "web", "sh", "-c", "exit 4"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let out = dockerd.docker(&["exec", "web", "no-such-command"]);
    assert_eq!(out.status.code(), Some(126), "{}", text(&out));
    // docker update: containerd's runc shim hands hull-oci the resources
    // (`update --resources -`); the container's cgroup in the guest takes them.
    ok(&[
        "update",
        "--memory",
        "64m",
        "--memory-swap",
        "64m",
        "--pids-limit",
        "40",
        "web",
    ]);
    assert_eq!(
        ok(&[
            "exec",
            "web",
            "cat",
            "/sys/fs/cgroup/memory.max",
            "/sys/fs/cgroup/pids.max"
        ]),
        "67108864\n40"
    );
    // runc's `events --stats`, from hull-oci's state under dockerd's exec root.
    let id = ok(&["inspect", "-f", "{{.Id}}", "web"]);
    let root = state_root_of(&dockerd.dir.join("exec"), &id)
        .unwrap_or_else(|| panic!("no hull-oci state for {id} below the exec root"));
    let oci = hull.bin.with_file_name("hull-oci");
    let out = Command::new(&oci)
        .arg("--root")
        .arg(&root)
        .args(["events", "--stats", &id])
        .env("HULL_ROOT", hull.root())
        .env("HULL_RUN_DIR", hull.run_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hull-oci events --stats: {}",
        text(&out)
    );
    let event: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(event["type"], "stats", "{event}");
    assert_eq!(
        event["data"]["memory"]["usage"]["limit"], 67_108_864,
        "{event}"
    );
    assert!(
        event["data"]["pids"]["current"].as_u64() >= Some(1),
        "{event}"
    );
    // -it: on a terminal of its own, which follows the window's size
    // (tests/lab/resize.py drives a pty), for run and exec.
    let resize = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("lab/resize.py");
    for args in [
        vec![
            "run",
            "-it",
            "--rm",
            "--runtime",
            "hull",
            BUSYBOX_IMAGE,
            "sh",
        ],
        vec!["exec", "-it", "web", "sh"],
    ] {
        let out = dockerd.on_terminal(&resize, &args).output().unwrap();
        assert!(
            out.status.success(),
            "docker {args:?} on a terminal: {}",
            text(&out)
        );
    }
    ok(&["pause", "web"]);
    assert_eq!(ok(&["inspect", "-f", "{{.State.Status}}", "web"]), "paused");
    ok(&["unpause", "web"]);
    assert_eq!(ok(&["exec", "web", "cat", "/index.html"]), "served");
    assert!(ok(&["logs", "web"]).contains("started"));
    // logs -f follows the output until the container ends.
    ok(&[
        "run",
        "-d",
        "--name",
        "talker",
        BUSYBOX_IMAGE,
        "sh",
        "-c",
        "echo first; sleep 2; echo second",
    ]);
    assert_eq!(ok(&["logs", "-f", "talker"]), "first\nsecond");
    ok(&["rm", "talker"]);
    ok(&["stop", "-t", "2", "web"]);
    assert!(ok(&[
        "ps",
        "-a",
        "--filter",
        "name=web",
        "--format",
        "{{.Status}}"
    ])
    .starts_with("Exited"));
    ok(&["start", "web"]);
    ok(&["restart", "-t", "1", "web"]);
    assert_eq!(ok(&["exec", "web", "cat", "/index.html"]), "served");
    ok(&["kill", "web"]);
    assert_eq!(ok(&["inspect", "-f", "{{.State.ExitCode}}", "web"]), "137");
    ok(&["start", "web"]);
    ok(&["rm", "-f", "web"]);

    // docker build (the classic builder): its RUN steps run in microVMs.
    let context = hull.scratch.path().join("context");
    std::fs::create_dir(&context).unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        format!("FROM {BUSYBOX_IMAGE}\nRUN echo built > /built.txt && uname -r > /kernel.txt\nCMD cat /built.txt /kernel.txt\n"),
    )
    .unwrap();
    let out = dockerd
        .command(&[
            "build",
            "-q",
            "-t",
            "hull.test/built",
            context.to_str().unwrap(),
        ])
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    assert!(out.status.success(), "docker build: {}", text(&out));
    let out = run(&["hull.test/built"]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        said.starts_with("built\n") && said.trim_end().ends_with("-hull"),
        "{}",
        text(&out)
    );

    // docker-compose: two services on the project's network, the client
    // finding the server by its service name through Docker's embedded DNS
    // (127.0.0.11 in the container's namespace, forwarded from the guest's).
    let project = hull.scratch.path().join("compose");
    std::fs::create_dir(&project).unwrap();
    std::fs::write(
        project.join("docker-compose.yml"),
        format!(
            "version: \"2.4\"\nservices:\n  web:\n    image: {BUSYBOX_IMAGE}\n    \
             command: sh -c 'echo served by name > /index.html; exec httpd -f -p 80 -h /'\n  \
             client:\n    image: {BUSYBOX_IMAGE}\n    depends_on: [web]\n    \
             command: sh -c 'until wget -q -O - http://web/index.html; do sleep 1; done; exec sleep 600'\n"
        ),
    )
    .unwrap();
    let compose = |args: &[&str]| {
        let out = Command::new("docker-compose")
            .args(["-p", "hulltest"])
            .args(args)
            .current_dir(&project)
            .envs(dockerd.client_env())
            .stdin(Stdio::null())
            .output()
            .expect("running docker-compose");
        assert!(
            out.status.success(),
            "docker-compose {args:?}: {}",
            text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    compose(&["up", "-d"]);
    let reached = hull_tests::harness::eventually(Duration::from_secs(90), || {
        compose(&["logs", "--no-color", "client"]).contains("served by name")
    });
    assert!(
        reached,
        "the client never reached web by name: {}",
        compose(&["logs", "--no-color"])
    );
    compose(&["down", "-t", "1"]);

    // Nothing of Hull's left: no container in its store.
    let left = hull.run(["ps", "-aq"]);
    assert_eq!(
        String::from_utf8_lossy(&left.stdout).trim(),
        "",
        "{}",
        text(&left)
    );
}

#[test]
fn podman_runs_a_container_in_a_microvm_with_hull_oci() {
    let hull = Hull::new();
    let podman = "/usr/bin/podman";
    assert!(
        std::path::Path::new(podman).exists(),
        "{podman} is missing: scripts/setup.sh installs it"
    );
    let dir = hull.scratch.path().join("podman");
    std::fs::create_dir_all(&dir).unwrap();
    // conmon gives the runtime a bare environment: Hull's directories go
    // in through a wrapper (an installed Hull uses its defaults).
    let wrapper = dir.join("hull-oci");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexport HULL_LIB_DIR={} HULL_ROOT={} HULL_RUN_DIR={}\nexec {} \"$@\"\n",
            hull.lib_dir.display(),
            hull.root().display(),
            hull.run_dir().display(),
            hull.bin.with_file_name("hull-oci").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let podman_command = |args: &[&str]| {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net=/run/netns/{}", hull.netns))
            .arg("--")
            .arg(podman)
            .arg(format!("--root={}", dir.join("root").display()))
            .arg(format!("--runroot={}", dir.join("run").display()))
            .args(["--cgroup-manager=cgroupfs", "--events-backend=file"])
            .arg(format!("--runtime={}", wrapper.display()))
            .args(args)
            .env_remove("DOCKER_CONFIG")
            .stdin(Stdio::null());
        command
    };
    let archive = dir.join("busybox.tar");
    hull_tests::write_busybox_archive(&archive, BUSYBOX_IMAGE).unwrap();
    let out = podman_command(&["load", "-i", archive.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "podman load: {}", text(&out));
    let kernel = podman_command(&["run", "--rm", BUSYBOX_IMAGE, "uname", "-r"])
        .output()
        .unwrap();
    let exit = podman_command(&["run", "--rm", BUSYBOX_IMAGE, "sh", "-c", "exit 3"])
        .output()
        .unwrap();
    // podman's own mounts (its storage) go before a check can fail.
    let _ = podman_command(&["system", "reset", "--force"]).output();
    unmount_below(&dir);
    assert!(
        kernel.status.success()
            && String::from_utf8_lossy(&kernel.stdout)
                .trim()
                .ends_with("-hull"),
        "{}",
        text(&kernel)
    );
    assert_eq!(exit.status.code(), Some(3), "{}", text(&exit));
    let left = hull.run(["ps", "-aq"]);
    assert_eq!(
        String::from_utf8_lossy(&left.stdout).trim(),
        "",
        "{}",
        text(&left)
    );
}
