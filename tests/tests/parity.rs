//! Docker's command line where a Docker user expects it: `version`, `-v`,
//! the management commands (`container …`, `image …`, `system …`) and
//! usage errors with Docker's wording and exit codes, and `--format`
//! (Go templates, `json`, `table`).

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
    assert_eq!(json["Client"]["ApiVersion"], json["Server"]["ApiVersion"]);
    // `-v` as `docker -v`: the version and the commit built.
    let short = ok(&hull, &["-v"]);
    let commit = short
        .strip_prefix("Hull version ")
        .and_then(|rest| rest.split_once(", build "))
        .map(|(_, commit)| commit.to_string())
        .unwrap_or_default();
    assert!(
        commit.len() == 7 && commit.bytes().all(|b| b.is_ascii_hexdigit()),
        "{short}"
    );
    assert_eq!(ok(&hull, &["--version"]), short);
    assert_eq!(
        ok(&hull, &["version", "--format", "{{.Client.GitCommit}}"]),
        commit
    );
    for part in [
        " Git commit:        ",
        " Built:             ",
        " Rust version:      ",
        " API version:       2\n",
        " Context:           default\n",
        "  API version:      2 (minimum version 2,",
        "  VMM:",
    ] {
        assert!(text.contains(part), "{part} missing: {text}");
    }
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
        // CONTAINER and COMMAND both.
        (
            &["exec", "box"],
            1,
            "\"hull exec\" requires at least 2 arguments.",
        ),
        // One too many, as Docker words it.
        (
            &["history", "a", "b"],
            1,
            "\"hull history\" requires exactly 1 argument.\nSee 'hull history --help'.",
        ),
        (
            &["ps", "extra"],
            1,
            "\"hull ps\" accepts no arguments.\nSee 'hull ps --help'.",
        ),
        (
            &["container", "ls", "x"],
            1,
            "\"hull container ls\" accepts no arguments.",
        ),
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
        (
            &["ps", "-z"],
            125,
            "unknown shorthand flag: 'z' in -z\nSee 'hull ps --help'.",
        ),
        // A flag without its value, or with a value it cannot take.
        (
            &["ps", "--format"],
            125,
            "flag needs an argument: --format\nSee 'hull ps --help'.",
        ),
        (
            &["stop", "-t", "soon", "x"],
            125,
            "invalid argument \"soon\" for \"-t, --time\" flag: ",
        ),
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
    // A repository to list, and filters, as Docker takes them.
    let id = ok(&hull, &["images", "-q"]);
    for only in [
        &["images", "-q", "hull.test/busybox"][..],
        &["images", "-q", "hull.test/busybox:latest"],
        &["images", "-q", "--filter", "reference=hull.test/*"],
        &["image", "ls", "-q", "-f", "dangling=false"],
    ] {
        assert_eq!(ok(&hull, only), id, "{only:?}");
    }
    for none in [
        &["images", "-q", "busybox"][..],
        &["images", "-q", "hull.test/busybox:other"],
        &["images", "-q", "--filter", "reference=*"],
        &["images", "-q", "--filter", "dangling=true"],
    ] {
        assert_eq!(ok(&hull, none), "", "{none:?}");
    }
    let out = hull.run(["images", "--filter", "bogus=1"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Invalid filter 'bogus=1'"),
        "{}",
        stderr(&out)
    );
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
    let info = ok(&hull, &["system", "info"]);
    assert!(
        info.starts_with("Client:\n Context:    default\n")
            && info.contains("\nServer:\n Containers: 1\n  Running: 0\n")
            && info.contains("\n Images: 1\n")
            && info.contains("\n Backend: "),
        "{info}"
    );
    ok(&hull, &["container", "rm", "made"]);
    ok(&hull, &["image", "rm", BUSYBOX_IMAGE]);
    assert_eq!(ok(&hull, &["image", "ls", "-q"]), "");
}

/// Every `container` and `image` form runs its short command, with its
/// flags (`image push|pull` are in registry.rs's tests, `container attach`
/// in training.rs's).
#[test]
fn every_management_form_is_its_command() {
    let hull = Hull::with_busybox();
    let dir = hull.scratch.path();
    let path = |name: &str| dir.join(name).display().to_string();
    let container = |args: &[&str]| {
        let mut all = vec!["container"];
        all.extend_from_slice(args);
        ok(&hull, &all)
    };
    let image = |args: &[&str]| {
        let mut all = vec!["image"];
        all.extend_from_slice(args);
        ok(&hull, &all)
    };
    let state = |name: &str| ok(&hull, &["inspect", "-f", "{{.State.Status}}", name]);
    container(&[
        "run",
        "-d",
        "--name",
        "box",
        "--workdir",
        "/tmp",
        BUSYBOX_IMAGE,
        "sh",
        "-c",
        "echo hello; exec sleep 600",
    ]);
    assert!(
        hull_tests::harness::eventually(std::time::Duration::from_secs(20), || {
            container(&["logs", "box"]) == "hello"
        }),
        "{}",
        container(&["logs", "box"])
    );
    assert_eq!(container(&["exec", "box", "pwd"]), "/tmp");
    assert!(container(&["top", "box"]).contains("sleep 600"));
    assert_eq!(container(&["ps", "-q"]).lines().count(), 1);
    // -s: what it wrote, and with its image all it holds.
    let sized = container(&["ps", "-s"]);
    assert!(
        sized
            .lines()
            .next()
            .is_some_and(|h| h.contains("NAMES") && h.ends_with("SIZE"))
            && sized.contains(" (virtual "),
        "{sized}"
    );
    assert_eq!(container(&["port", "box"]), "");
    assert!(container(&["stats", "--no-stream", "box"]).contains("box"));
    container(&["pause", "box"]);
    assert_eq!(state("box"), "paused");
    container(&["unpause", "box"]);
    assert_eq!(state("box"), "running");
    container(&["rename", "box", "crate"]);
    container(&["cp", "crate:/etc/passwd", &path("passwd")]);
    assert!(std::fs::read_to_string(path("passwd"))
        .unwrap()
        .starts_with("root:"));
    container(&["exec", "crate", "touch", "/tmp/new"]);
    assert!(container(&["diff", "crate"])
        .lines()
        .any(|l| l == "A /tmp/new"));
    container(&["commit", "crate", "hull.test/committed:1"]);
    container(&["export", "-o", &path("fs.tar"), "crate"]);
    container(&["kill", "crate"]);
    assert_eq!(container(&["wait", "crate"]), "137");
    container(&["start", "crate"]);
    container(&["restart", "-t", "1", "crate"]);
    assert_eq!(state("crate"), "running");
    container(&["stop", "-t", "1", "crate"]);
    assert_eq!(state("crate"), "exited");
    container(&["rm", "crate"]);

    image(&["tag", BUSYBOX_IMAGE, "hull.test/again:2"]);
    assert!(!image(&["history", "-q", "hull.test/again:2"]).is_empty());
    image(&["save", "-o", &path("again.tar"), "hull.test/again:2"]);
    image(&["rm", "hull.test/again:2", "hull.test/committed:1"]);
    assert_eq!(
        image(&["load", "-i", &path("again.tar")]),
        "Loaded image: hull.test/again:2"
    );
    // --change and --message, as `docker import` takes them.
    image(&[
        "import",
        "--change",
        r#"CMD ["ls", "/tmp/new"]"#,
        "-m",
        "by hand",
        &path("fs.tar"),
        "hull.test/imported:1",
    ]);
    assert_eq!(
        image(&[
            "history",
            "--format",
            "{{.Comment}}",
            "hull.test/imported:1"
        ]),
        "by hand"
    );
    // -H=false: bytes and timestamps.
    let raw = image(&[
        "history",
        "-H=false",
        "--format",
        "{{.Size}}|{{.CreatedSince}}",
        "hull.test/imported:1",
    ]);
    let (size, created) = raw.split_once('|').unwrap_or_default();
    assert!(
        size.parse::<u64>().is_ok_and(|n| n > 0) && created.contains('T'),
        "{raw}"
    );
    // Standard input, as `docker load < FILE` and `docker import - NAME`.
    image(&["rm", "hull.test/again:2"]);
    let out = hull.run_with_input(&["load"], &std::fs::read(path("again.tar")).unwrap());
    assert_eq!(
        stdout(&out).trim(),
        "Loaded image: hull.test/again:2",
        "{}",
        stderr(&out)
    );
    let out = hull.run_with_input(
        &["image", "import", "-", "hull.test/piped:1"],
        &std::fs::read(path("fs.tar")).unwrap(),
    );
    assert!(stdout(&out).starts_with("sha256:"), "{}", stderr(&out));
    image(&["rm", "hull.test/piped:1"]);
    assert_eq!(
        ok(&hull, &["run", "--rm", "hull.test/imported:1"]),
        "/tmp/new"
    );
    image(&["rm", "hull.test/again:2", "hull.test/imported:1"]);
    assert_eq!(
        image(&["ls", "--format", "{{.Repository}}"]),
        "hull.test/busybox"
    );
    container(&["prune", "-f"]);
    image(&["prune", "-f"]);
    hull.assert_nothing_left();
}

#[test]
fn format_takes_go_templates_and_json() {
    let hull = Hull::with_busybox();
    // One VM serves every assertion on a running container.
    ok(
        &hull,
        &["run", "-d", "--name", "web", BUSYBOX_IMAGE, "sleep", "600"],
    );
    ok(&hull, &["create", "--name", "idle", BUSYBOX_IMAGE, "true"]);

    // `ps --format json`: one object per line, with Docker's keys.
    let lines = ok(&hull, &["ps", "--format", "json"]);
    let rows: Vec<serde_json::Value> = lines
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert_eq!(rows.len(), 1, "only the running one: {lines}");
    let row = &rows[0];
    for key in [
        "ID",
        "Image",
        "Command",
        "CreatedAt",
        "RunningFor",
        "Ports",
        "State",
        "Status",
        "Names",
        "Labels",
        "Mounts",
        "Networks",
    ] {
        assert!(row[key].is_string(), "{key} missing: {row}");
    }
    assert_eq!(row["Names"], "web");
    assert_eq!(row["Image"], BUSYBOX_IMAGE);
    assert_eq!(row["State"], "running");
    assert!(
        row["Status"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Up "),
        "{row}"
    );
    assert_eq!(
        ok(&hull, &["ps", "-a", "--format", "json"]).lines().count(),
        2
    );

    // `table`: Docker's column names, aligned as its tabwriter aligns them.
    let table = ok(
        &hull,
        &["ps", "-a", "--format", "table {{.Names}}\\t{{.Status}}"],
    );
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0], "NAMES     STATUS", "{table}");
    assert!(lines.contains(&"idle      Created"), "{table}");
    assert!(
        lines.iter().any(|l| l.starts_with("web       Up ")),
        "{table}"
    );

    // inspect -f: Go's template language.
    let inspect = |container: &str, format: &str| ok(&hull, &["inspect", "-f", format, container]);
    let running = "{{if .State.Running}}up{{else}}down{{end}}";
    assert_eq!(inspect("web", running), "up");
    assert_eq!(inspect("idle", running), "down");
    assert_eq!(inspect("web", "{{index .Config.Cmd 0}}"), "sleep");
    assert_eq!(inspect("web", r#"{{printf "%s-%d" .Name 3}}"#), "/web-3");
    assert_eq!(
        inspect(
            "web",
            "{{range $i, $arg := .Config.Cmd}}{{if $i}} {{end}}{{$arg | upper}}{{end}}"
        ),
        "SLEEP 600"
    );
    assert_eq!(
        inspect("web", r#"{{with .State}}{{eq .Status "running"}}{{end}}"#),
        "true"
    );
    let both = ok(&hull, &["inspect", "--format", "json", "web", "idle"]);
    let array: serde_json::Value = serde_json::from_str(&both).unwrap();
    assert_eq!(array.as_array().map(Vec::len), Some(2), "{both}");

    // images, history, network ls, info, version take the same formats.
    assert_eq!(
        ok(&hull, &["images", "--format", "{{.Repository}}:{{.Tag}}"]),
        BUSYBOX_IMAGE
    );
    let image: serde_json::Value =
        serde_json::from_str(&ok(&hull, &["images", "--format", "json"])).unwrap();
    assert_eq!(image["Tag"], "latest");
    let history = ok(
        &hull,
        &[
            "history",
            "--format",
            "table {{.ID}}\\t{{.Size}}",
            BUSYBOX_IMAGE,
        ],
    );
    assert!(history.starts_with("IMAGE "), "{history}");
    assert!(ok(&hull, &["network", "ls", "--format", "{{.Name}}"])
        .lines()
        .all(|name| !name.is_empty()),);
    assert_eq!(
        ok(
            &hull,
            &["info", "--format", "{{.ContainersRunning}}/{{.Containers}}"]
        ),
        "1/2"
    );
    let info: serde_json::Value =
        serde_json::from_str(&ok(&hull, &["info", "--format", "json"])).unwrap();
    assert_eq!(info["Images"], 1);
    // `json` is one object per line on each listing.
    let json_lines = |args: &[&str]| {
        let text = ok(&hull, args);
        text.lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{args:?}: {e}: {line}"))
            })
            .collect::<Vec<serde_json::Value>>()
    };
    let history = json_lines(&["history", "--format", "json", BUSYBOX_IMAGE]);
    assert!(!history.is_empty() && history.iter().all(|row| row["CreatedBy"].is_string()));
    let networks = json_lines(&["network", "ls", "--format", "json"]);
    assert!(
        networks.iter().any(|row| row["Name"] == "bridge"),
        "{networks:?}"
    );
    let stats = json_lines(&["stats", "--no-stream", "--format", "json", "web"]);
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0]["Name"], "web");
    ok(&hull, &["volume", "create", "--label", "tier=db", "vol-a"]);
    ok(&hull, &["volume", "create", "vol-b"]);
    assert_eq!(
        ok(
            &hull,
            &["volume", "ls", "--format", "{{.Name}} {{.Driver}}"]
        ),
        "vol-a local\nvol-b local"
    );
    let volumes = json_lines(&[
        "volume",
        "ls",
        "--format",
        "json",
        "--filter",
        "label=tier=db",
    ]);
    assert_eq!(volumes.len(), 1);
    assert_eq!(volumes[0]["Name"], "vol-a");
    assert_eq!(volumes[0]["Labels"], "tier=db");
    // JSON has no methods: the Label method's data is not in it.
    assert!(volumes[0].get("Label").is_none(), "{}", volumes[0]);
    assert_eq!(
        ok(
            &hull,
            &["volume", "ls", "--format", r#"{{.Name}}:{{.Label "tier"}}"#]
        ),
        "vol-a:db\nvol-b:"
    );
    assert_eq!(
        ok(
            &hull,
            &[
                "volume",
                "ls",
                "--format",
                "table {{.Name}}",
                "-f",
                "name=b"
            ]
        ),
        "VOLUME NAME\nvol-b"
    );
    ok(&hull, &["volume", "rm", "vol-a", "vol-b"]);
    // The rest of the functions Docker users write.
    assert_eq!(
        inspect(
            "web",
            r#"{{if and (ne .Name "/x") (not .State.Paused)}}{{len .Config.Cmd}}{{end}}"#
        ),
        "2"
    );
    assert_eq!(
        inspect(
            "web",
            r#"{{if or (lt 3 2) (gt 3 2)}}{{join .Config.Cmd "+"}}{{end}}"#
        ),
        "sleep+600"
    );
    assert_eq!(
        inspect("web", r#"{{lower "ABC"}} {{title "web"}}"#),
        "abc Web"
    );

    // A template Go would not parse fails as Docker's does: exit 1.
    let bad = hull.run(["ps", "--format", "{{.Names"]);
    assert_eq!(bad.status.code(), Some(1), "{}", stderr(&bad));
    assert!(
        stderr(&bad).contains("template parsing error: template: :1: unclosed action"),
        "{}",
        stderr(&bad)
    );
    let bad = hull.run(["inspect", "-f", "{{frob .Name}}", "web"]);
    assert_eq!(bad.status.code(), Some(1), "{}", stderr(&bad));
    assert!(
        stderr(&bad).contains("function \"frob\" not defined"),
        "{}",
        stderr(&bad)
    );

    ok(&hull, &["rm", "-f", "web", "idle"]);
}

/// `run`'s common flags beyond the basics: --env-file, --label and
/// --label-file (and `ps --filter label=`), --add-host, --dns,
/// --dns-search, --dns-option, --ulimit, --shm-size, --cidfile,
/// --stop-signal, --stop-timeout and --platform, as Docker has them.
#[test]
fn run_takes_dockers_common_flags() {
    let hull = Hull::with_busybox();
    let dir = hull.scratch.path();
    let env_file = dir.join("env");
    std::fs::write(&env_file, "# settings\nFROM_FILE=yes\nBOTH=file\n").unwrap();
    let label_file = dir.join("labels");
    std::fs::write(&label_file, "team=infra\n").unwrap();
    let cidfile = dir.join("cid");
    let script = "echo env=$FROM_FILE,$BOTH; grep -w db /etc/hosts; cat /etc/resolv.conf; \
                  echo nofile=$(ulimit -Sn):$(ulimit -Hn); df -k /dev/shm | tail -n 1; \
                  trap 'echo got USR1; exit 0' USR1; echo ready; \
                  while true; do sleep 0.1; done";
    let id = ok(
        &hull,
        &[
            "run",
            "-d",
            "--name",
            "flags",
            "--network",
            "none",
            "--env-file",
            env_file.to_str().unwrap(),
            "-e",
            "BOTH=flag",
            "--label",
            "tier=web",
            "--label-file",
            label_file.to_str().unwrap(),
            "--add-host",
            "db:10.1.2.3",
            "--dns",
            "10.0.0.53",
            "--dns-search",
            "example.test",
            "--dns-option",
            "ndots:3",
            "--ulimit",
            "nofile=1024:2048",
            "--shm-size",
            "32m",
            "--cidfile",
            cidfile.to_str().unwrap(),
            "--stop-signal",
            "USR1",
            "--stop-timeout",
            "30",
            "--platform",
            "linux/amd64",
            BUSYBOX_IMAGE,
            "sh",
            "-c",
            script,
        ],
    );
    assert_eq!(std::fs::read_to_string(&cidfile).unwrap(), id);
    let ready = hull_tests::harness::eventually(std::time::Duration::from_secs(30), || {
        ok(&hull, &["logs", "flags"]).contains("ready")
    });
    let logs = ok(&hull, &["logs", "flags"]);
    assert!(ready, "{logs}");
    assert!(logs.contains("env=yes,flag"), "{logs}");
    assert!(logs.contains("10.1.2.3\tdb"), "{logs}");
    assert!(
        logs.contains("nameserver 10.0.0.53\nsearch example.test\noptions ndots:3"),
        "{logs}"
    );
    assert!(logs.contains("nofile=1024:2048"), "{logs}");
    assert!(logs.contains(" 32768 "), "/dev/shm is not 32 MiB: {logs}");
    let inspect = |format: &str| ok(&hull, &["inspect", "-f", format, "flags"]);
    assert_eq!(
        inspect("{{.Config.Labels.tier}} {{.Config.Labels.team}}"),
        "web infra"
    );
    assert_eq!(
        inspect("{{.Config.StopSignal}} {{.Config.StopTimeout}}"),
        "USR1 30"
    );
    assert_eq!(
        inspect("{{json .HostConfig.ExtraHosts}}"),
        r#"["db:10.1.2.3"]"#
    );
    assert_eq!(
        inspect("{{range .HostConfig.Ulimits}}{{.Name}}={{.Soft}}:{{.Hard}}{{end}}"),
        "nofile=1024:2048"
    );
    assert_eq!(
        ok(
            &hull,
            &["ps", "--filter", "label=tier=web", "--format", "{{.Names}}"]
        ),
        "flags"
    );
    // A key alone matches whatever its value.
    assert_eq!(
        ok(
            &hull,
            &["ps", "--filter", "label=tier", "--format", "{{.Names}}"]
        ),
        "flags"
    );
    assert_eq!(ok(&hull, &["ps", "-q", "--filter", "label=other"]), "");
    // A row's Label method, as Docker's templates call it.
    assert_eq!(
        ok(
            &hull,
            &[
                "ps",
                "--format",
                r#"{{.Names}} {{.Label "team"}}[{{.Label "nope"}}]"#
            ]
        ),
        "flags infra[]"
    );
    // A second container may not take the same --cidfile.
    let again = hull.run([
        "run",
        "--rm",
        "--cidfile",
        cidfile.to_str().unwrap(),
        BUSYBOX_IMAGE,
        "true",
    ]);
    assert_eq!(again.status.code(), Some(125), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("Container ID file found"),
        "{}",
        stderr(&again)
    );
    // stop sends the stop signal, which the script traps and exits 0 on.
    ok(&hull, &["stop", "flags"]);
    assert!(ok(&hull, &["logs", "flags"]).contains("got USR1"));
    assert_eq!(inspect("{{.State.ExitCode}}"), "0");
    ok(&hull, &["rm", "flags"]);
    // Another platform, and bad values, are refused before anything runs.
    for (args, says) in [
        (
            &["--platform", "linux/arm64"][..],
            "does not match the specified platform: wanted linux/arm64, actual: linux/amd64",
        ),
        (
            &["--add-host", "nohost"][..],
            "invalid argument \"nohost\" for \"--add-host\"",
        ),
        (&["--ulimit", "files=1"][..], "invalid ulimit type: files"),
        (&["--stop-signal", "NOPE"][..], "Invalid signal: NOPE"),
    ] {
        let out = hull.run(
            ["run", "--rm"]
                .iter()
                .chain(args)
                .chain(&[BUSYBOX_IMAGE, "true"])
                .copied()
                .collect::<Vec<_>>(),
        );
        assert_eq!(out.status.code(), Some(125), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(ok(&hull, &["ps", "-aq"]), "");
}

/// `--init`: the agent's binary as the container's PID 1 (Docker's
/// docker-init): the command runs under it, orphans are reaped, the stop
/// signal reaches the command, and its exit code comes back.
#[test]
fn init_is_pid_one_and_passes_signals_and_exit_codes() {
    let hull = Hull::with_busybox();
    let script = "trap 'echo got TERM; exit 5' TERM; \
                  echo init=$(tr '\\0' ' ' < /proc/1/cmdline); echo pid=$$; \
                  (sleep 0.2 &); sleep 1; echo zombies=$(ps -o stat | grep -c '^Z'); \
                  echo ready; while true; do sleep 0.1; done";
    ok(
        &hull,
        &[
            "run",
            "-d",
            "--init",
            "--name",
            "tini",
            "--network",
            "none",
            BUSYBOX_IMAGE,
            "sh",
            "-c",
            script,
        ],
    );
    let ready = hull_tests::harness::eventually(std::time::Duration::from_secs(30), || {
        ok(&hull, &["logs", "tini"]).lines().any(|l| l == "ready")
    });
    let logs = ok(&hull, &["logs", "tini"]);
    assert!(ready, "{logs}");
    assert!(logs.contains("init=/dev/init -- sh -c "), "{logs}");
    assert!(!logs.contains("pid=1\n"), "{logs}");
    assert!(logs.contains("zombies=0"), "{logs}");
    let inspect = |format: &str| ok(&hull, &["inspect", "-f", format, "tini"]);
    assert_eq!(inspect("{{.HostConfig.Init}} {{.Path}}"), "true sh");
    ok(&hull, &["stop", "tini"]);
    assert!(ok(&hull, &["logs", "tini"]).contains("got TERM"));
    assert_eq!(inspect("{{.State.ExitCode}}"), "5");
    ok(&hull, &["rm", "tini"]);
    let out = hull.run([
        "run",
        "--rm",
        "--init",
        "--network",
        "none",
        BUSYBOX_IMAGE,
        "sh",
        "-c",
        "exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
}

/// `--stop-timeout` is how long `stop` waits for the stop signal to work
/// before it kills, and `stop -t` overrides it, timed on a container whose
/// PID 1 has no TERM handler (the kernel gives an init no default action).
#[test]
fn stop_waits_the_containers_stop_timeout() {
    use std::time::{Duration, Instant};
    let hull = Hull::with_busybox();
    let wait_ready = |starts: usize| {
        let ready = hull_tests::harness::eventually(Duration::from_secs(30), || {
            ok(&hull, &["logs", "slow"])
                .lines()
                .filter(|l| *l == "ready")
                .count()
                >= starts
        });
        assert!(ready, "{}", ok(&hull, &["logs", "slow"]));
    };
    let timed_stop = |args: &[&str]| {
        let started = Instant::now();
        ok(&hull, args);
        started.elapsed()
    };
    ok(
        &hull,
        &[
            "run",
            "-d",
            "--name",
            "slow",
            "--network",
            "none",
            "--stop-timeout",
            "3",
            BUSYBOX_IMAGE,
            "sh",
            "-c",
            "echo ready; while true; do sleep 0.1; done",
        ],
    );
    wait_ready(1);
    let waited = timed_stop(&["stop", "slow"]);
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(9),
        "stop took {waited:?} with --stop-timeout 3"
    );
    let inspect = |format: &str| ok(&hull, &["inspect", "-f", format, "slow"]);
    assert_eq!(
        inspect("{{.Config.StopTimeout}} {{.State.ExitCode}}"),
        "3 137"
    );
    ok(&hull, &["start", "slow"]);
    wait_ready(2);
    let waited = timed_stop(&["stop", "-t", "1", "slow"]);
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(3),
        "stop -t 1 took {waited:?}"
    );
    ok(&hull, &["rm", "slow"]);
    hull.assert_nothing_left();
}
