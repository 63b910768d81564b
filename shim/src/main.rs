//! `containerd-shim-hull-v2`: containerd's runtime v2 shim for Hull
//! (`runtime_type = "io.containerd.hull.v2"`). containerd starts one per
//! task (one per pod under Kubernetes, grouped by the CRI sandbox id); it
//! serves containerd's task API (v2, which containerd 1.6, 1.7 and 2.x
//! accept) on a ttrpc socket and does the work through Hull's engine, so
//! each container runs in a microVM with its own monitor, as under `hull`.
//!
//! The same binary is the containers' monitors (`__monitor ID`), so the
//! shim needs nothing else installed but Hull's guest artefacts.
#![deny(missing_docs)]

mod bundle;
mod container;
mod error;
mod events;
mod exec;
mod io;
mod shim;
mod stats;
mod task_service;

/// containerd's name for this runtime.
const RUNTIME_ID: &str = "io.containerd.hull.v2";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(code) = monitor_mode(&args) {
        std::process::exit(code);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("{RUNTIME_ID}: starting the async runtime: {err}");
            std::process::exit(1);
        }
    };
    let config = containerd_shim::Config {
        // A container's monitor is a daemon that its spawner reaps (a
        // thread waits for it); the shim must not take its exit status, nor
        // become the parent of what outlives a monitor.
        no_reaper: true,
        no_sub_reaper: true,
        ..Default::default()
    };
    runtime.block_on(containerd_shim::asynchronous::run::<shim::HullShim>(
        RUNTIME_ID,
        Some(config),
    ));
}

/// `--root ROOT __monitor ID`, as the engine spawns a monitor: Hull's own
/// command line runs it (the monitor is hidden there too).
fn monitor_mode(args: &[String]) -> Option<i32> {
    args.iter()
        .any(|a| a == "__monitor")
        .then(hull_runtime::cli::main)
}
