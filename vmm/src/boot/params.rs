//! The boot information handed to the kernel: command line, memory map,
//! `boot_params` (Linux) or `hvm_start_info` (PVH), and the MP table.

use linux_loader::configurator::linux::LinuxBootConfigurator;
use linux_loader::configurator::pvh::PvhBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::bootparam::{boot_e820_entry, boot_params};
use linux_loader::loader::elf::start_info::{
    hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info,
};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryRegion};

use crate::boot::{mptable, BootError, BootProtocol, LoadedInitrd, LoadedKernel};
use crate::layout::{
    CMDLINE_MAX_SIZE, CMDLINE_START, EBDA_START, HIGH_MEM_START, PVH_INFO_START, PVH_MEMMAP_START,
    PVH_MODLIST_START, ZERO_PAGE_START,
};
use crate::memory::GuestMemory;

/// e820 type of usable RAM.
pub const E820_RAM: u32 = 1;
/// e820 type of reserved memory.
pub const E820_RESERVED: u32 = 2;

const KERNEL_BOOT_FLAG_MAGIC: u16 = 0xaa55;
const KERNEL_HDR_MAGIC: u32 = 0x5372_6448; // "HdrS"
const KERNEL_LOADER_OTHER: u8 = 0xff;
const KERNEL_MIN_ALIGNMENT_BYTES: u32 = 0x100_0000;
const XEN_HVM_START_MAGIC_VALUE: u32 = 0x336e_c578;
/// Largest number of e820 entries in `boot_params`.
const E820_MAX_ENTRIES: usize = 128;

/// One entry of the guest's physical memory map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryMapEntry {
    /// Start address.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// e820 type.
    pub kind: u32,
}

/// The memory map: low RAM up to the EBDA, the reserved EBDA/BIOS area, and
/// every RAM region from 1 MiB up.
pub fn memory_map(memory: &GuestMemory) -> Vec<MemoryMapEntry> {
    let mut map = vec![
        MemoryMapEntry {
            addr: 0,
            size: EBDA_START,
            kind: E820_RAM,
        },
        MemoryMapEntry {
            addr: EBDA_START,
            size: HIGH_MEM_START - EBDA_START,
            kind: E820_RESERVED,
        },
    ];
    for region in memory.iter() {
        let start = region.start_addr().0.max(HIGH_MEM_START);
        let end = region.start_addr().unchecked_add(region.len()).0;
        if end > start {
            map.push(MemoryMapEntry {
                addr: start,
                size: end - start,
                kind: E820_RAM,
            });
        }
    }
    map
}

/// Writes everything the kernel reads at entry: command line, MP table,
/// and the protocol's boot information structure.
pub fn write_boot_info(
    memory: &GuestMemory,
    kernel: &LoadedKernel,
    cmdline: &str,
    initrd: Option<LoadedInitrd>,
    num_cpus: u8,
) -> Result<(), BootError> {
    let cmdline_len = write_cmdline(memory, cmdline)?;
    mptable::write(memory, num_cpus)?;
    let map = memory_map(memory);
    match kernel.protocol {
        BootProtocol::Linux64 => write_zero_page(memory, kernel, cmdline_len, initrd, &map),
        BootProtocol::Pvh => write_pvh_start_info(memory, initrd, &map),
    }
}

fn write_cmdline(memory: &GuestMemory, cmdline: &str) -> Result<usize, BootError> {
    if cmdline.len() >= CMDLINE_MAX_SIZE {
        return Err(BootError::Cmdline(format!(
            "{} bytes, at most {} allowed",
            cmdline.len(),
            CMDLINE_MAX_SIZE - 1
        )));
    }
    if cmdline.bytes().any(|b| b == 0) {
        return Err(BootError::Cmdline("contains a NUL byte".into()));
    }
    let mut bytes = cmdline.as_bytes().to_vec();
    bytes.push(0);
    memory
        .write_slice(&bytes, GuestAddress(CMDLINE_START))
        .map_err(|_| BootError::GuestWrite("the command line"))?;
    Ok(cmdline.len())
}

fn write_zero_page(
    memory: &GuestMemory,
    kernel: &LoadedKernel,
    cmdline_len: usize,
    initrd: Option<LoadedInitrd>,
    map: &[MemoryMapEntry],
) -> Result<(), BootError> {
    let mut params = boot_params::default();
    if let Some(header) = kernel.setup_header {
        params.hdr = header;
    } else {
        params.hdr.boot_flag = KERNEL_BOOT_FLAG_MAGIC;
        params.hdr.header = KERNEL_HDR_MAGIC;
        params.hdr.kernel_alignment = KERNEL_MIN_ALIGNMENT_BYTES;
    }
    params.hdr.type_of_loader = KERNEL_LOADER_OTHER;
    params.hdr.cmd_line_ptr = CMDLINE_START as u32;
    params.hdr.cmdline_size = cmdline_len as u32;
    if let Some(initrd) = initrd {
        params.hdr.ramdisk_image = initrd.addr.0 as u32;
        params.hdr.ramdisk_size = initrd.size as u32;
    }
    if map.len() > E820_MAX_ENTRIES {
        return Err(BootError::GuestWrite("an e820 map this large"));
    }
    for (slot, entry) in params.e820_table.iter_mut().zip(map) {
        *slot = boot_e820_entry {
            addr: entry.addr,
            size: entry.size,
            r#type: entry.kind,
        };
    }
    params.e820_entries = map.len() as u8;
    LinuxBootConfigurator::write_bootparams::<GuestMemory>(
        &BootParams::new::<boot_params>(&params, GuestAddress(ZERO_PAGE_START)),
        memory,
    )
    .map_err(|_| BootError::GuestWrite("boot_params"))
}

fn write_pvh_start_info(
    memory: &GuestMemory,
    initrd: Option<LoadedInitrd>,
    map: &[MemoryMapEntry],
) -> Result<(), BootError> {
    let mut start_info = hvm_start_info {
        magic: XEN_HVM_START_MAGIC_VALUE,
        version: 1,
        cmdline_paddr: CMDLINE_START,
        memmap_paddr: PVH_MEMMAP_START,
        memmap_entries: map.len() as u32,
        ..Default::default()
    };
    let entries: Vec<hvm_memmap_table_entry> = map
        .iter()
        .map(|e| hvm_memmap_table_entry {
            addr: e.addr,
            size: e.size,
            type_: e.kind,
            reserved: 0,
        })
        .collect();
    if initrd.is_some() {
        start_info.nr_modules = 1;
        start_info.modlist_paddr = PVH_MODLIST_START;
    }
    let mut params = BootParams::new::<hvm_start_info>(&start_info, GuestAddress(PVH_INFO_START));
    params.set_sections::<hvm_memmap_table_entry>(&entries, GuestAddress(PVH_MEMMAP_START));
    if let Some(initrd) = initrd {
        let module = hvm_modlist_entry {
            paddr: initrd.addr.0,
            size: initrd.size,
            ..Default::default()
        };
        params.set_modules::<hvm_modlist_entry>(&[module], GuestAddress(PVH_MODLIST_START));
    }
    PvhBootConfigurator::write_bootparams::<GuestMemory>(&params, memory)
        .map_err(|_| BootError::GuestWrite("hvm_start_info"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::create_guest_memory;

    fn kernel(protocol: BootProtocol) -> LoadedKernel {
        LoadedKernel {
            protocol,
            entry: GuestAddress(HIGH_MEM_START),
            end: HIGH_MEM_START + 0x1000,
            setup_header: None,
        }
    }

    #[test]
    fn memory_map_covers_low_and_high_ram() {
        let (mem, _) = create_guest_memory(64).unwrap();
        let map = memory_map(&mem);
        assert_eq!(
            map[0],
            MemoryMapEntry {
                addr: 0,
                size: EBDA_START,
                kind: E820_RAM
            }
        );
        assert_eq!(map[1].kind, E820_RESERVED);
        assert_eq!(
            map[2],
            MemoryMapEntry {
                addr: HIGH_MEM_START,
                size: (64 << 20) - HIGH_MEM_START,
                kind: E820_RAM
            }
        );
    }

    #[test]
    fn zero_page_has_cmdline_and_e820() {
        let (mem, _) = create_guest_memory(16).unwrap();
        let initrd = LoadedInitrd {
            addr: GuestAddress(0x80_0000),
            size: 1234,
        };
        write_boot_info(
            &mem,
            &kernel(BootProtocol::Linux64),
            "console=ttyS0",
            Some(initrd),
            2,
        )
        .unwrap();
        let params: boot_params = mem.read_obj(GuestAddress(ZERO_PAGE_START)).unwrap();
        assert_eq!({ params.hdr.cmd_line_ptr }, CMDLINE_START as u32);
        assert_eq!({ params.hdr.cmdline_size }, 13);
        assert_eq!({ params.hdr.ramdisk_image }, 0x80_0000);
        assert_eq!({ params.hdr.ramdisk_size }, 1234);
        assert_eq!(params.e820_entries, 3);
        let mut buf = [0u8; 14];
        mem.read_slice(&mut buf, GuestAddress(CMDLINE_START))
            .unwrap();
        assert_eq!(&buf, b"console=ttyS0\0");
    }

    #[test]
    fn pvh_start_info_points_at_memmap() {
        let (mem, _) = create_guest_memory(16).unwrap();
        write_boot_info(&mem, &kernel(BootProtocol::Pvh), "x", None, 1).unwrap();
        let info: hvm_start_info = mem.read_obj(GuestAddress(PVH_INFO_START)).unwrap();
        assert_eq!(info.magic, XEN_HVM_START_MAGIC_VALUE);
        assert_eq!(info.memmap_entries, 3);
        assert_eq!(info.nr_modules, 0);
        let first: hvm_memmap_table_entry = mem.read_obj(GuestAddress(PVH_MEMMAP_START)).unwrap();
        assert_eq!(first.size, EBDA_START);
    }

    #[test]
    fn overlong_cmdline_is_rejected() {
        let (mem, _) = create_guest_memory(16).unwrap();
        let long = "a".repeat(CMDLINE_MAX_SIZE);
        assert!(matches!(
            write_boot_info(&mem, &kernel(BootProtocol::Pvh), &long, None, 1),
            Err(BootError::Cmdline(_))
        ));
    }
}
