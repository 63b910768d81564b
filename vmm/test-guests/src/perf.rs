//! Throughput modes for `bench/vmm.sh` (`hull-vmm-bench`) and
//! `tests/throughput.rs`, both with virtio-drivers.
//!
//! The data is a fixed pattern: byte `k` of a stream is `pattern(k % 64 Ki)`,
//! so either side checks what it gets with slice comparisons against one
//! 64 KiB table, without per-byte work in this (slow) guest.
//!
//! Received data is spot-checked in the guest, fully with `perfcheck=1`.
//!
//! - `vsockperf=N`: listen on port 1235; on the host's connection, take N
//!   pattern bytes (checking them, granting credit as they are consumed),
//!   answer one byte, `K` when all matched or `X`, then send N pattern
//!   bytes back and wait for the host to close.
//! - `netperf=N`: send `BEGN`, N `DATA` frames (1514 bytes, sequence number
//!   and pattern), `DONE`; then `RDY!`, take N `DATA` frames from the host,
//!   acknowledging every 16 (`ACK!` + next expected sequence number) so the
//!   host can keep a bounded window in flight, and end with `DONE` + count
//!   + lost + bad. All frames are EtherType 0x88b5 with a 4-byte tag.

use alloc::vec;
use alloc::vec::Vec;

use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::device::socket::{ConnectionInfo, SocketError, VirtIOSocket, VsockEventType};
use virtio_drivers::transport::mmio::MmioTransport;
use virtio_drivers::transport::DeviceType;
use virtio_drivers::Error;

use crate::devices::find;
use crate::hal::HullHal;
use crate::io::{print, print_hex, println};

/// Period of the data pattern.
const PATTERN_LEN: usize = 64 << 10;
/// vsock port of the throughput peer.
const PERF_PORT: u32 = 1235;
/// One rx buffer holds a full 64 KiB payload (hull-vmm's largest) + header.
const VSOCK_RX_BUFFER: usize = PATTERN_LEN + 44;
/// Receive buffer advertised to the host (data is consumed at once, in
/// the rx buffers, so this only bounds what is in flight).
const VSOCK_CREDIT: u32 = 1 << 20;
/// Ethernet frame: 14-byte header + 1500-byte payload.
const FRAME_LEN: usize = 1514;
/// virtio_net_hdr with num_buffers (VERSION_1).
const NET_HDR: usize = 12;
const NET_QUEUE: usize = 64;
const NET_RX_BUFFER: usize = 2048;
const TX_SLOTS: usize = 32;
const ACK_EVERY: u32 = 16;
const ETHERTYPE: [u8; 2] = [0x88, 0xb5];
/// Give up after this many TSC cycles without progress (~20-60 s).
const STALL_CYCLES: u64 = 60_000_000_000;

/// Byte `i` of the pattern table (also computed by the host side).
fn pattern_byte(i: usize) -> u8 {
    (i as u32).wrapping_mul(31).wrapping_add((i >> 8) as u32) as u8
}

fn pattern_table() -> Vec<u8> {
    (0..PATTERN_LEN).map(pattern_byte).collect()
}

/// Whether `data` is the pattern stream from offset `pos` on: every byte
/// with `full`, else its first and last 16 (a full comparison costs this
/// emulated guest more than the transfer: the benchmark spot-checks, the
/// smoke test checks everything, and the host always checks everything).
fn check(table: &[u8], pos: u64, data: &[u8], full: bool) -> bool {
    if full || data.len() <= 32 {
        return matches_pattern(table, pos, data);
    }
    let tail = data.len() - 16;
    matches_pattern(table, pos, &data[..16])
        && matches_pattern(table, pos + tail as u64, &data[tail..])
}

/// Whether `data` is the pattern stream from offset `pos` on.
fn matches_pattern(table: &[u8], mut pos: u64, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        let offset = (pos % PATTERN_LEN as u64) as usize;
        let take = data.len().min(PATTERN_LEN - offset);
        if !same(&data[..take], &table[offset..offset + take]) {
            return false;
        }
        data = &data[take..];
        pos += take as u64;
    }
    true
}

fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: reads the time stamp counter; no memory or flags effects.
    unsafe {
        core::arch::asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack));
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// A deadline pushed back on every sign of progress.
struct Watchdog(u64);

impl Watchdog {
    fn new() -> Self {
        Watchdog(rdtsc())
    }
    fn progress(&mut self) {
        self.0 = rdtsc();
    }
    fn expired(&self) -> bool {
        rdtsc().wrapping_sub(self.0) > STALL_CYCLES
    }
}

fn report(what: &[u8], value: u64) {
    print(what);
    print_hex(value);
    println(b"");
}

/// Whether `a` and `b` are equal, with `repe cmps`: one instruction for
/// the whole comparison, where a loop would cost several per byte in this
/// emulated guest.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let equal: u8;
    // SAFETY: reads a.len() bytes from each slice, nothing else; the
    // direction flag is clear (ABI).
    unsafe {
        core::arch::asm!(
            "cmp eax, eax",
            "repe cmpsq",
            "jne 2f",
            "mov rcx, {rest}",
            "cmp eax, eax",
            "repe cmpsb",
            "2:",
            "sete {equal}",
            rest = in(reg) a.len() % 8,
            equal = out(reg_byte) equal,
            inout("rsi") a.as_ptr() => _,
            inout("rdi") b.as_ptr() => _,
            inout("rcx") a.len() / 8 => _,
            out("eax") _,
            options(readonly, nostack),
        );
    }
    equal != 0
}

type Socket = VirtIOSocket<HullHal, MmioTransport<'static>, VSOCK_RX_BUFFER>;

/// `vsockperf=N`: sink N bytes from the host, then source N bytes. The
/// low-level driver, not its connection manager: payloads are checked in
/// the rx buffers themselves, with no copy.
pub fn vsock_perf(total: u64, full_check: bool) {
    let Some(transport) = find(DeviceType::Socket) else {
        println(b"vsockperf: no device");
        return;
    };
    let Ok(mut socket) = Socket::new(transport) else {
        println(b"vsockperf: init failed");
        return;
    };
    let table = pattern_table();
    println(b"vsockperf: listening");

    let mut watchdog = Watchdog::new();
    let mut info = loop {
        match socket.poll(|event, _| Ok(Some(event))) {
            Ok(Some(event))
                if event.event_type == VsockEventType::ConnectionRequest
                    && event.destination.port == PERF_PORT =>
            {
                let mut info = ConnectionInfo::new(event.source, PERF_PORT);
                info.buf_alloc = VSOCK_CREDIT;
                info.update_for_event(&event);
                break info;
            }
            Ok(_) if !watchdog.expired() => core::hint::spin_loop(),
            _ => {
                println(b"vsockperf: no connection");
                return;
            }
        }
    };
    if socket.accept(&info).is_err() {
        println(b"vsockperf: accept failed");
        return;
    }

    // Host to guest.
    let mut received = 0u64;
    let mut good = true;
    let mut uncredited = 0u32;
    let mut closed = false;
    watchdog.progress();
    while received < total && !closed {
        let peer = info.dst;
        let result = socket.poll(|event, body| {
            if event.source != peer || event.destination.port != PERF_PORT {
                return Ok(None);
            }
            info.update_for_event(&event);
            match event.event_type {
                VsockEventType::Received { .. } => {
                    good &= check(&table, received, body, full_check);
                    received += body.len() as u64;
                    uncredited += body.len() as u32;
                    info.done_forwarding(body.len());
                }
                VsockEventType::Disconnected { .. } => closed = true,
                _ => {}
            }
            Ok(Some(event))
        });
        let idle = match result {
            Ok(Some(_)) => {
                watchdog.progress();
                false
            }
            Ok(None) if watchdog.expired() => {
                println(b"vsockperf: stalled receiving");
                return;
            }
            Ok(None) => true,
            Err(_) => {
                println(b"vsockperf: poll error");
                return;
            }
        };
        // Tell the host what was consumed: every quarter buffer, and at
        // once when idle (each update is a round trip to the VMM).
        if uncredited >= VSOCK_CREDIT / 4 || (idle && uncredited > 0) {
            if socket.credit_update(&info).is_err() {
                println(b"vsockperf: credit update failed");
                return;
            }
            uncredited = 0;
        } else if idle {
            core::hint::spin_loop();
        }
    }
    report(b"vsockperf: received bytes ", received);
    println(if good {
        b"vsockperf: received data ok"
    } else {
        b"vsockperf: received data MISMATCH"
    });
    let verdict: &[u8] = if good && received == total {
        b"K"
    } else {
        b"X"
    };
    if socket.send(verdict, &mut info).is_err() {
        println(b"vsockperf: verdict send failed");
        return;
    }

    // Guest to host, straight from the pattern table.
    let mut sent = 0u64;
    watchdog.progress();
    while sent < total {
        // Take what the host has sent (credit updates) first: each holds
        // an rx buffer, and the VMM queues only so many.
        let peer = info.dst;
        loop {
            match socket.poll(|event, _| {
                if event.source == peer && event.destination.port == PERF_PORT {
                    info.update_for_event(&event);
                }
                Ok(Some(event))
            }) {
                Ok(Some(event))
                    if matches!(event.event_type, VsockEventType::Disconnected { .. }) =>
                {
                    println(b"vsockperf: host closed while receiving");
                    return;
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => {
                    println(b"vsockperf: poll error");
                    return;
                }
            }
        }
        let offset = (sent % PATTERN_LEN as u64) as usize;
        let n = ((total - sent) as usize).min(PATTERN_LEN - offset);
        match socket.send(&table[offset..offset + n], &mut info) {
            Ok(()) => {
                sent += n as u64;
                watchdog.progress();
            }
            // No credit yet: the driver asked for it; poll again.
            Err(Error::SocketDeviceError(SocketError::InsufficientBufferSpaceInPeer)) => {
                if watchdog.expired() {
                    println(b"vsockperf: stalled sending");
                    return;
                }
                core::hint::spin_loop();
            }
            Err(_) => {
                println(b"vsockperf: send failed");
                return;
            }
        }
    }
    report(b"vsockperf: sent bytes ", sent);
    // The host closes once it has everything.
    watchdog.progress();
    loop {
        match socket.poll(|event, _| Ok(Some(event))) {
            Ok(Some(event)) if matches!(event.event_type, VsockEventType::Disconnected { .. }) => {
                break
            }
            Ok(Some(_)) => {}
            Ok(None) if !watchdog.expired() => core::hint::spin_loop(),
            _ => break,
        }
    }
    let _ = socket.force_close(&info);
    println(b"vsockperf: done");
}

type Net = VirtIONetRaw<HullHal, MmioTransport<'static>, NET_QUEUE>;

/// Buffers handed to the device, each found again by its token (the head
/// descriptor index: one descriptor per buffer, so tokens are unique among
/// buffers in flight).
struct Slots {
    memory: Vec<u8>,
    size: usize,
    by_token: [usize; NET_QUEUE],
}

impl Slots {
    fn new(count: usize, size: usize) -> Self {
        Slots {
            memory: vec![0u8; count * size],
            size,
            by_token: [usize::MAX; NET_QUEUE],
        }
    }
    fn buf(&mut self, index: usize) -> &mut [u8] {
        &mut self.memory[index * self.size..(index + 1) * self.size]
    }
}

/// Writes a test frame (after `NET_HDR` bytes of zeroed virtio-net header)
/// with `tag` and 4-byte words `words`; returns the buffer length to send.
fn control_frame(buf: &mut [u8], mac: &[u8; 6], tag: &[u8; 4], words: &[u32]) -> usize {
    let frame = &mut buf[NET_HDR..];
    frame[..6].fill(0xff);
    frame[6..12].copy_from_slice(mac);
    frame[12..14].copy_from_slice(&ETHERTYPE);
    frame[14..18].copy_from_slice(tag);
    for (i, w) in words.iter().enumerate() {
        frame[18 + 4 * i..22 + 4 * i].copy_from_slice(&w.to_le_bytes());
    }
    frame[18 + 4 * words.len()..60].fill(0);
    NET_HDR + 60
}

/// Offset into the pattern table of the payload of frame `seq`.
fn frame_pattern_offset(seq: u32) -> usize {
    (seq as usize % 32) * 1536
}

/// Sends one frame and waits until the device has taken it.
fn send_sync(net: &mut Net, buf: &[u8]) -> bool {
    // Every earlier transmission has been reaped, so the next used token
    // is this one.
    // SAFETY: `buf` is not touched until the device returns it below.
    let Ok(token) = (unsafe { net.transmit_begin(buf) }) else {
        return false;
    };
    let watchdog = Watchdog::new();
    while net.poll_transmit() != Some(token) {
        if watchdog.expired() {
            return false;
        }
        core::hint::spin_loop();
    }
    // SAFETY: the same buffer as given to transmit_begin.
    unsafe { net.transmit_complete(token, buf) }.is_ok()
}

/// `netperf=N`: N frames to the host, then N frames from the host.
pub fn net_perf(frames: u32, full_check: bool) {
    let Some(transport) = find(DeviceType::Network) else {
        println(b"netperf: no device");
        return;
    };
    let Ok(mut net) = Net::new(transport) else {
        println(b"netperf: init failed");
        return;
    };
    let mac = net.mac_address();
    let table = pattern_table();
    let mut rx = Slots::new(NET_QUEUE, NET_RX_BUFFER);
    for i in 0..NET_QUEUE {
        // SAFETY: the buffer is not touched until the device returns it.
        match unsafe { net.receive_begin(rx.buf(i)) } {
            Ok(token) => rx.by_token[usize::from(token) % NET_QUEUE] = i,
            Err(_) => {
                println(b"netperf: cannot post rx buffers");
                return;
            }
        }
    }
    // Frame `seq` goes out of slot `seq % TX_SLOTS`, whose pattern is
    // written once here: per frame only the sequence number changes.
    let mut tx = Slots::new(TX_SLOTS, NET_HDR + FRAME_LEN);
    for slot in 0..TX_SLOTS {
        let buf = tx.buf(slot);
        control_frame(buf, &mac, b"DATA", &[0]);
        let offset = frame_pattern_offset(slot as u32);
        let body = &mut buf[NET_HDR + 22..];
        body.copy_from_slice(&table[offset..offset + body.len()]);
    }
    let mut busy = [false; TX_SLOTS];
    let mut control = [0u8; NET_HDR + 60];
    let mut in_flight = 0;

    // Guest to host.
    let len = control_frame(&mut control, &mac, b"BEGN", &[frames]);
    if !send_sync(&mut net, &control[..len]) {
        println(b"netperf: send failed");
        return;
    }
    let mut seq = 0u32;
    let mut watchdog = Watchdog::new();
    while seq < frames || in_flight > 0 {
        while let Some(token) = net.poll_transmit() {
            let slot = tx.by_token[usize::from(token) % NET_QUEUE];
            // SAFETY: the buffer given to transmit_begin with this token.
            if slot >= TX_SLOTS || unsafe { net.transmit_complete(token, tx.buf(slot)) }.is_err() {
                println(b"netperf: bad tx completion");
                return;
            }
            busy[slot] = false;
            in_flight -= 1;
            watchdog.progress();
        }
        let slot = seq as usize % TX_SLOTS;
        if seq < frames && !busy[slot] {
            let buf = tx.buf(slot);
            buf[NET_HDR + 18..NET_HDR + 22].copy_from_slice(&seq.to_le_bytes());
            // SAFETY: the slot is not touched until its completion.
            match unsafe { net.transmit_begin(buf) } {
                Ok(token) => tx.by_token[usize::from(token) % NET_QUEUE] = slot,
                Err(_) => {
                    println(b"netperf: transmit failed");
                    return;
                }
            }
            busy[slot] = true;
            in_flight += 1;
            seq += 1;
            continue;
        }
        if watchdog.expired() {
            println(b"netperf: stalled sending");
            return;
        }
        core::hint::spin_loop();
    }
    report(b"netperf: sent frames ", u64::from(seq));
    let len = control_frame(&mut control, &mac, b"DONE", &[seq]);
    if !send_sync(&mut net, &control[..len]) {
        println(b"netperf: send failed");
        return;
    }

    // Host to guest.
    let len = control_frame(&mut control, &mac, b"RDY!", &[frames]);
    if !send_sync(&mut net, &control[..len]) {
        println(b"netperf: send failed");
        return;
    }
    let (mut expected, mut received, mut lost, mut bad) = (0u32, 0u32, 0u32, 0u32);
    let mut unacked = 0;
    watchdog.progress();
    while expected < frames {
        let Some(token) = net.poll_receive() else {
            if watchdog.expired() {
                println(b"netperf: stalled receiving");
                break;
            }
            core::hint::spin_loop();
            continue;
        };
        watchdog.progress();
        let slot = rx.by_token[usize::from(token) % NET_QUEUE];
        if slot >= NET_QUEUE {
            println(b"netperf: bad rx completion");
            return;
        }
        // SAFETY: the buffer given to receive_begin with this token.
        let Ok((hdr, len)) = (unsafe { net.receive_complete(token, rx.buf(slot)) }) else {
            println(b"netperf: bad rx completion");
            return;
        };
        let buf = rx.buf(slot);
        let frame = &buf[hdr..(hdr + len).min(buf.len())];
        if frame.len() == FRAME_LEN && frame[12..14] == ETHERTYPE && &frame[14..18] == b"DATA" {
            let seq = u32::from_le_bytes([frame[18], frame[19], frame[20], frame[21]]);
            let offset = frame_pattern_offset(seq);
            let body = &frame[22..];
            if !check(&table, offset as u64, body, full_check) {
                bad += 1;
            }
            if seq >= expected {
                lost += seq - expected;
                expected = seq.saturating_add(1);
            }
            received += 1;
            unacked += 1;
        }
        // SAFETY: as above: untouched until the device returns it.
        match unsafe { net.receive_begin(rx.buf(slot)) } {
            Ok(token) => rx.by_token[usize::from(token) % NET_QUEUE] = slot,
            Err(_) => {
                println(b"netperf: cannot repost an rx buffer");
                return;
            }
        }
        if unacked >= ACK_EVERY {
            unacked = 0;
            let len = control_frame(&mut control, &mac, b"ACK!", &[expected]);
            if !send_sync(&mut net, &control[..len]) {
                println(b"netperf: ack failed");
                return;
            }
        }
    }
    report(b"netperf: received frames ", u64::from(received));
    report(b"netperf: lost frames ", u64::from(lost));
    report(b"netperf: bad frames ", u64::from(bad));
    let len = control_frame(&mut control, &mac, b"DONE", &[received, lost, bad]);
    if !send_sync(&mut net, &control[..len]) {
        println(b"netperf: send failed");
        return;
    }
    println(b"netperf: done");
}
