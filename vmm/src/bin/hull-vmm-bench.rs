//! `hull-vmm-bench`: start-up time and memory overhead of hull-vmm, each
//! measured beside QEMU (`-M microvm -accel kvm`) in the same run with the
//! same guest (the PVH test guest from `vmm/test-guests`).
//!
//! - `start_ms_*`: from just before `spawn()` to the first byte of guest
//!   serial output arriving on the VMM's stdout pipe. The guest's first
//!   instruction writes the boot timer port and its first line follows a
//!   few dozen instructions later, so this is "process start to first
//!   guest instruction" plus one serial exit, measured the same way for
//!   both VMMs.
//! - `boot_timer_ms_hull`: hull-vmm's own measure, from its `main()` to the
//!   guest's boot timer port write.
//! - `rss_overhead_mib*`: VmRSS minus the guest memory the VMM has touched
//!   (RssShmem: both VMMs map guest RAM from a memfd here), idle guest,
//!   1 vCPU, 128 MiB.
//!
//! - `vsock_mbps_*`: N bytes each way between a host peer on the hybrid
//!   vsock socket and the guest (`vsockperf=N`), checked against a pattern
//!   on both sides; the peer `vsock_mbps_unix_socket_peer` is the same
//!   copy and check through a host unix socket pair: a ceiling, not a VMM.
//! - `net_mbps_*` / `net_fps_*`: 1514-byte frames each way between the
//!   guest (`netperf=N`) and an AF_PACKET socket on its tap, in a network
//!   namespace created for the run; the peer `net_*_veth_peer` is the same
//!   frames between the ends of a veth pair: the kernel path without a VM.
//!
//! Prints `key: value` lines; `#` lines are details.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;

#[path = "hull-vmm-bench/throughput.rs"]
mod throughput;

#[derive(Debug, Parser)]
#[command(name = "hull-vmm-bench")]
struct Args {
    /// The PVH test guest ELF.
    #[arg(long)]
    guest: PathBuf,
    /// hull-vmm binary (default: next to this program).
    #[arg(long)]
    hull: Option<PathBuf>,
    /// QEMU binary.
    #[arg(long, default_value = "qemu-system-x86_64")]
    qemu: String,
    /// Runs per measurement (the median is reported).
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// MiB each way per vsock throughput run.
    #[arg(long, default_value_t = 64)]
    vsock_mib: u64,
    /// Frames each way per net throughput run.
    #[arg(long, default_value_t = 5_000)]
    net_frames: u32,
    /// Runs per throughput figure (the median is reported).
    #[arg(long, default_value_t = 3)]
    throughput_runs: usize,
    /// Only the start-up figures (start_ms_*, boot_timer_ms_hull): no
    /// memory or throughput runs (`bench/run lab` in the KVM lab).
    #[arg(long)]
    start_only: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Vmm {
    Hull,
    Qemu,
}

fn command(vmm: Vmm, args: &Args, hull: &Path, action: &str) -> Command {
    let cmdline = format!("action={action}");
    match vmm {
        Vmm::Hull => {
            let mut c = Command::new(hull);
            c.arg("--kernel")
                .arg(&args.guest)
                .args(["--cmdline", &cmdline, "--mem-mib", "128", "--vcpus", "1"])
                .args(["--boot-protocol", "pvh"])
                .env("HULL_VMM_LOG", "info")
                .env("NO_COLOR", "1");
            c
        }
        Vmm::Qemu => {
            let mut c = Command::new(&args.qemu);
            c.args([
                "-M",
                "microvm,isa-serial=on,memory-backend=mem",
                "-accel",
                "kvm",
            ])
            .args([
                "-cpu",
                "host,-arch-capabilities",
                "-no-reboot",
                "-nodefaults",
            ])
            .args(["-display", "none", "-m", "128", "-smp", "1"])
            .args(["-object", "memory-backend-memfd,id=mem,size=128M,share=on"])
            .args(["-serial", "stdio"])
            .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
            .arg("-kernel")
            .arg(&args.guest)
            .args(["-append", &cmdline]);
            c
        }
    }
}

fn spawn(mut command: Command) -> anyhow::Result<Child> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {:?}", command.get_program()))
}

/// One start-up run: (ms to first serial byte, hull's boot timer in ms).
fn start_once(vmm: Vmm, args: &Args, hull: &Path) -> anyhow::Result<(f64, Option<f64>)> {
    let command = command(vmm, args, hull, "exit:3");
    let t0 = Instant::now();
    let mut child = spawn(command)?;
    let mut stdout = child.stdout.take().context("stdout")?;
    let mut first = [0u8; 1];
    stdout.read_exact(&mut first).context("no serial output")?;
    let elapsed = t0.elapsed().as_secs_f64() * 1000.0;
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest)?;
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .context("stderr")?
        .read_to_string(&mut stderr)?;
    let status = child.wait()?;
    // hull: 3; QEMU's isa-debug-exit: (3 << 1) | 1.
    let expected = if vmm == Vmm::Hull { 3 } else { 7 };
    if status.code() != Some(expected) {
        bail!("unexpected exit {status}: {stderr}");
    }
    let boot_timer = stderr
        .lines()
        .find_map(|l| l.split("boot timer: guest running ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|ms| ms.parse().ok());
    Ok((elapsed, boot_timer))
}

fn status_kib(pid: u32, key: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {key} in /proc/{pid}/status"))
}

/// One idle run: (VmRSS - RssShmem, VmRSS, RssShmem) in MiB.
fn rss_once(vmm: Vmm, args: &Args, hull: &Path) -> anyhow::Result<(f64, f64, f64)> {
    let mut child = spawn(command(vmm, args, hull, "idle"))?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains("action: idle") => break,
            Some(Ok(_)) if Instant::now() < deadline => continue,
            _ => {
                let _ = child.kill();
                bail!("guest never reported idle");
            }
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let pid = child.id();
    let rss = status_kib(pid, "VmRSS:")?;
    let shmem = status_kib(pid, "RssShmem:")?;
    child.kill()?;
    child.wait()?;
    let mib = |kib: u64| kib as f64 / 1024.0;
    Ok((mib(rss - shmem), mib(rss), mib(shmem)))
}

/// The median (of an even count, the mean of the middle two; NaN of none),
/// sorting `values`.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn qemu_available(args: &Args, hull: &Path) -> Result<(), String> {
    match start_once(Vmm::Qemu, args, hull) {
        Ok(_) => Ok(()),
        Err(e) => Err(e.to_string().replace('\n', " ")),
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let hull = match &args.hull {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("hull-vmm"),
    };
    let runs = args.runs.max(1);
    println!(
        "# guest {}, {runs} runs each, medians",
        args.guest.display()
    );

    // One warm-up start each, untimed: QEMU's is its availability check.
    start_once(Vmm::Hull, &args, &hull)?;
    let mut hull_start = Vec::new();
    let mut hull_timer = Vec::new();
    for _ in 0..runs {
        let (ms, timer) = start_once(Vmm::Hull, &args, &hull)?;
        hull_start.push(ms);
        hull_timer.extend(timer);
    }
    let qemu = qemu_available(&args, &hull);
    let mut qemu_start = Vec::new();
    if qemu.is_ok() {
        for _ in 0..runs {
            qemu_start.push(start_once(Vmm::Qemu, &args, &hull)?.0);
        }
    }
    println!("start_ms_hull: {:.1}", median(&mut hull_start));
    println!(
        "# start_ms_hull: min {:.1} max {:.1}",
        hull_start[0],
        hull_start[hull_start.len() - 1]
    );
    match &qemu {
        Ok(()) => {
            println!("start_ms_qemu: {:.1}", median(&mut qemu_start));
            println!(
                "# start_ms_qemu: min {:.1} max {:.1}",
                qemu_start[0],
                qemu_start[qemu_start.len() - 1]
            );
        }
        Err(reason) => println!("start_ms_qemu: n/a ({reason})"),
    }
    if !hull_timer.is_empty() {
        println!("boot_timer_ms_hull: {:.1}", median(&mut hull_timer));
    }
    if args.start_only {
        return Ok(());
    }

    let rss_runs = runs.min(5);
    let mut overhead = Vec::new();
    let mut last = (0.0, 0.0, 0.0);
    for _ in 0..rss_runs {
        last = rss_once(Vmm::Hull, &args, &hull)?;
        overhead.push(last.0);
    }
    println!("rss_overhead_mib: {:.2}", median(&mut overhead));
    println!(
        "# rss_overhead_mib: last run VmRSS {:.2} MiB minus touched guest memory (RssShmem) {:.2} MiB; idle, 1 vCPU, 128 MiB",
        last.1, last.2
    );
    if qemu.is_ok() {
        let mut qemu_overhead = Vec::new();
        for _ in 0..rss_runs {
            qemu_overhead.push(rss_once(Vmm::Qemu, &args, &hull)?.0);
        }
        println!("rss_overhead_mib_qemu: {:.2}", median(&mut qemu_overhead));
    }
    throughput_figures(&args, &hull);
    Ok(())
}

/// Median of `runs` results of `run`, or the first error.
fn median_of<T>(
    runs: usize,
    mut run: impl FnMut() -> anyhow::Result<T>,
    mut value: impl FnMut(&T) -> Vec<f64>,
) -> anyhow::Result<Vec<f64>> {
    let mut columns: Vec<Vec<f64>> = Vec::new();
    for _ in 0..runs.max(1) {
        let values = value(&run()?);
        columns.resize(values.len(), Vec::new());
        for (column, v) in columns.iter_mut().zip(values) {
            column.push(v);
        }
    }
    Ok(columns.iter_mut().map(|c| median(c)).collect())
}

fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

/// The vsock and net throughput figures, each beside its host reference.
fn throughput_figures(args: &Args, hull: &Path) {
    let runs = args.throughput_runs;
    let bytes = args.vsock_mib << 20;
    println!(
        "# throughput: {runs} runs each, medians; vsock {} MiB each way, net {} frames of {} bytes each way",
        args.vsock_mib,
        args.net_frames,
        throughput::FRAME_LEN
    );
    let vsock = median_of(
        runs,
        || throughput::vsock_run(hull, &args.guest, bytes, false),
        |f| {
            vec![
                throughput::mbps(f.bytes, f.host_to_guest),
                throughput::mbps(f.bytes, f.guest_to_host),
            ]
        },
    );
    match vsock {
        Ok(v) => {
            println!("vsock_mbps_host_to_guest_hull: {:.0}", v[0]);
            println!("vsock_mbps_guest_to_host_hull: {:.0}", v[1]);
        }
        Err(e) => {
            let e = one_line(&e);
            println!("vsock_mbps_host_to_guest_hull: n/a ({e})");
            println!("vsock_mbps_guest_to_host_hull: n/a ({e})");
        }
    }
    match median_of(
        runs,
        || throughput::unix_socket_run(bytes),
        |t| vec![throughput::mbps(bytes, *t)],
    ) {
        Ok(v) => println!("vsock_mbps_unix_socket_peer: {:.0}", v[0]),
        Err(e) => println!("vsock_mbps_unix_socket_peer: n/a ({})", one_line(&e)),
    }
    println!("# vsock_mbps_unix_socket_peer: the same copy and check through a host unix socket pair, no VM: a ceiling");

    let frame_bytes = |frames: u32| u64::from(frames) * throughput::FRAME_LEN as u64;
    let fps = |frames: u32, t: Duration| f64::from(frames) / t.as_secs_f64().max(1e-9);
    let net = median_of(
        runs,
        || throughput::net_run(hull, &args.guest, args.net_frames, false),
        |f| {
            vec![
                throughput::mbps(frame_bytes(f.frames), f.guest_to_host),
                fps(f.frames, f.guest_to_host),
                throughput::mbps(frame_bytes(f.frames), f.host_to_guest),
                fps(f.frames, f.host_to_guest),
            ]
        },
    );
    match net {
        Ok(v) => {
            println!("net_mbps_guest_to_host_hull: {:.0}", v[0]);
            println!("net_fps_guest_to_host_hull: {:.0}", v[1]);
            println!("net_mbps_host_to_guest_hull: {:.0}", v[2]);
            println!("net_fps_host_to_guest_hull: {:.0}", v[3]);
        }
        Err(e) => {
            let e = one_line(&e);
            for key in [
                "mbps_guest_to_host",
                "fps_guest_to_host",
                "mbps_host_to_guest",
                "fps_host_to_guest",
            ] {
                println!("net_{key}_hull: n/a ({e})");
            }
        }
    }
    let frames = args.net_frames;
    match median_of(
        runs,
        || throughput::veth_run(frames),
        |t| vec![throughput::mbps(frame_bytes(frames), *t), fps(frames, *t)],
    ) {
        Ok(v) => {
            println!("net_mbps_veth_peer: {:.0}", v[0]);
            println!("net_fps_veth_peer: {:.0}", v[1]);
        }
        Err(e) => {
            let e = one_line(&e);
            println!("net_mbps_veth_peer: n/a ({e})");
            println!("net_fps_veth_peer: n/a ({e})");
        }
    }
    println!("# net_*_veth_peer: the same frames between the ends of a veth pair through AF_PACKET sockets, no VM");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_are_medians() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }
}
