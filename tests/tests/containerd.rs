//! containerd with Hull's shim: `ctr run --runtime io.containerd.hull.v2`
//! runs a container in a microVM, with its stdio, exit code, exec, pause,
//! resume, kill and delete, and nothing is left when containerd deletes the
//! task, also after the shim was killed. Real parts: Debian's containerd
//! 1.6 and ctr, the shim as built, QEMU, Hull's kernel and agent.

use hull_tests::containerd::{Containerd, RUNTIME};
use hull_tests::harness::eventually;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The status column of `ctr task ls` for task `id`.
fn task_status(containerd: &Containerd, id: &str) -> String {
    let out = containerd.ctr(["task", "ls"]);
    text(&out.stdout)
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id))
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn ctr_run_boots_hulls_kernel_with_stdio_and_exit_codes() {
    let containerd = Containerd::start();
    containerd.import_busybox();

    let out = containerd.ctr([
        "run",
        "--runtime",
        RUNTIME,
        "--rm",
        "busybox:latest",
        "k",
        "uname",
        "-r",
    ]);
    assert!(
        out.status.success(),
        "ctr run: {}\n{}",
        text(&out.stderr),
        containerd.log()
    );
    assert!(
        text(&out.stdout).trim().ends_with("-hull"),
        "{}",
        text(&out.stdout)
    );

    let out = containerd.ctr([
        "run",
        "--runtime",
        RUNTIME,
        "--rm",
        "busybox:latest",
        "codes",
        "sh",
        "-c",
        "echo to-stdout; echo to-stderr >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "to-stdout");
    assert!(
        text(&out.stderr).contains("to-stderr"),
        "{}",
        text(&out.stderr)
    );

    let mut cat = containerd
        .ctr_command([
            "run",
            "--runtime",
            RUNTIME,
            "--rm",
            "busybox:latest",
            "in",
            "cat",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("ctr run cat");
    cat.stdin
        .take()
        .expect("stdin")
        .write_all(b"through-stdin\n")
        .expect("writing stdin");
    let out = cat.wait_with_output().expect("ctr run cat");
    assert!(out.status.success());
    assert_eq!(text(&out.stdout).trim(), "through-stdin");

    containerd.assert_nothing_left();
}

#[test]
fn a_detached_task_is_paused_resumed_killed_and_deleted() {
    let containerd = Containerd::start();
    containerd.import_busybox();
    let out = containerd.ctr([
        "run",
        "--runtime",
        RUNTIME,
        "-d",
        "busybox:latest",
        "bg",
        "sleep",
        "600",
    ]);
    assert!(
        out.status.success(),
        "ctr run -d: {}\n{}",
        text(&out.stderr),
        containerd.log()
    );
    assert_eq!(task_status(&containerd, "bg"), "RUNNING");
    let out = containerd.ctr([
        "task",
        "exec",
        "--exec-id",
        "e1",
        "bg",
        "sh",
        "-c",
        "echo from-exec; exit 4",
    ]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "ctr task exec: {}",
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout).trim(), "from-exec");
    // A signal to an exec'd process ends it, and only it.
    let mut exec = containerd
        .ctr_command(["task", "exec", "--exec-id", "e2", "bg", "sleep", "600"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("ctr task exec");
    let killed = eventually(Duration::from_secs(30), || {
        containerd
            .ctr(["task", "kill", "--exec-id", "e2", "-s", "SIGTERM", "bg"])
            .status
            .success()
    });
    if !killed {
        let _ = exec.kill();
    }
    let status = exec.wait().expect("waiting for ctr task exec");
    assert!(killed, "ctr task kill --exec-id e2 never succeeded");
    assert_eq!(status.code(), Some(143), "{status}");
    assert_eq!(task_status(&containerd, "bg"), "RUNNING");
    let out = containerd.ctr(["task", "metrics", "bg"]);
    assert!(
        out.status.success(),
        "ctr task metrics: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("memory.usage"),
        "{}",
        text(&out.stdout)
    );
    assert!(containerd.ctr(["task", "pause", "bg"]).status.success());
    assert_eq!(task_status(&containerd, "bg"), "PAUSED");
    assert!(containerd.ctr(["task", "resume", "bg"]).status.success());
    assert_eq!(task_status(&containerd, "bg"), "RUNNING");
    assert!(containerd
        .ctr(["task", "kill", "-s", "SIGKILL", "bg"])
        .status
        .success());
    assert!(
        eventually(Duration::from_secs(30), || task_status(&containerd, "bg")
            == "STOPPED"),
        "the task did not stop: {}",
        task_status(&containerd, "bg")
    );
    assert!(containerd.ctr(["task", "rm", "bg"]).status.success());
    assert!(containerd.ctr(["containers", "rm", "bg"]).status.success());
    containerd.assert_nothing_left();
}

#[test]
fn a_killed_shim_leaves_nothing_behind() {
    let containerd = Containerd::start();
    containerd.import_busybox();
    let out = containerd.ctr([
        "run",
        "--runtime",
        RUNTIME,
        "-d",
        "busybox:latest",
        "victim",
        "sleep",
        "600",
    ]);
    assert!(out.status.success(), "ctr run -d: {}", text(&out.stderr));
    let shim = containerd
        .hull
        .processes()
        .into_iter()
        .find(|pid| {
            let cmdline = text(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default());
            let mut args = cmdline.split('\0');
            args.next()
                .is_some_and(|program| program.ends_with("containerd-shim-hull-v2"))
                && args.any(|a| a == "-namespace")
        })
        .expect("the shim's process");
    assert!(std::process::Command::new("kill")
        .args(["-9", &shim.to_string()])
        .status()
        .expect("kill")
        .success());
    // containerd notices, runs the shim's `delete`, which removes the
    // container, VM and all.
    assert!(
        eventually(Duration::from_secs(30), || task_status(
            &containerd,
            "victim"
        ) != "RUNNING"),
        "containerd still sees the task running"
    );
    let _ = containerd.ctr(["task", "rm", "-f", "victim"]);
    assert!(containerd
        .ctr(["containers", "rm", "victim"])
        .status
        .success());
    containerd.assert_nothing_left();
}
