//! `NetworkManager` end to end on a real kernel: attach/detach, failures
//! leaving nothing behind, stale cleanup, user-defined networks.

use super::netns::TestNetns;
use crate::network::names::tap_name;
use crate::network::nat;
use crate::network::netlink::Netlink;
use crate::network::{parse_publish, AttachRequest, NetworkError, NetworkManager};
use crate::process::ProcessIdentity;
use std::collections::HashSet;
use std::net::Ipv4Addr;

const SANDBOX_A: &str = "aaaaaaaa00000000000000000000000000000000000000000000000000000001";
const SANDBOX_B: &str = "bbbbbbbb00000000000000000000000000000000000000000000000000000002";

fn request(sandbox: &str, publish: &[&str]) -> AttachRequest {
    let mut request = AttachRequest::new(sandbox);
    request.publish = publish
        .iter()
        .flat_map(|p| parse_publish(p).unwrap())
        .collect();
    request.hostname = "web".into();
    request
}

/// Names of the links in the current namespace.
async fn link_names() -> Vec<String> {
    Netlink::connect()
        .unwrap()
        .links()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect()
}

fn ip_forward() -> String {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn attach_detach_and_teardown() {
    let ns = TestNetns::new();
    let state = tempfile::tempdir().unwrap();
    let manager = NetworkManager::new(state.path());
    ns.block_on(|| async {
        assert_eq!(ip_forward(), "0");
        let attachment = manager
            .attach(&request(SANDBOX_A, &["8080:80", "127.0.0.1::53/udp"]))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(attachment.ip, Ipv4Addr::new(10, 88, 0, 2));
        assert_eq!(attachment.prefix_len, 16);
        assert_eq!(attachment.gateway, Ipv4Addr::new(10, 88, 0, 1));
        assert_eq!(attachment.netmask(), Ipv4Addr::new(255, 255, 0, 0));
        assert_eq!(attachment.mtu, 1500);
        assert_eq!(attachment.mac.0[0], 0x02);
        assert!(!attachment.dns.nameservers.is_empty());
        assert!(attachment
            .dns
            .nameservers
            .iter()
            .all(|ip| !ip.is_loopback()));
        assert!(attachment
            .hosts
            .iter()
            .any(|h| h.names == ["web"] && h.ip == attachment.ip));
        assert_eq!(attachment.tap.name(), "hulltapaaaaaaaa");
        assert_eq!(attachment.ports.len(), 2);
        assert_eq!(attachment.ports[0].to_string(), "0.0.0.0:8080->80/tcp");
        assert_ne!(attachment.ports[1].host_port, 0);
        assert_eq!(attachment.held_ports.len(), 2);
        assert_eq!(
            attachment.kernel_ip_arg(),
            "ip=10.88.0.2::10.88.0.1:255.255.0.0:web:eth0:off"
        );

        // The kernel side.
        let netlink = Netlink::connect().unwrap();
        let bridge = netlink.require_link("hull0").await.unwrap();
        let tap = netlink.require_link("hulltapaaaaaaaa").await.unwrap();
        assert_eq!(tap.controller, Some(bridge.index));
        assert_eq!(ip_forward(), "1");
        let rules = nat::list_table().unwrap();
        assert!(
            rules.contains("tcp dport 8080 dnat to 10.88.0.2:80"),
            "{rules}"
        );
        assert!(rules.contains("ip daddr 127.0.0.1 udp dport"), "{rules}");

        // A second sandbox gets the next address; the same one twice is refused.
        let second = manager
            .attach(&request(SANDBOX_B, &[]))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(second.ip, Ipv4Addr::new(10, 88, 0, 3));
        let twice = manager.attach(&request(SANDBOX_A, &[])).await.unwrap_err();
        assert!(
            matches!(twice, NetworkError::AlreadyAttached { .. }),
            "{twice}"
        );

        let details = manager.inspect_network("bridge").unwrap();
        assert_eq!(details.endpoints.len(), 2);

        manager.detach(SANDBOX_A).await.unwrap();
        manager.detach(SANDBOX_A).await.unwrap(); // idempotent
        assert!(netlink.link("hulltapaaaaaaaa").await.unwrap().is_none());
        assert!(!nat::list_table().unwrap().contains("dnat to"));
        assert_eq!(
            manager.inspect_network("bridge").unwrap().endpoints.len(),
            1
        );

        manager.teardown_all().await.unwrap();
        let links = link_names().await;
        assert!(!links.iter().any(|l| l.starts_with("hull")), "{links:?}");
        assert!(!nat::table_exists().unwrap());
        assert_eq!(ip_forward(), "0", "ip_forward not restored");
    });
}

#[test]
fn ip_forward_already_on_is_left_on() {
    let ns = TestNetns::new();
    ns.sh("echo 1 > /proc/sys/net/ipv4/ip_forward");
    let state = tempfile::tempdir().unwrap();
    let manager = NetworkManager::new(state.path());
    ns.block_on(|| async {
        manager.attach(&request(SANDBOX_A, &[])).await.unwrap();
        manager.teardown_all().await.unwrap();
        assert_eq!(ip_forward(), "1");
    });
}

#[test]
fn port_in_use_fails_and_leaves_nothing_behind() {
    let ns = TestNetns::new();
    let state = tempfile::tempdir().unwrap();
    let manager = NetworkManager::new(state.path());
    ns.block_on(|| async {
        // A host process has the port.
        let listener = std::net::TcpListener::bind("0.0.0.0:8080").unwrap();
        let err = manager
            .attach(&request(SANDBOX_A, &["9000:90", "8080:80"]))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Bind for 0.0.0.0:8080 failed: port is already allocated"
        );
        assert!(!link_names().await.contains(&tap_name(SANDBOX_A)));
        assert!(manager
            .inspect_network("bridge")
            .unwrap()
            .endpoints
            .is_empty());
        assert!(!nat::list_table().unwrap().contains("dnat to"));
        // The rolled-back 9000 is free again.
        drop(std::net::TcpListener::bind("0.0.0.0:9000").unwrap());
        drop(listener);

        // Another container has the port.
        let first = manager
            .attach(&request(SANDBOX_A, &["8080:80"]))
            .await
            .unwrap()
            .unwrap();
        let err = manager
            .attach(&request(SANDBOX_B, &["8080:81"]))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Bind for 0.0.0.0:8080 failed: port is already allocated"
        );
        assert!(!link_names().await.contains(&tap_name(SANDBOX_B)));
        let rules = nat::list_table().unwrap();
        assert_eq!(rules.matches("dnat to").count(), 1, "{rules}");
        // Even once the first holder's sockets are gone (its hull died), the
        // reservation stands until it is cleaned up.
        drop(first);
        let err = manager
            .attach(&request(SANDBOX_B, &["8080:81"]))
            .await
            .unwrap_err();
        assert!(matches!(err, NetworkError::PortAllocated(_)), "{err}");
    });
}

#[test]
fn explicit_address_taken_leaves_nothing_behind() {
    let ns = TestNetns::new();
    let state = tempfile::tempdir().unwrap();
    let manager = NetworkManager::new(state.path());
    ns.block_on(|| async {
        let mut wanted = request(SANDBOX_A, &[]);
        wanted.ip = Some(Ipv4Addr::new(10, 88, 0, 50));
        assert_eq!(
            manager.attach(&wanted).await.unwrap().unwrap().ip,
            wanted.ip.unwrap()
        );
        wanted.sandbox_id = SANDBOX_B.into();
        let err = manager.attach(&wanted).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "address 10.88.0.50 is already in use on network bridge"
        );
        assert!(!link_names().await.contains(&tap_name(SANDBOX_B)));
    });
}

/// A process standing in for a monitor that holds an attachment, and
/// can be killed as `kill -9` would.
struct FakeHolder(std::process::Child);

impl FakeHolder {
    fn start() -> Self {
        Self(
            std::process::Command::new("sleep")
                .arg("600")
                .spawn()
                .unwrap(),
        )
    }

    fn identity(&self) -> ProcessIdentity {
        ProcessIdentity::of(i64::from(self.0.id())).unwrap()
    }

    fn kill(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for FakeHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn stale_cleanup_after_kill() {
    let ns = TestNetns::new();
    let state = tempfile::tempdir().unwrap();
    let manager = NetworkManager::new(state.path());
    let (mut monitor_a, monitor_b) = (FakeHolder::start(), FakeHolder::start());
    ns.block_on(|| async {
        // Both monitors attach; A is then killed, B lives on.
        let mut wanted = request(SANDBOX_A, &["8080:80"]);
        wanted.holder = monitor_a.identity();
        drop(manager.attach(&wanted).await.unwrap());
        let mut wanted = request(SANDBOX_B, &["8081:80"]);
        wanted.holder = monitor_b.identity();
        drop(manager.attach(&wanted).await.unwrap());
        monitor_a.kill();
        // A tap nobody has a lease for (crash between lease release and tap delete).
        let orphan = crate::network::Tap::create("hulltaporphan00").unwrap();
        drop(orphan);

        let report = manager.cleanup_stale().await.unwrap();
        assert_eq!(report.leases.len(), 1);
        assert_eq!(report.leases[0].1.owner, SANDBOX_A);
        assert_eq!(report.ports.len(), 1);
        assert_eq!(report.ports[0].port.host_port, 8080);
        let mut taps = report.taps.clone();
        taps.sort();
        assert_eq!(taps, ["hulltapaaaaaaaa", "hulltaporphan00"]);

        let links = link_names().await;
        assert!(links.contains(&tap_name(SANDBOX_B)), "{links:?}");
        assert!(!links.contains(&tap_name(SANDBOX_A)), "{links:?}");
        let rules = nat::list_table().unwrap();
        assert!(!rules.contains("dport 8080 "), "{rules}");
        assert!(rules.contains("dport 8081 "), "{rules}");
        // A's port and address are free for others again.
        let reuse = manager
            .attach(&request(SANDBOX_A, &["8080:80"]))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(reuse.ports[0].host_port, 8080);
        assert!(manager.cleanup_stale().await.unwrap().is_empty());
    });
}

#[test]
fn a_killed_monitors_sandbox_attaches_again() {
    let ns = TestNetns::new();
    let state = tempfile::tempdir().unwrap();
    let manager = NetworkManager::new(state.path());
    let mut first = FakeHolder::start();
    ns.block_on(|| async {
        let mut wanted = request(SANDBOX_A, &["8080:80"]);
        wanted.holder = first.identity();
        drop(manager.attach(&wanted).await.unwrap());
        // While its monitor lives, a second attach of the sandbox is refused.
        let err = manager.attach(&request(SANDBOX_A, &[])).await.unwrap_err();
        assert!(matches!(err, NetworkError::AlreadyAttached { .. }), "{err}");
        first.kill();
        // `hull start` after `kill -9` of the monitor: the new monitor gets
        // the sandbox's network back, its old lease, port and tap gone.
        let again = manager
            .attach(&request(SANDBOX_A, &["8080:80"]))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.ports[0].host_port, 8080);
        let details = manager.inspect_network("bridge").unwrap();
        assert_eq!(details.endpoints.len(), 1, "{:?}", details.endpoints);
        assert!(details.endpoints[0].is_held());
    });
}

#[test]
fn concurrent_attaches_keep_every_sandbox() {
    let ns = TestNetns::new();
    let state = tempfile::tempdir().unwrap();
    let manager = NetworkManager::new(state.path());
    // A dead sandbox's leftovers make every attach clean up as it goes.
    let mut dead = FakeHolder::start();
    ns.block_on(|| async {
        let mut wanted = request(SANDBOX_B, &[]);
        wanted.holder = dead.identity();
        drop(manager.attach(&wanted).await.unwrap());
    });
    dead.kill();
    let owners: Vec<String> = (0..12)
        .map(|i| format!("{i:02x}cc{}", "0".repeat(60)))
        .collect();
    // Each attach on a thread of its own, all inside the test's namespace.
    let ips: HashSet<Ipv4Addr> = std::thread::scope(|scope| {
        let threads: Vec<_> = owners
            .iter()
            .map(|owner| {
                let (ns, manager) = (&ns, &manager);
                scope.spawn(move || {
                    ns.block_on(|| async {
                        manager
                            .attach(&request(owner, &[]))
                            .await
                            .unwrap()
                            .unwrap()
                            .ip
                    })
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(ips.len(), owners.len());
    ns.block_on(|| async {
        let links = link_names().await;
        for owner in &owners {
            assert!(links.contains(&tap_name(owner)), "{owner}: {links:?}");
        }
        assert!(!links.contains(&tap_name(SANDBOX_B)), "{links:?}");
    });
    let leases = manager.inspect_network("bridge").unwrap().endpoints;
    assert_eq!(leases.len(), owners.len(), "{leases:?}");
}

#[test]
fn user_defined_networks() {
    let ns = TestNetns::new();
    // A host route in the pool's first /24: the allocator must skip it.
    ns.sh("ip link add probe type veth peer name probepeer && ip addr add 10.89.0.1/24 dev probe && ip link set probe up");
    let state = tempfile::tempdir().unwrap();
    let manager = NetworkManager::new(state.path());
    ns.block_on(|| async {
        let front = manager.create_network("front", None).await.unwrap();
        assert_eq!(front.subnet.to_string(), "10.89.1.0/24");
        assert_eq!(front.gateway, Ipv4Addr::new(10, 89, 1, 1));
        assert!(front.bridge.starts_with("hull-") && front.bridge.len() == 15);
        let back = manager.create_network("back", None).await.unwrap();
        assert_eq!(back.subnet.to_string(), "10.89.2.0/24");
        let fixed = manager
            .create_network("fixed", Some("192.168.77.0/24".parse().unwrap()))
            .await
            .unwrap();
        assert_eq!(fixed.gateway, Ipv4Addr::new(192, 168, 77, 1));

        let links = link_names().await;
        for bridge in [&front.bridge, &back.bridge, &fixed.bridge] {
            assert!(links.contains(bridge), "{links:?}");
        }
        let err = manager.create_network("front", None).await.unwrap_err();
        assert_eq!(err.to_string(), "network with name front already exists");
        let err = manager
            .create_network("x", Some("10.88.5.0/24".parse().unwrap()))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "subnet 10.88.5.0/24 overlaps with network bridge (10.88.0.0/16)"
        );
        for name in ["bridge", "none", "host"] {
            let err = manager.create_network(name, None).await.unwrap_err();
            assert!(matches!(err, NetworkError::PredefinedNetwork(_)), "{err}");
        }
        assert!(matches!(
            manager.create_network("bad name", None).await.unwrap_err(),
            NetworkError::InvalidNetworkName(_)
        ));

        let names: Vec<String> = manager
            .list_networks()
            .unwrap()
            .into_iter()
            .map(|n| n.name)
            .collect();
        assert_eq!(names, ["back", "bridge", "fixed", "front"]);
        assert_eq!(
            manager.inspect_network(&front.id[..12]).unwrap().network,
            front
        );
        let rules = nat::list_table().unwrap();
        assert!(
            rules.contains(&front.bridge) && rules.contains("10.89.2.0/24"),
            "{rules}"
        );

        let mut on_front = request(SANDBOX_A, &[]);
        on_front.network = "front".into();
        let attachment = manager.attach(&on_front).await.unwrap().unwrap();
        assert_eq!(attachment.ip, Ipv4Addr::new(10, 89, 1, 2));
        assert_eq!(attachment.gateway, front.gateway);
        let err = manager.remove_network("front").await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "error while removing network: network front id {} has active endpoints",
                front.id
            )
        );
        manager.detach(SANDBOX_A).await.unwrap();
        manager.remove_network("front").await.unwrap();
        assert!(!link_names().await.contains(&front.bridge));
        assert!(!nat::list_table().unwrap().contains(&front.bridge));
        assert!(matches!(
            manager.remove_network("front").await.unwrap_err(),
            NetworkError::NetworkNotFound(_)
        ));
        assert!(matches!(
            manager.remove_network("bridge").await.unwrap_err(),
            NetworkError::PredefinedNetwork(_)
        ));

        let mut none = request(SANDBOX_B, &["80"]);
        none.network = "none".into();
        assert!(manager.attach(&none).await.unwrap().is_none());
        none.network = "host".into();
        let err = manager.attach(&none).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "network mode \"host\" is not supported by hull"
        );
        none.network = "nosuch".into();
        assert_eq!(
            manager.attach(&none).await.unwrap_err().to_string(),
            "network nosuch not found"
        );
    });
}

#[test]
fn tap_name_collision_is_refused_and_harmless() {
    let ns = TestNetns::new();
    let state = tempfile::tempdir().unwrap();
    let manager = NetworkManager::new(state.path());
    // Same first 8 hex digits: same tap name.
    let twin = "aaaaaaaa99999999999999999999999999999999999999999999999999999999";
    ns.block_on(|| async {
        manager
            .attach(&request(SANDBOX_A, &["8080:80"]))
            .await
            .unwrap();
        let err = manager
            .attach(&request(twin, &["8081:80"]))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "network interface hulltapaaaaaaaa already exists"
        );
        // The failed twin is cleaned up as a matter of course: A must not suffer.
        manager.detach(twin).await.unwrap();
        assert!(link_names().await.contains(&tap_name(SANDBOX_A)));
        assert_eq!(
            manager.inspect_network("bridge").unwrap().endpoints.len(),
            1
        );
        let rules = nat::list_table().unwrap();
        assert!(
            rules.contains("dport 8080 ") && !rules.contains("dport 8081 "),
            "{rules}"
        );
        // Detaching a sandbox that never had anything runs no nft at all.
        manager.detach("never-attached").await.unwrap();
    });
}
