#!/usr/bin/env bash
# Installs what Hull needs on a fresh Debian bookworm machine and builds it:
# Debian packages, the musl target, virtiofsd (pinned), the guest kernel,
# hull-agent, the initramfs and the host binaries. Idempotent; slow
# artefacts are cached outside the clone (~/.cache/hull), keyed by their
# inputs, so a second run takes seconds.
#
# usage: scripts/setup.sh [release|debug]
# Leaves the guest artefacts in target/hull/ (vmlinux, initramfs.img, virtiofsd).
set -euo pipefail
profile=${1:-release}
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${HULL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hull}
virtiofsd_version=1.14.0
log() { printf '\033[1msetup:\033[0m %s\n' "$*" >&2; }

packages=(
  qemu-system-x86 busybox-static iproute2 cpio gzip xz-utils
  linux-source-6.1 build-essential patch flex bison bc libelf-dev libssl-dev
  libseccomp-dev libcap-ng-dev pkg-config musl-tools hyperfine runc nftables protobuf-compiler
  docker-registry curl kmod containerd containernetworking-plugins
  docker.io podman docker-compose
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! rustup target list --installed | grep -qx x86_64-unknown-linux-musl; then
  log "adding the musl target"
  rustup target add x86_64-unknown-linux-musl
fi
# The test suite checks formatting and lints.
for component in rustfmt clippy; do
  if ! rustup component list --installed | grep -q "^$component"; then
    log "adding the $component component"
    rustup component add "$component"
  fi
done
# hull-vmm's integration tests boot freestanding test guests (vmm/test-guests).
if ! rustup target list --installed | grep -qx x86_64-unknown-none; then
  log "adding the x86_64-unknown-none target"
  rustup target add x86_64-unknown-none
fi

virtiofsd="$cache/virtiofsd-$virtiofsd_version/bin/virtiofsd"
if [ ! -x "$virtiofsd" ]; then
  log "building virtiofsd $virtiofsd_version (once)"
  cargo install --quiet --locked virtiofsd --version "$virtiofsd_version" --root "$cache/virtiofsd-$virtiofsd_version"
fi

log "guest kernel"
kernel_dir=$(HULL_CACHE=$cache "$repo/kernel-config/build.sh" | tail -n1)

cd "$repo"
flag=()
[ "$profile" = release ] && flag=(--release)
log "building hull-agent (static, musl) and the host binaries ($profile)"
cargo build --quiet --profile guest -p hull-agent --target x86_64-unknown-linux-musl
cargo build --quiet "${flag[@]}" -p hull-runtime -p hull-tests -p hull-vmm -p containerd-shim-hull-v2 -p hull-oci --bins

mkdir -p target/hull
"$repo/rootfs/build.sh" target/x86_64-unknown-linux-musl/guest/hull-agent target/hull/initramfs.img
ln -sf "$kernel_dir/vmlinux" target/hull/vmlinux
ln -sf "$kernel_dir/bzImage" target/hull/bzImage
ln -sf "$virtiofsd" target/hull/virtiofsd
log "ready: $(ls target/hull | tr '\n' ' ')"
