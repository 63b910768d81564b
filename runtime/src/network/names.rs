//! Names and hardware addresses Hull derives: interface names from ids,
//! locally administered MACs, and the network name rule.

use super::error::{NetworkError, Result};
use sha2::{Digest, Sha256};
use std::fmt;

/// Linux interface names are at most 15 bytes (IFNAMSIZ 16 with the NUL).
pub const IFNAME_MAX: usize = 15;

/// Every tap Hull creates starts with this, so that stale taps can be found.
pub const TAP_PREFIX: &str = "hulltap";

/// Bridges of user-defined networks start with this (`hull-<10 hex>`).
pub const BRIDGE_PREFIX: &str = "hull-";

/// The tap of a sandbox: `hulltap` + the first 8 hex digits of its id
/// (15 characters). Ids that are not hex (tests, foreign callers) are hashed
/// first so the name stays valid and stable.
pub fn tap_name(sandbox_id: &str) -> String {
    let hex_prefix: String = sandbox_id.chars().take(8).collect();
    let is_hex = hex_prefix.len() == 8
        && hex_prefix
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
    if is_hex {
        format!("{TAP_PREFIX}{hex_prefix}")
    } else {
        let digest = Sha256::digest(sandbox_id.as_bytes());
        format!("{TAP_PREFIX}{}", &hex::encode(digest)[..8])
    }
}

/// The bridge of a user-defined network: `hull-` + 10 hex digits of its id.
pub fn bridge_name(network_id: &str) -> String {
    let digest;
    let hex_id = if network_id.len() >= 10 && network_id.chars().all(|c| c.is_ascii_hexdigit()) {
        network_id
    } else {
        digest = hex::encode(Sha256::digest(network_id.as_bytes()));
        &digest
    };
    format!("{BRIDGE_PREFIX}{}", &hex_id[..10])
}

/// Checks an interface name the way the kernel's `dev_valid_name` does.
pub fn check_ifname(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= IFNAME_MAX
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c == '"');
    if valid {
        Ok(())
    } else {
        Err(NetworkError::InvalidInterfaceName(name.to_string()))
    }
}

/// Checks a network name against Docker's rule `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn check_network_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let valid = name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if valid {
        Ok(())
    } else {
        Err(NetworkError::InvalidNetworkName(name.to_string()))
    }
}

/// An Ethernet address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// A locally administered unicast address (`02:…`) derived from `seed`:
    /// the same sandbox always gets the same MAC, different ones practically
    /// never collide (40 bits of SHA-256).
    pub fn derived(seed: &str) -> Self {
        let digest = Sha256::digest(seed.as_bytes());
        let mut bytes = [0u8; 6];
        bytes[0] = 0x02;
        bytes[1..].copy_from_slice(&digest[..5]);
        Self(bytes)
    }

    /// From the bytes of a netlink `IFLA_ADDRESS`, if it is 6 long.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 6]>::try_from(bytes).ok().map(Self)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tap_names_fit_ifnamsiz() {
        let id = "0123456789abcdef".repeat(4);
        assert_eq!(tap_name(&id), "hulltap01234567");
        let other = tap_name("not hex at all");
        assert!(other.starts_with(TAP_PREFIX) && other.len() == IFNAME_MAX);
        assert_eq!(other, tap_name("not hex at all"));
        check_ifname(&other).unwrap();
    }

    #[test]
    fn bridge_names_fit_ifnamsiz() {
        let name = bridge_name(&"ab".repeat(32));
        assert_eq!(name, "hull-ababababab");
        assert_eq!(bridge_name("short").len(), IFNAME_MAX);
    }

    #[test]
    fn ifname_rule() {
        for ok in ["hull0", "hull-0123456789", "eth0"] {
            check_ifname(ok).unwrap();
        }
        for bad in ["", "a/b", "a b", "sixteen-chars-xx", "..", "a:b"] {
            assert!(check_ifname(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn network_name_rule() {
        for ok in ["mynet", "a", "net_1.test-x", "9lives"] {
            check_network_name(ok).unwrap();
        }
        for bad in ["", "-x", ".x", "a b", "a/b", "ü"] {
            assert!(check_network_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn macs_are_local_unicast_and_stable() {
        let a = MacAddr::derived("sandbox-a");
        assert_eq!(a.0[0], 0x02);
        assert_eq!(a, MacAddr::derived("sandbox-a"));
        assert_ne!(a, MacAddr::derived("sandbox-b"));
        assert_eq!(
            MacAddr([2, 0, 0xab, 1, 2, 3]).to_string(),
            "02:00:ab:01:02:03"
        );
    }
}
