#!/usr/bin/env bash
# Runs the fuzz targets of hull-runtime's untrusted-input parsers for SECONDS
# (default 60) each, one after the other, from the seeds (make-seeds.py)
# plus the corpus kept from earlier runs; prints one line per target:
#   <target>: Done N runs in S second(s) (clean)
# Usage: runtime/fuzz/run.sh [SECONDS] [TARGET...]   (default: every target)
#
# Needs cargo-fuzz and a nightly toolchain (or RUSTC_BOOTSTRAP=1 on stable,
# used when there is none). Builds go to $CARGO_TARGET_DIR, by default
# ~/.cache/hull/fuzz-target, outside the clone (never the workspace's
# target/). Runs at nice 19 (FUZZ_NICE to change). The image targets work
# in throw-away stores under /dev/shm (HULL_FUZZ_TMPDIR to change); the
# unpack target should run as root to reach chown/mknod/trusted xattrs.
# A crash leaves its input in artifacts/<target>/ and fails the script.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(reference template manifest index config unpack)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hull/fuzz-target}
niceness=${FUZZ_NICE:-19}
toolchain=+nightly
rustup toolchain list | grep -q '^nightly' || { toolchain=; export RUSTC_BOOTSTRAP=1; }

python3 make-seeds.py

# Bounded work per input: input length caps, and a per-input timeout.
max_len() {
    case $1 in
        reference) echo 1024 ;;
        template) echo 4096 ;;
        unpack) echo 65536 ;;
        *) echo 65536 ;;
    esac
}
dict() {
    case $1 in
        manifest | index | config) echo dicts/oci.dict ;;
        *) echo "dicts/$1.dict" ;;
    esac
}

log=$(mktemp)
trap 'rm -f "$log"' EXIT
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    if ! nice -n "$niceness" cargo $toolchain fuzz build "$target" >"$log" 2>&1; then
        tail -40 "$log"
        echo "$target: build FAILED"
        exit 1
    fi
    if ! nice -n "$niceness" cargo $toolchain fuzz run "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -max_len="$(max_len "$target")" -timeout=30 \
        -dict="$(dict "$target")" >"$log" 2>&1; then
        tail -40 "$log"
        echo "$target: FAILED (crash input in artifacts/$target/)"
        exit 1
    fi
    echo "$target: $(grep -E '^Done [0-9]+ runs' "$log" | tail -1) (clean)"
done
