//! Start latency: `hull run --rm true` cold with its phases, beside the
//! boot floor (QEMU booting the same kernel and initramfs to a ready
//! PID 1, checked by its console), `runc run` of the same `true` and the
//! host's fork+exec; then N containers started at once.

use super::interleave;
use crate::env::hull::read_timings;
use crate::env::runc::Spec;
use crate::env::Bench;
use crate::proc;
use crate::results::Row;
use anyhow::{bail, ensure, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What the guest kernel prints when PID 1 (hull-agent, on `hull.poweroff`)
/// reboots it, at a level `quiet` lets through.
pub const BOOTED_MARKER: &str = "reboot: Restarting system";

/// Whether a boot-floor console log shows a guest that booted to PID 1 and
/// powered off as asked (not a panic, not an agent error).
pub fn booted(console: &str) -> Result<()> {
    ensure!(
        !console.contains("Kernel panic"),
        "the guest panicked: {}",
        tail(console)
    );
    ensure!(
        !console.contains("hull-agent:"),
        "hull-agent failed: {}",
        tail(console)
    );
    ensure!(
        console.contains(BOOTED_MARKER),
        "no {BOOTED_MARKER:?} on the console: {}",
        tail(console)
    );
    Ok(())
}

/// The end of a console log, for errors.
fn tail(text: &str) -> &str {
    let mut start = text.len().saturating_sub(400);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// Checks that a container's exit code and output come through: `sh -c
/// 'uname -r; exit 7'` must print a release (Hull: its own kernel's, runc:
/// the host's) and exit 7, so an exit 0 later means `true` ran.
fn sanity(bench: &Bench, bundle: &Path) -> Result<()> {
    let script = ["/bin/sh", "-c", "uname -r; exit 7"];
    let host_release = std::fs::read_to_string("/proc/sys/kernel/osrelease")?;
    let out = bench
        .hull
        .run_rm(None, &script)
        .stdin(Stdio::null())
        .output()?;
    let release = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.code() == Some(7)
            && !release.trim().is_empty()
            && release.trim() != host_release.trim(),
        "hull run: exit {:?}, output {release:?}, stderr {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = bench
        .runc
        .run("hb-sanity", bundle)
        .stdin(Stdio::null())
        .output()?;
    let release = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.code() == Some(7) && release.trim() == host_release.trim(),
        "runc run: exit {:?}, output {release:?}",
        out.status.code()
    );
    Ok(())
}

/// The boot floor's QEMU command: Hull's machine, memory and kernel command
/// line (less the agent's channel), `hull.poweroff`, the console to `log`.
fn floor_cmd(accel: &str, kernel: &str, initrd: &str, log: &Path) -> Command {
    let cpu = if accel.starts_with("kvm") {
        "host,-arch-capabilities"
    } else {
        "max"
    };
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args([
        "-M",
        "microvm,acpi=off,x-option-roms=off,memory-backend=mem",
    ])
    .args(["-accel", accel, "-cpu", cpu, "-smp", "1", "-m", "256M"])
    .args(["-object", "memory-backend-memfd,id=mem,size=256M,share=on"])
    .args([
        "-nodefaults",
        "-no-user-config",
        "-no-reboot",
        "-display",
        "none",
        "-monitor",
        "none",
    ])
    .arg("-serial")
    .arg(format!("file:{}", log.display()))
    .args(["-kernel", kernel, "-initrd", initrd]);
    let mut append =
        "console=ttyS0 reboot=t panic=-1 quiet tsc=reliable no_timer_check hull.poweroff"
            .to_string();
    // As Hull tells its guests under the emulator (hypervisor/qemu.rs):
    // the emulated APIC timer's clock, so the kernel does not measure it,
    // and no patching of lock prefixes.
    if !accel.starts_with("kvm") {
        append.push_str(" lapic_timer_hz=1000000000 noreplace-smp");
    }
    cmd.arg("-append").arg(append);
    cmd
}

/// The environments of the start rows.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Env {
    Hull,
    Floor,
    Runc,
    Host,
}

impl Env {
    fn key(self) -> &'static str {
        match self {
            Env::Hull => "hull",
            Env::Floor => "floor",
            Env::Runc => "runc",
            Env::Host => "host",
        }
    }
}

/// Measures the start rows.
pub fn run(bench: &Bench, info: &BTreeMap<String, String>, rows: &mut Vec<Row>) -> Result<()> {
    let bundle = bench.runc.bundle(
        "hb-true",
        &Spec {
            args: vec!["/bin/true".into()],
            ..Spec::default()
        },
    )?;
    let sanity_bundle = bench.runc.bundle(
        "hb-sanity",
        &Spec {
            args: vec!["/bin/sh".into(), "-c".into(), "uname -r; exit 7".into()],
            ..Spec::default()
        },
    )?;
    sanity(bench, &sanity_bundle).context("exit codes and output do not come through")?;

    let accel = info.get("accel").map_or("tcg", String::as_str).to_string();
    // The floor's QEMU gets the accelerator options Hull's gets.
    let accel_arg = match info.get("accel options") {
        Some(options) if !options.is_empty() => format!("{accel},{options}"),
        _ => accel.clone(),
    };
    let kernel = info
        .get("kernel")
        .context("hull info names no kernel")?
        .clone();
    let initrd = info
        .get("initramfs")
        .context("hull info names no initramfs")?
        .clone();
    let timings: PathBuf = bench.scratch.join("timings.json");
    let console: PathBuf = bench.scratch.join("floor-console.log");
    let mut phases: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    // The floor is QEMU booting: no floor for hull-vmm.
    let envs: Vec<Env> = [Env::Hull, Env::Floor, Env::Runc, Env::Host]
        .into_iter()
        .filter(|e| *e != Env::Floor || bench.hull.vmm.as_deref() != Some("hull"))
        .collect();
    let samples = interleave(&envs, bench.cfg.warmup, bench.cfg.start_runs, |env| {
        let ms = match env {
            Env::Hull => {
                let _ = std::fs::remove_file(&timings);
                let ms = proc::ms(
                    proc::timed(&mut bench.hull.run_rm(Some(&timings), &["/bin/true"]))?.0,
                );
                let t = read_timings(&timings)?;
                ensure!(
                    t.contains_key("run"),
                    "hull run recorded no run phase: {t:?}"
                );
                for (k, v) in t {
                    phases.entry(k).or_default().push(v);
                }
                ms
            }
            Env::Floor => {
                let _ = std::fs::remove_file(&console);
                let ms = proc::ms(
                    proc::timed(&mut floor_cmd(&accel_arg, &kernel, &initrd, &console))?.0,
                );
                booted(&std::fs::read_to_string(&console).unwrap_or_default())
                    .context("the boot floor's guest")?;
                ms
            }
            Env::Runc => proc::ms(proc::timed(&mut bench.runc.run("hb-true", &bundle))?.0),
            Env::Host => proc::ms(proc::timed(&mut bench.host.true_cmd())?.0),
        };
        Ok(ms)
    })?;
    // The warm-up's phases are not samples.
    let warm = bench.cfg.warmup;
    let mut row = Row::new(
        "start",
        "start.run_true",
        "`hull run --rm IMAGE true` cold (a new VM), wall time; boot floor: QEMU booting the same kernel+initramfs to hull-agent as PID 1, which powers off (console checked); runc: `runc run` of the same busybox `true`; host: fork+exec of it",
        "ms",
        true,
    );
    for (env, s) in envs.iter().zip(samples) {
        row.samples.insert(env.key().into(), s);
    }
    rows.push(row);
    for (name, mut v) in phases {
        let v = v.split_off(warm.min(v.len()));
        let mut row = Row::new(
            "start",
            &format!("start.phase_{name}"),
            &format!("Hull's `{name}` phase of the runs above (HULL_TIMINGS_FILE)"),
            "ms",
            true,
        );
        row.samples.insert("hull".into(), v);
        rows.push(row);
    }
    for &n in &bench.cfg.parallel {
        rows.push(parallel(bench, &bundle, n)?);
    }
    Ok(())
}

/// N containers at once: wall time until the last has ended.
fn parallel(bench: &Bench, bundle: &Path, n: usize) -> Result<Row> {
    if n == 0 {
        bail!("a parallel count of 0");
    }
    tracing::info!("{n} at once");
    let envs = [Env::Hull, Env::Runc, Env::Host];
    let samples = interleave(&envs, bench.cfg.warmup, bench.cfg.parallel_runs, |env| {
        let cmds: Vec<Command> = (0..n)
            .map(|i| match env {
                Env::Hull => bench.hull.run_rm(None, &["/bin/true"]),
                Env::Runc => bench.runc.run(&format!("hb-par-{i}"), bundle),
                _ => bench.host.true_cmd(),
            })
            .collect();
        Ok(proc::ms(proc::all_at_once(cmds)?))
    })?;
    let mut row = Row::new(
        "start",
        &format!("start.parallel_{n}"),
        &format!("{n} × `run --rm true` started at once, wall time until all have ended (host: {n} fork+exec)"),
        "ms",
        true,
    );
    for (env, s) in envs.iter().zip(samples) {
        row.samples.insert(env.key().into(), s);
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_floor_console_checks() {
        assert!(booted("[    1.2] reboot: Restarting system\n").is_ok());
        assert!(booted("").is_err());
        assert!(booted(
            "Kernel panic - not syncing: Attempted to kill init!\nreboot: Restarting system"
        )
        .is_err());
        assert!(booted("hull-agent: setting up the guest: x\nreboot: Restarting system").is_err());
    }
}
