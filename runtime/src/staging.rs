//! Directories that appear and go whole: an entry of a store (a
//! container's directory, a volume) is made under a staging name and
//! renamed into place, and renamed away before it is deleted, so no reader
//! ever sees half of one. The staging names carry the pid of the `hull`
//! doing it; what a dead `hull` left is swept away.

use std::fs;
use std::path::{Path, PathBuf};

/// An entry being made: `.creating-<pid>-<name>`.
const CREATING_PREFIX: &str = ".creating-";
/// An entry being deleted: `.removing-<pid>-<name>`.
const REMOVING_PREFIX: &str = ".removing-";

/// Where this process makes entry `name` of the store at `dir`.
pub fn creating(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{CREATING_PREFIX}{}-{name}", std::process::id()))
}

/// Where this process moves entry `name` of the store at `dir` to delete it.
pub fn removing(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{REMOVING_PREFIX}{}-{name}", std::process::id()))
}

/// Whether a directory entry's name is a staging name (not an entry).
pub fn is_staging(name: &str) -> bool {
    name.starts_with(CREATING_PREFIX) || name.starts_with(REMOVING_PREFIX)
}

/// Deletes the staging directories in `dir` whose `hull` died.
pub fn sweep_abandoned(dir: &Path) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name
            .strip_prefix(CREATING_PREFIX)
            .or_else(|| name.strip_prefix(REMOVING_PREFIX))
        else {
            continue;
        };
        let owner = rest
            .split('-')
            .next()
            .and_then(|pid| pid.parse::<i64>().ok());
        if owner.is_some_and(|pid| !crate::process::process_alive(pid)) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_dead_hulls_staging_directories_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let mine = creating(dir.path(), "a");
        // Above the kernel's pid limit (2^22): never alive.
        let dead = dir.path().join(format!("{REMOVING_PREFIX}4194305-b"));
        let entry = dir.path().join("c");
        for d in [&mine, &dead, &entry] {
            fs::create_dir(d).unwrap();
        }
        sweep_abandoned(dir.path());
        assert!(mine.exists() && entry.exists() && !dead.exists());
        assert!(is_staging(".creating-1-x") && !is_staging("c"));
        assert_eq!(removing(dir.path(), "z").parent(), Some(dir.path()));
    }
}
