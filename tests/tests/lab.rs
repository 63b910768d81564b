//! Hull on a hardware-virtualization KVM: the KVM lab (`scripts/kvm-lab`,
//! Debian's kernel under QEMU's emulator with nested SVM) runs
//! `tests/lab/suite.sh` with Hull's own VMM, and hull-vmm's device tests
//! with its freestanding test guests on the lab's kvm_amd. A lab that
//! cannot start fails these tests, loudly: they never pass unrun.
//!
//! They take minutes (the lab is an emulated machine), so `scripts/test.sh`
//! runs them on their own, after the rest and one at a time:
//! `cargo test -p hull-tests --test lab` (after `cargo test --workspace
//! --no-run`, which builds the hull-vmm test binaries the second one runs).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The repository's root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `scripts/kvm-lab ARGS` from the repository's root; its output (as
/// it goes) and its exit code.
fn lab(args: &[&str], limit: Duration) -> (String, Option<i32>) {
    lab_with(args, limit, 1)
}

/// As [`lab`], with `vcpus` in the lab.
fn lab_with(args: &[&str], limit: Duration, vcpus: u32) -> (String, Option<i32>) {
    let repo = repo();
    let script = repo.join("scripts/kvm-lab");
    assert!(script.exists(), "{} is missing", script.display());
    let started = Instant::now();
    let output = Command::new(&script)
        .args(args)
        .current_dir(&repo)
        .env("HULL_LAB_TIMEOUT", limit.as_secs().to_string())
        .env("HULL_LAB_SMP", vcpus.to_string())
        .env_remove("HULL_ROOT")
        .env_remove("HULL_RUN_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("running scripts/kvm-lab");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!(
        "scripts/kvm-lab {args:?} took {:?}:\n{text}",
        started.elapsed()
    );
    (text, output.status.code())
}

/// Asserts that a run of the lab suite passed every check it ran.
fn assert_suite_passed(text: &str, code: Option<i32>) {
    assert_eq!(code, Some(0), "the lab suite failed:\n{text}");
    let summary = text
        .lines()
        .rev()
        .find(|l| l.ends_with(" failed"))
        .unwrap_or_default();
    assert!(
        summary.ends_with(" 0 failed") && !summary.starts_with("0 passed"),
        "{summary}"
    );
}

#[test]
fn kvm_lab_hull_vmm_runs_every_capability_on_a_hardware_kvm() {
    let (text, code) = lab(&["tests/lab/suite.sh", "hull"], Duration::from_secs(1800));
    assert_suite_passed(&text, code);
}

/// Several vCPUs need a lab with several: one of its own for this check
/// (the whole suite runs on one, which the emulator runs faster and steadier).
///
/// A lab of two vCPUs is the one the emulator does not run steadily (issue
/// 9): in about one boot in six, early in its life, the lab's own kernel
/// soft-locks, or the nested guest gets no CPU time, whatever Hull does
/// (`scripts/kvm-lab` says what it does against each cause it found). So a
/// failed check runs once more, in a fresh lab, and fails only if that one
/// fails too, with both outputs: a fault of Hull's with two vCPUs fails both.
#[test]
fn kvm_lab_hull_vmm_gives_a_container_two_vcpus() {
    let run = || {
        lab_with(
            &["tests/lab/suite.sh", "hull", "cpus"],
            Duration::from_secs(600),
            2,
        )
    };
    let (mut text, mut code) = run();
    if code != Some(0) {
        eprintln!("the lab of two vCPUs failed; once more, in a fresh lab (issue 9)");
        let first = text;
        (text, code) = run();
        if code != Some(0) {
            text = format!("the first lab:\n{first}\nthe second lab:\n{text}");
        }
    }
    assert_suite_passed(&text, code);
    assert!(text.contains("ok 2 - --cpus 2"), "{text}");
}

#[test]
fn kvm_lab_hull_vmm_device_tests_pass_on_the_labs_kvm_amd() {
    // The test binaries cargo built for hull-vmm's integration tests (they
    // boot freestanding guests): the newest `<name>-<hash>` in deps/ for each
    // vmm/tests/<name>.rs. The lab runs them as they are, read-only.
    let deps = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .expect("the test's own directory");
    let mut binaries = Vec::new();
    for test in std::fs::read_dir(repo().join("vmm/tests"))
        .unwrap()
        .flatten()
    {
        let Some(name) = test
            .file_name()
            .to_str()
            .and_then(|n| n.strip_suffix(".rs"))
            .map(str::to_string)
        else {
            continue;
        };
        let newest = std::fs::read_dir(&deps)
            .unwrap()
            .flatten()
            .filter(|e| {
                let file = e.file_name().to_string_lossy().into_owned();
                file.strip_prefix(&format!("{name}-")).is_some_and(|hash| {
                    hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit())
                })
            })
            .filter(|e| {
                std::os::unix::fs::PermissionsExt::mode(&e.metadata().unwrap().permissions())
                    & 0o111
                    != 0
            })
            .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok());
        let newest = newest.unwrap_or_else(|| {
            panic!(
                "no test binary for vmm/tests/{name}.rs in {}: build the workspace's tests first",
                deps.display()
            )
        });
        binaries.push(newest.path().display().to_string());
    }
    // The test guests, built here: the lab sees the tree read-only.
    let guests = repo().join("vmm/test-guests");
    let target_dir = repo().join("target/test-guests");
    let rustflags = [
        "-C",
        "relocation-model=static",
        "-C",
        &format!("link-arg=-T{}", guests.join("link.ld").display()),
        "-C",
        "link-arg=-nostdlib",
    ]
    .join("\x1f");
    let built = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&guests)
        .args(["build", "--release", "--target", "x86_64-unknown-none"])
        .arg("--target-dir")
        .arg(&target_dir)
        .env_remove("RUSTFLAGS")
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags)
        .status()
        .expect("running cargo for vmm/test-guests");
    assert!(built.success(), "building vmm/test-guests failed");
    let guest = target_dir.join("x86_64-unknown-none/release/hull-test-guest");
    let script = binaries
        .iter()
        .map(|b| format!("{b} --test-threads=1 || exit 1"))
        .collect::<Vec<_>>()
        .join("; ");
    let script = format!("export HULL_TEST_GUEST={}; {script}", guest.display());
    let (text, code) = lab(&["sh", "-c", &script], Duration::from_secs(1200));
    assert_eq!(code, Some(0), "hull-vmm's tests failed in the lab:\n{text}");
    assert!(text.contains("test result: ok"), "{text}");
}
