//! Shared helpers of the integration tests: build the test guest once per
//! test process, and run the real `hull-vmm` binary on the real /dev/kvm.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The workspace root (parent of `vmm/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("vmm/ has a parent")
        .to_path_buf()
}

/// Fails the test (never skips it) when /dev/kvm is not usable.
pub fn require_kvm() {
    if let Err(e) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        panic!("these tests boot real VMs and need /dev/kvm (read-write): {e}");
    }
}

/// Installs the guests' target through rustup when it is missing (as
/// scripts/setup.sh does for musl), so a fresh machine can run the tests.
fn ensure_guest_target() {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l == "x86_64-unknown-none")
        })
        // No rustup: let the build say what is missing.
        .unwrap_or(true);
    if !installed {
        let status = Command::new("rustup")
            .args(["target", "add", "x86_64-unknown-none"])
            .status()
            .expect("run rustup");
        assert!(
            status.success(),
            "rustup target add x86_64-unknown-none failed"
        );
    }
}

/// Builds `vmm/test-guests` (release, x86_64-unknown-none) once per test
/// process and returns the path of the guest ELF; `HULL_TEST_GUEST` names
/// one built already (the KVM lab, whose view of the tree is read-only).
pub fn test_guest() -> &'static Path {
    static GUEST: OnceLock<PathBuf> = OnceLock::new();
    GUEST.get_or_init(|| {
        if let Some(prebuilt) = std::env::var_os("HULL_TEST_GUEST") {
            return PathBuf::from(prebuilt);
        }
        ensure_guest_target();
        let root = workspace_root();
        let guests = root.join("vmm/test-guests");
        let target_dir = root.join("target/test-guests");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        // Explicit flags, so the build does not depend on the directory the
        // tests run in nor on RUSTFLAGS meant for the host.
        let link_script = guests.join("link.ld");
        let rustflags = [
            "-C",
            "relocation-model=static",
            "-C",
            &format!("link-arg=-T{}", link_script.display()),
            "-C",
            "link-arg=-nostdlib",
        ]
        .join("\x1f");
        let output = Command::new(cargo)
            .current_dir(&guests)
            .args(["build", "--release", "--manifest-path"])
            .arg(guests.join("Cargo.toml"))
            .args(["--target", "x86_64-unknown-none", "--target-dir"])
            .arg(&target_dir)
            .env_remove("RUSTFLAGS")
            .env("CARGO_ENCODED_RUSTFLAGS", rustflags)
            .output()
            .expect("cannot run cargo to build the test guests");
        assert!(
            output.status.success(),
            "building vmm/test-guests failed (is the target installed? \
             `rustup target add x86_64-unknown-none`):\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        target_dir.join("x86_64-unknown-none/release/hull-test-guest")
    })
}

/// The hull-vmm binary under test.
pub fn hull_vmm() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hull-vmm"));
    command.env("HULL_VMM_LOG", "info").env("NO_COLOR", "1");
    command
}

/// Runs `command` to completion, killing it after `timeout`.
pub fn run_with_timeout(mut command: Command, timeout: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start hull-vmm");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for hull-vmm") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("hull-vmm did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

/// Boots the test guest with `cmdline` and extra hull-vmm arguments.
pub fn boot_guest(cmdline: &str, extra: &[&str]) -> Output {
    require_kvm();
    let mut command = hull_vmm();
    command
        .arg("--kernel")
        .arg(test_guest())
        .args(["--cmdline", cmdline, "--mem-mib", "64"])
        .args(extra);
    run_with_timeout(command, Duration::from_secs(60))
}

/// Standard output as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
