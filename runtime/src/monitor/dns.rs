//! The host's end of DNS forwarding for a sandbox plugged into another
//! network namespace (CNI mode: dockerd's, a pod's). A container there
//! whose resolv.conf names a loopback resolver (Docker's embedded DNS,
//! 127.0.0.11, which dockerd serves inside that namespace) would ask the
//! guest's own loopback: the agent answers there and passes each query on
//! ([`Event::DnsQuery`]); this asks the resolver from inside the namespace
//! and hands the answer back ([`Request::DnsAnswer`]).
//!
//! Everything from the guest is hostile: only the servers the host named
//! are asked, messages are bounded, and a bounded number of queries runs at
//! once (more are dropped, as a lossy network would).

use crate::agent_client::AgentClient;
use crate::network::cni::in_netns;
use crate::network::NetworkError;
use crate::volume::BindVolume;
use hull_protocol::{Event, Request, MAX_DNS_MESSAGE};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

/// How long the resolver may take to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// Most queries asked at once.
const MAX_IN_FLIGHT: usize = 32;
/// Most nameservers a resolv.conf names that are forwarded (resolvers
/// read three).
const MAX_SERVERS: usize = 3;
/// Most bytes of a resolv.conf read.
const MAX_RESOLV_CONF: u64 = 64 * 1024;

/// The loopback nameservers of the resolv.conf the container gets (the
/// volume bound on /etc/resolv.conf), which only answer in the namespace.
pub(super) fn loopback_nameservers(volumes: &[BindVolume]) -> Vec<Ipv4Addr> {
    volumes
        .iter()
        .find(|v| Path::new(&v.destination) == Path::new("/etc/resolv.conf"))
        .map(|v| read_resolv_conf(&v.source))
        .map(|text| parse_loopback_nameservers(&text))
        .unwrap_or_default()
}

fn read_resolv_conf(path: &Path) -> String {
    use std::io::Read;
    let mut text = String::new();
    if let Ok(file) = std::fs::File::open(path) {
        let _ = file.take(MAX_RESOLV_CONF).read_to_string(&mut text);
    }
    text
}

/// `nameserver A.B.C.D` lines with a loopback address, at most
/// [`MAX_SERVERS`].
fn parse_loopback_nameservers(text: &str) -> Vec<Ipv4Addr> {
    let mut servers = Vec::new();
    let loopback = text
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
                .and_then(|a| a.parse::<Ipv4Addr>().ok())
        })
        .filter(Ipv4Addr::is_loopback);
    for server in loopback {
        if servers.len() == MAX_SERVERS {
            break;
        }
        if !servers.contains(&server) {
            servers.push(server);
        }
    }
    servers
}

/// Reads the agent's events until they end (the sandbox went): answers
/// its DNS queries for `servers` from inside `netns` (none without one),
/// logs its log lines (at debug level: a guest may send many).
pub(super) fn serve(
    mut events: mpsc::UnboundedReceiver<Event>,
    agent: Arc<AgentClient>,
    netns: Option<PathBuf>,
    servers: Vec<Ipv4Addr>,
) -> JoinHandle<()> {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let (query_id, server, payload) = match event {
                Event::DnsQuery {
                    query_id,
                    server,
                    payload,
                } => (query_id, server, payload),
                Event::Log { message } => {
                    tracing::debug!("agent: {}", message.chars().take(1024).collect::<String>());
                    continue;
                }
                Event::ContainerExited { .. } => continue,
            };
            let Some(netns) = netns.clone() else {
                continue;
            };
            if !servers.contains(&server) || payload.len() > MAX_DNS_MESSAGE {
                tracing::debug!("dropped a DNS query for {server} the host did not forward");
                continue;
            }
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                continue;
            };
            let agent = agent.clone();
            tokio::spawn(async move {
                let _slot = slot;
                match ask(&netns, server, payload).await {
                    Ok(answer) => {
                        let _ = agent
                            .request_done(Request::DnsAnswer {
                                query_id,
                                payload: answer,
                            })
                            .await;
                    }
                    Err(err) => tracing::debug!("DNS query to {server}: {err:#}"),
                }
            });
        }
    })
}

/// Sends `query` to `server`:53 from inside `netns`; its answer.
async fn ask(netns: &Path, server: Ipv4Addr, query: Vec<u8>) -> anyhow::Result<Vec<u8>> {
    let answer = in_netns(netns, async move {
        let exchange = async {
            let socket = tokio::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await?;
            socket.connect((server, 53)).await?;
            socket.send(&query).await?;
            let mut buffer = vec![0u8; MAX_DNS_MESSAGE];
            let len = tokio::time::timeout(ANSWER_TIMEOUT, socket.recv(&mut buffer))
                .await
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
            buffer.truncate(len);
            Ok::<_, std::io::Error>(buffer)
        };
        exchange
            .await
            .map_err(|e| NetworkError::io(format!("asking the resolver {server}"), e))
    })
    .await?;
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_nameservers_are_forwarded() {
        let text = "# generated\nnameserver 127.0.0.11\nnameserver 10.0.0.2\nsearch x\n\
                    nameserver 127.0.0.11\noptions ndots:0\nnameserver ::1\nnameserver 127.0.0.53\n";
        assert_eq!(
            parse_loopback_nameservers(text),
            vec![Ipv4Addr::new(127, 0, 0, 11), Ipv4Addr::new(127, 0, 0, 53)]
        );
        assert!(parse_loopback_nameservers("nameserver 8.8.8.8\n").is_empty());
        assert!(parse_loopback_nameservers("").is_empty());
    }
}
