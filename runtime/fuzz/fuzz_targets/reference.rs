//! Image references (`hull pull/run/tag NAME`, names in archives and in
//! images.json), platforms (`--platform`) and digests: no panic, and a
//! parsed reference parses back to itself from its full form (images.json
//! stores it and reads it back) and, unless ambiguous as in Docker, from its
//! familiar form (what `hull images` shows).
#![no_main]

use hull_runtime::image::{Digest, Platform, Reference};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };

    if let Ok(reference) = Reference::parse(text) {
        let full = reference.full();
        let familiar = reference.familiar_string();
        let _ = (reference.domain(), reference.path(), reference.name(), reference.familiar());
        let _ = (reference.tag(), reference.digest(), reference.to_string());
        match Reference::parse(&full) {
            Ok(again) => assert_eq!(again, reference, "{text:?} → full {full:?} parses differently"),
            Err(err) => panic!("{text:?} → full {full:?} does not parse: {err}"),
        }
        // As with Docker, `docker.io/a.b/c` is shown as `a.b/c`, which
        // names registry a.b: the familiar form only round-trips when its
        // first component cannot be taken for a registry.
        let ambiguous = familiar
            .split_once('/')
            .is_some_and(|(first, _)| first.contains(['.', ':']) || first == "localhost");
        if !ambiguous {
            match Reference::parse(&familiar) {
                Ok(again) => assert_eq!(again, reference, "{text:?} → familiar {familiar:?} parses differently"),
                Err(err) => panic!("{text:?} → familiar {familiar:?} does not parse: {err}"),
            }
        }
    }

    if let Ok(digest) = text.parse::<Digest>() {
        assert_eq!(digest.to_string().parse::<Digest>().ok(), Some(digest.clone()));
        let _ = digest.short();
    }

    if let Ok(platform) = text.parse::<Platform>() {
        let _ = platform.to_string().parse::<Platform>();
    }
});
