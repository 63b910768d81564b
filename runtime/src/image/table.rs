//! `images.json`: which images the store holds and which references point
//! at them. Replaced atomically; writers serialise on an exclusive flock of
//! `<root>/lock`, readers need no lock since they always see a whole file.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::fsutil;
use super::{Digest, ImageError};

/// File name of the table under the store root.
const TABLE_FILE: &str = "images.json";
/// File name of the writers' lock under the store root.
const LOCK_FILE: &str = "lock";

/// The content of `images.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct ImageTable {
    /// Full normalised reference (`docker.io/library/busybox:latest`) →
    /// manifest digest.
    #[serde(default)]
    pub references: BTreeMap<String, Digest>,
    /// Manifest digest → what we know about that image.
    #[serde(default)]
    pub images: BTreeMap<Digest, ImageRecord>,
}

/// One image, as recorded when it was loaded.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ImageRecord {
    /// The config blob's digest: the image id.
    pub config: Digest,
    /// Layer diff_ids, bottom first.
    pub diff_ids: Vec<Digest>,
    /// `created` from the config, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Sum of the unpacked layers' regular-file sizes, in bytes.
    pub size: u64,
    /// The id of the image it was made on (`hull commit`, `hull build`),
    /// as Docker's `Parent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Digest>,
}

impl ImageTable {
    /// Reads the table of the store at `root`; a missing file is an empty
    /// table (a fresh store).
    pub(crate) fn read(root: &Path) -> Result<ImageTable, ImageError> {
        let path = root.join(TABLE_FILE);
        let data = match fs::read(&path) {
            Ok(data) => data,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(ImageTable::default()),
            Err(err) => return Err(ImageError::io("read", path, err)),
        };
        serde_json::from_slice(&data).map_err(|err| ImageError::CorruptStore {
            path,
            reason: err.to_string(),
        })
    }

    /// Read-modify-write of the table under the store's exclusive lock, so
    /// concurrent `hull` processes do not lose each other's updates.
    pub(crate) fn update<T>(
        root: &Path,
        change: impl FnOnce(&mut ImageTable) -> T,
    ) -> Result<T, ImageError> {
        let lock_path = root.join(LOCK_FILE);
        let _lock = crate::lockfile::LockFile::acquire(&lock_path)
            .map_err(|e| ImageError::io("lock", &lock_path, e))?;

        let mut table = ImageTable::read(root)?;
        let result = change(&mut table);
        let data = serde_json::to_vec_pretty(&table).map_err(|err| ImageError::InvalidJson {
            what: TABLE_FILE.to_owned(),
            reason: err.to_string(),
        })?;
        fsutil::write_atomically(&root.join(TABLE_FILE), &data)?;
        Ok(result)
    }

    /// The references pointing at manifest `manifest`, sorted.
    pub(crate) fn references_to<'a>(
        &'a self,
        manifest: &'a Digest,
    ) -> impl Iterator<Item = &'a str> + 'a {
        self.references
            .iter()
            .filter(move |(_, target)| *target == manifest)
            .map(|(reference, _)| reference.as_str())
    }
}
