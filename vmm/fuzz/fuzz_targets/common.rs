//! Shared set-up: guest memory filled from the fuzz input and split queues
//! whose sizes and ring addresses also come from the input.

use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Guest memory size of every run.
pub const MEM_SIZE: usize = 0x2_0000;
/// Input bytes used for queue parameters before the memory image.
pub const PARAMS: usize = 12;

/// A ready queue configured from 6 parameter bytes: mostly valid sizes
/// (so runs get past set-up), sometimes invalid ones.
pub fn queue(p: &[u8]) -> Option<Queue> {
    let mut queue = Queue::new(256).ok()?;
    let size = if p[0] & 0xf0 == 0xf0 {
        u16::from_le_bytes([p[0], p[1]])
    } else {
        1 << (p[0] % 9)
    };
    queue.set_size(size);
    if p[2] & 0x80 == 0 {
        // The usual layout: rings at the start of the input's memory image
        // (a 256-entry table is 4 KiB, so small queues leave room).
        queue.set_desc_table_address(Some(0), None);
        queue.set_avail_ring_address(Some(0x100 * u32::from(1 + (p[3] & 0xf))), None);
        queue.set_used_ring_address(Some(0x1000 + 0x400 * u32::from(p[4] & 0x7)), None);
    } else {
        let addr = |b: u8| u32::from(b) * 0x200;
        queue.set_desc_table_address(Some(addr(p[2])), Some(u32::from(p[5] == 0xff)));
        queue.set_avail_ring_address(Some(addr(p[3])), None);
        queue.set_used_ring_address(Some(addr(p[4])), None);
    }
    queue.set_ready(true);
    Some(queue)
}

/// Guest memory holding the input after the parameter bytes.
pub fn memory(data: &[u8]) -> Option<GuestMemoryMmap<()>> {
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).ok()?;
    let body = data.get(PARAMS..)?;
    let len = body.len().min(MEM_SIZE);
    mem.write_slice(&body[..len], GuestAddress(0)).ok()?;
    Some(mem)
}
