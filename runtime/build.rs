//! What `hull version` and `hull -v` say about the build itself, as Docker
//! says it: the commit (`HULL_GIT_COMMIT`), its time (`HULL_BUILT`, the
//! commit's, so that a build of one commit says the same everywhere) and
//! the compiler (`HULL_RUSTC_VERSION`). "unknown" outside a git checkout.

use std::path::Path;
use std::process::Command;

/// The first line `program args` prints, if it runs and succeeds.
fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let line = text.lines().next()?.trim().to_string();
    (!line.is_empty()).then_some(line)
}

fn main() {
    let git = |args: &[&str]| output("git", args).unwrap_or_else(|| "unknown".into());
    println!(
        "cargo:rustc-env=HULL_GIT_COMMIT={}",
        git(&["rev-parse", "--short=7", "HEAD"])
    );
    println!(
        "cargo:rustc-env=HULL_BUILT={}",
        git(&[
            "log",
            "-1",
            "--format=%cd",
            "--date=format-local:%a %b %e %H:%M:%S %Y"
        ])
    );
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = output(&rustc, &["--version"])
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=HULL_RUSTC_VERSION={rustc_version}");
    // Again when HEAD moves (a commit, a checkout): HEAD, the loose branch
    // refs (a directory, which cargo scans) and the packed ones. Only what
    // exists is named: cargo takes a missing path for a change, and would
    // run this (and rebuild the crate) on every build.
    let git_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.git");
    for path in ["HEAD", "refs/heads", "packed-refs"].map(|p| git_dir.join(p)) {
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}
