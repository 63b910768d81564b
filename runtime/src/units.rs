//! Sizes as Docker's command line reads them (go-units): `max-size` of the
//! json-file log driver and `HULL_MAX_LAYER_SIZE` in powers of 1000
//! ([`parse_size`], `FromHumanSize`), memory limits in powers of 1024
//! ([`parse_memory`], `RAMInBytes`).

use thiserror::Error;

/// A size that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid size: '{0}'")]
pub struct InvalidSize(pub String);

/// Decimal units, as go-units' `decimalMap`.
const UNITS: [(char, u64); 5] = [
    ('k', 1_000),
    ('m', 1_000_000),
    ('g', 1_000_000_000),
    ('t', 1_000_000_000_000),
    ('p', 1_000_000_000_000_000),
];

/// Parses a size in bytes: `10m` is 10,000,000, `1k` 1,000.
pub fn parse_size(text: &str) -> Result<u64, InvalidSize> {
    let invalid = || InvalidSize(text.to_string());
    let end = text
        .rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ')
        .ok_or_else(invalid)?;
    let (number, suffix) = text.split_at(end + 1);
    // One space may separate the number from its unit.
    let number = number.strip_suffix(' ').unwrap_or(number);
    if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(invalid());
    }
    let value: f64 = number.parse().map_err(|_| invalid())?;
    let suffix = suffix.to_ascii_lowercase();
    let multiplier = match suffix.as_str() {
        "" | "b" => 1,
        _ => {
            let mut chars = suffix.chars();
            let unit = chars.next().ok_or_else(invalid)?;
            let (_, multiplier) = UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .ok_or_else(invalid)?;
            match chars.as_str() {
                "" | "b" | "ib" => *multiplier,
                _ => return Err(invalid()),
            }
        }
    };
    let bytes = value * multiplier as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(invalid());
    }
    Ok(bytes as u64)
}

/// Parses a memory size as Docker's `--memory` does: `512`, `64k`, `64m`,
/// `1g`, `1t` (powers of 1024), optionally followed by `b`, any case.
pub fn parse_memory(text: &str) -> Result<i64, InvalidSize> {
    let invalid = || InvalidSize(text.to_string());
    let lower = text.trim().to_ascii_lowercase();
    let trimmed = lower.strip_suffix('b').unwrap_or(&lower);
    let (digits, multiplier) = match trimmed.chars().last() {
        Some('k') => (&trimmed[..trimmed.len() - 1], 1i64 << 10),
        Some('m') => (&trimmed[..trimmed.len() - 1], 1 << 20),
        Some('g') => (&trimmed[..trimmed.len() - 1], 1 << 30),
        Some('t') => (&trimmed[..trimmed.len() - 1], 1 << 40),
        _ => (trimmed, 1),
    };
    let value: f64 = digits.parse().map_err(|_| invalid())?;
    let bytes = value * multiplier as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes >= i64::MAX as f64 {
        return Err(invalid());
    }
    Ok(bytes as i64)
}

/// A size as `inspect` shows it: in the largest unit that holds it
/// exactly (`10000000` is `10m`), else in bytes.
pub fn format_size(bytes: u64) -> String {
    UNITS[..3]
        .iter()
        .rev()
        .find(|(_, multiplier)| bytes != 0 && bytes / multiplier * multiplier == bytes)
        .map_or_else(
            || bytes.to_string(),
            |(unit, multiplier)| format!("{}{unit}", bytes / multiplier),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_are_binary() {
        assert_eq!(parse_memory("64m").unwrap(), 64 << 20);
        assert_eq!(parse_memory("1g").unwrap(), 1 << 30);
        assert_eq!(parse_memory("1k").unwrap(), 1 << 10);
        assert_eq!(parse_memory("512").unwrap(), 512);
        assert_eq!(parse_memory("2GB").unwrap(), 2 << 30);
        assert!(parse_memory("lots").is_err());
        assert!(parse_memory("-1m").is_err());
        assert!(parse_memory("1e300t").is_err());
    }

    #[test]
    fn sizes_in_decimal_units() {
        for (text, bytes) in [
            ("10m", 10_000_000),
            ("1k", 1_000),
            ("1K", 1_000),
            ("1.5k", 1_500),
            ("10MB", 10_000_000),
            ("10mib", 10_000_000),
            ("2 g", 2_000_000_000),
            ("512", 512),
            ("512b", 512),
            ("0", 0),
        ] {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn what_is_no_size() {
        for text in [
            "", "k", "abc", "-5", "-1", "1x", "1kbb", "1kb b", "inf", "1e3", "+3", "1..2", "1  k",
        ] {
            assert_eq!(
                parse_size(text),
                Err(InvalidSize(text.to_string())),
                "{text}"
            );
        }
        assert_eq!(
            parse_size("99999999p").unwrap_err().to_string(),
            "invalid size: '99999999p'"
        );
    }

    #[test]
    fn sizes_are_shown_in_the_largest_exact_unit() {
        assert_eq!(format_size(10_000_000), "10m");
        assert_eq!(format_size(1_000), "1k");
        assert_eq!(format_size(3_000_000_000), "3g");
        assert_eq!(format_size(1_500), "1500");
        assert_eq!(format_size(0), "0");
        for bytes in [1, 999, 1_000, 1_500, 10_000_000, 7_000_000_000_000] {
            assert_eq!(parse_size(&format_size(bytes)), Ok(bytes));
        }
    }
}
