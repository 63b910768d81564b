//! Interrupting `hull run` leaves nothing behind: no VMM, no virtiofsd, no
//! sandbox directory, no mount.

use hull_tests::harness::{Hull, BUSYBOX_IMAGE};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Pids of processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(needle) {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn ctrl_c_tears_the_sandbox_down() {
    let hull = Hull::new();
    hull.load_busybox().unwrap();
    let mut child = hull
        .command([
            "run",
            "--rm",
            BUSYBOX_IMAGE,
            "sh",
            "-c",
            "echo ready; sleep 300",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    let scratch = hull.scratch.path().to_string_lossy().into_owned();
    assert!(
        processes_mentioning(&scratch).len() >= 2,
        "VMM and virtiofsd should be running"
    );

    let started = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = child.wait().unwrap();
    // The shell as PID 1 usually ignores SIGINT, and after a grace period
    // Hull kills it (137); if busybox's shell takes the signal, 130. Either
    // way the run ended; what matters here is what is left behind.
    assert!(
        matches!(status.code(), Some(130) | Some(137)),
        "exit {:?}",
        status.code()
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "teardown took {:?}",
        started.elapsed()
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !processes_mentioning(&scratch).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        processes_mentioning(&scratch),
        Vec::<u32>::new(),
        "processes left behind"
    );
    assert_eq!(
        hull.leftover_sandboxes(),
        Vec::<std::path::PathBuf>::new(),
        "sandbox directory left behind"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&scratch), "mounts left behind");
}

#[test]
fn a_container_that_exits_on_sigint_reports_it() {
    let hull = Hull::new();
    hull.load_busybox().unwrap();
    let mut child = hull
        .command([
            "run",
            "--rm",
            BUSYBOX_IMAGE,
            "sh",
            "-c",
            "trap 'echo got INT; exit 42' INT; echo ready; while true; do sleep 0.1; done",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
    assert_eq!(rest, "got INT\n");
    assert_eq!(status.code(), Some(42));
}
