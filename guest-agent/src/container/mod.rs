//! Containers in the guest: create (rootfs, cgroup, a stopped first process),
//! start, signal, reap, remove. Each step is a small function over the OCI
//! runtime spec, in the manner of youki's libcontainer.

pub mod cgroup;
mod clone;
pub mod namespaces;
pub mod process;
pub mod rootfs;
pub mod seccomp;

use crate::fdstream::FdStream;
use anyhow::{anyhow, bail, Context, Result};
use cgroup::Cgroup;
use hull_protocol::{ExitStatus, Rootfs};
use namespaces::{Namespaces, SharedNamespaces};
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use oci_spec::runtime::{PosixRlimitType, Process, Spec};
use process::{capability_bit, pointer_array, CapabilitySets, ChildPlan, Report, Stage};
use rootfs::{cstring, ContainerRootfs};
use seccomp::Filter;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Where containers' rootfs directories live in the guest.
const CONTAINERS_DIR: &str = "/run/hull/containers";

/// The `$PATH` used when the spec's environment has none (Docker's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A created container whose first process exists (stopped or running).
#[derive(Debug)]
pub struct Container {
    /// Its first process, in the guest's initial pid namespace.
    pub pid: Pid,
    rootfs: ContainerRootfs,
    cgroup: Cgroup,
    /// How to start the first process, until `start`.
    pending_start: Option<StartHandle>,
    /// The master of the first process's terminal, if it has one, for the
    /// agent to take and relay.
    pub terminal: Option<OwnedFd>,
    /// The spec's seccomp filter, for its execs too.
    seccomp: Option<Arc<Filter>>,
}

fn rlimit_resource(typ: PosixRlimitType) -> libc::c_int {
    use PosixRlimitType::*;
    (match typ {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    }) as libc::c_int
}

/// The capability masks of the spec's process.
fn capability_sets(process: &Process) -> Result<CapabilitySets> {
    let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40);
    let Some(caps) = process.capabilities() else {
        return Ok(CapabilitySets {
            last_cap,
            ..Default::default()
        });
    };
    let mask = |set: &Option<oci_spec::runtime::Capabilities>| -> Result<u64> {
        let mut bits = 0;
        for cap in set.iter().flatten() {
            // Serialised, a capability has its kernel name (`CAP_CHOWN`).
            let name = serde_json::to_value(cap)?
                .as_str()
                .unwrap_or_default()
                .to_string();
            bits |= capability_bit(&name).ok_or_else(|| anyhow!("unknown capability {name}"))?;
        }
        Ok(bits)
    };
    Ok(CapabilitySets {
        bounding: mask(caps.bounding())?,
        effective: mask(caps.effective())?,
        permitted: mask(caps.permitted())?,
        inheritable: mask(caps.inheritable())?,
        ambient: mask(caps.ambient())?,
        last_cap,
    })
}

/// Where to look for the command: itself when it has a slash, else each `$PATH` entry.
fn exec_candidates(command: &str, env: &[String]) -> Result<(Vec<CString>, bool)> {
    if command.contains('/') {
        return Ok((
            vec![CString::new(command).context("command contains NUL")?],
            false,
        ));
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    let candidates = path
        .split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| CString::new(format!("{}/{command}", dir.trim_end_matches('/'))))
        .collect::<Result<Vec<_>, _>>()
        .context("PATH contains NUL")?;
    Ok((candidates, true))
}

fn cstrings(items: &[String]) -> Result<Vec<CString>> {
    items
        .iter()
        .map(|s| CString::new(s.as_str()).with_context(|| format!("{s:?} contains NUL")))
        .collect()
}

/// Paths as seen inside the container after `pivot_root`.
fn container_paths(paths: &Option<Vec<String>>) -> Result<Vec<CString>> {
    paths
        .iter()
        .flatten()
        .map(|p| cstring(Path::new(p)))
        .collect()
}

/// A pipe whose ends are both close-on-exec.
pub fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("creating a pipe")
}

/// Sets O_NONBLOCK on `fd`.
pub fn set_nonblocking(fd: &OwnedFd) -> Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_truncate(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?);
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// Reads one report from the child, or `None` at end of file.
async fn read_report(stream: &mut FdStream) -> Result<Option<Report>> {
    let mut bytes = [0u8; Report::LEN];
    match stream.read_exact(&mut bytes).await {
        Ok(_) => Ok(Some(Report::from_bytes(&bytes))),
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(err) => Err(err).context("reading the child's report"),
    }
}

/// A container as the host defines it.
pub struct Definition<'a> {
    /// Its OCI spec (without `linux.seccomp`).
    pub spec: &'a Spec,
    /// Its seccomp filter, compiled by the host.
    pub seccomp: Option<&'a hull_seccomp::Filter>,
    /// Where its root file system is.
    pub rootfs: &'a Rootfs,
}

impl Container {
    /// Creates container `id` of pod `pod` (the container whose VM it is:
    /// itself, or the pod's sandbox container) as `definition` has it: its
    /// rootfs and cgroup in the pod's, and its first process
    /// stopped just before `execve`, in new namespaces but for those it
    /// `shared`s with another container. `stdio` are the child's ends of its
    /// stdin, stdout and stderr. `register` is called with the child's pid
    /// before anything can await, so the reaper cannot miss its exit.
    pub async fn create(
        pod: &str,
        id: &str,
        definition: Definition<'_>,
        shared: &SharedNamespaces,
        stdio: [OwnedFd; 3],
        register: impl FnOnce(Pid),
    ) -> Result<Self> {
        let Definition {
            spec,
            seccomp,
            rootfs: rootfs_spec,
        } = definition;
        let dir = PathBuf::from(CONTAINERS_DIR).join(id);
        if dir.exists() {
            bail!("container {id} already exists");
        }
        let began = std::time::Instant::now();
        if spec.linux().as_ref().is_some_and(|l| l.seccomp().is_some()) {
            bail!("a seccomp profile comes compiled, beside the spec, not in it");
        }
        let seccomp = seccomp.map(Filter::new).transpose()?.map(Arc::new);
        if let Some(filter) = &seccomp {
            tracing::debug!(
                container = id,
                "seccomp filter of {} instructions",
                filter.instructions()
            );
        }
        let rootfs = ContainerRootfs::mount(dir, rootfs_spec)?;
        let mounted = began.elapsed();
        let cgroup = match Cgroup::create(
            pod,
            id,
            spec.linux().as_ref().and_then(|l| l.resources().as_ref()),
        ) {
            Ok(cgroup) => cgroup,
            Err(err) => {
                let _ = rootfs.remove();
                return Err(err);
            }
        };
        let spawned = async {
            let pipes = child_pipes()?;
            let (mut plan, command, searched_path) =
                first_process_plan(spec, &rootfs, &stdio, &pipes.0, &pipes.3)?;
            tracing::debug!(
                container = id,
                "first process planned after {:?}",
                began.elapsed()
            );
            plan.seccomp = seccomp.clone();
            let describe = |r: Report| describe_failure(r, &command, searched_path, spec);
            spawn_process(
                (plan, command.clone(), searched_path),
                Namespaces::New(shared),
                &cgroup,
                pipes,
                stdio,
                register,
                describe,
            )
            .await
        };
        let grouped = began.elapsed();
        let spawned = spawned.await;
        tracing::debug!(
            container = id,
            "created: root mounted after {mounted:?}, cgroup after {grouped:?}, \
             first process waiting after {:?}",
            began.elapsed()
        );
        match spawned.and_then(|first| {
            let (start, terminal) = first
                .paused
                .context("the first process did not wait for its start")?;
            Ok((first.pid, start, terminal))
        }) {
            Ok((pid, start, terminal)) => Ok(Self {
                pid,
                rootfs,
                cgroup,
                pending_start: Some(start),
                terminal,
                seccomp,
            }),
            Err(err) => {
                let _ = rootfs.remove();
                cgroup.remove();
                Err(err)
            }
        }
    }

    /// What `exec` needs of this container, to use without holding it.
    pub fn exec_handle(&self) -> ExecTarget {
        ExecTarget {
            pid: self.pid,
            cgroup: self.cgroup.clone(),
            seccomp: self.seccomp.clone(),
        }
    }

    /// Takes what `start` needs, so that no lock is held across its await.
    pub fn take_start(&mut self) -> Result<StartHandle> {
        self.pending_start
            .take()
            .context("container already started")
    }

    /// Turns a wait status of the first process into an exit status.
    pub fn exit_status(&self, status: WaitStatus) -> ExitStatus {
        exit_status_of(status, || self.cgroup.oom_killed())
    }

    /// What the container uses.
    pub fn stats(&self) -> hull_protocol::ContainerStats {
        self.cgroup.stats()
    }

    /// Changes its limits (`docker update`, CRI's UpdateContainerResources).
    pub fn update(&self, resources: &oci_spec::runtime::LinuxResources) -> Result<()> {
        self.cgroup.apply(resources)
    }

    /// Sends a signal to the first process.
    pub fn signal(&self, signal: i32) -> Result<()> {
        let signal = Signal::try_from(signal).map_err(|_| anyhow!("invalid signal {signal}"))?;
        match nix::sys::signal::kill(self.pid, signal) {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(err) => Err(err).context("sending the signal"),
        }
    }

    /// Removes rootfs and cgroup. The process must have exited. The
    /// guest's caches of files let go of too: the host may unmount a
    /// removed container's root (its other containers run on) only once
    /// virtiofsd holds nothing of it, which is once the guest forgot it.
    pub fn remove(&self) -> Result<()> {
        self.rootfs.remove()?;
        self.cgroup.remove();
        // (2: dentries and inodes, whose forgetting reaches virtiofsd.)
        if let Err(err) = std::fs::write("/proc/sys/vm/drop_caches", "2") {
            tracing::debug!("dropping the guest's caches: {err}");
        }
        Ok(())
    }
}

/// A running container as `exec` needs it: its first process and cgroup.
pub struct ExecTarget {
    pid: Pid,
    cgroup: Cgroup,
    seccomp: Option<Arc<Filter>>,
}

impl ExecTarget {
    /// Runs another process in the container's namespaces and cgroup
    /// (`hull exec`), with a pseudo-terminal if `terminal`; returns once it
    /// has `execve`d, with the master of its terminal.
    pub async fn exec(
        &self,
        process: &Process,
        terminal: bool,
        stdio: [OwnedFd; 3],
        register: impl FnOnce(Pid),
    ) -> Result<(Pid, Option<OwnedFd>)> {
        let ns = |name: &str| -> Result<OwnedFd> {
            let path = format!("/proc/{}/ns/{name}", self.pid);
            Ok(std::fs::File::open(&path)
                .with_context(|| format!("opening {path} (is the container running?)"))?
                .into())
        };
        let pid_ns = ns("pid")?;
        // The mount namespace last: entering it changes the root directory.
        let joined = [
            ("ipc", libc::CLONE_NEWIPC),
            ("uts", libc::CLONE_NEWUTS),
            ("cgroup", libc::CLONE_NEWCGROUP),
            ("mnt", libc::CLONE_NEWNS),
        ]
        .into_iter()
        .map(|(name, kind)| Ok((ns(name)?, kind)))
        .collect::<Result<Vec<_>>>()?;
        let pipes = child_pipes()?;
        let (mut plan, command, searched_path) =
            process_plan(process, terminal, &stdio, &pipes.0, &pipes.3)?;
        plan.seccomp = self.seccomp.clone();
        plan.join_namespaces = joined
            .iter()
            .map(|(fd, kind)| (fd.as_raw_fd(), *kind))
            .collect();
        let describe = |r: Report| describe_exec_failure(r, &command, searched_path);
        // Without a terminal to copy out, the process need not wait.
        plan.pause_before_exec = terminal;
        let spawned = spawn_process(
            (plan, command.clone(), searched_path),
            Namespaces::Join { pid: &pid_ns },
            &self.cgroup,
            pipes,
            stdio,
            register,
            describe,
        )
        .await?;
        let terminal = match spawned.paused {
            Some((start, terminal)) => {
                start.start().await?;
                terminal
            }
            None => None,
        };
        Ok((spawned.pid, terminal))
    }
}

/// The processes in the pid namespace of `init` (a container's first
/// process), read from the agent's /proc.
pub fn processes_of(init: Pid) -> Result<Vec<hull_protocol::ProcessInfo>> {
    let ns_of = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let target = ns_of(&init.to_string()).context("the container is not running")?;
    let mut processes = Vec::new();
    for entry in std::fs::read_dir("/proc")
        .context("listing /proc")?
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(pid) = name.parse::<i32>() else {
            continue;
        };
        if ns_of(&name).as_ref() != Some(&target) {
            continue;
        }
        let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
        let field = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0)
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let command = if cmdline.is_empty() {
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            format!("[{}]", comm.trim())
        } else {
            cmdline
                .split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        processes.push(hull_protocol::ProcessInfo {
            pid,
            ppid: field("PPid:") as i32,
            uid: field("Uid:") as u32,
            command,
        });
    }
    processes.sort_by_key(|p| p.pid);
    Ok(processes)
}

/// Turns a wait status into an exit status; `oom_killed` tells whether the
/// cgroup's OOM killer has struck.
pub fn exit_status_of(status: WaitStatus, oom_killed: impl FnOnce() -> bool) -> ExitStatus {
    match status {
        WaitStatus::Signaled(_, signal, _) => ExitStatus::Signaled {
            signal: signal as i32,
            oom_killed: signal == Signal::SIGKILL && oom_killed(),
        },
        WaitStatus::Exited(_, code) => ExitStatus::Exited { code },
        // Only exits are reported by the reaper.
        _ => ExitStatus::Exited { code: 255 },
    }
}

/// The initial size of a process's terminal: its `console_size`, else 0x0
/// (unknown, as a fresh pty has).
fn terminal_size(process: &Process) -> Result<libc::winsize> {
    let (rows, cols) = process
        .console_size()
        .map_or((0, 0), |size| (size.height(), size.width()));
    let fits = |n: u64| {
        u16::try_from(n).map_err(|_| anyhow!("terminal size {rows}x{cols} is out of range"))
    };
    Ok(libc::winsize {
        ws_row: fits(rows)?,
        ws_col: fits(cols)?,
        ws_xpixel: 0,
        ws_ypixel: 0,
    })
}

/// Sets the window size of the terminal whose master is `master`; the
/// kernel sends SIGWINCH to its foreground process group.
pub fn resize_terminal(master: &OwnedFd, rows: u16, cols: u16) -> Result<()> {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer, which is valid.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) } < 0 {
        return Err(std::io::Error::last_os_error()).context("setting the terminal size");
    }
    Ok(())
}

/// The part of a child's plan that comes from the OCI process: what runs,
/// as whom, where, with which limits and capabilities, on a terminal or not.
fn process_plan(
    process: &Process,
    terminal: bool,
    stdio: &[OwnedFd; 3],
    sync_read: &OwnedFd,
    report_write: &OwnedFd,
) -> Result<(ChildPlan, String, bool)> {
    let args = process
        .args()
        .as_ref()
        .filter(|a| !a.is_empty())
        .context("no command given")?;
    let env = process.env().clone().unwrap_or_default();
    let cwd = process.cwd();
    if !cwd.is_absolute() {
        bail!("working directory {} is not absolute", cwd.display());
    }
    let user = process.user();
    let (exec_candidates, searched_path) = exec_candidates(&args[0], &env)?;
    let plan = ChildPlan {
        stdio: [
            stdio[0].as_raw_fd(),
            stdio[1].as_raw_fd(),
            stdio[2].as_raw_fd(),
        ],
        sync_read: sync_read.as_raw_fd(),
        pause_before_exec: true,
        report_write: report_write.as_raw_fd(),
        join_namespaces: Vec::new(),
        mounts: Vec::new(),
        symlinks: Vec::new(),
        rootfs: CString::from(c"/"),
        readonly_root: false,
        hostname: None,
        masked_paths: Vec::new(),
        readonly_paths: Vec::new(),
        rlimits: process
            .rlimits()
            .iter()
            .flatten()
            .map(|r| (rlimit_resource(r.typ()), r.soft(), r.hard()))
            .collect(),
        no_new_privileges: process.no_new_privileges().unwrap_or(false),
        uid: user.uid(),
        gid: user.gid(),
        additional_gids: user.additional_gids().clone().unwrap_or_default(),
        capabilities: capability_sets(process)?,
        cwd: cstring(cwd)?,
        exec_candidates,
        argv: cstrings(args)?,
        envp: cstrings(&env)?,
        terminal: terminal.then(|| terminal_size(process)).transpose()?,
        seccomp: None,
    };
    Ok((plan, args[0].clone(), searched_path))
}

/// The first process's plan: its process, plus the container's mounts,
/// root, hostname and protected paths (mount points and working directory made).
fn first_process_plan(
    spec: &Spec,
    rootfs: &ContainerRootfs,
    stdio: &[OwnedFd; 3],
    sync_read: &OwnedFd,
    report_write: &OwnedFd,
) -> Result<(ChildPlan, String, bool)> {
    let process = spec.process().as_ref().context("spec has no process")?;
    let terminal = process.terminal().unwrap_or(false);
    let (mut plan, command, searched_path) =
        process_plan(process, terminal, stdio, sync_read, report_write)?;
    // Docker creates a missing working directory.
    rootfs.prepare_path(process.cwd(), false)?;
    let linux = spec.linux().as_ref();
    plan.mounts = rootfs::plan_mounts(rootfs, spec.mounts().as_deref().unwrap_or_default())?;
    plan.symlinks = rootfs::dev_symlinks(rootfs)?;
    plan.rootfs = cstring(&rootfs.root)?;
    plan.readonly_root = spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false);
    plan.hostname = spec
        .hostname()
        .as_deref()
        .map(CString::new)
        .transpose()
        .context("hostname contains NUL")?;
    plan.masked_paths = container_paths(&linux.and_then(|l| l.masked_paths().clone()))?;
    plan.readonly_paths = container_paths(&linux.and_then(|l| l.readonly_paths().clone()))?;
    Ok((plan, command, searched_path))
}

/// A cloned process.
struct Spawned {
    pid: Pid,
    /// A process that waits before `execve` (its plan's
    /// `pause_before_exec`): how to start it, and the master of its
    /// terminal, copied from the child.
    paused: Option<(StartHandle, Option<OwnedFd>)>,
}

/// Copies descriptor `fd` of process `pid` into the agent (close-on-exec),
/// as `pidfd_getfd(2)` does.
fn copy_fd_of(pid: Pid, fd: u32) -> Result<OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if pidfd < 0 {
        return Err(std::io::Error::last_os_error())
            .context("opening a pidfd of the container process");
    }
    // SAFETY: pidfd_open returned a fresh descriptor that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as libc::c_int) };
    // SAFETY: pidfd_getfd takes a pidfd, a descriptor number and flags and
    // returns a new descriptor or -1; a bad number is an error, not UB.
    let copied = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if copied < 0 {
        return Err(std::io::Error::last_os_error())
            .context("taking the terminal from the container process");
    }
    // SAFETY: pidfd_getfd returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(copied as libc::c_int) })
}

/// Clones a process following `plan` and waits until it is ready to
/// `execve` (paused) or, when it does not pause, until it has.
async fn spawn_process(
    (plan, command, searched_path): (ChildPlan, String, bool),
    namespaces: Namespaces<'_>,
    cgroup: &Cgroup,
    pipes: (OwnedFd, OwnedFd, OwnedFd, OwnedFd),
    stdio: [OwnedFd; 3],
    register: impl FnOnce(Pid),
    describe: impl Fn(Report) -> String,
) -> Result<Spawned> {
    let (sync_read, sync_write, report_read, report_write) = pipes;
    let wants_terminal = plan.terminal.is_some();
    let paused = plan.pause_before_exec;
    let group = cgroup.open()?;
    let pid = {
        // Raw pointers for execve, used only by the child: kept in this
        // block so that nothing of them lives across the awaits below.
        let argv = pointer_array(&plan.argv);
        let envp = pointer_array(&plan.envp);
        let cloned = namespaces.clone_in(|flags| {
            // SAFETY: the child runs `child_main`, which only makes system
            // calls on data prepared above (see process.rs), and then execs
            // or exits.
            unsafe {
                clone::fork_into_cgroup(flags, group.as_fd(), || {
                    process::child_main(&plan, &argv, &envp)
                })
            }
        })?;
        cloned.context("cloning the container process")?
    };
    register(pid);
    // The child has its copies; ours would keep the pipes open.
    drop((sync_read, report_write, stdio, group));
    let setup = async {
        set_nonblocking(&report_read)?;
        set_nonblocking(&sync_write)?;
        let mut report = FdStream::new(report_read)?;
        match read_report(&mut report).await? {
            // Not paused: end of file is a successful execve.
            None if !paused => Ok(None),
            Some(r) if paused && r.stage == Stage::Ready as u32 => {
                // The child is waiting for SYNC_START, so its master is still open.
                let terminal = wants_terminal
                    .then(|| copy_fd_of(pid, r.detail))
                    .transpose()?;
                Ok(Some((sync_write, report, terminal)))
            }
            Some(r) => Err(anyhow!(describe(r))),
            None => Err(anyhow!("container process exited during set-up")),
        }
    };
    match setup.await {
        Ok(paused) => Ok(Spawned {
            pid,
            paused: paused.map(|(sync, report, terminal)| {
                (
                    StartHandle {
                        sync,
                        report,
                        command,
                        searched_path,
                    },
                    terminal,
                )
            }),
        }),
        Err(err) => {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            Err(err)
        }
    }
}

/// The pipes between parent and child: (sync read, sync write, report read, report write).
fn child_pipes() -> Result<(OwnedFd, OwnedFd, OwnedFd, OwnedFd)> {
    let (sync_read, sync_write) = pipe()?;
    let (report_read, report_write) = pipe()?;
    Ok((sync_read, sync_write, report_read, report_write))
}

/// The parent's side of a paused process's start: the ends of its sync and
/// report pipes, and its command for error messages.
#[derive(Debug)]
pub struct StartHandle {
    sync: OwnedFd,
    report: FdStream,
    command: String,
    searched_path: bool,
}

impl StartHandle {
    /// Lets the first process `execve`; fails with Docker's wording when the
    /// command cannot be run (the process then exits 126 or 127).
    pub async fn start(self) -> Result<()> {
        let mut sync = FdStream::new(self.sync)?;
        sync.write_all(&[process::SYNC_START])
            .await
            .context("starting the container process")?;
        let mut report = self.report;
        match read_report(&mut report).await? {
            None => Ok(()),
            Some(failure) => Err(anyhow!(describe_exec_failure(
                failure,
                &self.command,
                self.searched_path
            ))),
        }
    }
}

/// Docker's words for a command that cannot run.
fn describe_exec_failure(report: Report, command: &str, searched_path: bool) -> String {
    let errno = Errno::from_raw(report.errno);
    match errno {
        Errno::ENOENT if searched_path => {
            format!("exec: \"{command}\": executable file not found in $PATH")
        }
        Errno::ENOENT => format!("exec: \"{command}\": stat {command}: no such file or directory"),
        Errno::EACCES => format!("exec: \"{command}\": permission denied"),
        other => format!("exec: \"{command}\": {}", other.desc().to_lowercase()),
    }
}

/// Words for a failed set-up step.
fn describe_failure(report: Report, command: &str, searched_path: bool, spec: &Spec) -> String {
    let Some(stage) = Stage::from_u32(report.stage) else {
        return format!("container set-up failed (unknown stage {})", report.stage);
    };
    if stage == Stage::Exec {
        return describe_exec_failure(report, command, searched_path);
    }
    let errno = Errno::from_raw(report.errno).desc().to_lowercase();
    let what = match stage {
        Stage::Mount => spec
            .mounts()
            .as_ref()
            .and_then(|m| m.get(report.detail as usize))
            .map(|m| format!(" {}", m.destination().display()))
            .unwrap_or_default(),
        Stage::Cwd => format!(
            " {}",
            spec.process()
                .as_ref()
                .map(|p| p.cwd().display().to_string())
                .unwrap_or_default()
        ),
        _ => String::new(),
    };
    format!(
        "container set-up failed {}{what}: {errno}",
        stage.describe()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_search_candidates() {
        let (c, searched) = exec_candidates("ls", &["PATH=/bin:/usr/bin/".into()]).unwrap();
        assert!(searched);
        assert_eq!(
            c,
            vec![
                CString::new("/bin/ls").unwrap(),
                CString::new("/usr/bin/ls").unwrap()
            ]
        );
        let (c, searched) = exec_candidates("./run.sh", &[]).unwrap();
        assert!(!searched);
        assert_eq!(c, vec![CString::new("./run.sh").unwrap()]);
        let (c, _) = exec_candidates("sh", &[]).unwrap();
        assert_eq!(c.len(), 6);
    }

    #[test]
    fn terminal_sizes_are_bounded() {
        let mut process = Process::default();
        let size = terminal_size(&process).unwrap();
        assert_eq!((size.ws_row, size.ws_col), (0, 0));
        let console = |height: u64, width: u64| {
            oci_spec::runtime::BoxBuilder::default()
                .height(height)
                .width(width)
                .build()
                .unwrap()
        };
        process.set_console_size(Some(console(33, 77)));
        let size = terminal_size(&process).unwrap();
        assert_eq!((size.ws_row, size.ws_col), (33, 77));
        process.set_console_size(Some(console(24, 70_000)));
        assert!(terminal_size(&process).is_err());
    }

    #[test]
    fn exec_failures_use_dockers_words() {
        let report = |errno| Report {
            stage: Stage::Exec as u32,
            errno,
            detail: 0,
        };
        assert_eq!(
            describe_exec_failure(report(libc::ENOENT), "nope", true),
            "exec: \"nope\": executable file not found in $PATH"
        );
        assert_eq!(
            describe_exec_failure(report(libc::EACCES), "/etc", false),
            "exec: \"/etc\": permission denied"
        );
    }
}
