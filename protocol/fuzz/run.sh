#!/usr/bin/env bash
# Fuzzes the protocol decoder for SECONDS (default 60). Needs cargo-fuzz and
# a nightly toolchain (or RUSTC_BOOTSTRAP=1 on stable, used when there is none).
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
toolchain=+nightly
rustup toolchain list | grep -q '^nightly' || { toolchain=; export RUSTC_BOOTSTRAP=1; }
mkdir -p corpus/frames
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo $toolchain fuzz run frames corpus/frames -- -max_total_time="$seconds" -max_len=65536 >"$log" 2>&1 || { tail -40 "$log"; echo "frames: FAILED"; exit 1; }
echo "frames: $(grep -E '^Done [0-9]+ runs' "$log" | tail -1) (clean)"
