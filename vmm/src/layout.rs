//! Guest physical memory layout shared by the boot code, the test guests and
//! the device manager.
//!
//! The low megabyte follows the PC conventions Linux expects; the kernel is
//! loaded at its own link address (normally 16 MiB for vmlinux, 1 MiB for a
//! bzImage and the test guests).

/// GDT used for the 64-bit entry (4 entries of 8 bytes).
pub const BOOT_GDT_START: u64 = 0x500;
/// Empty IDT used for the 64-bit entry.
pub const BOOT_IDT_START: u64 = 0x520;
/// PVH `hvm_start_info` structure.
pub const PVH_INFO_START: u64 = 0x6000;
/// PVH module list (one entry: the initrd).
pub const PVH_MODLIST_START: u64 = 0x6040;
/// PVH memory map (same page as the zero page: a kernel gets one or the other).
pub const PVH_MEMMAP_START: u64 = 0x7000;
/// Linux `boot_params` ("zero page").
pub const ZERO_PAGE_START: u64 = 0x7000;
/// Initial stack pointer for the 64-bit entry.
pub const BOOT_STACK_POINTER: u64 = 0x8ff0;
/// Page map level 4 of the identity-mapped boot page tables.
pub const PML4_START: u64 = 0x9000;
/// Page directory pointer table of the boot page tables.
pub const PDPTE_START: u64 = 0xa000;
/// Page directory of the boot page tables (2 MiB pages covering 1 GiB).
pub const PDE_START: u64 = 0xb000;
/// Kernel command line.
pub const CMDLINE_START: u64 = 0x20000;
/// Largest command line accepted (Linux's COMMAND_LINE_SIZE on x86).
pub const CMDLINE_MAX_SIZE: usize = 2048;
/// Start of the extended BIOS data area, where the MP table lives.
pub const EBDA_START: u64 = 0x9fc00;
/// End of conventional low memory (start of the VGA/BIOS hole).
pub const LOW_MEM_END: u64 = 0xa0000;
/// Start of "high" memory, where kernels are loaded.
pub const HIGH_MEM_START: u64 = 0x10_0000;
/// Start of the 32-bit MMIO hole below 4 GiB; guest RAM stops here and
/// continues at 4 GiB.
pub const MMIO_GAP_START: u64 = 0xc000_0000;
/// End of the 32-bit MMIO hole.
pub const MMIO_GAP_END: u64 = 0x1_0000_0000;
/// First virtio-mmio device window; each device gets [`VIRTIO_MMIO_SIZE`].
pub const VIRTIO_MMIO_START: u64 = 0xd000_0000;
/// Size of one virtio-mmio device window.
pub const VIRTIO_MMIO_SIZE: u64 = 0x1000;
/// Address of the IO APIC (the in-kernel one).
pub const IOAPIC_START: u64 = 0xfec0_0000;
/// Address of every local APIC.
pub const APIC_START: u64 = 0xfee0_0000;
/// The TSS KVM needs for real-mode emulation on Intel, just below the APICs.
pub const KVM_TSS_ADDRESS: u64 = 0xfffb_d000;
/// Number of interrupt pins on the IO APIC.
pub const IOAPIC_PINS: u32 = 24;
/// Legacy IRQ of the first serial port.
pub const SERIAL_IRQ: u32 = 4;
/// First IRQ handed to virtio-mmio devices.
pub const VIRTIO_IRQ_BASE: u32 = 5;
