//! CNI mode on a real kernel: a namespace prepared the way a CNI plugin
//! leaves it (a veth `eth0` with an address and a default route, its peer
//! in a "plugin side" namespace), then Hull's tap + tc redirect, checked by
//! playing the VMM: reading and writing raw frames on the tap descriptor.

use super::netns::TestNetns;
use crate::network::cni;
use crate::network::names::MacAddr;
use crate::network::NetworkError;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const GUEST_IP: [u8; 4] = [10, 99, 0, 2];
const PEER_IP: [u8; 4] = [10, 99, 0, 1];

/// The MAC of `interface` in `ns`, from `ip -br link` (sysfs shows the
/// host's namespace, not this one).
fn mac_of(ns: &TestNetns, interface: &str) -> MacAddr {
    let line = ns.sh(&format!("ip -br link show dev {interface}"));
    let text = line.split_whitespace().nth(2).unwrap();
    let bytes: Vec<u8> = text
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    MacAddr::from_slice(&bytes).unwrap()
}

/// Reads frames from the tap until `wanted` matches one, for up to 5 s.
fn read_frame(tap: &mut File, wanted: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buffer = [0u8; 2048];
    while Instant::now() < deadline {
        let mut fds = [PollFd::new(tap.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, PollTimeout::from(100u16)).unwrap() == 0 {
            continue;
        }
        let n = tap.read(&mut buffer).unwrap();
        if wanted(&buffer[..n]) {
            return Some(buffer[..n].to_vec());
        }
    }
    None
}

fn is_arp_request_for(frame: &[u8], ip: [u8; 4]) -> bool {
    frame.len() >= 42
        && frame[12..14] == [0x08, 0x06]
        && frame[20..22] == [0, 1]
        && frame[38..42] == ip
}

fn is_udp_to(frame: &[u8], mac: MacAddr, ip: [u8; 4], port: u16) -> bool {
    frame.len() >= 38
        && frame[0..6] == mac.0
        && frame[12..14] == [0x08, 0x00]
        && frame[23] == 17
        && frame[30..34] == ip
        && frame[36..38] == port.to_be_bytes()
}

/// An ARP reply from the guest (`guest_mac`, GUEST_IP) to the peer.
fn arp_reply(guest_mac: MacAddr, peer_mac: MacAddr) -> Vec<u8> {
    let mut frame = Vec::with_capacity(42);
    frame.extend_from_slice(&peer_mac.0);
    frame.extend_from_slice(&guest_mac.0);
    frame.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2]);
    frame.extend_from_slice(&guest_mac.0);
    frame.extend_from_slice(&GUEST_IP);
    frame.extend_from_slice(&peer_mac.0);
    frame.extend_from_slice(&PEER_IP);
    frame
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn tap_takes_over_the_cni_veth() {
    let (plugin_side, netns) = (TestNetns::new(), TestNetns::new());
    plugin_side.sh(&format!(
        "ip link add cni0 type veth peer name eth0 netns {} && ip addr add 10.99.0.1/24 dev cni0 && ip link set cni0 up",
        netns.path().display()
    ));
    netns.sh("ip addr add 10.99.0.2/24 dev eth0 && ip link set eth0 up && ip route add default via 10.99.0.1");
    let (veth_mac, peer_mac) = (mac_of(&netns, "eth0"), mac_of(&plugin_side, "cni0"));

    let mut attachment = runtime()
        .block_on(cni::prepare(&netns.path(), "tap0", None))
        .unwrap();
    assert_eq!(attachment.interface, "eth0");
    assert_eq!(attachment.ip, Ipv4Addr::from(GUEST_IP));
    assert_eq!(attachment.prefix_len, 24);
    assert_eq!(attachment.gateway, Some(Ipv4Addr::from(PEER_IP)));
    assert_eq!(attachment.mac, veth_mac);
    assert_eq!(attachment.mtu, 1500);
    let filters = netns.sh("tc filter show dev eth0 ingress; tc filter show dev tap0 ingress");
    assert!(
        filters.contains("Egress Redirect to device tap0"),
        "{filters}"
    );
    assert!(
        filters.contains("Egress Redirect to device eth0"),
        "{filters}"
    );

    // Play the VMM. The plugin side sends UDP to the guest; that needs ARP
    // first, which must come out of the tap...
    let mut tap = File::from(attachment.tap.take_fd().unwrap());
    let sending = AtomicBool::new(true);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            plugin_side.run(|| {
                let socket = UdpSocket::bind("10.99.0.1:0").unwrap();
                for _ in 0..50 {
                    if !sending.load(Ordering::Relaxed) {
                        break;
                    }
                    let _ = socket.send_to(b"hello guest", "10.99.0.2:9");
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        });
        let request = read_frame(&mut tap, |f| is_arp_request_for(f, GUEST_IP));
        assert!(request.is_some(), "no ARP request came out of the tap");
        // ...the guest's answer, written to the tap, must reach the plugin side...
        tap.write_all(&arp_reply(veth_mac, peer_mac)).unwrap();
        // ...which then sends the datagram to the guest's MAC, through the tap.
        let datagram = read_frame(&mut tap, |f| is_udp_to(f, veth_mac, GUEST_IP, 9));
        sending.store(false, Ordering::Relaxed);
        assert!(datagram.is_some(), "no UDP datagram came out of the tap");
    });
    let neighbours = plugin_side.sh("ip neigh show 10.99.0.2");
    assert!(neighbours.contains(&veth_mac.to_string()), "{neighbours}");

    runtime()
        .block_on(cni::teardown(&netns.path(), "tap0", "eth0"))
        .unwrap();
    assert!(
        !netns.sh_output("ip link show dev tap0").status.success(),
        "tap survived teardown"
    );
    assert!(!netns.sh("tc qdisc show dev eth0").contains("ingress"));
    // Idempotent.
    runtime()
        .block_on(cni::teardown(&netns.path(), "tap0", "eth0"))
        .unwrap();
}

#[test]
fn prepare_refuses_a_namespace_without_a_cni_interface() {
    let netns = TestNetns::new();
    let err = runtime()
        .block_on(cni::prepare(&netns.path(), "tap0", None))
        .unwrap_err();
    assert!(matches!(err, NetworkError::Cni { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("no interface with an IPv4 address"),
        "{err}"
    );
    let err = runtime()
        .block_on(cni::prepare(&netns.path(), "tap0", Some("eth7")))
        .unwrap_err();
    assert!(err.to_string().ends_with("no interface eth7"), "{err}");
    assert!(
        !netns.sh_output("ip link show dev tap0").status.success(),
        "tap left behind"
    );
}

#[test]
fn leftovers_of_a_dead_sandbox_go_without_knowing_the_interface() {
    let (plugin_side, netns) = (TestNetns::new(), TestNetns::new());
    plugin_side.sh(&format!(
        "ip link add cni0 type veth peer name eth0 netns {} && ip addr add 10.99.0.1/24 dev cni0 && ip link set cni0 up",
        netns.path().display()
    ));
    netns.sh("ip addr add 10.99.0.2/24 dev eth0 && ip link set eth0 up");
    // A monitor prepared the tap, then was killed: its attachment is gone.
    let mut attachment = runtime()
        .block_on(cni::prepare(&netns.path(), "tap0", None))
        .unwrap();
    attachment.tap.close_fd();
    drop(attachment);
    assert!(netns.sh("tc qdisc show dev eth0").contains("ingress"));

    runtime()
        .block_on(cni::remove_leftovers(&netns.path(), "tap0"))
        .unwrap();
    assert!(
        !netns.sh_output("ip link show dev tap0").status.success(),
        "tap survived"
    );
    assert!(!netns.sh("tc qdisc show dev eth0").contains("ingress"));
    // Nothing left: a no-op, as is a namespace that is gone.
    runtime()
        .block_on(cni::remove_leftovers(&netns.path(), "tap0"))
        .unwrap();
    runtime()
        .block_on(cni::remove_leftovers(
            std::path::Path::new("/run/netns/hull-no-such"),
            "tap0",
        ))
        .unwrap();
    // The interface is free to be taken over again.
    runtime()
        .block_on(cni::prepare(&netns.path(), "tap0", None))
        .unwrap();
    runtime()
        .block_on(cni::teardown(&netns.path(), "tap0", "eth0"))
        .unwrap();
}
