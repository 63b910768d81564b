//! Behind the VM's wall: each sandbox's QEMU runs as a user of its own,
//! with no capabilities, no new privileges and QEMU's strictest seccomp
//! filter; virtiofsd under its own filter and no new privileges. A guest
//! that escaped into its VMM could neither signal another sandbox's VMM
//! nor reach Hull's state, nor list the sandbox directories.

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

        let virtiofsd = ok(
            &hull,
            &["inspect", "-f", "{{.HullSandbox.VirtiofsdPid}}", name],
        );
        assert_eq!(status(&virtiofsd, "NoNewPrivs"), "1");
        // Its serving process (a child in its sandbox) is filtered.
        let children =
            std::fs::read_to_string(format!("/proc/{virtiofsd}/task/{virtiofsd}/children"))
                .unwrap_or_default();
        let server = children
            .split_whitespace()
            .next()
            .unwrap_or(&virtiofsd)
            .to_string();
        assert_eq!(status(&server, "Seccomp"), "2");

        // The network comes through the tap QEMU was handed.
        let ping = hull.run(["exec", name, "ping", "-c", "1", "-W", "5", "10.88.0.1"]);
        assert!(ping.status.success(), "{}{}", stdout(&ping), stderr(&ping));
    }
    assert_ne!(uids[0], uids[1], "two sandboxes' VMMs share a user");

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
