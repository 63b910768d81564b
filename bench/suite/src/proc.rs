//! Running the programs the suite measures: checked, timed, and with each
//! output line stamped by the host's clock as it arrives.

use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A command as a readable string, for errors.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Fails unless `output` is a success; the error has its stderr.
fn check(cmd: &Command, output: &Output) -> Result<()> {
    if !output.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            describe(cmd),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Fails once the suite is being stopped: nothing new starts then.
fn not_stopping() -> Result<()> {
    if crate::cleanup::stopping() {
        bail!("interrupted");
    }
    Ok(())
}

/// Runs `cmd` (no input), which must succeed; returns its stdout.
pub fn output(cmd: &mut Command) -> Result<String> {
    not_stopping()?;
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting `{}`", describe(cmd)))?;
    check(cmd, &out)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `cmd`, which must succeed, and returns its wall time and stdout.
pub fn timed(cmd: &mut Command) -> Result<(Duration, String)> {
    not_stopping()?;
    cmd.stdin(Stdio::null());
    let start = Instant::now();
    let out = cmd
        .output()
        .with_context(|| format!("starting `{}`", describe(cmd)))?;
    let elapsed = start.elapsed();
    check(cmd, &out)?;
    Ok((elapsed, String::from_utf8_lossy(&out.stdout).into_owned()))
}

/// One line of output and when the host saw it.
#[derive(Debug, Clone)]
pub struct Line {
    /// Its arrival.
    pub at: Instant,
    /// Its text, without the newline.
    pub text: String,
}

/// Runs `cmd`, which must succeed, stamping each stdout line on arrival.
pub fn lines(cmd: &mut Command) -> Result<Vec<Line>> {
    not_stopping()?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting `{}`", describe(cmd)))?;
    let stderr = child.stderr.take();
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut e) = stderr {
            let _ = e.read_to_string(&mut text);
        }
        text
    });
    let mut out = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let text = line.context("reading a workload's output")?;
            out.push(Line {
                at: Instant::now(),
                text,
            });
        }
    }
    let status = child.wait().context("waiting for a workload")?;
    let errors = errors.join().unwrap_or_default();
    if !status.success() {
        bail!("`{}` failed ({status}): {}", describe(cmd), errors.trim());
    }
    Ok(out)
}

/// Runs every command at once and returns the wall time until the last
/// has ended; each must succeed.
pub fn all_at_once(cmds: Vec<Command>) -> Result<Duration> {
    not_stopping()?;
    let start = Instant::now();
    let mut children = Vec::new();
    for mut cmd in cmds {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting `{}`", describe(&cmd)))?;
        children.push((cmd, child));
    }
    let mut failures = Vec::new();
    for (cmd, child) in children {
        let out = child.wait_with_output().context("waiting")?;
        if let Err(e) = check(&cmd, &out) {
            failures.push(e.to_string());
        }
    }
    let elapsed = start.elapsed();
    if !failures.is_empty() {
        bail!(
            "{} of the runs failed: {}",
            failures.len(),
            failures.join("; ")
        );
    }
    Ok(elapsed)
}

/// Milliseconds of a duration.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
