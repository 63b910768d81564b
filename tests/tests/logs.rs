//! The json-file log's rotation end to end, as Docker's: `--log-opt
//! max-size=… --log-opt max-file=…` bound the log's files on disk, `hull
//! logs` (and `-f`, `--tail`, `--since`) reads the rotated files oldest
//! first, `--log-driver none` keeps no log, and options Hull cannot honour
//! are refused with 125 before anything is created.

use hull_tests::harness::{ok, stderr, stdout, Hull, BUSYBOX_IMAGE};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A busybox command that writes `line-1` … `line-<count>`.
fn flood(count: u32) -> String {
    format!("for i in $(seq {count}); do echo line-$i; done")
}

/// The numbers of `line-N` lines, asserting every line is one.
fn line_numbers(text: &str) -> Vec<u32> {
    text.lines()
        .map(|line| {
            line.strip_prefix("line-")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("not a line of the flood: {line:?}"))
        })
        .collect()
}

/// The container's log files on disk: `<id>-json.log` and its rotated ones.
fn log_files(hull: &Hull, id: &str) -> Vec<PathBuf> {
    let prefix = format!("{id}-json.log");
    let mut files: Vec<PathBuf> = std::fs::read_dir(hull.root().join("containers").join(id))
        .expect("reading the container's directory")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

/// `HostConfig.LogConfig` as `inspect` shows it.
fn log_config(hull: &Hull, name: &str) -> Value {
    let text = ok(
        hull,
        &["inspect", "-f", "{{json .HostConfig.LogConfig}}", name],
    );
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{err}: {text}"))
}

#[test]
fn rotated_logs_stay_bounded_and_read_in_order() {
    let hull = Hull::with_busybox();
    let out = hull.run([
        "run",
        "--name",
        "chatty",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=2",
        BUSYBOX_IMAGE,
        "sh",
        "-c",
        &flood(2000),
    ]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    // The terminal saw everything; the log keeps the end.
    assert_eq!(line_numbers(&stdout(&out)), (1..=2000).collect::<Vec<_>>());

    let id = ok(&hull, &["inspect", "-f", "{{.Id}}", "chatty"]);
    let files = log_files(&hull, &id);
    assert_eq!(files.len(), 2, "{files:?}");
    for file in &files {
        let size = std::fs::metadata(file).expect("a log file").len();
        // max-size (1k is 1000 bytes, as in Docker), give or take an entry.
        assert!(size <= 1000 + 200, "{}: {size} bytes", file.display());
    }

    let shown = line_numbers(&ok(&hull, &["logs", "chatty"]));
    assert_eq!(shown.last(), Some(&2000), "{shown:?}");
    assert!(shown.len() >= 10, "{shown:?}");
    // Oldest file first, each in order: one unbroken run, no repeats.
    assert!(shown.windows(2).all(|w| w[1] == w[0] + 1), "{shown:?}");
    assert!(
        shown[0] > 1,
        "the oldest lines were rotated away: {shown:?}"
    );

    assert_eq!(
        ok(&hull, &["logs", "--tail", "3", "chatty"]),
        "line-1998\nline-1999\nline-2000"
    );
    // A container that is done: `-f` prints the same and returns.
    assert_eq!(line_numbers(&ok(&hull, &["logs", "-f", "chatty"])), shown);
    assert_eq!(
        line_numbers(&ok(&hull, &["logs", "--since", "1h", "chatty"])),
        shown
    );
    let stamped = ok(&hull, &["logs", "-t", "--tail", "1", "chatty"]);
    assert!(stamped.ends_with("Z line-2000"), "{stamped}");

    assert_eq!(
        log_config(&hull, "chatty"),
        json!({"Type": "json-file", "Config": {"max-size": "1k", "max-file": "2"}})
    );
    // The rotated files go with the container.
    ok(&hull, &["rm", "chatty"]);
    assert!(!hull.root().join("containers").join(&id).exists());
}

#[test]
fn logs_follow_a_log_while_it_rotates() {
    let hull = Hull::with_busybox();
    let script = format!("sleep 2; {}", flood(3000));
    ok(
        &hull,
        &[
            "run",
            "-d",
            "--name",
            "flood",
            "--log-opt",
            "max-size=1k",
            "--log-opt",
            "max-file=3",
            BUSYBOX_IMAGE,
            "sh",
            "-c",
            &script,
        ],
    );
    let mut follower = hull
        .command(["logs", "-f", "flood"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running hull logs -f");
    let deadline = Instant::now() + Duration::from_secs(180);
    while follower
        .try_wait()
        .expect("waiting for hull logs -f")
        .is_none()
    {
        if Instant::now() > deadline {
            let _ = follower.kill();
            panic!("hull logs -f did not end with its container");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = follower.wait_with_output().expect("hull logs -f output");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let followed = line_numbers(&stdout(&out));
    // A follower that falls more than max-file files behind loses what
    // was deleted meanwhile (as Docker's), but never repeats or reorders.
    assert_eq!(followed.last(), Some(&3000), "{followed:?}");
    assert!(followed.windows(2).all(|w| w[1] > w[0]), "{followed:?}");
    ok(&hull, &["rm", "-f", "flood"]);
}

#[test]
fn the_none_driver_keeps_no_log() {
    let hull = Hull::with_busybox();
    let out = hull.run([
        "run",
        "--name",
        "quiet",
        "--log-driver",
        "none",
        BUSYBOX_IMAGE,
        "echo",
        "hello",
    ]);
    assert_eq!(stdout(&out), "hello\n", "stderr: {}", stderr(&out));
    assert_eq!(out.status.code(), Some(0));
    let id = ok(&hull, &["inspect", "-f", "{{.Id}}", "quiet"]);
    assert_eq!(log_files(&hull, &id), Vec::<PathBuf>::new());
    assert_eq!(ok(&hull, &["inspect", "-f", "{{.LogPath}}", "quiet"]), "");
    assert_eq!(
        log_config(&hull, "quiet"),
        json!({"Type": "none", "Config": {}})
    );
    // json-file, named, is the default's log.
    let out = hull.run([
        "run",
        "--name",
        "noted",
        "--log-driver",
        "json-file",
        BUSYBOX_IMAGE,
        "echo",
        "kept",
    ]);
    assert_eq!(stdout(&out), "kept\n", "stderr: {}", stderr(&out));
    assert_eq!(ok(&hull, &["logs", "noted"]), "kept");
    assert_eq!(log_config(&hull, "noted")["Type"], "json-file");
    ok(&hull, &["rm", "noted"]);
    let out = hull.run(["logs", "quiet"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("configured logging driver does not support reading"),
        "{}",
        stderr(&out)
    );
    ok(&hull, &["rm", "quiet"]);
}

#[test]
fn bad_log_options_are_refused_with_125() {
    let hull = Hull::with_busybox();
    for (verb, options, message) in [
        (
            "run",
            &["--log-opt", "foo=bar"][..],
            "unknown log opt 'foo' for json-file log driver",
        ),
        (
            "create",
            &["--log-opt", "max-size=lots"],
            "invalid size: 'lots'",
        ),
        (
            "run",
            &["--log-opt", "max-size=1k", "--log-opt", "max-file=0"],
            "max-file cannot be less than 1",
        ),
        (
            "run",
            &["--log-opt", "max-size=0"],
            "max-size must be a positive number",
        ),
        (
            "create",
            &["--log-driver", "syslog"],
            "logger: no log driver named 'syslog' is registered",
        ),
        (
            "run",
            &["--log-driver", "none", "--log-opt", "max-size=1k"],
            "invalid logging opts for driver none",
        ),
    ] {
        let args: Vec<&str> = std::iter::once(verb)
            .chain(options.iter().copied())
            .chain([BUSYBOX_IMAGE, "true"])
            .collect();
        let out = hull.run(&args);
        assert_eq!(
            out.status.code(),
            Some(125),
            "hull {args:?}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains(message),
            "hull {args:?}: {}",
            stderr(&out)
        );
    }
    assert_eq!(ok(&hull, &["ps", "-aq"]), "", "nothing was created");
}
