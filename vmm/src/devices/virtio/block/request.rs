//! virtio-blk request parsing and execution (virtio 1.2, 5.2.6), apart
//! from event handling so it can be unit-tested and fuzzed on mock memory.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;

use virtio_queue::{DescriptorChain, Queue, QueueOwnedT, QueueT};
use virtio_queue::{Reader, Writer};
use vm_memory::{ByteValued, GuestMemory};

/// Request type: read.
pub const VIRTIO_BLK_T_IN: u32 = 0;
/// Request type: write.
pub const VIRTIO_BLK_T_OUT: u32 = 1;
/// Request type: flush.
pub const VIRTIO_BLK_T_FLUSH: u32 = 4;
/// Request type: device id.
pub const VIRTIO_BLK_T_GET_ID: u32 = 8;
/// Status: done.
pub const VIRTIO_BLK_S_OK: u8 = 0;
/// Status: I/O error.
pub const VIRTIO_BLK_S_IOERR: u8 = 1;
/// Status: unsupported request.
pub const VIRTIO_BLK_S_UNSUPP: u8 = 2;
/// Sector size.
pub const SECTOR_SIZE: u64 = 512;
/// Length of the device id string.
pub const ID_LEN: usize = 20;
/// Largest data transfer accepted in one request (Linux sends at most a
/// few hundred KiB); larger ones fail with IOERR instead of allocating.
pub const MAX_TRANSFER: usize = 16 << 20;
const CHUNK: usize = 64 << 10;

/// The request header the driver puts first in each chain.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct RequestHeader {
    /// Request type.
    pub request_type: u32,
    /// Reserved.
    pub reserved: u32,
    /// First sector.
    pub sector: u64,
}

// SAFETY: plain old data, no padding (4 + 4 + 8 bytes), any bit pattern valid.
unsafe impl ByteValued for RequestHeader {}

/// Input the device cannot serve at all (it cannot even write a status).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    /// A descriptor points outside guest memory or the chain is malformed.
    #[error("bad descriptor chain: {0}")]
    BadChain(String),
    /// The chain has no room for the 16-byte header.
    #[error("descriptor chain without request header")]
    MissingHeader,
    /// The chain has no writable byte for the status.
    #[error("descriptor chain without status byte")]
    MissingStatus,
    /// The available ring is corrupt.
    #[error("bad available ring: {0}")]
    BadQueue(String),
    /// The used ring could not be written.
    #[error("cannot write used ring: {0}")]
    UsedRing(String),
}

/// The file behind the device.
#[derive(Debug)]
pub struct Disk {
    file: File,
    sectors: u64,
    read_only: bool,
    id: [u8; ID_LEN],
}

impl Disk {
    /// A disk over `file`; its size is rounded down to whole sectors.
    pub fn new(file: File, read_only: bool, id: &str) -> std::io::Result<Self> {
        let sectors = file.metadata()?.len() / SECTOR_SIZE;
        let mut id_bytes = [0u8; ID_LEN];
        let n = id.len().min(ID_LEN);
        id_bytes[..n].copy_from_slice(&id.as_bytes()[..n]);
        Ok(Disk {
            file,
            sectors,
            read_only,
            id: id_bytes,
        })
    }

    /// Capacity in sectors.
    pub fn sectors(&self) -> u64 {
        self.sectors
    }

    /// Whether writes are refused.
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// Byte offset of `sector` if `len` bytes from there are on the disk.
    fn offset(&self, sector: u64, len: usize) -> Option<u64> {
        let offset = sector.checked_mul(SECTOR_SIZE)?;
        let end = offset.checked_add(len as u64)?;
        (end <= self.sectors * SECTOR_SIZE).then_some(offset)
    }

    fn read_into<B: vm_memory::bitmap::BitmapSlice>(
        &self,
        sector: u64,
        data: &mut Writer<'_, B>,
    ) -> u8 {
        let len = data.available_bytes();
        let Some(mut offset) = self.offset(sector, len).filter(|_| len <= MAX_TRANSFER) else {
            return VIRTIO_BLK_S_IOERR;
        };
        let mut buf = vec![0u8; len.min(CHUNK)];
        let mut left = len;
        while left > 0 {
            let n = left.min(CHUNK);
            if self.file.read_exact_at(&mut buf[..n], offset).is_err()
                || data.write_all(&buf[..n]).is_err()
            {
                return VIRTIO_BLK_S_IOERR;
            }
            offset += n as u64;
            left -= n;
        }
        VIRTIO_BLK_S_OK
    }

    fn write_from<B: vm_memory::bitmap::BitmapSlice>(
        &self,
        sector: u64,
        data: &mut Reader<'_, B>,
    ) -> u8 {
        if self.read_only {
            return VIRTIO_BLK_S_IOERR;
        }
        let len = data.available_bytes();
        let Some(mut offset) = self.offset(sector, len).filter(|_| len <= MAX_TRANSFER) else {
            return VIRTIO_BLK_S_IOERR;
        };
        let mut buf = vec![0u8; len.min(CHUNK)];
        let mut left = len;
        while left > 0 {
            let n = left.min(CHUNK);
            if data.read_exact(&mut buf[..n]).is_err()
                || self.file.write_all_at(&buf[..n], offset).is_err()
            {
                return VIRTIO_BLK_S_IOERR;
            }
            offset += n as u64;
            left -= n;
        }
        VIRTIO_BLK_S_OK
    }

    fn flush(&self) -> u8 {
        if self.read_only {
            return VIRTIO_BLK_S_OK;
        }
        match self.file.sync_data() {
            Ok(()) => VIRTIO_BLK_S_OK,
            Err(_) => VIRTIO_BLK_S_IOERR,
        }
    }
}

/// Serves one request chain; returns the number of bytes written into it.
pub fn handle_chain<M>(
    disk: &Disk,
    mem: &M,
    chain: DescriptorChain<&M>,
) -> Result<u32, RequestError>
where
    M: GuestMemory,
{
    let bad = |e: virtio_queue::Error| RequestError::BadChain(e.to_string());
    let mut reader: Reader<'_, _> = Reader::new(mem, chain.clone()).map_err(bad)?;
    let mut writer: Writer<'_, _> = Writer::new(mem, chain).map_err(bad)?;
    let header: RequestHeader = reader.read_obj().map_err(|_| RequestError::MissingHeader)?;
    let writable = writer.available_bytes();
    if writable == 0 {
        return Err(RequestError::MissingStatus);
    }
    let mut status_writer = writer.split_at(writable - 1).map_err(bad)?;
    let data_len = writable - 1;
    let status = match header.request_type {
        VIRTIO_BLK_T_IN => disk.read_into(header.sector, &mut writer),
        VIRTIO_BLK_T_OUT => disk.write_from(header.sector, &mut reader),
        VIRTIO_BLK_T_FLUSH => disk.flush(),
        VIRTIO_BLK_T_GET_ID => {
            let n = data_len.min(ID_LEN);
            match writer.write_all(&disk.id[..n]) {
                Ok(()) => VIRTIO_BLK_S_OK,
                Err(_) => VIRTIO_BLK_S_IOERR,
            }
        }
        _ => VIRTIO_BLK_S_UNSUPP,
    };
    status_writer
        .write_all(&[status])
        .map_err(|e| RequestError::BadChain(e.to_string()))?;
    let written = writer.bytes_written() + 1;
    Ok(u32::try_from(written).unwrap_or(u32::MAX))
}

/// Serves every available request of `queue`; returns whether any was
/// completed (so the driver should be interrupted).
pub fn process_queue<M>(disk: &Disk, mem: &M, queue: &mut Queue) -> Result<bool, RequestError>
where
    M: GuestMemory,
{
    let mut used_any = false;
    loop {
        let chain = match queue.iter(mem) {
            Ok(mut iter) => iter.next(),
            Err(virtio_queue::Error::QueueNotReady) => None,
            Err(e) => return Err(RequestError::BadQueue(e.to_string())),
        };
        let Some(chain) = chain else {
            break;
        };
        let head = chain.head_index();
        let written = handle_chain(disk, mem, chain)?;
        queue
            .add_used(mem, head, written)
            .map_err(|e| RequestError::UsedRing(e.to_string()))?;
        used_any = true;
    }
    Ok(used_any)
}

#[cfg(test)]
mod tests {
    use super::*;
    use virtio_bindings::bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
    use virtio_queue::desc::{split::Descriptor as SplitDescriptor, RawDescriptor};
    use virtio_queue::mock::MockSplitQueue;
    use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

    type Mem = GuestMemoryMmap<()>;

    const HEADER: u64 = 0x10_0000;
    const DATA: u64 = 0x11_0000;
    const STATUS: u64 = 0x12_0000;

    fn memory() -> Mem {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x20_0000)]).unwrap()
    }

    fn disk(sectors: u64, read_only: bool) -> (Disk, tempfile::NamedTempFile) {
        let file = tempfile::NamedTempFile::new().unwrap();
        file.as_file().set_len(sectors * SECTOR_SIZE).unwrap();
        let handle = OpenOptionsExt::reopen(&file, read_only);
        (Disk::new(handle, read_only, "test-disk").unwrap(), file)
    }

    struct OpenOptionsExt;
    impl OpenOptionsExt {
        fn reopen(file: &tempfile::NamedTempFile, read_only: bool) -> File {
            std::fs::OpenOptions::new()
                .read(true)
                .write(!read_only)
                .open(file.path())
                .unwrap()
        }
    }

    fn desc(addr: u64, len: u32, flags: u32) -> RawDescriptor {
        RawDescriptor::from(SplitDescriptor::new(addr, len, flags as u16, 0))
    }

    fn header(mem: &Mem, request_type: u32, sector: u64) {
        mem.write_obj(
            RequestHeader {
                request_type,
                reserved: 0,
                sector,
            },
            GuestAddress(HEADER),
        )
        .unwrap();
    }

    /// Runs `descs` as one chain; returns (result, used len, status byte).
    fn run(
        mem: &Mem,
        disk: &Disk,
        descs: &[RawDescriptor],
    ) -> (Result<bool, RequestError>, u32, u8) {
        let vq = MockSplitQueue::new(mem, 16);
        vq.build_desc_chain(descs).unwrap();
        let mut queue: Queue = vq.create_queue().unwrap();
        let result = process_queue(disk, mem, &mut queue);
        let used_len = vq.used().ring().ref_at(0).unwrap().load().len();
        (
            result,
            used_len,
            mem.read_obj(GuestAddress(STATUS)).unwrap(),
        )
    }

    fn rw_chain(data_flags: u32, len: u32) -> [RawDescriptor; 3] {
        [
            desc(HEADER, 16, VRING_DESC_F_NEXT),
            desc(DATA, len, VRING_DESC_F_NEXT | data_flags),
            desc(STATUS, 1, VRING_DESC_F_WRITE),
        ]
    }

    #[test]
    fn write_then_read_round_trips() {
        let mem = memory();
        let (disk, file) = disk(8, false);
        mem.write_slice(&[0xab; 1024], GuestAddress(DATA)).unwrap();
        header(&mem, VIRTIO_BLK_T_OUT, 2);
        let (result, used, status) = run(&mem, &disk, &rw_chain(0, 1024));
        assert_eq!(result, Ok(true));
        assert_eq!((used, status), (1, VIRTIO_BLK_S_OK));
        let content = std::fs::read(file.path()).unwrap();
        assert!(content[1024..2048].iter().all(|b| *b == 0xab));
        assert!(content[..1024].iter().all(|b| *b == 0));

        mem.write_slice(&[0; 1024], GuestAddress(DATA)).unwrap();
        header(&mem, VIRTIO_BLK_T_IN, 2);
        let (result, used, status) = run(&mem, &disk, &rw_chain(VRING_DESC_F_WRITE, 1024));
        assert_eq!(result, Ok(true));
        assert_eq!((used, status), (1025, VIRTIO_BLK_S_OK));
        let mut back = [0u8; 1024];
        mem.read_slice(&mut back, GuestAddress(DATA)).unwrap();
        assert!(back.iter().all(|b| *b == 0xab));
    }

    #[test]
    fn out_of_range_sector_is_ioerr() {
        let mem = memory();
        let (disk, _file) = disk(8, false);
        header(&mem, VIRTIO_BLK_T_IN, 7);
        let (result, _, status) = run(&mem, &disk, &rw_chain(VRING_DESC_F_WRITE, 1024));
        assert_eq!((result, status), (Ok(true), VIRTIO_BLK_S_IOERR));
        header(&mem, VIRTIO_BLK_T_OUT, u64::MAX);
        let (result, _, status) = run(&mem, &disk, &rw_chain(0, 512));
        assert_eq!((result, status), (Ok(true), VIRTIO_BLK_S_IOERR));
    }

    #[test]
    fn read_only_disk_refuses_writes_but_flushes() {
        let mem = memory();
        let (disk, file) = disk(8, true);
        mem.write_slice(&[0xcd; 512], GuestAddress(DATA)).unwrap();
        header(&mem, VIRTIO_BLK_T_OUT, 0);
        let (_, _, status) = run(&mem, &disk, &rw_chain(0, 512));
        assert_eq!(status, VIRTIO_BLK_S_IOERR);
        assert!(std::fs::read(file.path()).unwrap().iter().all(|b| *b == 0));
        header(&mem, VIRTIO_BLK_T_FLUSH, 0);
        let (_, _, status) = run(
            &mem,
            &disk,
            &[
                desc(HEADER, 16, VRING_DESC_F_NEXT),
                desc(STATUS, 1, VRING_DESC_F_WRITE),
            ],
        );
        assert_eq!(status, VIRTIO_BLK_S_OK);
    }

    #[test]
    fn get_id_and_unknown_type() {
        let mem = memory();
        let (disk, _file) = disk(8, false);
        header(&mem, VIRTIO_BLK_T_GET_ID, 0);
        let (_, used, status) = run(&mem, &disk, &rw_chain(VRING_DESC_F_WRITE, 20));
        assert_eq!((used, status), (21, VIRTIO_BLK_S_OK));
        let mut id = [0u8; 9];
        mem.read_slice(&mut id, GuestAddress(DATA)).unwrap();
        assert_eq!(&id, b"test-disk");
        header(&mem, 77, 0);
        let (_, _, status) = run(&mem, &disk, &rw_chain(VRING_DESC_F_WRITE, 20));
        assert_eq!(status, VIRTIO_BLK_S_UNSUPP);
    }

    #[test]
    fn malformed_chains_are_errors_not_panics() {
        let mem = memory();
        let (disk, _file) = disk(8, false);
        header(&mem, VIRTIO_BLK_T_IN, 0);
        // No status byte.
        let (result, _, _) = run(&mem, &disk, &[desc(HEADER, 16, 0)]);
        assert_eq!(result, Err(RequestError::MissingStatus));
        // Header too short.
        let (result, _, _) = run(
            &mem,
            &disk,
            &[
                desc(HEADER, 8, VRING_DESC_F_NEXT),
                desc(STATUS, 1, VRING_DESC_F_WRITE),
            ],
        );
        assert_eq!(result, Err(RequestError::MissingHeader));
        // Data outside guest memory.
        let (result, _, _) = run(&mem, &disk, &rw_chain_at(0x7fff_0000_0000));
        assert!(matches!(result, Err(RequestError::BadChain(_))));
        // Only a write-only descriptor: no header.
        let (result, _, _) = run(&mem, &disk, &[desc(STATUS, 1, VRING_DESC_F_WRITE)]);
        assert_eq!(result, Err(RequestError::MissingHeader));
    }

    fn rw_chain_at(data: u64) -> [RawDescriptor; 3] {
        [
            desc(HEADER, 16, VRING_DESC_F_NEXT),
            desc(data, 512, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE),
            desc(STATUS, 1, VRING_DESC_F_WRITE),
        ]
    }

    #[test]
    fn oversized_transfer_is_ioerr() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x200_0000)]).unwrap();
        let (disk, _file) = disk(1 << 16, false);
        mem.write_obj(
            RequestHeader {
                request_type: VIRTIO_BLK_T_IN,
                reserved: 0,
                sector: 0,
            },
            GuestAddress(HEADER),
        )
        .unwrap();
        let len = (MAX_TRANSFER + 512) as u32;
        let (result, _, status) = run(&mem, &disk, &rw_chain(VRING_DESC_F_WRITE, len).map(|d| d));
        // The data descriptor at DATA spans 16 MiB + 512 inside 32 MiB of memory.
        assert_eq!((result, status), (Ok(true), VIRTIO_BLK_S_IOERR));
    }
}
