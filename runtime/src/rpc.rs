//! Request/response over a framed unix-socket stream, with multiplexed stdio:
//! the client side of both the agent channel and the monitor socket.
//!
//! What comes back may be hostile (from a guest): frames are size-bounded by
//! the decoder, a frame that breaks the protocol ends the connection,
//! responses to unknown ids and output for unknown streams are dropped, and
//! output is queued with a bound, so a flooding peer is slowed down instead
//! of filling the host's memory.

use hull_protocol::{
    decode_json, encode_json, Frame, FrameKind, FrameReader, FrameWriter, RequestEnvelope,
    ResponseEnvelope, MAX_STDIO_CHUNK,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use thiserror::Error;
use tokio::io::BufReader;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};

/// Frames of output queued per stream before the peer is made to wait.
const OUTPUT_QUEUE_FRAMES: usize = 64;

/// What went wrong on the connection.
#[derive(Debug, Error)]
pub enum RpcError {
    /// The socket could not be reached.
    #[error("connecting to {path}")]
    Connect {
        /// The socket.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A handshake before the protocol proper failed.
    #[error("handshake failed: {0}")]
    Handshake(String),
    /// The connection closed or broke.
    #[error("the connection closed")]
    Closed,
    /// The peer speaks another protocol version.
    #[error("the agent speaks protocol version {agent}, this hull speaks {ours}")]
    Version {
        /// The peer's version.
        agent: u32,
        /// Ours.
        ours: u32,
    },
    /// The peer answered with an error.
    #[error("{message}")]
    Remote {
        /// What it said.
        message: String,
        /// The exit code it suggests (126, 127), if any.
        exit_code: Option<i32>,
    },
    /// The peer answered with something that does not fit the request.
    #[error("unexpected answer: {0}")]
    Unexpected(String),
    /// Writing failed.
    #[error("sending")]
    Io(#[from] std::io::Error),
}

/// A response type that may be an error reply.
pub trait RpcResponse: DeserializeOwned + std::fmt::Debug + Send + 'static {
    /// `Err((message, exit code))` for an error reply.
    fn check(self) -> Result<Self, (String, Option<i32>)>;
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Routes<Resp> {
    pending: HashMap<u64, oneshot::Sender<Resp>>,
    outputs: HashMap<u32, mpsc::Sender<Vec<u8>>>,
    closed: bool,
}

/// One connection: requests of type `Req` answered by `Resp`, events of type `Ev`.
pub struct RpcClient<Req, Resp, Ev> {
    writer: tokio::sync::Mutex<FrameWriter<OwnedWriteHalf>>,
    routes: Arc<Mutex<Routes<Resp>>>,
    next_id: AtomicU64,
    reader: tokio::task::JoinHandle<()>,
    _types: std::marker::PhantomData<fn(Req) -> Ev>,
}

impl<Req, Resp, Ev> Drop for RpcClient<Req, Resp, Ev> {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl<Req, Resp, Ev> RpcClient<Req, Resp, Ev>
where
    Req: Serialize,
    Resp: RpcResponse,
    Ev: DeserializeOwned + Send + 'static,
{
    /// Takes over `stream`; `events` receives what the peer reports unasked.
    pub fn new(stream: UnixStream, events: Option<mpsc::UnboundedSender<Ev>>) -> Self {
        let (read_half, write_half) = stream.into_split();
        let routes = Arc::new(Mutex::new(Routes {
            pending: HashMap::new(),
            outputs: HashMap::new(),
            closed: false,
        }));
        let reader = tokio::spawn(read_loop(
            FrameReader::new(BufReader::new(read_half)),
            routes.clone(),
            events,
        ));
        Self {
            writer: tokio::sync::Mutex::new(FrameWriter::new(write_half)),
            routes,
            next_id: AtomicU64::new(1),
            reader,
            _types: std::marker::PhantomData,
        }
    }

    /// Sends a request and waits for its response; an error reply becomes [`RpcError::Remote`].
    pub async fn request(&self, request: Req) -> Result<Resp, RpcError> {
        self.send(request).await?.response().await
    }

    /// Sends a request; returns once it is written, with its response to
    /// come. What is sent after it reaches the peer after it.
    pub async fn send(&self, request: Req) -> Result<PendingResponse<Resp>, RpcError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut routes = lock(&self.routes);
            if routes.closed {
                return Err(RpcError::Closed);
            }
            routes.pending.insert(id, tx);
        }
        let frame = encode_json(FrameKind::Request, &RequestEnvelope { id, request });
        self.writer.lock().await.send(&frame).await?;
        Ok(PendingResponse { rx })
    }

    /// Receives the output of `stream`: chunks, then an empty chunk at its end.
    /// Call before the output can come.
    pub fn subscribe(&self, stream: u32) -> mpsc::Receiver<Vec<u8>> {
        let (tx, rx) = mpsc::channel(OUTPUT_QUEUE_FRAMES);
        lock(&self.routes).outputs.insert(stream, tx);
        rx
    }

    /// Sends input to `stream`; empty `data` closes it.
    pub async fn send_input(&self, stream: u32, data: &[u8]) -> Result<(), RpcError> {
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

/// The response to a request [`RpcClient::send`] wrote.
#[derive(Debug)]
pub struct PendingResponse<Resp> {
    rx: oneshot::Receiver<Resp>,
}

impl<Resp: RpcResponse> PendingResponse<Resp> {
    /// Waits for it; an error reply becomes [`RpcError::Remote`].
    pub async fn response(self) -> Result<Resp, RpcError> {
        self.rx
            .await
            .map_err(|_| RpcError::Closed)?
            .check()
            .map_err(|(message, exit_code)| RpcError::Remote { message, exit_code })
    }
}

/// Routes frames until the connection ends or breaks the protocol.
async fn read_loop<Resp: RpcResponse, Ev: DeserializeOwned>(
    mut reader: FrameReader<BufReader<OwnedReadHalf>>,
    routes: Arc<Mutex<Routes<Resp>>>,
    events: Option<mpsc::UnboundedSender<Ev>>,
) {
    loop {
        let frame = match reader.next().await {
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(err))) => {
                tracing::warn!("peer broke the protocol: {err}; closing the connection");
                break;
            }
            Ok(None) => break,
            Err(err) => {
                tracing::debug!("connection: {err}");
                break;
            }
        };
        match frame.kind {
            FrameKind::Response => {
                match decode_json::<ResponseEnvelope<Resp>>(&frame, FrameKind::Response) {
                    Ok(envelope) => {
                        if let Some(waiter) = lock(&routes).pending.remove(&envelope.id) {
                            let _ = waiter.send(envelope.response);
                        } else {
                            tracing::debug!("answer to unknown request {}", envelope.id);
                        }
                    }
                    Err(err) => tracing::warn!("peer sent {err}"),
                }
            }
            FrameKind::Event => match decode_json::<Ev>(&frame, FrameKind::Event) {
                Ok(event) => {
                    if let Some(events) = &events {
                        let _ = events.send(event);
                    }
                }
                Err(err) => tracing::warn!("peer sent {err}"),
            },
            FrameKind::Stdio => {
                let Ok((stream, data)) = frame.stdio_parts() else {
                    tracing::warn!("stdio frame without a stream id");
                    continue;
                };
                let sink = lock(&routes).outputs.get(&stream).cloned();
                if let Some(sink) = sink {
                    // Waiting here holds the peer back: bounded memory.
                    let _ = sink.send(data.to_vec()).await;
                    if data.is_empty() {
                        lock(&routes).outputs.remove(&stream);
                    }
                }
            }
            FrameKind::Request => tracing::warn!("peer sent a request; ignored"),
        }
    }
    let mut routes = lock(&routes);
    routes.closed = true;
    // Dropping the senders fails every waiting request and ends every output.
    routes.pending.clear();
    routes.outputs.clear();
}
