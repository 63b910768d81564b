//! An image config from a hostile registry or archive: loaded through
//! `hull load` (an OCI layout whose manifest names it and the fixed layer)
//! against a fresh store, then resolved and turned into a container spec
//! as `hull create` does. No panic; nothing written outside the store.
//! `$DIFF` (see common.rs) is the fixed layer's diff_id.
#![no_main]

mod common;

use common::{blob_path, fixed, fixed_blobs, OCI_CONFIG, OCI_LAYER_GZIP, OCI_LAYOUT, OCI_MANIFEST};
use hull_runtime::image::Digest;
use libfuzzer_sys::fuzz_target;
use oci_spec::image::ImageConfiguration;

fuzz_target!(|data: &[u8]| {
    let doc = common::expand(data);
    let _ = serde_json::from_slice::<ImageConfiguration>(&doc);

    let layer = &fixed().layer;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": OCI_CONFIG, "digest": Digest::of_bytes(&doc).to_string(), "size": doc.len() },
        "layers": [{ "mediaType": OCI_LAYER_GZIP, "digest": Digest::of_bytes(layer).to_string(), "size": layer.len() }],
    }))
    .unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": OCI_MANIFEST,
            "digest": Digest::of_bytes(&manifest).to_string(),
            "size": manifest.len(),
            "annotations": { "io.containerd.image.name": "fuzz/config:1" },
        }],
    });
    let mut files = vec![
        ("oci-layout".to_owned(), OCI_LAYOUT.to_vec()),
        ("index.json".to_owned(), serde_json::to_vec(&index).unwrap()),
        (blob_path(&manifest), manifest),
        (blob_path(&doc), doc),
    ];
    files.extend(fixed_blobs());
    common::load(&files);
});
