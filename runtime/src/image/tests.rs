//! Store-level tests: loading archives built by [`super::testutil`], listing,
//! resolving, layer sharing, whiteouts, and hostile input.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::testutil::{TestEntry, TestImage, TestLayer, MEDIA_DOCKER_GZIP};
use super::*;

const BUSYBOX: &str = "docker.io/library/busybox:latest";

/// A scratch directory holding the store (`store/`), archives and an
/// `outside/` directory that hostile layers aim at.
struct Sandbox {
    dir: tempfile::TempDir,
    store: ImageStore,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("outside")).unwrap();
        fs::write(dir.path().join("outside/secret"), b"secret").unwrap();
        let store = ImageStore::open(&dir.path().join("store")).unwrap();
        Sandbox { dir, store }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn outside(&self) -> PathBuf {
        self.path().join("outside")
    }

    fn load(&self, image: &TestImage) -> Result<Vec<LoadedImage>, ImageError> {
        let (path, _) = image.write(self.path(), "archive.tar");
        self.store.load_archive(&path)
    }

    /// Asserts that a failed load left no trace: no layer (final or
    /// temporary), no registered image, nothing new outside the store, and
    /// no file whose name contains "evil" anywhere in the sandbox.
    fn assert_untouched(&self) {
        let layers: Vec<_> = fs::read_dir(self.store.layers_root())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(layers.is_empty(), "leftover layer dirs: {layers:?}");
        assert!(self.store.list().unwrap().is_empty());
        let outside: Vec<_> = fs::read_dir(self.outside())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(outside, ["secret"]);
        assert_eq!(fs::read(self.outside().join("secret")).unwrap(), b"secret");
        for path in walk(self.path()) {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert!(!name.contains("evil"), "{} was created", path.display());
            assert!(
                !name.starts_with(".tmp-"),
                "{} was left behind",
                path.display()
            );
        }
    }
}

/// Every path below `dir`, not following symlinks.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in fs::read_dir(&current).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                pending.push(entry.path());
            }
            found.push(entry.path());
        }
    }
    found
}

fn base_layer() -> TestLayer {
    TestLayer::tar(&[
        TestEntry::dir("./"),
        TestEntry::dir("bin/"),
        TestEntry::file("bin/busybox", b"#!busybox").mode(0o4755),
        TestEntry::hardlink("bin/sh", "bin/busybox"),
        TestEntry::symlink("bin/ls", "/bin/busybox"),
        TestEntry::file("./etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
        TestEntry::file("home/user/.profile", b"export X=1\n")
            .owner(1000, 1001)
            .mode(0o600),
        TestEntry::dir("home/user").owner(1000, 1001).mode(0o700),
        TestEntry::dir("tmp").mode(0o1777),
        TestEntry::fifo("run/fifo"),
        TestEntry::char_device("dev/null", 1, 3),
        TestEntry::dir("var/cache/apt"),
        TestEntry::file("var/cache/apt/pkgcache.bin", b"cache"),
    ])
}

fn top_layer() -> TestLayer {
    TestLayer::gzip(&[
        TestEntry::file("etc/.wh.passwd", b""),
        TestEntry::dir("var/cache/"),
        TestEntry::file("var/cache/.wh..wh..opq", b""),
        TestEntry::file("var/cache/new", b"new"),
        TestEntry::file(".wh..wh.plnk", b""),
        TestEntry::file("etc/hostname", b"hull\n"),
    ])
}

#[test]
fn loads_lists_and_resolves_an_image() {
    let sandbox = Sandbox::new();
    let (base, top) = (base_layer(), top_layer());
    let image = TestImage::new(Some(BUSYBOX), vec![base.clone(), top.clone()]);
    let (path, built) = image.write(sandbox.path(), "busybox.tar");

    let loaded = sandbox.store.load_archive(&path).unwrap();
    assert_eq!(
        loaded,
        [LoadedImage {
            reference: Some(Reference::parse("busybox").unwrap()),
            id: built.config.clone(),
        }]
    );

    let rows = sandbox.store.list().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].repository, "busybox");
    assert_eq!(rows[0].tag, "latest");
    assert_eq!(rows[0].id, built.config);
    assert_eq!(rows[0].created.as_deref(), Some("2024-01-02T03:04:05Z"));
    let expected_size = (b"#!busybox".len()
        + b"root:x:0:0::/root:/bin/sh\n".len()
        + b"export X=1\n".len()
        + b"cache".len()
        + b"new".len()
        + b"hull\n".len()) as u64;
    assert_eq!(rows[0].size, expected_size);

    let id = built.config.hex();
    for name in [
        "busybox".to_owned(),
        "busybox:latest".to_owned(),
        BUSYBOX.to_owned(),
        id[..12].to_owned(),
        id[..4].to_owned(),
        id.to_owned(),
        built.config.to_string(),
        format!("sha256:{}", &id[..12]),
        format!("busybox@{}", built.manifest),
    ] {
        let resolved = sandbox
            .store
            .resolve(&name)
            .unwrap_or_else(|e| panic!("resolve({name:?}): {e}"));
        assert_eq!(resolved.id, built.config, "resolve({name:?})");
        assert_eq!(resolved.manifest_digest, built.manifest);
        assert_eq!(
            resolved.reference.as_ref().unwrap().name(),
            "docker.io/library/busybox"
        );
        assert_eq!(
            resolved.diff_ids,
            [base.diff_id.clone(), top.diff_id.clone()]
        );
        assert_eq!(
            resolved.layer_names(),
            [base.diff_id.hex().to_owned(), top.diff_id.hex().to_owned()]
        );
        assert_eq!(
            resolved
                .config
                .config()
                .as_ref()
                .unwrap()
                .cmd()
                .as_ref()
                .unwrap(),
            &["sh".to_owned()]
        );
    }
    for missing in ["alpine", "busybox:1.0", "ffffffff", "sha256:ffff"] {
        match sandbox.store.resolve(missing) {
            Err(ImageError::NotFound(name)) => assert_eq!(name, missing),
            other => panic!("resolve({missing:?}) gave {other:?}"),
        }
    }
    let err = sandbox.store.resolve("Busybox").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid reference format: repository name (library/Busybox) must be lowercase"
    );

    // The base layer, unpacked with owners, modes, links and times.
    let layer = sandbox.store.layer_dir(&base.diff_id);
    assert_eq!(layer, sandbox.store.layers_root().join(base.diff_id.hex()));
    let busybox = fs::symlink_metadata(layer.join("bin/busybox")).unwrap();
    assert_eq!(busybox.permissions().mode() & 0o7777, 0o4755);
    assert_eq!(busybox.mtime(), testutil::TEST_MTIME as i64);
    assert_eq!(fs::read(layer.join("bin/busybox")).unwrap(), b"#!busybox");
    assert_eq!(
        fs::symlink_metadata(layer.join("bin/sh")).unwrap().ino(),
        busybox.ino()
    );
    assert_eq!(
        fs::read_link(layer.join("bin/ls")).unwrap(),
        Path::new("/bin/busybox")
    );
    let profile = fs::metadata(layer.join("home/user/.profile")).unwrap();
    assert_eq!(
        (profile.uid(), profile.gid(), profile.mode() & 0o777),
        (1000, 1001, 0o600)
    );
    let home = fs::metadata(layer.join("home/user")).unwrap();
    assert_eq!(
        (home.uid(), home.gid(), home.mode() & 0o7777),
        (1000, 1001, 0o700)
    );
    assert_eq!(home.mtime(), testutil::TEST_MTIME as i64);
    assert_eq!(
        fs::metadata(layer.join("tmp")).unwrap().mode() & 0o7777,
        0o1777
    );
    assert_eq!(
        fs::metadata(layer.join("run")).unwrap().mode() & 0o7777,
        0o755
    );
    assert!(fs::symlink_metadata(layer.join("run/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    let null = fs::symlink_metadata(layer.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
    assert_eq!(null.mode() & 0o777, 0o666);
}

#[test]
fn converts_whiteouts_to_overlayfs_format() {
    let sandbox = Sandbox::new();
    let top = top_layer();
    sandbox
        .load(&TestImage::new(
            Some(BUSYBOX),
            vec![base_layer(), top.clone()],
        ))
        .unwrap();
    let layer = sandbox.store.layer_dir(&top.diff_id);

    let whiteout = fs::symlink_metadata(layer.join("etc/passwd")).unwrap();
    assert!(whiteout.file_type().is_char_device());
    assert_eq!(whiteout.rdev(), 0);
    assert!(!layer.join("etc/.wh.passwd").exists());
    assert_eq!(fs::read(layer.join("etc/hostname")).unwrap(), b"hull\n");

    assert_eq!(
        xattr::get(layer.join("var/cache"), "trusted.overlay.opaque").unwrap(),
        Some(b"y".to_vec())
    );
    assert_eq!(
        xattr::get(layer.join("var"), "trusted.overlay.opaque").unwrap(),
        None
    );
    assert!(!layer.join("var/cache/.wh..wh..opq").exists());
    assert_eq!(fs::read(layer.join("var/cache/new")).unwrap(), b"new");
    assert!(!layer.join(".wh..wh.plnk").exists());
}

#[test]
fn a_second_load_reuses_unpacked_layers() {
    let sandbox = Sandbox::new();
    let base = base_layer();
    let image = TestImage::new(Some(BUSYBOX), vec![base.clone()]);
    sandbox.load(&image).unwrap();
    let file = sandbox.store.layer_dir(&base.diff_id).join("etc/passwd");
    let before = fs::metadata(&file).unwrap();

    // The same archive again, and another image sharing the layer.
    sandbox.load(&image).unwrap();
    let mut other = TestImage::new(
        Some("localhost:5000/other:v1"),
        vec![
            base.clone(),
            TestLayer::tar(&[TestEntry::file("extra", b"x")]),
        ],
    );
    other.created = "2024-06-01T00:00:00Z".to_owned();
    sandbox.load(&other).unwrap();

    let after = fs::metadata(&file).unwrap();
    assert_eq!(
        (after.ino(), after.ctime(), after.ctime_nsec()),
        (before.ino(), before.ctime(), before.ctime_nsec())
    );
    let layers = fs::read_dir(sandbox.store.layers_root()).unwrap().count();
    assert_eq!(layers, 2);

    let rows = sandbox.store.list().unwrap();
    let names: Vec<_> = rows
        .iter()
        .map(|r| (r.repository.as_str(), r.tag.as_str()))
        .collect();
    assert_eq!(
        names,
        [("localhost:5000/other", "v1"), ("busybox", "latest")]
    );
    assert_eq!(
        sandbox
            .store
            .resolve("localhost:5000/other:v1")
            .unwrap()
            .layer_names()[0],
        base.diff_id.hex()
    );
}

#[test]
fn a_retagged_name_leaves_the_old_image_untagged() {
    let sandbox = Sandbox::new();
    let first = TestImage::new(
        Some(BUSYBOX),
        vec![TestLayer::tar(&[TestEntry::file("a", b"1")])],
    );
    let second = TestImage::new(
        Some(BUSYBOX),
        vec![TestLayer::tar(&[TestEntry::file("a", b"2")])],
    );
    let first_id = first.build().config;
    sandbox.load(&first).unwrap();
    sandbox.load(&second).unwrap();

    let rows = sandbox.store.list().unwrap();
    assert_eq!(rows.len(), 2);
    let untagged = rows.iter().find(|r| r.id == first_id).unwrap();
    assert_eq!(
        (untagged.repository.as_str(), untagged.tag.as_str()),
        ("<none>", "<none>")
    );
    assert_eq!(
        sandbox.store.resolve(first_id.short()).unwrap().reference,
        None
    );
    assert_ne!(sandbox.store.resolve("busybox").unwrap().id, first_id);
}

#[test]
fn loads_gzipped_archives_nested_indexes_and_untagged_images() {
    let sandbox = Sandbox::new();
    let mut layer = TestLayer::gzip(&[TestEntry::file("hello", b"world")]);
    layer.media_type = MEDIA_DOCKER_GZIP.to_owned();
    let mut image = TestImage::new(None, vec![layer]);
    image.ref_name = Some("latest".to_owned());
    image.nested_index = true;
    image.gzip_archive = true;
    let built = image.build();

    let loaded = sandbox.load(&image).unwrap();
    assert_eq!(
        loaded,
        [LoadedImage {
            reference: None,
            id: built.config.clone()
        }]
    );
    let rows = sandbox.store.list().unwrap();
    assert_eq!(
        (rows[0].repository.as_str(), rows[0].tag.as_str()),
        ("<none>", "<none>")
    );
    let resolved = sandbox.store.resolve(built.config.short()).unwrap();
    assert_eq!(resolved.manifest_digest, built.manifest);
    assert_eq!(resolved.reference, None);

    // An OCI ref.name that is a full reference names the image.
    let mut named = TestImage::new(None, vec![TestLayer::tar(&[TestEntry::file("x", b"y")])]);
    named.ref_name = Some("example.com/team/app:1.2".to_owned());
    let loaded = sandbox.load(&named).unwrap();
    assert_eq!(
        loaded[0].reference.as_ref().unwrap().full(),
        "example.com/team/app:1.2"
    );
}

#[test]
fn concurrent_loads_both_register() {
    let sandbox = Sandbox::new();
    let shared = base_layer();
    let paths: Vec<PathBuf> = (0..4)
        .map(|i| {
            let image = TestImage::new(
                Some(&format!("example.com/app{i}:latest")),
                vec![
                    shared.clone(),
                    TestLayer::tar(&[TestEntry::file(&format!("f{i}"), b"x")]),
                ],
            );
            image.write(sandbox.path(), &format!("app{i}.tar")).0
        })
        .collect();
    std::thread::scope(|scope| {
        for path in &paths {
            let store = sandbox.store.clone();
            scope.spawn(move || store.load_archive(path).unwrap());
        }
    });
    assert_eq!(sandbox.store.list().unwrap().len(), 4);
    for path in walk(sandbox.path()) {
        assert!(!path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".tmp-"));
    }
}

/// Loads an image whose single layer is `entries` and expects it refused
/// with a message containing `expected`, leaving nothing behind.
fn assert_layer_refused(entries: Vec<TestEntry>, expected: &str) {
    let sandbox = Sandbox::new();
    let entries: Vec<TestEntry> = entries
        .into_iter()
        .map(|mut entry| {
            if let testutil::EntryKind::Symlink(target) = &mut entry.kind {
                *target = target.replace("OUTSIDE", &sandbox.outside().to_string_lossy());
            }
            entry
        })
        .collect();
    let err = sandbox
        .load(&TestImage::new(
            Some(BUSYBOX),
            vec![TestLayer::gzip(&entries)],
        ))
        .unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, ImageError::UnsafeLayerEntry { .. }),
        "unexpected error kind: {err:?}"
    );
    assert!(
        message.contains(expected),
        "{message:?} does not contain {expected:?}"
    );
    sandbox.assert_untouched();
}

#[test]
fn refuses_entries_escaping_the_layer() {
    let absolute = format!("/tmp/hull-test-evil-{}", std::process::id());
    assert_layer_refused(
        vec![TestEntry::file("../evil", b"x")],
        "layer entry '../evil' has a '..' component",
    );
    assert_layer_refused(
        vec![TestEntry::file("a/../../evil", b"x")],
        "has a '..' component",
    );
    assert_layer_refused(
        vec![TestEntry::file(&absolute, b"x")],
        "has an absolute path",
    );
    assert!(!Path::new(&absolute).exists());
    assert_layer_refused(vec![TestEntry::file("", b"x")], "has an empty path");
    assert_layer_refused(vec![TestEntry::file("./", b"x")], "has an empty path");
}

#[test]
fn refuses_entries_through_symlinks() {
    assert_layer_refused(
        vec![
            TestEntry::symlink("link", "OUTSIDE"),
            TestEntry::file("link/evil", b"x"),
        ],
        "layer entry 'link/evil' goes through symlink 'link'",
    );
    assert_layer_refused(
        vec![
            TestEntry::dir("a"),
            TestEntry::symlink("a/b", "OUTSIDE"),
            TestEntry::dir("a/b/evil"),
        ],
        "goes through symlink 'a/b'",
    );
    assert_layer_refused(
        vec![
            TestEntry::symlink("link", "OUTSIDE"),
            TestEntry::file("link/.wh.secret", b""),
        ],
        "goes through symlink 'link'",
    );
    assert_layer_refused(
        vec![
            TestEntry::symlink("link", "OUTSIDE"),
            TestEntry::file("link/.wh..wh..opq", b""),
        ],
        "goes through symlink 'link'",
    );
    assert_layer_refused(
        vec![
            TestEntry::file("file", b""),
            TestEntry::file("file/evil", b"x"),
        ],
        "goes through 'file', which is not a directory",
    );
}

#[test]
fn refuses_hostile_hardlinks() {
    assert_layer_refused(
        vec![TestEntry::hardlink("passwd", "../../etc/passwd")],
        "layer entry 'passwd' is a hardlink whose target has a '..' component",
    );
    assert_layer_refused(
        vec![TestEntry::hardlink("evil", "/etc/passwd")],
        "is a hardlink whose target has an absolute path",
    );
    assert_layer_refused(
        vec![
            TestEntry::symlink("link", "OUTSIDE"),
            TestEntry::hardlink("evil", "link/secret"),
        ],
        "layer entry 'evil' goes through symlink 'link'",
    );
    assert_layer_refused(
        vec![
            TestEntry::symlink("link", "OUTSIDE/secret"),
            TestEntry::hardlink("evil", "link"),
        ],
        "is a hardlink to 'link', which is not a regular file",
    );
    assert_layer_refused(
        vec![TestEntry::hardlink("evil", "nowhere")],
        "is a hardlink to 'nowhere', which is not in this layer",
    );
    assert_layer_refused(
        vec![
            TestEntry::file("self", b""),
            TestEntry::hardlink("self", "./self"),
        ],
        "is a hardlink to itself",
    );
}

#[test]
fn refuses_bad_whiteouts_and_directory_replacement() {
    assert_layer_refused(
        vec![TestEntry::file("a/.wh..", b"")],
        "is a whiteout of an invalid name",
    );
    assert_layer_refused(
        vec![TestEntry::file(".wh.", b"")],
        "is a whiteout of an invalid name",
    );
    assert_layer_refused(
        vec![TestEntry::dir("d"), TestEntry::file("d", b"evil")],
        "would replace a directory",
    );
}

#[test]
fn later_entries_replace_earlier_non_directories() {
    let sandbox = Sandbox::new();
    let layer = TestLayer::tar(&[
        TestEntry::symlink("x", "/etc/shadow"),
        TestEntry::file("x", b"file now"),
        TestEntry::file("y", b"file"),
        TestEntry::dir("y"),
        TestEntry::file("y/z", b"inside"),
    ]);
    sandbox
        .load(&TestImage::new(Some(BUSYBOX), vec![layer.clone()]))
        .unwrap();
    let dir = sandbox.store.layer_dir(&layer.diff_id);
    assert!(fs::symlink_metadata(dir.join("x")).unwrap().is_file());
    assert_eq!(fs::read(dir.join("x")).unwrap(), b"file now");
    assert_eq!(fs::read(dir.join("y/z")).unwrap(), b"inside");
}

#[test]
fn refuses_a_blob_that_does_not_match_its_name() {
    let sandbox = Sandbox::new();
    let layer = base_layer();
    let mut image = TestImage::new(Some(BUSYBOX), vec![layer.clone()]);
    image.tamper_blobs = vec![layer.digest()];
    let err = sandbox.load(&image).unwrap_err();
    assert!(
        matches!(err, ImageError::BlobDigestMismatch { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with(&format!(
            "blob {} does not match its digest",
            layer.digest()
        )),
        "{err}"
    );
    assert!(!sandbox.store.blobs.path(&layer.digest()).exists());
    sandbox.assert_untouched();
}

#[test]
fn refuses_a_layer_whose_diff_id_does_not_match() {
    let sandbox = Sandbox::new();
    let layer = base_layer();
    let wrong = Digest::of_bytes(b"something else");
    let mut image = TestImage::new(Some(BUSYBOX), vec![layer.clone()]);
    image.diff_ids = Some(vec![wrong.to_string()]);
    let err = sandbox.load(&image).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "layer {} unpacks to {}, but the image config says its diff_id is {wrong}",
            layer.digest(),
            layer.diff_id
        )
    );
    assert!(!sandbox.store.layer_dir(&wrong).exists());
    sandbox.assert_untouched();
}

#[test]
fn refuses_archives_with_missing_or_inconsistent_parts() {
    let layer = base_layer();

    let sandbox = Sandbox::new();
    let mut image = TestImage::new(Some(BUSYBOX), vec![layer.clone()]);
    image.omit_blobs = vec![layer.digest()];
    let err = sandbox.load(&image).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("layer {} missing from archive", layer.digest())
    );
    sandbox.assert_untouched();

    let sandbox = Sandbox::new();
    let mut image = TestImage::new(Some(BUSYBOX), vec![layer.clone()]);
    image.omit_blobs = vec![Digest::of_bytes(&image.config_json())];
    let err = sandbox.load(&image).unwrap_err();
    assert!(matches!(err, ImageError::MissingBlob(_)), "{err:?}");
    sandbox.assert_untouched();

    let sandbox = Sandbox::new();
    let mut image = TestImage::new(Some(BUSYBOX), vec![layer.clone()]);
    image.diff_ids = Some(vec![]);
    let err = sandbox.load(&image).unwrap_err();
    assert!(
        matches!(
            err,
            ImageError::LayerCountMismatch {
                layers: 1,
                diff_ids: 0,
                ..
            }
        ),
        "{err:?}"
    );
    sandbox.assert_untouched();

    let sandbox = Sandbox::new();
    let mut image = TestImage::new(Some(BUSYBOX), vec![layer.clone()]);
    image.extra_entries = vec![TestEntry::file("../evil", b"x")];
    let err = sandbox.load(&image).unwrap_err();
    assert!(matches!(err, ImageError::InvalidArchive { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("entry '../evil' has a '..' component"),
        "{err}"
    );
    sandbox.assert_untouched();

    let sandbox = Sandbox::new();
    let mut image = TestImage::new(Some(BUSYBOX), vec![layer.clone()]);
    image.extra_entries = vec![TestEntry::file("blobs/sha256/NOTHEX", b"x")];
    let err = sandbox.load(&image).unwrap_err();
    assert!(
        err.to_string()
            .contains("blob name 'NOTHEX' is not 64 lowercase hex"),
        "{err}"
    );

    let sandbox = Sandbox::new();
    let mut image = TestImage::new(Some(BUSYBOX), vec![layer.clone()]);
    image.extra_entries = vec![TestEntry::file("index.json", &vec![b' '; (4 << 20) + 1])];
    let err = sandbox.load(&image).unwrap_err();
    assert_eq!(
        err.to_string(),
        "index.json is larger than the limit of 4194304 bytes"
    );
    sandbox.assert_untouched();

    let sandbox = Sandbox::new();
    let image = TestImage::new(Some("not a name"), vec![layer]);
    let err = sandbox.load(&image).unwrap_err();
    assert!(matches!(err, ImageError::InvalidReference(_)), "{err:?}");
    sandbox.assert_untouched();
}

#[test]
fn refuses_a_non_oci_archive() {
    let sandbox = Sandbox::new();
    let path = sandbox.path().join("legacy.tar");
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(2);
    builder
        .append_data(&mut header, "manifest.json", &b"[]"[..])
        .unwrap();
    fs::write(&path, builder.into_inner().unwrap()).unwrap();
    let err = sandbox.store.load_archive(&path).unwrap_err();
    assert!(
        err.to_string().contains("manifest.json lists no image"),
        "{err}"
    );

    let missing = sandbox.path().join("missing.tar");
    let err = sandbox.store.load_archive(&missing).unwrap_err();
    // The cause is the error's source, printed by the CLI after the message.
    assert_eq!(
        err.to_string(),
        format!("cannot open {}", missing.display())
    );
    let source = std::error::Error::source(&err)
        .map(|s| s.to_string())
        .unwrap_or_default();
    assert_eq!(source, "No such file or directory (os error 2)");
}

#[test]
fn unpacks_entries_in_any_directory_order() {
    let sandbox = Sandbox::new();
    let layer = TestLayer::tar(&[
        TestEntry::file("a/b/c/one", b"1"),
        TestEntry::file("a/two", b"2"),
        TestEntry::file("a/b/c/d/three", b"3"),
        TestEntry::file("a/b/four", b"4"),
        TestEntry::file("five", b"5"),
        TestEntry::file("a/b/c/d/six", b"6"),
        TestEntry::dir("a/b").mode(0o500),
    ]);
    sandbox
        .load(&TestImage::new(Some(BUSYBOX), vec![layer.clone()]))
        .unwrap();
    let dir = sandbox.store.layer_dir(&layer.diff_id);
    for (path, content) in [
        ("a/b/c/one", "1"),
        ("a/two", "2"),
        ("a/b/c/d/three", "3"),
        ("a/b/four", "4"),
        ("five", "5"),
        ("a/b/c/d/six", "6"),
    ] {
        assert_eq!(
            fs::read_to_string(dir.join(path)).unwrap(),
            content,
            "{path}"
        );
    }
    assert_eq!(
        fs::metadata(dir.join("a/b")).unwrap().mode() & 0o7777,
        0o500
    );
    assert_eq!(
        fs::metadata(dir.join("a/b/c")).unwrap().mode() & 0o7777,
        0o755
    );
}

#[test]
fn pax_records_override_header_fields() {
    let sandbox = Sandbox::new();
    let mut builder = tar::Builder::new(Vec::new());
    builder
        .append_pax_extensions([
            ("uid", &b"70000"[..]),
            ("gid", b"70001"),
            ("mtime", b"1234567890.5"),
        ])
        .unwrap();
    let mut header = tar::Header::new_ustar();
    header.set_size(3);
    header.set_mode(0o640);
    header.set_entry_type(tar::EntryType::Regular);
    builder
        .append_data(&mut header, "pax-file", &b"pax"[..])
        .unwrap();
    let tar = builder.into_inner().unwrap();
    let layer = TestLayer {
        diff_id: Digest::of_bytes(&tar),
        blob: tar,
        media_type: testutil::MEDIA_TAR.to_owned(),
    };
    sandbox
        .load(&TestImage::new(Some(BUSYBOX), vec![layer.clone()]))
        .unwrap();
    let meta = fs::metadata(sandbox.store.layer_dir(&layer.diff_id).join("pax-file")).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mtime()),
        (70000, 70001, 1_234_567_890)
    );
    assert_eq!(meta.mode() & 0o7777, 0o640);
}

#[test]
fn refuses_layers_it_cannot_unpack() {
    let sandbox = Sandbox::new();
    let mut layer = base_layer();
    layer.media_type = "application/vnd.oci.image.layer.v1.tar+zstd".to_owned();
    let err = sandbox
        .load(&TestImage::new(Some(BUSYBOX), vec![layer.clone()]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "layer {} has unsupported media type application/vnd.oci.image.layer.v1.tar+zstd",
            layer.digest()
        )
    );
    sandbox.assert_untouched();

    let mut layer = base_layer();
    layer.blob = b"definitely not a tar archive, just some bytes".repeat(20);
    layer.diff_id = Digest::of_bytes(&layer.blob);
    let err = sandbox
        .load(&TestImage::new(Some(BUSYBOX), vec![layer]))
        .unwrap_err();
    assert!(err.to_string().starts_with("cannot read layer"), "{err}");
    sandbox.assert_untouched();
}

/// A legacy `docker save` archive: `manifest.json`, `<id>.json` and
/// `<id>/layer.tar` (one of them gzipped, as some tools write them).
fn legacy_docker_archive(image: &TestImage) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, path, data).unwrap();
    };
    let config = image.config_json();
    let config_name = format!("{}.json", Digest::of_bytes(&config).hex());
    add(&config_name, &config);
    let mut layers = Vec::new();
    for (index, layer) in image.layers.iter().enumerate() {
        let name = format!("layer{index}/layer.tar");
        add(&name, &layer.blob);
        layers.push(name);
    }
    add("repositories", br#"{"busybox":{"latest":"x"}}"#);
    let manifest = serde_json::json!([{ "Config": config_name, "RepoTags": ["legacy:v1", "legacy:also"], "Layers": layers }]);
    add("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    builder.into_inner().unwrap()
}

#[test]
fn loads_legacy_docker_archives_and_saves_what_docker_reads() {
    let sandbox = Sandbox::new();
    let image = TestImage::new(None, vec![base_layer(), top_layer()]);
    let path = sandbox.path().join("legacy.tar");
    fs::write(&path, legacy_docker_archive(&image)).unwrap();
    let loaded = sandbox.store.load_archive(&path).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(
        loaded[0].reference.as_ref().unwrap().familiar_string(),
        "legacy:v1"
    );
    assert_eq!(loaded[0].id, Digest::of_bytes(&image.config_json()));
    let both = sandbox.store.resolve("legacy:also").unwrap();
    assert_eq!(both.id, loaded[0].id);
    assert_eq!(both.diff_ids.len(), 2);

    // A layer that does not match the config's diff_ids is refused.
    let mut bad = image.clone();
    bad.diff_ids = Some(
        image
            .layers
            .iter()
            .rev()
            .map(|l| l.diff_id.to_string())
            .collect(),
    );
    let fresh = Sandbox::new();
    let bad_path = fresh.path().join("bad.tar");
    fs::write(&bad_path, legacy_docker_archive(&bad)).unwrap();
    assert!(fresh.store.load_archive(&bad_path).is_err());

    // `save` writes a manifest.json too: an archive without the OCI layout
    // files loads the same image.
    let mut saved = Vec::new();
    sandbox
        .store
        .save(&["legacy:v1".to_string()], &mut saved)
        .unwrap();
    let mut docker_only = tar::Builder::new(Vec::new());
    for entry in tar::Archive::new(&saved[..]).entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        if name == "oci-layout" || name == "index.json" {
            continue;
        }
        let mut header = entry.header().clone();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        docker_only
            .append_data(&mut header, &name, &data[..])
            .unwrap();
    }
    let other = Sandbox::new();
    let path = other.path().join("docker-only.tar");
    fs::write(&path, docker_only.into_inner().unwrap()).unwrap();
    let reloaded = other.store.load_archive(&path).unwrap();
    assert_eq!(reloaded[0].id, loaded[0].id);
    assert_eq!(
        reloaded[0].reference.as_ref().unwrap().familiar_string(),
        "legacy:v1"
    );
}
