//! `-v HOST:CONTAINER[:ro]`: host directories (or files) bind-mounted into
//! a container. The host path is mounted into the sandbox's virtio-fs share
//! (in virtiofsd's private mount namespace, read-only there too for `:ro`)
//! and the guest agent bind-mounts it from the share onto the container path.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use thiserror::Error;

/// A `-v` value Hull cannot use.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum VolumeError {
    /// Not `SOURCE:DEST[:OPTIONS]`.
    #[error("invalid volume specification: '{0}'")]
    Invalid(String),
    /// A name instead of a host path.
    #[error("invalid volume specification: '{0}': named volumes are not supported; give an absolute host path (-v /srv/data:/data)")]
    Named(String),
    /// The container path is not absolute, or is `/`.
    #[error("invalid volume specification: '{spec}': invalid mount path: '{destination}' mount path must be absolute and not /")]
    Destination {
        /// The `-v` value.
        spec: String,
        /// Its container path.
        destination: String,
    },
    /// An option other than ro/rw.
    #[error("invalid volume specification: '{spec}': invalid mode: {mode}")]
    Mode {
        /// The `-v` value.
        spec: String,
        /// The option.
        mode: String,
    },
    /// The host path could not be created.
    #[error("creating the volume source {path}: {reason}")]
    Source {
        /// The host path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// One bind volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindVolume {
    /// The host path (absolute).
    pub source: PathBuf,
    /// The path in the container (absolute).
    pub destination: String,
    /// `:ro`.
    pub readonly: bool,
}

impl BindVolume {
    /// Parses Docker's `-v HOST:CONTAINER[:ro|rw]`.
    pub fn parse(spec: &str) -> Result<Self, VolumeError> {
        let parts: Vec<&str> = spec.split(':').collect();
        let (source, destination, mode) = match parts.as_slice() {
            [source, destination] => (*source, *destination, None),
            [source, destination, mode] => (*source, *destination, Some(*mode)),
            _ => return Err(VolumeError::Invalid(spec.to_string())),
        };
        if source.is_empty() || destination.is_empty() {
            return Err(VolumeError::Invalid(spec.to_string()));
        }
        if !source.starts_with('/') {
            return Err(VolumeError::Named(spec.to_string()));
        }
        if !destination.starts_with('/')
            || destination.trim_end_matches('/').is_empty()
            || destination.split('/').any(|c| c == "..")
        {
            return Err(VolumeError::Destination {
                spec: spec.to_string(),
                destination: destination.to_string(),
            });
        }
        let mut readonly = false;
        for option in mode.into_iter().flat_map(|m| m.split(',')) {
            match option {
                "ro" => readonly = true,
                "rw" => readonly = false,
                // SELinux relabelling and propagation mean nothing across a VM boundary.
                "z" | "Z" | "rprivate" | "private" => {}
                other => {
                    return Err(VolumeError::Mode {
                        spec: spec.to_string(),
                        mode: other.to_string(),
                    })
                }
            }
        }
        Ok(Self {
            source: PathBuf::from(source),
            destination: destination.to_string(),
            readonly,
        })
    }

    /// Creates a missing host directory, as `docker run -v` does.
    pub fn ensure_source(&self) -> Result<(), VolumeError> {
        if self.source.exists() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.source).map_err(|e| VolumeError::Source {
            path: self.source.clone(),
            reason: e.to_string(),
        })
    }

    /// As `docker inspect` shows it under `Mounts`.
    pub fn inspect(&self) -> serde_json::Value {
        serde_json::json!({
            "Type": "bind",
            "Source": self.source,
            "Destination": self.destination,
            "Mode": if self.readonly { "ro" } else { "" },
            "RW": !self.readonly,
            "Propagation": "rprivate",
        })
    }

    /// As `HostConfig.Binds` lists it.
    pub fn bind_string(&self) -> String {
        let mode = if self.readonly { ":ro" } else { "" };
        format!("{}:{}{mode}", self.source.display(), self.destination)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn docker_volume_syntax() {
        let v = BindVolume::parse("/srv/data:/data:ro").unwrap();
        assert_eq!(
            (v.source.as_path(), v.destination.as_str(), v.readonly),
            (Path::new("/srv/data"), "/data", true)
        );
        assert!(!BindVolume::parse("/a:/b").unwrap().readonly);
        assert!(!BindVolume::parse("/a:/b:rw,z").unwrap().readonly);
        assert_eq!(BindVolume::parse("/a:/b").unwrap().bind_string(), "/a:/b");
        assert_eq!(v.bind_string(), "/srv/data:/data:ro");
        assert!(matches!(
            BindVolume::parse("data:/data"),
            Err(VolumeError::Named(_))
        ));
        assert!(matches!(
            BindVolume::parse("/a:b"),
            Err(VolumeError::Destination { .. })
        ));
        assert!(matches!(
            BindVolume::parse("/a:/"),
            Err(VolumeError::Destination { .. })
        ));
        assert!(matches!(
            BindVolume::parse("/a:/x/../.."),
            Err(VolumeError::Destination { .. })
        ));
        assert!(matches!(
            BindVolume::parse("/a:/b:rx"),
            Err(VolumeError::Mode { .. })
        ));
        assert!(matches!(
            BindVolume::parse("/a"),
            Err(VolumeError::Invalid(_))
        ));
        assert!(matches!(
            BindVolume::parse("/a:/b:ro:x"),
            Err(VolumeError::Invalid(_))
        ));
    }
}
