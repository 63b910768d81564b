//! Persisted network state: JSON files changed under an exclusive `flock`
//! and replaced atomically (temp file + fsync + rename), so that concurrent
//! `hull` processes never see a half-written file or lose an update.

use super::error::{NetworkError, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// An exclusive lock on the network state, released when dropped.
pub struct StateLock {
    _lock: crate::lockfile::LockFile,
}

impl StateLock {
    /// Blocks until `path` (created if missing, with its parent) is locked.
    pub fn acquire(path: &Path) -> Result<Self> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| NetworkError::io(format!("creating {}", parent.display()), e))?;
        }
        let lock = crate::lockfile::LockFile::acquire(path)
            .map_err(|e| NetworkError::io(format!("locking {}", path.display()), e))?;
        Ok(Self { _lock: lock })
    }
}

/// Reads a JSON state file; a missing file is `T::default()`.
pub fn read_json<T: DeserializeOwned + Default>(path: &Path) -> Result<T> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| NetworkError::CorruptState {
            path: path.to_path_buf(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(NetworkError::io(format!("reading {}", path.display()), e)),
    }
}

/// Replaces `path` with `value` as JSON, atomically: readers see the old or
/// the new file, never a mix, even if this process dies half way.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent)
        .map_err(|e| NetworkError::io(format!("creating {}", parent.display()), e))?;
    let tmp = temp_path(path);
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| NetworkError::CorruptState {
        path: path.to_path_buf(),
        source,
    })?;
    let written = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    written.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        NetworkError::io(format!("writing {}", path.display()), e)
    })
}

/// `dir/.name.tmp.<pid>`: unique per process, so two writers never share
/// a temp file (they are serialised by the lock anyway).
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp.{}", std::process::id()))
}

/// Reads, changes and writes back `path` under the lock `lock`.
/// `change` returns whether it changed anything; unchanged files are not
/// rewritten. Nothing is written if `change` fails.
pub fn update_json<T, R>(
    path: &Path,
    lock: &Path,
    change: impl FnOnce(&mut T) -> Result<(bool, R)>,
) -> Result<R>
where
    T: Serialize + DeserializeOwned + Default,
{
    let _guard = StateLock::acquire(lock)?;
    let mut value: T = read_json(path)?;
    let (changed, result) = change(&mut value)?;
    if changed {
        write_json(path, &value)?;
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_is_default_and_roundtrips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/x.json");
        let v: Vec<u32> = read_json(&path).unwrap();
        assert!(v.is_empty());
        write_json(&path, &vec![1u32, 2]).unwrap();
        assert_eq!(read_json::<Vec<u32>>(&path).unwrap(), vec![1, 2]);
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "temp file left behind: {leftovers:?}");
    }

    #[test]
    fn corrupt_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        fs::write(&path, "{not json").unwrap();
        let err = read_json::<Vec<u32>>(&path).unwrap_err();
        assert!(
            err.to_string().starts_with("corrupt network state file"),
            "{err}"
        );
    }

    #[test]
    fn update_skips_write_when_unchanged_or_failed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        let lock = dir.path().join("x.lock");
        update_json::<Vec<u32>, ()>(&path, &lock, |_| Ok((false, ()))).unwrap();
        assert!(!path.exists());
        let failed = update_json::<Vec<u32>, ()>(&path, &lock, |v| {
            v.push(1);
            Err(NetworkError::NoFreeSubnet)
        });
        assert!(failed.is_err() && !path.exists());
        update_json::<Vec<u32>, ()>(&path, &lock, |v| {
            v.push(7);
            Ok((true, ()))
        })
        .unwrap();
        assert_eq!(read_json::<Vec<u32>>(&path).unwrap(), vec![7]);
    }
}
