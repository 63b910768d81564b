//! One task of the shim: a Hull container, its bundle, its stdio, the
//! connection to its monitor and, once it has ended, how.

use crate::error::not_found;
use crate::io::{StdinCopy, Stdio};
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::TtrpcResult;
use hull_runtime::monitor_link::client::MonitorClient;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;

/// How a task ended.
#[derive(Debug, Clone)]
pub struct Exit {
    /// Its exit status (128 + signal for a killed process).
    pub status: u32,
    /// When.
    pub at: Timestamp,
}

/// A task: one container in a microVM of its own.
pub struct Container {
    /// containerd's id for it (the Hull container's name).
    pub id: String,
    /// The Hull container's id.
    pub hull_id: String,
    /// Its bundle directory.
    pub bundle: PathBuf,
    /// Whether the shim mounted the rootfs at `bundle/rootfs` (and must
    /// unmount it).
    pub rootfs_mounted: bool,
    /// Its stdio.
    pub stdio: Stdio,
    /// The connection to its monitor.
    pub monitor: Arc<MonitorClient>,
    /// The monitor's pid: the task's pid as containerd sees it (the
    /// process is in the VM, whose pids mean nothing on the host).
    pub pid: u32,
    /// Set once it has exited.
    pub exit: watch::Sender<Option<Exit>>,
    /// Whether it was started.
    pub started: bool,
    /// Its stdin copy, once started with stdin.
    pub stdin: Option<StdinCopy>,
    /// Processes `exec`ed in it, by containerd's exec id.
    pub execs: HashMap<String, Exec>,
}

/// A process started in a running container (`ctr task exec`, CRI's
/// ExecSync): its own connection to the container's monitor carries its
/// streams.
pub struct Exec {
    /// What to run (the OCI process containerd gave).
    pub spec: oci_spec::runtime::Process,
    /// Its stdio.
    pub stdio: Stdio,
    /// Its connection to the monitor, once started.
    pub monitor: Option<Arc<MonitorClient>>,
    /// Its stdin copy, once started with stdin.
    pub stdin: Option<StdinCopy>,
    /// Set once it has exited.
    pub exit: watch::Sender<Option<Exit>>,
}

impl Container {
    /// Its exec `exec_id`.
    pub fn exec(&self, exec_id: &str) -> TtrpcResult<&Exec> {
        self.execs.get(exec_id).ok_or_else(|| not_found(exec_id))
    }
}

impl Exec {
    /// Its exit, if it has ended.
    pub fn exited(&self) -> Option<Exit> {
        self.exit.borrow().clone()
    }
}

impl Container {
    /// Its exit, if it has ended.
    pub fn exited(&self) -> Option<Exit> {
        self.exit.borrow().clone()
    }
}
