//! Loading a kernel and preparing guest memory for its first instruction.
//!
//! Two entry protocols are supported, both for Linux and for Hull's test
//! guests:
//! - **PVH**: the ELF carries a `XEN_ELFNOTE_PHYS32_ENTRY` note; the vCPU
//!   starts in 32-bit protected mode, paging off, `%ebx` pointing at an
//!   `hvm_start_info` with the command line, memory map and initrd.
//! - **Linux 64-bit boot protocol**: ELF vmlinux (entry `e_entry`) or bzImage
//!   (entry 0x200 into the protected-mode kernel); the vCPU starts in long
//!   mode on identity-mapped page tables with `%rsi` pointing at
//!   `boot_params` (the zero page) holding the command line, e820 map and
//!   initrd.

pub mod gdt;
pub mod mptable;
pub mod params;
pub mod regs;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use linux_loader::loader::bootparam::setup_header;
use linux_loader::loader::{BzImage, Elf, KernelLoader, PvhBootCapability};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryRegion};

use crate::layout::{HIGH_MEM_START, MMIO_GAP_START};
use crate::memory::GuestMemory;

pub use hull_vm_config::BootProtocolChoice;

/// The protocol actually used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootProtocol {
    /// Linux 64-bit boot protocol (`boot_params` in `%rsi`).
    Linux64,
    /// PVH (`hvm_start_info` in `%ebx`, 32-bit protected mode).
    Pvh,
}

/// A kernel loaded in guest memory.
#[derive(Clone, Copy, Debug)]
pub struct LoadedKernel {
    /// How to enter it.
    pub protocol: BootProtocol,
    /// Guest physical address of the first instruction.
    pub entry: GuestAddress,
    /// First byte after the kernel image.
    pub end: u64,
    /// The bzImage setup header, the base for `boot_params`.
    pub setup_header: Option<setup_header>,
}

/// An initrd loaded in guest memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadedInitrd {
    /// Guest physical address.
    pub addr: GuestAddress,
    /// Size in bytes.
    pub size: u64,
}

/// Errors while loading the kernel or initrd or writing boot structures.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The kernel file cannot be opened or read.
    #[error("cannot read kernel {path}: {source}")]
    KernelFile {
        /// Kernel path.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The kernel is neither an ELF nor a bzImage.
    #[error("kernel {0} is neither an x86_64 ELF vmlinux nor a bzImage")]
    UnknownKernelFormat(PathBuf),
    /// linux-loader rejected the kernel.
    #[error("cannot load kernel {path}: {source}")]
    KernelLoad {
        /// Kernel path.
        path: PathBuf,
        /// Underlying error.
        source: linux_loader::loader::Error,
    },
    /// PVH was requested but the kernel has no PVH note.
    #[error("kernel {0} has no PVH entry note")]
    NoPvhNote(PathBuf),
    /// A bzImage without a 64-bit entry point.
    #[error("bzImage {0} has no 64-bit entry point (XLF_KERNEL_64)")]
    NoLongModeEntry(PathBuf),
    /// The initrd cannot be opened or read.
    #[error("cannot read initrd {path}: {source}")]
    InitrdFile {
        /// Initrd path.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The initrd does not fit between the kernel and the end of low RAM.
    #[error("initrd {path} ({size} bytes) does not fit in guest memory")]
    InitrdTooBig {
        /// Initrd path.
        path: PathBuf,
        /// Initrd size.
        size: u64,
    },
    /// The command line is too long or malformed.
    #[error("invalid kernel command line: {0}")]
    Cmdline(String),
    /// Writing a boot structure to guest memory failed.
    #[error("cannot write {0} to guest memory")]
    GuestWrite(&'static str),
    /// The MP table could not be written.
    #[error(transparent)]
    Mptable(#[from] mptable::MptableError),
}

const ELF_MAGIC: [u8; 4] = [0x7f, b'E', b'L', b'F'];
const ELF_CLASS_64: u8 = 2;
const ELF_MACHINE_X86_64: u16 = 62;
/// bzImage `xloadflags` bit: the kernel has a 64-bit entry at +0x200.
const XLF_KERNEL_64: u16 = 1 << 0;
/// Offset of the 64-bit entry in a bzImage's protected-mode kernel.
const BZIMAGE_64BIT_ENTRY_OFFSET: u64 = 0x200;

/// Loads the kernel at `path` into `memory` and picks the entry protocol.
pub fn load_kernel(
    memory: &GuestMemory,
    path: &Path,
    choice: BootProtocolChoice,
) -> Result<LoadedKernel, BootError> {
    let file_err = |source| BootError::KernelFile {
        path: path.to_owned(),
        source,
    };
    let load_err = |source| BootError::KernelLoad {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(file_err)?;
    let mut ident = [0u8; 20];
    let read = read_prefix(&mut file, &mut ident).map_err(file_err)?;
    let ident = &ident[..read];

    if ident.len() >= 20 && ident[0..4] == ELF_MAGIC {
        let machine = u16::from_le_bytes([ident[18], ident[19]]);
        if ident[4] != ELF_CLASS_64 || machine != ELF_MACHINE_X86_64 {
            return Err(BootError::UnknownKernelFormat(path.to_owned()));
        }
        let result = Elf::load(memory, None, &mut file, Some(GuestAddress(HIGH_MEM_START)))
            .map_err(load_err)?;
        let pvh_entry = match result.pvh_boot_cap {
            PvhBootCapability::PvhEntryPresent(addr) => Some(addr),
            _ => None,
        };
        let (protocol, entry) = match (choice, pvh_entry) {
            (BootProtocolChoice::Linux, _) | (BootProtocolChoice::Auto, None) => {
                (BootProtocol::Linux64, result.kernel_load)
            }
            (_, Some(addr)) => (BootProtocol::Pvh, addr),
            (BootProtocolChoice::Pvh, None) => return Err(BootError::NoPvhNote(path.to_owned())),
        };
        return Ok(LoadedKernel {
            protocol,
            entry,
            end: result.kernel_end,
            setup_header: None,
        });
    }

    if choice == BootProtocolChoice::Pvh {
        return Err(BootError::NoPvhNote(path.to_owned()));
    }
    let result = match BzImage::load(memory, None, &mut file, Some(GuestAddress(HIGH_MEM_START))) {
        Ok(result) => result,
        Err(linux_loader::loader::Error::Bzimage(
            linux_loader::loader::bzimage::Error::InvalidBzImage,
        )) => return Err(BootError::UnknownKernelFormat(path.to_owned())),
        Err(e) => return Err(load_err(e)),
    };
    let header = result
        .setup_header
        .ok_or_else(|| BootError::UnknownKernelFormat(path.to_owned()))?;
    if header.xloadflags & XLF_KERNEL_64 == 0 {
        return Err(BootError::NoLongModeEntry(path.to_owned()));
    }
    Ok(LoadedKernel {
        protocol: BootProtocol::Linux64,
        entry: result
            .kernel_load
            .checked_add(BZIMAGE_64BIT_ENTRY_OFFSET)
            .ok_or_else(|| BootError::UnknownKernelFormat(path.to_owned()))?,
        end: result.kernel_end,
        setup_header: Some(header),
    })
}

fn read_prefix(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    file.seek(SeekFrom::Start(0))?;
    Ok(filled)
}

/// Loads the initrd at `path` at the top of RAM below the MMIO hole (and below
/// `addr_max`, the kernel's `initrd_addr_max`), above `kernel_end`.
pub fn load_initrd(
    memory: &GuestMemory,
    path: &Path,
    kernel_end: u64,
    addr_max: u64,
) -> Result<LoadedInitrd, BootError> {
    let file_err = |source| BootError::InitrdFile {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(file_err)?;
    let size = file.metadata().map_err(file_err)?.len();
    let low_ram_end = memory
        .iter()
        .map(|r| r.start_addr().unchecked_add(r.len()).0)
        .filter(|end| *end <= MMIO_GAP_START)
        .max()
        .unwrap_or(0)
        .min(addr_max.saturating_add(1));
    let too_big = || BootError::InitrdTooBig {
        path: path.to_owned(),
        size,
    };
    let addr = low_ram_end.checked_sub(size).ok_or_else(too_big)? & !0xfff;
    if addr < kernel_end.max(HIGH_MEM_START) {
        return Err(too_big());
    }
    memory
        .read_exact_volatile_from(GuestAddress(addr), &mut file, size as usize)
        .map_err(|e| BootError::InitrdFile {
            path: path.to_owned(),
            source: std::io::Error::other(e.to_string()),
        })?;
    Ok(LoadedInitrd {
        addr: GuestAddress(addr),
        size,
    })
}
