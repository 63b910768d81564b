//! Frames over tokio byte streams.

use crate::{Frame, FrameDecoder, FrameError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Reads frames from an async byte stream.
pub struct FrameReader<R> {
    inner: R,
    decoder: FrameDecoder,
    buf: Box<[u8]>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            decoder: FrameDecoder::new(),
            buf: vec![0; 64 * 1024].into_boxed_slice(),
        }
    }

    /// The next frame; `Ok(None)` at end of stream. A rejected frame comes
    /// back as `Ok(Some(Err(_)))` and the reader stays usable.
    pub async fn next(&mut self) -> std::io::Result<Option<Result<Frame, FrameError>>> {
        loop {
            if let Some(frame) = self.decoder.next_frame() {
                return Ok(Some(frame));
            }
            let n = self.inner.read(&mut self.buf).await?;
            if n == 0 {
                return Ok(None);
            }
            self.decoder.push(&self.buf[..n]);
        }
    }
}

/// Writes frames to an async byte stream.
pub struct FrameWriter<W> {
    inner: W,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self { inner }
    }

    /// Sends one frame and flushes it.
    pub async fn send(&mut self, frame: &Frame) -> std::io::Result<()> {
        self.inner.write_all(&frame.encode()).await?;
        self.inner.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FrameKind, HEADER_LEN, MAX_PAYLOAD_LEN};

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// A header announcing `len` payload bytes of `kind`.
    fn header(len: u32, kind: u8) -> Vec<u8> {
        let mut bytes = len.to_le_bytes().to_vec();
        bytes.push(kind);
        bytes
    }

    #[test]
    fn frames_cross_a_stream_in_order_and_end_cleanly() {
        runtime().block_on(async {
            let (a, b) = tokio::io::duplex(1024);
            let mut writer = FrameWriter::new(a);
            let mut reader = FrameReader::new(b);
            let sent = [
                Frame::new(FrameKind::Request, br#"{"hello":1}"#.to_vec()),
                Frame::stdio(7, b"some output"),
                Frame::stdio(7, b""),
                // Larger than the duplex buffer and the reader's own: comes in pieces.
                Frame::new(FrameKind::Event, vec![b'x'; 200 * 1024]),
            ];
            let writing = tokio::spawn(async move {
                for frame in &sent {
                    writer.send(frame).await.unwrap();
                }
                sent
            });
            let mut got = Vec::new();
            while let Some(frame) = reader.next().await.unwrap() {
                got.push(frame.unwrap());
            }
            assert_eq!(got, writing.await.unwrap());
        });
    }

    #[test]
    fn the_bound_is_exact_and_an_oversized_frame_is_skipped() {
        runtime().block_on(async {
            let at_limit = Frame::new(FrameKind::Event, vec![1; MAX_PAYLOAD_LEN as usize]);
            let mut wire = at_limit.encode();
            // One byte over: rejected, its payload skipped without being kept.
            wire.extend(header(MAX_PAYLOAD_LEN + 1, FrameKind::Event as u8));
            wire.extend(vec![2; MAX_PAYLOAD_LEN as usize + 1]);
            let after = Frame::new(FrameKind::Response, b"{}".to_vec());
            wire.extend(after.encode());
            let mut reader = FrameReader::new(&wire[..]);
            assert_eq!(reader.next().await.unwrap().unwrap().unwrap(), at_limit);
            assert_eq!(
                reader.next().await.unwrap().unwrap(),
                Err(crate::FrameError::TooLong(MAX_PAYLOAD_LEN + 1))
            );
            assert_eq!(reader.next().await.unwrap().unwrap().unwrap(), after);
            assert!(reader.next().await.unwrap().is_none());
        });
    }

    #[test]
    fn unknown_kinds_are_reported_and_a_cut_stream_ends() {
        runtime().block_on(async {
            let mut wire = header(3, 99);
            wire.extend(b"abc");
            let good = Frame::stdio(1, b"ok");
            wire.extend(good.encode());
            // A header and half a payload, then the peer is gone.
            wire.extend(header(10, FrameKind::Request as u8));
            wire.extend(b"12345");
            let mut reader = FrameReader::new(&wire[..]);
            assert_eq!(
                reader.next().await.unwrap().unwrap(),
                Err(crate::FrameError::UnknownKind(99))
            );
            assert_eq!(reader.next().await.unwrap().unwrap().unwrap(), good);
            assert!(reader.next().await.unwrap().is_none());
            assert_eq!(HEADER_LEN, header(0, 0).len());
        });
    }
}
