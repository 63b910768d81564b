//! `hull cp`, as `docker cp`: both directions, files and directories, the
//! `/.` contents form, tar archives on stdout and stdin, stopped and
//! running containers, and a guest's symbolic links that must not lead
//! the host's copy out of the container.

use hull_tests::harness::{ok, stderr, stdout, Hull, BUSYBOX_IMAGE};
use std::path::Path;

/// Runs `hull ARGS`, asserting it fails with code 1; returns stderr.
fn fails(hull: &Hull, args: &[&str]) -> String {
    let out = hull.run(args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "hull {args:?}: {} {}",
        stdout(&out),
        stderr(&out)
    );
    stderr(&out)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

fn archive_names(archive: &[u8]) -> Vec<String> {
    tar::Archive::new(archive)
        .entries()
        .expect("a tar archive")
        .map(|e| {
            e.expect("an entry")
                .path()
                .expect("a name")
                .display()
                .to_string()
        })
        .collect()
}

/// A small host tree: `tree/a.txt`, `tree/sub/b.txt`.
fn host_tree(hull: &Hull) -> std::path::PathBuf {
    let tree = hull.scratch.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("a.txt"), "alpha\n").unwrap();
    std::fs::write(tree.join("sub/b.txt"), "beta\n").unwrap();
    tree
}

#[test]
fn cp_copies_both_ways_with_a_stopped_container() {
    let hull = Hull::with_busybox();
    let script = "mkdir -p /data/deep && echo one > /data/one && echo two > /data/deep/two && chown 1000:1000 /data/one";
    ok(
        &hull,
        &[
            "run",
            "--name",
            "box",
            "--network",
            "none",
            BUSYBOX_IMAGE,
            "sh",
            "-c",
            script,
        ],
    );
    let out = hull.scratch.path().join("out");
    std::fs::create_dir(&out).unwrap();

    // Container to host: a file to a new name, a file into a directory, a
    // directory into a directory, a directory's contents (`/.`), a
    // directory to a new name.
    ok(&hull, &["cp", "box:/data/one", path(&out.join("first"))]);
    assert_eq!(std::fs::read_to_string(out.join("first")).unwrap(), "one\n");
    ok(&hull, &["cp", "box:data/one", path(&out)]);
    assert_eq!(std::fs::read_to_string(out.join("one")).unwrap(), "one\n");
    ok(&hull, &["cp", "box:/data", path(&out)]);
    assert_eq!(
        std::fs::read_to_string(out.join("data/deep/two")).unwrap(),
        "two\n"
    );
    let contents = out.join("contents");
    std::fs::create_dir(&contents).unwrap();
    ok(&hull, &["cp", "box:/data/.", path(&contents)]);
    assert!(
        contents.join("one").is_file()
            && contents.join("deep/two").is_file()
            && !contents.join("data").exists()
    );
    ok(&hull, &["cp", "box:/data", path(&out.join("renamed"))]);
    assert!(out.join("renamed/deep/two").is_file());
    // -a keeps the container's owner; without it the file is the caller's.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(out.join("one")).unwrap().uid(), 0);
    ok(
        &hull,
        &["cp", "-a", "box:/data/one", path(&out.join("archived"))],
    );
    assert_eq!(std::fs::metadata(out.join("archived")).unwrap().uid(), 1000);

    // Host to container: a file, a directory, a directory's contents; the
    // files belong to root unless -a.
    let tree = host_tree(&hull);
    std::os::unix::fs::chown(tree.join("a.txt"), Some(4321), Some(4321)).unwrap();
    ok(&hull, &["cp", path(&tree.join("a.txt")), "box:/a-renamed"]);
    ok(&hull, &["cp", path(&tree), "box:/data"]);
    ok(
        &hull,
        &["cp", &format!("{}/.", path(&tree)), "box:/data/deep"],
    );
    ok(
        &hull,
        &["cp", "-a", path(&tree.join("a.txt")), "box:/kept.txt"],
    );
    let check = "cat /a-renamed /data/tree/sub/b.txt /data/deep/a.txt /data/deep/sub/b.txt; stat -c %u /a-renamed /data/tree/a.txt /kept.txt";
    // The stopped container sees them when it starts again.
    ok(&hull, &["commit", "box", "copied:v1"]);
    assert_eq!(
        ok(
            &hull,
            &[
                "run",
                "--rm",
                "--network",
                "none",
                "copied:v1",
                "sh",
                "-c",
                check
            ]
        ),
        "alpha\nbeta\nalpha\nbeta\n0\n0\n4321"
    );

    // Docker's errors, with exit code 1.
    let err = fails(&hull, &["cp", "box:/nope", path(&out)]);
    assert!(
        err.contains("hull: Could not find the file /nope in container box"),
        "{err}"
    );
    let err = fails(
        &hull,
        &["cp", path(&hull.scratch.path().join("missing")), "box:/"],
    );
    assert!(err.contains("no such file or directory"), "{err}");
    let err = fails(
        &hull,
        &["cp", path(&tree.join("a.txt")), "box:/nowhere/at/all"],
    );
    assert!(
        err.contains("Could not find the file /nowhere/at in container box"),
        "{err}"
    );
    let err = fails(&hull, &["cp", "box:/data", path(&out.join("first"))]);
    assert!(err.contains("cannot copy directory"), "{err}");
    let err = fails(&hull, &["cp", "nobox:/data", path(&out)]);
    assert!(err.contains("No such container: nobox"), "{err}");
    let err = fails(&hull, &["cp", path(&out), path(&out)]);
    assert!(
        err.contains("must specify at least one container source"),
        "{err}"
    );
    assert!(hull.leftover_sandboxes().is_empty());
    ok(&hull, &["rm", "box"]);
}

#[test]
fn cp_streams_tar_archives_on_stdout_and_stdin() {
    let hull = Hull::with_busybox();
    ok(
        &hull,
        &[
            "create",
            "--name",
            "box",
            "--network",
            "none",
            BUSYBOX_IMAGE,
            "sleep",
            "300",
        ],
    );

    // stdout: an archive of the source under its own name.
    let out = hull.run(["cp", "box:/etc/passwd", "-"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(archive_names(&out.stdout), ["passwd"]);
    let out = hull.run(["cp", "box:/bin", "-"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let names = archive_names(&out.stdout);
    assert_eq!(names[0], "bin");
    assert!(names.iter().any(|n| n == "bin/sh"), "{names:?}");

    // stdin: an archive extracted into a directory.
    let mut archive = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(6);
    header.set_mode(0o640);
    header.set_uid(777);
    archive
        .append_data(&mut header, "from-stdin/hello", &b"hello\n"[..])
        .unwrap();
    let archive = archive.into_inner().unwrap();
    let out = hull.run_with_input(&["cp", "-", "box:/tmp"], &archive);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hull.run_with_input(&["cp", "-", "box:/etc/passwd"], &archive);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("extraction point is not a directory"),
        "{}",
        stderr(&out)
    );

    ok(&hull, &["start", "box"]);
    assert_eq!(
        ok(
            &hull,
            &[
                "exec",
                "box",
                "sh",
                "-c",
                "cat /tmp/from-stdin/hello; stat -c '%u %a' /tmp/from-stdin/hello"
            ]
        ),
        "hello\n0 640"
    );
    ok(&hull, &["rm", "-f", "box"]);
}

#[test]
fn cp_works_with_a_running_container() {
    let hull = Hull::with_busybox();
    ok(
        &hull,
        &[
            "run",
            "-d",
            "--name",
            "live",
            "--network",
            "none",
            BUSYBOX_IMAGE,
            "sleep",
            "300",
        ],
    );
    ok(
        &hull,
        &[
            "exec",
            "live",
            "sh",
            "-c",
            "mkdir /work && echo made-inside > /work/inside",
        ],
    );

    // In: visible to the guest at once.
    let tree = host_tree(&hull);
    ok(&hull, &["cp", path(&tree.join("a.txt")), "live:/work/"]);
    assert_eq!(ok(&hull, &["exec", "live", "cat", "/work/a.txt"]), "alpha");
    ok(&hull, &["cp", path(&tree), "live:/work"]);
    assert_eq!(
        ok(&hull, &["exec", "live", "cat", "/work/tree/sub/b.txt"]),
        "beta"
    );
    // Replacing a file the guest has read: it sees the new one once its
    // cached entry expires (virtiofsd's --cache=auto: one second).
    let replacement = hull.scratch.path().join("a.txt");
    std::fs::write(&replacement, "alpha again\n").unwrap();
    ok(&hull, &["cp", path(&replacement), "live:/work/a.txt"]);
    assert_eq!(
        ok(
            &hull,
            &["exec", "live", "sh", "-c", "sleep 1.5; cat /work/a.txt"]
        ),
        "alpha again"
    );

    // Out: what the guest wrote.
    let out = hull.scratch.path().join("out");
    ok(&hull, &["cp", "live:/work", path(&out)]);
    assert_eq!(
        std::fs::read_to_string(out.join("inside")).unwrap(),
        "made-inside\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("tree/a.txt")).unwrap(),
        "alpha\n"
    );
    let err = fails(&hull, &["cp", "live:/work/nope", path(&out)]);
    assert!(
        err.contains("Could not find the file /work/nope in container live"),
        "{err}"
    );
    ok(&hull, &["rm", "-f", "live"]);
}

#[test]
fn cp_never_follows_a_guests_links_out_of_the_container() {
    let hull = Hull::with_busybox();
    // Host files a hostile guest would like to reach.
    let secret = hull.scratch.path().join("secret");
    std::fs::write(&secret, "host secret\n").unwrap();
    let planted_dir = hull.scratch.path().join("planted");
    std::fs::create_dir(&planted_dir).unwrap();
    let secret_path = path(&secret).to_string();
    let planted = path(&planted_dir).to_string();
    let script = format!("ln -s / /escape && ln -s {secret_path} /etc/evil && ln -s {planted} /drop && ln -s ../../../../../../.. /tmp/up");
    // `;`: after the restart below the links exist already (the writable
    // layer is kept), `ln` fails, and the container must still run.
    ok(
        &hull,
        &[
            "run",
            "-d",
            "--name",
            "evil",
            "--network",
            "none",
            BUSYBOX_IMAGE,
            "sh",
            "-c",
            &format!("{script}; sleep 300"),
        ],
    );
    // The links exist before the copies.
    assert_eq!(
        ok(
            &hull,
            &["exec", "evil", "sh", "-c", "sleep 1; readlink /etc/evil"]
        ),
        secret_path
    );
    let out = hull.scratch.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let payload = hull.scratch.path().join("payload");
    std::fs::write(&payload, "payload\n").unwrap();

    for state in ["running", "stopped"] {
        // Out: links resolve in the container, where the host's files are not.
        let err = fails(&hull, &["cp", "-L", "evil:/etc/evil", path(&out.join("x"))]);
        assert!(
            err.contains("Could not find the file /etc/evil in container evil"),
            "{state}: {err}"
        );
        let err = fails(
            &hull,
            &[
                "cp",
                &format!("evil:/escape{secret_path}"),
                path(&out.join("x")),
            ],
        );
        assert!(err.contains("Could not find the file"), "{state}: {err}");
        let err = fails(
            &hull,
            &[
                "cp",
                &format!("evil:/tmp/up{secret_path}"),
                path(&out.join("x")),
            ],
        );
        assert!(err.contains("Could not find the file"), "{state}: {err}");
        // Without -L the link itself is copied, as a link.
        let copied = out.join(format!("evil-{state}"));
        ok(&hull, &["cp", "evil:/etc/evil", path(&copied)]);
        assert_eq!(std::fs::read_link(&copied).unwrap(), secret);
        // An archive of the container's /etc holds the link, not the file.
        let archive = hull.run(["cp", "evil:/etc", "-"]);
        assert!(archive.status.success(), "{}", stderr(&archive));
        let mut entries = tar::Archive::new(archive.stdout.as_slice());
        let evil = entries
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.path().unwrap() == Path::new("etc/evil"))
            .expect("etc/evil in the archive");
        assert_eq!(evil.header().entry_type(), tar::EntryType::Symlink);

        // In: writes through the links stay in the container.
        let _ = hull.run(["cp", path(&payload), "evil:/etc/evil"]);
        let _ = hull.run(["cp", path(&payload), "evil:/drop/"]);
        let _ = hull.run(["cp", path(&payload), &format!("evil:/escape{planted}/p")]);
        let _ = hull.run(["cp", path(&payload), &format!("evil:/tmp/up{planted}/p")]);
        ok(&hull, &["cp", path(&payload), "evil:/tmp/up/tmp/up/upped"]);
        assert_eq!(
            std::fs::read_to_string(&secret).unwrap(),
            "host secret\n",
            "{state}: cp wrote through a link onto the host"
        );
        assert_eq!(
            std::fs::read_dir(&planted_dir).unwrap().count(),
            0,
            "{state}: cp wrote into a host directory"
        );

        if state == "running" {
            assert_eq!(ok(&hull, &["exec", "evil", "cat", "/upped"]), "payload");
            ok(&hull, &["stop", "-t", "0", "evil"]);
        }
    }
    // Into a stopped container, through `/escape`: the container's own /tmp.
    ok(
        &hull,
        &["cp", path(&payload), "evil:/escape/tmp/through-escape"],
    );
    ok(&hull, &["start", "evil"]);
    assert_eq!(
        ok(
            &hull,
            &["exec", "evil", "cat", "/tmp/through-escape", "/upped"]
        ),
        "payload\npayload"
    );
    ok(&hull, &["rm", "-f", "evil"]);
}

#[test]
fn relative_host_paths_are_the_callers_working_directory() {
    let hull = Hull::with_busybox();
    ok(
        &hull,
        &[
            "run",
            "--name",
            "rel",
            "--network",
            "none",
            BUSYBOX_IMAGE,
            "sh",
            "-c",
            "mkdir /out && echo hello > /out/hello",
        ],
    );
    let work = hull.scratch.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let cp = |args: &[&str]| {
        let out = hull
            .command(["cp"].iter().chain(args))
            .current_dir(&work)
            .output()
            .unwrap();
        assert!(out.status.success(), "cp {args:?}: {}", stderr(&out));
    };
    // Out of a stopped container, into `.` and to a relative name.
    cp(&["rel:/out/hello", "./got"]);
    cp(&["rel:/out/.", "."]);
    assert_eq!(
        std::fs::read_to_string(work.join("got")).unwrap(),
        "hello\n"
    );
    assert_eq!(
        std::fs::read_to_string(work.join("hello")).unwrap(),
        "hello\n"
    );
    assert!(
        !Path::new("/got").exists() && !Path::new("/hello").exists(),
        "a relative path went to /"
    );
    // And in, from a relative path.
    std::fs::write(work.join("back"), "back\n").unwrap();
    cp(&["back", "rel:/out/"]);
    ok(&hull, &["start", "rel"]);
    assert!(ok(&hull, &["cp", "rel:/out/back", "-"]).contains("back"));
    ok(&hull, &["rm", "-f", "rel"]);
}
