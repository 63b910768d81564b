//! Exec latency: `hull exec C true` vs `runc exec C true` vs the host's
//! fork+exec of `true`, in the compute group's idle containers.

use super::interleave;
use crate::env::{Bench, Target};
use crate::proc;
use crate::results::Row;
use anyhow::Result;

/// Times `true` started in each environment.
pub fn run(bench: &Bench, rows: &mut Vec<Row>) -> Result<()> {
    let targets = [
        Target::Hull(super::compute::NAME),
        Target::Runc(super::compute::NAME),
        Target::Host,
    ];
    let samples = interleave(
        &targets,
        bench.cfg.warmup,
        bench.cfg.runs.max(5),
        |target| {
            let mut cmd = match target {
                Target::Hull(name) => {
                    let mut c = bench.hull.cmd();
                    c.args(["exec", name, "/bin/true"]);
                    c
                }
                Target::Runc(id) => {
                    let mut c = bench.runc.cmd();
                    c.args(["exec", id, "/bin/true"]);
                    c
                }
                Target::Host => bench.host.true_cmd(),
            };
            Ok(proc::ms(proc::timed(&mut cmd)?.0))
        },
    )?;
    let mut row = Row::new(
        "exec",
        "exec.true",
        "`hull exec C true` / `runc exec C true` in an idle container, wall time; host: fork+exec of the same busybox `true`",
        "ms",
        true,
    );
    for (target, s) in targets.iter().zip(samples) {
        row.samples.insert(target.env().into(), s);
    }
    rows.push(row);
    Ok(())
}
