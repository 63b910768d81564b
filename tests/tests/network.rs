//! Bridged networking end to end, inside a network namespace each test
//! creates (never the host's): published ports, container addresses,
//! isolated networks, `--network none`, and nothing left after `rm -f`.

use hull_tests::harness::{stderr, stdout, Hull, BUSYBOX_IMAGE};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A network namespace for one test, deleted (with everything in it) on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Self {
        let name = format!("hulltest-{tag}-{}", std::process::id());
        let status = Command::new("ip").args(["netns", "add", &name]).status().expect("ip netns add");
        assert!(status.success(), "cannot create network namespace {name}");
        let netns = Self { name };
        assert!(netns.sh(&["ip", "link", "set", "lo", "up"]).status.success());
        netns
    }

    /// Runs a command inside the namespace.
    fn sh(&self, args: &[&str]) -> Output {
        Command::new("ip").args(["netns", "exec", &self.name]).args(args).output().expect("ip netns exec")
    }

    /// Runs `hull ARGS` inside the namespace.
    fn hull(&self, hull: &Hull, args: &[&str]) -> Output {
        let mut command = hull.command(args);
        let program = command.get_program().to_owned();
        let envs: Vec<_> = command.get_envs().map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned()))).collect();
        let mut wrapped = Command::new("ip");
        wrapped.args(["netns", "exec", &self.name]).arg(program).args(args);
        for (key, value) in envs {
            match value {
                Some(value) => wrapped.env(key, value),
                None => wrapped.env_remove(key),
            };
        }
        wrapped.output().expect("running hull in the namespace")
    }

    fn ok(&self, hull: &Hull, args: &[&str]) -> String {
        let out = self.hull(hull, args);
        assert!(out.status.success(), "hull {args:?} failed ({:?}): {}", out.status.code(), stderr(&out));
        stdout(&out).trim().to_string()
    }

    /// The body of `GET /` from `host port`, from the namespace's host side,
    /// retried while the server starts. (busybox-static's wget crashes in
    /// its name-service code, so the request goes through `nc`.)
    fn fetch(&self, host: &str, port: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = Command::new("ip")
                .args(["netns", "exec", &self.name, "sh", "-c", &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 3 {host} {port}")])
                .output()
                .expect("nc");
            let body = http_body(&stdout(&out));
            if !body.is_empty() || Instant::now() > deadline {
                return body;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Kill whatever a failed test left running in the namespace, then delete it.
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &self.name]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// The body of an HTTP response.
fn http_body(response: &str) -> String {
    response.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default()
}

/// A shell command that fetches `GET /` from `host port` with busybox nc.
fn nc_get(host: &str, port: &str) -> String {
    format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {host} {port}")
}

const HTTPD: &str = "mkdir -p /www && echo hello-from-hull > /www/index.html && exec httpd -f -p 80 -h /www";

#[test]
fn published_port_addresses_isolation_and_cleanup() {
    let hull = Hull::new();
    hull.load_busybox().unwrap();
    let ns = Netns::new("net");

    let web = ns.ok(&hull, &["run", "-d", "--name", "web", "-p", "8080:80", BUSYBOX_IMAGE, "sh", "-c", HTTPD]);
    assert_eq!(web.len(), 64);
    // Reachable on the host's loopback through the published port...
    assert_eq!(ns.fetch("127.0.0.1", "8080"), "hello-from-hull\n");
    // ...and at the container's own address on the bridge.
    let ip = ns.ok(&hull, &["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web"]);
    assert!(ip.starts_with("10.88."), "container address {ip}");
    assert_eq!(ns.fetch(&ip, "80"), "hello-from-hull\n");
    assert_eq!(ns.ok(&hull, &["port", "web"]), "80/tcp -> 0.0.0.0:8080");
    assert!(ns.ok(&hull, &["ps"]).contains("0.0.0.0:8080->80/tcp"));
    let hosts = ns.ok(&hull, &["exec", "web", "cat", "/etc/hosts"]);
    assert!(hosts.contains(&ip), "/etc/hosts: {hosts}");
    let eth0 = ns.ok(&hull, &["exec", "web", "ip", "-4", "-o", "addr", "show", "eth0"]);
    assert!(eth0.contains(&ip), "{eth0}");

    // Another container on the same network reaches it by address.
    let out = ns.hull(&hull, &["run", "--rm", BUSYBOX_IMAGE, "sh", "-c", &nc_get(&ip, "80")]);
    assert_eq!(http_body(&stdout(&out)), "hello-from-hull\n", "stderr: {}", stderr(&out));

    // A second container cannot take the same host port, and leaves nothing.
    let taps_before = ns.sh(&["ip", "-o", "link", "show"]).stdout;
    let out = ns.hull(&hull, &["run", "-d", "--name", "clash", "-p", "8080:80", BUSYBOX_IMAGE, "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("port is already allocated"), "{}", stderr(&out));
    assert_eq!(ns.sh(&["ip", "-o", "link", "show"]).stdout, taps_before, "the failed run left a link behind");

    // A container on another network cannot reach it at all.
    ns.ok(&hull, &["network", "create", "isolated"]);
    assert!(ns.ok(&hull, &["network", "ls"]).contains("isolated"));
    let out = ns.hull(&hull, &["run", "--rm", "--network", "isolated", BUSYBOX_IMAGE, "sh", "-c", &nc_get(&ip, "80")]);
    assert_eq!(http_body(&stdout(&out)), "", "isolated network reached web: {}", stdout(&out));

    // --network none: loopback only.
    let links = ns.ok(&hull, &["run", "--rm", "--network", "none", BUSYBOX_IMAGE, "ls", "/sys/class/net"]);
    assert_eq!(links.split_whitespace().collect::<Vec<_>>(), ["lo"]);

    // rm -f $(hull ps -aq): no taps, leases or containers left.
    let ids = ns.ok(&hull, &["ps", "-aq"]);
    let mut args = vec!["rm", "-f"];
    args.extend(ids.lines());
    ns.ok(&hull, &args);
    ns.ok(&hull, &["network", "rm", "isolated"]);
    let links = stdout(&ns.sh(&["ip", "-o", "link", "show"]));
    assert!(!links.contains("hulltap"), "taps left: {links}");
    let leases = std::fs::read_to_string(hull.root().join("network/bridge/leases.json")).unwrap_or_default();
    assert!(!leases.contains(&web), "lease left: {leases}");
}
