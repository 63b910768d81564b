//! `hull exec`: a process started in the running container, its streams
//! forwarded to the `hull` that asked for it.

use super::server::unexpected_answer;
use super::Shared;
use crate::agent_client::AgentClient;
use crate::monitor_link::proto::{self, MonitorResponse, STDERR, STDOUT};
use hull_protocol::{Frame, Request, Response, StdioStreams};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// An exec as a client asked for it, with its block of agent streams.
pub(super) struct ExecRequest {
    pub(super) args: Vec<String>,
    pub(super) env: Vec<String>,
    pub(super) workdir: Option<String>,
    pub(super) user: Option<String>,
    pub(super) stdin: bool,
    pub(super) detach: bool,
    pub(super) tty: bool,
    pub(super) size: Option<proto::TerminalSize>,
    pub(super) base: u32,
}

impl ExecRequest {
    /// The exec's id in the agent.
    pub(super) fn id(&self) -> String {
        format!("exec{}", self.base)
    }
}

/// Runs an exec in the container, streaming its output to the client, and
/// answers with its exit code (or at once when detached).
pub(super) async fn run_exec<F, Fut>(
    shared: Arc<Shared>,
    agent: Arc<AgentClient>,
    exec: ExecRequest,
    mut stdin: mpsc::UnboundedReceiver<Vec<u8>>,
    frames: mpsc::Sender<Frame>,
    respond: F,
) where
    F: FnOnce(MonitorResponse) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let options = crate::spec::ExecOptions {
        args: &exec.args,
        env: &exec.env,
        workdir: exec.workdir.as_deref(),
        user: exec.user.as_deref(),
        tty: exec.tty,
        console_size: exec.size.map(|size| (size.rows, size.cols)),
    };
    let process =
        match crate::spec::exec_process(&shared.base_process, &options, &shared.layer_dirs) {
            Ok(process) => process,
            Err(err) => {
                return respond(MonitorResponse::Error {
                    message: err.to_string(),
                    exit_code: Some(126),
                })
                .await
            }
        };
    let exec_id = exec.id();
    let (stdout, stderr) = (exec.base + 1, exec.base + 2);
    let forwarders: Vec<_> = if exec.detach {
        Vec::new()
    } else {
        [(stdout, STDOUT), (stderr, STDERR)]
            .into_iter()
            .map(|(from, to)| {
                let mut rx = agent.subscribe(from);
                let frames = frames.clone();
                tokio::spawn(async move {
                    while let Some(chunk) = rx.recv().await {
                        let end = chunk.is_empty();
                        let _ = frames.send(Frame::stdio(to, &chunk)).await;
                        if end {
                            break;
                        }
                    }
                })
            })
            .collect()
    };
    let created = agent
        .request(Request::ExecProcess {
            container_id: shared.id.clone(),
            exec_id: exec_id.clone(),
            process: Box::new(process),
            stdio: StdioStreams {
                stdin: exec.stdin.then_some(exec.base),
                stdout: (!exec.detach).then_some(stdout),
                stderr: (!exec.detach).then_some(stderr),
            },
            terminal: exec.tty,
        })
        .await;
    if let Err(err) = created {
        // A command that cannot run exits 126 or 127 right away.
        // The agent keeps no record of an exec that never ran, so its code
        // comes from the reason, as Docker gives it: 127 not found, else 126.
        let message = err.to_string();
        let exit_code = if message.contains("not found") || message.contains("no such file") {
            127
        } else {
            126
        };
        return respond(MonitorResponse::Error {
            message,
            exit_code: Some(exit_code),
        })
        .await;
    }
    if exec.detach {
        return respond(MonitorResponse::Done).await;
    }
    if exec.stdin {
        let (agent, stream) = (agent.clone(), exec.base);
        tokio::spawn(async move {
            while let Some(data) = stdin.recv().await {
                let end = data.is_empty();
                if agent.send_input(stream, &data).await.is_err() || end {
                    break;
                }
            }
        });
    }
    let wait = Request::WaitProcess {
        container_id: shared.id.clone(),
        exec_id,
    };
    let response = match agent.request(wait).await {
        Ok(Response::Exited { status }) => MonitorResponse::Exited {
            exit_code: status.code(),
            oom_killed: false,
        },
        other => unexpected_answer(other),
    };
    for forwarder in forwarders {
        let _ = tokio::time::timeout(Duration::from_secs(2), forwarder).await;
    }
    respond(response).await;
}
