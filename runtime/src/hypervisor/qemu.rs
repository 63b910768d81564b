//! The QEMU backend: `qemu-system-x86_64 -M microvm`.
//!
//! QEMU 7.2 (Debian bookworm) has no vsock device that works without
//! /dev/vhost-vsock, so the agent's channel is a virtio-serial port backed by
//! a unix socket. Guest memory is a shared memfd so that vhost-user devices
//! (virtiofsd) can map it.
//!
//! QEMU runs confined, as libvirt runs it: under its own seccomp filter
//! (`-sandbox`, which also sets no_new_privs: no set*id, no fork or exec,
//! no obsolete calls, no scheduler or resource changes) and, when the
//! sandbox gives it a [`super::VmmUser`], as that unprivileged user. It then
//! opens nothing of root's and makes nothing the monitor later opens: the
//! kernel and initramfs come as inherited descriptors (`/proc/self/fd/N`),
//! the taps as `fd=N`, its control and agent sockets as listening sockets
//! the monitor bound (`fd=N`), its console as a file the monitor made. It
//! reaches one path itself: virtiofsd's socket.

use super::{
    check_files, find_program, AgentTransport, Hypervisor, HypervisorError, Inherited, Overhead,
    VmConfig, VmControl, VmLaunch, BASE_CMDLINE,
};
use std::ffi::OsString;
use std::os::fd::RawFd;

/// The virtio-serial port name the agent looks for.
pub const AGENT_PORT_NAME: &str = "hull.agent";

/// QEMU's own seccomp filter, as strict as it comes.
const SANDBOX: &str = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

/// Where an unprivileged QEMU finds the kernel, the initramfs and its taps
/// (high, clear of what the spawn itself uses).
const KERNEL_FD: RawFd = 900;
const INITRD_FD: RawFd = 901;
const CONTROL_FD: RawFd = 902;
const AGENT_FD: RawFd = 903;
const CONSOLE_FD: RawFd = 904;
const FIRST_TAP_FD: RawFd = 905;

/// The emulator's translation cache, MiB (`-accel tcg,tb-size=`). QEMU's
/// default is 1 GiB, and every page of it the emulator once filled stays in
/// the VMM's memory for good, so a busy guest's VMM keeps growing towards
/// it. 64 MiB is QEMU's own default before 5.2 for a 256 MiB guest (a
/// quarter of its memory). Booting to a running container fills about
/// 35 MiB: measured here, 32 MiB made the cold `run` phase twice as long
/// and small-file I/O 1.5 times (the full cache is flushed and refilled),
/// 16 MiB `exec` twice as long, and 8 MiB ten times; 64 MiB ran as fast as
/// 1 GiB.
pub const TCG_TB_SIZE_MIB: u32 = 64;

/// The clock of QEMU's emulated local APIC timer, Hz: a fixed 1 GHz
/// (`APIC_BUS_CYCLE_NS`). Told it (`lapic_timer_hz=`, a patch of Hull's
/// kernel), the guest skips calibrating its timer against the PIT, 0.2 s of
/// every boot under the emulator. On KVM the guest has a TSC-deadline timer
/// and calibrates nothing.
const TCG_APIC_TIMER_HZ: u64 = 1_000_000_000;

/// Kernel arguments for a guest under the emulator, besides the TSC's
/// frequency: its APIC timer's clock ([`TCG_APIC_TIMER_HZ`]), and
/// `noreplace-smp`, which keeps the `lock` prefixes a one-vCPU kernel would
/// otherwise strip from each of its thousands of atomic instructions, one
/// `text_poke` (a page-table switch and a flush of translated code) each:
/// 40-50 ms of every boot. With one vCPU the emulator runs atomics as plain
/// instructions anyway.
fn tcg_cmdline() -> [String; 2] {
    [
        format!("lapic_timer_hz={TCG_APIC_TIMER_HZ}"),
        "noreplace-smp".to_string(),
    ]
}

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

    fn accel_options(&self) -> String {
        if self.kvm {
            String::new()
        } else {
            format!("tb-size={TCG_TB_SIZE_MIB}")
        }
    }

    fn overhead(&self) -> Overhead {
        Overhead {
            // Its own heap and device state; under TCG also its translation
            // cache.
            memory_mib: if self.kvm { 256 } else { 256 + TCG_TB_SIZE_MIB },
            // Its I/O worker pool (64 at most), the RCU and main threads.
            threads: 96,
        }
    }

    fn prepare(&self, config: &VmConfig) -> Result<VmLaunch, HypervisorError> {
        let program = find_program("qemu-system-x86_64")
            .ok_or_else(|| HypervisorError::MissingProgram("qemu-system-x86_64".into()))?;
        check_files(config)?;
        let mut inherited = Vec::new();
        if config.user.is_some() {
            inherited.push(Inherited::File {
                path: config.kernel.clone(),
                fd: KERNEL_FD,
            });
            inherited.push(Inherited::File {
                path: config.initrd.clone(),
                fd: INITRD_FD,
            });
            inherited.push(Inherited::Listener {
                path: config.control_socket.clone(),
                fd: CONTROL_FD,
            });
            inherited.push(Inherited::Listener {
                path: config.agent_socket.clone(),
                fd: AGENT_FD,
            });
            inherited.push(Inherited::Output {
                path: config.console_log.clone(),
                fd: CONSOLE_FD,
            });
            for (index, net) in config.net.iter().enumerate() {
                inherited.push(Inherited::Tap {
                    name: net.tap.clone(),
                    fd: tap_fd(index),
                });
            }
        }
        Ok(VmLaunch {
            program,
            args: self.args(config),
            agent: AgentTransport::Stream(config.agent_socket.clone()),
            control: VmControl::Qmp(config.control_socket.clone()),
            inherited,
            user: config.user.clone(),
        })
    }

    fn runs_unprivileged(&self) -> bool {
        true
    }
}

/// The descriptor of the `index`th tap of an unprivileged QEMU.
fn tap_fd(index: usize) -> RawFd {
    FIRST_TAP_FD.saturating_add(RawFd::try_from(index).unwrap_or(RawFd::MAX))
}

impl Qemu {
    /// QEMU's arguments for `config`.
    fn args(&self, config: &VmConfig) -> Vec<OsString> {
        let mut cmdline: Vec<String> = BASE_CMDLINE.iter().map(|s| s.to_string()).collect();
        cmdline.push(format!("hull.channel=serial:{AGENT_PORT_NAME}"));
        // Under the emulator the guest keeps time with the host's TSC only
        // if told its frequency (see `tsc`).
        if !self.kvm {
            if let Some(khz) = super::tsc::host_tsc_khz() {
                cmdline.push(format!("tsc_early_khz={khz}"));
            }
            cmdline.extend(tcg_cmdline());
        }
        cmdline.extend(config.extra_cmdline.iter().cloned());

        let mut args: Vec<OsString> = Vec::new();
        let mut arg = |a: String| args.push(a.into());
        arg("-M".into());
        arg("microvm,acpi=off,x-option-roms=off,memory-backend=mem".into());
        arg("-accel".into());
        arg(match self.accel_options() {
            options if options.is_empty() => self.accel().into(),
            options => format!("{},{options}", self.accel()),
        });
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
        arg("-sandbox".into());
        arg(SANDBOX.into());
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
        let unprivileged = config.user.is_some();
        if unprivileged {
            arg("-chardev".into());
            arg(format!("socket,id=qmp,fd={CONTROL_FD},server=on,wait=off"));
            arg("-mon".into());
            arg("chardev=qmp,mode=control".into());
            arg("-serial".into());
            arg(format!("file:/proc/self/fd/{CONSOLE_FD}"));
        } else {
            arg("-qmp".into());
            arg(format!(
                "unix:{},server=on,wait=off",
                config.control_socket.display()
            ));
            arg("-serial".into());
            arg(format!("file:{}", config.console_log.display()));
        }
        arg("-kernel".into());
        arg(if unprivileged {
            format!("/proc/self/fd/{KERNEL_FD}")
        } else {
            config.kernel.display().to_string()
        });
        arg("-initrd".into());
        arg(if unprivileged {
            format!("/proc/self/fd/{INITRD_FD}")
        } else {
            config.initrd.display().to_string()
        });
        arg("-append".into());
        arg(cmdline.join(" "));
        arg("-device".into());
        arg("virtio-serial-device".into());
        arg("-chardev".into());
        arg(if unprivileged {
            format!("socket,id=agent,fd={AGENT_FD},server=on,wait=off")
        } else {
            format!(
                "socket,id=agent,path={},server=on,wait=off",
                config.agent_socket.display()
            )
        });
        arg("-device".into());
        arg(format!(
            "virtserialport,chardev=agent,name={AGENT_PORT_NAME}"
        ));
        // The guest hands the pages it frees back (free page reporting):
        // QEMU punches them out of the memfd, so an idle VM's host memory
        // is what it uses now, not the most it ever touched (boot's
        // initramfs copy, freed caches, exited processes).
        arg("-device".into());
        arg("virtio-balloon-device,free-page-reporting=on".into());
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
            arg(if unprivileged {
                format!("tap,id=net{index},fd={}", tap_fd(index))
            } else {
                format!(
                    "tap,id=net{index},ifname={},script=no,downscript=no",
                    net.tap
                )
            });
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
            user: None,
        };
        let args: Vec<String> = (Qemu { kvm: false })
            .args(&config)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let joined = args.join(" ");
        assert!(joined.contains("-accel tcg,tb-size=64 -cpu max -smp 2 -m 300M"));
        assert!(joined.contains("memory-backend-memfd,id=mem,size=300M,share=on"));
        assert!(joined.contains("socket,id=agent,path=/s/agent.sock,server=on,wait=off"));
        assert!(joined.contains("vhost-user-fs-device,chardev=fs0,tag=hull"));
        assert!(joined.contains("-device virtio-balloon-device,free-page-reporting=on"));
        assert!(joined.contains("-netdev tap,id=net0,ifname=hulltap0,script=no,downscript=no -device virtio-net-device,netdev=net0,mac=02:00:00:00:00:01"));
        let append = &args[args.iter().position(|a| a == "-append").unwrap() + 1];
        assert!(
            append.contains("hull.channel=serial:hull.agent") && append.ends_with("hull.test=1")
        );
        // The emulated APIC timer's clock, so the guest need not measure it.
        assert!(
            append.contains(" lapic_timer_hz=1000000000 noreplace-smp "),
            "{append}"
        );
        assert!(joined.contains(&format!("-sandbox {SANDBOX}")));

        // Unprivileged: what root owns comes as descriptors.
        let user = super::super::VmmUser {
            uid: 0x7000_0100,
            gid: 0x7000_0100,
            groups: vec![],
        };
        let config = VmConfig {
            user: Some(user.clone()),
            ..config
        };
        let qemu = Qemu { kvm: false };
        let joined = qemu
            .args(&config)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        assert!(joined.contains("-kernel /proc/self/fd/900 -initrd /proc/self/fd/901"));
        assert!(joined.contains("-netdev tap,id=net0,fd=905 "));
        assert!(joined.contains("-chardev socket,id=qmp,fd=902,server=on,wait=off -mon chardev=qmp,mode=control -serial file:/proc/self/fd/904"));
        assert!(joined.contains("socket,id=agent,fd=903,server=on"));
        // The one path it reaches itself: virtiofsd's socket.
        assert!(
            !joined.contains("/s/agent.sock")
                && !joined.contains("/s/qmp.sock")
                && !joined.contains("/s/console.log"),
            "{joined}"
        );
        assert!(!joined.contains("/k/vmlinux") && !joined.contains("ifname="));
        let inherited = [
            Inherited::File {
                path: "/k/vmlinux".into(),
                fd: 900,
            },
            Inherited::File {
                path: "/k/initrd".into(),
                fd: 901,
            },
            Inherited::Listener {
                path: "/s/qmp.sock".into(),
                fd: 902,
            },
            Inherited::Listener {
                path: "/s/agent.sock".into(),
                fd: 903,
            },
            Inherited::Output {
                path: "/s/console.log".into(),
                fd: 904,
            },
            Inherited::Tap {
                name: "hulltap0".into(),
                fd: 905,
            },
        ];
        // prepare checks the files exist: make them.
        let dir = tempfile::tempdir().unwrap();
        let (kernel, initrd) = (dir.path().join("vmlinux"), dir.path().join("initrd"));
        std::fs::write(&kernel, b"k").unwrap();
        std::fs::write(&initrd, b"i").unwrap();
        if find_program("qemu-system-x86_64").is_some() {
            let launch = qemu
                .prepare(&VmConfig {
                    kernel: kernel.clone(),
                    initrd: initrd.clone(),
                    ..config
                })
                .unwrap();
            assert_eq!(launch.user, Some(user));
            assert_eq!(launch.inherited.len(), inherited.len());
            assert_eq!(launch.inherited[2..], inherited[2..]);
            assert_eq!(
                launch.inherited[0],
                Inherited::File {
                    path: kernel,
                    fd: 900
                }
            );
        }
    }
}
