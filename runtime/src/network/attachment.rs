//! What attaching a sandbox to a network asks for and gives back.

use super::dns::{DnsConfig, HostsEntry};
use super::names::MacAddr;
use super::ports::{HeldPort, PortMapping, PublishedPort};
use super::store::{Network, DEFAULT_NETWORK};
use super::tap::{Tap, TapOptions};
use crate::process::ProcessIdentity;
use std::net::Ipv4Addr;

/// A request to put a sandbox on a network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachRequest {
    /// The sandbox id (owner of the lease, the ports and the tap).
    pub sandbox_id: String,
    /// `bridge` (default), `none`, or a user-defined network's name or id.
    pub network: String,
    /// `--ip`: a specific address instead of the next free one.
    pub ip: Option<Ipv4Addr>,
    /// `-p` mappings, already parsed ([`super::ports::parse_publish`]).
    pub publish: Vec<PortMapping>,
    /// The container's hostname, for its `/etc/hosts` line.
    pub hostname: String,
    /// How the tap is made.
    pub tap: TapOptions,
    /// The process that holds the attachment for the sandbox (its
    /// monitor): once it is gone, the lease, ports and tap are stale and
    /// the next attach or [`super::NetworkManager::cleanup_stale`] removes
    /// them. The calling process unless set.
    pub holder: ProcessIdentity,
}

impl AttachRequest {
    /// A request for the default network with no ports.
    pub fn new(sandbox_id: &str) -> Self {
        Self {
            sandbox_id: sandbox_id.to_string(),
            network: DEFAULT_NETWORK.to_string(),
            ip: None,
            publish: Vec::new(),
            hostname: String::new(),
            tap: TapOptions::default(),
            holder: ProcessIdentity::current(),
        }
    }
}

/// A sandbox's place on a network: everything the VMM and the guest need.
///
/// Keep it for the sandbox's lifetime, in the process that lives as long as
/// the container (e.g. its monitor): it holds the published host ports
/// ([`HeldPort`]) and, unless taken or closed, the tap's descriptor.
/// Dropping it does not undo the attachment; `NetworkManager::detach` does
/// (or the next attach or `cleanup_stale` once the holder process is gone).
#[derive(Debug)]
pub struct Attachment {
    /// The sandbox.
    pub sandbox_id: String,
    /// The network.
    pub network: Network,
    /// The host end of the guest's NIC, a port of the network's bridge.
    pub tap: Tap,
    /// The guest NIC's MAC (locally administered, derived from the sandbox id).
    pub mac: MacAddr,
    /// The guest's address.
    pub ip: Ipv4Addr,
    /// Its prefix length.
    pub prefix_len: u8,
    /// The default gateway (the bridge's address).
    pub gateway: Ipv4Addr,
    /// The MTU the guest interface must use.
    pub mtu: u32,
    /// The guest's resolver configuration.
    pub dns: DnsConfig,
    /// The guest's `/etc/hosts` entries.
    pub hosts: Vec<HostsEntry>,
    /// Published ports with their host ports decided.
    pub ports: Vec<PublishedPort>,
    /// Host sockets holding the published ports.
    pub held_ports: Vec<HeldPort>,
}

impl Attachment {
    /// The guest's netmask, e.g. 255.255.0.0.
    pub fn netmask(&self) -> Ipv4Addr {
        self.network.subnet.netmask()
    }

    /// The kernel's own `ip=` parameter for guests configured by the kernel
    /// (CONFIG_IP_PNP): `ip=<ip>::<gw>:<mask>:<hostname>:eth0:off`. The
    /// MTU and DNS still have to be set by the agent.
    pub fn kernel_ip_arg(&self) -> String {
        let hostname = self
            .hosts
            .iter()
            .find(|entry| entry.ip == self.ip)
            .and_then(|entry| entry.names.first())
            .cloned()
            .unwrap_or_default();
        kernel_ip_arg(self.ip, Some(self.gateway), self.prefix_len, &hostname)
    }
}

/// The kernel's `ip=` parameter (CONFIG_IP_PNP) for a guest's eth0:
/// `ip=<ip>::<gateway>:<netmask>:<hostname>:eth0:off`.
pub fn kernel_ip_arg(
    ip: Ipv4Addr,
    gateway: Option<Ipv4Addr>,
    prefix_len: u8,
    hostname: &str,
) -> String {
    let netmask = Ipv4Addr::from(super::subnet::mask(prefix_len));
    let gateway = gateway.map(|g| g.to_string()).unwrap_or_default();
    format!("ip={ip}::{gateway}:{netmask}:{hostname}:eth0:off")
}
