//! The host's TSC frequency, for guests under QEMU's emulator. There the
//! guest's RDTSC reads the host's TSC, but the guest cannot calibrate it:
//! microvm has no HPET and the emulated PIT is too irregular, so its kernel
//! marks the TSC unstable and keeps time with jiffies, which lose ticks
//! (measured: a container's clock 12 s behind the host's within minutes).
//! `tsc_early_khz=` on its command line gives it the frequency instead.
//!
//! Measuring takes 30 ms, so each boot of the host measures once: the
//! first monitor writes the figure, with the host's boot id, to Hull's
//! state directory ([`remember_in`]), and later ones read it.

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long one measurement takes.
const WINDOW: Duration = Duration::from_millis(10);
/// Measurements whose median is taken.
const ROUNDS: usize = 3;

/// The figure, once known in this process.
static KHZ: OnceLock<Option<u64>> = OnceLock::new();

/// The file in the state directory that keeps the figure for this boot.
const CACHE_FILE: &str = "tsc-khz";

/// The host's TSC frequency in kHz, measured once per process against
/// its monotonic clock (a few parts in 10^5), unless [`remember_in`] found
/// it; `None` where there is no TSC to read.
pub fn host_tsc_khz() -> Option<u64> {
    *KHZ.get_or_init(measure)
}

/// Takes the figure this boot of the host measured from `dir`, or
/// measures it and leaves it there for the next process.
pub fn remember_in(dir: &Path) {
    let Ok(boot) = std::fs::read_to_string("/proc/sys/kernel/random/boot_id") else {
        return;
    };
    let path = dir.join(CACHE_FILE);
    let mut text = String::new();
    let read = std::fs::File::open(&path).and_then(|file| {
        std::io::Read::read_to_string(&mut std::io::Read::take(file, 64), &mut text)
    });
    if let Some(khz) = read.ok().and_then(|_| parse_cache(&text, boot.trim())) {
        let _ = KHZ.set(Some(khz));
        return;
    }
    if let Some(khz) = host_tsc_khz() {
        // Written whole, then renamed: a reader sees all of it or nothing.
        let temp = dir.join(format!(".{CACHE_FILE}.{}", std::process::id()));
        if std::fs::write(&temp, format!("{} {khz}\n", boot.trim())).is_ok() {
            let _ = std::fs::rename(&temp, &path);
        }
        let _ = std::fs::remove_file(&temp);
    }
}

/// The kHz of a cache file's `BOOT_ID KHZ` if it is this boot's and plausible.
fn parse_cache(text: &str, boot: &str) -> Option<u64> {
    let (id, khz) = text.trim().split_once(' ')?;
    let khz: u64 = khz.parse().ok()?;
    (id == boot && (100_000..10_000_000).contains(&khz)).then_some(khz)
}

#[cfg(target_arch = "x86_64")]
fn measure() -> Option<u64> {
    let mut rounds: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let (start, ticks0) = (Instant::now(), read_tsc());
            std::thread::sleep(WINDOW);
            let (ticks1, end) = (read_tsc(), Instant::now());
            ticks1.wrapping_sub(ticks0) as f64 / end.duration_since(start).as_secs_f64() / 1000.0
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    let khz = rounds.get(ROUNDS / 2).copied()?;
    // A TSC slower than 100 MHz or faster than 10 GHz is no TSC to trust.
    (100_000.0..10_000_000.0)
        .contains(&khz)
        .then(|| khz.round() as u64)
}

#[cfg(not(target_arch = "x86_64"))]
fn measure() -> Option<u64> {
    None
}

#[cfg(target_arch = "x86_64")]
fn read_tsc() -> u64 {
    // SAFETY: RDTSC reads a counter; every x86-64 CPU has it.
    unsafe { core::arch::x86_64::_rdtsc() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_is_this_boots_alone() {
        assert_eq!(parse_cache("abc 2595254\n", "abc"), Some(2_595_254));
        assert_eq!(parse_cache("abc 2595254", "other"), None);
        assert_eq!(parse_cache("abc 12", "abc"), None);
        assert_eq!(parse_cache("abc", "abc"), None);
        assert_eq!(parse_cache("", "abc"), None);
        let dir = tempfile::tempdir().unwrap();
        remember_in(dir.path());
        let text = std::fs::read_to_string(dir.path().join(CACHE_FILE)).unwrap();
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
        assert_eq!(parse_cache(&text, boot.trim()), host_tsc_khz());
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_hosts_tsc_ticks_at_a_plausible_rate() {
        let khz = host_tsc_khz().expect("a TSC");
        assert!((100_000..10_000_000).contains(&khz), "{khz} kHz");
        assert_eq!(host_tsc_khz(), Some(khz));
    }
}
