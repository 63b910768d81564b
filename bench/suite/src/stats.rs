//! Summary statistics over a row's samples.

use serde::{Deserialize, Serialize};

/// Minimum, median and maximum of a set of samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// How many samples.
    pub n: usize,
    /// The smallest.
    pub min: f64,
    /// The median: the middle value, or the mean of the two middle values
    /// for an even count.
    pub median: f64,
    /// The largest.
    pub max: f64,
}

impl Summary {
    /// The summary of `samples`, `None` when there are none (or any is NaN).
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() || samples.iter().any(|x| x.is_nan()) {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Some(Summary {
            n,
            min: sorted[0],
            median,
            max: sorted[n - 1],
        })
    }
}

/// How many times worse `value` is than `peer`: `value / peer` where lower
/// is better (times, memory), `peer / value` where higher is better
/// (throughputs). `None` when the divisor is not positive.
pub fn cost_ratio(value: f64, peer: f64, lower_is_better: bool) -> Option<f64> {
    let (num, den) = if lower_is_better {
        (value, peer)
    } else {
        (peer, value)
    };
    (den > 0.0 && num.is_finite() && den.is_finite()).then(|| num / den)
}

/// A number with about three significant digits (`1562`, `95.7`, `0.473`).
pub fn format_value(x: f64) -> String {
    let a = x.abs();
    if a >= 100.0 || a == 0.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

/// A ratio as `×1.48`, `×180`, `×0.95`.
pub fn format_ratio(r: f64) -> String {
    if r >= 100.0 {
        format!("×{r:.0}")
    } else if r >= 10.0 {
        format!("×{r:.1}")
    } else {
        format!("×{r:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_count_median_is_the_middle_value() {
        let s = Summary::of(&[5.0, 1.0, 3.0]).expect("samples");
        assert_eq!((s.n, s.min, s.median, s.max), (3, 1.0, 3.0, 5.0));
    }

    #[test]
    fn even_count_median_is_the_mean_of_the_middle_two() {
        let s = Summary::of(&[4.0, 1.0, 2.0, 10.0]).expect("samples");
        assert_eq!(s.median, 3.0);
        assert_eq!((s.min, s.max), (1.0, 10.0));
    }

    #[test]
    fn single_and_empty() {
        assert_eq!(Summary::of(&[7.0]).map(|s| s.median), Some(7.0));
        assert!(Summary::of(&[]).is_none());
        assert!(Summary::of(&[1.0, f64::NAN]).is_none());
    }

    #[test]
    fn ratios_are_costs() {
        assert_eq!(cost_ratio(150.0, 50.0, true), Some(3.0));
        // Throughput: Hull 2, runc 8 → Hull is 4 times worse.
        assert_eq!(cost_ratio(2.0, 8.0, false), Some(4.0));
        assert_eq!(cost_ratio(1.0, 0.0, true), None);
        assert_eq!(cost_ratio(0.0, 1.0, false), None);
    }

    #[test]
    fn formatting() {
        assert_eq!(format_value(1562.4), "1562");
        assert_eq!(format_value(95.74), "95.7");
        assert_eq!(format_value(1.486), "1.49");
        assert_eq!(format_value(0.4731), "0.473");
        assert_eq!(format_value(0.0), "0");
        assert_eq!(format_ratio(1.4812), "×1.48");
        assert_eq!(format_ratio(60.07), "×60.1");
        assert_eq!(format_ratio(203.6), "×204");
    }
}
