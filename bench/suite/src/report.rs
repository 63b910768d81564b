//! `report.md`: one page with the machine, the versions, a table per group
//! (medians with min–max, ratios to runc and to the host) and the plots.

use crate::results::{env_label, Results, Row, ENVS};
use crate::stats::{cost_ratio, format_ratio, format_value, Summary};
use std::fmt::Write;

/// The peers Hull's ratios are taken against, in column order.
const PEERS: [&str; 3] = ["floor", "runc", "host"];

/// A cell: `median (min–max)`, or the single value, or `–`.
fn cell(summary: Option<Summary>) -> String {
    match summary {
        None => "–".into(),
        Some(s) if s.n == 1 || s.min == s.max => format_value(s.median),
        Some(s) => format!(
            "{} ({}–{})",
            format_value(s.median),
            format_value(s.min),
            format_value(s.max)
        ),
    }
}

/// Hull's median over `peer`'s as a cost, or `–`.
fn ratio_cell(row: &Row, peer: &str) -> String {
    match (row.summary("hull"), row.summary(peer)) {
        (Some(h), Some(p)) => cost_ratio(h.median, p.median, row.lower_is_better)
            .map(format_ratio)
            .unwrap_or_else(|| "–".into()),
        _ => "–".into(),
    }
}

/// The environments and peers that have samples in `rows`.
fn columns(rows: &[&Row]) -> (Vec<&'static str>, Vec<&'static str>) {
    let has = |env: &str| rows.iter().any(|r| r.samples.contains_key(env));
    let envs: Vec<&str> = ENVS.iter().copied().filter(|e| has(e)).collect();
    let peers: Vec<&str> = if has("hull") {
        PEERS.iter().copied().filter(|e| has(e)).collect()
    } else {
        Vec::new()
    };
    (envs, peers)
}

/// What a group's rows share, in a sentence or two.
pub fn intro(group: &str) -> Option<&'static str> {
    Some(match group {
        "start" => "A container running busybox's `true`, started cold: Hull boots a new microVM each time. The boot floor is the least any Hull start can take: the VMM booting the same kernel and initramfs to hull-agent as PID 1, which powers off at once (each run's console is checked for the guest's reboot message). `parallel_N`: N started at once.",
        "exec" => "A process started in a running, idle container.",
        "compute" | "system calls" => "The workload program (one static musl binary) `hull exec`'d into an idle Hull container, `runc exec`'d into an idle runc container made from the same rootfs, and run directly on the host.",
        "file I/O" => "The same program on the container's root (Hull: virtiofs over the image's overlay, whose writable layer is on the host's disk; runc: the rootfs directory on the host's disk) and on a volume (Hull: `-v`, virtiofs; runc: a bind mount). The host's column is a directory on the same disk, in both rows.",
        "network" => "Clients on the host side (the workload program, in the suite's network namespace). Hull: ports published with `-p` on that namespace's loopback; runc: the container in a namespace of its own joined by a veth pair, as a bridge would; host: servers on the loopback.",
        "density" => "Idle containers (`sleep`), their processes' proportional set size (PSS, shared pages split among their users) read from /proc after they settle for 3 s.",
        _ => return None,
    })
}

/// The markdown table of one group.
fn table(out: &mut String, rows: &[&Row]) {
    let (envs, peers) = columns(rows);
    let mut header = String::from("| measurement | unit |");
    let mut rule = String::from("|---|---|");
    for env in &envs {
        let _ = write!(header, " {} |", env_label(env));
        rule.push_str("---:|");
    }
    for peer in &peers {
        let _ = write!(header, " Hull ×{} |", env_label(peer));
        rule.push_str("---:|");
    }
    header.push_str(" what was measured |");
    rule.push_str("---|");
    let _ = writeln!(out, "{header}\n{rule}");
    for row in rows {
        let name = row.key.split_once('.').map_or(row.key.as_str(), |(_, k)| k);
        let better = if row.lower_is_better {
            "lower is better"
        } else {
            "higher is better"
        };
        let _ = write!(out, "| `{name}` | {} |", row.unit);
        for env in &envs {
            let _ = write!(out, " {} |", cell(row.summary(env)));
        }
        for peer in &peers {
            let _ = write!(out, " {} |", ratio_cell(row, peer));
        }
        let _ = writeln!(out, " {} ({better}) |", row.what);
    }
}

/// The whole report.
pub fn render(results: &Results) -> String {
    let mut out = String::new();
    let v = |k: &str| results.versions.get(k).map_or("?", String::as_str);
    let _ = writeln!(out, "# Hull: VM vs container benchmarks\n");
    let _ = writeln!(
        out,
        "Hull (backend **{}**, accelerator **{}**) beside runc and the bare host, measured in one \
         run on one machine on {} ({:.1} minutes).\n",
        v("backend"),
        v("accel"),
        results.date,
        results.seconds / 60.0
    );
    let m = &results.machine;
    let _ = writeln!(out, "## Machine and versions\n");
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(out, "| CPU | {} ({} logical CPUs) |", m.cpu, m.cores);
    let _ = writeln!(out, "| memory | {} MiB |", m.memory_mib);
    let _ = writeln!(out, "| host kernel | {} |", m.kernel);
    let _ = writeln!(out, "| KVM | {} |", m.kvm);
    for (k, val) in &results.versions {
        if k != "backend" && k != "accel" {
            let _ = writeln!(out, "| {k} | {val} |");
        }
    }
    let sizes: Vec<String> = results
        .config
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let _ = writeln!(out, "| sizes | {} |", sizes.join(", "));
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "**How to read.** A value is the median over the runs, with the minimum–maximum in \
         brackets (a median of an even count is the mean of the middle two). Every environment \
         had the same warm-up, and every run was checked (exit status, output). **Hull ×peer** \
         is how many times Hull's cost is the peer's: time or memory over the peer's, or for \
         throughputs the peer's over Hull's; ×1.00 is parity, above is worse. The host runs \
         the same static programs as the containers, directly.\n"
    );
    if let Some(section) = crate::compare::section(results) {
        out.push_str(&section);
    }
    for group in results.groups() {
        let rows: Vec<&Row> = results.rows.iter().filter(|r| r.group == group).collect();
        let _ = writeln!(out, "## {group}\n");
        if let Some(text) = intro(group) {
            let _ = writeln!(out, "{text}\n");
        }
        table(&mut out, &rows);
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "## Plots\n");
    let _ = writeln!(
        out,
        "- ![Hull's cost over runc and over the host, per measurement](ratios.svg)\n\
         - ![host memory of N idle containers](density.svg)\n\
         - ![start latency, every run](start.svg)\n"
    );
    if !results.notes.is_empty() {
        let _ = writeln!(out, "## Notes\n");
        for note in &results.notes {
            let _ = writeln!(out, "- {note}");
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(
        out,
        "Every sample is in `results.json`; `hull-bench report DIR` renders this page and the \
         plots again from it."
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::fixture;

    #[test]
    fn renders_tables_with_medians_ranges_and_ratios() {
        let md = render(&fixture());
        assert!(md.contains("backend **qemu**, accelerator **tcg**"), "{md}");
        assert!(md.contains("| CPU | Test CPU (2 logical CPUs) |"));
        assert!(md.contains("## start"));
        // Even count: (1550 + 1600) / 2 = 1575; ×floor 1575/1050 = 1.5.
        assert!(
            md.contains("| `run_true` | ms | 1575 (1500–1700) | 1050 (1000–1100) | 27.0 (25.0–30.0) | 1.00 (0.800–1.20) | ×1.50 | ×58.3 | ×1575 |"),
            "{md}"
        );
        // A row with Hull only gets dashes for the peers.
        assert!(md.contains("| `phase_boot` | ms | 900 | – | – | – | – | – | – |"));
        // Throughput: the peer's over Hull's, 8.5/0.45.
        assert!(md.contains("| `tcp` | Gbit/s | 0.450 (0.400–0.500) | 8.50 (8.00–9.00) | 20.0 | ×18.9 | ×44.4 |"), "{md}");
        assert!(md.contains("higher is better"));
        assert!(md.contains("- a note"));
        assert!(md.contains("(10.0 minutes)"));
    }

    #[test]
    fn columns_follow_the_samples() {
        let r = fixture();
        let rows: Vec<&Row> = r.rows.iter().filter(|r| r.group == "density").collect();
        let (envs, peers) = columns(&rows);
        assert_eq!(envs, ["hull", "runc"]);
        assert_eq!(peers, ["runc"]);
    }
}
