//! An image config from a hostile registry or archive: loaded through
//! `hull load` (an OCI layout whose manifest names it and the fixed layer)
//! against a fresh store, then resolved and turned into a container spec
//! as `hull create` does. No panic; nothing written outside the store.
//! `$DIFF` (see common.rs) is the fixed layer's diff_id.
#![no_main]

mod common;

use common::{blob_path, fixed, OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST};
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
    common::load_layout(OCI_MANIFEST, &manifest, "fuzz/config:1", vec![(blob_path(&doc), doc)]);
});
