//! The namespaces a container's process is born in: new ones of its own
//! (a container's first process), some of them another container's (a
//! pod's containers share its sandbox container's IPC, UTS and maybe pid
//! namespaces), or all of a running container's (an exec).
//!
//! A process enters a pid namespace only at birth, and the IPC and UTS
//! namespaces it is cloned in are its parent's: the cloning thread points
//! itself at the namespaces to share, clones, and returns to its own.

use anyhow::{Context, Result};
use hull_protocol::JoinNamespaces;
use nix::sched::CloneFlags;
use nix::unistd::Pid;
use std::os::fd::OwnedFd;

/// Another container's namespaces that a new container shares.
#[derive(Debug, Default)]
pub struct SharedNamespaces {
    ipc: Option<OwnedFd>,
    uts: Option<OwnedFd>,
    pid: Option<OwnedFd>,
}

impl SharedNamespaces {
    /// None: the container gets new ones of its own.
    pub fn none() -> Self {
        Self::default()
    }

    /// Those of the container whose first process is `pid` that `join` names.
    pub fn of(pid: Pid, join: &JoinNamespaces) -> Result<Self> {
        let open = |wanted: bool, name: &str| -> Result<Option<OwnedFd>> {
            if !wanted {
                return Ok(None);
            }
            let path = format!("/proc/{pid}/ns/{name}");
            let file = std::fs::File::open(&path).with_context(|| {
                format!(
                    "opening {path}: container {} is not running",
                    join.container_id
                )
            })?;
            Ok(Some(file.into()))
        };
        Ok(Self {
            ipc: open(join.ipc, "ipc")?,
            uts: open(join.uts, "uts")?,
            pid: open(join.pid, "pid")?,
        })
    }
}

/// How a process is made.
pub enum Namespaces<'a> {
    /// A container's first process: new namespaces, except those it shares.
    New(&'a SharedNamespaces),
    /// An exec: into a running container's pid namespace (the others it
    /// enters itself, see `ChildPlan::join_namespaces`).
    Join {
        /// The container's pid namespace.
        pid: &'a OwnedFd,
    },
}

impl Namespaces<'_> {
    /// The namespaces the cloning thread enters for the clone: `(fd, kind,
    /// name in /proc/thread-self/ns)`.
    fn entered(&self) -> Vec<(&OwnedFd, CloneFlags, &'static str)> {
        match self {
            Namespaces::New(shared) => [
                (&shared.pid, CloneFlags::CLONE_NEWPID, "pid_for_children"),
                (&shared.ipc, CloneFlags::CLONE_NEWIPC, "ipc"),
                (&shared.uts, CloneFlags::CLONE_NEWUTS, "uts"),
            ]
            .into_iter()
            .filter_map(|(fd, kind, name)| fd.as_ref().map(|fd| (fd, kind, name)))
            .collect(),
            Namespaces::Join { pid } => {
                vec![(*pid, CloneFlags::CLONE_NEWPID, "pid_for_children")]
            }
        }
    }

    /// The clone flags: new namespaces for all it does not share or join.
    fn clone_flags(&self) -> CloneFlags {
        match self {
            Namespaces::New(shared) => {
                let mut flags = CloneFlags::CLONE_NEWNS;
                for (theirs, kind) in [
                    (&shared.pid, CloneFlags::CLONE_NEWPID),
                    (&shared.ipc, CloneFlags::CLONE_NEWIPC),
                    (&shared.uts, CloneFlags::CLONE_NEWUTS),
                ] {
                    if theirs.is_none() {
                        flags |= kind;
                    }
                }
                flags
            }
            Namespaces::Join { .. } => CloneFlags::empty(),
        }
    }

    /// Calls `clone` with the clone flags, on this thread pointed at the
    /// namespaces to share, and points it back at its own afterwards.
    /// Nothing in `clone` may await: the thread must not change meanwhile.
    pub fn clone_in<T>(&self, clone: impl FnOnce(CloneFlags) -> T) -> Result<T> {
        let entered = self.entered();
        let mut own = Vec::with_capacity(entered.len());
        for &(_, kind, name) in &entered {
            let path = format!("/proc/thread-self/ns/{name}");
            let file = std::fs::File::open(&path)
                .with_context(|| format!("opening the agent's {path}"))?;
            own.push((file, kind));
        }
        let mut result = Ok(());
        for &(fd, kind, name) in &entered {
            if let Err(err) = nix::sched::setns(fd, kind) {
                result = Err(err).with_context(|| format!("entering the shared {name} namespace"));
                break;
            }
        }
        let cloned = result.map(|()| clone(self.clone_flags()));
        for (file, kind) in own {
            if let Err(err) = nix::sched::setns(file, kind) {
                // A thread of the agent left in a container's namespaces
                // would make every later container there: stop instead.
                tracing::error!("returning to the agent's {kind:?} namespace: {err}");
                std::process::abort();
            }
        }
        cloned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_of_its_own_gets_every_namespace_new() {
        let none = SharedNamespaces::none();
        let flags = Namespaces::New(&none).clone_flags();
        assert_eq!(
            flags,
            CloneFlags::CLONE_NEWNS
                | CloneFlags::CLONE_NEWPID
                | CloneFlags::CLONE_NEWIPC
                | CloneFlags::CLONE_NEWUTS
        );
        assert!(Namespaces::New(&none).entered().is_empty());
    }

    #[test]
    fn a_pod_member_is_born_in_the_namespaces_it_shares() {
        let me = Pid::this();
        let join = JoinNamespaces {
            container_id: "pod".into(),
            ipc: true,
            uts: true,
            pid: false,
        };
        let shared = SharedNamespaces::of(me, &join).unwrap();
        let namespaces = Namespaces::New(&shared);
        assert_eq!(
            namespaces.clone_flags(),
            CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID
        );
        let names: Vec<_> = namespaces.entered().iter().map(|e| e.2).collect();
        assert_eq!(names, ["ipc", "uts"]);
    }
}
