//! Round-trip latencies of `shoal bench`, in nanoseconds: an HdrHistogram,
//! the structure aquatic's load tester uses, so the two tools' percentiles
//! line up.
//!
//! Three significant figures (a reported quantile is within 0.1 % of the
//! value recorded) from 1 ns to [`HIGHEST_NS`]; longer values are clamped.
//! The counts are allocated once, when the histogram is made (about 230 kB,
//! before the clock starts): recording never allocates, and per-worker
//! histograms merge by addition. The accessors answer `None` when nothing
//! was recorded, rather than hdrhistogram's 0 or undefined.

use hdrhistogram::{AdditionError, CreationError};

/// Highest latency tracked: twice the longest request timeout `shoal bench`
/// accepts (60 s), so no answered request is clamped.
pub const HIGHEST_NS: u64 = 120_000_000_000;
const SIGNIFICANT_FIGURES: u8 = 3;

#[derive(Debug, Clone)]
pub struct Histogram(hdrhistogram::Histogram<u64>);

impl Histogram {
    pub fn new() -> Result<Histogram, CreationError> {
        hdrhistogram::Histogram::new_with_bounds(1, HIGHEST_NS, SIGNIFICANT_FIGURES).map(Histogram)
    }

    #[inline]
    pub fn record(&mut self, ns: u64) {
        self.0.saturating_record(ns);
    }

    /// Adds `other`'s counts (same bounds, so this only fails on a bug).
    pub fn merge(&mut self, other: &Histogram) -> Result<(), AdditionError> {
        self.0.add(&other.0)
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    fn some<T>(&self, v: impl FnOnce(&hdrhistogram::Histogram<u64>) -> T) -> Option<T> {
        (!self.0.is_empty()).then(|| v(&self.0))
    }

    pub fn min(&self) -> Option<u64> {
        self.some(|h| h.min())
    }

    pub fn max(&self) -> Option<u64> {
        self.some(|h| h.max())
    }

    pub fn mean(&self) -> Option<f64> {
        self.some(|h| h.mean())
    }

    /// The value at quantile `q` (0..=1), `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        self.some(|h| h.value_at_quantile(q))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_close() {
        let mut h = Histogram::new().unwrap();
        // The memory the module doc states: 8-byte counts, about 230 kB.
        let bytes = h.0.distinct_values() * 8;
        assert!((200_000..260_000).contains(&bytes), "{bytes}");
        assert_eq!(
            (h.quantile(0.5), h.min(), h.max(), h.mean()),
            (None, None, None, None)
        );
        for v in 1..=100_000u64 {
            h.record(v * 1000); // 1 µs .. 100 ms
        }
        for (q, want) in [
            (0.5, 50_000_000.0),
            (0.99, 99_000_000.0),
            (0.999, 99_900_000.0),
        ] {
            let got = h.quantile(q).unwrap() as f64;
            assert!((got - want).abs() / want < 0.001, "q{q}: {got} vs {want}");
        }
        assert_eq!(h.quantile(0.0), Some(1000));
        let max = h.max().unwrap();
        assert!((100_000_000..100_100_000).contains(&max), "{max}");
        let mut other = Histogram::new().unwrap();
        other.record(7);
        other.record(u64::MAX); // clamped, not lost
        h.merge(&other).unwrap();
        assert_eq!((h.count(), h.min()), (100_002, Some(7)));
        assert!(h.max().unwrap() >= HIGHEST_NS);
    }
}
