//! A tap interface opened through /dev/net/tun (no /dev/vhost-net on these
//! hosts), with virtio-net headers, non-blocking.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use crate::devices::virtio::net::queues::{FrameSink, FrameSource, MAX_RX_FRAME};

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
const TUNSETVNETHDRSZ: libc::c_ulong = 0x4004_54d8;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;

/// `struct ifreq` as TUNSETIFF reads it: a name and flags (padded to 40).
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// An open tap device.
#[derive(Debug)]
pub struct Tap {
    file: File,
    name: String,
}

impl Tap {
    /// Opens the tap interface `name` with 12-byte virtio-net headers and
    /// no offloads.
    pub fn open(name: &str, vnet_hdr_len: usize) -> std::io::Result<Self> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('\0') {
            return Err(std::io::Error::new(
                ErrorKind::InvalidInput,
                "bad tap interface name",
            ));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")?;
        let mut request = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: IFF_TAP | IFF_NO_PI | IFF_VNET_HDR,
            _pad: [0; 22],
        };
        request.name[..name.len()].copy_from_slice(name.as_bytes());
        // SAFETY: TUNSETIFF reads a `struct ifreq`, which `request` lays out
        // (name, flags, padding to its full size) and which outlives the call.
        let ret = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF, &mut request) };
        if ret < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let hdr_len = vnet_hdr_len as libc::c_int;
        // SAFETY: TUNSETVNETHDRSZ reads one int from the pointer.
        let ret = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETVNETHDRSZ, &hdr_len) };
        if ret < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: TUNSETOFFLOAD takes its flags by value: none.
        let ret = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETOFFLOAD, 0 as libc::c_uint) };
        if ret < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Tap {
            file,
            name: name.to_owned(),
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The descriptor to watch for readability.
    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl FrameSink for Tap {
    fn write_frame(&mut self, frame: &[u8]) -> std::io::Result<()> {
        self.file.write(frame).map(|_| ())
    }
}

impl FrameSource for Tap {
    fn read_frame(&mut self) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; MAX_RX_FRAME + 1];
        loop {
            match self.file.read(&mut buf) {
                Ok(n) if n <= MAX_RX_FRAME => {
                    buf.truncate(n);
                    return Some(buf);
                }
                // Larger than anything negotiated: drop it, read the next.
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return None,
            }
        }
    }
}
