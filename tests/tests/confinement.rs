//! Behind the VM's wall: each sandbox's QEMU runs as a user of its own,
//! with no capabilities, no new privileges and QEMU's strictest seccomp
//! filter; virtiofsd as root of a user namespace whose ids are
//! unprivileged on the host, under its own filter and no new privileges.
//! A guest that escaped into its VMM could neither signal another
//! sandbox's VMM nor reach Hull's state, nor list the sandbox directories;
//! one that escaped into virtiofsd holds no host privilege either, while
//! the files it serves keep the owners the container gives them.

use hull_tests::harness::{as_user, ok, stderr, stdout, Hull, BUSYBOX_IMAGE};
use std::process::Command;

/// `Name:\tvalue` of /proc/PID/status.
fn status(pid: &str, name: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

#[test]
fn each_vmm_runs_unprivileged_under_seccomp_and_virtiofsd_under_its_filter() {
    let hull = Hull::with_busybox();
    let mut uids = Vec::new();
    let mut virtiofsd_uids = Vec::new();
    let mut cgroups = Vec::new();
    for name in ["first", "second"] {
        ok(
            &hull,
            &["run", "-d", "--name", name, BUSYBOX_IMAGE, "sleep", "600"],
        );
        let vmm = ok(&hull, &["inspect", "-f", "{{.HullSandbox.VmmPid}}", name]);
        let uid = status(&vmm, "Uid");
        let real: u32 = uid.split_whitespace().next().unwrap().parse().unwrap();
        assert!(real >= 0x7000_0000, "{name}'s VMM runs as {uid}");
        assert!(
            uid.split_whitespace().all(|u| u == real.to_string()),
            "{uid}"
        );
        assert_eq!(status(&vmm, "CapEff"), "0000000000000000");
        assert_eq!(status(&vmm, "NoNewPrivs"), "1");
        assert_eq!(status(&vmm, "Seccomp"), "2");
        uids.push(real);
        cgroups.push(limited_cgroup(&vmm));
        // Its monitor gave up what no part of a sandbox needs, for itself
        // and everything it starts: modules, raw I/O, reboot, the clock, BPF.
        let monitor = ok(
            &hull,
            &["inspect", "-f", "{{.HullSandbox.MonitorPid}}", name],
        );
        for pid in [&monitor, &vmm] {
            for set in ["CapBnd", "CapEff"] {
                let caps = u64::from_str_radix(&status(pid, set), 16).unwrap();
                for cap in [16, 17, 22, 25, 39] {
                    assert_eq!(
                        caps & (1 << cap),
                        0,
                        "{name}: {pid}'s {set} has capability {cap}"
                    );
                }
            }
        }
        // It sees the host's tree read-only, in a mount namespace of its own.
        assert_ne!(
            std::fs::read_link(format!("/proc/{vmm}/ns/mnt")).unwrap(),
            std::fs::read_link("/proc/self/ns/mnt").unwrap(),
            "{name}'s VMM is in the host's mount namespace"
        );
        // (Mounts the host makes later reach it with their own flags: it is
        // a slave, so that it pins none. Other tests make some meanwhile.)
        let mountinfo = std::fs::read_to_string(format!("/proc/{vmm}/mountinfo")).unwrap();
        let mut seen = 0;
        for line in mountinfo.lines() {
            // Field 5: the mount point; field 6: the mount's own options.
            let fields: Vec<&str> = line.split(' ').collect();
            if ["/", "/tmp", "/run", "/var/tmp", "/dev/shm"].contains(&fields[4]) {
                seen += 1;
                assert!(
                    fields[5].split(',').any(|o| o == "ro"),
                    "{name}'s VMM may write on {line}"
                );
            }
        }
        assert!(seen > 0, "{mountinfo}");

        let virtiofsd = ok(
            &hull,
            &["inspect", "-f", "{{.HullSandbox.VirtiofsdPid}}", name],
        );
        assert_eq!(status(&virtiofsd, "NoNewPrivs"), "1");
        // Filtered from its start (the calls it never makes refused), and
        // its serving process (a child in its sandbox) by its own filter too.
        assert_eq!(status(&virtiofsd, "Seccomp"), "2");
        let children =
            std::fs::read_to_string(format!("/proc/{virtiofsd}/task/{virtiofsd}/children"))
                .unwrap_or_default();
        let server = children
            .split_whitespace()
            .next()
            .unwrap_or(&virtiofsd)
            .to_string();
        assert_eq!(status(&server, "Seccomp"), "2");
        assert_eq!(status(&server, "NoNewPrivs"), "1");
        // Both run as the root of a user namespace: on the host, ids of
        // the sandbox's own range, with no capability there.
        for pid in [&virtiofsd, &server] {
            let uid = status(pid, "Uid");
            let real: u32 = uid.split_whitespace().next().unwrap().parse().unwrap();
            assert!(
                real >= 0x8000_0000,
                "{name}'s virtiofsd {pid} runs as {uid}"
            );
            assert!(
                uid.split_whitespace().all(|u| u == real.to_string()),
                "{uid}"
            );
            assert_ne!(
                std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap(),
                std::fs::read_link("/proc/self/ns/user").unwrap(),
                "{name}'s virtiofsd is in the host's user namespace"
            );
        }
        virtiofsd_uids.push(status(&server, "Uid"));

        // The network comes through the tap QEMU was handed.
        let ping = hull.run(["exec", name, "ping", "-c", "1", "-W", "5", "10.88.0.1"]);
        assert!(ping.status.success(), "{}{}", stdout(&ping), stderr(&ping));
    }
    assert_ne!(uids[0], uids[1], "two sandboxes' VMMs share a user");
    assert_ne!(
        virtiofsd_uids[0], virtiofsd_uids[1],
        "two sandboxes' virtiofsd share a user"
    );

    // As the first VMM's user: its own directory, and nothing else.
    let vmm = ok(
        &hull,
        &["inspect", "-f", "{{.HullSandbox.VmmPid}}", "first"],
    );
    let cwd = std::fs::read_link(format!("/proc/{vmm}/cwd")).ok();
    let as_vmm = |args: &[&str]| {
        as_user(uids[0], args[0])
            .args(&args[1..])
            .output()
            .expect("running setpriv (util-linux)")
    };
    let run_dir = hull.run_dir();
    let run_dir = run_dir.to_str().unwrap();
    let listing = as_vmm(&["ls", run_dir]);
    assert!(
        !listing.status.success(),
        "the VMM's user lists {run_dir}: {cwd:?}"
    );
    let state = hull.root();
    let state = as_vmm(&["ls", state.to_str().unwrap()]);
    assert!(!state.status.success(), "the VMM's user lists Hull's state");
    // Its sandbox's directory: passable, not listable; the logs, the
    // sockets and the share in it are root's.
    let id = ok(&hull, &["inspect", "-f", "{{.Id}}", "first"]);
    let sandbox = hull.run_dir().join(&id[..12]).join("vm");
    for (args, what) in [
        (vec!["ls", "."], "lists its sandbox directory"),
        (vec!["cat", "vmm.log"], "reads the VMM log"),
        (vec!["ls", "vmm"], "lists the monitor's side of its sockets"),
        (vec!["ls", "share"], "lists the container's files"),
    ] {
        let out = as_user(uids[0], args[0])
            .args(&args[1..])
            .current_dir(&sandbox)
            .output()
            .expect("running setpriv (util-linux)");
        assert!(!out.status.success(), "the VMM's user {what}");
    }
    // Nor can it signal the other sandbox's VMM.
    let other = ok(
        &hull,
        &["inspect", "-f", "{{.HullSandbox.VmmPid}}", "second"],
    );
    let kill = as_vmm(&["kill", "-0", &other]);
    assert!(
        !kill.status.success(),
        "the first VMM's user may signal the second's"
    );

    // A VMM its filter kills (SIGSYS, sent here as the kernel would) is
    // reported as that.
    assert!(Command::new("kill")
        .args(["-SYS", &other])
        .status()
        .unwrap()
        .success());
    assert!(
        hull_tests::harness::eventually(std::time::Duration::from_secs(20), || {
            ok(&hull, &["inspect", "-f", "{{.State.Error}}", "second"])
                .contains("killed by its seccomp filter")
        }),
        "{}",
        ok(&hull, &["inspect", "-f", "{{json .State}}", "second"])
    );

    ok(&hull, &["rm", "-f", "first", "second"]);
    hull.assert_nothing_left();
    for dir in cgroups.iter().flatten() {
        assert!(!dir.exists(), "{} is left", dir.display());
    }
}

/// The VMM `pid`'s own cgroups (`hull/<sandbox>`), with a memory, CPU and
/// pids limit each; returns their directories.
fn limited_cgroup(pid: &str) -> Vec<std::path::PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let mut dirs = Vec::new();
    // v1 lines are `N:memory:/hull/ID`; the v2 line is `0::/hull/ID`.
    let unified = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    for line in text.lines() {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next(), fields.next(), fields.next());
        let (Some(controllers), Some(path)) = (controllers, path) else {
            continue;
        };
        let (dir, limit) = match (unified, controllers) {
            (true, "") => (format!("/sys/fs/cgroup{path}"), "memory.max"),
            (false, "memory") => (
                format!("/sys/fs/cgroup/memory{path}"),
                "memory.limit_in_bytes",
            ),
            (false, "pids") => (format!("/sys/fs/cgroup/pids{path}"), "pids.max"),
            (false, c) if c.split(',').any(|c| c == "cpu") => {
                (format!("/sys/fs/cgroup/cpu{path}"), "cpu.cfs_quota_us")
            }
            _ => continue,
        };
        assert!(path.starts_with("/hull/"), "{pid} is in {line}");
        let value = std::fs::read_to_string(format!("{dir}/{limit}")).unwrap();
        let value: i64 = value.trim().parse().unwrap_or(-1);
        assert!(value > 0 && value < 1 << 40, "{dir}/{limit}: {value}");
        dirs.push(std::path::PathBuf::from(dir));
    }
    assert!(dirs.len() >= if unified { 1 } else { 3 }, "{text}");
    dirs
}

/// The owner and group of `path` on the host, as `uid:gid`.
fn owner(path: &std::path::Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let meta =
        std::fs::symlink_metadata(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    format!("{}:{}", meta.uid(), meta.gid())
}

#[test]
fn an_unprivileged_virtiofsd_keeps_the_containers_owners_on_disk() {
    let hull = Hull::with_busybox();
    let volume = tempfile::tempdir().unwrap();
    let mount = format!("{}:/vol", volume.path().display());
    ok(
        &hull,
        &[
            "run",
            "-d",
            "--name",
            "owners",
            "-v",
            &mount,
            BUSYBOX_IMAGE,
            "sleep",
            "600",
        ],
    );
    // What the guest writes, as root and as others, on the writable layer
    // and on a volume; a whiteout and a copy-up.
    ok(
        &hull,
        &[
            "exec",
            "owners",
            "sh",
            "-c",
            "echo a > /f && chown 1000:1000 /f && mkdir /d && chown 123:456 /d \
             && touch /vol/v && chown 7:8 /vol/v && su nobody -s /bin/sh -c 'touch /tmp/n' \
             && rm /bin/true && chmod 700 /etc/passwd && stat -c %u:%g /bin/busybox /etc/passwd",
        ],
    );
    let id = ok(&hull, &["inspect", "-f", "{{.Id}}", "owners"]);
    let upper = hull.root().join("containers").join(&id).join("rw/upper");
    assert_eq!(owner(&upper.join("f")), "1000:1000");
    assert_eq!(owner(&upper.join("d")), "123:456");
    assert_eq!(owner(&upper.join("tmp/n")), "65534:65534");
    assert_eq!(
        owner(&upper.join("etc/passwd")),
        "0:0",
        "a copy-up keeps the owner"
    );
    assert_eq!(owner(&volume.path().join("v")), "7:8");
    {
        use std::os::unix::fs::FileTypeExt;
        let whiteout = std::fs::symlink_metadata(upper.join("bin/true")).unwrap();
        assert!(
            whiteout.file_type().is_char_device(),
            "no whiteout for /bin/true"
        );
    }
    // The image's files are root's, to the guest as on the disk.
    let seen = ok(
        &hull,
        &[
            "exec",
            "owners",
            "stat",
            "-c",
            "%u:%g",
            "/bin/busybox",
            "/f",
            "/d",
        ],
    );
    assert_eq!(seen, "0:0\n1000:1000\n123:456");

    // `cp` into the running container writes as the container's root, or
    // with -a as the archive says; an id the container cannot hold is refused.
    let file = volume.path().join("copied");
    std::fs::write(&file, "copied").unwrap();
    let source = file.to_str().unwrap();
    ok(&hull, &["cp", source, "owners:/copied"]);
    std::os::unix::fs::chown(&file, Some(1234), Some(55)).unwrap();
    ok(&hull, &["cp", "-a", source, "owners:/kept"]);
    assert_eq!(owner(&upper.join("copied")), "0:0");
    assert_eq!(owner(&upper.join("kept")), "1234:55");
    let seen = ok(
        &hull,
        &["exec", "owners", "stat", "-c", "%u:%g", "/copied", "/kept"],
    );
    assert_eq!(seen, "0:0\n1234:55");
    std::os::unix::fs::chown(&file, Some(70000), Some(55)).unwrap();
    let refused = hull.run(["cp", "-a", source, "owners:/far"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("id 70000 is not one the container maps"),
        "{}",
        stderr(&refused)
    );
    ok(&hull, &["rm", "-f", "owners"]);
}
