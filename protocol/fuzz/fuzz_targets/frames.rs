//! Arbitrary bytes from a hostile peer, in arbitrary chunks, through the
//! frame decoder and every message parser: no panic, bounded memory.
#![no_main]

use hull_protocol::{
    decode_json, Event, FrameDecoder, FrameKind, RequestEnvelope, ResponseEnvelope, HEADER_LEN, MAX_PAYLOAD_LEN,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the chunk size, so reassembly is fuzzed too.
    let Some((&chunk, rest)) = data.split_first() else { return };
    let mut decoder = FrameDecoder::new();
    for piece in rest.chunks(usize::from(chunk).max(1)) {
        decoder.push(piece);
        while let Some(frame) = decoder.next_frame() {
            let Ok(frame) = frame else { continue };
            assert!(frame.payload.len() <= MAX_PAYLOAD_LEN as usize);
            let _ = decode_json::<RequestEnvelope>(&frame, FrameKind::Request);
            let _ = decode_json::<ResponseEnvelope>(&frame, FrameKind::Response);
            let _ = decode_json::<Event>(&frame, FrameKind::Event);
            let _ = frame.stdio_parts();
            // Re-encoding what was decoded gives the same frame back.
            let wire = frame.encode();
            assert_eq!(wire.len(), HEADER_LEN + frame.payload.len());
        }
    }
});
