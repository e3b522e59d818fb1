//! A histogram of durations that records with atomics only: no lock, so a thread that
//! must never wait (the writer, in the middle of a group commit) can record into it while
//! a scrape reads it. A reading taken while records land may be off by the records in
//! flight (count and buckets are separate atomics); every record shows in the next one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds, in seconds, of the buckets every duration histogram uses: from 100 µs
/// (a commit, a claim) to 5 minutes (a long job), roughly ×2.5 apart.
pub const DURATION_BOUNDS_SECONDS: [f64; 16] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 300.0];

/// Durations in buckets of [`DURATION_BOUNDS_SECONDS`], their count and their sum.
#[derive(Debug)]
pub struct AtomicHistogram {
    /// Per bucket, not cumulative; the last one is above the highest bound.
    buckets: [AtomicU64; DURATION_BOUNDS_SECONDS.len() + 1],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

/// What an [`AtomicHistogram`] held when read.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramReading {
    /// Per bound of [`DURATION_BOUNDS_SECONDS`]: how many records were at most that.
    pub cumulative: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl Default for AtomicHistogram {
    fn default() -> AtomicHistogram {
        AtomicHistogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

impl AtomicHistogram {
    pub fn record(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        let index =
            DURATION_BOUNDS_SECONDS.iter().position(|bound| seconds <= *bound).unwrap_or(DURATION_BOUNDS_SECONDS.len());
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn read(&self) -> HistogramReading {
        let mut cumulative = Vec::with_capacity(DURATION_BOUNDS_SECONDS.len());
        let mut seen = 0;
        for (bound, bucket) in DURATION_BOUNDS_SECONDS.iter().zip(&self.buckets) {
            seen += bucket.load(Ordering::Relaxed);
            cumulative.push((*bound, seen));
        }
        let above = self.buckets[DURATION_BOUNDS_SECONDS.len()].load(Ordering::Relaxed);
        // The count is read last and never shown below the buckets, so `+Inf` ≥ every bucket.
        let count = self.count.load(Ordering::Relaxed).max(seen + above);
        HistogramReading { cumulative, count, sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_fall_in_the_first_bucket_at_least_their_size() {
        let histogram = AtomicHistogram::default();
        histogram.record(Duration::from_micros(100));
        histogram.record(Duration::from_millis(2));
        histogram.record(Duration::from_secs(400));
        let reading = histogram.read();
        assert_eq!(reading.count, 3);
        assert_eq!(reading.cumulative[0], (0.0001, 1), "a bound includes its own value");
        assert_eq!(reading.cumulative[4], (0.0025, 2));
        assert_eq!(reading.cumulative.last(), Some(&(300.0, 2)), "400 s is only in +Inf");
        assert!((reading.sum_seconds - 400.0021).abs() < 1e-9, "{}", reading.sum_seconds);
    }
}
