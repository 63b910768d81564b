//! The relay: the host process whose pid `create` writes to `--pid-file`.
//! It lives as long as the container's process, carries the caller's
//! stdio to and from it (the monitor's streams), passes the signals it
//! gets on to it, and exits with its exit code, so the shim or conmon that
//! reaps it sees what the container did (runsc's model).

use crate::create::{GO_FD_ENV, READY_FD_ENV};
use crate::error::OciError;
use crate::state::{engine, StateDir};
use crate::{spawn, stdio};
use hull_runtime::container::Status;
use hull_runtime::engine::Engine;
use hull_runtime::monitor_link::client::{self, MonitorClient};
use hull_runtime::monitor_link::proto::{MonitorRequest, MonitorResponse};
use std::io::{Read, Write};
use std::sync::Arc;

/// Runs the relay of container `id`; returns its exit code. It first waits
/// for `create` to say "go" (the container exists; until then the relay
/// only holds the container's network namespace for the hooks), attaches,
/// and says "ready" (or why not).
pub async fn relay(states: &StateDir, id: &str) -> i32 {
    let mut ready = spawn::inherited_pipe(READY_FD_ENV);
    let go = spawn::inherited_pipe(GO_FD_ENV).map(|mut pipe| {
        let mut said = String::new();
        let _ = pipe.read_to_string(&mut said);
        said
    });
    if go.as_deref().map(str::trim) != Some("go") {
        // `create` failed or gave up before the container existed.
        return 255;
    }
    let attached = attach(states, id).await;
    let said = match &attached {
        Ok(_) => "ready".to_string(),
        Err(err) => err.to_string(),
    };
    if let Some(pipe) = ready.as_mut() {
        let _ = pipe.write_all(said.as_bytes());
    }
    drop(ready);
    match attached {
        Ok(attached) => attached.run().await,
        Err(_) => 255,
    }
}

/// A relay attached to its container's streams.
struct Attached {
    engine: Engine,
    hull_id: String,
    monitor: Arc<MonitorClient>,
    outputs: Vec<std::thread::JoinHandle<()>>,
    stdin: bool,
}

async fn attach(states: &StateDir, id: &str) -> Result<Attached, OciError> {
    let state = states.load(id)?;
    let engine = engine()?;
    let monitor = Arc::new(
        client::connect(engine.paths(), &state.hull_id)
            .await
            .map_err(|e| OciError::Engine(e.into()))?,
    );
    let outputs = stdio::copy_output(&monitor);
    let stdin = stdio::stdin_is_open();
    monitor
        .request(MonitorRequest::Attach {
            stdin,
            stdout: true,
            stderr: true,
        })
        .await
        .map_err(|e| OciError::Engine(e.into()))?;
    Ok(Attached {
        engine,
        hull_id: state.hull_id,
        monitor,
        outputs,
        stdin,
    })
}

impl Attached {
    /// Relays until the container's process ends; returns its exit code.
    async fn run(self) -> i32 {
        let waiter = self.monitor.clone();
        let mut wait = tokio::spawn(async move { waiter.request(MonitorRequest::Wait).await });
        if self.stdin {
            // Input once it runs: the monitor has nowhere to put it before.
            let (engine, hull_id) = (self.engine.clone(), self.hull_id.clone());
            stdio::copy_stdin(self.monitor.clone(), move || match engine.load(&hull_id) {
                Ok((_, record)) => Some(record.state.status != Status::Created),
                Err(_) => None,
            });
        }
        let mut signals = stdio::forwarded_signals();
        let mut resized = stdio::window_changes();
        let answer = loop {
            tokio::select! {
                answer = &mut wait => break answer,
                Some(signal) = signals.recv() => {
                    let _ = self.engine.kill(&self.hull_id, signal).await;
                }
                Some(size) = resized.recv() => {
                    let _ = self.monitor.request(MonitorRequest::ResizeTerminal { size }).await;
                }
            }
        };
        let code = match answer {
            Ok(Ok(MonitorResponse::Exited { exit_code, .. })) => exit_code,
            // The monitor went away: what it recorded, if anything.
            _ => match self.engine.load(&self.hull_id) {
                Ok((_, record)) if record.state.status == Status::Exited => record.state.exit_code,
                // Stopped before it started (`kill` of a created container).
                Ok((_, record)) if record.state.status == Status::Created => 128 + libc::SIGKILL,
                _ => 255,
            },
        };
        stdio::drain(self.outputs).await;
        code
    }
}
