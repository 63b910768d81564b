//! `create`: the container's VM boots with its process waiting, and its
//! relay (the process `--pid-file` names) runs with the caller's stdio.

use crate::console::{self, Console};
use crate::error::OciError;
use crate::state::{engine, write_atomically, OciState, StateDir};
use crate::{hooks, query, spawn};
use hull_runtime::engine::{spec_namespace, BundleOptions};
use hull_runtime::monitor_link::proto::TerminalSize;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::Duration;

/// Seconds the VM may take to boot to its agent.
const BOOT_TIMEOUT_SECS: u64 = 120;
/// How long the relay may take to attach to the container.
const RELAY_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// The variable that tells the relay which descriptor to say "ready" on.
pub const READY_FD_ENV: &str = "HULL_OCI_READY_FD";
/// The variable that tells the relay which descriptor `create` says "go" on.
pub const GO_FD_ENV: &str = "HULL_OCI_GO_FD";

/// `create`'s options, as runc takes them.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// The bundle: `config.json` and, usually, the root file system.
    #[arg(long, short, default_value = ".")]
    bundle: PathBuf,
    /// Where to write the pid of the process that mirrors the container's.
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// A unix socket to send the terminal's master to (`process.terminal`).
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Accepted: the guest's root is its own.
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    /// Accepted: keyrings are the guest kernel's.
    #[arg(long = "no-new-keyring")]
    no_new_keyring: bool,
    /// Descriptors beyond stdio to pass on: none can cross into a VM.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: u32,
    /// The container's id.
    id: String,
}

/// Creates container `args.id`: its relay first (in a network namespace of
/// its own when the spec asks for a new one, so that the `prestart` hooks
/// can put the container's interface there), the hooks, then the Hull
/// container on that namespace and its VM; then the relay attaches.
pub async fn create(states: &StateDir, args: CreateArgs) -> Result<(), OciError> {
    let _ = (args.no_pivot, args.no_new_keyring);
    if args.preserve_fds > 0 {
        return Err(OciError::Invalid(
            "--preserve-fds: descriptors cannot be passed into a microVM".into(),
        ));
    }
    let bundle = std::fs::canonicalize(&args.bundle)
        .map_err(OciError::io("finding the bundle", &args.bundle))?;
    let mut spec = oci_spec::runtime::Spec::load(bundle.join("config.json"))
        .map_err(|e| OciError::Invalid(format!("reading the bundle's config.json: {e}")))?;
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let console_size = spec
        .process()
        .as_ref()
        .and_then(|p| p.console_size())
        .map(|size| TerminalSize {
            rows: u16::try_from(size.height()).unwrap_or(u16::MAX),
            cols: u16::try_from(size.width()).unwrap_or(u16::MAX),
        });
    let console = match (terminal, &args.console_socket) {
        (true, Some(socket)) => Some(console::create(socket, console_size)?),
        (true, None) => {
            return Err(OciError::Invalid(
                "process.terminal needs --console-socket".into(),
            ))
        }
        (false, _) => None,
    };
    let rootfs = match spec.root().as_ref().map(|r| r.path().clone()) {
        Some(path) if path.is_absolute() => path,
        Some(path) => bundle.join(path),
        None => return Err(OciError::Invalid("the spec has no root".into())),
    };
    let annotations = spec.annotations().clone().unwrap_or_default();
    let engine = engine()?;
    let dir = states.create(&args.id)?;
    let mut relay = None;
    let made = async {
        let new_netns = wants_new_network_namespace(&spec);
        let spawned = spawn_relay(states, &args.id, new_netns, console.as_ref())?;
        let pid = spawned.pid;
        relay = Some(spawned);
        if new_netns {
            set_network_namespace(&mut spec, format!("/proc/{pid}/ns/net").into());
        }
        let mut state = OciState {
            id: args.id.clone(),
            hull_id: String::new(),
            bundle: bundle.clone(),
            rootfs: rootfs.clone(),
            created: hull_runtime::timefmt::now(),
            pid,
            relay: hull_runtime::process::ProcessIdentity::of(i64::from(pid)),
            annotations,
        };
        let hooks = spec.hooks().clone().unwrap_or_default();
        let hook_state = query::oci_state(&state, "creating");
        hooks::run(
            "createRuntime",
            hooks.create_runtime().as_deref().unwrap_or_default(),
            &hook_state,
        )?;
        #[allow(deprecated)]
        hooks::run(
            "prestart",
            hooks.prestart().as_deref().unwrap_or_default(),
            &hook_state,
        )?;
        state.hull_id = engine.create_from_bundle(BundleOptions {
            name: args.id.clone(),
            rootfs,
            spec,
            vmm: std::env::var("HULL_VMM").ok().filter(|v| !v.is_empty()),
            boot_timeout_secs: BOOT_TIMEOUT_SECS,
            // With a terminal, its input is the terminal's, whatever `create`'s stdin is.
            stdin: console.is_some() || crate::stdio::stdin_is_open(),
            sandbox: None,
        })?;
        states.save(&state)?;
        engine.spawn_monitor(&state.hull_id).await?;
        if let Some(relay) = relay.take() {
            relay.go()?;
        }
        Ok::<_, OciError>(state)
    }
    .await;
    let state = match made {
        Ok(state) => state,
        Err(err) => {
            if let Some(relay) = relay {
                relay.abandon();
            }
            if let Ok(state) = states.load(&args.id) {
                if !state.hull_id.is_empty() {
                    let _ = engine.remove(&state.hull_id, true).await;
                }
            }
            let _ = std::fs::remove_dir_all(&dir);
            return Err(err);
        }
    };
    if let Some(pid_file) = &args.pid_file {
        write_atomically(pid_file, state.pid.to_string().as_bytes())?;
    }
    Ok(())
}

/// Whether the spec asks for a new network namespace (one without a path).
fn wants_new_network_namespace(spec: &Spec) -> bool {
    spec_namespace(spec, LinuxNamespaceType::Network).is_some_and(|n| n.path().is_none())
}

/// Names `path` as the spec's network namespace.
fn set_network_namespace(spec: &mut Spec, path: PathBuf) {
    if let Some(linux) = spec.linux_mut() {
        if let Some(namespaces) = linux.namespaces_mut() {
            for namespace in namespaces.iter_mut() {
                if namespace.typ() == LinuxNamespaceType::Network {
                    namespace.set_path(Some(path.clone()));
                }
            }
        }
    }
}

/// A relay that `create` started and has not yet let go.
struct SpawnedRelay {
    pid: i32,
    go: std::fs::File,
    ready: std::fs::File,
}

impl SpawnedRelay {
    /// Tells the relay the container exists; returns once it attached.
    fn go(self) -> Result<(), OciError> {
        let SpawnedRelay { pid, mut go, ready } = self;
        go.write_all(b"go")
            .map_err(|e| OciError::Setup(format!("telling the relay to attach: {e}")))?;
        drop(go);
        spawn::await_ready(
            ready,
            pid,
            RELAY_READY_TIMEOUT,
            "the relay exited before attaching to the container",
            format!("the relay did not attach within {RELAY_READY_TIMEOUT:?}"),
        )
    }

    /// `create` failed: the relay, never told to go, ends.
    fn abandon(self) {
        // SAFETY: ends the relay this `create` started.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
    }
}

/// Starts the relay of container `id` with this process's stdio, in a
/// session (and, with `new_netns`, a network namespace) of its own. It is
/// not waited for: the caller's subreaper (the shim, conmon) reaps it and
/// takes the container's exit status from it.
fn spawn_relay(
    states: &StateDir,
    id: &str,
    new_netns: bool,
    console: Option<&Console>,
) -> Result<SpawnedRelay, OciError> {
    let (ready, ready_write) = spawn::pipe()?;
    let (go_read, go) = spawn::pipe()?;
    let (ready_fd, go_fd) = (ready_write.as_raw_fd(), go_read.as_raw_fd());
    let pid = spawn::spawn(
        states,
        spawn::RelaySpec {
            verb: "__relay",
            id,
            env: vec![
                (READY_FD_ENV, ready_fd.to_string()),
                (GO_FD_ENV, go_fd.to_string()),
            ],
            passed: vec![ready_fd, go_fd],
            console,
            new_netns,
            name: "relay",
        },
    )?;
    Ok(SpawnedRelay {
        pid,
        go: std::fs::File::from(go),
        ready: std::fs::File::from(ready),
    })
}
