//! `hull create` and `hull run`: a container record, a monitor that boots
//! its microVM, and (for `run` without `-d`) the terminal attached to it.

use super::envfile::{self, BareKey};
use super::terminal::{self, RawMode};
use super::{engine, ExitWith};
use crate::config::Paths;
use crate::container::{ContainerStore, RestartPolicy};
use crate::engine::{
    ContainerOptions, EtcOptions, NamespaceModes, ProcessOptions, SecurityOptions,
};
use crate::logs::LogConfig;
use crate::monitor_link::client::{self, MonitorClient};
use crate::monitor_link::proto::{MonitorRequest, MonitorResponse, STDERR, STDIN, STDOUT};
use crate::rpc::RpcError;
use crate::units::parse_memory;
use anyhow::{anyhow, bail, Context, Result};
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::signal::unix::{signal, SignalKind};

/// After Ctrl-C is passed on, how long the container has to exit before
/// Hull kills it.
const INTERRUPT_GRACE: Duration = Duration::from_secs(2);

/// Flags that describe a process (`run`, `create` and `exec`).
#[derive(Debug, clap::Args)]
pub struct ProcessArgs {
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    tty: bool,
    /// Set environment variables
    #[arg(short, long, value_name = "list")]
    env: Vec<String>,
    /// Working directory inside the container
    #[arg(short, long, value_name = "string")]
    workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long, value_name = "string")]
    user: Option<String>,
}

/// Flags that describe a container (`hull create` and `hull run`).
#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct CreateArgs {
    /// Assign a name to the container
    #[arg(long, value_name = "string")]
    name: Option<String>,
    /// Automatically remove the container when it exits
    #[arg(long)]
    rm: bool,
    #[command(flatten)]
    process: ProcessArgs,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long, value_name = "string")]
    entrypoint: Option<String>,
    /// Container host name
    #[arg(short = 'h', long, value_name = "string")]
    hostname: Option<String>,
    /// Print usage (`-h` is the host name, as in Docker)
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Memory limit (e.g. 64m, 1g); also sizes the microVM
    #[arg(short, long, value_name = "bytes")]
    memory: Option<String>,
    /// Number of CPUs; the microVM gets this many vCPUs, rounded up
    #[arg(long, value_name = "decimal")]
    cpus: Option<f64>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long, value_name = "int", allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Mount the container's root filesystem as read only
    #[arg(long)]
    read_only: bool,
    /// Bind mount a volume: /host/path:/ctr/path[:ro], NAME:/ctr/path[:ro] (made on first use) or /ctr/path (anonymous)
    #[arg(short, long, value_name = "list")]
    volume: Vec<String>,
    /// Attach a filesystem mount to the container: type=bind|volume|tmpfs,source=…,target=…[,readonly]
    #[arg(long, value_name = "mount")]
    mount: Vec<String>,
    /// Mount a tmpfs directory: /ctr/path[:options]
    #[arg(long, value_name = "list")]
    tmpfs: Vec<String>,
    /// Restart policy: no, always, on-failure[:max-retries], unless-stopped
    #[arg(long, value_name = "string", default_value = "no")]
    restart: String,
    /// PID namespace to use (only the container's own: "host" cannot cross the VM boundary)
    #[arg(long, value_name = "string")]
    pid: Option<String>,
    /// UTS namespace to use (only the container's own)
    #[arg(long, value_name = "string")]
    uts: Option<String>,
    /// Connect a container to a network: bridge (default), none, a network's name, or ns:PATH (a network namespace a CNI plugin prepared)
    #[arg(long, alias = "net", value_name = "network")]
    network: Option<String>,
    /// Publish a container's port(s) to the host ([ip:]hostPort:containerPort[/proto], or containerPort)
    #[arg(short, long, value_name = "list")]
    publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long)]
    publish_all: bool,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long, value_name = "string")]
    ip: Option<std::net::Ipv4Addr>,
    /// Add network-scoped alias for the container
    #[arg(long, value_name = "list")]
    network_alias: Vec<String>,
    /// IPC mode (only the container's own)
    #[arg(long, value_name = "string")]
    ipc: Option<String>,
    /// Give extended privileges to this container (refused: see --help)
    #[arg(long)]
    privileged: bool,
    /// Add Linux capabilities (or ALL)
    #[arg(long, value_name = "list")]
    cap_add: Vec<String>,
    /// Drop Linux capabilities (or ALL)
    #[arg(long, value_name = "list")]
    cap_drop: Vec<String>,
    /// Security options: no-new-privileges[:true|false], seccomp=unconfined
    #[arg(long, value_name = "list")]
    security_opt: Vec<String>,
    /// VMM backend: qemu (default), hull (Hull's own VMM), qemu-tcg, qemu-kvm
    #[arg(long, value_name = "name")]
    vmm: Option<String>,
    /// Guest kernel to boot (env HULL_KERNEL)
    #[arg(long, value_name = "path")]
    kernel: Option<PathBuf>,
    /// Guest initramfs holding hull-agent (env HULL_INITRD)
    #[arg(long, value_name = "path")]
    initrd: Option<PathBuf>,
    /// Seconds the VM may take to boot to its agent
    #[arg(long, value_name = "seconds", default_value_t = 60)]
    boot_timeout: u64,
    /// Logging driver for the container: json-file (the default) or none
    #[arg(long, value_name = "string")]
    log_driver: Option<String>,
    /// Log driver options: max-size=SIZE (e.g. 10m; -1 for unlimited), max-file=N
    #[arg(long, value_name = "list")]
    log_opt: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long, value_name = "list")]
    env_file: Vec<PathBuf>,
    /// Set meta data on a container
    #[arg(short = 'l', long, value_name = "list")]
    label: Vec<String>,
    /// Read in a line delimited file of labels
    #[arg(long, value_name = "list")]
    label_file: Vec<PathBuf>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long, value_name = "list")]
    add_host: Vec<String>,
    /// Set custom DNS servers
    #[arg(long, value_name = "list")]
    dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long, value_name = "list")]
    dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long, value_name = "list")]
    dns_option: Vec<String>,
    /// Signal to stop the container (default "SIGTERM")
    #[arg(long, value_name = "string")]
    stop_signal: Option<String>,
    /// Timeout (in seconds) to stop the container
    #[arg(long, value_name = "int")]
    stop_timeout: Option<u64>,
    /// Size of /dev/shm
    #[arg(long, value_name = "bytes")]
    shm_size: Option<String>,
    /// Ulimit options (name=soft[:hard])
    #[arg(long, value_name = "ulimit")]
    ulimit: Vec<String>,
    /// Write the container ID to the file
    #[arg(long, value_name = "string")]
    cidfile: Option<PathBuf>,
    /// Set platform if server is multi-platform capable
    #[arg(long, value_name = "string")]
    platform: Option<String>,
    /// Pull image before running ("always", "missing", "never")
    #[arg(long, value_name = "string", default_value = "missing")]
    pull: String,
    /// The image, then the command and its arguments
    #[arg(
        required = true,
        value_name = "IMAGE [COMMAND] [ARG...]",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    image_and_command: Vec<String>,
}

/// `hull run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short, long)]
    detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long, value_name = "string")]
    detach_keys: Option<DetachKeys>,
    #[command(flatten)]
    create: CreateArgs,
}

/// Parses `--restart`.
pub fn parse_restart(text: &str) -> Result<RestartPolicy> {
    let (name, count) = match text.split_once(':') {
        Some((name, count)) => (name, Some(count)),
        None => (text, None),
    };
    let maximum_retry_count = match (name, count) {
        ("on-failure", Some(count)) => count.parse().map_err(|_| anyhow!("invalid restart policy format: maximum retry count must be an integer"))?,
        (_, Some(_)) => bail!("invalid restart policy format: maximum retry count cannot be used with restart policy '{name}'"),
        _ => 0,
    };
    match name {
        "no" | "" => Ok(RestartPolicy::default()),
        "always" | "unless-stopped" | "on-failure" => Ok(RestartPolicy {
            name: name.into(),
            maximum_retry_count,
        }),
        other => bail!("invalid restart policy '{other}'"),
    }
}

impl CreateArgs {
    /// The engine's options for these flags.
    fn options(&self) -> Result<ContainerOptions> {
        let (image, command) = self
            .image_and_command
            .split_first()
            .context("an image name is required")?;
        Ok(ContainerOptions {
            image: image.clone(),
            command: command.to_vec(),
            name: self.name.clone(),
            auto_remove: self.rm,
            process: ProcessOptions {
                interactive: self.process.interactive,
                tty: self.process.tty,
                env: self.env()?,
                workdir: self.process.workdir.clone(),
                user: self.process.user.clone(),
            },
            entrypoint: self.entrypoint.clone(),
            hostname: self.hostname.clone(),
            memory: self.memory.as_deref().map(parse_memory).transpose()?,
            cpus: self.cpus,
            pids_limit: self.pids_limit,
            read_only: self.read_only,
            volumes: self.volume.clone(),
            mounts: self.mount.clone(),
            tmpfs: self.tmpfs.clone(),
            restart: parse_restart(&self.restart)?,
            namespaces: NamespaceModes {
                pid: self.pid.clone(),
                uts: self.uts.clone(),
                ipc: self.ipc.clone(),
            },
            privileged: self.privileged,
            security: SecurityOptions {
                cap_add: self.cap_add.clone(),
                cap_drop: self.cap_drop.clone(),
                security_opt: self.security_opt.clone(),
            },
            network: self.network.clone(),
            publish: self.publish.clone(),
            publish_all: self.publish_all,
            ip: self.ip,
            aliases: self.network_alias.clone(),
            vmm: self.vmm.clone(),
            kernel: self.kernel.clone(),
            initrd: self.initrd.clone(),
            boot_timeout_secs: self.boot_timeout,
            // The process starts with the user's size, before any resize could reach it.
            console_size: terminal::current_size().map(|size| (size.rows, size.cols)),
            log_config: self.log_config()?,
            labels: self.labels()?,
            etc: EtcOptions {
                extra_hosts: self.add_host.clone(),
                dns: self.dns.clone(),
                dns_search: self.dns_search.clone(),
                dns_options: self.dns_option.clone(),
            },
            stop_signal: self.stop_signal.clone(),
            stop_timeout: self.stop_timeout,
            shm_size: self.shm_size.as_deref().map(parse_memory).transpose()?,
            ulimits: self.ulimit.clone(),
            platform: self.platform.clone(),
        })
    }

    /// The environment: `--env-file` entries, then `-e` (which wins).
    fn env(&self) -> Result<Vec<String>> {
        let mut env = Vec::new();
        for file in &self.env_file {
            env.extend(envfile::read_entries(file, BareKey::FromEnvironment)?);
        }
        env.extend(self.process.env.iter().cloned());
        Ok(env)
    }

    /// Labels: `--label-file` entries, then `--label` (which wins).
    fn labels(&self) -> Result<std::collections::BTreeMap<String, String>> {
        let mut entries = Vec::new();
        for file in &self.label_file {
            entries.extend(envfile::read_entries(file, BareKey::Kept)?);
        }
        entries.extend(self.label.iter().cloned());
        Ok(entries
            .into_iter()
            .map(|entry| match entry.split_once('=') {
                Some((key, value)) => (key.to_string(), value.to_string()),
                None => (entry, String::new()),
            })
            .collect())
    }

    /// Refuses a `--cidfile` that exists, as Docker does, before anything
    /// is created.
    fn check_cidfile(&self) -> Result<()> {
        match &self.cidfile {
            Some(path) if path.exists() => Err(ExitWith {
                code: super::EXIT_RUNTIME_ERROR,
                message: format!(
                    "Container ID file found, make sure the other container isn't running or delete {}",
                    path.display()
                ),
            }
            .into()),
            _ => Ok(()),
        }
    }

    /// Writes the new container's id to `--cidfile`.
    fn write_cidfile(&self, id: &str) -> Result<()> {
        if let Some(path) = &self.cidfile {
            std::fs::write(path, id)
                .with_context(|| format!("writing the container ID file {}", path.display()))?;
        }
        Ok(())
    }

    /// `--log-driver` and the `--log-opt KEY=VALUE` pairs (a key alone has
    /// an empty value, as in Docker).
    fn log_config(&self) -> Result<LogConfig> {
        let options = self
            .log_opt
            .iter()
            .map(|option| option.split_once('=').unwrap_or((option.as_str(), "")));
        Ok(LogConfig::parse(self.log_driver.as_deref(), options)?)
    }
}

/// Turns a failed request to a monitor into `hull`'s error with Docker's
/// exit code.
pub fn start_error(err: RpcError) -> anyhow::Error {
    match err {
        RpcError::Remote { message, exit_code } => ExitWith {
            code: exit_code.unwrap_or(super::EXIT_RUNTIME_ERROR),
            message,
        }
        .into(),
        other => other.into(),
    }
}

/// The image argument takes hyphen values only so that the command after
/// it may: one that comes first is a flag clap does not know.
fn refuse_unknown_flag(args: &CreateArgs, verb: &str) -> Result<()> {
    match args.image_and_command.first() {
        Some(first) if first.starts_with('-') => Err(ExitWith {
            code: super::EXIT_RUNTIME_ERROR,
            message: format!("unknown flag: {first}\nSee 'hull {verb} --help'."),
        }
        .into()),
        _ => Ok(()),
    }
}

/// Pulls the image first when `--pull` asks for it.
async fn pull_if_needed(paths: &Paths, args: &CreateArgs) -> Result<()> {
    match args.image_and_command.first() {
        Some(image) => super::images::pull_for_run(paths, image, &args.pull).await,
        None => Ok(()),
    }
}

/// `hull create`.
pub async fn create(paths: &Paths, args: CreateArgs) -> Result<i32> {
    refuse_unknown_flag(&args, "create")?;
    args.check_cidfile()?;
    let options = args.options()?;
    pull_if_needed(paths, &args).await?;
    let id = engine(paths).create(&options)?;
    args.write_cidfile(&id)?;
    println!("{id}");
    Ok(0)
}

/// `hull run`.
pub async fn run(paths: &Paths, args: RunArgs) -> Result<i32> {
    refuse_unknown_flag(&args.create, "run")?;
    let process = &args.create.process;
    if !args.detach {
        terminal::check_input_is_terminal(process.interactive, process.tty)?;
    }
    args.create.check_cidfile()?;
    let options = args.create.options()?;
    pull_if_needed(paths, &args.create).await?;
    let engine = engine(paths);
    let id = engine.create(&options)?;
    args.create.write_cidfile(&id)?;
    tracing::debug!("created container {id}");
    let client::SpawnedMonitor {
        client: monitor,
        pid: monitor_pid,
    } = match engine.spawn_monitor(&id).await {
        Ok(spawned) => spawned,
        Err(err) => {
            // Leave nothing behind for a container that never ran.
            if let Ok(store) = ContainerStore::open(&paths.root) {
                if let Ok(record) = store.load(&id) {
                    if store.remove(&record).is_ok() {
                        engine.release_anonymous_volumes(&record);
                    }
                }
            }
            return Err(err.into());
        }
    };
    tracing::debug!(
        "monitor {monitor_pid} is up; it logs to {}",
        ContainerStore::open(&paths.root)
            .map(|s| s.dir_of(&id).join("monitor.log").display().to_string())
            .unwrap_or_default()
    );
    crate::fault::point("run.after-monitor");
    if args.detach {
        engine.start(&id, &monitor).await?;
        println!("{id}");
        return Ok(0);
    }
    let how = Session {
        interactive: args.create.process.interactive,
        tty: args.create.process.tty,
        proxy_signals: true,
        output: true,
        detach_keys: args.detach_keys.clone().unwrap_or_default(),
    };
    let result = attach_and_wait(&monitor, how, Some((paths, &id))).await;
    let store = ContainerStore::open(&paths.root)?;
    let result = result.map_err(|err| explain_lost_monitor(&store, &id, err));
    if args.create.rm {
        // As `docker run --rm`: return once the container is gone, VM and
        // all. Its monitor removes it, then exits; a monitor that died
        // first leaves that to us.
        let monitor_gone = engine.torn_down(&id, monitor_pid);
        if tokio::time::timeout(MONITOR_TEARDOWN_TIMEOUT, monitor_gone)
            .await
            .is_err()
        {
            bail!("the container's monitor did not finish within {MONITOR_TEARDOWN_TIMEOUT:?}; `hull rm -f {}` removes it", &id[..12]);
        }
        if store.dir_of(&id).exists() {
            engine.remove_container(&id, true, true).await?;
        }
    }
    result
}

/// How long `run --rm` waits for a container's monitor to tear it down.
const MONITOR_TEARDOWN_TIMEOUT: Duration = Duration::from_secs(60);

/// A session that ended because the container's monitor died says so
/// (instead of only "the connection closed").
fn explain_lost_monitor(store: &ContainerStore, id: &str, err: anyhow::Error) -> anyhow::Error {
    let Ok(mut record) = store.load(id) else {
        return err;
    };
    if !crate::container::reconcile(store, &mut record)
        && crate::container::monitor_alive(record.hull_sandbox.monitor_pid)
    {
        return err;
    }
    if record.state.error.is_empty() {
        return err;
    }
    anyhow!("{} ({err:#})", record.state.error)
}

/// Copies a stream's output to our stdout or stderr until it ends.
fn pump_output(
    mut rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
    to_stderr: bool,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut out: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = if to_stderr {
            Box::new(tokio::io::stderr())
        } else {
            Box::new(tokio::io::stdout())
        };
        while let Some(chunk) = rx.recv().await {
            if chunk.is_empty() || out.write_all(&chunk).await.is_err() {
                break;
            }
            let _ = out.flush().await;
        }
    })
}

/// Attaches the terminal, starts the container when `start` names it,
/// forwards stdin and signals, and returns the container's exit code.
/// `tty`: the container has a terminal of its own.
pub async fn attach_and_wait(
    monitor: &MonitorClient,
    how: Session,
    start: Option<(&Paths, &str)>,
) -> Result<i32> {
    let interactive = how.interactive;
    let outputs = [
        pump_output(monitor.subscribe(STDOUT), false),
        pump_output(monitor.subscribe(STDERR), true),
    ];
    monitor
        .request(MonitorRequest::Attach {
            stdin: interactive,
            stdout: how.output,
            stderr: how.output,
        })
        .await?;
    let wait = monitor.request(MonitorRequest::Wait);
    tokio::pin!(wait);
    if let Some((paths, id)) = start {
        if let Err(err) = engine(paths).start(id, monitor).await {
            // The exit is told right after a failed start; the wait ends it.
            let _ = tokio::time::timeout(Duration::from_secs(5), &mut wait).await;
            return Err(err.into());
        }
    }
    session(monitor, how, wait, outputs).await
}

/// How a session runs.
#[derive(Debug, Clone)]
pub struct Session {
    /// Forward stdin.
    pub interactive: bool,
    /// The process has a terminal: the user's goes raw (with `interactive`)
    /// and its window size is passed on.
    pub tty: bool,
    /// Ctrl-C and SIGTERM go to the container (as Docker's sig-proxy), a
    /// second one or a grace period later SIGKILL; without, Ctrl-C just
    /// ends the session.
    pub proxy_signals: bool,
    /// The keys that leave the session (`--detach-keys`).
    pub detach_keys: DetachKeys,
    /// Show the container's output (`hull build -q` does not).
    pub output: bool,
}

/// Tells the monitor the user's window size, if there is one; a process
/// that is gone or not started yet has nothing to resize, which is fine.
async fn send_window_size(monitor: &MonitorClient) {
    if let Some(size) = terminal::current_size() {
        if let Err(err) = monitor
            .request(MonitorRequest::ResizeTerminal { size })
            .await
        {
            tracing::debug!("resizing the container's terminal: {err}");
        }
    }
}

/// Streams a session (an attach, an exec) until `outcome` answers: stdin
/// to the monitor, output to the terminal, signals and window sizes as
/// `how` says.
pub async fn session(
    monitor: &MonitorClient,
    how: Session,
    outcome: impl std::future::Future<Output = Result<MonitorResponse, RpcError>>,
    outputs: [tokio::task::JoinHandle<()>; 2],
) -> Result<i32> {
    let Session {
        interactive,
        tty,
        proxy_signals,
        detach_keys,
        ..
    } = how;
    tokio::pin!(outcome);
    let mut sigint = signal(SignalKind::interrupt()).context("watching SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("watching SIGTERM")?;
    let mut sigwinch = signal(SignalKind::window_change()).context("watching SIGWINCH")?;
    if tty {
        send_window_size(monitor).await;
    }
    // Restored when this returns, whichever way (detach and errors included).
    let raw_mode = if tty && interactive {
        RawMode::enable().context("setting the terminal to raw mode")?
    } else {
        None
    };
    // Stdin goes to the container until it ends; Docker's detach keys
    // (Ctrl-p Ctrl-q) leave the session with the container running.
    let forward_stdin = async {
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; 32 * 1024];
        let mut detach = detach_keys;
        loop {
            match stdin.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let (data, detached) = detach.scan(&buf[..n]);
                    if !data.is_empty() && monitor.send_input(STDIN, &data).await.is_err() {
                        return false;
                    }
                    if detached {
                        return true;
                    }
                }
            }
        }
        let _ = monitor.send_input(STDIN, &[]).await;
        false
    };
    tokio::pin!(forward_stdin);
    let mut stdin_done = !interactive;
    let mut kill_at: Option<tokio::time::Instant> = None;
    let signal_request = |signal: i32| MonitorRequest::Signal { signal };

    let code = loop {
        let received = tokio::select! {
            result = &mut outcome => match result {
                Ok(MonitorResponse::Exited { exit_code, .. }) => break exit_code,
                Ok(other) => bail!("unexpected answer from the monitor: {other:?}"),
                Err(err) => return Err(start_error(err)),
            },
            detached = &mut forward_stdin, if !stdin_done => {
                if detached {
                    drop(raw_mode);
                    eprintln!("read escape sequence");
                    return Ok(0);
                }
                stdin_done = true;
                continue;
            }
            Some(()) = sigint.recv() => libc::SIGINT,
            Some(()) = sigterm.recv() => libc::SIGTERM,
            Some(()) = sigwinch.recv(), if tty => {
                send_window_size(monitor).await;
                continue;
            }
            _ = tokio::time::sleep_until(kill_at.unwrap_or_else(tokio::time::Instant::now)), if kill_at.is_some() => {
                kill_at = None;
                let _ = monitor.request(signal_request(libc::SIGKILL)).await;
                continue;
            }
        };
        if !proxy_signals {
            break 128 + received;
        }
        let signal = if kill_at.is_some() {
            libc::SIGKILL
        } else {
            received
        };
        let _ = monitor.request(signal_request(signal)).await;
        kill_at.get_or_insert_with(|| tokio::time::Instant::now() + INTERRUPT_GRACE);
    };
    // All output is sent before the answer; let it reach the terminal.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        for output in outputs {
            let _ = output.await;
        }
    })
    .await;
    Ok(code)
}

/// Docker's detach keys: a sequence of keys (Ctrl-p Ctrl-q by default, or
/// `--detach-keys`) that leaves an attached session, the container running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetachKeys {
    sequence: Vec<u8>,
    /// How much of the sequence the last reads ended with (held back).
    matched: usize,
}

impl Default for DetachKeys {
    fn default() -> Self {
        Self {
            sequence: vec![0x10, 0x11],
            matched: 0,
        }
    }
}

impl std::str::FromStr for DetachKeys {
    type Err = anyhow::Error;

    /// Docker's spelling: keys separated by commas, each a single character
    /// or `ctrl-<a-z, @, [, \, ], ^, _>`; e.g. `ctrl-x,x` or `ctrl-@`.
    fn from_str(text: &str) -> Result<Self> {
        let invalid = || anyhow!("Invalid detach keys ({text}) provided");
        let mut sequence = Vec::new();
        for key in text.split(',') {
            let byte = match key.strip_prefix("ctrl-") {
                Some(name) => match name.as_bytes() {
                    [letter @ b'a'..=b'z'] => letter - b'a' + 1,
                    [b'@'] => 0,
                    [symbol @ (b'[' | b'\\' | b']' | b'^' | b'_')] => symbol - b'@',
                    _ => return Err(invalid()),
                },
                None => match key.as_bytes() {
                    [single] if single.is_ascii_graphic() => *single,
                    _ => return Err(invalid()),
                },
            };
            sequence.push(byte);
        }
        Ok(Self {
            sequence,
            matched: 0,
        })
    }
}

impl DetachKeys {
    /// The bytes to pass on, and whether the sequence was typed.
    fn scan(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len() + self.sequence.len());
        for &byte in input {
            if byte == self.sequence[self.matched] {
                self.matched += 1;
                if self.matched == self.sequence.len() {
                    self.matched = 0;
                    return (out, true);
                }
                continue;
            }
            // A false start: what was held back is input after all, and
            // this byte may begin the sequence again.
            out.extend_from_slice(&self.sequence[..self.matched]);
            self.matched = 0;
            if byte == self.sequence[0] {
                self.matched = 1;
                if self.sequence.len() == 1 {
                    self.matched = 0;
                    return (out, true);
                }
            } else {
                out.push(byte);
            }
        }
        (out, false)
    }
}

/// `hull exec`.
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short, long)]
    detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long, value_name = "string")]
    detach_keys: Option<DetachKeys>,
    #[command(flatten)]
    process: ProcessArgs,
    /// The container, then the command and its arguments
    #[arg(required = true, num_args = 2.., value_name = "CONTAINER COMMAND [ARG...]", trailing_var_arg = true, allow_hyphen_values = true)]
    container_and_command: Vec<String>,
}

/// Runs a command in a running container.
pub async fn exec(paths: &Paths, args: ExecArgs) -> Result<i32> {
    if !args.detach {
        terminal::check_input_is_terminal(args.process.interactive, args.process.tty)?;
    }
    let (container, command) = args
        .container_and_command
        .split_first()
        .context("a container is required")?;
    let store = ContainerStore::open(&paths.root)?;
    let id = store.resolve(container)?;
    let record = store.load(&id)?;
    if record.state.status == crate::container::Status::Paused {
        bail!("Container {id} is paused, unpause the container first");
    }
    if record.state.status != crate::container::Status::Running {
        bail!("Container {id} is not running");
    }
    let monitor = client::connect(paths, &id).await?;
    let outputs = [
        pump_output(monitor.subscribe(STDOUT), false),
        pump_output(monitor.subscribe(STDERR), true),
    ];
    let request = MonitorRequest::Exec {
        args: command.to_vec(),
        env: args.process.env.clone(),
        workdir: args.process.workdir.clone(),
        user: args.process.user.clone(),
        stdin: args.process.interactive,
        detach: args.detach,
        tty: args.process.tty,
        size: if args.process.tty {
            terminal::current_size()
        } else {
            None
        },
    };
    if args.detach {
        monitor.request(request).await.map_err(start_error)?;
        return Ok(0);
    }
    let how = Session {
        interactive: args.process.interactive,
        tty: args.process.tty,
        proxy_signals: false,
        output: true,
        detach_keys: args.detach_keys.clone().unwrap_or_default(),
    };
    session(&monitor, how, monitor.request(request), outputs).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_as_docker_spells_them() {
        let keys: DetachKeys = "ctrl-x,x".parse().unwrap();
        assert_eq!(keys.sequence, [0x18, b'x']);
        assert_eq!("ctrl-@".parse::<DetachKeys>().unwrap().sequence, [0]);
        assert_eq!("ctrl-[".parse::<DetachKeys>().unwrap().sequence, [27]);
        assert!("ctrl-1".parse::<DetachKeys>().is_err());
        assert!("".parse::<DetachKeys>().is_err());
        let mut keys: DetachKeys = "ctrl-x,x".parse().unwrap();
        assert_eq!(keys.scan(b"a\x18b\x18"), (b"a\x18b".to_vec(), false));
        assert_eq!(keys.scan(b"x"), (Vec::new(), true));
    }

    #[test]
    fn detach_keys_are_found_across_reads() {
        let mut keys = DetachKeys::default();
        assert_eq!(keys.scan(b"ab\x10"), (b"ab".to_vec(), false));
        assert_eq!(keys.scan(b"\x11rest"), (Vec::new(), true));
        let mut keys = DetachKeys::default();
        assert_eq!(
            keys.scan(b"\x10x\x10\x10\x11"),
            (b"\x10x\x10".to_vec(), true)
        );
    }

    /// `hull create ARGS`'s options, as the engine gets them.
    fn create_options(args: &[&str]) -> Result<ContainerOptions> {
        use clap::Parser;
        let argv = ["hull", "create"].iter().chain(args).copied();
        match super::super::Cli::try_parse_from(argv)?.command {
            Some(super::super::Command::Create(args)) => args.options(),
            other => bail!("not a create: {other:?}"),
        }
    }

    #[test]
    fn log_driver_and_options() {
        let options = create_options(&[
            "--log-opt",
            "max-size=10m",
            "--log-opt",
            "max-file=3",
            "img",
        ])
        .unwrap();
        assert_eq!(options.log_config.max_size, Some(10_000_000));
        assert_eq!(options.log_config.max_file, 3);
        assert_eq!(
            create_options(&["img"]).unwrap().log_config,
            LogConfig::default()
        );
        let none = create_options(&["--log-driver", "none", "img"]).unwrap();
        assert_eq!(none.log_config, LogConfig::none());
        let error = |args: &[&str]| create_options(args).unwrap_err().to_string();
        // A key alone has an empty value, as in Docker.
        assert_eq!(
            error(&["--log-opt", "foo", "img"]),
            "unknown log opt 'foo' for json-file log driver"
        );
        assert_eq!(error(&["--log-opt", "max-size", "img"]), "invalid size: ''");
        assert!(error(&["--log-driver", "syslog", "img"]).contains("no log driver named 'syslog'"));
    }
}
