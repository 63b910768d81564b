//! Private network namespaces for tests, and tiny TCP clients and servers
//! that run inside them.
//!
//! A [`TestNetns`] is created by a short-lived thread that `unshare`s a new
//! network namespace and hands back a descriptor of it; the namespace lives
//! exactly as long as that descriptor (and any thread or process still in
//! it). Work runs in it on scoped threads that `setns` first, so the test
//! harness's threads never change namespace and nothing is ever created in
//! the host's. Everything made inside (bridges, taps, veths, nft tables,
//! sysctls) vanishes with the namespace, also when a test panics halfway:
//! dropping the `TestNetns` is the cleanup guard.

use crate::network::bridge::attach_port;
use crate::network::netlink::Netlink;
use nix::sched::{setns, unshare, CloneFlags};
use std::fs::File;
use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a negative connection test waits before calling it blocked.
pub const BLOCKED_TIMEOUT: Duration = Duration::from_millis(1500);

/// Namespace tests need root and /dev/net/tun; where they are missing the
/// test fails, saying why: it never passes without having run.
fn require_namespace_support() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "network namespace tests need root"
    );
    assert!(
        std::path::Path::new("/dev/net/tun").exists(),
        "network namespace tests need /dev/net/tun"
    );
}

/// A network namespace owned by the test.
pub struct TestNetns {
    ns: File,
}

/// The inode of a namespace file: equal inodes, same namespace.
fn ns_inode(path: &str) -> u64 {
    std::fs::metadata(path).unwrap().ino()
}

impl TestNetns {
    /// A new namespace with loopback up.
    pub fn new() -> Self {
        require_namespace_support();
        let ns = std::thread::spawn(|| {
            unshare(CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
            File::open("/proc/thread-self/ns/net").expect("opening the new namespace")
        })
        .join()
        .expect("namespace thread");
        let ns = Self { ns };
        // A new namespace copies the host's forwarding (on wherever Docker
        // ran): the tests start from Linux's default, off.
        ns.sh("ip link set lo up && echo 0 > /proc/sys/net/ipv4/ip_forward");
        ns
    }

    /// A path other processes (and `setns` users) can open to enter it.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!(
            "/proc/{}/fd/{}",
            std::process::id(),
            self.ns.as_raw_fd()
        ))
    }

    /// Runs `f` on a thread inside the namespace.
    pub fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    self.enter();
                    f()
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Runs the future `f` makes on a single-threaded runtime inside the
    /// namespace (the future never leaves that thread).
    pub fn block_on<R: Send, Fut: Future<Output = R>>(&self, f: impl FnOnce() -> Fut + Send) -> R {
        self.run(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(f())
        })
    }

    /// Moves the calling thread into the namespace, and checks it left the
    /// process's (host) namespace: nothing below may touch the host.
    fn enter(&self) {
        setns(&self.ns, CloneFlags::CLONE_NEWNET).expect("setns");
        assert_ne!(
            ns_inode("/proc/thread-self/ns/net"),
            ns_inode("/proc/self/ns/net"),
            "test thread is still in the host's network namespace"
        );
    }

    /// Runs a shell script inside the namespace; panics with its output if
    /// it fails. Returns its standard output.
    pub fn sh(&self, script: &str) -> String {
        let output = self.sh_output(script);
        assert!(
            output.status.success(),
            "`{script}` failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs a shell script inside the namespace, whatever its outcome.
    pub fn sh_output(&self, script: &str) -> std::process::Output {
        Command::new("nsenter")
            .arg(format!("--net={}", self.path().display()))
            .args(["sh", "-c", script])
            .output()
            .expect("running nsenter")
    }

    /// A TCP server on `address` in this namespace that answers every
    /// connection with `"{tag} {peer address}\n"`, until dropped (or 60 s).
    pub fn tcp_server(&self, address: SocketAddr, tag: &str) -> TcpServer {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let ns = self.ns.try_clone().expect("dup namespace fd");
        let (tag, flag) = (tag.to_string(), stop.clone());
        let thread = std::thread::spawn(move || {
            setns(&ns, CloneFlags::CLONE_NEWNET).expect("setns");
            let listener = TcpListener::bind(address).expect("binding test server");
            listener.set_nonblocking(true).expect("nonblocking");
            ready_tx.send(()).expect("ready");
            let deadline = Instant::now() + Duration::from_secs(60);
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((mut stream, peer)) => {
                        let _ = stream.write_all(format!("{tag} {peer}\n").as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        ready_rx.recv().expect("test server did not start");
        TcpServer {
            stop,
            thread: Some(thread),
        }
    }

    /// Connects from this namespace to `address` and reads the answer;
    /// `Err` if no connection within [`BLOCKED_TIMEOUT`].
    pub fn tcp_request(&self, address: SocketAddr) -> std::io::Result<String> {
        self.run(|| {
            let mut stream = TcpStream::connect_timeout(&address, BLOCKED_TIMEOUT)?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            let mut answer = String::new();
            stream.read_to_string(&mut answer)?;
            Ok(answer.trim().to_string())
        })
    }

    /// Connects a veth from `self` (end `host_end`, made a bridge port of
    /// `bridge` by Hull's own [`attach_port`], as a tap would be) to
    /// `guest` (end `eth0`, with `ip/prefix` and a default route via
    /// `gateway`): a stand-in for a VM's NIC that carries traffic without a
    /// VMM.
    pub fn plug_guest(
        &self,
        guest: &TestNetns,
        host_end: &str,
        bridge: &str,
        ip: &str,
        gateway: &str,
    ) {
        self.sh(&format!(
            "ip link add {host_end} type veth peer name eth0 netns {guest}",
            guest = guest.path().display()
        ));
        self.block_on(|| async {
            let netlink = Netlink::connect().expect("netlink");
            attach_port(&netlink, host_end, bridge, 1500)
                .await
                .expect("attaching the veth");
        });
        guest.sh(&format!(
            "ip addr add {ip} dev eth0 && ip link set eth0 up && ip route add default via {gateway}"
        ));
    }
}

/// A running [`TestNetns::tcp_server`]; stops when dropped.
pub struct TcpServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `ip:port` as a socket address.
pub fn addr(text: &str) -> SocketAddr {
    text.parse().expect("socket address")
}
