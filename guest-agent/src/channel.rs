//! The byte stream to the host: a virtio-serial port or a vsock connection.
//!
//! The host says which on the kernel command line: `hull.channel=serial:NAME`
//! (the virtio-serial port named NAME, for QEMU, which has no vsock here) or
//! `hull.channel=vsock:PORT` (for hull-vmm's virtio-vsock).

use anyhow::{bail, Context, Result};
use std::fs;

use crate::fdstream::FdStream;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

/// Which kind of channel the host set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelSpec {
    /// A virtio-serial port, found by its name.
    Serial(String),
    /// A vsock port the agent listens on.
    Vsock(u32),
}

impl ChannelSpec {
    /// Reads `hull.channel=` from a kernel command line. Defaults to the
    /// serial port `hull.agent`.
    pub fn from_cmdline(cmdline: &str) -> Result<Self> {
        let Some(value) = cmdline
            .split_whitespace()
            .find_map(|arg| arg.strip_prefix("hull.channel="))
        else {
            return Ok(Self::Serial("hull.agent".into()));
        };
        match value.split_once(':') {
            Some(("serial", name)) if !name.is_empty() && !name.contains('/') => {
                Ok(Self::Serial(name.into()))
            }
            Some(("vsock", port)) => Ok(Self::Vsock(
                port.parse()
                    .with_context(|| format!("bad vsock port {port:?}"))?,
            )),
            _ => bail!("unknown hull.channel={value}"),
        }
    }
}

/// The device node of the virtio-serial port called `name`.
fn find_serial_port(name: &str) -> Result<String> {
    for entry in fs::read_dir("/sys/class/virtio-ports").context("listing virtio ports")? {
        let entry = entry?;
        let port_name = fs::read_to_string(entry.path().join("name")).unwrap_or_default();
        if port_name.trim_end() == name {
            return Ok(format!("/dev/{}", entry.file_name().to_string_lossy()));
        }
    }
    bail!("no virtio-serial port named {name}")
}

/// Opens the channel, waiting for the device to appear.
pub async fn open(spec: &ChannelSpec) -> Result<FdStream> {
    match spec {
        ChannelSpec::Serial(name) => {
            // Ports are probed asynchronously by the kernel; give them a moment.
            let mut last_err = None;
            for _ in 0..500 {
                match find_serial_port(name) {
                    Ok(path) => {
                        let file = fs::OpenOptions::new()
                            .read(true)
                            .write(true)
                            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
                            .open(&path)
                            .with_context(|| format!("opening {path}"))?;
                        return FdStream::new(file.into());
                    }
                    Err(err) => last_err = Some(err),
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(last_err.unwrap_or_else(|| anyhow::anyhow!("no serial port")))
        }
        ChannelSpec::Vsock(port) => accept_vsock(*port).await,
    }
}

/// Listens on vsock `port` and takes the host's connection (a hybrid-vsock
/// VMM turns the host's `CONNECT <port>` into exactly this).
async fn accept_vsock(port: u32) -> Result<FdStream> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: socket(2) with constant arguments; the fd is owned right away.
    let raw = unsafe {
        libc::socket(
            libc::AF_VSOCK,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if raw < 0 {
        return Err(std::io::Error::last_os_error()).context("creating a vsock socket");
    }
    // SAFETY: `raw` is a fresh descriptor nobody else owns.
    let listener = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: an all-zero sockaddr_vm is valid before its fields are set.
    let mut address: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
    address.svm_family = libc::AF_VSOCK as libc::sa_family_t;
    address.svm_cid = libc::VMADDR_CID_ANY;
    address.svm_port = port;
    let length = std::mem::size_of::<libc::sockaddr_vm>() as libc::socklen_t;
    // SAFETY: bind/listen on our socket with a correctly sized address.
    unsafe {
        if libc::bind(
            listener.as_raw_fd(),
            (&address as *const libc::sockaddr_vm).cast(),
            length,
        ) < 0
        {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("binding vsock port {port}"));
        }
        if libc::listen(listener.as_raw_fd(), 1) < 0 {
            return Err(std::io::Error::last_os_error()).context("listening on vsock");
        }
    }
    let listener = FdStream::new(listener)?;
    let connection = listener
        .accept()
        .await
        .with_context(|| format!("accepting on vsock port {port}"))?;
    FdStream::new(connection)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_channel_from_cmdline() {
        assert_eq!(
            ChannelSpec::from_cmdline("console=ttyS0 hull.channel=serial:agent0 quiet").unwrap(),
            ChannelSpec::Serial("agent0".into())
        );
        assert_eq!(
            ChannelSpec::from_cmdline("hull.channel=vsock:1024").unwrap(),
            ChannelSpec::Vsock(1024)
        );
        assert_eq!(
            ChannelSpec::from_cmdline("quiet").unwrap(),
            ChannelSpec::Serial("hull.agent".into())
        );
        assert!(ChannelSpec::from_cmdline("hull.channel=serial:../x").is_err());
        assert!(ChannelSpec::from_cmdline("hull.channel=tcp:1").is_err());
    }
}
