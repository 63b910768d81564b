//! Containers in the guest: create (rootfs, cgroup, a stopped first process),
//! start, signal, reap, remove. Each step is a small function over the OCI
//! runtime spec, in the manner of youki's libcontainer.

pub mod cgroup;
pub mod process;
pub mod rootfs;

use crate::fdstream::FdStream;
use anyhow::{anyhow, bail, Context, Result};
use cgroup::Cgroup;
use hull_protocol::{ExitStatus, Rootfs};
use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use oci_spec::runtime::{PosixRlimitType, Process, Spec};
use process::{capability_bit, pointer_array, CapabilitySets, ChildPlan, Report, Stage};
use rootfs::{cstring, ContainerRootfs};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Where containers' rootfs directories live in the guest.
const CONTAINERS_DIR: &str = "/run/hull/containers";

/// The `$PATH` used when the spec's environment has none (Docker's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Stack for the cloned child before it `execve`s.
const CHILD_STACK_SIZE: usize = 256 * 1024;

/// A created container whose first process exists (stopped or running).
#[derive(Debug)]
pub struct Container {
    /// Its first process, in the guest's initial pid namespace.
    pub pid: Pid,
    rootfs: ContainerRootfs,
    cgroup: Cgroup,
    /// The parent's ends of the sync and report pipes until `start`.
    pending_start: Option<(OwnedFd, FdStream)>,
    /// The command, for error messages.
    command: String,
    /// Whether the command was found through `$PATH`.
    searched_path: bool,
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
            let name = serde_json::to_value(cap)?.as_str().unwrap_or_default().to_string();
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
        return Ok((vec![CString::new(command).context("command contains NUL")?], false));
    }
    let path = env.iter().find_map(|e| e.strip_prefix("PATH=")).unwrap_or(DEFAULT_PATH);
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
    paths.iter().flatten().map(|p| cstring(Path::new(p))).collect()
}

/// A pipe whose ends are both close-on-exec.
fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("creating a pipe")
}

fn set_nonblocking(fd: &OwnedFd) -> Result<()> {
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

impl Container {
    /// Creates the container: its rootfs and cgroup, and its first process
    /// stopped just before `execve`. `stdio` are the child's ends of its
    /// stdin, stdout and stderr. `register` is called with the child's pid
    /// before anything can await, so the reaper cannot miss its exit.
    pub async fn create(id: &str, spec: &Spec, rootfs_spec: &Rootfs, stdio: [OwnedFd; 3], register: impl FnOnce(Pid)) -> Result<Self> {
        let dir = PathBuf::from(CONTAINERS_DIR).join(id);
        if dir.exists() {
            bail!("container {id} already exists");
        }
        let rootfs = ContainerRootfs::mount(dir, rootfs_spec)?;
        let cgroup = match Cgroup::create(id, spec.linux().as_ref().and_then(|l| l.resources().as_ref())) {
            Ok(cgroup) => cgroup,
            Err(err) => {
                let _ = rootfs.remove();
                return Err(err);
            }
        };
        match spawn_first_process(spec, &rootfs, &cgroup, stdio, register).await {
            Ok(first) => Ok(Self {
                pid: first.pid,
                rootfs,
                cgroup,
                pending_start: Some((first.sync, first.report)),
                command: first.command,
                searched_path: first.searched_path,
            }),
            Err(err) => {
                let _ = rootfs.remove();
                cgroup.remove();
                Err(err)
            }
        }
    }

    /// Takes what `start` needs, so that no lock is held across its await.
    pub fn take_start(&mut self) -> Result<StartHandle> {
        let (sync, report) = self.pending_start.take().context("container already started")?;
        Ok(StartHandle {
            sync,
            report,
            command: self.command.clone(),
            searched_path: self.searched_path,
        })
    }

    /// Turns a wait status of the first process into an exit status.
    pub fn exit_status(&self, status: WaitStatus) -> ExitStatus {
        match status {
            WaitStatus::Signaled(_, signal, _) => ExitStatus::Signaled {
                signal: signal as i32,
                oom_killed: signal == Signal::SIGKILL && self.cgroup.oom_killed(),
            },
            WaitStatus::Exited(_, code) => ExitStatus::Exited { code },
            // Only exits are reported by the reaper.
            _ => ExitStatus::Exited { code: 255 },
        }
    }

    /// Sends a signal to the first process.
    pub fn signal(&self, signal: i32) -> Result<()> {
        let signal = Signal::try_from(signal).map_err(|_| anyhow!("invalid signal {signal}"))?;
        match nix::sys::signal::kill(self.pid, signal) {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(err) => Err(err).context("sending the signal"),
        }
    }

    /// Removes rootfs and cgroup. The process must have exited.
    pub fn remove(&self) -> Result<()> {
        self.rootfs.remove()?;
        self.cgroup.remove();
        Ok(())
    }
}

/// The child's plan from the spec, with mount points and working directory made.
fn plan(spec: &Spec, rootfs: &ContainerRootfs, stdio: &[OwnedFd; 3], sync_read: &OwnedFd, report_write: &OwnedFd) -> Result<(ChildPlan, String, bool)> {
    let process = spec.process().as_ref().context("spec has no process")?;
    let args = process.args().as_ref().filter(|a| !a.is_empty()).context("spec has no command")?;
    let env = process.env().clone().unwrap_or_default();
    let cwd = process.cwd();
    if !cwd.is_absolute() {
        bail!("working directory {} is not absolute", cwd.display());
    }
    // Docker creates a missing working directory.
    rootfs.prepare_path(cwd, false)?;
    let mounts = rootfs::plan_mounts(rootfs, spec.mounts().as_deref().unwrap_or_default())?;
    let linux = spec.linux().as_ref();
    let user = process.user();
    let (exec_candidates, searched_path) = exec_candidates(&args[0], &env)?;
    let plan = ChildPlan {
        stdio: [stdio[0].as_raw_fd(), stdio[1].as_raw_fd(), stdio[2].as_raw_fd()],
        sync_read: sync_read.as_raw_fd(),
        report_write: report_write.as_raw_fd(),
        mounts,
        symlinks: rootfs::dev_symlinks(rootfs)?,
        rootfs: cstring(&rootfs.root)?,
        readonly_root: spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false),
        hostname: spec.hostname().as_deref().map(CString::new).transpose().context("hostname contains NUL")?,
        masked_paths: container_paths(&linux.and_then(|l| l.masked_paths().clone()))?,
        readonly_paths: container_paths(&linux.and_then(|l| l.readonly_paths().clone()))?,
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
    };
    Ok((plan, args[0].clone(), searched_path))
}

/// A first process stopped before `execve`.
struct FirstProcess {
    pid: Pid,
    sync: OwnedFd,
    report: FdStream,
    command: String,
    searched_path: bool,
}

/// Clones the first process and waits until it is ready to `execve`.
async fn spawn_first_process(
    spec: &Spec,
    rootfs: &ContainerRootfs,
    cgroup: &Cgroup,
    stdio: [OwnedFd; 3],
    register: impl FnOnce(Pid),
) -> Result<FirstProcess> {
    let (sync_read, sync_write) = pipe()?;
    let (report_read, report_write) = pipe()?;
    let (plan, command, searched_path) = plan(spec, rootfs, &stdio, &sync_read, &report_write)?;
    let pid = {
        // Raw pointers for execve, used only by the child: kept in this
        // block so that nothing of them lives across the awaits below.
        let argv = pointer_array(&plan.argv);
        let envp = pointer_array(&plan.envp);
        let mut stack = vec![0u8; CHILD_STACK_SIZE];
        let flags = CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC;
        // SAFETY: the child runs `child_main`, which only makes system calls
        // on data prepared above (see process.rs), and then execs or exits.
        unsafe {
            nix::sched::clone(
                Box::new(|| process::child_main(&plan, &argv, &envp)),
                &mut stack,
                flags,
                Some(Signal::SIGCHLD as i32),
            )
        }
        .context("cloning the container's first process")?
    };
    register(pid);
    // The child has its copies; ours would keep the pipes open.
    drop((sync_read, report_write, stdio));
    let setup = async {
        set_nonblocking(&report_read)?;
        set_nonblocking(&sync_write)?;
        let mut report = FdStream::new(report_read)?;
        let mut sync = FdStream::new(sync_write)?;
        cgroup.add_process(pid.as_raw())?;
        sync.write_all(&[process::SYNC_CGROUP_JOINED]).await?;
        match read_report(&mut report).await? {
            Some(r) if r.stage == Stage::Ready as u32 => Ok((sync.into_inner(), report)),
            Some(r) => Err(anyhow!(describe_failure(r, &command, searched_path, spec))),
            None => Err(anyhow!("container process exited during set-up")),
        }
    };
    match setup.await {
        Ok((sync, report)) => Ok(FirstProcess {
            pid,
            sync,
            report,
            command,
            searched_path,
        }),
        Err(err) => {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            Err(err)
        }
    }
}

/// The parent's side of a created container's start.
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
        sync.write_all(&[process::SYNC_START]).await.context("starting the container process")?;
        let mut report = self.report;
        match read_report(&mut report).await? {
            None => Ok(()),
            Some(failure) => Err(anyhow!(describe_exec_failure(failure, &self.command, self.searched_path))),
        }
    }
}

/// Docker's words for a command that cannot run.
fn describe_exec_failure(report: Report, command: &str, searched_path: bool) -> String {
    let errno = Errno::from_raw(report.errno);
    match errno {
        Errno::ENOENT if searched_path => format!("exec: \"{command}\": executable file not found in $PATH"),
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
        Stage::Cwd => format!(" {}", spec.process().as_ref().map(|p| p.cwd().display().to_string()).unwrap_or_default()),
        _ => String::new(),
    };
    format!("container set-up failed {}{what}: {errno}", stage.describe())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_search_candidates() {
        let (c, searched) = exec_candidates("ls", &["PATH=/bin:/usr/bin/".into()]).unwrap();
        assert!(searched);
        assert_eq!(c, vec![CString::new("/bin/ls").unwrap(), CString::new("/usr/bin/ls").unwrap()]);
        let (c, searched) = exec_candidates("./run.sh", &[]).unwrap();
        assert!(!searched);
        assert_eq!(c, vec![CString::new("./run.sh").unwrap()]);
        let (c, _) = exec_candidates("sh", &[]).unwrap();
        assert_eq!(c.len(), 6);
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
