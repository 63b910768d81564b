//! Exclusive `flock` locks on lock files: how concurrent `hull` processes
//! (and monitors) take turns with shared state.
//!
//! `flock` locks belong to the open file description, so two [`LockFile`]s
//! exclude each other even inside one process (each opens the file anew),
//! and a lock goes away with its holder, however that ends.

use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// A held lock, released when dropped.
#[derive(Debug)]
pub struct LockFile {
    _lock: Flock<File>,
}

impl LockFile {
    /// Blocks until `path` (created if missing, mode 0600; its directory
    /// must exist) is locked.
    pub fn acquire(path: &Path) -> io::Result<Self> {
        let lock = Flock::lock(open(path)?, FlockArg::LockExclusive)
            .map_err(|(_, errno)| io::Error::from(errno))?;
        Ok(Self { _lock: lock })
    }

    /// Locks `path` if nobody holds it; `None` if somebody does.
    pub fn try_acquire(path: &Path) -> io::Result<Option<Self>> {
        match Flock::lock(open(path)?, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Some(Self { _lock: lock })),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, errno)) => Err(errno.into()),
        }
    }
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_exclude_each_other_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let held = LockFile::acquire(&path).unwrap();
        assert!(LockFile::try_acquire(&path).unwrap().is_none());
        drop(held);
        assert!(LockFile::try_acquire(&path).unwrap().is_some());
    }
}
