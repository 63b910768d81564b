//! virtio-fs against a fake vhost-user back-end: a thread on the other end
//! of a socket pair that records every request (with its file
//! descriptors) and answers the ones that need an answer.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use event_manager::{EventManager, SubscriberOps};
use vhost::vhost_user::Frontend;
use virtio_queue::{Queue, QueueT};
use vm_memory::{GuestAddress, GuestMemoryBackend};
use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::sock_ctrl_msg::ScmSocket;

use super::backend::{vring_config, BackendError, VhostUserConnection};
use super::*;
use crate::bus::BusDevice;
use crate::devices::virtio::mmio::{reg, MmioTransport};
use crate::devices::virtio::{status, INTERRUPT_USED_RING, VIRTIO_F_VERSION_1};
use crate::memory::{create_guest_memory, GuestMemory};

const GET_FEATURES: u32 = 1;
const SET_FEATURES: u32 = 2;
const SET_OWNER: u32 = 3;
const SET_MEM_TABLE: u32 = 5;
const SET_VRING_NUM: u32 = 8;
const SET_VRING_ADDR: u32 = 9;
const SET_VRING_BASE: u32 = 10;
const GET_VRING_BASE: u32 = 11;
const SET_VRING_KICK: u32 = 12;
const SET_VRING_CALL: u32 = 13;
const GET_PROTOCOL_FEATURES: u32 = 15;
const SET_PROTOCOL_FEATURES: u32 = 16;
const GET_QUEUE_NUM: u32 = 17;
const SET_VRING_ENABLE: u32 = 18;

const PROTOCOL_FEATURES: u64 = 1 << 30;
const PROTOCOL_MQ: u64 = 1;
const PROTOCOL_REPLY_ACK: u64 = 8;
const PROTOCOL_CONFIG: u64 = 1 << 9;
const FLAG_REPLY: u32 = 0x4;
const FLAG_NEED_REPLY: u32 = 0x8;

/// What the fake back-end offers and how it misbehaves.
#[derive(Clone, Copy)]
struct FakeSpec {
    features: u64,
    protocol: u64,
    queues: u64,
    /// Request answered with a non-zero REPLY_ACK status.
    refuse: Option<u32>,
}

impl Default for FakeSpec {
    fn default() -> Self {
        FakeSpec {
            // Also bit 33 (ACCESS_PLATFORM), which must not reach the guest.
            features: (1 << VIRTIO_F_VERSION_1) | PROTOCOL_FEATURES | (1 << 28) | (1 << 33),
            protocol: PROTOCOL_MQ | PROTOCOL_REPLY_ACK | PROTOCOL_CONFIG,
            queues: 2,
            refuse: None,
        }
    }
}

struct Message {
    request: u32,
    body: Vec<u8>,
    fds: Vec<File>,
}

impl Message {
    fn u64(&self) -> u64 {
        u64::from_le_bytes(self.body[..8].try_into().unwrap())
    }
    fn u32_at(&self, offset: usize) -> u32 {
        u32::from_le_bytes(self.body[offset..offset + 4].try_into().unwrap())
    }
    fn u64_at(&self, offset: usize) -> u64 {
        u64::from_le_bytes(self.body[offset..offset + 8].try_into().unwrap())
    }
}

type Log = Arc<Mutex<Vec<Message>>>;

fn reply(stream: &mut UnixStream, request: u32, body: &[u8]) {
    let mut message = Vec::new();
    message.extend_from_slice(&request.to_le_bytes());
    message.extend_from_slice(&(0x1 | FLAG_REPLY).to_le_bytes());
    message.extend_from_slice(&(body.len() as u32).to_le_bytes());
    message.extend_from_slice(body);
    stream.write_all(&message).unwrap();
}

fn serve(mut stream: UnixStream, spec: FakeSpec, log: Log) {
    loop {
        let mut header = [0u8; 12];
        let mut fds = [-1; 8];
        let mut iov = [libc::iovec {
            iov_base: header.as_mut_ptr().cast(),
            iov_len: header.len(),
        }];
        // SAFETY: the iovec points into `header`, alive and writable for
        // the call.
        let Ok((len, nfds)) = (unsafe { stream.recv_with_fds(&mut iov, &mut fds) }) else {
            return;
        };
        if len == 0 {
            return;
        }
        assert_eq!(len, 12, "short vhost-user header");
        let word = |i: usize| u32::from_le_bytes(header[i * 4..i * 4 + 4].try_into().unwrap());
        let (request, flags, size) = (word(0), word(1), word(2));
        let mut body = vec![0u8; size as usize];
        stream.read_exact(&mut body).unwrap();
        let files = fds[..nfds]
            .iter()
            // SAFETY: descriptors just received with SCM_RIGHTS, owned by
            // nobody else.
            .map(|fd| unsafe { File::from_raw_fd(*fd) })
            .collect();
        let answer: Option<Vec<u8>> = match request {
            GET_FEATURES => Some(spec.features.to_le_bytes().to_vec()),
            GET_PROTOCOL_FEATURES => Some(spec.protocol.to_le_bytes().to_vec()),
            GET_QUEUE_NUM => Some(spec.queues.to_le_bytes().to_vec()),
            GET_VRING_BASE => {
                let mut state = body[..4].to_vec();
                state.extend_from_slice(&0u32.to_le_bytes());
                Some(state)
            }
            _ if flags & FLAG_NEED_REPLY != 0 => {
                let status: u64 = if spec.refuse == Some(request) { 1 } else { 0 };
                Some(status.to_le_bytes().to_vec())
            }
            _ => None,
        };
        // Logged before the answer, so that a frontend call that returned
        // has its request in the log.
        log.lock().unwrap().push(Message {
            request,
            body,
            fds: files,
        });
        if let Some(answer) = answer {
            reply(&mut stream, request, &answer);
        }
    }
}

/// A frontend talking to a fake back-end; the returned stream is the
/// back-end's end, to hang up on the frontend.
fn fake_backend(spec: FakeSpec) -> (Frontend, Log, UnixStream) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let log = Log::default();
    let thread_log = log.clone();
    let peer = theirs.try_clone().unwrap();
    std::thread::spawn(move || serve(theirs, spec, thread_log));
    (Frontend::from_stream(ours, NUM_QUEUES as u64), log, peer)
}

fn requests(log: &Log) -> Vec<u32> {
    log.lock().unwrap().iter().map(|m| m.request).collect()
}

fn wait_for_requests(log: &Log, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while log.lock().unwrap().len() < count {
        assert!(
            Instant::now() < deadline,
            "fake back-end got {:?}",
            requests(log)
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn device(spec: FakeSpec) -> (Fs, Log) {
    let (frontend, log, _) = fake_backend(spec);
    let connection = VhostUserConnection::handshake(frontend, NUM_QUEUES).unwrap();
    let fs =
        Fs::with_connection(connection, "hullfs", EventFd::new(EFD_NONBLOCK).unwrap()).unwrap();
    (fs, log)
}

fn memory() -> GuestMemory {
    create_guest_memory(4).unwrap().0
}

/// A ready queue of `size` with its rings at `base`.
fn queue(size: u16, base: u64) -> Queue {
    let mut q = Queue::new(QUEUE_SIZE).unwrap();
    q.set_size(size);
    q.set_desc_table_address(Some(base as u32), Some((base >> 32) as u32));
    q.set_avail_ring_address(Some((base + 0x4000) as u32), Some(0));
    q.set_used_ring_address(Some((base + 0x8000) as u32), Some(0));
    q.set_ready(true);
    q
}

fn context(memory: &GuestMemory, queues: Vec<Queue>) -> ActivateContext {
    ActivateContext {
        memory: memory.clone(),
        queues,
        acked_features: (1 << VIRTIO_F_VERSION_1) | (1 << 33),
    }
}

#[test]
fn config_space_holds_tag_and_one_request_queue() {
    let (fs, _) = device(FakeSpec::default());
    let mut tag = [0u8; 8];
    fs.read_config(0, &mut tag);
    assert_eq!(&tag, b"hullfs\0\0");
    let mut queues = [0u8; 4];
    fs.read_config(TAG_LEN as u64, &mut queues);
    assert_eq!(u32::from_le_bytes(queues), 1);
    let mut beyond = [0xffu8; 4];
    fs.read_config(CONFIG_LEN as u64, &mut beyond);
    assert_eq!(beyond, [0; 4]);
    assert_eq!(fs.device_type(), 26);
    assert_eq!(fs.queue_max_sizes(), &[QUEUE_SIZE, QUEUE_SIZE]);

    let long = "x".repeat(TAG_LEN);
    assert_eq!(&config_space(&long).unwrap()[..TAG_LEN], long.as_bytes());
    for bad in ["", "a\0b", &"x".repeat(TAG_LEN + 1)] {
        assert!(matches!(config_space(bad), Err(FsError::Tag(_))), "{bad:?}");
    }
}

#[test]
fn handshake_negotiates_protocol_features_and_queue_count() {
    let (fs, log) = device(FakeSpec::default());
    assert_eq!(
        requests(&log),
        [
            SET_OWNER,
            GET_FEATURES,
            GET_PROTOCOL_FEATURES,
            SET_PROTOCOL_FEATURES,
            GET_QUEUE_NUM
        ]
    );
    // CONFIG was offered but is not used: the tag comes from hull-vmm.
    assert_eq!(
        log.lock().unwrap()[3].u64(),
        PROTOCOL_MQ | PROTOCOL_REPLY_ACK
    );
    // Ring features pass through, ACCESS_PLATFORM and PROTOCOL_FEATURES not.
    assert_eq!(fs.device_features(), (1 << VIRTIO_F_VERSION_1) | (1 << 28));
}

#[test]
fn handshake_refuses_unusable_back_ends() {
    let spec = FakeSpec {
        queues: 1,
        ..FakeSpec::default()
    };
    let (frontend, _, _) = fake_backend(spec);
    assert!(matches!(
        VhostUserConnection::handshake(frontend, NUM_QUEUES),
        Err(BackendError::TooFewQueues { have: 1, need: 2 })
    ));
    let spec = FakeSpec {
        features: PROTOCOL_FEATURES,
        ..FakeSpec::default()
    };
    let (frontend, _, _) = fake_backend(spec);
    assert!(matches!(
        VhostUserConnection::handshake(frontend, NUM_QUEUES),
        Err(BackendError::NotModern(_))
    ));
}

#[test]
fn missing_socket_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.sock");
    let irq = EventFd::new(EFD_NONBLOCK).unwrap();
    let err = Fs::new(&path, "tag", irq).unwrap_err().to_string();
    assert!(err.contains("missing.sock"), "{err}");
    assert!(!err.contains('\n'), "{err}");
    let irq = EventFd::new(EFD_NONBLOCK).unwrap();
    assert!(matches!(Fs::new(&path, "", irq), Err(FsError::Tag(_))));
}

#[test]
fn activation_hands_rings_memory_and_eventfds_to_the_back_end() {
    let (mut fs, log) = device(FakeSpec::default());
    let mem = memory();
    let queues = vec![queue(16, 0x10000), queue(256, 0x20000)];
    fs.activate(context(&mem, queues)).unwrap();
    let log = log.lock().unwrap();
    let sequence: Vec<u32> = log[5..].iter().map(|m| m.request).collect();
    let per_queue = [
        SET_VRING_NUM,
        SET_VRING_ADDR,
        SET_VRING_BASE,
        SET_VRING_CALL,
        SET_VRING_KICK,
    ];
    let mut expected = vec![SET_FEATURES, SET_MEM_TABLE];
    expected.extend(per_queue);
    expected.extend(per_queue);
    expected.extend([SET_VRING_ENABLE, SET_VRING_ENABLE]);
    assert_eq!(sequence, expected);

    // Only features both sides offered, plus PROTOCOL_FEATURES.
    assert_eq!(log[5].u64(), (1 << VIRTIO_F_VERSION_1) | PROTOCOL_FEATURES);
    // One region, its memfd attached: num_regions, padding, then guest
    // address, size, user address, mmap offset.
    let table = &log[6];
    assert_eq!(table.u32_at(0), 1);
    assert_eq!(table.fds.len(), 1);
    assert_eq!(table.u64_at(8), 0);
    assert_eq!(table.u64_at(16), 4 << 20);
    assert_eq!(
        table.u64_at(24),
        mem.get_host_address(GuestAddress(0)).unwrap() as u64
    );
    // Queue 1: size, then ring addresses translated to host addresses.
    let num = &log[12];
    assert_eq!((num.u32_at(0), num.u32_at(4)), (1, 256));
    let addr = &log[13];
    let host = |a: u64| mem.get_host_address(GuestAddress(a)).unwrap() as u64;
    assert_eq!(addr.u32_at(0), 1);
    assert_eq!(addr.u64_at(8), host(0x20000), "descriptor table");
    assert_eq!(addr.u64_at(16), host(0x28000), "used ring");
    assert_eq!(addr.u64_at(24), host(0x24000), "available ring");
    // Call and kick each carry one eventfd.
    assert_eq!(log[15].fds.len(), 1);
    assert_eq!(log[16].fds.len(), 1);
    assert_eq!((log[17].u32_at(0), log[17].u32_at(4)), (0, 1));
}

#[test]
fn only_ready_queues_are_started() {
    let (mut fs, log) = device(FakeSpec::default());
    let mem = memory();
    let mut idle = queue(16, 0x10000);
    idle.set_ready(false);
    fs.activate(context(&mem, vec![idle, queue(16, 0x20000)]))
        .unwrap();
    let log = log.lock().unwrap();
    let nums: Vec<u32> = log
        .iter()
        .filter(|m| m.request == SET_VRING_NUM)
        .map(|m| m.u32_at(0))
        .collect();
    assert_eq!(nums, [1]);
}

#[test]
fn bad_rings_are_refused_before_anything_is_sent() {
    let mem = memory();
    let end = 4u64 << 20;
    let crossing = {
        // Descriptor table fits, used ring runs past the end of memory.
        let mut q = queue(16, 0x10000);
        q.set_used_ring_address(Some((end - 8) as u32), Some(0));
        q
    };
    let avail_outside = {
        let mut q = queue(16, 0x10000);
        q.set_avail_ring_address(Some(0), Some(1));
        q
    };
    let outside = queue(16, 1 << 32);
    for (what, bad) in [
        ("crossing", crossing),
        ("avail outside", avail_outside),
        ("outside", outside),
    ] {
        assert!(vring_config(&mem, &bad, QUEUE_SIZE).is_err(), "{what}");
        let (mut fs, log) = device(FakeSpec::default());
        let err = fs
            .activate(context(&mem, vec![queue(16, 0x20000), bad]))
            .unwrap_err();
        assert!(err.to_string().contains("queue 1"), "{what}: {err}");
        assert_eq!(log.lock().unwrap().len(), 5, "{what}: requests sent");
    }
    // virtio-queue itself refuses bad sizes and misaligned rings, so those
    // only reach the size check with a smaller back-end limit.
    assert!(vring_config(&mem, &queue(64, 0x10000), 32).is_err());
    assert!(vring_config(&mem, &queue(32, 0x10000), 32).is_ok());
}

#[test]
fn back_end_refusal_and_reset_through_the_transport() {
    fn write(t: &mut MmioTransport, offset: u64, value: u32) {
        t.write(offset, &value.to_le_bytes());
    }
    fn read(t: &mut MmioTransport, offset: u64) -> u32 {
        let mut data = [0u8; 4];
        t.read(offset, &mut data);
        u32::from_le_bytes(data)
    }
    fn bring_up(t: &mut MmioTransport) {
        write(t, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
        write(t, reg::DRIVER_FEATURES_SEL, 1);
        write(t, reg::DRIVER_FEATURES, 1);
        write(t, reg::STATUS, 0xb);
        for (index, base) in [(0, 0x10000u32), (1, 0x20000)] {
            write(t, reg::QUEUE_SEL, index);
            write(t, reg::QUEUE_NUM, 64);
            write(t, reg::QUEUE_DESC_LOW, base);
            write(t, reg::QUEUE_AVAIL_LOW, base + 0x4000);
            write(t, reg::QUEUE_USED_LOW, base + 0x8000);
            write(t, reg::QUEUE_READY, 1);
        }
        write(t, reg::STATUS, 0xf);
    }

    // The back-end refuses a vring address: the device needs a reset.
    let spec = FakeSpec {
        refuse: Some(SET_VRING_ADDR),
        ..FakeSpec::default()
    };
    let (fs, _) = device(spec);
    let mut t = MmioTransport::new(Arc::new(Mutex::new(fs)), memory());
    bring_up(&mut t);
    assert_ne!(read(&mut t, reg::STATUS) & status::DEVICE_NEEDS_RESET, 0);
    write(&mut t, reg::STATUS, 0);
    assert_eq!(read(&mut t, reg::STATUS), 0);

    // A good start, then a driver reset stops both rings.
    let (fs, log) = device(FakeSpec::default());
    let mut t = MmioTransport::new(Arc::new(Mutex::new(fs)), memory());
    bring_up(&mut t);
    assert_eq!(read(&mut t, reg::STATUS), 0xf);
    let before = log.lock().unwrap().len();
    write(&mut t, reg::STATUS, 0);
    let log = log.lock().unwrap();
    let stops: Vec<(u32, u32)> = log[before..]
        .iter()
        .map(|m| (m.request, m.u32_at(0)))
        .collect();
    assert_eq!(
        stops,
        [
            (SET_VRING_ENABLE, 0),
            (GET_VRING_BASE, 0),
            (SET_VRING_ENABLE, 1),
            (GET_VRING_BASE, 1)
        ]
    );
}

#[test]
fn without_protocol_features_rings_start_on_kick() {
    let spec = FakeSpec {
        features: 1 << VIRTIO_F_VERSION_1,
        ..FakeSpec::default()
    };
    let (mut fs, log) = device(spec);
    assert_eq!(requests(&log), [SET_OWNER, GET_FEATURES]);
    let mem = memory();
    fs.activate(context(&mem, vec![queue(16, 0x10000), queue(16, 0x20000)]))
        .unwrap();
    // No REPLY_ACK: requests are asynchronous.
    wait_for_requests(&log, 2 + 2 + 2 * 5);
    let all = requests(&log);
    assert!(!all.contains(&SET_VRING_ENABLE), "{all:?}");
    assert_eq!(log.lock().unwrap()[2].u64(), 1 << VIRTIO_F_VERSION_1);
}

#[test]
fn back_end_calls_become_interrupts_and_hang_up_needs_reset() {
    let (frontend, log, peer) = fake_backend(FakeSpec::default());
    let connection = VhostUserConnection::handshake(frontend, NUM_QUEUES).unwrap();
    let irq = EventFd::new(EFD_NONBLOCK).unwrap();
    let fs = Fs::with_connection(connection, "hullfs", irq).unwrap();
    let signals = fs.signals().clone();
    let fs = Arc::new(Mutex::new(fs));
    let mem = memory();
    fs.lock()
        .unwrap()
        .activate(context(&mem, vec![queue(16, 0x10000), queue(16, 0x20000)]))
        .unwrap();
    let mut manager: EventManager<Arc<Mutex<Fs>>> = EventManager::new().unwrap();
    manager.add_subscriber(fs.clone());

    // The back-end signals the request queue's call eventfd.
    {
        let log = log.lock().unwrap();
        let call = log
            .iter()
            .filter(|m| m.request == SET_VRING_CALL)
            .nth(1)
            .unwrap();
        (&call.fds[0]).write_all(&1u64.to_le_bytes()).unwrap();
    }
    manager.run_with_timeout(1000).unwrap();
    assert_ne!(signals.interrupt_status() & INTERRUPT_USED_RING, 0);
    assert_eq!(signals.irq().read().unwrap(), 1);
    assert!(!signals.needs_reset());

    // The back-end goes away: the device needs a reset and stays failed.
    peer.shutdown(std::net::Shutdown::Both).unwrap();
    manager.run_with_timeout(1000).unwrap();
    assert!(signals.needs_reset());
}
