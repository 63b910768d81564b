#!/usr/bin/env bash
# Builds the guest initramfs: /init is hull-agent (static, musl), plus the
# /dev/console node the kernel opens for PID 1's stdio. Nothing else: the
# container's files come from the image, shared by virtio-fs.
#
# usage: rootfs/build.sh AGENT_BINARY OUTPUT.img
set -euo pipefail
agent=$1
out=$2
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/dev" "$stage/proc" "$stage/sys" "$stage/run" "$stage/tmp"
install -m 0755 "$agent" "$stage/init"
mknod -m 0600 "$stage/dev/console" c 5 1
(cd "$stage" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet -R 0:0) | gzip -1 > "$out.tmp"
mv "$out.tmp" "$out"
