//! Network: TCP throughput into the container, HTTP request latency and
//! requests per second (a new connection each) against busybox httpd.
//! Hull publishes ports (`-p`) on its namespace's loopback; runc's
//! container sits in a namespace of its own joined by a veth, as Docker's
//! bridge would; the host serves on the loopback. Clients run in Hull's
//! namespace: the workload program on the host.

use super::{interleave, parse, value, Checks};
use crate::cleanup::janitor;
use crate::env::runc::Spec;
use crate::env::{make_netns, Bench, WORK_IN_CONTAINER};
use crate::proc;
use crate::results::Row;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

const RUNC_ID: &str = "hb-net";
const RUNC_ADDR: &str = "10.99.0.2";

/// One environment's servers: (name, sink address, web address).
type Server = (&'static str, String, String);

/// Starts the servers: Hull's two containers, runc's one, the host's two
/// processes (returned, to be stopped).
fn start(bench: &Bench, runc_ns: &str) -> Result<Vec<Child>> {
    let work = WORK_IN_CONTAINER;
    bench.hull.run_detached(
        "hb-sink",
        &["-p".into(), "5001:5001".into()],
        &[work, "sink", "5001"],
    )?;
    bench.hull.run_detached(
        "hb-web",
        &["-p".into(), "8080:80".into()],
        &["/bin/httpd", "-f", "-p", "80", "-h", "/www"],
    )?;

    let ns = bench.hull.netns.as_str();
    let ip = |netns: &str, args: &[&str]| {
        proc::output(
            Command::new("ip")
                .args(["netns", "exec", netns, "ip"])
                .args(args),
        )
    };
    proc::output(Command::new("ip").args([
        "link", "add", "hbv0", "netns", ns, "type", "veth", "peer", "name", "hbv1", "netns",
        runc_ns,
    ]))?;
    ip(ns, &["addr", "add", "10.99.0.1/24", "dev", "hbv0"])?;
    ip(ns, &["link", "set", "hbv0", "up"])?;
    ip(
        runc_ns,
        &["addr", "add", &format!("{RUNC_ADDR}/24"), "dev", "hbv1"],
    )?;
    ip(runc_ns, &["link", "set", "hbv1", "up"])?;
    let netns_path = PathBuf::from(format!("/var/run/netns/{runc_ns}"));
    bench.runc.run_detached(
        RUNC_ID,
        &Spec {
            args: vec![
                "/bin/sh".into(),
                "-c".into(),
                format!("/bin/httpd -p 80 -h /www && exec {work} sink 5001"),
            ],
            netns: Some(&netns_path),
            binds: Vec::new(),
        },
    )?;

    let mut children = Vec::new();
    let www = bench.rootfs.join("www");
    let work_host = bench.rootfs.join("bin/hull-bench-work");
    let busybox = bench.rootfs.join("bin/busybox");
    let spawn = |program: &PathBuf, args: &[&str]| -> Result<Child> {
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        janitor().pid(child.id());
        Ok(child)
    };
    children.push(spawn(&work_host, &["sink", "6001"])?);
    let www = www.display().to_string();
    children.push(spawn(&busybox, &["httpd", "-f", "-p", "6080", "-h", &www])?);
    Ok(children)
}

/// Runs the network rows.
pub fn run(bench: &Bench, rows: &mut Vec<Row>) -> Result<()> {
    let runc_ns = format!("hull-bench-runc-{}", std::process::id());
    make_netns(&runc_ns)?;
    let started = start(bench, &runc_ns);
    let result = started
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e:#}"))
        .and_then(|_| measure(bench, rows));
    if let Ok(children) = started {
        for mut child in children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    let _ = bench.hull.remove(&["hb-sink".into(), "hb-web".into()]);
    bench.runc.remove(&[RUNC_ID.into()]);
    result
}

/// The measurements, once the servers are up.
fn measure(bench: &Bench, rows: &mut Vec<Row>) -> Result<()> {
    let servers: [Server; 3] = [
        ("hull", "127.0.0.1:5001".into(), "127.0.0.1:8080".into()),
        (
            "runc",
            format!("{RUNC_ADDR}:5001"),
            format!("{RUNC_ADDR}:80"),
        ),
        ("host", "127.0.0.1:6001".into(), "127.0.0.1:6080".into()),
    ];
    let c = &bench.cfg;
    let tests: [(&str, &str, &str, String); 3] = [
        ("net.tcp_push", "Gbit/s", "TCP throughput host→container: MiB pushed into a sink (the workload program) that counts them; Hull via its published port", format!("{}", c.net_mib)),
        ("net.http_get", "ms/request", "HTTP GET of a small page from busybox httpd, one request after another, each on a new connection", format!("{}", c.http_requests)),
        ("net.http_load", "requests/s", "HTTP GETs from 4 concurrent clients, a new connection each: connections per second", format!("{}", c.http_load)),
    ];
    let mut checks = Checks::default();
    let work = bench.rootfs.join("bin/hull-bench-work");
    for (key, unit, what, size) in tests {
        tracing::info!("{key}");
        let envs: Vec<&Server> = servers.iter().collect();
        let samples = interleave(&envs, c.warmup, c.runs, |(_, sink, web)| {
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", &bench.hull.netns]).arg(&work);
            match key {
                "net.tcp_push" => cmd.args(["tcp-push", sink, &size]),
                "net.http_get" => cmd.args(["http-get", web, &size]),
                _ => cmd.args(["http-load", web, &size, "4"]),
            };
            let measured = parse(&proc::lines(&mut cmd)?)?;
            let m = measured
                .into_iter()
                .next()
                .context("the client measured nothing")?;
            Ok(m)
        })?;
        let mut row = Row::new(
            "network",
            key,
            &format!("{what} ({size})"),
            unit,
            unit != "Gbit/s" && unit != "requests/s",
        );
        for ((env, _, _), ms) in servers.iter().zip(samples) {
            for m in ms {
                checks.record(env, &m)?;
                row.samples
                    .entry(env.to_string())
                    .or_default()
                    // The clients run on the host: their own clock is the host's.
                    .push(value(&m, unit, m.own));
            }
        }
        rows.push(row);
    }
    Ok(())
}
