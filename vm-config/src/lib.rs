//! One microVM's configuration: the typed value Hull's runtime builds and
//! hands to hull-vmm as a JSON file (`hull-vmm --config FILE`), so that no
//! command-line format is kept in step by hand on both sides. hull-vmm's
//! own flags parse into the same value.
#![deny(missing_docs)]

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Most vCPUs a VM may have (hull-vmm's MP table holds this many).
pub const MAX_VCPUS: u8 = 32;

/// How the VMM may enter the kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum BootProtocolChoice {
    /// PVH when the ELF has a PVH note, the Linux 64-bit protocol otherwise.
    #[default]
    Auto,
    /// Always the Linux 64-bit boot protocol.
    Linux,
    /// PVH; fails if the kernel has no PVH note.
    Pvh,
}

/// Errors in the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The JSON file cannot be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// File path.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The JSON file cannot be written.
    #[error("cannot write config {path}: {source}")]
    Write {
        /// File path.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The JSON file is malformed.
    #[error("invalid config {path}: {source}")]
    Parse {
        /// File path.
        path: PathBuf,
        /// Underlying error.
        source: serde_json::Error,
    },
    /// A value is out of range or missing.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Where the serial port's output goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SerialOutput {
    /// The VMM's standard output.
    #[default]
    Stdout,
    /// Discarded.
    Off,
    /// Appended to this file.
    File(PathBuf),
}

impl FromStr for SerialOutput {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "stdout" => SerialOutput::Stdout,
            "off" | "none" => SerialOutput::Off,
            path => SerialOutput::File(PathBuf::from(path)),
        })
    }
}

impl Serialize for SerialOutput {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            SerialOutput::Stdout => serializer.serialize_str("stdout"),
            SerialOutput::Off => serializer.serialize_str("off"),
            SerialOutput::File(path) => serializer.serialize_str(&path.to_string_lossy()),
        }
    }
}

impl<'de> Deserialize<'de> for SerialOutput {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Ok(s.parse().unwrap_or_default())
    }
}

/// A virtio-vsock device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VsockConfig {
    /// Host unix socket (Firecracker's hybrid vsock).
    pub socket: PathBuf,
    /// Guest context id (3 or more).
    pub cid: u32,
}

/// A virtio-blk device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockConfig {
    /// Backing file.
    pub path: PathBuf,
    /// Read-only device.
    #[serde(default)]
    pub read_only: bool,
}

impl FromStr for BlockConfig {
    type Err = String;

    /// `PATH[,ro]`
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (path, read_only) = match s.rsplit_once(',') {
            Some((path, "ro")) => (path, true),
            Some((path, "rw")) => (path, false),
            Some((_, opt)) => return Err(format!("unknown block option {opt:?} (ro or rw)")),
            None => (s, false),
        };
        Ok(BlockConfig {
            path: PathBuf::from(path),
            read_only,
        })
    }
}

/// A virtio-net device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetConfig {
    /// Host tap interface name.
    pub tap: String,
    /// The guest NIC's MAC address (`02:aa:bb:cc:dd:ee`); without one, the
    /// VMM picks a fixed local one, which two guests on one bridge must not
    /// share.
    #[serde(default)]
    pub mac: Option<String>,
}

impl NetConfig {
    /// The MAC address as bytes, if one is given.
    pub fn mac_bytes(&self) -> Result<Option<[u8; 6]>, ConfigError> {
        let Some(text) = &self.mac else {
            return Ok(None);
        };
        let invalid =
            || ConfigError::Invalid(format!("bad MAC address {text:?} for tap {}", self.tap));
        let mut bytes = [0u8; 6];
        let mut parts = text.split(':');
        for byte in &mut bytes {
            let part = parts.next().filter(|p| p.len() == 2).ok_or_else(invalid)?;
            *byte = u8::from_str_radix(part, 16).map_err(|_| invalid())?;
        }
        if parts.next().is_some() || bytes[0] & 1 == 1 {
            // Too long, or a multicast address.
            return Err(invalid());
        }
        Ok(Some(bytes))
    }
}

/// A virtio-fs device (vhost-user front-end).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FsConfig {
    /// virtiofsd's vhost-user socket.
    pub socket: PathBuf,
    /// Mount tag seen by the guest.
    pub tag: String,
}

impl FromStr for FsConfig {
    type Err = String;

    /// `PATH,tag=TAG`
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (socket, tag) = s
            .rsplit_once(",tag=")
            .ok_or_else(|| format!("expected PATH,tag=TAG, got {s:?}"))?;
        if tag.is_empty() || tag.len() > 36 {
            return Err(format!("tag must be 1 to 36 bytes, got {tag:?}"));
        }
        Ok(FsConfig {
            socket: PathBuf::from(socket),
            tag: tag.to_owned(),
        })
    }
}

fn default_vcpus() -> u8 {
    1
}

fn default_mem_mib() -> u64 {
    128
}

/// Everything that describes one VM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmConfig {
    /// Kernel: ELF vmlinux (PVH note or not) or bzImage.
    pub kernel: PathBuf,
    /// Optional initrd.
    #[serde(default)]
    pub initrd: Option<PathBuf>,
    /// Kernel command line.
    #[serde(default)]
    pub cmdline: String,
    /// Number of vCPUs.
    #[serde(default = "default_vcpus")]
    pub vcpus: u8,
    /// Guest memory in MiB.
    #[serde(default = "default_mem_mib")]
    pub mem_mib: u64,
    /// Serial output.
    #[serde(default)]
    pub serial: SerialOutput,
    /// Entry protocol.
    #[serde(default)]
    pub boot_protocol: BootProtocolChoice,
    /// Optional vsock device.
    #[serde(default)]
    pub vsock: Option<VsockConfig>,
    /// Block devices.
    #[serde(default)]
    pub blk: Vec<BlockConfig>,
    /// Network devices.
    #[serde(default)]
    pub net: Vec<NetConfig>,
    /// virtio-fs shares.
    #[serde(default)]
    pub fs: Vec<FsConfig>,
    /// The control socket the VMM serves (pause, resume), if any.
    #[serde(default)]
    pub api_socket: Option<PathBuf>,
    /// Confine the VMM once its devices are open, before the guest runs.
    #[serde(default)]
    pub jail: Option<JailConfig>,
    /// A seccomp filter on each of the VMM's threads (on by default; off
    /// only to debug the VMM itself).
    #[serde(default = "default_seccomp")]
    pub seccomp: bool,
}

fn default_seccomp() -> bool {
    true
}

/// Where and as whom the VMM runs once it has opened what it needs: a mount
/// namespace of its own whose root is an empty read-only tmpfs, new ipc
/// and uts namespaces, this uid and gid with no capabilities and no new
/// privileges. Its start needs root (or `CAP_SYS_ADMIN`, `CAP_SETUID`,
/// `CAP_SETGID`); nothing the guest controls runs before the jail closes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JailConfig {
    /// An existing directory the empty root is mounted on (in the VMM's own
    /// namespace: nothing appears there on the host), e.g. the sandbox's.
    pub root: PathBuf,
    /// The uid it runs as (not 0).
    pub uid: u32,
    /// The gid it runs as (not 0).
    pub gid: u32,
    /// Its supplementary groups (none by default).
    #[serde(default)]
    pub groups: Vec<u32>,
}

/// Smallest guest memory: the low megabyte plus room for a small kernel.
pub const MIN_MEM_MIB: u64 = 4;
/// Largest guest memory accepted.
pub const MAX_MEM_MIB: u64 = 1 << 20;

impl VmConfig {
    /// A configuration with defaults for everything but the kernel.
    pub fn new(kernel: PathBuf) -> Self {
        VmConfig {
            kernel,
            initrd: None,
            cmdline: String::new(),
            vcpus: default_vcpus(),
            mem_mib: default_mem_mib(),
            serial: SerialOutput::default(),
            boot_protocol: BootProtocolChoice::default(),
            vsock: None,
            blk: Vec::new(),
            net: Vec::new(),
            fs: Vec::new(),
            api_socket: None,
            jail: None,
            seccomp: default_seccomp(),
        }
    }

    /// Writes it as a JSON configuration file.
    pub fn write_json_file(&self, path: &Path) -> Result<(), ConfigError> {
        let text =
            serde_json::to_vec_pretty(self).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        std::fs::write(path, text).map_err(|source| ConfigError::Write {
            path: path.to_owned(),
            source,
        })
    }

    /// Reads a JSON configuration file.
    pub fn from_json_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// Checks ranges that the rest of the VMM relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.vcpus == 0 || self.vcpus > MAX_VCPUS {
            return Err(ConfigError::Invalid(format!(
                "vcpus must be 1 to {MAX_VCPUS}, got {}",
                self.vcpus
            )));
        }
        if !(MIN_MEM_MIB..=MAX_MEM_MIB).contains(&self.mem_mib) {
            return Err(ConfigError::Invalid(format!(
                "mem_mib must be {MIN_MEM_MIB} to {MAX_MEM_MIB}, got {}",
                self.mem_mib
            )));
        }
        for net in &self.net {
            net.mac_bytes()?;
        }
        if let Some(jail) = &self.jail {
            if jail.uid == 0 || jail.gid == 0 {
                return Err(ConfigError::Invalid(
                    "the jail's uid and gid must not be root's".into(),
                ));
            }
        }
        if let Some(vsock) = &self.vsock {
            if vsock.cid < 3 {
                return Err(ConfigError::Invalid(format!(
                    "vsock cid must be 3 or more, got {}",
                    vsock.cid
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_with_defaults() {
        let config: VmConfig = serde_json::from_str(r#"{"kernel": "/k"}"#).unwrap();
        assert_eq!(config, VmConfig::new(PathBuf::from("/k")));
        let full = r#"{"kernel":"/k","initrd":"/i","cmdline":"a b","vcpus":2,"mem_mib":64,
            "serial":"/tmp/log","boot_protocol":"pvh","vsock":{"socket":"/s","cid":3},
            "blk":[{"path":"/d","read_only":true}],"net":[{"tap":"tap0","mac":"02:00:00:00:00:01"}],
            "fs":[{"socket":"/v","tag":"root"}]}"#;
        let config: VmConfig = serde_json::from_str(full).unwrap();
        assert_eq!(config.serial, SerialOutput::File(PathBuf::from("/tmp/log")));
        assert_eq!(config.boot_protocol, BootProtocolChoice::Pvh);
        assert!(config.blk[0].read_only);
        let again: VmConfig =
            serde_json::from_str(&serde_json::to_string(&config).unwrap()).unwrap();
        assert_eq!(again, config);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        assert!(serde_json::from_str::<VmConfig>(r#"{"kernel":"/k","vcpu":2}"#).is_err());
    }

    #[test]
    fn parses_device_flags() {
        assert_eq!(
            "/d.img,ro".parse::<BlockConfig>().unwrap(),
            BlockConfig {
                path: "/d.img".into(),
                read_only: true
            }
        );
        assert!(!"/d.img".parse::<BlockConfig>().unwrap().read_only);
        assert!("/d.img,xx".parse::<BlockConfig>().is_err());
        let fs: FsConfig = "/run/v.sock,tag=root".parse().unwrap();
        assert_eq!(fs.tag, "root");
        assert!("/run/v.sock".parse::<FsConfig>().is_err());
    }

    #[test]
    fn mac_addresses_are_checked() {
        let net = |mac: &str| NetConfig {
            tap: "tap0".into(),
            mac: Some(mac.into()),
        };
        assert_eq!(
            net("02:48:55:4c:00:2a").mac_bytes().unwrap(),
            Some([2, 0x48, 0x55, 0x4c, 0, 0x2a])
        );
        for bad in [
            "02:48:55:4c:00",
            "02:48:55:4c:00:2a:01",
            "zz:48:55:4c:00:2a",
            "01:00:5e:00:00:01",
            "2:48:55:4c:00:2a",
        ] {
            assert!(net(bad).mac_bytes().is_err(), "{bad}");
        }
        let mut config = VmConfig::new("/k".into());
        config.net.push(net("nonsense"));
        assert!(config.validate().is_err());
    }

    #[test]
    fn validates_ranges() {
        let mut config = VmConfig::new("/k".into());
        assert!(config.validate().is_ok());
        config.vcpus = 0;
        assert!(config.validate().is_err());
        config.vcpus = 33;
        assert!(config.validate().is_err());
        config.vcpus = 2;
        config.mem_mib = 1;
        assert!(config.validate().is_err());
        config.mem_mib = 64;
        config.jail = Some(JailConfig {
            root: "/j".into(),
            uid: 0,
            gid: 100,
            groups: Vec::new(),
        });
        assert!(config.validate().is_err());
    }
}
