//! One host directory (or file) shared into a container: a `-v
//! /host:/ctr[:ro]` bind, or a named or anonymous volume's `_data`
//! directory. The sandbox plan lists them; the monitor binds each into the
//! sandbox's virtio-fs share, and the guest agent binds it from there onto
//! the container path.

use super::VolumeError;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// One directory shared into a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindVolume {
    /// The host path (absolute).
    pub source: PathBuf,
    /// The path in the container (absolute).
    pub destination: String,
    /// `:ro`.
    pub readonly: bool,
    /// The volume whose `_data` `source` is; `None` for a host path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl BindVolume {
    /// A host path bound into the container.
    pub fn host(source: PathBuf, destination: String, readonly: bool) -> Self {
        Self {
            source,
            destination,
            readonly,
            name: None,
        }
    }

    /// Makes sure the source is there before it is shared: a missing host
    /// directory is created, as `docker run -v` does; a volume's directory
    /// is never made here (a removed volume stays removed).
    pub fn ensure_source(&self) -> Result<(), VolumeError> {
        if self.source.exists() {
            return Ok(());
        }
        if let Some(name) = &self.name {
            return Err(VolumeError::NotFound(name.clone()));
        }
        std::fs::create_dir_all(&self.source).map_err(|e| VolumeError::Source {
            path: self.source.clone(),
            reason: e.to_string(),
        })
    }

    /// As `docker inspect` shows a bind under `Mounts`.
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

    /// As `HostConfig.Binds` lists a host path.
    pub fn bind_string(&self) -> String {
        let mode = if self.readonly { ":ro" } else { "" };
        format!("{}:{}{mode}", self.source.display(), self.destination)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_are_shown_as_docker_shows_them() {
        let v = BindVolume::host("/srv/data".into(), "/data".into(), true);
        assert_eq!(v.bind_string(), "/srv/data:/data:ro");
        assert_eq!(v.inspect()["Mode"], "ro");
        assert_eq!(v.inspect()["RW"], false);
        let rw = BindVolume::host("/a".into(), "/b".into(), false);
        assert_eq!(rw.bind_string(), "/a:/b");
    }

    #[test]
    fn a_missing_volume_is_not_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = BindVolume::host(dir.path().join("gone/_data"), "/d".into(), false);
        v.name = Some("gone".into());
        assert!(matches!(v.ensure_source(), Err(VolumeError::NotFound(_))));
        assert!(!dir.path().join("gone").exists());
        v.name = None;
        v.ensure_source().unwrap();
        assert!(v.source.is_dir());
    }

    #[test]
    fn plans_written_before_named_volumes_still_load() {
        let old = r#"{"source":"/a","destination":"/b","readonly":false}"#;
        let v: BindVolume = serde_json::from_str(old).unwrap();
        assert_eq!(v.name, None);
        assert!(!serde_json::to_string(&v).unwrap().contains("name"));
    }
}
