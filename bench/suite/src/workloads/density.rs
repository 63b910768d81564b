//! Density: host memory (PSS) of N idle containers, Hull's (monitor, VMM,
//! virtiofsd: every process of each sandbox) and runc's (the container's
//! processes), at each N of the curve; and of one container again after
//! it has been used (`exec`s), which is what a long-lived container keeps.

use crate::cleanup::with_descendants;
use crate::env::runc::Spec;
use crate::env::Bench;
use crate::proc;
use crate::results::Row;
use anyhow::{ensure, Result};
use std::collections::BTreeMap;
use std::time::Duration;

/// Seconds idle guests are given to settle before their memory is read.
const SETTLE: Duration = Duration::from_secs(3);

/// The proportional set size of `pid`, KiB (0 if it is gone).
pub fn pss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .map(|s| parse_pss(&s))
        .unwrap_or(0)
}

/// The `Pss:` line of smaps_rollup, KiB.
pub fn parse_pss(smaps_rollup: &str) -> u64 {
    smaps_rollup
        .lines()
        .find(|l| l.starts_with("Pss:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A VMM's PSS, KiB, split into guest memory (its memfd: QEMU's
/// `memory-backend-memfd`, hull-vmm's `hull-guest-ram`), the emulator's
/// translation cache (its one anonymous executable mapping; none on KVM)
/// and the rest (its heap, threads' stacks, binary and libraries).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct VmmParts {
    /// Guest memory as far as the guest touched it.
    pub guest: u64,
    /// TCG's translation cache.
    pub tcg: u64,
    /// Everything else.
    pub rest: u64,
}

/// [`VmmParts`] of a `/proc/PID/smaps` text.
pub fn parse_vmm_parts(smaps: &str) -> VmmParts {
    let mut parts = VmmParts::default();
    // The current mapping's part.
    let mut part: fn(&mut VmmParts) -> &mut u64 = |p| &mut p.rest;
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or_default();
        if first.contains('-') && !first.ends_with(':') {
            // A mapping's header: range, perms, offset, dev, inode, name.
            let perms = words.next().unwrap_or_default();
            let name = words.nth(3).unwrap_or_default();
            part = if name.starts_with("/memfd:memory-backend")
                || name.starts_with("/memfd:hull-guest-ram")
            {
                |p| &mut p.guest
            } else if name.is_empty() && perms.starts_with("rwx") {
                |p| &mut p.tcg
            } else {
                |p| &mut p.rest
            };
        } else if first == "Pss:" {
            let kib: u64 = words.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            *part(&mut parts) += kib;
        }
    }
    parts
}

/// The PSS of `roots` and all their descendants, MiB.
fn tree_pss_mib(roots: &[u32]) -> f64 {
    with_descendants(roots)
        .into_iter()
        .map(|pid| pss_kib(pid) as f64 / 1024.0)
        .sum()
}

/// A row of the density group: host memory, MiB, one value per environment.
fn memory_row(key: &str, what: &str, values: &[(&str, f64)]) -> Row {
    let mut row = Row::new("density", key, what, "MiB", true);
    for &(env, value) in values {
        row.samples.insert(env.into(), vec![value]);
    }
    row
}

/// The command every idle container runs.
const IDLE: [&str; 2] = ["/bin/sleep", "1000000"];

/// Starts Hull container `name`, idle and without a network.
fn start_idle_hull(bench: &Bench, name: &str) -> Result<()> {
    bench
        .hull
        .run_detached(name, &["--network".into(), "none".into()], &IDLE)
}

/// Starts runc container `id`, idle.
fn start_idle_runc(bench: &Bench, id: &str) -> Result<()> {
    bench.runc.run_detached(
        id,
        &Spec {
            args: IDLE.iter().map(|a| a.to_string()).collect(),
            ..Spec::default()
        },
    )
}

/// Hull's monitors, which must be `n`: one per running container.
fn hull_monitors(bench: &Bench, n: usize) -> Result<Vec<u32>> {
    let monitors = bench.hull.monitors();
    ensure!(
        monitors.len() == n,
        "{} Hull monitors running, {n} expected",
        monitors.len()
    );
    Ok(monitors)
}

/// One idle container's host memory, settled, before and after `execs`
/// `exec true`s into it: `(before, after)`, MiB. `exec` runs one exec;
/// `roots` gives the container's processes.
fn before_and_after_execs(
    execs: usize,
    mut exec: impl FnMut() -> Result<()>,
    roots: impl Fn() -> Result<Vec<u32>>,
) -> Result<(f64, f64)> {
    std::thread::sleep(SETTLE);
    let before = tree_pss_mib(&roots()?);
    for _ in 0..execs {
        exec()?;
    }
    std::thread::sleep(SETTLE);
    Ok((before, tree_pss_mib(&roots()?)))
}

/// The rows of one container's memory after use: Hull's and runc's after
/// the execs, and how much Hull's grew.
fn after_use(bench: &Bench, rows: &mut Vec<Row>) -> Result<()> {
    let execs = bench.cfg.busy_execs;
    let name = "hb-busy".to_string();
    let hull = (|| -> Result<(f64, f64)> {
        start_idle_hull(bench, &name)?;
        before_and_after_execs(
            execs,
            || proc::output(bench.hull.cmd().args(["exec", &name, "/bin/true"])).map(drop),
            || hull_monitors(bench, 1),
        )
    })();
    let _ = bench.hull.remove(std::slice::from_ref(&name));
    let (hull_before, hull_after) = hull?;
    let runc = (|| -> Result<(f64, f64)> {
        start_idle_runc(bench, &name)?;
        before_and_after_execs(
            execs,
            || proc::output(bench.runc.cmd().args(["exec", &name, "/bin/true"])).map(drop),
            || Ok(vec![bench.runc.pid(&name)?]),
        )
    })();
    bench.runc.remove(std::slice::from_ref(&name));
    let (_, runc_after) = runc?;
    rows.push(memory_row(
        "density.after_execs",
        &format!("host memory (PSS) of one idle container after {execs} `exec true`s into it, settled: what a used, long-lived container keeps"),
        &[("hull", hull_after), ("runc", runc_after)],
    ));
    rows.push(memory_row(
        "density.hull_growth_execs",
        &format!("of which Hull's growth over those {execs} execs (its memory idle before them: {hull_before:.1} MiB)"),
        &[("hull", hull_after - hull_before)],
    ));
    Ok(())
}

/// What a process is, by its name: vmm, virtiofsd or monitor.
fn part(pid: u32) -> &'static str {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let comm = comm.trim();
    if comm.starts_with("qemu") || comm.starts_with("hull-vmm") {
        "vmm"
    } else if comm.starts_with("virtiofsd") {
        "virtiofsd"
    } else {
        "monitor"
    }
}

/// The rows of the density curve.
pub fn run(bench: &Bench, rows: &mut Vec<Row>) -> Result<()> {
    let mut counts = bench.cfg.density.clone();
    counts.sort_unstable();
    counts.dedup();
    let mut hull_total: Vec<(usize, f64)> = Vec::new();
    let mut parts: BTreeMap<&str, f64> = BTreeMap::new();
    let mut names = Vec::new();
    let hull = (|| -> Result<()> {
        for &n in &counts {
            while names.len() < n {
                let name = format!("hb-idle-{}", names.len());
                tracing::info!("idle Hull container {name}");
                start_idle_hull(bench, &name)?;
                names.push(name);
            }
            std::thread::sleep(SETTLE);
            let pids = with_descendants(&hull_monitors(bench, n)?);
            let mut total = 0.0;
            parts.clear();
            for pid in pids {
                let mib = pss_kib(pid) as f64 / 1024.0;
                total += mib;
                let part = part(pid);
                *parts.entry(part).or_default() += mib / n as f64;
                if part == "vmm" {
                    let smaps =
                        std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
                    let vmm = parse_vmm_parts(&smaps);
                    for (name, kib) in [
                        ("vmm_guest", vmm.guest),
                        ("vmm_tcg", vmm.tcg),
                        ("vmm_rest", vmm.rest),
                    ] {
                        *parts.entry(name).or_default() += kib as f64 / 1024.0 / n as f64;
                    }
                }
            }
            hull_total.push((n, total));
        }
        Ok(())
    })();
    let _ = bench.hull.remove(&names);
    hull?;

    let mut runc_total: Vec<(usize, f64)> = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    let runc = (|| -> Result<()> {
        for &n in &counts {
            while ids.len() < n {
                let id = format!("hb-idle-{}", ids.len());
                start_idle_runc(bench, &id)?;
                ids.push(id);
            }
            std::thread::sleep(SETTLE);
            let inits = ids
                .iter()
                .map(|id| bench.runc.pid(id))
                .collect::<Result<Vec<u32>>>()?;
            runc_total.push((n, tree_pss_mib(&inits)));
        }
        Ok(())
    })();
    bench.runc.remove(&ids);
    runc?;

    for (&(n, hull), &(_, runc)) in hull_total.iter().zip(&runc_total) {
        rows.push(memory_row(
            &format!("density.n{n}"),
            &format!("host memory (PSS) of {n} idle containers: Hull's monitors, VMMs (guest memory as far as touched) and virtiofsd; runc's container processes"),
            &[("hull", hull), ("runc", runc)],
        ));
    }
    let mut per = Row::new(
        "density",
        "density.per_container",
        "host memory per idle container: the total at each N of the curve over N (min–max across N)",
        "MiB",
        true,
    );
    per.samples.insert(
        "hull".into(),
        hull_total.iter().map(|(n, t)| t / *n as f64).collect(),
    );
    per.samples.insert(
        "runc".into(),
        runc_total.iter().map(|(n, t)| t / *n as f64).collect(),
    );
    rows.push(per);
    if let Some(&(n, _)) = hull_total.last() {
        for (name, mib) in parts {
            let what = match name {
                "vmm_guest" => {
                    "of which the VMM's guest memory (as far as the guest touched it)".to_owned()
                }
                "vmm_tcg" => "of which the VMM's translation cache (QEMU's emulator only; none on KVM)".to_owned(),
                "vmm_rest" => "of which the rest of the VMM (heap, stacks, its share of its binary and libraries)".to_owned(),
                _ => format!("of which Hull's {name}"),
            };
            let what = format!("{what}, per container (at N = {n})");
            rows.push(memory_row(
                &format!("density.hull_{name}"),
                &what,
                &[("hull", mib)],
            ));
        }
    }
    after_use(bench, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_a_vmm() {
        let smaps = "\
7f00-7f10 rwxp 00000000 00:00 0 \nSize: 65532 kB\nPss: 36864 kB\n\
7f10-7f20 rw-s 00000000 00:01 12 /memfd:memory-backend-memfd (deleted)\nPss: 31488 kB\n\
7f20-7f30 rw-p 00000000 00:00 0 \nPss: 5008 kB\n\
5600-5610 r-xp 00000000 08:01 99 /usr/bin/qemu-system-x86_64\nPss: 100 kB\n\
7f30-7f40 rw-s 00000000 00:01 13 /memfd:hull-guest-ram (deleted)\nPss: 10 kB\n";
        assert_eq!(
            parse_vmm_parts(smaps),
            VmmParts {
                guest: 31498,
                tcg: 36864,
                rest: 5108
            }
        );
    }

    #[test]
    fn reads_pss() {
        let text = "55d0-7ff [rollup]\nRss:    1000 kB\nPss:     483 kB\nPss_Anon: 400 kB\n";
        assert_eq!(parse_pss(text), 483);
        assert_eq!(parse_pss(""), 0);
        assert!(pss_kib(std::process::id()) > 0);
    }
}
