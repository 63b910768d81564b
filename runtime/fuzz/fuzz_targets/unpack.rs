//! A hostile layer: arbitrary bytes (a tar, gzip-compressed or not) made
//! into an image with `ImageStore::import_tarball` (`hull import`), which
//! loads it through `hull load`'s path and unpacks it with the layer
//! unpacker into `<scratch>/jail/store/layers/`. Errors are fine; panics
//! are not, nor is any file appearing outside the store (the store sits in
//! directories that must keep holding only it), nor a temporary directory
//! left behind. Uncompressed input passes the diff_id check (the layer is
//! kept); gzip input is unpacked, then refused (diff_id mismatch).
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut scratch = common::Scratch::new();
    let tarball = scratch.input("layer.tar", data);
    let store = scratch.open_store();
    let result = store.import_tarball(&tarball, Some("fuzz/unpack:1"));
    common::debug("import_tarball", &result);
    scratch.check();
    if let Ok(loaded) = result {
        common::exercise(&store, &[loaded]);
        scratch.check();
    }
});
