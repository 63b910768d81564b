//! The shim's life: `start` (containerd asks for a shim; the tasks of one
//! pod share one), serving, and `delete` (cleaning up after a shim that
//! died).

use crate::bundle::SANDBOX_ID_ANNOTATION;
use crate::events::KILLED_STATUS;
use crate::task_service::TaskService;
use async_trait::async_trait;
use containerd_shim::asynchronous::{spawn, ExitSignal, Shim};
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::{Config, DeleteResponse, Error, Flags, StartOpts};
use hull_runtime::config::Paths;
use hull_runtime::engine::Engine;
use std::path::Path;
use std::sync::Arc;

/// The shim.
pub struct HullShim {
    exit: Arc<ExitSignal>,
    namespace: String,
    id: String,
}

#[async_trait]
impl Shim for HullShim {
    type T = TaskService;

    async fn new(_runtime_id: &str, args: &Flags, _config: &mut Config) -> Self {
        HullShim {
            exit: Arc::new(ExitSignal::default()),
            namespace: args.namespace.clone(),
            id: args.id.clone(),
        }
    }

    async fn start_shim(&mut self, opts: StartOpts) -> Result<String, Error> {
        // The containers of one pod share a shim (containerd runs `start`
        // in the task's bundle).
        let grouping = sandbox_id(Path::new("config.json")).unwrap_or_else(|| opts.id.clone());
        spawn(opts, &grouping, Vec::new()).await
    }

    async fn delete_shim(&mut self) -> Result<DeleteResponse, Error> {
        // A shim that died left its task: the container goes, VM and all.
        if let Ok(engine) = engine_for(&self.namespace) {
            if let Err(err) = engine.remove(&self.id, true).await {
                tracing::warn!("removing {} after its shim: {err}", self.id);
            }
        }
        crate::bundle::unmount_rootfs(&std::env::current_dir().unwrap_or_default());
        Ok(DeleteResponse {
            exit_status: KILLED_STATUS,
            exited_at: Some(containerd_shim::util::timestamp()?).into(),
            ..Default::default()
        })
    }

    async fn wait(&mut self) {
        self.exit.wait().await;
    }

    async fn create_task_service(&self, publisher: RemotePublisher) -> TaskService {
        let engine = match engine_for(&self.namespace) {
            Ok(engine) => engine,
            Err(err) => {
                // containerd validates namespaces; one that is not a path
                // component would be a bug, and the shim cannot serve it.
                eprintln!("{err}");
                std::process::exit(1);
            }
        };
        TaskService::new(engine, self.namespace.clone(), publisher, self.exit.clone())
    }
}

/// The engine for a containerd namespace: its containers are kept apart
/// from `hull`'s own and from other namespaces' (as runc's state is), in
/// `<root>/containerd/<namespace>`.
pub fn engine_for(namespace: &str) -> Result<Engine, String> {
    let valid = !namespace.is_empty()
        && !namespace.starts_with('.')
        && namespace
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !valid {
        return Err(format!("invalid containerd namespace '{namespace}'"));
    }
    let base = Paths::new(None);
    base.restrict()
        .map_err(|err| format!("preparing {}: {err}", base.root.display()))?;
    Ok(Engine::new(Paths {
        root: base.root.join("containerd").join(namespace),
        run: base.run.join("containerd").join(namespace),
    }))
}

/// The pod's sandbox id in a bundle's spec, if CRI put it there.
fn sandbox_id(config: &Path) -> Option<String> {
    let data = std::fs::read(config).ok()?;
    let spec: serde_json::Value = serde_json::from_slice(&data).ok()?;
    spec.get("annotations")?
        .get(SANDBOX_ID_ANNOTATION)?
        .as_str()
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_must_be_path_components() {
        assert!(engine_for("default").is_ok());
        assert!(engine_for("k8s.io").is_ok());
        for bad in ["", "..", ".hidden", "a/b", "a b"] {
            assert!(engine_for(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_pods_containers_share_a_shim() {
        let dir = std::env::temp_dir().join(format!("hull-shim-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("config.json");
        std::fs::write(
            &config,
            r#"{"annotations":{"io.kubernetes.cri.sandbox-id":"abc123"}}"#,
        )
        .unwrap();
        assert_eq!(sandbox_id(&config).as_deref(), Some("abc123"));
        std::fs::write(
            &config,
            r#"{"annotations":{"io.kubernetes.cri.sandbox-id":"../x"}}"#,
        )
        .unwrap();
        assert_eq!(sandbox_id(&config), None);
        std::fs::write(&config, "{}").unwrap();
        assert_eq!(sandbox_id(&config), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
