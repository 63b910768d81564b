//! `hull-bench`: Hull's VM-vs-container benchmark suite. One run measures
//! Hull (with the backend `hull info` reports) beside runc and beside the
//! bare host: start, exec, compute, system calls, memory bandwidth, file
//! I/O, network and density; it writes `results.json` (every sample),
//! `report.md` (one page) and SVG plots.
//!
//! usage: hull-bench run [--out DIR] [sizes…]   (as root; see --help)
//!        hull-bench report DIR                 (re-render from DIR/results.json)
#![deny(missing_docs)]

mod cleanup;
mod compare;
mod config;
mod env;
#[cfg(test)]
mod fixture;
mod machine;
mod plot;
mod proc;
mod report;
mod results;
mod stats;
mod workloads;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use results::{Results, Row};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "hull-bench",
    about = "Hull beside runc and the bare host: a report with tables and plots"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

/// The sub-commands.
#[derive(Debug, Subcommand)]
enum Cmd {
    /// Runs the suite and writes DIR/results.json, report.md and the plots.
    Run {
        /// Where the results go.
        #[arg(long, default_value = "bench/report")]
        out: PathBuf,
        #[command(flatten)]
        cfg: Box<config::Config>,
    },
    /// Renders DIR/report.md and the plots again from DIR/results.json.
    Report {
        /// The directory of a run.
        dir: PathBuf,
    },
}

/// Writes report.md and the plots of `results` into `dir`.
fn render(results: &Results, dir: &Path) -> Result<()> {
    std::fs::write(dir.join("report.md"), report::render(results))
        .with_context(|| format!("writing {}", dir.join("report.md").display()))?;
    plot::write_all(results, dir)?;
    Ok(())
}

/// Runs group `name` unless left out; a failure becomes a note, and the
/// other groups still run.
fn group(
    bench: &env::Bench,
    results: &mut Results,
    name: &str,
    f: impl FnOnce(&mut Vec<Row>) -> Result<()>,
) {
    if !bench.cfg.runs_group(name) {
        return;
    }
    tracing::info!("group {name}");
    let started = Instant::now();
    let mut rows = Vec::new();
    match f(&mut rows) {
        Ok(()) => results.rows.extend(rows),
        Err(err) => {
            tracing::error!("group {name} failed: {err:#}");
            results.failed.push(name.to_string());
            results
                .notes
                .push(format!("The {name} group failed and is left out: {err:#}"));
        }
    }
    tracing::info!("group {name}: {:.0} s", started.elapsed().as_secs_f64());
}

/// The whole run; everything it made is removed by the caller's clean-up.
fn run(cfg: config::Config, out: &Path) -> Result<Results> {
    let started = Instant::now();
    let before = match &cfg.before {
        Some(path) => {
            let mut before = Results::load(path).context("reading the baseline (--before)")?;
            before.before = None;
            Some(Box::new(before))
        }
        None => None,
    };
    let mut results = Results {
        config: cfg.summary(),
        before,
        ..Results::default()
    };
    results.date =
        proc::output(std::process::Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]))?
            .trim()
            .to_string();
    let bench = env::Bench::setup(cfg)?;
    let info = bench.info.clone();
    results.machine = machine::machine(&info);
    results.versions = machine::versions(&bench.hull.bin.display().to_string(), &info);
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;

    group(&bench, &mut results, "start", |rows| {
        workloads::start::run(&bench, &info, rows)
    });
    if bench.cfg.runs_group("exec") || bench.cfg.runs_group("compute") {
        match workloads::compute::start_containers(&bench) {
            Ok(()) => {
                group(&bench, &mut results, "exec", |rows| {
                    workloads::exec::run(&bench, rows)
                });
                group(&bench, &mut results, "compute", |rows| {
                    workloads::compute::run(&bench, rows)
                });
            }
            Err(err) => results
                .notes
                .push(format!("The exec and compute groups did not run: {err:#}")),
        }
        workloads::compute::stop_containers(&bench);
    }
    group(&bench, &mut results, "net", |rows| {
        workloads::net::run(&bench, rows)
    });
    group(&bench, &mut results, "density", |rows| {
        workloads::density::run(&bench, rows)
    });

    if results.versions.get("accel").is_some_and(|a| a == "tcg") {
        results.notes.extend(workloads::clock_note(&results.rows));
    }
    results.seconds = started.elapsed().as_secs_f64();
    Ok(results)
}

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let code = match cli.command {
        Cmd::Report { dir } => match Results::load(&dir.join("results.json"))
            .map_err(anyhow::Error::from)
            .and_then(|r| render(&r, &dir))
        {
            Ok(()) => 0,
            Err(err) => {
                eprintln!("hull-bench report: {err:#}");
                1
            }
        },
        Cmd::Run { out, cfg } => {
            cleanup::on_signal();
            let result = run(*cfg, &out);
            if cleanup::stopping() {
                // Interrupted: the signal handler cleans up and exits; no
                // partial report replaces a previous one.
                std::thread::sleep(std::time::Duration::from_secs(600));
            }
            cleanup::janitor().clean();
            match result.and_then(|r| {
                r.save(&out.join("results.json"))?;
                render(&r, &out)?;
                Ok(r)
            }) {
                Ok(r) => {
                    println!("{}", out.join("report.md").display());
                    i32::from(!r.failed.is_empty())
                }
                Err(err) => {
                    eprintln!("hull-bench: {err:#}");
                    1
                }
            }
        }
    };
    std::process::exit(code);
}
