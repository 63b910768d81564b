//! An OCI image index / Docker manifest list from a hostile registry or
//! archive: decoded and searched for a platform as `hull pull` does, then
//! loaded through `hull load` as an OCI layout's index.json and as a
//! nested index blob, against a fresh store. No panic; nothing written
//! outside the store. `$MAN`/`$MANSIZE` (see common.rs) name a real
//! manifest.
#![no_main]

mod common;

use common::{fixed_blobs, OCI_INDEX, OCI_LAYOUT};
use hull_runtime::image::{Digest, Platform};
use libfuzzer_sys::fuzz_target;
use oci_spec::image::ImageIndex;

const PLATFORMS: [&str; 6] = ["linux", "linux/amd64", "linux/arm64", "linux/arm64/v8", "linux/arm/v7", "windows/amd64"];

fuzz_target!(|data: &[u8]| {
    let doc = common::expand(data);

    // `hull pull`: serde, then the platform's entry, then its digest.
    if let Ok(index) = serde_json::from_slice::<ImageIndex>(&doc) {
        for platform in PLATFORMS {
            let platform: Platform = platform.parse().expect("a valid platform");
            if let Some(chosen) = platform.select(index.manifests()) {
                let _ = chosen.digest().to_string().parse::<Digest>();
            }
        }
    }

    // `hull load`: the input is index.json.
    let mut files = vec![
        ("oci-layout".to_owned(), OCI_LAYOUT.to_vec()),
        ("index.json".to_owned(), doc.clone()),
    ];
    files.extend(fixed_blobs());
    common::load(&files);

    // `hull load`: index.json names the input as a nested image index.
    common::load_layout(OCI_INDEX, &doc, "fuzz/index:1", Vec::new());
});
