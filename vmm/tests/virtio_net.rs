//! virtio-net end to end: a tap in a network namespace this test creates
//! (and always deletes), hull-vmm inside it, and a raw AF_PACKET peer on
//! the tap exchanging test frames (EtherType 0x88b5) with the guest.

mod common;

use std::ffi::CString;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

const ETHERTYPE: u16 = 0x88b5;
const TAP: &str = "hvt0";

/// A network namespace deleted on drop, also when the test panics.
struct Netns(String);

fn ip(args: &[&str]) {
    let status = Command::new("ip")
        .args(args)
        .status()
        .expect("cannot run `ip` (iproute2)");
    assert!(status.success(), "ip {args:?} failed");
}

impl Netns {
    fn new() -> Self {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("hullvmm-{}-{n}", std::process::id());
        ip(&["netns", "add", &name]);
        let ns = Netns(name);
        ip(&["-n", &ns.0, "tuntap", "add", "dev", TAP, "mode", "tap"]);
        ip(&["-n", &ns.0, "link", "set", TAP, "up"]);
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn check(ret: libc::c_int, what: &str) -> libc::c_int {
    assert!(ret >= 0, "{what}: {}", std::io::Error::last_os_error());
    ret
}

/// In the namespace: wait for the guest's frame, answer it. Returns the
/// payload the guest sent.
fn peer(ns: &str, ready: mpsc::Sender<()>) -> Vec<u8> {
    let path = CString::new(format!("/run/netns/{ns}")).unwrap();
    // SAFETY: plain syscalls on descriptors this function owns; setns only
    // moves this thread into the namespace.
    unsafe {
        let ns_fd = check(
            libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC),
            "open netns",
        );
        check(libc::setns(ns_fd, libc::CLONE_NEWNET), "setns");
        libc::close(ns_fd);
        let sock = check(
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW,
                i32::from(ETHERTYPE.to_be()),
            ),
            "AF_PACKET socket",
        );
        let ifname = CString::new(TAP).unwrap();
        let ifindex = libc::if_nametoindex(ifname.as_ptr());
        assert!(ifindex > 0, "no {TAP} in {ns}");
        let mut addr: libc::sockaddr_ll = std::mem::zeroed();
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = ETHERTYPE.to_be();
        addr.sll_ifindex = ifindex as i32;
        check(
            libc::bind(
                sock,
                &addr as *const _ as *const libc::sockaddr,
                std::mem::size_of_val(&addr) as u32,
            ),
            "bind",
        );
        let timeout = libc::timeval {
            tv_sec: 60,
            tv_usec: 0,
        };
        check(
            libc::setsockopt(
                sock,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &timeout as *const _ as *const libc::c_void,
                std::mem::size_of_val(&timeout) as u32,
            ),
            "SO_RCVTIMEO",
        );
        ready.send(()).unwrap();
        let mut frame = [0u8; 2048];
        let n = loop {
            let n = check(
                libc::recv(sock, frame.as_mut_ptr().cast(), frame.len(), 0) as i32,
                "recv",
            ) as usize;
            if n >= 14 && frame[12..14] == ETHERTYPE.to_be_bytes() {
                break n;
            }
        };
        let mut reply = Vec::new();
        reply.extend_from_slice(&frame[6..12]); // to the guest's MAC
        reply.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
        reply.extend_from_slice(&ETHERTYPE.to_be_bytes());
        reply.extend_from_slice(b"hello from host net");
        reply.resize(60, 0);
        check(
            libc::send(sock, reply.as_ptr().cast(), reply.len(), 0) as i32,
            "send",
        );
        libc::close(sock);
        frame[..n].to_vec()
    }
}

#[test]
fn frames_flow_both_ways_through_a_tap() {
    common::require_kvm();
    let guest = common::test_guest();
    let ns = Netns::new();
    let (ready_tx, ready_rx) = mpsc::channel();
    let ns_name = ns.0.clone();
    let peer_thread = std::thread::spawn(move || peer(&ns_name, ready_tx));
    ready_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("peer socket ready");

    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", &ns.0])
        .arg(env!("CARGO_BIN_EXE_hull-vmm"))
        .arg("--kernel")
        .arg(guest)
        .args([
            "--cmdline",
            "net=1 action=exit:2",
            "--mem-mib",
            "64",
            "--net-tap",
            TAP,
        ])
        .env("NO_COLOR", "1");
    let output = common::run_with_timeout(command, Duration::from_secs(60));
    let out = common::stdout(&output);
    let sent = peer_thread.join().expect("peer thread");
    assert_eq!(
        output.status.code(),
        Some(2),
        "{out}\n{}",
        common::stderr(&output)
    );
    assert!(out.contains("net: mac 0x2 0x48 0x55 0x4c 0x0 0x1"), "{out}");
    assert!(out.contains("net: got frame hello from host net"), "{out}");
    assert_eq!(&sent[6..12], &[0x02, 0x48, 0x55, 0x4c, 0x00, 0x01]);
    assert!(sent[14..].starts_with(b"hello from guest net"));
}

#[test]
fn bad_tap_name_is_a_one_line_error() {
    common::require_kvm();
    let ns = Netns::new();
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", &ns.0])
        .arg(env!("CARGO_BIN_EXE_hull-vmm"))
        .arg("--kernel")
        .arg(common::test_guest())
        .args(["--net-tap", "a-tap-name-too-long-for-linux"]);
    let output = common::run_with_timeout(command, Duration::from_secs(20));
    let err = common::stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("cannot open tap interface a-tap-name-too-long-for-linux"),
        "{err}"
    );
}
