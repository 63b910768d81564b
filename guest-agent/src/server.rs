//! Serves the host: reads frames, runs requests, forwards stdio, reaps children.
//!
//! One writer task owns the channel's write half; everything else sends it
//! frames through a queue, so frames never interleave. Each request runs in
//! its own task, so a `Wait` does not hold up other requests.

use crate::container::namespaces::SharedNamespaces;
use crate::container::{Container, Definition};
use crate::fdstream::FdStream;
use anyhow::{bail, Context, Result};
use hull_protocol::{
    decode_json, encode_json, is_valid_id, Event, ExitStatus, Frame, FrameKind, FrameReader,
    FrameWriter, JoinNamespaces, Request, RequestEnvelope, Response, ResponseEnvelope,
    StdioStreams, MAX_STDIO_CHUNK, PROTOCOL_VERSION,
};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};

/// How long after a process exits its output may still drain before the
/// exit is reported anyway (a daemonised grandchild can hold the pipe open).
const OUTPUT_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// DNS's port.
const DNS_PORT: u16 = 53;

/// A frame for the writer task, optionally with a notice once it is written.
struct Outgoing {
    frame: Frame,
    written: Option<oneshot::Sender<()>>,
}

/// A container and the news of its exit.
struct ContainerSlot {
    container: Mutex<Container>,
    exit: watch::Receiver<Option<ExitStatus>>,
    /// The master of its first process's terminal, for resizing.
    terminal: Option<OwnedFd>,
}

/// An exec'd process and the news of its exit.
struct ExecSlot {
    pid: Pid,
    exit: watch::Receiver<Option<ExitStatus>>,
    /// The master of its terminal, for resizing.
    terminal: Option<OwnedFd>,
}

/// The agent's state, shared by its tasks.
pub struct Agent {
    containers: Mutex<HashMap<String, Arc<ContainerSlot>>>,
    execs: Mutex<HashMap<(String, String), Arc<ExecSlot>>>,
    stdin_routes: Mutex<HashMap<u32, mpsc::UnboundedSender<Vec<u8>>>>,
    children: Mutex<HashMap<Pid, oneshot::Sender<WaitStatus>>>,
    out: mpsc::UnboundedSender<Outgoing>,
    /// DNS queries to the host side's resolvers, in flight.
    dns: Arc<crate::dns::Forwarder>,
}

/// Locks a mutex, recovering from poisoning: a panicked task must not take
/// the whole agent (PID 1) down with it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Agent {
    fn send(&self, frame: Frame) {
        // The writer task only ends with the agent.
        let _ = self.out.send(Outgoing {
            frame,
            written: None,
        });
    }

    fn respond(&self, id: u64, response: Response) {
        self.send(encode_json(
            FrameKind::Response,
            &ResponseEnvelope { id, response },
        ));
    }

    fn event(&self, event: Event) {
        self.send(encode_json(FrameKind::Event, &event));
    }

    fn slot(&self, id: &str) -> Result<Arc<ContainerSlot>> {
        lock(&self.containers)
            .get(id)
            .cloned()
            .with_context(|| format!("no such container: {id}"))
    }

    fn exec_slot(&self, container_id: &str, exec_id: &str) -> Result<Arc<ExecSlot>> {
        lock(&self.execs)
            .get(&(container_id.to_string(), exec_id.to_string()))
            .cloned()
            .with_context(|| format!("no such exec: {exec_id}"))
    }
}

/// Runs the agent on `channel` until the host asks it to shut down.
pub async fn serve<S: AsyncRead + AsyncWrite + Send + 'static>(channel: S) -> Result<()> {
    let mut sigchld = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child())
        .context("watching SIGCHLD")?;
    let (read_half, write_half) = tokio::io::split(channel);
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Outgoing>();
    let agent = Arc::new(Agent {
        containers: Mutex::default(),
        execs: Mutex::default(),
        stdin_routes: Mutex::default(),
        children: Mutex::default(),
        out: out_tx,
        dns: Arc::default(),
    });

    tokio::spawn(async move {
        let mut writer = FrameWriter::new(write_half);
        while let Some(outgoing) = out_rx.recv().await {
            if let Err(err) = writer.send(&outgoing.frame).await {
                tracing::warn!("writing to the host: {err}");
            }
            if let Some(written) = outgoing.written {
                let _ = written.send(());
            }
        }
    });

    let reaper = agent.clone();
    tokio::spawn(async move {
        while sigchld.recv().await.is_some() {
            reap_children(&reaper);
        }
    });

    let mut reader = FrameReader::new(read_half);
    loop {
        match reader.next().await {
            Ok(Some(Ok(frame))) => dispatch(&agent, frame),
            Ok(Some(Err(err))) => agent.respond(
                0,
                Response::Error {
                    message: err.to_string(),
                },
            ),
            // A virtio-serial port reads end-of-file while no host is
            // connected; wait for one to come (back).
            Ok(None) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(err) => {
                tracing::warn!("reading from the host: {err}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Collects every exited child and hands container processes' statuses on.
fn reap_children(agent: &Agent) {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(status @ (WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, _, _))) => {
                if let Some(waiter) = lock(&agent.children).remove(&pid) {
                    let _ = waiter.send(status);
                }
            }
            Ok(_) => {}
        }
    }
}

fn dispatch(agent: &Arc<Agent>, frame: Frame) {
    match frame.kind {
        FrameKind::Request => match decode_json::<RequestEnvelope>(&frame, FrameKind::Request) {
            Ok(envelope) => {
                let agent = agent.clone();
                tokio::spawn(async move {
                    let id = envelope.id;
                    let response = handle(&agent, envelope.request)
                        .await
                        .unwrap_or_else(|err| Response::Error {
                            message: format!("{err:#}"),
                        });
                    agent.respond(id, response);
                });
            }
            Err(err) => {
                // Answer with the id if the JSON got that far.
                let id = serde_json::from_slice::<serde_json::Value>(&frame.payload)
                    .ok()
                    .and_then(|v| v.get("id").and_then(|id| id.as_u64()))
                    .unwrap_or(0);
                agent.respond(
                    id,
                    Response::Error {
                        message: err.to_string(),
                    },
                );
            }
        },
        FrameKind::Stdio => match frame.stdio_parts() {
            Ok((stream, data)) => {
                let mut routes = lock(&agent.stdin_routes);
                if let Some(route) = routes.get(&stream) {
                    if route.send(data.to_vec()).is_err() || data.is_empty() {
                        routes.remove(&stream);
                    }
                }
            }
            Err(err) => agent.respond(
                0,
                Response::Error {
                    message: err.to_string(),
                },
            ),
        },
        other => agent.respond(
            0,
            Response::Error {
                message: format!("unexpected {other:?} frame from the host"),
            },
        ),
    }
}

async fn handle(agent: &Arc<Agent>, request: Request) -> Result<Response> {
    match request {
        Request::Hello { version } => {
            if version != PROTOCOL_VERSION {
                bail!("host speaks protocol {version}, agent speaks {PROTOCOL_VERSION}");
            }
            let kernel_release = nix::sys::utsname::uname()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default();
            Ok(Response::Hello {
                version: PROTOCOL_VERSION,
                kernel_release,
            })
        }
        Request::CreateContainer {
            container_id,
            spec,
            seccomp,
            rootfs,
            stdio,
            join,
        } => {
            let definition = Definition {
                spec: &spec,
                seccomp: seccomp.as_ref(),
                rootfs: &rootfs,
            };
            create_container(agent, &container_id, definition, stdio, join.as_ref()).await
        }
        Request::StartContainer { container_id } => {
            let slot = agent.slot(&container_id)?;
            let start = lock(&slot.container).take_start()?;
            start.start().await?;
            Ok(Response::Done)
        }
        Request::Signal {
            container_id,
            signal,
        } => {
            lock(&agent.slot(&container_id)?.container).signal(signal)?;
            Ok(Response::Done)
        }
        Request::Wait { container_id } => {
            let mut exit = agent.slot(&container_id)?.exit.clone();
            let status = exit
                .wait_for(Option::is_some)
                .await
                .context("container vanished")?;
            Ok(Response::Exited {
                status: status.unwrap_or(ExitStatus::Exited { code: 255 }),
            })
        }
        Request::ExecProcess {
            container_id,
            exec_id,
            process,
            stdio,
            terminal,
        } => exec_process(agent, &container_id, &exec_id, &process, stdio, terminal).await,
        Request::WaitProcess {
            container_id,
            exec_id,
        } => {
            let mut exit = agent.exec_slot(&container_id, &exec_id)?.exit.clone();
            let status = exit
                .wait_for(Option::is_some)
                .await
                .context("exec vanished")?;
            let status = status.unwrap_or(ExitStatus::Exited { code: 255 });
            lock(&agent.execs).remove(&(container_id, exec_id));
            Ok(Response::Exited { status })
        }
        Request::SignalProcess {
            container_id,
            exec_id,
            signal,
        } => {
            let slot = agent.exec_slot(&container_id, &exec_id)?;
            let signal = nix::sys::signal::Signal::try_from(signal)
                .map_err(|_| anyhow::anyhow!("invalid signal {signal}"))?;
            match nix::sys::signal::kill(slot.pid, signal) {
                Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(Response::Done),
                Err(err) => Err(err).context("sending the signal"),
            }
        }
        Request::ResizeTerminal {
            container_id,
            exec_id,
            rows,
            cols,
        } => {
            let resized = match &exec_id {
                None => {
                    let slot = agent.slot(&container_id)?;
                    slot.terminal
                        .as_ref()
                        .map(|master| crate::container::resize_terminal(master, rows, cols))
                }
                Some(exec_id) => {
                    let slot = agent.exec_slot(&container_id, exec_id)?;
                    slot.terminal
                        .as_ref()
                        .map(|master| crate::container::resize_terminal(master, rows, cols))
                }
            };
            match resized {
                Some(result) => result.map(|()| Response::Done),
                None => bail!("the process has no terminal"),
            }
        }
        Request::Sync => {
            tokio::task::spawn_blocking(nix::unistd::sync)
                .await
                .context("syncing")?;
            Ok(Response::Done)
        }
        Request::Stats { container_id } => {
            let stats = lock(&agent.slot(&container_id)?.container).stats();
            Ok(Response::Stats { stats })
        }
        Request::UpdateResources {
            container_id,
            resources,
        } => {
            lock(&agent.slot(&container_id)?.container).update(&resources)?;
            Ok(Response::Done)
        }
        Request::ListProcesses { container_id } => {
            let pid = lock(&agent.slot(&container_id)?.container).pid;
            Ok(Response::Processes {
                processes: crate::container::processes_of(pid)?,
            })
        }
        Request::RemoveContainer { container_id } => {
            let slot = agent.slot(&container_id)?;
            if slot.exit.borrow().is_none() {
                bail!("container {container_id} is still running");
            }
            lock(&slot.container).remove()?;
            lock(&agent.containers).remove(&container_id);
            Ok(Response::Done)
        }
        Request::ForwardDns { servers } => {
            for server in servers {
                let out = agent.out.clone();
                agent
                    .dns
                    .listen(server, DNS_PORT, move |event| {
                        let _ = out.send(Outgoing {
                            frame: encode_json(FrameKind::Event, &event),
                            written: None,
                        });
                    })
                    .await?;
            }
            Ok(Response::Done)
        }
        Request::DnsAnswer { query_id, payload } => {
            agent.dns.answer(query_id, &payload).await?;
            Ok(Response::Done)
        }
        Request::Shutdown => {
            let (written, done) = oneshot::channel();
            let frame = encode_json(
                FrameKind::Event,
                &Event::Log {
                    message: "agent shutting down".into(),
                },
            );
            let _ = agent.out.send(Outgoing {
                frame,
                written: Some(written),
            });
            let _ = done.await;
            crate::power_off();
        }
    }
}

/// The parent's ends of a process's stdio, and the child's.
struct Stdio {
    child: [OwnedFd; 3],
    /// Forwarders of stdout and stderr; each ends at end of file.
    forwarders: Vec<tokio::task::JoinHandle<()>>,
}

fn open_dev_null() -> Result<OwnedFd> {
    Ok(std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?
        .into())
}

fn nonblocking_stream(fd: OwnedFd) -> Result<FdStream> {
    crate::container::set_nonblocking(&fd)?;
    FdStream::new(fd)
}

/// Pipes for the streams the host asked for, /dev/null for the others. A
/// process with a terminal gets /dev/null only: its child replaces them
/// with the terminal, which [`relay_terminal`] connects to the streams.
fn setup_stdio(agent: &Arc<Agent>, streams: StdioStreams, terminal: bool) -> Result<Stdio> {
    if terminal {
        return Ok(Stdio {
            child: [open_dev_null()?, open_dev_null()?, open_dev_null()?],
            forwarders: Vec::new(),
        });
    }
    let pipe = crate::container::pipe;
    let stdin = match streams.stdin {
        Some(stream) => {
            let (read, write) = pipe()?;
            route_stdin(agent, stream, nonblocking_stream(write)?);
            read
        }
        None => open_dev_null()?,
    };
    let mut forwarders = Vec::new();
    let mut output = |stream: Option<u32>| -> Result<OwnedFd> {
        let Some(stream) = stream else {
            return open_dev_null();
        };
        let (read, write) = pipe()?;
        let mut reader = nonblocking_stream(read)?;
        let agent = agent.clone();
        forwarders.push(tokio::spawn(async move {
            let mut buf = vec![0u8; MAX_STDIO_CHUNK];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => agent.send(Frame::stdio(stream, &buf[..n])),
                }
            }
            agent.send(Frame::stdio(stream, &[]));
        }));
        Ok(write)
    };
    let stdout = output(streams.stdout)?;
    let stderr = output(streams.stderr)?;
    Ok(Stdio {
        child: [stdin, stdout, stderr],
        forwarders,
    })
}

/// Sends what the host writes on stdio `stream` to `writer`, until the
/// host ends the stream (an empty frame) or the writer fails; dropping the
/// writer then closes it.
fn route_stdin(
    agent: &Arc<Agent>,
    stream: u32,
    mut writer: impl tokio::io::AsyncWrite + Unpin + Send + 'static,
) {
    // Unbounded: the host is the only writer and paces itself; a bounded
    // queue here would stall the frame reader for all streams.
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    lock(&agent.stdin_routes).insert(stream, tx);
    tokio::spawn(async move {
        while let Some(data) = rx.recv().await {
            if data.is_empty() || writer.write_all(&data).await.is_err() {
                break;
            }
        }
    });
}

/// Relays a terminal's master: the stdin stream's data is typed into it,
/// and what it shows goes out on the stdout stream (stderr is merged into
/// it by the terminal). Both output streams end when the terminal's last
/// user closes it. Returns a copy of the master, for resizing, and the
/// output forwarder.
fn relay_terminal(
    agent: &Arc<Agent>,
    master: OwnedFd,
    streams: StdioStreams,
) -> Result<(OwnedFd, tokio::task::JoinHandle<()>)> {
    let for_resize = master
        .try_clone()
        .context("duplicating the terminal's master")?;
    let (mut reader, writer) = tokio::io::split(nonblocking_stream(master)?);
    if let Some(stream) = streams.stdin {
        // The end of the host's input is not the end of a terminal's: the
        // master stays open after it (closing it would hang the process up).
        route_stdin(agent, stream, writer);
    }
    let agent = agent.clone();
    let forwarder = tokio::spawn(async move {
        let mut buf = vec![0u8; MAX_STDIO_CHUNK];
        loop {
            // EIO once no process has the terminal open any more.
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    // Without a stdout stream (a detached exec) the output is
                    // still read, so that the process never blocks on a full terminal.
                    if let Some(stream) = streams.stdout {
                        agent.send(Frame::stdio(stream, &buf[..n]));
                    }
                }
            }
        }
        for stream in [streams.stdout, streams.stderr].into_iter().flatten() {
            agent.send(Frame::stdio(stream, &[]));
        }
    });
    Ok((for_resize, forwarder))
}

/// Connects a freshly spawned process's terminal, if it has one, to its
/// streams: the copy of the master to keep, and the forwarders to wait for.
/// On failure the process, which would have no way to talk, is killed.
fn connect_terminal(
    agent: &Arc<Agent>,
    pid: Pid,
    master: Option<OwnedFd>,
    streams: StdioStreams,
    forwarders: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<Option<OwnedFd>> {
    let Some(master) = master else {
        return Ok(None);
    };
    match relay_terminal(agent, master, streams) {
        Ok((for_resize, forwarder)) => {
            forwarders.push(forwarder);
            Ok(Some(for_resize))
        }
        Err(err) => {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            Err(err)
        }
    }
}

async fn create_container(
    agent: &Arc<Agent>,
    id: &str,
    definition: Definition<'_>,
    streams: StdioStreams,
    join: Option<&JoinNamespaces>,
) -> Result<Response> {
    let Definition {
        spec,
        seccomp,
        rootfs,
    } = definition;
    if !is_valid_id(id) {
        bail!("invalid container id {id:?}");
    }
    if lock(&agent.containers).contains_key(id) {
        bail!("container {id} already exists");
    }
    crate::tini::provide_binary(spec)?;
    let shared = match join {
        Some(join) => {
            let slot = agent.slot(&join.container_id)?;
            if slot.exit.borrow().is_some() {
                bail!(
                    "container {} has exited: nothing to join",
                    join.container_id
                );
            }
            let pid = lock(&slot.container).pid;
            SharedNamespaces::of(pid, join)?
        }
        None => SharedNamespaces::none(),
    };
    // In the pod's UTS namespace, the host name is the pod's.
    let spec = match join {
        Some(join) if join.uts => {
            let mut own = spec.clone();
            own.set_hostname(None);
            std::borrow::Cow::Owned(own)
        }
        _ => std::borrow::Cow::Borrowed(spec),
    };
    let spec = spec.as_ref();
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let mut stdio = setup_stdio(agent, streams, terminal)?;
    let (status_tx, status_rx) = oneshot::channel();
    let children = agent.clone();
    let pod = join.map_or(id, |join| join.container_id.as_str());
    let definition = Definition {
        spec,
        seccomp,
        rootfs,
    };
    let created = Container::create(pod, id, definition, &shared, stdio.child, move |pid| {
        lock(&children.children).insert(pid, status_tx);
    })
    .await;
    let mut container = match created {
        Ok(container) => container,
        Err(err) => {
            if let Some(stream) = streams.stdin {
                lock(&agent.stdin_routes).remove(&stream);
            }
            return Err(err);
        }
    };
    let terminal = connect_terminal(
        agent,
        container.pid,
        container.terminal.take(),
        streams,
        &mut stdio.forwarders,
    )?;
    let pid = container.pid.as_raw();
    let (exit_tx, exit_rx) = watch::channel(None);
    let slot = Arc::new(ContainerSlot {
        container: Mutex::new(container),
        exit: exit_rx,
        terminal,
    });
    lock(&agent.containers).insert(id.to_string(), slot.clone());

    let container_id = id.to_string();
    let events = agent.clone();
    track_exit(
        agent,
        status_rx,
        stdio.forwarders,
        streams.stdin,
        exit_tx,
        move |wait_status| {
            let status = lock(&slot.container).exit_status(wait_status);
            (status, move || {
                events.event(Event::ContainerExited {
                    container_id,
                    status,
                })
            })
        },
    );
    Ok(Response::Created { pid })
}

/// Waits for a process's exit and its output to drain, then publishes the
/// exit on `exit_tx`. `judge` turns the wait status into an exit status and
/// something to do once it is published.
fn track_exit<F, After>(
    agent: &Arc<Agent>,
    status_rx: oneshot::Receiver<WaitStatus>,
    forwarders: Vec<tokio::task::JoinHandle<()>>,
    stdin_stream: Option<u32>,
    exit_tx: watch::Sender<Option<ExitStatus>>,
    judge: F,
) where
    F: FnOnce(WaitStatus) -> (ExitStatus, After) + Send + 'static,
    After: FnOnce() + Send + 'static,
{
    let agent = agent.clone();
    tokio::spawn(async move {
        let Ok(wait_status) = status_rx.await else {
            return;
        };
        let (status, after) = judge(wait_status);
        // All output must reach the host before the exit does.
        let drained = async {
            for forwarder in forwarders {
                let _ = forwarder.await;
            }
        };
        if tokio::time::timeout(OUTPUT_DRAIN_TIMEOUT, drained)
            .await
            .is_err()
        {
            tracing::warn!("output still open {OUTPUT_DRAIN_TIMEOUT:?} after exit");
        }
        if let Some(stream) = stdin_stream {
            lock(&agent.stdin_routes).remove(&stream);
        }
        let _ = exit_tx.send(Some(status));
        after();
    });
}

async fn exec_process(
    agent: &Arc<Agent>,
    container_id: &str,
    exec_id: &str,
    process: &oci_spec::runtime::Process,
    streams: StdioStreams,
    terminal: bool,
) -> Result<Response> {
    if !is_valid_id(exec_id) {
        bail!("invalid exec id {exec_id:?}");
    }
    let key = (container_id.to_string(), exec_id.to_string());
    if lock(&agent.execs).contains_key(&key) {
        bail!("exec {exec_id} already exists");
    }
    let slot = agent.slot(container_id)?;
    if slot.exit.borrow().is_some() {
        bail!("container {container_id} is not running");
    }
    let mut stdio = setup_stdio(agent, streams, terminal)?;
    let (status_tx, status_rx) = oneshot::channel();
    let children = agent.clone();
    // The container's lock is held only to copy what exec needs.
    let exec = {
        let container = lock(&slot.container);
        container.exec_handle()
    };
    let (pid, master) = match exec
        .exec(process, terminal, stdio.child, move |pid| {
            lock(&children.children).insert(pid, status_tx);
        })
        .await
    {
        Ok(started) => started,
        Err(err) => {
            if let Some(stream) = streams.stdin {
                lock(&agent.stdin_routes).remove(&stream);
            }
            return Err(err);
        }
    };
    let terminal = connect_terminal(agent, pid, master, streams, &mut stdio.forwarders)?;
    let (exit_tx, exit_rx) = watch::channel(None);
    lock(&agent.execs).insert(
        key,
        Arc::new(ExecSlot {
            pid,
            exit: exit_rx,
            terminal,
        }),
    );
    track_exit(
        agent,
        status_rx,
        stdio.forwarders,
        streams.stdin,
        exit_tx,
        |wait_status| {
            (
                crate::container::exit_status_of(wait_status, || false),
                || {},
            )
        },
    );
    Ok(Response::Created { pid: pid.as_raw() })
}
