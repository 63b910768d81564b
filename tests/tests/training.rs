//! A Docker training session, replayed against Hull from start to end: a
//! private registry (tag, push, pull), a detached container (ps, attach and
//! detach, exec, logs -f, inspect), commit, export | import, save | load,
//! a restart policy, and the clean-up everyone types at the end.

use hull_tests::harness::{eventually, ok, Hull, BUSYBOX_IMAGE};
use hull_tests::registry::TestRegistry;
use std::io::{BufRead, Write};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The lines a child writes on stdout, read on a thread of their own.
fn lines_of(stdout: std::process::ChildStdout) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

/// Waits for a line satisfying `want`, up to `timeout`.
fn wait_for_line(
    lines: &mpsc::Receiver<String>,
    timeout: Duration,
    want: impl Fn(&str) -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) if want(&line) => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

#[test]
fn a_docker_training_session() {
    let hull = Hull::with_busybox();

    // A private registry: tag, push, remove the local copy, pull it back.
    let registry = TestRegistry::start(&hull, 5000, None);
    let image = registry.name("training/busybox:1.0");
    ok(&hull, &["tag", BUSYBOX_IMAGE, &image]);
    let pushed = ok(&hull, &["push", &image]);
    assert!(pushed.contains("1.0: digest: sha256:"), "{pushed}");
    ok(&hull, &["rmi", &image]);
    let pulled = ok(&hull, &["pull", &image]);
    assert!(
        pulled.contains("Status: ") && pulled.ends_with(&image),
        "{pulled}"
    );
    assert!(ok(&hull, &["images"]).contains("127.0.0.1:5000/training/busybox"));

    // A detached, interactive container; ps and ps -a.
    let counter = "echo hello; i=0; while true; do i=$((i+1)); echo line $i; sleep 0.3; done";
    let id = ok(
        &hull,
        &[
            "run", "-d", "-i", "--name", "web", &image, "sh", "-c", counter,
        ],
    );
    assert_eq!(id.len(), 64);
    ok(&hull, &["run", "--name", "done", &image, "true"]);
    assert!(ok(&hull, &["ps"])
        .lines()
        .any(|l| l.ends_with("web") && l.contains("Up ")));
    let all = ok(&hull, &["ps", "-a"]);
    assert!(
        all.contains("web") && all.contains("Exited (0)") && all.contains("done"),
        "{all}"
    );

    // attach, then Ctrl-p Ctrl-q: the client leaves, the container runs on.
    let mut attach = hull
        .command(["attach", "web"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let attached = lines_of(attach.stdout.take().unwrap());
    assert!(
        wait_for_line(&attached, Duration::from_secs(10), |l| l
            .starts_with("line ")),
        "attach shows no output"
    );
    attach
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"\x10\x11")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = attach.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = attach.kill();
            panic!("Ctrl-p Ctrl-q did not detach");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "detach exit status {status:?}");
    assert_eq!(
        ok(&hull, &["inspect", "-f", "{{.State.Status}}", "web"]),
        "running"
    );
    // --detach-keys (through the management form, `container attach`):
    // another sequence; Ctrl-p Ctrl-q is then plain input.
    let mut attach = hull
        .command(["container", "attach", "--detach-keys", "ctrl-a,d", "web"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    attach
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"\x10\x11")
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        attach.try_wait().unwrap().is_none(),
        "Ctrl-p Ctrl-q detached despite --detach-keys"
    );
    attach.stdin.as_mut().unwrap().write_all(b"\x01d").unwrap();
    assert!(
        eventually(Duration::from_secs(10), || attach
            .try_wait()
            .unwrap()
            .is_some()),
        "ctrl-a,d did not detach"
    );
    assert!(attach.wait().unwrap().success());
    assert_eq!(
        ok(&hull, &["inspect", "-f", "{{.State.Status}}", "web"]),
        "running"
    );

    // exec, logs -f, inspect -f.
    assert_eq!(
        ok(
            &hull,
            &[
                "exec",
                "web",
                "sh",
                "-c",
                "echo from exec > /exec-was-here; cat /exec-was-here"
            ]
        ),
        "from exec"
    );
    let mut follow = hull
        .command(["logs", "-f", "web"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let followed = lines_of(follow.stdout.take().unwrap());
    assert!(
        wait_for_line(&followed, Duration::from_secs(5), |l| l == "hello"),
        "logs -f starts at the beginning"
    );
    let seen_now = ok(&hull, &["logs", "web"]).lines().count();
    let later = format!("line {}", seen_now + 3);
    assert!(
        wait_for_line(&followed, Duration::from_secs(15), |l| l == later),
        "logs -f does not follow new output"
    );
    let _ = follow.kill();
    let _ = follow.wait();
    let pid: u32 = ok(&hull, &["inspect", "-f", "{{.State.Pid}}", "web"])
        .parse()
        .unwrap();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());

    // commit, and a container of the new image sees the change.
    ok(&hull, &["commit", "web", "training/web:snapshot"]);
    assert_eq!(
        ok(
            &hull,
            &[
                "run",
                "--rm",
                "training/web:snapshot",
                "cat",
                "/exec-was-here"
            ]
        ),
        "from exec"
    );

    // export | import: one layer; history shows it.
    let archive = hull.scratch.path().join("web.tar");
    ok(&hull, &["export", "-o", archive.to_str().unwrap(), "web"]);
    ok(
        &hull,
        &["import", archive.to_str().unwrap(), "training/flat:1"],
    );
    assert_eq!(
        ok(&hull, &["history", "-q", "training/flat:1"])
            .lines()
            .count(),
        1
    );
    assert_eq!(
        ok(
            &hull,
            &["run", "--rm", "training/flat:1", "cat", "/exec-was-here"]
        ),
        "from exec"
    );

    // save, rmi, load, run again.
    let saved = hull.scratch.path().join("saved.tar");
    ok(
        &hull,
        &[
            "save",
            "-o",
            saved.to_str().unwrap(),
            "training/web:snapshot",
        ],
    );
    ok(&hull, &["rmi", "training/web:snapshot"]);
    assert!(!ok(&hull, &["images"]).contains("training/web"));
    let loaded = ok(&hull, &["load", "-i", saved.to_str().unwrap()]);
    assert!(loaded.contains("training/web:snapshot"), "{loaded}");
    assert_eq!(
        ok(
            &hull,
            &[
                "run",
                "--rm",
                "training/web:snapshot",
                "cat",
                "/exec-was-here"
            ]
        ),
        "from exec"
    );

    // --restart=always brings a crashed container back.
    ok(
        &hull,
        &[
            "run",
            "-d",
            "--restart=always",
            "--name",
            "crashy",
            &image,
            "sh",
            "-c",
            "sleep 1; exit 3",
        ],
    );
    assert!(
        eventually(Duration::from_secs(40), || ok(
            &hull,
            &["inspect", "-f", "{{.RestartCount}}", "crashy"]
        )
        .parse::<u32>()
        .unwrap_or(0)
            >= 1),
        "crashy was not restarted"
    );

    // hull rm -f $(hull ps -aq): nothing left.
    let ids = ok(&hull, &["ps", "-aq"]);
    assert_eq!(ids.lines().count(), 3, "{ids}");
    let mut args = vec!["rm", "-f"];
    args.extend(ids.lines());
    ok(&hull, &args);
    assert_eq!(ok(&hull, &["ps", "-aq"]), "");
    assert!(
        hull.leftover_sandboxes().is_empty(),
        "{:?}",
        hull.leftover_sandboxes()
    );
    drop(registry);
}
