//! The host's TSC frequency, for guests under QEMU's emulator. There the
//! guest's RDTSC reads the host's TSC, but the guest cannot calibrate it:
//! microvm has no HPET and the emulated PIT is too irregular, so its kernel
//! marks the TSC unstable and keeps time with jiffies, which lose ticks
//! (measured: a container's clock 12 s behind the host's within minutes).
//! `tsc_early_khz=` on its command line gives it the frequency instead.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long one measurement takes.
const WINDOW: Duration = Duration::from_millis(10);
/// Measurements whose median is taken.
const ROUNDS: usize = 3;

/// The host's TSC frequency in kHz, measured once per process against
/// its monotonic clock (a few parts in 10^5); `None` where there is no
/// TSC to read.
pub fn host_tsc_khz() -> Option<u64> {
    static KHZ: OnceLock<Option<u64>> = OnceLock::new();
    *KHZ.get_or_init(measure)
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
    #[cfg(target_arch = "x86_64")]
    fn the_hosts_tsc_ticks_at_a_plausible_rate() {
        let khz = host_tsc_khz().expect("a TSC");
        assert!((100_000..10_000_000).contains(&khz), "{khz} kHz");
        assert_eq!(host_tsc_khz(), Some(khz));
    }
}
