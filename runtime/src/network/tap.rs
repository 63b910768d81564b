//! Tap devices: the host end of a guest's virtio-net NIC.
//!
//! A tap is made with the `TUNSETIFF` ioctl on `/dev/net/tun` (netlink cannot
//! create one) and made persistent (`TUNSETPERSIST`), so it outlives the file
//! descriptor: the VMM can then either open it again by name
//! (`-netdev tap,ifname=NAME`) or be handed the descriptor Hull kept.
//! Persistent taps are removed explicitly ([`delete_tap`]) or by the stale
//! cleanup after a crash.

use super::error::{NetworkError, Result};
use super::names::check_ifname;
use super::netlink::Netlink;
use std::fs::OpenOptions;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// `struct ifreq` as `TUNSETIFF` reads it: the name, the flags, and padding
/// up to the union's full size (the kernel copies all 40 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
struct IfReqFlags {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

impl IfReqFlags {
    /// A request for tap `name` (checked by the caller) with `flags`; the
    /// flags all fit in 16 bits (IFF_TUN_EXCL is 0x8000), and the kernel
    /// reads this field as an unsigned short.
    fn new(name: &str, flags: libc::c_int) -> Self {
        let mut request = Self {
            name: [0; libc::IFNAMSIZ],
            flags: flags as u16 as libc::c_short,
            _pad: [0; 22],
        };
        request.name[..name.len()].copy_from_slice(name.as_bytes());
        request
    }
}

/// Opening an existing tap by name, prepared ahead for a child between
/// `fork` and `exec`: a VMM that will not have the privilege to open it
/// itself gets the descriptor (in the network namespace the tap is in).
#[derive(Clone, Copy)]
pub struct TapOpener {
    request: IfReqFlags,
}

impl TapOpener {
    /// Prepares to open tap `name`, its frames with a virtio-net header
    /// (as QEMU opens taps; it reads the flags back from the descriptor).
    pub fn new(name: &str) -> Result<Self> {
        check_ifname(name)?;
        Ok(Self {
            request: IfReqFlags::new(name, libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR),
        })
    }

    /// Opens the tap; the descriptor is close-on-exec.
    ///
    /// # Safety
    /// Async-signal-safe (`open`, `ioctl`, `close` on the stack's memory):
    /// callable between `fork` and `exec`.
    pub unsafe fn open(&self) -> std::io::Result<std::os::fd::RawFd> {
        // SAFETY: a constant C string.
        let fd = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut request = self.request;
        // SAFETY: `request` is a live, properly sized `struct ifreq` on the
        // stack, read and written by the kernel during the call only.
        if unsafe { libc::ioctl(fd, libc::TUNSETIFF, &mut request) } < 0 {
            let err = std::io::Error::last_os_error();
            // SAFETY: closing the descriptor opened above.
            unsafe { libc::close(fd) };
            return Err(err);
        }
        Ok(fd)
    }
}

/// How a tap is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TapOptions {
    /// `IFF_VNET_HDR`: frames carry a virtio-net header (offloads). QEMU
    /// detects this by itself on an fd it is given.
    pub vnet_hdr: bool,
    /// `TUNSETPERSIST`: the device outlives the descriptor. Without it the
    /// tap disappears when the last descriptor (Hull's, the VMM's) closes,
    /// so it can only be handed over by fd.
    pub persistent: bool,
}

impl Default for TapOptions {
    fn default() -> Self {
        Self {
            vnet_hdr: false,
            persistent: true,
        }
    }
}

/// A tap device, with the descriptor it was made with unless that was
/// closed or taken.
#[derive(Debug)]
pub struct Tap {
    name: String,
    fd: Option<OwnedFd>,
}

impl Tap {
    /// Creates persistent tap `name` (no packet-info header, no vnet header)
    /// and keeps its descriptor. Fails if a link of that name exists.
    pub fn create(name: &str) -> Result<Self> {
        Self::create_with(name, TapOptions::default())
    }

    /// Creates tap `name` as `options` say. Fails if a link of that name
    /// exists (`IFF_TUN_EXCL`: never attach to someone else's tap).
    pub fn create_with(name: &str, options: TapOptions) -> Result<Self> {
        check_ifname(name)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .map_err(|e| NetworkError::io("opening /dev/net/tun", e))?;
        let fd = OwnedFd::from(file);

        let mut flags = libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_TUN_EXCL;
        if options.vnet_hdr {
            flags |= libc::IFF_VNET_HDR;
        }
        let mut request = IfReqFlags::new(name, flags);
        // SAFETY: `fd` is an open /dev/net/tun descriptor and `request` is a
        // live, properly sized `struct ifreq` that the kernel reads and
        // writes back (the final name) during the call only.
        let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut request) };
        if rc < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EBUSY) {
                return Err(NetworkError::LinkExists(name.to_string()));
            }
            return Err(NetworkError::Tap {
                name: name.to_string(),
                op: "TUNSETIFF",
                source: err,
            });
        }
        if options.persistent {
            // SAFETY: plain integer-argument ioctl on the tap descriptor.
            let rc =
                unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETPERSIST, 1 as libc::c_ulong) };
            if rc < 0 {
                // Dropping `fd` destroys the not-yet-persistent device.
                return Err(NetworkError::Tap {
                    name: name.to_string(),
                    op: "TUNSETPERSIST",
                    source: std::io::Error::last_os_error(),
                });
            }
        }
        tracing::debug!(tap = name, persistent = options.persistent, "created tap");
        Ok(Self {
            name: name.to_string(),
            fd: Some(fd),
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The descriptor, if still held. It is close-on-exec: to hand it to a
    /// VMM, `dup2` it to a chosen number in the child (which clears the flag)
    /// and pass `fd=N` to the VMM.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_ref().map(AsFd::as_fd)
    }

    /// Takes the descriptor out, leaving the tap without one.
    pub fn take_fd(&mut self) -> Option<OwnedFd> {
        self.fd.take()
    }

    /// Closes the descriptor (persistent taps stay), e.g. before the VMM
    /// opens the tap by name: a tap accepts one opener per queue.
    pub fn close_fd(&mut self) {
        self.fd = None;
    }
}

/// Deletes tap `name` (persistent or not); `false` if there was none.
pub async fn delete_tap(netlink: &Netlink, name: &str) -> Result<bool> {
    let deleted = netlink.delete_link_by_name(name).await?;
    if deleted {
        tracing::debug!(tap = name, "deleted tap");
    }
    Ok(deleted)
}
