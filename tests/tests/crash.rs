//! Crash consistency: at each step of `run`, `start`, `stop`, `rm` and
//! `commit`, the CLI, the monitor, the VMM or virtiofsd is killed (a fault
//! point, `FAILPOINTS`, makes the process die there as `kill -9` would, or
//! has the monitor kill its VMM or virtiofsd); then `ps`, `inspect`,
//! `start` and `rm` must behave, and nothing may be left after `rm`.

use hull_tests::harness::{eventually, ok, stderr, stdout, Hull, BUSYBOX_IMAGE};
use std::process::Output;
use std::time::Duration;

/// `hull ARGS` with one fault point armed; a hang fails the test.
fn with_fault(hull: &Hull, point: &str, action: &str, args: &[&str]) -> Output {
    let child = hull
        .command(args)
        .env("FAILPOINTS", format!("{point}=return({action})"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running hull");
    let pid = child.id();
    let (done, waited) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match waited.recv_timeout(Duration::from_secs(120)) {
        Ok(output) => output.expect("waiting for hull"),
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
            panic!("hull {args:?} with {point}={action} hung for 120 s");
        }
    }
}

fn status(hull: &Hull, name: &str) -> String {
    ok(hull, &["inspect", "-f", "{{.State.Status}}", name])
}

/// After a fault, the container must be listed and inspectable, settle in a
/// state that is not running, start again and work, and be removed with
/// nothing left.
fn recovers(hull: &Hull, name: &str, what: &str) {
    assert!(
        eventually(Duration::from_secs(30), || {
            let state = status(hull, name);
            state == "exited" || state == "created"
        }),
        "{what}: still {}",
        ok(hull, &["inspect", "-f", "{{json .State}}", name])
    );
    assert!(
        ok(hull, &["ps", "-a", "--format", "{{.Names}}"])
            .lines()
            .any(|l| l == name),
        "{what}: not listed"
    );
    let out = hull.run(["start", name]);
    assert!(out.status.success(), "{what}: start: {}", stderr(&out));
    let out = hull.run(["exec", name, "ping", "-c", "1", "-W", "5", "10.88.0.1"]);
    assert!(
        out.status.success(),
        "{what}: exec after restart: {}{}",
        stdout(&out),
        stderr(&out)
    );
    ok(hull, &["rm", "-f", name]);
    assert_eq!(ok(hull, &["ps", "-aq"]), "", "{what}");
    hull.assert_nothing_left();
}

/// The steps of `run -d` at which a process dies, and who.
const RUN_FAULTS: &[(&str, &str)] = &[
    ("create.after-record", "die"),
    ("run.after-monitor", "die"),
    ("monitor.after-network", "die"),
    ("monitor.after-boot", "die"),
    ("monitor.after-boot", "kill-vmm"),
    ("monitor.after-boot", "kill-virtiofsd"),
    ("monitor.running", "die"),
    ("monitor.running", "kill-vmm"),
    ("monitor.running", "kill-virtiofsd"),
];

#[test]
fn a_process_killed_at_any_step_of_run_loses_nothing() {
    let hull = Hull::with_busybox();
    for (i, (point, action)) in RUN_FAULTS.iter().enumerate() {
        let name = format!("crash{i}");
        let what = format!("run -d with {point}={action}");
        let out = with_fault(
            &hull,
            point,
            action,
            &[
                "run",
                "-d",
                "--name",
                &name,
                "-p",
                "8080:80",
                BUSYBOX_IMAGE,
                "sleep",
                "600",
            ],
        );
        eprintln!(
            "{what}: exit {:?}, {}",
            out.status.code(),
            stderr(&out).trim()
        );
        recovers(&hull, &name, &what);
    }
}

#[test]
fn a_monitor_killed_after_its_container_exited_loses_nothing() {
    let hull = Hull::with_busybox();
    // The container ends, then its monitor dies before it lets the network go.
    let out = with_fault(
        &hull,
        "monitor.after-exit",
        "die",
        &[
            "run",
            "-d",
            "--name",
            "brief",
            "-p",
            "8080:80",
            BUSYBOX_IMAGE,
            "sleep",
            "2",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    recovers(&hull, "brief", "monitor.after-exit");
    // The same for `run --rm`, attached: the CLI removes what the monitor could not.
    let out = with_fault(
        &hull,
        "monitor.after-exit",
        "die",
        &["run", "--rm", BUSYBOX_IMAGE, "true"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(ok(&hull, &["ps", "-aq"]), "");
    hull.assert_nothing_left();
}

#[test]
fn a_cli_killed_during_start_stop_rm_or_commit_loses_nothing() {
    let hull = Hull::with_busybox();
    ok(
        &hull,
        &["create", "--name", "steady", BUSYBOX_IMAGE, "sleep", "600"],
    );

    // start: the monitor is up, the word to start never came.
    let out = with_fault(&hull, "start.after-monitor", "die", &["start", "steady"]);
    assert_ne!(out.status.code(), Some(0));
    assert_eq!(status(&hull, "steady"), "created");
    ok(&hull, &["start", "steady"]);
    assert_eq!(status(&hull, "steady"), "running");

    // stop: the monitor still stops it.
    let out = with_fault(
        &hull,
        "stop.after-request",
        "die",
        &["stop", "-t", "1", "steady"],
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(
        eventually(Duration::from_secs(30), || status(&hull, "steady")
            == "exited"),
        "{}",
        status(&hull, "steady")
    );
    ok(&hull, &["start", "steady"]);

    // commit: the VM was frozen for it; the next command lets it go.
    let out = with_fault(
        &hull,
        "commit.paused",
        "die",
        &["commit", "steady", "half:done"],
    );
    assert_ne!(out.status.code(), Some(0));
    assert_eq!(status(&hull, "steady"), "running");
    let out = hull.run(["exec", "steady", "echo", "thawed"]);
    assert_eq!(
        (out.status.code(), stdout(&out).trim()),
        (Some(0), "thawed"),
        "{}",
        stderr(&out)
    );
    assert!(!ok(&hull, &["images"]).contains("half"));
    ok(&hull, &["commit", "steady", "whole:done"]);
    let leftover_layers: Vec<_> = std::fs::read_dir(hull.root().join("image"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-commit"))
        .collect();
    assert!(leftover_layers.is_empty(), "{leftover_layers:?}");

    // rm: stopped, then the CLI died before the record went; rm again finishes.
    let out = with_fault(&hull, "rm.before-remove", "die", &["rm", "-f", "steady"]);
    assert_ne!(out.status.code(), Some(0));
    assert_eq!(status(&hull, "steady"), "exited");
    ok(&hull, &["rm", "steady"]);
    ok(&hull, &["rmi", "whole:done"]);
    hull.assert_nothing_left();
}
