//! virtio-fs without a driver: virtio-drivers has none (and its MMIO
//! transport refuses device type 26), so the device is brought up through
//! the registers by hand, and one FUSE_INIT request goes down the request
//! queue to the vhost-user back-end (virtiofsd) and back.

use core::sync::atomic::{fence, Ordering};

use crate::io::{print, print_hex, println};

const VIRTIO_MMIO_START: usize = 0xd000_0000;
const VIRTIO_MMIO_SIZE: usize = 0x1000;
const SLOTS: usize = 8;
const TYPE_FS: u32 = 26;

const DEVICE_FEATURES: usize = 0x010;
const DEVICE_FEATURES_SEL: usize = 0x014;
const DRIVER_FEATURES: usize = 0x020;
const DRIVER_FEATURES_SEL: usize = 0x024;
const QUEUE_SEL: usize = 0x030;
const QUEUE_NUM_MAX: usize = 0x034;
const QUEUE_NUM: usize = 0x038;
const QUEUE_READY: usize = 0x044;
const QUEUE_NOTIFY: usize = 0x050;
const STATUS: usize = 0x070;
const QUEUE_DESC_LOW: usize = 0x080;
const QUEUE_DESC_HIGH: usize = 0x084;
const QUEUE_AVAIL_LOW: usize = 0x090;
const QUEUE_AVAIL_HIGH: usize = 0x094;
const QUEUE_USED_LOW: usize = 0x0a0;
const QUEUE_USED_HIGH: usize = 0x0a4;
const CONFIG: usize = 0x100;

const NEEDS_RESET: u32 = 0x40;
const QUEUE_SIZE: u32 = 8;
const REQUEST_QUEUE: u32 = 1;

const FUSE_INIT: u32 = 26;
/// The request id the reply must echo.
pub const INIT_UNIQUE: u64 = 0x4855_4c4c_0000_0001;
const IN_HEADER_LEN: usize = 40;
const INIT_IN_LEN: usize = 16;
const OUT_LEN: usize = 256;
const POLL_LIMIT: u32 = 2_000_000;

fn read32(base: usize, offset: usize) -> u32 {
    // SAFETY: identity-mapped MMIO window of a virtio device, or guest RAM
    // this module owns.
    unsafe { core::ptr::read_volatile((base + offset) as *const u32) }
}

fn write32(base: usize, offset: usize, value: u32) {
    // SAFETY: as above.
    unsafe { core::ptr::write_volatile((base + offset) as *mut u32, value) }
}

fn write16(addr: usize, value: u16) {
    // SAFETY: guest RAM this module owns (the ring pages below).
    unsafe { core::ptr::write_volatile(addr as *mut u16, value) }
}

fn read16(addr: usize) -> u16 {
    // SAFETY: as above.
    unsafe { core::ptr::read_volatile(addr as *const u16) }
}

fn write64(addr: usize, value: u64) {
    // SAFETY: as above.
    unsafe { core::ptr::write_volatile(addr as *mut u64, value) }
}

/// One page per queue: descriptors at 0, available ring at 0x400, used
/// ring at 0x800 (8 entries each), and one page of request buffers.
#[repr(C, align(4096))]
struct Pages([[u8; 4096]; 3]);
static mut PAGES: Pages = Pages([[0; 4096]; 3]);

fn page(index: usize) -> usize {
    // Only the address is taken; accesses go through volatile pointers.
    core::ptr::addr_of_mut!(PAGES) as usize + index * 4096
}

fn window() -> Option<usize> {
    (0..SLOTS)
        .map(|slot| VIRTIO_MMIO_START + slot * VIRTIO_MMIO_SIZE)
        .find(|base| read32(*base, 0) == 0x7472_6976 && read32(*base, 8) == TYPE_FS)
}

fn set_up_queue(base: usize, index: u32) -> bool {
    write32(base, QUEUE_SEL, index);
    if read32(base, QUEUE_NUM_MAX) < QUEUE_SIZE {
        return false;
    }
    let rings = page(index as usize) as u64;
    write32(base, QUEUE_NUM, QUEUE_SIZE);
    for (low, high, addr) in [
        (QUEUE_DESC_LOW, QUEUE_DESC_HIGH, rings),
        (QUEUE_AVAIL_LOW, QUEUE_AVAIL_HIGH, rings + 0x400),
        (QUEUE_USED_LOW, QUEUE_USED_HIGH, rings + 0x800),
    ] {
        write32(base, low, addr as u32);
        write32(base, high, (addr >> 32) as u32);
    }
    write32(base, QUEUE_READY, 1);
    true
}

/// Prints the tag, brings the device up (VERSION_1 only, both queues),
/// sends FUSE_INIT on the request queue, prints the reply's header and
/// version, then resets the device.
pub fn fs_test() {
    let Some(base) = window() else {
        println(b"fs: no device");
        return;
    };
    let mut tag = [0u8; 36];
    for (i, chunk) in tag.chunks_mut(4).enumerate() {
        chunk.copy_from_slice(&read32(base, CONFIG + i * 4).to_le_bytes());
    }
    let tag_len = tag.iter().position(|b| *b == 0).unwrap_or(tag.len());
    print(b"fs: tag ");
    println(&tag[..tag_len]);
    print(b"fs: request queues ");
    print_hex(u64::from(read32(base, CONFIG + 36)));
    println(b"");

    write32(base, STATUS, 0);
    write32(base, STATUS, 3);
    write32(base, DEVICE_FEATURES_SEL, 1);
    if read32(base, DEVICE_FEATURES) & 1 == 0 {
        println(b"fs: no VERSION_1");
        return;
    }
    write32(base, DRIVER_FEATURES_SEL, 0);
    write32(base, DRIVER_FEATURES, 0);
    write32(base, DRIVER_FEATURES_SEL, 1);
    write32(base, DRIVER_FEATURES, 1);
    write32(base, STATUS, 0xb);
    if read32(base, STATUS) & 0x8 == 0 {
        println(b"fs: features refused");
        return;
    }
    if !set_up_queue(base, 0) || !set_up_queue(base, REQUEST_QUEUE) {
        println(b"fs: queue too small");
        return;
    }
    write32(base, STATUS, 0xf);
    if read32(base, STATUS) & NEEDS_RESET != 0 {
        println(b"fs: activation failed (needs reset)");
        return;
    }
    println(b"fs: driver ok");

    // FUSE_INIT: fuse_in_header + fuse_init_in (7.31: no flags2) in one
    // device-readable buffer, the reply in one device-writable buffer.
    let request = page(2);
    let reply = request + 0x800;
    let len = (IN_HEADER_LEN + INIT_IN_LEN) as u32;
    write32(request, 0, len);
    write32(request, 4, FUSE_INIT);
    write64(request + 8, INIT_UNIQUE);
    write32(request, IN_HEADER_LEN, 7); // major
    write32(request, IN_HEADER_LEN + 4, 31); // minor
    let rings = page(REQUEST_QUEUE as usize);
    let (avail, used) = (rings + 0x400, rings + 0x800);
    // Descriptor 0 -> 1: addr, len, flags (NEXT = 1, WRITE = 2), next.
    write64(rings, request as u64);
    write32(rings, 8, len);
    write16(rings + 12, 1);
    write16(rings + 14, 1);
    write64(rings + 16, reply as u64);
    write32(rings, 24, OUT_LEN as u32);
    write16(rings + 28, 2);
    write16(avail + 4, 0); // ring[0] = head 0
    fence(Ordering::SeqCst);
    write16(avail + 2, 1); // idx
    fence(Ordering::SeqCst);
    write32(base, QUEUE_NOTIFY, REQUEST_QUEUE);

    let mut spins = 0;
    while read16(used + 2) == 0 && spins < POLL_LIMIT {
        core::hint::spin_loop();
        spins += 1;
    }
    if read16(used + 2) == 0 {
        println(b"fs: no reply");
    } else {
        fence(Ordering::SeqCst);
        let unique = u64::from(read32(reply, 8)) | (u64::from(read32(reply, 12)) << 32);
        print(b"fs: init reply used len ");
        print_hex(u64::from(read32(used, 8)));
        print(b" unique ");
        print_hex(unique);
        print(b" error ");
        print_hex(u64::from(read32(reply, 4)));
        print(b" major ");
        print_hex(u64::from(read32(reply, 16)));
        print(b" minor ");
        print_hex(u64::from(read32(reply, 20)));
        println(b"");
    }
    write32(base, STATUS, 0);
    println(if read32(base, STATUS) == 0 {
        b"fs: reset ok"
    } else {
        b"fs: reset failed"
    });
}
