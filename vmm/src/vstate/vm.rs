//! The KVM virtual machine: memory slots, the in-kernel interrupt
//! controllers, irqfds and ioeventfds.
//!
//! Hull uses the full in-kernel irqchip (PIC, IO APIC, local APICs) and the
//! in-kernel PIT. On this machine's PVM host creating them costs about
//! 0.1 ms together (measured: irqchip 25-150 µs, PIT 40-150 µs), so the split
//! irqchip (which needs a user-space IO APIC) would buy nothing measurable.
//!
//! Order matters: a memory slot registered *after* the irqchip exists costs
//! a fixed 4-6 ms here whatever its size (measured with 2 MiB to 1 GiB),
//! one registered before it about 50 µs. So guest memory is registered
//! first, then the interrupt controllers are created.

use kvm_bindings::{kvm_pit_config, kvm_userspace_memory_region, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::{IoEventAddress, VmFd};
use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};
use vmm_sys_util::eventfd::EventFd;

use crate::layout::KVM_TSS_ADDRESS;
use crate::memory::GuestMemory;
use crate::vstate::kvm::KvmContext;

/// Errors while setting up the VM.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// `KVM_CREATE_VM` failed.
    #[error("cannot create the VM: {0}")]
    Create(kvm_ioctls::Error),
    /// `KVM_SET_TSS_ADDR` failed.
    #[error("cannot set the TSS address: {0}")]
    TssAddress(kvm_ioctls::Error),
    /// `KVM_CREATE_IRQCHIP` failed.
    #[error("cannot create the in-kernel irqchip: {0}")]
    Irqchip(kvm_ioctls::Error),
    /// `KVM_CREATE_PIT2` failed.
    #[error("cannot create the in-kernel PIT: {0}")]
    Pit(kvm_ioctls::Error),
    /// `KVM_SET_USER_MEMORY_REGION` failed.
    #[error("cannot register guest memory slot {slot}: {source}")]
    MemorySlot {
        /// Slot number.
        slot: u32,
        /// Underlying error.
        source: kvm_ioctls::Error,
    },
    /// `KVM_IRQFD` failed.
    #[error("cannot register irqfd for GSI {gsi}: {source}")]
    Irqfd {
        /// Interrupt line.
        gsi: u32,
        /// Underlying error.
        source: kvm_ioctls::Error,
    },
    /// `KVM_IOEVENTFD` failed.
    #[error("cannot register ioeventfd at {addr:#x}: {source}")]
    Ioeventfd {
        /// Guest address.
        addr: u64,
        /// Underlying error.
        source: kvm_ioctls::Error,
    },
}

/// A KVM VM with its interrupt controllers.
#[derive(Debug)]
pub struct Vm {
    fd: VmFd,
}

impl Vm {
    /// Creates the VM with `memory` registered, the in-kernel irqchip and
    /// the PIT.
    pub fn new(kvm: &KvmContext, memory: &GuestMemory) -> Result<Self, VmError> {
        let fd = kvm.fd().create_vm().map_err(VmError::Create)?;
        let vm = Vm { fd };
        vm.register_memory(memory)?;
        let fd = &vm.fd;
        fd.set_tss_address(KVM_TSS_ADDRESS as usize)
            .map_err(VmError::TssAddress)?;
        fd.create_irq_chip().map_err(VmError::Irqchip)?;
        let pit = kvm_pit_config {
            // Port 0x61 bit 4 toggles without a speaker model behind it.
            flags: KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        };
        fd.create_pit2(pit).map_err(VmError::Pit)?;
        Ok(vm)
    }

    /// The underlying VM descriptor.
    pub fn fd(&self) -> &VmFd {
        &self.fd
    }

    /// Registers every region of `memory` as a KVM memory slot.
    fn register_memory(&self, memory: &GuestMemory) -> Result<(), VmError> {
        for (index, region) in memory.iter().enumerate() {
            let slot = index as u32;
            let host_addr =
                memory
                    .get_host_address(region.start_addr())
                    .map_err(|_| VmError::MemorySlot {
                        slot,
                        source: kvm_ioctls::Error::new(libc::EFAULT),
                    })?;
            let descriptor = kvm_userspace_memory_region {
                slot,
                flags: 0,
                guest_phys_addr: region.start_addr().0,
                memory_size: region.len(),
                userspace_addr: host_addr as u64,
            };
            // SAFETY: the host range [userspace_addr, +memory_size) is a live
            // mapping owned by `memory`, which outlives the VM: the VMM keeps
            // both until the process exits.
            unsafe { self.fd.set_user_memory_region(descriptor) }
                .map_err(|source| VmError::MemorySlot { slot, source })?;
        }
        Ok(())
    }

    /// Makes a write to `eventfd` raise interrupt line `gsi`.
    pub fn register_irqfd(&self, eventfd: &EventFd, gsi: u32) -> Result<(), VmError> {
        self.fd
            .register_irqfd(eventfd, gsi)
            .map_err(|source| VmError::Irqfd { gsi, source })
    }

    /// Makes a guest write of `datamatch` (any value if `None`) to MMIO
    /// address `addr` signal `eventfd` without leaving the kernel.
    pub fn register_mmio_ioeventfd(
        &self,
        eventfd: &EventFd,
        addr: u64,
        datamatch: Option<u32>,
    ) -> Result<(), VmError> {
        let result = match datamatch {
            Some(value) => self
                .fd
                .register_ioevent(eventfd, &IoEventAddress::Mmio(addr), value),
            None => self.fd.register_ioevent(
                eventfd,
                &IoEventAddress::Mmio(addr),
                kvm_ioctls::NoDatamatch,
            ),
        };
        result.map_err(|source| VmError::Ioeventfd { addr, source })
    }
}
