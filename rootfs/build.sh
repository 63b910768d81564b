#!/usr/bin/env bash
# Builds the guest initramfs: /init is hull-agent (static, musl), plus the
# /dev/console node the kernel opens for PID 1's stdio. Nothing else: the
# container's files come from the image, shared by virtio-fs.
#
# The archive is not compressed: the kernel copies it into place instead of
# inflating it, 60-100 ms sooner at every boot under QEMU's emulator
# (median boot to PID 1 measured 425-459 ms against 518-533 ms with
# gzip -1). The VMM loads 4.9 MiB instead of 1.9 MiB, which the guest frees
# once unpacked and hands back (free page reporting).
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
(cd "$stage" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet -R 0:0) > "$out.tmp"
mv "$out.tmp" "$out"
