//! An image manifest from a hostile registry or archive: decoded as `hull
//! pull` decodes a fetched one, then loaded through `hull load` both as the
//! manifest blob of an OCI image layout and as a Docker archive's
//! `manifest.json`, against a fresh store. No panic; nothing written
//! outside the store. Placeholders (`$CFG`, `$LAYER`, …, see common.rs)
//! let inputs point at real blobs.
#![no_main]

mod common;

use common::{fixed, fixed_blobs, OCI_MANIFEST};
use libfuzzer_sys::fuzz_target;
use oci_spec::image::ImageManifest;

fuzz_target!(|data: &[u8]| {
    let doc = common::expand(data);

    // `hull pull`: the registry's bytes through serde as they come.
    let _ = serde_json::from_slice::<ImageManifest>(&doc);

    // `hull load` of an OCI layout whose index.json names the manifest.
    common::load_layout(OCI_MANIFEST, &doc, "fuzz/manifest:1", Vec::new());

    // `hull load` of a Docker archive (docker save before 25): its
    // manifest.json names config and layers by path.
    let mut files = vec![
        ("manifest.json".to_owned(), doc),
        ("fuzz.json".to_owned(), fixed().config.clone()),
        ("fuzz/layer.tar".to_owned(), fixed().layer_tar.clone()),
    ];
    files.extend(fixed_blobs());
    common::load(&files);
});
