//! IPv4 subnets (`10.88.0.0/16`): parsing, membership, usable hosts.

use super::error::{NetworkError, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Smallest prefix accepted: anything bigger than a /8 is a mistake.
const MIN_PREFIX: u8 = 8;
/// Largest prefix accepted: a /30 has two usable addresses (gateway + one guest).
const MAX_PREFIX: u8 = 30;

/// An IPv4 network: a base address with its host bits zero, and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Subnet {
    base: Ipv4Addr,
    prefix_len: u8,
}

impl Subnet {
    /// `addr/prefix_len` if the prefix is accepted and `addr` has no host
    /// bits set; usable in constants.
    pub const fn const_new(addr: Ipv4Addr, prefix_len: u8) -> Option<Self> {
        if prefix_len < MIN_PREFIX || prefix_len > MAX_PREFIX {
            return None;
        }
        if addr.to_bits() & !mask(prefix_len) != 0 {
            return None;
        }
        Some(Self {
            base: addr,
            prefix_len,
        })
    }

    /// The subnet of `addr`/`prefix_len`; host bits of `addr` are cleared.
    pub fn new(addr: Ipv4Addr, prefix_len: u8) -> Result<Self> {
        if !(MIN_PREFIX..=MAX_PREFIX).contains(&prefix_len) {
            return Err(NetworkError::InvalidSubnet(format!("{addr}/{prefix_len}")));
        }
        let base = Ipv4Addr::from(u32::from(addr) & mask(prefix_len));
        Ok(Self { base, prefix_len })
    }

    /// The network address, e.g. 10.88.0.0.
    pub fn base(&self) -> Ipv4Addr {
        self.base
    }

    /// The prefix length, e.g. 16.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// The netmask, e.g. 255.255.0.0.
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(mask(self.prefix_len))
    }

    /// The broadcast address, e.g. 10.88.255.255.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) | !mask(self.prefix_len))
    }

    /// The first host address, used as the gateway on the bridge by convention.
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) + 1)
    }

    /// Whether `ip` is inside this subnet.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix_len) == u32::from(self.base)
    }

    /// Whether the two subnets share any address.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.contains(other.base) || other.contains(self.base)
    }

    /// Whether `ip` may be given to a host in this subnet: inside it, and
    /// neither its network nor its broadcast address.
    pub fn is_host(&self, ip: Ipv4Addr) -> bool {
        self.contains(ip) && ip != self.base && ip != self.broadcast()
    }

    /// Number of host addresses (network and broadcast excluded).
    pub fn host_count(&self) -> u32 {
        (1u32 << (32 - self.prefix_len)) - 2
    }

    /// The `n`-th host address counting from 0 (= [`Subnet::first_host`]),
    /// or `None` past the last one.
    pub fn host(&self, n: u32) -> Option<Ipv4Addr> {
        (n < self.host_count()).then(|| Ipv4Addr::from(u32::from(self.base) + 1 + n))
    }

    /// The index of host address `ip` (inverse of [`Subnet::host`]).
    pub fn host_index(&self, ip: Ipv4Addr) -> Option<u32> {
        self.is_host(ip)
            .then(|| u32::from(ip) - u32::from(self.base) - 1)
    }
}

/// The netmask of a prefix length as a number.
pub(crate) const fn mask(prefix_len: u8) -> u32 {
    match prefix_len {
        0 => 0,
        n if n >= 32 => u32::MAX,
        n => u32::MAX << (32 - n as u32),
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix_len)
    }
}

impl FromStr for Subnet {
    type Err = NetworkError;

    /// Parses `A.B.C.D/N`. Host bits must be zero, as Docker requires
    /// (`10.88.0.1/16` is refused rather than silently widened).
    fn from_str(text: &str) -> Result<Self> {
        let invalid = || NetworkError::InvalidSubnet(text.to_string());
        let (addr, prefix) = text.split_once('/').ok_or_else(invalid)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| invalid())?;
        let prefix: u8 = prefix.parse().map_err(|_| invalid())?;
        let subnet = Subnet::new(addr, prefix).map_err(|_| invalid())?;
        if subnet.base != addr {
            return Err(invalid());
        }
        Ok(subnet)
    }
}

impl Serialize for Subnet {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Subnet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let s: Subnet = "10.88.0.0/16".parse().unwrap();
        assert_eq!(s.to_string(), "10.88.0.0/16");
        assert_eq!(s.netmask(), Ipv4Addr::new(255, 255, 0, 0));
        assert_eq!(s.broadcast(), Ipv4Addr::new(10, 88, 255, 255));
        assert_eq!(s.first_host(), Ipv4Addr::new(10, 88, 0, 1));
        assert_eq!(s.host_count(), 65534);
    }

    #[test]
    fn refuses_bad_text() {
        for bad in [
            "",
            "10.88.0.0",
            "10.88.0.1/16",
            "10.88.0.0/33",
            "10.0.0.0/4",
            "10.0.0.0/31",
            "x/24",
            "10.88.0.0/",
        ] {
            assert!(bad.parse::<Subnet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn hosts_skip_network_and_broadcast() {
        let s: Subnet = "10.89.3.0/30".parse().unwrap();
        assert_eq!(s.host_count(), 2);
        assert_eq!(s.host(0), Some(Ipv4Addr::new(10, 89, 3, 1)));
        assert_eq!(s.host(1), Some(Ipv4Addr::new(10, 89, 3, 2)));
        assert_eq!(s.host(2), None);
        assert!(!s.is_host(Ipv4Addr::new(10, 89, 3, 0)));
        assert!(!s.is_host(Ipv4Addr::new(10, 89, 3, 3)));
        assert_eq!(s.host_index(Ipv4Addr::new(10, 89, 3, 2)), Some(1));
    }

    #[test]
    fn overlap() {
        let a: Subnet = "10.88.0.0/16".parse().unwrap();
        let b: Subnet = "10.88.5.0/24".parse().unwrap();
        let c: Subnet = "10.89.0.0/24".parse().unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
    }

    #[test]
    fn serde_roundtrip() {
        let s: Subnet = "10.89.0.0/24".parse().unwrap();
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, "\"10.89.0.0/24\"");
        assert_eq!(serde_json::from_str::<Subnet>(&json).unwrap(), s);
    }
}
