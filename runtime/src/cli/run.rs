//! `hull create` and `hull run`: a container record, a monitor that boots
//! its microVM, and (for `run` without `-d`) the terminal attached to it.

use super::envfile::{self, BareKey};
use super::session::{attach_and_wait, DetachKeys, Session};
use super::terminal::{self};
use super::{engine, ExitWith};
use crate::config::Paths;
use crate::container::{ContainerStore, RestartPolicy};
use crate::engine::{
    ContainerOptions, EtcOptions, NamespaceModes, ProcessOptions, SecurityOptions,
};
use crate::logs::LogConfig;
use crate::monitor_link::client::{self};
use crate::units::parse_memory;
use anyhow::{anyhow, bail, Context, Result};
use std::path::PathBuf;
use std::time::Duration;

/// Flags that describe a process (`run`, `create` and `exec`).
#[derive(Debug, clap::Args)]
pub struct ProcessArgs {
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    pub(super) interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub(super) tty: bool,
    /// Set environment variables
    #[arg(short, long, value_name = "list")]
    pub(super) env: Vec<String>,
    /// Working directory inside the container
    #[arg(short, long, value_name = "string")]
    pub(super) workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long, value_name = "string")]
    pub(super) user: Option<String>,
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
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    init: bool,
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
            init: self.init,
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
    // Gone, so the monitor need not wait for us to finish.
    drop(monitor);
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

#[cfg(test)]
mod tests {
    use super::*;

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
