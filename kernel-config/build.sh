#!/usr/bin/env bash
# Builds Hull's guest kernel from Debian's linux-source-6.1 and hull.config.
#
# The patches in patches/ are applied to the source first, in name order.
# The result is cached outside the clone, keyed by the source package version
# and the hash of this script, the config fragment and the patches, so a
# second run costs nothing. Prints the directory holding vmlinux, bzImage and config.
#
# usage: kernel-config/build.sh [--print-dir]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache_root=${HULL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hull}
tarball=/usr/src/linux-source-6.1.tar.xz
[ -f "$tarball" ] || { echo "kernel-config: $tarball missing (apt-get install linux-source-6.1)" >&2; exit 1; }

src_version=$(dpkg-query -W -f='${Version}' linux-source-6.1)
patches=("$here"/patches/*.patch)
key=$(cat "$here/hull.config" "$here/build.sh" "${patches[@]}" | sha256sum | cut -c1-16)
out="$cache_root/kernel/6.1-$src_version-$key"
if [ "${1:-}" = "--print-dir" ]; then echo "$out"; exit 0; fi
if [ -f "$out/vmlinux" ] && [ -f "$out/bzImage" ]; then
  echo "$out"
  exit 0
fi

work="$cache_root/kernel/build-$key"
rm -rf "$work"
mkdir -p "$work"
start=$(date +%s)
echo "kernel-config: unpacking $tarball" >&2
tar -xJf "$tarball" -C "$work"
ksrc=$(find "$work" -maxdepth 1 -mindepth 1 -type d -name 'linux-source-*' | head -n1)
cd "$ksrc"
for p in "${patches[@]}"; do
  echo "kernel-config: applying $(basename "$p")" >&2
  patch -p1 --forward --quiet < "$p" >&2
done
make -s tinyconfig >&2
./scripts/kconfig/merge_config.sh -m .config "$here/hull.config" >/dev/null
make -s olddefconfig >&2

# Every option the fragment asks for must have survived olddefconfig: a
# silently dropped dependency would give a kernel that boots but lacks a device.
missing=0
while IFS= read -r line; do
  case "$line" in CONFIG_*=*) ;; *) continue ;; esac
  name=${line%%=*}; want=${line#*=}
  if [ "$want" = n ]; then
    grep -q "^$name=" .config && { echo "kernel-config: $name should be off" >&2; missing=1; }
  else
    grep -qx "$line" .config || { echo "kernel-config: $name=$want not applied (got: $(grep "^$name=" .config || echo unset))" >&2; missing=1; }
  fi
done < "$here/hull.config"
[ "$missing" = 0 ] || { echo "kernel-config: fragment not fully applied, see above" >&2; exit 1; }

echo "kernel-config: building with make -j$(nproc)" >&2
make -s -j"$(nproc)" vmlinux bzImage >&2
mkdir -p "$out.tmp"
cp vmlinux "$out.tmp/vmlinux"
cp arch/x86/boot/bzImage "$out.tmp/bzImage"
cp .config "$out.tmp/config"
echo "$(( $(date +%s) - start ))" > "$out.tmp/build-seconds"
rm -rf "$out"
mv "$out.tmp" "$out"
cd /
rm -rf "$work"
echo "kernel-config: built in $(cat "$out/build-seconds") s" >&2
echo "$out"
