//! Starting a container's first process in its own namespaces.
//!
//! The process is made with `clone3(2)`, in its cgroup from birth (see
//! clone.rs) and with new mount, pid, uts and ipc namespaces. Between
//! `clone` and `execve` the child may only make system calls: the agent has
//! other threads' state (allocator locks, the tokio reactor) copied into it
//! in an unknown condition. So everything the child
//! needs is computed here first, as C strings and plain numbers, in a
//! [`ChildPlan`]; [`child_main`] walks it with libc calls and no allocation.
//!
//! Parent and child talk over two pipes. `report` (close-on-exec): the
//! child writes a [`Report`] when a step fails; end of file means `execve`
//! succeeded. A child that pauses before `execve` (a container's first
//! process, which `start` lets go later, and any process with a terminal)
//! also reports when it is ready and then waits on `sync` for the parent's
//! [`SYNC_START`]. An exec without a terminal runs straight through: one
//! round trip between agent and child fewer.
//!
//! A process with a terminal opens it itself, from the container's
//! /dev/ptmx once it is in the container's mount namespace, so that the
//! terminal is on the container's own devpts (`tty` names a path that exists
//! there). Its [`Stage::Ready`] report carries the master's descriptor
//! number, and the parent copies the master out with `pidfd_getfd(2)`
//! before letting it `execve` (which closes the child's copy).

use std::ffi::{CStr, CString};
use std::os::fd::RawFd;

/// Parent → child: go on and `execve`.
pub const SYNC_START: u8 = b'S';

/// The step a [`Report`] speaks of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Stage {
    /// Set-up is complete; the child waits for [`SYNC_START`] (only a
    /// child whose plan says `pause_before_exec`).
    Ready = 0,
    /// Connecting stdio.
    Stdio = 1,
    /// Waiting for the parent.
    Sync = 2,
    /// Entering a new cgroup namespace.
    CgroupNamespace = 3,
    /// Mounting (the index of the mount is in the report's `detail`).
    Mount = 4,
    /// Setting the hostname.
    Hostname = 5,
    /// Switching to the container's root.
    PivotRoot = 6,
    /// Masking or write-protecting paths.
    ProtectPaths = 7,
    /// Setting resource limits.
    Rlimit = 8,
    /// Setting no_new_privs.
    NoNewPrivileges = 9,
    /// Switching uid, gid and supplementary groups.
    User = 10,
    /// Setting capabilities.
    Capabilities = 11,
    /// Changing to the working directory.
    Cwd = 12,
    /// `execve` of the command.
    Exec = 13,
    /// Joining a running container's namespaces (exec).
    JoinNamespace = 14,
    /// Opening the pseudo-terminal and making it the controlling terminal.
    Terminal = 15,
    /// Loading the seccomp filter.
    Seccomp = 16,
}

impl Stage {
    /// Decodes a stage number from the child; unknown numbers are `None`.
    pub fn from_u32(value: u32) -> Option<Self> {
        use Stage::*;
        [
            Ready,
            Stdio,
            Sync,
            CgroupNamespace,
            Mount,
            Hostname,
            PivotRoot,
            ProtectPaths,
            Rlimit,
            NoNewPrivileges,
            User,
            Capabilities,
            Cwd,
            Exec,
            JoinNamespace,
            Terminal,
            Seccomp,
        ]
        .into_iter()
        .find(|stage| *stage as u32 == value)
    }

    /// What the step does, for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Stage::Ready => "ready",
            Stage::Stdio => "connecting stdio",
            Stage::Sync => "waiting for the agent",
            Stage::CgroupNamespace => "creating the cgroup namespace",
            Stage::Mount => "mounting",
            Stage::Hostname => "setting the hostname",
            Stage::PivotRoot => "switching to the container's root",
            Stage::ProtectPaths => "protecting masked and read-only paths",
            Stage::Rlimit => "setting rlimits",
            Stage::NoNewPrivileges => "setting no_new_privs",
            Stage::User => "switching user",
            Stage::Capabilities => "setting capabilities",
            Stage::Cwd => "changing to the working directory",
            Stage::Exec => "exec",
            Stage::JoinNamespace => "joining the container's namespaces",
            Stage::Terminal => "opening the terminal",
            Stage::Seccomp => "loading the seccomp filter",
        }
    }
}

/// What the child writes on the report pipe: 12 bytes, little endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// The step.
    pub stage: u32,
    /// `errno` of the failure, 0 for [`Stage::Ready`].
    pub errno: i32,
    /// Which item of the step failed (the mount's index, the exec
    /// candidate); for [`Stage::Ready`] of a process with a terminal, the
    /// child's descriptor of the terminal's master.
    pub detail: u32,
}

impl Report {
    /// Size on the pipe.
    pub const LEN: usize = 12;

    fn to_bytes(self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..4].copy_from_slice(&self.stage.to_le_bytes());
        out[4..8].copy_from_slice(&self.errno.to_le_bytes());
        out[8..].copy_from_slice(&self.detail.to_le_bytes());
        out
    }

    /// Decodes a report read from the pipe.
    pub fn from_bytes(bytes: &[u8; Self::LEN]) -> Self {
        let word = |i: usize| [bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]];
        Self {
            stage: u32::from_le_bytes(word(0)),
            errno: i32::from_le_bytes(word(4)),
            detail: u32::from_le_bytes(word(8)),
        }
    }
}

/// What a mount target is, so the child can create it when an earlier
/// mount of the same container (a tmpfs on /dev) has hidden the one the
/// agent prepared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountPoint {
    /// A directory.
    Dir,
    /// A file (bind mounts of files and devices).
    File,
}

/// One `mount(2)` call, paths absolute in the agent's mount namespace.
#[derive(Debug)]
pub struct MountStep {
    /// What the target is.
    pub point: MountPoint,
    /// Source, or `None` for pseudo file systems that take none.
    pub source: Option<CString>,
    /// Target.
    pub target: CString,
    /// File system type, `None` for bind mounts.
    pub fstype: Option<CString>,
    /// `MS_*` flags.
    pub flags: libc::c_ulong,
    /// File-system-specific options.
    pub data: Option<CString>,
    /// For bind mounts with flags such as read-only: the flags of the
    /// remount that applies them (a bind mount ignores them at first).
    pub remount_flags: Option<libc::c_ulong>,
}

/// Capability sets as bit masks over capability numbers.
#[derive(Debug, Default, Clone, Copy)]
pub struct CapabilitySets {
    /// Bounding set.
    pub bounding: u64,
    /// Effective set.
    pub effective: u64,
    /// Permitted set.
    pub permitted: u64,
    /// Inheritable set.
    pub inheritable: u64,
    /// Ambient set.
    pub ambient: u64,
    /// The highest capability the kernel knows (`/proc/sys/kernel/cap_last_cap`).
    pub last_cap: u32,
}

/// Everything the child does, computed before `clone`.
#[derive(Debug)]
pub struct ChildPlan {
    /// Descriptors that become the child's 0, 1 and 2.
    pub stdio: [RawFd; 3],
    /// Read end of the sync pipe.
    pub sync_read: RawFd,
    /// Report [`Stage::Ready`] and wait for [`SYNC_START`] before `execve`.
    pub pause_before_exec: bool,
    /// Write end of the report pipe (close-on-exec).
    pub report_write: RawFd,
    /// For an exec: namespaces to join `(fd, CLONE_NEW*)`, instead of the
    /// container set-up (mounts, root, hostname, protected paths).
    pub join_namespaces: Vec<(RawFd, libc::c_int)>,
    /// Mounts, in order.
    pub mounts: Vec<MountStep>,
    /// `(target, link)` symlinks made after the mounts (/dev/fd and friends).
    pub symlinks: Vec<(CString, CString)>,
    /// The container's root, already mounted.
    pub rootfs: CString,
    /// Remount the root read-only after switching to it.
    pub readonly_root: bool,
    /// Hostname, if the spec sets one.
    pub hostname: Option<CString>,
    /// Paths hidden from the container (inside its root).
    pub masked_paths: Vec<CString>,
    /// Paths made read-only (inside its root).
    pub readonly_paths: Vec<CString>,
    /// `(resource, soft, hard)` for `setrlimit`.
    pub rlimits: Vec<(libc::c_int, u64, u64)>,
    /// Set no_new_privs.
    pub no_new_privileges: bool,
    /// uid.
    pub uid: libc::uid_t,
    /// gid.
    pub gid: libc::gid_t,
    /// Supplementary groups.
    pub additional_gids: Vec<libc::gid_t>,
    /// Capabilities.
    pub capabilities: CapabilitySets,
    /// Working directory inside the container.
    pub cwd: CString,
    /// Full paths to try in order (the command, or its `$PATH` lookups).
    pub exec_candidates: Vec<CString>,
    /// argv, its pointer array null-terminated.
    pub argv: Vec<CString>,
    /// envp, its pointer array null-terminated.
    pub envp: Vec<CString>,
    /// Give the process a pseudo-terminal of this initial size as its
    /// stdin, stdout, stderr and controlling terminal (replacing `stdio`).
    pub terminal: Option<libc::winsize>,
    /// The seccomp filter: loaded last with no_new_privs, else before the
    /// switch of user (loading one needs CAP_SYS_ADMIN then), as runc does.
    pub seccomp: Option<std::sync::Arc<super::seccomp::Filter>>,
}

/// Null-terminated pointer array for `execve`; borrows `strings`.
pub fn pointer_array(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Writes a report; the child cannot do more than try.
fn report(fd: RawFd, stage: Stage, errno: i32, detail: u32) {
    let bytes = Report {
        stage: stage as u32,
        errno,
        detail,
    }
    .to_bytes();
    // SAFETY: writing a stack buffer of its own length to an fd.
    unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
}

fn opt_ptr(value: &Option<CString>) -> *const libc::c_char {
    value.as_ref().map_or(std::ptr::null(), |s| s.as_ptr())
}

/// Reads one byte from the sync pipe.
fn wait_for(fd: RawFd, expected: u8) -> Result<(), i32> {
    let mut byte = 0u8;
    loop {
        // SAFETY: reading one byte into a stack variable.
        let n = unsafe { libc::read(fd, (&mut byte as *mut u8).cast(), 1) };
        match n {
            1 if byte == expected => return Ok(()),
            1 => return Err(libc::EPROTO),
            0 => return Err(libc::EPIPE),
            _ if errno() == libc::EINTR => continue,
            _ => return Err(errno()),
        }
    }
}

/// Runs in the cloned child. Only system calls from here on: see the module docs.
/// Returns the exit code of a child whose set-up failed.
pub fn child_main(
    plan: &ChildPlan,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
) -> isize {
    let fail = |stage: Stage, err: i32, detail: u32| -> isize {
        report(plan.report_write, stage, err, detail);
        if stage == Stage::Exec && err == libc::ENOENT {
            127
        } else if stage == Stage::Exec {
            126
        } else {
            1
        }
    };
    // SAFETY (whole block): plain system calls on pointers into `plan`,
    // which the parent built and which this copied address space keeps alive.
    unsafe {
        for (target, &fd) in plan.stdio.iter().enumerate() {
            if libc::dup2(fd, target as libc::c_int) < 0 {
                return fail(Stage::Stdio, errno(), target as u32);
            }
        }
        libc::setsid();
        if plan.join_namespaces.is_empty() {
            if let Err((stage, err, detail)) = set_up_container(plan) {
                return fail(stage, err, detail);
            }
        } else {
            for (index, &(fd, kind)) in plan.join_namespaces.iter().enumerate() {
                if libc::setns(fd, kind) < 0 {
                    return fail(Stage::JoinNamespace, errno(), index as u32);
                }
            }
        }
        // Before switching user: the terminal is handed to the process's user.
        let mut terminal_master: RawFd = -1;
        if let Some(size) = &plan.terminal {
            match open_terminal(size, plan.uid) {
                Ok(master) => terminal_master = master,
                Err(err) => return fail(Stage::Terminal, err, 0),
            }
        }
        for (index, &(resource, soft, hard)) in plan.rlimits.iter().enumerate() {
            let limit = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            // prlimit64 itself (see switch_user for why not libc's wrapper).
            let no_old: *mut libc::rlimit = std::ptr::null_mut();
            if libc::syscall(libc::SYS_prlimit64, 0, resource, &limit, no_old) < 0 {
                return fail(Stage::Rlimit, errno(), index as u32);
            }
        }
        if let (Some(filter), false) = (&plan.seccomp, plan.no_new_privileges) {
            if let Err(err) = filter.load() {
                return fail(Stage::Seccomp, err, 0);
            }
        }
        if let Err(err) = switch_user(plan) {
            return fail(Stage::User, err, 0);
        }
        if let Err(err) = apply_capabilities(&plan.capabilities) {
            return fail(Stage::Capabilities, err, 0);
        }
        if plan.no_new_privileges && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 {
            return fail(Stage::NoNewPrivileges, errno(), 0);
        }
        if libc::chdir(plan.cwd.as_ptr()) < 0 {
            return fail(Stage::Cwd, errno(), 0);
        }
        if plan.pause_before_exec {
            report(
                plan.report_write,
                Stage::Ready,
                0,
                terminal_master.max(0) as u32,
            );
            if let Err(err) = wait_for(plan.sync_read, SYNC_START) {
                return fail(Stage::Sync, err, 0);
            }
        }
        libc::close(plan.sync_read);
        if let (Some(filter), true) = (&plan.seccomp, plan.no_new_privileges) {
            if let Err(err) = filter.load() {
                return fail(Stage::Seccomp, err, 0);
            }
        }
        // Try each candidate as a shell's PATH search does: a later
        // candidate may succeed after EACCES; ENOENT alone means not found.
        let mut last_err = libc::ENOENT;
        let mut failed_index = 0;
        for (index, candidate) in plan.exec_candidates.iter().enumerate() {
            libc::execve(candidate.as_ptr(), argv.as_ptr(), envp.as_ptr());
            let err = errno();
            if err != libc::ENOENT && err != libc::ENOTDIR {
                last_err = err;
                failed_index = index;
            }
        }
        fail(Stage::Exec, last_err, failed_index as u32)
    }
}

/// Opens a pseudo-terminal from the container's /dev/ptmx, sets its size,
/// gives the slave to `uid` (as runc does, so the user can reopen its tty)
/// and makes it this session's controlling terminal and stdin, stdout and
/// stderr. Returns the master (close-on-exec), for the parent to copy.
unsafe fn open_terminal(size: &libc::winsize, uid: libc::uid_t) -> Result<RawFd, i32> {
    let master = libc::open(
        c"/dev/ptmx".as_ptr(),
        libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
    );
    if master < 0 {
        return Err(errno());
    }
    let unlock: libc::c_int = 0;
    if libc::ioctl(master, libc::TIOCSPTLCK, &unlock) < 0
        || libc::ioctl(master, libc::TIOCSWINSZ, size) < 0
    {
        return Err(errno());
    }
    // The peer by descriptor, not by /dev/pts/N path: no path lookup to race.
    let slave = libc::ioctl(master, libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY);
    if slave < 0 {
        return Err(errno());
    }
    // gid stays devpts's (its gid= option), as runc leaves it.
    if libc::fchown(slave, uid, libc::gid_t::MAX) < 0 {
        return Err(errno());
    }
    // The child called setsid(), so it leads a session without a terminal.
    if libc::ioctl(slave, libc::TIOCSCTTY, 0) < 0 {
        return Err(errno());
    }
    for target in 0..3 {
        if libc::dup2(slave, target) < 0 {
            return Err(errno());
        }
    }
    if slave > 2 {
        libc::close(slave);
    }
    Ok(master)
}

/// A first process's own container: cgroup namespace, mounts, root,
/// hostname, protected paths. Returns the failed step.
unsafe fn set_up_container(plan: &ChildPlan) -> Result<(), (Stage, i32, u32)> {
    if libc::unshare(libc::CLONE_NEWCGROUP) < 0 {
        return Err((Stage::CgroupNamespace, errno(), 0));
    }
    // Nothing mounted from here on may leak back into the agent's tree.
    if libc::mount(
        std::ptr::null(),
        c"/".as_ptr(),
        std::ptr::null(),
        libc::MS_REC | libc::MS_PRIVATE,
        std::ptr::null(),
    ) < 0
    {
        return Err((Stage::Mount, errno(), u32::MAX));
    }
    for (index, step) in plan.mounts.iter().enumerate() {
        if let Err(err) = make_mount_point(step) {
            return Err((Stage::Mount, err, index as u32));
        }
        let data = opt_ptr(&step.data);
        if libc::mount(
            opt_ptr(&step.source),
            step.target.as_ptr(),
            opt_ptr(&step.fstype),
            step.flags,
            data.cast(),
        ) < 0
        {
            return Err((Stage::Mount, errno(), index as u32));
        }
        if let Some(flags) = step.remount_flags {
            if libc::mount(
                std::ptr::null(),
                step.target.as_ptr(),
                std::ptr::null(),
                flags,
                std::ptr::null(),
            ) < 0
            {
                return Err((Stage::Mount, errno(), index as u32));
            }
        }
    }
    for (index, (target, link)) in plan.symlinks.iter().enumerate() {
        if libc::symlink(target.as_ptr(), link.as_ptr()) < 0 && errno() != libc::EEXIST {
            return Err((Stage::Mount, errno(), (plan.mounts.len() + index) as u32));
        }
    }
    if let Some(hostname) = &plan.hostname {
        if libc::sethostname(hostname.as_ptr(), hostname.as_bytes().len()) < 0 {
            return Err((Stage::Hostname, errno(), 0));
        }
    }
    if libc::chdir(plan.rootfs.as_ptr()) < 0
        || libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) < 0
        || libc::umount2(c".".as_ptr(), libc::MNT_DETACH) < 0
        || libc::chdir(c"/".as_ptr()) < 0
    {
        return Err((Stage::PivotRoot, errno(), 0));
    }
    if plan.readonly_root
        && libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY,
            std::ptr::null(),
        ) < 0
    {
        return Err((Stage::PivotRoot, errno(), 1));
    }
    for (index, path) in plan.masked_paths.iter().enumerate() {
        if let Err(err) = mask_path(path) {
            return Err((Stage::ProtectPaths, err, index as u32));
        }
    }
    for (index, path) in plan.readonly_paths.iter().enumerate() {
        if let Err(err) = make_readonly(path) {
            return Err((
                Stage::ProtectPaths,
                err,
                (plan.masked_paths.len() + index) as u32,
            ));
        }
    }
    Ok(())
}

/// Creates a mount target if it is missing (EEXIST is fine).
unsafe fn make_mount_point(step: &MountStep) -> Result<(), i32> {
    let result = match step.point {
        MountPoint::Dir => libc::mkdir(step.target.as_ptr(), 0o755),
        MountPoint::File => {
            let fd = libc::open(
                step.target.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                0o644,
            );
            if fd >= 0 {
                libc::close(fd);
            }
            fd
        }
    };
    if result < 0 && errno() != libc::EEXIST {
        return Err(errno());
    }
    Ok(())
}

/// Hides a path: a read-only empty tmpfs over a directory, /dev/null over anything else.
unsafe fn mask_path(path: &CStr) -> Result<(), i32> {
    let mut stat: libc::stat = std::mem::zeroed();
    if libc::lstat(path.as_ptr(), &mut stat) < 0 {
        return match errno() {
            libc::ENOENT => Ok(()),
            err => Err(err),
        };
    }
    let result = if stat.st_mode & libc::S_IFMT == libc::S_IFDIR {
        libc::mount(
            c"tmpfs".as_ptr(),
            path.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_RDONLY,
            std::ptr::null(),
        )
    } else {
        libc::mount(
            c"/dev/null".as_ptr(),
            path.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    if result < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

/// Bind-mounts a path over itself read-only.
unsafe fn make_readonly(path: &CStr) -> Result<(), i32> {
    if libc::mount(
        path.as_ptr(),
        path.as_ptr(),
        std::ptr::null(),
        libc::MS_BIND | libc::MS_REC,
        std::ptr::null(),
    ) < 0
    {
        return match errno() {
            libc::ENOENT => Ok(()),
            err => Err(err),
        };
    }
    let flags = libc::MS_BIND
        | libc::MS_REMOUNT
        | libc::MS_RDONLY
        | libc::MS_NOSUID
        | libc::MS_NODEV
        | libc::MS_NOEXEC;
    if libc::mount(
        std::ptr::null(),
        path.as_ptr(),
        std::ptr::null(),
        flags,
        std::ptr::null(),
    ) < 0
    {
        return Err(errno());
    }
    Ok(())
}

/// Drops the bounding set, then switches gid, groups and uid keeping capabilities.
unsafe fn switch_user(plan: &ChildPlan) -> Result<(), i32> {
    let caps = &plan.capabilities;
    for cap in 0..=caps.last_cap.min(63) {
        if caps.bounding & (1 << cap) == 0
            && libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) < 0
            && errno() != libc::EINVAL
        {
            return Err(errno());
        }
    }
    if libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0 {
        return Err(errno());
    }
    // The system calls themselves, not libc's wrappers: those change the
    // ids of every thread of the process, and musl signals each thread in
    // its thread list to do so. This child has one thread but a copy of the
    // agent's list, whose thread ids mean other processes here.
    let (gid, uid) = (plan.gid as libc::c_long, plan.uid as libc::c_long);
    let groups = plan.additional_gids.len() as libc::c_long;
    if libc::syscall(libc::SYS_setgroups, groups, plan.additional_gids.as_ptr()) < 0 {
        return Err(errno());
    }
    if libc::syscall(libc::SYS_setresgid, gid, gid, gid) < 0
        || libc::syscall(libc::SYS_setresuid, uid, uid, uid) < 0
    {
        return Err(errno());
    }
    if libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0 {
        return Err(errno());
    }
    Ok(())
}

/// `struct __user_cap_header_struct` for capset(2).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct` for capset(2).
#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Sets the effective, permitted and inheritable sets, then the ambient set.
unsafe fn apply_capabilities(caps: &CapabilitySets) -> Result<(), i32> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let split = |mask: u64| (mask as u32, (mask >> 32) as u32);
    let (e0, e1) = split(caps.effective);
    let (p0, p1) = split(caps.permitted);
    let (i0, i1) = split(caps.inheritable);
    let data = [
        CapData {
            effective: e0,
            permitted: p0,
            inheritable: i0,
        },
        CapData {
            effective: e1,
            permitted: p1,
            inheritable: i1,
        },
    ];
    if libc::syscall(
        libc::SYS_capset,
        &mut header as *mut CapHeader,
        data.as_ptr(),
    ) < 0
    {
        return Err(errno());
    }
    for cap in 0..=caps.last_cap.min(63) {
        if caps.ambient & (1 << cap) != 0
            && libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                cap as libc::c_ulong,
                0,
                0,
            ) < 0
        {
            return Err(errno());
        }
    }
    Ok(())
}

/// Capability names in kernel numbering (capability.h), CAP_CHOWN = 0.
pub const CAPABILITY_NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The bit of a capability given by name (`CAP_CHOWN`), if the name is known.
pub fn capability_bit(name: &str) -> Option<u64> {
    CAPABILITY_NAMES
        .iter()
        .position(|known| *known == name)
        .map(|index| 1u64 << index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_round_trip() {
        let report = Report {
            stage: Stage::Exec as u32,
            errno: libc::ENOENT,
            detail: 3,
        };
        assert_eq!(Report::from_bytes(&report.to_bytes()), report);
        assert_eq!(Stage::from_u32(13), Some(Stage::Exec));
        assert_eq!(Stage::from_u32(15), Some(Stage::Terminal));
        assert_eq!(Stage::from_u32(99), None);
    }

    #[test]
    fn capability_numbers_match_the_kernel() {
        assert_eq!(capability_bit("CAP_CHOWN"), Some(1));
        assert_eq!(capability_bit("CAP_SYS_ADMIN"), Some(1 << 21));
        assert_eq!(capability_bit("CAP_CHECKPOINT_RESTORE"), Some(1 << 40));
        assert_eq!(capability_bit("CAP_NOPE"), None);
    }
}
