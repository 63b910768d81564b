//! Messages between `hull` commands and a container's monitor, framed as
//! the agent protocol is (same [`hull_protocol::Frame`]s and envelopes,
//! other payloads).
//!
//! On a connection, a client sends requests and gets one response each.
//! After `Attach`, the monitor also sends the container's output as stdio
//! frames ([`STDOUT`], [`STDERR`]) and takes input on [`STDIN`].

use serde::{Deserialize, Serialize};

/// Stdio stream ids on a monitor connection (also used with the agent).
pub const STDIN: u32 = 0;
/// Output stream id.
pub const STDOUT: u32 = 1;
/// Error stream id.
pub const STDERR: u32 = 2;

/// What a client asks of a monitor.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MonitorRequest {
    /// Stream the container's output (and take its input) on this connection.
    Attach {
        /// Forward this connection's stdin frames to the container.
        stdin: bool,
        /// Send stdout.
        stdout: bool,
        /// Send stderr.
        stderr: bool,
    },
    /// Let the created container run (after the sandbox is up).
    Start,
    /// Send the container's process a signal.
    Signal {
        /// Signal number.
        signal: i32,
    },
    /// SIGTERM, then SIGKILL after `timeout_secs`, then wait for the exit.
    Stop {
        /// Seconds to wait before SIGKILL.
        timeout_secs: u64,
    },
    /// Answered when the container exits.
    Wait,
    /// Run another process in the container (`hull exec`); its output comes
    /// on this connection, and the answer when it exits (at once with `detach`).
    Exec {
        /// Command and arguments.
        args: Vec<String>,
        /// Extra `K=V` environment.
        env: Vec<String>,
        /// Working directory, else the container's.
        workdir: Option<String>,
        /// User, else the container's.
        user: Option<String>,
        /// Take this connection's stdin.
        stdin: bool,
        /// Do not wait for it.
        detach: bool,
        /// Give it a pseudo-terminal (`-t`); its stderr comes on stdout.
        #[serde(default)]
        tty: bool,
        /// The terminal's initial size, if the client has one.
        #[serde(default)]
        size: Option<TerminalSize>,
    },
    /// Send this connection's exec a signal.
    SignalExec {
        /// Signal number.
        signal: i32,
    },
    /// Set the size of the terminal of this connection's exec, else of the
    /// container's process (a client's window changed).
    ResizeTerminal {
        /// The new size.
        size: TerminalSize,
    },
    /// The container's processes (`hull top`).
    Top,
    /// The container's resource use (`hull stats`).
    Stats,
    /// The guest's file-system data written out (before `hull commit`).
    Sync,
    /// Change the container's limits in the guest.
    Update {
        /// The new limits; those not given stay.
        resources: Box<oci_spec::runtime::LinuxResources>,
    },
    /// Stop the VM's vCPUs (the VMM pauses them; its process runs on).
    Pause,
    /// Let them run again.
    Resume,
    /// Container `id`, created to join this container's sandbox (a pod's
    /// container), joins it: answered once its own socket answers, where
    /// it is started and served as any container is.
    Join {
        /// The joining container's id.
        id: String,
    },
}

/// A terminal's window size.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct TerminalSize {
    /// Rows.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

/// The outcome of a monitor request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MonitorResponse {
    /// Done.
    Done,
    /// The container exited.
    Exited {
        /// Its exit code (128 + signal for a signal).
        exit_code: i32,
        /// Whether the guest's OOM killer ended it.
        oom_killed: bool,
    },
    /// The container's processes.
    Processes {
        /// As the guest sees them.
        processes: Vec<hull_protocol::ProcessInfo>,
    },
    /// Reply to [`MonitorRequest::Stats`].
    Stats {
        /// As the guest counts them.
        stats: hull_protocol::ContainerStats,
    },
    /// The request failed.
    Error {
        /// One line saying why, in Docker's words where Docker has some.
        message: String,
        /// The exit code `hull run` should use (126, 127), if not 125.
        exit_code: Option<i32>,
    },
}

impl MonitorResponse {
    /// A failure without an exit code of its own (hull's 1 or 125).
    pub fn error(message: impl Into<String>) -> Self {
        MonitorResponse::Error {
            message: message.into(),
            exit_code: None,
        }
    }
}
