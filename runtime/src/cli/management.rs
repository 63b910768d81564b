//! Docker's management commands: `hull container ls`, `hull image rm`,
//! `hull system info`… Each is its short form's command, with the same
//! flags (the same argument types), so the two never drift apart; only the
//! commands Docker has under one name alone (`container prune`, `image
//! prune`, `system df`…) are their own.

use super::containers::{
    AttachArgs, CommitArgs, DiffArgs, ExportArgs, InspectArgs, KillArgs, LogsArgs, PauseArgs,
    PortArgs, PsArgs, RenameArgs, RmArgs, StartArgs, StatsArgs, StopArgs, TopArgs, WaitArgs,
};
use super::cp::CpArgs;
use super::exec::ExecArgs;
use super::images::{
    HistoryArgs, ImagesArgs, ImportArgs, LoadArgs, PullArgs, PushArgs, RmiArgs, SaveArgs, TagArgs,
};
use super::run::{CreateArgs, RunArgs};
use super::Command;
use clap::Subcommand;

/// `hull container …`.
#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    /// Attach local standard input, output, and error streams to a running container
    Attach(AttachArgs),
    /// Create a new image from a container's changes
    Commit(CommitArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(CpArgs),
    /// Create a new container
    Create(CreateArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(DiffArgs),
    /// Execute a command in a running container
    Exec(ExecArgs),
    /// Export a container's filesystem as a tar archive
    Export(ExportArgs),
    /// Display detailed information on one or more containers
    Inspect(InspectArgs),
    /// Kill one or more running containers
    Kill(KillArgs),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// List containers
    #[command(visible_aliases = ["ps", "list"])]
    Ls(PsArgs),
    /// Pause all processes within one or more containers
    Pause(PauseArgs),
    /// List port mappings or a specific mapping for the container
    Port(PortArgs),
    /// Remove all stopped containers
    Prune {
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
    },
    /// Rename a container
    Rename(RenameArgs),
    /// Restart one or more containers
    Restart(StopArgs),
    /// Remove one or more containers
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Create and run a new container from an image
    Run(RunArgs),
    /// Start one or more stopped containers
    Start(StartArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(StatsArgs),
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Display the running processes of a container
    Top(TopArgs),
    /// Unpause all processes within one or more containers
    Unpause(PauseArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(WaitArgs),
}

/// `hull image …`.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Show the history of an image
    History(HistoryArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(ImportArgs),
    /// Display detailed information on one or more images
    Inspect(InspectArgs),
    /// Load an image from a tar archive
    Load(LoadArgs),
    /// List images
    #[command(visible_alias = "list")]
    Ls(ImagesArgs),
    /// Remove unused images (dangling ones; with -a, all without a container)
    Prune {
        /// Remove all unused images, not just dangling ones
        #[arg(short, long)]
        all: bool,
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
    },
    /// Download an image from a registry
    Pull(PullArgs),
    /// Upload an image to a registry
    Push(PushArgs),
    /// Remove one or more images
    #[command(visible_alias = "remove")]
    Rm(RmiArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(SaveArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
}

/// What a management command comes to: its short form, or a command that
/// exists only under its management name.
pub enum Resolved {
    /// The same as this top-level command.
    Short(Box<Command>),
    /// `container prune`.
    ContainerPrune {
        /// No prompt.
        force: bool,
    },
    /// `image prune`.
    ImagePrune {
        /// Every unused image, not only dangling ones.
        all: bool,
        /// No prompt.
        force: bool,
    },
}

impl ContainerCommand {
    /// The command this one is.
    pub fn resolve(self) -> Resolved {
        let short = match self {
            ContainerCommand::Attach(a) => Command::Attach(a),
            ContainerCommand::Commit(a) => Command::Commit(a),
            ContainerCommand::Cp(a) => Command::Cp(a),
            ContainerCommand::Create(a) => Command::Create(a),
            ContainerCommand::Diff(a) => Command::Diff(a),
            ContainerCommand::Exec(a) => Command::Exec(a),
            ContainerCommand::Export(a) => Command::Export(a),
            ContainerCommand::Inspect(a) => Command::Inspect(a.of_kind("container")),
            ContainerCommand::Kill(a) => Command::Kill(a),
            ContainerCommand::Logs(a) => Command::Logs(a),
            ContainerCommand::Ls(a) => Command::Ps(a),
            ContainerCommand::Pause(a) => Command::Pause(a),
            ContainerCommand::Port(a) => Command::Port(a),
            ContainerCommand::Prune { force } => return Resolved::ContainerPrune { force },
            ContainerCommand::Rename(a) => Command::Rename(a),
            ContainerCommand::Restart(a) => Command::Restart(a),
            ContainerCommand::Rm(a) => Command::Rm(a),
            ContainerCommand::Run(a) => Command::Run(a),
            ContainerCommand::Start(a) => Command::Start(a),
            ContainerCommand::Stats(a) => Command::Stats(a),
            ContainerCommand::Stop(a) => Command::Stop(a),
            ContainerCommand::Top(a) => Command::Top(a),
            ContainerCommand::Unpause(a) => Command::Unpause(a),
            ContainerCommand::Wait(a) => Command::Wait(a),
        };
        Resolved::Short(Box::new(short))
    }
}

impl ImageCommand {
    /// The command this one is.
    pub fn resolve(self) -> Resolved {
        let short = match self {
            ImageCommand::History(a) => Command::History(a),
            ImageCommand::Import(a) => Command::Import(a),
            ImageCommand::Inspect(a) => Command::Inspect(a.of_kind("image")),
            ImageCommand::Load(a) => Command::Load(a),
            ImageCommand::Ls(a) => Command::Images(a),
            ImageCommand::Prune { all, force } => return Resolved::ImagePrune { all, force },
            ImageCommand::Pull(a) => Command::Pull(a),
            ImageCommand::Push(a) => Command::Push(a),
            ImageCommand::Rm(a) => Command::Rmi(a),
            ImageCommand::Save(a) => Command::Save(a),
            ImageCommand::Tag(a) => Command::Tag(a),
        };
        Resolved::Short(Box::new(short))
    }
}
