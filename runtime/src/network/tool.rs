//! Running the two external tools Hull uses, `nft` and `tc`.
//!
//! They run synchronously (a few milliseconds each) from the calling thread,
//! so they act on that thread's network namespace.

use super::error::{NetworkError, Result};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Where an admin tool lives: `PATH` first, then the sbin directories that a
/// non-login root shell may lack in its `PATH`.
fn find(program: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| PathBuf::from(program))
}

/// Runs `program args…` with `stdin` fed in; returns its standard output.
/// `package` is the Debian package to name if the program is missing.
pub fn run(program: &str, package: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let mut child = Command::new(find(program))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| NetworkError::ToolMissing {
            program: program.to_string(),
            package: package.to_string(),
            source,
        })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A write error shows up as the tool's failure below.
        let _ = pipe.write_all(text.as_bytes());
    }
    let output = child
        .wait_with_output()
        .map_err(|e| NetworkError::io(format!("waiting for {program}"), e))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stderr = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" | ");
        return Err(NetworkError::ToolFailed {
            program: format!("{program} {}", args.join(" ")),
            stderr,
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
