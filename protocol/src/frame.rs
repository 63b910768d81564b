//! Framing of the host↔agent byte stream.
//!
//! The channel between the host and the agent is one ordered byte stream (a
//! virtio-vsock connection or a virtio-serial port). It carries frames:
//!
//! ```text
//! +----------------+--------+---------------------+
//! | length: u32 LE | kind:u8| payload (length B)  |
//! +----------------+--------+---------------------+
//! ```
//!
//! `length` counts the payload only and is bounded by [`MAX_PAYLOAD_LEN`].
//! Control frames carry JSON; stdio frames carry a stream id and raw bytes.
//!
//! The decoder never trusts the peer: an over-long or unknown frame is
//! reported as an error and its payload skipped without being buffered, so a
//! hostile or buggy peer can neither exhaust memory nor desynchronise a
//! well-behaved stream.

use thiserror::Error;

/// Largest payload a frame may carry (1 MiB): room for a large OCI spec.
pub const MAX_PAYLOAD_LEN: u32 = 1 << 20;

/// Largest chunk of stdio data a sender puts in one frame.
pub const MAX_STDIO_CHUNK: usize = 32 * 1024;

/// Size of the fixed frame header.
pub const HEADER_LEN: usize = 5;

/// What a frame's payload holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// A JSON [`crate::RequestEnvelope`], host to agent.
    Request = 1,
    /// A JSON [`crate::ResponseEnvelope`], agent to host.
    Response = 2,
    /// A JSON [`crate::Event`], agent to host, unsolicited.
    Event = 3,
    /// Stdio data: a u32 LE stream id followed by bytes. No bytes means end of stream.
    Stdio = 4,
}

impl FrameKind {
    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Self::Request),
            2 => Some(Self::Response),
            3 => Some(Self::Event),
            4 => Some(Self::Stdio),
            _ => None,
        }
    }
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What the payload holds.
    pub kind: FrameKind,
    /// The payload, at most [`MAX_PAYLOAD_LEN`] bytes.
    pub payload: Vec<u8>,
}

/// Why a frame was rejected. The decoder stays usable after every error.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The header announced more than [`MAX_PAYLOAD_LEN`] bytes; the payload is skipped.
    #[error("frame of {0} bytes exceeds the limit of {MAX_PAYLOAD_LEN} bytes")]
    TooLong(u32),
    /// The header named an unknown kind; the payload is skipped.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// A stdio frame without its stream id.
    #[error("stdio frame of {0} bytes is shorter than its stream id")]
    ShortStdio(usize),
}

impl Frame {
    /// A control or event frame holding `payload`.
    pub fn new(kind: FrameKind, payload: Vec<u8>) -> Self {
        Self { kind, payload }
    }

    /// A stdio frame carrying `data` for `stream`. Empty `data` signals end of stream.
    pub fn stdio(stream: u32, data: &[u8]) -> Self {
        let mut payload = Vec::with_capacity(4 + data.len());
        payload.extend_from_slice(&stream.to_le_bytes());
        payload.extend_from_slice(data);
        Self {
            kind: FrameKind::Stdio,
            payload,
        }
    }

    /// Splits a stdio frame into its stream id and data.
    pub fn stdio_parts(&self) -> Result<(u32, &[u8]), FrameError> {
        match self.payload.get(..4) {
            Some(id) if self.kind == FrameKind::Stdio => {
                let stream = u32::from_le_bytes([id[0], id[1], id[2], id[3]]);
                Ok((stream, &self.payload[4..]))
            }
            _ => Err(FrameError::ShortStdio(self.payload.len())),
        }
    }

    /// The frame as bytes on the wire.
    ///
    /// Senders never build payloads above [`MAX_PAYLOAD_LEN`]; a larger one is
    /// a programming error and is truncated by the length field's check on
    /// the receiving side rather than here.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len());
        let len = u32::try_from(self.payload.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.push(self.kind as u8);
        out.extend_from_slice(&self.payload);
        out
    }
}

/// Where the decoder is inside the stream.
#[derive(Debug)]
enum State {
    /// Collecting a header.
    Header,
    /// Collecting `len` payload bytes of a frame of `kind`.
    Payload { kind: FrameKind, len: usize },
    /// Dropping `remaining` bytes of a rejected frame.
    Skip { remaining: usize },
}

/// Incremental frame decoder: feed it bytes as they arrive, take frames out.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    state: State,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    /// An empty decoder at the start of a stream.
    pub fn new() -> Self {
        Self {
            buf: Vec::new(),
            state: State::Header,
        }
    }

    /// Appends received bytes. Memory held stays bounded by one frame,
    /// because [`FrameDecoder::next_frame`] is called until it returns `None`
    /// after every push; skipped payloads are never stored.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, an error for a rejected one, or `None` when
    /// more bytes are needed.
    pub fn next_frame(&mut self) -> Option<Result<Frame, FrameError>> {
        loop {
            match self.state {
                State::Skip { remaining } => {
                    let n = remaining.min(self.buf.len());
                    self.buf.drain(..n);
                    if n < remaining {
                        self.state = State::Skip {
                            remaining: remaining - n,
                        };
                        return None;
                    }
                    self.state = State::Header;
                }
                State::Header => {
                    if self.buf.len() < HEADER_LEN {
                        return None;
                    }
                    let len =
                        u32::from_le_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
                    let kind_byte = self.buf[4];
                    self.buf.drain(..HEADER_LEN);
                    // u32 always fits in usize on the 64-bit targets Hull supports.
                    let len_usize = len as usize;
                    if len > MAX_PAYLOAD_LEN {
                        self.state = State::Skip {
                            remaining: len_usize,
                        };
                        return Some(Err(FrameError::TooLong(len)));
                    }
                    match FrameKind::from_byte(kind_byte) {
                        Some(kind) => {
                            self.state = State::Payload {
                                kind,
                                len: len_usize,
                            }
                        }
                        None => {
                            self.state = State::Skip {
                                remaining: len_usize,
                            };
                            return Some(Err(FrameError::UnknownKind(kind_byte)));
                        }
                    }
                }
                State::Payload { kind, len } => {
                    if self.buf.len() < len {
                        return None;
                    }
                    let payload: Vec<u8> = self.buf.drain(..len).collect();
                    self.state = State::Header;
                    return Some(Ok(Frame { kind, payload }));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8], chunk: usize) -> Vec<Result<Frame, FrameError>> {
        let mut decoder = FrameDecoder::new();
        let mut out = Vec::new();
        for piece in bytes.chunks(chunk.max(1)) {
            decoder.push(piece);
            while let Some(frame) = decoder.next_frame() {
                out.push(frame);
            }
        }
        out
    }

    #[test]
    fn round_trips_in_any_chunking() {
        let frames = vec![
            Frame::new(FrameKind::Request, b"{\"id\":1}".to_vec()),
            Frame::stdio(7, b"hello"),
            Frame::stdio(7, b""),
            Frame::new(FrameKind::Event, Vec::new()),
        ];
        let wire: Vec<u8> = frames.iter().flat_map(Frame::encode).collect();
        for chunk in [1, 2, 5, 13, wire.len()] {
            let decoded: Vec<Frame> = decode_all(&wire, chunk)
                .into_iter()
                .map(|f| f.unwrap())
                .collect();
            assert_eq!(decoded, frames, "chunk size {chunk}");
        }
        let (stream, data) = frames[1].stdio_parts().unwrap();
        assert_eq!((stream, data), (7, &b"hello"[..]));
    }

    #[test]
    fn oversized_frame_is_skipped_and_stream_recovers() {
        let big = MAX_PAYLOAD_LEN as usize + 10;
        let mut wire = Vec::new();
        wire.extend_from_slice(&(big as u32).to_le_bytes());
        wire.push(FrameKind::Request as u8);
        wire.extend(std::iter::repeat_n(0xAA, big));
        wire.extend(Frame::stdio(1, b"after").encode());
        let out = decode_all(&wire, 4096);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0], Err(FrameError::TooLong(big as u32)));
        assert_eq!(out[1].as_ref().unwrap().stdio_parts().unwrap().1, b"after");
    }

    #[test]
    fn unknown_kind_is_skipped() {
        let mut wire = vec![3, 0, 0, 0, 99, 1, 2, 3];
        wire.extend(Frame::new(FrameKind::Response, b"x".to_vec()).encode());
        let out = decode_all(&wire, 3);
        assert_eq!(out[0], Err(FrameError::UnknownKind(99)));
        assert_eq!(out[1].as_ref().unwrap().payload, b"x");
    }

    #[test]
    fn short_stdio_frame_is_an_error() {
        let frame = Frame::new(FrameKind::Stdio, vec![1, 2]);
        assert_eq!(frame.stdio_parts(), Err(FrameError::ShortStdio(2)));
    }
}
