//! Wire types between Hull's host side and `hull-agent`, PID 1 in the guest.
//!
//! One byte stream per VM (virtio-vsock or virtio-serial) carries
//! length-prefixed [`Frame`]s: JSON control messages ([`RequestEnvelope`],
//! [`ResponseEnvelope`], [`Event`]) and raw stdio chunks, multiplexed.
//! Everything that arrives from the guest is hostile input to the host, so
//! every size is bounded and every decode error is a value, never a panic.
#![deny(missing_docs)]

mod frame;
mod message;
#[cfg(feature = "tokio")]
mod stream;

pub use frame::{
    Frame, FrameDecoder, FrameError, FrameKind, HEADER_LEN, MAX_PAYLOAD_LEN, MAX_STDIO_CHUNK,
};
pub use message::{
    is_valid_id, ContainerStats, Event, ExitStatus, JoinNamespaces, ProcessInfo, Request,
    RequestEnvelope, Response, ResponseEnvelope, Rootfs, StdioStreams, DEFAULT_DEVICES,
    INIT_BINARY, MAX_DNS_MESSAGE, MAX_ID_LEN, PROTOCOL_VERSION,
};
#[cfg(feature = "tokio")]
pub use stream::{FrameReader, FrameWriter};

use serde::{de::DeserializeOwned, Serialize};

/// A control frame that could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The frame was of another kind than expected.
    #[error("expected a {expected:?} frame, got {got:?}")]
    WrongKind {
        /// The kind the receiver wanted.
        expected: FrameKind,
        /// The kind that came.
        got: FrameKind,
    },
    /// The payload was not the expected JSON.
    #[error("malformed {kind:?} frame: {source}")]
    Json {
        /// The frame's kind.
        kind: FrameKind,
        /// What serde_json said.
        source: serde_json::Error,
    },
}

/// Builds a control frame of `kind` holding `message` as JSON.
pub fn encode_json<T: Serialize>(kind: FrameKind, message: &T) -> Frame {
    // Serialising these plain data types cannot fail: no maps with
    // non-string keys, no custom serialisers that error.
    let payload = serde_json::to_vec(message).unwrap_or_else(|_| b"null".to_vec());
    Frame::new(kind, payload)
}

/// Parses the JSON payload of a control frame of `kind`.
pub fn decode_json<T: DeserializeOwned>(frame: &Frame, kind: FrameKind) -> Result<T, DecodeError> {
    if frame.kind != kind {
        return Err(DecodeError::WrongKind {
            expected: kind,
            got: frame.kind,
        });
    }
    serde_json::from_slice(&frame.payload).map_err(|source| DecodeError::Json { kind, source })
}
