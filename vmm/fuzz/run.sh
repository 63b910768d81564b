#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 60) each, from the committed
# seeds. Needs cargo-fuzz and a nightly toolchain (or RUSTC_BOOTSTRAP=1).
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
python3 make-seeds.py
toolchain=+nightly
rustup toolchain list | grep -q '^nightly' || { toolchain=; export RUSTC_BOOTSTRAP=1; }
for target in blk_queue vsock_queue net_queue; do
    mkdir -p "corpus/$target"
    log=$(mktemp)
    if ! cargo $toolchain fuzz run "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -max_len=16384 >"$log" 2>&1; then
        tail -40 "$log"
        echo "$target: FAILED"
        exit 1
    fi
    echo "$target: $(grep -E '^#[0-9]+[[:space:]]+DONE|^Done' "$log" | tr '\n' ' ')"
    rm -f "$log"
done
