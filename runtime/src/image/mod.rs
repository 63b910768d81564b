//! The content-addressed image store.
//!
//! Layout under the store root (e.g. `/var/lib/hull/image`):
//! - `blobs/sha256/<hex>`: manifests, configs and compressed layers, each
//!   stored under the sha256 of its content (checked before it is stored);
//! - `layers/<diff_id hex>/`: each layer unpacked once, in overlayfs format
//!   (whiteouts are 0:0 character devices, opaque directories carry
//!   `trusted.overlay.opaque=y`), shared by every image that uses it; the
//!   guest mounts them as overlay lowerdirs through virtio-fs;
//! - `images.json`: the images and the references (`docker.io/library/
//!   busybox:latest`) pointing at their manifests, replaced atomically under
//!   an exclusive flock of `lock`.
//!
//! Images come in through [`ImageStore::load_archive`] (`hull load`); their
//! archives and layers are treated as hostile: every size read into memory
//! is bounded and every digest verified.

mod archive;
pub mod auth;
mod blobs;
mod commit;
mod config;
mod digest;
mod error;
mod filter;
mod fsutil;
mod import;
mod platform;
mod reference;
pub mod registry;
mod table;
mod unpack;

#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod testutil;

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

pub use self::commit::CommitOptions;
pub use self::digest::Digest;
pub use self::error::ImageError;
pub use self::filter::ImageFilter;
pub use self::platform::Platform;
pub use self::reference::Reference;

use self::blobs::BlobStore;
use self::table::ImageTable;

/// Shortest bare hex prefix accepted as an image id, so that short words
/// made of hex letters (`cafe`, `bad`) are not taken for ids by accident.
const MIN_ID_PREFIX_LEN: usize = 4;

/// Shown by `hull images` for a missing repository or tag.
const NONE: &str = "<none>";

/// The image store rooted at one directory; see the module docs for the
/// layout. Cheap to open; holds no lock or descriptor between calls.
#[derive(Clone, Debug)]
pub struct ImageStore {
    root: PathBuf,
    blobs: BlobStore,
}

/// An image imported by [`ImageStore::load_archive`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedImage {
    /// The name the archive gave it, if any (untagged images have none).
    pub reference: Option<Reference>,
    /// The image id: the digest of its config.
    pub id: Digest,
}

/// One row of `hull images`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSummary {
    /// The familiar repository name (`busybox`, `localhost:5000/x`), or
    /// `<none>` for an untagged image.
    pub repository: String,
    /// The tag, or `<none>`.
    pub tag: String,
    /// The image id (config digest).
    pub id: Digest,
    /// The manifest's digest (`images --digests`).
    pub digest: Digest,
    /// When the image was built (`created` of its config, RFC 3339).
    pub created: Option<String>,
    /// Uncompressed size in bytes, as Docker shows: the sum of the sizes of
    /// the regular files in the image's unpacked layers (each distinct layer
    /// once, hardlinks once).
    pub size: u64,
    /// An untagged image another was made on (a build's step): `hull
    /// images` shows it only with `-a`, as Docker does.
    pub intermediate: bool,
}

impl ImageSummary {
    /// Whether no name points at it (`<none>`): a dangling image, or a
    /// build step's.
    pub fn is_untagged(&self) -> bool {
        self.repository == NONE
    }
}

/// A resolved image: everything needed to build a container's rootfs.
#[derive(Clone, Debug)]
pub struct Image {
    /// The image id: the digest of its config.
    pub id: Digest,
    /// The reference it was resolved through, or (when resolved by id) one
    /// of the references pointing at it; `None` for an untagged image.
    pub reference: Option<Reference>,
    /// The digest of its manifest.
    pub manifest_digest: Digest,
    /// Its configuration (entrypoint, env, working dir, …).
    pub config: oci_spec::image::ImageConfiguration,
    /// Its layers' diff_ids, bottom layer first.
    pub diff_ids: Vec<Digest>,
}

impl Image {
    /// The directory name of each layer under [`ImageStore::layers_root`]
    /// (the hex of its diff_id), bottom layer first.
    pub fn layer_names(&self) -> Vec<String> {
        self.diff_ids.iter().map(|d| d.hex().to_owned()).collect()
    }
}

impl ImageStore {
    /// Opens the store at `root`, creating its directories if missing.
    pub fn open(root: &Path) -> Result<ImageStore, ImageError> {
        if !fsutil::is_dir(root) {
            // Image content is nobody else's business: private root.
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(root)
                .map_err(|e| ImageError::io("create directory", root, e))?;
        }
        fsutil::ensure_dir(&root.join("layers"))?;
        let blobs = BlobStore::open(root.join("blobs"))?;
        Ok(ImageStore {
            root: root.to_owned(),
            blobs,
        })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Imports every image of an OCI image-layout archive (a tar, possibly
    /// gzip-compressed), e.g. from `docker save`. Layers already in the
    /// store are reused; named images replace whatever had their name.
    pub fn load_archive(&self, archive: &Path) -> Result<Vec<LoadedImage>, ImageError> {
        let loaded = archive::load(self, archive);
        if loaded.is_err() {
            self.discard_new_blobs();
        }
        loaded
    }

    /// After a failed load or pull: removes the blobs it stored that no
    /// image uses, so a hostile archive or registry leaves nothing behind.
    /// When the images' blobs cannot be listed, everything is kept.
    pub(crate) fn discard_new_blobs(&self) {
        let created = self.blobs.take_created();
        if created.is_empty() {
            return;
        }
        let used = match self.used_blobs() {
            Ok(used) => used,
            Err(err) => {
                tracing::warn!("keeping the blobs of a failed load: {err}");
                return;
            }
        };
        for digest in created.iter().filter(|d| !used.contains(*d)) {
            if let Err(err) = self.blobs.remove(digest) {
                tracing::warn!("{err}");
            }
        }
    }

    /// The blobs the stored images use: manifests, configs, layers.
    fn used_blobs(&self) -> Result<std::collections::HashSet<Digest>, ImageError> {
        let table = ImageTable::read(&self.root)?;
        let mut used = std::collections::HashSet::new();
        for (manifest_digest, record) in &table.images {
            used.insert(manifest_digest.clone());
            used.insert(record.config.clone());
            let data = self.blobs.read_small(manifest_digest, "manifest")?;
            let manifest: oci_spec::image::ImageManifest =
                serde_json::from_slice(&data).map_err(|err| ImageError::InvalidJson {
                    what: format!("manifest {manifest_digest}"),
                    reason: err.to_string(),
                })?;
            for layer in manifest.layers() {
                used.insert(import::descriptor_digest(layer)?);
            }
        }
        Ok(used)
    }

    /// All images, one row per reference (untagged images get one `<none>`
    /// row), newest first.
    pub fn list(&self) -> Result<Vec<ImageSummary>, ImageError> {
        let table = ImageTable::read(&self.root)?;
        let parents: std::collections::HashSet<&Digest> = table
            .images
            .values()
            .filter_map(|r| r.parent.as_ref())
            .collect();
        let mut rows = Vec::new();
        for (manifest, record) in &table.images {
            let row = |repository: String, tag: String| ImageSummary {
                intermediate: repository == NONE && parents.contains(&record.config),
                repository,
                tag,
                id: record.config.clone(),
                digest: manifest.clone(),
                created: record.created.clone(),
                size: record.size,
            };
            let mut named = false;
            for text in table.references_to(manifest) {
                let reference = self.stored_reference(text)?;
                let tag = reference.tag().unwrap_or(NONE).to_owned();
                rows.push(row(reference.familiar(), tag));
                named = true;
            }
            if !named {
                rows.push(row(NONE.to_owned(), NONE.to_owned()));
            }
        }
        rows.sort_by(|a, b| {
            b.created
                .cmp(&a.created)
                .then_with(|| a.repository.cmp(&b.repository))
                .then_with(|| a.tag.cmp(&b.tag))
        });
        Ok(rows)
    }

    /// Finds an image by `name[:tag]`, `name@sha256:<manifest digest>`, or
    /// its id (config digest): full or a prefix of at least 4 hex
    /// characters, with or without `sha256:`. Fails with
    /// [`ImageError::NotFound`] when nothing matches.
    pub fn resolve(&self, name_or_id: &str) -> Result<Image, ImageError> {
        let table = ImageTable::read(&self.root)?;
        let not_found = || ImageError::NotFound(name_or_id.to_owned());

        if let Some(hex) = name_or_id.strip_prefix("sha256:") {
            return self.resolve_id(&table, hex)?.ok_or_else(not_found);
        }
        if digest::is_sha256_hex(name_or_id) {
            return self.resolve_id(&table, name_or_id)?.ok_or_else(not_found);
        }
        match Reference::parse(name_or_id) {
            Ok(reference) => {
                if let Some(manifest) = find_reference(&table, &reference) {
                    return self.image(&table, &manifest, Some(reference));
                }
            }
            // Not a valid name: report why, unless it may be a short id.
            Err(err) if !is_hex(name_or_id) => return Err(err),
            Err(_) => {}
        }
        if is_hex(name_or_id) {
            return self.resolve_id(&table, name_or_id)?.ok_or_else(not_found);
        }
        Err(not_found())
    }

    /// Writes `names` as one OCI image archive (`hull save`), which
    /// [`ImageStore::load_archive`] (and skopeo, podman) can read back. As
    /// Docker 25+ does, it also holds a `manifest.json` naming the same
    /// blobs, so tools that only know Docker archives read it too.
    pub fn save(&self, names: &[String], out: impl std::io::Write) -> Result<(), ImageError> {
        let mut manifests = Vec::new();
        let mut docker_manifest = Vec::new();
        let mut blobs: Vec<Digest> = Vec::new();
        for name in names {
            let image = self.resolve(name)?;
            let data = self.blobs.read_small(&image.manifest_digest, "manifest")?;
            let manifest: oci_spec::image::ImageManifest =
                serde_json::from_slice(&data).map_err(|err| ImageError::InvalidJson {
                    what: format!("manifest {}", image.manifest_digest),
                    reason: err.to_string(),
                })?;
            let mut annotations = serde_json::Map::new();
            if let Some(reference) = Reference::parse(name).ok().or(image.reference.clone()) {
                annotations.insert("io.containerd.image.name".into(), reference.full().into());
                annotations.insert(
                    "org.opencontainers.image.ref.name".into(),
                    reference.tag().unwrap_or("latest").into(),
                );
            }
            let blob_path =
                |digest: &str| format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
            docker_manifest.push(serde_json::json!({
                "Config": blob_path(manifest.config().digest().as_ref()),
                "RepoTags": Reference::parse(name).ok().or(image.reference.clone()).map(|r| vec![r.familiar_string()]).unwrap_or_default(),
                "Layers": manifest.layers().iter().map(|l| blob_path(l.digest().as_ref())).collect::<Vec<_>>(),
            }));
            manifests.push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": image.manifest_digest.to_string(),
                "size": data.len(),
                "annotations": annotations,
            }));
            blobs.push(image.manifest_digest.clone());
            blobs.push(manifest.config().digest().to_string().parse()?);
            for layer in manifest.layers() {
                blobs.push(layer.digest().to_string().parse()?);
            }
        }
        blobs.sort();
        blobs.dedup();
        let index = serde_json::json!({ "schemaVersion": 2, "manifests": manifests });
        let io_err = |err: std::io::Error| ImageError::io("write", "image archive", err);
        let mut archive = tar::Builder::new(out);
        let mut add =
            |path: &str, size: u64, data: &mut dyn std::io::Read| -> Result<(), ImageError> {
                let mut header = tar::Header::new_gnu();
                header.set_size(size);
                header.set_mode(0o644);
                header.set_entry_type(tar::EntryType::Regular);
                archive.append_data(&mut header, path, data).map_err(io_err)
            };
        let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
        add("oci-layout", layout.len() as u64, &mut &layout[..])?;
        let index = serde_json::to_vec(&index).map_err(|err| ImageError::InvalidJson {
            what: "index.json".into(),
            reason: err.to_string(),
        })?;
        add("index.json", index.len() as u64, &mut &index[..])?;
        let docker_manifest =
            serde_json::to_vec(&docker_manifest).map_err(|err| ImageError::InvalidJson {
                what: "manifest.json".into(),
                reason: err.to_string(),
            })?;
        add(
            "manifest.json",
            docker_manifest.len() as u64,
            &mut &docker_manifest[..],
        )?;
        for digest in &blobs {
            let mut file = self.blobs.open_blob(digest)?;
            let size = file.metadata().map_err(io_err)?.len();
            add(&format!("blobs/sha256/{}", digest.hex()), size, &mut file)?;
        }
        archive
            .into_inner()
            .map_err(io_err)?
            .flush()
            .map_err(io_err)
    }

    /// Makes a single-layer image of a file-system tarball (`hull import`),
    /// named `reference` if given: the tarball becomes the layer as it is,
    /// through the same verified path as [`ImageStore::load_archive`].
    pub fn import_tarball(
        &self,
        tarball: &Path,
        reference: Option<&str>,
    ) -> Result<LoadedImage, ImageError> {
        self.import_tarball_with(tarball, reference, &CommitOptions::default())
    }

    /// [`ImageStore::import_tarball`] with `import`'s `--change` (the
    /// config's fields), `--message` (the history's comment) and author.
    pub fn import_tarball_with(
        &self,
        tarball: &Path,
        reference: Option<&str>,
        options: &CommitOptions,
    ) -> Result<LoadedImage, ImageError> {
        use sha2::{Digest as _, Sha256};
        use std::io::{Read, Write};
        let reference = reference.map(Reference::parse).transpose()?;
        let mut hasher = Sha256::new();
        let mut file =
            std::fs::File::open(tarball).map_err(|e| ImageError::io("open", tarball, e))?;
        let mut buf = vec![0u8; 1 << 16];
        let mut size = 0u64;
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| ImageError::io("read", tarball, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        let layer_digest = format!("sha256:{}", hex::encode(hasher.finalize()));
        let created = crate::timefmt::now();
        let json = |value: serde_json::Value| serde_json::to_vec(&value).unwrap_or_default();
        let mut config = serde_json::json!({
            "created": created,
            "architecture": "amd64",
            "os": "linux",
            "config": options.config,
            "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
            "history": [{
                "created": created,
                "created_by": "hull import",
                "comment": options.message.as_deref().unwrap_or("Imported from tarball"),
            }],
        });
        if let Some(author) = &options.author {
            config["author"] = author.as_str().into();
        }
        let config = json(config);
        let config_digest = Digest::of_bytes(&config);
        let manifest = json(serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config.len() },
            "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": size }],
        }));
        let manifest_digest = Digest::of_bytes(&manifest);
        let mut annotations = serde_json::Map::new();
        if let Some(reference) = &reference {
            annotations.insert("io.containerd.image.name".into(), reference.full().into());
        }
        let index = json(serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{ "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest.to_string(), "size": manifest.len(), "annotations": annotations }],
        }));
        // An OCI archive beside the store, loaded like any other, then removed.
        let staging = self
            .root
            .join(format!(".tmp-import-{}.tar", std::process::id()));
        let written = (|| -> std::io::Result<()> {
            let mut archive =
                tar::Builder::new(std::io::BufWriter::new(std::fs::File::create(&staging)?));
            let mut add = |path: &str, size: u64, data: &mut dyn Read| {
                let mut header = tar::Header::new_gnu();
                header.set_size(size);
                header.set_mode(0o644);
                header.set_entry_type(tar::EntryType::Regular);
                archive.append_data(&mut header, path, data)
            };
            let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
            add("oci-layout", layout.len() as u64, &mut &layout[..])?;
            add("index.json", index.len() as u64, &mut &index[..])?;
            add(
                &format!("blobs/sha256/{}", manifest_digest.hex()),
                manifest.len() as u64,
                &mut &manifest[..],
            )?;
            add(
                &format!("blobs/sha256/{}", config_digest.hex()),
                config.len() as u64,
                &mut &config[..],
            )?;
            add(
                &format!("blobs/sha256/{}", &layer_digest["sha256:".len()..]),
                size,
                &mut std::fs::File::open(tarball)?,
            )?;
            archive.into_inner()?.flush()
        })();
        let loaded = written
            .map_err(|e| ImageError::io("write", &staging, e))
            .and_then(|()| self.load_archive(&staging));
        let _ = std::fs::remove_file(&staging);
        loaded?
            .into_iter()
            .next()
            .ok_or_else(|| ImageError::NotFound(tarball.display().to_string()))
    }

    /// Gives the image `source` the extra name `target` (`hull tag`).
    pub fn tag(&self, source: &str, target: &str) -> Result<Reference, ImageError> {
        let image = self.resolve(source)?;
        let reference = Reference::parse(target)?;
        if reference.digest().is_some() {
            return Err(ImageError::InvalidReference(format!(
                "refusing to create a tag with a digest reference: {target}"
            )));
        }
        let manifest = image.manifest_digest.clone();
        ImageTable::update(&self.root, |table| {
            table.references.insert(reference.full(), manifest);
        })?;
        Ok(reference)
    }

    /// Removes a name, or (given by id, or its last name) the image itself,
    /// as `docker rmi` does; returns Docker's `Untagged:`/`Deleted:` lines.
    /// `in_use` says whether a container uses an image id; such an image
    /// loses only its name, and only with `force`.
    pub fn remove(
        &self,
        name_or_id: &str,
        force: bool,
        in_use: impl Fn(&Digest) -> Option<String>,
    ) -> Result<Vec<String>, ImageError> {
        let image = self.resolve(name_or_id)?;
        let by_name = Reference::parse(name_or_id).ok().filter(|r| {
            image
                .reference
                .as_ref()
                .is_some_and(|found| found.full() == r.full())
        });
        let user = in_use(&image.id);
        let lines = ImageTable::update(&self.root, |table| -> Result<Vec<String>, ImageError> {
            let names: Vec<String> = table
                .references_to(&image.manifest_digest)
                .map(str::to_owned)
                .collect();
            let mut lines = Vec::new();
            let untag = match &by_name {
                // One of several names: only that name goes.
                Some(reference) if names.len() > 1 => vec![reference.full()],
                _ => names.clone(),
            };
            let deleting = untag.len() == names.len();
            if deleting {
                if let Some(container) = &user {
                    if !force {
                        let what = by_name
                            .as_ref()
                            .map_or_else(|| image.id.short().to_string(), |r| r.familiar_string());
                        return Err(ImageError::InUse(format!(
                            "conflict: unable to remove repository reference \"{what}\" (must force) - container {} is using its referenced image {}",
                            &container[..container.len().min(12)],
                            image.id.short()
                        )));
                    }
                }
            }
            for name in &untag {
                table.references.remove(name);
                let shown = Reference::parse(name)
                    .map(|r| r.familiar_string())
                    .unwrap_or_else(|_| name.clone());
                lines.push(format!("Untagged: {shown}"));
            }
            if deleting && user.is_none() {
                table.images.remove(&image.manifest_digest);
                lines.push(format!("Deleted: {}", image.id));
            }
            Ok(lines)
        })??;
        self.collect_layers()?;
        Ok(lines)
    }

    /// Removes unpacked layers no remaining image uses.
    fn collect_layers(&self) -> Result<(), ImageError> {
        let table = ImageTable::read(&self.root)?;
        let used: std::collections::HashSet<String> = table
            .images
            .values()
            .flat_map(|i| i.diff_ids.iter().map(|d| d.hex().to_owned()))
            .collect();
        let layers = self.layers_root();
        let Ok(entries) = std::fs::read_dir(&layers) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if digest::is_sha256_hex(&name) && !used.contains(&name) {
                std::fs::remove_dir_all(entry.path())
                    .map_err(|e| ImageError::io("remove", entry.path(), e))?;
            }
        }
        Ok(())
    }

    /// The size of unpacked layer `diff_id`, as Docker counts it (regular
    /// files, hard links once).
    pub fn layer_size(&self, diff_id: &Digest) -> Result<u64, ImageError> {
        unpack::layer_size(&self.layer_dir(diff_id))
    }

    /// The directory layer `diff_id` is (or would be) unpacked in.
    pub fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.layers_root().join(diff_id.hex())
    }

    /// `<root>/layers`, the directory holding every unpacked layer (shared
    /// with the guest through virtio-fs).
    pub fn layers_root(&self) -> PathBuf {
        self.root.join("layers")
    }

    /// The image whose id starts with `hex`, if exactly one does.
    fn resolve_id(&self, table: &ImageTable, hex: &str) -> Result<Option<Image>, ImageError> {
        if hex.len() < MIN_ID_PREFIX_LEN || !is_hex(hex) {
            return Ok(None);
        }
        let mut found: Option<(&Digest, &Digest)> = None;
        for (manifest, record) in &table.images {
            if !record.config.hex().starts_with(hex) {
                continue;
            }
            match found {
                Some((_, id)) if *id != record.config => {
                    return Err(ImageError::AmbiguousId(hex.to_owned()))
                }
                // Several manifests may share one config (e.g. the same
                // image compressed differently): prefer a named one.
                Some((chosen, _)) if table.references_to(chosen).next().is_some() => {}
                _ => found = Some((manifest, &record.config)),
            }
        }
        let Some((manifest, _)) = found else {
            return Ok(None);
        };
        let reference = match table.references_to(manifest).next() {
            Some(text) => Some(self.stored_reference(text)?),
            None => None,
        };
        self.image(table, manifest, reference).map(Some)
    }

    /// Builds the [`Image`] for a recorded manifest.
    fn image(
        &self,
        table: &ImageTable,
        manifest: &Digest,
        reference: Option<Reference>,
    ) -> Result<Image, ImageError> {
        let corrupt = |reason: String| ImageError::CorruptStore {
            path: self.root.join("images.json"),
            reason,
        };
        let record = table
            .images
            .get(manifest)
            .ok_or_else(|| corrupt(format!("reference to unknown image {manifest}")))?;
        let what = format!("image config {}", record.config);
        let data = self.blobs.read_small(&record.config, &what)?;
        let config = config::decode(&data, &what)?;
        Ok(Image {
            id: record.config.clone(),
            reference,
            manifest_digest: manifest.clone(),
            config,
            diff_ids: record.diff_ids.clone(),
        })
    }

    /// Parses a reference read back from `images.json`.
    fn stored_reference(&self, text: &str) -> Result<Reference, ImageError> {
        Reference::parse(text).map_err(|err| ImageError::CorruptStore {
            path: self.root.join("images.json"),
            reason: format!("bad reference '{text}': {err}"),
        })
    }
}

/// The manifest `reference` names: by its exact text, or, for
/// `name@sha256:…`, any image of that repository with that manifest digest.
fn find_reference(table: &ImageTable, reference: &Reference) -> Option<Digest> {
    if let Some(manifest) = table.references.get(&reference.full()) {
        return Some(manifest.clone());
    }
    let pinned = reference.digest()?;
    if !table.images.contains_key(pinned) {
        return None;
    }
    let repository = reference.name();
    table
        .references_to(pinned)
        .filter_map(|text| Reference::parse(text).ok())
        .any(|named| named.name() == repository)
        .then(|| pinned.clone())
}

fn is_hex(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
