//! `exec`: another process in a running container, relayed as its init
//! is ([`crate::relay`]): the caller's stdio carried to and from it, the
//! signals the relay gets passed on, and its exit code the relay's. With
//! `--detach` the relay runs on its own and `--pid-file` names it, as the
//! shim (a subreaper) expects; without, `exec` is the relay.

use crate::console::{self, Console};
use crate::error::OciError;
use crate::state::{engine, write_atomically, StateDir};
use crate::{spawn, stdio};
use hull_runtime::monitor_link::client;
use hull_runtime::monitor_link::proto::{MonitorRequest, MonitorResponse, TerminalSize};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How often a refused terminal size is sent again.
const RESIZE_RETRY: Duration = Duration::from_millis(50);
/// How many times (10 s in all).
const MAX_RESIZE_RETRIES: u32 = 200;
/// How long a detached exec's relay may take to send its request.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// The variable the detached relay finds its process in (JSON).
const SPEC_ENV: &str = "HULL_OCI_EXEC";
/// The variable that tells it which descriptor to say "ready" on.
const READY_FD_ENV: &str = "HULL_OCI_EXEC_READY_FD";

/// `exec`'s options, as runc takes them.
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// The process (an OCI `process` object, JSON); else the arguments.
    #[arg(long, short)]
    process: Option<PathBuf>,
    /// Return once it runs; `--pid-file` names what mirrors it.
    #[arg(long, short)]
    detach: bool,
    /// Where to write that pid.
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// A unix socket to send the terminal's master to.
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Give it a terminal.
    #[arg(long, short)]
    tty: bool,
    /// Its working directory.
    #[arg(long)]
    cwd: Option<String>,
    /// More environment, `K=V`.
    #[arg(long, short)]
    env: Vec<String>,
    /// Its user, `UID[:GID]`.
    #[arg(long, short)]
    user: Option<String>,
    /// The container.
    id: String,
    /// The command and its arguments (without `--process`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// What to run: what the monitor's Exec takes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecSpec {
    args: Vec<String>,
    /// Whether it has a terminal.
    #[serde(default)]
    tty: bool,
    /// The terminal's size, if the spec gives one.
    #[serde(default)]
    size: Option<TerminalSize>,
    env: Vec<String>,
    cwd: Option<String>,
    user: Option<String>,
}

impl ExecArgs {
    fn spec(&self) -> Result<ExecSpec, OciError> {
        let mut spec = match &self.process {
            Some(path) => {
                let text = std::fs::read(path).map_err(OciError::io("reading", path))?;
                let process: oci_spec::runtime::Process = serde_json::from_slice(&text)
                    .map_err(|e| OciError::Invalid(format!("{}: {e}", path.display())))?;
                let user = process.user();
                let size = process.console_size().map(|size| TerminalSize {
                    rows: u16::try_from(size.height()).unwrap_or(u16::MAX),
                    cols: u16::try_from(size.width()).unwrap_or(u16::MAX),
                });
                ExecSpec {
                    tty: process.terminal().unwrap_or(false),
                    size,
                    args: process.args().clone().unwrap_or_default(),
                    env: process.env().clone().unwrap_or_default(),
                    cwd: Some(process.cwd().display().to_string()),
                    user: Some(format!("{}:{}", user.uid(), user.gid())),
                }
            }
            None => ExecSpec {
                tty: false,
                size: None,
                args: self.command.clone(),
                env: Vec::new(),
                cwd: None,
                user: None,
            },
        };
        spec.tty |= self.tty;
        if spec.tty && self.console_socket.is_none() {
            return Err(OciError::Invalid(
                "a terminal (exec -t) needs --console-socket".into(),
            ));
        }
        spec.env.extend(self.env.iter().cloned());
        if self.cwd.is_some() {
            spec.cwd.clone_from(&self.cwd);
        }
        if self.user.is_some() {
            spec.user.clone_from(&self.user);
        }
        if spec.args.is_empty() {
            return Err(OciError::Invalid("exec needs a command".into()));
        }
        Ok(spec)
    }
}

/// Runs `exec`; returns the exit code.
pub async fn exec(states: &StateDir, args: ExecArgs) -> Result<i32, OciError> {
    let spec = args.spec()?;
    states.load(&args.id)?;
    let console = match (spec.tty, &args.console_socket) {
        (true, Some(socket)) => Some(console::create(socket, spec.size)?),
        _ => None,
    };
    if !args.detach && console.is_none() {
        if let Some(pid_file) = &args.pid_file {
            write_atomically(pid_file, std::process::id().to_string().as_bytes())?;
        }
        return Ok(relay(states, &args.id, spec, None).await);
    }
    let pid = spawn_relay(states, &args.id, &spec, console.as_ref())?;
    if let Some(pid_file) = &args.pid_file {
        write_atomically(pid_file, pid.to_string().as_bytes())?;
    }
    if args.detach {
        return Ok(0);
    }
    // With a terminal and no --detach: its relay runs it, this waits.
    let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None)
        .map_err(|e| OciError::Setup(format!("waiting for the exec's relay: {e}")))?;
    Ok(match status {
        nix::sys::wait::WaitStatus::Exited(_, code) => code,
        nix::sys::wait::WaitStatus::Signaled(_, signal, _) => 128 + signal as i32,
        _ => 255,
    })
}

/// The detached relay (`__exec ID`): its process from the environment.
pub async fn detached_relay(states: &StateDir, id: &str) -> i32 {
    let ready = spawn::inherited_pipe(READY_FD_ENV);
    let spec = std::env::var(SPEC_ENV)
        .ok()
        .and_then(|text| serde_json::from_str::<ExecSpec>(&text).ok());
    match spec {
        Some(spec) => relay(states, id, spec, ready).await,
        None => 255,
    }
}

/// Relays `spec`'s process in container `id` until it ends; says "ready"
/// on `ready` (if any) once it asked for it. Returns its exit code.
async fn relay(
    states: &StateDir,
    id: &str,
    spec: ExecSpec,
    mut ready: Option<std::fs::File>,
) -> i32 {
    let mut say = |text: &str| {
        if let Some(mut pipe) = ready.take() {
            let _ = pipe.write_all(text.as_bytes());
        }
    };
    let started = async {
        let state = states.load(id)?;
        let engine = engine()?;
        let monitor = Arc::new(
            client::connect(engine.paths(), &state.hull_id)
                .await
                .map_err(|e| OciError::Engine(e.into()))?,
        );
        Ok::<_, OciError>(monitor)
    }
    .await;
    let monitor = match started {
        Ok(monitor) => monitor,
        Err(err) => {
            say(&err.to_string());
            eprintln!("hull-oci: {err}");
            return 255;
        }
    };
    let outputs = stdio::copy_output(&monitor);
    let stdin = stdio::stdin_is_open();
    let tty = spec.tty;
    let size = spec.size.or_else(console::size_of_stdin);
    let request = MonitorRequest::Exec {
        args: spec.args,
        env: spec.env,
        workdir: spec.cwd,
        user: spec.user,
        stdin,
        detach: false,
        tty,
        size,
    };
    // Written before anything else goes on this connection: a resize that
    // came first would find no exec to resize.
    let pending = match monitor.send(request).await {
        Ok(pending) => pending,
        Err(err) => {
            say(&err.to_string());
            eprintln!("hull-oci: exec failed: {err}");
            return 126;
        }
    };
    let mut answer = tokio::spawn(pending.response());
    if stdin {
        stdio::copy_stdin(monitor.clone(), || Some(true));
    }
    let mut signals = stdio::forwarded_signals();
    let mut resized = stdio::window_changes();
    say("ready");
    // A size set before the guest has the process (the caller resizes as
    // soon as `exec` returns) is refused: it is sent again until taken.
    let mut unsent: Option<TerminalSize> = None;
    let mut retry = tokio::time::interval(RESIZE_RETRY);
    let mut retries = 0;
    let answer = loop {
        tokio::select! {
            answer = &mut answer => break answer,
            Some(signal) = signals.recv() => {
                let _ = monitor.request(MonitorRequest::SignalExec { signal }).await;
            }
            Some(size) = resized.recv() => {
                let sent = monitor.request(MonitorRequest::ResizeTerminal { size }).await;
                unsent = sent.is_err().then_some(size);
            }
            _ = retry.tick(), if unsent.is_some() => {
                retries += 1;
                if let Some(size) = unsent.filter(|_| retries <= MAX_RESIZE_RETRIES) {
                    let sent = monitor.request(MonitorRequest::ResizeTerminal { size }).await;
                    unsent = sent.is_err().then_some(size);
                } else {
                    unsent = None;
                }
            }
        }
    };
    let code = match answer {
        Ok(Ok(MonitorResponse::Exited { exit_code, .. })) => exit_code,
        Ok(Ok(MonitorResponse::Error { message, exit_code })) => {
            eprintln!("hull-oci: exec failed: {message}");
            exit_code.unwrap_or(126)
        }
        Ok(Err(err)) => {
            eprintln!("hull-oci: exec failed: {err}");
            126
        }
        _ => 255,
    };
    stdio::drain(outputs).await;
    code
}

/// Starts the detached relay of `spec` in container `id`, with this
/// process's stdio, in a session of its own; returns its pid once it has
/// asked the monitor to run the process.
fn spawn_relay(
    states: &StateDir,
    id: &str,
    spec: &ExecSpec,
    console: Option<&Console>,
) -> Result<i32, OciError> {
    let (read, write) = spawn::pipe()?;
    let write_fd = write.as_raw_fd();
    let pid = spawn::spawn(
        states,
        spawn::RelaySpec {
            verb: "__exec",
            id,
            env: vec![
                (
                    SPEC_ENV,
                    serde_json::to_string(spec).map_err(|e| OciError::Setup(e.to_string()))?,
                ),
                (READY_FD_ENV, write_fd.to_string()),
            ],
            passed: vec![write_fd],
            console,
            new_netns: false,
            name: "exec's relay",
        },
    )?;
    drop(write);
    spawn::await_ready(
        std::fs::File::from(read),
        pid,
        READY_TIMEOUT,
        "the exec's relay exited before starting it",
        "the exec's relay did not start it".into(),
    )?;
    Ok(pid)
}
