//! `bench/run pod`: a Kubernetes pod's start through containerd's CRI, as
//! a kubelet asks for it (RunPodSandbox, CreateContainer, StartContainer,
//! until the container runs), with runtime handler `hull` beside `runc`
//! in the same run, and what a running idle pod costs the host (PSS of
//! every process it added: shim, monitors, VMMs, virtiofsd, container
//! processes), and `ctr run --rm busybox true` through each runtime's shim.
//! Prints `key: value` lines; medians of `BENCH_RUNS` (default 5).
//!
//! usage: hull-bench-pod   (as root; bench/run pod builds and runs it)

use anyhow::{bail, Context, Result};
use hull_tests::containerd::Containerd;
use hull_tests::cri::{connect, container, pod};
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ContainerState, ContainerStatusRequest, CreateContainerRequest, RemovePodSandboxRequest,
    RunPodSandboxRequest, StartContainerRequest, StopPodSandboxRequest,
};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// One pod: started, measured, removed. Returns (start ms, host PSS KiB,
/// the shim's PSS KiB).
async fn one_pod(
    containerd: &Containerd,
    cri: &mut RuntimeServiceClient<Channel>,
    handler: &str,
    index: usize,
) -> Result<(f64, u64, u64)> {
    let logs = containerd
        .hull
        .scratch
        .path()
        .join(format!("logs-{handler}-{index}"));
    std::fs::create_dir_all(&logs)?;
    let config = pod(
        &format!("bench-{handler}-{index}"),
        &format!("uid-{handler}-{index}"),
        &logs,
    );
    let started = Instant::now();
    let pod_id = cri
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: handler.into(),
        })
        .await
        .context("RunPodSandbox")?
        .into_inner()
        .pod_sandbox_id;
    let id = cri
        .create_container(CreateContainerRequest {
            pod_sandbox_id: pod_id.clone(),
            config: Some(container("idle", "exec sleep 600")),
            sandbox_config: Some(config),
        })
        .await
        .context("CreateContainer")?
        .into_inner()
        .container_id;
    cri.start_container(StartContainerRequest {
        container_id: id.clone(),
    })
    .await
    .context("StartContainer")?;
    loop {
        let state = cri
            .container_status(ContainerStatusRequest {
                container_id: id.clone(),
                verbose: false,
            })
            .await?
            .into_inner()
            .status
            .map(|s| s.state);
        if state == Some(ContainerState::ContainerRunning as i32) {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("the pod's container did not run within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let start_ms = started.elapsed().as_secs_f64() * 1000.0;
    // Idle for a moment, then what the pod holds.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (host, shim) = pod_memory(containerd);
    cri.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: pod_id.clone(),
    })
    .await
    .context("StopPodSandbox")?;
    cri.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: pod_id,
    })
    .await
    .context("RemovePodSandbox")?;
    Ok((start_ms, host, shim))
}

/// PSS in KiB of a process, from /proc.
fn pss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Every process's parent, from /proc.
fn parents() -> Vec<(u32, u32)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let ppid = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((pid, ppid))
        })
        .collect()
}

/// What the running pods hold: the PSS of every process started for this
/// containerd (shims, monitors) and their descendants (VMMs, virtiofsd,
/// container processes), and of the shims alone.
fn pod_memory(containerd: &Containerd) -> (u64, u64) {
    let containerd_pid = containerd.pid();
    let mut roots: Vec<u32> = containerd
        .hull
        .processes()
        .into_iter()
        .filter(|pid| *pid != containerd_pid)
        .collect();
    let tree = parents();
    let mut all = roots.clone();
    while let Some(pid) = roots.pop() {
        for (child, _) in tree.iter().filter(|(_, parent)| *parent == pid) {
            if !all.contains(child) {
                all.push(*child);
                roots.push(*child);
            }
        }
    }
    let shim: u64 = all
        .iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let text = String::from_utf8_lossy(&c);
                text.split('\0')
                    .next()
                    .is_some_and(|p| p.contains("containerd-shim"))
                    && !text.contains("__monitor")
            })
        })
        .map(|pid| pss_kib(*pid))
        .sum();
    (all.iter().map(|pid| pss_kib(*pid)).sum(), shim)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn main() -> Result<()> {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5)
        .max(1);
    let containerd = Containerd::start_with_cri();
    containerd.push_images();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime
        .block_on(async {
            let (mut cri, mut images) = connect(&containerd.socket()).await;
            hull_tests::cri::pull_images(&mut images).await;
            let mut pod_starts = Vec::new();
            for handler in ["runc", "hull"] {
                // One unmeasured pod first: images unpacked, caches warm. A
                // peer that cannot run here is said so, not left out silently.
                if let Err(err) = one_pod(&containerd, &mut cri, handler, 999).await {
                    let reason = format!("{err:#}").replace('\n', " ");
                    println!("pod_start_ms_{handler}: failed ({reason})");
                    if std::env::var_os("BENCH_DEBUG").is_some() {
                        eprintln!("containerd's log:\n{}", containerd.log());
                    }
                    continue;
                }
                let mut starts = Vec::new();
                let mut memory = Vec::new();
                let mut shims = Vec::new();
                for index in 0..runs {
                    let (ms, host, shim) = one_pod(&containerd, &mut cri, handler, index).await?;
                    starts.push(ms);
                    memory.push(host as f64);
                    shims.push(shim as f64);
                }
                let start = median(starts);
                pod_starts.push(start);
                println!("pod_start_ms_{handler}: {start:.1}");
                println!("pod_host_pss_kib_{handler}: {:.0}", median(memory));
                println!("pod_shim_pss_kib_{handler}: {:.0}", median(shims));
            }
            if let [runc, hull] = pod_starts[..] {
                println!("pod_start_ratio_hull_to_runc: {:.1}", hull / runc);
            }
            Ok::<_, anyhow::Error>(())
        })
        .map_err(|err| {
            let log = containerd.log();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            err.context(format!("containerd's log ends:\n{}", tail.join("\n")))
        })?;
    // The same task through containerd's own API (`ctr run --rm ... true`),
    // each runtime's shim, start to exit.
    let mut ratio = Vec::new();
    for (key, runtime) in [
        ("runc", "io.containerd.runc.v2"),
        ("hull", "io.containerd.hull.v2"),
    ] {
        let mut times = Vec::new();
        for index in 0..=runs {
            let started = Instant::now();
            let out = containerd.ctr([
                "-n",
                "k8s.io",
                "run",
                "--rm",
                "--runtime",
                runtime,
                hull_tests::containerd::BUSYBOX_IMAGE,
                &format!("ctr-{key}-{index}"),
                "true",
            ]);
            if !out.status.success() {
                bail!(
                    "ctr run --runtime {runtime}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            // (The first is a warm-up.)
            if index > 0 {
                times.push(started.elapsed().as_secs_f64() * 1000.0);
            }
        }
        let median = median(times);
        ratio.push(median);
        println!("ctr_run_true_ms_{key}: {median:.1}");
    }
    if let [runc, hull] = ratio[..] {
        println!("ctr_run_true_ratio_hull_to_runc: {:.1}", hull / runc);
    }
    println!("pod_runs: {runs}");
    Ok(())
}
