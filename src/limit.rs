//! Per-address rate limiting (`--rate-limit N`, `--rate-burst B`): a token
//! bucket per source IP address in a fixed-size, per-worker table.
//!
//! Guarantees:
//! - **Fixed memory.** The table is allocated once in [`RateLimiter::new`]
//!   (16 bytes a slot, 64 Ki slots = 1 MiB by default) and never grows: a flood
//!   of spoofed distinct sources evicts entries, it cannot allocate.
//! - **No sharing.** One limiter per worker, `&mut self`, no lock. `SO_REUSEPORT`
//!   hashes a source address to the same worker for the socket's lifetime, so
//!   per-worker tables give per-address limits (an address seen by two workers,
//!   e.g. over UDP and HTTP, gets each worker's allowance).
//! - **No clock.** `now_ms` is an argument (any monotonic milliseconds).
//! - **Canonical addresses.** An IPv4 address and its IPv4-mapped IPv6 form are
//!   one address. IPv6 is keyed per /128 (the spec); a host owning a /64 can
//!   rotate addresses past the limit.
//!
//! Table shape: 4-way set-associative, the set picked by a keyed hash of the
//! address (ahash with a per-process random key, so nobody can aim addresses at
//! one set), a 31-bit tag from other bits of the same hash.
//!
//! What a collision costs: when an address finds its set full, it **evicts**
//! one entry: an empty or fully-refilled one if any (evicting it loses nothing),
//! else the least recently used. The evicted address starts over with a full
//! bucket next time, so a collision can only make the limiter more lenient for
//! it, never deny an innocent client a request it would otherwise get. The
//! alternative, sharing a bucket, lets an attacker starve whoever shares it.
//! A heavy sender stays limited because its own requests keep its entry the
//! most recently used; it escapes only if a flood pushes 4 new addresses into
//! its set between two of its requests. Two addresses share a bucket only on a
//! full tag match inside one set: a 2⁻³¹ chance per pair, not attacker-chosen.

use ahash::RandomState;
use std::net::IpAddr;

/// Ways per set: 4 × 16-byte slots fill one 64-byte cache line.
const WAYS: usize = 4;
/// Token amounts are in thousandths of a request, so `rate` requests per
/// second refill exactly `rate` units per millisecond.
const ONE: u64 = 1000;

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// Hash tag with bit 0 forced to 1; 0 marks an empty slot.
    tag: u32,
    /// Tokens in thousandths, at `last_ms`.
    tokens: u32,
    /// When `tokens` was last brought up to date.
    last_ms: u64,
}

/// A fixed-size table of token buckets keyed by source address.
#[derive(Debug)]
pub struct RateLimiter {
    slots: Box<[Slot]>,
    set_mask: usize,
    /// Refill in thousandths of a token per millisecond (= requests per second).
    rate: u64,
    /// Bucket capacity in thousandths (= burst × 1000).
    cap: u64,
    hasher: RandomState,
}

impl RateLimiter {
    /// Default table size per worker: 64 Ki slots, 1 MiB.
    pub const DEFAULT_SLOTS: usize = 1 << 16;

    /// `rate` requests per second, bursts of `burst`, `slots` table entries
    /// (rounded up to a power of two, at least one set). Zero rate or burst
    /// is treated as 1: "off" is the caller not building a limiter.
    pub fn new(rate: u32, burst: u32, slots: usize) -> Self {
        let sets = (slots.div_ceil(WAYS)).max(1).next_power_of_two();
        // The cap must fit the u32 token field.
        let max_burst = u64::from(u32::MAX) / ONE;
        RateLimiter {
            slots: vec![Slot::default(); sets * WAYS].into_boxed_slice(),
            set_mask: sets - 1,
            rate: u64::from(rate.max(1)),
            cap: u64::from(burst.max(1)).min(max_burst) * ONE,
            hasher: RandomState::new(),
        }
    }

    /// Bytes held by the table (constant for the limiter's life).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.slots)
    }

    /// Whether a request from `ip` at `now_ms` is within its allowance; if so,
    /// it is charged one token. Never allocates.
    pub fn allow(&mut self, ip: IpAddr, now_ms: u64) -> bool {
        let key: u128 = match ip {
            IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
            IpAddr::V6(a) => u128::from(a),
        };
        let h = self.hasher.hash_one(key);
        let tag = ((h >> 32) as u32) | 1;
        let base = (h as usize & self.set_mask) * WAYS;
        let (rate, cap) = (self.rate, self.cap);
        let Some(set) = self.slots.get_mut(base..base + WAYS) else {
            return true; // unreachable: the mask keeps base in range
        };
        let refilled = |s: &Slot| {
            let elapsed = now_ms.saturating_sub(s.last_ms);
            u64::from(s.tokens)
                .saturating_add(elapsed.saturating_mul(rate))
                .min(cap)
        };
        if let Some(s) = set.iter_mut().find(|s| s.tag == tag) {
            let tokens = refilled(s);
            s.last_ms = s.last_ms.max(now_ms);
            let allowed = tokens >= ONE;
            let left = if allowed { tokens - ONE } else { tokens };
            s.tokens = left as u32; // left <= cap <= u32::MAX
            return allowed;
        }
        // Miss: evict the entry whose loss costs nothing (empty or full bucket),
        // else the least recently used one.
        let mut victim = 0;
        for (i, s) in set.iter().enumerate() {
            if s.tag == 0 || refilled(s) >= cap {
                victim = i;
                break;
            }
            if s.last_ms < set[victim].last_ms {
                victim = i;
            }
        }
        set[victim] = Slot {
            tag,
            tokens: (cap - ONE) as u32,
            last_ms: now_ms,
        };
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const INNOCENT: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

    fn count_allowed(l: &mut RateLimiter, ip: IpAddr, now: u64, n: usize) -> usize {
        (0..n).filter(|_| l.allow(ip, now)).count()
    }

    #[test]
    fn burst_then_rate_exact() {
        let mut l = RateLimiter::new(10, 20, 1024);
        assert_eq!(count_allowed(&mut l, INNOCENT, 0, 100), 20, "burst");
        // 10/s: one token every 100 ms, none before.
        assert_eq!(count_allowed(&mut l, INNOCENT, 99, 5), 0);
        assert_eq!(count_allowed(&mut l, INNOCENT, 100, 5), 1);
        assert_eq!(count_allowed(&mut l, INNOCENT, 150, 5), 0);
        assert_eq!(
            count_allowed(&mut l, INNOCENT, 250, 5),
            1,
            "the 50 ms at 150 was kept"
        );
        // Refill caps at the burst.
        assert_eq!(count_allowed(&mut l, INNOCENT, 60_000, 100), 20);
    }

    #[test]
    fn steady_rate_is_never_denied() {
        let mut l = RateLimiter::new(5, 10, 1024);
        for i in 0..1000u64 {
            assert!(l.allow(INNOCENT, i * 200), "request {i}");
        }
    }

    #[test]
    fn clock_going_back_refills_nothing() {
        let mut l = RateLimiter::new(1, 1, 64);
        assert!(l.allow(INNOCENT, 10_000));
        assert!(!l.allow(INNOCENT, 5_000));
        assert!(!l.allow(INNOCENT, 10_999));
        assert!(l.allow(INNOCENT, 11_000));
    }

    #[test]
    fn v4_and_mapped_are_one_address_v6_another() {
        let mut l = RateLimiter::new(1, 2, 1024);
        let v4 = Ipv4Addr::new(198, 51, 100, 7);
        assert!(l.allow(IpAddr::V4(v4), 0));
        assert!(l.allow(IpAddr::V6(v4.to_ipv6_mapped()), 0));
        assert!(
            !l.allow(IpAddr::V4(v4), 0),
            "mapped form charged the same bucket"
        );
        let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7));
        assert!(l.allow(v6, 0));
        // ::198.51.100.7 (IPv4-compatible, deprecated) is a different address.
        assert!(l.allow(IpAddr::V6(v4.to_ipv6_compatible()), 0));
    }

    #[test]
    fn flood_of_distinct_sources_keeps_memory_fixed_and_spares_the_innocent() {
        let mut l = RateLimiter::new(10, 20, RateLimiter::DEFAULT_SLOTS);
        let bytes = l.memory_bytes();
        assert_eq!(bytes, RateLimiter::DEFAULT_SLOTS * 16);
        let heavy = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));
        let (mut innocent_denied, mut heavy_allowed) = (0, 0);
        // 1 M spoofed sources over 10 s (100 per ms); the innocent client sends
        // at its rate (every 100 ms); a heavy sender every millisecond.
        for i in 0..1_000_000u32 {
            let now = u64::from(i / 100);
            l.allow(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), now);
            if i % 100 == 0 {
                heavy_allowed += usize::from(l.allow(heavy, now));
                if now % 100 == 0 && !l.allow(INNOCENT, now) {
                    innocent_denied += 1;
                }
            }
        }
        assert_eq!(l.memory_bytes(), bytes);
        assert_eq!(innocent_denied, 0);
        // 10 s at 10/s plus the burst of 20: the flood (6 new addresses per
        // set per second) never pushed the heavy sender's entry out.
        assert_eq!(heavy_allowed, 20 + 99);
    }

    #[test]
    fn tiny_table_evicts_to_leniency_never_to_denial() {
        // One set of 4: every new address evicts. An innocent client at its
        // rate is never denied, whatever it shares the set with.
        let mut l = RateLimiter::new(1, 1, 4);
        assert_eq!(l.memory_bytes(), 64);
        for t in 0..1000u64 {
            for j in 0..8u32 {
                l.allow(IpAddr::V4(Ipv4Addr::from(j)), t * 1000);
            }
            assert!(l.allow(INNOCENT, t * 1000 + 1), "second {t}");
        }
    }

    #[test]
    fn zero_rate_and_burst_mean_one() {
        let mut l = RateLimiter::new(0, 0, 0);
        assert!(l.allow(INNOCENT, 0));
        assert!(!l.allow(INNOCENT, 999));
        assert!(l.allow(INNOCENT, 1000));
    }

    /// Found by `never_panics`: the refill overflowed when a bucket last
    /// touched at 0 ms was touched again at a huge `now_ms`.
    #[test]
    fn refill_after_a_huge_gap_does_not_overflow() {
        let mut l = RateLimiter::new(2, 2, 0);
        let size = l.memory_bytes();
        for (a, v4, now) in [
            (0u128, false, 0u64),
            (0, false, 0),
            (0, false, 11_571_073_576_805_578_419),
            (0, true, 4),
            (
                126_416_817_599_702_164_143_892_036_717_655_860_258,
                true,
                11_571_073_576_805_578_918,
            ),
        ] {
            let ip = if v4 {
                IpAddr::V4(Ipv4Addr::from(a as u32))
            } else {
                IpAddr::V6(Ipv6Addr::from(a))
            };
            l.allow(ip, now);
        }
        assert_eq!(l.memory_bytes(), size);
    }

    proptest! {
        #[test]
        fn never_panics(rate in any::<u32>(), burst in any::<u32>(), slots in 0usize..5000,
                        reqs in prop::collection::vec((any::<u128>(), any::<bool>(), any::<u64>()), 0..200)) {
            let mut l = RateLimiter::new(rate, burst, slots);
            let size = l.memory_bytes();
            for (a, v4, now) in reqs {
                let ip = if v4 { IpAddr::V4(Ipv4Addr::from(a as u32)) } else { IpAddr::V6(Ipv6Addr::from(a)) };
                l.allow(ip, now);
            }
            prop_assert_eq!(l.memory_bytes(), size);
        }

        #[test]
        fn allowed_never_exceeds_burst_plus_rate(rate in 1u32..100, burst in 1u32..100,
                                                 times in prop::collection::vec(0u64..10_000, 1..300)) {
            let mut times = times;
            times.sort_unstable();
            let mut l = RateLimiter::new(rate, burst, 64);
            let allowed = times.iter().filter(|&&t| l.allow(INNOCENT, t)).count() as u64;
            let span = times[times.len() - 1] - times[0];
            prop_assert!(allowed <= u64::from(burst) + span * u64::from(rate) / 1000);
        }
    }
}
