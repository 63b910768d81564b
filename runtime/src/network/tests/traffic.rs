//! Real packets through Hull's bridges and rules. A tap carries nothing
//! without a VMM reading it, so a "guest" here is a namespace plugged into
//! the bridge by a veth, with the address Hull leased for the sandbox.
//!
//! Namespaces: `host` (Hull's bridges and rules), guests, and `outside`
//! (another machine, on a veth to `host` with 198.18.0.0/24, the
//! benchmarking range: never routed anywhere).

use super::netns::{addr, TestNetns};
use crate::network::{parse_publish, AttachRequest, NetworkManager};

const SANDBOX_A: &str = "aaaaaaaa00000000000000000000000000000000000000000000000000000001";
const SANDBOX_B: &str = "bbbbbbbb00000000000000000000000000000000000000000000000000000002";

/// Connects `outside` to `host`: host 198.18.0.1, outside 198.18.0.2, and a
/// route on `outside` to Hull's default subnet via the host (so that a
/// direct connection to a guest is at least attempted).
fn plug_outside(host: &TestNetns, outside: &TestNetns) {
    host.sh(&format!(
        "ip link add ext0 type veth peer name eth0 netns {} && ip addr add 198.18.0.1/24 dev ext0 && ip link set ext0 up",
        outside.path().display()
    ));
    outside.sh("ip addr add 198.18.0.2/24 dev eth0 && ip link set eth0 up && ip route add 10.88.0.0/16 via 198.18.0.1");
}

/// The peer address a test server reported (`"tag ip:port"` → `ip`).
fn peer_ip(answer: &str) -> &str {
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|peer| peer.split(':').next())
        .unwrap_or("")
}

#[test]
fn published_ports_egress_and_host_protection() {
    let (host, guest, outside) = (TestNetns::new(), TestNetns::new(), TestNetns::new());
    let state = tempfile::tempdir().unwrap();
    let manager = NetworkManager::new(state.path());

    let mut request = AttachRequest::new(SANDBOX_A);
    request.publish = parse_publish("8080:80").unwrap();
    let attachment = host.block_on(|| async { manager.attach(&request).await.unwrap().unwrap() });
    assert_eq!(attachment.ip.to_string(), "10.88.0.2");
    host.plug_guest(&guest, "vguest", "hull0", "10.88.0.2/16", "10.88.0.1");
    plug_outside(&host, &outside);

    let _guest_server = guest.tcp_server(addr("0.0.0.0:80"), "guest");
    let _outside_server = outside.tcp_server(addr("0.0.0.0:7000"), "outside");
    let _host_server = host.tcp_server(addr("0.0.0.0:7001"), "host");

    // Published port from another machine: DNAT in prerouting; the guest
    // sees the real client address.
    let answer = outside.tcp_request(addr("198.18.0.1:8080")).unwrap();
    assert_eq!(peer_ip(&answer), "198.18.0.2", "{answer}");
    // From the host itself, to localhost and to the bridge address: DNAT in
    // output (+ route_localnet and masquerade for 127.0.0.1).
    let answer = host.tcp_request(addr("127.0.0.1:8080")).unwrap();
    assert!(answer.starts_with("guest "), "{answer}");
    assert_eq!(peer_ip(&answer), "10.88.0.1", "{answer}");
    assert!(host
        .tcp_request(addr("10.88.0.1:8080"))
        .unwrap()
        .starts_with("guest "));
    // From the guest to its own published port (hairpin).
    let answer = guest.tcp_request(addr("10.88.0.1:8080")).unwrap();
    assert!(answer.starts_with("guest "), "{answer}");

    // Egress: masqueraded behind the host's address.
    let answer = guest.tcp_request(addr("198.18.0.2:7000")).unwrap();
    assert_eq!(answer.split(' ').next(), Some("outside"));
    assert_eq!(peer_ip(&answer), "198.18.0.1", "not masqueraded: {answer}");

    // Guests cannot reach host services, on the bridge address or any other.
    assert!(
        host.tcp_request(addr("127.0.0.1:7001")).is_ok(),
        "host server not up"
    );
    assert!(
        guest.tcp_request(addr("10.88.0.1:7001")).is_err(),
        "guest reached a host service"
    );
    assert!(
        guest.tcp_request(addr("198.18.0.1:7001")).is_err(),
        "guest reached a host service"
    );
    // But can ping the gateway (ICMP is let through).
    guest.sh("busybox ping -c 1 -W 2 10.88.0.1 >/dev/null");
    // The outside cannot reach a guest directly, only through published ports.
    assert!(
        outside.tcp_request(addr("10.88.0.2:80")).is_err(),
        "unsolicited inbound reached the guest"
    );

    // Detached: the published port is gone.
    host.block_on(|| async { manager.detach(SANDBOX_A).await.unwrap() });
    drop(attachment);
    assert!(
        outside.tcp_request(addr("198.18.0.1:8080")).is_err(),
        "rule survived detach"
    );
}

#[test]
fn networks_are_isolated_from_each_other() {
    let (host, guest_a, guest_b) = (TestNetns::new(), TestNetns::new(), TestNetns::new());
    let state = tempfile::tempdir().unwrap();
    let manager = NetworkManager::new(state.path());

    let (a, b, other) = host.block_on(|| async {
        let other = manager.create_network("other", None).await.unwrap();
        let a = manager
            .attach(&AttachRequest::new(SANDBOX_A))
            .await
            .unwrap()
            .unwrap();
        let mut request = AttachRequest::new(SANDBOX_B);
        request.network = "other".into();
        request.publish = parse_publish("8081:80").unwrap();
        let b = manager.attach(&request).await.unwrap().unwrap();
        (a, b, other)
    });
    assert_eq!(
        (a.ip.to_string(), b.ip.to_string()),
        ("10.88.0.2".into(), "10.89.0.2".into())
    );
    host.plug_guest(&guest_a, "vguesta", "hull0", "10.88.0.2/16", "10.88.0.1");
    host.plug_guest(
        &guest_b,
        "vguestb",
        &other.bridge,
        "10.89.0.2/24",
        "10.89.0.1",
    );
    let _server_a = guest_a.tcp_server(addr("0.0.0.0:80"), "a");
    let _server_b = guest_b.tcp_server(addr("0.0.0.0:80"), "b");

    // Both guests are reachable from the host: routing works.
    assert!(host
        .tcp_request(addr("10.88.0.2:80"))
        .unwrap()
        .starts_with("a "));
    assert!(host
        .tcp_request(addr("10.89.0.2:80"))
        .unwrap()
        .starts_with("b "));
    // But not from each other.
    assert!(
        guest_a.tcp_request(addr("10.89.0.2:80")).is_err(),
        "a reached b across networks"
    );
    assert!(
        guest_b.tcp_request(addr("10.88.0.2:80")).is_err(),
        "b reached a across networks"
    );
    // Except through a published port, like any client of the host.
    assert!(guest_a
        .tcp_request(addr("10.88.0.1:8081"))
        .unwrap()
        .starts_with("b "));
}
