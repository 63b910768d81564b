//! The host's end of the agent protocol.
//!
//! Everything read here comes from the guest and is hostile: frames are
//! size-bounded by the decoder, a frame that breaks the protocol ends the
//! connection, responses to unknown ids and output for unknown streams are
//! dropped, and output is queued with a bound so a flooding guest is slowed
//! down instead of filling the host's memory.

use crate::hypervisor::AgentTransport;
use hull_protocol::{
    decode_json, encode_json, Event, Frame, FrameKind, FrameReader, FrameWriter, Request, RequestEnvelope, Response,
    ResponseEnvelope, MAX_STDIO_CHUNK, PROTOCOL_VERSION,
};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};

/// Frames of output queued per stream before the guest is made to wait.
const OUTPUT_QUEUE_FRAMES: usize = 64;

/// Longest line a hybrid-vsock handshake answer may have.
const MAX_HANDSHAKE_LINE: usize = 64;

/// What went wrong talking to the agent.
#[derive(Debug, Error)]
pub enum AgentError {
    /// The socket could not be reached.
    #[error("connecting to the agent at {path}")]
    Connect {
        /// The socket.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The hybrid-vsock handshake failed.
    #[error("vsock handshake with the VMM failed: {0}")]
    Handshake(String),
    /// The connection closed or broke.
    #[error("the agent closed the connection")]
    Closed,
    /// The agent speaks another protocol version.
    #[error("the agent speaks protocol version {agent}, this hull speaks {PROTOCOL_VERSION}")]
    Version {
        /// The agent's version.
        agent: u32,
    },
    /// The agent answered a request with an error.
    #[error("{0}")]
    Remote(String),
    /// The agent answered with something that does not fit the request.
    #[error("unexpected answer from the agent: {0:?}")]
    Unexpected(Box<Response>),
    /// Writing to the agent failed.
    #[error("sending to the agent: {0}")]
    Io(#[from] std::io::Error),
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Default)]
struct Routes {
    pending: HashMap<u64, oneshot::Sender<Response>>,
    outputs: HashMap<u32, mpsc::Sender<Vec<u8>>>,
    closed: bool,
}

/// A connected, version-checked agent.
pub struct AgentClient {
    writer: tokio::sync::Mutex<FrameWriter<OwnedWriteHalf>>,
    routes: Arc<Mutex<Routes>>,
    next_id: AtomicU64,
    reader: tokio::task::JoinHandle<()>,
    /// The guest kernel's release, from the handshake.
    pub kernel_release: String,
}

impl Drop for AgentClient {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Connects to `transport`, retrying until `timeout` while the VMM sets up its socket.
pub async fn connect(transport: &AgentTransport, timeout: Duration) -> Result<UnixStream, AgentError> {
    let (path, vsock_port) = match transport {
        AgentTransport::Stream(path) => (path.as_path(), None),
        AgentTransport::HybridVsock { socket, port } => (socket.as_path(), Some(*port)),
    };
    let mut stream = connect_with_retry(path, timeout).await?;
    if let Some(port) = vsock_port {
        stream.write_all(format!("CONNECT {port}\n").as_bytes()).await?;
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while line.len() < MAX_HANDSHAKE_LINE {
            if stream.read(&mut byte).await? == 0 {
                return Err(AgentError::Handshake("VMM closed the connection".into()));
            }
            if byte[0] == b'\n' {
                break;
            }
            line.push(byte[0]);
        }
        if !line.starts_with(b"OK ") {
            return Err(AgentError::Handshake(String::from_utf8_lossy(&line).into_owned()));
        }
    }
    Ok(stream)
}

async fn connect_with_retry(path: &Path, timeout: Duration) -> Result<UnixStream, AgentError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match UnixStream::connect(path).await {
            Ok(stream) => return Ok(stream),
            Err(err) if tokio::time::Instant::now() < deadline && matches!(err.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(source) => {
                return Err(AgentError::Connect {
                    path: path.display().to_string(),
                    source,
                })
            }
        }
    }
}

impl AgentClient {
    /// Takes over `stream`, says hello and checks the agent's version.
    /// `events` receives what the agent reports unasked.
    pub async fn handshake(stream: UnixStream, events: mpsc::UnboundedSender<Event>) -> Result<Self, AgentError> {
        let (read_half, write_half) = stream.into_split();
        let routes = Arc::new(Mutex::new(Routes::default()));
        let reader = tokio::spawn(read_loop(FrameReader::new(BufReader::new(read_half)), routes.clone(), events));
        let mut client = Self {
            writer: tokio::sync::Mutex::new(FrameWriter::new(write_half)),
            routes,
            next_id: AtomicU64::new(1),
            reader,
            kernel_release: String::new(),
        };
        match client.request(Request::Hello { version: PROTOCOL_VERSION }).await? {
            Response::Hello { version, kernel_release } if version == PROTOCOL_VERSION => {
                client.kernel_release = kernel_release;
                Ok(client)
            }
            Response::Hello { version, .. } => Err(AgentError::Version { agent: version }),
            other => Err(AgentError::Unexpected(Box::new(other))),
        }
    }

    /// Sends a request and waits for its response; an error response becomes
    /// [`AgentError::Remote`].
    pub async fn request(&self, request: Request) -> Result<Response, AgentError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut routes = lock(&self.routes);
            if routes.closed {
                return Err(AgentError::Closed);
            }
            routes.pending.insert(id, tx);
        }
        let frame = encode_json(FrameKind::Request, &RequestEnvelope { id, request });
        self.writer.lock().await.send(&frame).await?;
        match rx.await.map_err(|_| AgentError::Closed)? {
            Response::Error { message } => Err(AgentError::Remote(message)),
            response => Ok(response),
        }
    }

    /// Sends a request whose only good answer is [`Response::Done`].
    pub async fn request_done(&self, request: Request) -> Result<(), AgentError> {
        match self.request(request).await? {
            Response::Done => Ok(()),
            other => Err(AgentError::Unexpected(Box::new(other))),
        }
    }

    /// Receives the output of `stream`: chunks, then an empty chunk at its end.
    /// Call before the process can write.
    pub fn subscribe(&self, stream: u32) -> mpsc::Receiver<Vec<u8>> {
        let (tx, rx) = mpsc::channel(OUTPUT_QUEUE_FRAMES);
        lock(&self.routes).outputs.insert(stream, tx);
        rx
    }

    /// Sends input to `stream`; empty `data` closes it.
    pub async fn send_input(&self, stream: u32, data: &[u8]) -> Result<(), AgentError> {
        let mut writer = self.writer.lock().await;
        if data.is_empty() {
            return Ok(writer.send(&Frame::stdio(stream, &[])).await?);
        }
        for chunk in data.chunks(MAX_STDIO_CHUNK) {
            writer.send(&Frame::stdio(stream, chunk)).await?;
        }
        Ok(())
    }
}

/// Routes frames from the agent until the connection ends or breaks the protocol.
async fn read_loop(
    mut reader: FrameReader<BufReader<tokio::net::unix::OwnedReadHalf>>,
    routes: Arc<Mutex<Routes>>,
    events: mpsc::UnboundedSender<Event>,
) {
    loop {
        let frame = match reader.next().await {
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(err))) => {
                tracing::warn!("agent broke the protocol: {err}; closing the connection");
                break;
            }
            Ok(None) => break,
            Err(err) => {
                tracing::debug!("agent connection: {err}");
                break;
            }
        };
        match frame.kind {
            FrameKind::Response => match decode_json::<ResponseEnvelope>(&frame, FrameKind::Response) {
                Ok(envelope) => {
                    if let Some(waiter) = lock(&routes).pending.remove(&envelope.id) {
                        let _ = waiter.send(envelope.response);
                    } else {
                        tracing::debug!("agent answered unknown request {}", envelope.id);
                    }
                }
                Err(err) => tracing::warn!("agent sent {err}"),
            },
            FrameKind::Event => match decode_json::<Event>(&frame, FrameKind::Event) {
                Ok(event) => {
                    let _ = events.send(event);
                }
                Err(err) => tracing::warn!("agent sent {err}"),
            },
            FrameKind::Stdio => {
                let Ok((stream, data)) = frame.stdio_parts() else {
                    tracing::warn!("agent sent a stdio frame without a stream id");
                    continue;
                };
                let sink = lock(&routes).outputs.get(&stream).cloned();
                if let Some(sink) = sink {
                    // Waiting here holds back the guest: bounded memory.
                    let _ = sink.send(data.to_vec()).await;
                    if data.is_empty() {
                        lock(&routes).outputs.remove(&stream);
                    }
                }
            }
            FrameKind::Request => tracing::warn!("agent sent a request; ignored"),
        }
    }
    let mut routes = lock(&routes);
    routes.closed = true;
    // Dropping the senders fails every waiting request and ends every output.
    routes.pending.clear();
    routes.outputs.clear();
}
