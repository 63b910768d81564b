//! A log's files, and appending to them with Docker's json-file rotation:
//! when the next entry would take `<log>` past `max-size`, `<log>` becomes
//! `<log>.1`, `<log>.1` becomes `<log>.2`, … and what would be
//! `<log>.<max-file>` is deleted; with `max-file=1` the log starts afresh.
//! A new `<log>` is created for the entry (a new file, never a truncated
//! one, so that a reader holding the old one reads it to its end).
//!
//! Readers list and open the files under a shared [`RotationLock`], and a
//! rotation happens under an exclusive one, so that a reader never sees
//! the files half shifted. Readers hold it only while they list and open;
//! a rotation waits for them a little ([`READER_PATIENCE`]), then, should
//! a reader hang, rotates regardless: the log stays bounded.

use nix::fcntl::{Flock, FlockArg};
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a rotation waits for readers listing the files.
pub const READER_PATIENCE: Duration = Duration::from_millis(100);
/// How often a waiting rotation tries the lock again.
const LOCK_RETRY: Duration = Duration::from_millis(1);

/// The `n`th rotated file of the log at `path`: `<log>.<n>`.
pub fn rotated_path(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// The rotated files of the log at `path` that exist, by number, newest
/// (`<log>.1`) first.
fn rotated_files(path: &Path) -> io::Result<Vec<(u32, PathBuf)>> {
    let Some(name) = path.file_name() else {
        return Ok(Vec::new());
    };
    let dir = log_dir(path);
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let mut rotated = Vec::new();
    for entry in entries {
        let file_name = entry?.file_name();
        if let Some(n) = rotation_number(name, &file_name) {
            rotated.push((n, dir.join(&file_name)));
        }
    }
    rotated.sort_unstable_by_key(|(n, _)| *n);
    Ok(rotated)
}

/// `n` when `file_name` is `<name>.<n>`, `n` ≥ 1 written without leading zeros.
fn rotation_number(name: &OsStr, file_name: &OsStr) -> Option<u32> {
    let suffix = file_name
        .as_bytes()
        .strip_prefix(name.as_bytes())?
        .strip_prefix(b".")?;
    let text = std::str::from_utf8(suffix).ok()?;
    let n: u32 = text.parse().ok()?;
    (n >= 1 && n.to_string() == text).then_some(n)
}

/// The files of the log at `path` that exist, oldest first: `<log>.<n>`, …,
/// `<log>.1`, then `<log>`.
pub fn log_files(path: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = rotated_files(path)?
        .into_iter()
        .rev()
        .map(|(_, path)| path)
        .collect();
    if path.exists() {
        files.push(path.to_path_buf());
    }
    Ok(files)
}

/// The directory of the log at `path`.
fn log_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// A `flock` of a log's directory: shared while a reader lists and opens
/// the log's files, exclusive while the writer rotates them.
#[derive(Debug)]
pub struct RotationLock {
    _lock: Flock<File>,
}

impl RotationLock {
    /// Waits until no rotation of the log at `path` is under way, and
    /// keeps one from starting until dropped.
    pub fn shared(path: &Path) -> io::Result<Self> {
        let dir = File::open(log_dir(path))?;
        let lock = Flock::lock(dir, FlockArg::LockShared).map_err(|(_, errno)| errno)?;
        Ok(Self { _lock: lock })
    }

    /// The lock for rotating the log at `path`, once readers are done with
    /// it; `None` if they are not within [`READER_PATIENCE`] (or it cannot
    /// be taken at all).
    fn exclusive(path: &Path) -> Option<Self> {
        let deadline = Instant::now() + READER_PATIENCE;
        loop {
            match Self::try_exclusive(path) {
                Ok(None) if Instant::now() < deadline => std::thread::sleep(LOCK_RETRY),
                Ok(lock) => return lock,
                Err(err) => {
                    tracing::debug!("locking {} to rotate it: {err}", path.display());
                    return None;
                }
            }
        }
    }

    /// The lock for rotating the log at `path`; `None` while a reader holds it.
    fn try_exclusive(path: &Path) -> io::Result<Option<Self>> {
        let dir = File::open(log_dir(path))?;
        match Flock::lock(dir, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Some(Self { _lock: lock })),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, errno)) => Err(errno.into()),
        }
    }
}

/// Opens (creating) the log at `path` for appending.
fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Removes `path`, which may be gone already.
fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

/// A log being appended to, rotated as its limits say.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    file: File,
    /// Bytes in `file`.
    size: u64,
    /// Rotate before the file would grow past this (`None`: never).
    max_size: Option<u64>,
    /// Files kept, the one written included.
    max_file: u32,
}

impl RotatingFile {
    /// Opens the log at `path` for appending, creating it; what it holds
    /// already counts towards `max_size`.
    pub fn open(path: &Path, max_size: Option<u64>, max_file: u32) -> io::Result<Self> {
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            max_file: max_file.max(1),
        })
    }

    /// Appends `entry` (whole lines), rotating first if it would take the
    /// file past its size. An entry larger than the limit gets a file of
    /// its own.
    pub fn write(&mut self, entry: &[u8]) -> io::Result<()> {
        let len = entry.len() as u64;
        if let Some(max_size) = self.max_size {
            if self.size > 0 && self.size.saturating_add(len) > max_size {
                self.rotate()?;
            }
        }
        self.file.write_all(entry)?;
        self.size = self.size.saturating_add(len);
        Ok(())
    }

    /// Shifts the files along (deleting those beyond `max_file`) and starts a new log.
    fn rotate(&mut self) -> io::Result<()> {
        let _no_readers = RotationLock::exclusive(&self.path);
        let keep = self.max_file - 1;
        // Highest first, so that nothing is renamed onto a file still to move.
        for (n, path) in rotated_files(&self.path)?.into_iter().rev() {
            if n >= keep {
                remove_if_present(&path)?;
            } else {
                fs::rename(&path, rotated_path(&self.path, n + 1))?;
            }
        }
        if keep == 0 {
            remove_if_present(&self.path)?;
        } else {
            fs::rename(&self.path, rotated_path(&self.path, 1))?;
        }
        self.file = open_append(&self.path)?;
        self.size = self.file.metadata()?.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(path: &Path) -> Vec<u64> {
        log_files(path)
            .unwrap()
            .iter()
            .map(|p| fs::metadata(p).unwrap().len())
            .collect()
    }

    fn text(path: &Path) -> String {
        log_files(path)
            .unwrap()
            .iter()
            .map(|p| fs::read_to_string(p).unwrap())
            .collect()
    }

    #[test]
    fn rotation_keeps_max_file_files_of_max_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut log = RotatingFile::open(&path, Some(10), 3).unwrap();
        for line in [
            "aaaa\n", "bbbb\n", "cccc\n", "dddd\n", "eeee\n", "ffff\n", "gggg\n",
        ] {
            log.write(line.as_bytes()).unwrap();
        }
        assert_eq!(
            log_files(&path).unwrap(),
            [rotated_path(&path, 2), rotated_path(&path, 1), path.clone()]
        );
        assert_eq!(sizes(&path), [10, 10, 5]);
        assert_eq!(text(&path), "cccc\ndddd\neeee\nffff\ngggg\n");
    }

    #[test]
    fn one_file_starts_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut log = RotatingFile::open(&path, Some(8), 1).unwrap();
        log.write(b"one\n").unwrap();
        log.write(b"two\n").unwrap();
        let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&fs::metadata(p).unwrap());
        let before = inode(&path);
        log.write(b"three\n").unwrap();
        assert_eq!(log_files(&path).unwrap(), std::slice::from_ref(&path));
        assert_eq!(fs::read_to_string(&path).unwrap(), "three\n");
        assert_ne!(inode(&path), before, "a new file, not a truncated one");
    }

    #[test]
    fn no_rotation_without_max_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut log = RotatingFile::open(&path, None, 5).unwrap();
        for _ in 0..100 {
            log.write(b"0123456789\n").unwrap();
        }
        assert_eq!(sizes(&path), [1100]);
    }

    #[test]
    fn a_big_entry_gets_a_file_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut log = RotatingFile::open(&path, Some(10), 3).unwrap();
        log.write(b"a\n").unwrap();
        log.write(b"0123456789abcdef\n").unwrap();
        log.write(b"b\n").unwrap();
        assert_eq!(sizes(&path), [2, 17, 2]);
    }

    #[test]
    fn a_rotation_waits_for_a_reader_listing_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut log = RotatingFile::open(&path, Some(10), 2).unwrap();
        log.write(b"aaaa\nbbbb\n").unwrap();
        let reading = RotationLock::shared(&path).unwrap();
        let reader = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(40));
            drop(reading);
        });
        let started = Instant::now();
        log.write(b"cccc\n").unwrap();
        assert!(started.elapsed() >= Duration::from_millis(30));
        assert_eq!(sizes(&path), [10, 5]);
        reader.join().unwrap();
    }

    #[test]
    fn a_hung_reader_holds_a_rotation_up_only_a_little() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut log = RotatingFile::open(&path, Some(10), 2).unwrap();
        log.write(b"aaaa\nbbbb\n").unwrap();
        let _hung = RotationLock::shared(&path).unwrap();
        let started = Instant::now();
        log.write(b"cccc\n").unwrap();
        assert!(started.elapsed() >= READER_PATIENCE);
        assert_eq!(sizes(&path), [10, 5]);
    }

    #[test]
    fn what_is_there_counts_and_extra_files_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        fs::write(&path, "12345678\n").unwrap();
        // Left by a larger max-file, or a gap: all shifted or deleted in turn.
        fs::write(rotated_path(&path, 2), "old2\n").unwrap();
        fs::write(rotated_path(&path, 5), "old5\n").unwrap();
        fs::write(dir.path().join("c-json.log.01"), "not ours\n").unwrap();
        let mut log = RotatingFile::open(&path, Some(10), 3).unwrap();
        log.write(b"next\n").unwrap();
        assert_eq!(
            log_files(&path).unwrap(),
            [rotated_path(&path, 1), path.clone()]
        );
        assert_eq!(text(&path), "12345678\nnext\n");
        assert!(dir.path().join("c-json.log.01").exists());
    }
}
