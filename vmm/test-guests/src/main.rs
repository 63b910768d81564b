//! hull-test-guest: a freestanding x86_64 guest for hull-vmm's tests and
//! benchmarks. Kernel-mode code runs emulated on PVM hosts (about 0.8 µs an
//! instruction), so everything here is kept short and allocation-free.
//!
//! It prints a boot line, its command line and the memory map, then follows
//! the command line:
//! - `smp=1`: read the MP table, start every AP with INIT/SIPI through the
//!   local APIC and report how many came up;
//! - `hostile=1`: feed the block device bad register writes and a bad
//!   descriptor, expecting DEVICE_NEEDS_RESET each time;
//! - `blk=1`: exercise the first virtio-blk device (virtio-drivers);
//! - `vsock=1`: echo a host-initiated vsock connection, then connect to
//!   the host (port 5678) and print its reply;
//! - `net=1`: broadcast a test frame (EtherType 0x88b5) and print the first
//!   test frame received;
//! - `vsockperf=N`, `netperf=N`: throughput modes for the benchmark (see
//!   `perf.rs`): N bytes each way over vsock, N 1514-byte frames each way
//!   over virtio-net, data checked in full with `perfcheck=1`;
//! - `fs=1`: bring the virtio-fs device up by hand, send one FUSE_INIT to
//!   its back-end and print the reply;
//! - `action=exit:N` (write N to the debug exit port), `action=reset`
//!   (i8042), `action=triple` (triple fault), `action=poweroff` (debug exit
//!   value 0), `action=idle` (halt forever), `action=panic`, `action=tick`
//!   (print `tick` lines forever, a short spin apart: pause tests).
#![no_std]
#![no_main]

extern crate alloc;

mod devices;
mod fs;
mod hal;
mod io;
mod perf;
mod smp;

use core::arch::global_asm;

use io::{outb, print, print_hex, println};

global_asm!(include_str!("entry.s"), options(att_syntax));

/// Which entry the VMM used.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Linux,
    Pvh,
}

const DEBUG_EXIT_PORT: u16 = 0xf4;
const I8042_COMMAND_PORT: u16 = 0x64;
const XEN_HVM_START_MAGIC: u32 = 0x336e_c578;

/// Reads a value of type T at physical address `addr` (identity-mapped).
///
/// # Safety
/// `addr` must be readable guest memory.
unsafe fn read_phys<T: Copy>(addr: u64) -> T {
    // SAFETY: the caller guarantees the address is mapped; unaligned reads
    // are fine on x86.
    unsafe { core::ptr::read_unaligned(addr as *const T) }
}

/// The NUL-terminated command line at `addr`, at most 2 KiB.
fn cmdline_at(addr: u64) -> &'static [u8] {
    if addr == 0 {
        return b"";
    }
    let mut len = 0;
    // SAFETY: the VMM put the command line there; the scan stops at 2 KiB.
    while len < 2048 && unsafe { read_phys::<u8>(addr + len) } != 0 {
        len += 1;
    }
    // SAFETY: `len` bytes from `addr` were just read one by one.
    unsafe { core::slice::from_raw_parts(addr as *const u8, len as usize) }
}

/// The value of `key=` on the command line.
fn param<'a>(cmdline: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    cmdline.split(|b| *b == b' ').find_map(|word| {
        (word.len() > key.len() && word.starts_with(key) && word[key.len()] == b'=')
            .then(|| &word[key.len() + 1..])
    })
}

fn parse_u8(digits: &[u8]) -> Option<u8> {
    let mut value: u32 = 0;
    if digits.is_empty() {
        return None;
    }
    for d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u32::from(d - b'0');
        if value > 255 {
            return None;
        }
    }
    Some(value as u8)
}

fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    let mut value: u64 = 0;
    for d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(value)
}

fn print_e820(addr: u64, size: u64, kind: u32) {
    print(b"e820: ");
    print_hex(addr);
    print(b" ");
    print_hex(size);
    print(b" ");
    print_hex(u64::from(kind));
    println(b"");
}

/// Prints the memory map and returns the command line.
fn boot_info(info: u64, protocol: Protocol) -> &'static [u8] {
    match protocol {
        Protocol::Linux => {
            // boot_params: e820_entries at 0x1e8, cmd_line_ptr at 0x228,
            // e820_table at 0x2d0 (20-byte entries).
            // SAFETY: %rsi pointed at the zero page the VMM wrote.
            let (entries, cmdline) = unsafe {
                (
                    read_phys::<u8>(info + 0x1e8),
                    read_phys::<u32>(info + 0x228),
                )
            };
            for i in 0..u64::from(entries.min(128)) {
                let entry = info + 0x2d0 + i * 20;
                // SAFETY: within the zero page.
                unsafe {
                    print_e820(
                        read_phys(entry),
                        read_phys(entry + 8),
                        read_phys(entry + 16),
                    );
                }
            }
            cmdline_at(u64::from(cmdline))
        }
        Protocol::Pvh => {
            // SAFETY: %ebx pointed at the hvm_start_info the VMM wrote.
            let (magic, cmdline, memmap, entries) = unsafe {
                (
                    read_phys::<u32>(info),
                    read_phys::<u64>(info + 0x18),
                    read_phys::<u64>(info + 0x28),
                    read_phys::<u32>(info + 0x30),
                )
            };
            if magic != XEN_HVM_START_MAGIC {
                println(b"bad hvm_start_info magic");
                exit(98);
            }
            // hvm_memmap_table_entry: addr, size, type, reserved (24 bytes).
            for i in 0..u64::from(entries.min(128)) {
                let entry = memmap + i * 24;
                // SAFETY: the VMM wrote `entries` entries there.
                unsafe {
                    print_e820(
                        read_phys(entry),
                        read_phys(entry + 8),
                        read_phys(entry + 16),
                    );
                }
            }
            cmdline_at(cmdline)
        }
    }
}

/// Ends the VM with `code` through the debug exit port.
fn exit(code: u8) -> ! {
    outb(DEBUG_EXIT_PORT, code);
    halt_forever()
}

fn halt_forever() -> ! {
    loop {
        // SAFETY: halting with interrupts off only stops this vCPU.
        unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

fn triple_fault() -> ! {
    #[repr(C, packed)]
    struct Idtr {
        limit: u16,
        base: u64,
    }
    let empty = Idtr { limit: 0, base: 0 };
    // SAFETY: deliberately loads an empty IDT and raises #UD: the fault
    // cannot be delivered, nor the double fault, so the CPU shuts down.
    unsafe {
        core::arch::asm!("lidt [{}]", "ud2", in(reg) &empty, options(nostack));
    }
    halt_forever()
}

#[no_mangle]
extern "C" fn guest_main(info: u64, protocol: u64) -> ! {
    let protocol = if protocol == 1 {
        Protocol::Pvh
    } else {
        Protocol::Linux
    };
    println(match protocol {
        Protocol::Pvh => b"hull-test-guest: boot pvh",
        Protocol::Linux => b"hull-test-guest: boot linux64",
    });
    let cmdline = boot_info(info, protocol);
    print(b"cmdline: ");
    println(cmdline);

    if param(cmdline, b"smp") == Some(b"1") {
        smp::start_aps();
    }
    if param(cmdline, b"hostile") == Some(b"1") {
        devices::hostile_test();
    }
    if param(cmdline, b"blk") == Some(b"1") {
        devices::block_test();
    }
    if param(cmdline, b"vsock") == Some(b"1") {
        devices::vsock_test();
    }
    if param(cmdline, b"net") == Some(b"1") {
        devices::net_test();
    }
    let full_check = param(cmdline, b"perfcheck") == Some(b"1");
    if let Some(bytes) = param(cmdline, b"vsockperf").and_then(parse_u64) {
        perf::vsock_perf(bytes, full_check);
    }
    if let Some(frames) = param(cmdline, b"netperf").and_then(parse_u64) {
        perf::net_perf(u32::try_from(frames).unwrap_or(u32::MAX), full_check);
    }
    if param(cmdline, b"fs") == Some(b"1") {
        fs::fs_test();
    }

    match param(cmdline, b"action") {
        Some(b"reset") => {
            println(b"action: reset");
            outb(I8042_COMMAND_PORT, 0xfe);
            halt_forever()
        }
        Some(b"triple") => {
            println(b"action: triple fault");
            triple_fault()
        }
        Some(b"poweroff") => {
            println(b"action: poweroff");
            exit(0)
        }
        Some(b"idle") => {
            println(b"action: idle");
            halt_forever()
        }
        Some(b"panic") => panic!("requested"),
        Some(b"tick") => loop {
            println(b"tick");
            for _ in 0..100_000 {
                core::hint::spin_loop();
            }
        },
        Some(value) if value.starts_with(b"exit:") => {
            let code = parse_u8(&value[5..]).unwrap_or(97);
            print(b"action: exit ");
            print_hex(u64::from(code));
            println(b"");
            exit(code)
        }
        _ => {
            println(b"action: none, exiting with 0");
            exit(0)
        }
    }
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    println(b"guest panic");
    exit(99)
}
