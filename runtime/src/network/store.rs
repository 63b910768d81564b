//! Network definitions on disk and the options they are made from.
//!
//! Layout under the state directory the caller gives (e.g.
//! `/var/lib/hull/network`):
//!
//! ```text
//! lock                          global lock: one hull process changes networking at a time
//! host.json                     what Hull changed on the host (ip_forward)
//! ports.json, ports.lock        published host ports (ports.rs)
//! networks/<name>/network.json  a network's definition
//! networks/<name>/leases.json   its address leases (ipam.rs), leases.lock
//! ```

use super::error::{NetworkError, Result};
use super::ipam::Ipam;
use super::names::{bridge_name, check_network_name};
use super::state::{read_json, write_json};
use super::subnet::Subnet;
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The name of the default network (Docker's).
pub const DEFAULT_NETWORK: &str = "bridge";
/// The network mode without networking: the guest gets loopback only.
pub const NONE_NETWORK: &str = "none";
/// The default network's bridge.
pub const DEFAULT_BRIDGE: &str = "hull0";
/// The default network's subnet (Podman's; its gateway is 10.88.0.1).
// The `panic!`s below run at compile time only: a bad literal fails the build.
pub const DEFAULT_SUBNET: Subnet = match Subnet::const_new(Ipv4Addr::new(10, 88, 0, 0), 16) {
    Some(subnet) => subnet,
    None => panic!("invalid DEFAULT_SUBNET"),
};
/// Where user-defined networks get their /24s from (Podman's range).
pub const DEFAULT_SUBNET_POOL: Subnet = match Subnet::const_new(Ipv4Addr::new(10, 89, 0, 0), 16) {
    Some(subnet) => subnet,
    None => panic!("invalid DEFAULT_SUBNET_POOL"),
};
/// The MTU of bridges, taps and guests.
pub const DEFAULT_MTU: u32 = 1500;

/// How networks are made. [`Default`] gives Hull's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkOptions {
    /// Bridge of the default network.
    pub default_bridge: String,
    /// Subnet of the default network (its first host is the gateway).
    pub default_subnet: Subnet,
    /// Range that user-defined networks without `--subnet` get a /24 of.
    pub subnet_pool: Subnet,
    /// MTU of every bridge, tap and guest interface.
    pub mtu: u32,
}

impl Default for NetworkOptions {
    fn default() -> Self {
        Self {
            default_bridge: DEFAULT_BRIDGE.to_string(),
            default_subnet: DEFAULT_SUBNET,
            subnet_pool: DEFAULT_SUBNET_POOL,
            mtu: DEFAULT_MTU,
        }
    }
}

/// A network's definition, as `hull network inspect` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// Name (`bridge` for the default network).
    pub name: String,
    /// 64 hex digits.
    pub id: String,
    /// Always `bridge` today.
    pub driver: String,
    /// The bridge interface.
    pub bridge: String,
    /// The subnet.
    pub subnet: Subnet,
    /// The gateway: the bridge's address.
    pub gateway: Ipv4Addr,
    /// MTU of the bridge, taps and guests.
    pub mtu: u32,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
}

impl Network {
    /// Whether this is the pre-defined default network.
    pub fn is_default(&self) -> bool {
        self.name == DEFAULT_NETWORK
    }
}

/// Reads and writes network definitions under a state directory.
#[derive(Clone, Debug)]
pub struct NetworkStore {
    dir: PathBuf,
}

impl NetworkStore {
    /// The definitions under `state_dir/networks`.
    pub fn new(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.join("networks"),
        }
    }

    fn network_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The address allocator of `network`.
    pub fn ipam(&self, network: &Network) -> Ipam {
        Ipam::new(
            &self.network_dir(&network.name),
            &network.name,
            network.subnet,
            network.gateway,
        )
    }

    /// Every stored network, by name.
    pub fn list(&self) -> Result<Vec<Network>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(NetworkError::io(
                    format!("reading {}", self.dir.display()),
                    e,
                ))
            }
        };
        let mut networks = Vec::new();
        for entry in entries {
            let entry = entry
                .map_err(|e| NetworkError::io(format!("reading {}", self.dir.display()), e))?;
            let path = entry.path().join("network.json");
            if path.is_file() {
                networks.push(read_json::<Option<Network>>(&path)?);
            }
        }
        let mut networks: Vec<Network> = networks.into_iter().flatten().collect();
        networks.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(networks)
    }

    /// The network called `name_or_id`, or whose id starts with it (if
    /// only one does).
    pub fn find(&self, name_or_id: &str) -> Result<Network> {
        let all = self.list()?;
        if let Some(network) = all
            .iter()
            .find(|n| n.name == name_or_id || n.id == name_or_id)
        {
            return Ok(network.clone());
        }
        let mut by_prefix = all
            .iter()
            .filter(|n| !name_or_id.is_empty() && n.id.starts_with(name_or_id));
        match (by_prefix.next(), by_prefix.next()) {
            (Some(network), None) => Ok(network.clone()),
            _ => Err(NetworkError::NetworkNotFound(name_or_id.to_string())),
        }
    }

    /// Stores a new network definition. The caller holds the global lock.
    pub fn insert(&self, network: &Network) -> Result<()> {
        write_json(
            &self.network_dir(&network.name).join("network.json"),
            network,
        )
    }

    /// Deletes a network's definition and leases.
    pub fn remove(&self, network: &Network) -> Result<()> {
        let dir = self.network_dir(&network.name);
        std::fs::remove_dir_all(&dir)
            .map_err(|e| NetworkError::io(format!("removing {}", dir.display()), e))
    }

    /// The default network, defined on first use from `options`. Later
    /// changes of the options do not move an existing default network.
    pub fn default_network(&self, options: &NetworkOptions) -> Result<Network> {
        match self.find(DEFAULT_NETWORK) {
            Ok(network) => Ok(network),
            Err(NetworkError::NetworkNotFound(_)) => {
                let network = new_network(
                    DEFAULT_NETWORK,
                    options.default_bridge.clone(),
                    options.default_subnet,
                    options.mtu,
                )?;
                self.insert(&network)?;
                Ok(network)
            }
            Err(e) => Err(e),
        }
    }
}

/// A new network definition with a fresh id, on bridge `bridge`.
pub fn new_network(name: &str, bridge: String, subnet: Subnet, mtu: u32) -> Result<Network> {
    check_network_name(name)?;
    Ok(Network {
        name: name.to_string(),
        id: random_id()?,
        driver: "bridge".to_string(),
        bridge,
        subnet,
        gateway: subnet.first_host(),
        mtu,
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    })
}

/// A new user-defined network's definition: bridge named after its id.
pub fn new_user_network(name: &str, subnet: Subnet, mtu: u32) -> Result<Network> {
    let mut network = new_network(name, String::new(), subnet, mtu)?;
    network.bridge = bridge_name(&network.id);
    Ok(network)
}

/// 64 random hex digits, like Docker's ids.
fn random_id() -> Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| NetworkError::io("reading /dev/urandom", e))?;
    Ok(hex::encode(bytes))
}

/// The `/24`s of `pool` in order, the candidates for a new network.
pub fn pool_candidates(pool: Subnet) -> impl Iterator<Item = Subnet> {
    let count = if pool.prefix_len() >= 24 {
        1
    } else {
        1u32 << (24 - pool.prefix_len())
    };
    let base = u32::from(pool.base());
    (0..count).filter_map(move |i| {
        Subnet::new(Ipv4Addr::from(base + (i << 8)), 24.max(pool.prefix_len())).ok()
    })
}

/// What Hull changed on the host, to undo exactly that on teardown.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostChanges {
    /// Hull turned `net.ipv4.ip_forward` on (it was off).
    pub ip_forward_enabled_by_hull: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(DEFAULT_SUBNET.to_string(), "10.88.0.0/16");
        assert_eq!(DEFAULT_SUBNET.first_host(), Ipv4Addr::new(10, 88, 0, 1));
        let candidates: Vec<_> = pool_candidates(DEFAULT_SUBNET_POOL).collect();
        assert_eq!(candidates.len(), 256);
        assert_eq!(candidates[0].to_string(), "10.89.0.0/24");
        assert_eq!(candidates[255].to_string(), "10.89.255.0/24");
    }

    #[test]
    fn store_roundtrip_and_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let store = NetworkStore::new(dir.path());
        assert!(store.list().unwrap().is_empty());
        let default = store.default_network(&NetworkOptions::default()).unwrap();
        assert_eq!(default.bridge, "hull0");
        assert_eq!(
            store.default_network(&NetworkOptions::default()).unwrap(),
            default
        );
        let user = new_user_network("mynet", "10.89.0.0/24".parse().unwrap(), 1500).unwrap();
        assert!(user.bridge.starts_with("hull-") && user.bridge.len() == 15);
        store.insert(&user).unwrap();
        assert_eq!(store.list().unwrap().len(), 2);
        assert_eq!(store.find("mynet").unwrap(), user);
        assert_eq!(store.find(&user.id[..12]).unwrap(), user);
        assert!(matches!(
            store.find("nope"),
            Err(NetworkError::NetworkNotFound(_))
        ));
        store.remove(&user).unwrap();
        assert_eq!(store.list().unwrap(), vec![default]);
    }
}
