//! The guest's own start-up, done once as PID 1 before any container exists.
//!
//! The kernel starts us on the initramfs (rootfs), which `pivot_root` refuses
//! to leave. So the agent first moves itself onto a tmpfs root (as
//! `switch_root` does) and only then mounts the pseudo file systems. After
//! that, containers can `pivot_root` out of the agent's tree.

use anyhow::{Context, Result};
use nix::mount::{mount, MsFlags};
use nix::unistd::{chdir, chroot};
use std::fs;
use std::path::Path;

/// Where the agent keeps its runtime state (tmpfs).
pub const RUN_DIR: &str = "/run/hull";

/// Mounts one file system, creating its mount point.
fn mount_fs(
    source: &str,
    target: &str,
    fstype: &str,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<()> {
    fs::create_dir_all(target).with_context(|| format!("creating {target}"))?;
    mount(Some(source), target, Some(fstype), flags, data)
        .with_context(|| format!("mounting {fstype} on {target}"))
}

/// Leaves the initramfs for a tmpfs root, so that `pivot_root` works later.
fn move_to_tmpfs_root() -> Result<()> {
    if !is_initramfs_root()? {
        return Ok(());
    }
    let new_root = "/.hull-root";
    mount_fs(
        "hullroot",
        new_root,
        "tmpfs",
        MsFlags::empty(),
        Some("mode=0755"),
    )?;
    chdir(new_root).context("chdir to new root")?;
    mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
        .context("moving new root onto /")?;
    chroot(".").context("chroot into new root")?;
    chdir("/").context("chdir /")?;
    Ok(())
}

/// `RAMFS_MAGIC` from linux/magic.h, which neither libc nor nix exports.
const RAMFS_MAGIC: i64 = 0x8584_58f6;

/// Whether `/` is the kernel's initial rootfs (ramfs or tmpfs named rootfs).
fn is_initramfs_root() -> Result<bool> {
    // /proc is not mounted yet: statfs tells ramfs, and the kernel's rootfs
    // is the only ramfs or tmpfs without a mount source we could have made.
    let stat = nix::sys::statfs::statfs("/").context("statfs /")?;
    let fs_type = stat.filesystem_type();
    Ok(fs_type.0 as i64 == RAMFS_MAGIC || fs_type == nix::sys::statfs::TMPFS_MAGIC)
}

/// Prepares the guest: root, /proc, /sys, /dev, /run, cgroup v2.
pub fn setup_guest() -> Result<()> {
    move_to_tmpfs_root()?;
    let nodev = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_fs("proc", "/proc", "proc", nodev, None)?;
    mount_fs("sysfs", "/sys", "sysfs", nodev, None)?;
    mount_fs(
        "devtmpfs",
        "/dev",
        "devtmpfs",
        MsFlags::MS_NOSUID,
        Some("mode=0755"),
    )?;
    mount_fs(
        "devpts",
        "/dev/pts",
        "devpts",
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )?;
    mount_fs("shm", "/dev/shm", "tmpfs", nodev, Some("mode=1777"))?;
    mount_fs(
        "run",
        "/run",
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
    )?;
    mount_fs(
        "tmp",
        "/tmp",
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777"),
    )?;
    mount_fs(
        "cgroup2",
        "/sys/fs/cgroup",
        "cgroup2",
        nodev,
        Some("nsdelegate"),
    )?;
    fs::create_dir_all(RUN_DIR).context("creating the agent's run dir")?;
    // The kernel configures eth0 itself (`ip=`) and brings up lo only then;
    // containers without a network still get a loopback, as under Docker.
    bring_up_loopback().context("bringing up lo")?;
    // The container's /etc/hosts and friends are the host's business; the
    // guest itself only needs a loopback interface, which the kernel makes.
    if Path::new("/proc/sys/kernel/hostname").exists() {
        // A stable hostname for the agent's own logs; containers set their own.
        let _ = fs::write("/proc/sys/kernel/hostname", "hull");
    }
    report_small_free_blocks();
    Ok(())
}

/// The smallest free block (2^order pages) the guest hands back to the
/// host through free page reporting.
const PAGE_REPORTING_ORDER: u32 = 5;

/// Free page reporting hands back only free blocks of `pageblock_order`
/// pages and more, which Hull's kernel (no huge pages) makes 4 MiB: a VM
/// whose free memory is scattered in smaller blocks keeps it all on the
/// host. The balloon driver sets the order when it registers, before init
/// runs (so not from the kernel's command line); its reports start two
/// seconds later, with this one. `HULL_PAGE_REPORTING_ORDER` (a kernel
/// argument, which the kernel hands init as its environment) overrides it.
fn report_small_free_blocks() {
    let order = std::env::var("HULL_PAGE_REPORTING_ORDER")
        .ok()
        .and_then(|order| order.parse::<u32>().ok())
        .unwrap_or(PAGE_REPORTING_ORDER);
    let path = "/sys/module/page_reporting/parameters/page_reporting_order";
    if let Err(err) = fs::write(path, order.to_string()) {
        tracing::debug!("{path}: {err}");
    }
}

/// A socket for interface ioctls: the agent has no netlink library, and
/// a flag or an MTU needs none.
fn ioctl_socket() -> Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: socket(2) with constant arguments; the fd is owned right away.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: `raw` is a fresh descriptor nobody else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) })
}

/// An `ifreq` naming interface `name` (shorter than IFNAMSIZ).
fn interface_request(name: &str) -> libc::ifreq {
    // SAFETY: an all-zero ifreq is valid.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    // The last byte stays NUL whatever the name's length.
    let room = request.ifr_name.len() - 1;
    for (slot, byte) in request.ifr_name[..room].iter_mut().zip(name.bytes()) {
        *slot = byte as libc::c_char;
    }
    request
}

/// Sets `lo` up.
fn bring_up_loopback() -> Result<()> {
    use std::os::fd::AsRawFd;
    let socket = ioctl_socket()?;
    let mut request = interface_request("lo");
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we pass.
    unsafe {
        if libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut request) < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS as _, &request) < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
    }
    Ok(())
}

/// The `hull.mtu=N` kernel argument: eth0's MTU when it is not 1500 (a
/// CNI plugin's veth under an overlay network, a jumbo-frame bridge). The
/// kernel's `ip=` has no MTU field.
pub fn mtu_from_cmdline(cmdline: &str) -> Option<u32> {
    cmdline
        .split_whitespace()
        .find_map(|arg| arg.strip_prefix("hull.mtu="))
        .and_then(|value| value.parse().ok())
}

/// Sets eth0's MTU.
pub fn set_eth0_mtu(mtu: u32) -> Result<()> {
    use std::os::fd::AsRawFd;
    let socket = ioctl_socket()?;
    let mut request = interface_request("eth0");
    request.ifr_ifru.ifru_mtu = i32::try_from(mtu).context("MTU out of range")?;
    // SAFETY: SIOCSIFMTU reads the ifreq we pass.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFMTU as _, &request) } < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mtu_argument() {
        assert_eq!(
            mtu_from_cmdline("console=ttyS0 hull.mtu=1450 quiet"),
            Some(1450)
        );
        assert_eq!(mtu_from_cmdline("console=ttyS0"), None);
        assert_eq!(mtu_from_cmdline("hull.mtu=lots"), None);
    }

    #[test]
    fn long_interface_names_keep_their_nul() {
        let request = interface_request("a-very-long-interface-name");
        assert_eq!(request.ifr_name[request.ifr_name.len() - 1], 0);
    }
}
