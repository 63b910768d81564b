//! A small, typed layer over `rtnetlink`: the link, address and route
//! operations Hull needs, nothing else.
//!
//! A [`Netlink`] talks to the network namespace of the thread that called
//! [`Netlink::connect`] (the socket is bound to it at creation), wherever its
//! futures are polled afterwards.

use super::error::{NetworkError, Result};
use super::names::MacAddr;
use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteType,
};
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkUnspec, RouteMessageBuilder};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, BorrowedFd};
use tokio::task::JoinHandle;

/// A link (network interface) as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Hardware address, for Ethernet-like links.
    pub mac: Option<MacAddr>,
    /// MTU in bytes.
    pub mtu: u32,
    /// Driver kind (`bridge`, `veth`, `tun`, …), when the kernel says.
    pub kind: Option<String>,
    /// Index of the bridge this link is a port of.
    pub controller: Option<u32>,
    /// Whether it is administratively up.
    pub up: bool,
}

/// An IPv4 address on a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkAddress {
    /// Interface index.
    pub index: u32,
    /// The address.
    pub ip: Ipv4Addr,
    /// Its prefix length.
    pub prefix_len: u8,
}

/// An IPv4 route of the main table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// Destination network (0.0.0.0 for the default route).
    pub destination: Ipv4Addr,
    /// Destination prefix length (0 for the default route).
    pub prefix_len: u8,
    /// Next hop, for routes via a gateway.
    pub gateway: Option<Ipv4Addr>,
    /// Output interface index.
    pub oif: Option<u32>,
}

/// A netlink connection to the calling thread's network namespace.
pub struct Netlink {
    handle: Handle,
    connection: JoinHandle<()>,
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl Netlink {
    /// Opens a route netlink socket in the current thread's network
    /// namespace. Must be called inside a tokio runtime (the connection is
    /// driven by a spawned task).
    pub fn connect() -> Result<Self> {
        let (connection, handle, _) = rtnetlink::new_connection()
            .map_err(|e| NetworkError::io("opening a netlink socket", e))?;
        let connection = tokio::spawn(connection);
        Ok(Self { handle, connection })
    }

    /// The link called `name`, if there is one.
    pub async fn link(&self, name: &str) -> Result<Option<Link>> {
        let mut request = self.handle.link().get().match_name(name).execute();
        match request.try_next().await {
            Ok(message) => Ok(message.map(|m| link_from_message(&m))),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(NetworkError::netlink(format!("looking up link {name}"), e)),
        }
    }

    /// The link called `name`; an error if there is none.
    pub async fn require_link(&self, name: &str) -> Result<Link> {
        self.link(name)
            .await?
            .ok_or_else(|| NetworkError::LinkNotFound(name.to_string()))
    }

    /// Every link of the namespace.
    pub async fn links(&self) -> Result<Vec<Link>> {
        let messages: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|e| NetworkError::netlink("listing links", e))?;
        Ok(messages.iter().map(link_from_message).collect())
    }

    /// Creates bridge `name` with a fixed MAC (so that it does not change as
    /// ports come and go) and `mtu`, and brings it up. Returns its index.
    pub async fn create_bridge(&self, name: &str, mtu: u32, mac: MacAddr) -> Result<u32> {
        let message = LinkBridge::new(name)
            .mtu(mtu)
            .address(mac.0.to_vec())
            .build();
        self.handle
            .link()
            .add(message)
            .execute()
            .await
            .map_err(|e| NetworkError::netlink(format!("creating bridge {name}"), e))?;
        Ok(self.require_link(name).await?.index)
    }

    /// Brings link `index` up.
    pub async fn set_up(&self, index: u32) -> Result<()> {
        self.set(
            LinkUnspec::new_with_index(index).up().build(),
            "bringing up",
            index,
        )
        .await
    }

    /// Sets the MTU of link `index`.
    pub async fn set_mtu(&self, index: u32, mtu: u32) -> Result<()> {
        self.set(
            LinkUnspec::new_with_index(index).mtu(mtu).build(),
            "setting the MTU of",
            index,
        )
        .await
    }

    /// Makes link `index` a port of bridge `bridge_index`.
    pub async fn set_controller(&self, index: u32, bridge_index: u32) -> Result<()> {
        let message = LinkUnspec::new_with_index(index)
            .controller(bridge_index)
            .build();
        self.set(message, "attaching to its bridge", index).await
    }

    /// Turns hairpin mode of bridge port `index` on or off.
    pub async fn set_hairpin(&self, index: u32, on: bool) -> Result<()> {
        let message = LinkBridgePort::new(index).hairpin(on).build();
        self.handle
            .link()
            .set_port(message)
            .execute()
            .await
            .map_err(|e| NetworkError::netlink(format!("setting hairpin mode of link {index}"), e))
    }

    /// Moves link `index` into the network namespace `netns`.
    pub async fn move_to_netns(&self, index: u32, netns: BorrowedFd<'_>) -> Result<()> {
        let message = LinkUnspec::new_with_index(index)
            .setns_by_fd(netns.as_raw_fd())
            .build();
        self.set(message, "moving to another namespace", index)
            .await
    }

    async fn set(&self, message: LinkMessage, what: &str, index: u32) -> Result<()> {
        self.handle
            .link()
            .set(message)
            .execute()
            .await
            .map_err(|e| NetworkError::netlink(format!("{what} link {index}"), e))
    }

    /// Deletes link `index`.
    pub async fn delete_link(&self, index: u32) -> Result<()> {
        self.handle
            .link()
            .del(index)
            .execute()
            .await
            .map_err(|e| NetworkError::netlink(format!("deleting link {index}"), e))
    }

    /// Deletes the link called `name`; `false` if there was none.
    pub async fn delete_link_by_name(&self, name: &str) -> Result<bool> {
        let Some(link) = self.link(name).await? else {
            return Ok(false);
        };
        match self.delete_link(link.index).await {
            Ok(()) => Ok(true),
            // Gone in between (another hull process cleaning up): fine.
            Err(NetworkError::Netlink { source, .. }) if errno(&source) == Some(libc::ENODEV) => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Adds `ip/prefix_len` to link `index`; already present is fine.
    pub async fn add_ipv4(&self, index: u32, ip: Ipv4Addr, prefix_len: u8) -> Result<()> {
        let result = self
            .handle
            .address()
            .add(index, IpAddr::V4(ip), prefix_len)
            .execute()
            .await;
        match result {
            Err(e) if errno(&e) != Some(libc::EEXIST) => Err(NetworkError::netlink(
                format!("adding {ip}/{prefix_len} to link {index}"),
                e,
            )),
            _ => Ok(()),
        }
    }

    /// The IPv4 addresses of link `index`, or of every link.
    pub async fn ipv4_addresses(&self, index: Option<u32>) -> Result<Vec<LinkAddress>> {
        let mut request = self.handle.address().get();
        if let Some(index) = index {
            request = request.set_link_index_filter(index);
        }
        let messages: Vec<_> = request
            .execute()
            .try_collect()
            .await
            .map_err(|e| NetworkError::netlink("listing addresses", e))?;
        Ok(messages
            .iter()
            .filter(|m| index.is_none_or(|i| m.header.index == i))
            .filter_map(|m| {
                let ip = m.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Local(IpAddr::V4(ip))
                    | AddressAttribute::Address(IpAddr::V4(ip)) => Some(*ip),
                    _ => None,
                })?;
                Some(LinkAddress {
                    index: m.header.index,
                    ip,
                    prefix_len: m.header.prefix_len,
                })
            })
            .collect())
    }

    /// The unicast IPv4 routes of the main table.
    pub async fn ipv4_routes(&self) -> Result<Vec<Route>> {
        let query = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let messages: Vec<RouteMessage> = self
            .handle
            .route()
            .get(query)
            .execute()
            .try_collect()
            .await
            .map_err(|e| NetworkError::netlink("listing routes", e))?;
        Ok(messages
            .iter()
            .filter(|m| {
                m.header.table == RouteHeader::RT_TABLE_MAIN && m.header.kind == RouteType::Unicast
            })
            .map(route_from_message)
            .collect())
    }
}

fn link_from_message(message: &LinkMessage) -> Link {
    let mut link = Link {
        index: message.header.index,
        name: String::new(),
        mac: None,
        mtu: 0,
        kind: None,
        controller: None,
        up: message.header.flags.contains(LinkFlags::Up),
    };
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(name) => link.name.clone_from(name),
            LinkAttribute::Address(bytes) => link.mac = MacAddr::from_slice(bytes),
            LinkAttribute::Mtu(mtu) => link.mtu = *mtu,
            LinkAttribute::Controller(index) => link.controller = Some(*index),
            LinkAttribute::LinkInfo(infos) => {
                link.kind = infos.iter().find_map(|info| match info {
                    LinkInfo::Kind(kind) => Some(kind.to_string()),
                    _ => None,
                });
            }
            _ => {}
        }
    }
    link
}

fn route_from_message(message: &RouteMessage) -> Route {
    let mut route = Route {
        destination: Ipv4Addr::UNSPECIFIED,
        prefix_len: message.header.destination_prefix_length,
        gateway: None,
        oif: None,
    };
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Destination(RouteAddress::Inet(ip)) => route.destination = *ip,
            RouteAttribute::Gateway(RouteAddress::Inet(ip)) => route.gateway = Some(*ip),
            RouteAttribute::Oif(index) => route.oif = Some(*index),
            _ => {}
        }
    }
    route
}

/// The errno of a netlink error answer, if it is one.
pub(crate) fn errno(error: &rtnetlink::Error) -> Option<i32> {
    match error {
        rtnetlink::Error::NetlinkError(message) => message.code.map(|code| -code.get()),
        _ => None,
    }
}
