//! `hull run` end to end: real QEMU microVM, real guest kernel, real
//! virtiofsd, the real agent. Each test boots its own VM. Memory the guest
//! frees goes back to the host (free page reporting).

use hull_tests::harness::{ok, stderr, stdout, Hull, BUSYBOX_IMAGE};

#[test]
fn echo_reaches_the_terminal() {
    let hull = Hull::with_busybox();
    let out = hull.run(["run", "--rm", BUSYBOX_IMAGE, "echo", "hello from a microVM"]);
    assert_eq!(
        stdout(&out),
        "hello from a microVM\n",
        "stderr: {}",
        stderr(&out)
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn exit_codes_are_the_containers() {
    let hull = Hull::with_busybox();
    let out = hull.run(["run", "--rm", BUSYBOX_IMAGE, "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr(&out));
    // PID 1 of a pid namespace cannot be SIGKILLed from inside, so a child
    // dies and the shell passes its status on, as under Docker.
    let out = hull.run([
        "run",
        "--rm",
        BUSYBOX_IMAGE,
        "sh",
        "-c",
        "sh -c 'kill -9 $$'; exit $?",
    ]);
    assert_eq!(out.status.code(), Some(137), "stderr: {}", stderr(&out));
}

#[test]
fn missing_and_unrunnable_commands_exit_127_and_126() {
    let hull = Hull::with_busybox();
    let out = hull.run(["run", "--rm", BUSYBOX_IMAGE, "no-such-command"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(
        stderr(&out).contains("exec: \"no-such-command\": executable file not found in $PATH"),
        "{}",
        stderr(&out)
    );
    let out = hull.run(["run", "--rm", BUSYBOX_IMAGE, "/etc"]);
    assert_eq!(out.status.code(), Some(126));
    assert!(
        stderr(&out).contains("permission denied"),
        "{}",
        stderr(&out)
    );
    // `start` says the same: attached, with the command's code as `run`;
    // detached, exit 1, as `docker start`.
    let id = ok(
        &hull,
        &[
            "create",
            "--network",
            "none",
            BUSYBOX_IMAGE,
            "no-such-command",
        ],
    );
    for (args, code) in [(&["start", "-a"][..], 127), (&["start"][..], 1)] {
        let mut all = args.to_vec();
        all.push(&id);
        let out = hull.run(&all);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("executable file not found in $PATH"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    ok(&hull, &["rm", &id]);
    hull.assert_nothing_left();
}

#[test]
fn env_workdir_and_user() {
    let hull = Hull::with_busybox();
    let out = hull.run([
        "run",
        "--rm",
        "-e",
        "GREETING=hi there",
        "-w",
        "/tmp/work",
        "-u",
        "1000:1000",
        BUSYBOX_IMAGE,
        "sh",
        "-c",
        "echo \"$GREETING|$(pwd)|$(id -u):$(id -g)|$HOME\"",
    ]);
    assert_eq!(
        stdout(&out),
        "hi there|/tmp/work|1000:1000|/home/user\n",
        "stderr: {}",
        stderr(&out)
    );
    let out = hull.run(["run", "--rm", "-u", "user", BUSYBOX_IMAGE, "id"]);
    assert_eq!(
        stdout(&out),
        "uid=1000(user) gid=1000(user) groups=10(wheel)\n",
        "stderr: {}",
        stderr(&out)
    );
}

/// `hull run --rm -i busybox sh -c SCRIPT` with `input` on its stdin.
fn run_sh_with_stdin(hull: &Hull, script: &str, input: &[u8]) -> std::process::Output {
    hull.run_with_input(
        &["run", "--rm", "-i", BUSYBOX_IMAGE, "sh", "-c", script],
        input,
    )
}

#[test]
fn stdin_is_forwarded_with_i() {
    let hull = Hull::with_busybox();
    let input = "line one\nline two\n".repeat(2000);
    let out = run_sh_with_stdin(&hull, "wc -l; echo done", input.as_bytes());
    assert_eq!(
        stdout(&out).split_whitespace().collect::<Vec<_>>(),
        ["4000", "done"],
        "stderr: {}",
        stderr(&out)
    );
    assert_eq!(out.status.code(), Some(0));
}

/// Megabytes of stdin pass through the guest's agent port, whose receive
/// queue holds 128 page-sized buffers (kernel-config/patches/0004): many
/// times round, in order, nothing lost.
#[test]
fn megabytes_of_stdin_arrive_whole_and_in_order() {
    let hull = Hull::with_busybox();
    let lines = 400_000;
    let input: String = (0..lines).map(|i| format!("line {i}\n")).collect();
    let out = run_sh_with_stdin(
        &hull,
        "tee /tmp/in | wc -c; wc -l < /tmp/in; tail -n 1 /tmp/in",
        input.as_bytes(),
    );
    assert_eq!(
        stdout(&out).split_whitespace().collect::<Vec<_>>(),
        [
            input.len().to_string().as_str(),
            lines.to_string().as_str(),
            "line",
            (lines - 1).to_string().as_str()
        ],
        "stderr: {}",
        stderr(&out)
    );
}

#[test]
fn container_is_pid_1_on_the_guest_kernel() {
    let hull = Hull::with_busybox();
    let out = hull.run([
        "run",
        "--rm",
        BUSYBOX_IMAGE,
        "sh",
        "-c",
        "echo $$; uname -r; hostname",
    ]);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "stdout: {text} stderr: {}", stderr(&out));
    assert_eq!(lines[0], "1");
    let host_release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_ne!(
        lines[1],
        host_release.trim(),
        "the container must not see the host's kernel"
    );
    assert!(
        lines[1].ends_with("-hull"),
        "guest kernel release {}",
        lines[1]
    );
    assert_eq!(lines[2].len(), 12, "hostname is the short container id");
}

#[test]
fn memory_limit_kills_a_hog_with_137() {
    let hull = Hull::with_busybox();
    let out = hull.run([
        "run",
        "--rm",
        "-m",
        "32m",
        BUSYBOX_IMAGE,
        "sh",
        "-c",
        "cat /sys/fs/cgroup/memory.max; tail /dev/zero",
    ]);
    assert_eq!(stdout(&out).trim(), (32u64 << 20).to_string());
    assert_eq!(out.status.code(), Some(137), "stderr: {}", stderr(&out));
}

#[test]
fn writes_stay_in_the_container() {
    let hull = Hull::with_busybox();
    let layers = hull.root().join("image/layers");
    let before = snapshot(&layers);
    let out = hull.run([
        "run",
        "--rm",
        BUSYBOX_IMAGE,
        "sh",
        "-c",
        "echo scribble > /etc/passwd && rm /bin/ls && echo new > /new-file && cat /etc/passwd",
    ]);
    assert_eq!(stdout(&out), "scribble\n", "stderr: {}", stderr(&out));
    assert_eq!(snapshot(&layers), before, "the image store changed");
    let out = hull.run([
        "run",
        "--rm",
        BUSYBOX_IMAGE,
        "sh",
        "-c",
        "test -e /bin/ls && test ! -e /new-file && head -c 4 /etc/passwd",
    ]);
    assert_eq!(
        stdout(&out),
        "root",
        "a second container saw the first one's writes; stderr: {}",
        stderr(&out)
    );
}

#[test]
fn read_only_root_refuses_writes() {
    let hull = Hull::with_busybox();
    let out = hull.run([
        "run",
        "--rm",
        "--read-only",
        BUSYBOX_IMAGE,
        "sh",
        "-c",
        "touch /x 2>&1; echo $?",
    ]);
    assert!(
        stdout(&out).contains("Read-only file system"),
        "stdout: {}",
        stdout(&out)
    );
}

#[test]
fn nothing_is_left_behind() {
    let hull = Hull::with_busybox();
    let out = hull.run(["run", "--rm", BUSYBOX_IMAGE, "true"]);
    assert_eq!(out.status.code(), Some(0));
    // `run --rm` returns once everything is gone: no waiting here. (Each
    // test has its own installation, so nothing else runs in this one.)
    let left = hull.leftovers();
    assert!(left.is_empty(), "left behind: {left:#?}");
    let out = hull.run(["run", "--rm", "-p", "8080:80", BUSYBOX_IMAGE, "true"]);
    assert_eq!(out.status.code(), Some(0));
    let left = hull.leftovers();
    assert!(left.is_empty(), "left behind: {left:#?}");
}

#[test]
fn unknown_image_fails_with_125() {
    let hull = Hull::with_busybox();
    let out = hull.run(["run", "--rm", "no-such-image", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("Unable to find image 'no-such-image:latest' locally"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_flags_fail_with_125() {
    let hull = Hull::with_busybox();
    let out = hull.run(["run", "--no-such-flag", BUSYBOX_IMAGE]);
    assert_eq!(out.status.code(), Some(125));
    let out = hull.run(["run", "-m", "1k", BUSYBOX_IMAGE, "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("Minimum memory limit allowed is 6MB"),
        "{}",
        stderr(&out)
    );
}

/// Every path under `dir` with its size and modification time.
fn snapshot(
    dir: &std::path::Path,
) -> Vec<(std::path::PathBuf, u64, Option<std::time::SystemTime>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        out.push((path.clone(), meta.len(), meta.modified().ok()));
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                stack.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn pids_limit_lands_in_the_cgroup() {
    let hull = Hull::with_busybox();
    let out = hull.run([
        "run",
        "--rm",
        "--pids-limit",
        "10",
        BUSYBOX_IMAGE,
        "cat",
        "/sys/fs/cgroup/pids.max",
    ]);
    assert_eq!(stdout(&out).trim(), "10", "stderr: {}", stderr(&out));
}

/// `Name:` of /proc/PID/status, in kB.
fn status_kib(pid: &str, name: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}:")))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
}

#[test]
fn memory_the_guest_frees_goes_back_to_the_host() {
    let hull = Hull::with_busybox();
    let ok = |args: &[&str]| {
        let out = hull.run(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    ok(&["run", "-d", "--name", "m", BUSYBOX_IMAGE, "sleep", "600"]);
    let vmm = ok(&["inspect", "-f", "{{.HullSandbox.VmmPid}}", "m"]);
    let vmm = vmm.trim();
    // Guest memory is the VMM's shared memfd.
    let idle = status_kib(vmm, "RssShmem");
    ok(&[
        "exec",
        "m",
        "dd",
        "if=/dev/zero",
        "of=/dev/shm/fill",
        "bs=1M",
        "count=48",
    ]);
    let filled = status_kib(vmm, "RssShmem");
    assert!(
        filled > idle + 40 * 1024,
        "idle {idle} kB, filled {filled} kB"
    );
    ok(&["exec", "m", "rm", "/dev/shm/fill"]);
    // Free page reporting hands freed pages back after about 2 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut now = status_kib(vmm, "RssShmem");
    while now > idle + 16 * 1024 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(500));
        now = status_kib(vmm, "RssShmem");
    }
    assert!(
        now <= idle + 16 * 1024,
        "idle {idle} kB, filled {filled} kB, freed {now} kB"
    );
    ok(&["rm", "-f", "m"]);
}
