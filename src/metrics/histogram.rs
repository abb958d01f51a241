//! A Prometheus histogram as a fixed array of atomic counters: observing is a search of a short
//! table of bounds and two relaxed atomic adds, from any thread, with no lock.
//!
//! Buckets are stored *non-cumulative* (bucket `i` counts observations `v` with
//! `bounds[i-1] < v <= bounds[i]`, the last one everything above the last bound) and made
//! cumulative only when read ([`Histogram::snapshot`]), so an observation touches one bucket.
//! The count is the sum of the buckets, never a counter of its own: the `+Inf` bucket and
//! `_count` then agree in every snapshot, even while other threads observe. The sum is a
//! separate counter and may be a few observations ahead of or behind the buckets in a snapshot
//! taken during traffic, which Prometheus tolerates (its rate() of either converges).
//!
//! Values are integers in the histogram's unit (microseconds for durations, items for sizes),
//! divided by `units_per_base` when read, into the exposed base unit (seconds). Dividing, not
//! multiplying by 1e-6, keeps bounds exact: `100 / 1e6` prints as `0.0001`, `100 * 1e-6` as
//! `0.00009999999999999999`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The most bounds a histogram may have (its `+Inf` bucket comes on top).
pub const MAX_BOUNDS: usize = 23;

pub struct Histogram {
    /// Upper bounds, ascending, in the histogram's unit.
    bounds: &'static [u64],
    /// Units in one exposed base unit (1e6: microseconds per second; 1 for counts).
    units_per_base: f64,
    buckets: [AtomicU64; MAX_BOUNDS + 1],
    sum: AtomicU64,
}

/// One reading of a histogram: cumulative counts per bound, then the count (the `+Inf` bucket).
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// (upper bound in the exposed unit, observations at or below it), ascending.
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    /// The sum of all observations, in the exposed unit.
    pub sum: f64,
}

impl Histogram {
    /// `bounds` must ascend strictly and be at most [`MAX_BOUNDS`] long (checked when the
    /// static is built, so a wrong table does not compile).
    pub const fn new(bounds: &'static [u64], units_per_base: f64) -> Histogram {
        assert!(bounds.len() <= MAX_BOUNDS, "too many histogram bounds");
        let mut i = 1;
        while i < bounds.len() {
            assert!(bounds[i - 1] < bounds[i], "histogram bounds must ascend");
            i += 1;
        }
        Histogram {
            bounds,
            units_per_base,
            buckets: [const { AtomicU64::new(0) }; MAX_BOUNDS + 1],
            sum: AtomicU64::new(0),
        }
    }

    /// Counts one observation of `value` (in the histogram's unit).
    pub fn observe(&self, value: u64) {
        // A linear scan from the smallest bound: most observations land in the first buckets,
        // where it stops after a comparison or two (a binary search always takes four or five).
        let bucket =
            self.bounds.iter().position(|&bound| value <= bound).unwrap_or(self.bounds.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// Counts one duration, in whole microseconds (a histogram whose unit is the microsecond).
    pub fn observe_duration(&self, took: Duration) {
        self.observe(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
    }

    /// Reads every bucket once; the buckets come out cumulative, as the format wants them.
    pub fn snapshot(&self) -> Snapshot {
        let mut running = 0u64;
        let mut buckets = Vec::with_capacity(self.bounds.len());
        for (bound, bucket) in self.bounds.iter().zip(&self.buckets) {
            running = running.saturating_add(bucket.load(Ordering::Relaxed));
            buckets.push((*bound as f64 / self.units_per_base, running));
        }
        let above = self.buckets[self.bounds.len()].load(Ordering::Relaxed);
        Snapshot {
            buckets,
            count: running.saturating_add(above),
            sum: self.sum.load(Ordering::Relaxed) as f64 / self.units_per_base,
        }
    }
}

/// `first`, `first * 2`, ... : `N` bounds doubling (etcd's `ExponentialBuckets(first, 2, N)`).
pub const fn doubling<const N: usize>(first: u64) -> [u64; N] {
    let mut bounds = [0u64; N];
    let mut i = 0;
    let mut bound = first;
    while i < N {
        bounds[i] = bound;
        bound *= 2;
        i += 1;
    }
    bounds
}

#[cfg(test)]
mod tests {
    use super::*;

    static BOUNDS: [u64; 3] = [10, 20, 40];

    /// A value on a bound counts in that bound's bucket (Prometheus's `le`: less or equal);
    /// buckets read cumulative and the last equals the count.
    #[test]
    fn buckets_are_le_and_read_cumulative() {
        let h = Histogram::new(&BOUNDS, 2.0);
        for v in [0, 10, 11, 20, 40, 41, 1000] {
            h.observe(v);
        }
        let s = h.snapshot();
        assert_eq!(s.buckets, vec![(5.0, 2), (10.0, 4), (20.0, 5)]);
        assert_eq!(s.count, 7);
        assert_eq!(s.sum, (10 + 11 + 20 + 40 + 41 + 1000) as f64 * 0.5);
    }

    /// etcd's fsync buckets: 1 ms doubling 14 times ends at 8.192 s.
    #[test]
    fn doubling_bounds_are_etcds() {
        let b: [u64; 14] = doubling(1000);
        assert_eq!((b[0], b[1], b[13]), (1000, 2000, 8_192_000));
    }

    /// Concurrent observers lose nothing and the count always equals the `+Inf` bucket.
    #[test]
    fn concurrent_observations_all_count() {
        static H: Histogram = Histogram::new(&BOUNDS, 1.0);
        std::thread::scope(|s| {
            for t in 0..4u64 {
                s.spawn(move || (0..10_000u64).for_each(|i| H.observe((i + t) % 50)));
            }
            for _ in 0..100 {
                let snap = H.snapshot();
                assert!(snap.buckets.windows(2).all(|w| w[0].1 <= w[1].1));
                assert!(snap.buckets.last().is_none_or(|b| b.1 <= snap.count));
            }
        });
        assert_eq!(H.snapshot().count, 40_000);
    }
}
