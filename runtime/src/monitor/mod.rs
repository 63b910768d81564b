//! The per-container monitor: a small daemon (as podman's conmon) that owns
//! the sandbox (VMM, virtiofsd, agent connection), writes the json-file log
//! and the container's state, applies the restart policy, and serves `hull`
//! commands on a unix socket. `hull` itself stays daemonless: each container
//! has its own monitor, started by `hull run`/`start`, which outlives them.

pub mod client;
mod network;
pub mod proto;
mod restart;

use crate::agent_client::AgentClient;
use crate::config::{GuestArtifacts, Paths};
use crate::container::{ContainerRecord, ContainerStore, Status};
use crate::logs::{JsonLogWriter, OutputStream};
use crate::network::NetworkManager;
use crate::platform::Platform;
use crate::sandbox::{Sandbox, SandboxConfig, LAYERS_SHARE_TAG};
use crate::virtiofsd::{ShareEntry, ShareSource};
use anyhow::{anyhow, Context, Result};
use hull_protocol::{
    decode_json, encode_json, Frame, FrameKind, FrameReader, FrameWriter, Request, RequestEnvelope,
    Response, ResponseEnvelope, Rootfs, StdioStreams,
};
pub use network::remove_leftovers;
use network::{attach_network, release_network, SandboxNetwork};
use proto::{MonitorRequest, MonitorResponse, STDERR, STDIN, STDOUT};
use restart::should_restart;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch};

/// What the monitor needs to build the sandbox, written by `hull create`
/// beside the container's record (`sandbox.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxPlan {
    /// `--vmm`, if given.
    pub vmm: Option<String>,
    /// `--kernel`, if given.
    pub kernel: Option<PathBuf>,
    /// `--initrd`, if given.
    pub initrd: Option<PathBuf>,
    /// vCPUs.
    pub vcpus: u32,
    /// Guest memory.
    pub memory_mib: u32,
    /// The image's layer directories on the host, bottom first.
    pub layer_dirs: Vec<PathBuf>,
    /// Seconds the guest may take to boot.
    pub boot_timeout_secs: u64,
    /// `--network`: `bridge`, `none` or a network's name.
    #[serde(default = "default_network")]
    pub network: String,
    /// `-p` as given.
    #[serde(default)]
    pub publish: Vec<String>,
    /// `--ip`, if given.
    #[serde(default)]
    pub ip: Option<std::net::Ipv4Addr>,
    /// `--network-alias`: more names other containers know it by.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `-v`: host paths shared into the container.
    #[serde(default)]
    pub volumes: Vec<crate::volume::BindVolume>,
}

/// The file beside a container's record that holds its [`SandboxPlan`].
const PLAN_FILE: &str = "sandbox.json";

/// The OCI spec `hull create` wrote beside the container's record.
pub fn load_spec(container_dir: &std::path::Path) -> Result<oci_spec::runtime::Spec> {
    let path = container_dir.join("spec.json");
    let data = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&data).with_context(|| format!("parsing {}", path.display()))
}

/// What the agent makes in a container's root file system for its mounts
/// (mount points, /dev's device files), relative to the root: Docker keeps
/// these in an init layer, so `diff` and `commit` leave them out.
pub fn mount_points(container_dir: &std::path::Path) -> Result<std::collections::HashSet<PathBuf>> {
    let spec = load_spec(container_dir)?;
    let mut points: std::collections::HashSet<PathBuf> = spec
        .mounts()
        .iter()
        .flatten()
        .filter_map(|m| {
            m.destination()
                .strip_prefix("/")
                .ok()
                .map(std::path::Path::to_path_buf)
        })
        .collect();
    points.extend(
        hull_protocol::DEFAULT_DEVICES
            .iter()
            .map(|d| PathBuf::from("dev").join(d)),
    );
    Ok(points)
}

impl SandboxPlan {
    /// Reads the plan of the container whose directory is `container_dir`.
    pub fn load(container_dir: &std::path::Path) -> Result<SandboxPlan> {
        let path = container_dir.join(PLAN_FILE);
        let data = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&data).with_context(|| format!("parsing {}", path.display()))
    }

    /// The container's root file system: its image's layers and its own
    /// writable layer in `container_dir`.
    pub fn rootfs(&self, container_dir: &std::path::Path) -> crate::rootfs::RootfsLayers {
        crate::rootfs::RootfsLayers::new(container_dir, self.layer_dirs.clone())
    }

    /// Writes it atomically into `container_dir`.
    pub fn save(&self, container_dir: &std::path::Path) -> Result<()> {
        let (name, data) = self.file()?;
        crate::container::write_atomic(&container_dir.join(name), &data)?;
        Ok(())
    }

    /// Its file's name and contents, for a container being created.
    pub fn file(&self) -> Result<(&'static str, Vec<u8>)> {
        Ok((PLAN_FILE, serde_json::to_vec_pretty(self)?))
    }
}

fn default_network() -> String {
    crate::network::DEFAULT_NETWORK.to_string()
}

/// The files the container sees in its /etc, kept beside its record as
/// Docker keeps them (`containers/<id>/hosts`, …) and shared read-only with
/// the guest, one bind mount each, under `etc/` in the sandbox's share.
pub const ETC_FILES: [&str; 3] = ["hosts", "hostname", "resolv.conf"];

/// Where [`ETC_FILES`] are in the share.
const SHARE_ETC_DIR: &str = "etc";

/// Where the container's root file system is in the share.
const ROOTFS_DIR: &str = "rootfs";

/// Where the guest finds `relative` of the share (the agent mounts shares
/// under /run/hull/shares).
pub fn guest_share_path(relative: &std::path::Path) -> String {
    format!("/run/hull/shares/{LAYERS_SHARE_TAG}/{}", relative.display())
}

/// Where the guest finds the container's /etc file `name`.
pub fn guest_etc_file(name: &str) -> String {
    guest_share_path(&std::path::Path::new(SHARE_ETC_DIR).join(name))
}

/// The monitor's socket for a container.
pub fn socket_path(paths: &Paths, id: &str) -> PathBuf {
    paths.sandbox_dir(id).join("monitor.sock")
}

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
    exit: watch::Sender<Option<ExitInfo>>,
    control: mpsc::Sender<Control>,
    /// The agent while the container runs, for execs.
    agent: Mutex<Option<Arc<AgentClient>>>,
    /// The container's id.
    id: String,
    /// The container's process settings, the base of every exec.
    base_process: oci_spec::runtime::Process,
    /// The image's layers on the host, for resolving exec users.
    layer_dirs: Vec<PathBuf>,
    /// The next free block of four agent stream ids for an exec.
    next_exec_stream: AtomicU32,
}

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
    let store = ContainerStore::open(&paths.root)?;
    let mut record = store.load(&id)?;
    let container_dir = store.dir_of(&id);
    let plan = SandboxPlan::load(&container_dir)?;
    let spec = load_spec(&container_dir)?;

    let run_dir = paths.sandbox_dir(&id);
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let socket = socket_path(&paths, &id);
    let _ = std::fs::remove_file(&socket);
    let listener =
        UnixListener::bind(&socket).with_context(|| format!("binding {}", socket.display()))?;

    let (control_tx, mut control_rx) = mpsc::channel(16);
    let (exit_tx, _) = watch::channel(None);
    let shared = Arc::new(Shared {
        attached: Mutex::new(Vec::new()),
        exit: exit_tx,
        control: control_tx,
        agent: Mutex::new(None),
        id: id.clone(),
        base_process: spec.process().clone().unwrap_or_default(),
        layer_dirs: plan.layer_dirs.clone(),
        next_exec_stream: AtomicU32::new(FIRST_EXEC_STREAM),
    });
    let accept_shared = shared.clone();
    let open_stdin = record.config.open_stdin;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_client(stream, accept_shared.clone(), open_stdin));
        }
    });

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
        JsonLogWriter::open(&log_path)
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
    }
    // Give attached clients a moment to read their answers before the socket goes.
    tokio::time::sleep(Duration::from_millis(50)).await;
    crate::sandbox::remove_dir(&run_dir);
    Ok(())
}

/// Answers every queued request with `failure`: the monitor is going away.
async fn answer_pending(control: &mut mpsc::Receiver<Control>, failure: MonitorResponse) {
    control.close();
    while let Some(command) = control.recv().await {
        if let Control::Start(reply) | Control::Signal(_, reply) | Control::Stop(_, reply) = command
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

/// A container process that could not be started (Docker's 126/127).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct StartFailure {
    message: String,
    exit_code: i32,
}

/// What every run of the container uses, borrowed from the monitor.
struct RunContext<'a> {
    paths: &'a Paths,
    store: &'a ContainerStore,
    plan: &'a SandboxPlan,
    spec: &'a oci_spec::runtime::Spec,
    shared: &'a Arc<Shared>,
    log: &'a Arc<Mutex<JsonLogWriter>>,
    attachment: Option<&'a SandboxNetwork>,
}

/// What runs of the container hand on to each other.
struct RunState {
    /// A client's `Start`, answered once the process runs (or fails to).
    start_waiter: Option<oneshot::Sender<MonitorResponse>>,
    /// Start without waiting for a client's word (restarts).
    auto_start: bool,
    /// `stop` or `rm -f` ended it: no restart policy brings it back.
    stopped_by_user: bool,
}

/// Boots a sandbox, runs the container once in it, tears it down.
async fn run_once(
    ctx: &RunContext<'_>,
    record: &mut ContainerRecord,
    control: &mut mpsc::Receiver<Control>,
    state: &mut RunState,
) -> Result<ExitInfo> {
    let id = record.id.clone();
    let platform = Platform::detect();
    let hypervisor = match &ctx.plan.vmm {
        Some(name) => platform
            .hypervisor(name)
            .ok_or_else(|| anyhow!("unknown VMM backend '{name}'"))?,
        None => platform.default_hypervisor(),
    };
    let artifacts = GuestArtifacts::resolve(ctx.plan.kernel.clone(), ctx.plan.initrd.clone());
    let rootfs = ctx.plan.rootfs(&ctx.store.dir_of(&id));
    // Held until the sandbox is gone: nothing else mounts the layer meanwhile.
    let _writable_layer = {
        let rootfs = rootfs.clone();
        // (flock blocks: while a `cp` into the stopped container finishes.)
        tokio::task::spawn_blocking(move || rootfs.lock_writable())
            .await
            .context("locking the writable layer")??
    };
    let mut shares = vec![ShareEntry {
        target: PathBuf::from(ROOTFS_DIR),
        source: ShareSource::Overlay(rootfs.writable_mount()?),
    }];
    for name in ETC_FILES {
        shares.push(ShareEntry {
            target: PathBuf::from(SHARE_ETC_DIR).join(name),
            source: ShareSource::Bind {
                path: ctx.store.dir_of(&id).join(name),
                readonly: true,
            },
        });
    }
    for (index, volume) in ctx.plan.volumes.iter().enumerate() {
        volume.ensure_source()?;
        shares.push(ShareEntry {
            target: crate::volume::BindVolume::share_path(index),
            source: ShareSource::Bind {
                path: volume.source.clone(),
                readonly: volume.readonly,
            },
        });
    }
    let (net, mut extra_cmdline) = match ctx.attachment {
        Some(a) => (vec![a.nic()], a.kernel_args(&record.config.hostname)),
        None => (Vec::new(), Vec::new()),
    };
    // A debugging aid (e.g. `loglevel=7`), also how tests make a guest panic.
    if let Ok(args) = std::env::var("HULL_KERNEL_ARGS") {
        extra_cmdline.extend(args.split_whitespace().map(str::to_string));
    }
    let boot_started = Instant::now();
    let sandbox = Sandbox::start(SandboxConfig {
        id: id.clone(),
        dir: ctx.paths.sandbox_dir(&id).join("vm"),
        hypervisor,
        kernel: artifacts.kernel,
        initrd: artifacts.initrd,
        virtiofsd: artifacts.virtiofsd,
        vcpus: ctx.plan.vcpus,
        memory_mib: ctx.plan.memory_mib,
        shares,
        boot_timeout: Duration::from_secs(ctx.plan.boot_timeout_secs),
        net,
        extra_cmdline,
        netns: ctx.attachment.and_then(SandboxNetwork::netns),
    })
    .await?;
    inject_fault(&sandbox, "monitor.after-boot");
    let result = run_in_sandbox(ctx, record, &sandbox, control, state, boot_started).await;
    let teardown_started = Instant::now();
    sandbox.shutdown().await;
    let (exit, mut phases) = result?;
    phases.push(("teardown", teardown_started.elapsed()));
    record_timings(&phases);
    Ok(exit)
}

/// Creates and starts the container in a booted sandbox and serves it until it exits.
async fn run_in_sandbox(
    ctx: &RunContext<'_>,
    record: &mut ContainerRecord,
    sandbox: &Sandbox,
    control: &mut mpsc::Receiver<Control>,
    state: &mut RunState,
    boot_started: Instant,
) -> Result<(ExitInfo, Vec<(&'static str, Duration)>)> {
    let id = record.id.clone();
    let agent = sandbox.agent();
    let outputs = [
        forward_output(
            agent.subscribe(STDOUT),
            OutputStream::Stdout,
            ctx.shared.clone(),
            ctx.log.clone(),
        ),
        forward_output(
            agent.subscribe(STDERR),
            OutputStream::Stderr,
            ctx.shared.clone(),
            ctx.log.clone(),
        ),
    ];
    let create_started = Instant::now();
    while_alive(
        sandbox,
        agent.request(Request::CreateContainer {
            container_id: id.clone(),
            spec: Box::new(ctx.spec.clone()),
            rootfs: Rootfs {
                share_tag: LAYERS_SHARE_TAG.into(),
                path: ROOTFS_DIR.into(),
            },
            stdio: StdioStreams {
                stdin: record.config.open_stdin.then_some(STDIN),
                stdout: Some(STDOUT),
                stderr: Some(STDERR),
            },
        }),
    )
    .await?
    .context("creating the container")?;
    let created = Instant::now();
    tracing::debug!(
        "container {}: created in the guest in {:?}",
        &id[..12],
        created - create_started
    );

    // Wait for the word to start, refusing signals meanwhile (there is no process to signal yet).
    if !state.auto_start {
        loop {
            match control.recv().await {
                Some(Control::Start(reply)) => {
                    state.start_waiter = Some(reply);
                    break;
                }
                Some(Control::Signal(_, reply)) => {
                    let _ = reply.send(MonitorResponse::error(format!(
                        "Container {id} is not running"
                    )));
                }
                // `rm` of a container that was never started: the sandbox goes, nothing runs.
                Some(Control::Stop(_, reply)) => {
                    state.stopped_by_user = true;
                    let _ = reply.send(MonitorResponse::Done);
                    return Err(anyhow!("removed before it was started"));
                }
                Some(Control::Stdin(_)) => {}
                None => return Err(anyhow!("control channel closed")),
            }
        }
    }
    state.auto_start = false;
    if let Err(err) = while_alive(
        sandbox,
        agent.request_done(Request::StartContainer {
            container_id: id.clone(),
        }),
    )
    .await?
    {
        let message = err.to_string();
        // The process exits 126/127 right after failing to exec; take its code.
        let exit_code = match tokio::time::timeout(
            Duration::from_secs(5),
            agent.request(Request::Wait {
                container_id: id.clone(),
            }),
        )
        .await
        {
            Ok(Ok(Response::Exited { status })) => status.code(),
            _ => 125,
        };
        return Err(StartFailure { message, exit_code }.into());
    }
    let started = Instant::now();
    record.set_running(sandbox.vmm_pid().map_or(0, i64::from));
    record.hull_sandbox.vmm_pid = record.state.pid;
    record.hull_sandbox.virtiofsd_pid = sandbox.virtiofsd_pid().map_or(0, i64::from);
    record.hull_sandbox.backend = sandbox.backend.clone();
    record.hull_sandbox.kernel_release = agent.kernel_release.clone();
    record.hull_sandbox.monitor_pid = i64::from(std::process::id());
    ctx.store.save(record)?;
    if let Some(waiter) = state.start_waiter.take() {
        let _ = waiter.send(MonitorResponse::Done);
    }
    *lock(&ctx.shared.agent) = Some(agent.clone());
    tracing::debug!(
        "container {}: started in {:?}",
        &id[..12],
        started - created
    );
    inject_fault(sandbox, "monitor.running");

    let wait = agent.request(Request::Wait {
        container_id: id.clone(),
    });
    tokio::pin!(wait);
    let mut kill_at: Option<tokio::time::Instant> = None;
    let mut stop_waiters: Vec<oneshot::Sender<MonitorResponse>> = Vec::new();
    let mut health = tokio::time::interval(HEALTH_INTERVAL);
    let signal = |signal: i32| Request::Signal {
        container_id: id.clone(),
        signal,
    };
    let (exit, error) = loop {
        tokio::select! {
            result = &mut wait => match result {
                Ok(Response::Exited { status }) => {
                    let oom_killed = matches!(status, hull_protocol::ExitStatus::Signaled { oom_killed: true, .. });
                    break (ExitInfo { exit_code: status.code(), oom_killed }, None);
                }
                Ok(other) => break (ExitInfo { exit_code: 255, oom_killed: false }, Some(format!("unexpected answer from the agent: {other:?}"))),
                Err(err) => break (ExitInfo { exit_code: 137, oom_killed: false }, Some(describe_sandbox_death(sandbox, &err).await)),
            },
            Some(command) = control.recv() => match command {
                Control::Start(reply) => {
                    let _ = reply.send(MonitorResponse::Done);
                }
                Control::Signal(number, reply) => {
                    let response = match agent.request_done(signal(number)).await {
                        Ok(()) => MonitorResponse::Done,
                        Err(err) => MonitorResponse::error(err.to_string()),
                    };
                    let _ = reply.send(response);
                }
                Control::Stop(timeout, reply) => {
                    state.stopped_by_user = true;
                    let _ = agent.request_done(signal(libc::SIGTERM)).await;
                    kill_at = Some(tokio::time::Instant::now() + Duration::from_secs(timeout));
                    stop_waiters.push(reply);
                }
                Control::Stdin(data) => {
                    let _ = agent.send_input(STDIN, &data).await;
                }
            },
            _ = tokio::time::sleep_until(kill_at.unwrap_or_else(tokio::time::Instant::now)), if kill_at.is_some() => {
                kill_at = None;
                let _ = agent.request_done(signal(libc::SIGKILL)).await;
            }
            _ = health.tick() => {
                if let Some(reason) = dead_process(sandbox) {
                    break (ExitInfo { exit_code: 137, oom_killed: false }, Some(reason));
                }
            }
        }
    };
    let exited = Instant::now();
    tracing::debug!(
        "container {}: exited with {} after {:?}{}",
        &id[..12],
        exit.exit_code,
        exited - started,
        error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default()
    );
    lock(&ctx.shared.agent).take();
    // All output reaches the ctx.log and the attached clients before the
    // exit is told. A sandbox that died has nothing more to send: its exit
    // is told at once.
    let drain = if error.is_some() {
        Duration::from_millis(100)
    } else {
        Duration::from_secs(2)
    };
    for output in outputs {
        let _ = tokio::time::timeout(drain, output).await;
    }
    {
        let mut writer = lock(ctx.log);
        let _ = writer.finish(OutputStream::Stdout);
        let _ = writer.finish(OutputStream::Stderr);
    }
    record.set_exited(exit.exit_code, exit.oom_killed, error);
    ctx.store.save(record)?;
    let phases = vec![
        ("boot", create_started - boot_started),
        ("create", created - create_started),
        ("start", started - created),
        ("run", exited - started),
    ];
    if !should_restart(record, exit.exit_code, state.stopped_by_user) {
        ctx.shared.exit.send_replace(Some(exit));
    }
    for waiter in stop_waiters {
        let _ = waiter.send(MonitorResponse::Done);
    }
    Ok((exit, phases))
}

/// Fault point `name` for crash-consistency tests: the monitor dies there,
/// or kills its VMM or virtiofsd.
fn inject_fault(sandbox: &Sandbox, name: &str) {
    match crate::fault::point(name) {
        Some(crate::fault::Fault::KillVmm) => crate::fault::kill(sandbox.vmm_pid()),
        Some(crate::fault::Fault::KillVirtiofsd) => crate::fault::kill(sandbox.virtiofsd_pid()),
        None => {}
    }
}

/// How often the monitor looks whether the VMM and virtiofsd still run.
const HEALTH_INTERVAL: Duration = Duration::from_millis(200);

/// Runs `work` (a request to the agent) unless the sandbox dies first: a
/// guest whose virtiofsd is gone may never answer (its file system waits
/// forever), so the request fails with the reason instead of hanging.
async fn while_alive<T>(
    sandbox: &Sandbox,
    work: impl std::future::Future<Output = T>,
) -> Result<T> {
    tokio::pin!(work);
    let mut health = tokio::time::interval(HEALTH_INTERVAL);
    loop {
        tokio::select! {
            done = &mut work => return Ok(done),
            _ = health.tick() => {
                if let Some(reason) = dead_process(sandbox) {
                    return Err(anyhow!(reason));
                }
            }
        }
    }
}

/// Says which of the sandbox's processes is gone, if one is; a VM that
/// ended in a guest kernel panic is reported as that.
fn dead_process(sandbox: &Sandbox) -> Option<String> {
    if !sandbox
        .vmm_pid()
        .is_some_and(|pid| process_alive(i64::from(pid)))
    {
        return Some(match sandbox.guest_panic() {
            Some(panic) => format!("guest kernel panic: {panic}"),
            None => "the VMM exited unexpectedly".into(),
        });
    }
    if !sandbox
        .virtiofsd_pid()
        .is_some_and(|pid| process_alive(i64::from(pid)))
    {
        return Some("virtiofsd exited unexpectedly".into());
    }
    None
}

/// Why the agent connection broke: a dead VMM or virtiofsd (which may take
/// a moment to be seen dead after the connection drops), else the error.
async fn describe_sandbox_death(sandbox: &Sandbox, err: &crate::rpc::RpcError) -> String {
    for _ in 0..20 {
        if let Some(reason) = dead_process(sandbox) {
            return reason;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    format!("lost the agent: {err}")
}

/// Writes phase durations (ms) to `$HULL_TIMINGS_FILE`, for bench/.
fn record_timings(phases: &[(&str, Duration)]) {
    let Some(path) = std::env::var_os("HULL_TIMINGS_FILE") else {
        return;
    };
    let map: serde_json::Map<String, serde_json::Value> = phases
        .iter()
        .map(|(name, d)| {
            (
                name.to_string(),
                serde_json::json!(d.as_secs_f64() * 1000.0),
            )
        })
        .collect();
    let _ = std::fs::write(path, serde_json::Value::Object(map).to_string());
}

/// Copies one output stream into the log and to attached clients, until it ends.
fn forward_output(
    mut rx: mpsc::Receiver<Vec<u8>>,
    stream: OutputStream,
    shared: Arc<Shared>,
    log: Arc<Mutex<JsonLogWriter>>,
) -> tokio::task::JoinHandle<()> {
    let stream_id = match stream {
        OutputStream::Stdout => STDOUT,
        OutputStream::Stderr => STDERR,
    };
    tokio::spawn(async move {
        while let Some(chunk) = rx.recv().await {
            if chunk.is_empty() {
                break;
            }
            if let Err(err) = lock(&log).write(stream, &chunk) {
                tracing::warn!("writing the log: {err}");
            }
            let clients: Vec<Attached> = lock(&shared.attached)
                .iter()
                .filter(|c| {
                    if stream == OutputStream::Stdout {
                        c.stdout
                    } else {
                        c.stderr
                    }
                })
                .cloned()
                .collect();
            for client in clients {
                let _ = client.frames.send(Frame::stdio(stream_id, &chunk)).await;
            }
        }
        // Tell attached clients the stream ended, so they stop waiting for it.
        let clients: Vec<Attached> = lock(&shared.attached).clone();
        for client in clients {
            let _ = client.frames.send(Frame::stdio(stream_id, &[])).await;
        }
    })
}

/// Serves one client connection.
async fn serve_client(stream: UnixStream, shared: Arc<Shared>, open_stdin: bool) {
    let (read_half, write_half) = stream.into_split();
    let (frames_tx, mut frames_rx) = mpsc::channel::<Frame>(64);
    let writer = tokio::spawn(async move {
        let mut writer = FrameWriter::new(write_half);
        while let Some(frame) = frames_rx.recv().await {
            if writer.send(&frame).await.is_err() {
                break;
            }
        }
    });
    let mut reader = FrameReader::new(read_half);
    let mut stdin_attached = false;
    // Where this connection's stdin goes for an exec: queued until the
    // exec's process exists, then passed to the agent by `run_exec`.
    let mut exec_stdin: Option<mpsc::UnboundedSender<Vec<u8>>> = None;
    // This connection's exec with a terminal: what its resizes apply to.
    let mut exec_terminal: Option<String> = None;
    while let Ok(Some(Ok(frame))) = reader.next().await {
        match frame.kind {
            FrameKind::Request => {
                let Ok(envelope) =
                    decode_json::<RequestEnvelope<MonitorRequest>>(&frame, FrameKind::Request)
                else {
                    continue;
                };
                let id = envelope.id;
                let respond = {
                    let frames = frames_tx.clone();
                    move |response: MonitorResponse| async move {
                        let _ = frames
                            .send(encode_json(
                                FrameKind::Response,
                                &ResponseEnvelope { id, response },
                            ))
                            .await;
                    }
                };
                match envelope.request {
                    MonitorRequest::Attach {
                        stdin,
                        stdout,
                        stderr,
                    } => {
                        stdin_attached = stdin && open_stdin;
                        lock(&shared.attached).push(Attached {
                            stdout,
                            stderr,
                            frames: frames_tx.clone(),
                        });
                        respond(MonitorResponse::Done).await;
                    }
                    MonitorRequest::Wait => {
                        let mut exit = shared.exit.subscribe();
                        tokio::spawn(async move {
                            let response = match exit.wait_for(Option::is_some).await {
                                Ok(info) => match *info {
                                    Some(info) => MonitorResponse::Exited {
                                        exit_code: info.exit_code,
                                        oom_killed: info.oom_killed,
                                    },
                                    None => MonitorResponse::Done,
                                },
                                Err(_) => MonitorResponse::error("the monitor is going away"),
                            };
                            respond(response).await;
                        });
                    }
                    MonitorRequest::Exec {
                        args,
                        env,
                        workdir,
                        user,
                        stdin,
                        detach,
                        tty,
                        size,
                    } => {
                        let Some(agent) = lock(&shared.agent).clone() else {
                            respond(MonitorResponse::error(format!(
                                "Container {} is not running",
                                shared.id
                            )))
                            .await;
                            continue;
                        };
                        let base = shared.next_exec_stream.fetch_add(4, Ordering::Relaxed);
                        let (stdin_tx, stdin_rx) = mpsc::unbounded_channel();
                        if stdin {
                            exec_stdin = Some(stdin_tx);
                        }
                        let exec = ExecRequest {
                            args,
                            env,
                            workdir,
                            user,
                            stdin,
                            detach,
                            tty,
                            size,
                            base,
                        };
                        if tty {
                            exec_terminal = Some(exec.id());
                        }
                        tokio::spawn(run_exec(
                            shared.clone(),
                            agent,
                            exec,
                            stdin_rx,
                            frames_tx.clone(),
                            respond,
                        ));
                    }
                    MonitorRequest::ResizeTerminal { size } => {
                        let agent = lock(&shared.agent).clone();
                        let request = Request::ResizeTerminal {
                            container_id: shared.id.clone(),
                            exec_id: exec_terminal.clone(),
                            rows: size.rows,
                            cols: size.cols,
                        };
                        tokio::spawn(async move {
                            let response = match agent {
                                None => MonitorResponse::error("the container is not running"),
                                Some(agent) => match agent.request_done(request).await {
                                    Ok(()) => MonitorResponse::Done,
                                    Err(err) => MonitorResponse::error(err.to_string()),
                                },
                            };
                            respond(response).await;
                        });
                    }
                    query
                    @ (MonitorRequest::Top | MonitorRequest::Stats | MonitorRequest::Sync) => {
                        let agent = lock(&shared.agent).clone();
                        let id = shared.id.clone();
                        tokio::spawn(async move {
                            let response = match (agent, query) {
                                (None, _) => {
                                    MonitorResponse::error(format!("Container {id} is not running"))
                                }
                                (Some(agent), MonitorRequest::Top) => match agent
                                    .request(Request::ListProcesses { container_id: id })
                                    .await
                                {
                                    Ok(Response::Processes { processes }) => {
                                        MonitorResponse::Processes { processes }
                                    }
                                    other => unexpected_answer(other),
                                },
                                (Some(agent), MonitorRequest::Stats) => {
                                    match agent.request(Request::Stats { container_id: id }).await {
                                        Ok(Response::Stats { stats }) => {
                                            MonitorResponse::Stats { stats }
                                        }
                                        other => unexpected_answer(other),
                                    }
                                }
                                (Some(agent), _) => match agent.request_done(Request::Sync).await {
                                    Ok(()) => MonitorResponse::Done,
                                    Err(err) => MonitorResponse::error(err.to_string()),
                                },
                            };
                            respond(response).await;
                        });
                    }
                    request => {
                        let (reply_tx, reply_rx) = oneshot::channel();
                        let control = match request {
                            MonitorRequest::Start => Control::Start(reply_tx),
                            MonitorRequest::Signal { signal } => Control::Signal(signal, reply_tx),
                            MonitorRequest::Stop { timeout_secs } => {
                                Control::Stop(timeout_secs, reply_tx)
                            }
                            MonitorRequest::Attach { .. }
                            | MonitorRequest::Wait
                            | MonitorRequest::Exec { .. }
                            | MonitorRequest::ResizeTerminal { .. }
                            | MonitorRequest::Top
                            | MonitorRequest::Stats
                            | MonitorRequest::Sync => continue,
                        };
                        let _ = shared.control.send(control).await;
                        tokio::spawn(async move {
                            let response = reply_rx
                                .await
                                .unwrap_or(MonitorResponse::error("the container is not running"));
                            respond(response).await;
                        });
                    }
                }
            }
            FrameKind::Stdio => {
                if let Ok((STDIN, data)) = frame.stdio_parts() {
                    if let Some(queue) = &exec_stdin {
                        let _ = queue.send(data.to_vec());
                    } else if stdin_attached {
                        let _ = shared.control.send(Control::Stdin(data.to_vec())).await;
                    }
                }
            }
            _ => {}
        }
    }
    // The client is gone: stop sending it output.
    lock(&shared.attached).retain(|client| !client.frames.same_channel(&frames_tx));
    drop(frames_tx);
    let _ = writer.await;
}

/// A container's record once its monitor is done with an exit: right
/// after a container exits, its monitor still tears the sandbox down (and
/// holds the writable layer) for a moment; this waits for that, up to
/// `timeout`. Running, created and restarting containers come back at once.
pub fn settled_record(
    store: &ContainerStore,
    id: &str,
    timeout: Duration,
) -> Result<ContainerRecord> {
    let deadline = Instant::now() + timeout;
    loop {
        let record = store.load(id)?;
        let tearing_down = matches!(record.state.status, Status::Exited | Status::Dead)
            && monitor_alive(record.hull_sandbox.monitor_pid);
        if !tearing_down || Instant::now() >= deadline {
            return Ok(record);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether `pid` is a live Hull monitor (not a process that reused its pid).
pub fn monitor_alive(pid: i64) -> bool {
    process_alive(pid)
        && std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|cmdline| cmdline.split(|&b| b == 0).any(|arg| arg == b"__monitor"))
            .unwrap_or(false)
}

/// The reply for an agent answer other than the one a request expects.
fn unexpected_answer(answer: Result<Response, crate::rpc::RpcError>) -> MonitorResponse {
    match answer {
        Ok(other) => MonitorResponse::error(format!("unexpected answer from the agent: {other:?}")),
        Err(err) => MonitorResponse::error(err.to_string()),
    }
}

/// An exec as a client asked for it, with its block of agent streams.
struct ExecRequest {
    args: Vec<String>,
    env: Vec<String>,
    workdir: Option<String>,
    user: Option<String>,
    stdin: bool,
    detach: bool,
    tty: bool,
    size: Option<proto::TerminalSize>,
    base: u32,
}

impl ExecRequest {
    /// The exec's id in the agent.
    fn id(&self) -> String {
        format!("exec{}", self.base)
    }
}

/// Runs an exec in the container, streaming its output to the client, and
/// answers with its exit code (or at once when detached).
async fn run_exec<F, Fut>(
    shared: Arc<Shared>,
    agent: Arc<AgentClient>,
    exec: ExecRequest,
    mut stdin: mpsc::UnboundedReceiver<Vec<u8>>,
    frames: mpsc::Sender<Frame>,
    respond: F,
) where
    F: FnOnce(MonitorResponse) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let options = crate::spec::ExecOptions {
        args: &exec.args,
        env: &exec.env,
        workdir: exec.workdir.as_deref(),
        user: exec.user.as_deref(),
        tty: exec.tty,
        console_size: exec.size.map(|size| (size.rows, size.cols)),
    };
    let process =
        match crate::spec::exec_process(&shared.base_process, &options, &shared.layer_dirs) {
            Ok(process) => process,
            Err(err) => {
                return respond(MonitorResponse::Error {
                    message: err.to_string(),
                    exit_code: Some(126),
                })
                .await
            }
        };
    let exec_id = exec.id();
    let (stdout, stderr) = (exec.base + 1, exec.base + 2);
    let forwarders: Vec<_> = if exec.detach {
        Vec::new()
    } else {
        [(stdout, STDOUT), (stderr, STDERR)]
            .into_iter()
            .map(|(from, to)| {
                let mut rx = agent.subscribe(from);
                let frames = frames.clone();
                tokio::spawn(async move {
                    while let Some(chunk) = rx.recv().await {
                        let end = chunk.is_empty();
                        let _ = frames.send(Frame::stdio(to, &chunk)).await;
                        if end {
                            break;
                        }
                    }
                })
            })
            .collect()
    };
    let created = agent
        .request(Request::ExecProcess {
            container_id: shared.id.clone(),
            exec_id: exec_id.clone(),
            process: Box::new(process),
            stdio: StdioStreams {
                stdin: exec.stdin.then_some(exec.base),
                stdout: (!exec.detach).then_some(stdout),
                stderr: (!exec.detach).then_some(stderr),
            },
            terminal: exec.tty,
        })
        .await;
    if let Err(err) = created {
        // A command that cannot run exits 126 or 127 right away.
        // The agent keeps no record of an exec that never ran, so its code
        // comes from the reason, as Docker gives it: 127 not found, else 126.
        let message = err.to_string();
        let exit_code = if message.contains("not found") || message.contains("no such file") {
            127
        } else {
            126
        };
        return respond(MonitorResponse::Error {
            message,
            exit_code: Some(exit_code),
        })
        .await;
    }
    if exec.detach {
        return respond(MonitorResponse::Done).await;
    }
    if exec.stdin {
        let (agent, stream) = (agent.clone(), exec.base);
        tokio::spawn(async move {
            while let Some(data) = stdin.recv().await {
                let end = data.is_empty();
                if agent.send_input(stream, &data).await.is_err() || end {
                    break;
                }
            }
        });
    }
    let wait = Request::WaitProcess {
        container_id: shared.id.clone(),
        exec_id,
    };
    let response = match agent.request(wait).await {
        Ok(Response::Exited { status }) => MonitorResponse::Exited {
            exit_code: status.code(),
            oom_killed: false,
        },
        other => unexpected_answer(other),
    };
    for forwarder in forwarders {
        let _ = tokio::time::timeout(Duration::from_secs(2), forwarder).await;
    }
    respond(response).await;
}

/// The lock a `hull` holds while it keeps a container's VM frozen for a
/// moment (`commit`), beside the container's record.
pub fn freeze_lock_path(container_dir: &std::path::Path) -> PathBuf {
    container_dir.join("freeze.lock")
}

/// Checks whether a container's record still matches reality: a record
/// that says running while its monitor is gone gets marked exited with the
/// reason (the monitor was killed); a running container's VM left frozen
/// by a `hull` that was killed meanwhile runs again. Returns whether the
/// record changed.
pub fn reconcile(store: &ContainerStore, record: &mut ContainerRecord) -> bool {
    let live_states = matches!(
        record.state.status,
        Status::Running | Status::Restarting | Status::Paused
    );
    if live_states && monitor_alive(record.hull_sandbox.monitor_pid) {
        thaw_if_abandoned(store, record);
        return false;
    }
    if !live_states {
        return false;
    }
    // The monitor's children die with it (PDEATHSIG); make sure of it.
    for pid in [
        record.hull_sandbox.vmm_pid,
        record.hull_sandbox.virtiofsd_pid,
    ] {
        if process_alive(pid) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    record.set_exited(137, false, Some("the container's monitor died".into()));
    let _ = store.save(record);
    true
}

/// Resumes a VM stopped for a moment by a `hull` that died before letting
/// it go (no one holds the freeze lock); a VM the user paused stays paused.
fn thaw_if_abandoned(store: &ContainerStore, record: &ContainerRecord) {
    let vmm = record.hull_sandbox.vmm_pid;
    if record.state.paused || process_state(vmm) != Some('T') {
        return;
    }
    if let Ok(Some(_free)) =
        crate::lockfile::LockFile::try_acquire(&freeze_lock_path(&store.dir_of(&record.id)))
    {
        tracing::warn!(
            "resuming the VM of {}, left frozen by a hull that died",
            record.short_name()
        );
        if let Ok(pid) = i32::try_from(vmm) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGCONT,
            );
        }
    }
}

/// Removes a container's runtime directory if no monitor owns it.
pub fn remove_runtime_dir(paths: &Paths, id: &str) {
    let dir = paths.sandbox_dir(id);
    if dir.exists() {
        crate::sandbox::remove_dir(&dir);
    }
}

/// The path of the container's log.
pub fn log_path(store: &ContainerStore, id: &str) -> PathBuf {
    store.dir_of(id).join(format!("{id}-json.log"))
}
