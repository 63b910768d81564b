//! Builders for small OCI image archives, for tests here and elsewhere in
//! the runtime: layers from lists of entries (written raw, so hostile names
//! are possible), images from layers, archives from images.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::json;

use super::Digest;

/// Media type of an uncompressed OCI layer.
pub(crate) const MEDIA_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// Media type of a gzip-compressed OCI layer.
pub(crate) const MEDIA_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Media type of a gzip-compressed layer in a Docker v2 manifest.
pub(crate) const MEDIA_DOCKER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// The mtime every test entry gets unless it says otherwise.
pub(crate) const TEST_MTIME: u64 = 1_700_000_000;

/// What kind of tar entry to write.
#[derive(Clone, Debug)]
pub(crate) enum EntryKind {
    /// A regular file with this content.
    File(Vec<u8>),
    /// A directory.
    Dir,
    /// A symlink to this target.
    Symlink(String),
    /// A hardlink to this (archive) path.
    Hardlink(String),
    /// A character device with this major and minor.
    CharDevice(u32, u32),
    /// A FIFO.
    Fifo,
}

/// One tar entry of a test layer. The path is written into the header
/// verbatim (no validation), so `../x` and `/x` can be produced.
#[derive(Clone, Debug)]
pub(crate) struct TestEntry {
    /// Path as stored in the tar header.
    pub path: String,
    /// Type and payload.
    pub kind: EntryKind,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
}

impl TestEntry {
    fn new(path: &str, kind: EntryKind, mode: u32) -> TestEntry {
        TestEntry {
            path: path.to_owned(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: TEST_MTIME,
        }
    }

    /// A regular file, mode 0644.
    pub(crate) fn file(path: &str, content: &[u8]) -> TestEntry {
        TestEntry::new(path, EntryKind::File(content.to_vec()), 0o644)
    }

    /// A directory, mode 0755.
    pub(crate) fn dir(path: &str) -> TestEntry {
        TestEntry::new(path, EntryKind::Dir, 0o755)
    }

    /// A symlink.
    pub(crate) fn symlink(path: &str, target: &str) -> TestEntry {
        TestEntry::new(path, EntryKind::Symlink(target.to_owned()), 0o777)
    }

    /// A hardlink to another entry of the layer.
    pub(crate) fn hardlink(path: &str, target: &str) -> TestEntry {
        TestEntry::new(path, EntryKind::Hardlink(target.to_owned()), 0o644)
    }

    /// A character device.
    pub(crate) fn char_device(path: &str, major: u32, minor: u32) -> TestEntry {
        TestEntry::new(path, EntryKind::CharDevice(major, minor), 0o666)
    }

    /// A FIFO.
    pub(crate) fn fifo(path: &str) -> TestEntry {
        TestEntry::new(path, EntryKind::Fifo, 0o600)
    }

    /// The same entry with another mode.
    pub(crate) fn mode(mut self, mode: u32) -> TestEntry {
        self.mode = mode;
        self
    }

    /// The same entry with another owner.
    pub(crate) fn owner(mut self, uid: u64, gid: u64) -> TestEntry {
        self.uid = uid;
        self.gid = gid;
        self
    }
}

/// A tar of `entries`, uncompressed.
pub(crate) fn layer_tar(entries: &[TestEntry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        let name = entry.path.as_bytes();
        assert!(name.len() < 100, "test entry path too long: {}", entry.path);
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        header.set_mode(entry.mode);
        header.set_uid(entry.uid);
        header.set_gid(entry.gid);
        header.set_mtime(entry.mtime);
        header.set_size(0);
        let data: &[u8] = match &entry.kind {
            EntryKind::File(content) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(content.len() as u64);
                content
            }
            EntryKind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                &[]
            }
            EntryKind::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_link_name_literal(target).unwrap();
                &[]
            }
            EntryKind::Hardlink(target) => {
                header.set_entry_type(tar::EntryType::Link);
                header.set_link_name_literal(target).unwrap();
                &[]
            }
            EntryKind::CharDevice(major, minor) => {
                header.set_entry_type(tar::EntryType::Char);
                header.set_device_major(*major).unwrap();
                header.set_device_minor(*minor).unwrap();
                &[]
            }
            EntryKind::Fifo => {
                header.set_entry_type(tar::EntryType::Fifo);
                &[]
            }
        };
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap()
}

/// `data`, gzip-compressed.
pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// A layer blob with its media type and diff_id.
#[derive(Clone, Debug)]
pub(crate) struct TestLayer {
    /// The blob as stored in the archive.
    pub blob: Vec<u8>,
    /// Its media type in the manifest.
    pub media_type: String,
    /// The digest of the uncompressed tar.
    pub diff_id: Digest,
}

impl TestLayer {
    /// An uncompressed layer of `entries`.
    pub(crate) fn tar(entries: &[TestEntry]) -> TestLayer {
        let tar = layer_tar(entries);
        TestLayer {
            diff_id: Digest::of_bytes(&tar),
            blob: tar,
            media_type: MEDIA_TAR.to_owned(),
        }
    }

    /// A gzip-compressed layer of `entries`.
    pub(crate) fn gzip(entries: &[TestEntry]) -> TestLayer {
        let tar = layer_tar(entries);
        TestLayer {
            diff_id: Digest::of_bytes(&tar),
            blob: gzip(&tar),
            media_type: MEDIA_TAR_GZIP.to_owned(),
        }
    }

    /// The digest of the blob (what the manifest names).
    pub(crate) fn digest(&self) -> Digest {
        Digest::of_bytes(&self.blob)
    }
}

/// An image to put in an archive, with knobs to make the archive wrong.
#[derive(Clone, Debug)]
pub(crate) struct TestImage {
    /// Layers, bottom first.
    pub layers: Vec<TestLayer>,
    /// `io.containerd.image.name` annotation.
    pub name: Option<String>,
    /// `org.opencontainers.image.ref.name` annotation.
    pub ref_name: Option<String>,
    /// `created` in the config.
    pub created: String,
    /// Replaces the config's `rootfs.diff_ids` (to make them wrong).
    pub diff_ids: Option<Vec<String>>,
    /// Blobs left out of the archive.
    pub omit_blobs: Vec<Digest>,
    /// Blobs stored under their name but with one byte flipped.
    pub tamper_blobs: Vec<Digest>,
    /// Wrap the manifest in a multi-platform index (arm64 + this host).
    pub nested_index: bool,
    /// Gzip the whole archive.
    pub gzip_archive: bool,
    /// Extra raw entries appended to the archive tar (path, content).
    pub extra_entries: Vec<TestEntry>,
}

/// An archive built from a [`TestImage`], with the digests tests check.
#[derive(Clone, Debug)]
pub(crate) struct TestArchive {
    /// The archive file's bytes.
    pub bytes: Vec<u8>,
    /// The manifest's digest.
    pub manifest: Digest,
    /// The config's digest: the image id.
    pub config: Digest,
}

impl TestImage {
    /// An image of `layers` named `name` (e.g. `docker.io/library/busybox:latest`).
    pub(crate) fn new(name: Option<&str>, layers: Vec<TestLayer>) -> TestImage {
        TestImage {
            layers,
            name: name.map(str::to_owned),
            ref_name: None,
            created: "2024-01-02T03:04:05Z".to_owned(),
            diff_ids: None,
            omit_blobs: Vec::new(),
            tamper_blobs: Vec::new(),
            nested_index: false,
            gzip_archive: false,
            extra_entries: Vec::new(),
        }
    }

    /// The config JSON.
    pub(crate) fn config_json(&self) -> Vec<u8> {
        let diff_ids = self
            .diff_ids
            .clone()
            .unwrap_or_else(|| self.layers.iter().map(|l| l.diff_id.to_string()).collect());
        serde_json::to_vec(&json!({
            "created": self.created,
            "architecture": host_arch(),
            "os": "linux",
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": ["sh"],
            },
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
            "history": [],
        }))
        .unwrap()
    }

    /// Builds the archive.
    pub(crate) fn build(&self) -> TestArchive {
        let mut blobs: Vec<Vec<u8>> = Vec::new();
        let config = self.config_json();
        let config_digest = Digest::of_bytes(&config);
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest.to_string(),
                "size": config.len(),
            },
            "layers": self.layers.iter().map(|l| json!({
                "mediaType": l.media_type,
                "digest": l.digest().to_string(),
                "size": l.blob.len(),
            })).collect::<Vec<_>>(),
        }))
        .unwrap();
        let manifest_digest = Digest::of_bytes(&manifest);
        let mut top = json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest.to_string(),
            "size": manifest.len(),
        });
        blobs.push(config);
        blobs.push(manifest.clone());
        blobs.extend(self.layers.iter().map(|l| l.blob.clone()));

        if self.nested_index {
            // A decoy for another platform first, pointing at a blob that is
            // not in the archive: choosing it would fail the load.
            let decoy = Digest::of_bytes(b"arm64 manifest that is not there");
            let mut ours = top.clone();
            ours["platform"] = json!({ "architecture": host_arch(), "os": "linux" });
            let index = serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [
                    {
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": decoy.to_string(),
                        "size": 10,
                        "platform": { "architecture": "arm64", "os": "linux" },
                    },
                    ours,
                ],
            }))
            .unwrap();
            top = json!({
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": Digest::of_bytes(&index).to_string(),
                "size": index.len(),
            });
            blobs.push(index);
        }

        let mut annotations = serde_json::Map::new();
        if let Some(name) = &self.name {
            annotations.insert("io.containerd.image.name".into(), json!(name));
        }
        if let Some(name) = &self.ref_name {
            annotations.insert("org.opencontainers.image.ref.name".into(), json!(name));
        }
        if !annotations.is_empty() {
            top["annotations"] = serde_json::Value::Object(annotations);
        }
        let index_json = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [top],
        }))
        .unwrap();

        let mut builder = tar::Builder::new(Vec::new());
        let mut append = |path: &str, data: &[u8]| {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(TEST_MTIME);
            header.set_entry_type(tar::EntryType::Regular);
            builder.append_data(&mut header, path, data).unwrap();
        };
        append("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
        append("index.json", &index_json);
        let mut seen = std::collections::HashSet::new();
        for blob in &blobs {
            let digest = Digest::of_bytes(blob);
            if self.omit_blobs.contains(&digest) || !seen.insert(digest.clone()) {
                continue;
            }
            let mut content = blob.clone();
            if self.tamper_blobs.contains(&digest) {
                if let Some(last) = content.last_mut() {
                    *last ^= 0xff;
                }
            }
            append(&format!("blobs/sha256/{}", digest.hex()), &content);
        }
        let mut bytes = builder.into_inner().unwrap();
        if !self.extra_entries.is_empty() {
            // Drop the end-of-archive blocks, append raw entries, re-close.
            let extra = layer_tar(&self.extra_entries);
            bytes.truncate(bytes.len() - 1024);
            bytes.extend_from_slice(&extra);
        }
        if self.gzip_archive {
            bytes = gzip(&bytes);
        }
        TestArchive {
            bytes,
            manifest: manifest_digest,
            config: config_digest,
        }
    }

    /// Builds the archive and writes it to `dir/name`; returns the path and
    /// the built archive.
    pub(crate) fn write(&self, dir: &Path, name: &str) -> (PathBuf, TestArchive) {
        let archive = self.build();
        let path = dir.join(name);
        std::fs::write(&path, &archive.bytes).unwrap();
        (path, archive)
    }
}

/// This host's architecture in OCI spelling.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
