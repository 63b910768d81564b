//! Hull's nftables rules: egress masquerade, published-port DNAT, isolation
//! between networks, and keeping guests off host services.
//!
//! Everything lives in one table, `table ip hull`, which Hull owns outright:
//! it is always rendered whole from the persisted state ([`Ruleset`]) and
//! swapped in with one `nft -f -` transaction (`add table; delete table;
//! table {…}`), so there is never a half-updated table, rules of dead
//! containers disappear by simply not being rendered, and removing Hull's
//! rules is `delete table ip hull`, touching nothing of anyone else.
//!
//! Chains (policy accept everywhere: Hull only adds restrictions on its own
//! bridges and never changes what happens to other traffic):
//! * `prerouting`/`output` (nat): traffic to a local address jumps to
//!   `published`, which DNATs published host ports to guests. `output`
//!   covers connections from the host itself, including to 127.0.0.1 (made
//!   routable by `route_localnet` on the bridges).
//! * `postrouting` (nat): masquerade guest traffic leaving through a
//!   non-bridge interface; masquerade DNATed traffic from 127.0.0.0/8 and
//!   hairpin traffic (a guest reaching a published port on its own network)
//!   so replies come back through the host.
//! * `forward` (filter): established/related and DNATed traffic is
//!   accepted; traffic within one bridge is accepted; between two Hull
//!   bridges it is dropped (isolation); anything else towards a bridge
//!   (unsolicited inbound) is dropped; guests' egress passes.
//! * `input` (filter): from a bridge, only replies and ICMP reach the host;
//!   host services are not reachable from guests except through published
//!   ports (which are DNATed before `input`). This covers every host
//!   address, not just the bridge's: a nameserver listening on one of the
//!   host's own non-loopback addresses is not reachable from guests either.
//!
//! IPv4 only: guests get no IPv6 address, and Hull adds no `ip6` rules.

use super::error::Result;
use super::ports::{PortReservation, Protocol};
use super::subnet::Subnet;
use super::tool;
use std::fmt::Write;

/// The nftables family and name of Hull's table.
pub const TABLE: &str = "ip hull";

/// The state the table is rendered from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// Every Hull network: its bridge and subnet.
    pub networks: Vec<NetworkRules>,
    /// Every published port.
    pub ports: Vec<PortReservation>,
}

/// One network as the rules see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkRules {
    /// The bridge interface.
    pub bridge: String,
    /// The subnet behind it.
    pub subnet: Subnet,
}

/// The nft script replacing Hull's table with `ruleset` (or just removing it
/// when there is no network).
pub fn render(ruleset: &Ruleset) -> String {
    // `add` first so that `delete` cannot fail on a missing table.
    let mut out = format!("add table {TABLE}\ndelete table {TABLE}\n");
    if ruleset.networks.is_empty() {
        return out;
    }
    let bridges = ruleset
        .networks
        .iter()
        .map(|n| quote(&n.bridge))
        .collect::<Vec<_>>()
        .join(", ");
    let all = format!("{{ {bridges} }}");

    // `write!` to a String cannot fail; the results are ignored below.
    let _ = writeln!(out, "table {TABLE} {{");

    let _ = writeln!(out, "  chain prerouting {{");
    let _ = writeln!(
        out,
        "    type nat hook prerouting priority dstnat; policy accept;"
    );
    let _ = writeln!(out, "    fib daddr type local jump published");
    let _ = writeln!(out, "  }}");
    let _ = writeln!(out, "  chain output {{");
    // `dstnat` is a prerouting-only keyword; -100 is the same priority.
    let _ = writeln!(
        out,
        "    type nat hook output priority -100; policy accept;"
    );
    let _ = writeln!(out, "    fib daddr type local jump published");
    let _ = writeln!(out, "  }}");

    let _ = writeln!(out, "  chain published {{");
    for reservation in &ruleset.ports {
        let port = &reservation.port;
        let daddr = if port.host_ip.is_unspecified() {
            String::new()
        } else {
            format!("ip daddr {} ", port.host_ip)
        };
        let proto = match port.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        };
        let _ = writeln!(
            out,
            "    {daddr}{proto} dport {} dnat to {}:{} comment {}",
            port.host_port,
            reservation.guest_ip,
            port.container_port,
            quote(&format!("hull:{}", reservation.owner)),
        );
    }
    let _ = writeln!(out, "  }}");

    let _ = writeln!(out, "  chain postrouting {{");
    let _ = writeln!(
        out,
        "    type nat hook postrouting priority srcnat; policy accept;"
    );
    for network in &ruleset.networks {
        let (bridge, subnet) = (quote(&network.bridge), network.subnet);
        let _ = writeln!(out, "    oifname {bridge} ip saddr 127.0.0.0/8 masquerade");
        let _ = writeln!(
            out,
            "    oifname {bridge} ip saddr {subnet} ct status dnat masquerade"
        );
        let _ = writeln!(out, "    ip saddr {subnet} oifname != {all} masquerade");
    }
    let _ = writeln!(out, "  }}");

    let _ = writeln!(out, "  chain forward {{");
    let _ = writeln!(
        out,
        "    type filter hook forward priority filter; policy accept;"
    );
    let _ = writeln!(out, "    ct state established,related accept");
    let _ = writeln!(out, "    oifname {all} ct status dnat accept");
    for network in &ruleset.networks {
        let bridge = quote(&network.bridge);
        let _ = writeln!(out, "    iifname {bridge} oifname {bridge} accept");
    }
    let _ = writeln!(out, "    iifname {all} oifname {all} drop");
    let _ = writeln!(out, "    oifname {all} drop");
    let _ = writeln!(out, "    iifname {all} accept");
    let _ = writeln!(out, "  }}");

    let _ = writeln!(out, "  chain input {{");
    let _ = writeln!(
        out,
        "    type filter hook input priority filter; policy accept;"
    );
    let _ = writeln!(out, "    iifname {all} ct state established,related accept");
    let _ = writeln!(out, "    iifname {all} meta l4proto icmp accept");
    let _ = writeln!(out, "    iifname {all} drop");
    let _ = writeln!(out, "  }}");

    let _ = writeln!(out, "}}");
    out
}

/// A double-quoted nft string. Interface names and ids are checked to hold
/// no quotes already; anything odd is replaced rather than escaped.
fn quote(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.:".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("\"{clean}\"")
}

/// Replaces Hull's table with `ruleset`, atomically; an empty ruleset
/// removes the table.
pub fn apply(ruleset: &Ruleset) -> Result<()> {
    let script = render(ruleset);
    tool::run("nft", "nftables", &["-f", "-"], Some(&script))?;
    tracing::debug!(
        networks = ruleset.networks.len(),
        ports = ruleset.ports.len(),
        "applied nftables table {TABLE}"
    );
    Ok(())
}

/// Removes Hull's table, if there is one.
pub fn remove_table() -> Result<()> {
    apply(&Ruleset::default())
}

/// Whether Hull's table exists.
pub fn table_exists() -> Result<bool> {
    let tables = tool::run("nft", "nftables", &["list", "tables", "ip"], None)?;
    Ok(tables
        .lines()
        .any(|line| line.trim() == format!("table {TABLE}")))
}

/// Hull's table as `nft list` shows it (empty if there is none), for
/// diagnostics and tests.
pub fn list_table() -> Result<String> {
    if !table_exists()? {
        return Ok(String::new());
    }
    tool::run("nft", "nftables", &["list", "table", "ip", "hull"], None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::ports::PublishedPort;
    use std::net::Ipv4Addr;

    fn sample() -> Ruleset {
        Ruleset {
            networks: vec![
                NetworkRules {
                    bridge: "hull0".into(),
                    subnet: "10.88.0.0/16".parse().unwrap(),
                },
                NetworkRules {
                    bridge: "hull-0123456789".into(),
                    subnet: "10.89.0.0/24".parse().unwrap(),
                },
            ],
            ports: vec![PortReservation {
                owner: "abc".into(),
                network: "bridge".into(),
                guest_ip: Ipv4Addr::new(10, 88, 0, 2),
                port: PublishedPort {
                    host_ip: Ipv4Addr::new(127, 0, 0, 1),
                    host_port: 8080,
                    container_port: 80,
                    protocol: Protocol::Tcp,
                },
            }],
        }
    }

    #[test]
    fn renders_port_and_network_rules() {
        let text = render(&sample());
        assert!(text.starts_with("add table ip hull\ndelete table ip hull\ntable ip hull {"));
        assert!(text.contains(
            "ip daddr 127.0.0.1 tcp dport 8080 dnat to 10.88.0.2:80 comment \"hull:abc\""
        ));
        assert!(text.contains(
            "ip saddr 10.89.0.0/24 oifname != { \"hull0\", \"hull-0123456789\" } masquerade"
        ));
        assert!(text.contains("iifname { \"hull0\", \"hull-0123456789\" } oifname { \"hull0\", \"hull-0123456789\" } drop"));
        // Accepts for DNAT and same-bridge traffic come before the drops.
        let dnat = text.find("ct status dnat accept").unwrap();
        let same = text
            .find("iifname \"hull0\" oifname \"hull0\" accept")
            .unwrap();
        let isolation = text
            .find("oifname { \"hull0\", \"hull-0123456789\" } drop")
            .unwrap();
        assert!(dnat < isolation && same < isolation);
    }

    #[test]
    fn empty_ruleset_only_removes() {
        assert_eq!(
            render(&Ruleset::default()),
            "add table ip hull\ndelete table ip hull\n"
        );
    }

    #[test]
    fn quoting_cannot_break_out() {
        assert_eq!(quote("a\" ; drop"), "\"a____drop\"");
    }
}
