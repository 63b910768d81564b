//! Before and after: this run's Hull figures beside a baseline run's (the
//! suite's `results.json` from before a cost was cut), with the targets of
//! the costs the suite set out to cut.

use crate::results::{Results, Row};
use crate::stats::{cost_ratio, format_ratio, format_value};
use std::fmt::Write;

/// A cost the suite set out to cut: Hull's figure, or Hull's over a peer's,
/// and the most it may be.
struct Target {
    /// What it is, for a reader.
    what: &'static str,
    /// The row.
    key: &'static str,
    /// The peer Hull is divided by; `None`: Hull's own figure.
    peer: Option<&'static str>,
    /// The most it may be (a ratio, or in the row's unit).
    goal: f64,
}

/// The targets, in the report's order.
const TARGETS: [Target; 3] = [
    Target {
        what: "host memory per idle container",
        key: "density.per_container",
        peer: None,
        goal: 48.0,
    },
    Target {
        what: "`run --rm true` over the boot floor",
        key: "start.run_true",
        peer: Some("floor"),
        goal: 1.2,
    },
    Target {
        what: "`exec true` over runc's",
        key: "exec.true",
        peer: Some("runc"),
        goal: 1.5,
    },
];

/// `target`'s figure in `results`, if it has the samples.
fn figure(results: &Results, target: &Target) -> Option<f64> {
    let row = results.rows.iter().find(|r| r.key == target.key)?;
    let hull = hull_median(row)?;
    match target.peer {
        None => Some(hull),
        Some(peer) => cost_ratio(hull, row.summary(peer)?.median, row.lower_is_better),
    }
}

/// How a target's figure reads: a ratio, or a value in the row's unit.
fn show(target: &Target, unit: &str, value: Option<f64>) -> String {
    match (value, target.peer) {
        (None, _) => "–".into(),
        (Some(v), Some(_)) => format_ratio(v),
        (Some(v), None) => format!("{} {unit}", format_value(v)),
    }
}

/// Hull's median of `row`.
fn hull_median(row: &Row) -> Option<f64> {
    row.summary("hull").map(|s| s.median)
}

/// The "before and after" section, if `results` has a baseline.
pub fn section(results: &Results) -> Option<String> {
    let before = results.before.as_deref()?;
    let mut out = String::new();
    let _ = writeln!(out, "## Before and after\n");
    let _ = writeln!(
        out,
        "The baseline is a run of this suite on {} (`before.json`), before the costs below \
         were cut. Targets: the most each may be.\n",
        before.date
    );
    if let Some(label) = &before.label {
        let _ = writeln!(out, "The baseline ran with: {label}\n");
    }
    let _ = writeln!(out, "| cost | before | after | target | met |");
    let _ = writeln!(out, "|---|---:|---:|---:|---|");
    for target in &TARGETS {
        let unit = results
            .rows
            .iter()
            .chain(&before.rows)
            .find(|r| r.key == target.key)
            .map_or("", |r| r.unit.as_str());
        let after = figure(results, target);
        let met = match after {
            Some(v) if v <= target.goal => "yes",
            Some(_) => "no",
            None => "–",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {met} |",
            target.what,
            show(target, unit, figure(before, target)),
            show(target, unit, after),
            show(target, unit, Some(target.goal)),
        );
    }
    let _ = writeln!(
        out,
        "\nEvery measurement both runs have, Hull's median (**after ÷ before**: below ×1.00 \
         is a cut for times and memory, above ×1.00 a gain for throughputs):\n"
    );
    let _ = writeln!(
        out,
        "| measurement | unit | before | after | after ÷ before |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|");
    for row in &results.rows {
        let Some(old) = before.rows.iter().find(|r| r.key == row.key) else {
            continue;
        };
        let (Some(a), Some(b)) = (hull_median(row), hull_median(old)) else {
            continue;
        };
        let change = if b > 0.0 {
            format!("×{:.2}", a / b)
        } else {
            "–".into()
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {change} |",
            row.key,
            row.unit,
            format_value(b),
            format_value(a)
        );
    }
    let _ = writeln!(out);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::fixture;

    #[test]
    fn no_baseline_no_section() {
        assert!(section(&fixture()).is_none());
    }

    #[test]
    fn targets_and_changes_beside_the_baseline() {
        let mut before = fixture();
        for row in &mut before.rows {
            if let Some(hull) = row.samples.get_mut("hull") {
                for v in hull.iter_mut() {
                    *v *= 2.0;
                }
            }
        }
        before.label = Some("the old kernel".into());
        let mut after = fixture();
        after.before = Some(Box::new(before));
        let md = match section(&after) {
            Some(md) => md,
            None => panic!("no section"),
        };
        assert!(
            md.contains("The baseline ran with: the old kernel\n"),
            "{md}"
        );
        // run_true: 3150/1050 = ×3.00 before, 1575/1050 = ×1.50 after.
        assert!(
            md.contains("| `run --rm true` over the boot floor | ×3.00 | ×1.50 | ×1.20 | no |"),
            "{md}"
        );
        // No exec row in either run.
        assert!(
            md.contains("| `exec true` over runc's | – | – | ×1.50 | – |"),
            "{md}"
        );
        assert!(
            md.contains("| `start.run_true` | ms | 3150 | 1575 | ×0.50 |"),
            "{md}"
        );
        assert!(
            md.contains("| `net.tcp` | Gbit/s | 0.900 | 0.450 | ×0.50 |"),
            "{md}"
        );
    }
}
