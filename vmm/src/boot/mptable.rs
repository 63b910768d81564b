//! A minimal Intel MultiProcessor Specification 1.4 table.
//!
//! Linux (and the test guests) find it by scanning the last KiB of
//! conventional memory for the `_MP_` floating pointer. It lists one
//! processor entry per vCPU, the ISA bus, the IO APIC with every pin wired
//! to the same ISA IRQ, and the local APIC LINT0 (ExtINT) / LINT1 (NMI)
//! lines. Written from the specification (chapter 4).

use vm_memory::{Bytes, GuestAddress};

use crate::layout::{APIC_START, EBDA_START, IOAPIC_PINS, IOAPIC_START, LOW_MEM_END};
use crate::memory::GuestMemory;

/// Errors while writing the MP table.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MptableError {
    /// Too many vCPUs for the space below 640 KiB (or for 8-bit APIC ids).
    #[error("too many vCPUs for the MP table: {0} (at most {MAX_VCPUS})")]
    TooManyCpus(u8),
    /// Guest memory does not cover the EBDA.
    #[error("cannot write the MP table to guest memory")]
    Write,
}

/// Most vCPUs the table (and Hull) supports.
pub use hull_vm_config::MAX_VCPUS;

const SPEC_REVISION: u8 = 4;
const APIC_VERSION: u8 = 0x14;
const IOAPIC_VERSION: u8 = 0x11;
const CPU_ENABLED: u8 = 1;
const CPU_BOOTSTRAP: u8 = 2;
// Family 6 model 15: what a CPU without a meaningful signature reports.
const CPU_SIGNATURE: u32 = (6 << 8) | (15 << 4);
// FPU and APIC present.
const CPU_FEATURES: u32 = (1 << 0) | (1 << 9);
const ENTRY_PROCESSOR: u8 = 0;
const ENTRY_BUS: u8 = 1;
const ENTRY_IOAPIC: u8 = 2;
const ENTRY_IO_INTERRUPT: u8 = 3;
const ENTRY_LOCAL_INTERRUPT: u8 = 4;
const INT_TYPE_INT: u8 = 0;
const INT_TYPE_NMI: u8 = 1;
const INT_TYPE_EXTINT: u8 = 3;
const FLOATING_POINTER_LEN: usize = 16;
const HEADER_LEN: usize = 44;

fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |sum, b| sum.wrapping_sub(*b))
}

/// Builds the table for `num_cpus` vCPUs, as it is placed at `EBDA_START`.
pub fn build(num_cpus: u8) -> Result<Vec<u8>, MptableError> {
    if num_cpus == 0 || num_cpus > MAX_VCPUS {
        return Err(MptableError::TooManyCpus(num_cpus));
    }
    let table_addr = EBDA_START as u32 + FLOATING_POINTER_LEN as u32;
    let ioapic_id = num_cpus;

    let mut entries: Vec<u8> = Vec::new();
    let mut entry_count: u16 = 0;
    for cpu in 0..num_cpus {
        let flags = CPU_ENABLED | if cpu == 0 { CPU_BOOTSTRAP } else { 0 };
        entries.extend_from_slice(&[ENTRY_PROCESSOR, cpu, APIC_VERSION, flags]);
        entries.extend_from_slice(&CPU_SIGNATURE.to_le_bytes());
        entries.extend_from_slice(&CPU_FEATURES.to_le_bytes());
        entries.extend_from_slice(&[0; 8]);
        entry_count += 1;
    }
    entries.extend_from_slice(&[ENTRY_BUS, 0]);
    entries.extend_from_slice(b"ISA   ");
    entry_count += 1;
    entries.extend_from_slice(&[ENTRY_IOAPIC, ioapic_id, IOAPIC_VERSION, 1]);
    entries.extend_from_slice(&(IOAPIC_START as u32).to_le_bytes());
    entry_count += 1;
    for pin in 0..IOAPIC_PINS as u8 {
        // Flags 0: polarity and trigger conform to the (ISA) bus.
        entries.extend_from_slice(&[
            ENTRY_IO_INTERRUPT,
            INT_TYPE_INT,
            0,
            0,
            0,
            pin,
            ioapic_id,
            pin,
        ]);
        entry_count += 1;
    }
    // LINT0 of the bootstrap processor receives the 8259 PIC (ExtINT);
    // LINT1 of every processor is NMI.
    entries.extend_from_slice(&[ENTRY_LOCAL_INTERRUPT, INT_TYPE_EXTINT, 0, 0, 0, 0, 0, 0]);
    entries.extend_from_slice(&[ENTRY_LOCAL_INTERRUPT, INT_TYPE_NMI, 0, 0, 0, 0, 0xff, 1]);
    entry_count += 2;

    let table_len = HEADER_LEN + entries.len();
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(b"PCMP");
    header.extend_from_slice(&(table_len as u16).to_le_bytes());
    header.push(SPEC_REVISION);
    header.push(0); // checksum, filled below
    header.extend_from_slice(b"HULL    ");
    header.extend_from_slice(b"HULLVMM     ");
    header.extend_from_slice(&0u32.to_le_bytes()); // OEM table pointer
    header.extend_from_slice(&0u16.to_le_bytes()); // OEM table size
    header.extend_from_slice(&entry_count.to_le_bytes());
    header.extend_from_slice(&(APIC_START as u32).to_le_bytes());
    header.extend_from_slice(&0u16.to_le_bytes()); // extended table length
    header.push(0); // extended table checksum
    header.push(0);
    debug_assert_eq!(header.len(), HEADER_LEN);

    let mut table = header;
    table.extend_from_slice(&entries);
    table[7] = checksum(&table);

    let mut floating = Vec::with_capacity(FLOATING_POINTER_LEN);
    floating.extend_from_slice(b"_MP_");
    floating.extend_from_slice(&table_addr.to_le_bytes());
    floating.push(1); // length in 16-byte units
    floating.push(SPEC_REVISION);
    floating.push(0); // checksum
    floating.extend_from_slice(&[0; 5]); // feature bytes: a configuration table follows
    floating[10] = checksum(&floating);

    let mut out = floating;
    out.extend_from_slice(&table);
    if EBDA_START as usize + out.len() > LOW_MEM_END as usize {
        return Err(MptableError::TooManyCpus(num_cpus));
    }
    Ok(out)
}

/// Writes the MP table for `num_cpus` vCPUs at `EBDA_START`.
pub fn write(memory: &GuestMemory, num_cpus: u8) -> Result<(), MptableError> {
    let table = build(num_cpus)?;
    memory
        .write_slice(&table, GuestAddress(EBDA_START))
        .map_err(|_| MptableError::Write)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(bytes: &[u8]) -> u8 {
        bytes.iter().fold(0u8, |s, b| s.wrapping_add(*b))
    }

    #[test]
    fn checksums_are_valid() {
        let table = build(4).unwrap();
        assert_eq!(&table[0..4], b"_MP_");
        assert_eq!(sum(&table[0..16]), 0);
        assert_eq!(&table[16..20], b"PCMP");
        let len = u16::from_le_bytes([table[20], table[21]]) as usize;
        assert_eq!(len, table.len() - 16);
        assert_eq!(sum(&table[16..]), 0);
    }

    #[test]
    fn one_processor_entry_per_cpu() {
        let table = build(3).unwrap();
        let count = u16::from_le_bytes([table[16 + 34], table[16 + 35]]);
        assert_eq!(count, 3 + 1 + 1 + IOAPIC_PINS as u16 + 2);
        // First entry: the bootstrap processor.
        assert_eq!(table[16 + 44], ENTRY_PROCESSOR);
        assert_eq!(table[16 + 44 + 3], CPU_ENABLED | CPU_BOOTSTRAP);
        assert_eq!(table[16 + 64 + 1], 1);
        assert_eq!(table[16 + 64 + 3], CPU_ENABLED);
    }

    #[test]
    fn max_cpus_fit_below_640k() {
        assert!(build(MAX_VCPUS).is_ok());
        assert_eq!(
            build(MAX_VCPUS + 1),
            Err(MptableError::TooManyCpus(MAX_VCPUS + 1))
        );
        assert_eq!(build(0), Err(MptableError::TooManyCpus(0)));
    }
}
