//! The throughput modes behind `bench/run vmm` (the guest's `vsockperf=N`
//! and `netperf=N`, driven by the benchmark's own host peers), kept short:
//! byte and frame counts and the data pattern must match both ways. The
//! host checks every byte it gets; the guest checks every byte with
//! `perfcheck=1` and spot-checks without (as in the benchmark).

mod common;

#[path = "../src/bin/hull-vmm-bench/throughput.rs"]
mod throughput;

use std::path::Path;

fn hull() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_hull-vmm"))
}

#[test]
fn vsock_throughput_mode_moves_a_mebibyte_each_way() {
    common::require_kvm();
    let figures = throughput::vsock_run(hull(), common::test_guest(), 1 << 20, true)
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(figures.bytes, 1 << 20);
    // The benchmark's way, with a size that is no multiple of anything.
    throughput::vsock_run(hull(), common::test_guest(), 100_003, false)
        .unwrap_or_else(|e| panic!("{e:#}"));
}

#[test]
fn net_throughput_mode_moves_frames_each_way() {
    common::require_kvm();
    // 700 frames of 1514 bytes: about 1 MiB each way.
    let figures = throughput::net_run(hull(), common::test_guest(), 700, true)
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(figures.frames, 700);
    throughput::net_run(hull(), common::test_guest(), 300, false)
        .unwrap_or_else(|e| panic!("{e:#}"));
}

#[test]
fn reference_peers_move_the_same_data() {
    throughput::unix_socket_run(1 << 20).unwrap_or_else(|e| panic!("{e:#}"));
    throughput::veth_run(700).unwrap_or_else(|e| panic!("{e:#}"));
}
