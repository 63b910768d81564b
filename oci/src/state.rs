//! What `hull-oci` keeps of a container between its verbs, in
//! `--root/<id>/state.json`: the Hull container behind it, its bundle, and
//! its relay's pid. Hull's engine keeps the rest.

use crate::error::OciError;
use hull_runtime::config::Paths;
use hull_runtime::engine::Engine;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Hull's state root for containers made through `hull-oci` when
/// `HULL_ROOT` is not set (the `hull` CLI's is `/var/lib/hull`).
const DEFAULT_HULL_ROOT: &str = "/var/lib/hull/oci";

/// One container's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OciState {
    /// The caller's id for it.
    pub id: String,
    /// Hull's id for it.
    pub hull_id: String,
    /// Its bundle.
    pub bundle: PathBuf,
    /// Its root file system.
    pub rootfs: PathBuf,
    /// When it was created (RFC 3339).
    pub created: String,
    /// The relay's pid (0 until it runs).
    pub pid: i32,
    /// The relay, told apart from a later process with its pid.
    #[serde(default)]
    pub relay: Option<hull_runtime::process::ProcessIdentity>,
    /// The spec's annotations, as `state` reports them.
    #[serde(default)]
    pub annotations: std::collections::HashMap<String, String>,
}

/// The `--root` directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// The state directory `root`.
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// The directory of container `id`; ids that are not one path
    /// component are refused.
    pub fn dir_of(&self, id: &str) -> Result<PathBuf, OciError> {
        let valid = !id.is_empty()
            && id.len() <= 1024
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+'))
            && !id.starts_with('.');
        if !valid {
            return Err(OciError::Invalid(format!("invalid container id {id:?}")));
        }
        Ok(self.root.join(id))
    }

    /// Container `id`'s record.
    pub fn load(&self, id: &str) -> Result<OciState, OciError> {
        let path = self.dir_of(id)?.join("state.json");
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(OciError::NotFound(id.to_string()))
            }
            Err(e) => return Err(OciError::io("reading", &path)(e)),
        };
        serde_json::from_slice(&text).map_err(|e| {
            OciError::io("reading", &path)(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        })
    }

    /// Makes container `id`'s directory; an existing one is an error.
    pub fn create(&self, id: &str) -> Result<PathBuf, OciError> {
        let dir = self.dir_of(id)?;
        std::fs::create_dir_all(&self.root).map_err(OciError::io("creating", &self.root))?;
        match std::fs::create_dir(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(OciError::Exists(id.to_string()))
            }
            Err(e) => Err(OciError::io("creating", &dir)(e)),
        }
    }

    /// Writes `state` (whole, by rename).
    pub fn save(&self, state: &OciState) -> Result<(), OciError> {
        let dir = self.dir_of(&state.id)?;
        let text = serde_json::to_vec(state).map_err(|e| OciError::Setup(e.to_string()))?;
        write_atomically(&dir.join("state.json"), &text)
    }

    /// Removes container `id`'s directory.
    pub fn remove(&self, id: &str) -> Result<(), OciError> {
        let dir = self.dir_of(id)?;
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(OciError::io("removing", &dir)(e))
            }
            _ => Ok(()),
        }
    }
}

/// Writes `data` to `path` through a temporary file and a rename, so a
/// reader sees all of it or none (as runc writes its pid file).
pub fn write_atomically(path: &Path, data: &[u8]) -> Result<(), OciError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = path.with_file_name(format!(".{name}.{}", std::process::id()));
    std::fs::write(&temp, data).map_err(OciError::io("writing", &temp))?;
    std::fs::rename(&temp, path).map_err(OciError::io("renaming", &temp))
}

/// Hull's engine, on `HULL_ROOT` (default [`DEFAULT_HULL_ROOT`]) and
/// `HULL_RUN_DIR`, its directories made root's alone.
pub fn engine() -> Result<Engine, OciError> {
    let root = std::env::var_os("HULL_ROOT")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_HULL_ROOT), PathBuf::from);
    let paths = Paths::new(Some(root));
    paths
        .restrict()
        .map_err(OciError::io("preparing", &paths.root))?;
    Ok(Engine::new(paths))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_one_path_component() {
        let states = StateDir::new("/run/x".into());
        assert!(states.dir_of("abc-1_2.3").is_ok());
        for bad in ["", "..", ".hidden", "a/b", "a b", "a\0b"] {
            assert!(states.dir_of(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_saved_state_loads_and_goes() {
        let root = tempfile::tempdir().unwrap();
        let states = StateDir::new(root.path().join("oci"));
        states.create("c1").unwrap();
        assert!(matches!(states.create("c1"), Err(OciError::Exists(_))));
        let state = OciState {
            id: "c1".into(),
            hull_id: "f".repeat(64),
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: "2026-01-01T00:00:00Z".into(),
            pid: 42,
            relay: None,
            annotations: Default::default(),
        };
        states.save(&state).unwrap();
        assert_eq!(states.load("c1").unwrap().pid, 42);
        states.remove("c1").unwrap();
        assert!(matches!(states.load("c1"), Err(OciError::NotFound(_))));
    }
}
