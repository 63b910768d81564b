//! The monitor's socket: one task per `hull` connected to it, serving
//! its requests (attach, start, stop, signals, resize, exec, stats, ...).

use super::exec::{run_exec, ExecRequest};
use super::{lock, AgentStreams, Attached, Control, Shared};
use crate::monitor_link::proto::{MonitorRequest, MonitorResponse, STDIN};
use anyhow::Result;
use hull_protocol::{
    decode_json, encode_json, Frame, FrameKind, FrameReader, FrameWriter, Request, RequestEnvelope,
    Response, ResponseEnvelope,
};
use std::sync::Arc;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};

/// Serves one client connection.
pub(super) async fn serve_client(stream: UnixStream, shared: Arc<Shared>, open_stdin: bool) {
    let _counted = Connected::new(&shared);
    let (read_half, write_half) = stream.into_split();
    let (frames_tx, mut frames_rx) = mpsc::channel::<Frame>(64);
    let writer = tokio::spawn(async move {
        let mut writer = FrameWriter::new(write_half);
        while let Some(frame) = frames_rx.recv().await {
            if writer.send(&frame).await.is_err() {
                break;
            }
        }
    });
    let mut reader = FrameReader::new(read_half);
    let mut stdin_attached = false;
    // Where this connection's stdin goes for an exec: queued until the
    // exec's process exists, then passed to the agent by `run_exec`.
    let mut exec_stdin: Option<mpsc::UnboundedSender<Vec<u8>>> = None;
    // This connection's exec with a terminal: what its resizes apply to.
    let mut exec_terminal: Option<String> = None;
    // This connection's exec: what its signals go to.
    let mut exec_process: Option<String> = None;
    while let Ok(Some(Ok(frame))) = reader.next().await {
        match frame.kind {
            FrameKind::Request => {
                let Ok(envelope) =
                    decode_json::<RequestEnvelope<MonitorRequest>>(&frame, FrameKind::Request)
                else {
                    continue;
                };
                let id = envelope.id;
                let respond = {
                    let frames = frames_tx.clone();
                    move |response: MonitorResponse| async move {
                        let _ = frames
                            .send(encode_json(
                                FrameKind::Response,
                                &ResponseEnvelope { id, response },
                            ))
                            .await;
                    }
                };
                match envelope.request {
                    MonitorRequest::Attach {
                        stdin,
                        stdout,
                        stderr,
                    } => {
                        stdin_attached = stdin && open_stdin;
                        lock(&shared.attached).push(Attached {
                            stdout,
                            stderr,
                            frames: frames_tx.clone(),
                        });
                        respond(MonitorResponse::Done).await;
                    }
                    MonitorRequest::Wait => {
                        let mut exit = shared.exit.subscribe();
                        tokio::spawn(async move {
                            let response = match exit.wait_for(Option::is_some).await {
                                Ok(info) => match *info {
                                    Some(info) => MonitorResponse::Exited {
                                        exit_code: info.exit_code,
                                        oom_killed: info.oom_killed,
                                    },
                                    None => MonitorResponse::Done,
                                },
                                Err(_) => MonitorResponse::error("the monitor is going away"),
                            };
                            respond(response).await;
                        });
                    }
                    MonitorRequest::Exec {
                        args,
                        env,
                        workdir,
                        user,
                        stdin,
                        detach,
                        tty,
                        size,
                    } => {
                        let Some(agent) = lock(&shared.agent).clone() else {
                            respond(MonitorResponse::error(format!(
                                "Container {} is not running",
                                shared.id
                            )))
                            .await;
                            continue;
                        };
                        let base = AgentStreams::next(&shared.next_exec_stream).stdin;
                        let (stdin_tx, stdin_rx) = mpsc::unbounded_channel();
                        if stdin {
                            exec_stdin = Some(stdin_tx);
                        }
                        let exec = ExecRequest {
                            args,
                            env,
                            workdir,
                            user,
                            stdin,
                            detach,
                            tty,
                            size,
                            base,
                        };
                        if tty {
                            exec_terminal = Some(exec.id());
                        }
                        exec_process = Some(exec.id());
                        tokio::spawn(run_exec(
                            shared.clone(),
                            agent,
                            exec,
                            stdin_rx,
                            frames_tx.clone(),
                            respond,
                        ));
                    }
                    MonitorRequest::SignalExec { signal } => {
                        let agent = lock(&shared.agent).clone();
                        let target = exec_process.clone();
                        let container_id = shared.id.clone();
                        tokio::spawn(async move {
                            let response = match (agent, target) {
                                (_, None) => MonitorResponse::error("no exec on this connection"),
                                (None, _) => MonitorResponse::error("the container is not running"),
                                (Some(agent), Some(exec_id)) => {
                                    let request = Request::SignalProcess {
                                        container_id,
                                        exec_id,
                                        signal,
                                    };
                                    match agent.request_done(request).await {
                                        Ok(()) => MonitorResponse::Done,
                                        Err(err) => MonitorResponse::error(err.to_string()),
                                    }
                                }
                            };
                            respond(response).await;
                        });
                    }
                    MonitorRequest::ResizeTerminal { size } => {
                        let agent = lock(&shared.agent).clone();
                        let request = Request::ResizeTerminal {
                            container_id: shared.id.clone(),
                            exec_id: exec_terminal.clone(),
                            rows: size.rows,
                            cols: size.cols,
                        };
                        tokio::spawn(async move {
                            let response = match agent {
                                None => MonitorResponse::error("the container is not running"),
                                Some(agent) => match agent.request_done(request).await {
                                    Ok(()) => MonitorResponse::Done,
                                    Err(err) => MonitorResponse::error(err.to_string()),
                                },
                            };
                            respond(response).await;
                        });
                    }
                    query @ (MonitorRequest::Top
                    | MonitorRequest::Stats
                    | MonitorRequest::Sync
                    | MonitorRequest::Update { .. }) => {
                        let agent = lock(&shared.agent).clone();
                        let id = shared.id.clone();
                        tokio::spawn(async move {
                            let response = match (agent, query) {
                                (None, _) => {
                                    MonitorResponse::error(format!("Container {id} is not running"))
                                }
                                (Some(agent), MonitorRequest::Top) => match agent
                                    .request(Request::ListProcesses { container_id: id })
                                    .await
                                {
                                    Ok(Response::Processes { processes }) => {
                                        MonitorResponse::Processes { processes }
                                    }
                                    other => unexpected_answer(other),
                                },
                                (Some(agent), MonitorRequest::Stats) => {
                                    match agent.request(Request::Stats { container_id: id }).await {
                                        Ok(Response::Stats { stats }) => {
                                            MonitorResponse::Stats { stats }
                                        }
                                        other => unexpected_answer(other),
                                    }
                                }
                                (Some(agent), MonitorRequest::Update { resources }) => {
                                    let update = Request::UpdateResources {
                                        container_id: id,
                                        resources,
                                    };
                                    match agent.request_done(update).await {
                                        Ok(()) => MonitorResponse::Done,
                                        Err(err) => MonitorResponse::error(err.to_string()),
                                    }
                                }
                                (Some(agent), _) => match agent.request_done(Request::Sync).await {
                                    Ok(()) => MonitorResponse::Done,
                                    Err(err) => MonitorResponse::error(err.to_string()),
                                },
                            };
                            respond(response).await;
                        });
                    }
                    request @ (MonitorRequest::Pause | MonitorRequest::Resume) => {
                        let vm = lock(&shared.vm_control).clone();
                        let id = shared.id.clone();
                        tokio::spawn(async move {
                            let done = match (vm, request) {
                                (None, _) => Err(format!("Container {id} is not running")),
                                (Some(vm), MonitorRequest::Pause) => {
                                    vm.pause().await.map_err(|e| e.to_string())
                                }
                                (Some(vm), _) => vm.resume().await.map_err(|e| e.to_string()),
                            };
                            respond(match done {
                                Ok(()) => MonitorResponse::Done,
                                Err(message) => MonitorResponse::error(message),
                            })
                            .await;
                        });
                    }
                    request => {
                        let (reply_tx, reply_rx) = oneshot::channel();
                        let control = match request {
                            MonitorRequest::Start => Control::Start(reply_tx),
                            MonitorRequest::Signal { signal } => Control::Signal(signal, reply_tx),
                            MonitorRequest::Stop { timeout_secs } => {
                                Control::Stop(timeout_secs, reply_tx)
                            }
                            MonitorRequest::Join { id } => Control::Join(id, reply_tx),
                            MonitorRequest::Attach { .. }
                            | MonitorRequest::Wait
                            | MonitorRequest::Exec { .. }
                            | MonitorRequest::ResizeTerminal { .. }
                            | MonitorRequest::SignalExec { .. }
                            | MonitorRequest::Top
                            | MonitorRequest::Stats
                            | MonitorRequest::Sync
                            | MonitorRequest::Update { .. }
                            | MonitorRequest::Pause
                            | MonitorRequest::Resume => continue,
                        };
                        let _ = shared.control.send(control).await;
                        tokio::spawn(async move {
                            let response = reply_rx
                                .await
                                .unwrap_or(MonitorResponse::error("the container is not running"));
                            respond(response).await;
                        });
                    }
                }
            }
            FrameKind::Stdio => {
                if let Ok((STDIN, data)) = frame.stdio_parts() {
                    if let Some(queue) = &exec_stdin {
                        let _ = queue.send(data.to_vec());
                    } else if stdin_attached {
                        let _ = shared.control.send(Control::Stdin(data.to_vec())).await;
                    }
                }
            }
            _ => {}
        }
    }
    // The client is gone: stop sending it output.
    lock(&shared.attached).retain(|client| !client.frames.same_channel(&frames_tx));
    drop(frames_tx);
    let _ = writer.await;
}

/// The reply for an agent answer other than the one a request expects.
pub(super) fn unexpected_answer(answer: Result<Response, crate::rpc::RpcError>) -> MonitorResponse {
    match answer {
        Ok(other) => MonitorResponse::error(format!("unexpected answer from the agent: {other:?}")),
        Err(err) => MonitorResponse::error(err.to_string()),
    }
}

/// A connected client, counted in [`Shared`]'s `clients` while it lasts.
struct Connected<'a>(&'a Shared);

impl<'a> Connected<'a> {
    fn new(shared: &'a Shared) -> Self {
        shared.clients.send_modify(|n| *n += 1);
        Self(shared)
    }
}

impl Drop for Connected<'_> {
    fn drop(&mut self) {
        self.0.clients.send_modify(|n| *n = n.saturating_sub(1));
    }
}
