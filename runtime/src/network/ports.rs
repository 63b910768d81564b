//! Published ports: `-p` parsing (Docker's syntax and error texts), host
//! port reservation, and the persisted table of who holds which host port.
//!
//! A reservation is twofold. Across `hull` processes, `<state>/ports.json`
//! (under `flock`) says which container holds which host port; it is what
//! the DNAT rules are made from and what stale cleanup prunes. On the host,
//! Hull binds (without listening) a socket to each published port and keeps
//! it for the container's life ([`HeldPort`]): a host process already using
//! the port makes the bind fail up front, and no host process can take the
//! port later and then silently never see its traffic (DNAT wins).

use super::error::{NetworkError, Result};
use super::state::{read_json, update_json};
use serde::{Deserialize, Serialize};
use socket2::{Domain, SockAddr, Socket, Type};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// How many ephemeral ports to try for `-p CTRPORT` before giving up when
/// the kernel keeps offering ports another container has reserved.
const RANDOM_PORT_TRIES: usize = 64;

/// A transport protocol of a published port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP (the default).
    Tcp,
    /// UDP.
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// Which host port a mapping asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostPort {
    /// Any free one (`-p 80`, `-p 0:80`).
    Any,
    /// This one (`-p 8080:80`).
    Fixed(u16),
    /// Any free one in this inclusive range (`-p 8000-8010:80`).
    Range(u16, u16),
}

/// One `-p` mapping, after range expansion: host side → container port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortMapping {
    /// Host address to publish on; `None` is every address (0.0.0.0).
    pub host_ip: Option<Ipv4Addr>,
    /// Host port wanted.
    pub host_port: HostPort,
    /// Port inside the container.
    pub container_port: u16,
    /// Protocol.
    pub protocol: Protocol,
}

/// A published port once its host port is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PublishedPort {
    /// Host address (0.0.0.0 for every address).
    pub host_ip: Ipv4Addr,
    /// Host port.
    pub host_port: u16,
    /// Port inside the container.
    pub container_port: u16,
    /// Protocol.
    pub protocol: Protocol,
}

impl PublishedPort {
    /// Whether two published ports would claim the same host port.
    pub fn conflicts_with(&self, other: &PublishedPort) -> bool {
        self.protocol == other.protocol
            && self.host_port == other.host_port
            && (self.host_ip == other.host_ip
                || self.host_ip.is_unspecified()
                || other.host_ip.is_unspecified())
    }
}

impl fmt::Display for PublishedPort {
    /// Docker's `docker port`/`docker ps` form: `0.0.0.0:8080->80/tcp`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}->{}/{}",
            self.host_ip, self.host_port, self.container_port, self.protocol
        )
    }
}

/// Parses one `-p`/`--publish` value: `[IP:][HOSTPORT:]CTRPORT[/PROTO]`,
/// where ports may be ranges (`8000-8001:80-81`). Errors use Docker's texts.
pub fn parse_publish(raw: &str) -> Result<Vec<PortMapping>> {
    let invalid = |text: String| NetworkError::InvalidPortSpec(text);
    let (ip, host, container) = split_parts(raw);
    let (proto, container) = split_proto_port(container);

    let host_ip = if ip.is_empty() {
        None
    } else {
        let bare = ip
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .unwrap_or(ip);
        match bare.parse::<IpAddr>() {
            Ok(IpAddr::V4(v4)) => Some(v4),
            Ok(IpAddr::V6(_)) => {
                return Err(invalid(format!(
                    "IPv6 host address {bare} is not supported by hull (IPv4 only)"
                )))
            }
            Err(_) => return Err(invalid(format!("invalid IP address: {ip}"))),
        }
    };
    if container.is_empty() {
        return Err(invalid(format!("no port specified: {raw}<empty>")));
    }
    let (ctr_start, ctr_end) = match parse_port_range(container) {
        Some((start, end)) if start > 0 => (start, end),
        _ => return Err(invalid(format!("invalid containerPort: {container}"))),
    };
    let host_range = if host.is_empty() {
        None
    } else {
        Some(parse_port_range(host).ok_or_else(|| invalid(format!("invalid hostPort: {host}")))?)
    };
    if let Some((host_start, host_end)) = host_range {
        // A host range with a single container port is a pool to pick from.
        if host_end - host_start != ctr_end - ctr_start && ctr_end != ctr_start {
            return Err(invalid(format!(
                "invalid ranges specified for container and host Ports: {container} and {host}"
            )));
        }
    }
    let protocol = match proto.to_ascii_lowercase().as_str() {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        "sctp" => return Err(invalid("sctp ports are not supported by hull".to_string())),
        other => return Err(invalid(format!("invalid proto: {other}"))),
    };

    let mappings = (ctr_start..=ctr_end)
        .enumerate()
        .map(|(offset, container_port)| {
            let host_port = match host_range {
                None | Some((0, 0)) => HostPort::Any,
                Some((start, end)) if ctr_start == ctr_end && start != end => {
                    HostPort::Range(start, end)
                }
                // Offsets fit: the ranges were checked to be the same size.
                Some((start, _)) => HostPort::Fixed(start + offset as u16),
            };
            PortMapping {
                host_ip,
                host_port,
                container_port,
                protocol,
            }
        })
        .collect();
    Ok(mappings)
}

/// `ip:host:container`, split the way Docker does: the last two `:` parts
/// are the ports, whatever is before them is the IP (which may hold `:`).
fn split_parts(raw: &str) -> (&str, &str, &str) {
    let parts: Vec<&str> = raw.split(':').collect();
    let n = parts.len();
    match n {
        1 => ("", "", parts[0]),
        2 => ("", parts[0], parts[1]),
        _ => {
            let ip_len = raw.len() - parts[n - 2].len() - parts[n - 1].len() - 2;
            (&raw[..ip_len], parts[n - 2], parts[n - 1])
        }
    }
}

/// `80/udp` → (`udp`, `80`); no protocol means tcp.
fn split_proto_port(raw: &str) -> (&str, &str) {
    let mut parts = raw.split('/');
    let port = parts.next().unwrap_or("");
    if port.is_empty() {
        return ("", "");
    }
    match parts.next() {
        None | Some("") => ("tcp", port),
        Some(proto) => (proto, port),
    }
}

/// `80` or `8000-8010`; `None` if not numbers, out of range or reversed.
fn parse_port_range(text: &str) -> Option<(u16, u16)> {
    let (start, end) = match text.split_once('-') {
        Some((start, end)) => (start.parse().ok()?, end.parse().ok()?),
        None => {
            let port = text.parse().ok()?;
            (port, port)
        }
    };
    (start <= end).then_some((start, end))
}

/// A host socket bound to a published port, keeping it from host processes
/// while the container runs. Dropping it frees the port.
#[derive(Debug)]
pub struct HeldPort {
    /// What is held.
    pub port: PublishedPort,
    _socket: OwnedFd,
}

/// Binds a socket of `protocol` to `ip:port` (port 0: the kernel picks one)
/// without listening. Returns it with the port actually bound.
fn bind_host_port(ip: Ipv4Addr, port: u16, protocol: Protocol) -> std::io::Result<(OwnedFd, u16)> {
    let address = SocketAddrV4::new(ip, port);
    let kind = match protocol {
        Protocol::Tcp => Type::STREAM,
        Protocol::Udp => Type::DGRAM,
    };
    // No SO_REUSEADDR: a host listener on the port must make this fail.
    let socket = Socket::new(Domain::IPV4, kind, None)?;
    socket.bind(&SockAddr::from(address))?;
    let bound = socket
        .local_addr()?
        .as_socket_ipv4()
        .map_or(port, |address| address.port());
    Ok((OwnedFd::from(socket), bound))
}

/// A host port reserved for a container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortReservation {
    /// The sandbox id holding it.
    pub owner: String,
    /// The network the container is on.
    pub network: String,
    /// The container's address, the DNAT target.
    pub guest_ip: Ipv4Addr,
    /// The mapping.
    pub port: PublishedPort,
}

/// The persisted table of reserved host ports, shared by all networks
/// (a host port is a host-wide resource).
#[derive(Clone, Debug)]
pub struct PortStore {
    path: PathBuf,
    lock: PathBuf,
}

impl PortStore {
    /// The table kept in `state_dir` (`ports.json`, `ports.lock`).
    pub fn new(state_dir: &Path) -> Self {
        Self {
            path: state_dir.join("ports.json"),
            lock: state_dir.join("ports.lock"),
        }
    }

    /// Reserves host ports for all of `mappings` of container `owner`
    /// (address `guest_ip` on `network`), all or nothing: on any failure no
    /// reservation is recorded and every socket bound so far is closed.
    pub fn reserve(
        &self,
        owner: &str,
        network: &str,
        guest_ip: Ipv4Addr,
        mappings: &[PortMapping],
    ) -> Result<Vec<HeldPort>> {
        if mappings.is_empty() {
            return Ok(Vec::new());
        }
        update_json(
            &self.path,
            &self.lock,
            |table: &mut Vec<PortReservation>| {
                let mut held: Vec<HeldPort> = Vec::new();
                for mapping in mappings {
                    let taken: Vec<PublishedPort> = table
                        .iter()
                        .map(|r| r.port)
                        .chain(held.iter().map(|h| h.port))
                        .collect();
                    held.push(hold_mapping(mapping, &taken)?);
                }
                table.extend(held.iter().map(|h| PortReservation {
                    owner: owner.to_string(),
                    network: network.to_string(),
                    guest_ip,
                    port: h.port,
                }));
                for h in &held {
                    tracing::debug!(owner, port = %h.port, "reserved host port");
                }
                Ok((true, held))
            },
        )
    }

    /// Drops `owner`'s reservations; returns them.
    pub fn release(&self, owner: &str) -> Result<Vec<PortReservation>> {
        self.retain(|r| r.owner != owner)
    }

    /// Keeps the reservations for which `keep` is true; returns the others.
    pub fn retain(&self, keep: impl Fn(&PortReservation) -> bool) -> Result<Vec<PortReservation>> {
        update_json(
            &self.path,
            &self.lock,
            |table: &mut Vec<PortReservation>| {
                let (kept, removed): (Vec<_>, Vec<_>) = table.drain(..).partition(|r| keep(r));
                *table = kept;
                Ok((!removed.is_empty(), removed))
            },
        )
    }

    /// Every reservation.
    pub fn all(&self) -> Result<Vec<PortReservation>> {
        read_json(&self.path)
    }
}

/// Finds and binds a host port for `mapping` that is in none of `taken`.
fn hold_mapping(mapping: &PortMapping, taken: &[PublishedPort]) -> Result<HeldPort> {
    let host_ip = mapping.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let published = |host_port| PublishedPort {
        host_ip,
        host_port,
        container_port: mapping.container_port,
        protocol: mapping.protocol,
    };
    let is_taken = |port: &PublishedPort| taken.iter().any(|t| t.conflicts_with(port));
    let allocated = || NetworkError::PortAllocated(format!("{host_ip}:{}", port_text(mapping)));

    match mapping.host_port {
        HostPort::Fixed(port) => {
            let wanted = published(port);
            if is_taken(&wanted) {
                return Err(allocated());
            }
            let (socket, _) = bind_host_port(host_ip, port, mapping.protocol)
                .map_err(|e| bind_error(&wanted, e))?;
            Ok(HeldPort {
                port: wanted,
                _socket: socket,
            })
        }
        HostPort::Range(start, end) => (start..=end)
            .map(published)
            .filter(|p| !is_taken(p))
            .find_map(|p| {
                bind_host_port(host_ip, p.host_port, mapping.protocol)
                    .ok()
                    .map(|(socket, _)| HeldPort {
                        port: p,
                        _socket: socket,
                    })
            })
            .ok_or_else(allocated),
        HostPort::Any => {
            // Rejected sockets stay bound until we are done, so the kernel
            // does not offer the same port again.
            let mut rejected = Vec::new();
            for _ in 0..RANDOM_PORT_TRIES {
                let (socket, port) = bind_host_port(host_ip, 0, mapping.protocol).map_err(|e| {
                    NetworkError::io(
                        format!("binding a free {} port on {host_ip}", mapping.protocol),
                        e,
                    )
                })?;
                let candidate = published(port);
                if !is_taken(&candidate) {
                    return Ok(HeldPort {
                        port: candidate,
                        _socket: socket,
                    });
                }
                rejected.push(socket);
            }
            Err(NetworkError::NoFreePort(format!(
                "{host_ip}/{}",
                mapping.protocol
            )))
        }
    }
}

/// The host port part of an error text: `8080`, or `8000-8010`.
fn port_text(mapping: &PortMapping) -> String {
    match mapping.host_port {
        HostPort::Any => "0".to_string(),
        HostPort::Fixed(port) => port.to_string(),
        HostPort::Range(start, end) => format!("{start}-{end}"),
    }
}

/// Docker's text for a port in use; other bind failures say what they are.
fn bind_error(port: &PublishedPort, error: std::io::Error) -> NetworkError {
    if error.kind() == std::io::ErrorKind::AddrInUse {
        NetworkError::PortAllocated(format!("{}:{}", port.host_ip, port.host_port))
    } else {
        NetworkError::io(
            format!(
                "binding {}:{}/{}",
                port.host_ip, port.host_port, port.protocol
            ),
            error,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(spec: &str) -> PortMapping {
        let mut all = parse_publish(spec).unwrap();
        assert_eq!(all.len(), 1, "{spec}");
        all.remove(0)
    }

    fn map(
        ip: Option<[u8; 4]>,
        host_port: HostPort,
        container_port: u16,
        protocol: Protocol,
    ) -> PortMapping {
        PortMapping {
            host_ip: ip.map(Ipv4Addr::from),
            host_port,
            container_port,
            protocol,
        }
    }

    #[test]
    fn parses_docker_forms() {
        use HostPort::*;
        use Protocol::*;
        let table = [
            ("80", map(None, Any, 80, Tcp)),
            ("80/udp", map(None, Any, 80, Udp)),
            ("80/", map(None, Any, 80, Tcp)),
            ("8080:80", map(None, Fixed(8080), 80, Tcp)),
            ("0:80", map(None, Any, 80, Tcp)),
            ("8080:80/UDP", map(None, Fixed(8080), 80, Udp)),
            (
                "127.0.0.1:8080:80",
                map(Some([127, 0, 0, 1]), Fixed(8080), 80, Tcp),
            ),
            ("127.0.0.1::80", map(Some([127, 0, 0, 1]), Any, 80, Tcp)),
            (
                "[127.0.0.1]:53:53/udp",
                map(Some([127, 0, 0, 1]), Fixed(53), 53, Udp),
            ),
            ("8000-8010:80", map(None, Range(8000, 8010), 80, Tcp)),
        ];
        for (spec, want) in table {
            assert_eq!(one(spec), want, "{spec}");
        }
    }

    #[test]
    fn expands_ranges() {
        let all = parse_publish("8000-8001:80-81/udp").unwrap();
        let pairs: Vec<_> = all
            .iter()
            .map(|m| (m.host_port, m.container_port))
            .collect();
        assert_eq!(
            pairs,
            [(HostPort::Fixed(8000), 80), (HostPort::Fixed(8001), 81)]
        );
        let any = parse_publish("80-82").unwrap();
        assert_eq!(any.len(), 3);
        assert!(any.iter().all(|m| m.host_port == HostPort::Any));
    }

    #[test]
    fn docker_error_texts() {
        let table = [
            ("", "no port specified: <empty>"),
            ("8080:", "no port specified: 8080:<empty>"),
            ("abc", "invalid containerPort: abc"),
            ("0", "invalid containerPort: 0"),
            ("70000", "invalid containerPort: 70000"),
            ("90-80", "invalid containerPort: 90-80"),
            ("x:80", "invalid hostPort: x"),
            ("99999:80", "invalid hostPort: 99999"),
            ("1.2.3:8080:80", "invalid IP address: 1.2.3"),
            (
                "8000-8002:80-81",
                "invalid ranges specified for container and host Ports: 80-81 and 8000-8002",
            ),
            ("80/icmp", "invalid proto: icmp"),
            ("80/sctp", "sctp ports are not supported by hull"),
            (
                "[::1]:80:80",
                "IPv6 host address ::1 is not supported by hull (IPv4 only)",
            ),
        ];
        for (spec, want) in table {
            let err = parse_publish(spec).unwrap_err();
            assert_eq!(err.to_string(), want, "{spec}");
        }
    }

    #[test]
    fn conflicts() {
        let p = |ip: [u8; 4], port, protocol| PublishedPort {
            host_ip: Ipv4Addr::from(ip),
            host_port: port,
            container_port: 80,
            protocol,
        };
        let any = p([0, 0, 0, 0], 8080, Protocol::Tcp);
        assert!(any.conflicts_with(&p([127, 0, 0, 1], 8080, Protocol::Tcp)));
        assert!(!any.conflicts_with(&p([0, 0, 0, 0], 8080, Protocol::Udp)));
        assert!(!any.conflicts_with(&p([0, 0, 0, 0], 8081, Protocol::Tcp)));
        assert!(!p([127, 0, 0, 1], 8080, Protocol::Tcp).conflicts_with(&p(
            [127, 0, 0, 2],
            8080,
            Protocol::Tcp
        )));
        assert_eq!(any.to_string(), "0.0.0.0:8080->80/tcp");
    }

    #[test]
    fn store_reserves_and_refuses_taken_ports() {
        let dir = tempfile::tempdir().unwrap();
        let store = PortStore::new(dir.path());
        let guest = Ipv4Addr::new(10, 88, 0, 2);
        // Random ports on loopback: nothing else on this host is disturbed.
        let held = store
            .reserve(
                "a",
                "bridge",
                guest,
                &parse_publish("127.0.0.1::80").unwrap(),
            )
            .unwrap();
        let port = held[0].port.host_port;
        assert_ne!(port, 0);
        // Same port for another container: refused from the table alone,
        // even once a's socket is gone (a's hull process died).
        drop(held);
        let spec = format!("127.0.0.1:{port}:81");
        let err = store
            .reserve("b", "bridge", guest, &parse_publish(&spec).unwrap())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("Bind for 127.0.0.1:{port} failed: port is already allocated")
        );
        assert_eq!(store.all().unwrap().len(), 1);
        assert_eq!(store.release("a").unwrap().len(), 1);
        assert!(store.all().unwrap().is_empty());
    }

    #[test]
    fn store_refuses_a_port_a_host_process_uses_and_records_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = PortStore::new(dir.path());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mappings = parse_publish(&format!("127.0.0.1:{port}:80")).unwrap();
        // A first, free mapping must be rolled back with the failing one.
        let mut all = parse_publish("127.0.0.1::90").unwrap();
        all.extend(mappings);
        let err = store
            .reserve("a", "bridge", Ipv4Addr::new(10, 88, 0, 2), &all)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("Bind for 127.0.0.1:{port} failed: port is already allocated")
        );
        assert!(store.all().unwrap().is_empty());
    }
}
