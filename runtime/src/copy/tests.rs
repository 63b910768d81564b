use super::*;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

fn spelling(parent: &str, name: &str, asserts_dir: bool, contents: bool) -> Spelling {
    Spelling {
        parent: parent.into(),
        name: name.into(),
        asserts_dir,
        contents,
    }
}

#[test]
fn paths_are_spelled_as_docker_reads_them() {
    assert_eq!(
        spell("/etc/hosts", true),
        spelling("/etc", "hosts", false, false)
    );
    assert_eq!(
        spell("etc/hosts", true),
        spelling("/etc", "hosts", false, false)
    );
    assert_eq!(spell("/tmp/", true), spelling("/", "tmp", true, false));
    assert_eq!(spell("/tmp/.", true), spelling("/tmp/.", ".", true, true));
    assert_eq!(spell("/tmp/..", true), spelling("/tmp/..", ".", true, true));
    assert_eq!(spell("/", true), spelling("/", ".", true, true));
    assert_eq!(spell("", true), spelling("/", ".", true, true));
    assert_eq!(spell("a", false), spelling(".", "a", false, false));
    assert_eq!(spell(".", false), spelling(".", ".", true, true));
    assert_eq!(spell("out/", false), spelling(".", "out", true, false));
    assert_eq!(
        spell("/srv//data//", false),
        spelling("/srv/", "data", true, false)
    );
}

#[test]
fn placement_follows_dockers_table() {
    use Placement::*;
    // A file: into an existing directory, onto an existing file, or as a new file.
    assert_eq!(placement(false, true, true, false), Ok(IntoDirectory));
    assert_eq!(placement(false, true, false, false), Ok(AtDestination));
    assert_eq!(placement(false, false, false, false), Ok(AtDestination));
    assert_eq!(
        placement(false, false, false, true),
        Err(Refusal::NoSuchDirectory)
    );
    // A directory: into an existing one, never onto a file, or as a new one.
    assert_eq!(placement(true, true, true, false), Ok(IntoDirectory));
    assert_eq!(
        placement(true, true, false, false),
        Err(Refusal::DirectoryOntoFile)
    );
    assert_eq!(placement(true, false, false, true), Ok(AtDestination));
}

#[test]
fn archive_names_stay_below_the_destination() {
    let names = |n: &str| {
        archive_components(n.as_bytes()).map(|c| {
            c.iter()
                .map(|c| c.to_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(names("./a/b"), Some(vec!["a".to_string(), "b".to_string()]));
    assert_eq!(
        names("/etc//passwd"),
        Some(vec!["etc".to_string(), "passwd".to_string()])
    );
    assert_eq!(names("."), Some(vec![]));
    assert_eq!(names("a/../../b"), None);
    assert_eq!(names(".."), None);
}

/// A fake container root and a host directory beside it.
struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    host: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let host = dir.path().join("host");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("tmp")).unwrap();
        std::fs::create_dir_all(&host).unwrap();
        std::fs::write(root.join("etc/hostname"), "box\n").unwrap();
        std::fs::write(host.join("secret"), "host secret\n").unwrap();
        // The guest's traps: links that would lead to the host's files if
        // they were resolved from the host's `/`.
        symlink("/", root.join("escape")).unwrap();
        symlink(host.join("secret"), root.join("etc/evil")).unwrap();
        symlink("../../../../../../..", root.join("tmp/up")).unwrap();
        Self {
            _dir: dir,
            root,
            host,
        }
    }

    fn container(&self) -> Tree {
        let path = CString::new(self.root.as_os_str().as_bytes()).unwrap();
        Tree::container(
            fd::openat(libc::AT_FDCWD, &path, libc::O_PATH | libc::O_DIRECTORY, 0).unwrap(),
            "box",
        )
    }

    fn host_path(&self, name: &str) -> String {
        self.host.join(name).to_str().unwrap().to_string()
    }
}

/// These tests change owners and use openat2 on behalf of a root Hull:
/// without root they fail, saying so, rather than pass unrun.
fn require_root() {
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test needs root (Hull runs as root; scripts/test.sh does)"
    );
}

#[test]
fn files_and_directories_copy_out_as_docker_places_them() {
    let fx = Fixture::new();
    let box_ = fx.container();
    let options = CopyOptions::default();
    // A file to a new name, then into an existing directory.
    copy(
        &box_,
        "/etc/hostname",
        &Tree::host(),
        &fx.host_path("name"),
        options,
    )
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(fx.host.join("name")).unwrap(),
        "box\n"
    );
    std::fs::create_dir(fx.host.join("into")).unwrap();
    copy(
        &box_,
        "etc/hostname",
        &Tree::host(),
        &fx.host_path("into"),
        options,
    )
    .unwrap();
    assert!(fx.host.join("into/hostname").is_file());
    // A directory: as itself into a directory, or its contents with `/.`.
    copy(&box_, "/etc", &Tree::host(), &fx.host_path("into"), options).unwrap();
    assert!(fx.host.join("into/etc/hostname").is_file());
    std::fs::create_dir(fx.host.join("contents")).unwrap();
    copy(
        &box_,
        "/etc/.",
        &Tree::host(),
        &fx.host_path("contents"),
        options,
    )
    .unwrap();
    assert!(fx.host.join("contents/hostname").is_file());
    // A directory to a missing path takes that name.
    copy(
        &box_,
        "/etc",
        &Tree::host(),
        &fx.host_path("renamed"),
        options,
    )
    .unwrap();
    assert!(fx.host.join("renamed/hostname").is_file());
    // Docker's refusals.
    let err = copy(&box_, "/etc", &Tree::host(), &fx.host_path("name"), options).unwrap_err();
    assert!(
        matches!(err, CopyError::CannotCopyDirectory { .. }),
        "{err}"
    );
    let err = copy(
        &box_,
        "/etc/hostname",
        &Tree::host(),
        &format!("{}/", fx.host_path("missing")),
        options,
    )
    .unwrap_err();
    assert!(matches!(err, CopyError::NoSuchDirectory { .. }), "{err}");
    let err = copy(&box_, "/nope", &Tree::host(), &fx.host_path("x"), options).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Could not find the file /nope in container box"
    );
    let err = copy(
        &box_,
        "/etc/hostname/",
        &Tree::host(),
        &fx.host_path("x"),
        options,
    )
    .unwrap_err();
    assert!(matches!(err, CopyError::NotADirectory { .. }), "{err}");
}

#[test]
fn links_in_a_container_never_reach_the_host() {
    let fx = Fixture::new();
    let box_ = fx.container();
    let options = CopyOptions::default();
    let secret = fx.host_path("secret");
    // Out: a link is copied as a link; with -L it is followed inside the
    // container, where the host's file does not exist.
    copy(
        &box_,
        "/etc/evil",
        &Tree::host(),
        &fx.host_path("evil"),
        options,
    )
    .unwrap();
    assert_eq!(
        std::fs::read_link(fx.host.join("evil")).unwrap(),
        fx.host.join("secret")
    );
    let follow = CopyOptions {
        follow_link: true,
        ..options
    };
    assert!(matches!(
        copy(
            &box_,
            "/etc/evil",
            &Tree::host(),
            &fx.host_path("followed"),
            follow
        ),
        Err(CopyError::NotFound { .. })
    ));
    let through_escape = format!("/escape{secret}");
    assert!(matches!(
        copy(
            &box_,
            &through_escape,
            &Tree::host(),
            &fx.host_path("x"),
            options
        ),
        Err(CopyError::NotFound { .. })
    ));
    let through_up = format!("/tmp/up{secret}");
    assert!(matches!(
        copy(
            &box_,
            &through_up,
            &Tree::host(),
            &fx.host_path("x"),
            options
        ),
        Err(CopyError::NotFound { .. })
    ));
    // `/escape/etc/hostname` is the container's own file.
    copy(
        &box_,
        "/escape/etc/hostname",
        &Tree::host(),
        &fx.host_path("own"),
        options,
    )
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(fx.host.join("own")).unwrap(),
        "box\n"
    );
    // A directory holding links: the links, not what they lead to.
    copy(&box_, "/", &Tree::host(), &fx.host_path("all"), options).unwrap();
    assert!(fx
        .host
        .join("all/escape")
        .symlink_metadata()
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(fx
        .host
        .join("all/etc/evil")
        .symlink_metadata()
        .unwrap()
        .file_type()
        .is_symlink());

    require_root();
    // In: through the same links, writes land inside the container.
    std::fs::write(fx.host.join("payload"), "payload\n").unwrap();
    let payload = fx.host_path("payload");
    copy(&Tree::host(), &payload, &box_, "/etc/evil", options).unwrap_err();
    assert_eq!(
        std::fs::read_to_string(&secret).unwrap(),
        "host secret\n",
        "cp wrote through a link onto the host"
    );
    copy(
        &Tree::host(),
        &payload,
        &box_,
        "/escape/tmp/dropped",
        options,
    )
    .unwrap();
    assert!(fx.root.join("tmp/dropped").is_file());
    let host_target = format!("/escape{}", fx.host_path("dropped"));
    copy(&Tree::host(), &payload, &box_, &host_target, options).unwrap_err();
    copy(
        &Tree::host(),
        &payload,
        &box_,
        "/tmp/up/tmp/up/upped",
        options,
    )
    .unwrap();
    assert!(
        fx.root.join("upped").is_file(),
        "`..` left the container's root"
    );
    assert!(!fx.host.join("dropped").exists());
}

#[test]
fn copies_in_belong_to_root_unless_archived() {
    require_root();
    let fx = Fixture::new();
    let box_ = fx.container();
    let tree = fx.host.join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("sub/file"), "data").unwrap();
    std::fs::set_permissions(
        tree.join("sub/file"),
        std::fs::Permissions::from_mode(0o4750),
    )
    .unwrap();
    std::os::unix::fs::chown(tree.join("sub/file"), Some(1234), Some(5678)).unwrap();
    std::fs::set_permissions(
        tree.join("sub/file"),
        std::fs::Permissions::from_mode(0o4750),
    )
    .unwrap();
    symlink("sub/file", tree.join("link")).unwrap();
    let source = tree.to_str().unwrap();
    copy(&Tree::host(), source, &box_, "/tmp", CopyOptions::default()).unwrap();
    let copied = std::fs::metadata(fx.root.join("tmp/tree/sub/file")).unwrap();
    assert_eq!(
        (copied.uid(), copied.gid(), copied.mode() & 0o7777),
        (0, 0, 0o4750)
    );
    assert_eq!(
        std::fs::read_link(fx.root.join("tmp/tree/link")).unwrap(),
        Path::new("sub/file")
    );
    let archived = CopyOptions {
        archive: true,
        ..CopyOptions::default()
    };
    copy(&Tree::host(), source, &box_, "/kept", archived).unwrap();
    let kept = std::fs::metadata(fx.root.join("kept/sub/file")).unwrap();
    assert_eq!((kept.uid(), kept.gid()), (1234, 5678));

    // Back out to the host: set-user-ID bits are dropped.
    copy(
        &box_,
        "/kept/sub/file",
        &Tree::host(),
        &fx.host_path("out"),
        archived,
    )
    .unwrap();
    let out = std::fs::metadata(fx.host.join("out")).unwrap();
    assert_eq!((out.uid(), out.mode() & 0o7777), (1234, 0o750));
}

#[test]
fn archives_stream_both_ways_and_hostile_entries_are_refused() {
    require_root();
    let fx = Fixture::new();
    let box_ = fx.container();
    let mut archive = Vec::new();
    archive_to(&box_, "/etc", CopyOptions::default(), &mut archive).unwrap();
    let names: Vec<String> = tar::Archive::new(archive.as_slice())
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(names, ["etc", "etc/evil", "etc/hostname"]);

    extract_into(archive.as_slice(), &box_, "/tmp", CopyOptions::default()).unwrap();
    assert_eq!(
        std::fs::read_to_string(fx.root.join("tmp/etc/hostname")).unwrap(),
        "box\n"
    );
    let err = extract_into(
        archive.as_slice(),
        &box_,
        "/etc/hostname",
        CopyOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, CopyError::ExtractionPointNotDirectory { .. }),
        "{err}"
    );

    // Hand-made hostile archives: `..`, and a path through a link.
    let hostile = |name: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(1);
        header.set_mode(0o644);
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        header.set_cksum();
        let mut data = header.as_bytes().to_vec();
        data.extend_from_slice(&[b'x'; 512]);
        data.extend_from_slice(&[0; 1024]);
        data
    };
    let err = extract_into(
        hostile(b"../../outside").as_slice(),
        &box_,
        "/tmp",
        CopyOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, CopyError::UnsafeEntry { .. }), "{err}");
    let through_link = format!("escape{}", fx.host_path("planted"));
    let err = extract_into(
        hostile(through_link.as_bytes()).as_slice(),
        &box_,
        "/",
        CopyOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, CopyError::ParentNotDirectory { .. }), "{err}");
    assert!(!fx.host.join("planted").exists());
}

#[test]
fn endless_nesting_stops_the_walks_instead_of_the_stack() {
    let dir = tempfile::tempdir().unwrap();
    let deep: PathBuf = std::iter::repeat_n("d", MAX_TREE_DEPTH + 5).collect();
    std::fs::create_dir_all(dir.path().join(&deep)).unwrap();
    let walked = walk(dir.path(), &mut |_| {});
    assert!(
        matches!(walked, Err(CopyError::TooDeep { .. })),
        "{walked:?}"
    );
    let archived = archive_tree(
        dir.path(),
        TreeKind::Upper,
        Default::default(),
        std::io::sink(),
    );
    assert!(
        matches!(archived, Err(CopyError::TooDeep { .. })),
        "{archived:?}"
    );
}

#[test]
fn trees_as_deep_as_allowed_are_walked_on_a_small_stack() {
    let dir = tempfile::tempdir().unwrap();
    let deep: PathBuf = std::iter::repeat_n("d", MAX_TREE_DEPTH - 1).collect();
    std::fs::create_dir_all(dir.path().join(&deep)).unwrap();
    std::fs::write(dir.path().join(&deep).join("f"), "x").unwrap();
    let root = dir.path().to_path_buf();
    // A thread of 1 MiB, half a default thread's stack.
    std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(move || {
            walk(&root, &mut |_| {}).unwrap();
            archive_tree(&root, TreeKind::Upper, Default::default(), std::io::sink()).unwrap();
        })
        .unwrap()
        .join()
        .unwrap();
}
