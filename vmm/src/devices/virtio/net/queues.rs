//! virtio-net queue processing (virtio 1.2, 5.1.6), apart from the tap and
//! event handling so it can be unit-tested and fuzzed on mock memory.
//!
//! No offloads and no mergeable rx buffers are offered, so every frame is
//! a 12-byte `virtio_net_hdr` followed by one Ethernet frame of at most
//! 1514 bytes, in both directions, and the driver must post receive
//! buffers of at least 1526 bytes.

use std::io::{Read, Write};

use virtio_queue::{Queue, QueueOwnedT, QueueT, Reader, Writer};
use vm_memory::GuestMemory;

/// Length of `struct virtio_net_hdr` with `num_buffers` (VERSION_1).
pub const NET_HDR_LEN: usize = 12;
/// Largest frame in either direction: header + 1514-byte Ethernet frame.
pub const MAX_RX_FRAME: usize = NET_HDR_LEN + 1514;
/// Largest transmit chain accepted (header + 64 KiB, as with GSO).
pub const MAX_TX_FRAME: usize = NET_HDR_LEN + 65_550;

/// Where transmitted frames go (the tap).
pub trait FrameSink {
    /// Sends one frame (header included).
    fn write_frame(&mut self, frame: &[u8]) -> std::io::Result<()>;
}

/// Where received frames come from (the tap).
pub trait FrameSource {
    /// The next frame (header included), or `None` when none is ready.
    fn read_frame(&mut self) -> Option<Vec<u8>>;
}

/// Input the device cannot serve (the device then needs a reset).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NetError {
    /// A descriptor points outside guest memory or the chain is malformed.
    #[error("bad descriptor chain: {0}")]
    BadChain(String),
    /// A transmit chain shorter than the header or longer than allowed.
    #[error("transmit chain of {0} bytes")]
    BadTxLength(usize),
    /// A receive buffer too small for a full frame.
    #[error("receive buffer of {0} bytes, at least {MAX_RX_FRAME} required")]
    ShortRxBuffer(usize),
    /// The available ring is corrupt.
    #[error("bad available ring: {0}")]
    BadQueue(String),
    /// The used ring could not be written.
    #[error("cannot write used ring: {0}")]
    UsedRing(String),
}

fn next_chain<'a, M: GuestMemory>(
    mem: &'a M,
    queue: &mut Queue,
) -> Result<Option<virtio_queue::DescriptorChain<&'a M>>, NetError> {
    match queue.iter(mem) {
        Ok(mut iter) => Ok(iter.next()),
        Err(virtio_queue::Error::QueueNotReady) => Ok(None),
        Err(e) => Err(NetError::BadQueue(e.to_string())),
    }
}

/// Sends every frame of the tx queue to `sink`; returns whether any
/// buffer was used. Frames the host refuses are dropped, as on a wire.
pub fn process_tx<M: GuestMemory>(
    mem: &M,
    queue: &mut Queue,
    sink: &mut dyn FrameSink,
) -> Result<bool, NetError> {
    let mut used_any = false;
    while let Some(chain) = next_chain(mem, queue)? {
        let head = chain.head_index();
        let mut reader: Reader<'_, _> =
            Reader::new(mem, chain).map_err(|e| NetError::BadChain(e.to_string()))?;
        let len = reader.available_bytes();
        if !(NET_HDR_LEN..=MAX_TX_FRAME).contains(&len) {
            return Err(NetError::BadTxLength(len));
        }
        let mut frame = vec![0u8; len];
        reader
            .read_exact(&mut frame)
            .map_err(|e| NetError::BadChain(e.to_string()))?;
        if let Err(e) = sink.write_frame(&frame) {
            tracing::debug!("virtio-net: tap dropped a frame: {e}");
        }
        queue
            .add_used(mem, head, 0)
            .map_err(|e| NetError::UsedRing(e.to_string()))?;
        used_any = true;
    }
    Ok(used_any)
}

/// Delivers frames from `source` (starting with `pending`) into rx
/// buffers; a frame with no buffer to go to stays in `pending`.
pub fn process_rx<M: GuestMemory>(
    mem: &M,
    queue: &mut Queue,
    pending: &mut Option<Vec<u8>>,
    source: &mut dyn FrameSource,
) -> Result<bool, NetError> {
    let mut used_any = false;
    loop {
        if pending.is_none() {
            *pending = source.read_frame();
        }
        let Some(frame) = pending.as_mut() else {
            return Ok(used_any);
        };
        if frame.len() < NET_HDR_LEN || frame.len() > MAX_RX_FRAME {
            *pending = None;
            continue;
        }
        let Some(chain) = next_chain(mem, queue)? else {
            return Ok(used_any);
        };
        let head = chain.head_index();
        let mut writer: Writer<'_, _> =
            Writer::new(mem, chain).map_err(|e| NetError::BadChain(e.to_string()))?;
        if writer.available_bytes() < MAX_RX_FRAME {
            return Err(NetError::ShortRxBuffer(writer.available_bytes()));
        }
        // num_buffers: always 1 without mergeable buffers.
        frame[10..12].copy_from_slice(&1u16.to_le_bytes());
        writer
            .write_all(frame)
            .map_err(|e| NetError::BadChain(e.to_string()))?;
        queue
            .add_used(mem, head, frame.len() as u32)
            .map_err(|e| NetError::UsedRing(e.to_string()))?;
        *pending = None;
        used_any = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use virtio_bindings::bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
    use virtio_queue::desc::{split::Descriptor as SplitDescriptor, RawDescriptor};
    use virtio_queue::mock::MockSplitQueue;
    use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

    type Mem = GuestMemoryMmap<()>;

    #[derive(Default)]
    struct Wire {
        sent: Vec<Vec<u8>>,
        incoming: VecDeque<Vec<u8>>,
    }

    impl FrameSink for Wire {
        fn write_frame(&mut self, frame: &[u8]) -> std::io::Result<()> {
            self.sent.push(frame.to_vec());
            Ok(())
        }
    }

    impl FrameSource for Wire {
        fn read_frame(&mut self) -> Option<Vec<u8>> {
            self.incoming.pop_front()
        }
    }

    fn memory() -> Mem {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x20_0000)]).unwrap()
    }

    fn desc(addr: u64, len: u32, flags: u32) -> RawDescriptor {
        RawDescriptor::from(SplitDescriptor::new(addr, len, flags as u16, 0))
    }

    fn queue_with<'a>(mem: &'a Mem, descs: &[RawDescriptor]) -> (MockSplitQueue<'a, Mem>, Queue) {
        let vq = MockSplitQueue::new(mem, 16);
        vq.build_desc_chain(descs).unwrap();
        let queue = vq.create_queue().unwrap();
        (vq, queue)
    }

    #[test]
    fn transmits_header_and_frame() {
        let mem = memory();
        mem.write_slice(&[0u8; 12], GuestAddress(0x10_0000))
            .unwrap();
        mem.write_slice(b"ethernet frame", GuestAddress(0x11_0000))
            .unwrap();
        let (_vq, mut queue) = queue_with(
            &mem,
            &[
                desc(0x10_0000, 12, VRING_DESC_F_NEXT),
                desc(0x11_0000, 14, 0),
            ],
        );
        let mut wire = Wire::default();
        assert_eq!(process_tx(&mem, &mut queue, &mut wire), Ok(true));
        assert_eq!(wire.sent.len(), 1);
        assert_eq!(&wire.sent[0][12..], b"ethernet frame");
    }

    #[test]
    fn rejects_bad_tx_chains() {
        let mem = memory();
        let (_vq, mut queue) = queue_with(&mem, &[desc(0x10_0000, 4, 0)]);
        assert_eq!(
            process_tx(&mem, &mut queue, &mut Wire::default()),
            Err(NetError::BadTxLength(4))
        );
        let (_vq, mut queue) = queue_with(&mem, &[desc(0x7000_0000_0000, 64, 0)]);
        assert!(matches!(
            process_tx(&mem, &mut queue, &mut Wire::default()),
            Err(NetError::BadChain(_))
        ));
    }

    #[test]
    fn receives_into_posted_buffers_and_keeps_the_rest_pending() {
        let mem = memory();
        let (vq, mut queue) = queue_with(&mem, &[desc(0x10_0000, 2048, VRING_DESC_F_WRITE)]);
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(b"to the guest");
        let mut wire = Wire {
            incoming: VecDeque::from([frame.clone(), frame.clone()]),
            ..Default::default()
        };
        let mut pending = None;
        assert_eq!(
            process_rx(&mem, &mut queue, &mut pending, &mut wire),
            Ok(true)
        );
        assert!(pending.is_some(), "second frame waits for a buffer");
        let used = vq.used().ring().ref_at(0).unwrap().load();
        assert_eq!(used.len() as usize, frame.len());
        let mut back = vec![0u8; frame.len()];
        mem.read_slice(&mut back, GuestAddress(0x10_0000)).unwrap();
        assert_eq!(&back[12..], b"to the guest");
        assert_eq!(u16::from_le_bytes([back[10], back[11]]), 1);
    }

    #[test]
    fn small_rx_buffers_need_reset() {
        let mem = memory();
        let (_vq, mut queue) = queue_with(&mem, &[desc(0x10_0000, 100, VRING_DESC_F_WRITE)]);
        let mut wire = Wire {
            incoming: VecDeque::from([vec![0u8; 60]]),
            ..Default::default()
        };
        let mut pending = None;
        assert_eq!(
            process_rx(&mem, &mut queue, &mut pending, &mut wire),
            Err(NetError::ShortRxBuffer(100))
        );
    }
}
