//! The `hull` command line: Docker's commands, flags, output and exit codes.
//!
//! Exit codes follow `docker run`: the container's own code, 125 when Hull
//! itself fails, 126 when the command cannot be invoked, 127 when it is not
//! found, 128 + N when signal N ended it.

mod format;
mod images;
mod info;
mod run;

use crate::config::Paths;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Hull's own failure, as `docker run` reports its daemon's failures.
pub const EXIT_RUNTIME_ERROR: i32 = 125;

#[derive(Debug, Parser)]
#[command(
    name = "hull",
    version,
    about = "Run containers, each in its own microVM",
    long_about = "Hull runs OCI containers the way Docker does, except that every container gets its own \
                  KVM microVM with its own kernel.",
    disable_help_subcommand = true
)]
struct Cli {
    /// Root of Hull's persistent state (env HULL_ROOT)
    #[arg(long, global = true, value_name = "DIR")]
    root: Option<PathBuf>,

    /// Log level: error, warn, info, debug, trace (env HULL_LOG)
    #[arg(long, short = 'l', global = true, value_name = "LEVEL")]
    log_level: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create and run a new container from an image
    Run(run::RunArgs),
    /// List images
    Images(images::ImagesArgs),
    /// Load an image from a tar archive
    Load(images::LoadArgs),
    /// Display system-wide information
    Info(info::InfoArgs),
}

/// Runs the CLI and returns the process's exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            use clap::error::ErrorKind;
            let code = match err.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => 0,
                _ => EXIT_RUNTIME_ERROR,
            };
            let _ = err.print();
            return code;
        }
    };
    let filter = cli
        .log_level
        .clone()
        .or_else(|| std::env::var("HULL_LOG").ok())
        .unwrap_or_else(|| "warn".into());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|_| "warn".into()))
        .init();

    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("hull: starting the async runtime: {err}");
            return EXIT_RUNTIME_ERROR;
        }
    };
    let paths = Paths::new(cli.root.clone());
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Run(args) => run::run(&paths, args).await,
            Command::Images(args) => images::images(&paths, args).map(|()| 0),
            Command::Load(args) => images::load(&paths, args).map(|()| 0),
            Command::Info(args) => info::info(&paths, args).map(|()| 0),
        }
    });
    // Don't wait for a blocked read of our stdin: nothing else is running.
    runtime.shutdown_background();
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("hull: {err:#}");
            err.downcast_ref::<ExitWith>().map_or(EXIT_RUNTIME_ERROR, |e| e.code)
        }
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
