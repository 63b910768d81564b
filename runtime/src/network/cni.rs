//! CNI mode: the network is set up by a CNI plugin (Kubernetes, nerdctl…),
//! which leaves a network namespace holding one interface (usually a veth
//! called `eth0`) with an address and a default route. Hull does not
//! configure anything of its own there; it plugs the guest into that
//! interface the way Kata Containers does (its `tcfilter` model):
//!
//! * a tap is created inside the namespace;
//! * a tc `ingress` qdisc on each of the two, with a match-all `u32`
//!   filter and `mirred egress redirect` to the other, moves every frame
//!   across in both directions, below IP (ARP included);
//! * the guest takes over the interface's identity: its MAC, IPv4
//!   address/prefix, gateway and MTU, reported in [`CniAttachment`], so that
//!   whatever the plugin set up around it (routes, ARP entries, policies)
//!   keeps working.
//!
//! The namespace's own stack never sees the traffic (ingress redirect comes
//! first), so the address staying on the veth does no harm, as in Kata.
//! The VMM either runs inside the namespace and opens the tap by name, or
//! runs outside and is given [`CniAttachment::tap`]'s descriptor (a tap
//! cannot be opened by name from another namespace).

use super::error::{NetworkError, Result};
use super::names::{check_ifname, MacAddr};
use super::netlink::{Link, Netlink};
use super::tap::{delete_tap, Tap, TapOptions};
use super::tool;
use nix::sched::{setns, CloneFlags};
use std::future::Future;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// The guest's view of a CNI-prepared namespace.
#[derive(Debug)]
pub struct CniAttachment {
    /// The namespace (e.g. `/var/run/netns/cni-…`, `/proc/PID/ns/net`).
    pub netns: PathBuf,
    /// The plugin's interface, redirected to and from the tap.
    pub interface: String,
    /// The tap inside the namespace, with its descriptor.
    pub tap: Tap,
    /// The MAC the guest NIC must use: the interface's.
    pub mac: MacAddr,
    /// The guest's address: the interface's.
    pub ip: Ipv4Addr,
    /// Its prefix length.
    pub prefix_len: u8,
    /// The default gateway the plugin set, if any.
    pub gateway: Option<Ipv4Addr>,
    /// The interface's MTU, which the guest must use too.
    pub mtu: u32,
}

/// How `--network` names a CNI-prepared namespace: `ns:PATH`, as podman spells it.
pub const NETWORK_MODE_PREFIX: &str = "ns:";

/// The namespace a `--network` value names, if it is `ns:PATH`.
pub fn netns_of_mode(mode: &str) -> Option<&Path> {
    mode.strip_prefix(NETWORK_MODE_PREFIX).map(Path::new)
}

impl CniAttachment {
    /// The kernel's `ip=` parameter giving the guest the interface's address.
    pub fn kernel_ip_arg(&self, hostname: &str) -> String {
        super::attachment::kernel_ip_arg(self.ip, self.gateway, self.prefix_len, hostname)
    }
}

/// Creates tap `tap_name` in the namespace at `netns` and redirects traffic
/// between it and `interface` (by default the namespace's only interface
/// with an IPv4 address). On error nothing is left behind.
pub async fn prepare(
    netns: &Path,
    tap_name: &str,
    interface: Option<&str>,
) -> Result<CniAttachment> {
    check_ifname(tap_name)?;
    let netns_path = netns.to_path_buf();
    let tap_name = tap_name.to_string();
    let interface = interface.map(str::to_string);
    in_netns(netns, async move {
        let netlink = Netlink::connect()?;
        let link = find_interface(&netlink, &netns_path, interface.as_deref(), &tap_name).await?;
        let cni_error = |reason: String| NetworkError::Cni {
            netns: netns_path.clone(),
            reason,
        };
        let address = netlink
            .ipv4_addresses(Some(link.index))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| cni_error(format!("interface {} has no IPv4 address", link.name)))?;
        let mac = link
            .mac
            .ok_or_else(|| cni_error(format!("interface {} has no Ethernet address", link.name)))?;
        let gateway = netlink
            .ipv4_routes()
            .await?
            .into_iter()
            .find(|r| r.prefix_len == 0 && r.oif.is_none_or(|oif| oif == link.index))
            .and_then(|r| r.gateway);

        let tap = Tap::create_with(&tap_name, TapOptions::default())?;
        if let Err(e) = wire(&netlink, &link, &tap_name).await {
            unwire(&link.name);
            if let Err(undo) = delete_tap(&netlink, &tap_name).await {
                tracing::warn!(tap = %tap_name, "undoing CNI prepare: {undo}");
            }
            return Err(e);
        }
        tracing::info!(netns = %netns_path.display(), interface = %link.name, tap = %tap_name, ip = %address.ip, "redirected CNI interface to tap");
        Ok(CniAttachment {
            netns: netns_path,
            interface: link.name,
            tap,
            mac,
            ip: address.ip,
            prefix_len: address.prefix_len,
            gateway,
            mtu: link.mtu,
        })
    })
    .await
}

/// Undoes [`prepare`]: removes the redirects and the tap. Idempotent. (When
/// the plugin deletes the namespace, both go with it anyway.)
pub async fn teardown(netns: &Path, tap_name: &str, interface: &str) -> Result<()> {
    check_ifname(tap_name)?;
    check_ifname(interface)?;
    let (tap_name, interface) = (tap_name.to_string(), interface.to_string());
    in_netns(netns, async move {
        unwire(&interface);
        let netlink = Netlink::connect()?;
        delete_tap(&netlink, &tap_name).await?;
        Ok(())
    })
    .await
}

/// Removes what a sandbox whose monitor died left in the namespace at
/// `netns`: its tap `tap_name` and the redirect from the interface it was
/// wired to. Nothing to do (a namespace already deleted, no such tap) is
/// not an error.
pub async fn remove_leftovers(netns: &Path, tap_name: &str) -> Result<()> {
    check_ifname(tap_name)?;
    if !netns.exists() {
        return Ok(());
    }
    let netns_path = netns.to_path_buf();
    let tap_name = tap_name.to_string();
    in_netns(netns, async move {
        let netlink = Netlink::connect()?;
        if netlink.link(&tap_name).await?.is_none() {
            return Ok(());
        }
        if let Ok(link) = find_interface(&netlink, &netns_path, None, &tap_name).await {
            unwire(&link.name);
        }
        delete_tap(&netlink, &tap_name).await?;
        tracing::info!(netns = %netns_path.display(), tap = %tap_name, "removed a dead sandbox's tap");
        Ok(())
    })
    .await
}

/// The interface to take over: the one named, or else the only one (not
/// loopback, not a tap) with an IPv4 address.
async fn find_interface(
    netlink: &Netlink,
    netns: &Path,
    wanted: Option<&str>,
    tap_name: &str,
) -> Result<Link> {
    if let Some(name) = wanted {
        return netlink.link(name).await?.ok_or_else(|| NetworkError::Cni {
            netns: netns.to_path_buf(),
            reason: format!("no interface {name}"),
        });
    }
    let addressed: Vec<u32> = netlink
        .ipv4_addresses(None)
        .await?
        .iter()
        .map(|a| a.index)
        .collect();
    let candidates: Vec<Link> = netlink
        .links()
        .await?
        .into_iter()
        .filter(|l| l.name != "lo" && l.name != tap_name && l.kind.as_deref() != Some("tun"))
        .filter(|l| addressed.contains(&l.index))
        .collect();
    match candidates.as_slice() {
        [only] => Ok(only.clone()),
        [] => Err(NetworkError::Cni {
            netns: netns.to_path_buf(),
            reason: "no interface with an IPv4 address (did the CNI plugin run?)".to_string(),
        }),
        several => Err(NetworkError::Cni {
            netns: netns.to_path_buf(),
            reason: format!(
                "several interfaces with addresses ({}); name the one to use",
                several
                    .iter()
                    .map(|l| l.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// Brings the tap up with the interface's MTU and installs both redirects.
async fn wire(netlink: &Netlink, link: &Link, tap_name: &str) -> Result<()> {
    let tap = netlink.require_link(tap_name).await?;
    netlink.set_mtu(tap.index, link.mtu).await?;
    netlink.set_up(tap.index).await?;
    redirect(&link.name, tap_name)?;
    redirect(tap_name, &link.name)
}

/// Every frame arriving on `from` leaves through `to`.
fn redirect(from: &str, to: &str) -> Result<()> {
    tc(&["qdisc", "add", "dev", from, "ingress"])?;
    tc(&[
        "filter", "add", "dev", from, "parent", "ffff:", "protocol", "all", "u32", "match", "u8",
        "0", "0", "action", "mirred", "egress", "redirect", "dev", to,
    ])
}

/// Removes the ingress qdisc (and so the redirect) of the interface; the
/// tap's goes with the tap.
fn unwire(interface: &str) {
    // Missing already is fine: this is cleanup.
    let _ = tc(&["qdisc", "del", "dev", interface, "ingress"]);
}

fn tc(args: &[&str]) -> Result<()> {
    tool::run("tc", "iproute2", args, None).map(drop)
}

/// Runs `work` on a fresh thread that has entered the network namespace at
/// `netns` (so sockets, taps, `/proc/sys/net` and child processes all act
/// there), with its own single-threaded runtime. The caller's thread never
/// changes namespace.
pub(crate) async fn in_netns<T, F>(netns: &Path, work: F) -> Result<T>
where
    T: Send + 'static,
    F: Future<Output = Result<T>> + Send + 'static,
{
    let file = std::fs::File::open(netns).map_err(|e| {
        NetworkError::io(format!("opening network namespace {}", netns.display()), e)
    })?;
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let path = netns.to_path_buf();
    std::thread::Builder::new()
        .name("hull-netns".to_string())
        .spawn(move || {
            let result = (|| {
                setns(&file, CloneFlags::CLONE_NEWNET).map_err(|errno| {
                    NetworkError::io(
                        format!("entering network namespace {}", path.display()),
                        errno.into(),
                    )
                })?;
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| {
                        NetworkError::io("starting a runtime in the network namespace", e)
                    })?;
                runtime.block_on(work)
            })();
            // The receiver only goes away if the caller gave up waiting.
            let _ = sender.send(result);
        })
        .map_err(|e| NetworkError::io("starting a thread for the network namespace", e))?;
    receiver
        .await
        .map_err(|_| NetworkError::Worker("the network namespace thread panicked".to_string()))?
}
