//! A container's record, field for field as `docker inspect` shows it.

use crate::timefmt::{self, ZERO_TIME};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Docker's container statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Created, never started.
    #[default]
    Created,
    /// Its process runs.
    Running,
    /// Being restarted by its restart policy.
    Restarting,
    /// Its VM is frozen (`hull pause`); still counts as running.
    Paused,
    /// Being removed.
    Removing,
    /// Its process ended.
    Exited,
    /// Broken beyond use.
    Dead,
}

impl Status {
    /// The status as Docker spells it (`running`, `exited`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Restarting => "restarting",
            Status::Paused => "paused",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `State` in `docker inspect`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerState {
    /// One of Docker's statuses.
    pub status: Status,
    /// Whether the process runs.
    pub running: bool,
    /// Never: Hull has no pause yet.
    pub paused: bool,
    /// Whether the restart policy is restarting it.
    pub restarting: bool,
    /// Whether the guest's OOM killer ended it.
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    /// Whether it is dead.
    pub dead: bool,
    /// The host pid that stands for the container: its VMM process.
    pub pid: i64,
    /// The exit code of its last run.
    pub exit_code: i32,
    /// Why it ended abnormally (a VMM or monitor that died, a guest panic).
    pub error: String,
    /// When it last started.
    pub started_at: String,
    /// When it last ended.
    pub finished_at: String,
}

impl Default for ContainerState {
    fn default() -> Self {
        Self {
            status: Status::Created,
            running: false,
            paused: false,
            restarting: false,
            oom_killed: false,
            dead: false,
            pid: 0,
            exit_code: 0,
            error: String::new(),
            started_at: ZERO_TIME.into(),
            finished_at: ZERO_TIME.into(),
        }
    }
}

/// `Config` in `docker inspect`: what the image and `run` asked for.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerConfig {
    /// Host name.
    pub hostname: String,
    /// Domain name.
    pub domainname: String,
    /// User.
    pub user: String,
    /// Stdin attached at start.
    pub attach_stdin: bool,
    /// Stdout attached at start.
    pub attach_stdout: bool,
    /// Stderr attached at start.
    pub attach_stderr: bool,
    /// A terminal.
    pub tty: bool,
    /// Stdin kept open (`-i`).
    pub open_stdin: bool,
    /// Stdin closed after the first attach ends.
    pub stdin_once: bool,
    /// Environment.
    pub env: Vec<String>,
    /// Command.
    pub cmd: Option<Vec<String>>,
    /// The image as the user named it.
    pub image: String,
    /// Working directory.
    pub working_dir: String,
    /// Entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// The signal `stop` sends first (`--stop-signal`, the image's
    /// STOPSIGNAL); empty: SIGTERM.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    /// Seconds `stop` waits before SIGKILL (`--stop-timeout`); `None`: 10.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<u64>,
}

/// `HostConfig.RestartPolicy`.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicy {
    /// `no`, `always`, `on-failure`, `unless-stopped` (Docker writes `""` for no).
    pub name: String,
    /// For `on-failure`: the most restarts, 0 for unlimited.
    pub maximum_retry_count: u32,
}

/// `HostConfig` in `docker inspect`: how the host runs it.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig {
    /// Memory limit in bytes, 0 for none.
    pub memory: i64,
    /// CPU limit in units of 1e-9 CPUs, 0 for none.
    pub nano_cpus: i64,
    /// Most processes, 0 for no limit.
    pub pids_limit: i64,
    /// `--rm`.
    pub auto_remove: bool,
    /// `--restart`.
    pub restart_policy: RestartPolicy,
    /// `--read-only`.
    pub readonly_rootfs: bool,
    /// `bridge`, `none` or a network name.
    pub network_mode: String,
    /// `-p`, as Docker shows it: `{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}`.
    pub port_bindings: serde_json::Value,
    /// The VMM backend asked for (`--vmm`), empty for the default.
    pub runtime: String,
    /// `-v`, as given: `/host:/ctr[:ro]`, `NAME:/ctr[:ro]`.
    pub binds: Vec<String>,
    /// `--tmpfs`: container paths and their options.
    pub tmpfs: std::collections::BTreeMap<String, String>,
    /// `--add-host`: `name:address` lines for /etc/hosts.
    pub extra_hosts: Vec<String>,
    /// `--dns`: the resolvers of its /etc/resolv.conf.
    pub dns: Vec<String>,
    /// `--dns-search`.
    pub dns_search: Vec<String>,
    /// `--dns-option`.
    pub dns_options: Vec<String>,
    /// `--shm-size` in bytes, 0 for the default.
    pub shm_size: i64,
    /// `--init`: the agent as the container's PID 1 (`null` without it).
    pub init: Option<bool>,
    /// `--ulimit`, as Docker shows them.
    pub ulimits: Vec<crate::ulimit::Ulimit>,
    /// `--log-driver` and `--log-opt`: where its output goes, and when its
    /// json-file log rotates.
    pub log_config: crate::logs::LogConfig,
}

/// What Hull knows about a container's sandbox; shown by `inspect` under `HullSandbox`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct RuntimeInfo {
    /// The monitor process owning the sandbox.
    pub monitor_pid: i64,
    /// The VMM process.
    pub vmm_pid: i64,
    /// The virtiofsd process.
    pub virtiofsd_pid: i64,
    /// Backend and acceleration, e.g. `qemu (tcg)`.
    pub backend: String,
    /// The guest kernel's release.
    pub kernel_release: String,
}

/// A container, as `config.v2.json` holds it and `docker inspect` prints it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerRecord {
    /// 64 hex digits.
    #[serde(rename = "Id")]
    pub id: String,
    /// When it was created.
    pub created: String,
    /// The command's program.
    pub path: String,
    /// The command's arguments.
    pub args: Vec<String>,
    /// Its state.
    pub state: ContainerState,
    /// The image id (`sha256:…`).
    pub image: String,
    /// Where its json-file log is.
    pub log_path: String,
    /// `/name`.
    pub name: String,
    /// Restarts by the restart policy so far.
    pub restart_count: u32,
    /// The storage driver.
    pub driver: String,
    /// The platform.
    pub platform: String,
    /// How the host runs it.
    pub host_config: HostConfig,
    /// What it runs.
    pub config: ContainerConfig,
    /// Networks; empty until Hull has networking.
    pub network_settings: serde_json::Value,
    /// Bind volumes, as `docker inspect` shows them.
    pub mounts: Vec<serde_json::Value>,
    /// The sandbox behind it.
    #[serde(default)]
    pub hull_sandbox: RuntimeInfo,
}

impl ContainerRecord {
    /// A new record in state `created`.
    pub fn new(
        id: String,
        name: String,
        image_id: String,
        image_name: String,
        mut config: ContainerConfig,
        host_config: HostConfig,
    ) -> Self {
        config.image = image_name;
        let name = if name.starts_with('/') {
            name
        } else {
            format!("/{name}")
        };
        Self {
            id,
            created: timefmt::now(),
            path: String::new(),
            args: Vec::new(),
            state: ContainerState::default(),
            image: image_id,
            log_path: String::new(),
            name,
            restart_count: 0,
            driver: "overlay".into(),
            platform: "linux".into(),
            host_config,
            config,
            network_settings: serde_json::json!({ "IPAddress": "", "Ports": {}, "Networks": {} }),
            mounts: Vec::new(),
            hull_sandbox: RuntimeInfo::default(),
        }
    }

    /// The name without its leading slash.
    pub fn short_name(&self) -> &str {
        self.name.trim_start_matches('/')
    }

    /// Marks it running as of now.
    pub fn set_running(&mut self, vmm_pid: i64) {
        self.state.status = Status::Running;
        self.state.running = true;
        self.state.restarting = false;
        self.state.pid = vmm_pid;
        self.state.exit_code = 0;
        self.state.error.clear();
        self.state.oom_killed = false;
        self.state.started_at = timefmt::now();
        self.state.finished_at = ZERO_TIME.into();
    }

    /// `hull pause` (true) or `unpause` (false) of a running container.
    pub fn set_paused(&mut self, paused: bool) {
        self.state.paused = paused;
        self.state.status = if paused {
            Status::Paused
        } else {
            Status::Running
        };
    }

    /// Marks it exited as of now with `exit_code`, and why if abnormal.
    pub fn set_exited(&mut self, exit_code: i32, oom_killed: bool, error: Option<String>) {
        self.state.status = Status::Exited;
        self.state.running = false;
        self.state.paused = false;
        self.state.restarting = false;
        self.state.pid = 0;
        self.state.exit_code = exit_code;
        self.state.oom_killed = oom_killed;
        self.state.error = error.unwrap_or_default();
        self.state.finished_at = timefmt::now();
        self.hull_sandbox.vmm_pid = 0;
        self.hull_sandbox.virtiofsd_pid = 0;
        // The monitor pid stays: the monitor is still tearing the sandbox
        // down, and commands wait for it to be gone before reusing the sandbox.
    }
}
