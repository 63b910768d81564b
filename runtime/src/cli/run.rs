//! `hull run`: one container in a fresh microVM, attached to the terminal.

use super::images::open_store;
use super::{ExitWith, EXIT_RUNTIME_ERROR};
use crate::agent_client::AgentError;
use crate::config::{GuestArtifacts, Paths};
use crate::image::{ImageError, Reference};
use crate::platform::Platform;
use crate::sandbox::{Sandbox, SandboxConfig, LAYERS_SHARE_TAG};
use crate::spec::{self, RunOptions};
use crate::virtiofsd::ShareEntry;
use anyhow::{anyhow, bail, Context, Result};
use hull_protocol::{ExitStatus, Request, Response, Rootfs, StdioStreams};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::signal::unix::{signal, SignalKind};

/// Stream ids of the container's stdio on the agent channel.
const STDIN: u32 = 0;
const STDOUT: u32 = 1;
const STDERR: u32 = 2;

/// Guest memory beyond the container's limit: kernel, agent, page cache.
const GUEST_OVERHEAD_MIB: u32 = 192;
/// Guest memory when the container has no limit.
const DEFAULT_MEMORY_MIB: u32 = 256;
/// Docker's smallest memory limit.
const MIN_MEMORY_BYTES: i64 = 6 * 1024 * 1024;

/// After Ctrl-C is passed on, how long the container has to exit before
/// Hull tears the VM down anyway.
const INTERRUPT_GRACE: Duration = Duration::from_secs(2);

/// `hull run`.
#[derive(Debug, clap::Args)]
#[command(trailing_var_arg = true)]
pub struct RunArgs {
    /// Automatically remove the container when it exits (always so for now: Hull keeps no stopped containers yet)
    #[arg(long)]
    rm: bool,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-TTY (not supported yet)
    #[arg(short, long)]
    tty: bool,
    /// Run container in background and print container ID (not supported yet)
    #[arg(short, long)]
    detach: bool,
    /// Set environment variables
    #[arg(short, long, value_name = "list")]
    env: Vec<String>,
    /// Working directory inside the container
    #[arg(short, long, value_name = "string")]
    workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long, value_name = "string")]
    user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long, value_name = "string")]
    entrypoint: Option<String>,
    /// Container host name
    #[arg(long, value_name = "string")]
    hostname: Option<String>,
    /// Memory limit (e.g. 64m, 1g)
    #[arg(short, long, value_name = "bytes")]
    memory: Option<String>,
    /// Number of CPUs (the VM gets this many vCPUs, rounded up)
    #[arg(long, value_name = "decimal")]
    cpus: Option<f64>,
    /// Mount the container's root filesystem as read only
    #[arg(long)]
    read_only: bool,
    /// VMM backend: qemu (default), qemu-tcg, qemu-kvm
    #[arg(long, value_name = "name")]
    vmm: Option<String>,
    /// Guest kernel to boot (env HULL_KERNEL)
    #[arg(long, value_name = "path")]
    kernel: Option<PathBuf>,
    /// Guest initramfs holding hull-agent (env HULL_INITRD)
    #[arg(long, value_name = "path")]
    initrd: Option<PathBuf>,
    /// Seconds the VM may take to boot to its agent
    #[arg(long, value_name = "seconds", default_value_t = 60)]
    boot_timeout: u64,
    /// The image, then the command and its arguments
    #[arg(required = true, value_name = "IMAGE [COMMAND] [ARG...]")]
    image_and_command: Vec<String>,
}

/// Parses Docker's memory sizes: `512`, `64k`, `64m`, `1g` (binary units).
pub fn parse_memory(text: &str) -> Result<i64> {
    let lower = text.trim().to_ascii_lowercase();
    let trimmed = lower.strip_suffix('b').unwrap_or(&lower);
    let (digits, multiplier) = match trimmed.chars().last() {
        Some('k') => (&trimmed[..trimmed.len() - 1], 1i64 << 10),
        Some('m') => (&trimmed[..trimmed.len() - 1], 1 << 20),
        Some('g') => (&trimmed[..trimmed.len() - 1], 1 << 30),
        Some('t') => (&trimmed[..trimmed.len() - 1], 1 << 40),
        _ => (trimmed, 1),
    };
    let value: f64 = digits.parse().map_err(|_| anyhow!("invalid size: '{text}'"))?;
    let bytes = (value * multiplier as f64) as i64;
    if bytes < MIN_MEMORY_BYTES {
        bail!("Minimum memory limit allowed is 6MB");
    }
    Ok(bytes)
}

/// A fresh 64-hex-digit id, as Docker's container ids.
fn new_id() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom(&mut bytes)?;
    Ok(hex::encode(bytes))
}

fn getrandom(buf: &mut [u8]) -> Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .context("reading /dev/urandom")
}

/// Writes phase durations in milliseconds to `$HULL_TIMINGS_FILE`, for bench/.
fn record_timings(phases: &[(&str, Duration)]) {
    let Some(path) = std::env::var_os("HULL_TIMINGS_FILE") else { return };
    let map: serde_json::Map<String, serde_json::Value> = phases
        .iter()
        .map(|(name, d)| (name.to_string(), serde_json::json!(d.as_secs_f64() * 1000.0)))
        .collect();
    if let Err(err) = std::fs::write(&path, serde_json::Value::Object(map).to_string()) {
        tracing::warn!("writing timings to {}: {err}", PathBuf::from(path).display());
    }
}

/// Copies a stream's output to our stdout or stderr until it ends.
fn pump_output(mut rx: tokio::sync::mpsc::Receiver<Vec<u8>>, to_stderr: bool) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut out: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = if to_stderr {
            Box::new(tokio::io::stderr())
        } else {
            Box::new(tokio::io::stdout())
        };
        while let Some(chunk) = rx.recv().await {
            if chunk.is_empty() || out.write_all(&chunk).await.is_err() {
                break;
            }
            let _ = out.flush().await;
        }
    })
}

/// Why `hull run` stopped waiting.
enum Ended {
    /// The container exited.
    Exited(ExitStatus),
    /// A signal came and the container did not exit in time.
    Interrupted(i32),
}

/// `hull run`.
pub async fn run(paths: &Paths, args: RunArgs) -> Result<i32> {
    if args.detach {
        bail!("-d/--detach is not supported yet: containers run attached");
    }
    if args.tty {
        bail!("-t/--tty is not supported yet");
    }
    let platform = Platform::detect();
    let hypervisor = match &args.vmm {
        Some(name) => platform
            .hypervisor(name)
            .ok_or_else(|| anyhow!("unknown VMM backend '{name}' (known: qemu, qemu-tcg, qemu-kvm)"))?,
        None => platform.default_hypervisor(),
    };
    let memory = args.memory.as_deref().map(parse_memory).transpose()?;
    let vcpus = match args.cpus {
        Some(cpus) if cpus <= 0.0 || !cpus.is_finite() => bail!("invalid value for --cpus: {cpus}"),
        Some(cpus) => cpus.ceil() as u32,
        None => 1,
    };
    let artifacts = GuestArtifacts::resolve(args.kernel.clone(), args.initrd.clone());
    let missing = artifacts.missing();
    if !missing.is_empty() {
        bail!("Hull is not set up: missing {} (run the set-up script in README.md)", missing.join(", "));
    }

    let (image_name, command) = args.image_and_command.split_first().context("an image name is required")?;
    let store = open_store(paths)?;
    let image = match store.resolve(image_name) {
        Ok(image) => image,
        Err(ImageError::NotFound(_)) => {
            let shown = Reference::parse(image_name).map_or_else(|_| image_name.clone(), |r| r.familiar_string());
            eprintln!("Unable to find image '{shown}' locally");
            bail!("No such image: {image_name}");
        }
        Err(err) => return Err(err.into()),
    };
    let layer_names = image.layer_names();
    let layer_dirs: Vec<PathBuf> = image.diff_ids.iter().map(|d| store.layer_dir(d)).collect();

    let id = new_id()?;
    let options = RunOptions {
        entrypoint: args.entrypoint.clone(),
        args: command.to_vec(),
        env: args.env.clone(),
        workdir: args.workdir.clone(),
        user: args.user.clone(),
        hostname: args.hostname.clone(),
        memory,
        cpus: args.cpus,
        read_only: args.read_only,
    };
    let spec = spec::build(&id, image.config.config().as_ref(), &options, &layer_dirs)?;

    let memory_mib = match memory {
        Some(bytes) => ((bytes >> 20) as u32).saturating_add(GUEST_OVERHEAD_MIB).max(DEFAULT_MEMORY_MIB),
        None => DEFAULT_MEMORY_MIB,
    };
    let shares = layer_names
        .iter()
        .zip(&layer_dirs)
        .map(|(name, dir)| ShareEntry {
            source: dir.clone(),
            target: PathBuf::from("layers").join(name),
        })
        .collect();
    let started = Instant::now();
    let sandbox = Sandbox::start(SandboxConfig {
        id: id.clone(),
        dir: paths.sandbox_dir(&id),
        hypervisor,
        kernel: artifacts.kernel,
        initrd: artifacts.initrd,
        virtiofsd: artifacts.virtiofsd,
        vcpus,
        memory_mib,
        shares,
        boot_timeout: Duration::from_secs(args.boot_timeout),
    })
    .await?;
    tracing::info!("sandbox {} up on {} in {:?}", &id[..12], sandbox.backend, started.elapsed());

    let outcome = run_container(&sandbox, &id, spec, layer_names, args.interactive).await;
    let container_done = Instant::now();
    sandbox.shutdown().await;
    let torn_down = Instant::now();
    let (code, phases) = outcome?;
    let mut all_phases = vec![("boot", sandbox_boot_time(started, &phases))];
    all_phases.extend(phases.durations);
    all_phases.push(("teardown", torn_down - container_done));
    all_phases.push(("total", torn_down - started));
    record_timings(&all_phases);
    Ok(code)
}

/// When each phase of the container's life ended.
struct Phases {
    agent_ready: Instant,
    durations: Vec<(&'static str, Duration)>,
}

fn sandbox_boot_time(started: Instant, phases: &Phases) -> Duration {
    phases.agent_ready - started
}

/// Creates, starts and waits for the container; returns its exit code.
async fn run_container(
    sandbox: &Sandbox,
    id: &str,
    spec: oci_spec::runtime::Spec,
    layer_names: Vec<String>,
    interactive: bool,
) -> Result<(i32, Phases)> {
    let agent_ready = sandbox.timings.agent_ready;
    let agent = sandbox.agent();
    let stdout = pump_output(agent.subscribe(STDOUT), false);
    let stderr = pump_output(agent.subscribe(STDERR), true);
    let rootfs = Rootfs {
        share_tag: LAYERS_SHARE_TAG.into(),
        layers: layer_names.iter().map(|name| format!("layers/{name}")).collect(),
    };
    let create_started = Instant::now();
    agent
        .request(Request::CreateContainer {
            container_id: id.to_string(),
            spec: Box::new(spec),
            rootfs,
            stdio: StdioStreams {
                stdin: interactive.then_some(STDIN),
                stdout: Some(STDOUT),
                stderr: Some(STDERR),
            },
        })
        .await
        .map_err(|err| anyhow!("creating the container: {err}"))?;
    let created = Instant::now();
    let mut sigint = signal(SignalKind::interrupt()).context("watching SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("watching SIGTERM")?;
    let wait = agent.request(Request::Wait {
        container_id: id.to_string(),
    });
    tokio::pin!(wait);

    if let Err(err) = agent.request_done(Request::StartContainer { container_id: id.to_string() }).await {
        // A command that cannot run: Docker's words, and 126/127 from its exit.
        let message = match err {
            AgentError::Remote(message) => message,
            other => return Err(other.into()),
        };
        let code = match tokio::time::timeout(Duration::from_secs(5), &mut wait).await {
            Ok(Ok(Response::Exited { status })) => status.code(),
            _ => EXIT_RUNTIME_ERROR,
        };
        return Err(ExitWith { code, message }.into());
    }
    let started = Instant::now();

    // Stdin is forwarded while the container runs, until it ends.
    let forward_stdin = async {
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match stdin.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if agent.send_input(STDIN, &buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = agent.send_input(STDIN, &[]).await;
    };
    tokio::pin!(forward_stdin);
    let mut stdin_done = !interactive;

    let mut interrupted: Option<(i32, tokio::time::Instant)> = None;
    let ended = loop {
        let deadline = interrupted.map(|(_, at)| at);
        tokio::select! {
            result = &mut wait => break match result? {
                Response::Exited { status } => Ended::Exited(status),
                other => bail!("unexpected answer to wait: {other:?}"),
            },
            () = &mut forward_stdin, if !stdin_done => stdin_done = true,
            Some(()) = sigint.recv() => {
                if let Some((signal, _)) = interrupted { break Ended::Interrupted(signal) }
                let _ = agent.request_done(Request::Signal { container_id: id.to_string(), signal: libc::SIGINT }).await;
                interrupted = Some((libc::SIGINT, tokio::time::Instant::now() + INTERRUPT_GRACE));
            }
            Some(()) = sigterm.recv() => {
                if let Some((signal, _)) = interrupted { break Ended::Interrupted(signal) }
                let _ = agent.request_done(Request::Signal { container_id: id.to_string(), signal: libc::SIGTERM }).await;
                interrupted = Some((libc::SIGTERM, tokio::time::Instant::now() + INTERRUPT_GRACE));
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {
                break Ended::Interrupted(interrupted.map_or(libc::SIGINT, |(signal, _)| signal));
            }
        }
    };
    let exited = Instant::now();
    // The agent sends all output before the exit; let it reach the terminal.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = stdout.await;
        let _ = stderr.await;
    })
    .await;
    let code = match ended {
        Ended::Exited(status) => {
            if let ExitStatus::Signaled { oom_killed: true, .. } = status {
                tracing::info!("container was killed by the OOM killer");
            }
            status.code()
        }
        Ended::Interrupted(signal) => 128 + signal,
    };
    Ok((
        code,
        Phases {
            agent_ready,
            durations: vec![
                ("create", created - create_started),
                ("start", started - created),
                ("run", exited - started),
            ],
        },
    ))
}
