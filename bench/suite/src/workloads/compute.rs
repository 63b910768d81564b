//! CPU, system calls, memory bandwidth and file I/O: the workload program
//! in a long-running Hull container (`hull exec`), in a runc container
//! (`runc exec`) and on the host, timed by the host's clock.

use super::{interleave, parse, value, Checks, Measured};
use crate::env::runc::Spec;
use crate::env::{Bench, Target, ROOT_DIR, VOLUME_DIR};
use crate::proc;
use crate::results::Row;
use anyhow::{Context, Result};
use std::collections::BTreeMap;

/// The containers' name (Hull) and id (runc).
pub const NAME: &str = "hb-work";

/// Group, unit, lower-is-better and description of a measurement.
pub fn meta(name: &str) -> (&'static str, &'static str, bool, &'static str) {
    match name {
        "hash" => (
            "compute",
            "ms",
            true,
            "integer hash (multiply/xor/rotate, 4 rounds a word) over a fixed buffer",
        ),
        "memcpy" => (
            "compute",
            "MiB/s",
            false,
            "memory bandwidth: memcpy of a buffer into another, repeated",
        ),
        "getpid" => ("system calls", "ns/call", true, "getpid(2) in a loop"),
        "openclose" => (
            "system calls",
            "µs/op",
            true,
            "open(2)+close(2) of one file on the container's root",
        ),
        "spawn" => (
            "system calls",
            "µs/op",
            true,
            "fork+exec+wait of a static no-op program (posix_spawn)",
        ),
        "seq_write" => (
            "file I/O",
            "MiB/s",
            false,
            "sequential write in 1 MiB chunks, then fsync",
        ),
        "seq_read" => (
            "file I/O",
            "MiB/s",
            false,
            "sequential read of the file just written (page cache)",
        ),
        "files_create" => ("file I/O", "µs/file", true, "create and write 1 KiB files"),
        "files_stat" => ("file I/O", "µs/file", true, "stat the files"),
        "files_unlink" => ("file I/O", "µs/file", true, "unlink the files"),
        _ => ("other", "ms", true, ""),
    }
}

/// The workload invocations: (row key suffix, arguments).
fn invocations(bench: &Bench) -> Vec<(&'static str, Vec<String>)> {
    let c = &bench.cfg;
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    vec![
        ("", s(&["hash", &c.hash_mib.to_string()])),
        (
            "",
            s(&[
                "memcpy",
                &c.copy_mib.to_string(),
                &c.copy_rounds.to_string(),
            ]),
        ),
        ("", s(&["getpid", &c.getpid.to_string()])),
        ("", s(&["openclose", &c.openclose.to_string(), ROOT_DIR])),
        ("", s(&["spawn", &c.spawn.to_string()])),
        (".root", s(&["seqio", ROOT_DIR, &c.io_mib.to_string()])),
        (".volume", s(&["seqio", VOLUME_DIR, &c.io_mib.to_string()])),
        (".root", s(&["smallfiles", ROOT_DIR, &c.files.to_string()])),
        (
            ".volume",
            s(&["smallfiles", VOLUME_DIR, &c.files.to_string()]),
        ),
    ]
}

/// What a row measured, with its size and where.
fn describe(m: &Measured, suffix: &str, what: &str) -> String {
    let place = match suffix {
        ".root" => ", on the container's root",
        ".volume" => ", on a volume",
        _ => "",
    };
    let size = match m.name.as_str() {
        "hash" | "seq_write" | "seq_read" => format!("{} MiB", m.bytes >> 20),
        "memcpy" => format!("{} MiB × {}", (m.bytes / m.ops.max(1)) >> 20, m.ops),
        _ => format!("{} ops", m.ops),
    };
    format!("{what} ({size}){place}")
}

/// Starts the idle containers the workloads are exec'ed in.
pub fn start_containers(bench: &Bench) -> Result<()> {
    let volume = format!("{}:{VOLUME_DIR}", bench.hull.volume.display());
    bench.hull.run_detached(
        NAME,
        &["--network".into(), "none".into(), "-v".into(), volume],
        &["/bin/sleep", "1000000"],
    )?;
    bench.runc.run_detached(
        NAME,
        &Spec {
            args: vec!["/bin/sleep".into(), "1000000".into()],
            netns: None,
            binds: vec![(bench.runc.volume.clone(), VOLUME_DIR)],
        },
    )?;
    Ok(())
}

/// Removes them.
pub fn stop_containers(bench: &Bench) {
    if let Err(err) = bench.hull.remove(&[NAME.into()]) {
        tracing::warn!("removing Hull's {NAME}: {err:#}");
    }
    bench.runc.remove(&[NAME.into()]);
}

/// Runs every workload in the three environments; the containers must be up.
pub fn run(bench: &Bench, rows: &mut Vec<Row>) -> Result<()> {
    let targets = [Target::Hull(NAME), Target::Runc(NAME), Target::Host];
    let mut checks = Checks::default();
    for (suffix, args) in invocations(bench) {
        tracing::info!("workload {}", args.join(" "));
        let results = interleave(&targets, bench.cfg.warmup, bench.cfg.runs, |target| {
            let lines = proc::lines(&mut bench.work(target, &args))?;
            let measured =
                parse(&lines).with_context(|| format!("{}: {}", target.env(), args.join(" ")))?;
            anyhow::ensure!(
                !measured.is_empty(),
                "{}: {} measured nothing",
                target.env(),
                args.join(" ")
            );
            Ok(measured)
        })?;
        let mut by_key: BTreeMap<String, Row> = BTreeMap::new();
        for (target, runs) in targets.iter().zip(results) {
            for measured in runs {
                for m in measured {
                    checks.record(target.env(), &m)?;
                    let (group, unit, lower, what) = meta(&m.name);
                    let prefix = match group {
                        "system calls" => "sys",
                        "file I/O" => "io",
                        _ => "cpu",
                    };
                    let key = format!("{prefix}.{}{suffix}", m.name);
                    let row = by_key.entry(key.clone()).or_insert_with(|| {
                        Row::new(group, &key, &describe(&m, suffix, what), unit, lower)
                    });
                    let env = target.env();
                    let time = if bench.own_clock_trusted(env) {
                        m.own
                    } else {
                        m.host
                    };
                    row.samples
                        .entry(env.into())
                        .or_default()
                        .push(value(&m, unit, time));
                    row.self_timed
                        .entry(env.into())
                        .or_default()
                        .push(value(&m, unit, m.own));
                    row.host_timed
                        .entry(env.into())
                        .or_default()
                        .push(value(&m, unit, m.host));
                }
            }
        }
        // Keep the program's order (write before read) rather than the key's.
        let order = [
            "hash",
            "memcpy",
            "getpid",
            "openclose",
            "spawn",
            "seq_write",
            "seq_read",
            "files_create",
            "files_stat",
            "files_unlink",
        ];
        let mut batch: Vec<Row> = by_key.into_values().collect();
        batch.sort_by_key(|r| {
            order
                .iter()
                .position(|o| r.key.contains(o))
                .unwrap_or(usize::MAX)
        });
        rows.extend(batch);
    }
    Ok(())
}
