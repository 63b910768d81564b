//! The QEMU backend: `qemu-system-x86_64 -M microvm`.
//!
//! QEMU 7.2 (Debian bookworm) has no vsock device that works without
//! /dev/vhost-vsock, so the agent's channel is a virtio-serial port backed by
//! a unix socket. Guest memory is a shared memfd so that vhost-user devices
//! (virtiofsd) can map it.

use super::{
    check_files, find_program, AgentTransport, Hypervisor, HypervisorError, VmConfig, VmControl,
    VmLaunch, BASE_CMDLINE,
};
use std::ffi::OsString;

/// The virtio-serial port name the agent looks for.
pub const AGENT_PORT_NAME: &str = "hull.agent";

/// QEMU's microvm machine, with KVM or the TCG software emulator.
#[derive(Debug, Clone)]
pub struct Qemu {
    /// Use KVM (only on hosts whose KVM runs Linux guests at full speed).
    pub kvm: bool,
}

impl Hypervisor for Qemu {
    fn name(&self) -> &'static str {
        "qemu"
    }

    fn accel(&self) -> &'static str {
        if self.kvm {
            "kvm"
        } else {
            "tcg"
        }
    }

    fn prepare(&self, config: &VmConfig) -> Result<VmLaunch, HypervisorError> {
        let program = find_program("qemu-system-x86_64")
            .ok_or_else(|| HypervisorError::MissingProgram("qemu-system-x86_64".into()))?;
        check_files(config)?;
        Ok(VmLaunch {
            program,
            args: self.args(config),
            agent: AgentTransport::Stream(config.agent_socket.clone()),
            control: VmControl::Qmp(config.control_socket.clone()),
        })
    }
}

impl Qemu {
    /// QEMU's arguments for `config`.
    fn args(&self, config: &VmConfig) -> Vec<OsString> {
        let mut cmdline: Vec<String> = BASE_CMDLINE.iter().map(|s| s.to_string()).collect();
        cmdline.push(format!("hull.channel=serial:{AGENT_PORT_NAME}"));
        cmdline.extend(config.extra_cmdline.iter().cloned());

        let mut args: Vec<OsString> = Vec::new();
        let mut arg = |a: String| args.push(a.into());
        arg("-M".into());
        arg("microvm,acpi=off,x-option-roms=off,memory-backend=mem".into());
        arg("-accel".into());
        arg(self.accel().into());
        arg("-cpu".into());
        // `-cpu host` aborts on PVM hosts over MSR 0x10a; without
        // arch-capabilities it works everywhere KVM does.
        arg(if self.kvm {
            "host,-arch-capabilities"
        } else {
            "max"
        }
        .into());
        arg("-smp".into());
        arg(config.vcpus.to_string());
        arg("-m".into());
        arg(format!("{}M", config.memory_mib));
        arg("-object".into());
        arg(format!(
            "memory-backend-memfd,id=mem,size={}M,share=on",
            config.memory_mib
        ));
        for fixed in [
            "-nodefaults",
            "-no-user-config",
            "-no-reboot",
            "-display",
            "none",
            "-monitor",
            "none",
        ] {
            arg(fixed.into());
        }
        arg("-qmp".into());
        arg(format!(
            "unix:{},server=on,wait=off",
            config.control_socket.display()
        ));
        arg("-serial".into());
        arg(format!("file:{}", config.console_log.display()));
        arg("-kernel".into());
        arg(config.kernel.display().to_string());
        arg("-initrd".into());
        arg(config.initrd.display().to_string());
        arg("-append".into());
        arg(cmdline.join(" "));
        arg("-device".into());
        arg("virtio-serial-device".into());
        arg("-chardev".into());
        arg(format!(
            "socket,id=agent,path={},server=on,wait=off",
            config.agent_socket.display()
        ));
        arg("-device".into());
        arg(format!(
            "virtserialport,chardev=agent,name={AGENT_PORT_NAME}"
        ));
        for (index, share) in config.fs_shares.iter().enumerate() {
            arg("-chardev".into());
            arg(format!(
                "socket,id=fs{index},path={}",
                share.socket.display()
            ));
            arg("-device".into());
            arg(format!(
                "vhost-user-fs-device,chardev=fs{index},tag={}",
                share.tag
            ));
        }
        for (index, net) in config.net.iter().enumerate() {
            arg("-netdev".into());
            arg(format!(
                "tap,id=net{index},ifname={},script=no,downscript=no",
                net.tap
            ));
            arg("-device".into());
            arg(format!(
                "virtio-net-device,netdev=net{index},mac={}",
                net.mac
            ));
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn command_line_has_the_agent_port_and_shares() {
        let config = VmConfig {
            kernel: PathBuf::from("/k/vmlinux"),
            initrd: PathBuf::from("/k/initrd"),
            extra_cmdline: vec!["hull.test=1".into()],
            vcpus: 2,
            memory_mib: 300,
            console_log: PathBuf::from("/s/console.log"),
            control_socket: PathBuf::from("/s/qmp.sock"),
            agent_socket: PathBuf::from("/s/agent.sock"),
            fs_shares: vec![super::super::FsShare {
                tag: "hull".into(),
                socket: PathBuf::from("/s/fs.sock"),
            }],
            net: vec![super::super::NetDevice {
                tap: "hulltap0".into(),
                mac: "02:00:00:00:00:01".into(),
            }],
        };
        let args: Vec<String> = (Qemu { kvm: false })
            .args(&config)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let joined = args.join(" ");
        assert!(joined.contains("-accel tcg -cpu max -smp 2 -m 300M"));
        assert!(joined.contains("memory-backend-memfd,id=mem,size=300M,share=on"));
        assert!(joined.contains("socket,id=agent,path=/s/agent.sock,server=on,wait=off"));
        assert!(joined.contains("vhost-user-fs-device,chardev=fs0,tag=hull"));
        assert!(joined.contains("-netdev tap,id=net0,ifname=hulltap0,script=no,downscript=no -device virtio-net-device,netdev=net0,mac=02:00:00:00:00:01"));
        let append = &args[args.iter().position(|a| a == "-append").unwrap() + 1];
        assert!(
            append.contains("hull.channel=serial:hull.agent") && append.ends_with("hull.test=1")
        );
    }
}
