//! Compute and memory: an integer hash loop and a copy loop.

use crate::Phase;
use std::hint::black_box;

/// A deterministic buffer of `len` bytes (xorshift64), the same everywhere.
fn pattern(len: usize) -> Vec<u64> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len / 8)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        })
        .collect()
}

/// Hashes `mib` MiB of a fixed pattern with a multiply/xor/rotate mix
/// (four rounds a word); the check is the hash, equal in every environment.
pub fn hash(mib: u64) {
    let words = pattern((mib as usize) << 20);
    let phase = Phase::begin("hash");
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for &w in black_box(&words) {
        let mut x = h ^ w;
        for _ in 0..4 {
            x = x.wrapping_mul(0x0000_0100_0000_01B3).rotate_left(31) ^ (x >> 29);
        }
        h = x;
    }
    phase.end(
        words.len() as u64,
        (words.len() * 8) as u64,
        format!("{h:016x}"),
    );
}

/// Copies a `mib` MiB buffer into another `rounds` times (memcpy); bytes
/// counts what was copied. The check is a word of the destination.
pub fn memcpy(mib: u64, rounds: u64) {
    let src = pattern((mib as usize) << 20);
    let mut dst = vec![0u64; src.len()];
    // Touch the destination first: page faults are not bandwidth.
    dst.copy_from_slice(&src);
    let phase = Phase::begin("memcpy");
    for round in 0..rounds {
        let (a, b) = (black_box(&src[..]), black_box(&mut dst[..]));
        b.copy_from_slice(a);
        b[0] = round;
    }
    let last = dst.len().saturating_sub(1);
    let check = format!("{:016x}", dst.get(last).copied().unwrap_or(0));
    phase.end(rounds, mib.saturating_mul(rounds) << 20, check);
}
