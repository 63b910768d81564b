//! Volumes end to end: `hull volume …`, `-v NAME:/path`, anonymous volumes
//! (`-v /path`, an image's `VOLUME`), `--mount` and `--tmpfs`, in real
//! microVMs. Each test's state lives in its own scratch root, which goes
//! when the test ends, passed or failed (see `Hull`'s `Drop`).

use hull_tests::harness::{ok, stderr, stdout, Hull, BUSYBOX_IMAGE};
use hull_tests::{busybox_rootfs, layer_tar, write_oci_archive, Entry, ImageSettings};

/// The volumes `hull volume ls -q` lists, sorted.
fn volume_names(hull: &Hull) -> Vec<String> {
    let mut names: Vec<String> = ok(hull, &["volume", "ls", "-q"])
        .lines()
        .map(String::from)
        .collect();
    names.sort();
    names
}

fn is_anonymous_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

#[test]
fn named_volumes_outlive_containers_and_are_shared_between_them() {
    let hull = Hull::with_busybox();
    assert_eq!(ok(&hull, &["volume", "create", "data"]), "data");
    assert_eq!(
        ok(&hull, &["volume", "ls"]),
        "DRIVER    VOLUME NAME\nlocal     data"
    );

    // First boot: writes through a named volume; `seed` is made on first
    // use with the image's /etc copied in; the anonymous /anon goes with
    // the container (`--rm`).
    let out = hull.run([
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "data:/data",
        "-v",
        "seed:/etc",
        "-v",
        "/anon",
        BUSYBOX_IMAGE,
        "sh",
        "-c",
        "echo written > /data/file && head -1 /etc/passwd && grep -c '^127.0.0.1' /etc/hosts && touch /anon/x",
    ]);
    assert_eq!(
        stdout(&out),
        "root:x:0:0:root:/root:/bin/sh\n1\n",
        "stderr: {}",
        stderr(&out)
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(volume_names(&hull), ["data", "seed"]);

    // Second boot: another container reads it, through a read-only
    // `--mount`, with a tmpfs and an anonymous volume of its own.
    let id = ok(
        &hull,
        &[
            "create",
            "--name",
            "reader",
            "--network",
            "none",
            "--mount",
            "type=volume,source=data,target=/data,readonly",
            "--tmpfs",
            "/scratch:size=1m",
            "-v",
            "/cache",
            BUSYBOX_IMAGE,
            "sh",
            "-c",
            "cat /data/file; touch /data/other 2>/dev/null || echo read-only; \
             grep -c '^tmpfs /scratch tmpfs' /proc/mounts; echo x > /scratch/y && cat /scratch/y; \
             touch /cache/z && echo cache",
        ],
    );
    let out = hull.run(["start", "-a", "reader"]);
    assert_eq!(
        stdout(&out),
        "written\nread-only\n1\nx\ncache\n",
        "stderr: {}",
        stderr(&out)
    );

    let names = volume_names(&hull);
    let anonymous: Vec<&String> = names.iter().filter(|n| is_anonymous_name(n)).collect();
    assert_eq!(anonymous.len(), 1, "{names:?}");
    let anonymous = anonymous[0].clone();

    // `inspect` shows the mounts as Docker does.
    let mounts: serde_json::Value =
        serde_json::from_str(&ok(&hull, &["inspect", "-f", "{{json .Mounts}}", "reader"])).unwrap();
    let data = mounts
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["Name"] == "data")
        .unwrap_or_else(|| panic!("{mounts}"));
    assert_eq!(data["Type"], "volume");
    assert_eq!(data["Destination"], "/data");
    assert_eq!(data["Driver"], "local");
    assert_eq!(data["RW"], false);
    assert!(
        data["Source"]
            .as_str()
            .unwrap()
            .ends_with("/volumes/data/_data"),
        "{data}"
    );
    assert!(mounts
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["Name"] == anonymous.as_str()));
    assert_eq!(
        ok(
            &hull,
            &["inspect", "-f", "{{json .HostConfig.Tmpfs}}", "reader"]
        ),
        r#"{"/scratch":"size=1m"}"#
    );

    // `volume inspect`: Docker's JSON array.
    let shown: serde_json::Value =
        serde_json::from_str(&ok(&hull, &["volume", "inspect", "data"])).unwrap();
    assert_eq!(shown[0]["Name"], "data");
    assert_eq!(shown[0]["Driver"], "local");
    assert_eq!(shown[0]["Scope"], "local");
    let mountpoint = shown[0]["Mountpoint"].as_str().unwrap().to_string();
    assert_eq!(
        std::fs::read_to_string(format!("{mountpoint}/file")).unwrap(),
        "written\n"
    );
    // `inspect` finds volumes too, after containers and images, as Docker's does.
    assert_eq!(
        ok(&hull, &["inspect", "-f", "{{.Name}} {{.Driver}}", "data"]),
        "data local"
    );
    assert_eq!(
        ok(
            &hull,
            &["inspect", "--type", "volume", "-f", "{{.Name}}", "data"]
        ),
        "data"
    );
    let out = hull.run(["inspect", "--type", "image", "data"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let out = hull.run(["inspect", "--type", "bogus", "data"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim(),
        "\"bogus\" is not a valid value for --type"
    );
    assert_eq!(
        ok(&hull, &["volume", "ls", "-q", "--filter", "dangling=true"]),
        "seed"
    );

    // In use by a container (stopped, as Docker counts it): refused.
    let out = hull.run(["volume", "rm", "data"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim(),
        format!("Error response from daemon: remove data: volume is in use - [{id}]")
    );
    let out = hull.run(["volume", "rm", "-f", "data"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    // `rm -v`: the anonymous volume goes, the named one stays.
    ok(&hull, &["rm", "-v", "reader"]);
    assert_eq!(volume_names(&hull), ["data", "seed"]);
    assert_eq!(ok(&hull, &["volume", "rm", "data"]), "data");
    // A prune keeps named volumes (Docker 23's), unless `-a`.
    assert_eq!(
        ok(&hull, &["volume", "prune", "-f"]),
        "Total reclaimed space: 0B"
    );
    assert_eq!(volume_names(&hull), ["seed"]);
    let out = hull.run(["volume", "prune", "-a", "-f"]);
    // (busybox's /etc/passwd and /etc/group, copied in on first use.)
    assert_eq!(
        stdout(&out),
        "Deleted Volumes:\nseed\n\nTotal reclaimed space: 179B\n",
        "{}",
        stderr(&out)
    );
    assert!(volume_names(&hull).is_empty());
    let out = hull.run(["volume", "inspect", "data"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out).trim(), "Error: No such volume: data");
    hull.assert_nothing_left();
}

#[test]
fn an_images_volumes_are_anonymous_volumes_with_its_files() {
    let hull = Hull::with_busybox();
    let mut entries = busybox_rootfs().unwrap();
    entries.push(Entry::dir("seeded"));
    entries.push(Entry::file("seeded/file.txt", b"from the image\n"));
    let settings = ImageSettings {
        cmd: vec!["sh".into()],
        env: vec!["PATH=/bin".into()],
        volumes: vec!["/seeded".into()],
        ..Default::default()
    };
    let archive = hull.scratch.path().join("vol.tar");
    let layer = layer_tar(&entries).unwrap();
    write_oci_archive(
        &archive,
        "hull.test/vol:latest",
        std::slice::from_ref(&layer),
        &settings,
    )
    .unwrap();
    ok(&hull, &["load", "-i", archive.to_str().unwrap()]);

    // A hostile image's VOLUME cannot leave the container, nor leave volumes behind.
    let hostile = ImageSettings {
        volumes: vec!["/../../etc".into()],
        ..settings.clone()
    };
    write_oci_archive(&archive, "hull.test/hostile:latest", &[layer], &hostile).unwrap();
    ok(&hull, &["load", "-i", archive.to_str().unwrap()]);
    let out = hull.run(["create", "hull.test/hostile:latest"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("invalid mount path"),
        "{}",
        stderr(&out)
    );
    assert!(volume_names(&hull).is_empty());

    ok(
        &hull,
        &[
            "create",
            "--name",
            "seeded",
            "--network",
            "none",
            "hull.test/vol:latest",
            "sh",
            "-c",
            "cat /seeded/file.txt && echo more > /seeded/new",
        ],
    );
    let out = hull.run(["start", "-a", "seeded"]);
    assert_eq!(stdout(&out), "from the image\n", "stderr: {}", stderr(&out));
    let names = volume_names(&hull);
    assert!(
        names.len() == 1 && is_anonymous_name(&names[0]),
        "{names:?}"
    );
    let mountpoint = ok(
        &hull,
        &["volume", "inspect", "-f", "{{.Mountpoint}}", &names[0]],
    );
    assert_eq!(
        std::fs::read_to_string(format!("{mountpoint}/new")).unwrap(),
        "more\n"
    );
    // A plain `rm` keeps a container's anonymous volume, as Docker's; a
    // prune takes it.
    ok(
        &hull,
        &[
            "create",
            "--name",
            "keeper",
            "--network",
            "none",
            "hull.test/vol:latest",
            "true",
        ],
    );
    ok(&hull, &["rm", "keeper"]);
    assert_eq!(volume_names(&hull).len(), 2);
    ok(&hull, &["rm", "-v", "seeded"]);
    assert_eq!(volume_names(&hull).len(), 1);
    ok(&hull, &["volume", "prune", "-f"]);
    assert!(volume_names(&hull).is_empty());
    hull.assert_nothing_left();
}

/// `--mount type=bind|tmpfs` and a named volume read-only (`-v NAME:/p:ro`).
#[test]
fn mounts_of_each_kind_as_docker_takes_them() {
    let hull = Hull::with_busybox();
    let host = hull.scratch.path().join("host");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("host.txt"), "from the host\n").unwrap();
    ok(&hull, &["volume", "create", "shared"]);
    let script = "cat /b/host.txt; echo back > /b/back; \
                  touch /ro/x 2>/dev/null || echo read-only refused; \
                  touch /t/y && echo tmpfs written; grep ' /t ' /proc/mounts";
    let out = ok(
        &hull,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "--mount",
            &format!("type=bind,source={},target=/b", host.display()),
            "--mount",
            "type=tmpfs,target=/t,tmpfs-size=1m",
            "-v",
            "shared:/ro:ro",
            BUSYBOX_IMAGE,
            "sh",
            "-c",
            script,
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[..3],
        ["from the host", "read-only refused", "tmpfs written"],
        "{out}"
    );
    assert!(
        lines[3].starts_with("tmpfs /t tmpfs ") && lines[3].contains("size=1024k"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(host.join("back")).unwrap(),
        "back\n"
    );
    // The named volume outlives the container, unwritten.
    assert_eq!(volume_names(&hull), ["shared"]);
    let mountpoint = ok(
        &hull,
        &["volume", "inspect", "-f", "{{.Mountpoint}}", "shared"],
    );
    assert!(!std::path::Path::new(&mountpoint).join("x").exists());
    ok(&hull, &["volume", "rm", "shared"]);
    hull.assert_nothing_left();
}
