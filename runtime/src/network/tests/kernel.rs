//! Bridges, taps, sysctls and the nftables table on a real kernel, each
//! test in its own namespace.

use super::netns::TestNetns;
use crate::network::bridge::{attach_port, delete_bridge, ensure_bridge, BridgeSpec};
use crate::network::error::NetworkError;
use crate::network::names::tap_name;
use crate::network::nat::{self, NetworkRules, Ruleset};
use crate::network::netlink::Netlink;
use crate::network::ports::{PortReservation, Protocol, PublishedPort};
use crate::network::tap::{delete_tap, Tap, TapOptions};
use std::net::Ipv4Addr;

fn default_bridge() -> BridgeSpec {
    BridgeSpec {
        name: "hull0".into(),
        subnet: "10.88.0.0/16".parse().unwrap(),
        gateway: Ipv4Addr::new(10, 88, 0, 1),
        mtu: 1500,
    }
}

#[test]
fn bridge_and_tap_lifecycle() {
    let ns = TestNetns::new();
    ns.block_on(|| async {
        let netlink = Netlink::connect().unwrap();
        let spec = default_bridge();
        let index = ensure_bridge(&netlink, &spec).await.unwrap();
        assert_eq!(
            ensure_bridge(&netlink, &spec).await.unwrap(),
            index,
            "not idempotent"
        );
        let bridge = netlink.require_link("hull0").await.unwrap();
        assert_eq!(bridge.kind.as_deref(), Some("bridge"));
        assert!(bridge.up);
        assert_eq!(bridge.mac.unwrap().0[0], 0x02, "bridge MAC not fixed");
        let addresses = netlink.ipv4_addresses(Some(index)).await.unwrap();
        assert_eq!(addresses.len(), 1);
        assert_eq!(
            (addresses[0].ip, addresses[0].prefix_len),
            (spec.gateway, 16)
        );
        let localnet =
            std::fs::read_to_string("/proc/sys/net/ipv4/conf/hull0/route_localnet").unwrap();
        assert_eq!(localnet.trim(), "1");

        let name = tap_name(&"0123456789abcdef".repeat(4));
        let mut tap = Tap::create(&name).unwrap();
        assert!(tap.fd().is_some());
        let again = Tap::create(&name).unwrap_err();
        assert!(matches!(again, NetworkError::LinkExists(_)), "{again}");
        attach_port(&netlink, &name, "hull0", 1500).await.unwrap();
        let link = netlink.require_link(&name).await.unwrap();
        assert_eq!(link.kind.as_deref(), Some("tun"));
        assert_eq!(link.controller, Some(index));
        assert!(link.up);
        let port = ns.sh(&format!("bridge -d link show dev {name}"));
        assert!(port.contains("hairpin on"), "{port}");

        // Persistent: closing Hull's descriptor keeps the device for the VMM.
        tap.close_fd();
        assert!(netlink.link(&name).await.unwrap().is_some());
        assert!(delete_tap(&netlink, &name).await.unwrap());
        assert!(netlink.link(&name).await.unwrap().is_none());
        assert!(!delete_tap(&netlink, &name).await.unwrap());

        assert!(delete_bridge(&netlink, "hull0").await.unwrap());
        assert!(netlink.link("hull0").await.unwrap().is_none());
    });
}

#[test]
fn non_persistent_tap_goes_with_its_descriptor() {
    let ns = TestNetns::new();
    ns.block_on(|| async {
        let netlink = Netlink::connect().unwrap();
        let options = TapOptions {
            vnet_hdr: true,
            persistent: false,
        };
        let tap = Tap::create_with("hulltapvolatil", options).unwrap();
        assert!(netlink.link("hulltapvolatil").await.unwrap().is_some());
        drop(tap);
        // Gone once no descriptor is left: a child another test forks at
        // this moment holds a copy until its exec (close-on-exec), briefly.
        let mut gone = false;
        for _ in 0..100 {
            if netlink.link("hulltapvolatil").await.unwrap().is_none() {
                gone = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(gone, "the tap outlived its descriptor");
    });
}

#[test]
fn ensure_bridge_never_takes_over_a_foreign_interface() {
    let ns = TestNetns::new();
    ns.sh("ip link add hull0 type veth peer name hull0peer");
    ns.block_on(|| async {
        let netlink = Netlink::connect().unwrap();
        let err = ensure_bridge(&netlink, &default_bridge())
            .await
            .unwrap_err();
        assert!(matches!(err, NetworkError::LinkExists(_)), "{err}");
    });
}

fn sample_ruleset() -> Ruleset {
    Ruleset {
        networks: vec![
            NetworkRules {
                bridge: "hull0".into(),
                subnet: "10.88.0.0/16".parse().unwrap(),
            },
            NetworkRules {
                bridge: "hull-0123456789".into(),
                subnet: "10.89.0.0/24".parse().unwrap(),
            },
        ],
        ports: vec![PortReservation {
            owner: "f00d".into(),
            network: "bridge".into(),
            guest_ip: Ipv4Addr::new(10, 88, 0, 2),
            port: PublishedPort {
                host_ip: Ipv4Addr::UNSPECIFIED,
                host_port: 8080,
                container_port: 80,
                protocol: Protocol::Udp,
            },
        }],
    }
}

#[test]
fn nft_table_is_replaced_whole_and_removed_without_trace() {
    let ns = TestNetns::new();
    // Someone else's table must survive everything Hull does.
    ns.sh("nft add table ip other && nft add chain ip other c");
    ns.run(|| {
        assert!(!nat::table_exists().unwrap());
        nat::remove_table().unwrap(); // nothing to remove: fine
        nat::apply(&sample_ruleset()).unwrap();
        assert!(nat::table_exists().unwrap());
        let listed = nat::list_table().unwrap();
        assert!(
            listed.contains("udp dport 8080 dnat to 10.88.0.2:80"),
            "{listed}"
        );
        assert!(listed.contains("comment \"hull:f00d\""), "{listed}");

        // Re-applying replaces: the rule is there once, not twice.
        nat::apply(&sample_ruleset()).unwrap();
        let listed = nat::list_table().unwrap();
        assert_eq!(listed.matches("dnat to").count(), 1, "{listed}");

        // Dropping the port drops its rule.
        let mut fewer = sample_ruleset();
        fewer.ports.clear();
        nat::apply(&fewer).unwrap();
        assert!(!nat::list_table().unwrap().contains("dnat to"));

        nat::remove_table().unwrap();
        assert!(!nat::table_exists().unwrap());
    });
    let ruleset = ns.sh("nft list ruleset");
    assert!(!ruleset.contains("hull"), "{ruleset}");
    assert!(ruleset.contains("table ip other"), "{ruleset}");
}
