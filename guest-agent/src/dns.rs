//! The guest's end of DNS forwarding: a container whose resolv.conf names
//! a resolver on the host side's loopback (Docker's embedded DNS at
//! 127.0.0.11, in the network namespace the VM is plugged into) sends its
//! queries to the guest's own loopback instead. The agent answers there,
//! passes each query to the host as an event, and sends the host's answer
//! back to the asker.

use anyhow::{Context, Result};
use hull_protocol::{Event, MAX_DNS_MESSAGE};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

/// Most queries waiting for the host's answer; more are dropped (the
/// asker retries, as it would on a lossy network).
const MAX_PENDING: usize = 256;
/// How long a query waits for its answer before it is forgotten.
const PENDING_TTL: Duration = Duration::from_secs(10);

/// A query on its way to the host: who asked, on which socket.
struct Pending {
    socket: Arc<UdpSocket>,
    asker: SocketAddr,
    sent: Instant,
}

/// The forwarder: its listening sockets' queries in flight.
#[derive(Default)]
pub struct Forwarder {
    pending: Mutex<HashMap<u64, Pending>>,
    next_id: AtomicU64,
    listening: Mutex<Vec<SocketAddr>>,
}

impl Forwarder {
    /// Answers DNS on `server`:`port` (UDP; DNS's port is 53), passing
    /// queries on through `send` (which carries the event to the host). A
    /// server already served is left as it is.
    pub async fn listen(
        self: &Arc<Self>,
        server: Ipv4Addr,
        port: u16,
        send: impl Fn(Event) + Send + 'static,
    ) -> Result<SocketAddr> {
        let wanted = SocketAddr::from((server, port));
        if port != 0
            && self
                .listening
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&wanted)
        {
            return Ok(wanted);
        }
        let socket = Arc::new(
            UdpSocket::bind((server, port))
                .await
                .with_context(|| format!("listening for DNS on {server}:{port}"))?,
        );
        let local = socket.local_addr().context("the DNS socket's address")?;
        self.listening
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(local);
        let forwarder = self.clone();
        tokio::spawn(async move {
            let mut buffer = vec![0u8; MAX_DNS_MESSAGE];
            loop {
                let Ok((len, asker)) = socket.recv_from(&mut buffer).await else {
                    continue;
                };
                if let Some(query_id) = forwarder.remember(&socket, asker) {
                    send(Event::DnsQuery {
                        query_id,
                        server,
                        payload: buffer[..len].to_vec(),
                    });
                }
            }
        });
        Ok(local)
    }

    /// Notes who asked; `None` when too many queries wait already.
    fn remember(&self, socket: &Arc<UdpSocket>, asker: SocketAddr) -> Option<u64> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|_, p| p.sent.elapsed() < PENDING_TTL);
        if pending.len() >= MAX_PENDING {
            return None;
        }
        let query_id = self.next_id.fetch_add(1, Ordering::Relaxed);
        pending.insert(
            query_id,
            Pending {
                socket: socket.clone(),
                asker,
                sent: Instant::now(),
            },
        );
        Some(query_id)
    }

    /// Sends the host's answer to query `query_id` to whoever asked it.
    pub async fn answer(&self, query_id: u64, payload: &[u8]) -> Result<()> {
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&query_id)
            .with_context(|| format!("no DNS query {query_id} is waiting"))?;
        pending
            .socket
            .send_to(
                &payload[..payload.len().min(MAX_DNS_MESSAGE)],
                pending.asker,
            )
            .await
            .context("answering a DNS query")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_query_goes_out_as_an_event_and_its_answer_comes_back() {
        let forwarder = Arc::new(Forwarder::default());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let server = Ipv4Addr::new(127, 0, 0, 1);
        let local = forwarder
            .listen(server, 0, move |event| {
                let _ = tx.send(event);
            })
            .await
            .unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.send_to(b"query", local).await.unwrap();
        let Some(Event::DnsQuery {
            query_id,
            server: to,
            payload,
        }) = rx.recv().await
        else {
            panic!("no query event");
        };
        assert_eq!((to, payload.as_slice()), (server, &b"query"[..]));
        forwarder.answer(query_id, b"answer").await.unwrap();
        let mut buffer = [0u8; 16];
        let len = client.recv(&mut buffer).await.unwrap();
        assert_eq!(&buffer[..len], b"answer");
        assert!(forwarder.answer(query_id, b"again").await.is_err());
    }
}
