//! Global descriptor table entries and their KVM segment form.

use kvm_bindings::kvm_segment;

/// Flags of a flat 64-bit code segment (L=1, P=1, S=1, type execute/read, accessed).
pub const CODE64: u16 = 0xa09b;
/// Flags of a flat 32-bit code segment (G=1, D=1, P=1, S=1, type execute/read, accessed).
pub const CODE32: u16 = 0xc09b;
/// Flags of a flat data segment (G=1, D/B=1, P=1, S=1, type read/write, accessed).
pub const DATA: u16 = 0xc093;
/// Flags of a busy 64-bit TSS.
pub const TSS: u16 = 0x808b;

/// Encodes one GDT entry.
pub const fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    let flags = flags as u64;
    let base = base as u64;
    let limit = limit as u64;
    ((base & 0xff00_0000) << 32)
        | ((flags & 0xf0ff) << 40)
        | ((limit & 0x000f_0000) << 32)
        | ((base & 0x00ff_ffff) << 16)
        | (limit & 0xffff)
}

/// The KVM segment register value that loading selector `index * 8` from a
/// GDT holding `entry` at `index` would produce.
pub fn segment_from_entry(entry: u64, index: u16) -> kvm_segment {
    let bit = |shift: u32| ((entry >> shift) & 1) as u8;
    let granular = bit(55) == 1;
    let raw_limit = ((entry & 0xffff) | ((entry >> 32) & 0x000f_0000)) as u32;
    let limit = if granular {
        (raw_limit << 12) | 0xfff
    } else {
        raw_limit
    };
    let present = bit(47);
    kvm_segment {
        base: ((entry >> 16) & 0x00ff_ffff) | ((entry >> 32) & 0xff00_0000),
        limit,
        selector: index * 8,
        type_: ((entry >> 40) & 0xf) as u8,
        present,
        dpl: ((entry >> 45) & 0x3) as u8,
        db: bit(54),
        s: bit(44),
        l: bit(53),
        g: bit(55),
        avl: bit(52),
        unusable: u8::from(present == 0),
        padding: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code64_segment_is_long_mode() {
        let seg = segment_from_entry(gdt_entry(CODE64, 0, 0xfffff), 1);
        assert_eq!(seg.selector, 8);
        assert_eq!(seg.l, 1);
        assert_eq!(seg.db, 0);
        assert_eq!(seg.type_, 0xb);
        assert_eq!(seg.limit, 0xffff_ffff);
        assert_eq!(seg.present, 1);
    }

    #[test]
    fn data_segment_is_flat() {
        let seg = segment_from_entry(gdt_entry(DATA, 0, 0xfffff), 2);
        assert_eq!(seg.base, 0);
        assert_eq!(seg.limit, 0xffff_ffff);
        assert_eq!(seg.type_, 3);
        assert_eq!(seg.s, 1);
        assert_eq!(seg.db, 1);
    }

    #[test]
    fn encodes_base_and_limit() {
        let entry = gdt_entry(TSS & 0x0fff, 0x1234_5678, 0x67);
        let seg = segment_from_entry(entry, 3);
        assert_eq!(seg.base, 0x1234_5678);
        assert_eq!(seg.limit, 0x67);
        assert_eq!(seg.g, 0);
    }
}
