//! virtio-blk end to end: the test guest drives the device with
//! virtio-drivers; the host checks the backing file. Also a hostile guest
//! poking bad values: the device must flag NEEDS_RESET and recover.

mod common;

use common::{boot_guest, stderr, stdout};

fn disk_image(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("disk.img");
    let mut image = b"hello from the host disk\n".to_vec();
    image.resize(64 * 512, 0);
    std::fs::write(&path, image).unwrap();
    path
}

fn expected_pattern() -> Vec<u8> {
    (0..512u32)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(3))
        .collect()
}

fn describe(output: &std::process::Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        stdout(output),
        stderr(output)
    )
}

#[test]
fn guest_writes_reads_and_flushes_a_rw_disk() {
    let dir = tempfile::tempdir().unwrap();
    let disk = disk_image(dir.path());
    let output = boot_guest("blk=1 action=exit:2", &["--blk", disk.to_str().unwrap()]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(
        out.contains("virtio_mmio.device=4K@0xd0000000:5"),
        "{}",
        describe(&output)
    );
    for line in [
        "blk: capacity 0x40 readonly 0x0",
        "blk: sector0 hello from the host disk",
        "blk: write readback ok",
        "blk: read past end refused",
        "blk: flush ok",
    ] {
        assert!(
            out.contains(line),
            "missing {line:?}\n{}",
            describe(&output)
        );
    }
    let content = std::fs::read(&disk).unwrap();
    assert_eq!(
        &content[512..1024],
        &expected_pattern()[..],
        "sector 1 on the host"
    );
    assert!(content.starts_with(b"hello from the host disk\n"));
}

#[test]
fn read_only_disk_refuses_guest_writes() {
    let dir = tempfile::tempdir().unwrap();
    let disk = disk_image(dir.path());
    let before = std::fs::read(&disk).unwrap();
    let arg = format!("{},ro", disk.display());
    let output = boot_guest("blk=1 action=exit:2", &["--blk", &arg]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(
        out.contains("blk: capacity 0x40 readonly 0x1"),
        "{}",
        describe(&output)
    );
    assert!(
        out.contains("blk: sector0 hello from the host disk"),
        "{}",
        describe(&output)
    );
    assert!(out.contains("blk: write refused"), "{}", describe(&output));
    assert_eq!(std::fs::read(&disk).unwrap(), before);
}

#[test]
fn hostile_guest_gets_needs_reset_and_the_vm_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    let disk = disk_image(dir.path());
    let output = boot_guest(
        "hostile=1 blk=1 action=exit:2",
        &["--blk", disk.to_str().unwrap()],
    );
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    for what in [
        "unknown register",
        "queue size 3",
        "notify of queue 7",
        "descriptor outside memory",
    ] {
        assert!(
            out.contains(&format!("hostile: {what} -> needs reset")),
            "{what}\n{}",
            describe(&output)
        );
    }
    assert!(
        !out.contains("reset did not clear"),
        "{}",
        describe(&output)
    );
    // After all that, a reset device works normally.
    assert!(
        out.contains("blk: write readback ok"),
        "{}",
        describe(&output)
    );
    assert!(
        stderr(&output).contains("device needs reset"),
        "{}",
        describe(&output)
    );
}

#[test]
fn missing_disk_file_is_a_one_line_error() {
    common::require_kvm();
    let mut command = common::hull_vmm();
    command
        .arg("--kernel")
        .arg(common::test_guest())
        .args(["--blk", "/nonexistent/disk.img"]);
    let output = common::run_with_timeout(command, std::time::Duration::from_secs(20));
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "{}", describe(&output));
    assert!(
        err.contains("cannot open block device file /nonexistent/disk.img"),
        "{err}"
    );
}
