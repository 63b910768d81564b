//! Bridged networking end to end, inside the network namespace the test's
//! Hull runs in (never the host's): published ports, container addresses,
//! isolated networks, `--network none`, and nothing left after `rm -f`.

use hull_tests::harness::{stderr, stdout, Hull, BUSYBOX_IMAGE};
use std::process::Output;
use std::time::{Duration, Instant};

/// Runs a command in the installation's network namespace.
fn sh(hull: &Hull, args: &[&str]) -> Output {
    hull.in_netns(args).output().expect("ip netns exec")
}

fn ok(hull: &Hull, args: &[&str]) -> String {
    let out = hull.run(args);
    assert!(out.status.success(), "hull {args:?} failed ({:?}): {}", out.status.code(), stderr(&out));
    stdout(&out).trim().to_string()
}

/// The body of `GET /` from `host port`, from the namespace's host side,
/// retried while the server starts. (busybox-static's wget crashes in its
/// name-service code, so the request goes through `nc`.)
fn fetch(hull: &Hull, host: &str, port: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = sh(hull, &["sh", "-c", &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 3 {host} {port}")]);
        let body = http_body(&stdout(&out));
        if !body.is_empty() || Instant::now() > deadline {
            return body;
        }
        std::thread::sleep(Duration::from_millis(300));
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

    let web = ok(&hull, &["run", "-d", "--name", "web", "-p", "8080:80", BUSYBOX_IMAGE, "sh", "-c", HTTPD]);
    assert_eq!(web.len(), 64);
    // Reachable on the host's loopback through the published port...
    assert_eq!(fetch(&hull, "127.0.0.1", "8080"), "hello-from-hull\n");
    // ...and at the container's own address on the bridge.
    let ip = ok(&hull, &["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web"]);
    assert!(ip.starts_with("10.88."), "container address {ip}");
    assert_eq!(fetch(&hull, &ip, "80"), "hello-from-hull\n");
    assert_eq!(ok(&hull, &["port", "web"]), "80/tcp -> 0.0.0.0:8080");
    assert!(ok(&hull, &["ps"]).contains("0.0.0.0:8080->80/tcp"));
    let hosts = ok(&hull, &["exec", "web", "cat", "/etc/hosts"]);
    assert!(hosts.contains(&ip), "/etc/hosts: {hosts}");
    let eth0 = ok(&hull, &["exec", "web", "ip", "-4", "-o", "addr", "show", "eth0"]);
    assert!(eth0.contains(&ip), "{eth0}");

    // Another container on the same network reaches it by address.
    let out = hull.run(["run", "--rm", BUSYBOX_IMAGE, "sh", "-c", &nc_get(&ip, "80")]);
    assert_eq!(http_body(&stdout(&out)), "hello-from-hull\n", "stderr: {}", stderr(&out));

    // ...and by name or alias, both ways.
    ok(&hull, &["run", "-d", "--name", "peer", "--network-alias", "buddy", BUSYBOX_IMAGE, "sleep", "300"]);
    let out = hull.run(["exec", "peer", "sh", "-c", &nc_get("web", "80")]);
    assert_eq!(http_body(&stdout(&out)), "hello-from-hull\n", "by name; stderr: {}", stderr(&out));
    let web_hosts = ok(&hull, &["exec", "web", "cat", "/etc/hosts"]);
    assert!(web_hosts.contains("peer") && web_hosts.contains("buddy"), "web does not know its new peer: {web_hosts}");
    ok(&hull, &["rm", "-f", "peer"]);
    let web_hosts = ok(&hull, &["exec", "web", "cat", "/etc/hosts"]);
    assert!(!web_hosts.contains("buddy"), "a removed peer stays in /etc/hosts: {web_hosts}");

    // A second container cannot take the same host port, and leaves nothing.
    let taps_before = sh(&hull, &["ip", "-o", "link", "show"]).stdout;
    let out = hull.run(["run", "-d", "--name", "clash", "-p", "8080:80", BUSYBOX_IMAGE, "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("port is already allocated"), "{}", stderr(&out));
    assert_eq!(sh(&hull, &["ip", "-o", "link", "show"]).stdout, taps_before, "the failed run left a link behind");

    // A container on another network cannot reach it at all.
    ok(&hull, &["network", "create", "isolated"]);
    assert!(ok(&hull, &["network", "ls"]).contains("isolated"));
    let out = hull.run(["run", "--rm", "--network", "isolated", BUSYBOX_IMAGE, "sh", "-c", &nc_get(&ip, "80")]);
    assert_eq!(http_body(&stdout(&out)), "", "isolated network reached web: {}", stdout(&out));

    // --network none: loopback only.
    let links = ok(&hull, &["run", "--rm", "--network", "none", BUSYBOX_IMAGE, "ls", "/sys/class/net"]);
    assert_eq!(links.split_whitespace().collect::<Vec<_>>(), ["lo"]);

    // rm -f $(hull ps -aq): no taps, leases or containers left.
    let ids = ok(&hull, &["ps", "-aq"]);
    let mut args = vec!["rm", "-f"];
    args.extend(ids.lines());
    ok(&hull, &args);
    ok(&hull, &["network", "rm", "isolated"]);
    let links = stdout(&sh(&hull, &["ip", "-o", "link", "show"]));
    assert!(!links.contains("hulltap"), "taps left: {links}");
    let leases = std::fs::read_to_string(hull.root().join("network/bridge/leases.json")).unwrap_or_default();
    assert!(!leases.contains(&web), "lease left: {leases}");
}
