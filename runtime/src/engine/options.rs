//! What a front end asks for when it creates a container: Docker's
//! container options, already parsed (sizes in bytes, a restart policy),
//! not yet checked (the engine checks them against the host and the image).

use crate::container::RestartPolicy;
use crate::logs::LogConfig;
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// The container's process.
#[derive(Debug, Clone, Default)]
pub struct ProcessOptions {
    /// Keep stdin open (`-i`).
    pub interactive: bool,
    /// Give it a terminal (`-t`).
    pub tty: bool,
    /// `NAME=VALUE` (or `NAME`, taken from the caller's environment) entries.
    pub env: Vec<String>,
    /// Its working directory.
    pub workdir: Option<String>,
    /// `user[:group]`, by name or number.
    pub user: Option<String>,
}

/// The namespaces a container asks to share with something else: inside a
/// VM only its own exist, so anything but the default is refused.
#[derive(Debug, Clone, Default)]
pub struct NamespaceModes {
    /// `--pid`.
    pub pid: Option<String>,
    /// `--uts`.
    pub uts: Option<String>,
    /// `--ipc`.
    pub ipc: Option<String>,
}

/// How the container's process is confined in its VM, in Docker's words.
#[derive(Debug, Clone, Default)]
pub struct SecurityOptions {
    /// `--cap-add`: capabilities beyond Docker's default set (`ALL`, names
    /// with or without `CAP_`, any case).
    pub cap_add: Vec<String>,
    /// `--cap-drop`: capabilities taken from it (`ALL`).
    pub cap_drop: Vec<String>,
    /// `--security-opt`: `no-new-privileges[:true|false]`, `seccomp=unconfined`.
    pub security_opt: Vec<String>,
}

/// The container's /etc/hosts and /etc/resolv.conf beyond what its
/// network gives (`--add-host`, `--dns`, `--dns-search`, `--dns-option`).
#[derive(Debug, Clone, Default)]
pub struct EtcOptions {
    /// `name:address` entries.
    pub extra_hosts: Vec<String>,
    /// Resolver addresses, replacing the network's.
    pub dns: Vec<String>,
    /// Search domains.
    pub dns_search: Vec<String>,
    /// Resolver options (`ndots:2`).
    pub dns_options: Vec<String>,
}

/// A container to create.
#[derive(Debug, Clone, Default)]
pub struct ContainerOptions {
    /// The image's name or id.
    pub image: String,
    /// The command and its arguments (empty: the image's).
    pub command: Vec<String>,
    /// Its name (default: a generated one).
    pub name: Option<String>,
    /// Removed when it exits (`--rm`).
    pub auto_remove: bool,
    /// The process.
    pub process: ProcessOptions,
    /// Replaces the image's entrypoint.
    pub entrypoint: Option<String>,
    /// Its host name.
    pub hostname: Option<String>,
    /// Memory limit in bytes; also sizes the VM.
    pub memory: Option<i64>,
    /// CPUs; the VM gets this many vCPUs, rounded up.
    pub cpus: Option<f64>,
    /// Limit of processes (-1: none).
    pub pids_limit: Option<i64>,
    /// A read-only root file system.
    pub read_only: bool,
    /// `-v` values, as Docker writes them (`/host:/ctr[:ro]`,
    /// `NAME:/ctr[:ro]`, `/ctr`).
    pub volumes: Vec<String>,
    /// `--mount` values (`type=volume,source=NAME,target=/ctr,readonly`).
    pub mounts: Vec<String>,
    /// `--tmpfs` values (`/ctr[:OPTIONS]`).
    pub tmpfs: Vec<String>,
    /// What to do when it exits.
    pub restart: RestartPolicy,
    /// Namespace modes.
    pub namespaces: NamespaceModes,
    /// Extended privileges: refused.
    pub privileged: bool,
    /// Capabilities and security options.
    pub security: SecurityOptions,
    /// `bridge` (default), `none`, a network's name, or `ns:PATH`.
    pub network: Option<String>,
    /// `-p` entries.
    pub publish: Vec<String>,
    /// Publish every port the image exposes (`-P`).
    pub publish_all: bool,
    /// A fixed address on its network.
    pub ip: Option<Ipv4Addr>,
    /// More names it is known by on its network.
    pub aliases: Vec<String>,
    /// The VMM backend (default: the platform's).
    pub vmm: Option<String>,
    /// The guest kernel (default: Hull's).
    pub kernel: Option<PathBuf>,
    /// The guest initramfs (default: Hull's).
    pub initrd: Option<PathBuf>,
    /// Seconds the VM may take to boot to its agent.
    pub boot_timeout_secs: u64,
    /// The terminal's size (rows, columns) the process starts with.
    pub console_size: Option<(u16, u16)>,
    /// Its log driver and rotation (`--log-driver`, `--log-opt`).
    pub log_config: LogConfig,
    /// Labels (`--label`, `--label-file`), over the image's.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Its /etc files' extra entries.
    pub etc: EtcOptions,
    /// The signal `stop` sends first (`--stop-signal`).
    pub stop_signal: Option<String>,
    /// Seconds `stop` waits before SIGKILL (`--stop-timeout`).
    pub stop_timeout: Option<u64>,
    /// Size of its /dev/shm in bytes (`--shm-size`).
    pub shm_size: Option<i64>,
    /// `--ulimit` values (`nofile=1024:2048`).
    pub ulimits: Vec<String>,
    /// `--platform`: the image must be this one's (`linux/amd64`).
    pub platform: Option<String>,
    /// `--init`: an init as the container's PID 1 that passes signals on
    /// and reaps orphans.
    pub init: bool,
}
