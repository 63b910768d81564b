//! Host-side networking for sandboxes: bridges, taps, address leases,
//! NAT, published ports, and CNI-prepared namespaces.
//!
//! # Model
//!
//! Each Hull network is a Linux bridge holding the gateway address
//! (default network `bridge`: bridge `hull0`, 10.88.0.0/16, gateway
//! 10.88.0.1; user-defined networks: `hull-<10 hex>`, a /24 of
//! 10.89.0.0/16). Each sandbox gets one persistent tap (`hulltap<8 hex of
//! its id>`) on its network's bridge; the VMM backs the guest's virtio-net
//! NIC with it. Guests have static addresses (no DHCP): the integrator
//! hands [`Attachment::ip`], prefix, gateway, MTU, MAC and DNS to the guest
//! agent. Egress is masqueraded, published ports are DNATed, networks are
//! isolated from each other and guests cannot reach host services; see
//! [`nat`] for the rules, all in Hull's own nftables table `ip hull`.
//!
//! # Use
//!
//! ```no_run
//! # async fn demo() -> Result<(), hull_runtime::network::NetworkError> {
//! use hull_runtime::network::{parse_publish, AttachRequest, NetworkManager};
//! let manager = NetworkManager::new("/var/lib/hull/network");
//! let mut request = AttachRequest::new("4f1c…sandbox id…");
//! request.publish = parse_publish("8080:80")?;
//! request.hostname = "web".into();
//! if let Some(mut attachment) = manager.attach(&request).await? {
//!     attachment.tap.close_fd(); // the VMM opens the tap by name
//!     let kernel_arg = attachment.kernel_ip_arg(); // the guest's eth0
//!     // … run the VM with a NIC on `attachment.tap`; keep `attachment`
//!     // alive (it holds the host ports) …
//!     manager.detach(&attachment.sandbox_id).await?;
//! }
//! # Ok(()) }
//! ```
//!
//! Each lease records the process holding it (the sandbox's monitor,
//! [`AttachRequest::holder`]). What a killed holder left (lease, ports,
//! tap, rules) is removed under the global lock by the next attach, or by
//! [`NetworkManager::cleanup_stale`].
//!
//! Everything acts on the network namespace of the calling thread (netlink
//! sockets, `/dev/net/tun`, `/proc/sys/net` and the `nft`/`tc` child
//! processes all follow it), which is what lets the tests run in private
//! namespaces.

pub mod attachment;
pub mod bridge;
pub mod cni;
pub mod dns;
pub mod error;
pub mod ipam;
pub mod manager;
pub mod names;
pub mod nat;
pub mod netlink;
pub mod ports;
pub mod state;
pub mod store;
pub mod subnet;
pub mod sysctl;
pub mod tap;
mod tool;

#[cfg(test)]
mod tests;

pub use attachment::{AttachRequest, Attachment};
pub use cni::CniAttachment;
pub use dns::{DnsConfig, HostsEntry};
pub use error::NetworkError;
pub use manager::{CleanupReport, NetworkDetails, NetworkManager};
pub use names::MacAddr;
pub use ports::{parse_publish, PortMapping, Protocol, PublishedPort};
pub use store::{Network, NetworkOptions, DEFAULT_NETWORK, NONE_NETWORK};
pub use subnet::Subnet;
pub use tap::{Tap, TapOptions};
