//! What this host offers for running microVMs, and the backend that follows.

use crate::hypervisor::{HullVmm, Hypervisor, Qemu};
use std::fs::OpenOptions;
use std::path::Path;

/// The kind of KVM the host has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kvm {
    /// /dev/kvm backed by VMX or SVM: Linux guests run at native speed.
    Hardware,
    /// /dev/kvm without VMX/SVM: a paravirtual KVM (PVM) inside another VM.
    /// An unmodified Linux guest is emulated instruction by instruction
    /// there and does not reach user space; it needs a PVM guest kernel.
    Paravirtual,
    /// No usable /dev/kvm.
    None,
}

/// The host, as far as Hull cares.
#[derive(Debug, Clone)]
pub struct Platform {
    /// The KVM found.
    pub kvm: Kvm,
    /// Why /dev/kvm is not usable, when it is not.
    pub kvm_error: Option<String>,
}

impl Platform {
    /// Probes /dev/kvm and the CPU flags.
    pub fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        Self::from_probe(
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(Path::new("/dev/kvm"))
                .map(|_| ())
                .map_err(|e| e.to_string()),
            &cpuinfo,
        )
    }

    fn from_probe(kvm_open: Result<(), String>, cpuinfo: &str) -> Self {
        let virt_flag = cpuinfo
            .lines()
            .filter(|line| line.starts_with("flags"))
            .any(|line| {
                line.split_whitespace()
                    .any(|flag| flag == "vmx" || flag == "svm")
            });
        match kvm_open {
            Err(err) => Self {
                kvm: Kvm::None,
                kvm_error: Some(format!("/dev/kvm: {err}")),
            },
            Ok(()) if virt_flag => Self {
                kvm: Kvm::Hardware,
                kvm_error: None,
            },
            Ok(()) => Self {
                kvm: Kvm::Paravirtual,
                kvm_error: None,
            },
        }
    }

    /// The backend `hull run` uses when none is named: hull-vmm on hardware
    /// KVM (QEMU with KVM if hull-vmm is not installed); elsewhere QEMU's
    /// emulator (TCG), since a Linux guest cannot run on PVM or without KVM.
    pub fn default_hypervisor(&self) -> Box<dyn Hypervisor> {
        match self.kvm {
            Kvm::Hardware if HullVmm::program().is_some() => Box::new(HullVmm),
            kvm => Box::new(Qemu {
                kvm: kvm == Kvm::Hardware,
            }),
        }
    }

    /// The backend called `name` (`hull`, `qemu`, `qemu-tcg`, `qemu-kvm`).
    pub fn hypervisor(&self, name: &str) -> Option<Box<dyn Hypervisor>> {
        match name {
            "hull" => Some(Box::new(HullVmm)),
            "qemu" => Some(Box::new(Qemu {
                kvm: self.kvm == Kvm::Hardware,
            })),
            "qemu-tcg" => Some(Box::new(Qemu { kvm: false })),
            "qemu-kvm" => Some(Box::new(Qemu { kvm: true })),
            _ => None,
        }
    }

    /// Why [`Self::default_hypervisor`] picked what it picked, for `hull info`.
    pub fn explain_default(&self) -> &'static str {
        match self.kvm {
            Kvm::Hardware if HullVmm::program().is_some() => {
                "hull-vmm on hardware KVM (VMX/SVM); its KVM-lab suite passes in CI"
            }
            Kvm::Hardware => "QEMU with KVM: hardware KVM, but hull-vmm is not installed",
            Kvm::Paravirtual => {
                "QEMU's emulator (TCG): PVM cannot run Hull's guest kernel; hull-vmm needs VMX/SVM"
            }
            Kvm::None => "QEMU's emulator (TCG): no usable /dev/kvm",
        }
    }

    /// One line about the host's KVM, for `hull info`.
    pub fn describe_kvm(&self) -> String {
        match self.kvm {
            Kvm::Hardware => "hardware (VMX/SVM)".into(),
            Kvm::Paravirtual => "paravirtual (PVM: /dev/kvm without VMX/SVM; Linux guests need a PVM guest kernel, see --kernel)".into(),
            Kvm::None => format!("none ({})", self.kvm_error.as_deref().unwrap_or("unavailable")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_kvm() {
        let vmx = "flags\t\t: fpu vme vmx sse\n";
        let plain = "flags\t\t: fpu vme sse\n";
        assert_eq!(Platform::from_probe(Ok(()), vmx).kvm, Kvm::Hardware);
        assert_eq!(Platform::from_probe(Ok(()), plain).kvm, Kvm::Paravirtual);
        assert_eq!(
            Platform::from_probe(Err("No such file".into()), vmx).kvm,
            Kvm::None
        );
        assert_eq!(
            Platform::from_probe(Ok(()), plain)
                .default_hypervisor()
                .accel(),
            "tcg"
        );
        assert_eq!(
            Platform::from_probe(Ok(()), vmx)
                .default_hypervisor()
                .accel(),
            "kvm"
        );
        assert_eq!(
            Platform::from_probe(Ok(()), plain)
                .default_hypervisor()
                .name(),
            "qemu"
        );
    }
}
