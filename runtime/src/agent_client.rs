//! The host's end of the agent protocol: connecting (directly, or through a
//! hybrid-vsock handshake) and the version handshake.

use crate::hypervisor::AgentTransport;
use crate::rpc::{RpcClient, RpcError, RpcResponse};
use hull_protocol::{Event, Request, Response, PROTOCOL_VERSION};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::mpsc;

/// Longest line a hybrid-vsock handshake answer may have.
const MAX_HANDSHAKE_LINE: usize = 64;

impl RpcResponse for Response {
    fn check(self) -> Result<Self, (String, Option<i32>)> {
        match self {
            Response::Error { message } => Err((message, None)),
            other => Ok(other),
        }
    }
}

/// A connected, version-checked agent.
pub struct AgentClient {
    rpc: RpcClient<Request, Response, Event>,
    /// The guest kernel's release, from the handshake.
    pub kernel_release: String,
}

impl std::ops::Deref for AgentClient {
    type Target = RpcClient<Request, Response, Event>;

    fn deref(&self) -> &Self::Target {
        &self.rpc
    }
}

/// Connects to `transport`, retrying until `timeout` while the VMM sets up
/// its socket and, for vsock, while the guest's agent is not listening yet
/// (the VMM then refuses the `CONNECT`).
pub async fn connect(
    transport: &AgentTransport,
    timeout: Duration,
) -> Result<UnixStream, RpcError> {
    let deadline = tokio::time::Instant::now() + timeout;
    match transport {
        AgentTransport::Stream(path) => connect_with_retry(path, timeout).await,
        AgentTransport::HybridVsock { socket, port } => loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let mut stream = connect_with_retry(socket, left).await?;
            match vsock_handshake(&mut stream, *port).await {
                Ok(()) => return Ok(stream),
                Err(RpcError::Handshake(_) | RpcError::Io(_))
                    if tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(err) => return Err(err),
            }
        },
    }
}

/// Firecracker's hybrid-vsock handshake: `CONNECT <port>\n`, answered `OK <port>\n`.
async fn vsock_handshake(stream: &mut UnixStream, port: u32) -> Result<(), RpcError> {
    stream
        .write_all(format!("CONNECT {port}\n").as_bytes())
        .await?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.len() < MAX_HANDSHAKE_LINE {
        if stream.read(&mut byte).await? == 0 {
            return Err(RpcError::Handshake("VMM closed the connection".into()));
        }
        if byte[0] == b'\n' {
            break;
        }
        line.push(byte[0]);
    }
    if line.starts_with(b"OK ") {
        Ok(())
    } else {
        Err(RpcError::Handshake(
            String::from_utf8_lossy(&line).into_owned(),
        ))
    }
}

/// Connects to a unix socket that may not exist yet.
pub async fn connect_with_retry(path: &Path, timeout: Duration) -> Result<UnixStream, RpcError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match UnixStream::connect(path).await {
            Ok(stream) => return Ok(stream),
            Err(err)
                if tokio::time::Instant::now() < deadline
                    && matches!(
                        err.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                    ) =>
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(source) => {
                return Err(RpcError::Connect {
                    path: path.display().to_string(),
                    source,
                })
            }
        }
    }
}

impl AgentClient {
    /// Takes over `stream`, says hello and checks the agent's version.
    pub async fn handshake(
        stream: UnixStream,
        events: mpsc::UnboundedSender<Event>,
    ) -> Result<Self, RpcError> {
        let rpc = RpcClient::new(stream, Some(events));
        match rpc
            .request(Request::Hello {
                version: PROTOCOL_VERSION,
            })
            .await?
        {
            Response::Hello {
                version,
                kernel_release,
            } if version == PROTOCOL_VERSION => Ok(Self {
                rpc,
                kernel_release,
            }),
            Response::Hello { version, .. } => Err(RpcError::Version {
                agent: version,
                ours: PROTOCOL_VERSION,
            }),
            other => Err(RpcError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Sends a request whose only good answer is [`Response::Done`].
    pub async fn request_done(&self, request: Request) -> Result<(), RpcError> {
        match self.rpc.request(request).await? {
            Response::Done => Ok(()),
            other => Err(RpcError::Unexpected(format!("{other:?}"))),
        }
    }
}
