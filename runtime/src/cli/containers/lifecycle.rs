//! The lifecycle verbs: `start`, `stop`, `restart`, `kill`, `rm`, `wait`,
//! `attach`, `pause`, `unpause` and `rename`; the engine does the work.

use super::{for_each, load};
use crate::cli::engine;
use crate::cli::session::{attach_and_wait, Session};
use crate::config::Paths;
use crate::container::Status;
use crate::monitor_link::client;
use crate::monitor_link::proto::{MonitorRequest, MonitorResponse};
use anyhow::{bail, Result};

/// `hull start`.
#[derive(Debug, clap::Args)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short, long)]
    attach: bool,
    /// Attach container's STDIN
    #[arg(short, long)]
    interactive: bool,
    /// Override the key sequence for detaching a container
    #[arg(long, value_name = "string")]
    detach_keys: Option<crate::cli::session::DetachKeys>,
    /// Containers
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Starts containers.
pub async fn start(paths: &Paths, args: StartArgs) -> Result<i32> {
    if args.attach || args.interactive {
        let [name] = args.containers.as_slice() else {
            bail!("you cannot start and attach multiple containers at once");
        };
        let record = load(paths, name)?.1;
        let (id, tty) = (record.id, record.config.tty);
        crate::cli::terminal::check_input_is_terminal(args.interactive, tty)?;
        let monitor = match engine(paths).prepare_start(name).await? {
            Some(monitor) => monitor,
            None => client::connect(paths, &id).await?,
        };
        let how = Session {
            interactive: args.interactive,
            tty,
            proxy_signals: true,
            output: true,
            detach_keys: args.detach_keys.clone().unwrap_or_default(),
        };
        return attach_and_wait(&monitor, how, Some((paths, &id))).await;
    }
    for_each(&args.containers, |name| async move {
        engine(paths).start_detached(&name).await?;
        println!("{name}");
        Ok(())
    })
    .await
}

/// `hull stop` and `hull restart`.
#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// Seconds to wait before killing the container (default: its --stop-timeout, else 10)
    #[arg(short, long, value_name = "int")]
    time: Option<u64>,
    /// Containers
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Stops containers.
pub async fn stop(paths: &Paths, args: StopArgs) -> Result<i32> {
    for_each(&args.containers, |name| async move {
        engine(paths).stop(&name, args.time).await?;
        println!("{name}");
        Ok(())
    })
    .await
}

/// Restarts containers.
pub async fn restart(paths: &Paths, args: StopArgs) -> Result<i32> {
    for_each(&args.containers, |name| async move {
        engine(paths).restart(&name, args.time).await?;
        println!("{name}");
        Ok(())
    })
    .await
}

/// `hull kill`.
#[derive(Debug, clap::Args)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short, long, value_name = "string", default_value = "KILL")]
    signal: String,
    /// Containers
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Sends a signal to containers.
pub async fn kill(paths: &Paths, args: KillArgs) -> Result<i32> {
    let signal = crate::signal::parse_signal(&args.signal)?;
    for_each(&args.containers, |name| async move {
        engine(paths).kill(&name, signal).await?;
        println!("{name}");
        Ok(())
    })
    .await
}

/// `hull rm`.
#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short, long)]
    force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short, long)]
    volumes: bool,
    /// Containers
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Removes containers.
pub async fn rm(paths: &Paths, args: RmArgs) -> Result<i32> {
    let (force, volumes) = (args.force, args.volumes);
    for_each(&args.containers, |name| async move {
        engine(paths)
            .remove_container(&name, force, volumes)
            .await?;
        println!("{name}");
        Ok(())
    })
    .await
}

/// `hull wait`.
#[derive(Debug, clap::Args)]
pub struct WaitArgs {
    /// Containers
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Blocks until containers stop, then prints their exit codes.
pub async fn wait(paths: &Paths, args: WaitArgs) -> Result<i32> {
    for_each(&args.containers, |name| async move {
        let (store, record) = load(paths, &name)?;
        let code = match client::connect(paths, &record.id).await {
            Ok(monitor)
                if matches!(
                    record.state.status,
                    Status::Running | Status::Restarting | Status::Paused | Status::Created
                ) =>
            {
                match monitor.request(MonitorRequest::Wait).await {
                    Ok(MonitorResponse::Exited { exit_code, .. }) => exit_code,
                    _ => {
                        crate::engine::wait_for_monitor(&store, &record.id).await;
                        store
                            .load(&record.id)
                            .map(|r| r.state.exit_code)
                            .unwrap_or(record.state.exit_code)
                    }
                }
            }
            _ => record.state.exit_code,
        };
        println!("{code}");
        Ok(())
    })
    .await
}

/// `hull attach`.
#[derive(Debug, clap::Args)]
pub struct AttachArgs {
    /// Do not attach STDIN
    #[arg(long)]
    no_stdin: bool,
    /// Override the key sequence for detaching a container
    #[arg(long, value_name = "string")]
    detach_keys: Option<crate::cli::session::DetachKeys>,
    /// The container
    container: String,
}

/// Attaches the terminal to a running container.
pub async fn attach(paths: &Paths, args: AttachArgs) -> Result<i32> {
    let (_, record) = load(paths, &args.container)?;
    if record.state.status == Status::Paused {
        bail!("You cannot attach to a paused container, unpause it first");
    }
    if record.state.status != Status::Running {
        bail!("You cannot attach to a stopped container, start it first");
    }
    let attach_stdin = record.config.open_stdin && !args.no_stdin;
    crate::cli::terminal::check_input_is_terminal(attach_stdin, record.config.tty)?;
    let monitor = client::connect(paths, &record.id).await?;
    let how = Session {
        interactive: attach_stdin,
        tty: record.config.tty,
        proxy_signals: true,
        output: true,
        detach_keys: args.detach_keys.unwrap_or_default(),
    };
    attach_and_wait(&monitor, how, None).await
}

/// `hull pause` / `hull unpause`.
#[derive(Debug, clap::Args)]
pub struct PauseArgs {
    /// Containers
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Freezes containers: their VMs' vCPUs stop where they are (the VMM
/// pauses them; its process runs on); nothing in the guest notices but the time.
pub async fn pause(paths: &Paths, args: PauseArgs) -> Result<i32> {
    for_each(&args.containers, |name| async move {
        engine(paths).pause(&name).await?;
        println!("{name}");
        Ok(())
    })
    .await
}

/// Lets paused containers' VMs run again.
pub async fn unpause(paths: &Paths, args: PauseArgs) -> Result<i32> {
    for_each(&args.containers, |name| async move {
        engine(paths).unpause(&name).await?;
        println!("{name}");
        Ok(())
    })
    .await
}

/// `hull rename`.
#[derive(Debug, clap::Args)]
pub struct RenameArgs {
    /// The container
    container: String,
    /// Its new name
    new_name: String,
}

/// Renames a container, running or not (peers on its network keep knowing
/// it by the old name until it restarts).
pub async fn rename(paths: &Paths, args: RenameArgs) -> Result<i32> {
    let (store, record) = load(paths, &args.container)?;
    let new_name = args.new_name.trim_start_matches('/');
    if record.short_name() == new_name {
        bail!("Renaming a container with the same name as its current name");
    }
    store.rename(&record.id, new_name)?;
    Ok(0)
}
