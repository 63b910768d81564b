//! What the shim tells containerd: events, and a process's exit (once its
//! output is all out, with the status `Wait` and `State` then report).

use crate::container::Exit;
use crate::io::OutputCopies;
use containerd_shim::protos::events::task::{TaskExit, TaskOOM};
use containerd_shim::protos::protobuf::MessageDyn;
use containerd_shim::protos::topics;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::Context;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How long a finished process's output may take to reach its FIFOs
/// before its exit is told anyway.
const OUTPUT_GRACE: Duration = Duration::from_secs(5);

/// The status told for a process whose end the shim could not learn.
pub const KILLED_STATUS: u32 = 128 + libc::SIGKILL as u32;

/// Sends an event to containerd; one that cannot be sent is logged.
pub async fn publish(
    publisher: &RemotePublisher,
    namespace: &str,
    topic: &str,
    event: Box<dyn MessageDyn>,
) {
    if let Err(err) = publisher
        .publish(Context::default(), topic, namespace, event)
        .await
    {
        tracing::warn!("publishing {topic}: {err}");
    }
}

/// Who a process's exit is told to, and about whom.
pub struct ExitTeller {
    /// containerd's event service.
    pub publisher: Arc<RemotePublisher>,
    /// The containerd namespace.
    pub namespace: String,
    /// The task.
    pub container_id: String,
    /// The process: the task's id for its init, else the exec's id.
    pub id: String,
    /// The pid containerd knows the task by.
    pub pid: u32,
    /// Where `Wait` and `State` learn it.
    pub exit: watch::Sender<Option<Exit>>,
}

impl ExitTeller {
    /// The guest's OOM killer ended the process: TaskOOM, before its exit
    /// (CRI then gives the container's status the reason `OOMKilled`).
    pub async fn tell_oom(&self) {
        publish(
            &self.publisher,
            &self.namespace,
            topics::TASK_OOM_EVENT_TOPIC,
            Box::new(TaskOOM {
                container_id: self.container_id.clone(),
                ..Default::default()
            }),
        )
        .await;
    }

    /// Once `status` is known and `output` is all out: the exit recorded
    /// and TaskExit published.
    pub async fn tell(self, status: u32, output: OutputCopies) {
        let _ = tokio::time::timeout(OUTPUT_GRACE, output.finished()).await;
        let at = containerd_shim::util::timestamp().unwrap_or_default();
        self.exit.send_replace(Some(Exit {
            status,
            at: at.clone(),
        }));
        publish(
            &self.publisher,
            &self.namespace,
            topics::TASK_EXIT_EVENT_TOPIC,
            Box::new(TaskExit {
                container_id: self.container_id,
                id: self.id,
                pid: self.pid,
                exit_status: status,
                exited_at: Some(at).into(),
                ..Default::default()
            }),
        )
        .await;
    }
}
