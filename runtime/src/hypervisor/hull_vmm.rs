//! The hull-vmm backend: Hull's own KVM VMM, one process per microVM.
//!
//! The agent channel is virtio-vsock with a hybrid unix socket on the host
//! (`CONNECT <port>`), as Firecracker does; the guest kernel's `ip=`
//! configures the NIC, so the tap needs no MAC from us.

use super::{check_files, find_program, AgentTransport, Hypervisor, HypervisorError, VmConfig, VmLaunch, BASE_CMDLINE};
use std::ffi::OsString;
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
        let beside = std::env::current_exe().ok().and_then(|exe| exe.parent().map(|dir| dir.join("hull-vmm")));
        beside.filter(|p| p.is_file()).or_else(|| find_program("hull-vmm"))
    }

    /// hull-vmm's arguments for `config`.
    fn args(&self, config: &VmConfig) -> Vec<OsString> {
        let mut cmdline: Vec<String> = BASE_CMDLINE.iter().map(|s| s.to_string()).collect();
        cmdline.push(format!("hull.channel=vsock:{AGENT_VSOCK_PORT}"));
        cmdline.extend(config.extra_cmdline.iter().cloned());
        let mut args: Vec<OsString> = Vec::new();
        let mut pair = |flag: &str, value: String| {
            args.push(flag.into());
            args.push(value.into());
        };
        pair("--kernel", config.kernel.display().to_string());
        pair("--initrd", config.initrd.display().to_string());
        pair("--cmdline", cmdline.join(" "));
        pair("--vcpus", config.vcpus.to_string());
        pair("--mem-mib", config.memory_mib.to_string());
        pair("--serial", config.console_log.display().to_string());
        pair("--vsock-socket", config.agent_socket.display().to_string());
        pair("--vsock-cid", GUEST_CID.to_string());
        for share in &config.fs_shares {
            pair("--fs-socket", format!("{},tag={}", share.socket.display(), share.tag));
        }
        for net in &config.net {
            pair("--net-tap", net.tap.clone());
        }
        args
    }
}

impl Hypervisor for HullVmm {
    fn name(&self) -> &'static str {
        "hull"
    }

    fn accel(&self) -> &'static str {
        "kvm"
    }

    fn prepare(&self, config: &VmConfig) -> Result<VmLaunch, HypervisorError> {
        let program = Self::program().ok_or_else(|| HypervisorError::MissingProgram("hull-vmm".into()))?;
        check_files(config)?;
        Ok(VmLaunch {
            program,
            args: self.args(config),
            agent: AgentTransport::HybridVsock {
                socket: config.agent_socket.clone(),
                port: AGENT_VSOCK_PORT,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypervisor::{FsShare, NetDevice};

    #[test]
    fn command_line_uses_vsock_and_the_same_devices() {
        let config = VmConfig {
            kernel: PathBuf::from("/k/vmlinux"),
            initrd: PathBuf::from("/k/initrd"),
            extra_cmdline: vec!["ip=10.88.0.2::10.88.0.1:255.255.0.0::eth0:off".into()],
            vcpus: 2,
            memory_mib: 256,
            console_log: PathBuf::from("/s/console.log"),
            agent_socket: PathBuf::from("/s/agent.sock"),
            fs_shares: vec![FsShare {
                tag: "hull".into(),
                socket: PathBuf::from("/s/fs.sock"),
            }],
            net: vec![NetDevice {
                tap: "hulltap0".into(),
                mac: "02:00:00:00:00:01".into(),
            }],
        };
        let args: Vec<String> = HullVmm.args(&config).iter().map(|a| a.to_string_lossy().into_owned()).collect();
        let joined = args.join(" ");
        assert!(joined.contains("--vcpus 2 --mem-mib 256 --serial /s/console.log --vsock-socket /s/agent.sock --vsock-cid 3"));
        assert!(joined.contains("--fs-socket /s/fs.sock,tag=hull --net-tap hulltap0"));
        let cmdline = &args[args.iter().position(|a| a == "--cmdline").unwrap() + 1];
        assert!(cmdline.contains("hull.channel=vsock:1024") && cmdline.ends_with("eth0:off"));
    }
}
