//! The VMM's control socket (`api_socket` in the VM configuration): the
//! host side that started the VMM pauses and resumes the VM through it.
//! One command per line, one answer per line:
//!
//! | command  | answer                   |
//! |----------|--------------------------|
//! | `pause`  | `ok` once every vCPU parked |
//! | `resume` | `ok`                     |
//! | `state`  | `paused` or `running`    |
//!
//! Anything else is answered `error: …`. Lines are bounded; the socket is
//! the host's (mode 0600, in the sandbox's directory), never the guest's.

use crate::seccomp::ThreadKind;
use crate::vstate::pause::PauseGate;
use seccompiler::BpfProgram;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

/// Longest command line accepted.
const MAX_LINE: u64 = 64;

/// Binds the control socket at `path` (before the jail closes: the
/// socket is then whoever started the VMM's, root's).
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves `listener` (from [`bind`]) on a thread of its own, under
/// `seccomp` (the API thread's filter) if given.
pub fn serve(
    listener: UnixListener,
    gate: Arc<PauseGate>,
    vcpus: Vec<JoinHandle<()>>,
    seccomp: Option<Arc<BpfProgram>>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("api".into())
        .spawn(move || {
            if let Some(program) = seccomp {
                if let Err(err) = crate::seccomp::apply(ThreadKind::Api, &program) {
                    // Unfiltered, it would serve nothing: pause is then refused.
                    tracing::error!("{err}");
                    return;
                }
            }
            for stream in listener.incoming().flatten() {
                if let Err(err) = serve_connection(stream, &gate, &vcpus) {
                    tracing::debug!("control connection: {err}");
                }
            }
        })
}

fn serve_connection(
    stream: UnixStream,
    gate: &PauseGate,
    vcpus: &[JoinHandle<()>],
) -> std::io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        let read = (&mut reader).take(MAX_LINE).read_line(&mut line)?;
        if read == 0 {
            return Ok(());
        }
        if !line.ends_with('\n') {
            writer.write_all(b"error: line too long\n")?;
            return Ok(());
        }
        let answer = answer(line.trim(), gate, vcpus);
        writer.write_all(answer.as_bytes())?;
        writer.write_all(b"\n")?;
    }
}

/// The answer to one command.
fn answer(command: &str, gate: &PauseGate, vcpus: &[JoinHandle<()>]) -> String {
    match command {
        "pause" => {
            gate.pause(vcpus);
            tracing::debug!("VM paused");
            "ok".into()
        }
        "resume" => {
            gate.resume();
            tracing::debug!("VM resumed");
            "ok".into()
        }
        "state" => if gate.is_paused() {
            "paused"
        } else {
            "running"
        }
        .into(),
        other => format!("error: unknown command '{}'", other.escape_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_pause_resume_and_report() {
        crate::vstate::pause::install_kick_handler().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.sock");
        let gate = Arc::new(PauseGate::default());
        let worker = {
            let gate = gate.clone();
            std::thread::spawn(move || loop {
                gate.park_if_paused();
                std::thread::sleep(std::time::Duration::from_millis(1));
            })
        };
        serve(bind(&path).unwrap(), gate.clone(), vec![worker], None).unwrap();
        let stream = UnixStream::connect(&path).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut ask = |command: &str| {
            (&stream)
                .write_all(format!("{command}\n").as_bytes())
                .unwrap();
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            line.trim().to_string()
        };
        assert_eq!(ask("state"), "running");
        assert_eq!(ask("pause"), "ok");
        assert_eq!(ask("state"), "paused");
        assert_eq!(ask("resume"), "ok");
        assert_eq!(ask("state"), "running");
        assert!(ask("reboot").starts_with("error: unknown command"));
        assert_eq!(ask(&"x".repeat(100)), "error: line too long");
    }
}
