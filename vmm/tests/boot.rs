//! Boots the freestanding test guest with the real hull-vmm on the real
//! /dev/kvm: serial output, command line, e820, every way of ending the VM,
//! several vCPUs, and start-up errors.

mod common;

use common::{boot_guest, hull_vmm, require_kvm, run_with_timeout, stderr, stdout, test_guest};
use std::time::Duration;

fn describe(output: &std::process::Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        stdout(output),
        stderr(output)
    )
}

#[test]
fn serial_output_reaches_the_host_and_exit_port_sets_status() {
    let output = boot_guest("action=exit:7", &[]);
    assert_eq!(output.status.code(), Some(7), "{}", describe(&output));
    assert!(
        stdout(&output).contains("hull-test-guest: boot pvh"),
        "{}",
        describe(&output)
    );
    assert!(
        stdout(&output).contains("action: exit 0x7"),
        "{}",
        describe(&output)
    );
}

fn check_cmdline_and_e820(protocol: &str) {
    let cmdline = "marker=c0ffee-42 action=exit:5 quoted=a,b";
    let output = boot_guest(cmdline, &["--boot-protocol", protocol]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(5), "{}", describe(&output));
    let expected_boot = if protocol == "pvh" {
        "boot pvh"
    } else {
        "boot linux64"
    };
    assert!(out.contains(expected_boot), "{}", describe(&output));
    assert!(
        out.contains(&format!("cmdline: {cmdline}\n")),
        "{}",
        describe(&output)
    );
    // 64 MiB: low RAM to the EBDA, reserved to 1 MiB, RAM above.
    let e820: Vec<&str> = out.lines().filter(|l| l.starts_with("e820: ")).collect();
    assert_eq!(
        e820,
        [
            "e820: 0x0 0x9fc00 0x1",
            "e820: 0x9fc00 0x60400 0x2",
            "e820: 0x100000 0x3f00000 0x1",
        ],
        "{}",
        describe(&output)
    );
}

#[test]
fn pvh_guest_reads_cmdline_and_e820() {
    check_cmdline_and_e820("pvh");
}

#[test]
fn linux64_guest_reads_cmdline_and_e820() {
    check_cmdline_and_e820("linux");
}

fn check_clean_end(action: &str, logged: &str) {
    let output = boot_guest(&format!("action={action}"), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert!(stderr(&output).contains(logged), "{}", describe(&output));
}

#[test]
fn i8042_reset_ends_the_vmm_with_zero() {
    check_clean_end("reset", "VM ended: guest reset via i8042");
}

#[test]
fn triple_fault_ends_the_vmm_with_zero() {
    check_clean_end("triple", "VM ended: guest triple fault");
}

#[test]
fn power_off_ends_the_vmm_with_zero() {
    check_clean_end("poweroff", "VM ended: guest power-off");
}

#[test]
fn guest_panic_code_is_the_exit_status() {
    let output = boot_guest("action=panic", &[]);
    assert_eq!(output.status.code(), Some(99), "{}", describe(&output));
    assert!(
        stdout(&output).contains("guest panic"),
        "{}",
        describe(&output)
    );
}

fn check_smp(protocol: &str, vcpus: u32) {
    let output = boot_guest(
        "smp=1 action=exit:3",
        &["--vcpus", &vcpus.to_string(), "--boot-protocol", protocol],
    );
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
    assert!(
        out.contains(&format!("mptable: cpus {vcpus:#x}")),
        "{}",
        describe(&output)
    );
    // Every AP checked in, each with its own APIC id (bits 1..vcpus).
    let mask = ((1u64 << vcpus) - 1) & !1;
    assert!(
        out.contains(&format!("smp: cpus online {vcpus:#x} ap mask {mask:#x}")),
        "{}",
        describe(&output)
    );
}

#[test]
fn four_vcpus_all_run_pvh() {
    check_smp("pvh", 4);
}

#[test]
fn two_vcpus_all_run_linux64() {
    check_smp("linux", 2);
}

fn check_one_line_error(output: &std::process::Output, needle: &str) {
    assert_eq!(output.status.code(), Some(1), "{}", describe(output));
    let err = stderr(output);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{}", describe(output));
    assert!(
        lines[0].starts_with("hull-vmm: error: "),
        "{}",
        describe(output)
    );
    assert!(lines[0].contains(needle), "{}", describe(output));
}

#[test]
fn missing_kernel_is_a_one_line_error() {
    require_kvm();
    let mut command = hull_vmm();
    command.args(["--kernel", "/nonexistent/vmlinux"]);
    let output = run_with_timeout(command, Duration::from_secs(20));
    check_one_line_error(&output, "/nonexistent/vmlinux");
}

#[test]
fn garbage_kernel_is_a_one_line_error() {
    require_kvm();
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("garbage");
    let bytes: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&kernel, bytes).unwrap();
    let mut command = hull_vmm();
    command.arg("--kernel").arg(&kernel);
    let output = run_with_timeout(command, Duration::from_secs(20));
    check_one_line_error(&output, "neither an x86_64 ELF vmlinux nor a bzImage");
}

#[test]
fn truncated_elf_kernel_is_a_one_line_error() {
    require_kvm();
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("truncated");
    let guest = std::fs::read(test_guest()).unwrap();
    std::fs::write(&kernel, &guest[..100]).unwrap();
    let mut command = hull_vmm();
    command.arg("--kernel").arg(&kernel);
    let output = run_with_timeout(command, Duration::from_secs(20));
    check_one_line_error(&output, "cannot load kernel");
}

#[test]
fn serial_output_can_go_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serial.log");
    let output = boot_guest("action=exit:4", &["--serial", log.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(4), "{}", describe(&output));
    assert!(
        !stdout(&output).contains("hull-test-guest"),
        "{}",
        describe(&output)
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("hull-test-guest: boot pvh"), "{text}");
}

#[test]
fn json_config_file_boots_the_guest() {
    require_kvm();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vm.json");
    let json = serde_json::json!({
        "kernel": test_guest(),
        "cmdline": "action=exit:9 smp=1",
        "vcpus": 2,
        "mem_mib": 32,
        "boot_protocol": "linux",
    });
    std::fs::write(&config, json.to_string()).unwrap();
    let mut command = hull_vmm();
    command.arg("--config").arg(&config);
    let output = run_with_timeout(command, Duration::from_secs(60));
    assert_eq!(output.status.code(), Some(9), "{}", describe(&output));
    assert!(
        stdout(&output).contains("boot linux64"),
        "{}",
        describe(&output)
    );
    assert!(
        stdout(&output).contains("smp: cpus online 0x2"),
        "{}",
        describe(&output)
    );
}

/// Wraps the test guest as a bzImage: boot sector and 4 setup sectors
/// (zero but for the setup header at 0x1f1) followed by the guest's
/// loadable segment as the protected-mode kernel, whose offset 0x200 is the
/// guest's 64-bit entry (see test-guests/link.ld).
fn guest_as_bzimage() -> Vec<u8> {
    let elf = std::fs::read(test_guest()).unwrap();
    let u16_at = |o: usize| u16::from_le_bytes(elf[o..o + 2].try_into().unwrap());
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap());
    let (phoff, phentsize, phnum) = (u64_at(0x20) as usize, u16_at(0x36) as usize, u16_at(0x38));
    let load = (0..phnum as usize)
        .map(|i| phoff + i * phentsize)
        .find(|ph| u32_at(*ph) == 1)
        .expect("a PT_LOAD segment");
    let (offset, paddr, filesz) = (
        u64_at(load + 8) as usize,
        u64_at(load + 24),
        u64_at(load + 32) as usize,
    );
    assert_eq!(paddr, 0x10_0000);
    let mut image = vec![0u8; 5 * 512];
    image[0x1f1] = 4; // setup_sects
    image[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
    image[0x202..0x206].copy_from_slice(b"HdrS");
    image[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes()); // protocol 2.15
    image[0x211] = 1; // loadflags: LOADED_HIGH
    image[0x214..0x218].copy_from_slice(&0x10_0000u32.to_le_bytes()); // code32_start
    image[0x22c..0x230].copy_from_slice(&0x7fff_ffffu32.to_le_bytes()); // initrd_addr_max
    image[0x230..0x234].copy_from_slice(&0x20_0000u32.to_le_bytes()); // kernel_alignment
    image[0x236..0x238].copy_from_slice(&1u16.to_le_bytes()); // xloadflags: XLF_KERNEL_64
    image[0x238..0x23c].copy_from_slice(&2047u32.to_le_bytes()); // cmdline_size
    image.extend_from_slice(&elf[offset..offset + filesz]);
    image
}

#[test]
fn bzimage_boots_through_the_linux_64bit_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let bzimage = dir.path().join("bzImage");
    std::fs::write(&bzimage, guest_as_bzimage()).unwrap();
    require_kvm();
    let mut command = hull_vmm();
    command.arg("--kernel").arg(&bzimage).args([
        "--cmdline",
        "action=exit:6 via=bzimage smp=1",
        "--mem-mib",
        "64",
        "--vcpus",
        "2",
    ]);
    let output = run_with_timeout(command, Duration::from_secs(60));
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(6), "{}", describe(&output));
    assert!(
        out.contains("hull-test-guest: boot linux64"),
        "{}",
        describe(&output)
    );
    assert!(
        out.contains("cmdline: action=exit:6 via=bzimage smp=1\n"),
        "{}",
        describe(&output)
    );
    assert!(
        out.contains("e820: 0x100000 0x3f00000 0x1"),
        "{}",
        describe(&output)
    );
    assert!(
        out.contains("smp: cpus online 0x2"),
        "{}",
        describe(&output)
    );

    // A bzImage has no PVH entry.
    let mut command = hull_vmm();
    command
        .arg("--kernel")
        .arg(&bzimage)
        .args(["--boot-protocol", "pvh"]);
    let output = run_with_timeout(command, Duration::from_secs(20));
    check_one_line_error(&output, "has no PVH entry note");
}

/// A VM whose guest ticks on its serial port, with a control socket and
/// `extra` configuration (given the test's directory); the control socket's
/// test and the jail's share it.
/// Boots the ticking guest with `extra` in its configuration and calls
/// `check` with the VMM's pid once it ticks; then, unless `check` said the
/// VMM is gone (false), pauses and resumes it over its control socket.
fn ticking_vm(
    extra: impl FnOnce(&std::path::Path) -> serde_json::Value,
    check: impl FnOnce(u32) -> bool,
) {
    use std::io::{BufRead, BufReader, Write};
    require_kvm();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vm.json");
    let serial = dir.path().join("serial.log");
    let api = dir.path().join("api.sock");
    let mut json = serde_json::json!({
        "kernel": test_guest(),
        "cmdline": "action=tick",
        "mem_mib": 32,
        "serial": serial,
        "api_socket": api,
    });
    for (key, value) in extra(dir.path()).as_object().unwrap() {
        json[key] = value.clone();
    }
    if let Some(root) = json.pointer("/jail/root").and_then(|r| r.as_str()) {
        assert!(
            root.starts_with('/'),
            "the jail's root must be the test's: {root}"
        );
        std::fs::create_dir_all(root).unwrap();
    }
    std::fs::write(&config, json.to_string()).unwrap();
    let mut command = hull_vmm();
    command.arg("--config").arg(&config);
    // Killed however the test ends (the guest ticks for ever).
    struct Vmm(std::process::Child);
    impl Drop for Vmm {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let vmm = Vmm(command.spawn().unwrap());
    let size = || std::fs::metadata(&serial).map_or(0, |m| m.len());
    let wait_until = |what: &str, check: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !check() {
            assert!(std::time::Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_until("the guest did not tick", &|| {
        std::fs::read_to_string(&serial).is_ok_and(|t| t.contains("tick"))
    });
    if !check(vmm.0.id()) {
        return;
    }
    let stream = std::os::unix::net::UnixStream::connect(&api).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut ask = |command: &str| {
        (&stream)
            .write_all(format!("{command}\n").as_bytes())
            .unwrap();
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        line.trim().to_string()
    };
    assert_eq!(ask("pause"), "ok");
    let paused_at = size();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(size(), paused_at, "the guest ran on while paused");
    assert_eq!(ask("state"), "paused");
    assert_eq!(ask("resume"), "ok");
    wait_until("the guest did not go on", &|| size() > paused_at);
}

#[test]
fn the_control_socket_pauses_and_resumes_the_vcpus() {
    ticking_vm(|_| serde_json::json!({}), |_| true);
}

/// `Name:\tvalue` of a /proc status file.
fn status_field(path: &str, name: &str) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {path}"))
        .trim()
        .to_string()
}

/// The process that `pid`'s main thread forked (the jailed VMM's warden
/// has one child: the VMM).
fn only_child(pid: u32) -> u32 {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    let children: Vec<u32> = children
        .split_whitespace()
        .map(|c| c.parse().unwrap())
        .collect();
    assert_eq!(children.len(), 1, "{children:?}");
    children[0]
}

/// Checks that `pid` runs as `id` in an empty root of its own, every
/// thread filtered; returns its threads' names (KVM's workers left out).
fn assert_jailed(pid: u32, id: u32) -> Vec<String> {
    let status = format!("/proc/{pid}/status");
    assert_eq!(
        status_field(&status, "Uid"),
        format!("{id}\t{id}\t{id}\t{id}")
    );
    assert_eq!(
        status_field(&status, "Gid"),
        format!("{id}\t{id}\t{id}\t{id}")
    );
    assert_eq!(status_field(&status, "Groups"), "");
    assert_eq!(status_field(&status, "CapEff"), "0000000000000000");
    assert_eq!(status_field(&status, "CapPrm"), "0000000000000000");
    assert_eq!(status_field(&status, "NoNewPrivs"), "1");
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        let name = std::fs::read_to_string(task.join("comm")).unwrap();
        let status = task.join("status");
        assert_eq!(
            status_field(status.to_str().unwrap(), "Seccomp"),
            "2",
            "{name}"
        );
        // KVM's own workers (kvm-nx-lpage-recovery) are the kernel's.
        if !name.starts_with("kvm-") {
            threads.push(name.trim().to_string());
        }
    }
    threads.sort();
    // An empty root, the host's mounts gone, namespaces of its own.
    let root: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/root"))
        .unwrap()
        .collect();
    assert!(root.is_empty(), "{root:?}");
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    assert_eq!(mounts.lines().count(), 1, "{mounts}");
    assert!(
        mounts.contains(" ro,") && mounts.contains("tmpfs"),
        "{mounts}"
    );
    for ns in ["mnt", "ipc", "uts"] {
        let theirs = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
        let ours = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        assert_ne!(theirs, ours, "{ns}");
    }
    threads
}

#[test]
fn a_jailed_vmm_runs_as_its_user_in_an_empty_root_under_its_filters() {
    const ID: u32 = 0x7000_0042;
    let jail = |dir: &std::path::Path| {
        serde_json::json!({
            "jail": {"root": dir.join("root"), "uid": ID, "gid": ID},
        })
    };
    ticking_vm(jail, |warden| {
        // The process started is the warden, jailed alike, which only waits.
        assert_eq!(assert_jailed(warden, ID), ["hull-vmm"]);
        // Its child is the VMM: each thread under its own filter (vCPU,
        // API, event loop), pid 1 of a pid namespace of its own.
        let vmm = only_child(warden);
        assert_eq!(assert_jailed(vmm, ID), ["api", "hull-vmm", "vcpu0"]);
        let status = format!("/proc/{vmm}/status");
        assert_eq!(status_field(&status, "NSpid"), format!("{vmm}\t1"));
        let theirs = std::fs::read_link(format!("/proc/{vmm}/ns/pid")).unwrap();
        let ours = std::fs::read_link("/proc/self/ns/pid").unwrap();
        assert_ne!(theirs, ours);
        true
    });
}

#[test]
fn a_jailed_vmm_ends_with_its_warden() {
    const ID: u32 = 0x7000_0043;
    let jail = |dir: &std::path::Path| {
        serde_json::json!({
            "jail": {"root": dir.join("root"), "uid": ID, "gid": ID},
        })
    };
    ticking_vm(jail, |warden| {
        let vmm = only_child(warden);
        // SAFETY: signals the warden this test started.
        assert_eq!(unsafe { libc::kill(warden as i32, libc::SIGKILL) }, 0);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        // Dead: a zombie until the host's init reaps it, then gone.
        while std::fs::read_to_string(format!("/proc/{vmm}/status"))
            .is_ok_and(|s| !s.contains("State:\tZ"))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the VMM outlived its warden"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    });
}
