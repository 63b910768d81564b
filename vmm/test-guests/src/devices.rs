//! End-to-end device checks with virtio-drivers over virtio-mmio, at the
//! windows hull-vmm places devices in (4 KiB each from 0xd0000000).

use core::ptr::NonNull;

use virtio_drivers::device::blk::{VirtIOBlk, SECTOR_SIZE};
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::transport::{DeviceType, Transport};

use crate::hal::HullHal;
use crate::io::{print, print_hex, println};

const VIRTIO_MMIO_START: usize = 0xd000_0000;
const VIRTIO_MMIO_SIZE: usize = 0x1000;
const SLOTS: usize = 8;

/// The transport of the first device of type `wanted`.
pub(crate) fn find(wanted: DeviceType) -> Option<MmioTransport<'static>> {
    for slot in 0..SLOTS {
        let addr = VIRTIO_MMIO_START + slot * VIRTIO_MMIO_SIZE;
        let header = NonNull::new(addr as *mut VirtIOHeader)?;
        // SAFETY: the window is identity-mapped MMIO; an empty window reads
        // as all ones and is rejected by the magic check.
        let Ok(transport) = (unsafe { MmioTransport::new(header, VIRTIO_MMIO_SIZE) }) else {
            continue;
        };
        if transport.device_type() == wanted {
            return Some(transport);
        }
    }
    None
}

/// Block device: print sector 0 as text, write a pattern to sector 1 (or
/// fail to, read-only), read it back, flush.
pub fn block_test() {
    let Some(transport) = find(DeviceType::Block) else {
        println(b"blk: no device");
        return;
    };
    let mut blk = match VirtIOBlk::<HullHal, _>::new(transport) {
        Ok(blk) => blk,
        Err(_) => {
            println(b"blk: init failed");
            return;
        }
    };
    print(b"blk: capacity ");
    print_hex(blk.capacity());
    print(b" readonly ");
    print_hex(u64::from(blk.readonly()));
    println(b"");
    let mut sector = [0u8; SECTOR_SIZE];
    if blk.read_blocks(0, &mut sector).is_err() {
        println(b"blk: read failed");
        return;
    }
    let text_len = sector
        .iter()
        .position(|b| *b == 0 || *b == b'\n')
        .unwrap_or(64)
        .min(64);
    print(b"blk: sector0 ");
    println(&sector[..text_len]);
    let mut pattern = [0u8; SECTOR_SIZE];
    for (i, b) in pattern.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(7).wrapping_add(3);
    }
    if blk.write_blocks(1, &pattern).is_err() {
        println(b"blk: write refused");
    } else {
        let mut back = [0u8; SECTOR_SIZE];
        let ok = blk.read_blocks(1, &mut back).is_ok() && back == pattern;
        println(if ok {
            b"blk: write readback ok"
        } else {
            b"blk: write readback MISMATCH"
        });
    }
    // Beyond the end: must fail cleanly.
    let beyond = blk.capacity() as usize;
    if blk.read_blocks(beyond, &mut sector).is_err() {
        println(b"blk: read past end refused");
    }
    match blk.flush() {
        Ok(()) => println(b"blk: flush ok"),
        Err(_) => println(b"blk: flush failed"),
    }
}

fn mmio_read(base: usize, offset: usize) -> u32 {
    // SAFETY: identity-mapped MMIO window of a virtio device.
    unsafe { core::ptr::read_volatile((base + offset) as *const u32) }
}

fn mmio_write(base: usize, offset: usize, value: u32) {
    // SAFETY: as above.
    unsafe { core::ptr::write_volatile((base + offset) as *mut u32, value) }
}

/// Window of the first device of type `device_id`, probed by hand.
fn raw_window(device_id: u32) -> Option<usize> {
    (0..SLOTS)
        .map(|slot| VIRTIO_MMIO_START + slot * VIRTIO_MMIO_SIZE)
        .find(|base| mmio_read(*base, 0) == 0x7472_6976 && mmio_read(*base, 8) == device_id)
}

const STATUS: usize = 0x70;
const NEEDS_RESET: u32 = 0x40;

fn report(what: &[u8], base: usize) {
    let needs_reset = mmio_read(base, STATUS) & NEEDS_RESET != 0;
    print(b"hostile: ");
    print(what);
    println(if needs_reset {
        b" -> needs reset"
    } else {
        b" -> NOT flagged"
    });
    mmio_write(base, STATUS, 0);
    if mmio_read(base, STATUS) != 0 {
        println(b"hostile: reset did not clear status");
    }
}

fn negotiate(base: usize) {
    mmio_write(base, STATUS, 0);
    mmio_write(base, STATUS, 3);
    mmio_write(base, 0x24, 1);
    mmio_write(base, 0x20, 1); // VIRTIO_F_VERSION_1
    mmio_write(base, STATUS, 0xb);
}

/// Feeds the block device's transport and queue bad input; each must flag
/// DEVICE_NEEDS_RESET without stopping the VM. Then the device must work
/// again after a reset.
pub fn hostile_test() {
    let Some(base) = raw_window(2) else {
        println(b"hostile: no block device");
        return;
    };
    negotiate(base);
    mmio_write(base, 0xc8, 0x1234);
    report(b"unknown register", base);

    negotiate(base);
    mmio_write(base, 0x38, 3);
    report(b"queue size 3", base);

    negotiate(base);
    mmio_write(base, 0x50, 7);
    report(b"notify of queue 7", base);

    // A queue whose only request points far outside guest memory.
    #[repr(C, align(4096))]
    struct Rings([u8; 4096]);
    static mut RINGS: Rings = Rings([0; 4096]);
    // Only its address is taken here; the writes below go through it.
    let rings = core::ptr::addr_of_mut!(RINGS) as usize;
    let desc = rings;
    let avail = rings + 0x100;
    let used = rings + 0x200;
    // SAFETY: writes inside the static ring page.
    unsafe {
        core::ptr::write_volatile(desc as *mut u64, 0x7fff_0000_0000); // addr
        core::ptr::write_volatile((desc + 8) as *mut u32, 16); // len
        core::ptr::write_volatile((desc + 12) as *mut u16, 0); // flags
        core::ptr::write_volatile((avail + 4) as *mut u16, 0); // ring[0] = head 0
        core::ptr::write_volatile((avail + 2) as *mut u16, 1); // idx = 1
    }
    negotiate(base);
    mmio_write(base, 0x30, 0);
    mmio_write(base, 0x38, 8);
    mmio_write(base, 0x80, desc as u32);
    mmio_write(base, 0x90, avail as u32);
    mmio_write(base, 0xa0, used as u32);
    mmio_write(base, 0x44, 1);
    mmio_write(base, STATUS, 0xf);
    mmio_write(base, 0x50, 0);
    // The device serves the queue on the VMM's event loop: wait for it.
    let mut spins = 0u32;
    while mmio_read(base, STATUS) & NEEDS_RESET == 0 && spins < 100_000 {
        core::hint::spin_loop();
        spins += 1;
    }
    report(b"descriptor outside memory", base);
}

use virtio_drivers::device::socket::{
    VirtIOSocket, VsockAddr, VsockConnectionManager, VsockEventType, VMADDR_CID_HOST,
};

/// Port the guest listens on for the host-initiated echo.
const ECHO_PORT: u32 = 1234;
/// Host port the guest connects to (the host listens on `<socket>_5678`).
const HOST_PORT: u32 = 5678;
const POLL_LIMIT: u32 = 2_000_000;

type Manager = VsockConnectionManager<HullHal, MmioTransport<'static>>;

/// Polls until `wanted` accepts an event (or gives up).
fn wait_for(
    manager: &mut Manager,
    mut wanted: impl FnMut(&mut Manager, VsockEventType, VsockAddr, u32) -> bool,
) -> bool {
    for _ in 0..POLL_LIMIT {
        match manager.poll() {
            Ok(Some(event)) => {
                if wanted(
                    manager,
                    event.event_type,
                    event.source,
                    event.destination.port,
                ) {
                    return true;
                }
            }
            Ok(None) => core::hint::spin_loop(),
            Err(_) => {
                println(b"vsock: poll error");
                return false;
            }
        }
    }
    println(b"vsock: timed out");
    false
}

/// vsock: echo what a host-initiated connection sends until the host
/// closes it, then connect to the host and print its reply.
pub fn vsock_test() {
    let Some(transport) = find(DeviceType::Socket) else {
        println(b"vsock: no device");
        return;
    };
    let Ok(driver) = VirtIOSocket::<HullHal, _>::new(transport) else {
        println(b"vsock: init failed");
        return;
    };
    let mut manager = Manager::new(driver);
    print(b"vsock: guest cid ");
    print_hex(manager.guest_cid());
    println(b"");
    manager.listen(ECHO_PORT);
    println(b"vsock: listening");

    // 1. Host-initiated: echo until the host disconnects.
    let mut echoed = 0u64;
    let done = wait_for(&mut manager, |m, event, peer, port| match event {
        VsockEventType::ConnectionRequest => {
            println(b"vsock: host connected");
            false
        }
        VsockEventType::Received { .. } => {
            let mut buf = [0u8; 512];
            while let Ok(n) = m.recv(peer, port, &mut buf) {
                if n == 0 {
                    break;
                }
                echoed += n as u64;
                if m.send(peer, port, &buf[..n]).is_err() {
                    println(b"vsock: echo send failed");
                }
            }
            false
        }
        VsockEventType::Disconnected { .. } => true,
        _ => false,
    });
    if !done {
        return;
    }
    print(b"vsock: echoed bytes ");
    print_hex(echoed);
    println(b"");

    // 2. Guest-initiated: connect to the host, send, print the reply.
    let host = VsockAddr {
        cid: VMADDR_CID_HOST,
        port: HOST_PORT,
    };
    let local_port = 4000;
    if manager.connect(host, local_port).is_err() {
        println(b"vsock: connect failed");
        return;
    }
    let connected = wait_for(&mut manager, |_, event, _, _| match event {
        VsockEventType::Connected => true,
        VsockEventType::Disconnected { .. } => {
            println(b"vsock: connection refused");
            true
        }
        _ => false,
    });
    if !connected || manager.send(host, local_port, b"hello from guest").is_err() {
        println(b"vsock: send to host failed");
        return;
    }
    let mut reply = [0u8; 64];
    let mut len = 0;
    wait_for(&mut manager, |m, event, _, _| {
        if let VsockEventType::Received { .. } = event {
            if let Ok(n) = m.recv(host, local_port, &mut reply[len..]) {
                len += n;
            }
        }
        reply[..len].ends_with(b"\n")
    });
    print(b"vsock: host replied ");
    print(&reply[..len]);
    let _ = manager.shutdown(host, local_port);
}

use virtio_drivers::device::net::VirtIONet;

/// EtherType used by the tests (IEEE local experimental).
const TEST_ETHERTYPE: [u8; 2] = [0x88, 0xb5];

/// Network: broadcast a test frame, then print the first test frame that
/// comes back.
pub fn net_test() {
    let Some(transport) = find(DeviceType::Network) else {
        println(b"net: no device");
        return;
    };
    let Ok(mut net) = VirtIONet::<HullHal, _, 16>::new(transport, 2048) else {
        println(b"net: init failed");
        return;
    };
    let mac = net.mac_address();
    print(b"net: mac");
    for b in mac {
        print(b" ");
        print_hex(u64::from(b));
    }
    println(b"");
    let mut frame = [0u8; 60];
    frame[..6].fill(0xff);
    frame[6..12].copy_from_slice(&mac);
    frame[12..14].copy_from_slice(&TEST_ETHERTYPE);
    let payload = b"hello from guest net";
    frame[14..14 + payload.len()].copy_from_slice(payload);
    let mut tx = net.new_tx_buffer(frame.len());
    tx.packet_mut().copy_from_slice(&frame);
    if net.send(tx).is_err() {
        println(b"net: send failed");
        return;
    }
    println(b"net: frame sent");
    for _ in 0..POLL_LIMIT {
        match net.receive() {
            Ok(rx) => {
                let packet = rx.packet();
                let wanted = packet.len() >= 14 && packet[12..14] == TEST_ETHERTYPE;
                if wanted {
                    let body = &packet[14..];
                    let end = body
                        .iter()
                        .position(|b| *b == 0)
                        .unwrap_or(body.len())
                        .min(64);
                    print(b"net: got frame ");
                    println(&body[..end]);
                }
                let _ = net.recycle_rx_buffer(rx);
                if wanted {
                    return;
                }
            }
            Err(_) => core::hint::spin_loop(),
        }
    }
    println(b"net: timed out");
}
