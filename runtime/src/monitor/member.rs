//! A container that joins a running sandbox (a pod's containers join its
//! sandbox container's VM): its files mounted into the running virtiofsd,
//! a socket of its own on this monitor, created and run by the same agent,
//! and taken out of the sandbox again when it exits.
//!
//! It is served as the sandbox's own container is (attach, start, signals,
//! stop, exec, top, stats), by [`run_in_sandbox`]; it is never restarted
//! here (Kubernetes makes a new container instead), and it ends at the
//! latest with the sandbox.

use super::run::{run_in_sandbox, RunContext, RunState};
use super::shares::ContainerShares;
use super::{AgentStreams, Control, ExitInfo, Shared};
use crate::config::Paths;
use crate::container::{ContainerRecord, ContainerStore};
use crate::logs::JsonLogWriter;
use crate::monitor_link::proto::MonitorResponse;
use crate::sandbox::{load_spec, Sandbox, SandboxPlan};
use anyhow::{anyhow, bail, Context, Result};
use hull_protocol::Request;
use std::path::PathBuf;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// A container that has joined the sandbox and waits for its run.
pub(super) struct Member {
    paths: Paths,
    store: ContainerStore,
    record: ContainerRecord,
    plan: SandboxPlan,
    spec: oci_spec::runtime::Spec,
    shared: Arc<Shared>,
    control: mpsc::Receiver<Control>,
    log: Arc<Mutex<JsonLogWriter>>,
    shares: ContainerShares,
    /// Its socket's task, ended with it however it ends.
    listener: AbortOnDrop,
}

/// A task that ends when this is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Member {
    /// Container `id` joins `sandbox`: its files are mounted into the share
    /// and its socket answers. It is created in the guest by [`Member::run`].
    pub(super) async fn join(
        paths: &Paths,
        sandbox: &Sandbox,
        streams: &Arc<AtomicU32>,
        id: &str,
        joined: &[Arc<Shared>],
    ) -> Result<Member> {
        let store = ContainerStore::open(&paths.root)?;
        let id = store.resolve(id)?;
        if joined.iter().any(|member| member.id == id) {
            bail!("container {} has joined the sandbox already", &id[..12]);
        }
        let mut record = store.load(&id)?;
        let container_dir = store.dir_of(&id);
        let plan = SandboxPlan::load(&container_dir)?;
        let spec = load_spec(&container_dir)?;
        match &plan.joins {
            Some(joins) if joins.container_id == sandbox.id => {}
            _ => bail!(
                "container {} was not created to join the sandbox of {}",
                &id[..12],
                &sandbox.id[..12]
            ),
        }
        let virtiofsd = sandbox
            .virtiofsd_pid()
            .ok_or_else(|| anyhow!("the sandbox's virtiofsd is gone"))?;
        let shares = ContainerShares::of(&store, &id, &plan).await?;
        let (share_dir, entries) = (sandbox.share_dir(), shares.entries.clone());
        let added = tokio::task::spawn_blocking(move || {
            crate::virtiofsd::add_entries(virtiofsd, &share_dir, &entries)
        })
        .await
        .context("sharing the container's files")?;
        if let Err(err) = added {
            // What was attached before the failure goes again.
            leave_share(sandbox, &plan, &id).await;
            return Err(err).with_context(|| format!("sharing container {}'s files", &id[..12]));
        }
        let (shared, control) = Shared::new(
            id.clone(),
            &spec,
            &plan,
            AgentStreams::next(streams),
            streams.clone(),
        );
        let listening = shared
            .listen(paths, record.config.open_stdin)
            .and_then(|listener| {
                let listener = AbortOnDrop(listener);
                record.hull_sandbox.monitor_pid = i64::from(std::process::id());
                record.hull_sandbox.virtiofsd_pid = i64::from(virtiofsd);
                let log_path = PathBuf::from(&record.log_path);
                let log = JsonLogWriter::open(&log_path, &record.host_config.log_config)
                    .with_context(|| format!("opening {}", log_path.display()))?;
                store.save(&record)?;
                Ok((listener, log))
            });
        let (listener, log) = match listening {
            Ok(listening) => listening,
            Err(err) => {
                leave_share(sandbox, &plan, &id).await;
                crate::sandbox::remove_dir(&paths.sandbox_dir(&id));
                return Err(err);
            }
        };
        tracing::debug!(
            "container {} joins the sandbox of {}",
            &id[..12],
            &sandbox.id[..12]
        );
        Ok(Member {
            paths: paths.clone(),
            store,
            record,
            plan,
            spec,
            shared,
            control,
            log: Arc::new(Mutex::new(log)),
            shares,
            listener,
        })
    }

    /// What its clients and its run share.
    pub(super) fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Creates the container in the guest, starts it when a client says so,
    /// serves it until it exits, and takes it out of the sandbox; its id.
    pub(super) async fn run(mut self, sandbox: &Sandbox) -> String {
        let id = self.record.id.clone();
        let ctx = RunContext {
            paths: &self.paths,
            store: &self.store,
            plan: &self.plan,
            spec: &self.spec,
            shared: &self.shared,
            log: &self.log,
            attachment: None,
        };
        let mut state = RunState {
            start_waiter: None,
            auto_start: false,
            stopped_by_user: false,
        };
        let outcome = run_in_sandbox(
            &ctx,
            &mut self.record,
            sandbox,
            &mut self.control,
            &mut state,
            Instant::now(),
        )
        .await;
        let exit = match outcome {
            Ok((exit, _)) => exit,
            Err(err) => {
                let message = format!("{err:#}");
                tracing::error!("container {}: {message}", &id[..12]);
                let exit_code = super::exit_code_of(&err);
                self.record
                    .set_exited(exit_code, false, Some(message.clone()));
                let failure = MonitorResponse::Error {
                    message,
                    exit_code: Some(exit_code),
                };
                if let Some(waiter) = state.start_waiter.take() {
                    let _ = waiter.send(failure.clone());
                }
                super::answer_pending(&mut self.control, failure).await;
                ExitInfo {
                    exit_code,
                    oom_killed: false,
                }
            }
        };
        // Out of the guest and out of the share, before anyone may remove it.
        let agent = sandbox.agent();
        let removed = agent.request_done(Request::RemoveContainer {
            container_id: id.clone(),
        });
        if let Ok(Err(err)) = tokio::time::timeout(Duration::from_secs(10), removed).await {
            tracing::warn!("container {}: removing it in the guest: {err}", &id[..12]);
        }
        leave_share(sandbox, &self.plan, &id).await;
        drop(self.shares);
        self.record.hull_sandbox.monitor_pid = 0;
        if let Err(err) = self.store.save(&self.record) {
            tracing::warn!("container {}: saving its record: {err:#}", &id[..12]);
        }
        self.shared.exit.send_replace(Some(exit));
        if self.record.host_config.auto_remove {
            match self.store.remove(&self.record) {
                Ok(()) => crate::engine::Engine::new(self.paths.clone())
                    .release_anonymous_volumes(&self.record),
                Err(err) => tracing::warn!("container {}: removing it: {err:#}", &id[..12]),
            }
        }
        self.shared.clients_gone().await;
        drop(self.listener);
        crate::sandbox::remove_dir(&self.paths.sandbox_dir(&id));
        id
    }
}

/// Unmounts container `id`'s part of the sandbox's share and removes its
/// mount points.
async fn leave_share(sandbox: &Sandbox, plan: &SandboxPlan, id: &str) {
    let layout = plan.share(id);
    if layout.dir().as_os_str().is_empty() {
        return; // the sandbox's own: its share goes with the sandbox
    }
    if let Some(virtiofsd) = sandbox.virtiofsd_pid() {
        let mut targets = vec![layout.rootfs()];
        targets.extend(crate::sandbox::ETC_FILES.iter().map(|n| layout.etc_file(n)));
        targets.extend((0..plan.volumes.len()).map(|i| layout.volume(i)));
        let removed = tokio::task::spawn_blocking(move || {
            crate::virtiofsd::remove_entries(virtiofsd, &targets)
        })
        .await;
        if let Ok(Err(err)) = removed {
            tracing::warn!("container {}: {err}", &id[..12]);
        }
    }
    let _ = std::fs::remove_dir_all(sandbox.share_dir().join(layout.dir()));
}

/// Ends the containers that joined a sandbox whose own container is gone
/// (its VM goes): each is stopped at once, as `rm -f` stops one (killed if
/// it runs, never started if it waits), and its end recorded.
pub(super) async fn end_members<F: std::future::Future<Output = String>>(
    joined: &[Arc<Shared>],
    mut members: futures_util::stream::FuturesUnordered<F>,
) {
    use futures_util::StreamExt;
    if members.is_empty() {
        return;
    }
    for member in joined {
        let (reply, _) = tokio::sync::oneshot::channel();
        let _ = member.control.try_send(Control::Stop(0, reply));
    }
    let all_ended = async { while members.next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(20), all_ended)
        .await
        .is_err()
    {
        tracing::warn!("containers that joined the sandbox did not end within 20s");
    }
}
