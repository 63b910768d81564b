//! Docker's command line where a Docker user expects it: `version`, `-v`,
//! the management commands (`container …`, `image …`, `system …`) and
//! usage errors with Docker's wording and exit codes.

use hull_tests::harness::{ok, stderr, stdout, Hull, BUSYBOX_IMAGE};

#[test]
fn version_as_docker_shows_it() {
    let hull = Hull::new();
    let text = ok(&hull, &["version"]);
    assert!(text.starts_with("Client: Hull\n Version:"), "{text}");
    for part in [
        "Server: Hull",
        " Engine:",
        " Backend:",
        " Guest kernel:",
        " virtiofsd:",
    ] {
        assert!(text.contains(part), "{part} missing: {text}");
    }
    // The guest kernel's release, read from the kernel image Hull boots.
    let guest = text.split(" Guest kernel:").nth(1).unwrap_or_default();
    assert!(
        guest.trim_start().starts_with("Version:") && guest.contains("-hull"),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&hull, &["version", "--format", "json"])).unwrap();
    assert_eq!(json["Client"]["Version"], json["Server"]["Version"]);
    assert!(ok(&hull, &["-v"]).starts_with("Hull version "));
    assert!(ok(&hull, &["--version"]).starts_with("Hull version "));
}

#[test]
fn usage_errors_as_docker_words_them() {
    let hull = Hull::new();
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["history"],
            1,
            "\"hull history\" requires exactly 1 argument.\nSee 'hull history --help'.",
        ),
        (
            &["tag", "x"],
            1,
            "\"hull tag\" requires exactly 2 arguments.",
        ),
        (&["rm"], 1, "\"hull rm\" requires at least 1 argument."),
        (
            &["container", "rm"],
            1,
            "\"hull container rm\" requires at least 1 argument.",
        ),
        (
            &["ps", "--bogus"],
            125,
            "unknown flag: --bogus\nSee 'hull ps --help'.",
        ),
        (
            &["run", "--bogus-flag", BUSYBOX_IMAGE],
            125,
            "unknown flag: --bogus-flag",
        ),
        (&["frob"], 1, "'frob' is not a hull command."),
    ];
    for (args, code, says) in cases {
        let out = hull.run(*args);
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn management_commands_are_the_short_ones() {
    let hull = Hull::with_busybox();
    let images = ok(&hull, &["image", "ls"]);
    assert_eq!(images, ok(&hull, &["images"]));
    assert!(images.contains("hull.test/busybox"), "{images}");
    let out = hull.run([
        "container",
        "run",
        "--rm",
        BUSYBOX_IMAGE,
        "echo",
        "from a management command",
    ]);
    assert_eq!(
        stdout(&out).trim(),
        "from a management command",
        "{}",
        stderr(&out)
    );
    ok(
        &hull,
        &[
            "container",
            "create",
            "--name",
            "made",
            BUSYBOX_IMAGE,
            "true",
        ],
    );
    assert_eq!(
        ok(&hull, &["container", "ls", "-a", "--format", "{{.Names}}"]),
        "made"
    );
    assert_eq!(
        ok(&hull, &["container", "list", "-aq"]),
        ok(&hull, &["ps", "-aq"])
    );
    assert_eq!(
        ok(&hull, &["container", "inspect", "-f", "{{.Name}}", "made"]),
        "/made"
    );
    // `image inspect` looks at images only.
    assert!(!hull.run(["image", "inspect", "made"]).status.success());
    assert!(
        ok(&hull, &["image", "inspect", "-f", "{{.Id}}", BUSYBOX_IMAGE]).starts_with("sha256:")
    );
    let df = ok(&hull, &["system", "df"]);
    assert!(df.starts_with("TYPE"), "{df}");
    let images_line = df.lines().find(|l| l.starts_with("Images")).unwrap();
    assert_eq!(
        images_line.split_whitespace().take(3).collect::<Vec<_>>(),
        ["Images", "1", "1"],
        "{df}"
    );
    assert!(ok(&hull, &["system", "info"]).contains("backend"));
    ok(&hull, &["container", "rm", "made"]);
    ok(&hull, &["image", "rm", BUSYBOX_IMAGE]);
    assert_eq!(ok(&hull, &["image", "ls", "-q"]), "");
}
