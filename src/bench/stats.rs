//! Summary statistics shared by every benchmark.

use serde::Serialize;
use std::time::Duration;

/// Median, p99, mean, min and max of a set of latency samples, in microseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Summary {
    pub count: usize,
    pub median_us: f64,
    pub p99_us: f64,
    pub mean_us: f64,
    pub min_us: f64,
    pub max_us: f64,
}

impl Summary {
    /// Summarise samples; `None` when there are none.
    pub fn of(samples: &[Duration]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let mut us: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e6).collect();
        us.sort_by(|a, b| a.total_cmp(b));
        let n = us.len();
        Some(Summary {
            count: n,
            median_us: percentile(&us, 50.0),
            p99_us: percentile(&us, 99.0),
            mean_us: us.iter().sum::<f64>() / n as f64,
            min_us: us[0],
            max_us: us[n - 1],
        })
    }
}

/// Nearest-rank percentile of sorted, non-empty samples.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_one_to_hundred() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        let s = Summary::of(&samples).expect("non-empty");
        assert_eq!(s.median_us, 50.0);
        assert_eq!(s.p99_us, 99.0);
        assert_eq!(s.max_us, 100.0);
        assert!(Summary::of(&[]).is_none());
    }
}
