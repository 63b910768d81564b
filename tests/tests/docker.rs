//! The Docker workflow, replayed against Hull: detached containers, `ps`,
//! `logs`, `inspect`, `stop`, `kill`, `wait`, `rm -f $(hull ps -aq)`,
//! restart policies, and what happens when Hull's own processes are killed.

use hull_tests::harness::{eventually, ok, stderr, stdout, Hull, BUSYBOX_IMAGE};
use std::time::Duration;

fn hull() -> Hull {
    Hull::with_busybox()
}

fn inspect(hull: &Hull, name: &str, format: &str) -> String {
    ok(hull, &["inspect", "-f", format, name])
}

#[test]
fn detached_container_lifecycle() {
    let hull = hull();
    let id = ok(
        &hull,
        &[
            "run",
            "-d",
            "--name",
            "ticker",
            BUSYBOX_IMAGE,
            "sh",
            "-c",
            "echo started; while true; do echo tick; sleep 0.2; done",
        ],
    );
    assert_eq!(id.len(), 64, "run -d prints the full id: {id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));

    let ps = ok(&hull, &["ps"]);
    let lines: Vec<&str> = ps.lines().collect();
    assert_eq!(
        lines[0]
            .split("   ")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>(),
        [
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "PORTS",
            "NAMES"
        ]
    );
    assert!(
        lines[1].starts_with(&id[..12]) && lines[1].contains("Up ") && lines[1].ends_with("ticker"),
        "{ps}"
    );
    assert_eq!(ok(&hull, &["ps", "-q"]), id[..12]);
    assert_eq!(ok(&hull, &["ps", "-q", "--no-trunc"]), id);
    assert_eq!(
        ok(&hull, &["ps", "--format", "{{.Names}} {{.State}}"]),
        "ticker running"
    );

    assert!(eventually(Duration::from_secs(10), || ok(
        &hull,
        &["logs", "ticker"]
    )
    .lines()
    .filter(|l| *l == "tick")
    .count()
        >= 3));
    assert_eq!(
        ok(&hull, &["logs", "ticker"]).lines().next(),
        Some("started")
    );
    assert_eq!(ok(&hull, &["logs", "--tail", "1", "ticker"]), "tick");
    let stamped = ok(&hull, &["logs", "-t", "--tail", "1", "ticker"]);
    assert!(
        stamped.ends_with(" tick") && stamped.contains('T') && stamped.contains('Z'),
        "{stamped}"
    );

    let pid: u32 = inspect(&hull, "ticker", "{{.State.Pid}}").parse().unwrap();
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "State.Pid {pid} is not a live process"
    );
    assert_eq!(
        inspect(
            &hull,
            &id[..8],
            "{{.State.Status}} {{.State.Running}} {{.Name}}"
        ),
        "running true /ticker"
    );
    let config = inspect(&hull, "ticker", "{{json .Config.Cmd}}");
    assert!(config.starts_with("[\"sh\",\"-c\""), "{config}");

    // stop: SIGTERM, ignored by a shell as PID 1, then SIGKILL after -t.
    assert_eq!(ok(&hull, &["stop", "-t", "1", "ticker"]), "ticker");
    assert_eq!(
        inspect(&hull, "ticker", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 137"
    );
    assert_eq!(ok(&hull, &["ps", "-q"]), "");
    let all = ok(&hull, &["ps", "-a"]);
    assert!(
        all.contains("Exited (137)") && all.contains("ticker"),
        "{all}"
    );
    assert_eq!(ok(&hull, &["wait", "ticker"]), "137");

    // start again, then kill with a signal the shell handles.
    assert_eq!(ok(&hull, &["start", "ticker"]), "ticker");
    assert_eq!(inspect(&hull, "ticker", "{{.State.Status}}"), "running");
    assert_eq!(ok(&hull, &["kill", "ticker"]), "ticker");
    assert!(eventually(Duration::from_secs(10), || inspect(
        &hull,
        "ticker",
        "{{.State.Status}}"
    ) == "exited"));

    ok(&hull, &["rm", "ticker"]);
    assert_eq!(ok(&hull, &["ps", "-aq"]), "");
    let out = hull.run(["inspect", "ticker"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn exit_codes_wait_and_rm_force_everything() {
    let hull = hull();
    ok(
        &hull,
        &[
            "run",
            "-d",
            "--name",
            "quick",
            BUSYBOX_IMAGE,
            "sh",
            "-c",
            "exit 7",
        ],
    );
    assert_eq!(ok(&hull, &["wait", "quick"]), "7");
    ok(
        &hull,
        &[
            "run",
            "-d",
            "--name",
            "slow1",
            BUSYBOX_IMAGE,
            "sleep",
            "300",
        ],
    );
    ok(&hull, &["run", "-d", BUSYBOX_IMAGE, "sleep", "300"]);

    let out = hull.run(["rm", "slow1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("container is running"),
        "{}",
        stderr(&out)
    );
    let generated = ok(&hull, &["ps", "--format", "{{.Names}}"]);
    assert!(
        generated.lines().any(|n| n != "slow1" && n.contains('_')),
        "generated names look like adjective_surname: {generated}"
    );

    // hull rm -f $(hull ps -aq)
    let ids = ok(&hull, &["ps", "-aq"]);
    let mut args = vec!["rm", "-f"];
    args.extend(ids.lines());
    assert_eq!(args.len(), 5, "three containers: {ids}");
    ok(&hull, &args);
    assert_eq!(ok(&hull, &["ps", "-aq"]), "");
    assert!(
        hull.leftover_sandboxes().is_empty(),
        "{:?}",
        hull.leftover_sandboxes()
    );
    let containers = std::fs::read_dir(hull.root().join("containers"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name() != ".names")
        .count();
    assert_eq!(containers, 0);
}

#[test]
fn docker_errors_and_refusals() {
    let hull = hull();
    let out = hull.run(["run", "--pid=host", BUSYBOX_IMAGE, "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("--pid=host is not supported")
            && stderr(&out).contains("virtual machine"),
        "{}",
        stderr(&out)
    );
    let out = hull.run(["run", "--privileged", BUSYBOX_IMAGE, "true"]);
    assert_eq!(out.status.code(), Some(125));
    let out = hull.run(["run", "--net=host", BUSYBOX_IMAGE, "true"]);
    assert_eq!(out.status.code(), Some(125));
    let out = hull.run(["logs", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("No such container: nope"),
        "{}",
        stderr(&out)
    );
    ok(&hull, &["create", "--name", "taken", BUSYBOX_IMAGE, "true"]);
    let out = hull.run(["create", "--name", "taken", BUSYBOX_IMAGE, "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("is already in use"),
        "{}",
        stderr(&out)
    );
    assert!(ok(&hull, &["ps", "-a"]).contains("Created"));
    let out = hull.run(["run", "-d", BUSYBOX_IMAGE, "no-such-command"]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
}

#[test]
fn restart_always_brings_a_crashed_container_back() {
    let hull = hull();
    ok(
        &hull,
        &[
            "run",
            "-d",
            "--restart",
            "always",
            "--name",
            "phoenix",
            BUSYBOX_IMAGE,
            "sh",
            "-c",
            "echo up; sleep 1; exit 1",
        ],
    );
    assert!(
        eventually(Duration::from_secs(40), || inspect(
            &hull,
            "phoenix",
            "{{.RestartCount}}"
        )
        .parse::<u32>()
        .unwrap_or(0)
            >= 2),
        "never restarted: {}",
        inspect(&hull, "phoenix", "{{json .State}} {{.RestartCount}}")
    );
    assert!(
        ok(&hull, &["logs", "phoenix"])
            .lines()
            .filter(|l| *l == "up")
            .count()
            >= 2
    );
    ok(&hull, &["rm", "-f", "phoenix"]);
    assert_eq!(ok(&hull, &["ps", "-aq"]), "");
}

#[test]
fn restart_on_failure_stops_at_its_count_and_unless_stopped_at_stop() {
    let hull = hull();
    ok(
        &hull,
        &[
            "run",
            "-d",
            "--restart",
            "on-failure:2",
            "--name",
            "twice",
            BUSYBOX_IMAGE,
            "sh",
            "-c",
            "echo up; exit 3",
        ],
    );
    ok(
        &hull,
        &[
            "run",
            "-d",
            "--restart",
            "on-failure",
            "--name",
            "clean",
            BUSYBOX_IMAGE,
            "true",
        ],
    );
    ok(
        &hull,
        &[
            "run",
            "-d",
            "--restart",
            "unless-stopped",
            "--name",
            "stubborn",
            BUSYBOX_IMAGE,
            "sh",
            "-c",
            "sleep 1; exit 0",
        ],
    );
    assert!(
        eventually(Duration::from_secs(60), || inspect(
            &hull,
            "twice",
            "{{.State.Status}} {{.RestartCount}}"
        ) == "exited 2"),
        "{}",
        inspect(&hull, "twice", "{{json .State}} {{.RestartCount}}")
    );
    assert_eq!(inspect(&hull, "twice", "{{.State.ExitCode}}"), "3");
    assert_eq!(
        ok(&hull, &["logs", "twice"])
            .lines()
            .filter(|l| *l == "up")
            .count(),
        3
    );
    // A clean exit is no failure: not restarted.
    assert_eq!(
        inspect(&hull, "clean", "{{.State.Status}} {{.RestartCount}}"),
        "exited 0"
    );
    // unless-stopped restarts even clean exits, until `stop`.
    assert!(
        eventually(Duration::from_secs(40), || inspect(
            &hull,
            "stubborn",
            "{{.RestartCount}}"
        )
        .parse::<u32>()
        .unwrap_or(0)
            >= 1),
        "{}",
        inspect(&hull, "stubborn", "{{json .State}} {{.RestartCount}}")
    );
    ok(&hull, &["stop", "stubborn"]);
    let count = inspect(&hull, "stubborn", "{{.RestartCount}}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        inspect(&hull, "stubborn", "{{.State.Status}} {{.RestartCount}}"),
        format!("exited {count}")
    );
    ok(&hull, &["rm", "-f", "twice", "clean", "stubborn"]);
    hull.assert_nothing_left();
}

/// Kills one of a running container's host processes and checks how Hull reports it.
fn kill_part(which: &str) -> (Hull, String) {
    let hull = hull();
    ok(
        &hull,
        &[
            "run",
            "-d",
            "--name",
            "victim",
            "-p",
            "8090:80",
            BUSYBOX_IMAGE,
            "sleep",
            "300",
        ],
    );
    let pid = inspect(&hull, "victim", &format!("{{{{.HullSandbox.{which}}}}}"));
    assert!(pid.parse::<i32>().unwrap() > 0, "{which} = {pid}");
    let killed = std::time::SystemTime::now();
    assert!(std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()
        .unwrap()
        .success());
    assert!(
        eventually(Duration::from_secs(15), || inspect(
            &hull,
            "victim",
            "{{.State.Status}}"
        ) == "exited"),
        "still {}",
        inspect(&hull, "victim", "{{json .State}}")
    );
    // Noticed at once (a health check every 200 ms), not seconds later: the
    // exit the monitor recorded, not when this polling loop saw it (slow
    // on a loaded machine).
    let finished = inspect(&hull, "victim", "{{.State.FinishedAt}}");
    let date = std::process::Command::new("date")
        .args(["-d", &finished, "+%s.%N"])
        .output()
        .unwrap();
    let finished_secs: f64 = String::from_utf8_lossy(&date.stdout)
        .trim()
        .parse()
        .unwrap();
    let killed_secs = killed
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let noticed = finished_secs - killed_secs;
    assert!(
        noticed < 3.0,
        "{which} killed: the exit was recorded {noticed:.2} s later ({finished})"
    );
    let error = inspect(&hull, "victim", "{{.State.Error}}");
    let ps = ok(&hull, &["ps", "-a"]);
    assert!(ps.contains("Exited ("), "{ps}");
    ok(&hull, &["rm", "victim"]);
    // Not a directory, process, tap, lease, rule or mount of it is left.
    hull.assert_nothing_left();
    (hull, error)
}

#[test]
fn killed_vmm_is_reported() {
    let (_, error) = kill_part("VmmPid");
    assert_eq!(error, "the VMM exited unexpectedly");
}

#[test]
fn killed_virtiofsd_is_reported() {
    let (_, error) = kill_part("VirtiofsdPid");
    assert_eq!(error, "virtiofsd exited unexpectedly");
}

#[test]
fn killed_monitor_is_reported() {
    let (_, error) = kill_part("MonitorPid");
    assert_eq!(error, "the container's monitor died");
}

#[test]
fn exec_runs_beside_the_container() {
    let hull = hull();
    ok(
        &hull,
        &["run", "-d", "--name", "box", BUSYBOX_IMAGE, "sleep", "300"],
    );
    let out = ok(
        &hull,
        &[
            "exec",
            "box",
            "sh",
            "-c",
            "echo $$; hostname; cat /proc/1/cmdline | tr '\\0' ' '",
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_ne!(lines[0], "1", "exec is not the container's PID 1");
    assert_eq!(lines[1], inspect(&hull, "box", "{{.Config.Hostname}}"));
    assert_eq!(
        lines[2].trim(),
        "sleep 300",
        "exec sees the container's processes"
    );
    assert_eq!(
        ok(
            &hull,
            &[
                "exec",
                "-u",
                "user",
                "-w",
                "/tmp",
                "-e",
                "X=y",
                "box",
                "sh",
                "-c",
                "echo $(id -u) $(pwd) $X"
            ]
        ),
        "1000 /tmp y"
    );
    // Born in the container's cgroup (the root of its cgroup namespace),
    // as its first process was.
    assert_eq!(
        ok(
            &hull,
            &["exec", "box", "cat", "/proc/self/cgroup", "/proc/1/cgroup"]
        ),
        "0::/\n0::/"
    );
    let out = hull.run(["exec", "box", "sh", "-c", "exit 5"]);
    assert_eq!(out.status.code(), Some(5));
    for i in 0..3 {
        let out = hull.run_with_input(
            &["exec", "-i", "box", "cat"],
            format!("input {i}\n").as_bytes(),
        );
        assert_eq!(
            stdout(&out),
            format!("input {i}\n"),
            "stderr: {}",
            stderr(&out)
        );
    }
    let out = hull.run(["exec", "box", "no-such-command"]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    ok(
        &hull,
        &["exec", "-d", "box", "sh", "-c", "echo detached > /tmp/mark"],
    );
    assert!(eventually(Duration::from_secs(5), || hull
        .run(["exec", "box", "cat", "/tmp/mark"])
        .stdout
        == b"detached\n"));
    assert_eq!(inspect(&hull, "box", "{{.State.Status}}"), "running");
    let archive = hull.scratch.path().join("box.tar");
    ok(
        &hull,
        &["exec", "box", "sh", "-c", "echo exported > /tmp/proof"],
    );
    ok(&hull, &["export", "-o", archive.to_str().unwrap(), "box"]);
    let mut names = Vec::new();
    let mut proof = String::new();
    for entry in tar::Archive::new(std::fs::File::open(&archive).unwrap())
        .entries()
        .unwrap()
    {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        if path.trim_start_matches("./") == "tmp/proof" {
            std::io::Read::read_to_string(&mut entry, &mut proof).unwrap();
        }
        names.push(path);
    }
    assert_eq!(
        proof, "exported\n",
        "the container's own write is in the export"
    );
    assert!(
        names
            .iter()
            .any(|n| n.trim_start_matches("./") == "bin/busybox"),
        "image files are in the export"
    );
    // export | import: a single-layer image with the container's changes in it.
    let id = ok(&hull, &["import", archive.to_str().unwrap(), "snapshot:v1"]);
    assert!(id.starts_with("sha256:"), "{id}");
    let history = ok(&hull, &["history", "snapshot:v1"]);
    assert_eq!(history.lines().count(), 2, "one layer: {history}");
    assert!(history.contains("hull import"), "{history}");
    assert_eq!(
        ok(
            &hull,
            &[
                "run",
                "--rm",
                "--network",
                "none",
                "snapshot:v1",
                "cat",
                "/tmp/proof"
            ]
        ),
        "exported"
    );
    let top = ok(&hull, &["top", "box"]);
    let lines: Vec<&str> = top.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["UID", "PID", "PPID", "CMD"]
    );
    assert!(lines.iter().any(|l| l.ends_with("sleep 300")), "{top}");
    ok(&hull, &["rm", "-f", "box"]);
    let out = hull.run(["exec", "box", "true"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn writable_layer_survives_restart_and_commit_makes_an_image_of_it() {
    let hull = hull();
    let script = "test -f /kept && echo again || echo first; echo kept > /kept; rm -f /bin/ls; mkdir -p /fresh; rm -rf /home; mkdir /home; echo new > /home/only";
    assert_eq!(
        ok(
            &hull,
            &[
                "run",
                "--name",
                "keeper",
                "--network",
                "none",
                BUSYBOX_IMAGE,
                "sh",
                "-c",
                script
            ]
        ),
        "first"
    );
    // The writable layer is the container's, not its VM's: a restart keeps it.
    assert_eq!(ok(&hull, &["start", "-a", "keeper"]), "again");

    // export works on a stopped container too.
    let archive = hull.scratch.path().join("keeper.tar");
    ok(
        &hull,
        &["export", "-o", archive.to_str().unwrap(), "keeper"],
    );
    let names: Vec<String> = tar::Archive::new(std::fs::File::open(&archive).unwrap())
        .entries()
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .unwrap()
                .to_string_lossy()
                .trim_start_matches("./")
                .to_string()
        })
        .collect();
    assert!(
        names.iter().any(|n| n == "kept"),
        "the container's file is missing from the export"
    );
    assert!(
        !names.iter().any(|n| n == "bin/ls"),
        "a removed file is in the export"
    );

    // diff lists them as Docker does, without what Hull made for mounts
    // (Docker's init layer): a container that changed nothing shows nothing.
    ok(
        &hull,
        &[
            "run",
            "--name",
            "blank",
            "-v",
            &format!("{}:/data", hull.scratch.path().display()),
            BUSYBOX_IMAGE,
            "true",
        ],
    );
    assert_eq!(ok(&hull, &["diff", "blank"]), "");
    ok(&hull, &["rm", "blank"]);
    let diff = ok(&hull, &["diff", "keeper"]);
    for line in [
        "C /bin",
        "D /bin/ls",
        "A /kept",
        "A /fresh",
        "C /home",
        "A /home/only",
    ] {
        assert!(
            diff.lines().any(|l| l == line),
            "no '{line}' in diff:\n{diff}"
        );
    }

    // commit: the changes (deletions included) become a layer of a new image.
    let out = hull.run(["commit", "keeper", "Bad:Name"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("must be lowercase"),
        "{}",
        stderr(&out)
    );
    let id = ok(
        &hull,
        &[
            "commit",
            "-m",
            "keep it",
            "-c",
            "CMD [\"cat\", \"/kept\"]",
            "-c",
            "ENV COMMITTED=yes",
            "keeper",
            "committed:v1",
        ],
    );
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(
        ok(&hull, &["run", "--rm", "--network", "none", "committed:v1"]),
        "kept"
    );
    let out = hull.run([
        "run",
        "--rm",
        "--network",
        "none",
        "committed:v1",
        "ls",
        "/",
    ]);
    assert_eq!(
        out.status.code(),
        Some(127),
        "the deletion of /bin/ls was not committed: {}",
        stdout(&out)
    );
    assert_eq!(
        ok(
            &hull,
            &[
                "run",
                "--rm",
                "--network",
                "none",
                "committed:v1",
                "sh",
                "-c",
                "echo $COMMITTED; cat /home/only; ls /home | wc -l"
            ]
        ),
        "yes\nnew\n1"
    );
    let base_layers = ok(&hull, &["history", "-q", BUSYBOX_IMAGE]).lines().count();
    let history = ok(&hull, &["history", "--no-trunc", "committed:v1"]);
    assert_eq!(history.lines().count(), base_layers + 2, "{history}");
    assert!(
        history
            .lines()
            .nth(1)
            .unwrap()
            .contains("sh -c test -f /kept"),
        "{history}"
    );

    // A running container is paused while its layer is read, and goes on after.
    ok(
        &hull,
        &[
            "run",
            "-d",
            "--name",
            "live",
            "--network",
            "none",
            BUSYBOX_IMAGE,
            "sleep",
            "300",
        ],
    );
    ok(&hull, &["exec", "live", "sh", "-c", "echo live > /live"]);
    ok(&hull, &["commit", "live", "live:v1"]);
    assert_eq!(ok(&hull, &["exec", "live", "cat", "/live"]), "live");
    assert_eq!(
        ok(
            &hull,
            &[
                "run",
                "--rm",
                "--network",
                "none",
                "live:v1",
                "cat",
                "/live"
            ]
        ),
        "live"
    );
    ok(&hull, &["rm", "-f", "live", "keeper"]);
}

#[test]
fn bind_volumes_share_host_paths_both_ways() {
    let hull = hull();
    let dir = hull.scratch.path().join("vol");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("host.txt"), "from host\n").unwrap();
    let file = hull.scratch.path().join("single.conf");
    std::fs::write(&file, "conf\n").unwrap();
    let volume = format!("{}:/data", dir.display());
    let file_volume = format!("{}:/etc/single.conf:ro", file.display());
    let script = "cat /data/host.txt; echo from-guest > /data/guest.txt; cat /etc/single.conf; (echo x > /etc/single.conf) 2>/dev/null || echo ro-refused";
    let out = ok(
        &hull,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            &volume,
            "-v",
            &file_volume,
            BUSYBOX_IMAGE,
            "sh",
            "-c",
            script,
        ],
    );
    assert_eq!(out, "from host\nconf\nro-refused");
    assert_eq!(
        std::fs::read_to_string(dir.join("guest.txt")).unwrap(),
        "from-guest\n",
        "the guest's write did not reach the host"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "conf\n");

    // :ro holds for directories, also for what is mounted below the source
    // (a tmpfs here, unmounted by the guard even if the test fails), and a
    // missing host directory is created.
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let sub = dir.join("sub");
    std::fs::create_dir(&sub).unwrap();
    assert!(std::process::Command::new("mount")
        .args(["-t", "tmpfs", "hull-test", sub.to_str().unwrap()])
        .status()
        .unwrap()
        .success());
    let _unmount = Unmount(sub.clone());
    let out = ok(
        &hull,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            &format!("{}:/data:ro", dir.display()),
            BUSYBOX_IMAGE,
            "sh",
            "-c",
            "touch /data/sub/x 2>/dev/null || echo refused",
        ],
    );
    assert_eq!(out, "refused", "a mount below a :ro volume was writable");
    assert!(!sub.join("x").exists());
    let ro = format!("{}:/data:ro", dir.display());
    let fresh = hull.scratch.path().join("fresh");
    let fresh_volume = format!("{}:/fresh", fresh.display());
    let out = ok(
        &hull,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            &ro,
            "-v",
            &fresh_volume,
            BUSYBOX_IMAGE,
            "sh",
            "-c",
            "touch /data/x 2>/dev/null || echo refused; touch /fresh/made",
        ],
    );
    assert_eq!(out, "refused");
    assert!(!dir.join("x").exists());
    assert!(fresh.join("made").exists());

    // inspect shows them as Docker does; a restarted container gets them again.
    ok(
        &hull,
        &[
            "run",
            "-d",
            "--name",
            "vols",
            "--network",
            "none",
            "-v",
            &volume,
            BUSYBOX_IMAGE,
            "sleep",
            "300",
        ],
    );
    let mounts = inspect(&hull, "vols", "{{json .Mounts}}");
    assert!(
        mounts.contains("\"Destination\":\"/data\"") && mounts.contains("\"RW\":true"),
        "{mounts}"
    );
    assert_eq!(
        inspect(&hull, "vols", "{{json .HostConfig.Binds}}"),
        format!("[\"{volume}\"]")
    );
    ok(&hull, &["restart", "vols"]);
    assert_eq!(
        ok(&hull, &["exec", "vols", "cat", "/data/host.txt"]),
        "from host"
    );
    ok(&hull, &["rm", "-f", "vols"]);

    for (bad, says) in [
        (
            "./data:/data",
            "includes invalid characters for a local volume name",
        ),
        ("/tmp:relative", "must be absolute"),
        ("/tmp:/x:rx", "invalid mode"),
    ] {
        let out = hull.run(["run", "--rm", "-v", bad, BUSYBOX_IMAGE, "true"]);
        assert_eq!(out.status.code(), Some(125), "{bad}");
        assert!(stderr(&out).contains(says), "{bad}: {}", stderr(&out));
    }
}

#[test]
fn guest_kernel_panic_and_guest_oom_are_reported() {
    let hull = hull();
    // No limit: the guest kernel's own OOM killer ends the hog, and the
    // container's cgroup counts it.
    let hog = "x=aaaaaaaaaaaaaaaa; while :; do x=$x$x; done";
    let out = hull.run([
        "run",
        "--name",
        "hog",
        "--network",
        "none",
        BUSYBOX_IMAGE,
        "sh",
        "-c",
        hog,
    ]);
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
    assert_eq!(inspect(&hull, "hog", "{{.State.OOMKilled}}"), "true");

    // A kernel that cannot find its init panics: reported as such.
    let out = hull
        .command([
            "run",
            "--name",
            "panicky",
            "--network",
            "none",
            BUSYBOX_IMAGE,
            "true",
        ])
        .env("HULL_KERNEL_ARGS", "rdinit=/no-such-init")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("guest kernel panic: VFS: Unable to mount root fs"),
        "{}",
        stderr(&out)
    );
    let error = inspect(&hull, "panicky", "{{.State.Error}}");
    assert!(
        error.contains("guest kernel panic"),
        "State.Error = {error}"
    );
    assert!(ok(&hull, &["ps", "-a", "--filter", "name=panicky"]).contains("Exited (125)"));
    assert_eq!(
        ok(
            &hull,
            &[
                "ps",
                "-q",
                "--filter",
                "status=exited",
                "--filter",
                "exited=137"
            ]
        )
        .lines()
        .count(),
        1
    );
    assert_eq!(ok(&hull, &["ps", "-aq", "--filter", "name=nobody"]), "");
    ok(&hull, &["rm", "hog", "panicky"]);
}

#[test]
fn pause_freezes_the_vm_and_unpause_lets_it_go_on() {
    let hull = hull();
    ok(
        &hull,
        &[
            "run",
            "-d",
            "--name",
            "clock",
            "--network",
            "none",
            BUSYBOX_IMAGE,
            "sh",
            "-c",
            "while true; do echo tick; sleep 0.1; done",
        ],
    );
    assert!(eventually(Duration::from_secs(10), || ok(
        &hull,
        &["logs", "clock"]
    )
    .lines()
    .count()
        >= 3));
    assert_eq!(ok(&hull, &["pause", "clock"]), "clock");
    assert_eq!(
        inspect(
            &hull,
            "clock",
            "{{.State.Status}} {{.State.Running}} {{.State.Paused}}"
        ),
        "paused true true"
    );
    assert!(ok(&hull, &["ps"]).contains("(Paused)"));
    // The VMM paused the vCPUs; its process was not stopped (no SIGSTOP).
    let vmm = inspect(&hull, "clock", "{{.HullSandbox.VmmPid}}");
    let stat = std::fs::read_to_string(format!("/proc/{vmm}/stat")).unwrap();
    let state = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.trim_start().chars().next());
    assert_ne!(state, Some(Some('T')), "the VMM process is stopped: {stat}");
    assert_eq!(
        ok(&hull, &["ps", "-q", "--filter", "status=paused"])
            .lines()
            .count(),
        1
    );
    let frozen = ok(&hull, &["logs", "clock"]).lines().count();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        ok(&hull, &["logs", "clock"]).lines().count(),
        frozen,
        "a paused container went on"
    );
    let out = hull.run(["exec", "clock", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is paused, unpause the container first"),
        "{}",
        stderr(&out)
    );
    let out = hull.run(["pause", "clock"]);
    assert!(
        stderr(&out).contains("is already paused"),
        "{}",
        stderr(&out)
    );

    assert_eq!(ok(&hull, &["unpause", "clock"]), "clock");
    assert_eq!(
        inspect(&hull, "clock", "{{.State.Status}} {{.State.Paused}}"),
        "running false"
    );
    assert!(
        eventually(Duration::from_secs(10), || ok(&hull, &["logs", "clock"])
            .lines()
            .count()
            > frozen + 3),
        "it did not go on"
    );
    let out = hull.run(["unpause", "clock"]);
    assert!(stderr(&out).contains("is not paused"), "{}", stderr(&out));

    // A paused container still stops and goes.
    ok(&hull, &["pause", "clock"]);
    ok(&hull, &["stop", "-t", "1", "clock"]);
    assert_eq!(
        inspect(&hull, "clock", "{{.State.Status}} {{.State.Paused}}"),
        "exited false"
    );
    ok(&hull, &["start", "clock"]);
    ok(&hull, &["pause", "clock"]);
    ok(&hull, &["rm", "-f", "clock"]);
    assert!(
        hull.leftover_sandboxes().is_empty(),
        "{:?}",
        hull.leftover_sandboxes()
    );
}

#[test]
fn stats_show_cpu_memory_io_and_pids_as_docker_does() {
    let hull = hull();
    ok(
        &hull,
        &[
            "run",
            "-d",
            "--name",
            "spin",
            "-m",
            "64m",
            BUSYBOX_IMAGE,
            "sh",
            "-c",
            "while true; do :; done",
        ],
    );
    ok(
        &hull,
        &[
            "run",
            "-d",
            "--name",
            "rest",
            "--network",
            "none",
            BUSYBOX_IMAGE,
            "sleep",
            "300",
        ],
    );
    let table = ok(&hull, &["stats", "--no-stream"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap()
        .split("  ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "CONTAINER ID",
            "NAME",
            "CPU %",
            "MEM USAGE / LIMIT",
            "MEM %",
            "NET I/O",
            "BLOCK I/O",
            "PIDS"
        ]
    );
    assert_eq!(table.lines().count(), 3, "{table}");
    let row = |name: &str| {
        ok(
            &hull,
            &[
                "stats",
                "--no-stream",
                "--format",
                "{{.CPUPerc}}|{{.MemUsage}}|{{.PIDs}}|{{.NetIO}}",
                name,
            ],
        )
    };
    let spin = row("spin");
    let fields: Vec<&str> = spin.split('|').collect();
    let cpu: f64 = fields[0].trim_end_matches('%').parse().unwrap();
    assert!(cpu > 50.0, "a spinning container uses {cpu}% CPU: {spin}");
    assert!(fields[1].ends_with("/ 64MiB"), "the cgroup limit: {spin}");
    assert_eq!(fields[2], "1");
    let rest = row("rest");
    let fields: Vec<&str> = rest.split('|').collect();
    assert!(
        fields[0].trim_end_matches('%').parse::<f64>().unwrap() < 20.0,
        "{rest}"
    );
    assert!(
        fields[1].contains("MiB / ") && !fields[1].ends_with("/ 64MiB"),
        "no limit: the VM's memory: {rest}"
    );
    assert_eq!(fields[3], "0B / 0B", "--network none: {rest}");
    // Paused and stopped containers have nothing to report.
    ok(&hull, &["pause", "rest"]);
    assert_eq!(row("rest"), "--|-- / --|--|--");
    ok(&hull, &["rm", "-f", "spin", "rest"]);
}

#[test]
fn prune_removes_what_nothing_uses() {
    let hull = hull();
    ok(
        &hull,
        &[
            "run",
            "--name",
            "done",
            "--network",
            "none",
            BUSYBOX_IMAGE,
            "true",
        ],
    );
    ok(&hull, &["create", "--name", "fresh", BUSYBOX_IMAGE, "true"]);
    ok(
        &hull,
        &[
            "run",
            "-d",
            "--name",
            "up",
            "--network",
            "none",
            BUSYBOX_IMAGE,
            "sleep",
            "300",
        ],
    );
    ok(&hull, &["commit", "done", "snapshot:v1"]);
    let archive = hull.scratch.path().join("flat.tar");
    ok(&hull, &["export", "-o", archive.to_str().unwrap(), "done"]);
    let dangling = ok(&hull, &["import", archive.to_str().unwrap()]);
    ok(&hull, &["network", "create", "unused"]);

    // A "no" keeps everything.
    let out = hull.run_with_input(&["container", "prune"], b"n\n");
    assert!(
        out.status.success() && stderr(&out).contains("This will remove all stopped containers"),
        "{}",
        stderr(&out)
    );
    assert_eq!(ok(&hull, &["ps", "-aq"]).lines().count(), 3);

    let pruned = ok(&hull, &["container", "prune", "-f"]);
    assert!(
        // Two containers, a blank line, the space.
        pruned.starts_with("Deleted Containers:")
            && pruned.lines().count() == 5
            && pruned.contains("\n\nTotal reclaimed space: ")
            && pruned.ends_with('B'),
        "{pruned}"
    );
    assert_eq!(ok(&hull, &["ps", "-a", "--format", "{{.Names}}"]), "up");

    let pruned = ok(&hull, &["image", "prune", "-f"]);
    assert!(
        pruned.contains(&dangling["sha256:".len()..]),
        "the untagged image: {pruned}"
    );
    // The layers it alone held went: some space came back.
    let reclaimed = pruned.lines().last().unwrap_or_default();
    assert!(
        reclaimed.starts_with("Total reclaimed space: ")
            && reclaimed != "Total reclaimed space: 0B",
        "{pruned}"
    );
    let images = ok(&hull, &["images"]);
    assert!(
        images.contains("snapshot") && images.contains("busybox"),
        "{images}"
    );

    let pruned = ok(&hull, &["system", "prune", "-a", "-f"]);
    assert!(pruned.contains("Deleted Networks:\nunused"), "{pruned}");
    assert!(
        pruned
            .lines()
            .last()
            .unwrap_or_default()
            .starts_with("Total reclaimed space: "),
        "{pruned}"
    );
    let images = ok(&hull, &["images"]);
    assert!(
        !images.contains("snapshot") && images.contains("busybox"),
        "an image in use went, or an unused one stayed: {images}"
    );
    ok(&hull, &["rm", "-f", "up"]);
}

#[test]
fn rename_holds_through_the_monitors_own_saves() {
    let hull = hull();
    ok(
        &hull,
        &[
            "run",
            "-d",
            "--name",
            "before",
            "--network",
            "none",
            BUSYBOX_IMAGE,
            "sleep",
            "300",
        ],
    );
    ok(&hull, &["create", "--name", "taken", BUSYBOX_IMAGE, "true"]);
    let out = hull.run(["rename", "before", "taken"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is already in use by container"),
        "{}",
        stderr(&out)
    );
    let out = hull.run(["rename", "before", "Bad Name"]);
    assert_eq!(out.status.code(), Some(1));

    ok(&hull, &["rename", "before", "after"]);
    assert_eq!(
        inspect(&hull, "after", "{{.Name}} {{.State.Status}}"),
        "/after running"
    );
    assert_eq!(hull.run(["inspect", "before"]).status.code(), Some(1));
    // The monitor, which read the record before the rename, saves it at the stop.
    ok(&hull, &["stop", "-t", "0", "after"]);
    assert_eq!(
        inspect(&hull, "after", "{{.Name}} {{.State.Status}}"),
        "/after exited"
    );
    ok(&hull, &["start", "after"]);
    assert!(ok(&hull, &["ps", "--format", "{{.Names}}"])
        .lines()
        .any(|n| n == "after"));
    // The old name is free again.
    ok(
        &hull,
        &["create", "--name", "before", BUSYBOX_IMAGE, "true"],
    );
    ok(&hull, &["rm", "-f", "after", "before", "taken"]);
}

#[test]
fn capabilities_and_no_new_privileges_as_docker_sets_them() {
    let hull = hull();
    let status = |flags: &[&str]| {
        let mut args = vec!["run", "--rm", "--network", "none"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[
            BUSYBOX_IMAGE,
            "grep",
            "-E",
            "^(CapEff|NoNewPrivs|Seccomp):",
            "/proc/self/status",
        ]);
        ok(&hull, &args)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    // Docker's default set, no no_new_privs, the default seccomp filter.
    assert_eq!(
        status(&[]),
        "CapEff: 00000000a80425fb NoNewPrivs: 0 Seccomp: 2"
    );
    assert_eq!(
        status(&["--cap-drop", "ALL", "--cap-add", "net_bind_service"]),
        "CapEff: 0000000000000400 NoNewPrivs: 0 Seccomp: 2"
    );
    assert_eq!(
        status(&[
            "--cap-add",
            "CAP_NET_ADMIN",
            "--security-opt",
            "no-new-privileges",
            "--security-opt",
            "seccomp=unconfined"
        ]),
        "CapEff: 00000000a80435fb NoNewPrivs: 1 Seccomp: 0"
    );
    // What a dropped capability allowed fails.
    let out = hull.run([
        "run",
        "--rm",
        "--network",
        "none",
        "--cap-drop",
        "CHOWN",
        BUSYBOX_IMAGE,
        "chown",
        "1",
        "/tmp",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    for (flags, says) in [
        (
            ["--cap-add", "BOGUS"],
            "invalid --cap-add: unknown capability: \"BOGUS\"",
        ),
        (
            ["--security-opt", "apparmor=docker-default"],
            "invalid --security-opt: apparmor=docker-default: not supported by Hull",
        ),
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(&flags);
        args.extend_from_slice(&[BUSYBOX_IMAGE, "true"]);
        let out = hull.run(&args);
        assert_eq!(out.status.code(), Some(125), "{flags:?}");
        assert!(stderr(&out).contains(says), "{flags:?}: {}", stderr(&out));
    }
}

#[test]
fn seccomp_profiles_as_docker_applies_them() {
    let hull = hull();
    let run = |flags: &[&str], command: &[&str]| {
        let mut args = vec!["run", "--rm", "--network", "none"];
        args.extend_from_slice(flags);
        args.push(BUSYBOX_IMAGE);
        args.extend_from_slice(command);
        hull.run(&args)
    };
    // The default refuses what Docker's refuses (mount, even to root with
    // CAP_SYS_ADMIN's other powers withheld) and gives it back with the
    // capability, as Docker does.
    let mount = ["mount", "-t", "tmpfs", "none", "/tmp"];
    let out = run(&[], &mount);
    assert_ne!(out.status.code(), Some(0));
    let out = run(&["--cap-add", "SYS_ADMIN"], &mount);
    assert!(out.status.success(), "{}", stderr(&out));

    // A profile of one's own, in Docker's format: mkdir answers EACCES.
    let profile = hull.scratch.path().join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                          "errnoRet": 13, "comment": "no new directories"}]}"#,
    )
    .unwrap();
    let own = format!("seccomp={}", profile.display());
    let out = run(&["--security-opt", &own], &["mkdir", "/tmp/d"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("Permission denied"),
        "{}",
        stderr(&out)
    );
    let out = run(&["--security-opt", &own], &["touch", "/tmp/f"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // exec'd processes run under the container's filter too.
    let id = ok(
        &hull,
        &[
            "run",
            "-d",
            "--network",
            "none",
            "--security-opt",
            &own,
            BUSYBOX_IMAGE,
            "sleep",
            "600",
        ],
    );
    let out = hull.run(["exec", &id, "mkdir", "/tmp/e"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("Permission denied"),
        "{}",
        stderr(&out)
    );
    assert!(ok(
        &hull,
        &["exec", &id, "grep", "^Seccomp:", "/proc/self/status"]
    )
    .contains('2'));
    ok(&hull, &["rm", "-f", &id]);

    // A profile Hull cannot read fails at once, as Docker's does.
    std::fs::write(&profile, "{ not json").unwrap();
    let out = run(&["--security-opt", &own], &["true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("decoding seccomp profile failed"),
        "{}",
        stderr(&out)
    );
}
