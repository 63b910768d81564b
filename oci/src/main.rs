//! `hull-oci`: Hull as an OCI runtime, with runc's command line, so that
//! dockerd (through containerd's runc shim, `--add-runtime`), containerd
//! (`BinaryName`) and podman (`--runtime`) give each container a microVM of
//! its own. One file per verb, as youki's libcontainer; the work is Hull's
//! engine's, shared with the `hull` CLI and the containerd shim.
//!
//! As runsc does, the pid written to `--pid-file` is a host process (the
//! *relay*, [`relay`]) whose life, stdio and exit status mirror the
//! container's init in the guest: a subreaping shim or conmon reaps it and
//! gets the container's exit code.
#![deny(missing_docs)]

mod console;
mod create;
mod delete;
mod error;
mod events;
mod exec;
mod hooks;
mod kill;
mod log;
mod pause;
mod query;
mod relay;
mod spawn;
mod spec;
mod start;
mod state;
mod stdio;
mod update;

use clap::{Parser, Subcommand};
use error::OciError;
use std::path::PathBuf;

/// The OCI state directory when `--root` is not given.
const DEFAULT_STATE_ROOT: &str = "/run/hull-oci";

/// Runs containers in microVMs, with runc's command line.
#[derive(Debug, Parser)]
#[command(name = "hull-oci", version, about)]
struct Cli {
    /// Where containers' OCI state is kept.
    #[arg(long, global = true, default_value = DEFAULT_STATE_ROOT)]
    root: PathBuf,
    /// Where errors are written, besides stderr.
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// How errors are written to `--log`: text or json.
    #[arg(long = "log-format", global = true, default_value = "text")]
    log_format: log::LogFormat,
    /// Accepted: a VM's cgroups are Hull's own.
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    /// Accepted: debug output goes to `--log` with `HULL_LOG=debug`.
    #[arg(long, global = true)]
    debug: bool,
    /// The verb.
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Creates a container from a bundle: its VM boots and its process
    /// waits for `start`.
    Create(create::CreateArgs),
    /// Starts a created container's process.
    Start {
        /// The container.
        id: String,
    },
    /// Prints a container's state (JSON, the OCI runtime spec's).
    State {
        /// The container.
        id: String,
    },
    /// Sends a signal to a container's process (default SIGTERM).
    Kill {
        /// Accepted: the VM holds all of the container's processes, and the
        /// signal reaches its init.
        #[arg(long, short)]
        all: bool,
        /// The container.
        id: String,
        /// The signal: a name (`KILL`, `SIGKILL`) or a number.
        signal: Option<String>,
    },
    /// Deletes a container: its VM, its state.
    Delete {
        /// Kill it first if it runs.
        #[arg(long, short)]
        force: bool,
        /// The container.
        id: String,
    },
    /// Runs another process in a running container.
    Exec(exec::ExecArgs),
    /// Pauses a container's VM.
    Pause {
        /// The container.
        id: String,
    },
    /// Resumes a paused container's VM.
    Resume {
        /// The container.
        id: String,
    },
    /// The container's host processes (the relay: its processes are the
    /// guest's), as runc's `ps`.
    Ps {
        /// `table` or `json`.
        #[arg(long, short, default_value = "table")]
        format: String,
        /// The container.
        id: String,
        /// `ps` options (for `table`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Prints what this runtime supports (JSON, as runc's `features`).
    Features,
    /// Changes a running container's limits (memory, CPU, pids).
    Update(update::UpdateArgs),
    /// Prints a container's resource use (JSON lines, as runc's `events`).
    Events {
        /// Print the stats once and exit.
        #[arg(long)]
        stats: bool,
        /// How often to print them.
        #[arg(long, default_value = "5s", value_parser = parse_interval)]
        interval: std::time::Duration,
        /// The container.
        id: String,
    },
    /// Writes a starting config.json (runc's default spec).
    Spec {
        /// The bundle directory to write it in.
        #[arg(long, short, default_value = ".")]
        bundle: PathBuf,
        /// Accepted: Hull's containers are rootless in the guest's sense.
        #[arg(long)]
        rootless: bool,
    },
    /// The relay of a container (the process `--pid-file` names).
    #[command(name = "__relay", hide = true)]
    Relay {
        /// The container.
        id: String,
    },
    /// The relay of a detached exec.
    #[command(name = "__exec", hide = true)]
    ExecRelay {
        /// The container.
        id: String,
    },
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `--root ROOT __monitor ID`, as the engine spawns a container's
    // monitor: Hull's own command line runs it.
    if args.iter().any(|a| a == "__monitor") {
        std::process::exit(hull_runtime::cli::main());
    }
    let cli = Cli::parse();
    let logger = log::Logger::new(cli.log.clone(), cli.log_format);
    logger.init_tracing(cli.debug);
    let _ = cli.systemd_cgroup;
    let code = match run(cli) {
        Ok(code) => code,
        Err(err) => {
            logger.error(&err);
            1
        }
    };
    std::process::exit(code);
}

/// Parses `--interval` as runc does (Go durations: `5s`, `500ms`, `1m`).
fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    let invalid = || format!("invalid duration {text:?}");
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .ok_or_else(invalid)?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| invalid())?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(invalid()),
    };
    std::time::Duration::try_from_secs_f64(seconds).map_err(|_| invalid())
}

/// Runs one verb; returns the exit code.
fn run(cli: Cli) -> Result<i32, OciError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| OciError::Setup(format!("starting the async runtime: {e}")))?;
    let states = state::StateDir::new(cli.root);
    runtime.block_on(async move {
        match cli.command {
            Command::Create(args) => create::create(&states, args).await.map(|()| 0),
            Command::Start { id } => start::start(&states, &id).await.map(|()| 0),
            Command::State { id } => query::state(&states, &id).await.map(|()| 0),
            Command::Kill { id, signal, .. } => kill::kill(&states, &id, signal.as_deref())
                .await
                .map(|()| 0),
            Command::Delete { id, force } => delete::delete(&states, &id, force).await.map(|()| 0),
            Command::Exec(args) => exec::exec(&states, args).await,
            Command::Pause { id } => pause::pause(&states, &id).await.map(|()| 0),
            Command::Resume { id } => pause::resume(&states, &id).await.map(|()| 0),
            Command::Ps {
                format,
                id,
                ps_args,
            } => query::ps(&states, &id, &format, &ps_args).map(|()| 0),
            Command::Features => query::features().map(|()| 0),
            Command::Update(args) => update::update(&states, args).await.map(|()| 0),
            Command::Events {
                stats,
                interval,
                id,
            } => events::events(&states, &id, stats, interval)
                .await
                .map(|()| 0),
            Command::Spec { bundle, .. } => spec::spec(&bundle).map(|()| 0),
            Command::ExecRelay { id } => Ok(exec::detached_relay(&states, &id).await),
            Command::Relay { id } => Ok(relay::relay(&states, &id).await),
        }
    })
}
