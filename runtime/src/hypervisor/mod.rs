//! The hypervisor interface: one trait, one implementation per VMM.
//!
//! Every Hull VMM runs as its own process (QEMU today, hull-vmm next), so a
//! backend's job is to turn a [`VmConfig`] into the command that starts the
//! VM and to say how the host reaches the agent inside it. The sandbox owns
//! the process; snapshot/restore and hot-plug will grow this trait, in the
//! way Kata's runtime-rs `hypervisor` crate grew.

mod control;
mod hull_vmm;
mod qemu;
pub mod tsc;

pub use control::{ControlError, VmControl};
pub use hull_vmm::HullVmm;
pub use qemu::Qemu;

/// Kernel arguments for a quick, quiet boot that ends the VM on reboot or panic.
///
/// `reboot=t` makes the agent's reboot a triple fault, which ends the VMM
/// (QEMU with `-no-reboot`; hull-vmm always); `panic=-1` does the same for a
/// panic. `tsc=reliable` and `no_timer_check` spare an emulated guest the
/// TSC watchdog and the IO-APIC timer check, which can stall under TCG.
pub const BASE_CMDLINE: [&str; 6] = [
    "console=ttyS0",
    "reboot=t",
    "panic=-1",
    "quiet",
    "tsc=reliable",
    "no_timer_check",
];

use std::ffi::OsString;
use std::os::fd::RawFd;
use std::path::PathBuf;
use thiserror::Error;

/// The first uid (and gid) of VMMs that run unprivileged: a VMM's is this
/// plus its monitor's pid (at most 2^22), which no other live sandbox has.
/// Above systemd's range for user-namespaced containers (0x80000 to
/// 0x6FFFFFFF), below its foreign range (0x7FFE0000) and 2^31.
pub const VMM_ID_BASE: u32 = 0x7000_0000;

/// Who an unprivileged VMM runs as: a uid and gid no other sandbox's VMM
/// has, no capabilities, no new privileges. A guest that escapes into its
/// VMM can then neither signal nor trace another sandbox's, nor reach
/// Hull's state, nor anything root owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmmUser {
    /// Its uid.
    pub uid: u32,
    /// Its gid.
    pub gid: u32,
    /// Supplementary groups: /dev/kvm's, when the device is not open to all.
    pub groups: Vec<u32>,
}

impl VmmUser {
    /// The identity of the VMM of the sandbox whose monitor is `monitor_pid`;
    /// `kvm`: it opens /dev/kvm, which must then be open to others or to a
    /// group (udev's `GROUP="kvm"`), not to root alone.
    pub fn for_monitor(monitor_pid: u32, kvm: bool) -> Result<Self, HypervisorError> {
        use std::os::unix::fs::MetadataExt;
        let id = VMM_ID_BASE.saturating_add(monitor_pid);
        let mut groups = Vec::new();
        if kvm {
            let device = std::fs::metadata("/dev/kvm")
                .map_err(|err| HypervisorError::Config(format!("/dev/kvm: {err}")))?;
            let mode = device.mode();
            if mode & 0o006 == 0o006 {
                // Open to all, as systemd's udev rules leave it.
            } else if mode & 0o060 == 0o060 && device.gid() != 0 {
                groups.push(device.gid());
            } else {
                return Err(HypervisorError::Config(format!(
                    "/dev/kvm is root's alone (mode {:o}), and the VMM runs unprivileged: \
                     give it to a group (udev: GROUP=\"kvm\", MODE=\"0660\") or to all (0666, as systemd does)",
                    mode & 0o7777
                )));
            }
        }
        Ok(Self {
            uid: id,
            gid: id,
            groups,
        })
    }
}

/// A descriptor the VMM inherits, because it cannot open the file itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inherited {
    /// A file the monitor opens read-only (the kernel, the initramfs).
    File {
        /// The file.
        path: PathBuf,
        /// Its descriptor in the VMM.
        fd: RawFd,
    },
    /// A unix socket the monitor binds (root's, mode 0600) for the VMM to
    /// listen on: the monitor later connects to a path only root controls.
    Listener {
        /// The socket's path.
        path: PathBuf,
        /// Its descriptor in the VMM.
        fd: RawFd,
    },
    /// A file the VMM writes (its console), made by the monitor in a
    /// directory of root's and given to the VMM's user.
    Output {
        /// The file.
        path: PathBuf,
        /// Its descriptor in the VMM.
        fd: RawFd,
    },
    /// A tap, opened in the VMM's network namespace before its privileges go.
    Tap {
        /// The tap's name.
        name: String,
        /// Its descriptor in the VMM.
        fd: RawFd,
    },
}

/// What a VM is made of, whatever the VMM.
#[derive(Debug, Clone)]
pub struct VmConfig {
    /// The guest kernel (uncompressed `vmlinux`, or `bzImage`).
    pub kernel: PathBuf,
    /// The initramfs holding hull-agent as /init.
    pub initrd: PathBuf,
    /// Kernel command-line arguments the sandbox adds (the backend adds its own).
    pub extra_cmdline: Vec<String>,
    /// Number of vCPUs.
    pub vcpus: u32,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// File the guest's serial console is written to.
    pub console_log: PathBuf,
    /// Unix socket the host uses to reach the agent.
    pub agent_socket: PathBuf,
    /// Unix socket the VMM serves its controls on (pause, resume).
    pub control_socket: PathBuf,
    /// virtio-fs shares: a vhost-user socket each, served by virtiofsd.
    pub fs_shares: Vec<FsShare>,
    /// virtio-net devices, each backed by a tap on the host.
    pub net: Vec<NetDevice>,
    /// Run the VMM as this user (backends that [`Hypervisor::runs_unprivileged`]).
    pub user: Option<VmmUser>,
}

/// A virtio-net device backed by a host tap.
#[derive(Debug, Clone)]
pub struct NetDevice {
    /// The tap's interface name (persistent, opened by name).
    pub tap: String,
    /// The guest NIC's MAC address.
    pub mac: String,
}

/// A virtio-fs device backed by a vhost-user daemon.
#[derive(Debug, Clone)]
pub struct FsShare {
    /// The tag the guest mounts it by.
    pub tag: String,
    /// The daemon's vhost-user socket.
    pub socket: PathBuf,
}

/// How the host reaches the agent once the VMM runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentTransport {
    /// A unix socket that is the agent's byte stream (a virtio-serial port).
    Stream(PathBuf),
    /// A hybrid-vsock unix socket: write `CONNECT <port>\n`, read `OK …\n`,
    /// then the stream is the agent's (Firecracker's and hull-vmm's scheme).
    HybridVsock {
        /// The VMM's vsock socket.
        socket: PathBuf,
        /// The agent's vsock port.
        port: u32,
    },
}

/// The command that starts a VM, and how to reach its agent.
#[derive(Debug, Clone)]
pub struct VmLaunch {
    /// The VMM executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Where the agent will be.
    pub agent: AgentTransport,
    /// How to pause and resume the VM.
    pub control: VmControl,
    /// Descriptors it inherits.
    pub inherited: Vec<Inherited>,
    /// Who it runs as; `None`: as the monitor (root).
    pub user: Option<VmmUser>,
}

/// What a VMM process uses beyond its VM's memory and vCPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overhead {
    /// Memory of its own (code, heap, device buffers, QEMU's translation
    /// cache), in MiB.
    pub memory_mib: u32,
    /// Threads beside one per vCPU.
    pub threads: u32,
}

/// A backend could not prepare a VM.
#[derive(Debug, Error)]
pub enum HypervisorError {
    /// The VMM's executable is not installed.
    #[error("{0} not found in PATH")]
    MissingProgram(String),
    /// A file the VM needs does not exist.
    #[error("{what} {path} does not exist")]
    MissingFile {
        /// What the file is for.
        what: &'static str,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The VM cannot be described to this VMM (out of its range, or its
    /// configuration file cannot be written).
    #[error("{0}")]
    Config(String),
}

/// A VMM Hull can run microVMs with.
pub trait Hypervisor: Send + Sync {
    /// Its name, as `hull info` and `--vmm` spell it.
    fn name(&self) -> &'static str;
    /// The acceleration it will use (`kvm`, `tcg`).
    fn accel(&self) -> &'static str;
    /// The accelerator's options, as QEMU's `-accel` spells them after the
    /// name (`tb-size=64`); empty when there are none.
    fn accel_options(&self) -> String {
        String::new()
    }
    /// The command that starts a VM with `config`.
    fn prepare(&self, config: &VmConfig) -> Result<VmLaunch, HypervisorError>;
    /// Whether its VMM runs as a [`VmmUser`] (given in [`VmConfig::user`]).
    fn runs_unprivileged(&self) -> bool {
        false
    }
    /// What its VMM process uses beyond its VM's memory and vCPUs: its
    /// cgroup's limits are the VM's plus this.
    fn overhead(&self) -> Overhead;
    /// Whether its VMM starts as root, opens its devices, and then jails
    /// itself as the [`VmmUser`] before the guest runs (hull-vmm), rather
    /// than being started as that user with its descriptors inherited (QEMU).
    fn jails_itself(&self) -> bool {
        false
    }
}

/// Finds an executable in `$PATH`.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Checks that the files of `config` exist before a VMM is started.
fn check_files(config: &VmConfig) -> Result<(), HypervisorError> {
    for (what, path) in [("kernel", &config.kernel), ("initramfs", &config.initrd)] {
        if !path.is_file() {
            return Err(HypervisorError::MissingFile {
                what,
                path: path.clone(),
            });
        }
    }
    Ok(())
}
