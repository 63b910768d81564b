//! The few kernel settings bridged networking needs, read and written
//! through `/proc/sys/net` (which shows the calling thread's namespace).

use super::error::{NetworkError, Result};
use super::names::check_ifname;
use std::path::{Path, PathBuf};

/// The forwarding switch.
const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .map(|text| text.trim().to_string())
        .map_err(|e| NetworkError::io(format!("reading {}", path.display()), e))
}

fn write(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value)
        .map_err(|e| NetworkError::io(format!("writing {}", path.display()), e))
}

/// Whether IPv4 forwarding is on.
pub fn ip_forward_enabled() -> Result<bool> {
    Ok(read(Path::new(IP_FORWARD))? != "0")
}

/// Turns IPv4 forwarding on if it is off. Returns whether it changed it,
/// so that the caller can remember to turn it off again (and only then).
pub fn enable_ip_forward() -> Result<bool> {
    if ip_forward_enabled()? {
        return Ok(false);
    }
    write(Path::new(IP_FORWARD), "1")?;
    tracing::info!("enabled net.ipv4.ip_forward");
    Ok(true)
}

/// Turns IPv4 forwarding off.
pub fn disable_ip_forward() -> Result<()> {
    write(Path::new(IP_FORWARD), "0")?;
    tracing::info!("disabled net.ipv4.ip_forward again");
    Ok(())
}

/// `net.ipv4.conf.<ifname>.route_localnet=1`: lets packets from 127.0.0.1
/// that were DNATed to a guest leave through `ifname` (they are then
/// masqueraded to the bridge address), which makes `curl 127.0.0.1:PORT`
/// reach published ports without a userland proxy.
pub fn enable_route_localnet(ifname: &str) -> Result<()> {
    check_ifname(ifname)?;
    let path: PathBuf = ["/proc/sys/net/ipv4/conf", ifname, "route_localnet"]
        .iter()
        .collect();
    write(&path, "1")
}
