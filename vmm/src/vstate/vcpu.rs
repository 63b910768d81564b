//! vCPUs: creation, CPUID, and the run loop (one thread per vCPU).

use super::pause::PauseGate;
use std::sync::Arc;
use std::thread::JoinHandle;

use kvm_bindings::{
    CpuId, KVM_SYSTEM_EVENT_CRASH, KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN,
};
use kvm_ioctls::{VcpuExit, VcpuFd};

use crate::boot::{regs, LoadedKernel};
use crate::bus::Bus;
use crate::exit::{ExitHandle, VmExit};
use crate::vstate::vm::Vm;

/// Errors while creating or configuring a vCPU.
#[derive(Debug, thiserror::Error)]
pub enum VcpuError {
    /// `KVM_CREATE_VCPU` failed.
    #[error("cannot create vCPU {index}: {source}")]
    Create {
        /// vCPU index.
        index: u8,
        /// Underlying error.
        source: kvm_ioctls::Error,
    },
    /// `KVM_SET_CPUID2` failed.
    #[error("cannot set CPUID of vCPU {index}: {source}")]
    Cpuid {
        /// vCPU index.
        index: u8,
        /// Underlying error.
        source: kvm_ioctls::Error,
    },
    /// Setting registers failed.
    #[error("vCPU {index}: {source}")]
    Regs {
        /// vCPU index.
        index: u8,
        /// Underlying error.
        source: regs::RegsError,
    },
    /// The thread could not be spawned.
    #[error("cannot start the thread of vCPU {index}: {source}")]
    Thread {
        /// vCPU index.
        index: u8,
        /// Underlying error.
        source: std::io::Error,
    },
}

/// What a vCPU thread dispatches its exits to.
#[derive(Clone, Debug)]
pub struct VcpuContext {
    /// Port I/O devices.
    pub pio_bus: Arc<Bus>,
    /// MMIO devices.
    pub mmio_bus: Arc<Bus>,
    /// Where to report the end of the VM.
    pub exit: ExitHandle,
    /// Where the vCPU parks while the VM is paused.
    pub pause: Arc<PauseGate>,
    /// The vCPU threads' seccomp filter, installed before the first `KVM_RUN`.
    pub seccomp: Option<Arc<seccompiler::BpfProgram>>,
}

/// One configured vCPU, not yet running.
#[derive(Debug)]
pub struct Vcpu {
    index: u8,
    fd: VcpuFd,
}

const CPUID_LEAF_FEATURES: u32 = 0x1;
const CPUID_LEAF_EXT_TOPOLOGY: u32 = 0xb;
const CPUID_LEAF_EXT_TOPOLOGY_V2: u32 = 0x1f;
const CPUID_ECX_HYPERVISOR: u32 = 1 << 31;
const CPUID_EDX_HTT: u32 = 1 << 28;

/// Adjusts KVM's supported CPUID for vCPU `index` of `count`: its APIC id
/// (equal to the index, as in the MP table), the logical processor count,
/// and the hypervisor bit.
pub fn patch_cpuid(cpuid: &mut CpuId, index: u8, count: u8) {
    for entry in cpuid.as_mut_slice() {
        match entry.function {
            CPUID_LEAF_FEATURES => {
                entry.ebx =
                    (entry.ebx & 0x0000_ffff) | (u32::from(index) << 24) | (u32::from(count) << 16);
                entry.ecx |= CPUID_ECX_HYPERVISOR;
                if count > 1 {
                    entry.edx |= CPUID_EDX_HTT;
                }
            }
            CPUID_LEAF_EXT_TOPOLOGY | CPUID_LEAF_EXT_TOPOLOGY_V2 => {
                entry.edx = u32::from(index);
            }
            _ => {}
        }
    }
}

impl Vcpu {
    /// Creates vCPU `index` of `count` with its CPUID, MSRs, FPU and LAPIC
    /// LINT pins set. The boot vCPU (index 0) also gets the entry registers;
    /// the others wait in the in-kernel local APIC for INIT/SIPI from the
    /// guest, as on real hardware.
    pub fn new(
        vm: &Vm,
        index: u8,
        count: u8,
        base_cpuid: &CpuId,
        kernel: &LoadedKernel,
    ) -> Result<Self, VcpuError> {
        let fd = vm
            .fd()
            .create_vcpu(u64::from(index))
            .map_err(|source| VcpuError::Create { index, source })?;
        let mut cpuid = base_cpuid.clone();
        patch_cpuid(&mut cpuid, index, count);
        fd.set_cpuid2(&cpuid)
            .map_err(|source| VcpuError::Cpuid { index, source })?;
        let regs_err = |source| VcpuError::Regs { index, source };
        regs::setup_msrs(&fd).map_err(regs_err)?;
        regs::setup_fpu(&fd).map_err(regs_err)?;
        regs::setup_lint(&fd).map_err(regs_err)?;
        if index == 0 {
            regs::setup_regs(&fd, kernel).map_err(regs_err)?;
            regs::setup_sregs(&fd, kernel.protocol).map_err(regs_err)?;
        }
        Ok(Vcpu { index, fd })
    }

    /// Starts the vCPU's thread; it runs until the VM ends.
    pub fn start(self, context: VcpuContext) -> Result<JoinHandle<()>, VcpuError> {
        let index = self.index;
        std::thread::Builder::new()
            .name(format!("vcpu{index}"))
            // The run loop needs little stack; keep the RSS small.
            .stack_size(256 * 1024)
            .spawn(move || self.run(&context))
            .map_err(|source| VcpuError::Thread { index, source })
    }

    fn run(mut self, context: &VcpuContext) {
        if let Some(program) = &context.seccomp {
            if let Err(err) = crate::seccomp::apply(crate::seccomp::ThreadKind::Vcpu, program) {
                context
                    .exit
                    .request(VmExit::Failure(format!("vCPU {}: {err}", self.index)));
                return;
            }
        }
        loop {
            context.pause.park_if_paused();
            if let Some(reason) = self.run_once(context) {
                context.exit.request(reason);
                return;
            }
        }
    }

    /// Runs the guest until the next exit and handles it; returns the end
    /// of the VM if this exit ends it.
    fn run_once(&mut self, context: &VcpuContext) -> Option<VmExit> {
        let index = self.index;
        match self.fd.run() {
            Ok(VcpuExit::IoOut(port, data)) => {
                if !context.pio_bus.write(u64::from(port), data) {
                    tracing::trace!(port, "write to unhandled I/O port");
                }
                None
            }
            Ok(VcpuExit::IoIn(port, data)) => {
                if !context.pio_bus.read(u64::from(port), data) {
                    data.fill(0xff);
                }
                None
            }
            Ok(VcpuExit::MmioWrite(addr, data)) => {
                if !context.mmio_bus.write(addr, data) {
                    tracing::debug!(addr, "write to unhandled MMIO address");
                }
                None
            }
            Ok(VcpuExit::MmioRead(addr, data)) => {
                if !context.mmio_bus.read(addr, data) {
                    data.fill(0xff);
                }
                None
            }
            Ok(VcpuExit::Shutdown) => Some(VmExit::TripleFault),
            Ok(VcpuExit::Hlt) => Some(VmExit::PowerOff),
            Ok(VcpuExit::SystemEvent(kind, _)) => Some(match kind {
                KVM_SYSTEM_EVENT_SHUTDOWN => VmExit::PowerOff,
                KVM_SYSTEM_EVENT_RESET => VmExit::Reset,
                KVM_SYSTEM_EVENT_CRASH => VmExit::Failure(format!("vCPU {index}: guest crashed")),
                other => VmExit::Failure(format!("vCPU {index}: unknown system event {other}")),
            }),
            Ok(VcpuExit::FailEntry(reason, cpu)) => Some(VmExit::Failure(format!(
                "vCPU {index}: KVM entry failed (hardware reason {reason:#x}, cpu {cpu})"
            ))),
            Ok(VcpuExit::InternalError) => {
                let rip = self.fd.get_regs().map(|r| r.rip).unwrap_or(0);
                Some(VmExit::Failure(format!(
                    "vCPU {index}: KVM internal error at rip {rip:#x}"
                )))
            }
            Ok(VcpuExit::IoapicEoi(_)) | Ok(VcpuExit::Intr) | Ok(VcpuExit::IrqWindowOpen) => None,
            Ok(other) => Some(VmExit::Failure(format!(
                "vCPU {index}: unexpected KVM exit {other:?}"
            ))),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => None,
            Err(e) => Some(VmExit::Failure(format!(
                "vCPU {index}: KVM_RUN failed: {e}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvm_bindings::kvm_cpuid_entry2;

    #[test]
    fn cpuid_gets_apic_id_and_count() {
        let entries = [
            kvm_cpuid_entry2 {
                function: 1,
                ebx: 0xff00_0800,
                ..Default::default()
            },
            kvm_cpuid_entry2 {
                function: 0xb,
                index: 1,
                ..Default::default()
            },
        ];
        let mut cpuid = CpuId::from_entries(&entries).unwrap();
        patch_cpuid(&mut cpuid, 3, 4);
        let slice = cpuid.as_slice();
        assert_eq!(slice[0].ebx >> 24, 3);
        assert_eq!((slice[0].ebx >> 16) & 0xff, 4);
        assert_eq!(slice[0].ebx & 0xffff, 0x0800);
        assert_ne!(slice[0].ecx & CPUID_ECX_HYPERVISOR, 0);
        assert_ne!(slice[0].edx & CPUID_EDX_HTT, 0);
        assert_eq!(slice[1].edx, 3);
    }
}
