//! The spec's hooks, run on the host as runc runs them: each gets the
//! container's state on stdin. dockerd's `prestart` hook
//! (`libnetwork-setkey`) is how its network reaches the container: it
//! moves the container's interface into the network namespace of the
//! state's `pid`, the relay's here.

use crate::error::OciError;
use oci_spec::runtime::Hook;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a hook without a timeout of its own may take.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Most bytes of a failed hook's stderr repeated in the error.
const MAX_STDERR: usize = 4096;

/// Runs `hooks` (the spec's `kind` hooks) one after another with `state`
/// on stdin; the first that fails stops the rest.
pub fn run(kind: &str, hooks: &[Hook], state: &serde_json::Value) -> Result<(), OciError> {
    let input = state.to_string();
    for hook in hooks {
        let path = hook.path();
        let failed =
            |why: String| OciError::Invalid(format!("{kind} hook {}: {why}", path.display()));
        let mut command = Command::new(path);
        if let Some(args) = hook.args() {
            if let Some((first, rest)) = args.split_first() {
                command.arg0(first).args(rest);
            }
        }
        if let Some(env) = hook.env() {
            command.env_clear();
            for pair in env {
                if let Some((key, value)) = pair.split_once('=') {
                    command.env(key, value);
                }
            }
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| failed(e.to_string()))?;
        if let Some(mut stdin) = child.stdin.take() {
            // A hook that does not read its input is its own business.
            let _ = stdin.write_all(input.as_bytes());
        }
        let limit = hook
            .timeout()
            .and_then(|secs| u64::try_from(secs).ok())
            .filter(|&secs| secs > 0)
            .map_or(DEFAULT_TIMEOUT, Duration::from_secs);
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|e| failed(e.to_string()))? {
                break status;
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed(format!("timed out after {limit:?}")));
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        if !status.success() {
            let mut said = Vec::new();
            if let Some(mut stderr) = child.stderr.take() {
                let _ = (&mut stderr).take(MAX_STDERR as u64).read_to_end(&mut said);
            }
            return Err(failed(format!(
                "{status}: {}",
                String::from_utf8_lossy(&said).trim()
            )));
        }
    }
    Ok(())
}

/// Runs the `kind` hooks (`poststart`, `poststop`) of the spec in
/// `bundle`; they only warn when they fail, as the runtime spec says.
pub fn run_after(kind: &str, bundle: &std::path::Path, state: &serde_json::Value) {
    let Ok(spec) = oci_spec::runtime::Spec::load(bundle.join("config.json")) else {
        return;
    };
    let Some(hooks) = spec.hooks() else {
        return;
    };
    let list = match kind {
        "poststart" => hooks.poststart(),
        _ => hooks.poststop(),
    };
    if let Err(err) = run(kind, list.as_deref().unwrap_or_default(), state) {
        tracing::warn!("{err}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::HookBuilder;

    #[test]
    fn a_hook_reads_the_state_and_a_failing_one_stops_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("state");
        let write = HookBuilder::default()
            .path("/bin/sh")
            .args(vec![
                "sh".into(),
                "-c".into(),
                format!("cat > {}", out.display()),
            ])
            .build()
            .unwrap();
        let state = serde_json::json!({"id": "c1", "pid": 7});
        run("prestart", std::slice::from_ref(&write), &state).unwrap();
        let written: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        assert_eq!(written["pid"], 7);

        let fail = HookBuilder::default()
            .path("/bin/sh")
            .args(vec!["sh".into(), "-c".into(), "echo no >&2; exit 3".into()])
            .build()
            .unwrap();
        std::fs::remove_file(&out).unwrap();
        let err = run("prestart", &[fail, write], &state)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("exit status: 3") && err.contains("no"),
            "{err}"
        );
        assert!(!out.exists(), "a hook ran after a failed one");

        let slow = HookBuilder::default()
            .path("/bin/sleep")
            .args(vec!["sleep".into(), "5".into()])
            .timeout(1)
            .build()
            .unwrap();
        let err = run("prestart", &[slow], &state).unwrap_err().to_string();
        assert!(err.contains("timed out"), "{err}");
    }
}
