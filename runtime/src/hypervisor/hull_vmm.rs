//! The hull-vmm backend: Hull's own KVM VMM, one process per microVM.
//!
//! The agent channel is virtio-vsock with a hybrid unix socket on the host
//! (`CONNECT <port>`), as Firecracker does; the guest kernel's `ip=`
//! configures the NIC, so the tap needs no MAC from us.

use super::{
    check_files, find_program, AgentTransport, Hypervisor, HypervisorError, Overhead, VmConfig,
    VmControl, VmLaunch, BASE_CMDLINE,
};
use std::path::PathBuf;

/// The vsock port hull-agent listens on.
pub const AGENT_VSOCK_PORT: u32 = 1024;

/// The guest's vsock context id (2 is the host; 3 is the first free one).
const GUEST_CID: u32 = 3;

/// hull-vmm.
#[derive(Debug, Clone, Default)]
pub struct HullVmm;

impl HullVmm {
    /// Where hull-vmm is: `$HULL_VMM`, beside the `hull` executable, or in `$PATH`.
    pub fn program() -> Option<PathBuf> {
        if let Some(path) = std::env::var_os("HULL_VMM").filter(|p| !p.is_empty()) {
            return Some(PathBuf::from(path));
        }
        let beside = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join("hull-vmm")));
        beside
            .filter(|p| p.is_file())
            .or_else(|| find_program("hull-vmm"))
    }

    /// The VM as hull-vmm takes it: Hull's one typed VM configuration.
    fn vm_config(&self, config: &VmConfig) -> Result<hull_vm_config::VmConfig, HypervisorError> {
        let mut cmdline: Vec<String> = BASE_CMDLINE.iter().map(|s| s.to_string()).collect();
        cmdline.push(format!("hull.channel=vsock:{AGENT_VSOCK_PORT}"));
        cmdline.extend(config.extra_cmdline.iter().cloned());
        let vcpus = u8::try_from(config.vcpus)
            .ok()
            .filter(|v| (1..=hull_vm_config::MAX_VCPUS).contains(v))
            .ok_or_else(|| {
                HypervisorError::Config(format!(
                    "hull-vmm runs 1 to {} vCPUs, not {}",
                    hull_vm_config::MAX_VCPUS,
                    config.vcpus
                ))
            })?;
        let mut vm = hull_vm_config::VmConfig::new(config.kernel.clone());
        vm.initrd = Some(config.initrd.clone());
        vm.cmdline = cmdline.join(" ");
        vm.vcpus = vcpus;
        vm.mem_mib = u64::from(config.memory_mib);
        vm.serial = hull_vm_config::SerialOutput::File(config.console_log.clone());
        vm.vsock = Some(hull_vm_config::VsockConfig {
            socket: config.agent_socket.clone(),
            cid: GUEST_CID,
        });
        vm.fs = config
            .fs_shares
            .iter()
            .map(|share| hull_vm_config::FsConfig {
                socket: share.socket.clone(),
                tag: share.tag.clone(),
            })
            .collect();
        vm.api_socket = Some(config.control_socket.clone());
        // Once its devices are open: an empty root, namespaces of its own,
        // the sandbox's VMM user. Its seccomp filters are on by default.
        vm.jail = config.user.as_ref().map(|user| hull_vm_config::JailConfig {
            root: jail_root(config),
            uid: user.uid,
            gid: user.gid,
            // It opened /dev/kvm as root: no group is needed for it.
            groups: Vec::new(),
        });
        // Each guest its own MAC: two guests on one bridge must not share one.
        vm.net = config
            .net
            .iter()
            .map(|net| hull_vm_config::NetConfig {
                tap: net.tap.clone(),
                mac: Some(net.mac.clone()),
            })
            .collect();
        vm.validate()
            .map_err(|e| HypervisorError::Config(e.to_string()))?;
        Ok(vm)
    }
}

/// The directory the jail's empty root is mounted on (in the VMM's own
/// mount namespace): beside its sockets, in the sandbox's VMM directory.
fn jail_root(config: &VmConfig) -> PathBuf {
    config.agent_socket.with_file_name("root")
}

impl Hypervisor for HullVmm {
    fn name(&self) -> &'static str {
        "hull"
    }

    fn accel(&self) -> &'static str {
        "kvm"
    }

    fn prepare(&self, config: &VmConfig) -> Result<VmLaunch, HypervisorError> {
        let program =
            Self::program().ok_or_else(|| HypervisorError::MissingProgram("hull-vmm".into()))?;
        check_files(config)?;
        if config.user.is_some() {
            std::fs::create_dir_all(jail_root(config))
                .map_err(|e| HypervisorError::Config(format!("the VMM's jail directory: {e}")))?;
        }
        // Beside the VM's other files: the console log and the agent's socket.
        let path = config.agent_socket.with_file_name("hull-vmm.json");
        self.vm_config(config)?
            .write_json_file(&path)
            .map_err(|e| HypervisorError::Config(e.to_string()))?;
        Ok(VmLaunch {
            program,
            args: vec!["--config".into(), path.into()],
            agent: AgentTransport::HybridVsock {
                socket: config.agent_socket.clone(),
                port: AGENT_VSOCK_PORT,
            },
            control: VmControl::HullApi(config.control_socket.clone()),
            inherited: Vec::new(),
            // It drops to the user itself (`jail` above).
            user: None,
        })
    }

    fn overhead(&self) -> Overhead {
        // Its code, heap and device buffers; its threads are the API's, the
        // event loop's and one per vCPU, and its filters let it start none;
        // KVM's own workers (nx-lpage recovery) join its cgroup too.
        Overhead {
            memory_mib: 64,
            threads: 16,
        }
    }

    fn runs_unprivileged(&self) -> bool {
        true
    }

    fn jails_itself(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypervisor::{FsShare, NetDevice};

    #[test]
    fn the_vm_is_one_typed_configuration() {
        let config = VmConfig {
            kernel: PathBuf::from("/k/vmlinux"),
            initrd: PathBuf::from("/k/initrd"),
            extra_cmdline: vec!["ip=10.88.0.2::10.88.0.1:255.255.0.0::eth0:off".into()],
            vcpus: 2,
            memory_mib: 256,
            console_log: PathBuf::from("/s/console.log"),
            agent_socket: PathBuf::from("/s/agent.sock"),
            control_socket: PathBuf::from("/s/control.sock"),
            fs_shares: vec![FsShare {
                tag: "hull".into(),
                socket: PathBuf::from("/s/fs.sock"),
            }],
            net: vec![NetDevice {
                tap: "hulltap0".into(),
                mac: "02:00:00:00:00:01".into(),
            }],
            user: Some(crate::hypervisor::VmmUser {
                uid: 0x7000_0100,
                gid: 0x7000_0100,
                groups: vec![36],
            }),
        };
        let vm = HullVmm.vm_config(&config).unwrap();
        assert_eq!((vm.vcpus, vm.mem_mib), (2, 256));
        assert_eq!(
            vm.serial,
            hull_vm_config::SerialOutput::File("/s/console.log".into())
        );
        assert_eq!(
            vm.vsock.as_ref().map(|v| (v.socket.clone(), v.cid)),
            Some(("/s/agent.sock".into(), 3))
        );
        assert_eq!(vm.fs[0].tag, "hull");
        assert_eq!(vm.net[0].tap, "hulltap0");
        assert_eq!(vm.net[0].mac.as_deref(), Some("02:00:00:00:00:01"));
        assert!(vm.cmdline.contains("hull.channel=vsock:1024") && vm.cmdline.ends_with("eth0:off"));
        // The VMM jails itself as the sandbox's VMM user, under its filters.
        let jail = vm.jail.as_ref().unwrap();
        assert_eq!((jail.uid, jail.gid), (0x7000_0100, 0x7000_0100));
        assert_eq!(jail.root, PathBuf::from("/s/root"));
        assert!(jail.groups.is_empty() && vm.seccomp);
        // What hull-vmm reads back is what was written.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vm.json");
        vm.write_json_file(&path).unwrap();
        assert_eq!(hull_vm_config::VmConfig::from_json_file(&path).unwrap(), vm);
        let too_many = VmConfig {
            vcpus: 64,
            ..config
        };
        assert!(HullVmm.vm_config(&too_many).is_err());
    }
}
