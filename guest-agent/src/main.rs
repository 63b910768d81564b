//! `hull-agent`: PID 1 of a Hull microVM.
//!
//! It prepares the guest (mounts, cgroup v2), opens the channel to the host
//! that the kernel command line names, and then runs containers as the host
//! asks. If it ever returns, the kernel panics and the VM ends (`panic=-1`
//! with `reboot=t` on the command line), which the host sees as the VMM
//! exiting: there is no state in which the guest lingers without an agent.
#![deny(missing_docs)]

mod channel;
mod container;
mod dns;
mod fdstream;
mod init;
mod server;
mod tini;

use anyhow::{Context, Result};

/// Ends the VM: with `reboot=t` and the VMM's no-reboot setting, a reboot
/// is a triple fault that makes the VMM exit. Works without ACPI.
pub fn power_off() -> ! {
    nix::unistd::sync();
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT);
    // reboot(2) does not return on success.
    std::process::exit(1)
}

fn run() -> Result<()> {
    init::setup_guest().context("setting up the guest")?;
    let cmdline =
        std::fs::read_to_string("/proc/cmdline").context("reading the kernel command line")?;
    // The benchmarks' boot floor: the guest up to a ready PID 1, then off.
    if cmdline.split_whitespace().any(|arg| arg == "hull.poweroff") {
        power_off();
    }
    if let Some(mtu) = init::mtu_from_cmdline(&cmdline) {
        init::set_eth0_mtu(mtu).with_context(|| format!("setting eth0's MTU to {mtu}"))?;
    }
    let spec = channel::ChannelSpec::from_cmdline(&cmdline)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let stream = channel::open(&spec).await?;
        tracing::info!("hull-agent ready on {spec:?}");
        server::serve(stream).await
    })
}

fn main() {
    // `run --init`: a container's PID 1, not the VM's (see `tini`).
    let args: Vec<String> = std::env::args().collect();
    if args.first().map(String::as_str) == Some(tini::PATH)
        && args.get(1).map(String::as_str) == Some("--")
    {
        tini::run(&args[2..]);
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .without_time()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HULL_AGENT_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    if let Err(err) = run() {
        tracing::error!("hull-agent: {err:#}");
    }
    power_off();
}
