//! Processes `exec`ed in a running task (`ctr task exec`, CRI's ExecSync):
//! each has a connection of its own to the container's monitor, which
//! carries its streams and answers with its exit.

use crate::container::Exit;
use crate::error::{internal, not_found, status};
use crate::events::{ExitTeller, KILLED_STATUS};
use crate::io::{copy_output, copy_stdin};
use crate::task_service::TaskService;
use containerd_shim::protos::events::task::TaskExecStarted;
use containerd_shim::protos::topics;
use containerd_shim::protos::ttrpc::Code;
use containerd_shim::{api, TtrpcResult};
use hull_runtime::monitor_link::client;
use hull_runtime::monitor_link::proto::{MonitorRequest, MonitorResponse, TerminalSize};
use std::path::Path;
use std::sync::Arc;

impl TaskService {
    /// Sends exec `exec_id` of task `id` a signal, on its connection.
    pub(crate) async fn kill_exec(
        &self,
        id: &str,
        exec_id: &str,
        signal: i32,
    ) -> TtrpcResult<api::Empty> {
        let monitor = {
            let containers = self.containers.lock().await;
            let container = containers.get(id).ok_or_else(|| not_found(id))?;
            let exec = container.exec(exec_id)?;
            if exec.exited().is_some() {
                return Err(status(Code::NOT_FOUND, "process already finished"));
            }
            exec.monitor.clone().ok_or_else(|| {
                status(
                    Code::FAILED_PRECONDITION,
                    format!("exec {exec_id} was not started"),
                )
            })?
        };
        monitor
            .request(MonitorRequest::SignalExec { signal })
            .await
            .map_err(internal)?;
        Ok(api::Empty::default())
    }

    /// Starts exec `exec_id` of task `id`: a connection of its own to the
    /// container's monitor, its output copied to its FIFOs, its exit told.
    pub(crate) async fn start_exec(
        &self,
        id: &str,
        exec_id: &str,
    ) -> TtrpcResult<api::StartResponse> {
        let (hull_id, pid, spec, stdio, exit) = {
            let containers = self.containers.lock().await;
            let container = containers.get(id).ok_or_else(|| not_found(id))?;
            let exec = container.exec(exec_id)?;
            if exec.monitor.is_some() {
                return Err(status(
                    Code::FAILED_PRECONDITION,
                    format!("exec {exec_id} was started already"),
                ));
            }
            (
                container.hull_id.clone(),
                container.pid,
                exec.spec.clone(),
                exec.stdio.clone(),
                exec.exit.clone(),
            )
        };
        let monitor = Arc::new(
            client::connect(self.engine.paths(), &hull_id)
                .await
                .map_err(internal)?,
        );
        let output = copy_output(&monitor, &stdio).map_err(internal)?;
        let user = spec.user();
        let request = MonitorRequest::Exec {
            args: spec.args().clone().unwrap_or_default(),
            env: spec.env().clone().unwrap_or_default(),
            workdir: Some(spec.cwd().display().to_string()),
            user: Some(format!("{}:{}", user.uid(), user.gid())),
            stdin: !stdio.stdin.is_empty(),
            detach: false,
            tty: stdio.terminal,
            size: spec.console_size().as_ref().map(|size| TerminalSize {
                rows: u16::try_from(size.height()).unwrap_or(u16::MAX),
                cols: u16::try_from(size.width()).unwrap_or(u16::MAX),
            }),
        };
        if let Some(container) = self.containers.lock().await.get_mut(id) {
            if let Some(exec) = container.execs.get_mut(exec_id) {
                exec.monitor = Some(monitor.clone());
            }
        }
        if !stdio.stdin.is_empty() {
            let copy = copy_stdin(monitor.clone(), Path::new(&stdio.stdin));
            if let Some(exec) = self
                .containers
                .lock()
                .await
                .get_mut(id)
                .and_then(|c| c.execs.get_mut(exec_id))
            {
                exec.stdin = Some(copy);
            }
        }
        let teller = ExitTeller {
            publisher: self.publisher.clone(),
            namespace: self.namespace.clone(),
            container_id: id.to_string(),
            id: exec_id.to_string(),
            pid,
            exit,
        };
        tokio::spawn(async move {
            let status = match monitor.request(request).await {
                Ok(MonitorResponse::Exited { exit_code, .. }) => exit_code as u32,
                Err(hull_runtime::rpc::RpcError::Remote {
                    exit_code: Some(code),
                    ..
                }) => code as u32,
                _ => KILLED_STATUS,
            };
            teller.tell(status, output).await;
        });
        self.publish(
            topics::TASK_EXEC_STARTED_EVENT_TOPIC,
            Box::new(TaskExecStarted {
                container_id: id.to_string(),
                exec_id: exec_id.to_string(),
                pid,
                ..Default::default()
            }),
        )
        .await;
        Ok(api::StartResponse {
            pid,
            ..Default::default()
        })
    }

    /// Forgets exec `exec_id` of task `id` (its connection closes).
    pub(crate) async fn delete_exec(
        &self,
        id: &str,
        exec_id: &str,
    ) -> TtrpcResult<api::DeleteResponse> {
        let (pid, exec) = {
            let mut containers = self.containers.lock().await;
            let container = containers.get_mut(id).ok_or_else(|| not_found(id))?;
            let exec = container
                .execs
                .remove(exec_id)
                .ok_or_else(|| not_found(exec_id))?;
            (container.pid, exec)
        };
        let exited = exec.exited().unwrap_or(Exit {
            status: KILLED_STATUS,
            at: containerd_shim::util::timestamp().unwrap_or_default(),
        });
        Ok(api::DeleteResponse {
            pid,
            exit_status: exited.status,
            exited_at: Some(exited.at).into(),
            ..Default::default()
        })
    }
}
