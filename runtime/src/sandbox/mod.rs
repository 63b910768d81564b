//! A sandbox: one microVM with its virtiofsd and its agent connection.
//!
//! The sandbox owns every process and file it makes, and removes them all
//! when it is shut down or dropped, on every path out, including errors:
//! its children are killed on drop and also die with their parent
//! (`PR_SET_PDEATHSIG`), and its directory goes with it.

mod cgroup;
mod confine;
mod console;
mod plan;
mod share;
mod watchdog;

pub use console::guest_panic;
pub use plan::{load_spec, mount_points, SandboxPlan};
pub use share::{ContainerShare, ETC_FILES, LAYERS_SHARE_TAG};

use crate::agent_client::{self, AgentClient};
use crate::hypervisor::{
    FsShare, Hypervisor, HypervisorError, NetDevice, VmConfig, VmControl, VmmUser,
};
use crate::rpc::RpcError;
use crate::virtiofsd::{self, ShareEntry, VirtiofsdError};
use confine::{prepare_dirs, Inheritance, VMM_DIR};
use console::{console_tail, read_tail};
use hull_protocol::{Event, Request};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use watchdog::{boot_watchdog, BOOT_WALL_FACTOR};

/// How long the guest may take to power off after being asked.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3);

/// A sandbox could not be started.
#[derive(Debug, Error)]
pub enum SandboxError {
    /// Its directory could not be made.
    #[error("creating sandbox directory {path}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The network namespace for the VMM could not be opened.
    #[error("opening network namespace {path}")]
    Netns {
        /// The namespace's path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file the unprivileged VMM gets could not be prepared.
    #[error("preparing {path} for the VMM")]
    Confine {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The VMM's cgroup could not be made.
    #[error("the VMM's cgroup: {0}")]
    Cgroup(std::io::Error),
    /// A descriptor the VMM inherits could not be prepared.
    #[error("preparing the VMM's descriptors: {0}")]
    Inherit(String),
    /// virtiofsd failed.
    #[error(transparent)]
    Virtiofsd(#[from] VirtiofsdError),
    /// The backend could not prepare the VM.
    #[error(transparent)]
    Hypervisor(#[from] HypervisorError),
    /// The VMM could not be started.
    #[error("starting {program}")]
    Spawn {
        /// The VMM executable.
        program: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The VM ended, or never answered, before its agent was ready.
    #[error("the VM did not start: {reason}{console}")]
    Boot {
        /// What happened.
        reason: String,
        /// The end of the guest console, prefixed by a newline, if any.
        console: String,
    },
    /// Talking to the agent failed.
    #[error(transparent)]
    Agent(#[from] RpcError),
}

/// What a sandbox is made of.
pub struct SandboxConfig {
    /// Unique id (64 hex digits, like a container id).
    pub id: String,
    /// Scratch directory for sockets and logs; created, and removed at the end.
    pub dir: PathBuf,
    /// The VMM.
    pub hypervisor: Box<dyn Hypervisor>,
    /// Guest kernel.
    pub kernel: PathBuf,
    /// Initramfs with hull-agent.
    pub initrd: PathBuf,
    /// virtiofsd executable.
    pub virtiofsd: PathBuf,
    /// vCPUs.
    pub vcpus: u32,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Host directories exposed to the guest read-only, by their name in the share.
    pub shares: Vec<ShareEntry>,
    /// How long the guest may take to boot to its agent.
    pub boot_timeout: Duration,
    /// NICs.
    pub net: Vec<NetDevice>,
    /// Kernel arguments (the guest's `ip=` configuration).
    pub extra_cmdline: Vec<String>,
    /// A network namespace for the VMM (CNI mode: its taps live there and
    /// are opened by name); `None` keeps the caller's.
    pub netns: Option<PathBuf>,
}

/// Instants of a sandbox's life, for `bench/`.
#[derive(Debug, Clone, Copy)]
pub struct BootTimings {
    /// When `start` was called.
    pub started: Instant,
    /// When virtiofsd was started (its socket listening).
    pub virtiofsd_ready: Instant,
    /// When the VMM process was spawned.
    pub vmm_spawned: Instant,
    /// When the agent answered the handshake.
    pub agent_ready: Instant,
}

/// A running microVM with a connected agent.
pub struct Sandbox {
    /// The sandbox's id.
    pub id: String,
    dir: PathBuf,
    vmm: Child,
    vmm_cgroup: cgroup::VmmCgroup,
    virtiofsd: Child,
    agent: std::sync::Arc<AgentClient>,
    control: VmControl,
    /// Events the agent reported (see [`Sandbox::take_events`]).
    events: mpsc::UnboundedReceiver<Event>,
    /// When things happened during start.
    pub timings: BootTimings,
    /// The backend's name and acceleration, e.g. `qemu (tcg)`.
    pub backend: String,
}

/// Kills a child we started and reaps it.
async fn kill_child(child: &mut Child) {
    let _ = child.start_kill();
    let _ = child.wait().await;
}

/// Kills a child we started and reaps it, and waits until its own children
/// are gone too (they die with it: PR_SET_PDEATHSIG). virtiofsd serves from
/// a child of its own, which holds the container's overlay: the writable
/// layer is free only once that child is gone.
async fn kill_child_and_its_children(child: &mut Child) {
    let grandchildren: Vec<i32> = child
        .id()
        .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok())
        .map(|list| {
            list.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    kill_child(child).await;
    for pid in grandchildren {
        for _ in 0..100 {
            // Gone (or reaped by init already, or a zombie of nobody's).
            if !crate::process::process_alive(i64::from(pid)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Sandbox {
    /// Starts virtiofsd and the VM, and connects to the agent.
    pub async fn start(config: SandboxConfig) -> Result<Self, SandboxError> {
        let started = Instant::now();
        std::fs::create_dir_all(&config.dir).map_err(|source| SandboxError::Dir {
            path: config.dir.clone(),
            source,
        })?;
        // From here on, `guard` removes the directory on every early return.
        let mut guard = DirGuard(Some(config.dir.clone()));
        let jails_itself = config.hypervisor.jails_itself();
        let user = if config.hypervisor.runs_unprivileged() {
            Some(VmmUser::for_monitor(
                std::process::id(),
                // A VMM that jails itself opens /dev/kvm as root first.
                config.hypervisor.accel() == "kvm" && !jails_itself,
            )?)
        } else {
            None
        };
        // A VMM that jails itself reaches every path as root, before its jail.
        let vmm_dir = prepare_dirs(&config.dir, user.as_ref().filter(|_| !jails_itself))?;
        let fs_socket = config.dir.join("fs.sock");
        let mut virtiofsd = virtiofsd::spawn(
            &config.virtiofsd,
            &config.dir.join("share"),
            &config.shares,
            &fs_socket,
            // Unprivileged, in ids of this sandbox's own.
            Some(crate::idmap::IdRange::for_monitor(std::process::id())),
        )?;
        if let Some(user) = user.as_ref().filter(|_| !jails_itself) {
            // The VMM connects to it as its user: the socket is its alone.
            if let Err(source) =
                std::os::unix::fs::chown(&fs_socket, Some(user.uid), Some(user.gid))
            {
                kill_child(&mut virtiofsd).await;
                return Err(SandboxError::Confine {
                    path: fs_socket,
                    source,
                });
            }
        }
        let virtiofsd_ready = Instant::now();

        let console_log = vmm_dir.join("console.log");
        let mut extra_cmdline = config.extra_cmdline.clone();
        if tracing::enabled!(tracing::Level::DEBUG) {
            // The guest kernel's messages and the agent's debug lines (the
            // kernel hands unknown NAME=VALUE arguments to init as its
            // environment) on the console, which the monitor's log gets.
            extra_cmdline.extend(["loglevel=7".into(), "HULL_AGENT_LOG=debug".into()]);
        }
        let vm = VmConfig {
            kernel: config.kernel.clone(),
            initrd: config.initrd.clone(),
            extra_cmdline,
            vcpus: config.vcpus,
            memory_mib: config.memory_mib,
            console_log: console_log.clone(),
            agent_socket: vmm_dir.join("agent.sock"),
            control_socket: vmm_dir.join("control.sock"),
            fs_shares: vec![FsShare {
                tag: LAYERS_SHARE_TAG.into(),
                socket: fs_socket,
            }],
            net: config.net.clone(),
            user,
        };
        let launch = match config.hypervisor.prepare(&vm) {
            Ok(launch) => launch,
            Err(err) => {
                kill_child(&mut virtiofsd).await;
                return Err(err.into());
            }
        };
        let netns = match config.netns.as_deref().map(std::fs::File::open).transpose() {
            Ok(netns) => netns,
            Err(source) => {
                kill_child(&mut virtiofsd).await;
                return Err(SandboxError::Netns {
                    path: config.netns.clone().unwrap_or_default(),
                    source,
                });
            }
        };
        tracing::debug!(
            backend = config.hypervisor.name(),
            accel = config.hypervisor.accel(),
            "starting the VM: {} {}",
            launch.program.display(),
            launch
                .args
                .iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        );
        let mut command = Command::new(&launch.program);
        if tracing::enabled!(tracing::Level::DEBUG) {
            // hull-vmm says what it does (QEMU ignores it); vmm.log is
            // copied into the monitor's log at shutdown.
            command.env("HULL_VMM_LOG", "debug");
        }
        command
            .args(&launch.args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr({
                use std::os::unix::fs::OpenOptionsExt;
                // Root's alone: the sandbox directory lets others pass.
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(config.dir.join("vmm.log"))
                    .map(std::process::Stdio::from)
                    .unwrap_or_else(|_| std::process::Stdio::null())
            })
            .kill_on_drop(true);
        let netns_fd = netns.as_ref().map(std::os::fd::AsRawFd::as_raw_fd);
        let inherited = match Inheritance::open(&launch) {
            Ok(inherited) => inherited,
            Err(err) => {
                kill_child(&mut virtiofsd).await;
                return Err(err);
            }
        };
        let limits = cgroup::Limits::for_vm(
            config.vcpus,
            config.memory_mib,
            config.hypervisor.overhead(),
        );
        let (vmm_cgroup, procs) = match cgroup::VmmCgroup::create(&config.id, limits)
            .and_then(|cgroup| cgroup.procs_files().map(|procs| (cgroup, procs)))
        {
            Ok(made) => made,
            Err(source) => {
                kill_child(&mut virtiofsd).await;
                return Err(SandboxError::Cgroup(source));
            }
        };
        let user = launch.user.clone();
        let monitor = std::process::id();
        // SAFETY: only async-signal-safe system calls (setns, open, ioctl,
        // dup2, set*id, prctl) between fork and exec, on memory prepared
        // above; `netns` and `inherited` outlive the spawn below.
        unsafe {
            command.pre_exec(move || {
                let check = |rc: libc::c_int| {
                    if rc < 0 {
                        Err(std::io::Error::last_os_error())
                    } else {
                        Ok(())
                    }
                };
                // Limited before it runs an instruction of its own.
                cgroup::join(&procs)?;
                if let Some(fd) = netns_fd {
                    check(libc::setns(fd, libc::CLONE_NEWNET))?;
                }
                if !jails_itself {
                    confine::read_only_host()?;
                }
                inherited.install()?;
                if let Some(user) = &user {
                    check(libc::setgroups(user.groups.len(), user.groups.as_ptr()))?;
                    check(libc::setresgid(user.gid, user.gid, user.gid))?;
                    // Every capability goes with uid 0.
                    check(libc::setresuid(user.uid, user.uid, user.uid))?;
                }
                // After the change of user, which clears it; and the
                // monitor must not have died before.
                check(libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ))?;
                if libc::getppid() as u32 != monitor {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
            });
        }
        let spawned = command.spawn();
        drop(netns);
        let mut vmm = match spawned {
            Ok(child) => child,
            Err(source) => {
                kill_child(&mut virtiofsd).await;
                vmm_cgroup.remove();
                return Err(SandboxError::Spawn {
                    program: launch.program,
                    source,
                });
            }
        };
        let vmm_spawned = Instant::now();

        let (events_tx, events) = mpsc::unbounded_channel();
        let wall_limit = config.boot_timeout.saturating_mul(BOOT_WALL_FACTOR);
        let connect = async {
            let stream = agent_client::connect(&launch.agent, wall_limit).await?;
            AgentClient::handshake(stream, events_tx).await
        };
        let vmm_pid = vmm.id().map_or(0, i64::from);
        let outcome = tokio::select! {
            result = connect => result.map_err(|err| format!("{err}")),
            reason = boot_watchdog(vmm_pid, config.boot_timeout, wall_limit) => Err(reason),
            status = vmm.wait() => Err(match status {
                Ok(status) => format!("the VMM exited ({status}) before the agent answered"),
                Err(err) => format!("waiting for the VMM: {err}"),
            }),
        };
        let agent = match outcome {
            Ok(agent) => agent,
            Err(reason) => {
                // virtiofsd starts beside the VMM: its end explains the VMM's.
                let reason = match virtiofsd.try_wait() {
                    Ok(Some(status)) => format!("virtiofsd exited ({status}); {reason}"),
                    _ => reason,
                };
                kill_child(&mut vmm).await;
                kill_child(&mut virtiofsd).await;
                vmm_cgroup.remove();
                let reason = match guest_panic(&console_log) {
                    Some(panic) => format!("guest kernel panic: {panic}"),
                    None => reason,
                };
                let mut console = console_tail(&console_log);
                if let Ok(vmm_log) = std::fs::read_to_string(config.dir.join("vmm.log")) {
                    if !vmm_log.trim().is_empty() {
                        console.push_str(&format!("\nVMM said: {}", vmm_log.trim()));
                    }
                }
                return Err(SandboxError::Boot { reason, console });
            }
        };
        let agent_ready = Instant::now();
        tracing::debug!(
            "the agent answered: virtiofsd up after {:?}, VMM spawned after {:?}, agent after {:?} (guest kernel {})",
            virtiofsd_ready - started,
            vmm_spawned - started,
            agent_ready - started,
            agent.kernel_release
        );
        let backend = format!(
            "{} ({})",
            config.hypervisor.name(),
            config.hypervisor.accel()
        );
        guard.disarm();
        Ok(Self {
            id: config.id,
            dir: config.dir,
            vmm,
            vmm_cgroup,
            virtiofsd,
            agent: std::sync::Arc::new(agent),
            control: launch.control,
            events,
            timings: BootTimings {
                started,
                virtiofsd_ready,
                vmm_spawned,
                agent_ready,
            },
            backend,
        })
    }

    /// The agent's events, for their one consumer (the monitor, which must
    /// read them: the channel is unbounded); a second call gets none.
    pub fn take_events(&mut self) -> mpsc::UnboundedReceiver<Event> {
        std::mem::replace(&mut self.events, mpsc::unbounded_channel().1)
    }

    /// How to pause and resume its VM through the VMM.
    pub fn control(&self) -> &VmControl {
        &self.control
    }

    /// The agent of this sandbox.
    pub fn agent(&self) -> &std::sync::Arc<AgentClient> {
        &self.agent
    }

    /// The guest kernel's panic message, if it panicked.
    pub fn guest_panic(&self) -> Option<String> {
        guest_panic(&self.dir.join(VMM_DIR).join("console.log"))
    }

    /// The pid of the VMM process.
    pub fn vmm_pid(&self) -> Option<u32> {
        self.vmm.id()
    }

    /// The directory virtiofsd shares, on the host (what is mounted in it
    /// is only in virtiofsd's mount namespace).
    pub fn share_dir(&self) -> PathBuf {
        self.dir.join("share")
    }

    /// The virtiofsd process's id, while it runs.
    pub fn virtiofsd_pid(&self) -> Option<u32> {
        self.virtiofsd.id()
    }

    /// Asks the guest to power off, waits for the VMM to exit (killing it
    /// if it takes too long), stops virtiofsd and removes the directory.
    pub async fn shutdown(mut self) {
        let asked =
            tokio::time::timeout(SHUTDOWN_TIMEOUT, self.agent.request(Request::Shutdown)).await;
        let exited = match asked {
            // The agent powers off right after answering; the answer may not
            // even arrive. Either way, give the VMM a moment to exit.
            Ok(_) => tokio::time::timeout(SHUTDOWN_TIMEOUT, self.vmm.wait())
                .await
                .is_ok(),
            Err(_) => false,
        };
        if !exited {
            kill_child(&mut self.vmm).await;
        }
        self.vmm_cgroup.remove();
        kill_child_and_its_children(&mut self.virtiofsd).await;
        if tracing::enabled!(tracing::Level::DEBUG) {
            // What the VMM and the guest said, before their files go.
            for (what, file) in [("VMM log", "vmm.log"), ("guest console", "vmm/console.log")] {
                let tail = read_tail(&self.dir.join(file), 64 * 1024).unwrap_or_default();
                let text = String::from_utf8_lossy(&tail);
                if !text.trim().is_empty() {
                    tracing::debug!("{what} of sandbox {}:\n{}", self.id, text.trim_end());
                }
            }
        }
        remove_dir(&self.dir);
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // After `shutdown` these find nothing left to do.
        let _ = self.vmm.start_kill();
        let _ = self.virtiofsd.start_kill();
        remove_dir(&self.dir);
    }
}

/// Removes a container's runtime directory, and its VMM's cgroup, if no
/// monitor owns them.
pub fn remove_runtime_dir(paths: &crate::config::Paths, id: &str) {
    cgroup::remove_leftover(id);
    let dir = paths.sandbox_dir(id);
    if dir.exists() {
        remove_dir(&dir);
    }
}

/// Removes a sandbox's scratch directory, unless `HULL_KEEP_SANDBOX` asks
/// to keep it (a debugging aid: console log, VMM log, sockets).
pub fn remove_dir(dir: &Path) {
    if std::env::var_os("HULL_KEEP_SANDBOX").is_some() {
        tracing::warn!("keeping sandbox directory {}", dir.display());
        return;
    }
    if let Err(err) = std::fs::remove_dir_all(dir) {
        if err.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("removing {}: {err}", dir.display());
        }
    }
}

/// Removes a directory when dropped, unless disarmed.
struct DirGuard(Option<PathBuf>);

impl DirGuard {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for DirGuard {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            remove_dir(&dir);
        }
    }
}
