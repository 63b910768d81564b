#!/usr/bin/env bash
# Opt-in, slow: boots Hull's guest kernel and initramfs on the real /dev/kvm
# under hull-vmm and, in the same run, under qemu -M microvm -accel kvm, and
# reports whether and when each reached hull-agent (which powers off at once
# with `hull.poweroff`). On a PVM host (no VMX/SVM) expect neither to get
# there: guest kernel code is emulated; the kvm-pvm lines of dmesg name the
# instructions that stopped it.
#
# usage: bench/linux-on-kvm.sh [SECONDS_EACH]   (default 120)
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
limit=${1:-120}
lib="$repo/target/hull"
[ -e /dev/kvm ] || { echo "linux-on-kvm: /dev/kvm is missing" >&2; exit 1; }
[ -f "$lib/vmlinux" ] || { echo "linux-on-kvm: run scripts/setup.sh first" >&2; exit 1; }
cargo build --release --quiet -p hull-vmm
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cmdline="console=ttyS0 reboot=t panic=-1 tsc=reliable no_timer_check clearcpuid=cx16 noxsave initcall_blacklist=ptp_kvm_init hull.poweroff"

report() { # name console start end status
    local name=$1 console=$2 secs=$(( ($4 - $3) / 1000000 ))
    if grep -q "Run /init" "$console"; then
        echo "linux_boot_$name: reached /init, VMM ended after ${secs} ms (status $5)"
    else
        echo "linux_boot_$name: did not reach /init in ${secs} ms (status $5); last console line: $(grep -a . "$console" | tail -n1 | cut -c1-120)"
    fi
}

before=$(dmesg 2>/dev/null | grep -c kvm-pvm)
s=$(date +%s%N)
timeout "$limit" "$repo/target/release/hull-vmm" --kernel "$lib/vmlinux" --initrd "$lib/initramfs.img" \
    --mem-mib 256 --vcpus 1 --serial "$scratch/hull.log" --cmdline "$cmdline"
st=$?; e=$(date +%s%N)
report hull_vmm "$scratch/hull.log" "$s" "$e" "$st"

s=$(date +%s%N)
timeout "$limit" qemu-system-x86_64 -M microvm,acpi=off,x-option-roms=off -accel kvm -cpu host,-arch-capabilities \
    -m 256M -smp 1 -nodefaults -no-user-config -no-reboot -display none -monitor none \
    -serial "file:$scratch/qemu.log" -kernel "$lib/vmlinux" -initrd "$lib/initramfs.img" -append "$cmdline"
st=$?; e=$(date +%s%N)
report qemu_kvm "$scratch/qemu.log" "$s" "$e" "$st"

echo "kvm_pvm_dmesg_lines_new: $(( $(dmesg 2>/dev/null | grep -c kvm-pvm) - before ))"
dmesg 2>/dev/null | grep kvm-pvm | tail -n 3 | sed 's/^/# /'
