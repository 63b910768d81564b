//! virtio-vsock packets (virtio 1.2, 5.10.6): the 44-byte header and its
//! parsing from / writing to descriptor chains, apart from event handling
//! so it can be unit-tested and fuzzed on mock memory.

use std::io::{Read, Write};

use virtio_queue::{DescriptorChain, Reader, Writer};
use vm_memory::{ByteValued, GuestMemory};

/// Header length.
pub const HEADER_LEN: usize = 44;
/// Largest payload accepted from or sent to the guest in one packet.
pub const MAX_PAYLOAD: usize = 64 << 10;
/// The host's CID.
pub const HOST_CID: u64 = 2;
/// Socket type: stream.
pub const TYPE_STREAM: u16 = 1;

/// Operations.
pub mod op {
    /// Connection request.
    pub const REQUEST: u16 = 1;
    /// Connection accepted.
    pub const RESPONSE: u16 = 2;
    /// Connection refused or reset.
    pub const RST: u16 = 3;
    /// Half or full shutdown.
    pub const SHUTDOWN: u16 = 4;
    /// Data.
    pub const RW: u16 = 5;
    /// Credit information.
    pub const CREDIT_UPDATE: u16 = 6;
    /// Credit information wanted.
    pub const CREDIT_REQUEST: u16 = 7;
}

/// SHUTDOWN flag: the sender will receive no more data.
pub const SHUTDOWN_RECEIVE: u32 = 1;
/// SHUTDOWN flag: the sender will send no more data.
pub const SHUTDOWN_SEND: u32 = 2;

/// `struct virtio_vsock_hdr`, little-endian on the wire (x86 host).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C, packed)]
pub struct PacketHeader {
    /// Source CID.
    pub src_cid: u64,
    /// Destination CID.
    pub dst_cid: u64,
    /// Source port.
    pub src_port: u32,
    /// Destination port.
    pub dst_port: u32,
    /// Payload length.
    pub len: u32,
    /// Socket type.
    pub type_: u16,
    /// Operation.
    pub op: u16,
    /// Operation flags.
    pub flags: u32,
    /// Sender's receive buffer size.
    pub buf_alloc: u32,
    /// Bytes the sender has consumed from its receive buffer.
    pub fwd_cnt: u32,
}

// SAFETY: packed plain old data, 44 bytes, any bit pattern valid.
unsafe impl ByteValued for PacketHeader {}

/// Input the device cannot serve (the device then needs a reset).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PacketError {
    /// A descriptor points outside guest memory or the chain is malformed.
    #[error("bad descriptor chain: {0}")]
    BadChain(String),
    /// Fewer than 44 readable bytes.
    #[error("packet without a full header")]
    ShortHeader,
    /// `len` larger than allowed.
    #[error("packet payload of {0} bytes is too large")]
    TooLarge(u32),
    /// `len` larger than the chain's readable payload.
    #[error("packet claims {claimed} payload bytes, chain has {available}")]
    ShortPayload {
        /// Header's `len`.
        claimed: u32,
        /// Readable bytes after the header.
        available: usize,
    },
    /// An rx buffer too small for a header.
    #[error("receive buffer of {0} bytes cannot hold a header")]
    ShortRxBuffer(usize),
    /// The available ring is corrupt.
    #[error("bad available ring: {0}")]
    BadQueue(String),
    /// The used ring could not be written.
    #[error("cannot write used ring: {0}")]
    UsedRing(String),
}

/// Reads one packet (header and payload) from a tx chain.
pub fn read_packet<M: GuestMemory>(
    mem: &M,
    chain: DescriptorChain<&M>,
) -> Result<(PacketHeader, Vec<u8>), PacketError> {
    let mut reader: Reader<'_, _> =
        Reader::new(mem, chain).map_err(|e| PacketError::BadChain(e.to_string()))?;
    let header: PacketHeader = reader.read_obj().map_err(|_| PacketError::ShortHeader)?;
    let len = header.len;
    if len as usize > MAX_PAYLOAD {
        return Err(PacketError::TooLarge(len));
    }
    let available = reader.available_bytes();
    if available < len as usize {
        return Err(PacketError::ShortPayload {
            claimed: len,
            available,
        });
    }
    let mut data = vec![0u8; len as usize];
    reader
        .read_exact(&mut data)
        .map_err(|e| PacketError::BadChain(e.to_string()))?;
    Ok((header, data))
}

/// Room for payload in an rx chain (its writable bytes minus the header).
pub fn rx_capacity<M: GuestMemory>(
    mem: &M,
    chain: &DescriptorChain<&M>,
) -> Result<usize, PacketError> {
    let writer: Writer<'_, _> =
        Writer::new(mem, chain.clone()).map_err(|e| PacketError::BadChain(e.to_string()))?;
    writer
        .available_bytes()
        .checked_sub(HEADER_LEN)
        .ok_or(PacketError::ShortRxBuffer(writer.available_bytes()))
}

/// Writes a packet into an rx chain; returns the bytes written.
pub fn write_packet<M: GuestMemory>(
    mem: &M,
    chain: DescriptorChain<&M>,
    header: &PacketHeader,
    data: &[u8],
) -> Result<u32, PacketError> {
    let mut writer: Writer<'_, _> =
        Writer::new(mem, chain).map_err(|e| PacketError::BadChain(e.to_string()))?;
    if writer.available_bytes() < HEADER_LEN + data.len() {
        return Err(PacketError::ShortRxBuffer(writer.available_bytes()));
    }
    writer
        .write_all(header.as_slice())
        .and_then(|()| writer.write_all(data))
        .map_err(|e| PacketError::BadChain(e.to_string()))?;
    Ok((HEADER_LEN + data.len()) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use virtio_bindings::bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
    use virtio_queue::desc::{split::Descriptor as SplitDescriptor, RawDescriptor};
    use virtio_queue::mock::MockSplitQueue;
    use virtio_queue::{Queue, QueueOwnedT};
    use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

    type Mem = GuestMemoryMmap<()>;

    fn memory() -> Mem {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x20_0000)]).unwrap()
    }

    fn desc(addr: u64, len: u32, flags: u32) -> RawDescriptor {
        RawDescriptor::from(SplitDescriptor::new(addr, len, flags as u16, 0))
    }

    fn with_chain<R>(
        mem: &Mem,
        descs: &[RawDescriptor],
        f: impl FnOnce(DescriptorChain<&Mem>) -> R,
    ) -> R {
        let vq = MockSplitQueue::new(mem, 16);
        vq.build_desc_chain(descs).unwrap();
        let mut queue: Queue = vq.create_queue().unwrap();
        let chain = queue.iter(mem).unwrap().next().unwrap();
        f(chain)
    }

    fn header(len: u32) -> PacketHeader {
        PacketHeader {
            src_cid: 3,
            dst_cid: HOST_CID,
            src_port: 1000,
            dst_port: 5000,
            len,
            type_: TYPE_STREAM,
            op: op::RW,
            flags: 0,
            buf_alloc: 4096,
            fwd_cnt: 7,
        }
    }

    #[test]
    fn reads_header_and_payload_across_descriptors() {
        let mem = memory();
        mem.write_obj(header(5), GuestAddress(0x10_0000)).unwrap();
        mem.write_slice(b"hello", GuestAddress(0x11_0000)).unwrap();
        let (hdr, data) = with_chain(
            &mem,
            &[
                desc(0x10_0000, 44, VRING_DESC_F_NEXT),
                desc(0x11_0000, 5, 0),
            ],
            |chain| read_packet(&mem, chain).unwrap(),
        );
        assert_eq!(hdr, header(5));
        assert_eq!(data, b"hello");
    }

    #[test]
    fn rejects_bad_tx_packets() {
        let mem = memory();
        mem.write_obj(header(10), GuestAddress(0x10_0000)).unwrap();
        let short = with_chain(&mem, &[desc(0x10_0000, 40, 0)], |c| read_packet(&mem, c));
        assert_eq!(short, Err(PacketError::ShortHeader));
        let missing = with_chain(&mem, &[desc(0x10_0000, 48, 0)], |c| read_packet(&mem, c));
        assert_eq!(
            missing,
            Err(PacketError::ShortPayload {
                claimed: 10,
                available: 4
            })
        );
        mem.write_obj(header(u32::MAX), GuestAddress(0x10_0000))
            .unwrap();
        let huge = with_chain(&mem, &[desc(0x10_0000, 44, 0)], |c| read_packet(&mem, c));
        assert_eq!(huge, Err(PacketError::TooLarge(u32::MAX)));
        let outside = with_chain(&mem, &[desc(0x7000_0000_0000, 44, 0)], |c| {
            read_packet(&mem, c)
        });
        assert!(matches!(outside, Err(PacketError::BadChain(_))));
    }

    #[test]
    fn writes_rx_packets_and_checks_room() {
        let mem = memory();
        let written = with_chain(&mem, &[desc(0x10_0000, 100, VRING_DESC_F_WRITE)], |c| {
            assert_eq!(rx_capacity(&mem, &c), Ok(56));
            write_packet(&mem, c, &header(3), b"abc").unwrap()
        });
        assert_eq!(written, 47);
        let back: PacketHeader = mem.read_obj(GuestAddress(0x10_0000)).unwrap();
        assert_eq!(back, header(3));
        let small = with_chain(&mem, &[desc(0x10_0000, 20, VRING_DESC_F_WRITE)], |c| {
            rx_capacity(&mem, &c)
        });
        assert_eq!(small, Err(PacketError::ShortRxBuffer(20)));
        let too_much = with_chain(&mem, &[desc(0x10_0000, 46, VRING_DESC_F_WRITE)], |c| {
            write_packet(&mem, c, &header(3), b"abc")
        });
        assert_eq!(too_much, Err(PacketError::ShortRxBuffer(46)));
    }
}
