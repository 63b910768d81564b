//! Bridged networking end to end, inside the network namespace the test's
//! Hull runs in (never the host's): published ports, container addresses,
//! isolated networks, `--network none`, and nothing left after `rm -f`.

use hull_tests::harness::{ok, stderr, stdout, Hull, BUSYBOX_IMAGE};
use std::process::Output;
use std::time::{Duration, Instant};

/// Runs a command in the installation's network namespace.
fn sh(hull: &Hull, args: &[&str]) -> Output {
    hull.in_netns(args).output().expect("ip netns exec")
}

/// The body of `GET /` from `host port`, from the namespace's host side,
/// retried while the server starts. (busybox-static's wget crashes in its
/// name-service code, so the request goes through `nc`.)
fn fetch(hull: &Hull, host: &str, port: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = sh(
            hull,
            &[
                "sh",
                "-c",
                &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 3 {host} {port}"),
            ],
        );
        let body = http_body(&stdout(&out));
        if !body.is_empty() || Instant::now() > deadline {
            return body;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The body of an HTTP response.
fn http_body(response: &str) -> String {
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

/// A shell command that fetches `GET /` from `host port` with busybox nc.
fn nc_get(host: &str, port: &str) -> String {
    format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {host} {port}")
}

const HTTPD: &str =
    "mkdir -p /www && echo hello-from-hull > /www/index.html && exec httpd -f -p 80 -h /www";

#[test]
fn published_port_addresses_isolation_and_cleanup() {
    let hull = Hull::new();
    hull.load_busybox().unwrap();

    let web = ok(
        &hull,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "-p",
            "8080:80",
            BUSYBOX_IMAGE,
            "sh",
            "-c",
            HTTPD,
        ],
    );
    assert_eq!(web.len(), 64);
    // Reachable on the host's loopback through the published port...
    assert_eq!(fetch(&hull, "127.0.0.1", "8080"), "hello-from-hull\n");
    // ...and at the container's own address on the bridge.
    let ip = ok(
        &hull,
        &["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web"],
    );
    assert!(ip.starts_with("10.88."), "container address {ip}");
    assert_eq!(fetch(&hull, &ip, "80"), "hello-from-hull\n");
    assert_eq!(ok(&hull, &["port", "web"]), "80/tcp -> 0.0.0.0:8080");
    assert!(ok(&hull, &["ps"]).contains("0.0.0.0:8080->80/tcp"));
    let hosts = ok(&hull, &["exec", "web", "cat", "/etc/hosts"]);
    assert!(hosts.contains(&ip), "/etc/hosts: {hosts}");
    let eth0 = ok(
        &hull,
        &["exec", "web", "ip", "-4", "-o", "addr", "show", "eth0"],
    );
    assert!(eth0.contains(&ip), "{eth0}");

    // Another container on the same network reaches it by address.
    let out = hull.run(["run", "--rm", BUSYBOX_IMAGE, "sh", "-c", &nc_get(&ip, "80")]);
    assert_eq!(
        http_body(&stdout(&out)),
        "hello-from-hull\n",
        "stderr: {}",
        stderr(&out)
    );

    // ...and by name or alias, both ways.
    ok(
        &hull,
        &[
            "run",
            "-d",
            "--name",
            "peer",
            "--network-alias",
            "buddy",
            BUSYBOX_IMAGE,
            "sleep",
            "300",
        ],
    );
    let out = hull.run(["exec", "peer", "sh", "-c", &nc_get("web", "80")]);
    assert_eq!(
        http_body(&stdout(&out)),
        "hello-from-hull\n",
        "by name; stderr: {}",
        stderr(&out)
    );
    let web_hosts = ok(&hull, &["exec", "web", "cat", "/etc/hosts"]);
    assert!(
        web_hosts.contains("peer") && web_hosts.contains("buddy"),
        "web does not know its new peer: {web_hosts}"
    );
    ok(&hull, &["rm", "-f", "peer"]);
    let web_hosts = ok(&hull, &["exec", "web", "cat", "/etc/hosts"]);
    assert!(
        !web_hosts.contains("buddy"),
        "a removed peer stays in /etc/hosts: {web_hosts}"
    );

    // A second container cannot take the same host port, and leaves nothing.
    let taps_before = sh(&hull, &["ip", "-o", "link", "show"]).stdout;
    let out = hull.run([
        "run",
        "-d",
        "--name",
        "clash",
        "-p",
        "8080:80",
        BUSYBOX_IMAGE,
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("port is already allocated"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        sh(&hull, &["ip", "-o", "link", "show"]).stdout,
        taps_before,
        "the failed run left a link behind"
    );

    // A container on another network cannot reach it at all.
    // Networks are isolated both ways; the same probe, on one network,
    // shows that it would have seen a server.
    ok(&hull, &["network", "create", "isolated"]);
    assert!(ok(&hull, &["network", "ls"]).contains("isolated"));
    assert_eq!(
        ok(
            &hull,
            &[
                "network",
                "inspect",
                "-f",
                "{{.Name}} {{.Driver}}",
                "isolated"
            ]
        ),
        "isolated bridge"
    );
    ok(
        &hull,
        &[
            "run",
            "-d",
            "--name",
            "island",
            "--network",
            "isolated",
            BUSYBOX_IMAGE,
            "sh",
            "-c",
            HTTPD,
        ],
    );
    let island_ip = ok(
        &hull,
        &[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.isolated.IPAddress}}",
            "island",
        ],
    );
    assert!(island_ip.starts_with("10.89."), "{island_ip}");
    let probe = |target: &str| {
        format!(
            "if {} | grep -q hello-from-hull; then echo REACHED; else echo BLOCKED; fi",
            nc_get(target, "80")
        )
    };
    let reached = hull_tests::harness::eventually(Duration::from_secs(30), || {
        let out = hull.run([
            "run",
            "--rm",
            "--network",
            "isolated",
            BUSYBOX_IMAGE,
            "sh",
            "-c",
            &probe(&island_ip),
        ]);
        (out.status.code(), stdout(&out).trim()) == (Some(0), "REACHED")
    });
    assert!(
        reached,
        "a container on the same network never reached the island"
    );
    let out = hull.run([
        "run",
        "--rm",
        "--network",
        "isolated",
        BUSYBOX_IMAGE,
        "sh",
        "-c",
        &probe(&ip),
    ]);
    assert_eq!(
        (out.status.code(), stdout(&out).trim()),
        (Some(0), "BLOCKED"),
        "isolated → bridge: {}",
        stderr(&out)
    );
    let out = hull.run(["exec", "web", "sh", "-c", &probe(&island_ip)]);
    assert_eq!(
        (out.status.code(), stdout(&out).trim()),
        (Some(0), "BLOCKED"),
        "bridge → isolated: {}",
        stderr(&out)
    );

    // --network none: loopback only.
    let links = ok(
        &hull,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            BUSYBOX_IMAGE,
            "ls",
            "/sys/class/net",
        ],
    );
    assert_eq!(links.split_whitespace().collect::<Vec<_>>(), ["lo"]);

    // rm -f $(hull ps -aq): no taps, leases or containers left.
    let ids = ok(&hull, &["ps", "-aq"]);
    let mut args = vec!["rm", "-f"];
    args.extend(ids.lines());
    ok(&hull, &args);
    ok(&hull, &["network", "rm", "isolated"]);
    hull.assert_nothing_left();
}

#[test]
fn connect_and_disconnect_a_stopped_container() {
    let hull = Hull::new();
    hull.load_busybox().unwrap();
    ok(&hull, &["network", "create", "second"]);
    let show =
        "grep -o eth0 /proc/net/dev || echo no-eth0; grep -e wanderer -e wan /etc/hosts; true";
    let first = ok(
        &hull,
        &["run", "--name", "wanderer", BUSYBOX_IMAGE, "sh", "-c", show],
    );
    assert!(
        first.contains("eth0") && first.contains("10.88."),
        "{first}"
    );

    // One NIC per microVM: a second network needs a disconnect first.
    let out = hull.run(["network", "connect", "second", "wanderer"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("already connected to network bridge"),
        "{}",
        stderr(&out)
    );
    let out = hull.run(["network", "disconnect", "second", "wanderer"]);
    assert!(
        stderr(&out).contains("is not connected to network second"),
        "{}",
        stderr(&out)
    );

    ok(&hull, &["network", "disconnect", "bridge", "wanderer"]);
    let alone = ok(&hull, &["start", "-a", "wanderer"]);
    assert!(alone.contains("no-eth0"), "{alone}");

    ok(
        &hull,
        &["network", "connect", "--alias", "wan", "second", "wanderer"],
    );
    assert_eq!(
        ok(
            &hull,
            &["inspect", "-f", "{{.HostConfig.NetworkMode}}", "wanderer"]
        ),
        "second"
    );
    let moved = ok(&hull, &["start", "-a", "wanderer"]);
    assert!(
        moved.contains("eth0") && moved.contains("10.89.") && moved.contains("wan"),
        "{moved}"
    );
    let ip = ok(
        &hull,
        &[
            "inspect",
            "-f",
            "{{.NetworkSettings.IPAddress}}",
            "wanderer",
        ],
    );
    assert!(ip.starts_with("10.89."), "{ip}");

    // A running microVM keeps its NIC: refused, with the reason.
    ok(
        &hull,
        &["run", "-d", "--name", "busy", BUSYBOX_IMAGE, "sleep", "300"],
    );
    let out = hull.run(["network", "disconnect", "bridge", "busy"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("microVM is up"), "{}", stderr(&out));
    ok(&hull, &["rm", "-f", "busy", "wanderer"]);
    ok(&hull, &["network", "rm", "second"]);
}

/// A network namespace standing in for one a CNI plugin prepared; its
/// processes are ended and it is deleted on drop, also when the test fails.
struct CniNamespace {
    name: String,
}

impl CniNamespace {
    /// `name` holding `eth0` at 10.77.0.2/24, MTU 1400 (default route via 10.77.0.1),
    /// the other end of a veth whose host end `hullcni0` (10.77.0.1/24) is
    /// in the test installation's namespace: what the bridge or ptp plugin
    /// leaves behind.
    fn new(hull: &Hull) -> Self {
        let name = format!("{}-cni", hull.netns);
        let namespace = Self { name: name.clone() };
        let ip = |args: &[&str]| {
            let status = std::process::Command::new("ip")
                .args(args)
                .status()
                .expect("ip");
            assert!(status.success(), "ip {args:?}");
        };
        ip(&["netns", "add", &name]);
        ip(&[
            "-n",
            &hull.netns,
            "link",
            "add",
            "hullcni0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &name,
        ]);
        ip(&[
            "-n",
            &hull.netns,
            "addr",
            "add",
            "10.77.0.1/24",
            "dev",
            "hullcni0",
        ]);
        // An overlay network's MTU, which the guest must take over too.
        ip(&[
            "-n",
            &hull.netns,
            "link",
            "set",
            "hullcni0",
            "mtu",
            "1400",
            "up",
        ]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        ip(&["-n", &name, "addr", "add", "10.77.0.2/24", "dev", "eth0"]);
        ip(&["-n", &name, "link", "set", "eth0", "mtu", "1400", "up"]);
        ip(&["-n", &name, "route", "add", "default", "via", "10.77.0.1"]);
        namespace
    }

    fn path(&self) -> String {
        format!("/var/run/netns/{}", self.name)
    }

    fn run(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("ip")
            .args(["-n", &self.name])
            .args(args)
            .output()
            .expect("ip");
        stdout(&out)
    }
}

impl Drop for CniNamespace {
    fn drop(&mut self) {
        if let Ok(out) = std::process::Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = std::process::Command::new("kill")
                    .args(["-9", pid])
                    .status();
            }
        }
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

#[test]
fn cni_prepared_namespace_reaches_the_container_through_its_veth() {
    let hull = Hull::new();
    hull.load_busybox().unwrap();
    let cni = CniNamespace::new(&hull);
    let mode = format!("ns:{}", cni.path());

    // Hull's own addresses and ports are the plugin's business there.
    let out = hull.run([
        "run",
        "--rm",
        "--network",
        &mode,
        "-p",
        "8080:80",
        BUSYBOX_IMAGE,
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("CNI plugin"), "{}", stderr(&out));
    let out = hull.run([
        "run",
        "--rm",
        "--network",
        "ns:/var/run/netns/no-such-namespace",
        BUSYBOX_IMAGE,
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("no such network namespace"),
        "{}",
        stderr(&out)
    );

    ok(
        &hull,
        &[
            "run",
            "-d",
            "--name",
            "pod",
            "--network",
            &mode,
            BUSYBOX_IMAGE,
            "sh",
            "-c",
            HTTPD,
        ],
    );
    // The guest took over the veth's identity...
    assert_eq!(
        ok(
            &hull,
            &["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "pod"]
        ),
        "10.77.0.2"
    );
    let eth0 = ok(
        &hull,
        &["exec", "pod", "ip", "-4", "-o", "addr", "show", "eth0"],
    );
    assert!(eth0.contains("10.77.0.2/24"), "{eth0}");
    let link = ok(&hull, &["exec", "pod", "ip", "link", "show", "eth0"]);
    assert!(link.contains("mtu 1400"), "{link}");
    // ...so the host side of the veth reaches it at the plugin's address,
    assert_eq!(fetch(&hull, "10.77.0.2", "80"), "hello-from-hull\n");
    // and it reaches out through the plugin's gateway.
    let route = ok(&hull, &["exec", "pod", "ip", "route"]);
    assert!(route.contains("default via 10.77.0.1"), "{route}");
    assert!(
        cni.run(&["link", "show"]).contains("hulltap"),
        "no tap in the CNI namespace"
    );

    // rm -f takes the tap and the redirects out of the plugin's namespace.
    ok(&hull, &["rm", "-f", "pod"]);
    assert!(
        !cni.run(&["link", "show"]).contains("hulltap"),
        "tap left in the CNI namespace"
    );
    let qdiscs = std::process::Command::new("tc")
        .args(["-n", &cni.name, "qdisc", "show", "dev", "eth0"])
        .output()
        .expect("tc");
    assert!(
        !stdout(&qdiscs).contains("ingress"),
        "redirect left on eth0"
    );
    assert!(
        cni.run(&["-4", "addr", "show", "eth0"])
            .contains("10.77.0.2"),
        "the plugin's address was touched"
    );
}

#[test]
fn guests_cannot_reach_host_services_and_system_reset_removes_everything() {
    let hull = Hull::new();
    hull.load_busybox().unwrap();
    // A service of the host's, listening on every address (the bridge's too).
    let mut service = hull
        .in_netns([
            "busybox",
            "nc",
            "-ll",
            "-p",
            "9099",
            "-e",
            "echo",
            "host-secret",
        ])
        .spawn()
        .expect("starting a host service");
    std::thread::sleep(Duration::from_millis(300));
    let from_host = sh(&hull, &["busybox", "nc", "-w", "3", "127.0.0.1", "9099"]);
    assert!(
        stdout(&from_host).contains("host-secret"),
        "the host service does not answer the host itself"
    );
    let web = ok(
        &hull,
        &[
            "run",
            "-d",
            "--name",
            "probe",
            BUSYBOX_IMAGE,
            "sleep",
            "300",
        ],
    );
    let out = hull.run([
        "exec",
        "probe",
        "sh",
        "-c",
        "nc -w 3 10.88.0.1 9099; echo done",
    ]);
    assert!(
        !stdout(&out).contains("host-secret"),
        "a guest reached a host service on the bridge address"
    );
    assert!(stdout(&out).contains("done"), "{}", stderr(&out));
    let _ = service.kill();
    let _ = service.wait();

    // `system reset` asks first, and a "no" keeps everything.
    ok(&hull, &["network", "create", "extra"]);
    let out = hull.run_with_input(&["system", "reset"], b"n\n");
    assert!(
        out.status.success() && stderr(&out).contains("Are you sure"),
        "{}",
        stderr(&out)
    );
    assert!(ok(&hull, &["ps", "-q"]).contains(&web[..12]));
    // With -f it removes containers, images, networks and Hull's host state.
    ok(&hull, &["system", "reset", "-f"]);
    assert_eq!(ok(&hull, &["ps", "-aq"]), "");
    assert_eq!(ok(&hull, &["images", "-q"]), "");
    let networks = ok(&hull, &["network", "ls"]);
    assert!(!networks.contains("extra"), "{networks}");
    let links = stdout(&sh(&hull, &["ip", "-o", "link", "show"]));
    assert!(
        !links.contains("hulltap") && !links.contains("hull0") && !links.contains("hull-"),
        "links left: {links}"
    );
    let tables = stdout(&sh(&hull, &["nft", "list", "tables"]));
    assert!(!tables.contains("hull"), "nftables left: {tables}");
    let forward = stdout(&sh(&hull, &["cat", "/proc/sys/net/ipv4/ip_forward"]));
    assert_eq!(forward.trim(), "0", "ip_forward left on");
}

/// The IPC and mount namespaces of the shell that runs it, a line each.
const NAMESPACES: &str = "readlink /proc/self/ns/ipc; readlink /proc/self/ns/mnt";

#[test]
fn network_container_mode_runs_the_container_in_the_others_vm() {
    let hull = Hull::new();
    hull.load_busybox().unwrap();
    ok(
        &hull,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "-h",
            "webhost",
            BUSYBOX_IMAGE,
            "sh",
            "-c",
            HTTPD,
        ],
    );
    // What the other container's network owns is refused, as Docker does.
    for (args, says) in [
        (
            vec!["--network", "container:web", "-p", "8081:80"],
            "conflicting options: port publishing and the container type network mode",
        ),
        (
            vec!["--network", "container:web", "-h", "other"],
            "conflicting options: hostname and the network mode",
        ),
        (
            vec!["--ipc", "container:web"],
            "--ipc=container:web needs --network=container:web",
        ),
        (
            vec!["--network", "container:nonesuch"],
            "No such container: nonesuch",
        ),
    ] {
        let out = hull.run(
            ["run", "--rm"]
                .iter()
                .chain(&args)
                .chain(&[BUSYBOX_IMAGE, "true"]),
        );
        assert_eq!(out.status.code(), Some(125), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }

    // In web's VM: its localhost, its host name and /etc/hosts, and with
    // --ipc container:web its IPC namespace; a mount namespace of its own.
    let web_ns = ok(&hull, &["exec", "web", "sh", "-c", NAMESPACES]);
    let script = format!(
        "{}; echo; hostname; grep -c webhost /etc/hosts; {NAMESPACES}",
        nc_get("127.0.0.1", "80")
    );
    let joined = ok(
        &hull,
        &[
            "run",
            "--rm",
            "--network",
            "container:web",
            "--ipc",
            "container:web",
            BUSYBOX_IMAGE,
            "sh",
            "-c",
            &script,
        ],
    );
    assert!(joined.contains("hello-from-hull"), "{joined}");
    let lines: Vec<&str> = joined.lines().rev().take(4).collect();
    let web_ns: Vec<&str> = web_ns.lines().collect();
    assert_eq!(lines[3], "webhost", "{joined}");
    assert_eq!(lines[1], web_ns[0], "the IPC namespace: {joined}");
    assert_ne!(lines[0], web_ns[1], "the mount namespace: {joined}");

    // A detached one: one VMM for both, exec into it, and it ends with
    // the VM when web is removed.
    ok(
        &hull,
        &[
            "run",
            "-d",
            "--name",
            "side",
            "--network",
            "container:web",
            BUSYBOX_IMAGE,
            "sleep",
            "600",
        ],
    );
    let vmm = |name: &str| ok(&hull, &["inspect", "-f", "{{.HullSandbox.VmmPid}}", name]);
    assert_eq!(vmm("side"), vmm("web"));
    assert_eq!(
        ok(
            &hull,
            &["inspect", "-f", "{{.HostConfig.NetworkMode}}", "side"]
        )
        .trim(),
        format!(
            "container:{}",
            ok(&hull, &["inspect", "-f", "{{.Id}}", "web"]).trim()
        )
    );
    assert_eq!(ok(&hull, &["exec", "side", "hostname"]).trim(), "webhost");
    ok(&hull, &["rm", "-f", "web"]);
    assert_eq!(
        ok(
            &hull,
            &[
                "inspect",
                "-f",
                "{{.State.Status}} {{.State.ExitCode}}",
                "side"
            ]
        )
        .trim(),
        "exited 137"
    );
    // Not running: nothing to join.
    let out = hull.run(["start", "side"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("not running"), "{}", stderr(&out));
    ok(&hull, &["rm", "side"]);
    assert_eq!(ok(&hull, &["ps", "-aq"]).trim(), "");
}
