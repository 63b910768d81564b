//! `hull exec`: another process in a running container, attached through
//! its monitor as `run`'s is.

use super::run::ProcessArgs;
use super::session::{pump_output, session, start_error, DetachKeys, Session};
use super::terminal::{self};
use crate::config::Paths;
use crate::container::ContainerStore;
use crate::monitor_link::client::{self};
use crate::monitor_link::proto::{MonitorRequest, STDERR, STDOUT};
use anyhow::{bail, Context, Result};

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
