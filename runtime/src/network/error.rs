//! The one error type of the network module.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use thiserror::Error;

/// Everything that can go wrong while setting up or tearing down networking.
///
/// Messages are one line; where Docker has a well-known text for the same
/// failure (ports, address pools, network names) it is reused so that scripts
/// and users see what they expect.
#[derive(Debug, Error)]
pub enum NetworkError {
    /// A netlink request failed.
    #[error("netlink: {op}: {source}")]
    Netlink {
        /// What was being done, e.g. `creating bridge hull0`.
        op: String,
        /// The kernel's (or the library's) answer.
        source: rtnetlink::Error,
    },
    /// A file or device operation failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done, with the path involved.
        op: String,
        /// Why.
        source: std::io::Error,
    },
    /// A state file exists but does not parse.
    #[error("corrupt network state file {path}: {source}")]
    CorruptState {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// An interface that must exist does not.
    #[error("network interface {0} not found")]
    LinkNotFound(String),
    /// An interface that must not exist yet already does.
    #[error("network interface {0} already exists")]
    LinkExists(String),
    /// An interface name the kernel would not accept (empty, too long, bad characters).
    #[error("invalid interface name {0:?}: at most 15 characters, no '/', ':' or whitespace")]
    InvalidInterfaceName(String),
    /// A subnet or address text that does not parse.
    #[error("invalid subnet {0:?}: expected an IPv4 CIDR such as 10.89.0.0/24 (prefix 8 to 30)")]
    InvalidSubnet(String),
    /// A `-p`/`--publish` value that does not parse; the text is Docker's.
    #[error("{0}")]
    InvalidPortSpec(String),
    /// A host port is taken, by another container or by a host process.
    #[error("Bind for {0} failed: port is already allocated")]
    PortAllocated(String),
    /// No host port was free for a `-p CTRPORT` or range request.
    #[error("no free host port for {0}")]
    NoFreePort(String),
    /// Every address of a network's subnet is leased.
    #[error("no available IPv4 addresses on network {network} ({subnet})")]
    AddressesExhausted {
        /// Network name.
        network: String,
        /// Its subnet.
        subnet: String,
    },
    /// An explicitly requested address is leased to someone else.
    #[error("address {ip} is already in use on network {network}")]
    AddressInUse {
        /// The address.
        ip: Ipv4Addr,
        /// Network name.
        network: String,
    },
    /// An explicitly requested address is not usable in the network's subnet
    /// (outside it, or its network, gateway or broadcast address).
    #[error("no configured subnet contains the IP address {ip} usable for containers (network {network}, subnet {subnet})")]
    AddressNotUsable {
        /// The address.
        ip: Ipv4Addr,
        /// Network name.
        network: String,
        /// Its subnet.
        subnet: String,
    },
    /// The sandbox already has a lease on this network.
    #[error("sandbox {owner} is already attached to network {network}")]
    AlreadyAttached {
        /// Sandbox id.
        owner: String,
        /// Network name.
        network: String,
    },
    /// No network has this name or id.
    #[error("network {0} not found")]
    NetworkNotFound(String),
    /// `network create` with a name already used.
    #[error("network with name {0} already exists")]
    NetworkExists(String),
    /// A network name Docker would not accept either.
    #[error("invalid network name {0:?}: must match [a-zA-Z0-9][a-zA-Z0-9_.-]* and be at most 64 characters")]
    InvalidNetworkName(String),
    /// `bridge`, `none` and `host` cannot be created or removed.
    #[error("{0} is a pre-defined network and cannot be created or removed")]
    PredefinedNetwork(String),
    /// `--network host` and the like: not possible with a VM per container.
    #[error("network mode {0:?} is not supported by hull")]
    UnsupportedNetworkMode(String),
    /// `network rm` on a network that still has containers.
    #[error("error while removing network: network {name} id {id} has active endpoints")]
    NetworkInUse {
        /// Network name.
        name: String,
        /// Network id.
        id: String,
    },
    /// A requested subnet overlaps another Hull network's.
    #[error("subnet {subnet} overlaps with network {other} ({other_subnet})")]
    SubnetOverlap {
        /// The requested subnet.
        subnet: String,
        /// The network already using an overlapping subnet.
        other: String,
        /// Its subnet.
        other_subnet: String,
    },
    /// The subnet pool has no /24 left that overlaps nothing.
    #[error("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")]
    NoFreeSubnet,
    /// An external tool (`nft`, `tc`) could not be run.
    #[error("running {program}: {source} (is it installed? Debian: apt-get install {package})")]
    ToolMissing {
        /// The executable.
        program: String,
        /// The Debian package that has it.
        package: String,
        /// Why it did not start.
        source: std::io::Error,
    },
    /// An external tool ran and failed.
    #[error("{program} failed: {stderr}")]
    ToolFailed {
        /// What ran, with its arguments.
        program: String,
        /// Its error output, on one line.
        stderr: String,
    },
    /// A tun/tap ioctl failed.
    #[error("tap {name}: {op}: {source}")]
    Tap {
        /// The tap's name.
        name: String,
        /// The ioctl.
        op: &'static str,
        /// The kernel's answer.
        source: std::io::Error,
    },
    /// A CNI network namespace does not hold what a CNI plugin leaves behind.
    #[error("CNI network namespace {netns}: {reason}")]
    Cni {
        /// The namespace path.
        netns: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// A helper thread died without answering.
    #[error("network worker thread failed: {0}")]
    Worker(String),
}

impl NetworkError {
    /// An [`NetworkError::Io`] with what was being done.
    pub(crate) fn io(op: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            op: op.into(),
            source,
        }
    }

    /// A [`NetworkError::Netlink`] with what was being done.
    pub(crate) fn netlink(op: impl Into<String>, source: rtnetlink::Error) -> Self {
        Self::Netlink {
            op: op.into(),
            source,
        }
    }
}

/// Results of this module.
pub type Result<T, E = NetworkError> = std::result::Result<T, E>;
