//! Hull's volumes on disk, laid out as Docker's local driver lays them out:
//! `<root>/volumes/<name>/_data` holds the files, `volume.json` beside it
//! the name, driver, creation time, labels and options.
//!
//! A volume appears whole or not at all (made in a staging directory, then
//! renamed in) and goes the same way (renamed out of sight, then deleted).
//! Creating and removing volumes, and creating a container that mounts
//! one, happen under the store's lock ([`VolumeLock`]), so that a volume
//! is never removed between the check that no container uses it and its
//! removal.

use super::{io_err, VolumeError};
use crate::lockfile::LockFile;
use crate::staging;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Docker's only built-in volume driver, and Hull's only one.
pub const LOCAL_DRIVER: &str = "local";

/// The label Docker (23+) puts on anonymous volumes; `rm -v` and `run
/// --rm` remove the volumes that carry it.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

/// The metadata file beside a volume's `_data`.
const METADATA_FILE: &str = "volume.json";
/// The lock file of the store.
const LOCK_FILE: &str = ".lock";

/// Whether `name` is a volume name Docker's local driver accepts:
/// `[a-zA-Z0-9][a-zA-Z0-9_.-]+`. Such a name is one path component, never
/// `.` or `..`.
pub fn is_valid_name(name: &str) -> bool {
    name.len() >= 2 && crate::container::is_valid_name(name)
}

/// [`is_valid_name`], with Docker's error for a name it refuses.
pub(super) fn check_name(name: &str) -> Result<(), VolumeError> {
    if name.len() == 1 && crate::container::is_valid_name(name) {
        return Err(VolumeError::NameTooShort(name.to_string()));
    }
    if !is_valid_name(name) {
        return Err(VolumeError::InvalidName(name.to_string()));
    }
    Ok(())
}

/// What `volume.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Metadata {
    name: String,
    driver: String,
    created_at: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    options: BTreeMap<String, String>,
}

/// A volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// Its name.
    pub name: String,
    /// `local`.
    pub driver: String,
    /// When it was made (RFC 3339).
    pub created_at: String,
    /// `--label`s (and [`ANONYMOUS_LABEL`] on an anonymous one).
    pub labels: BTreeMap<String, String>,
    /// Driver options (none: `-o` is not taken).
    pub options: BTreeMap<String, String>,
    /// Its `_data` directory, on the host.
    pub mountpoint: PathBuf,
}

impl Volume {
    /// Whether it was made for one container (`-v /path`, an image's
    /// `VOLUME`), to go with it.
    pub fn is_anonymous(&self) -> bool {
        self.labels.contains_key(ANONYMOUS_LABEL)
    }

    /// As `docker volume inspect` shows it.
    pub fn inspect(&self) -> serde_json::Value {
        serde_json::json!({
            "CreatedAt": self.created_at,
            "Driver": self.driver,
            "Labels": self.labels,
            "Mountpoint": self.mountpoint,
            "Name": self.name,
            "Options": if self.options.is_empty() { serde_json::Value::Null } else { serde_json::json!(self.options) },
            "Scope": "local",
        })
    }
}

/// The store's lock, held while volumes are made or removed and while a
/// container that mounts volumes is created.
#[derive(Debug)]
pub struct VolumeLock {
    _lock: LockFile,
}

/// The volumes under `<root>/volumes`.
#[derive(Debug, Clone)]
pub struct VolumeStore {
    dir: PathBuf,
}

impl VolumeStore {
    /// Opens (creating) the store under `root`.
    pub fn open(root: &Path) -> Result<Self, VolumeError> {
        let dir = root.join("volumes");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io_err("creating", &dir))?;
        Ok(Self { dir })
    }

    /// Takes the store's lock (blocking while another `hull` holds it), and
    /// sweeps what killed `hull`s left half made or half removed.
    pub fn lock(&self) -> Result<VolumeLock, VolumeError> {
        let path = self.dir.join(LOCK_FILE);
        let lock = LockFile::acquire(&path).map_err(io_err("locking", &path))?;
        staging::sweep_abandoned(&self.dir);
        Ok(VolumeLock { _lock: lock })
    }

    /// A volume's directory (`name` must be valid).
    fn dir_of(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Volume `name`.
    pub fn get(&self, name: &str) -> Result<Volume, VolumeError> {
        if !is_valid_name(name) {
            return Err(VolumeError::NotFound(name.to_string()));
        }
        let path = self.dir_of(name).join(METADATA_FILE);
        let data = match fs::read(&path) {
            Ok(data) => data,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(VolumeError::NotFound(name.to_string()))
            }
            Err(err) => return Err(io_err("reading", &path)(err)),
        };
        let metadata: Metadata = serde_json::from_slice(&data)
            .map_err(|source| VolumeError::Corrupt { path, source })?;
        Ok(Volume {
            // The directory's name is the truth; the file only echoes it.
            name: name.to_string(),
            driver: metadata.driver,
            created_at: metadata.created_at,
            labels: metadata.labels,
            options: metadata.options,
            mountpoint: self.dir_of(name).join("_data"),
        })
    }

    /// Every volume, by name.
    pub fn list(&self) -> Result<Vec<Volume>, VolumeError> {
        let mut volumes = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_err("reading", &self.dir))? {
            let entry = entry.map_err(io_err("reading", &self.dir))?;
            let Some(name) = entry.file_name().to_str().map(String::from) else {
                continue;
            };
            if !is_valid_name(&name) {
                continue; // the lock, staging directories
            }
            match self.get(&name) {
                Ok(volume) => volumes.push(volume),
                // Removed meanwhile.
                Err(VolumeError::NotFound(_)) => {}
                Err(err) => tracing::warn!("volume {name}: {err}"),
            }
        }
        volumes.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(volumes)
    }

    /// Makes volume `name` with `labels`, or finds it made already (as
    /// `docker volume create`, which answers an existing name with it).
    /// Returns it and whether it is new.
    pub fn create(
        &self,
        _lock: &VolumeLock,
        name: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<(Volume, bool), VolumeError> {
        check_name(name)?;
        match self.get(name) {
            Ok(volume) => return Ok((volume, false)),
            Err(VolumeError::NotFound(_)) => {}
            Err(err) => return Err(err),
        }
        let staging = staging::creating(&self.dir, name);
        let made = (|| {
            let data = staging.join("_data");
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(&data)
                .map_err(io_err("creating", &data))?;
            // Whatever the umask: the container's users must reach it.
            fs::set_permissions(&data, fs::Permissions::from_mode(0o755))
                .map_err(io_err("creating", &data))?;
            let metadata = Metadata {
                name: name.to_string(),
                driver: LOCAL_DRIVER.to_string(),
                created_at: crate::timefmt::now(),
                labels,
                options: BTreeMap::new(),
            };
            let encoded =
                serde_json::to_vec_pretty(&metadata).map_err(|source| VolumeError::Corrupt {
                    path: staging.join(METADATA_FILE),
                    source,
                })?;
            // (Staged: the rename below makes it appear whole.)
            let file = staging.join(METADATA_FILE);
            fs::write(&file, encoded).map_err(io_err("writing", &file))?;
            let dir = self.dir_of(name);
            fs::rename(&staging, &dir).map_err(io_err("creating", &dir))
        })();
        if let Err(err) = made {
            let _ = fs::remove_dir_all(&staging);
            return Err(err);
        }
        tracing::debug!("created volume {name}");
        Ok((self.get(name)?, true))
    }

    /// Removes volume `name` and its files: out of sight in one rename,
    /// then deleted.
    pub fn remove(&self, _lock: &VolumeLock, name: &str) -> Result<(), VolumeError> {
        if !is_valid_name(name) {
            return Err(VolumeError::NotFound(name.to_string()));
        }
        let dir = self.dir_of(name);
        let doomed = staging::removing(&self.dir, name);
        match fs::rename(&dir, &doomed) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(VolumeError::NotFound(name.to_string()))
            }
            Err(err) => return Err(io_err("removing", &dir)(err)),
        }
        fs::remove_dir_all(&doomed).map_err(io_err("removing", &doomed))?;
        tracing::debug!("removed volume {name}");
        Ok(())
    }

    /// The bytes of the regular files in volume `name` (walked by
    /// descriptors: a running guest may be changing them).
    pub fn size(&self, name: &str) -> u64 {
        let mut total = 0u64;
        let data = self.dir_of(name).join("_data");
        let walked = crate::copy::walk(&data, &mut |entry| {
            if entry.stat.st_mode & libc::S_IFMT == libc::S_IFREG {
                total += u64::try_from(entry.stat.st_size).unwrap_or(0);
            }
        });
        if let Err(err) = walked {
            tracing::debug!("sizing volume {name}: {err}");
        }
        total
    }

    /// Whether volume `name` holds no files yet.
    pub fn is_empty(&self, name: &str) -> bool {
        fs::read_dir(self.dir_of(name).join("_data"))
            .map(|mut entries| entries.next().is_none())
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dockers() {
        for good in ["data", "my_vol-1.2", "0a", "A."] {
            assert!(is_valid_name(good), "{good}");
        }
        for bad in ["", "a", "-a", ".a", "..", "a/b", "../x", "a b", "a:b", "é1"] {
            assert!(!is_valid_name(bad), "{bad}");
        }
        assert!(matches!(check_name("a"), Err(VolumeError::NameTooShort(_))));
        assert!(matches!(check_name(".."), Err(VolumeError::InvalidName(_))));
    }

    #[test]
    fn volumes_are_made_found_listed_and_removed() {
        let root = tempfile::tempdir().unwrap();
        let store = VolumeStore::open(root.path()).unwrap();
        let lock = store.lock().unwrap();
        let labels = BTreeMap::from([("k".to_string(), "v".to_string())]);
        let (made, new) = store.create(&lock, "data", labels.clone()).unwrap();
        assert!(new);
        assert_eq!(made.mountpoint, root.path().join("volumes/data/_data"));
        assert!(made.mountpoint.is_dir());
        assert_eq!(made.labels, labels);
        assert!(!made.is_anonymous());
        // Again: the same volume, not a new one.
        let (again, new) = store.create(&lock, "data", BTreeMap::new()).unwrap();
        assert!(!new);
        assert_eq!(again, made);
        store.create(&lock, "other", BTreeMap::new()).unwrap();
        let names: Vec<String> = store.list().unwrap().into_iter().map(|v| v.name).collect();
        assert_eq!(names, ["data", "other"]);
        assert!(store.is_empty("data"));
        fs::write(made.mountpoint.join("f"), b"12345").unwrap();
        assert_eq!(store.size("data"), 5);
        assert!(!store.is_empty("data"));

        let shown = made.inspect();
        assert_eq!(shown["Driver"], "local");
        assert_eq!(shown["Scope"], "local");
        assert_eq!(shown["Labels"]["k"], "v");
        assert_eq!(shown["Name"], "data");

        store.remove(&lock, "data").unwrap();
        assert!(matches!(store.get("data"), Err(VolumeError::NotFound(_))));
        assert!(matches!(
            store.remove(&lock, "data"),
            Err(VolumeError::NotFound(_))
        ));
        assert_eq!(fs::read_dir(store.dir.clone()).unwrap().count(), 2); // other, .lock
    }

    #[test]
    fn names_never_leave_the_store() {
        let root = tempfile::tempdir().unwrap();
        let store = VolumeStore::open(root.path()).unwrap();
        let lock = store.lock().unwrap();
        fs::create_dir_all(root.path().join("outside")).unwrap();
        for hostile in ["../outside", "..", "/etc", "a/../../outside"] {
            assert!(store.create(&lock, hostile, BTreeMap::new()).is_err());
            assert!(matches!(store.get(hostile), Err(VolumeError::NotFound(_))));
            assert!(store.remove(&lock, hostile).is_err());
        }
        assert!(root.path().join("outside").exists());
    }

    #[test]
    fn what_a_dead_hull_left_is_swept() {
        let root = tempfile::tempdir().unwrap();
        let store = VolumeStore::open(root.path()).unwrap();
        // No process has pid 2^22 + 1 (above pid_max's ceiling).
        let abandoned = store.dir.join(".creating-4194305-data");
        fs::create_dir_all(abandoned.join("_data")).unwrap();
        let _lock = store.lock().unwrap();
        assert!(!abandoned.exists());
        assert!(store.list().unwrap().is_empty());
    }

    #[test]
    fn the_lock_excludes_other_holders() {
        let root = tempfile::tempdir().unwrap();
        let store = VolumeStore::open(root.path()).unwrap();
        let held = store.lock().unwrap();
        let path = store.dir.join(LOCK_FILE);
        assert!(LockFile::try_acquire(&path).unwrap().is_none());
        drop(held);
        assert!(LockFile::try_acquire(&path).unwrap().is_some());
    }
}
