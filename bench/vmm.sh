#!/usr/bin/env bash
# hull-vmm benchmarks, each figure beside its peer measured in the same run:
#   start_ms_hull / start_ms_qemu   process start -> first guest output (same PVH guest)
#   boot_timer_ms_hull              hull-vmm main() -> guest's boot timer port write
#   rss_overhead_mib(_qemu)         VmRSS beyond touched guest memory, idle, 1 vCPU, 128 MiB
#   vsock_mbps_host_to_guest_hull / vsock_mbps_guest_to_host_hull
#                                   64 MiB each way between a host peer on the hybrid vsock
#                                   socket and the test guest (vsockperf=N), data checked
#   vsock_mbps_unix_socket_peer     the same copy and check through a host unix socket
#                                   pair: a ceiling reference, not a VMM
#   net_mbps_guest_to_host_hull / net_fps_guest_to_host_hull
#   net_mbps_host_to_guest_hull / net_fps_host_to_guest_hull
#                                   5000 1514-byte frames each way between the guest
#                                   (netperf=N) and an AF_PACKET socket on its tap, in a
#                                   network namespace created (and deleted) for the run
#   net_mbps_veth_peer / net_fps_veth_peer
#                                   the same frames across a veth pair, no VM
# Throughput figures are medians of 3 short runs. On a PVM host the test guest's
# kernel-mode code is emulated, so they are bounded by the guest, not the VMM.
# Usage: bench/vmm.sh [RUNS]   (default 21; medians; the net figures need root)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-21}
cd "$repo"
[ -e /dev/kvm ] || { echo "bench/vmm.sh: /dev/kvm is missing" >&2; exit 1; }
rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-none \
    || rustup target add x86_64-unknown-none >&2
guests="$repo/vmm/test-guests"
(cd "$guests" && CARGO_ENCODED_RUSTFLAGS=$(printf '%s\x1f' -C relocation-model=static -C "link-arg=-T$guests/link.ld" -C link-arg=-nostdlib | sed 's/\x1f$//') \
    cargo build --release --quiet --target x86_64-unknown-none --target-dir "$repo/target/test-guests") >&2
cargo build --release --quiet -p hull-vmm >&2
exec "$repo/target/release/hull-vmm-bench" \
    --guest "$repo/target/test-guests/x86_64-unknown-none/release/hull-test-guest" \
    --runs "$runs"
