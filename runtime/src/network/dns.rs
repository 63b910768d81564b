//! What a guest puts in `/etc/resolv.conf` and `/etc/hosts`.
//!
//! Like Docker on its default bridge, the guest gets the host's resolvers:
//! `/etc/resolv.conf` is read and loopback nameservers (127.0.0.0/8, ::1,
//! e.g. systemd-resolved's 127.0.0.53 or a local dnsmasq) are dropped,
//! because inside the guest they would be the guest itself. If that leaves
//! nothing and the host runs systemd-resolved, its upstream servers
//! (`/run/systemd/resolve/resolv.conf`) are used; if there is still
//! nothing, Docker's fallback, Google's 8.8.8.8 and 8.8.4.4. IPv6
//! nameservers are dropped too: guests have IPv4 only. `search` and
//! `options` are kept. (No embedded DNS server: container names on
//! user-defined networks do not resolve, unlike Docker.)

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

/// The host's resolver configuration.
pub const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";
/// systemd-resolved's list of real upstream servers.
pub const RESOLVED_UPSTREAM_CONF: &str = "/run/systemd/resolve/resolv.conf";
/// Used when the host has no nameserver a guest can reach (Docker's choice).
pub const FALLBACK_NAMESERVERS: [Ipv4Addr; 2] =
    [Ipv4Addr::new(8, 8, 8, 8), Ipv4Addr::new(8, 8, 4, 4)];

/// A guest's resolver configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsConfig {
    /// `nameserver` lines, in order.
    pub nameservers: Vec<Ipv4Addr>,
    /// `search` domains.
    pub search: Vec<String>,
    /// `options` (e.g. `ndots:2`).
    pub options: Vec<String>,
}

impl DnsConfig {
    /// The configuration for guests on this host (see the module docs).
    pub fn from_host() -> Self {
        Self::from_files(
            Path::new(HOST_RESOLV_CONF),
            Path::new(RESOLVED_UPSTREAM_CONF),
        )
    }

    /// [`DnsConfig::from_host`] with the two files given (for tests).
    pub fn from_files(resolv_conf: &Path, resolved_upstream: &Path) -> Self {
        let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
        let mut config = guest_view(&parse_resolv_conf(&read(resolv_conf)));
        if config.nameservers.is_empty() {
            let upstream = guest_view(&parse_resolv_conf(&read(resolved_upstream)));
            config.nameservers = upstream.nameservers;
        }
        if config.nameservers.is_empty() {
            tracing::info!("no host nameserver reachable from guests; using 8.8.8.8 and 8.8.4.4");
            config.nameservers = FALLBACK_NAMESERVERS.to_vec();
        }
        config
    }

    /// The file text for the guest's `/etc/resolv.conf`.
    pub fn to_resolv_conf(&self) -> String {
        let mut text = String::new();
        for server in &self.nameservers {
            text.push_str(&format!("nameserver {server}\n"));
        }
        if !self.search.is_empty() {
            text.push_str(&format!("search {}\n", self.search.join(" ")));
        }
        if !self.options.is_empty() {
            text.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        text
    }
}

/// A parsed resolv.conf, with every nameserver as written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolvConf {
    /// Nameserver addresses (unparseable ones are skipped).
    pub nameservers: Vec<IpAddr>,
    /// The last `search` (or `domain`) line's domains.
    pub search: Vec<String>,
    /// All `options`.
    pub options: Vec<String>,
}

/// Parses resolv.conf text as the glibc resolver reads it: comments start
/// with `#` or `;`, the last `search`/`domain` line wins, options add up.
/// Nameservers with a zone (`fe80::1%eth0`) are skipped.
pub fn parse_resolv_conf(text: &str) -> ResolvConf {
    let mut conf = ResolvConf::default();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("");
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                if let Some(ip) = words.next().and_then(|w| w.parse().ok()) {
                    conf.nameservers.push(ip);
                }
            }
            Some("search") | Some("domain") => conf.search = words.map(str::to_string).collect(),
            Some("options") => conf.options.extend(words.map(str::to_string)),
            _ => {}
        }
    }
    conf
}

/// What a guest can use of a host resolv.conf: IPv4, non-loopback servers.
fn guest_view(conf: &ResolvConf) -> DnsConfig {
    DnsConfig {
        nameservers: conf
            .nameservers
            .iter()
            .filter_map(|ip| match ip {
                IpAddr::V4(v4) if !v4.is_loopback() && !v4.is_unspecified() => Some(*v4),
                _ => None,
            })
            .collect(),
        search: conf.search.clone(),
        options: conf.options.clone(),
    }
}

/// One `/etc/hosts` line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostsEntry {
    /// The address.
    pub ip: IpAddr,
    /// Its names.
    pub names: Vec<String>,
}

/// Docker's `/etc/hosts` for a container: loopback names, the IPv6
/// multicast names, and the container's own address with its hostname.
pub fn hosts_entries(guest_ip: Ipv4Addr, hostname: &str) -> Vec<HostsEntry> {
    let entry = |ip: &str, names: &[&str]| HostsEntry {
        // Constant, valid addresses.
        ip: ip.parse().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        names: names.iter().map(|n| n.to_string()).collect(),
    };
    let mut entries = vec![
        entry("127.0.0.1", &["localhost"]),
        entry("::1", &["localhost", "ip6-localhost", "ip6-loopback"]),
        entry("fe00::", &["ip6-localnet"]),
        entry("ff00::", &["ip6-mcastprefix"]),
        entry("ff02::1", &["ip6-allnodes"]),
        entry("ff02::2", &["ip6-allrouters"]),
    ];
    if !hostname.is_empty() {
        entries.push(HostsEntry {
            ip: IpAddr::V4(guest_ip),
            names: vec![hostname.to_string()],
        });
    }
    entries
}

/// The file text for a guest's `/etc/hosts`.
pub fn hosts_file(entries: &[HostsEntry]) -> String {
    entries
        .iter()
        .map(|e| format!("{}\t{}\n", e.ip, e.names.join(" ")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_resolv_conf() {
        let conf = parse_resolv_conf(
            "# comment\nnameserver 127.0.0.53\nnameserver 192.0.2.1 # inline\nnameserver ::1\n\
             nameserver fe80::1%eth0\ndomain old.example\nsearch a.example b.example\noptions ndots:2\noptions edns0\n",
        );
        assert_eq!(conf.nameservers.len(), 3);
        assert_eq!(conf.search, ["a.example", "b.example"]);
        assert_eq!(conf.options, ["ndots:2", "edns0"]);
    }

    #[test]
    fn drops_loopback_and_falls_back_like_docker() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("resolv.conf");
        let upstream = dir.path().join("upstream.conf");

        std::fs::write(
            &host,
            "nameserver 127.0.0.53\nnameserver 192.0.2.1\nsearch x.example\n",
        )
        .unwrap();
        let config = DnsConfig::from_files(&host, &upstream);
        assert_eq!(config.nameservers, [Ipv4Addr::new(192, 0, 2, 1)]);
        assert_eq!(
            config.to_resolv_conf(),
            "nameserver 192.0.2.1\nsearch x.example\n"
        );

        // systemd-resolved stub only: its upstream servers.
        std::fs::write(&host, "nameserver 127.0.0.53\noptions edns0\n").unwrap();
        std::fs::write(&upstream, "nameserver 198.51.100.7\n").unwrap();
        let config = DnsConfig::from_files(&host, &upstream);
        assert_eq!(config.nameservers, [Ipv4Addr::new(198, 51, 100, 7)]);
        assert_eq!(config.options, ["edns0"]);

        // Nothing usable anywhere: Google, as Docker does.
        std::fs::remove_file(&upstream).unwrap();
        let config = DnsConfig::from_files(&host, &upstream);
        assert_eq!(config.nameservers, FALLBACK_NAMESERVERS);
    }

    #[test]
    fn hosts_like_docker() {
        let text = hosts_file(&hosts_entries(Ipv4Addr::new(10, 88, 0, 2), "web"));
        assert!(
            text.starts_with("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
        );
        assert!(text.ends_with("10.88.0.2\tweb\n"));
    }
}
