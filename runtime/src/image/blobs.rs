//! The content-addressed blob store: `blobs/sha256/<hex>`. A blob only ever
//! appears under its name once its content has been hashed and found equal
//! to that name.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};

use super::digest::{limit_exceeded, DigestReader};
use super::fsutil::{self, copy_stream, CopyFailure, TempGuard};
use super::{Digest, ImageError};

/// Bound on any one blob (compressed layers included) taken from an archive.
pub(crate) const MAX_BLOB_SIZE: u64 = 16 << 30;

/// Bound on JSON documents (index, manifest, config) read into memory.
pub(crate) const MAX_JSON_SIZE: u64 = 4 << 20;

/// `blobs/` under the store root.
#[derive(Clone, Debug)]
pub(crate) struct BlobStore {
    /// `<root>/blobs`; temporary files live here, blobs in `sha256/`.
    dir: PathBuf,
    /// The blobs this handle (and its clones) stored, which a failed load
    /// or pull takes back ([`BlobStore::take_created`]).
    created: Arc<Mutex<Vec<Digest>>>,
}

impl BlobStore {
    /// The blob store in `<root>/blobs`, creating its directories.
    pub(crate) fn open(dir: PathBuf) -> Result<BlobStore, ImageError> {
        fsutil::ensure_dir(&dir.join("sha256"))?;
        Ok(BlobStore {
            dir,
            created: Arc::default(),
        })
    }

    /// The blobs stored through this handle since the last call, which
    /// were not in the store before.
    pub(crate) fn take_created(&self) -> Vec<Digest> {
        std::mem::take(&mut *lock(&self.created))
    }

    /// Removes blob `digest` (gone already is fine).
    pub(crate) fn remove(&self, digest: &Digest) -> Result<(), ImageError> {
        let path = self.path(digest);
        match fs::remove_file(&path) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => {
                Err(ImageError::io("remove", path, err))
            }
            _ => Ok(()),
        }
    }

    /// Where the blob named `digest` lives (whether or not it exists).
    pub(crate) fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("sha256").join(digest.hex())
    }

    /// The size of blob `digest`, or `None` when the store does not have it.
    pub(crate) fn size(&self, digest: &Digest) -> Result<Option<u64>, ImageError> {
        let path = self.path(digest);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
            Ok(_) => Err(ImageError::CorruptStore {
                path,
                reason: "blob is not a regular file".to_owned(),
            }),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(ImageError::io("inspect", path, err)),
        }
    }

    /// Copies `content` into the store as blob `digest`, hashing while
    /// writing, and renames it into place only when the hash matches.
    /// Returns the blob's size. When the blob is already stored the content
    /// is still read and checked, so a corrupt archive is always reported.
    pub(crate) fn ingest(&self, digest: &Digest, content: impl Read) -> Result<u64, ImageError> {
        let final_path = self.path(digest);
        let mut reader = DigestReader::new(content, MAX_BLOB_SIZE);
        let read_error = |err: io::Error| match limit_exceeded(&err) {
            Some(limit) => ImageError::TooLarge {
                what: format!("blob {digest}"),
                limit,
            },
            None => ImageError::io("read blob from", final_path.clone(), err),
        };

        if self.size(digest)?.is_some() {
            reader.drain().map_err(read_error)?;
            let (actual, size) = reader.finish();
            check_digest(digest, actual)?;
            return Ok(size);
        }

        self.store_stream(reader, Some(digest))
            .map(|(_, size)| size)
    }

    /// Copies `content` into the store under the digest it hashes to (a
    /// legacy `docker save` archive names its files by path, not content).
    /// Returns the digest and size.
    pub(crate) fn ingest_unnamed(&self, content: impl Read) -> Result<(Digest, u64), ImageError> {
        self.store_stream(DigestReader::new(content, MAX_BLOB_SIZE), None)
    }

    /// Writes what `reader` hashes into a temporary file, then (if it is
    /// `expected`, when given) renames it to its digest's name.
    fn store_stream(
        &self,
        mut reader: DigestReader<impl Read>,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64), ImageError> {
        let (temp, mut file) = fsutil::create_temp_in(&self.dir)?;
        copy_stream(&mut reader, &mut file).map_err(|failure| match failure {
            CopyFailure::Read(err) => match limit_exceeded(&err) {
                Some(limit) => ImageError::TooLarge {
                    what: expected.map_or_else(|| "blob".to_string(), |d| format!("blob {d}")),
                    limit,
                },
                None => ImageError::io("read blob from", temp.path(), err),
            },
            CopyFailure::Write(err) => ImageError::io("write", temp.path(), err),
        })?;
        let (digest, size) = reader.finish();
        if let Some(expected) = expected {
            check_digest(expected, digest.clone())?;
        }
        if self.size(&digest)?.is_none() {
            file.sync_all()
                .map_err(|e| ImageError::io("sync", temp.path(), e))?;
            let final_path = self.path(&digest);
            fs::rename(temp.path(), &final_path)
                .map_err(|e| ImageError::io("store blob", &final_path, e))?;
            temp.keep();
            lock(&self.created).push(digest.clone());
        }
        Ok((digest, size))
    }

    /// A writer that stores blob `digest` from chunks as they arrive (a
    /// download), refusing more than `size` bytes; see [`BlobWriter`].
    pub(crate) fn writer(&self, digest: &Digest, size: u64) -> Result<BlobWriter, ImageError> {
        let (temp, file) = fsutil::create_temp_in(&self.dir)?;
        Ok(BlobWriter {
            created: self.created.clone(),
            digest: digest.clone(),
            final_path: self.path(digest),
            temp,
            file,
            hasher: Sha256::new(),
            written: 0,
            size,
        })
    }

    /// Opens blob `digest` for reading.
    pub(crate) fn open_blob(&self, digest: &Digest) -> Result<File, ImageError> {
        let path = self.path(digest);
        File::open(&path).map_err(|e| ImageError::io("open blob", path, e))
    }

    /// Reads a small blob (at most [`MAX_JSON_SIZE`]) into memory and checks
    /// it still hashes to its name; `what` names it in errors.
    pub(crate) fn read_small(&self, digest: &Digest, what: &str) -> Result<Vec<u8>, ImageError> {
        let path = self.path(digest);
        let file = self.open_blob(digest)?;
        let data = fsutil::read_bounded(file, MAX_JSON_SIZE, what).map_err(|err| {
            fsutil::too_large(&err).unwrap_or_else(|| ImageError::io("read blob", path, err))
        })?;
        check_digest(digest, Digest::of_bytes(&data))?;
        Ok(data)
    }
}

/// A blob being stored chunk by chunk: hashed as it is written, bounded by
/// the size its descriptor announced, and renamed to its name only when
/// [`BlobWriter::commit`] finds both size and digest right. Dropped
/// without a commit, it leaves nothing behind.
pub(crate) struct BlobWriter {
    created: Arc<Mutex<Vec<Digest>>>,
    digest: Digest,
    final_path: PathBuf,
    temp: TempGuard,
    file: File,
    hasher: Sha256,
    written: u64,
    size: u64,
}

impl BlobWriter {
    /// Appends `chunk`; fails once the blob grows past its announced size.
    pub(crate) fn write(&mut self, chunk: &[u8]) -> Result<(), ImageError> {
        self.written = self.written.saturating_add(chunk.len() as u64);
        if self.written > self.size {
            return Err(ImageError::BlobSizeMismatch {
                digest: self.digest.clone(),
                expected: self.size,
                actual: self.written,
            });
        }
        self.hasher.update(chunk);
        self.file
            .write_all(chunk)
            .map_err(|e| ImageError::io("write", self.temp.path(), e))
    }

    /// Bytes written so far.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// Checks size and digest, then moves the blob into place.
    pub(crate) fn commit(self) -> Result<(), ImageError> {
        if self.written != self.size {
            return Err(ImageError::BlobSizeMismatch {
                digest: self.digest,
                expected: self.size,
                actual: self.written,
            });
        }
        check_digest(&self.digest, Digest::from_hasher(self.hasher))?;
        self.file
            .sync_all()
            .map_err(|e| ImageError::io("sync", self.temp.path(), e))?;
        fs::rename(self.temp.path(), &self.final_path)
            .map_err(|e| ImageError::io("store blob", &self.final_path, e))?;
        self.temp.keep();
        lock(&self.created).push(self.digest);
        Ok(())
    }
}

/// The journal's lock (a panic while holding it cannot leave it half-made).
fn lock(created: &Mutex<Vec<Digest>>) -> std::sync::MutexGuard<'_, Vec<Digest>> {
    created
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn check_digest(expected: &Digest, actual: Digest) -> Result<(), ImageError> {
    if *expected == actual {
        Ok(())
    } else {
        Err(ImageError::BlobDigestMismatch {
            digest: expected.clone(),
            actual,
        })
    }
}
