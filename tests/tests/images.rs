//! Loading images: good ones are stored once and shared, hostile ones are
//! refused with a clear error and leave nothing behind, inside the store or out.

use hull_tests::harness::{ok, stderr, stdout, Hull};
use hull_tests::{layer_tar, write_oci_archive, Entry, ImageSettings};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

fn settings() -> ImageSettings {
    ImageSettings {
        cmd: vec!["sh".into()],
        ..Default::default()
    }
}

/// Loads a one-layer archive of `entries` and expects a refusal naming `expect`.
fn assert_refused(hull: &Hull, entries: Vec<Entry>, expect: &str) {
    let archive = hull.scratch.path().join("hostile.tar");
    write_oci_archive(
        &archive,
        "hull.test/hostile:latest",
        &[layer_tar(&entries).unwrap()],
        &settings(),
    )
    .unwrap();
    let out = hull.run(["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a hostile layer was accepted: {}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains(expect),
        "error does not say {expect:?}: {}",
        stderr(&out)
    );
    let images = hull.run(["images"]);
    assert!(
        !stdout(&images).contains("hostile"),
        "refused image is listed: {}",
        stdout(&images)
    );
    let layers = hull.root().join("image/layers");
    let leftovers: Vec<_> = std::fs::read_dir(&layers)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        leftovers.is_empty(),
        "layers left after a refused load: {leftovers:?}"
    );
}

#[test]
fn hostile_layers_are_refused_and_nothing_escapes() {
    let hull = Hull::new();
    let outside = hull.scratch.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let outside_str = outside.to_str().unwrap().to_string();

    assert_refused(
        &hull,
        vec![Entry::dir("etc"), Entry::file("../evil", b"x")],
        "..",
    );
    assert_refused(
        &hull,
        vec![Entry::file(&format!("{outside_str}/abs"), b"x")],
        "absolute",
    );
    assert_refused(
        &hull,
        vec![
            Entry::symlink("link", &outside_str),
            Entry::file("link/evil", b"x"),
        ],
        "symlink",
    );
    assert_refused(
        &hull,
        vec![Entry::Hardlink {
            path: "passwd".into(),
            target: "../../../../../../etc/passwd".into(),
        }],
        "..",
    );
    assert_refused(
        &hull,
        vec![
            Entry::symlink("up", &outside_str),
            Entry::Hardlink {
                path: "x".into(),
                target: "up/secret".into(),
            },
        ],
        "symlink",
    );
    assert!(!hull.scratch.path().join("evil").exists());
    assert!(!hull.root().join("evil").exists());
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "something was written outside the store"
    );
}

#[test]
fn corrupt_archives_are_refused() {
    let hull = Hull::new();
    let archive = hull.scratch.path().join("corrupt.tar");
    std::fs::write(&archive, b"this is not a tar archive at all").unwrap();
    let out = hull.run(["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!stderr(&out).trim().is_empty());
    assert!(
        stderr(&out).contains("not a tar archive"),
        "{}",
        stderr(&out)
    );
    let out = hull.run(["load", "-i", "/nonexistent/image.tar"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("/nonexistent/image.tar"),
        "{}",
        stderr(&out)
    );

    // Random bytes: a clear reason, and nothing raw reaches the terminal.
    let noise: Vec<u8> = (0..64 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&archive, &noise).unwrap();
    let out = hull.run(["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let said = stderr(&out);
    assert!(said.contains("not a tar archive"), "{said}");
    assert!(
        !said.chars().any(|c| c.is_control() && c != '\n'),
        "control characters in {said:?}"
    );

    // A good archive cut short is called truncated, not a digest mismatch.
    let good = hull.scratch.path().join("busybox.tar");
    hull_tests::write_busybox_archive(&good, "cut/short:1").unwrap();
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&archive, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let out = hull.run(["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("truncated"), "{}", stderr(&out));
    // Nothing of it was kept: the store lists no image.
    assert_eq!(ok(&hull, &["images", "-q"]), "");
}

#[test]
fn layers_are_unpacked_once_and_shared() {
    let hull = Hull::new();
    hull.load_busybox().unwrap();
    let layers = hull.root().join("image/layers");
    let layer = std::fs::read_dir(&layers)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let inode = |p: &Path| std::fs::metadata(p).unwrap().ino();
    let before = inode(&layer.join("bin/busybox"));
    // Loading again and running twice neither unpacks nor touches the layer.
    hull.load_busybox().unwrap();
    for _ in 0..2 {
        let out = hull.run(["run", "--rm", hull_tests::harness::BUSYBOX_IMAGE, "true"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    assert_eq!(std::fs::read_dir(&layers).unwrap().count(), 1);
    assert_eq!(
        inode(&layer.join("bin/busybox")),
        before,
        "the layer was unpacked again"
    );
    let images = stdout(&hull.run(["images"]));
    let lines: Vec<&str> = images.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    );
    assert!(
        lines[1].starts_with("hull.test/busybox   latest"),
        "{images}"
    );
    assert_eq!(lines.len(), 2, "{images}");
}

#[test]
fn tag_history_and_rmi_as_docker_does() {
    let hull = Hull::new();
    hull.load_busybox().unwrap();
    let ok = |args: &[&str]| {
        let out = hull.run(args);
        assert!(out.status.success(), "hull {args:?}: {}", stderr(&out));
        stdout(&out)
    };
    ok(&[
        "tag",
        hull_tests::harness::BUSYBOX_IMAGE,
        "localhost:5000/mine:v1",
    ]);
    let images = ok(&["images"]);
    assert!(images.contains("localhost:5000/mine   v1"), "{images}");
    let history = ok(&["history", "localhost:5000/mine:v1"]);
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().take(2).collect::<Vec<_>>(),
        ["IMAGE", "CREATED"]
    );
    assert!(lines[1].contains("hull-tests"), "{history}");

    // A container uses the image: no removal without -f.
    ok(&[
        "create",
        "--name",
        "user",
        hull_tests::harness::BUSYBOX_IMAGE,
        "true",
    ]);
    assert_eq!(
        ok(&["rmi", "localhost:5000/mine:v1"]).trim(),
        "Untagged: localhost:5000/mine:v1"
    );
    let out = hull.run(["rmi", hull_tests::harness::BUSYBOX_IMAGE]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is using its referenced image"),
        "{}",
        stderr(&out)
    );
    ok(&["rm", "user"]);
    let removed = ok(&["rmi", hull_tests::harness::BUSYBOX_IMAGE]);
    assert!(
        removed.contains("Untagged: hull.test/busybox:latest")
            && removed.contains("Deleted: sha256:"),
        "{removed}"
    );
    assert_eq!(ok(&["images", "-q"]), "");
    let layers = std::fs::read_dir(hull.root().join("image/layers"))
        .unwrap()
        .filter(|e| {
            !e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count();
    assert_eq!(layers, 0, "the removed image's layers stay");
}

#[test]
fn save_rmi_load_and_run_again() {
    let hull = Hull::new();
    hull.load_busybox().unwrap();
    let image = hull_tests::harness::BUSYBOX_IMAGE;
    let digests = stdout(&hull.run(["images", "--digests"]));
    assert!(
        digests.lines().next().unwrap().contains("DIGEST") && digests.contains("sha256:"),
        "{digests}"
    );
    let archive = hull.scratch.path().join("saved.tar");
    let out = hull.run(["save", "-o", archive.to_str().unwrap(), image]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id_before = stdout(&hull.run(["images", "-q"]));
    assert!(hull.run(["rmi", image]).status.success());
    assert_eq!(stdout(&hull.run(["images", "-q"])), "");
    let out = hull.run(["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(
        stdout(&out).trim(),
        "Loaded image: hull.test/busybox:latest",
        "{}",
        stderr(&out)
    );
    assert_eq!(
        stdout(&hull.run(["images", "-q"])),
        id_before,
        "the image id changed through save/load"
    );
    let out = hull.run(["run", "--rm", "--network", "none", image, "echo", "back"]);
    assert_eq!(stdout(&out), "back\n", "{}", stderr(&out));
}

#[test]
fn a_decompression_bomb_is_refused_at_its_bound_and_nothing_is_kept() {
    let hull = Hull::new();
    // 64 MiB of zeros, about 64 KiB once gzipped, against a bound of 8 MB
    // (16 GiB by default; HULL_MAX_LAYER_SIZE sets another).
    let layer = layer_tar(&[Entry::File {
        path: "zeros".into(),
        mode: 0o644,
        data: vec![0; 64 << 20],
    }])
    .unwrap();
    let archive = hull.scratch.path().join("bomb.tar");
    write_oci_archive(&archive, "hull.test/bomb:latest", &[layer], &settings()).unwrap();
    let size = std::fs::metadata(&archive).unwrap().len();
    assert!(size < 1 << 20, "the archive is {size} bytes");
    let out = hull
        .command(["load", "-i", archive.to_str().unwrap()])
        .env("HULL_MAX_LAYER_SIZE", "8m")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("(uncompressed) is larger than the limit of 8000000 bytes"),
        "{}",
        stderr(&out)
    );
    // Nothing kept: no image, no layer, no blob.
    assert_eq!(ok(&hull, &["images", "-q"]), "");
    for dir in ["image/layers", "image/blobs"] {
        let mut left = Vec::new();
        let mut todo = vec![hull.root().join(dir)];
        while let Some(dir) = todo.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                match entry.file_type().unwrap().is_dir() {
                    true => todo.push(entry.path()),
                    false => left.push(entry.path()),
                }
            }
        }
        assert!(left.is_empty(), "{dir}: {left:?}");
    }
    // A bad bound is an error, not the default.
    let out = hull
        .command(["load", "-i", archive.to_str().unwrap()])
        .env("HULL_MAX_LAYER_SIZE", "lots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("invalid HULL_MAX_LAYER_SIZE: 'lots'"),
        "{}",
        stderr(&out)
    );
}
