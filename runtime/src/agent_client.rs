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

#[cfg(test)]
mod tests {
    //! A hostile agent: whatever a guest writes on its channel, the host's
    //! end answers with an error (or recovers), in bounded time and memory,
    //! and never panics.

    use super::*;
    use hull_protocol::{Frame, FrameKind, FrameReader, FrameWriter, ResponseEnvelope};
    use tokio::io::BufReader;

    /// Runs the host's handshake against `agent`, which plays the guest's
    /// side of the socket.
    async fn handshake_with<F, Fut>(agent: F) -> Result<AgentClient, RpcError>
    where
        F: FnOnce(UnixStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let (host, guest) = UnixStream::pair().unwrap();
        let guest = tokio::spawn(agent(guest));
        let (events, _) = mpsc::unbounded_channel();
        let result = tokio::time::timeout(
            Duration::from_secs(10),
            AgentClient::handshake(host, events),
        )
        .await
        .expect("the handshake ended in bounded time");
        guest.abort();
        result
    }

    /// The guest's end after the host's hello: its reader, its writer and
    /// the hello's request id.
    type AfterHello = (
        FrameReader<BufReader<tokio::net::unix::OwnedReadHalf>>,
        FrameWriter<tokio::net::unix::OwnedWriteHalf>,
        u64,
    );

    /// Reads the host's hello on the guest's end.
    async fn read_hello(guest: UnixStream) -> AfterHello {
        let (read, write) = guest.into_split();
        let mut reader = FrameReader::new(BufReader::new(read));
        let frame = reader.next().await.unwrap().unwrap().unwrap();
        let value: serde_json::Value = serde_json::from_slice(&frame.payload).unwrap();
        let id = value["id"].as_u64().unwrap();
        (reader, FrameWriter::new(write), id)
    }

    fn response(id: u64, response: Response) -> Frame {
        let envelope = ResponseEnvelope { id, response };
        Frame::new(FrameKind::Response, serde_json::to_vec(&envelope).unwrap())
    }

    #[tokio::test]
    async fn garbage_on_the_channel_is_an_error() {
        let result = handshake_with(|mut guest| async move {
            let mut noise = vec![0u8; 256 * 1024];
            for (i, byte) in noise.iter_mut().enumerate() {
                *byte = (i.wrapping_mul(2_654_435_761) >> 13) as u8;
            }
            let _ = guest.write_all(&noise).await;
        })
        .await;
        assert!(result.is_err());
    }

    #[tokio::test]
    async fn a_frame_past_the_bound_is_an_error_not_an_allocation() {
        let result = handshake_with(|mut guest| async move {
            // A response header announcing 4 GiB, then a trickle.
            let _ = guest
                .write_all(&[FrameKind::Response as u8, 0xff, 0xff, 0xff, 0xff])
                .await;
            let _ = guest.write_all(&[0u8; 4096]).await;
        })
        .await;
        assert!(result.is_err());
    }

    #[tokio::test]
    async fn another_protocol_version_is_refused_by_name() {
        let result = handshake_with(|guest| async move {
            let (_reader, mut writer, id) = read_hello(guest).await;
            let hello = Response::Hello {
                version: PROTOCOL_VERSION + 1,
                kernel_release: "x".repeat(100),
            };
            writer.send(&response(id, hello)).await.unwrap();
            std::future::pending::<()>().await;
        })
        .await;
        assert!(
            matches!(result, Err(RpcError::Version { agent, .. }) if agent == PROTOCOL_VERSION + 1)
        );
    }

    #[tokio::test]
    async fn a_bad_answer_is_skipped_and_the_good_one_taken() {
        let result = handshake_with(|guest| async move {
            let (_reader, mut writer, id) = read_hello(guest).await;
            for junk in [&b"{not json"[..], b"{\"id\":1}", b"[]", b"\xff\xfe"] {
                let frame = Frame::new(FrameKind::Response, junk.to_vec());
                writer.send(&frame).await.unwrap();
                let event = Frame::new(FrameKind::Event, junk.to_vec());
                writer.send(&event).await.unwrap();
            }
            writer
                .send(&Frame::new(FrameKind::Stdio, vec![1]))
                .await
                .unwrap();
            // An answer to a request never made.
            writer
                .send(&response(id + 1000, Response::Done))
                .await
                .unwrap();
            let hello = Response::Hello {
                version: PROTOCOL_VERSION,
                kernel_release: "6.1-hull".into(),
            };
            writer.send(&response(id, hello)).await.unwrap();
            std::future::pending::<()>().await;
        })
        .await;
        assert_eq!(result.unwrap().kernel_release, "6.1-hull");
    }

    #[tokio::test]
    async fn an_agent_that_hangs_up_is_an_error() {
        let result = handshake_with(|guest| async move { drop(guest) }).await;
        assert!(
            matches!(result, Err(RpcError::Closed)),
            "{:?}",
            result.err()
        );
    }
}
