//! Shifted identities: how virtiofsd serves a container's files without
//! being root on the host.
//!
//! Each sandbox's virtiofsd runs as root of a user namespace of its own,
//! whose ids `0..65536` are the host's `base..base + 65536` ([`IdRange`]):
//! unprivileged ids no host file belongs to. It sees the container's files
//! through idmapped mounts (mount_setattr(2), `MOUNT_ATTR_IDMAP`) with the
//! same mapping, so a file the image gives uid 0 is uid 0 to virtiofsd and
//! to the guest, and what the guest writes as uid 1000 lands on the disk as
//! 1000. (This is how Kata and Podman hand rootless or remapped containers
//! their files.)
//!
//! overlayfs cannot be idmapped itself, but its layers can (Linux 5.19):
//! the overlay is mounted on idmapped views of its layers, by a mounter
//! whose file-system identity is the range's base ([`FsIdentity`]), so its
//! own work (copy-up, whiteouts, the work directory) maps to the disk's ids
//! as the guest's writes do. A host process that writes through the
//! running overlay (`cp` into a running container) takes that identity too.
//!
//! Guest ids from 65536 up are not mapped: files owned by them read as
//! 65534 in the guest, and the guest cannot create them (as with Docker's
//! `userns-remap` and its default range).

use crate::capabilities::Capabilities;
use crate::mount_api;
use std::ffi::CStr;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// The first host id of the ranges virtiofsd processes run as; above the
/// VMMs' ids ([`crate::hypervisor::VMM_ID_BASE`]) and systemd's ranges.
pub const ID_BASE: u32 = 0x8000_0000;

/// How many ids a range maps: the guest's 0..65536.
pub const ID_COUNT: u32 = 0x1_0000;

/// How many ranges fit between [`ID_BASE`] and the invalid id `u32::MAX`.
const SLOTS: u32 = (u32::MAX - ID_BASE) / ID_COUNT;

/// One sandbox's ids on the host: `base..base + ID_COUNT` are its
/// namespace's `0..ID_COUNT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    base: u32,
}

impl IdRange {
    /// The range of the sandbox whose monitor is `monitor_pid`. Distinct
    /// for every two live monitors while pids stay below 32767 (the
    /// kernel's default `pid_max`); above, two sandboxes may share one,
    /// each still in pid, mount and network namespaces of its own.
    pub fn for_monitor(monitor_pid: u32) -> Self {
        Self {
            base: ID_BASE + (monitor_pid % SLOTS) * ID_COUNT,
        }
    }

    /// The range whose first host id is `base`, if it is one of Hull's.
    pub fn from_base(base: u32) -> Option<Self> {
        let slot = base.checked_sub(ID_BASE)? / ID_COUNT;
        let range = Self {
            base: ID_BASE + slot * ID_COUNT,
        };
        (slot < SLOTS && range.base == base).then_some(range)
    }

    /// The host id of the namespace's root.
    pub fn base(&self) -> u32 {
        self.base
    }

    /// The host id of the namespace's `id`, if it is mapped.
    pub fn to_host(&self, id: u32) -> Option<u32> {
        (id < ID_COUNT).then(|| self.base + id)
    }

    /// The range process `pid`'s user namespace maps, if it is one of
    /// Hull's (`None` for the host's).
    pub fn of_process(pid: u32) -> std::io::Result<Option<Self>> {
        Ok(Self::parse_map(&std::fs::read_to_string(format!(
            "/proc/{pid}/uid_map"
        ))?))
    }

    /// The line of `/proc/PID/uid_map` (and `gid_map`) that makes it.
    fn map_line(&self) -> String {
        format!("0 {} {ID_COUNT}\n", self.base)
    }

    /// The range a `/proc/PID/uid_map` shows, if it is one of Hull's.
    fn parse_map(text: &str) -> Option<Self> {
        let mut lines = text.lines();
        let fields: Vec<u32> = lines
            .next()?
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        match (fields.as_slice(), lines.next()) {
            ([0, base, count], None) if *count == ID_COUNT => Self::from_base(*base),
            _ => None,
        }
    }
}

/// A user namespace mapping an [`IdRange`], held by a descriptor.
#[derive(Debug)]
pub struct UserNamespace {
    fd: OwnedFd,
    range: IdRange,
}

impl UserNamespace {
    /// Makes a user namespace mapping `range` (for uids and gids): a child
    /// makes it and waits while its maps are written and the namespace is
    /// opened here, then exits.
    pub fn create(range: IdRange) -> std::io::Result<Self> {
        let (ready_read, ready_write) = nix::unistd::pipe()?;
        let (go_read, go_write) = nix::unistd::pipe()?;
        let mut ready_read = std::fs::File::from(ready_read);
        let mut go_write = std::fs::File::from(go_write);
        let ready_fd = ready_write.as_raw_fd();
        let go_fd = go_read.as_raw_fd();
        // SAFETY: the child makes only async-signal-safe calls (unshare,
        // write, read, _exit) before it exits.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if pid == 0 {
            // SAFETY: as above; the child never returns into Rust code.
            unsafe {
                let made = libc::unshare(libc::CLONE_NEWUSER) == 0;
                let byte = [u8::from(made)];
                libc::write(ready_fd, byte.as_ptr().cast(), 1);
                let mut go = [0u8; 1];
                libc::read(go_fd, go.as_mut_ptr().cast(), 1);
                libc::_exit(0);
            }
        }
        drop(ready_write);
        drop(go_read);
        let result = (|| {
            let mut made = [0u8; 1];
            ready_read.read_exact(&mut made)?;
            if made[0] != 1 {
                return Err(std::io::Error::other(
                    "the kernel refused a new user namespace (user.max_user_namespaces?)",
                ));
            }
            let line = range.map_line();
            std::fs::write(format!("/proc/{pid}/uid_map"), &line)?;
            std::fs::write(format!("/proc/{pid}/gid_map"), &line)?;
            let file = std::fs::File::open(format!("/proc/{pid}/ns/user"))?;
            Ok(Self {
                fd: OwnedFd::from(file),
                range,
            })
        })();
        let _ = go_write.write_all(&[1]);
        drop(go_write);
        let mut status = 0;
        // SAFETY: waiting for the child forked above.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        result
    }

    /// The user namespace process `pid` runs in, if it maps one of Hull's
    /// ranges (`None` for the host's).
    pub fn of_process(pid: u32) -> std::io::Result<Option<Self>> {
        let Some(range) = IdRange::of_process(pid)? else {
            return Ok(None);
        };
        // (A namespace's map, once written, never changes.)
        let file = std::fs::File::open(format!("/proc/{pid}/ns/user"))?;
        Ok(Some(Self {
            fd: OwnedFd::from(file),
            range,
        }))
    }

    /// The ids it maps.
    pub fn range(&self) -> IdRange {
        self.range
    }

    /// The namespace's descriptor (for setns(2)).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// A detached copy of the mount at `path` (with the mounts below it if
    /// `recursive`) seen through this namespace's mapping, to attach with
    /// [`mount_api::attach`]. Fails with `EINVAL` where the file system cannot be
    /// idmapped (overlayfs itself; tmpfs before Linux 6.3).
    pub fn idmapped_clone(&self, path: &CStr, recursive: bool) -> std::io::Result<OwnedFd> {
        let tree = mount_api::clone_tree(path, recursive)?;
        mount_api::idmap(tree.as_fd(), self.fd(), recursive)?;
        Ok(tree)
    }

    /// Makes the calling process root of this namespace: its host ids
    /// become the range's base, no supplementary groups.
    ///
    /// # Safety
    /// Async-signal-safe, for a single-threaded child between fork and
    /// exec (setns(2) refuses a user namespace to a threaded process).
    pub unsafe fn enter(&self) -> std::io::Result<()> {
        let check = |rc: libc::c_int| {
            if rc < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        // SAFETY: plain system calls on a descriptor we own.
        unsafe {
            check(libc::setns(self.fd.as_raw_fd(), libc::CLONE_NEWUSER))?;
            check(libc::setgroups(0, std::ptr::null()))?;
            check(libc::setresgid(0, 0, 0))?;
            check(libc::setresuid(0, 0, 0))
        }
    }
}

/// A file-system identity a thread takes for a while: the host ids of an
/// [`IdRange`]'s root, keeping its capabilities. Files it creates belong to
/// the range's root; through an idmapped mount of the range, to uid 0.
#[derive(Clone, Copy)]
pub struct FsIdentity {
    id: u32,
    /// The capabilities to restore: setfsuid(2) drops the file-system ones.
    caps: Capabilities,
}

impl FsIdentity {
    /// `range`'s root, with the calling thread's capabilities.
    pub fn of(range: IdRange) -> std::io::Result<Self> {
        Ok(Self {
            id: range.base(),
            caps: Capabilities::current()?.all_effective(),
        })
    }

    /// Runs `work` with this file-system identity on the calling thread,
    /// then returns to root's. Async-signal-safe when `work` is.
    ///
    /// # Safety
    /// The calling thread must be root's (fsuid 0) and must not be shared
    /// with other work meanwhile (a pool's thread would carry it).
    pub unsafe fn scope<T>(&self, work: impl FnOnce() -> T) -> std::io::Result<T> {
        // SAFETY: per-thread identity calls.
        unsafe {
            libc::setfsgid(self.id);
            libc::setfsuid(self.id);
            // setfsuid(2) returns the previous id: ask again to see it took.
            if libc::setfsuid(self.id) as u32 != self.id {
                libc::setfsgid(0);
                return Err(std::io::Error::from_raw_os_error(libc::EPERM));
            }
            if let Err(err) = self.caps.apply() {
                libc::setfsuid(0);
                libc::setfsgid(0);
                return Err(err);
            }
        }
        let output = work();
        // SAFETY: as above; back to root, whose file-system capabilities
        // setfsuid(2) raises again.
        unsafe {
            libc::setfsuid(0);
            libc::setfsgid(0);
        }
        Ok(output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_distinct_below_the_default_pid_max_and_valid() {
        let first = IdRange::for_monitor(1);
        let last = IdRange::for_monitor(32766);
        assert_eq!(first.base(), ID_BASE + ID_COUNT);
        assert_ne!(first, IdRange::for_monitor(2));
        assert_ne!(first, last);
        // The last id of any range is below the invalid id.
        for pid in [0, 1, 32766, 32767, 4_194_303, u32::MAX] {
            let range = IdRange::for_monitor(pid);
            assert!(range.base().checked_add(ID_COUNT).is_some());
            assert_eq!(IdRange::from_base(range.base()), Some(range));
        }
    }

    #[test]
    fn maps_only_the_guests_first_ids() {
        let range = IdRange::for_monitor(7);
        assert_eq!(range.to_host(0), Some(range.base()));
        assert_eq!(range.to_host(65535), Some(range.base() + 65535));
        assert_eq!(range.to_host(65536), None);
    }

    #[test]
    fn the_hosts_namespace_is_not_a_range() {
        assert_eq!(IdRange::of_process(std::process::id()).unwrap(), None);
        assert!(UserNamespace::of_process(std::process::id())
            .unwrap()
            .is_none());
    }

    #[test]
    fn reads_back_its_own_maps_only() {
        let range = IdRange::for_monitor(42);
        assert_eq!(IdRange::parse_map(&range.map_line()), Some(range));
        assert_eq!(
            IdRange::parse_map("         0          0 4294967295\n"),
            None
        );
        assert_eq!(IdRange::parse_map("0 1000 1\n"), None);
        assert_eq!(IdRange::parse_map("0 2147549184 65536\n1 2 3\n"), None);
        assert_eq!(IdRange::parse_map(""), None);
        assert_eq!(IdRange::parse_map("0 x 65536"), None);
    }
}
