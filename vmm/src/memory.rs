//! Guest memory: one memfd mapped shared, so that other processes (vhost-user
//! back-ends such as virtiofsd) can map the same pages.

use std::ffi::CStr;
use std::fs::File;
use std::os::fd::FromRawFd;

use vm_memory::{FileOffset, GuestAddress, GuestMemoryMmap};

use crate::layout::{MMIO_GAP_END, MMIO_GAP_START};

/// Guest memory as the VMM sees it.
pub type GuestMemory = GuestMemoryMmap<()>;

/// Errors while creating guest memory.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The requested size is zero or does not fit the address space.
    #[error("invalid guest memory size: {0} MiB")]
    InvalidSize(u64),
    /// `memfd_create` failed.
    #[error("cannot create guest memory memfd: {0}")]
    Memfd(std::io::Error),
    /// The memfd could not be sized.
    #[error("cannot size guest memory memfd to {size} bytes: {source}")]
    Truncate {
        /// Requested size in bytes.
        size: u64,
        /// Underlying error.
        source: std::io::Error,
    },
    /// Mapping the memfd failed.
    #[error("cannot map guest memory: {0}")]
    Mmap(#[from] vm_memory::mmap::FromRangesError),
}

/// The guest RAM ranges for `size` bytes of memory: everything below the
/// 32-bit MMIO hole, and the rest above 4 GiB.
pub fn arch_memory_ranges(size: u64) -> Vec<(GuestAddress, u64)> {
    if size <= MMIO_GAP_START {
        vec![(GuestAddress(0), size)]
    } else {
        vec![
            (GuestAddress(0), MMIO_GAP_START),
            (GuestAddress(MMIO_GAP_END), size - MMIO_GAP_START),
        ]
    }
}

/// Creates `mem_mib` MiB of guest memory backed by a single memfd; the
/// ranges of [`arch_memory_ranges`] are consecutive windows of that file.
pub fn create_guest_memory(mem_mib: u64) -> Result<(GuestMemory, File), MemoryError> {
    let size = mem_mib
        .checked_mul(1 << 20)
        .filter(|s| *s > 0 && *s <= (1 << 46))
        .ok_or(MemoryError::InvalidSize(mem_mib))?;
    let name: &CStr = c"hull-guest-ram";
    // SAFETY: `name` is a valid NUL-terminated string and the flags are
    // valid; the returned descriptor is checked before use.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(MemoryError::Memfd(std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just returned by memfd_create and is owned by no one
    // else, so the File becomes its sole owner.
    let file = unsafe { File::from_raw_fd(fd) };
    file.set_len(size)
        .map_err(|source| MemoryError::Truncate { size, source })?;

    let mut offset = 0u64;
    let mut ranges = Vec::new();
    for (start, len) in arch_memory_ranges(size) {
        let file_clone = file.try_clone().map_err(MemoryError::Memfd)?;
        ranges.push((
            start,
            len as usize,
            Some(FileOffset::new(file_clone, offset)),
        ));
        offset += len;
    }
    let memory = GuestMemoryMmap::from_ranges_with_files(ranges)?;
    Ok((memory, file))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::{Bytes, GuestMemoryBackend};

    #[test]
    fn small_memory_is_one_range() {
        assert_eq!(
            arch_memory_ranges(128 << 20),
            vec![(GuestAddress(0), 128 << 20)]
        );
    }

    #[test]
    fn large_memory_skips_the_mmio_hole() {
        let ranges = arch_memory_ranges(4 << 30);
        assert_eq!(ranges[0], (GuestAddress(0), MMIO_GAP_START));
        assert_eq!(
            ranges[1],
            (GuestAddress(MMIO_GAP_END), (4 << 30) - MMIO_GAP_START)
        );
    }

    #[test]
    fn memory_is_memfd_backed_and_shared() {
        let (mem, file) = create_guest_memory(2).unwrap();
        mem.write_obj(0xabcd_u32, GuestAddress(0x1000)).unwrap();
        let mut buf = [0u8; 4];
        use std::os::unix::fs::FileExt;
        file.read_exact_at(&mut buf, 0x1000).unwrap();
        assert_eq!(u32::from_le_bytes(buf), 0xabcd);
        assert_eq!(mem.num_regions(), 1);
    }

    #[test]
    fn zero_size_is_rejected() {
        assert!(matches!(
            create_guest_memory(0),
            Err(MemoryError::InvalidSize(0))
        ));
    }
}
