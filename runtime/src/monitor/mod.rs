//! The per-container monitor: a small daemon (as podman's conmon) that owns
//! the sandbox (VMM, virtiofsd, agent connection), writes the json-file log
//! and the container's state, applies the restart policy, and serves `hull`
//! commands on a unix socket. `hull` itself stays daemonless: each container
//! has its own monitor, started by `hull run`/`start`, which outlives them.
//!
//! A monitor serves one sandbox: the container that boots it, and the
//! containers that join it later (a pod's, see [`member`]). Each has a
//! socket of its own, so a client talks to any of them the same way.

mod dns;
mod exec;
mod health;
mod member;
mod restart;
mod run;
mod server;
mod shares;

use crate::agent_client::AgentClient;
use crate::config::Paths;
use crate::container::{ContainerStore, Status};
use crate::engine::network::{attach_network, release_network};
use crate::logs::JsonLogWriter;
use crate::monitor_link::proto::{MonitorResponse, STDERR, STDIN, STDOUT};
use crate::monitor_link::socket_path;
use crate::network::NetworkManager;
use crate::sandbox::{load_spec, SandboxPlan};
use anyhow::{Context, Result};
use hull_protocol::Frame;
use restart::should_restart;
use run::{run_once, RunContext, RunState, StartFailure};
use server::serve_client;
use std::path::PathBuf;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot, watch};

/// How a run of the container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ExitInfo {
    exit_code: i32,
    oom_killed: bool,
}

/// A command from a client connection to the monitor's main loop.
enum Control {
    Start(oneshot::Sender<MonitorResponse>),
    Signal(i32, oneshot::Sender<MonitorResponse>),
    Stop(u64, oneshot::Sender<MonitorResponse>),
    Stdin(Vec<u8>),
    /// Another container joins this container's sandbox.
    Join(String, oneshot::Sender<MonitorResponse>),
}

/// The agent streams of a container's first process.
#[derive(Debug, Clone, Copy)]
struct AgentStreams {
    stdin: u32,
    stdout: u32,
    stderr: u32,
}

impl AgentStreams {
    /// The streams of the container that boots the sandbox.
    const OWN: AgentStreams = AgentStreams {
        stdin: STDIN,
        stdout: STDOUT,
        stderr: STDERR,
    };

    /// A block of four from the sandbox's counter.
    fn next(counter: &AtomicU32) -> AgentStreams {
        let base = counter.fetch_add(4, std::sync::atomic::Ordering::Relaxed);
        AgentStreams {
            stdin: base,
            stdout: base + 1,
            stderr: base + 2,
        }
    }
}

/// An attached client's output queue.
#[derive(Clone)]
struct Attached {
    stdout: bool,
    stderr: bool,
    frames: mpsc::Sender<Frame>,
}

struct Shared {
    attached: Mutex<Vec<Attached>>,
    /// How many clients are connected.
    clients: watch::Sender<usize>,
    exit: watch::Sender<Option<ExitInfo>>,
    control: mpsc::Sender<Control>,
    /// The agent while the container runs, for execs.
    agent: Mutex<Option<Arc<AgentClient>>>,
    /// How to pause its VM, while it runs.
    vm_control: Mutex<Option<crate::hypervisor::VmControl>>,
    /// The container's id.
    id: String,
    /// The container's process settings, the base of every exec.
    base_process: oci_spec::runtime::Process,
    /// The image's layers on the host, for resolving exec users.
    layer_dirs: Vec<PathBuf>,
    /// The agent streams of its first process.
    streams: AgentStreams,
    /// The next free block of four agent stream ids in the sandbox (for
    /// execs, and for containers that join it), shared by its containers.
    next_exec_stream: Arc<AtomicU32>,
}

impl Shared {
    /// The state of container `id` that its clients and its runs share.
    fn new(
        id: String,
        spec: &oci_spec::runtime::Spec,
        plan: &SandboxPlan,
        streams: AgentStreams,
        next_exec_stream: Arc<AtomicU32>,
    ) -> (Arc<Shared>, mpsc::Receiver<Control>) {
        let (control_tx, control_rx) = mpsc::channel(16);
        let (exit_tx, _) = watch::channel(None);
        let shared = Arc::new(Shared {
            attached: Mutex::new(Vec::new()),
            clients: watch::channel(0).0,
            exit: exit_tx,
            control: control_tx,
            agent: Mutex::new(None),
            vm_control: Mutex::new(None),
            id,
            base_process: spec.process().clone().unwrap_or_default(),
            layer_dirs: plan.layer_dirs.clone(),
            streams,
            next_exec_stream,
        });
        (shared, control_rx)
    }

    /// Returns once every client has gone (each has read the exit it
    /// waited for, and closed), or after [`CLIENTS_GRACE`]: a client still
    /// attached then loses its connection when the socket goes.
    async fn clients_gone(&self) {
        let mut clients = self.clients.subscribe();
        let _ = tokio::time::timeout(CLIENTS_GRACE, clients.wait_for(|n| *n == 0)).await;
    }

    /// Binds the container's socket and serves its clients until `listen`'s
    /// task is aborted or the monitor ends.
    fn listen(
        self: &Arc<Self>,
        paths: &Paths,
        open_stdin: bool,
    ) -> Result<tokio::task::JoinHandle<()>> {
        let run_dir = paths.sandbox_dir(&self.id);
        std::fs::create_dir_all(&run_dir)
            .with_context(|| format!("creating {}", run_dir.display()))?;
        let socket = socket_path(paths, &self.id);
        let _ = std::fs::remove_file(&socket);
        let listener =
            UnixListener::bind(&socket).with_context(|| format!("binding {}", socket.display()))?;
        // Root's alone: the sandbox directory lets its VMM's user through.
        std::fs::set_permissions(&socket, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .with_context(|| format!("restricting {}", socket.display()))?;
        let shared = self.clone();
        Ok(tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_client(stream, shared.clone(), open_stdin));
            }
        }))
    }
}

/// How long a container's ending waits for its clients to go.
const CLIENTS_GRACE: Duration = Duration::from_millis(50);

/// Agent stream ids below this are the container's own; execs get blocks of four above.
const FIRST_EXEC_STREAM: u32 = 16;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub use crate::process::{process_alive, process_state};

/// Runs the monitor of container `id` until the container is done for good.
/// With `start`, starts it as soon as the sandbox is up (`run -d`, `start`);
/// otherwise waits for a client's `Start` (after it attached).
pub async fn run(paths: Paths, id: String, start: bool) -> Result<()> {
    // Measured once per boot of the host, not once per monitor.
    crate::hypervisor::tsc::remember_in(&paths.root);
    let store = ContainerStore::open(&paths.root)?;
    let mut record = store.load(&id)?;
    let container_dir = store.dir_of(&id);
    let plan = SandboxPlan::load(&container_dir)?;
    let spec = load_spec(&container_dir)?;

    if let Some(joins) = &plan.joins {
        anyhow::bail!(
            "container {} joins the sandbox of {}: that container's monitor runs it",
            &id[..12],
            joins.container_id
        );
    }
    let run_dir = paths.sandbox_dir(&id);
    let (shared, mut control_rx) = Shared::new(
        id.clone(),
        &spec,
        &plan,
        AgentStreams::OWN,
        Arc::new(AtomicU32::new(FIRST_EXEC_STREAM)),
    );
    shared.listen(&paths, record.config.open_stdin)?;

    record.hull_sandbox.monitor_pid = i64::from(std::process::id());
    store.save(&record)?;

    let network = NetworkManager::new(paths.root.join("network"));
    let attachment = match attach_network(&store, &network, &mut record, &plan).await {
        Ok(attachment) => attachment,
        Err(err) => {
            let message = format!("{err:#}");
            tracing::error!("container {}: {message}", &id[..12]);
            record.set_exited(125, false, Some(message.clone()));
            store.save(&record)?;
            answer_pending(&mut control_rx, MonitorResponse::error(message)).await;
            shared.exit.send_replace(Some(ExitInfo {
                exit_code: 125,
                oom_killed: false,
            }));
            if record.host_config.auto_remove {
                store.remove(&record)?;
                crate::engine::Engine::new(paths.clone()).release_anonymous_volumes(&record);
            }
            crate::sandbox::remove_dir(&run_dir);
            return Ok(());
        }
    };

    tracing::debug!(
        "container {}: network {}",
        &id[..12],
        attachment.as_ref().map_or_else(
            || "none".to_string(),
            |a| format!("{} ({})", a.ip(), a.nic().tap)
        )
    );
    crate::fault::point("monitor.after-network");
    let log_path = PathBuf::from(&record.log_path);
    let log = Arc::new(Mutex::new(
        JsonLogWriter::open(&log_path, &record.host_config.log_config)
            .with_context(|| format!("opening {}", log_path.display()))?,
    ));
    let ctx = RunContext {
        paths: &paths,
        store: &store,
        plan: &plan,
        spec: &spec,
        shared: &shared,
        log: &log,
        attachment: attachment.as_ref(),
    };
    let mut state = RunState {
        start_waiter: None,
        auto_start: start,
        stopped_by_user: false,
    };
    let mut backoff = Duration::from_millis(100);

    let final_exit = loop {
        let outcome = run_once(&ctx, &mut record, &mut control_rx, &mut state).await;
        let exit = match outcome {
            Ok(exit) => exit,
            Err(err) => {
                let message = format!("{err:#}");
                tracing::error!("container {}: {message}", &id[..12]);
                record.set_exited(exit_code_of(&err), false, Some(message.clone()));
                store.save(&record)?;
                let failure = MonitorResponse::Error {
                    message,
                    exit_code: Some(exit_code_of(&err)),
                };
                if let Some(waiter) = state.start_waiter.take() {
                    let _ = waiter.send(failure.clone());
                }
                answer_pending(&mut control_rx, failure).await;
                break ExitInfo {
                    exit_code: exit_code_of(&err),
                    oom_killed: false,
                };
            }
        };
        if !should_restart(&record, exit.exit_code, state.stopped_by_user) {
            break exit;
        }
        record.restart_count += 1;
        record.state.status = Status::Restarting;
        record.state.restarting = true;
        store.save(&record)?;
        tracing::info!(
            "restarting container {} (restart {})",
            &id[..12],
            record.restart_count
        );
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
        state.auto_start = true;
    };

    crate::fault::point("monitor.after-exit");
    release_network(&store, &network, &record, &plan, attachment.as_ref()).await;
    shared.exit.send_replace(Some(final_exit));
    if record.host_config.auto_remove {
        store.remove(&record)?;
        // As `docker run --rm`: its anonymous volumes go with it.
        crate::engine::Engine::new(paths.clone()).release_anonymous_volumes(&record);
    }
    shared.clients_gone().await;
    crate::sandbox::remove_dir(&run_dir);
    Ok(())
}

/// Answers every queued request with `failure`: the monitor is going away.
async fn answer_pending(control: &mut mpsc::Receiver<Control>, failure: MonitorResponse) {
    control.close();
    while let Some(command) = control.recv().await {
        if let Control::Start(reply)
        | Control::Signal(_, reply)
        | Control::Stop(_, reply)
        | Control::Join(_, reply) = command
        {
            let _ = reply.send(failure.clone());
        }
    }
}

/// An error's exit code: what the agent suggested, else 125.
fn exit_code_of(err: &anyhow::Error) -> i32 {
    err.downcast_ref::<StartFailure>()
        .map_or(125, |f| f.exit_code)
}
