#!/usr/bin/env bash
# Hull's main job on a fresh machine: set up and build everything, install
# hull, make a local busybox image from Debian's busybox-static, and run a
# container in a microVM.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
"$repo/scripts/install.sh"
cd "$repo"
archive=$(mktemp --suffix=.tar)
trap 'rm -f "$archive"' EXIT
target/release/hull-testimage "$archive" busybox:latest >/dev/null
hull load -i "$archive"
hull images
hull info | grep -E '^ +(Backend|Accel|KVM):'
# --network none: the demo needs no network, and leaves the host's untouched.
echo '$ hull run --rm --network none busybox sh -c '\''echo "Hello from a microVM: kernel $(uname -r), pid $$"'\'''
hull run --rm --network none busybox sh -c 'echo "Hello from a microVM: kernel $(uname -r), pid $$"'
