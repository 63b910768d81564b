//! Starting the application processors the MP table lists, with INIT and
//! STARTUP IPIs sent through the bootstrap processor's local APIC.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::io::{print, print_hex, println};
use crate::read_phys;

extern "C" {
    static ap_trampoline_start: u8;
    static ap_trampoline_end: u8;
    static ap_count: AtomicU32;
    static ap_mask: AtomicU64;
}

const EBDA: u64 = 0x9fc00;
const AP_TRAMPOLINE_ADDR: u64 = 0x10000;
const LAPIC: u64 = 0xfee0_0000;
const LAPIC_SVR: u64 = 0xf0;
const LAPIC_ICR_LOW: u64 = 0x300;
const LAPIC_ICR_HIGH: u64 = 0x310;
/// INIT, level assert, to all processors but this one.
const ICR_INIT_ALL_BUT_SELF: u32 = 0x000c_4500;
/// STARTUP to all but self; the vector is the trampoline's page number.
const ICR_STARTUP_ALL_BUT_SELF: u32 = 0x000c_4600 | (AP_TRAMPOLINE_ADDR >> 12) as u32;

fn lapic_write(reg: u64, value: u32) {
    // SAFETY: the local APIC page is identity-mapped by entry.s.
    unsafe { core::ptr::write_volatile((LAPIC + reg) as *mut u32, value) };
}

fn lapic_read(reg: u64) -> u32 {
    // SAFETY: as above.
    unsafe { core::ptr::read_volatile((LAPIC + reg) as *const u32) }
}

/// Number of enabled processors in the MP table, if there is one.
fn mptable_cpus() -> Option<u32> {
    let mut addr = EBDA;
    while addr < EBDA + 0x400 {
        // SAFETY: the last KiB below 640 KiB is guest RAM.
        if unsafe { read_phys::<[u8; 4]>(addr) } == *b"_MP_" {
            // SAFETY: the floating pointer's fields follow its signature.
            let table = u64::from(unsafe { read_phys::<u32>(addr + 4) });
            // SAFETY: the VMM put the configuration table at `table`.
            let (signature, count) =
                unsafe { (read_phys::<[u8; 4]>(table), read_phys::<u16>(table + 34)) };
            if signature != *b"PCMP" {
                return None;
            }
            let mut entry = table + 44;
            let mut cpus = 0;
            for _ in 0..count {
                // SAFETY: `count` entries follow the header.
                let kind = unsafe { read_phys::<u8>(entry) };
                if kind == 0 {
                    // SAFETY: processor entries are 20 bytes.
                    if unsafe { read_phys::<u8>(entry + 3) } & 1 != 0 {
                        cpus += 1;
                    }
                    entry += 20;
                } else {
                    entry += 8;
                }
            }
            return Some(cpus);
        }
        addr += 16;
    }
    None
}

/// Starts every AP and reports how many checked in (and their APIC ids).
pub fn start_aps() {
    let Some(cpus) = mptable_cpus() else {
        println(b"smp: no MP table");
        return;
    };
    print(b"mptable: cpus ");
    print_hex(u64::from(cpus));
    println(b"");
    // SAFETY: the trampoline is a byte range of this image; the target
    // page is unused RAM below 1 MiB.
    unsafe {
        let start = &ap_trampoline_start as *const u8;
        let len = (&ap_trampoline_end as *const u8).offset_from(start) as usize;
        core::ptr::copy_nonoverlapping(start, AP_TRAMPOLINE_ADDR as *mut u8, len);
    }
    // Software-enable the local APIC.
    lapic_write(LAPIC_SVR, lapic_read(LAPIC_SVR) | 0x100);
    lapic_write(LAPIC_ICR_HIGH, 0);
    lapic_write(LAPIC_ICR_LOW, ICR_INIT_ALL_BUT_SELF);
    for _ in 0..2 {
        lapic_write(LAPIC_ICR_HIGH, 0);
        lapic_write(LAPIC_ICR_LOW, ICR_STARTUP_ALL_BUT_SELF);
    }
    let expected = cpus.saturating_sub(1);
    // Each iteration is a few emulated instructions; this allows seconds.
    let mut spins: u32 = 0;
    // SAFETY: ap_count/ap_mask are statics defined in entry.s.
    let (count, mask) = unsafe { (&ap_count, &ap_mask) };
    while count.load(Ordering::Acquire) < expected && spins < 2_000_000 {
        core::hint::spin_loop();
        spins += 1;
    }
    let online = count.load(Ordering::Acquire) + 1;
    print(b"smp: cpus online ");
    print_hex(u64::from(online));
    print(b" ap mask ");
    print_hex(mask.load(Ordering::Acquire));
    println(b"");
}
