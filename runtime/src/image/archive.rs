//! `hull load -i FILE`: importing a tar (optionally gzip-compressed) of an
//! OCI image layout, as written by `docker save` (Docker 25+), `skopeo copy
//! oci-archive:` or `buildctl --output type=oci`, or of a legacy Docker
//! archive (`manifest.json` naming a config and layer tars by path, as
//! `docker save` before 25 and `skopeo copy docker-archive:` write it).
//!
//! The archive is streamed once: blobs go straight into the blob store,
//! verified against their names (files of a legacy archive are stored under
//! the digest they hash to, and their paths remembered); `index.json`,
//! `oci-layout` and `manifest.json` are kept in memory (bounded).
//! Everything else happens from the blob store afterwards.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};

use super::blobs::MAX_JSON_SIZE;
use super::digest::is_sha256_hex;
use super::fsutil;
use super::import::{check_size, descriptor_digest, import_image};
use super::platform::{is_index, is_manifest, Platform};
use super::unpack::normalize_path;
use super::{Digest, ImageError, ImageStore, LoadedImage, Reference};

/// Bound on the number of entries in an archive.
const MAX_ARCHIVE_ENTRIES: u64 = 1_000_000;
/// How deep image indexes may nest inside each other.
const MAX_INDEX_DEPTH: usize = 4;

/// Annotation containerd and Docker put the full image name in.
const CONTAINERD_NAME_ANNOTATION: &str = "io.containerd.image.name";
/// The OCI annotation naming a manifest in a layout (often just a tag).
const OCI_REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// What the single pass over the archive kept in memory.
struct ArchiveContents {
    index_json: Option<Vec<u8>>,
    oci_layout: Option<Vec<u8>>,
    /// A Docker archive's `manifest.json`.
    docker_manifest: Option<Vec<u8>>,
    /// The other files (a legacy archive's configs and layer tars): path
    /// in the archive → stored blob.
    files: std::collections::HashMap<String, (Digest, u64)>,
}

/// One image of a Docker archive's `manifest.json`.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerArchiveImage {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Imports every image of the archive at `path` into `store`.
pub(crate) fn load(store: &ImageStore, path: &Path) -> Result<Vec<LoadedImage>, ImageError> {
    let contents = ingest(store, path)?;
    let invalid = |reason: String| ImageError::InvalidArchive {
        path: path.to_owned(),
        reason,
    };

    let Some(layout) = contents.oci_layout else {
        return match &contents.docker_manifest {
            Some(manifest) => load_docker_archive(store, manifest, &contents.files, &invalid),
            None => Err(invalid(
                "neither an OCI image layout (oci-layout) nor a Docker archive (manifest.json)"
                    .to_owned(),
            )),
        };
    };
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

    let host = Platform::host();
    let mut loaded = Vec::new();
    for descriptor in index.manifests() {
        if !is_index(descriptor) && !is_manifest(descriptor) {
            tracing::debug!(media_type = %descriptor.media_type(), "skipping non-image entry of index.json");
            continue;
        }
        if descriptor
            .platform()
            .as_ref()
            .is_some_and(|p| !host.matches(p))
        {
            continue;
        }
        let reference = image_name(descriptor)?;
        let (manifest_digest, manifest) = resolve_manifest(store, descriptor, 0)?;
        let id = import_image(store, &manifest_digest, &manifest, reference.as_ref())?;
        loaded.push(LoadedImage { reference, id });
    }
    if loaded.is_empty() {
        return Err(invalid(format!("index.json lists no image for {host}")));
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
        docker_manifest: None,
        files: std::collections::HashMap::new(),
    };
    let mut archive = tar::Archive::new(stream);
    // A file that is no tar at all, or one cut short, says so (its bytes
    // never reach the message: they may be anything).
    let unreadable = |count: usize, err: std::io::Error| match err.kind() {
        std::io::ErrorKind::InvalidData | std::io::ErrorKind::Other if count == 0 => {
            invalid("not a tar archive (docker save, skopeo or umoci make one)".to_string())
        }
        std::io::ErrorKind::UnexpectedEof => invalid(format!(
            "the archive ends early, after {count} entries: it is truncated"
        )),
        std::io::ErrorKind::InvalidData | std::io::ErrorKind::Other => invalid(format!(
            "entry {} is not a valid tar entry: it is corrupt or truncated",
            count + 1
        )),
        _ => read_error(err),
    };
    for (count, entry) in archive.entries().map_err(read_error)?.enumerate() {
        if count as u64 >= MAX_ARCHIVE_ENTRIES {
            return Err(invalid(format!("more than {MAX_ARCHIVE_ENTRIES} entries")));
        }
        let mut entry = entry.map_err(|err| unreadable(count, err))?;
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
                let digest = Digest::from_hex(name)?;
                store_entry(&mut entry, &raw_path, &invalid, |content| {
                    store.blobs.ingest(&digest, content)
                })?;
            }
            [b"manifest.json"] => {
                contents.docker_manifest = Some(read_small(&mut entry, "manifest.json", path)?);
            }
            // A legacy archive's `<id>.json` configs and `<id>/layer.tar`s
            // (a layout's blobs are all handled above).
            [.., name]
                if name.ends_with(b".json")
                    || name.ends_with(b".tar")
                    || name.ends_with(b".tar.gz") =>
            {
                let key = components
                    .iter()
                    .map(|c| String::from_utf8_lossy(c))
                    .collect::<Vec<_>>()
                    .join("/");
                let stored = store_entry(&mut entry, &raw_path, &invalid, |content| {
                    store.blobs.ingest_unnamed(content)
                })?;
                contents.files.insert(key, stored);
            }
            // repositories, VERSION, other algorithms' blobs…
            _ => {}
        }
    }
    Ok(contents)
}

/// A reader that counts the bytes it gave.
struct Counted<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// Stores an entry's bytes with `store_it`; an entry that gave fewer bytes
/// than its header declares (the archive ended inside it) is reported as a
/// truncated archive, not as the wrong digest that follows from it.
fn store_entry<R: Read, T>(
    entry: &mut tar::Entry<'_, R>,
    raw_path: &[u8],
    invalid: &dyn Fn(String) -> ImageError,
    store_it: impl FnOnce(&mut dyn Read) -> Result<T, ImageError>,
) -> Result<T, ImageError> {
    let declared = entry.size();
    let mut counted = Counted {
        inner: entry,
        count: 0,
    };
    let stored = store_it(&mut counted);
    if counted.count < declared
        && matches!(stored, Ok(_) | Err(ImageError::BlobDigestMismatch { .. }))
    {
        return Err(invalid(format!(
            "the archive is truncated: entry '{}' has {} of its {declared} bytes",
            String::from_utf8_lossy(raw_path).escape_debug(),
            counted.count
        )));
    }
    stored
}

/// Imports the images a Docker archive's `manifest.json` lists: each gets
/// an OCI manifest of the config and layers it names, then goes the one
/// import path, which checks the layers against the config's diff_ids.
fn load_docker_archive(
    store: &ImageStore,
    manifest_json: &[u8],
    files: &std::collections::HashMap<String, (Digest, u64)>,
    invalid: &dyn Fn(String) -> ImageError,
) -> Result<Vec<LoadedImage>, ImageError> {
    use oci_spec::image::{DescriptorBuilder, ImageManifestBuilder, MediaType};
    let images: Vec<DockerArchiveImage> = serde_json::from_slice(manifest_json).map_err(|err| {
        invalid(format!(
            "manifest.json is not a Docker archive manifest: {err}"
        ))
    })?;
    let file = |path: &str| -> Result<(Digest, u64), ImageError> {
        let key = String::from_utf8_lossy(
            &normalize_path(path.as_bytes())
                .map_err(|reason| invalid(format!("manifest.json names '{path}', which {reason}")))?
                .join(&b'/'),
        )
        .into_owned();
        if let Some(stored) = files.get(&key) {
            return Ok(stored.clone());
        }
        // Docker 25+ (and `hull save`) name blobs of the layout they also hold.
        let missing = || {
            invalid(format!(
                "manifest.json names {path}, which the archive does not hold"
            ))
        };
        let digest = key
            .strip_prefix("blobs/sha256/")
            .filter(|hex| is_sha256_hex(hex))
            .ok_or_else(missing)?;
        let digest = Digest::from_hex(digest)?;
        let size = store.blobs.size(&digest)?.ok_or_else(missing)?;
        Ok((digest, size))
    };
    let descriptor =
        |media_type: MediaType, (digest, size): &(Digest, u64)| -> Result<Descriptor, ImageError> {
            let digest: oci_spec::image::Digest = digest
                .to_string()
                .parse()
                .map_err(|err| invalid(format!("digest {digest}: {err}")))?;
            DescriptorBuilder::default()
                .media_type(media_type)
                .digest(digest)
                .size(*size)
                .build()
                .map_err(|err| invalid(err.to_string()))
        };
    let mut loaded = Vec::new();
    for image in images {
        let mut layers = Vec::with_capacity(image.layers.len());
        for layer in &image.layers {
            let stored = file(layer)?;
            let mut head = [0u8; 2];
            let compressed = store
                .blobs
                .open_blob(&stored.0)?
                .read_exact(&mut head)
                .is_ok()
                && head == [0x1f, 0x8b];
            layers.push(descriptor(
                if compressed {
                    MediaType::ImageLayerGzip
                } else {
                    MediaType::ImageLayer
                },
                &stored,
            )?);
        }
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(descriptor(MediaType::ImageConfig, &file(&image.config)?)?)
            .layers(layers)
            .build()
            .map_err(|err| invalid(err.to_string()))?;
        let bytes = serde_json::to_vec(&manifest).map_err(|err| invalid(err.to_string()))?;
        let manifest_digest = Digest::of_bytes(&bytes);
        store.blobs.ingest(&manifest_digest, &bytes[..])?;
        let tags = image.repo_tags.unwrap_or_default();
        let references = tags
            .iter()
            .map(|tag| Reference::parse(tag))
            .collect::<Result<Vec<_>, _>>()?;
        let id = import_image(store, &manifest_digest, &manifest, references.first())?;
        for reference in references.iter().skip(1) {
            store.tag(&id.to_string(), &reference.full())?;
        }
        loaded.push(LoadedImage {
            reference: references.into_iter().next(),
            id,
        });
    }
    if loaded.is_empty() {
        return Err(invalid("manifest.json lists no image".to_owned()));
    }
    Ok(loaded)
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
    let host = Platform::host();
    let Some(chosen) = host.select(index.manifests()) else {
        return Err(ImageError::InvalidJson {
            what: format!("image index {digest}"),
            reason: format!("it has no image for {host}"),
        });
    };
    resolve_manifest(store, chosen, depth + 1)
}
