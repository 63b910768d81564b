#!/usr/bin/env bash
# Hull's whole test suite on a fresh machine: set-up and build (as
# scripts/setup.sh), then unit tests and end-to-end tests on real QEMU,
# the real guest kernel, real virtiofsd.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
"$repo/scripts/setup.sh" debug
cd "$repo"
export HULL_LIB_DIR="$repo/target/hull"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# Style and lints first: each counts as one test in the summary.
check() { # name command...
  local name=$1; shift
  if "$@"; then
    echo "test result: ok. 1 passed; 0 failed ($name)" | tee -a "$log"
  else
    status=1
    echo "test result: FAILED. 0 passed; 1 failed ($name)" | tee -a "$log"
  fi
}
check "cargo fmt --check" cargo fmt --check
check "cargo clippy" cargo clippy --quiet --workspace --all-targets -- -D warnings
check "no import circles" scripts/check-imports runtime/src vmm/src guest-agent/src protocol/src seccomp/src vm-config/src shim/src oci/src
# End-to-end tests boot a VM each; two at a time fit this machine's 2 cores.
# (The KVM lab's tests come after, alone: each is an emulated machine.)
cargo test --workspace --no-fail-fast -- --test-threads=2 --skip kvm_lab_ 2>&1 | tee -a "$log" || status=$?
# Hull's own VMM on a hardware-virtualization KVM: the nested-SVM lab
# (scripts/kvm-lab) runs tests/lab/suite.sh with --vmm hull, and hull-vmm's
# device tests on the lab's kvm_amd.
cargo test -p hull-tests --test lab -- --test-threads=1 2>&1 | tee -a "$log" || status=$?
# Load, at a reduced count: runs one after another and at once, no leak, no
# address twice (tests/soak 1000 50 is the full run).
check "tests/soak" tests/soak "${HULL_SOAK_SEQUENTIAL:-20}" "${HULL_SOAK_CONCURRENT:-10}"
# One closing line for the whole workspace (cargo prints one per test binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "summary: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
