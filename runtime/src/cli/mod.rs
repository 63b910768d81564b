//! The `hull` command line: Docker's commands, flags, output and exit codes.
//!
//! Exit codes follow `docker run`: the container's own code, 125 when Hull
//! itself fails, 126 when the command cannot be invoked, 127 when it is not
//! found, 128 + N when signal N ended it.

mod build;
mod containers;
mod cp;
mod envfile;
mod exec;
mod format;
mod images;
mod info;
mod management;
mod network;
mod output;
mod run;
mod session;
mod spool;
mod system;
mod tabwriter;
mod template;
mod template_funcs;
mod terminal;
mod usage;
mod version;
mod volume;

use crate::config::Paths;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Hull's own failure, as `docker run` reports its daemon's failures.
pub const EXIT_RUNTIME_ERROR: i32 = 125;

#[derive(Debug, Parser)]
#[command(
    name = "hull",
    disable_version_flag = true,
    about = "Run containers, each in its own microVM",
    long_about = "Hull runs OCI containers the way Docker does, except that every container gets its own \
                  KVM microVM with its own kernel.",
    disable_help_subcommand = true
)]
struct Cli {
    /// Root of Hull's persistent state (env HULL_ROOT)
    #[arg(long, global = true, value_name = "DIR")]
    root: Option<PathBuf>,

    /// Log level: error, warn, info, debug, trace (env HULL_LOG). Before
    /// the command, as Docker's `-l`: `ps -l` is `ps --latest`.
    #[arg(long, short = 'l', value_name = "LEVEL")]
    log_level: Option<String>,

    /// Print version information and quit
    #[arg(long, short = 'v')]
    version: bool,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create and run a new container from an image
    Run(run::RunArgs),
    /// Create a new container
    Create(run::CreateArgs),
    /// Start one or more stopped containers
    Start(containers::StartArgs),
    /// Stop one or more running containers
    Stop(containers::StopArgs),
    /// Restart one or more containers
    Restart(containers::StopArgs),
    /// Kill one or more running containers
    Kill(containers::KillArgs),
    /// Pause all processes within one or more containers (their VMs stop)
    Pause(containers::PauseArgs),
    /// Unpause all processes within one or more containers
    Unpause(containers::PauseArgs),
    /// Remove one or more containers
    Rm(containers::RmArgs),
    /// Rename a container
    Rename(containers::RenameArgs),
    /// List containers
    Ps(containers::PsArgs),
    /// Fetch the logs of a container
    Logs(containers::LogsArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(containers::WaitArgs),
    /// Create a new image from a container's changes
    Commit(containers::CommitArgs),
    /// Build an image from a Dockerfile (each RUN in its own microVM)
    Build(build::BuildArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(containers::DiffArgs),
    /// Export a container's filesystem as a tar archive
    Export(containers::ExportArgs),
    /// Copy files/folders between a container and the local filesystem
    #[command(
        override_usage = "hull cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n       hull cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH"
    )]
    Cp(cp::CpArgs),
    /// Display the running processes of a container
    Top(containers::TopArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(containers::StatsArgs),
    /// List port mappings or a specific mapping for the container
    Port(containers::PortArgs),
    /// Manage networks
    #[command(subcommand)]
    Network(network::NetworkCommand),
    /// Execute a command in a running container
    Exec(exec::ExecArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(containers::AttachArgs),
    /// Return low-level information on containers or images
    Inspect(containers::InspectArgs),
    /// List images
    Images(images::ImagesArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(images::SaveArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(images::ImportArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(images::TagArgs),
    /// Remove one or more images
    Rmi(images::RmiArgs),
    /// Show the history of an image
    History(images::HistoryArgs),
    /// Load an image from a tar archive
    Load(images::LoadArgs),
    /// Download an image from a registry
    Pull(images::PullArgs),
    /// Upload an image to a registry
    Push(images::PushArgs),
    /// Log in to a registry
    Login(images::LoginArgs),
    /// Log out from a registry
    Logout(images::LogoutArgs),
    /// Display system-wide information
    Info(info::InfoArgs),
    /// Show the Hull version information
    Version(version::VersionArgs),
    /// Manage Hull (system df, info, prune, reset)
    #[command(subcommand)]
    System(system::SystemCommand),
    /// Manage containers
    #[command(subcommand)]
    Container(management::ContainerCommand),
    /// Manage images
    #[command(subcommand)]
    Image(management::ImageCommand),
    /// Manage volumes
    #[command(subcommand)]
    Volume(volume::VolumeCommand),
    /// The per-container monitor (started by hull itself)
    #[command(name = "__monitor", hide = true)]
    Monitor {
        /// The container's id
        id: String,
    },
}

/// Runs the CLI and returns the process's exit code.
pub fn main() -> i32 {
    crate::fault::setup();
    quiet_on_broken_pipe();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage::report(&err),
    };
    if cli.version {
        println!("{}", version::short());
        return 0;
    }
    let Some(command) = cli.command else {
        // `hull` alone: the help, as `docker` alone prints it.
        let _ = <Cli as clap::CommandFactory>::command().print_help();
        return 0;
    };
    let command = match command {
        Command::Container(command) => command.resolve(),
        Command::Image(command) => command.resolve(),
        other => management::Resolved::Short(Box::new(other)),
    };
    let filter = cli
        .log_level
        .clone()
        .or_else(|| std::env::var("HULL_LOG").ok())
        .unwrap_or_else(|| "warn".into());
    // No colour codes where nobody reads them as colours (the monitor's log file, pipes).
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|_| "warn".into()),
        )
        .init();
    // The monitors this command starts log at the same level (`-l debug`
    // included), into their containers' monitor.log.
    std::env::set_var("HULL_LOG", &filter);

    if let management::Resolved::Short(command) = &command {
        if matches!(**command, Command::Monitor { .. }) {
            // Before any other thread: each has its own bounding set.
            if let Err(err) = crate::capabilities::drop_never_needed() {
                tracing::warn!("keeping every capability: {err}");
            }
        }
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("hull: starting the async runtime: {err}");
            return EXIT_RUNTIME_ERROR;
        }
    };
    // `docker run` and `create` fail with 125; the other commands with 1.
    let failure_code = match &command {
        management::Resolved::Short(command)
            if matches!(**command, Command::Run(_) | Command::Create(_)) =>
        {
            EXIT_RUNTIME_ERROR
        }
        _ => 1,
    };
    let paths = Paths::new(cli.root.clone());
    if let Err(err) = paths.restrict() {
        if err.kind() == std::io::ErrorKind::PermissionDenied {
            eprintln!(
                "hull: permission denied while trying to open Hull's state in {}: {err}",
                paths.root.display()
            );
        } else {
            eprintln!(
                "hull: preparing {} and {}: {err}",
                paths.root.display(),
                paths.run.display()
            );
        }
        return failure_code;
    }
    let result = runtime.block_on(async move {
        let command = match command {
            management::Resolved::Short(command) => *command,
            management::Resolved::ContainerPrune { force } => {
                return system::prune_containers_command(&paths, force).await
            }
            management::Resolved::ImagePrune { all, force } => {
                return system::prune_images_command(&paths, all, force)
            }
        };
        match command {
            Command::Run(args) => run::run(&paths, args).await,
            Command::Create(args) => run::create(&paths, args).await,
            Command::Start(args) => containers::start(&paths, args).await,
            Command::Stop(args) => containers::stop(&paths, args).await,
            Command::Restart(args) => containers::restart(&paths, args).await,
            Command::Kill(args) => containers::kill(&paths, args).await,
            Command::Rm(args) => containers::rm(&paths, args).await,
            Command::Ps(args) => containers::ps(&paths, args),
            Command::Logs(args) => containers::logs(&paths, args).await,
            Command::Wait(args) => containers::wait(&paths, args).await,
            Command::Attach(args) => containers::attach(&paths, args).await,
            Command::Exec(args) => exec::exec(&paths, args).await,
            Command::Port(args) => containers::port(&paths, args),
            Command::Top(args) => containers::top(&paths, args).await,
            Command::Rename(args) => containers::rename(&paths, args).await,
            Command::Stats(args) => containers::stats(&paths, args).await,
            Command::Export(args) => containers::export(&paths, args).await,
            Command::Pause(args) => containers::pause(&paths, args).await,
            Command::Unpause(args) => containers::unpause(&paths, args).await,
            Command::Cp(args) => cp::cp(&paths, args).await,
            Command::Commit(args) => containers::commit(&paths, args).await,
            Command::Build(args) => build::build(&paths, args).await,
            Command::Diff(args) => containers::diff(&paths, args).await,
            Command::Network(command) => network::run(&paths, command).await,
            Command::System(command) => system::run(&paths, command).await,
            Command::Volume(command) => volume::run(&paths, command).await,
            Command::Container(_) | Command::Image(_) => {
                unreachable!("management commands are resolved above")
            }
            Command::Version(args) => version::version(&paths, args),
            Command::Inspect(args) => containers::inspect(&paths, args),
            Command::Images(args) => images::images(&paths, args).map(|()| 0),
            Command::Load(args) => images::load(&paths, args).map(|()| 0),
            Command::Pull(args) => images::pull(&paths, args).await.map(|()| 0),
            Command::Push(args) => images::push(&paths, args).await.map(|()| 0),
            Command::Login(args) => images::login(args).await.map(|()| 0),
            Command::Logout(args) => images::logout(args).map(|()| 0),
            Command::Tag(args) => images::tag(&paths, args).map(|()| 0),
            Command::Save(args) => images::save(&paths, args).map(|()| 0),
            Command::Import(args) => images::import(&paths, args).map(|()| 0),
            Command::Rmi(args) => images::rmi(&paths, args),
            Command::History(args) => images::history(&paths, args).map(|()| 0),
            Command::Info(args) => info::info(&paths, args).map(|()| 0),
            Command::Monitor { id } => crate::monitor::run(paths, id, false).await.map(|()| 0),
        }
    });
    // Don't wait for a blocked read of our stdin: nothing else is running.
    runtime.shutdown_background();
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("hull: {}", printable(&format!("{err:#}")));
            exit_code_of(&err, failure_code)
        }
    }
}

/// `hull ps | head -1`: a reader that goes away ends `hull` as SIGPIPE
/// would (exit 141, nothing printed), not with a panic about stdout. (SIGPIPE
/// itself stays ignored: a monitor's closed socket must be an error, not a
/// death.)
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to std") && message.contains("Broken pipe") {
            std::process::exit(128 + libc::SIGPIPE);
        }
        default(info);
    }));
}

/// An error message fit for a terminal: what an image, a registry or a
/// guest put in it may hold control characters (escape sequences, raw
/// bytes), which are shown escaped, never sent as they are.
fn printable(message: &str) -> String {
    message
        .chars()
        .map(|c| match c {
            '\n' | '\t' => c.to_string(),
            c if c.is_control() => c.escape_default().to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// The engine over `paths`, for a command.
pub(crate) fn engine(paths: &Paths) -> crate::engine::Engine {
    crate::engine::Engine::new(paths.clone())
}

/// The exit code for a failed command: the one an [`ExitWith`] or the
/// engine asks for (126, 127, ...), else `failure_code`.
fn exit_code_of(err: &anyhow::Error, failure_code: i32) -> i32 {
    if let Some(exit) = err.downcast_ref::<ExitWith>() {
        return exit.code;
    }
    match err.downcast_ref::<crate::engine::EngineError>() {
        Some(crate::engine::EngineError::Monitor {
            exit_code: Some(code),
            ..
        }) => *code,
        _ => failure_code,
    }
}

/// An error that ends `hull` with a particular code (126, 127) instead of 125.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ExitWith {
    /// The exit code.
    pub code: i32,
    /// What to print.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn error_messages_never_carry_control_characters() {
        assert_eq!(
            printable("bad \u{1b}[31mred\u{7}\nnext\tline"),
            "bad \\u{1b}[31mred\\u{7}\nnext\tline"
        );
        assert_eq!(printable("caf\u{e9} \u{fffd}"), "caf\u{e9} \u{fffd}");
    }
}
