//! containerd's task API, one method per RPC, on Hull's engine: each task
//! is a Hull container in a microVM of its own, with a monitor that owns
//! the VM; the shim talks to the monitor as `hull` does.

use crate::bundle::{mount_rootfs, pod_sandbox, unmount_rootfs};
use crate::container::{Container, Exec, Exit};
use crate::error::{from_engine, internal, not_found, status};
use crate::events::{publish, ExitTeller, KILLED_STATUS};
use crate::io::{copy_output, copy_stdin, Stdio};
use async_trait::async_trait;
use containerd_shim::asynchronous::ExitSignal;
use containerd_shim::protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskIO, TaskPaused, TaskResumed, TaskStart,
};
use containerd_shim::protos::protobuf::MessageDyn;
use containerd_shim::protos::shim_async::Task;
use containerd_shim::protos::topics;
use containerd_shim::protos::ttrpc::r#async::TtrpcContext;
use containerd_shim::protos::ttrpc::Code;
use containerd_shim::protos::types::task::{ProcessInfo, Status as TaskStatus};
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::{api, TtrpcResult};
use hull_runtime::container::Status;
use hull_runtime::engine::{BundleOptions, Engine};
use hull_runtime::monitor_link::proto::{MonitorRequest, MonitorResponse, TerminalSize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::{watch, Mutex};

/// Seconds a task's VM may take to boot to its agent.
const BOOT_TIMEOUT_SECS: u64 = 60;

/// The task service of one shim.
pub struct TaskService {
    pub(crate) engine: Engine,
    pub(crate) namespace: String,
    pub(crate) publisher: Arc<RemotePublisher>,
    pub(crate) containers: Arc<Mutex<HashMap<String, Container>>>,
    exit: Arc<ExitSignal>,
}

impl TaskService {
    /// The service for containerd namespace `namespace`.
    pub fn new(
        engine: Engine,
        namespace: String,
        publisher: RemotePublisher,
        exit: Arc<ExitSignal>,
    ) -> TaskService {
        TaskService {
            engine,
            namespace,
            publisher: Arc::new(publisher),
            containers: Arc::default(),
            exit,
        }
    }

    pub(crate) async fn publish(&self, topic: &str, event: Box<dyn MessageDyn>) {
        publish(&self.publisher, &self.namespace, topic, event).await;
    }
}

/// A container's state as containerd names it.
fn task_status(status: Status) -> TaskStatus {
    match status {
        Status::Created => TaskStatus::CREATED,
        Status::Running | Status::Restarting => TaskStatus::RUNNING,
        Status::Paused => TaskStatus::PAUSED,
        Status::Exited | Status::Dead | Status::Removing => TaskStatus::STOPPED,
    }
}

#[async_trait]
impl Task for TaskService {
    async fn create(
        &self,
        _ctx: &TtrpcContext,
        req: api::CreateTaskRequest,
    ) -> TtrpcResult<api::CreateTaskResponse> {
        if self.containers.lock().await.contains_key(&req.id) {
            return Err(status(
                Code::ALREADY_EXISTS,
                format!("task {} already exists", req.id),
            ));
        }
        let bundle = PathBuf::from(&req.bundle);
        let spec = oci_spec::runtime::Spec::load(bundle.join("config.json")).map_err(|err| {
            status(
                Code::INVALID_ARGUMENT,
                format!("reading the bundle's spec: {err}"),
            )
        })?;
        // A pod's other containers join its sandbox container's VM.
        let sandbox = match pod_sandbox(&spec) {
            Some(task) => Some(
                self.containers
                    .lock()
                    .await
                    .get(&task)
                    .map(|sandbox| sandbox.hull_id.clone())
                    .ok_or_else(|| {
                        status(
                            Code::FAILED_PRECONDITION,
                            format!("the pod's sandbox task {task} is not in this shim"),
                        )
                    })?,
            ),
            None => None,
        };
        let rootfs_mounted = mount_rootfs(&bundle, &req.rootfs).await?;
        let rootfs = match spec.root().as_ref().map(|r| r.path().clone()) {
            Some(path) if !rootfs_mounted && path.is_absolute() => path,
            Some(path) if !rootfs_mounted => bundle.join(path),
            _ => bundle.join("rootfs"),
        };
        let stdio = Stdio {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let created = async {
            let hull_id = self
                .engine
                .create_from_bundle(BundleOptions {
                    name: req.id.clone(),
                    rootfs,
                    spec,
                    vmm: std::env::var("HULL_VMM").ok().filter(|v| !v.is_empty()),
                    boot_timeout_secs: BOOT_TIMEOUT_SECS,
                    stdin: !stdio.stdin.is_empty(),
                    sandbox,
                })
                .map_err(from_engine)?;
            let spawned = match self.engine.spawn_monitor(&hull_id).await {
                Ok(spawned) => spawned,
                Err(err) => {
                    let _ = self.engine.remove(&hull_id, true).await;
                    return Err(from_engine(err));
                }
            };
            Ok((hull_id, spawned))
        }
        .await;
        let (hull_id, spawned) = match created {
            Ok(created) => created,
            Err(err) => {
                if rootfs_mounted {
                    unmount_rootfs(&bundle);
                }
                return Err(err);
            }
        };
        let monitor = Arc::new(spawned.client);
        let (exit, _) = watch::channel(None);
        let pid = spawned.pid;
        self.containers.lock().await.insert(
            req.id.clone(),
            Container {
                id: req.id.clone(),
                hull_id,
                bundle,
                rootfs_mounted,
                stdio,
                monitor,
                pid,
                exit,
                started: false,
                stdin: None,
                execs: HashMap::new(),
            },
        );
        self.publish(
            topics::TASK_CREATE_EVENT_TOPIC,
            Box::new(TaskCreate {
                container_id: req.id.clone(),
                bundle: req.bundle.clone(),
                rootfs: req.rootfs.clone(),
                io: Some(TaskIO {
                    stdin: req.stdin.clone(),
                    stdout: req.stdout.clone(),
                    stderr: req.stderr.clone(),
                    terminal: req.terminal,
                    ..Default::default()
                })
                .into(),
                pid,
                ..Default::default()
            }),
        )
        .await;
        Ok(api::CreateTaskResponse {
            pid,
            ..Default::default()
        })
    }

    async fn start(
        &self,
        _ctx: &TtrpcContext,
        req: api::StartRequest,
    ) -> TtrpcResult<api::StartResponse> {
        if !req.exec_id.is_empty() {
            return self.start_exec(&req.id, &req.exec_id).await;
        }
        let (hull_id, monitor, stdio, pid, exit) = {
            let mut containers = self.containers.lock().await;
            let container = containers
                .get_mut(&req.id)
                .ok_or_else(|| not_found(&req.id))?;
            if container.started {
                return Err(status(
                    Code::FAILED_PRECONDITION,
                    format!("task {} was started already", req.id),
                ));
            }
            container.started = true;
            (
                container.hull_id.clone(),
                container.monitor.clone(),
                container.stdio.clone(),
                container.pid,
                container.exit.clone(),
            )
        };
        // Attached before it starts: none of its output is missed.
        let output = copy_output(&monitor, &stdio).map_err(internal)?;
        monitor
            .request(MonitorRequest::Attach {
                stdin: !stdio.stdin.is_empty(),
                stdout: true,
                stderr: true,
            })
            .await
            .map_err(internal)?;
        let waiter = monitor.clone();
        let wait = tokio::spawn(async move { waiter.request(MonitorRequest::Wait).await });
        self.engine
            .start(&hull_id, &monitor)
            .await
            .map_err(from_engine)?;
        // Input once it runs: the monitor has nowhere to put it before.
        if !stdio.stdin.is_empty() {
            let copy = copy_stdin(monitor.clone(), Path::new(&stdio.stdin));
            if let Some(container) = self.containers.lock().await.get_mut(&req.id) {
                container.stdin = Some(copy);
            }
        }
        // Its exit, told once its output is all out.
        let teller = ExitTeller {
            publisher: self.publisher.clone(),
            namespace: self.namespace.clone(),
            container_id: req.id.clone(),
            id: req.id.clone(),
            pid,
            exit,
        };
        tokio::spawn(async move {
            let status = match wait.await {
                Ok(Ok(MonitorResponse::Exited {
                    exit_code,
                    oom_killed,
                })) => {
                    if oom_killed {
                        teller.tell_oom().await;
                    }
                    exit_code as u32
                }
                _ => KILLED_STATUS,
            };
            teller.tell(status, output).await;
        });
        self.publish(
            topics::TASK_START_EVENT_TOPIC,
            Box::new(TaskStart {
                container_id: req.id.clone(),
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

    async fn state(
        &self,
        _ctx: &TtrpcContext,
        req: api::StateRequest,
    ) -> TtrpcResult<api::StateResponse> {
        let containers = self.containers.lock().await;
        let container = containers.get(&req.id).ok_or_else(|| not_found(&req.id))?;
        if !req.exec_id.is_empty() {
            let exec = container.exec(&req.exec_id)?;
            let exited = exec.exited();
            let status = match (&exited, &exec.monitor) {
                (Some(_), _) => TaskStatus::STOPPED,
                (None, Some(_)) => TaskStatus::RUNNING,
                (None, None) => TaskStatus::CREATED,
            };
            return Ok(api::StateResponse {
                id: req.exec_id.clone(),
                bundle: container.bundle.display().to_string(),
                pid: container.pid,
                status: status.into(),
                stdin: exec.stdio.stdin.clone(),
                stdout: exec.stdio.stdout.clone(),
                stderr: exec.stdio.stderr.clone(),
                terminal: exec.stdio.terminal,
                exit_status: exited.as_ref().map_or(0, |e| e.status),
                exited_at: exited.map(|e| e.at).into(),
                exec_id: req.exec_id.clone(),
                ..Default::default()
            });
        }
        let exited = container.exited();
        let status = match &exited {
            Some(_) => TaskStatus::STOPPED,
            None => match self.engine.load(&container.hull_id) {
                Ok((_, record)) => task_status(record.state.status),
                Err(_) => TaskStatus::UNKNOWN,
            },
        };
        Ok(api::StateResponse {
            id: container.id.clone(),
            bundle: container.bundle.display().to_string(),
            pid: container.pid,
            status: status.into(),
            stdin: container.stdio.stdin.clone(),
            stdout: container.stdio.stdout.clone(),
            stderr: container.stdio.stderr.clone(),
            terminal: container.stdio.terminal,
            exit_status: exited.as_ref().map_or(0, |e| e.status),
            exited_at: exited.map(|e| e.at).into(),
            ..Default::default()
        })
    }

    async fn wait(
        &self,
        _ctx: &TtrpcContext,
        req: api::WaitRequest,
    ) -> TtrpcResult<api::WaitResponse> {
        let mut exit = {
            let containers = self.containers.lock().await;
            let container = containers.get(&req.id).ok_or_else(|| not_found(&req.id))?;
            if req.exec_id.is_empty() {
                container.exit.subscribe()
            } else {
                container.exec(&req.exec_id)?.exit.subscribe()
            }
        };
        let exited = exit
            .wait_for(Option::is_some)
            .await
            .map_err(|_| not_found(&req.id))?
            .clone()
            .ok_or_else(|| not_found(&req.id))?;
        Ok(api::WaitResponse {
            exit_status: exited.status,
            exited_at: Some(exited.at).into(),
            ..Default::default()
        })
    }

    async fn kill(&self, _ctx: &TtrpcContext, req: api::KillRequest) -> TtrpcResult<api::Empty> {
        let signal = i32::try_from(req.signal)
            .map_err(|_| status(Code::INVALID_ARGUMENT, "invalid signal"))?;
        if !req.exec_id.is_empty() {
            return self.kill_exec(&req.id, &req.exec_id, signal).await;
        }
        let (hull_id, monitor, started, exited) = {
            let containers = self.containers.lock().await;
            let container = containers.get(&req.id).ok_or_else(|| not_found(&req.id))?;
            (
                container.hull_id.clone(),
                container.monitor.clone(),
                container.started,
                container.exited().is_some(),
            )
        };
        if exited {
            return Err(status(Code::NOT_FOUND, "process already finished"));
        }
        if !started {
            // Created, never started: its monitor ends it, VM and all.
            monitor
                .request(MonitorRequest::Stop { timeout_secs: 0 })
                .await
                .map_err(internal)?;
            return Ok(api::Empty::default());
        }
        self.engine
            .kill(&hull_id, signal)
            .await
            .map_err(from_engine)?;
        Ok(api::Empty::default())
    }

    async fn delete(
        &self,
        _ctx: &TtrpcContext,
        req: api::DeleteRequest,
    ) -> TtrpcResult<api::DeleteResponse> {
        if !req.exec_id.is_empty() {
            return self.delete_exec(&req.id, &req.exec_id).await;
        }
        let container = self
            .containers
            .lock()
            .await
            .remove(&req.id)
            .ok_or_else(|| not_found(&req.id))?;
        if let Err(err) = self.engine.remove(&container.hull_id, true).await {
            tracing::warn!("removing {}: {err}", container.id);
        }
        if container.rootfs_mounted {
            unmount_rootfs(&container.bundle);
        }
        let exited = container.exited().unwrap_or(Exit {
            status: KILLED_STATUS,
            at: containerd_shim::util::timestamp().unwrap_or_default(),
        });
        self.publish(
            topics::TASK_DELETE_EVENT_TOPIC,
            Box::new(TaskDelete {
                container_id: container.id.clone(),
                pid: container.pid,
                exit_status: exited.status,
                exited_at: Some(exited.at.clone()).into(),
                ..Default::default()
            }),
        )
        .await;
        Ok(api::DeleteResponse {
            pid: container.pid,
            exit_status: exited.status,
            exited_at: Some(exited.at).into(),
            ..Default::default()
        })
    }

    async fn pids(
        &self,
        _ctx: &TtrpcContext,
        req: api::PidsRequest,
    ) -> TtrpcResult<api::PidsResponse> {
        let containers = self.containers.lock().await;
        let container = containers.get(&req.id).ok_or_else(|| not_found(&req.id))?;
        Ok(api::PidsResponse {
            processes: vec![ProcessInfo {
                pid: container.pid,
                ..Default::default()
            }],
            ..Default::default()
        })
    }

    async fn pause(&self, _ctx: &TtrpcContext, req: api::PauseRequest) -> TtrpcResult<api::Empty> {
        let hull_id = self.hull_id(&req.id).await?;
        self.engine.pause(&hull_id).await.map_err(from_engine)?;
        self.publish(
            topics::TASK_PAUSED_EVENT_TOPIC,
            Box::new(TaskPaused {
                container_id: req.id.clone(),
                ..Default::default()
            }),
        )
        .await;
        Ok(api::Empty::default())
    }

    async fn resume(
        &self,
        _ctx: &TtrpcContext,
        req: api::ResumeRequest,
    ) -> TtrpcResult<api::Empty> {
        let hull_id = self.hull_id(&req.id).await?;
        self.engine.unpause(&hull_id).await.map_err(from_engine)?;
        self.publish(
            topics::TASK_RESUMED_EVENT_TOPIC,
            Box::new(TaskResumed {
                container_id: req.id.clone(),
                ..Default::default()
            }),
        )
        .await;
        Ok(api::Empty::default())
    }

    async fn update(
        &self,
        _ctx: &TtrpcContext,
        req: api::UpdateTaskRequest,
    ) -> TtrpcResult<api::Empty> {
        let hull_id = self.hull_id(&req.id).await?;
        // The OCI LinuxResources, as JSON (containerd's typeurl for them).
        let resources: oci_spec::runtime::LinuxResources = req
            .resources
            .as_ref()
            .map(|any| serde_json::from_slice(&any.value))
            .transpose()
            .map_err(|err| {
                status(
                    Code::INVALID_ARGUMENT,
                    format!("reading the resources: {err}"),
                )
            })?
            .unwrap_or_default();
        self.engine
            .update(&hull_id, &resources)
            .await
            .map_err(from_engine)?;
        Ok(api::Empty::default())
    }

    async fn resize_pty(
        &self,
        _ctx: &TtrpcContext,
        req: api::ResizePtyRequest,
    ) -> TtrpcResult<api::Empty> {
        if !req.exec_id.is_empty() {
            // (An exec's terminal keeps the size it started with.)
            return Ok(api::Empty::default());
        }
        let monitor = self.monitor(&req.id).await?;
        let size = TerminalSize {
            rows: u16::try_from(req.height).unwrap_or(u16::MAX),
            cols: u16::try_from(req.width).unwrap_or(u16::MAX),
        };
        monitor
            .request(MonitorRequest::ResizeTerminal { size })
            .await
            .map_err(internal)?;
        Ok(api::Empty::default())
    }

    async fn close_io(
        &self,
        _ctx: &TtrpcContext,
        req: api::CloseIORequest,
    ) -> TtrpcResult<api::Empty> {
        if !req.stdin {
            return Ok(api::Empty::default());
        }
        let containers = self.containers.lock().await;
        let container = containers.get(&req.id).ok_or_else(|| not_found(&req.id))?;
        let (copy, monitor) = if req.exec_id.is_empty() {
            (container.stdin.clone(), Some(container.monitor.clone()))
        } else {
            let exec = container.exec(&req.exec_id)?;
            (exec.stdin.clone(), exec.monitor.clone())
        };
        drop(containers);
        match (copy, monitor) {
            // What containerd wrote before asking still goes in first.
            (Some(copy), _) => copy.close(),
            (None, Some(monitor)) => monitor
                .send_input(hull_runtime::monitor_link::proto::STDIN, &[])
                .await
                .map_err(internal)?,
            (None, None) => {}
        }
        Ok(api::Empty::default())
    }

    async fn stats(
        &self,
        _ctx: &TtrpcContext,
        req: api::StatsRequest,
    ) -> TtrpcResult<api::StatsResponse> {
        let monitor = self.monitor(&req.id).await?;
        let stats = match monitor.request(MonitorRequest::Stats).await {
            Ok(MonitorResponse::Stats { stats }) => stats,
            Ok(other) => return Err(internal(format!("unexpected answer: {other:?}"))),
            Err(err) => return Err(status(Code::FAILED_PRECONDITION, err.to_string())),
        };
        Ok(api::StatsResponse {
            stats: Some(crate::stats::metrics(&stats).map_err(internal)?).into(),
            ..Default::default()
        })
    }

    async fn exec(
        &self,
        _ctx: &TtrpcContext,
        req: api::ExecProcessRequest,
    ) -> TtrpcResult<api::Empty> {
        let spec: oci_spec::runtime::Process = serde_json::from_slice(&req.spec.value)
            .map_err(|err| status(Code::INVALID_ARGUMENT, format!("the exec's process: {err}")))?;
        {
            let mut containers = self.containers.lock().await;
            let container = containers
                .get_mut(&req.id)
                .ok_or_else(|| not_found(&req.id))?;
            if container.execs.contains_key(&req.exec_id) {
                return Err(status(
                    Code::ALREADY_EXISTS,
                    format!("exec {} already exists", req.exec_id),
                ));
            }
            let (exit, _) = watch::channel(None);
            container.execs.insert(
                req.exec_id.clone(),
                Exec {
                    spec,
                    stdio: Stdio {
                        stdin: req.stdin.clone(),
                        stdout: req.stdout.clone(),
                        stderr: req.stderr.clone(),
                        terminal: req.terminal,
                    },
                    monitor: None,
                    stdin: None,
                    exit,
                },
            );
        }
        self.publish(
            topics::TASK_EXEC_ADDED_EVENT_TOPIC,
            Box::new(TaskExecAdded {
                container_id: req.id.clone(),
                exec_id: req.exec_id.clone(),
                ..Default::default()
            }),
        )
        .await;
        Ok(api::Empty::default())
    }

    async fn connect(
        &self,
        _ctx: &TtrpcContext,
        req: api::ConnectRequest,
    ) -> TtrpcResult<api::ConnectResponse> {
        let task_pid = self
            .containers
            .lock()
            .await
            .get(&req.id)
            .map_or(0, |c| c.pid);
        Ok(api::ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        })
    }

    async fn shutdown(
        &self,
        _ctx: &TtrpcContext,
        _req: api::ShutdownRequest,
    ) -> TtrpcResult<api::Empty> {
        // The shim stays while it has tasks (a pod's others may follow).
        if self.containers.lock().await.is_empty() {
            self.exit.signal();
        }
        Ok(api::Empty::default())
    }
}

impl TaskService {
    async fn hull_id(&self, id: &str) -> TtrpcResult<String> {
        let containers = self.containers.lock().await;
        Ok(containers
            .get(id)
            .ok_or_else(|| not_found(id))?
            .hull_id
            .clone())
    }

    async fn monitor(
        &self,
        id: &str,
    ) -> TtrpcResult<Arc<hull_runtime::monitor_link::client::MonitorClient>> {
        let containers = self.containers.lock().await;
        Ok(containers
            .get(id)
            .ok_or_else(|| not_found(id))?
            .monitor
            .clone())
    }
}
