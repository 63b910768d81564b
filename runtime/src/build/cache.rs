//! The build cache, keyed as Docker's classic builder keys it: the parent
//! image's id, the instruction's text and, for COPY and ADD, the digest of
//! the files copied; the value is the image the step made. Kept in
//! `build-cache.json` beside the image store's table; an entry whose image
//! is gone is a miss.

use crate::image::{Digest, ImageStore};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The cache's file under the image store's root.
const CACHE_FILE: &str = "build-cache.json";
/// The most entries kept (the oldest go first).
const MAX_ENTRIES: usize = 10_000;

/// The build cache of one image store.
#[derive(Debug)]
pub struct BuildCache {
    path: PathBuf,
}

/// The key of one step.
pub fn key(parent: &str, instruction: &str, content: Option<&Digest>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(parent.as_bytes());
    hasher.update(b"\0");
    hasher.update(instruction.as_bytes());
    hasher.update(b"\0");
    if let Some(content) = content {
        hasher.update(content.to_string().as_bytes());
    }
    hex::encode(hasher.finalize())
}

impl BuildCache {
    /// The cache of `images`.
    pub fn new(images: &ImageStore) -> BuildCache {
        BuildCache {
            path: images.root().join(CACHE_FILE),
        }
    }

    fn read(&self) -> BTreeMap<String, (u64, String)> {
        std::fs::read(&self.path)
            .ok()
            .and_then(|data| serde_json::from_slice(&data).ok())
            .unwrap_or_default()
    }

    /// The image a step with `key` made before, if it is still stored.
    pub fn lookup(&self, images: &ImageStore, key: &str) -> Option<String> {
        let (_, id) = self.read().remove(key)?;
        images.resolve(&id).ok().map(|image| image.id.to_string())
    }

    /// Records that the step `key` made `image`. A cache that cannot be
    /// written is only slower.
    pub fn insert(&self, key: &str, image: &str) {
        let mut entries = self.read();
        let stamp = entries.values().map(|(n, _)| *n).max().unwrap_or(0) + 1;
        entries.insert(key.to_owned(), (stamp, image.to_owned()));
        while entries.len() > MAX_ENTRIES {
            let oldest = entries
                .iter()
                .min_by_key(|(_, (n, _))| *n)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => entries.remove(&k),
                None => break,
            };
        }
        let temp = self
            .path
            .with_extension(format!("tmp-{}", std::process::id()));
        let written = serde_json::to_vec(&entries)
            .map_err(std::io::Error::other)
            .and_then(|data| std::fs::write(&temp, data))
            .and_then(|()| std::fs::rename(&temp, &self.path));
        if let Err(err) = written {
            let _ = std::fs::remove_file(&temp);
            tracing::warn!("could not write the build cache: {err}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_parent_text_and_content() {
        let a = key("sha256:1", "RUN x", None);
        assert_ne!(a, key("sha256:2", "RUN x", None));
        assert_ne!(a, key("sha256:1", "RUN y", None));
        let d = Digest::of_bytes(b"z");
        assert_ne!(a, key("sha256:1", "RUN x", Some(&d)));
        assert_eq!(a, key("sha256:1", "RUN x", None));
    }
}
