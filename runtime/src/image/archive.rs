//! `hull load -i FILE`: importing a tar (optionally gzip-compressed) of an
//! OCI image layout, as written by `docker save` (Docker 25+), `skopeo copy
//! oci-archive:` or `buildctl --output type=oci`.
//!
//! The archive is streamed once: blobs go straight into the blob store,
//! verified against their names; `index.json` and `oci-layout` are kept in
//! memory (bounded). Everything else happens from the blob store afterwards.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use oci_spec::image::{
    Arch, Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType, Os,
};

use super::blobs::MAX_JSON_SIZE;
use super::digest::is_sha256_hex;
use super::fsutil;
use super::table::{ImageRecord, ImageTable};
use super::unpack::{self, normalize_path};
use super::{Digest, ImageError, ImageStore, LoadedImage, Reference};

/// Bound on the number of entries in an archive.
const MAX_ARCHIVE_ENTRIES: u64 = 1_000_000;
/// How deep image indexes may nest inside each other.
const MAX_INDEX_DEPTH: usize = 4;

/// Annotation containerd and Docker put the full image name in.
const CONTAINERD_NAME_ANNOTATION: &str = "io.containerd.image.name";
/// The OCI annotation naming a manifest in a layout (often just a tag).
const OCI_REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// What the single pass over the archive kept in memory.
struct ArchiveContents {
    index_json: Option<Vec<u8>>,
    oci_layout: Option<Vec<u8>>,
}

/// Imports every image of the archive at `path` into `store`.
pub(crate) fn load(store: &ImageStore, path: &Path) -> Result<Vec<LoadedImage>, ImageError> {
    let contents = ingest(store, path)?;
    let invalid = |reason: String| ImageError::InvalidArchive {
        path: path.to_owned(),
        reason,
    };

    let layout = contents.oci_layout.ok_or_else(|| {
        invalid(
            "no oci-layout file: not an OCI image layout (e.g. `docker save` from Docker 25+)"
                .to_owned(),
        )
    })?;
    let layout: serde_json::Value = serde_json::from_slice(&layout)
        .map_err(|err| invalid(format!("oci-layout is not valid JSON: {err}")))?;
    if layout.get("imageLayoutVersion").and_then(|v| v.as_str()) != Some("1.0.0") {
        return Err(invalid(
            "oci-layout does not declare imageLayoutVersion 1.0.0".to_owned(),
        ));
    }
    let index_json = contents
        .index_json
        .ok_or_else(|| invalid("no index.json".to_owned()))?;
    let index: ImageIndex = serde_json::from_slice(&index_json)
        .map_err(|err| invalid(format!("index.json is not a valid image index: {err}")))?;

    let mut loaded = Vec::new();
    for descriptor in index.manifests() {
        if !is_index(descriptor) && !is_manifest(descriptor) {
            tracing::debug!(media_type = %descriptor.media_type(), "skipping non-image entry of index.json");
            continue;
        }
        if descriptor
            .platform()
            .as_ref()
            .is_some_and(|p| !matches_host(p))
        {
            continue;
        }
        let reference = image_name(descriptor)?;
        let (manifest_digest, manifest) = resolve_manifest(store, descriptor, 0)?;
        let id = import_image(store, &manifest_digest, &manifest, reference.as_ref())?;
        loaded.push(LoadedImage { reference, id });
    }
    if loaded.is_empty() {
        return Err(invalid(format!(
            "index.json lists no image for {}/{}",
            Os::Linux,
            host_arch()
        )));
    }
    Ok(loaded)
}

/// The single streaming pass: stores blobs, keeps the small files.
fn ingest(store: &ImageStore, path: &Path) -> Result<ArchiveContents, ImageError> {
    let file = File::open(path).map_err(|e| ImageError::io("open", path, e))?;
    let mut buffered = BufReader::new(file);
    let is_gzip = buffered
        .fill_buf()
        .map_err(|e| ImageError::io("read", path, e))?
        .starts_with(&[0x1f, 0x8b]);
    let stream: Box<dyn Read> = if is_gzip {
        Box::new(MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    let read_error = |err| ImageError::io("read", path, err);
    let invalid = |reason: String| ImageError::InvalidArchive {
        path: path.to_owned(),
        reason,
    };

    let mut contents = ArchiveContents {
        index_json: None,
        oci_layout: None,
    };
    let mut archive = tar::Archive::new(stream);
    for (count, entry) in archive.entries().map_err(read_error)?.enumerate() {
        if count as u64 >= MAX_ARCHIVE_ENTRIES {
            return Err(invalid(format!("more than {MAX_ARCHIVE_ENTRIES} entries")));
        }
        let mut entry = entry.map_err(read_error)?;
        let raw_path = entry.path_bytes().into_owned();
        let components = normalize_path(&raw_path).map_err(|reason| {
            invalid(format!(
                "entry '{}' {reason}",
                String::from_utf8_lossy(&raw_path).escape_debug()
            ))
        })?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        match components.as_slice() {
            [b"index.json"] => {
                contents.index_json = Some(read_small(&mut entry, "index.json", path)?);
            }
            [b"oci-layout"] => {
                contents.oci_layout = Some(read_small(&mut entry, "oci-layout", path)?);
            }
            [b"blobs", b"sha256", name] => {
                let name = std::str::from_utf8(name)
                    .ok()
                    .filter(|name| is_sha256_hex(name))
                    .ok_or_else(|| {
                        invalid(format!(
                            "blob name '{}' is not 64 lowercase hex characters",
                            String::from_utf8_lossy(name).escape_debug()
                        ))
                    })?;
                store.blobs.ingest(&Digest::from_hex(name)?, &mut entry)?;
            }
            // manifest.json, repositories, other algorithms' blobs…
            _ => {}
        }
    }
    Ok(contents)
}

fn read_small(entry: &mut impl Read, what: &str, path: &Path) -> Result<Vec<u8>, ImageError> {
    fsutil::read_bounded(entry, MAX_JSON_SIZE, what)
        .map_err(|err| fsutil::too_large(&err).unwrap_or_else(|| ImageError::io("read", path, err)))
}

/// The reference an index entry names, if any: `io.containerd.image.name`,
/// else `org.opencontainers.image.ref.name` when it is a full reference
/// rather than a bare tag (a bare tag leaves the image untagged).
fn image_name(descriptor: &Descriptor) -> Result<Option<Reference>, ImageError> {
    let Some(annotations) = descriptor.annotations() else {
        return Ok(None);
    };
    if let Some(name) = annotations.get(CONTAINERD_NAME_ANNOTATION) {
        return Reference::parse(name).map(Some);
    }
    match annotations.get(OCI_REF_NAME_ANNOTATION) {
        Some(name) if name.contains(['/', ':']) => Reference::parse(name).map(Some),
        _ => Ok(None),
    }
}

/// Follows `descriptor` (through nested indexes, choosing this host's
/// platform) down to an image manifest.
fn resolve_manifest(
    store: &ImageStore,
    descriptor: &Descriptor,
    depth: usize,
) -> Result<(Digest, ImageManifest), ImageError> {
    let digest = descriptor_digest(descriptor)?;
    check_size(
        store,
        descriptor,
        &digest,
        ImageError::MissingBlob(digest.clone()),
    )?;
    let what = if is_index(descriptor) {
        "image index"
    } else {
        "manifest"
    };
    let data = store
        .blobs
        .read_small(&digest, &format!("{what} {digest}"))?;
    let invalid_json = |err: serde_json::Error| ImageError::InvalidJson {
        what: format!("{what} {digest}"),
        reason: err.to_string(),
    };

    if !is_index(descriptor) {
        let manifest: ImageManifest = serde_json::from_slice(&data).map_err(invalid_json)?;
        return Ok((digest, manifest));
    }
    if depth >= MAX_INDEX_DEPTH {
        return Err(ImageError::InvalidJson {
            what: format!("image index {digest}"),
            reason: format!("indexes nest more than {MAX_INDEX_DEPTH} deep"),
        });
    }
    let index: ImageIndex = serde_json::from_slice(&data).map_err(invalid_json)?;
    let candidates: Vec<&Descriptor> = index
        .manifests()
        .iter()
        .filter(|d| is_index(d) || is_manifest(d))
        .collect();
    let chosen = if candidates.iter().any(|d| d.platform().is_some()) {
        candidates
            .iter()
            .find(|d| d.platform().as_ref().is_some_and(matches_host))
    } else {
        candidates.first()
    };
    let Some(chosen) = chosen else {
        return Err(ImageError::InvalidJson {
            what: format!("image index {digest}"),
            reason: format!("it has no image for {}/{}", Os::Linux, host_arch()),
        });
    };
    resolve_manifest(store, chosen, depth + 1)
}

/// Checks, unpacks and records one image; returns its id.
fn import_image(
    store: &ImageStore,
    manifest_digest: &Digest,
    manifest: &ImageManifest,
    reference: Option<&Reference>,
) -> Result<Digest, ImageError> {
    let config_digest = descriptor_digest(manifest.config())?;
    check_size(
        store,
        manifest.config(),
        &config_digest,
        ImageError::MissingBlob(config_digest.clone()),
    )?;
    let what = format!("image config {config_digest}");
    let config_data = store.blobs.read_small(&config_digest, &what)?;
    let config: ImageConfiguration =
        serde_json::from_slice(&config_data).map_err(|err| ImageError::InvalidJson {
            what: what.clone(),
            reason: err.to_string(),
        })?;
    let diff_ids = config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|text| text.parse())
        .collect::<Result<Vec<Digest>, _>>()?;
    if diff_ids.len() != manifest.layers().len() {
        return Err(ImageError::LayerCountMismatch {
            manifest: manifest_digest.clone(),
            layers: manifest.layers().len(),
            diff_ids: diff_ids.len(),
        });
    }

    // Check every layer is present before spending time unpacking any.
    let mut layer_digests = Vec::with_capacity(diff_ids.len());
    for layer in manifest.layers() {
        let digest = descriptor_digest(layer)?;
        check_size(
            store,
            layer,
            &digest,
            ImageError::MissingLayer(digest.clone()),
        )?;
        layer_digests.push(digest);
    }

    let layers_root = store.layers_root();
    let mut sizes: HashMap<&Digest, u64> = HashMap::new();
    for ((layer, blob_digest), diff_id) in
        manifest.layers().iter().zip(&layer_digests).zip(&diff_ids)
    {
        let dir = unpack::ensure_layer(
            &layers_root,
            &store.blobs.path(blob_digest),
            blob_digest,
            layer.media_type().as_ref(),
            diff_id,
        )?;
        if !sizes.contains_key(diff_id) {
            sizes.insert(diff_id, unpack::layer_size(&dir)?);
        }
    }

    let record = ImageRecord {
        config: config_digest.clone(),
        diff_ids: diff_ids.clone(),
        created: config.created().clone(),
        size: sizes.values().sum(),
    };
    ImageTable::update(&store.root, |table| {
        table.images.insert(manifest_digest.clone(), record);
        if let Some(reference) = reference {
            table
                .references
                .insert(reference.full(), manifest_digest.clone());
        }
    })?;
    Ok(config_digest)
}

/// A descriptor's digest, which Hull requires to be sha256.
fn descriptor_digest(descriptor: &Descriptor) -> Result<Digest, ImageError> {
    descriptor.digest().as_ref().parse()
}

/// Checks blob `digest` is stored with the size `descriptor` announces;
/// `missing` is the error when it is not stored at all.
fn check_size(
    store: &ImageStore,
    descriptor: &Descriptor,
    digest: &Digest,
    missing: ImageError,
) -> Result<(), ImageError> {
    match store.blobs.size(digest)? {
        None => Err(missing),
        Some(actual) if actual != descriptor.size() => Err(ImageError::BlobSizeMismatch {
            digest: digest.clone(),
            expected: descriptor.size(),
            actual,
        }),
        Some(_) => Ok(()),
    }
}

fn is_index(descriptor: &Descriptor) -> bool {
    match descriptor.media_type() {
        MediaType::ImageIndex => true,
        MediaType::Other(other) => other == DOCKER_MANIFEST_LIST,
        _ => false,
    }
}

fn is_manifest(descriptor: &Descriptor) -> bool {
    match descriptor.media_type() {
        MediaType::ImageManifest => true,
        MediaType::Other(other) => other == DOCKER_MANIFEST,
        _ => false,
    }
}

/// The platform Hull's guests run: linux on the host's CPU architecture.
fn matches_host(platform: &oci_spec::image::Platform) -> bool {
    *platform.os() == Os::Linux && *platform.architecture() == host_arch()
}

/// The host's CPU architecture in OCI (Go) spelling.
fn host_arch() -> Arch {
    match std::env::consts::ARCH {
        "x86_64" => Arch::Amd64,
        "aarch64" => Arch::ARM64,
        other => Arch::from(other),
    }
}
