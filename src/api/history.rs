//! The stats history: cumulative counters and swarm totals sampled every
//! [`SAMPLE_MS`], kept in a ring of fixed size (one hour), from which the API
//! derives rates over the last 10 s and 60 s and the hour's series.
//!
//! Guarantees: the ring is allocated once and never grows; a sample is a
//! copy of counters (no reference into live state); rates divide by the time
//! that really passed between samples, so a late sample does not inflate them.
//! The ring starts with a zero sample at time 0, which is exact: every counter
//! starts at zero when the server does.

use crate::stats::{Kind, Proto, Registry, Reject};
use crate::swarm::Totals;

/// Sampling period.
pub const SAMPLE_MS: u64 = 10_000;
/// Samples kept: one hour at [`SAMPLE_MS`], and one more so the oldest of the
/// hour's intervals has its start.
pub const CAPACITY: usize = 361;

/// Counters at one moment, summed over workers and address families.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    /// Milliseconds since start.
    pub t_ms: u64,
    pub requests: [[u64; Kind::COUNT]; Proto::COUNT],
    pub responses: [[u64; Kind::COUNT]; Proto::COUNT],
    pub rejects: [u64; Reject::COUNT],
    pub drops: u64,
    pub totals: Totals,
}

impl Sample {
    /// Read the counters now (`totals` from the swarm, taken by the caller).
    pub fn read(registry: &Registry, totals: Totals, t_ms: u64) -> Sample {
        let mut s = Sample {
            t_ms,
            totals,
            drops: registry.drops_total(),
            ..Sample::default()
        };
        for p in Proto::ALL {
            for k in Kind::ALL {
                for f in crate::stats::Family::ALL {
                    s.requests[p as usize][k as usize] += registry.requests(p, f, k);
                    s.responses[p as usize][k as usize] += registry.responses(p, f, k);
                }
            }
        }
        for r in Reject::ALL {
            s.rejects[r as usize] = registry.rejects(r);
        }
        s
    }

    pub fn requests_total(&self) -> u64 {
        self.requests.iter().flatten().sum()
    }

    pub fn responses_total(&self) -> u64 {
        self.responses.iter().flatten().sum()
    }

    pub fn rejects_total(&self) -> u64 {
        self.rejects.iter().sum()
    }

    /// Requests of one kind over every protocol.
    pub fn requests_of(&self, k: Kind) -> u64 {
        self.requests.iter().map(|p| p[k as usize]).sum()
    }

    /// Requests of every kind over one protocol.
    pub fn requests_over(&self, p: Proto) -> u64 {
        self.requests[p as usize].iter().sum()
    }
}

/// Per-second rates between two samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// Seconds between the samples.
    pub seconds: f64,
    pub requests: [[f64; Kind::COUNT]; Proto::COUNT],
    pub responses: [[f64; Kind::COUNT]; Proto::COUNT],
    pub rejects: f64,
}

impl Rates {
    /// Rates from `a` to the later `b`. Counters only grow; a wrapped or
    /// reordered pair reads as zero, not as a huge rate.
    pub fn between(a: &Sample, b: &Sample) -> Rates {
        let seconds = (b.t_ms.saturating_sub(a.t_ms) as f64 / 1000.0).max(0.001);
        let per = |x: u64, y: u64| y.saturating_sub(x) as f64 / seconds;
        let grid = |x: &[[u64; Kind::COUNT]; Proto::COUNT],
                    y: &[[u64; Kind::COUNT]; Proto::COUNT]| {
            std::array::from_fn(|p| std::array::from_fn(|k| per(x[p][k], y[p][k])))
        };
        Rates {
            seconds,
            requests: grid(&a.requests, &b.requests),
            responses: grid(&a.responses, &b.responses),
            rejects: per(a.rejects_total(), b.rejects_total()),
        }
    }

    pub fn requests_total(&self) -> f64 {
        self.requests.iter().flatten().sum()
    }

    pub fn responses_total(&self) -> f64 {
        self.responses.iter().flatten().sum()
    }

    pub fn requests_of(&self, k: Kind) -> f64 {
        self.requests.iter().map(|p| p[k as usize]).sum()
    }

    pub fn requests_over(&self, p: Proto) -> f64 {
        self.requests[p as usize].iter().sum()
    }
}

/// The ring of samples, oldest first when read.
#[derive(Debug)]
pub struct History {
    ring: Box<[Sample]>,
    /// Where the next sample goes.
    next: usize,
    len: usize,
}

impl Default for History {
    fn default() -> Self {
        History::new()
    }
}

impl History {
    /// A ring holding the zero sample at time 0.
    pub fn new() -> History {
        let mut h = History {
            ring: vec![Sample::default(); CAPACITY].into_boxed_slice(),
            next: 0,
            len: 0,
        };
        h.push(Sample::default());
        h
    }

    /// Whether a sample is due at `now_ms`.
    pub fn due(&self, now_ms: u64) -> bool {
        self.latest().is_none_or(|s| now_ms >= s.t_ms + SAMPLE_MS)
    }

    /// Add a sample, replacing the oldest once the ring is full.
    pub fn push(&mut self, s: Sample) {
        if let Some(slot) = self.ring.get_mut(self.next) {
            *slot = s;
        }
        self.next = (self.next + 1) % self.ring.len();
        self.len = (self.len + 1).min(self.ring.len());
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Samples oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Sample> + '_ {
        let n = self.ring.len();
        let start = (self.next + n - self.len) % n;
        (0..self.len).filter_map(move |i| self.ring.get((start + i) % n))
    }

    pub fn latest(&self) -> Option<&Sample> {
        self.iter().last()
    }

    /// The sample a rate over the last `window_ms` should start from: the
    /// newest taken at least that long before `now_ms`, else the oldest.
    pub fn base(&self, now_ms: u64, window_ms: u64) -> Option<&Sample> {
        let cut = now_ms.saturating_sub(window_ms);
        self.iter()
            .filter(|s| s.t_ms <= cut)
            .last()
            .or_else(|| self.iter().next())
    }

    /// The rates of each interval between consecutive samples, with the
    /// sample that ends it.
    pub fn intervals(&self) -> impl Iterator<Item = (&Sample, Rates)> + '_ {
        self.iter()
            .zip(self.iter().skip(1))
            .map(|(a, b)| (b, Rates::between(a, b)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t_ms: u64, announces: u64) -> Sample {
        let mut s = Sample {
            t_ms,
            ..Sample::default()
        };
        s.requests[Proto::Udp as usize][Kind::Announce as usize] = announces;
        s.rejects[Reject::Truncated as usize] = announces / 10;
        s
    }

    #[test]
    fn ring_keeps_an_hour_and_never_grows() {
        let mut h = History::new();
        assert_eq!(h.len(), 1);
        assert!(!h.due(9_999) && h.due(10_000));
        for i in 1..=1000u64 {
            h.push(at(i * SAMPLE_MS, i * 100));
        }
        assert_eq!(h.len(), CAPACITY);
        assert_eq!(h.ring.len(), CAPACITY);
        let ts: Vec<u64> = h.iter().map(|s| s.t_ms).collect();
        assert_eq!(ts.first(), Some(&((1000 - 360) * SAMPLE_MS)));
        assert_eq!(ts.last(), Some(&(1000 * SAMPLE_MS)));
        assert!(ts.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(h.intervals().count(), 360);
        for (_, r) in h.intervals() {
            assert_eq!(r.seconds, 10.0);
            assert_eq!(r.requests_of(Kind::Announce), 10.0);
            assert_eq!(r.rejects, 1.0);
        }
    }

    #[test]
    fn rates_divide_by_the_time_that_passed() {
        let a = at(0, 0);
        let b = at(20_000, 300);
        let r = Rates::between(&a, &b);
        assert_eq!(r.seconds, 20.0);
        assert_eq!(r.requests_over(Proto::Udp), 15.0);
        assert_eq!(r.requests_total(), 15.0);
        // Reordered samples read as zero, never as a wrapped huge rate.
        assert_eq!(Rates::between(&b, &a).requests_total(), 0.0);
    }

    #[test]
    fn base_is_the_newest_sample_old_enough() {
        let mut h = History::new();
        for i in 1..=6u64 {
            h.push(at(i * SAMPLE_MS, i));
        }
        assert_eq!(h.base(65_000, 10_000).map(|s| s.t_ms), Some(50_000));
        assert_eq!(h.base(65_000, 60_000).map(|s| s.t_ms), Some(0));
        // Younger than the window: from the start.
        assert_eq!(h.base(5_000, 60_000).map(|s| s.t_ms), Some(0));
    }
}
