//! Small filesystem helpers shared by the store: descriptor-relative opens,
//! unique temporary names, atomic file replacement and bounded reads.

use std::collections::hash_map::RandomState;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::ImageError;

/// Prefix of every temporary file or directory the store creates; anything
/// carrying it is garbage from an unfinished (or crashed) operation.
pub(crate) const TEMP_PREFIX: &str = ".tmp-";

/// `openat(dir, name, flags, mode)` returning an owned descriptor.
pub(crate) fn open_at(
    dir: BorrowedFd<'_>,
    name: &[u8],
    flags: OFlag,
    mode: Mode,
) -> nix::Result<OwnedFd> {
    let raw = nix::fcntl::openat(Some(dir.as_raw_fd()), name, flags | OFlag::O_CLOEXEC, mode)?;
    // SAFETY: `raw` was just returned by a successful openat(2), so it is an
    // open descriptor, and nothing else in the process knows or owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// A name that no other process or thread of this process will pick:
/// `.tmp-<pid>-<counter>-<random>`. Callers still create with O_EXCL/mkdir
/// (which fail on a clash) rather than trusting it.
pub(crate) fn temp_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    // RandomState is seeded from the OS's randomness once per process (and
    // varied per instance), which is plenty for avoiding accidental clashes.
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(count);
    if let Ok(now) = SystemTime::now().duration_since(UNIX_EPOCH) {
        hasher.write_u128(now.as_nanos());
    }
    format!(
        "{TEMP_PREFIX}{}-{count}-{:016x}",
        std::process::id(),
        hasher.finish()
    )
}

/// Deletes a temporary file or directory when dropped, unless
/// [`TempGuard::keep`] was called: cleanup on every error path for free.
pub(crate) struct TempGuard {
    path: PathBuf,
    armed: bool,
}

impl TempGuard {
    /// Guards `path` (a file or a directory tree).
    pub(crate) fn new(path: PathBuf) -> TempGuard {
        TempGuard { path, armed: true }
    }

    /// The guarded path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Stops guarding: the path was renamed into place or must stay.
    pub(crate) fn keep(mut self) {
        self.armed = false;
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // remove_dir_all does not follow symlinks inside the tree, so a
        // hostile layer's symlinks cannot make it delete anything outside.
        let removed = match fs::symlink_metadata(&self.path) {
            Ok(meta) if meta.is_dir() => fs::remove_dir_all(&self.path),
            Ok(_) => fs::remove_file(&self.path),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(err),
        };
        if let Err(err) = removed {
            tracing::warn!(path = %self.path.display(), %err, "cannot remove temporary path");
        }
    }
}

/// Replaces `path` with `data` atomically: write a temporary file beside it,
/// fsync, rename over, fsync the directory. Readers see the old or the new
/// content, never a mix, even across a crash.
pub(crate) fn write_atomically(path: &Path, data: &[u8]) -> Result<(), ImageError> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let (temp, mut file) = create_temp_in(dir)?;
    file.write_all(data)
        .and_then(|()| file.sync_all())
        .map_err(|e| ImageError::io("write", temp.path(), e))?;
    fs::rename(temp.path(), path).map_err(|e| ImageError::io("replace", path, e))?;
    temp.keep();
    sync_dir(dir)
}

/// fsyncs a directory so a rename into it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), ImageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ImageError::io("sync directory", dir, e))
}

/// Reads all of `reader`, failing with [`ImageError::TooLarge`] (naming
/// `what`) past `limit` bytes instead of growing without bound.
pub(crate) fn read_bounded(
    reader: impl Read,
    limit: u64,
    what: &str,
) -> Result<Vec<u8>, io::Error> {
    let mut data = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut data)?;
    if data.len() as u64 > limit {
        return Err(io::Error::other(TooLargeMarker {
            what: what.to_owned(),
            limit,
        }));
    }
    Ok(data)
}

/// Carried inside the `io::Error` of [`read_bounded`] so callers can turn it
/// into [`ImageError::TooLarge`] with [`too_large`].
#[derive(Debug)]
struct TooLargeMarker {
    what: String,
    limit: u64,
}

impl std::fmt::Display for TooLargeMarker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is larger than {} bytes", self.what, self.limit)
    }
}

impl std::error::Error for TooLargeMarker {}

/// If `err` is a size-bound failure from [`read_bounded`], the matching
/// [`ImageError::TooLarge`].
pub(crate) fn too_large(err: &io::Error) -> Option<ImageError> {
    let marker = err.get_ref()?.downcast_ref::<TooLargeMarker>()?;
    Some(ImageError::TooLarge {
        what: marker.what.clone(),
        limit: marker.limit,
    })
}

/// Creates `path` (and parents) if missing.
pub(crate) fn ensure_dir(path: &Path) -> Result<(), ImageError> {
    fs::create_dir_all(path).map_err(|e| ImageError::io("create directory", path, e))
}

/// Whether `path` names an existing directory (not following a symlink).
pub(crate) fn is_dir(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|meta| meta.is_dir())
}

/// Which side of a copy failed.
pub(crate) enum CopyFailure {
    /// Reading the source.
    Read(io::Error),
    /// Writing the destination.
    Write(io::Error),
}

/// `io::copy`, but telling read failures (hostile or truncated input) from
/// write failures (our disk).
pub(crate) fn copy_stream(
    reader: &mut impl Read,
    writer: &mut impl Write,
) -> Result<u64, CopyFailure> {
    let mut buf = vec![0u8; 128 * 1024];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(CopyFailure::Read(err)),
        };
        writer.write_all(&buf[..n]).map_err(CopyFailure::Write)?;
        total += n as u64;
    }
}

/// A new file (mode 0644) with a temporary name in `dir`, removed again
/// unless its guard is kept.
pub(crate) fn create_temp_in(dir: &Path) -> Result<(TempGuard, File), ImageError> {
    let temp = TempGuard::new(dir.join(temp_name()));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(temp.path())
        .map_err(|e| ImageError::io("create", temp.path(), e))?;
    Ok((temp, file))
}
