//! Who may drive Hull: root alone. Its state and run directories are
//! reachable by root only (0700), so another user on the host can neither
//! attach to a container, exec in it, list it, nor read its log, through
//! `hull` or around it.

use hull_tests::harness::{as_user, ok, stderr, stdout, Hull, BUSYBOX_IMAGE};
use std::os::unix::fs::PermissionsExt;
use std::process::{Output, Stdio};

/// Runs `program ARGS` as user and group 65534 (nobody), with no groups.
fn as_nobody(hull: &Hull, program: &std::path::Path, args: &[&str]) -> Output {
    as_user(65534, program)
        .args(args)
        .env("HULL_ROOT", hull.root())
        .env("HULL_RUN_DIR", hull.run_dir())
        .env("HULL_LIB_DIR", &hull.lib_dir)
        .stdin(Stdio::null())
        .output()
        .expect("running setpriv (util-linux)")
}

#[test]
fn an_unprivileged_user_cannot_attach_exec_list_or_read_logs() {
    let hull = Hull::with_busybox();
    let id = ok(
        &hull,
        &[
            "run",
            "-d",
            "--name",
            "secret",
            "--network",
            "none",
            BUSYBOX_IMAGE,
            "sh",
            "-c",
            "echo top-secret; exec sleep 600",
        ],
    );
    // Everything up to Hull's own directories is open to everyone (as /var
    // and /run are), so what keeps the user out is Hull's modes alone; and
    // the user can run the same `hull`.
    let open = |path: &std::path::Path| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap()
    };
    open(hull.scratch.path());
    let bin = hull.scratch.path().join("hull");
    std::fs::copy(&hull.bin, &bin).unwrap();
    // The run directory lets unprivileged VMMs pass, and lists nothing.
    for (dir, wanted) in [(hull.root(), 0o700), (hull.run_dir(), 0o711)] {
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, wanted, "{}", dir.display());
    }
    for args in [
        &["logs", "secret"][..],
        &["exec", "secret", "echo", "in"],
        &["attach", "secret"],
        &["ps", "-a"],
        &["inspect", "secret"],
    ] {
        let out = as_nobody(&hull, &bin, args);
        assert!(!out.status.success(), "hull {args:?} as nobody succeeded");
        assert!(
            stderr(&out).contains("Permission denied"),
            "hull {args:?}: {}",
            stderr(&out)
        );
        assert!(!stdout(&out).contains("top-secret") && !stdout(&out).contains("secret"));
    }
    let log = hull
        .root()
        .join("containers")
        .join(&id)
        .join(format!("{id}-json.log"));
    assert!(log.exists(), "{}", log.display());
    let out = as_nobody(
        &hull,
        std::path::Path::new("/bin/cat"),
        &[log.to_str().unwrap()],
    );
    assert!(!out.status.success() && !stdout(&out).contains("top-secret"));
    // Root still drives it.
    assert!(ok(&hull, &["logs", "secret"]).contains("top-secret"));
    ok(&hull, &["rm", "-f", "secret"]);
}
