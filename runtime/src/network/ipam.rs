//! IP address management: one lease file per network.
//!
//! `<network dir>/leases.json` holds who has which address; every change is
//! made under an exclusive `flock` of `<network dir>/leases.lock` and written
//! atomically, so concurrent `hull` processes never hand out one address
//! twice. Addresses are handed out round-robin after the last one given
//! (as Docker does), so a just-released address is not reused at once and
//! stale ARP entries of a dead guest do not hit the next one.

use super::error::{NetworkError, Result};
use super::state::{read_json, update_json};
use super::subnet::Subnet;
use crate::process::ProcessIdentity;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// One address held by one owner (a sandbox id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The address.
    pub ip: Ipv4Addr,
    /// Who holds it: the sandbox id.
    pub owner: String,
    /// When it was handed out, in seconds since the Unix epoch.
    pub created: u64,
    /// The process that holds it for the owner (its monitor): the lease is
    /// stale once that process is gone. None in leases of older versions.
    #[serde(default)]
    pub holder: Option<ProcessIdentity>,
}

impl Lease {
    /// Whether the process holding the lease still runs. A lease with no
    /// holder recorded counts as held by nobody.
    pub fn is_held(&self) -> bool {
        self.holder.is_some_and(|holder| holder.is_alive())
    }
}

/// What `leases.json` holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct LeaseFile {
    /// Current leases.
    leases: Vec<Lease>,
    /// The address handed out last: the next search starts after it.
    last: Option<Ipv4Addr>,
}

/// The address allocator of one network.
#[derive(Clone, Debug)]
pub struct Ipam {
    network: String,
    subnet: Subnet,
    gateway: Ipv4Addr,
    leases_path: PathBuf,
    lock_path: PathBuf,
}

impl Ipam {
    /// The allocator of network `network` whose state lives in `dir`
    /// (`leases.json`, `leases.lock`; created on first change).
    /// `gateway` is never handed out.
    pub fn new(dir: &Path, network: &str, subnet: Subnet, gateway: Ipv4Addr) -> Self {
        Self {
            network: network.to_string(),
            subnet,
            gateway,
            leases_path: dir.join("leases.json"),
            lock_path: dir.join("leases.lock"),
        }
    }

    /// Leases an address to `owner`, held by process `holder`: `requested`
    /// if given (`--ip`), else the next free one. Fails if `owner` already
    /// holds one, if `requested` is taken or not a usable host address, or
    /// if the subnet is full.
    pub fn allocate(
        &self,
        owner: &str,
        holder: Option<ProcessIdentity>,
        requested: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr> {
        update_json(
            &self.leases_path,
            &self.lock_path,
            |file: &mut LeaseFile| {
                if file.leases.iter().any(|l| l.owner == owner) {
                    return Err(NetworkError::AlreadyAttached {
                        owner: owner.to_string(),
                        network: self.network.clone(),
                    });
                }
                let taken: HashSet<Ipv4Addr> = file.leases.iter().map(|l| l.ip).collect();
                let ip = match requested {
                    Some(ip) => self.check_requested(ip, &taken)?,
                    None => self.next_free(file.last, &taken)?,
                };
                file.leases.push(Lease {
                    ip,
                    owner: owner.to_string(),
                    created: now_secs(),
                    holder,
                });
                if requested.is_none() {
                    file.last = Some(ip);
                }
                tracing::debug!(network = %self.network, %ip, owner, "leased address");
                Ok((true, ip))
            },
        )
    }

    /// Gives back `owner`'s address, if it has one.
    pub fn release(&self, owner: &str) -> Result<Option<Ipv4Addr>> {
        let removed = self.retain(|lease| lease.owner != owner)?;
        Ok(removed.first().map(|l| l.ip))
    }

    /// Keeps the leases for which `keep` is true and returns the others,
    /// which are released.
    pub fn retain(&self, keep: impl Fn(&Lease) -> bool) -> Result<Vec<Lease>> {
        update_json(
            &self.leases_path,
            &self.lock_path,
            |file: &mut LeaseFile| {
                let (kept, removed): (Vec<Lease>, Vec<Lease>) =
                    file.leases.drain(..).partition(|l| keep(l));
                file.leases = kept;
                for lease in &removed {
                    tracing::debug!(network = %self.network, ip = %lease.ip, owner = %lease.owner, "released address");
                }
                Ok((!removed.is_empty(), removed))
            },
        )
    }

    /// All current leases.
    pub fn leases(&self) -> Result<Vec<Lease>> {
        // No lock needed: the file is only ever replaced whole.
        Ok(read_json::<LeaseFile>(&self.leases_path)?.leases)
    }

    /// `owner`'s lease, if any.
    pub fn lease_of(&self, owner: &str) -> Result<Option<Lease>> {
        Ok(self.leases()?.into_iter().find(|l| l.owner == owner))
    }

    fn check_requested(&self, ip: Ipv4Addr, taken: &HashSet<Ipv4Addr>) -> Result<Ipv4Addr> {
        if !self.subnet.is_host(ip) || ip == self.gateway {
            return Err(NetworkError::AddressNotUsable {
                ip,
                network: self.network.clone(),
                subnet: self.subnet.to_string(),
            });
        }
        if taken.contains(&ip) {
            return Err(NetworkError::AddressInUse {
                ip,
                network: self.network.clone(),
            });
        }
        Ok(ip)
    }

    /// The first free host address after `last`, wrapping around once.
    fn next_free(&self, last: Option<Ipv4Addr>, taken: &HashSet<Ipv4Addr>) -> Result<Ipv4Addr> {
        let count = self.subnet.host_count();
        let start = last
            .and_then(|ip| self.subnet.host_index(ip))
            .map_or(0, |i| (i + 1) % count);
        (0..count)
            .filter_map(|step| self.subnet.host((start + step) % count))
            .find(|ip| *ip != self.gateway && !taken.contains(ip))
            .ok_or_else(|| NetworkError::AddressesExhausted {
                network: self.network.clone(),
                subnet: self.subnet.to_string(),
            })
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipam(dir: &Path, subnet: &str) -> Ipam {
        let subnet: Subnet = subnet.parse().unwrap();
        Ipam::new(dir, "testnet", subnet, subnet.first_host())
    }

    fn ip(text: &str) -> Ipv4Addr {
        text.parse().unwrap()
    }

    #[test]
    fn allocates_in_order_skipping_gateway() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = ipam(dir.path(), "10.88.0.0/16");
        assert_eq!(ipam.allocate("a", None, None).unwrap(), ip("10.88.0.2"));
        assert_eq!(ipam.allocate("b", None, None).unwrap(), ip("10.88.0.3"));
    }

    #[test]
    fn exhaustion_and_round_robin_reuse() {
        let dir = tempfile::tempdir().unwrap();
        // /29: hosts .1-.6, .1 is the gateway: five for guests.
        let ipam = ipam(dir.path(), "10.89.0.0/29");
        let got: Vec<_> = (0..5)
            .map(|i| ipam.allocate(&format!("o{i}"), None, None).unwrap())
            .collect();
        assert_eq!(got.last(), Some(&ip("10.89.0.6")));
        let err = ipam.allocate("late", None, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no available IPv4 addresses on network testnet (10.89.0.0/29)"
        );
        assert_eq!(ipam.release("o1").unwrap(), Some(ip("10.89.0.3")));
        assert_eq!(ipam.release("o1").unwrap(), None);
        assert_eq!(ipam.allocate("late", None, None).unwrap(), ip("10.89.0.3"));
    }

    #[test]
    fn released_address_is_not_reused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = ipam(dir.path(), "10.89.0.0/24");
        let a = ipam.allocate("a", None, None).unwrap();
        ipam.release("a").unwrap();
        let b = ipam.allocate("b", None, None).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn explicit_requests() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = ipam(dir.path(), "10.89.0.0/24");
        assert_eq!(
            ipam.allocate("a", None, Some(ip("10.89.0.50"))).unwrap(),
            ip("10.89.0.50")
        );
        let taken = ipam
            .allocate("b", None, Some(ip("10.89.0.50")))
            .unwrap_err();
        assert_eq!(
            taken.to_string(),
            "address 10.89.0.50 is already in use on network testnet"
        );
        for bad in ["10.89.0.0", "10.89.0.1", "10.89.0.255", "10.90.0.5"] {
            let err = ipam.allocate("b", None, Some(ip(bad))).unwrap_err();
            assert!(
                matches!(err, NetworkError::AddressNotUsable { .. }),
                "{bad}: {err}"
            );
        }
        let twice = ipam.allocate("a", None, None).unwrap_err();
        assert!(matches!(twice, NetworkError::AlreadyAttached { .. }));
        // Explicit requests do not move the round-robin cursor.
        assert_eq!(ipam.allocate("c", None, None).unwrap(), ip("10.89.0.2"));
    }

    #[test]
    fn persists_across_instances() {
        let dir = tempfile::tempdir().unwrap();
        let a = ipam(dir.path(), "10.89.0.0/24")
            .allocate("a", None, None)
            .unwrap();
        let again = ipam(dir.path(), "10.89.0.0/24");
        assert_eq!(again.lease_of("a").unwrap().map(|l| l.ip), Some(a));
        assert_ne!(again.allocate("b", None, None).unwrap(), a);
        let removed = again.retain(|l| l.owner == "b").unwrap();
        assert_eq!(removed.len(), 1);
        assert_eq!(again.leases().unwrap().len(), 1);
    }

    #[test]
    fn threads_never_share_an_address() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let ipam = ipam(&path, "10.89.0.0/24");
                    (0..15)
                        .map(|i| ipam.allocate(&format!("t{t}-{i}"), None, None).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let all: Vec<Ipv4Addr> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let unique: HashSet<_> = all.iter().collect();
        assert_eq!(all.len(), 120);
        assert_eq!(unique.len(), 120, "an address was handed out twice");
        assert_eq!(ipam(&path, "10.89.0.0/24").leases().unwrap().len(), 120);
    }
}
