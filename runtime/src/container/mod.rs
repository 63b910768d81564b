//! Containers on disk, laid out as Docker lays them out:
//! `<root>/containers/<id>/config.v2.json` (config and state, in the shape
//! `docker inspect` prints), `hostconfig.json`, `hostname`, and the
//! `<id>-json.log` log. Every write is atomic (write a temporary file, then
//! rename), so a crash at any point leaves a record `ps` can read and
//! `rm -f` can clean.

mod names;
mod reconcile;
mod record;

pub use names::generate_name;
pub use reconcile::{freeze_lock_path, log_path, monitor_alive, reconcile, settled_record};
pub use record::{
    ContainerConfig, ContainerRecord, ContainerState, HostConfig, RestartPolicy, RuntimeInfo,
    Status,
};

use crate::staging;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// A container store operation failed.
#[derive(Debug, Error)]
pub enum ContainerError {
    /// No container has that id, id prefix or name.
    #[error("No such container: {0}")]
    NotFound(String),
    /// An id prefix matches several containers.
    #[error("Multiple IDs found with provided prefix: {0}")]
    Ambiguous(String),
    /// The name is taken.
    #[error("Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name.")]
    NameInUse {
        /// The name.
        name: String,
        /// The container holding it.
        id: String,
    },
    /// The name has characters Docker refuses.
    #[error("Invalid container name ({0}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    InvalidName(String),
    /// Reading or writing the store failed.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A record could not be parsed.
    #[error("container record {} is corrupt", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
}

/// The record's file in a container's directory, as Docker names it.
const RECORD_FILE: &str = "config.v2.json";

fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> ContainerError + 'a {
    move |source| ContainerError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `data` to `path` atomically: a temporary file beside it, synced, renamed over it.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), ContainerError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let mut file = fs::File::create(&tmp).map_err(io_err("creating", &tmp))?;
    file.write_all(data).map_err(io_err("writing", &tmp))?;
    file.sync_all().map_err(io_err("syncing", &tmp))?;
    fs::rename(&tmp, path).map_err(io_err("renaming into place", path))
}

/// Whether `name` is a name Docker would accept.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// The containers under `<root>/containers`.
#[derive(Debug, Clone)]
pub struct ContainerStore {
    dir: PathBuf,
}

impl ContainerStore {
    /// Opens (creating) the store under `root`.
    pub fn open(root: &Path) -> Result<Self, ContainerError> {
        let dir = root.join("containers");
        fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        let store = Self { dir };
        staging::sweep_abandoned(&store.dir);
        Ok(store)
    }

    /// A container's directory.
    pub fn dir_of(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// The record's file.
    fn record_path(&self, id: &str) -> PathBuf {
        self.dir_of(id).join(RECORD_FILE)
    }

    /// Stores a new container with the files that go beside its record
    /// (name, contents): it appears whole, in one rename, or not at all (a
    /// `hull` killed meanwhile leaves a staging directory the next open
    /// sweeps). Fails if its name is taken.
    pub fn create(
        &self,
        record: &ContainerRecord,
        files: &[(&str, Vec<u8>)],
    ) -> Result<(), ContainerError> {
        let staging = staging::creating(&self.dir, &record.id);
        let staged = (|| {
            fs::create_dir_all(&staging).map_err(io_err("creating", &staging))?;
            let data =
                serde_json::to_vec_pretty(record).map_err(|source| ContainerError::Corrupt {
                    path: self.record_path(&record.id),
                    source,
                })?;
            write_atomic(&staging.join(RECORD_FILE), &data)?;
            for (name, data) in files {
                write_atomic(&staging.join(name), data)?;
            }
            let dir = self.dir_of(&record.id);
            fs::rename(&staging, &dir).map_err(io_err("creating", &dir))
        })();
        if let Err(err) = staged {
            let _ = fs::remove_dir_all(&staging);
            return Err(err);
        }
        if let Err(err) = self.claim_name(&record.id, &record.name) {
            self.remove_dir(&record.id)?;
            return Err(err);
        }
        Ok(())
    }

    /// `hull rename`: gives container `id` the name `new_name` (which must
    /// be free), then lets its old name go.
    pub fn rename(&self, id: &str, new_name: &str) -> Result<(), ContainerError> {
        let mut record = self.load(id)?;
        let old = record.name.trim_start_matches('/').to_string();
        self.claim_name(id, new_name)?;
        record.name = format!("/{}", new_name.trim_start_matches('/'));
        self.save(&record)?;
        let old_claim = self.dir.join(".names").join(&old);
        if self.claims(&old, id) {
            let _ = fs::remove_file(old_claim);
        }
        Ok(())
    }

    /// Whether name `name` is claimed by container `id`.
    fn claims(&self, name: &str, id: &str) -> bool {
        fs::read_link(self.dir.join(".names").join(name.trim_start_matches('/')))
            .is_ok_and(|target| target.as_os_str() == id)
    }

    /// Claims `name` for container `id`; fails if another container has it.
    fn claim_name(&self, id: &str, name: &str) -> Result<(), ContainerError> {
        let name = name.trim_start_matches('/');
        if !is_valid_name(name) {
            return Err(ContainerError::InvalidName(name.to_string()));
        }
        // Names are claimed by creating a link in names/: atomic across processes.
        let names = self.dir.join(".names");
        fs::create_dir_all(&names).map_err(io_err("creating", &names))?;
        let claim = names.join(name);
        if let Err(err) = std::os::unix::fs::symlink(id, &claim) {
            if err.kind() == std::io::ErrorKind::AlreadyExists {
                let holder = fs::read_link(&claim)
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                if self.dir_of(&holder).exists() {
                    return Err(ContainerError::NameInUse {
                        name: name.to_string(),
                        id: holder,
                    });
                }
                // A claim left by a container that is gone: take it over.
                let _ = fs::remove_file(&claim);
                std::os::unix::fs::symlink(id, &claim).map_err(io_err("claiming name", &claim))?;
            } else {
                return Err(ContainerError::Io {
                    action: "claiming name",
                    path: claim,
                    source: err,
                });
            }
        }
        Ok(())
    }

    /// Writes a container's record. A copy read before a `rename` (the
    /// monitor's) keeps the new name: the name a container holds is the
    /// one claimed for it.
    pub fn save(&self, record: &ContainerRecord) -> Result<(), ContainerError> {
        let mut record = std::borrow::Cow::Borrowed(record);
        if !self.claims(&record.name, &record.id) {
            if let Ok(current) = self.load(&record.id) {
                if self.claims(&current.name, &record.id) {
                    record.to_mut().name = current.name;
                }
            }
        }
        let data =
            serde_json::to_vec_pretty(&*record).map_err(|source| ContainerError::Corrupt {
                path: self.record_path(&record.id),
                source,
            })?;
        write_atomic(&self.record_path(&record.id), &data)
    }

    /// Reads a container's record by full id.
    pub fn load(&self, id: &str) -> Result<ContainerRecord, ContainerError> {
        let path = self.record_path(id);
        let data = fs::read(&path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => ContainerError::NotFound(id.to_string()),
            _ => ContainerError::Io {
                action: "reading",
                path: path.clone(),
                source,
            },
        })?;
        serde_json::from_slice(&data).map_err(|source| ContainerError::Corrupt { path, source })
    }

    /// Every container's id.
    pub fn ids(&self) -> Result<Vec<String>, ContainerError> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_err("listing", &self.dir))? {
            let entry = entry.map_err(io_err("listing", &self.dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
                ids.push(name);
            }
        }
        Ok(ids)
    }

    /// Every readable record, newest first.
    pub fn list(&self) -> Result<Vec<ContainerRecord>, ContainerError> {
        let mut records: Vec<ContainerRecord> = self
            .ids()?
            .iter()
            .filter_map(|id| self.load(id).ok())
            .collect();
        records.sort_by(|a, b| b.created.cmp(&a.created));
        Ok(records)
    }

    /// The full id of a container given by full id, unique id prefix or name.
    pub fn resolve(&self, reference: &str) -> Result<String, ContainerError> {
        let name = reference.trim_start_matches('/');
        if let Ok(target) = fs::read_link(self.dir.join(".names").join(name)) {
            let id = target.display().to_string();
            if self.dir_of(&id).join("config.v2.json").exists() {
                return Ok(id);
            }
        }
        if reference.is_empty() || !reference.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ContainerError::NotFound(reference.to_string()));
        }
        let matches: Vec<String> = self
            .ids()?
            .into_iter()
            .filter(|id| id.starts_with(reference))
            .collect();
        match matches.len() {
            0 => Err(ContainerError::NotFound(reference.to_string())),
            1 => Ok(matches.into_iter().next().unwrap_or_default()),
            _ => Err(ContainerError::Ambiguous(reference.to_string())),
        }
    }

    /// Removes a container's directory and its name.
    pub fn remove(&self, record: &ContainerRecord) -> Result<(), ContainerError> {
        let claim = self
            .dir
            .join(".names")
            .join(record.name.trim_start_matches('/'));
        if fs::read_link(&claim)
            .map(|p| p.display().to_string() == record.id)
            .unwrap_or(false)
        {
            let _ = fs::remove_file(&claim);
        }
        self.remove_dir(&record.id)
    }

    /// Takes container `id`'s directory out of sight in one step (readers
    /// see the whole container or nothing), then deletes it; what a crash
    /// leaves is swept on open.
    fn remove_dir(&self, id: &str) -> Result<(), ContainerError> {
        let dir = self.dir_of(id);
        let doomed = staging::removing(&self.dir, id);
        match fs::rename(&dir, &doomed) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(ContainerError::Io {
                    action: "removing",
                    path: dir,
                    source,
                })
            }
        }
        fs::remove_dir_all(&doomed).map_err(io_err("removing", &doomed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, name: &str) -> ContainerRecord {
        ContainerRecord::new(
            id.into(),
            name.into(),
            "sha256:abc".into(),
            "busybox".into(),
            ContainerConfig::default(),
            HostConfig::default(),
        )
    }

    #[test]
    fn create_resolve_remove() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContainerStore::open(dir.path()).unwrap();
        let a = "a".repeat(64);
        let b = format!("ab{}", "c".repeat(62));
        store.create(&record(&a, "first"), &[]).unwrap();
        store
            .create(&record(&b, "second"), &[("hostname", b"b\n".to_vec())])
            .unwrap();
        assert_eq!(fs::read(store.dir_of(&b).join("hostname")).unwrap(), b"b\n");
        assert_eq!(store.resolve("first").unwrap(), a);
        assert_eq!(store.resolve("/second").unwrap(), b);
        assert_eq!(store.resolve("aaaa").unwrap(), a);
        assert!(matches!(
            store.resolve("a"),
            Err(ContainerError::Ambiguous(_))
        ));
        assert!(matches!(
            store.resolve("nope"),
            Err(ContainerError::NotFound(_))
        ));
        assert!(matches!(
            store.create(&record(&"d".repeat(64), "first"), &[]),
            Err(ContainerError::NameInUse { .. })
        ));
        assert!(matches!(
            store.create(&record(&"e".repeat(64), "bad name"), &[]),
            Err(ContainerError::InvalidName(_))
        ));
        let loaded = store.load(&a).unwrap();
        assert_eq!(loaded.name, "/first");
        store.remove(&loaded).unwrap();
        assert!(matches!(
            store.resolve("first"),
            Err(ContainerError::NotFound(_))
        ));
        // The name is free again.
        store
            .create(&record(&"f".repeat(64), "first"), &[])
            .unwrap();
        assert_eq!(store.list().unwrap().len(), 2);
    }

    #[test]
    fn atomic_writes_leave_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
