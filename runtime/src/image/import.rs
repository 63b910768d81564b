//! Adding an image to the store once its manifest, config and layer blobs
//! are in the blob store (verified against their digests): the one path
//! by which `hull load`, `hull import` and `hull pull` record images.

use std::collections::HashMap;

use oci_spec::image::{Descriptor, ImageManifest};

use super::table::{ImageRecord, ImageTable};
use super::unpack;
use super::{Digest, ImageError, ImageStore, Reference};

/// Checks, unpacks and records one image; returns its id.
pub(crate) fn import_image(
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
    let config = super::config::decode(&config_data, &what)?;
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
        parent: None,
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
pub(crate) fn descriptor_digest(descriptor: &Descriptor) -> Result<Digest, ImageError> {
    descriptor.digest().as_ref().parse()
}

/// Checks blob `digest` is stored with the size `descriptor` announces;
/// `missing` is the error when it is not stored at all.
pub(crate) fn check_size(
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
