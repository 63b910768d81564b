//! Register state of the boot vCPU at the kernel's first instruction, and the
//! per-vCPU state every vCPU needs (FPU, MSRs, local APIC LINT pins).

use kvm_bindings::{kvm_fpu, kvm_msr_entry, kvm_regs, kvm_sregs, Msrs};
use kvm_ioctls::VcpuFd;
use vm_memory::{Bytes, GuestAddress};

use crate::boot::gdt::{gdt_entry, segment_from_entry, CODE32, CODE64, DATA, TSS};
use crate::boot::{BootProtocol, LoadedKernel};
use crate::layout::{
    BOOT_GDT_START, BOOT_IDT_START, BOOT_STACK_POINTER, PDE_START, PDPTE_START, PML4_START,
    PVH_INFO_START, ZERO_PAGE_START,
};
use crate::memory::GuestMemory;

/// Errors while setting vCPU registers.
#[derive(Debug, thiserror::Error)]
pub enum RegsError {
    /// A KVM register ioctl failed.
    #[error("cannot set vCPU {what}: {source}")]
    Ioctl {
        /// Which state.
        what: &'static str,
        /// Underlying error.
        source: kvm_ioctls::Error,
    },
    /// Writing GDT or page tables to guest memory failed.
    #[error("cannot write {0} to guest memory")]
    GuestWrite(&'static str),
}

const X86_CR0_PE: u64 = 1 << 0;
const X86_CR0_ET: u64 = 1 << 4;
const X86_CR0_NW: u64 = 1 << 29;
const X86_CR0_CD: u64 = 1 << 30;
const X86_CR0_PG: u64 = 1 << 31;
const X86_CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;

const MSR_IA32_MISC_ENABLE: u32 = 0x1a0;
const MSR_IA32_MISC_ENABLE_FAST_STRING: u64 = 1;
const MSR_MTRR_DEF_TYPE: u32 = 0x2ff;
/// MTRRs enabled, default type write-back.
const MTRR_ENABLE_WRITE_BACK: u64 = (1 << 11) | 6;

const APIC_LVT0: usize = 0x350;
const APIC_LVT1: usize = 0x360;
const APIC_MODE_NMI: u32 = 0x4;
const APIC_MODE_EXTINT: u32 = 0x7;

fn boot_gdt(protocol: BootProtocol) -> [u64; 4] {
    let code = match protocol {
        BootProtocol::Linux64 => CODE64,
        BootProtocol::Pvh => CODE32,
    };
    [
        0,
        gdt_entry(code, 0, 0xfffff),
        gdt_entry(DATA, 0, 0xfffff),
        gdt_entry(TSS, 0, 0xfffff),
    ]
}

/// Writes the boot GDT and empty IDT and, for the 64-bit entry, page tables
/// identity-mapping the first GiB with 2 MiB pages.
pub fn write_boot_tables(memory: &GuestMemory, protocol: BootProtocol) -> Result<(), RegsError> {
    let gdt: Vec<u8> = boot_gdt(protocol)
        .iter()
        .flat_map(|e| e.to_le_bytes())
        .collect();
    memory
        .write_slice(&gdt, GuestAddress(BOOT_GDT_START))
        .map_err(|_| RegsError::GuestWrite("the GDT"))?;
    memory
        .write_obj(0u64, GuestAddress(BOOT_IDT_START))
        .map_err(|_| RegsError::GuestWrite("the IDT"))?;
    if protocol == BootProtocol::Linux64 {
        memory
            .write_obj(PDPTE_START | 0x03, GuestAddress(PML4_START))
            .map_err(|_| RegsError::GuestWrite("the PML4"))?;
        memory
            .write_obj(PDE_START | 0x03, GuestAddress(PDPTE_START))
            .map_err(|_| RegsError::GuestWrite("the PDPT"))?;
        // Present, writable, 2 MiB page.
        let pde: Vec<u8> = (0..512u64)
            .flat_map(|i| ((i << 21) | 0x83).to_le_bytes())
            .collect();
        memory
            .write_slice(&pde, GuestAddress(PDE_START))
            .map_err(|_| RegsError::GuestWrite("the page directory"))?;
    }
    Ok(())
}

/// Sets the general-purpose registers of the boot vCPU.
pub fn setup_regs(vcpu: &VcpuFd, kernel: &LoadedKernel) -> Result<(), RegsError> {
    let regs = match kernel.protocol {
        BootProtocol::Linux64 => kvm_regs {
            rflags: 0x2,
            rip: kernel.entry.0,
            rsp: BOOT_STACK_POINTER,
            rbp: BOOT_STACK_POINTER,
            rsi: ZERO_PAGE_START,
            ..Default::default()
        },
        BootProtocol::Pvh => kvm_regs {
            rflags: 0x2,
            rip: kernel.entry.0,
            rbx: PVH_INFO_START,
            ..Default::default()
        },
    };
    vcpu.set_regs(&regs).map_err(|source| RegsError::Ioctl {
        what: "registers",
        source,
    })
}

/// Sets the special registers of the boot vCPU: flat segments from the boot
/// GDT, and for the 64-bit entry paging and long mode.
pub fn setup_sregs(vcpu: &VcpuFd, protocol: BootProtocol) -> Result<(), RegsError> {
    let mut sregs: kvm_sregs = vcpu.get_sregs().map_err(|source| RegsError::Ioctl {
        what: "special registers (read)",
        source,
    })?;
    let gdt = boot_gdt(protocol);
    let code = segment_from_entry(gdt[1], 1);
    let data = segment_from_entry(gdt[2], 2);
    let tss = segment_from_entry(gdt[3], 3);
    sregs.gdt.base = BOOT_GDT_START;
    sregs.gdt.limit = (std::mem::size_of_val(&gdt) - 1) as u16;
    sregs.idt.base = BOOT_IDT_START;
    sregs.idt.limit = 7;
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = tss;
    sregs.cr0 = (sregs.cr0 & !(X86_CR0_CD | X86_CR0_NW)) | X86_CR0_PE | X86_CR0_ET;
    match protocol {
        BootProtocol::Linux64 => {
            sregs.cr3 = PML4_START;
            sregs.cr4 |= X86_CR4_PAE;
            sregs.cr0 |= X86_CR0_PG;
            sregs.efer |= EFER_LME | EFER_LMA;
        }
        BootProtocol::Pvh => {
            sregs.cr4 = 0;
        }
    }
    vcpu.set_sregs(&sregs).map_err(|source| RegsError::Ioctl {
        what: "special registers",
        source,
    })
}

/// Puts the FPU and SSE control words in their power-on state.
pub fn setup_fpu(vcpu: &VcpuFd) -> Result<(), RegsError> {
    let fpu = kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    };
    vcpu.set_fpu(&fpu).map_err(|source| RegsError::Ioctl {
        what: "FPU state",
        source,
    })
}

/// Sets the MSRs a kernel expects firmware to have set: fast string
/// operations on, MTRRs enabled with write-back as default type.
pub fn setup_msrs(vcpu: &VcpuFd) -> Result<(), RegsError> {
    let entries = [
        kvm_msr_entry {
            index: MSR_IA32_MISC_ENABLE,
            data: MSR_IA32_MISC_ENABLE_FAST_STRING,
            ..Default::default()
        },
        kvm_msr_entry {
            index: MSR_MTRR_DEF_TYPE,
            data: MTRR_ENABLE_WRITE_BACK,
            ..Default::default()
        },
    ];
    let msrs = Msrs::from_entries(&entries).map_err(|_| RegsError::Ioctl {
        what: "MSRs",
        source: kvm_ioctls::Error::new(libc::EINVAL),
    })?;
    let written = vcpu.set_msrs(&msrs).map_err(|source| RegsError::Ioctl {
        what: "MSRs",
        source,
    })?;
    if written != entries.len() {
        tracing::warn!(
            written,
            wanted = entries.len(),
            "KVM accepted only some boot MSRs"
        );
    }
    Ok(())
}

fn set_delivery_mode(reg: u32, mode: u32) -> u32 {
    (reg & !0x700) | (mode << 8)
}

/// Wires local APIC LINT0 to ExtINT (the 8259 PIC) and LINT1 to NMI, as the
/// MP table says and as firmware would have done.
pub fn setup_lint(vcpu: &VcpuFd) -> Result<(), RegsError> {
    let mut lapic = vcpu.get_lapic().map_err(|source| RegsError::Ioctl {
        what: "local APIC (read)",
        source,
    })?;
    for (offset, mode) in [(APIC_LVT0, APIC_MODE_EXTINT), (APIC_LVT1, APIC_MODE_NMI)] {
        let mut raw = [0u8; 4];
        for (i, byte) in raw.iter_mut().enumerate() {
            *byte = lapic.regs[offset + i] as u8;
        }
        let value = set_delivery_mode(u32::from_le_bytes(raw), mode).to_le_bytes();
        for (i, byte) in value.iter().enumerate() {
            lapic.regs[offset + i] = *byte as _;
        }
    }
    vcpu.set_lapic(&lapic).map_err(|source| RegsError::Ioctl {
        what: "local APIC",
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::create_guest_memory;

    #[test]
    fn page_tables_identity_map_first_gib() {
        let (mem, _) = create_guest_memory(4).unwrap();
        write_boot_tables(&mem, BootProtocol::Linux64).unwrap();
        let pml4: u64 = mem.read_obj(GuestAddress(PML4_START)).unwrap();
        assert_eq!(pml4, PDPTE_START | 3);
        let last: u64 = mem.read_obj(GuestAddress(PDE_START + 511 * 8)).unwrap();
        assert_eq!(last, (511 << 21) | 0x83);
    }

    #[test]
    fn delivery_mode_replaces_bits_8_to_10() {
        assert_eq!(set_delivery_mode(0x0001_0700, APIC_MODE_NMI), 0x0001_0400);
        assert_eq!(set_delivery_mode(0, APIC_MODE_EXTINT), 0x700);
    }
}
