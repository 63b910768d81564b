//! Under load and faults nothing is lost: many containers started at once
//! each get an address of their own, a killed monitor leaves nothing after
//! `rm` and does not stop a restart, and bad flags fail up front.

use hull_tests::harness::{eventually, ok, stderr, stdout, Hull, BUSYBOX_IMAGE};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// How many containers start at once, and how many rounds
/// (`HULL_TEST_CONCURRENT`, `HULL_TEST_ROUNDS`).
fn concurrency() -> (usize, usize) {
    let var = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    (var("HULL_TEST_CONCURRENT", 20), var("HULL_TEST_ROUNDS", 2))
}

fn inspect(hull: &Hull, name: &str, format: &str) -> String {
    ok(hull, &["inspect", "-f", format, name])
}

#[test]
fn containers_started_at_once_each_get_their_own_address() {
    let hull = Hull::with_busybox();
    let (count, rounds) = concurrency();
    for round in 0..rounds {
        let started = Instant::now();
        // All at once, as `for i in …; do hull run -d … & done` would.
        let ids: Vec<String> = std::thread::scope(|scope| {
            let runs: Vec<_> = (0..count)
                .map(|i| {
                    let hull = &hull;
                    scope.spawn(move || {
                        let name = format!("c{round}-{i}");
                        // Generous: 20 guests boot at once on 2 cores under the emulator.
                        let out = hull.run([
                            "run",
                            "-d",
                            "--boot-timeout",
                            "300",
                            "--name",
                            &name,
                            BUSYBOX_IMAGE,
                            "sleep",
                            "600",
                        ]);
                        assert!(out.status.success(), "run {name}: {}", stderr(&out));
                        stdout(&out).trim().to_string()
                    })
                })
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        });
        eprintln!(
            "round {round}: {count} containers up in {:?}",
            started.elapsed()
        );

        let mut addresses = HashSet::new();
        for id in &ids {
            assert_eq!(inspect(&hull, id, "{{.State.Status}}"), "running");
            let ip = inspect(&hull, id, "{{.NetworkSettings.IPAddress}}");
            assert!(ip.starts_with("10.88."), "{id}: address {ip:?}");
            assert!(addresses.insert(ip.clone()), "two containers have {ip}");
            // The guest's own eth0 has it, and the gateway answers.
            let eth0 = ok(
                &hull,
                &["exec", id, "ip", "-4", "-o", "addr", "show", "eth0"],
            );
            assert!(eth0.contains(&format!("{ip}/")), "{id}: {eth0}");
            let ping = hull.run(["exec", id, "ping", "-c", "1", "-W", "5", "10.88.0.1"]);
            assert!(
                ping.status.success(),
                "{id} ({ip}) cannot reach its gateway: {}{}",
                stdout(&ping),
                stderr(&ping)
            );
        }
        // One tap and one lease per container, no more.
        let links = stdout(
            &hull
                .in_netns(["ip", "-o", "link", "show"])
                .output()
                .unwrap(),
        );
        let taps = links.lines().filter(|l| l.contains("hulltap")).count();
        assert_eq!(taps, count, "{links}");
        let leases: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(hull.leases_file("bridge")).unwrap())
                .unwrap();
        let leases = leases["leases"].as_array().unwrap();
        assert_eq!(leases.len(), count, "{leases:?}");
        let owners: HashSet<&str> = leases.iter().filter_map(|l| l["owner"].as_str()).collect();
        assert_eq!(
            owners,
            ids.iter().map(String::as_str).collect::<HashSet<_>>()
        );

        // An address in use cannot be asked for again.
        let taken = addresses.iter().next().unwrap().clone();
        let out = hull.run(["run", "-d", "--ip", &taken, BUSYBOX_IMAGE, "true"]);
        assert_eq!(out.status.code(), Some(125), "--ip {taken} was accepted");
        assert!(stderr(&out).contains("already in use"), "{}", stderr(&out));

        let mut rm = vec!["rm", "-f"];
        rm.extend(ids.iter().map(String::as_str));
        ok(&hull, &rm);
        ok(&hull, &["container", "prune", "-f"]);
        hull.assert_nothing_left();
    }
}

/// Runs a detached container publishing a port and kills its monitor with
/// SIGKILL; returns the container's id once Hull shows it exited.
fn container_with_killed_monitor(hull: &Hull, name: &str, port: &str) -> String {
    let id = ok(
        hull,
        &[
            "run",
            "-d",
            "--name",
            name,
            "-p",
            &format!("{port}:80"),
            BUSYBOX_IMAGE,
            "sleep",
            "600",
        ],
    );
    let monitor = inspect(hull, name, "{{.HullSandbox.MonitorPid}}");
    assert!(std::process::Command::new("kill")
        .args(["-9", &monitor])
        .status()
        .unwrap()
        .success());
    assert!(
        eventually(Duration::from_secs(15), || inspect(
            hull,
            name,
            "{{.State.Status}}"
        ) == "exited"),
        "{}",
        inspect(hull, name, "{{json .State}}")
    );
    id
}

#[test]
fn rm_after_a_killed_monitor_leaves_nothing() {
    let hull = Hull::with_busybox();
    container_with_killed_monitor(&hull, "victim", "8080");
    // No other container starts in between: rm itself must clean up.
    ok(&hull, &["rm", "victim"]);
    hull.assert_nothing_left();
    // The port is free again.
    ok(
        &hull,
        &[
            "run",
            "-d",
            "--name",
            "next",
            "-p",
            "8080:80",
            BUSYBOX_IMAGE,
            "sleep",
            "600",
        ],
    );
    ok(&hull, &["rm", "-f", "next"]);
    hull.assert_nothing_left();
}

#[test]
fn start_after_a_killed_monitor_works() {
    let hull = Hull::with_busybox();
    let id = container_with_killed_monitor(&hull, "phoenix", "8081");
    for verb in ["start", "restart"] {
        let out = hull.run([verb, "phoenix"]);
        assert!(out.status.success(), "{verb}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains('\u{1b}'),
            "colour codes in {}",
            stderr(&out)
        );
        assert_eq!(inspect(&hull, "phoenix", "{{.State.Status}}"), "running");
        let ping = hull.run(["exec", "phoenix", "ping", "-c", "1", "-W", "5", "10.88.0.1"]);
        assert!(ping.status.success(), "after {verb}: {}", stderr(&ping));
    }
    // One lease and one tap: the dead monitor's are gone.
    let leases = std::fs::read_to_string(hull.leases_file("bridge")).unwrap();
    assert_eq!(leases.matches(&id).count(), 1, "{leases}");
    ok(&hull, &["rm", "-f", "phoenix"]);
    hull.assert_nothing_left();
}

#[test]
fn run_rm_whose_monitor_dies_says_so_and_leaves_nothing() {
    let hull = Hull::with_busybox();
    let run = hull
        .command([
            "run",
            "--rm",
            "--name",
            "doomed",
            BUSYBOX_IMAGE,
            "sleep",
            "600",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Generous: another test may be booting ten emulated guests at once.
    if !eventually(Duration::from_secs(240), || {
        hull.run(["inspect", "-f", "{{.State.Status}}", "doomed"])
            .stdout
            .starts_with(b"running")
    }) {
        let mut run = run;
        let _ = run.kill();
        let out = run.wait_with_output().unwrap();
        panic!(
            "never ran ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        );
    }
    let monitor = inspect(&hull, "doomed", "{{.HullSandbox.MonitorPid}}");
    let killed_at = Instant::now();
    assert!(std::process::Command::new("kill")
        .args(["-9", &monitor])
        .status()
        .unwrap()
        .success());
    let out = run.wait_with_output().unwrap();
    assert!(
        killed_at.elapsed() < Duration::from_secs(15),
        "run --rm took {:?} to notice",
        killed_at.elapsed()
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("monitor"), "{}", stderr(&out));
    // --rm: the container is gone, as everything it had.
    assert_eq!(ok(&hull, &["ps", "-aq"]), "");
    hull.assert_nothing_left();
}

#[test]
fn bad_flags_and_sizes_fail_at_once_with_the_reason() {
    let hull = Hull::with_busybox();
    let started = Instant::now();
    let out = hull.run(["run", "--bogus-flag", BUSYBOX_IMAGE]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("unknown flag: --bogus-flag"),
        "{}",
        stderr(&out)
    );
    let cpus = std::thread::available_parallelism().unwrap().get();
    let out = hull.run(["run", "--rm", "--cpus", "64", BUSYBOX_IMAGE, "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains(&format!(
            "Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
        )),
        "{}",
        stderr(&out)
    );
    for memory in ["1t", "100g"] {
        let out = hull.run(["run", "--rm", "-m", memory, BUSYBOX_IMAGE, "true"]);
        assert_eq!(out.status.code(), Some(125), "-m {memory}");
        assert!(
            stderr(&out).contains("the host has only"),
            "-m {memory}: {}",
            stderr(&out)
        );
    }
    // All refused before any VM was made.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(ok(&hull, &["ps", "-aq"]), "");
    hull.assert_nothing_left();
}
