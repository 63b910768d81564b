//! A sandbox on its network: attaching it (a Hull bridge or a CNI
//! namespace), its `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname`,
//! its peers knowing it by name, `NetworkSettings` as Docker shows them, and
//! letting it all go again, also for a sandbox whose monitor died.

use crate::container::monitor_alive;
use crate::container::{ContainerRecord, ContainerStore};
use crate::hypervisor::NetDevice;
use crate::network::{cni, AttachRequest, Attachment, CniAttachment, NetworkManager};
use crate::sandbox::SandboxPlan;
use anyhow::Result;
use std::path::PathBuf;

/// How a sandbox is plugged into a network.
#[derive(Debug)]
pub enum SandboxNetwork {
    /// A tap on one of Hull's bridges.
    Bridge(Box<Attachment>),
    /// A tap redirected to the interface a CNI plugin left in a namespace
    /// (`--network ns:PATH`).
    Cni(CniAttachment),
}

impl SandboxNetwork {
    /// The guest's address.
    pub fn ip(&self) -> std::net::Ipv4Addr {
        match self {
            SandboxNetwork::Bridge(a) => a.ip,
            SandboxNetwork::Cni(a) => a.ip,
        }
    }

    /// The guest's NIC.
    pub fn nic(&self) -> NetDevice {
        let (tap, mac) = match self {
            SandboxNetwork::Bridge(a) => (a.tap.name(), a.mac),
            SandboxNetwork::Cni(a) => (a.tap.name(), a.mac),
        };
        NetDevice {
            tap: tap.to_string(),
            mac: mac.to_string(),
        }
    }

    /// The kernel arguments configuring the guest's eth0: the kernel's own
    /// `ip=`, and `hull.mtu=` for the agent when the MTU is not Ethernet's.
    pub fn kernel_args(&self, hostname: &str) -> Vec<String> {
        let (ip, mtu) = match self {
            SandboxNetwork::Bridge(a) => (a.kernel_ip_arg(), a.mtu),
            SandboxNetwork::Cni(a) => (a.kernel_ip_arg(hostname), a.mtu),
        };
        let mut args = vec![ip];
        if mtu != 1500 {
            args.push(format!("hull.mtu={mtu}"));
        }
        args
    }

    /// The namespace the VMM must run in to open the tap, if not Hull's.
    pub fn netns(&self) -> Option<PathBuf> {
        match self {
            SandboxNetwork::Bridge(_) => None,
            SandboxNetwork::Cni(a) => Some(a.netns.clone()),
        }
    }
}

/// Attaches the sandbox to its network (none for `--network none`), writes
/// the container's /etc files and records its network settings as Docker
/// shows them. A port already taken fails here, before anything runs.
pub async fn attach_network(
    store: &ContainerStore,
    network: &NetworkManager,
    record: &mut ContainerRecord,
    plan: &SandboxPlan,
) -> Result<Option<SandboxNetwork>> {
    let attachment = match cni::netns_of_mode(&plan.network) {
        Some(netns) => {
            let tap = crate::network::names::tap_name(&record.id);
            // A tap the container's last (killed) monitor left would be in the way.
            cni::remove_leftovers(netns, &tap).await?;
            let mut attachment = cni::prepare(netns, &tap, None).await?;
            // The VMM opens the tap by name in the namespace; a second open fails while we hold it.
            attachment.tap.close_fd();
            Some(SandboxNetwork::Cni(attachment))
        }
        None => {
            let mut request = AttachRequest::new(&record.id);
            request.network = plan.network.clone();
            request.ip = plan.ip;
            request.hostname = record.config.hostname.clone();
            for publish in &plan.publish {
                request
                    .publish
                    .extend(crate::network::parse_publish(publish)?);
            }
            network.attach(&request).await?.map(|mut attachment| {
                attachment.tap.close_fd();
                SandboxNetwork::Bridge(Box::new(attachment))
            })
        }
    };
    let etc = store.dir_of(&record.id);
    let hostname = &record.config.hostname;
    let own_names = names_on_network(record, &plan.aliases);
    let (hosts, resolv) = match &attachment {
        Some(network) => {
            let ip = network.ip();
            let mut entries = crate::network::dns::hosts_entries(ip, hostname);
            if let Some(own) = entries.iter_mut().find(|e| e.ip == std::net::IpAddr::V4(ip)) {
                own.names = own_names.clone();
            }
            let dns = match network {
                // Peers on a Hull network know each other by name.
                SandboxNetwork::Bridge(a) => {
                    entries.extend(introduce_to_peers(store, record, &plan.network, ip, &own_names));
                    a.dns.clone()
                }
                SandboxNetwork::Cni(_) => crate::network::DnsConfig::from_host(),
            };
            (crate::network::dns::hosts_file(&entries), dns.to_resolv_conf())
        }
        None => (
            format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"),
            String::new(),
        ),
    };
    let (hosts, resolv) = with_etc_options(hosts, &resolv, &record.host_config);
    crate::container::write_atomic(&etc.join("hosts"), hosts.as_bytes())?;
    crate::container::write_atomic(&etc.join("resolv.conf"), resolv.as_bytes())?;
    crate::container::write_atomic(&etc.join("hostname"), format!("{hostname}\n").as_bytes())?;
    record.network_settings = network_settings(attachment.as_ref(), &plan.network);
    store.save(record)?;
    Ok(attachment)
}

/// The names a container answers to on its network: hostname, name, aliases.
fn names_on_network(record: &ContainerRecord, aliases: &[String]) -> Vec<String> {
    let mut names = vec![
        record.config.hostname.clone(),
        record.short_name().to_string(),
    ];
    names.extend(aliases.iter().cloned());
    names.dedup();
    names.retain(|n| !n.is_empty());
    names
}

/// The running containers on `network` other than `record`, with their addresses.
fn peers_on(
    store: &ContainerStore,
    record: &ContainerRecord,
    network: &str,
) -> Vec<(ContainerRecord, std::net::Ipv4Addr)> {
    store
        .list()
        .unwrap_or_default()
        .into_iter()
        .filter(|peer| {
            peer.id != record.id
                && peer.state.running
                && monitor_alive(peer.hull_sandbox.monitor_pid)
        })
        .filter_map(|peer| Some((address_on(&peer, network)?, peer)))
        .map(|(ip, peer)| (peer, ip))
        .collect()
}

/// A container's address on `network`, as its `NetworkSettings` say.
fn address_on(record: &ContainerRecord, network: &str) -> Option<std::net::Ipv4Addr> {
    record
        .network_settings
        .get("Networks")?
        .get(network)?
        .get("IPAddress")?
        .as_str()?
        .parse()
        .ok()
}

/// Containers on the same network reach each other by name: each running
/// peer's /etc/hosts gets a line for this container (appended in place: the
/// container bind-mounts that very file), and the peers' lines are returned
/// for this container's own.
fn introduce_to_peers(
    store: &ContainerStore,
    record: &ContainerRecord,
    network: &str,
    ip: std::net::Ipv4Addr,
    names: &[String],
) -> Vec<crate::network::HostsEntry> {
    use std::io::Write;
    let line = format!("{ip}\t{}\n", names.join(" "));
    peers_on(store, record, network)
        .into_iter()
        .map(|(peer, peer_ip)| {
            let hosts = store.dir_of(&peer.id).join("hosts");
            let appended = std::fs::OpenOptions::new()
                .append(true)
                .open(&hosts)
                .and_then(|mut f| f.write_all(line.as_bytes()));
            if let Err(err) = appended {
                tracing::warn!(
                    "adding {} to {}: {err}",
                    record.short_name(),
                    hosts.display()
                );
            }
            crate::network::HostsEntry {
                ip: std::net::IpAddr::V4(peer_ip),
                names: names_on_network(&peer, &[]),
            }
        })
        .collect()
}

/// Takes this container's line out of its running peers' /etc/hosts, in place.
fn forget_in_peers(
    store: &ContainerStore,
    record: &ContainerRecord,
    network: &str,
    ip: std::net::Ipv4Addr,
) {
    let prefix = format!("{ip}\t");
    for (peer, _) in peers_on(store, record, network) {
        let hosts = store.dir_of(&peer.id).join("hosts");
        if let Ok(text) = std::fs::read_to_string(&hosts) {
            let kept: String = text
                .lines()
                .filter(|l| !l.starts_with(&prefix))
                .map(|l| format!("{l}\n"))
                .collect();
            // Truncate and rewrite the same file: a rename would leave the peer's bind mount on the old one.
            if let Err(err) = std::fs::write(&hosts, kept) {
                tracing::warn!("updating {}: {err}", hosts.display());
            }
        }
    }
}

/// `NetworkSettings` as `docker inspect` shows it.
fn network_settings(attachment: Option<&SandboxNetwork>, mode: &str) -> serde_json::Value {
    let a = match attachment {
        None => {
            return serde_json::json!({ "IPAddress": "", "Ports": {}, "Networks": { mode: {} } })
        }
        Some(SandboxNetwork::Cni(a)) => {
            let gateway = a.gateway.map(|g| g.to_string()).unwrap_or_default();
            let endpoint = serde_json::json!({
                "Gateway": gateway,
                "IPAddress": a.ip.to_string(),
                "IPPrefixLen": a.prefix_len,
                "MacAddress": a.mac.to_string(),
            });
            return serde_json::json!({
                "SandboxKey": a.netns.display().to_string(),
                "Gateway": gateway,
                "IPAddress": a.ip.to_string(),
                "IPPrefixLen": a.prefix_len,
                "MacAddress": a.mac.to_string(),
                "Ports": {},
                "Networks": { mode: endpoint },
            });
        }
        Some(SandboxNetwork::Bridge(a)) => a,
    };
    let mut ports = serde_json::Map::new();
    for port in &a.ports {
        let key = format!("{}/{}", port.container_port, port.protocol);
        let binding = serde_json::json!({ "HostIp": port.host_ip.to_string(), "HostPort": port.host_port.to_string() });
        match ports.get_mut(&key).and_then(|v| v.as_array_mut()) {
            Some(list) => list.push(binding),
            None => {
                ports.insert(key, serde_json::json!([binding]));
            }
        }
    }
    let endpoint = serde_json::json!({
        "NetworkID": a.network.id,
        "Gateway": a.gateway.to_string(),
        "IPAddress": a.ip.to_string(),
        "IPPrefixLen": a.prefix_len,
        "MacAddress": a.mac.to_string(),
    });
    serde_json::json!({
        "Bridge": a.network.bridge,
        "Gateway": a.gateway.to_string(),
        "IPAddress": a.ip.to_string(),
        "IPPrefixLen": a.prefix_len,
        "MacAddress": a.mac.to_string(),
        "Ports": ports,
        "Networks": { a.network.name.clone(): endpoint },
    })
}

/// Takes a sandbox off its network when its monitor is done: its peers
/// forget its name, and its tap, lease, ports and rules (or its CNI tap and
/// redirects) go. Failures are logged: the container's exit matters more.
pub async fn release_network(
    store: &ContainerStore,
    network: &NetworkManager,
    record: &ContainerRecord,
    plan: &SandboxPlan,
    attachment: Option<&SandboxNetwork>,
) {
    let id = &record.id;
    match attachment {
        Some(SandboxNetwork::Bridge(a)) => {
            forget_in_peers(store, record, &plan.network, a.ip);
            if let Err(err) = network.detach(id).await {
                tracing::warn!("releasing the network of {}: {err}", &id[..12]);
            }
        }
        Some(SandboxNetwork::Cni(a)) => {
            if let Err(err) = cni::teardown(&a.netns, a.tap.name(), &a.interface).await {
                tracing::warn!("releasing the network of {}: {err}", &id[..12]);
            }
        }
        None => {}
    }
}

/// Removes what a container whose monitor died left on its network (`hull
/// rm` after `kill -9` of the monitor): on a Hull network, every lease whose
/// holder is gone with its tap, ports and rules; in CNI mode, its tap and
/// redirects in the plugin's namespace. Call it only when no monitor of the
/// container runs.
pub async fn remove_leftovers(
    store: &ContainerStore,
    record: &ContainerRecord,
    plan: &SandboxPlan,
    network: &NetworkManager,
) -> Result<()> {
    if plan.joins.is_some() {
        return Ok(()); // on the network of the sandbox it joined
    }
    match cni::netns_of_mode(&plan.network) {
        Some(netns) => {
            cni::remove_leftovers(netns, &crate::network::names::tap_name(&record.id)).await?
        }
        None if plan.network == crate::network::NONE_NETWORK => {}
        None => {
            network.cleanup_stale().await?;
            if let Some(ip) = address_on(record, &plan.network) {
                forget_in_peers(store, record, &plan.network, ip);
            }
        }
    }
    Ok(())
}
/// The /etc/hosts and resolv.conf texts with `--add-host` lines appended,
/// and `--dns`, `--dns-search` and `--dns-option` replacing what the
/// network gave, each on its own, as Docker does.
fn with_etc_options(
    mut hosts: String,
    resolv: &str,
    host: &crate::container::HostConfig,
) -> (String, String) {
    for entry in &host.extra_hosts {
        if let Some((name, ip)) = entry.split_once(':') {
            hosts.push_str(&format!("{ip}\t{name}\n"));
        }
    }
    if host.dns.is_empty() && host.dns_search.is_empty() && host.dns_options.is_empty() {
        return (hosts, resolv.to_string());
    }
    let network = crate::network::dns::parse_resolv_conf(resolv);
    let nameservers: Vec<String> = if host.dns.is_empty() {
        network
            .nameservers
            .iter()
            .map(ToString::to_string)
            .collect()
    } else {
        host.dns.clone()
    };
    let search = if host.dns_search.is_empty() {
        network.search
    } else {
        host.dns_search.clone()
    };
    let options = if host.dns_options.is_empty() {
        network.options
    } else {
        host.dns_options.clone()
    };
    let mut text = String::new();
    for server in nameservers {
        text.push_str(&format!("nameserver {server}\n"));
    }
    if !search.is_empty() {
        text.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        text.push_str(&format!("options {}\n", options.join(" ")));
    }
    (hosts, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etc_options_add_hosts_and_replace_resolvers() {
        let host = crate::container::HostConfig {
            extra_hosts: vec!["db:10.1.2.3".into()],
            dns: vec!["10.0.0.53".into()],
            dns_options: vec!["ndots:3".into()],
            ..Default::default()
        };
        let (hosts, resolv) = with_etc_options(
            "127.0.0.1\tlocalhost\n".into(),
            "nameserver 8.8.8.8\nsearch corp\noptions edns0\n",
            &host,
        );
        assert_eq!(hosts, "127.0.0.1\tlocalhost\n10.1.2.3\tdb\n");
        assert_eq!(
            resolv,
            "nameserver 10.0.0.53\nsearch corp\noptions ndots:3\n"
        );
        let plain = crate::container::HostConfig::default();
        let (_, same) = with_etc_options(String::new(), "nameserver 8.8.8.8\n", &plain);
        assert_eq!(same, "nameserver 8.8.8.8\n");
    }
}
