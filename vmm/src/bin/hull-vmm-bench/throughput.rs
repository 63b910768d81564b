//! Host peers of the test guest's throughput modes (`vsockperf=N` and
//! `netperf=N`, see `vmm/test-guests/src/perf.rs`), and the plain host
//! references measured beside them. Shared by `hull-vmm-bench` and
//! `tests/throughput.rs` (included there by path), so the benchmark's code
//! path is exercised by `cargo test`.
//!
//! - vsock: the host connects to the hybrid vsock socket, `CONNECT 1235`,
//!   writes N pattern bytes, reads the guest's one-byte verdict (`K`: all N
//!   bytes arrived and matched), then reads and checks N bytes back.
//! - net: hull-vmm runs in a network namespace created here (and always
//!   deleted) with a tap; an AF_PACKET socket on the tap is the peer. The
//!   guest sends N 1514-byte frames, then takes N from the host, which keeps
//!   at most `NET_WINDOW` unacknowledged frames in flight (below the tap's
//!   500-frame queue, so none is dropped).

#![allow(dead_code)]

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};

/// Period of the data pattern (as in the guest).
pub const PATTERN_LEN: usize = 64 << 10;
/// vsock port the guest listens on in `vsockperf` mode.
const PERF_PORT: u32 = 1235;
/// Ethernet frame size of the net figures (14-byte header + 1500 payload).
pub const FRAME_LEN: usize = 1514;
const ETHERTYPE: u16 = 0x88b5;
const GUEST_MAC: [u8; 6] = [0x02, 0x48, 0x55, 0x4c, 0x00, 0x01];
const HOST_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
/// Unacknowledged host-to-guest frames in flight.
const NET_WINDOW: u32 = 128;
/// Tap interface name inside the namespace.
const TAP: &str = "hvt0";
/// How long a run may go without progress.
const STALL: Duration = Duration::from_secs(30);

/// Byte `i` of the pattern table (as in the guest).
fn pattern_byte(i: usize) -> u8 {
    (i as u32).wrapping_mul(31).wrapping_add((i >> 8) as u32) as u8
}

/// The 64 KiB pattern table.
pub fn pattern_table() -> Vec<u8> {
    (0..PATTERN_LEN).map(pattern_byte).collect()
}

/// Whether `data` is the pattern stream from offset `pos` on.
fn matches_pattern(table: &[u8], mut pos: u64, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        let offset = (pos % PATTERN_LEN as u64) as usize;
        let take = data.len().min(PATTERN_LEN - offset);
        if data[..take] != table[offset..offset + take] {
            return false;
        }
        data = &data[take..];
        pos += take as u64;
    }
    true
}

/// Megabits per second.
pub fn mbps(bytes: u64, time: Duration) -> f64 {
    bytes as f64 * 8.0 / time.as_secs_f64().max(1e-9) / 1e6
}

/// A child process killed (and reaped) when dropped.
struct Guarded(Child);

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running hull-vmm with its serial output arriving line by line.
struct Vm {
    child: Guarded,
    lines: mpsc::Receiver<String>,
    transcript: Vec<String>,
}

impl Vm {
    fn spawn(mut command: Command) -> anyhow::Result<Vm> {
        let mut child = command
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {:?}", command.get_program()))?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Vm {
            child: Guarded(child),
            lines,
            transcript: Vec::new(),
        })
    }

    /// Waits for a guest line containing `needle`.
    fn wait_line(&mut self, needle: &str) -> anyhow::Result<()> {
        loop {
            match self.lines.recv_timeout(STALL) {
                Ok(line) => {
                    let found = line.contains(needle);
                    self.transcript.push(line);
                    if found {
                        return Ok(());
                    }
                }
                Err(_) => bail!(
                    "no {needle:?} from the guest; it printed:\n{}",
                    self.transcript.join("\n")
                ),
            }
        }
    }

    /// Waits for the VM to end and returns its status and whole output.
    fn finish(mut self) -> anyhow::Result<(ExitStatus, String)> {
        let deadline = Instant::now() + STALL;
        let status = loop {
            if let Some(status) = self.child.0.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                bail!(
                    "hull-vmm did not end; the guest printed:\n{}",
                    self.transcript.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        // The reader thread ends at end of file.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.transcript.push(line);
        }
        Ok((status, self.transcript.join("\n")))
    }
}

/// A scratch directory removed when dropped.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> anyhow::Result<Self> {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("hull-vmm-perf-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(ScratchDir(path))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One vsock run's figures.
#[derive(Debug, Clone, Copy)]
pub struct VsockFigures {
    /// Bytes each way.
    pub bytes: u64,
    /// First byte written to the guest's verdict read (all bytes consumed).
    pub host_to_guest: Duration,
    /// Verdict read to the last byte read back.
    pub guest_to_host: Duration,
}

/// The guest's command line: checking in full (`perfcheck=1`) or
/// spot-checking what it receives; the host always checks in full.
fn cmdline(mode: &str, count: u64, full_check: bool) -> String {
    let check = if full_check { " perfcheck=1" } else { "" };
    format!("{mode}={count}{check} action=exit:2")
}

/// Boots `guest` under `hull` in `vsockperf` mode and moves `bytes` each way.
pub fn vsock_run(
    hull: &Path,
    guest: &Path,
    bytes: u64,
    full_check: bool,
) -> anyhow::Result<VsockFigures> {
    let dir = ScratchDir::new()?;
    let socket = dir.0.join("v.sock");
    let mut command = Command::new(hull);
    command
        .arg("--kernel")
        .arg(guest)
        .args(["--cmdline", &cmdline("vsockperf", bytes, full_check)])
        .args(["--mem-mib", "64", "--vsock-cid", "3", "--vsock-socket"])
        .arg(&socket);
    let mut vm = Vm::spawn(command)?;
    vm.wait_line("vsockperf: listening")?;

    let mut stream = UnixStream::connect(&socket)
        .with_context(|| format!("cannot connect to {}", socket.display()))?;
    stream.set_read_timeout(Some(STALL))?;
    stream.set_write_timeout(Some(STALL))?;
    stream.write_all(format!("CONNECT {PERF_PORT}\n").as_bytes())?;
    // Byte by byte: nothing may be read past the line.
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while byte[0] != b'\n' {
        stream
            .read_exact(&mut byte)
            .context("no handshake reply from hull-vmm")?;
        line.push(byte[0]);
        ensure!(line.len() < 64, "handshake reply too long");
    }
    ensure!(
        line.starts_with(b"OK "),
        "handshake reply {:?}",
        String::from_utf8_lossy(&line)
    );

    let table = pattern_table();
    let t0 = Instant::now();
    let mut sent = 0u64;
    while sent < bytes {
        let offset = (sent % PATTERN_LEN as u64) as usize;
        let n = ((bytes - sent) as usize).min(PATTERN_LEN - offset);
        stream
            .write_all(&table[offset..offset + n])
            .context("writing to the guest")?;
        sent += n as u64;
    }
    stream
        .read_exact(&mut byte)
        .context("no verdict from the guest")?;
    let t1 = Instant::now();
    ensure!(
        byte[0] == b'K',
        "the guest got bad data (verdict {:?})",
        byte[0] as char
    );

    let mut buf = vec![0u8; 256 << 10];
    let mut received = 0u64;
    while received < bytes {
        let want = ((bytes - received) as usize).min(buf.len());
        let n = stream
            .read(&mut buf[..want])
            .context("reading from the guest")?;
        ensure!(n > 0, "the guest closed after {received} of {bytes} bytes");
        ensure!(
            matches_pattern(&table, received, &buf[..n]),
            "bad data from the guest at byte {received}"
        );
        received += n as u64;
    }
    let t2 = Instant::now();
    drop(stream);

    let (status, out) = vm.finish()?;
    ensure!(
        status.code() == Some(2),
        "hull-vmm ended with {status}:\n{out}"
    );
    ensure!(
        out.contains("vsockperf: received data ok") && out.contains("vsockperf: done"),
        "the guest reported:\n{out}"
    );
    Ok(VsockFigures {
        bytes,
        host_to_guest: t1 - t0,
        guest_to_host: t2 - t1,
    })
}

/// The reference: `bytes` through a unix socket pair on the host, with the
/// same chunking and checking as the host side of [`vsock_run`].
pub fn unix_socket_run(bytes: u64) -> anyhow::Result<Duration> {
    let (mut a, mut b) = UnixStream::pair()?;
    let table = pattern_table();
    let writer_table = table.clone();
    let t0 = Instant::now();
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut sent = 0u64;
        while sent < bytes {
            let offset = (sent % PATTERN_LEN as u64) as usize;
            let n = ((bytes - sent) as usize).min(PATTERN_LEN - offset);
            a.write_all(&writer_table[offset..offset + n])?;
            sent += n as u64;
        }
        Ok(())
    });
    let mut buf = vec![0u8; 256 << 10];
    let mut received = 0u64;
    while received < bytes {
        let want = ((bytes - received) as usize).min(buf.len());
        let n = b.read(&mut buf[..want])?;
        ensure!(n > 0, "unix socket peer closed early");
        ensure!(matches_pattern(&table, received, &buf[..n]), "bad data");
        received += n as u64;
    }
    let elapsed = t0.elapsed();
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("writer thread panicked"))??;
    Ok(elapsed)
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("cannot run `ip` (iproute2)")?;
    ensure!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

/// A network namespace of our own with a tap in it, deleted on drop (its
/// interfaces go with it).
pub struct Netns(String);

impl Netns {
    /// Creates `hullvmm-perf-<pid>-<n>` with the tap `hvt0`, up.
    pub fn new() -> anyhow::Result<Netns> {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("hullvmm-perf-{}-{n}", std::process::id());
        ip(&["netns", "add", &name])?;
        let ns = Netns(name);
        ip(&["-n", &ns.0, "tuntap", "add", "dev", TAP, "mode", "tap"])?;
        ip(&["-n", &ns.0, "link", "set", TAP, "up"])?;
        Ok(ns)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.0])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn last_error(what: &str) -> anyhow::Error {
    anyhow::anyhow!("{what}: {}", std::io::Error::last_os_error())
}

/// An AF_PACKET socket for EtherType 0x88b5 on `ifname` in namespace `ns`
/// (created on a thread that enters the namespace; the socket stays in it).
fn packet_socket(ns: &str, ifname: &str) -> anyhow::Result<OwnedFd> {
    let path = CString::new(format!("/run/netns/{ns}"))?;
    let ifname = CString::new(ifname)?;
    std::thread::spawn(move || -> anyhow::Result<OwnedFd> {
        // SAFETY: open returns a new descriptor or -1; it is owned at once.
        let ns_fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if ns_fd < 0 {
            return Err(last_error("open netns"));
        }
        // SAFETY: ns_fd was just opened and is owned by nobody else.
        let ns_fd = unsafe { OwnedFd::from_raw_fd(ns_fd) };
        // SAFETY: setns moves only this (short-lived) thread.
        if unsafe { libc::setns(ns_fd.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
            return Err(last_error("setns"));
        }
        // SAFETY: plain socket creation; the descriptor is owned at once.
        let sock = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from(ETHERTYPE.to_be()),
            )
        };
        if sock < 0 {
            return Err(last_error("AF_PACKET socket"));
        }
        // SAFETY: sock was just created and is owned by nobody else.
        let sock = unsafe { OwnedFd::from_raw_fd(sock) };
        // SAFETY: if_nametoindex reads a NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(ifname.as_ptr()) };
        ensure!(ifindex > 0, "no interface {ifname:?} in {path:?}");
        // SAFETY: sockaddr_ll is plain data; all zeroes is valid.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = ETHERTYPE.to_be();
        addr.sll_ifindex = ifindex as i32;
        // SAFETY: addr is a valid sockaddr_ll of the length given.
        let ret = unsafe {
            libc::bind(
                sock.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of_val(&addr) as u32,
            )
        };
        if ret < 0 {
            return Err(last_error("bind AF_PACKET"));
        }
        // Room for bursts; SO_RCVBUFFORCE needs CAP_NET_ADMIN, which
        // creating the namespace needed too. Not seeing our own frames
        // (PACKET_IGNORE_OUTGOING, Linux 4.20) is only an optimisation:
        // the frames are told apart by source address anyway.
        set_int(&sock, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 8 << 20);
        set_int(&sock, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, 8 << 20);
        set_int(&sock, libc::SOL_PACKET, 23, 1);
        Ok(sock)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("namespace thread panicked"))?
}

fn set_int(sock: &OwnedFd, level: i32, name: i32, value: i32) -> bool {
    // SAFETY: setsockopt reads one int from the pointer.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as u32,
        ) == 0
    }
}

/// Receives one frame, waiting at most `timeout`; `Ok(0)` on timeout.
fn recv_frame(sock: &OwnedFd, buf: &mut [u8], timeout: Duration) -> anyhow::Result<usize> {
    let mut pfd = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd.
    let ready = unsafe { libc::poll(&mut pfd, 1, ms) };
    if ready < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::Interrupted {
            return Ok(0);
        }
        bail!("poll: {e}");
    }
    if ready == 0 {
        return Ok(0);
    }
    // SAFETY: receives into `buf`, within its length.
    let n = unsafe {
        libc::recv(
            sock.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::Interrupted
        {
            return Ok(0);
        }
        bail!("recv: {e}");
    }
    Ok(n as usize)
}

fn send_frame(sock: &OwnedFd, frame: &[u8]) -> anyhow::Result<()> {
    loop {
        // SAFETY: sends from `frame`, within its length.
        let n = unsafe { libc::send(sock.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if n >= 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        match e.kind() {
            std::io::ErrorKind::Interrupted => {}
            // Device queue full for a moment (ENOBUFS): try again.
            _ if e.raw_os_error() == Some(libc::ENOBUFS) => std::thread::yield_now(),
            _ => bail!("send: {e}"),
        }
    }
}

/// Offset into the pattern table of the payload of frame `seq` (as in the
/// guest).
fn frame_pattern_offset(seq: u32) -> usize {
    (seq as usize % 32) * 1536
}

/// A 1514-byte test frame `seq` from `src` to `dst`.
fn data_frame(frame: &mut [u8; FRAME_LEN], table: &[u8], dst: &[u8; 6], src: &[u8; 6], seq: u32) {
    frame[..6].copy_from_slice(dst);
    frame[6..12].copy_from_slice(src);
    frame[12..14].copy_from_slice(&ETHERTYPE.to_be_bytes());
    frame[14..18].copy_from_slice(b"DATA");
    frame[18..22].copy_from_slice(&seq.to_le_bytes());
    let offset = frame_pattern_offset(seq);
    frame[22..].copy_from_slice(&table[offset..offset + FRAME_LEN - 22]);
}

/// Whether `frame` is a good test frame `seq`.
fn check_data_frame(frame: &[u8], table: &[u8]) -> Option<u32> {
    if frame.len() != FRAME_LEN || &frame[14..18] != b"DATA" {
        return None;
    }
    let seq = u32::from_le_bytes([frame[18], frame[19], frame[20], frame[21]]);
    let offset = frame_pattern_offset(seq);
    (frame[22..] == table[offset..offset + FRAME_LEN - 22]).then_some(seq)
}

/// A test frame's tag and first 4-byte word, if it is one from `src`.
fn control(frame: &[u8], src: &[u8; 6]) -> Option<([u8; 4], [u32; 3])> {
    if frame.len() < 30 || frame[6..12] != src[..] || frame[12..14] != ETHERTYPE.to_be_bytes() {
        return None;
    }
    let word = |i: usize| u32::from_le_bytes([frame[i], frame[i + 1], frame[i + 2], frame[i + 3]]);
    Some((
        [frame[14], frame[15], frame[16], frame[17]],
        [word(18), word(22), word(26)],
    ))
}

/// One net run's figures.
#[derive(Debug, Clone, Copy)]
pub struct NetFigures {
    /// Frames each way.
    pub frames: u32,
    /// Guest's first frame to its `DONE`, all `frames` received and good.
    pub guest_to_host: Duration,
    /// Host's first frame to the guest's `DONE`.
    pub host_to_guest: Duration,
}

/// Boots `guest` under `hull` in `netperf` mode on a tap in a namespace of
/// its own and moves `frames` 1514-byte frames each way.
pub fn net_run(
    hull: &Path,
    guest: &Path,
    frames: u32,
    full_check: bool,
) -> anyhow::Result<NetFigures> {
    let ns = Netns::new()?;
    let sock = packet_socket(ns.name(), TAP)?;
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", ns.name()])
        .arg(hull)
        .arg("--kernel")
        .arg(guest)
        .args(["--cmdline", &cmdline("netperf", frames.into(), full_check)])
        .args(["--mem-mib", "64", "--net-tap", TAP]);
    let vm = Vm::spawn(command)?;
    let table = pattern_table();
    let mut buf = vec![0u8; 65536];

    // Guest to host.
    let mut progress = Instant::now();
    let mut started = None;
    let mut got = 0u32;
    let mut next = 0u32;
    let guest_to_host = loop {
        ensure!(
            progress.elapsed() < STALL,
            "no frames from the guest ({got} of {frames})"
        );
        let n = recv_frame(&sock, &mut buf, Duration::from_millis(100))?;
        let Some((tag, words)) = control(&buf[..n], &GUEST_MAC) else {
            continue;
        };
        progress = Instant::now();
        match &tag {
            b"BEGN" => started = Some(Instant::now()),
            b"DATA" => {
                let seq = check_data_frame(&buf[..n], &table)
                    .with_context(|| format!("bad frame from the guest after {got}"))?;
                ensure!(seq == next, "frame {seq} from the guest, {next} expected");
                next += 1;
                got += 1;
            }
            b"DONE" => {
                let t0 = started.context("DONE before BEGN")?;
                ensure!(
                    got == frames && words[0] == frames,
                    "got {got} of {frames} frames (the guest sent {})",
                    words[0]
                );
                break t0.elapsed();
            }
            _ => {}
        }
    };

    // Host to guest.
    loop {
        ensure!(progress.elapsed() < STALL, "no RDY! from the guest");
        let n = recv_frame(&sock, &mut buf, Duration::from_millis(100))?;
        if matches!(control(&buf[..n], &GUEST_MAC), Some((tag, _)) if &tag == b"RDY!") {
            break;
        }
    }
    let mut frame = [0u8; FRAME_LEN];
    let (mut sent, mut acked) = (0u32, 0u32);
    let t0 = Instant::now();
    progress = t0;
    let host_to_guest = loop {
        ensure!(
            progress.elapsed() < STALL,
            "guest stalled: {acked} of {frames} frames acknowledged"
        );
        while sent < frames && sent - acked < NET_WINDOW {
            data_frame(&mut frame, &table, &GUEST_MAC, &HOST_MAC, sent);
            send_frame(&sock, &frame)?;
            sent += 1;
        }
        let n = recv_frame(&sock, &mut buf, Duration::from_millis(100))?;
        match control(&buf[..n], &GUEST_MAC) {
            Some((tag, words)) if &tag == b"ACK!" => {
                acked = acked.max(words[0].min(sent));
                progress = Instant::now();
            }
            Some((tag, words)) if &tag == b"DONE" => {
                let elapsed = t0.elapsed();
                let [received, lost, bad] = words;
                ensure!(
                    received == frames && lost == 0 && bad == 0,
                    "the guest got {received} of {frames} frames, {lost} lost, {bad} bad"
                );
                break elapsed;
            }
            _ => {}
        }
    };
    drop(sock);

    let (status, out) = vm.finish()?;
    ensure!(
        status.code() == Some(2),
        "hull-vmm ended with {status}:\n{out}"
    );
    ensure!(out.contains("netperf: done"), "the guest reported:\n{out}");
    Ok(NetFigures {
        frames,
        guest_to_host,
        host_to_guest,
    })
}

/// The reference: `frames` 1514-byte frames from one end of a veth pair to
/// the other through AF_PACKET sockets, in a namespace of its own, in bursts
/// of `NET_WINDOW` (each burst read before the next, so none is dropped).
pub fn veth_run(frames: u32) -> anyhow::Result<Duration> {
    let ns = Netns::new()?;
    ip(&[
        "-n",
        ns.name(),
        "link",
        "add",
        "hvp0",
        "type",
        "veth",
        "peer",
        "name",
        "hvp1",
    ])?;
    ip(&["-n", ns.name(), "link", "set", "hvp0", "up"])?;
    ip(&["-n", ns.name(), "link", "set", "hvp1", "up"])?;
    let tx = packet_socket(ns.name(), "hvp0")?;
    let rx = packet_socket(ns.name(), "hvp1")?;
    let table = pattern_table();
    let mut frame = [0u8; FRAME_LEN];
    let mut buf = vec![0u8; 65536];
    let (mut sent, mut got) = (0u32, 0u32);
    let t0 = Instant::now();
    while got < frames {
        let burst_end = (sent + NET_WINDOW).min(frames);
        while sent < burst_end {
            data_frame(&mut frame, &table, &GUEST_MAC, &HOST_MAC, sent);
            send_frame(&tx, &frame)?;
            sent += 1;
        }
        while got < sent {
            let n = recv_frame(&rx, &mut buf, Duration::from_secs(5))?;
            ensure!(n > 0, "veth lost frames: {got} of {sent}");
            if control(&buf[..n], &HOST_MAC).is_some() {
                let seq = check_data_frame(&buf[..n], &table).context("bad frame on the veth")?;
                ensure!(seq == got, "veth frame {seq}, {got} expected");
                got += 1;
            }
        }
    }
    Ok(t0.elapsed())
}
