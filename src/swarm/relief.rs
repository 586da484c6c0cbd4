//! The relief sweep: past 95 % of a bound, the control thread expires the peers
//! silent longest, whatever shard they are in, down to about 90 %, a few
//! shards a loop turn (a tally of peers and bytes by age, then a sweep with
//! the shortest timeout that frees enough). It keeps the map below its
//! bounds in the steady state, so that a new peer rarely has to make room
//! itself ([`super::budget`]).

use super::peers::{self, Stamp};
use super::shard::{ids_bytes, Shard};
use super::{Eviction, Limits, Open, Swarm};
use std::sync::atomic::Ordering::Relaxed;

/// Where the relief starts and what it aims for, in the units of the
/// budget's pools (the shard array's own bytes already taken off the byte
/// figures). `u64::MAX`: no bound.
#[derive(Debug, Clone, Copy)]
pub(super) struct Thresholds {
    /// At or above these (95 %) [`Swarm::relieve`] starts a sweep ...
    soft_bytes: u64,
    soft_peers: u64,
    /// ... that aims for these (90 %).
    target_bytes: u64,
    target_peers: u64,
}

impl Thresholds {
    pub(super) fn new(limits: Limits, fixed: u64) -> Thresholds {
        let pct = |max: u64, p: u64, less: u64| match max {
            0 => u64::MAX,
            m => (m / 100 * p + m % 100 * p / 100).saturating_sub(less),
        };
        Thresholds {
            soft_bytes: pct(limits.max_bytes, 95, fixed),
            soft_peers: pct(limits.max_peers, 95, 0),
            target_bytes: pct(limits.max_bytes, 90, fixed),
            target_peers: pct(limits.max_peers, 90, 0),
        }
    }
}

impl Swarm {
    /// Whether the map is past 95 % of a bound (a relief sweep is due or running).
    pub fn under_pressure(&self) -> bool {
        let th = &self.relief_at;
        self.budget.bytes.reserved() >= th.soft_bytes
            || self.budget.peers.reserved() >= th.soft_peers
    }

    /// Relieve the map when it is past 95 % of a bound: a sweep in two passes
    /// over the shards, at most `max_shards` shards a call so its caller is
    /// never held long. The first pass tallies peers and bytes by age; the
    /// second expires, with the shortest timeout that brings the map back to
    /// about 90 %, so the peers silent longest go first, whatever shard they
    /// are in. Called by the control thread each turn (a no-op below 95 %, and
    /// while another caller holds the sweep); never on a packet worker.
    /// Returns the peers evicted.
    pub fn relieve(&self, now: u32, max_shards: usize) -> usize {
        if !self.relieving.load(Relaxed) && !self.under_pressure() {
            return 0;
        }
        let Some(mut relief) = self.relief.try_lock() else {
            return 0;
        };
        let evicted = self.relieve_locked(&mut relief, now, max_shards);
        self.relieving
            .store(!matches!(relief.phase, Phase::Idle), Relaxed);
        evicted
    }

    fn relieve_locked(&self, relief: &mut Relief, now: u32, max_shards: usize) -> usize {
        let n = self.shards.len();
        let mut evicted = 0;
        let mut budget = max_shards.max(1);
        while budget > 0 {
            match relief.phase {
                Phase::Idle => {
                    let th = &self.relief_at;
                    let why = if self.budget.bytes.reserved() >= th.soft_bytes {
                        Eviction::Memory
                    } else if self.budget.peers.reserved() >= th.soft_peers {
                        Eviction::Peers
                    } else {
                        return evicted;
                    };
                    relief.start(now, why);
                }
                Phase::Measure { next, at, why } => {
                    let end = (next + budget).min(n);
                    for i in next..end {
                        relief.measure(&self.shards[i].lock(), at as Stamp);
                    }
                    budget -= end - next;
                    relief.phase = if end < n {
                        Phase::Measure { next: end, at, why }
                    } else {
                        let cut = relief.cut(self.excess());
                        relief.acc = 0;
                        Phase::Evict {
                            next: 0,
                            at,
                            cut,
                            why,
                        }
                    };
                }
                Phase::Evict { next, at, cut, why } => {
                    // Every peer older than the cut's bucket (by its age at
                    // `at`), and the cut's share of the peers in it: one of
                    // every `den / num`, spread evenly over the shards.
                    let (bucket, num) = cut;
                    let acc = &mut relief.acc;
                    let mut keep = |stamp: Stamp| {
                        let b = age_bucket(peers::age(at as Stamp, stamp));
                        if b != bucket {
                            return b < bucket;
                        }
                        *acc += num;
                        if *acc >= CUT_DEN {
                            *acc -= CUT_DEN;
                            return false;
                        }
                        true
                    };
                    let end = (next + budget).min(n);
                    for i in next..end {
                        evicted += self.sweep(i, now, &Open, &mut keep, Some(why));
                    }
                    budget -= end - next;
                    relief.phase = if end < n {
                        Phase::Evict {
                            next: end,
                            at,
                            cut,
                            why,
                        }
                    } else {
                        Phase::Idle
                    };
                    if end == n {
                        return evicted;
                    }
                }
            }
        }
        evicted
    }

    /// Bytes and peers above the relief's target (90 %), by the pools.
    fn excess(&self) -> (u64, u64) {
        let th = &self.relief_at;
        (
            self.budget.bytes.reserved().saturating_sub(th.target_bytes),
            self.budget.peers.reserved().saturating_sub(th.target_peers),
        )
    }
}

/// Age buckets of the relief's tally: one a second below 64 s, then 16 an
/// octave (an age is placed within 1/16 of itself) up to 32767 s.
pub(super) const AGE_BUCKETS: usize = 64 + 9 * 16;

/// The bucket of an age in seconds.
fn age_bucket(age: i32) -> usize {
    let age = age.clamp(0, i32::from(i16::MAX)) as u32;
    if age < 64 {
        return age as usize;
    }
    let octave = 31 - age.leading_zeros(); // 6..=14
    (64 + (octave - 6) * 16 + ((age >> (octave - 4)) & 15)) as usize
}

/// The denominator of the share of the cut bucket a relief takes.
const CUT_DEN: u32 = 1 << 16;

/// The youngest age in bucket `b`.
#[cfg(test)]
fn bucket_floor(b: usize) -> u16 {
    if b < 64 {
        return b as u16;
    }
    let (octave, sub) = ((b - 64) / 16 + 6, (b - 64) % 16);
    ((16 + sub) << (octave - 4)) as u16
}

#[derive(Debug, Clone, Copy, Default)]
enum Phase {
    #[default]
    Idle,
    /// Tallying shards `next..` by age at `at`.
    Measure { next: usize, at: u32, why: Eviction },
    /// Expiring shards `next..`: the peers older at `at` than age bucket
    /// `cut.0`, and `cut.1 / CUT_DEN` of those in it.
    Evict {
        next: usize,
        at: u32,
        cut: (usize, u32),
        why: Eviction,
    },
}

/// State of a relief sweep across calls.
#[derive(Debug)]
pub(super) struct Relief {
    phase: Phase,
    /// The partial cut's accumulator (see [`Phase::Evict`]).
    acc: u32,
    /// Peers by age bucket.
    peers: Box<[u64; AGE_BUCKETS]>,
    /// Bytes that leave with the peers of each age bucket: a peer's share of
    /// its torrent's heap, and the torrent's entry and table slot (the share
    /// of its shard's) in the bucket of its youngest peer, since the torrent
    /// goes when that one does.
    bytes: Box<[u64; AGE_BUCKETS]>,
}

impl Default for Relief {
    fn default() -> Self {
        Relief {
            phase: Phase::Idle,
            acc: 0,
            peers: Box::new([0; AGE_BUCKETS]),
            bytes: Box::new([0; AGE_BUCKETS]),
        }
    }
}

impl Relief {
    fn start(&mut self, now: u32, why: Eviction) {
        self.peers.fill(0);
        self.bytes.fill(0);
        self.phase = Phase::Measure {
            next: 0,
            at: now,
            why,
        };
    }

    fn measure(&mut self, shard: &Shard, now: Stamp) {
        let n = shard.torrents.len();
        if n == 0 {
            return;
        }
        let per_torrent = ((shard.torrents.own_bytes() + ids_bytes(&shard.peer_ids)) / n) as u64;
        for t in shard.torrents.values() {
            let per_peer = (t.heap_bytes() / t.len().max(1)) as u64;
            let mut youngest = i32::MAX;
            t.for_each_age(now, |age| {
                let b = age_bucket(age);
                self.peers[b] += 1;
                self.bytes[b] += per_peer;
                youngest = youngest.min(age);
            });
            self.bytes[age_bucket(youngest)] += per_torrent;
        }
    }

    /// Where to cut to free `(bytes, peers)` of excess, oldest first: the
    /// bucket at which the tally covers it, and the share of that bucket
    /// (out of [`CUT_DEN`]) to take with everything older. At most down to
    /// bucket 1 (a second old): the current second is never swept, and
    /// what it holds beyond the budget is made room for by sampling.
    fn cut(&self, (bytes, peers): (u64, u64)) -> (usize, u32) {
        let (mut b, mut p) = (0, 0);
        for k in (1..AGE_BUCKETS).rev() {
            let (bk, pk) = (self.bytes[k], self.peers[k]);
            if b + bk >= bytes && p + pk >= peers {
                // The larger of the two shares of this bucket still needed.
                let share = |need: u64, have: u64, of: u64| match of {
                    0 => 0,
                    of => (need.saturating_sub(have) * u64::from(CUT_DEN)).div_ceil(of),
                };
                let num = share(bytes, b, bk).max(share(peers, p, pk));
                return (k, num.min(u64::from(CUT_DEN)) as u32);
            }
            b += bk;
            p += pk;
        }
        (1, CUT_DEN)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{join, stored};
    use super::*;

    #[test]
    fn relief_evicts_the_oldest_first_down_to_ninety_percent() {
        let s = Swarm::new(16, 3600).with_max_peers(1000);
        // 960 peers (96 %) announced at t = 0..960, one a second.
        for n in 0..960 {
            join(&s, n, n, n);
        }
        assert!(s.under_pressure());
        // A bounded amount of work per call; done within a few calls.
        let mut evicted = 0;
        for _ in 0..8 {
            evicted += s.relieve(1000, 4);
        }
        let t = s.totals();
        assert_eq!(t.peers(), 960 - evicted as u64);
        // Down to 90 %, within the rounding of the cut.
        assert!((895..=900).contains(&t.peers()), "{} left", t.peers());
        // The oldest went: all of those older than the cut bucket (32 s wide
        // at these ages), a share of those in it, none younger.
        let kept: Vec<u32> = (0..960).filter(|&n| stored(&s, n, n)).collect();
        assert_eq!(kept.len() as u64, t.peers());
        let gone = 960 - kept.len() as u32;
        assert!(kept.iter().all(|&n| n + 32 >= gone), "{kept:?}");
        assert!((gone + 32..960).all(|n| stored(&s, n, n)), "{kept:?}");
        assert!(!s.under_pressure());
        assert_eq!(s.relieve(1000, 100), 0, "nothing to do under 95 %");
    }

    #[test]
    fn age_buckets_are_ordered_and_tight() {
        let mut last = 0;
        for age in 0..=i32::from(i16::MAX) {
            let b = age_bucket(age);
            assert!(b >= last && b < AGE_BUCKETS);
            assert!(i32::from(bucket_floor(b)) <= age);
            assert!(age - i32::from(bucket_floor(b)) <= age / 16, "{age}");
            last = b;
        }
        assert_eq!(bucket_floor(age_bucket(100)), 100);
    }
}
