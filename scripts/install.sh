#!/usr/bin/env bash
# Installs Hull on this machine, built from this tree (scripts/setup.sh
# release does the build and installs what the build needs):
#   /usr/local/bin: hull, hull-vmm, containerd-shim-hull-v2, hull-oci
#   /usr/local/lib/hull: the guest kernel, the initramfs with hull-agent, virtiofsd
# containerd finds the shim on its PATH by the runtime type
# io.containerd.hull.v2 (README.md, "containerd and Kubernetes").
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
"$repo/scripts/setup.sh" release
cd "$repo"
install -d /usr/local/bin /usr/local/lib/hull
install -m 0755 target/release/hull target/release/hull-vmm target/release/containerd-shim-hull-v2 target/release/hull-oci /usr/local/bin/
cp -fL target/hull/vmlinux target/hull/initramfs.img target/hull/virtiofsd /usr/local/lib/hull/
echo "installed: /usr/local/bin/{hull,hull-vmm,containerd-shim-hull-v2,hull-oci}, /usr/local/lib/hull/{vmlinux,initramfs.img,virtiofsd}"
