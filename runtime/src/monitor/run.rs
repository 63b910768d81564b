//! One run of the container: its sandbox booted, attached to its network,
//! the container created and started in it, its output logged, its exit
//! waited for, and everything torn down again.

use super::dns;
use super::health::{
    dead_process, describe_sandbox_death, inject_fault, while_alive, HEALTH_INTERVAL,
};
use super::member::{end_members, Member};
use super::restart::should_restart;
use super::shares::ContainerShares;
use super::{lock, Attached, Control, ExitInfo, Shared};
use crate::config::{GuestArtifacts, Paths};
use crate::container::{ContainerRecord, ContainerStore};
use crate::engine::network::SandboxNetwork;
use crate::logs::{JsonLogWriter, OutputStream};
use crate::monitor_link::proto::{MonitorResponse, STDERR, STDOUT};
use crate::platform::Platform;
use crate::sandbox::{Sandbox, SandboxConfig, SandboxPlan, LAYERS_SHARE_TAG};
use anyhow::{anyhow, Context, Result};
use futures_util::stream::{FuturesUnordered, StreamExt};
use hull_protocol::{Frame, Request, Response, Rootfs, StdioStreams};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// A container process that could not be started (Docker's 126/127).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(super) struct StartFailure {
    pub(super) message: String,
    pub(super) exit_code: i32,
}

/// What every run of the container uses, borrowed from the monitor.
pub(super) struct RunContext<'a> {
    pub(super) paths: &'a Paths,
    pub(super) store: &'a ContainerStore,
    pub(super) plan: &'a SandboxPlan,
    pub(super) spec: &'a oci_spec::runtime::Spec,
    pub(super) shared: &'a Arc<Shared>,
    pub(super) log: &'a Arc<Mutex<JsonLogWriter>>,
    pub(super) attachment: Option<&'a SandboxNetwork>,
}

/// What runs of the container hand on to each other.
pub(super) struct RunState {
    /// A client's `Start`, answered once the process runs (or fails to).
    pub(super) start_waiter: Option<oneshot::Sender<MonitorResponse>>,
    /// Start without waiting for a client's word (restarts).
    pub(super) auto_start: bool,
    /// `stop` or `rm -f` ended it: no restart policy brings it back.
    pub(super) stopped_by_user: bool,
}

/// Boots a sandbox, runs the container once in it, tears it down.
pub(super) async fn run_once(
    ctx: &RunContext<'_>,
    record: &mut ContainerRecord,
    control: &mut mpsc::Receiver<Control>,
    state: &mut RunState,
) -> Result<ExitInfo> {
    let id = record.id.clone();
    let platform = Platform::detect();
    let hypervisor = match &ctx.plan.vmm {
        Some(name) => platform
            .hypervisor(name)
            .ok_or_else(|| anyhow!("unknown VMM backend '{name}'"))?,
        None => platform.default_hypervisor(),
    };
    let artifacts = GuestArtifacts::resolve(ctx.plan.kernel.clone(), ctx.plan.initrd.clone());
    let shares = ContainerShares::of(ctx.store, &id, ctx.plan).await?;
    let (net, mut extra_cmdline) = match ctx.attachment {
        Some(a) => (vec![a.nic()], a.kernel_args(&record.config.hostname)),
        None => (Vec::new(), Vec::new()),
    };
    // A debugging aid (e.g. `loglevel=7`), also how tests make a guest panic.
    if let Ok(args) = std::env::var("HULL_KERNEL_ARGS") {
        extra_cmdline.extend(args.split_whitespace().map(str::to_string));
    }
    let boot_started = Instant::now();
    let mut sandbox = Sandbox::start(SandboxConfig {
        id: id.clone(),
        dir: ctx.paths.sandbox_dir(&id).join("vm"),
        hypervisor,
        kernel: artifacts.kernel,
        initrd: artifacts.initrd,
        virtiofsd: artifacts.virtiofsd,
        vcpus: ctx.plan.vcpus,
        memory_mib: ctx.plan.memory_mib,
        shares: shares.entries.clone(),
        boot_timeout: Duration::from_secs(ctx.plan.boot_timeout_secs),
        net,
        extra_cmdline,
        netns: ctx.attachment.and_then(SandboxNetwork::netns),
    })
    .await?;
    inject_fault(&sandbox, "monitor.after-boot");
    let events = forward_dns(ctx, &mut sandbox).await;
    let result = run_in_sandbox(ctx, record, &sandbox, control, state, boot_started).await;
    events.abort();
    let teardown_started = Instant::now();
    sandbox.shutdown().await;
    drop(shares);
    let (exit, mut phases) = result?;
    phases.push(("teardown", teardown_started.elapsed()));
    record_timings(&phases);
    Ok(exit)
}

/// Starts reading the agent's events. In another network namespace (CNI
/// mode), a resolv.conf naming resolvers on that namespace's loopback
/// (Docker's embedded DNS) gets them forwarded from the guest's.
async fn forward_dns(ctx: &RunContext<'_>, sandbox: &mut Sandbox) -> tokio::task::JoinHandle<()> {
    let netns = ctx.attachment.and_then(SandboxNetwork::netns);
    let servers = match netns {
        Some(_) => dns::loopback_nameservers(&ctx.plan.volumes),
        None => Vec::new(),
    };
    let events = dns::serve(
        sandbox.take_events(),
        sandbox.agent().clone(),
        netns,
        servers.clone(),
    );
    if !servers.is_empty() {
        if let Err(err) = sandbox
            .agent()
            .request_done(Request::ForwardDns { servers })
            .await
        {
            tracing::warn!("forwarding DNS from the guest: {err}");
        }
    }
    events
}

/// Creates and starts the container in a booted sandbox and serves it until it exits.
pub(super) async fn run_in_sandbox(
    ctx: &RunContext<'_>,
    record: &mut ContainerRecord,
    sandbox: &Sandbox,
    control: &mut mpsc::Receiver<Control>,
    state: &mut RunState,
    boot_started: Instant,
) -> Result<(ExitInfo, Vec<(&'static str, Duration)>)> {
    let id = record.id.clone();
    let agent = sandbox.agent();
    let outputs = [
        forward_output(
            agent.subscribe(ctx.shared.streams.stdout),
            OutputStream::Stdout,
            ctx.shared.clone(),
            ctx.log.clone(),
        ),
        forward_output(
            agent.subscribe(ctx.shared.streams.stderr),
            OutputStream::Stderr,
            ctx.shared.clone(),
            ctx.log.clone(),
        ),
    ];
    // The seccomp profile goes compiled, here and natively, rather than
    // by the agent under the guest's (maybe emulated) CPU.
    let (spec, seccomp) = compile_seccomp(ctx.spec)?;
    let create_started = Instant::now();
    while_alive(
        sandbox,
        agent.request(Request::CreateContainer {
            container_id: id.clone(),
            spec: Box::new(spec),
            seccomp,
            rootfs: Rootfs {
                share_tag: LAYERS_SHARE_TAG.into(),
                path: ctx.plan.share(&id).rootfs().display().to_string(),
            },
            stdio: StdioStreams {
                stdin: record.config.open_stdin.then_some(ctx.shared.streams.stdin),
                stdout: Some(ctx.shared.streams.stdout),
                stderr: Some(ctx.shared.streams.stderr),
            },
            join: ctx.plan.joins.clone(),
        }),
    )
    .await?
    .context("creating the container")?;
    let created = Instant::now();
    tracing::debug!(
        "container {}: created in the guest in {:?}",
        &id[..12],
        created - create_started
    );

    // Wait for the word to start, refusing signals meanwhile (there is no process to signal yet).
    if !state.auto_start {
        loop {
            match control.recv().await {
                Some(Control::Start(reply)) => {
                    state.start_waiter = Some(reply);
                    break;
                }
                Some(Control::Signal(_, reply)) => {
                    let _ = reply.send(MonitorResponse::error(format!(
                        "Container {id} is not running"
                    )));
                }
                // `rm` of a container that was never started: the sandbox goes, nothing runs.
                Some(Control::Stop(_, reply)) => {
                    state.stopped_by_user = true;
                    let _ = reply.send(MonitorResponse::Done);
                    return Err(anyhow!("removed before it was started"));
                }
                Some(Control::Stdin(_)) => {}
                Some(Control::Join(_, reply)) => {
                    let _ = reply.send(MonitorResponse::error(format!(
                        "Container {id} is not running"
                    )));
                }
                None => return Err(anyhow!("control channel closed")),
            }
        }
    }
    state.auto_start = false;
    if let Err(err) = while_alive(
        sandbox,
        agent.request_done(Request::StartContainer {
            container_id: id.clone(),
        }),
    )
    .await?
    {
        let message = err.to_string();
        // The process exits 126/127 right after failing to exec; take its code.
        let exit_code = match tokio::time::timeout(
            Duration::from_secs(5),
            agent.request(Request::Wait {
                container_id: id.clone(),
            }),
        )
        .await
        {
            Ok(Ok(Response::Exited { status })) => status.code(),
            _ => 125,
        };
        return Err(StartFailure { message, exit_code }.into());
    }
    let started = Instant::now();
    record.set_running(sandbox.vmm_pid().map_or(0, i64::from));
    record.hull_sandbox.vmm_pid = record.state.pid;
    record.hull_sandbox.virtiofsd_pid = sandbox.virtiofsd_pid().map_or(0, i64::from);
    record.hull_sandbox.backend = sandbox.backend.clone();
    record.hull_sandbox.kernel_release = agent.kernel_release.clone();
    record.hull_sandbox.monitor_pid = i64::from(std::process::id());
    ctx.store.save(record)?;
    if let Some(waiter) = state.start_waiter.take() {
        let _ = waiter.send(MonitorResponse::Done);
    }
    *lock(&ctx.shared.agent) = Some(agent.clone());
    *lock(&ctx.shared.vm_control) = Some(sandbox.control().clone());
    tracing::debug!(
        "container {}: started in {:?}",
        &id[..12],
        started - created
    );
    inject_fault(sandbox, "monitor.running");

    let wait = agent.request(Request::Wait {
        container_id: id.clone(),
    });
    tokio::pin!(wait);
    let mut kill_at: Option<tokio::time::Instant> = None;
    // `--stop-signal` or the image's STOPSIGNAL (checked at create).
    let stop_signal =
        crate::signal::parse_signal(&record.config.stop_signal).unwrap_or(libc::SIGTERM);
    let mut stop_waiters: Vec<oneshot::Sender<MonitorResponse>> = Vec::new();
    let mut health = tokio::time::interval(HEALTH_INTERVAL);
    let signal = |signal: i32| Request::Signal {
        container_id: id.clone(),
        signal,
    };
    // The containers that joined this sandbox, each running to its end.
    let mut members = FuturesUnordered::new();
    let mut joined: Vec<Arc<Shared>> = Vec::new();
    let (exit, error) = loop {
        tokio::select! {
            result = &mut wait => match result {
                Ok(Response::Exited { status }) => {
                    let oom_killed = matches!(status, hull_protocol::ExitStatus::Signaled { oom_killed: true, .. });
                    break (ExitInfo { exit_code: status.code(), oom_killed }, None);
                }
                Ok(other) => break (ExitInfo { exit_code: 255, oom_killed: false }, Some(format!("unexpected answer from the agent: {other:?}"))),
                Err(err) => break (ExitInfo { exit_code: 137, oom_killed: false }, Some(describe_sandbox_death(sandbox, &err).await)),
            },
            Some(command) = control.recv() => match command {
                Control::Start(reply) => {
                    let _ = reply.send(MonitorResponse::Done);
                }
                Control::Signal(number, reply) => {
                    let response = match agent.request_done(signal(number)).await {
                        Ok(()) => MonitorResponse::Done,
                        Err(err) => MonitorResponse::error(err.to_string()),
                    };
                    let _ = reply.send(response);
                }
                Control::Stop(timeout, reply) => {
                    state.stopped_by_user = true;
                    let _ = agent.request_done(signal(stop_signal)).await;
                    kill_at = Some(tokio::time::Instant::now() + Duration::from_secs(timeout));
                    stop_waiters.push(reply);
                }
                Control::Stdin(data) => {
                    let _ = agent.send_input(ctx.shared.streams.stdin, &data).await;
                }
                Control::Join(member, reply) => {
                    let response = if ctx.plan.joins.is_some() {
                        MonitorResponse::error(format!(
                            "container {} runs in another container's sandbox: join that one",
                            &id[..12]
                        ))
                    } else {
                        match Member::join(ctx.paths, sandbox, &ctx.shared.next_exec_stream, &member, &joined).await {
                            Ok(run) => {
                                joined.push(run.shared());
                                members.push(run.run(sandbox));
                                MonitorResponse::Done
                            }
                            Err(err) => MonitorResponse::error(format!("{err:#}")),
                        }
                    };
                    let _ = reply.send(response);
                }
            },
            Some(ended) = members.next(), if !members.is_empty() => {
                joined.retain(|member| member.id != ended);
            }
            _ = tokio::time::sleep_until(kill_at.unwrap_or_else(tokio::time::Instant::now)), if kill_at.is_some() => {
                kill_at = None;
                let _ = agent.request_done(signal(libc::SIGKILL)).await;
            }
            _ = health.tick() => {
                if let Some(reason) = dead_process(sandbox) {
                    break (ExitInfo { exit_code: 137, oom_killed: false }, Some(reason));
                }
            }
        }
    };
    // The sandbox's own container is gone, and its VM goes with it: so do
    // the containers that joined it, their ends recorded.
    end_members(&joined, members).await;
    let exited = Instant::now();
    tracing::debug!(
        "container {}: exited with {} after {:?}{}",
        &id[..12],
        exit.exit_code,
        exited - started,
        error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default()
    );
    lock(&ctx.shared.agent).take();
    lock(&ctx.shared.vm_control).take();
    // All output reaches the ctx.log and the attached clients before the
    // exit is told. A sandbox that died has nothing more to send: its exit
    // is told at once.
    let drain = if error.is_some() {
        Duration::from_millis(100)
    } else {
        Duration::from_secs(2)
    };
    for output in outputs {
        let _ = tokio::time::timeout(drain, output).await;
    }
    {
        let mut writer = lock(ctx.log);
        let _ = writer.finish(OutputStream::Stdout);
        let _ = writer.finish(OutputStream::Stderr);
    }
    // Limits changed while it ran (`update`) are the engine's to keep.
    if let Ok(current) = ctx.store.load(&id) {
        record.host_config = current.host_config;
    }
    record.set_exited(exit.exit_code, exit.oom_killed, error);
    ctx.store.save(record)?;
    let phases = vec![
        ("boot", create_started - boot_started),
        ("create", created - create_started),
        ("start", started - created),
        ("run", exited - started),
    ];
    if !should_restart(record, exit.exit_code, state.stopped_by_user) {
        ctx.shared.exit.send_replace(Some(exit));
    }
    for waiter in stop_waiters {
        let _ = waiter.send(MonitorResponse::Done);
    }
    Ok((exit, phases))
}

/// Writes phase durations (ms) to `$HULL_TIMINGS_FILE`, for bench/.
pub(super) fn record_timings(phases: &[(&str, Duration)]) {
    let Some(path) = std::env::var_os("HULL_TIMINGS_FILE") else {
        return;
    };
    let map: serde_json::Map<String, serde_json::Value> = phases
        .iter()
        .map(|(name, d)| {
            (
                name.to_string(),
                serde_json::json!(d.as_secs_f64() * 1000.0),
            )
        })
        .collect();
    let _ = std::fs::write(path, serde_json::Value::Object(map).to_string());
}

/// Copies one output stream into the log and to attached clients, until it ends.
pub(super) fn forward_output(
    mut rx: mpsc::Receiver<Vec<u8>>,
    stream: OutputStream,
    shared: Arc<Shared>,
    log: Arc<Mutex<JsonLogWriter>>,
) -> tokio::task::JoinHandle<()> {
    let stream_id = match stream {
        OutputStream::Stdout => STDOUT,
        OutputStream::Stderr => STDERR,
    };
    tokio::spawn(async move {
        while let Some(chunk) = rx.recv().await {
            if chunk.is_empty() {
                break;
            }
            if let Err(err) = lock(&log).write(stream, &chunk) {
                tracing::warn!("writing the log: {err}");
            }
            let clients: Vec<Attached> = lock(&shared.attached)
                .iter()
                .filter(|c| {
                    if stream == OutputStream::Stdout {
                        c.stdout
                    } else {
                        c.stderr
                    }
                })
                .cloned()
                .collect();
            for client in clients {
                let _ = client.frames.send(Frame::stdio(stream_id, &chunk)).await;
            }
        }
        // Tell attached clients the stream ended, so they stop waiting for it.
        let clients: Vec<Attached> = lock(&shared.attached).clone();
        for client in clients {
            let _ = client.frames.send(Frame::stdio(stream_id, &[])).await;
        }
    })
}

/// `spec` without its seccomp profile, and the profile compiled.
fn compile_seccomp(
    spec: &oci_spec::runtime::Spec,
) -> Result<(oci_spec::runtime::Spec, Option<hull_seccomp::Filter>)> {
    let mut spec = spec.clone();
    let profile = spec
        .linux_mut()
        .as_mut()
        .and_then(|linux| linux.seccomp_mut().take());
    let filter = profile
        .as_ref()
        .map(hull_seccomp::Filter::compile)
        .transpose()
        .context("the container's seccomp profile")?;
    Ok((spec, filter))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_goes_compiled_and_leaves_the_spec() {
        let capabilities = std::collections::HashSet::new();
        let profile =
            crate::security::seccomp(&crate::security::SeccompChoice::Default, &capabilities)
                .unwrap()
                .unwrap();
        let mut linux = oci_spec::runtime::Linux::default();
        linux.set_seccomp(Some(profile));
        let mut spec = oci_spec::runtime::Spec::default();
        spec.set_linux(Some(linux));
        let (stripped, filter) = compile_seccomp(&spec).unwrap();
        assert!(stripped.linux().as_ref().unwrap().seccomp().is_none());
        assert!(filter.unwrap().program.len() > 100);
        // No profile, no filter.
        let (_, none) = compile_seccomp(&stripped).unwrap();
        assert!(none.is_none());
    }
}
