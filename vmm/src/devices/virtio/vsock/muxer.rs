//! Connections between guest vsock ports and host unix sockets, following
//! Firecracker's hybrid vsock:
//! - host-initiated: a host process connects to the device's socket and
//!   writes `CONNECT <port>\n`; the guest gets a REQUEST from the host CID
//!   (2) and a fresh local port; on the guest's RESPONSE the host process
//!   reads `OK <local port>\n`, then the stream carries the data;
//! - guest-initiated: a REQUEST to CID 2, port P connects to the unix
//!   socket `<socket>_<P>`; RESPONSE if that works, RST if not.
//!
//! Flow control follows the spec's credit scheme: data goes to the guest
//! only while the guest's advertised buffer has room, and the guest is told
//! (CREDIT_UPDATE) as the host side drains what it sent.

use std::collections::{HashMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use crate::devices::virtio::vsock::packet::{
    op, PacketHeader, HOST_CID, MAX_PAYLOAD, SHUTDOWN_RECEIVE, SHUTDOWN_SEND, TYPE_STREAM,
};

/// Receive buffer advertised to the guest per connection.
pub const BUF_ALLOC: u32 = 256 << 10;
/// Host data read ahead per connection, waiting for guest credit.
const RX_PENDING_MAX: usize = 64 << 10;
/// Longest `CONNECT <port>\n` line accepted.
const HANDSHAKE_MAX: usize = 32;
/// Most header-only packets queued for the guest; past this, guest
/// transmissions wait (a guest sending junk without supplying receive
/// buffers must not grow this queue without bound).
const CONTROL_MAX: usize = 512;
/// First local port handed to host-initiated connections.
const FIRST_LOCAL_PORT: u32 = 1 << 30;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Host-initiated, REQUEST sent, waiting for the guest's RESPONSE.
    AwaitingResponse,
    /// Data flows.
    Established,
}

/// (local port on the host side, port on the guest side).
type Key = (u32, u32);

struct Connection {
    stream: UnixStream,
    state: State,
    peer_buf_alloc: u32,
    peer_fwd_cnt: u32,
    /// Bytes sent to the guest.
    rx_cnt: u32,
    /// Bytes of guest data written to the host stream.
    fwd_cnt: u32,
    /// `fwd_cnt` last told to the guest.
    fwd_cnt_told: u32,
    /// Host data waiting for guest credit or rx buffers.
    rx_pending: Vec<u8>,
    /// Guest data the host stream did not take yet.
    tx_pending: Vec<u8>,
    host_eof: bool,
    shutdown_sent: bool,
}

impl Connection {
    fn new(stream: UnixStream, state: State) -> Self {
        Connection {
            stream,
            state,
            peer_buf_alloc: 0,
            peer_fwd_cnt: 0,
            rx_cnt: 0,
            fwd_cnt: 0,
            fwd_cnt_told: 0,
            rx_pending: Vec::new(),
            tx_pending: Vec::new(),
            host_eof: false,
            shutdown_sent: false,
        }
    }

    fn peer_credit(&self) -> u32 {
        self.peer_buf_alloc
            .saturating_sub(self.rx_cnt.wrapping_sub(self.peer_fwd_cnt))
    }

    /// Writes as much pending guest data to the host as it takes.
    fn flush_tx(&mut self) -> std::io::Result<()> {
        while !self.tx_pending.is_empty() {
            match self.stream.write(&self.tx_pending) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.tx_pending.drain(..n);
                    self.fwd_cnt = self.fwd_cnt.wrapping_add(n as u32);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads host data up to the read-ahead limit; notes end of stream.
    fn fill_rx(&mut self) {
        let mut buf = [0u8; 16 << 10];
        while !self.host_eof && self.rx_pending.len() < RX_PENDING_MAX {
            let room = (RX_PENDING_MAX - self.rx_pending.len()).min(buf.len());
            match self.stream.read(&mut buf[..room]) {
                Ok(0) => self.host_eof = true,
                Ok(n) => self.rx_pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => self.host_eof = true,
            }
        }
    }
}

/// A host process that connected but has not finished `CONNECT <port>\n`.
struct Handshake {
    stream: UnixStream,
    line: Vec<u8>,
}

/// All connections of one vsock device.
pub struct Muxer {
    guest_cid: u64,
    socket_path: PathBuf,
    listener: UnixListener,
    handshakes: HashMap<RawFd, Handshake>,
    connections: HashMap<Key, Connection>,
    by_fd: HashMap<RawFd, Key>,
    /// Header-only packets waiting for rx buffers.
    control: VecDeque<PacketHeader>,
    next_local_port: u32,
    fds_added: Vec<RawFd>,
    /// Closed streams, kept open until the event loop has forgotten them
    /// (epoll bookkeeping needs the descriptor to still be valid).
    closed: Vec<UnixStream>,
}

impl std::fmt::Debug for Muxer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Muxer")
            .field("socket", &self.socket_path)
            .field("connections", &self.connections.len())
            .finish_non_exhaustive()
    }
}

fn parse_connect(line: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(line).ok()?;
    text.strip_prefix("CONNECT ")?.trim_end().parse().ok()
}

impl Muxer {
    /// Listens on `socket_path` (replacing a stale socket file) for a guest
    /// with CID `guest_cid`.
    pub fn new(socket_path: &Path, guest_cid: u64) -> std::io::Result<Self> {
        if let Ok(meta) = std::fs::symlink_metadata(socket_path) {
            use std::os::unix::fs::FileTypeExt;
            if meta.file_type().is_socket() {
                std::fs::remove_file(socket_path)?;
            }
        }
        let listener = UnixListener::bind(socket_path)?;
        listener.set_nonblocking(true)?;
        Ok(Muxer {
            guest_cid,
            socket_path: socket_path.to_owned(),
            listener,
            handshakes: HashMap::new(),
            connections: HashMap::new(),
            by_fd: HashMap::new(),
            control: VecDeque::new(),
            next_local_port: FIRST_LOCAL_PORT,
            fds_added: Vec::new(),
            closed: Vec::new(),
        })
    }

    /// The listening socket's descriptor.
    pub fn listener_fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }

    /// Descriptors opened and streams closed since the last call, for the
    /// event loop to watch and forget (drop the streams after that).
    pub fn take_fd_changes(&mut self) -> (Vec<RawFd>, Vec<UnixStream>) {
        (
            std::mem::take(&mut self.fds_added),
            std::mem::take(&mut self.closed),
        )
    }

    fn header(&self, key: Key, op: u16) -> PacketHeader {
        let (fwd_cnt, buf_alloc) = self
            .connections
            .get(&key)
            .map_or((0, 0), |c| (c.fwd_cnt, BUF_ALLOC));
        PacketHeader {
            src_cid: HOST_CID,
            dst_cid: self.guest_cid,
            src_port: key.0,
            dst_port: key.1,
            len: 0,
            type_: TYPE_STREAM,
            op,
            flags: 0,
            buf_alloc,
            fwd_cnt,
        }
    }

    fn send_control(&mut self, key: Key, op: u16) {
        let header = self.header(key, op);
        if let Some(c) = self.connections.get_mut(&key) {
            c.fwd_cnt_told = c.fwd_cnt;
        }
        self.control.push_back(header);
    }

    fn reset_reply(&mut self, header: &PacketHeader) {
        // A reply to a packet for which there is no connection.
        let mut reply = self.header((header.dst_port, header.src_port), op::RST);
        reply.dst_cid = header.src_cid;
        self.control.push_back(reply);
    }

    fn close(&mut self, key: Key) {
        if let Some(c) = self.connections.remove(&key) {
            self.by_fd.remove(&c.stream.as_raw_fd());
            self.closed.push(c.stream);
        }
    }

    fn track(&mut self, key: Key, connection: Connection) {
        let fd = connection.stream.as_raw_fd();
        self.by_fd.insert(fd, key);
        self.fds_added.push(fd);
        self.connections.insert(key, connection);
    }

    /// Closes every connection (the driver reset the device).
    pub fn close_all(&mut self) {
        let keys: Vec<Key> = self.connections.keys().copied().collect();
        for key in keys {
            self.close(key);
        }
        self.control.clear();
    }

    /// Accepts every pending host connection.
    pub fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let fd = stream.as_raw_fd();
                    self.fds_added.push(fd);
                    self.handshakes.insert(
                        fd,
                        Handshake {
                            stream,
                            line: Vec::new(),
                        },
                    );
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    if e.kind() != ErrorKind::WouldBlock {
                        tracing::warn!("vsock: accept on {}: {e}", self.socket_path.display());
                    }
                    return;
                }
            }
        }
    }

    fn drop_handshake(&mut self, fd: RawFd) {
        if let Some(handshake) = self.handshakes.remove(&fd) {
            self.closed.push(handshake.stream);
        }
    }

    /// A host stream `fd` is readable or writable.
    pub fn host_event(&mut self, fd: RawFd) {
        if self.handshakes.contains_key(&fd) {
            self.advance_handshake(fd);
        } else if let Some(key) = self.by_fd.get(&fd).copied() {
            if let Some(c) = self.connections.get_mut(&key) {
                if c.flush_tx().is_err() {
                    self.send_control(key, op::RST);
                    self.close(key);
                } else if c.fwd_cnt.wrapping_sub(c.fwd_cnt_told) >= BUF_ALLOC / 4 {
                    // The host took data that had waited: a guest out of
                    // credit must hear of the room, not wait for a packet
                    // it may never send.
                    self.send_control(key, op::CREDIT_UPDATE);
                }
            }
        }
    }

    fn advance_handshake(&mut self, fd: RawFd) {
        let Some(handshake) = self.handshakes.get_mut(&fd) else {
            return;
        };
        let mut byte = [0u8; 1];
        // One byte at a time: what follows the line is connection data.
        loop {
            match handshake.stream.read(&mut byte) {
                Ok(0) => return self.drop_handshake(fd),
                Ok(_) if byte[0] == b'\n' => break,
                Ok(_) if handshake.line.len() >= HANDSHAKE_MAX => return self.drop_handshake(fd),
                Ok(_) => handshake.line.push(byte[0]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return self.drop_handshake(fd),
            }
        }
        let Some(handshake) = self.handshakes.remove(&fd) else {
            return;
        };
        let Some(guest_port) = parse_connect(&handshake.line) else {
            tracing::debug!(
                "vsock: bad handshake {:?}",
                String::from_utf8_lossy(&handshake.line)
            );
            self.closed.push(handshake.stream);
            return;
        };
        let mut local_port = self.next_local_port;
        while self.connections.contains_key(&(local_port, guest_port)) {
            local_port = local_port.wrapping_add(1) | FIRST_LOCAL_PORT;
        }
        self.next_local_port = local_port.wrapping_add(1) | FIRST_LOCAL_PORT;
        let key = (local_port, guest_port);
        // The fd stays registered; it now belongs to a connection.
        self.by_fd.insert(fd, key);
        self.connections.insert(
            key,
            Connection::new(handshake.stream, State::AwaitingResponse),
        );
        tracing::debug!("vsock: host connects to guest port {guest_port}");
        self.send_control(key, op::REQUEST);
    }

    /// Handles one packet from the guest.
    pub fn guest_packet(&mut self, header: &PacketHeader, data: &[u8]) {
        tracing::trace!(?header, "vsock: packet from guest");
        let (src_cid, dst_cid, type_) = (header.src_cid, header.dst_cid, header.type_);
        if src_cid != self.guest_cid || dst_cid != HOST_CID || type_ != TYPE_STREAM {
            tracing::debug!("vsock: dropping packet {src_cid}->{dst_cid} type {type_}");
            if header.op != op::RST {
                self.reset_reply(header);
            }
            return;
        }
        let key = (header.dst_port, header.src_port);
        if header.op == op::REQUEST {
            return self.guest_connect(key, header);
        }
        let Some(c) = self.connections.get_mut(&key) else {
            if header.op != op::RST {
                self.reset_reply(header);
            }
            return;
        };
        c.peer_buf_alloc = header.buf_alloc;
        c.peer_fwd_cnt = header.fwd_cnt;
        match (header.op, c.state) {
            (op::RESPONSE, State::AwaitingResponse) => {
                tracing::debug!("vsock: guest port {} accepted the host's connection", key.1);
                c.state = State::Established;
                let reply = format!("OK {}\n", key.0);
                // A unix socket just accepted takes a few bytes.
                if c.stream.write_all(reply.as_bytes()).is_err() {
                    self.send_control(key, op::RST);
                    self.close(key);
                }
            }
            (op::RW, State::Established) => {
                let buffered = c.tx_pending.len() + data.len();
                if buffered > BUF_ALLOC as usize {
                    tracing::warn!("vsock: guest port {} overran its credit; reset", key.1);
                    self.send_control(key, op::RST);
                    self.close(key);
                    return;
                }
                c.tx_pending.extend_from_slice(data);
                if c.flush_tx().is_err() {
                    self.send_control(key, op::RST);
                    self.close(key);
                    return;
                }
                if c.fwd_cnt.wrapping_sub(c.fwd_cnt_told) >= BUF_ALLOC / 4 {
                    self.send_control(key, op::CREDIT_UPDATE);
                }
            }
            (op::CREDIT_REQUEST, _) => self.send_control(key, op::CREDIT_UPDATE),
            (op::CREDIT_UPDATE, _) => {}
            (op::SHUTDOWN, _) => {
                let flags = header.flags;
                if flags & (SHUTDOWN_RECEIVE | SHUTDOWN_SEND) == SHUTDOWN_RECEIVE | SHUTDOWN_SEND {
                    let _ = c.flush_tx();
                    self.send_control(key, op::RST);
                    self.close(key);
                } else if flags & SHUTDOWN_SEND != 0 {
                    let _ = c.flush_tx();
                    let _ = c.stream.shutdown(std::net::Shutdown::Write);
                }
            }
            (op::RST, state) => {
                if state == State::AwaitingResponse {
                    tracing::debug!("vsock: guest port {} refused the host's connection", key.1);
                }
                self.close(key);
            }
            _ => {
                self.send_control(key, op::RST);
                self.close(key);
            }
        }
    }

    fn guest_connect(&mut self, key: Key, header: &PacketHeader) {
        if self.connections.contains_key(&key) {
            self.reset_reply(header);
            return;
        }
        let path = format!("{}_{}", self.socket_path.display(), key.0);
        let stream = UnixStream::connect(&path).and_then(|s| {
            s.set_nonblocking(true)?;
            Ok(s)
        });
        match stream {
            Ok(stream) => {
                let mut c = Connection::new(stream, State::Established);
                c.peer_buf_alloc = header.buf_alloc;
                c.peer_fwd_cnt = header.fwd_cnt;
                self.track(key, c);
                self.send_control(key, op::RESPONSE);
            }
            Err(e) => {
                tracing::debug!("vsock: guest connect to {path}: {e}");
                self.reset_reply(header);
            }
        }
    }

    /// Reads what the host streams have for the guest.
    pub fn poll_hosts(&mut self) {
        let mut finished = Vec::new();
        for (key, c) in &mut self.connections {
            if c.state == State::Established {
                c.fill_rx();
                if c.host_eof && c.rx_pending.is_empty() && !c.shutdown_sent {
                    finished.push(*key);
                }
            }
        }
        for key in finished {
            if let Some(c) = self.connections.get_mut(&key) {
                c.shutdown_sent = true;
            }
            let mut header = self.header(key, op::SHUTDOWN);
            header.flags = SHUTDOWN_RECEIVE | SHUTDOWN_SEND;
            self.control.push_back(header);
        }
    }

    /// Whether guest packets must wait until the guest takes replies.
    pub fn tx_blocked(&self) -> bool {
        self.control.len() >= CONTROL_MAX
    }

    /// Whether a packet is waiting for the guest.
    pub fn has_rx(&self) -> bool {
        !self.control.is_empty()
            || self.connections.values().any(|c| {
                c.state == State::Established && !c.rx_pending.is_empty() && c.peer_credit() > 0
            })
    }

    /// The next packet for the guest, with at most `room` payload bytes.
    pub fn next_rx(&mut self, room: usize) -> Option<(PacketHeader, Vec<u8>)> {
        if let Some(header) = self.control.pop_front() {
            tracing::trace!(?header, "vsock: control packet to guest");
            return Some((header, Vec::new()));
        }
        let key = self.connections.iter().find_map(|(key, c)| {
            (c.state == State::Established && !c.rx_pending.is_empty() && c.peer_credit() > 0)
                .then_some(*key)
        })?;
        let mut header = self.header(key, op::RW);
        let c = self.connections.get_mut(&key)?;
        let n = c
            .rx_pending
            .len()
            .min(room)
            .min(MAX_PAYLOAD)
            .min(c.peer_credit() as usize);
        if n == 0 {
            return None;
        }
        let data: Vec<u8> = c.rx_pending.drain(..n).collect();
        c.rx_cnt = c.rx_cnt.wrapping_add(n as u32);
        c.fwd_cnt_told = c.fwd_cnt;
        header.len = n as u32;
        Some((header, data))
    }
}

impl Drop for Muxer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket_path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;

    const GUEST: u64 = 3;

    fn muxer() -> (Muxer, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let m = Muxer::new(&dir.path().join("v.sock"), GUEST).unwrap();
        (m, dir)
    }

    fn from_guest(src_port: u32, dst_port: u32, op: u16, len: u32) -> PacketHeader {
        PacketHeader {
            src_cid: GUEST,
            dst_cid: HOST_CID,
            src_port,
            dst_port,
            len,
            type_: TYPE_STREAM,
            op,
            flags: 0,
            buf_alloc: 4096,
            fwd_cnt: 0,
        }
    }

    #[test]
    fn host_initiated_handshake_and_echo() {
        let (mut m, dir) = muxer();
        let mut host = UnixStream::connect(dir.path().join("v.sock")).unwrap();
        host.write_all(b"CONNECT 1234\nearly").unwrap();
        m.accept();
        let fd = *m.handshakes.keys().next().unwrap();
        m.host_event(fd);
        let (request, _) = m.next_rx(1000).unwrap();
        assert_eq!({ request.op }, op::REQUEST);
        assert_eq!({ request.dst_port }, 1234);
        let local = request.src_port;
        m.guest_packet(&from_guest(1234, local, op::RESPONSE, 0), &[]);
        let mut reader = std::io::BufReader::new(host.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert_eq!(line, format!("OK {local}\n"));
        // Bytes sent after the CONNECT line are data for the guest.
        m.poll_hosts();
        let (data_header, data) = m.next_rx(1000).unwrap();
        assert_eq!(
            ({ data_header.op }, data.as_slice()),
            (op::RW, &b"early"[..])
        );
        m.guest_packet(&from_guest(1234, local, op::RW, 4), b"pong");
        let mut buf = [0u8; 4];
        reader.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"pong");
    }

    #[test]
    fn bad_handshakes_are_dropped() {
        let (mut m, dir) = muxer();
        let mut host = UnixStream::connect(dir.path().join("v.sock")).unwrap();
        host.write_all(b"HELLO\n").unwrap();
        m.accept();
        let fd = *m.handshakes.keys().next().unwrap();
        m.host_event(fd);
        assert!(m.handshakes.is_empty());
        assert!(m.connections.is_empty());
        let mut long = UnixStream::connect(dir.path().join("v.sock")).unwrap();
        long.write_all(&[b'9'; 100]).unwrap();
        m.accept();
        let fd = *m.handshakes.keys().next().unwrap();
        m.host_event(fd);
        assert!(m.handshakes.is_empty());
    }

    #[test]
    fn guest_initiated_connects_to_port_socket() {
        let (mut m, dir) = muxer();
        let listener = UnixListener::bind(dir.path().join("v.sock_5678")).unwrap();
        m.guest_packet(&from_guest(777, 5678, op::REQUEST, 0), &[]);
        let (response, _) = m.next_rx(1000).unwrap();
        assert_eq!(
            ({ response.op }, { response.dst_port }),
            (op::RESPONSE, 777)
        );
        let (mut peer, _) = listener.accept().unwrap();
        m.guest_packet(&from_guest(777, 5678, op::RW, 5), b"hello");
        let mut buf = [0u8; 5];
        peer.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        // No listener on 9999: refused.
        m.guest_packet(&from_guest(778, 9999, op::REQUEST, 0), &[]);
        let (rst, _) = m.next_rx(1000).unwrap();
        assert_eq!({ rst.op }, op::RST);
    }

    #[test]
    fn credit_limits_data_to_the_guest() {
        let (mut m, dir) = muxer();
        let listener = UnixListener::bind(dir.path().join("v.sock_1")).unwrap();
        let mut request = from_guest(5, 1, op::REQUEST, 0);
        request.buf_alloc = 3;
        m.guest_packet(&request, &[]);
        let _ = m.next_rx(1000).unwrap();
        let (mut peer, _) = listener.accept().unwrap();
        peer.write_all(b"abcdef").unwrap();
        m.poll_hosts();
        let (_, data) = m.next_rx(1000).unwrap();
        assert_eq!(data, b"abc");
        assert!(!m.has_rx());
        let mut update = from_guest(5, 1, op::CREDIT_UPDATE, 0);
        update.buf_alloc = 3;
        update.fwd_cnt = 3;
        m.guest_packet(&update, &[]);
        let (_, data) = m.next_rx(2).unwrap();
        assert_eq!(data, b"de");
    }

    #[test]
    fn foreign_and_unknown_packets_get_rst() {
        let (mut m, _dir) = muxer();
        let mut spoofed = from_guest(1, 2, op::RW, 0);
        spoofed.src_cid = 99;
        m.guest_packet(&spoofed, &[]);
        assert_eq!({ m.next_rx(0).unwrap().0.op }, op::RST);
        m.guest_packet(&from_guest(1, 2, op::RW, 0), &[]);
        assert_eq!({ m.next_rx(0).unwrap().0.op }, op::RST);
        m.guest_packet(&from_guest(1, 2, op::RST, 0), &[]);
        assert!(m.next_rx(0).is_none());
    }

    #[test]
    fn draining_a_slow_host_peer_updates_the_guest_credit() {
        let (mut m, dir) = muxer();
        let listener = UnixListener::bind(dir.path().join("v.sock_1")).unwrap();
        m.guest_packet(&from_guest(5, 1, op::REQUEST, 0), &[]);
        let _ = m.next_rx(1000);
        let (mut peer, _) = listener.accept().unwrap();
        // The peer does not read yet: guest data waits in tx_pending.
        let chunk = vec![7u8; MAX_PAYLOAD];
        let mut sent = 0;
        while m.connections[&(1, 5)].tx_pending.is_empty() {
            m.guest_packet(&from_guest(5, 1, op::RW, chunk.len() as u32), &chunk);
            sent += chunk.len();
        }
        while m.next_rx(1000).is_some() {}
        // Now it reads everything; the stream's event flushes the rest.
        let mut buf = vec![0u8; sent];
        let reader = std::thread::spawn(move || {
            peer.read_exact(&mut buf).unwrap();
        });
        let fd = m.connections[&(1, 5)].stream.as_raw_fd();
        while !m.connections[&(1, 5)].tx_pending.is_empty() {
            m.host_event(fd);
        }
        reader.join().unwrap();
        let (update, _) = m.next_rx(1000).expect("a credit update");
        assert_eq!({ update.op }, op::CREDIT_UPDATE);
        assert_eq!({ update.fwd_cnt }, sent as u32);
    }

    #[test]
    fn credit_overrun_resets_the_connection() {
        let (mut m, dir) = muxer();
        let _listener = UnixListener::bind(dir.path().join("v.sock_1")).unwrap();
        m.guest_packet(&from_guest(5, 1, op::REQUEST, 0), &[]);
        let _ = m.next_rx(1000);
        // The peer never reads: fill its socket buffer, then overrun.
        let chunk = vec![0u8; MAX_PAYLOAD];
        for _ in 0..64 {
            m.guest_packet(&from_guest(5, 1, op::RW, chunk.len() as u32), &chunk);
            if m.connections.is_empty() {
                break;
            }
        }
        assert!(m.connections.is_empty());
    }
}
