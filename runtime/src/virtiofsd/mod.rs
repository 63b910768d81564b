//! One virtiofsd per sandbox, sharing exactly what that sandbox may see.
//!
//! The share is an empty directory on which the container's root file
//! system (an overlay of the image's layers and the container's writable
//! layer, see [`crate::rootfs`]) and its other files are mounted, inside a
//! mount namespace private to virtiofsd. So the guest sees only its own
//! container (never the image store), nothing can write to the image's
//! layers, and no mount is left on the host when virtiofsd ends, however
//! it ends. A pod's other containers join a running sandbox: their
//! entries are mounted into that namespace then ([`add_entries`]).

mod mounts;

pub use mounts::{add_entries, remove_entries};

use crate::idmap::{FsIdentity, IdRange, UserNamespace};
use crate::mount_api::attach;
use crate::rootfs::OverlayMount;
use mounts::{cpath, MountPlan};
use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use thiserror::Error;
use tokio::process::{Child, Command};

/// The pinned virtiofsd version the set-up script installs.
pub const VIRTIOFSD_VERSION: &str = "1.14.0";

/// The descriptor virtiofsd gets its listening socket on (`--fd`).
const LISTEN_FD: std::os::fd::RawFd = 3;

/// virtiofsd could not be started.
#[derive(Debug, Error)]
pub enum VirtiofsdError {
    /// Preparing the share failed.
    #[error("preparing the shared directory {path}")]
    Share {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A path cannot be passed to mount(2).
    #[error("path {0} contains a NUL byte")]
    BadPath(PathBuf),
    /// Spawning failed.
    #[error("starting {program}")]
    Spawn {
        /// The executable.
        program: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Its socket could not be made.
    #[error("listening on {path}")]
    Listen {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An idmapped copy of a mount could not be made.
    #[error("mapping {path} into virtiofsd's user namespace")]
    Idmap {
        /// The mount's path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Its seccomp filter could not be made.
    #[error("virtiofsd's seccomp filter: {0}")]
    Filter(String),
    /// virtiofsd cannot run unprivileged here.
    #[error("{0}")]
    Unprivileged(String),
    /// Mounting into, or unmounting from, a running virtiofsd's share failed.
    #[error("{what} in virtiofsd's share")]
    Running {
        /// What was being done.
        what: String,
        /// Why.
        source: std::io::Error,
    },
}

/// A directory to expose inside the share.
#[derive(Debug, Clone)]
pub struct ShareEntry {
    /// Relative path inside the share.
    pub target: PathBuf,
    /// What is mounted there.
    pub source: ShareSource,
}

/// What a [`ShareEntry`] mounts.
#[derive(Debug, Clone)]
pub enum ShareSource {
    /// A host directory, bind-mounted.
    Bind {
        /// Absolute path on the host.
        path: PathBuf,
        /// Whether the guest may only read it.
        readonly: bool,
    },
    /// An overlay (a container's root file system).
    Overlay(OverlayMount),
}

/// System calls virtiofsd never makes, refused (EPERM) to it and to what it
/// forks, under its own stricter filter: a virtiofsd a guest took over
/// reaches none of these kernel interfaces, its waiting parent included
/// (which virtiofsd's own filter leaves out).
const REFUSED_CALLS: &[&str] = &[
    "acct",
    "add_key",
    "adjtimex",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "delete_module",
    "fanotify_init",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "init_module",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ioperm",
    "iopl",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "memfd_secret",
    "mount_setattr",
    "perf_event_open",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "quotactl",
    "quotactl_fd",
    "reboot",
    "request_key",
    "setns",
    "settimeofday",
    "swapoff",
    "swapon",
    "syslog",
    "userfaultfd",
    "uselib",
    "vhangup",
];

/// The filter virtiofsd starts under ([`REFUSED_CALLS`]).
fn refusing_filter() -> Result<hull_seccomp::Loadable, VirtiofsdError> {
    use oci_spec::runtime::{LinuxSeccompAction, LinuxSeccompBuilder, LinuxSyscallBuilder};
    let refuse = |err: &dyn std::fmt::Display| VirtiofsdError::Filter(err.to_string());
    let profile = LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .syscalls(vec![LinuxSyscallBuilder::default()
            .names(
                REFUSED_CALLS
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>(),
            )
            .action(LinuxSeccompAction::ScmpActErrno)
            .build()
            .map_err(|e| refuse(&e))?])
        .build()
        .map_err(|e| refuse(&e))?;
    let filter = hull_seccomp::Filter::compile(&profile).map_err(|e| refuse(&e))?;
    hull_seccomp::Loadable::new(&filter).map_err(|e| refuse(&e))
}

/// What an unprivileged virtiofsd needs, prepared before fork: its user
/// namespace, an idmapped copy of the share, and where its program is.
struct Unprivileged {
    ns: UserNamespace,
    mounter: FsIdentity,
    share: OwnedFd,
    /// The program's directory and its name there: it is started by a
    /// relative path from there, as the host's path to it (under root's
    /// home, say) may be closed to its user.
    program_dir: CString,
    program_name: PathBuf,
}

impl Unprivileged {
    fn prepare(range: IdRange, program: &Path, share_dir: &Path) -> Result<Self, VirtiofsdError> {
        use std::os::unix::fs::PermissionsExt;
        let refuse = |what: String| VirtiofsdError::Unprivileged(what);
        let program = std::fs::canonicalize(program).map_err(|source| VirtiofsdError::Spawn {
            program: program.to_path_buf(),
            source,
        })?;
        let (Some(dir), Some(name)) = (program.parent(), program.file_name()) else {
            return Err(refuse(format!("{} is not a program", program.display())));
        };
        let mode = |path: &Path| {
            std::fs::metadata(path)
                .map(|m| m.permissions().mode())
                .unwrap_or(0)
        };
        if mode(&program) & 0o001 == 0 || mode(dir) & 0o001 == 0 {
            return Err(refuse(format!(
                "{} is not executable by others",
                program.display()
            )));
        }
        // It opens its share by path.
        if let Some(closed) = share_dir
            .ancestors()
            .skip(1)
            .find(|above| mode(above) & 0o001 == 0)
        {
            return Err(refuse(format!(
                "{} is not searchable by others",
                closed.display()
            )));
        }
        let ns = UserNamespace::create(range).map_err(|source| VirtiofsdError::Idmap {
            path: "a new user namespace".into(),
            source,
        })?;
        let mounter = FsIdentity::of(range).map_err(|source| VirtiofsdError::Idmap {
            path: "the monitor's capabilities".into(),
            source,
        })?;
        let share = ns
            .idmapped_clone(&cpath(share_dir)?, false)
            .map_err(|source| VirtiofsdError::Idmap {
                path: share_dir.to_path_buf(),
                source,
            })?;
        Ok(Self {
            ns,
            mounter,
            share,
            program_dir: cpath(dir)?,
            program_name: Path::new(".").join(name),
        })
    }
}

/// Starts virtiofsd serving `share_dir` (created here) with `entries`
/// mounted into it, on `socket`. The socket is bound here and handed over
/// listening, so a VMM may connect at once: its connection waits in the
/// backlog while virtiofsd starts, and the two start side by side.
///
/// With `ids`, virtiofsd runs unprivileged: as root of a user namespace
/// mapping those host ids, on idmapped mounts (see [`crate::idmap`]). Where
/// that cannot be (a file system that cannot be idmapped, such as tmpfs
/// before Linux 6.3), it runs as root, and the monitor's log says why.
pub fn spawn(
    program: &Path,
    share_dir: &Path,
    entries: &[ShareEntry],
    socket: &Path,
    ids: Option<IdRange>,
) -> Result<Child, VirtiofsdError> {
    std::fs::create_dir_all(share_dir).map_err(|source| VirtiofsdError::Share {
        path: share_dir.to_path_buf(),
        source,
    })?;
    let prepared = ids.map(|range| {
        let unprivileged = Unprivileged::prepare(range, program, share_dir)?;
        let mounts = mounts::prepare(share_dir, entries, Some(&unprivileged.ns))?;
        Ok::<_, VirtiofsdError>((unprivileged, mounts))
    });
    let (unprivileged, mounts) = match prepared {
        Some(Ok((unprivileged, mounts))) => (Some(unprivileged), mounts),
        Some(Err(err)) => {
            tracing::warn!(
                error = &err as &dyn std::error::Error,
                "virtiofsd runs as root"
            );
            (None, mounts::prepare(share_dir, entries, None)?)
        }
        None => (None, mounts::prepare(share_dir, entries, None)?),
    };
    start(program, share_dir, mounts, socket, unprivileged)
}

fn start(
    program: &Path,
    share_dir: &Path,
    mounts: Vec<MountPlan>,
    socket: &Path,
    unprivileged: Option<Unprivileged>,
) -> Result<Child, VirtiofsdError> {
    let share = cpath(share_dir)?;
    let _ = std::fs::remove_file(socket);
    // Ours is dropped on return: virtiofsd then holds the only one, so a
    // VMM connecting to a virtiofsd that died is refused, not left waiting.
    let listener = std::os::unix::net::UnixListener::bind(socket).map_err(|source| {
        VirtiofsdError::Listen {
            path: socket.to_path_buf(),
            source,
        }
    })?;
    let listen_fd = std::os::fd::AsRawFd::as_raw_fd(&listener);
    let filter = refusing_filter()?;
    let mut command = match &unprivileged {
        Some(unprivileged) => {
            let mut command = Command::new(&unprivileged.program_name);
            command.arg0(program);
            command
        }
        None => Command::new(program),
    };
    command
        .arg(format!("--fd={LISTEN_FD}"))
        .arg(format!("--shared-dir={}", share_dir.display()))
        // /etc/hosts changes when peers come and go (it is rewritten in
        // place), and `cp` writes into running containers: `auto`
        // revalidates on open.
        .arg("--cache=auto")
        .arg("--sandbox=namespace")
        // Its own filter (a call outside it kills it), as its default is.
        .arg("--seccomp=kill")
        // Extended attributes in the container (file capabilities, ACLs).
        .arg("--xattr")
        // The entries are mounts of their own; the guest sees one tree.
        .arg("--no-announce-submounts")
        .arg("--log-level=error")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    // SAFETY: the closure runs between fork and exec and only makes system
    // calls on C strings and descriptors prepared above.
    unsafe {
        command.pre_exec(move || {
            // The listening socket, kept open across exec.
            if listen_fd == LISTEN_FD {
                if libc::fcntl(LISTEN_FD, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(listen_fd, LISTEN_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Die with the sandbox's owner, whatever kills it.
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) < 0
            {
                return Err(std::io::Error::last_os_error());
            }
            crate::mount_api::unshare_mounts(libc::MS_PRIVATE)?;
            let null = std::ptr::null();
            // The share itself becomes a mount (made read-only below, once
            // the entries are mounted in it): the guest can create nothing
            // in its root, which lives on the host's /run. Idmapped for an
            // unprivileged virtiofsd, to which it is then its root's.
            match &unprivileged {
                Some(unprivileged) => attach(unprivileged.share.as_fd(), &share)?,
                None => {
                    if libc::mount(
                        share.as_ptr(),
                        share.as_ptr(),
                        null,
                        libc::MS_BIND,
                        null.cast(),
                    ) < 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                }
            }
            mounts::mount_all(&mounts, unprivileged.as_ref().map(|u| &u.mounter))?;
            let read_only = libc::MS_REMOUNT
                | libc::MS_BIND
                | libc::MS_RDONLY
                | libc::MS_NOSUID
                | libc::MS_NODEV;
            if libc::mount(null, share.as_ptr(), null, read_only, null.cast()) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            match &unprivileged {
                Some(unprivileged) => {
                    // Its program is found from here (see `Unprivileged`).
                    if libc::chdir(unprivileged.program_dir.as_ptr()) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    unprivileged.ns.enter()?;
                }
                None => {
                    if libc::chdir(c"/".as_ptr()) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
            }
            // Nothing it executes may gain privileges.
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            filter.load().map_err(std::io::Error::from_raw_os_error)
        });
    }
    let child = command.spawn().map_err(|source| VirtiofsdError::Spawn {
        program: program.to_path_buf(),
        source,
    })?;
    drop(listener);
    Ok(child)
}
