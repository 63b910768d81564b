//! The measurements, one module per group, and what they share: repeats
//! interleaved across environments after the same warm-up, and the parsing
//! of the workload program's output.

pub mod compute;
pub mod density;
pub mod exec;
pub mod net;
pub mod start;

use crate::proc::Line;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::time::Duration;

/// Runs `f` for every environment: `warmup` untimed rounds each, then
/// `runs` rounds, alternating the order (A B C, C B A, …) so that drift in
/// a noisy machine's speed reaches every environment alike. Returns each
/// environment's results in order.
pub fn interleave<E: Copy, T, F>(
    envs: &[E],
    warmup: usize,
    runs: usize,
    mut f: F,
) -> Result<Vec<Vec<T>>>
where
    F: FnMut(E) -> Result<T>,
{
    for _ in 0..warmup {
        for &env in envs {
            f(env).context("warm-up")?;
        }
    }
    let mut out: Vec<Vec<T>> = envs.iter().map(|_| Vec::new()).collect();
    for round in 0..runs {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..envs.len()).collect()
        } else {
            (0..envs.len()).rev().collect()
        };
        for i in order {
            out[i].push(f(envs[i])?);
        }
    }
    Ok(out)
}

/// One measured phase of the workload program.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// Its name (`hash`, `seq_write`, …).
    pub name: String,
    /// Operations done.
    pub ops: u64,
    /// Bytes moved.
    pub bytes: u64,
    /// Its time by the host's clock: from its begin line's arrival (plus
    /// the pause the program takes after it) to its result line's.
    pub host: Duration,
    /// Its time by its own clock.
    pub own: Duration,
    /// Its check value.
    pub check: String,
}

/// A JSON line's string field.
fn field<'a>(v: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    v.get(key)?.as_str()
}

/// The measurements in the workload program's output: each result line
/// must follow its own begin line.
pub fn parse(lines: &[Line]) -> Result<Vec<Measured>> {
    let mut begun: Option<(String, std::time::Instant)> = None;
    let mut out = Vec::new();
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(&line.text)
            .with_context(|| format!("not a workload line: {:?}", line.text))?;
        if let Some(name) = field(&v, "begin") {
            // The work starts after a pause: the host's clock starts there.
            let pause = v
                .get("pause_ns")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0);
            begun = Some((name.to_string(), line.at + Duration::from_nanos(pause)));
            continue;
        }
        let name = field(&v, "name").context("a line without a name")?;
        let Some((begin, at)) = begun.take() else {
            bail!("{name}: a result without its begin line");
        };
        if begin != name {
            bail!("{name}: a result after the begin line of {begin}");
        }
        let num = |k: &str| v.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
        out.push(Measured {
            name: name.to_string(),
            ops: num("ops"),
            bytes: num("bytes"),
            host: line.at.saturating_duration_since(at),
            own: Duration::from_nanos(num("ns")),
            check: field(&v, "check").unwrap_or("").to_string(),
        });
    }
    if let Some((name, _)) = begun {
        bail!("{name} began but printed no result");
    }
    Ok(out)
}

/// A measurement in `unit`, timed by `time`.
pub fn value(m: &Measured, unit: &str, time: Duration) -> f64 {
    let secs = time.as_secs_f64().max(1e-9);
    let ops = m.ops.max(1) as f64;
    match unit {
        "ms" => secs * 1e3,
        "ns/call" => secs * 1e9 / ops,
        "µs/op" | "µs/file" => secs * 1e6 / ops,
        "ms/request" => secs * 1e3 / ops,
        "requests/s" => ops / secs,
        "MiB/s" => m.bytes as f64 / (1u64 << 20) as f64 / secs,
        "Gbit/s" => m.bytes as f64 * 8.0 / 1e9 / secs,
        _ => secs,
    }
}

/// Under QEMU's emulator Hull's guest kernel has only a jiffies clock
/// (`refined-jiffies`), so Hull's workloads are timed by the host's clock;
/// how far the guest's own timings were from it, as a note.
pub fn clock_note(rows: &[crate::results::Row]) -> Option<String> {
    let ratios: Vec<f64> = rows
        .iter()
        .filter_map(|r| {
            let own = crate::stats::Summary::of(r.self_timed.get("hull")?)?;
            let host = crate::stats::Summary::of(r.host_timed.get("hull")?)?;
            // Time by the guest's clock over time by the host's.
            crate::stats::cost_ratio(own.median, host.median, r.lower_is_better)
        })
        .collect();
    let range = crate::stats::Summary::of(&ratios)?;
    Some(format!(
        "Hull's workloads are timed by the host's clock, from the arrival of a workload's begin \
         line (plus the {} ms pause the program takes after it) to that of its result line: \
         under QEMU's emulator the guest kernel's only clock is jiffies-based. The guest's own \
         timings (results.json: self_timed) were {:.2}–{:.2} times the host's (median {:.2}) \
         in this run. runc's and the host's are timed by the program's own clock.",
        20, range.min, range.max, range.median
    ))
}

/// Collects check values by measurement name and fails if an environment's
/// differs from another's (a hash computed wrong, a file read short).
#[derive(Debug, Default)]
pub struct Checks {
    seen: BTreeMap<String, (String, String)>,
}

impl Checks {
    /// Records `m`'s check from `env`; errs on a mismatch.
    pub fn record(&mut self, env: &str, m: &Measured) -> Result<()> {
        match self.seen.get(&m.name) {
            Some((first_env, check)) if *check != m.check => bail!(
                "{}: {env} gave check {:?}, {first_env} gave {check:?}",
                m.name,
                m.check
            ),
            Some(_) => Ok(()),
            None => {
                self.seen
                    .insert(m.name.clone(), (env.to_string(), m.check.clone()));
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn lines(texts: &[(&str, u64)]) -> Vec<Line> {
        let t0 = Instant::now();
        texts
            .iter()
            .map(|(t, ms)| Line {
                at: t0 + Duration::from_millis(*ms),
                text: t.to_string(),
            })
            .collect()
    }

    #[test]
    fn parses_phases_timed_by_arrival() {
        let out = lines(&[
            (r#"{"begin":"seq_write"}"#, 10),
            (
                r#"{"name":"seq_write","ops":4,"bytes":4194304,"ns":5000000,"check":"sum=1"}"#,
                110,
            ),
            (r#"{"begin":"seq_read","pause_ns":20000000}"#, 120),
            (
                r#"{"name":"seq_read","ops":4,"bytes":4194304,"ns":1000000,"check":"sum=1"}"#,
                170,
            ),
        ]);
        let m = parse(&out).expect("parse");
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].host, Duration::from_millis(100));
        assert_eq!(m[0].own, Duration::from_millis(5));
        assert_eq!(m[1].name, "seq_read");
        assert_eq!(m[1].host, Duration::from_millis(30));
        assert_eq!(value(&m[1], "MiB/s", m[1].host), 4.0 / 0.03);
        assert_eq!(value(&m[0], "ms", m[0].host), 100.0);
    }

    #[test]
    fn rejects_results_without_their_begin() {
        let out = lines(&[(r#"{"name":"hash","ops":1,"bytes":0,"ns":1,"check":"x"}"#, 0)]);
        assert!(parse(&out).is_err());
        let out = lines(&[(r#"{"begin":"hash"}"#, 0)]);
        assert!(parse(&out).is_err());
        let out = lines(&[("garbage", 0)]);
        assert!(parse(&out).is_err());
    }

    #[test]
    fn checks_must_agree() {
        let m = |check: &str| Measured {
            name: "hash".into(),
            ops: 1,
            bytes: 0,
            host: Duration::ZERO,
            own: Duration::ZERO,
            check: check.into(),
        };
        let mut checks = Checks::default();
        checks.record("host", &m("abc")).expect("first");
        checks.record("hull", &m("abc")).expect("same");
        assert!(checks.record("runc", &m("abd")).is_err());
    }

    #[test]
    fn interleaves_after_the_same_warmup() {
        let mut calls = Vec::new();
        let out = interleave(&["a", "b"], 1, 3, |e| {
            calls.push(e);
            Ok(calls.len())
        })
        .expect("runs");
        assert_eq!(calls, ["a", "b", "a", "b", "b", "a", "a", "b"]);
        assert_eq!(out, vec![vec![3, 6, 7], vec![4, 5, 8]]);
    }

    #[test]
    fn clock_note_compares_the_guest_clock() {
        let mut row = crate::results::Row::new("g", "k", "w", "ms", true);
        row.self_timed.insert("hull".into(), vec![90.0]);
        row.host_timed.insert("hull".into(), vec![100.0]);
        let note = clock_note(&[row]).expect("a note");
        assert!(note.contains("0.90–0.90 times"), "{note}");
        assert!(clock_note(&[]).is_none());
    }

    #[test]
    fn units() {
        let m = Measured {
            name: "x".into(),
            ops: 1000,
            bytes: 1 << 30,
            host: Duration::from_secs(1),
            own: Duration::ZERO,
            check: String::new(),
        };
        let s = Duration::from_secs(2);
        assert_eq!(value(&m, "ns/call", s), 2e6);
        assert_eq!(value(&m, "µs/op", s), 2000.0);
        assert_eq!(value(&m, "requests/s", s), 500.0);
        assert_eq!(value(&m, "MiB/s", s), 512.0);
        assert!((value(&m, "Gbit/s", s) - 4.294967296).abs() < 1e-9);
    }
}
