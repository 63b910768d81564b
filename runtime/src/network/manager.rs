//! [`NetworkManager`]: the one entry point the rest of Hull uses. It ties
//! the pieces together (definitions, IPAM, ports, bridges, taps, nftables)
//! and keeps them consistent: every change happens under one global lock,
//! and a failed attach undoes everything it did.

use super::attachment::{AttachRequest, Attachment};
use super::bridge::{attach_port, delete_bridge, ensure_bridge, BridgeSpec};
use super::dns::{hosts_entries, DnsConfig};
use super::error::{NetworkError, Result};
use super::ipam::Lease;
use super::names::{check_network_name, tap_name, MacAddr, TAP_PREFIX};
use super::nat::{self, NetworkRules, Ruleset};
use super::netlink::Netlink;
use super::ports::{PortReservation, PortStore};
use super::state::{read_json, write_json, StateLock};
use super::store::{
    new_user_network, pool_candidates, HostChanges, Network, NetworkOptions, NetworkStore,
    DEFAULT_NETWORK, NONE_NETWORK,
};
use super::subnet::Subnet;
use super::sysctl;
use super::tap::{delete_tap, Tap};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// A network with the sandboxes on it, for `hull network inspect`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkDetails {
    /// The definition.
    pub network: Network,
    /// One lease per attached sandbox.
    pub endpoints: Vec<Lease>,
}

/// What [`NetworkManager::cleanup_stale`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CleanupReport {
    /// Released leases, with their network's name.
    pub leases: Vec<(String, Lease)>,
    /// Released port reservations.
    pub ports: Vec<PortReservation>,
    /// Deleted taps.
    pub taps: Vec<String>,
}

impl CleanupReport {
    /// Whether nothing was stale.
    pub fn is_empty(&self) -> bool {
        self.leases.is_empty() && self.ports.is_empty() && self.taps.is_empty()
    }
}

/// Hull's networking on this host (more exactly: in the calling thread's
/// network namespace), with its state in one directory.
///
/// One state directory per network namespace: two managers with different
/// directories in one namespace would remove each other's taps and rules.
/// Methods block on a file lock while another `hull` process changes
/// networking (milliseconds), and run `nft` synchronously.
#[derive(Clone, Debug)]
pub struct NetworkManager {
    state_dir: PathBuf,
    options: NetworkOptions,
    store: NetworkStore,
    ports: PortStore,
}

impl NetworkManager {
    /// A manager keeping its state in `state_dir` (e.g.
    /// `/var/lib/hull/network`), with Hull's default options.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Self::with_options(state_dir, NetworkOptions::default())
    }

    /// A manager with non-default options (bridge name, subnets, MTU).
    pub fn with_options(state_dir: impl Into<PathBuf>, options: NetworkOptions) -> Self {
        let state_dir = state_dir.into();
        Self {
            store: NetworkStore::new(&state_dir),
            ports: PortStore::new(&state_dir),
            state_dir,
            options,
        }
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    fn lock(&self) -> Result<StateLock> {
        StateLock::acquire(&self.state_dir.join("lock"))
    }

    /// `hull network create NAME [--subnet CIDR]`: defines the network and
    /// creates its bridge (`hull-<id>`). Without `subnet`, the first /24 of
    /// the pool that overlaps no Hull network and no route or address of
    /// the host is used.
    pub async fn create_network(&self, name: &str, subnet: Option<Subnet>) -> Result<Network> {
        if [DEFAULT_NETWORK, NONE_NETWORK, "host"].contains(&name) {
            return Err(NetworkError::PredefinedNetwork(name.to_string()));
        }
        check_network_name(name)?;
        let _lock = self.lock()?;
        self.store.default_network(&self.options)?;
        let existing = self.store.list()?;
        if existing.iter().any(|n| n.name == name) {
            return Err(NetworkError::NetworkExists(name.to_string()));
        }
        let netlink = Netlink::connect()?;
        let subnet = match subnet {
            Some(subnet) => {
                if let Some(other) = existing.iter().find(|n| n.subnet.overlaps(&subnet)) {
                    return Err(NetworkError::SubnetOverlap {
                        subnet: subnet.to_string(),
                        other: other.name.clone(),
                        other_subnet: other.subnet.to_string(),
                    });
                }
                subnet
            }
            None => self.free_subnet(&netlink, &existing).await?,
        };
        let network = new_user_network(name, subnet, self.options.mtu)?;
        self.store.insert(&network)?;
        let created = async {
            ensure_bridge(&netlink, &bridge_spec(&network)).await?;
            self.apply_rules()
        }
        .await;
        if let Err(e) = created {
            if let Err(undo) = delete_bridge(&netlink, &network.bridge).await {
                tracing::warn!(bridge = %network.bridge, "undoing network create: {undo}");
            }
            self.store.remove(&network)?;
            return Err(e);
        }
        tracing::info!(network = name, %subnet, bridge = %network.bridge, "created network");
        Ok(network)
    }

    /// A /24 of the pool clear of Hull's networks and the host's routes
    /// and addresses (the default route aside).
    async fn free_subnet(&self, netlink: &Netlink, existing: &[Network]) -> Result<Subnet> {
        let mut used: Vec<Subnet> = existing.iter().map(|n| n.subnet).collect();
        for route in netlink.ipv4_routes().await? {
            if route.prefix_len > 0 {
                // Clamped: a /32 route still rules out the /30 around it.
                used.extend(Subnet::new(route.destination, route.prefix_len.clamp(8, 30)).ok());
            }
        }
        for address in netlink.ipv4_addresses(None).await? {
            used.extend(Subnet::new(address.ip, 30).ok());
        }
        pool_candidates(self.options.subnet_pool)
            .find(|candidate| !used.iter().any(|u| u.overlaps(candidate)))
            .ok_or(NetworkError::NoFreeSubnet)
    }

    /// `hull network ls`: every network, the default one included.
    pub fn list_networks(&self) -> Result<Vec<Network>> {
        let _lock = self.lock()?;
        self.store.default_network(&self.options)?;
        self.store.list()
    }

    /// `hull network inspect NAME|ID`.
    pub fn inspect_network(&self, name_or_id: &str) -> Result<NetworkDetails> {
        let network = self.resolve(name_or_id)?;
        let endpoints = self.store.ipam(&network).leases()?;
        Ok(NetworkDetails { network, endpoints })
    }

    /// `hull network rm NAME|ID`: refused for the default network and for
    /// networks with live sandboxes on them (dead ones' leftovers are
    /// removed first).
    pub async fn remove_network(&self, name_or_id: &str) -> Result<()> {
        let _lock = self.lock()?;
        let network = self.resolve(name_or_id)?;
        if network.is_default() {
            return Err(NetworkError::PredefinedNetwork(network.name));
        }
        let netlink = Netlink::connect()?;
        self.remove_stale(&netlink).await?;
        if !self.store.ipam(&network).leases()?.is_empty() {
            return Err(NetworkError::NetworkInUse {
                name: network.name,
                id: network.id,
            });
        }
        delete_bridge(&netlink, &network.bridge).await?;
        self.store.remove(&network)?;
        self.apply_rules()?;
        tracing::info!(network = %network.name, "removed network");
        Ok(())
    }

    /// The network a name or id means; `bridge` is the default network.
    fn resolve(&self, name_or_id: &str) -> Result<Network> {
        if name_or_id == DEFAULT_NETWORK {
            return self.store.default_network(&self.options);
        }
        self.store.find(name_or_id)
    }

    /// Puts a sandbox on a network: leases an address, reserves its
    /// published ports, creates its tap on the bridge (creating the bridge
    /// if needed), turns forwarding on and updates the nftables rules.
    /// `none` gives `Ok(None)`: no NIC at all. On error nothing is left
    /// behind.
    pub async fn attach(&self, request: &AttachRequest) -> Result<Option<Attachment>> {
        match request.network.as_str() {
            NONE_NETWORK => return Ok(None),
            mode if mode == "host" || mode.starts_with("container:") => {
                return Err(NetworkError::UnsupportedNetworkMode(mode.to_string()))
            }
            _ => {}
        }
        let _lock = self.lock()?;
        // What dead holders left goes first, under the same lock as the
        // attach: a sandbox attaching meanwhile cannot lose its tap, and a
        // sandbox whose last monitor was killed gets its own lease back.
        let netlink = Netlink::connect()?;
        self.remove_stale(&netlink).await?;
        let network = self.resolve(&request.network)?;
        let owner = request.sandbox_id.as_str();
        // One network per sandbox: its tap name comes from its id alone.
        for other in self.store.list()? {
            if self.store.ipam(&other).lease_of(owner)?.is_some() {
                return Err(NetworkError::AlreadyAttached {
                    owner: owner.to_string(),
                    network: other.name,
                });
            }
        }
        ensure_bridge(&netlink, &bridge_spec(&network)).await?;
        self.ensure_ip_forward()?;

        let ipam = self.store.ipam(&network);
        let ip = ipam.allocate(owner, Some(request.holder), request.ip)?;
        let held_ports = match self
            .ports
            .reserve(owner, &network.name, ip, &request.publish)
        {
            Ok(held) => held,
            Err(e) => {
                self.undo_attach(&netlink, &network, owner, false).await;
                return Err(e);
            }
        };
        let tap_name = tap_name(owner);
        let tap = match Tap::create_with(&tap_name, request.tap) {
            Ok(tap) => tap,
            Err(e) => {
                // The name may belong to another sandbox: never delete it here.
                self.undo_attach(&netlink, &network, owner, false).await;
                return Err(e);
            }
        };
        let wired = async {
            attach_port(&netlink, &tap_name, &network.bridge, network.mtu).await?;
            self.apply_rules()
        }
        .await;
        if let Err(e) = wired {
            drop(tap);
            self.undo_attach(&netlink, &network, owner, true).await;
            return Err(e);
        }

        let ports = held_ports.iter().map(|h| h.port).collect();
        tracing::info!(sandbox = owner, network = %network.name, %ip, tap = %tap_name, "attached sandbox");
        Ok(Some(Attachment {
            sandbox_id: owner.to_string(),
            mac: MacAddr::derived(&format!("hull-mac:{}:{owner}", network.id)),
            ip,
            prefix_len: network.subnet.prefix_len(),
            gateway: network.gateway,
            mtu: network.mtu,
            dns: DnsConfig::from_host(),
            hosts: hosts_entries(ip, &request.hostname),
            ports,
            held_ports,
            tap,
            network,
        }))
    }

    /// Best-effort rollback of a failed attach; failures are logged, the
    /// original error is what the caller reports.
    async fn undo_attach(
        &self,
        netlink: &Netlink,
        network: &Network,
        owner: &str,
        tap_created: bool,
    ) {
        if tap_created {
            if let Err(e) = delete_tap(netlink, &tap_name(owner)).await {
                tracing::warn!(sandbox = owner, "undoing attach: {e}");
            }
        }
        if let Err(e) = self.ports.release(owner) {
            tracing::warn!(sandbox = owner, "undoing attach: {e}");
        }
        if let Err(e) = self.store.ipam(network).release(owner) {
            tracing::warn!(sandbox = owner, "undoing attach: {e}");
        }
        if let Err(e) = self.apply_rules() {
            tracing::warn!(sandbox = owner, "undoing attach: {e}");
        }
    }

    /// Takes a sandbox off its network: deletes its tap, releases its
    /// address and ports, removes its rules. Idempotent, and a no-op (no
    /// netlink, no `nft`) for a sandbox that holds nothing, e.g. one run
    /// with `--network none` or whose attach failed.
    pub async fn detach(&self, sandbox_id: &str) -> Result<()> {
        let _lock = self.lock()?;
        let mut had_lease = false;
        for network in self.store.list()? {
            had_lease |= self.store.ipam(&network).release(sandbox_id)?.is_some();
        }
        let had_ports = !self.ports.release(sandbox_id)?.is_empty();
        if had_lease {
            // Only with a lease is the tap this sandbox's: a failed attach
            // may have hit a tap of the same name owned by another sandbox.
            let netlink = Netlink::connect()?;
            delete_tap(&netlink, &tap_name(sandbox_id)).await?;
        }
        if had_lease || had_ports {
            self.apply_rules()?;
            tracing::info!(sandbox = sandbox_id, "detached sandbox");
        }
        Ok(())
    }

    /// Removes what dead sandboxes left behind (after `kill -9` of a
    /// monitor, or a reboot): the leases whose holder process is gone, the
    /// port reservations and taps of sandboxes that hold no lease, and their
    /// nftables rules. Cheap when there is nothing to do (no `nft` run).
    /// Every attach does this first; `hull rm` calls it for a container
    /// whose monitor died.
    pub async fn cleanup_stale(&self) -> Result<CleanupReport> {
        let _lock = self.lock()?;
        if self.store.list()?.is_empty() {
            // Networking was never used here.
            return Ok(CleanupReport::default());
        }
        let netlink = Netlink::connect()?;
        self.remove_stale(&netlink).await
    }

    /// [`Self::cleanup_stale`]'s work; the caller holds the global lock, so
    /// no sandbox attaches or detaches meanwhile.
    async fn remove_stale(&self, netlink: &Netlink) -> Result<CleanupReport> {
        let mut report = CleanupReport::default();
        let mut holders = HashSet::new();
        for network in self.store.list()? {
            let ipam = self.store.ipam(&network);
            for lease in ipam.retain(|lease| lease.is_held())? {
                report.leases.push((network.name.clone(), lease));
            }
            holders.extend(ipam.leases()?.into_iter().map(|lease| lease.owner));
        }
        report.ports = self.ports.retain(|r| holders.contains(&r.owner))?;
        let kept_taps: HashSet<String> = holders.iter().map(|owner| tap_name(owner)).collect();
        for link in netlink.links().await? {
            if link.name.starts_with(TAP_PREFIX)
                && !kept_taps.contains(&link.name)
                && delete_tap(netlink, &link.name).await?
            {
                report.taps.push(link.name);
            }
        }
        if !report.is_empty() {
            tracing::info!(
                leases = report.leases.len(),
                ports = report.ports.len(),
                taps = report.taps.len(),
                "removed stale network state"
            );
            self.apply_rules()?;
        }
        Ok(report)
    }

    /// Removes everything Hull made in this namespace: every tap and bridge,
    /// the nftables table, all leases and port reservations, and turns
    /// `ip_forward` off again if Hull turned it on. Network definitions are
    /// kept (their bridges come back on next use). For uninstalling, tests.
    pub async fn teardown_all(&self) -> Result<()> {
        let _lock = self.lock()?;
        let netlink = Netlink::connect()?;
        for link in netlink.links().await? {
            if link.name.starts_with(TAP_PREFIX) {
                delete_tap(&netlink, &link.name).await?;
            }
        }
        for network in self.store.list()? {
            self.store.ipam(&network).retain(|_| false)?;
            delete_bridge(&netlink, &network.bridge).await?;
        }
        self.ports.retain(|_| false)?;
        nat::remove_table()?;
        let path = self.state_dir.join("host.json");
        let mut changes: HostChanges = read_json(&path)?;
        if changes.ip_forward_enabled_by_hull {
            sysctl::disable_ip_forward()?;
            changes.ip_forward_enabled_by_hull = false;
            write_json(&path, &changes)?;
        }
        Ok(())
    }

    /// Turns forwarding on if needed and remembers that Hull did.
    /// The caller holds the global lock.
    fn ensure_ip_forward(&self) -> Result<()> {
        if sysctl::enable_ip_forward()? {
            let path = self.state_dir.join("host.json");
            let mut changes: HostChanges = read_json(&path)?;
            changes.ip_forward_enabled_by_hull = true;
            write_json(&path, &changes)?;
        }
        Ok(())
    }

    /// The nftables ruleset of the current state.
    pub fn ruleset(&self) -> Result<Ruleset> {
        let networks = self
            .store
            .list()?
            .into_iter()
            .map(|n| NetworkRules {
                bridge: n.bridge,
                subnet: n.subnet,
            })
            .collect();
        Ok(Ruleset {
            networks,
            ports: self.ports.all()?,
        })
    }

    /// Re-renders and swaps in Hull's nftables table.
    fn apply_rules(&self) -> Result<()> {
        nat::apply(&self.ruleset()?)
    }
}

/// The bridge a network needs.
fn bridge_spec(network: &Network) -> BridgeSpec {
    BridgeSpec {
        name: network.bridge.clone(),
        subnet: network.subnet,
        gateway: network.gateway,
        mtu: network.mtu,
    }
}
