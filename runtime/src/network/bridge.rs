//! Bridges: one per Hull network, holding the gateway address, with the
//! sandboxes' taps as ports.

use super::error::{NetworkError, Result};
use super::names::{check_ifname, MacAddr};
use super::netlink::Netlink;
use super::subnet::Subnet;
use super::sysctl;
use std::net::Ipv4Addr;

/// What a network's bridge looks like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeSpec {
    /// Interface name (`hull0`, `hull-<hex>`).
    pub name: String,
    /// The network's subnet.
    pub subnet: Subnet,
    /// The bridge's own address in it: the guests' gateway.
    pub gateway: Ipv4Addr,
    /// MTU of the bridge and its ports.
    pub mtu: u32,
}

/// Makes sure the bridge exists, is up, holds the gateway address, and lets
/// DNATed localhost traffic through (`route_localnet`). Idempotent: an
/// existing bridge is reused. Returns its index.
pub async fn ensure_bridge(netlink: &Netlink, spec: &BridgeSpec) -> Result<u32> {
    check_ifname(&spec.name)?;
    let index = match netlink.link(&spec.name).await? {
        Some(link) if link.kind.as_deref() == Some("bridge") => link.index,
        // Never take over an interface Hull did not make as a bridge.
        Some(_) => return Err(NetworkError::LinkExists(spec.name.clone())),
        None => {
            // A fixed MAC: a bridge otherwise takes the lowest port MAC,
            // which changes as taps come and go and makes guests' ARP
            // entries for the gateway go stale.
            let mac = MacAddr::derived(&format!("hull-bridge:{}", spec.name));
            let index = netlink.create_bridge(&spec.name, spec.mtu, mac).await?;
            tracing::info!(bridge = %spec.name, subnet = %spec.subnet, "created bridge");
            index
        }
    };
    netlink
        .add_ipv4(index, spec.gateway, spec.subnet.prefix_len())
        .await?;
    netlink.set_up(index).await?;
    sysctl::enable_route_localnet(&spec.name)?;
    Ok(index)
}

/// Deletes bridge `name`; `false` if there was none. Its ports are
/// detached by the kernel, not deleted.
pub async fn delete_bridge(netlink: &Netlink, name: &str) -> Result<bool> {
    let deleted = netlink.delete_link_by_name(name).await?;
    if deleted {
        tracing::info!(bridge = name, "deleted bridge");
    }
    Ok(deleted)
}

/// Makes link `name` (a sandbox's tap, or anything standing in for one) a
/// port of `bridge`, with `mtu`, in hairpin mode, and brings it up.
///
/// Hairpin mode: with `br_netfilter` active (bridge-nf-call-iptables, the
/// default once the module is loaded) a guest connecting to a published
/// port of its own network is DNATed while the frame is still being
/// bridged, and the bridge then sends it back out of the port it came in
/// through, which it only does for hairpin ports (Docker sets it too).
pub async fn attach_port(netlink: &Netlink, name: &str, bridge: &str, mtu: u32) -> Result<()> {
    let bridge = netlink.require_link(bridge).await?;
    let port = netlink.require_link(name).await?;
    netlink.set_mtu(port.index, mtu).await?;
    netlink.set_controller(port.index, bridge.index).await?;
    netlink.set_hairpin(port.index, true).await?;
    netlink.set_up(port.index).await?;
    tracing::debug!(port = name, bridge = %bridge.name, "attached bridge port");
    Ok(())
}
