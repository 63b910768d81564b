//! `hull commit`: a new image of a base image plus one layer (a
//! container's changes), recorded through the same verified path as every
//! other image ([`super::import::import_image`]).

use super::import::import_image;
use super::{Digest, Image, ImageError, ImageStore, Reference};
use oci_spec::image::{Descriptor, ImageManifest, MediaType};
use std::io::Read;
use std::path::Path;

/// What a commit records besides the layer.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// `--author`.
    pub author: Option<String>,
    /// `--message`: the history entry's comment.
    pub message: Option<String>,
    /// The history entry's `created_by` (the container's command, as
    /// Docker records it).
    pub created_by: String,
    /// Fields of the image config's `config` to set (`Cmd`, `Env`, …: the
    /// container's own), as Docker's names.
    pub config: serde_json::Map<String, serde_json::Value>,
}

impl ImageStore {
    /// `image`'s config as stored, every field kept: Docker's own
    /// (`Shell`, `Healthcheck`, `OnBuild`) are not in the OCI types, and an
    /// image built or committed on top must not lose them.
    pub fn config_json(&self, image: &Image) -> Result<serde_json::Value, ImageError> {
        let data = self.blobs.read_small(&image.id, "image config")?;
        serde_json::from_slice(&data).map_err(|e| invalid_json("image config", e))
    }

    /// Records the image `base` (none: an empty image, as `FROM scratch`)
    /// plus the uncompressed layer tarball `layer` (none: a change of
    /// config only, an `empty_layer` in its history), named `reference` if
    /// given; returns the new image's id.
    pub fn commit(
        &self,
        base: Option<&Image>,
        layer: Option<&Path>,
        options: &CommitOptions,
        reference: Option<&str>,
    ) -> Result<Digest, ImageError> {
        let reference = reference.map(Reference::parse).transpose()?;
        let layer = match layer {
            Some(layer) => {
                let digest = digest_of_file(layer)?;
                let open =
                    || std::fs::File::open(layer).map_err(|e| ImageError::io("open", layer, e));
                let size = self.blobs.ingest(&digest, open()?)?;
                Some((digest, size))
            }
            None => None,
        };

        let created = crate::timefmt::now();
        let mut config = match base {
            Some(base) => self.config_json(base)?,
            None => serde_json::json!({
                "architecture": crate::image::platform::host_architecture(),
                "os": "linux",
                "config": {},
                "rootfs": { "type": "layers", "diff_ids": [] },
            }),
        };
        let object = config
            .as_object_mut()
            .ok_or_else(|| invalid_json("base image config", "not an object"))?;
        object.insert("created".into(), created.clone().into());
        if let Some(author) = &options.author {
            object.insert("author".into(), author.clone().into());
        }
        let runtime_config = object
            .entry("config")
            .or_insert_with(|| serde_json::json!({}));
        if let Some(fields) = runtime_config.as_object_mut() {
            fields.extend(options.config.clone());
        }
        let diff_ids = object
            .get_mut("rootfs")
            .and_then(|r| r.get_mut("diff_ids"))
            .and_then(|d| d.as_array_mut())
            .ok_or_else(|| invalid_json("base image config", "no rootfs.diff_ids"))?;
        let mut entry = serde_json::json!({ "created": created, "created_by": options.created_by });
        match &layer {
            Some((digest, _)) => diff_ids.push(digest.to_string().into()),
            None => entry["empty_layer"] = true.into(),
        }
        if let Some(author) = &options.author {
            entry["author"] = author.clone().into();
        }
        if let Some(message) = &options.message {
            entry["comment"] = message.clone().into();
        }
        match object.get_mut("history").and_then(|h| h.as_array_mut()) {
            Some(history) => history.push(entry),
            None => {
                object.insert("history".into(), serde_json::json!([entry]));
            }
        }
        let config = serde_json::to_vec(&config).map_err(|e| invalid_json("image config", e))?;
        let config_digest = Digest::of_bytes(&config);
        self.blobs.ingest(&config_digest, &config[..])?;

        let mut manifest: ImageManifest = match base {
            Some(base) => {
                let data = self
                    .blobs
                    .read_small(&base.manifest_digest, "image manifest")?;
                serde_json::from_slice(&data).map_err(|e| invalid_json("base image manifest", e))?
            }
            None => serde_json::from_value(serde_json::json!({
                "schemaVersion": 2,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": Digest::of_bytes(b"{}").to_string(),
                    "size": 2,
                },
                "layers": [],
            }))
            .map_err(|e| invalid_json("image manifest", e))?,
        };
        if let Some((digest, size)) = &layer {
            let mut layers = manifest.layers().clone();
            layers.push(descriptor(MediaType::ImageLayer, digest, *size)?);
            manifest.set_layers(layers);
        }
        manifest.set_config(descriptor(
            MediaType::ImageConfig,
            &config_digest,
            config.len() as u64,
        )?);
        manifest.set_media_type(Some(MediaType::ImageManifest));
        let manifest_bytes =
            serde_json::to_vec(&manifest).map_err(|e| invalid_json("image manifest", e))?;
        let manifest_digest = Digest::of_bytes(&manifest_bytes);
        self.blobs.ingest(&manifest_digest, &manifest_bytes[..])?;
        let id = import_image(self, &manifest_digest, &manifest, reference.as_ref())?;
        if let Some(base) = base {
            super::table::ImageTable::update(&self.root, |table| {
                if let Some(record) = table.images.get_mut(&manifest_digest) {
                    record.parent = Some(base.id.clone());
                }
            })?;
        }
        Ok(id)
    }
}

fn descriptor(media_type: MediaType, digest: &Digest, size: u64) -> Result<Descriptor, ImageError> {
    let digest: oci_spec::image::Digest = digest
        .to_string()
        .parse()
        .map_err(|e| invalid_json("descriptor", e))?;
    Ok(Descriptor::new(media_type, size, digest))
}

fn invalid_json(what: &str, reason: impl std::fmt::Display) -> ImageError {
    ImageError::InvalidJson {
        what: what.to_string(),
        reason: reason.to_string(),
    }
}

/// The sha256 of a file's content.
fn digest_of_file(path: &Path) -> Result<Digest, ImageError> {
    use sha2::{Digest as _, Sha256};
    let mut file = std::fs::File::open(path).map_err(|e| ImageError::io("open", path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| ImageError::io("read", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(Digest::from_hasher(hasher))
}
