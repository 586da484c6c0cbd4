//! The latest event seen per peer (and per access-list entry or key): what
//! lets records arriving in any order leave every instance in the same
//! state.
//!
//! A record is applied only if it is newer — by (stamp, sender), compared the
//! same way everywhere — than the latest event this instance knows for its
//! key; a stop's entry is the tombstone that refuses an older announce still
//! in flight. Local events are noted too (the subscriber collects the
//! workers' records before it applies a batch), so a stale record cannot
//! undo what a client just did here.
//!
//! Memory is fixed at start: `capacity` entries of 24 bytes in sets of
//! [`WAYS`], plus one 8-byte floor per set, allocated zeroed (pages are
//! touched as entries arrive). A full set evicts its oldest entry and raises
//! the set's floor to that entry's stamp; a record with no entry whose stamp
//! is at or below the floor is refused as stale, because a newer event for
//! its key may have been evicted. So the table never applies a record older
//! than an event it knew of; what its bound costs is refusing some old
//! records (counted), never resurrecting a stopped peer. The horizon it
//! remembers is `capacity` over the cluster's event rate (one million
//! entries: 100 s at 10 000 announces/s).
//!
//! Keys are reduced by SipHash-1-3 (128-bit output, random key per process)
//! to a set index and a 64-bit fingerprint: peers cannot aim their addresses
//! at one set, and two keys are confused with odds of about 2^-64 per lookup.

use siphasher::sip128::{Hasher128, SipHasher13};
use std::hash::Hasher;

/// Entries per set.
pub const WAYS: usize = 8;

/// One entry: fingerprint (0: empty), stamp, sender. Plain words, so the
/// table is allocated zeroed and its pages are touched only as it fills.
type Slot = [u64; 3];
const FP: usize = 0;
const STAMP: usize = 1;
const ORIGIN: usize = 2;

/// What to do with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Newer than anything known for its key: apply it (now recorded).
    Apply,
    /// An event at least as new is known for its key.
    Superseded,
    /// No entry, and not newer than what the set has forgotten.
    Stale,
}

/// A fixed-size table of (key → latest stamp and sender).
#[derive(Debug)]
pub struct Versions {
    slots: Box<[[Slot; WAYS]]>,
    floors: Box<[u64]>,
    keys: (u64, u64),
}

/// Whether `(s, o)` is newer than `(t, p)`; the same sender's records at the
/// same stamp arrive in the order it published them, so the later wins.
fn newer(s: u64, o: u64, t: u64, p: u64) -> bool {
    (s, o) >= (t, p)
}

impl Versions {
    /// A table of at least `capacity` entries (rounded up to a power of two
    /// sets of [`WAYS`]).
    pub fn new(capacity: usize) -> Versions {
        let sets = capacity.div_ceil(WAYS).max(1).next_power_of_two();
        Versions {
            slots: vec![[[0u64; 3]; WAYS]; sets].into_boxed_slice(),
            floors: vec![0u64; sets].into_boxed_slice(),
            keys: (fastrand::u64(..), fastrand::u64(..)),
        }
    }

    /// Entries it holds at most.
    pub fn capacity(&self) -> usize {
        self.slots.len() * WAYS
    }

    /// Bytes it takes (slots and floors).
    pub fn bytes(&self) -> usize {
        std::mem::size_of_val(&*self.slots) + std::mem::size_of_val(&*self.floors)
    }

    fn locate(&self, key: &[u8]) -> (usize, u64) {
        let mut h = SipHasher13::new_with_keys(self.keys.0, self.keys.1);
        h.write(key);
        let h = h.finish128();
        let set = (h.h1 as usize) & (self.slots.len() - 1);
        (set, h.h2.max(1))
    }

    /// Decide on a record for `key` stamped `stamp` by `origin`, and record
    /// it if it is to be applied.
    pub fn offer(&mut self, key: &[u8], stamp: u64, origin: u64) -> Verdict {
        let (set, fp) = self.locate(key);
        let floor = self.floors[set];
        let ways = &mut self.slots[set];
        if let Some(s) = ways.iter_mut().find(|s| s[FP] == fp) {
            if newer(stamp, origin, s[STAMP], s[ORIGIN]) {
                (s[STAMP], s[ORIGIN]) = (stamp, origin);
                return Verdict::Apply;
            }
            return Verdict::Superseded;
        }
        if stamp <= floor {
            return Verdict::Stale;
        }
        self.insert(set, fp, stamp, origin);
        Verdict::Apply
    }

    /// Note an event that already happened here: recorded unless a newer
    /// one is known (a record this instance already applied). The entry it
    /// found, if any.
    pub fn note(&mut self, key: &[u8], stamp: u64, origin: u64) -> Option<(u64, u64)> {
        let (set, fp) = self.locate(key);
        let ways = &mut self.slots[set];
        if let Some(s) = ways.iter_mut().find(|s| s[FP] == fp) {
            let prev = (s[STAMP], s[ORIGIN]);
            if newer(stamp, origin, s[STAMP], s[ORIGIN]) {
                (s[STAMP], s[ORIGIN]) = (stamp, origin);
            }
            return Some(prev);
        }
        self.insert(set, fp, stamp, origin);
        None
    }

    /// The latest (stamp, sender) known for `key`.
    pub fn get(&self, key: &[u8]) -> Option<(u64, u64)> {
        let (set, fp) = self.locate(key);
        self.slots[set]
            .iter()
            .find(|s| s[FP] == fp)
            .map(|s| (s[STAMP], s[ORIGIN]))
    }

    fn insert(&mut self, set: usize, fp: u64, stamp: u64, origin: u64) {
        let ways = &mut self.slots[set];
        // An empty slot, or else the oldest entry, whose stamp becomes the
        // set's floor.
        let victim = match ways.iter().position(|s| s[FP] == 0) {
            Some(i) => i,
            None => {
                let (i, oldest) = ways
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, s)| (s[STAMP], s[ORIGIN]))
                    .map_or((0, 0), |(i, s)| (i, s[STAMP]));
                self.floors[set] = self.floors[set].max(oldest);
                i
            }
        };
        ways[victim] = [fp, stamp, origin];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> [u8; 4] {
        n.to_be_bytes()
    }

    #[test]
    fn latest_event_wins_in_any_arrival_order() {
        let mut v = Versions::new(64);
        // A stop (stamp 20, from B) arrives before the announce it follows
        // (stamp 10, from A): the announce is refused.
        assert_eq!(v.offer(&key(1), 20, 2), Verdict::Apply);
        assert_eq!(v.offer(&key(1), 10, 1), Verdict::Superseded);
        // A newer announce is applied.
        assert_eq!(v.offer(&key(1), 30, 1), Verdict::Apply);
        // Equal stamps: the larger sender id wins everywhere; the same
        // sender's later record wins.
        assert_eq!(v.offer(&key(1), 30, 0), Verdict::Superseded);
        assert_eq!(v.offer(&key(1), 30, 1), Verdict::Apply);
        assert_eq!(v.offer(&key(1), 30, 3), Verdict::Apply);
        assert_eq!(v.get(&key(1)), Some((30, 3)));
        // A local event is noted, never lowers what is known.
        assert_eq!(v.note(&key(1), 25, 9), Some((30, 3)));
        assert_eq!(v.get(&key(1)), Some((30, 3)));
        assert_eq!(v.note(&key(1), 40, 9), Some((30, 3)));
        assert_eq!(v.note(&key(7), 1, 9), None);
        assert_eq!(v.offer(&key(1), 35, 1), Verdict::Superseded);
    }

    /// Every order of the same events ends in the same table: the property
    /// that makes instances converge.
    #[test]
    fn arrival_order_does_not_matter() {
        let events = [
            (1u32, 5u64, 1u64),
            (1, 9, 2),
            (1, 7, 3),
            (2, 3, 1),
            (2, 3, 2),
        ];
        let mut outcomes = Vec::new();
        for perm in 0..120usize {
            let mut order: Vec<_> = events.to_vec();
            // The perm-th permutation (factorial number system).
            let mut p = perm;
            for i in (1..order.len()).rev() {
                order.swap(i, p % (i + 1));
                p /= i + 1;
            }
            let mut v = Versions::new(64);
            for (k, s, o) in order {
                v.offer(&key(k), s, o);
            }
            outcomes.push((v.get(&key(1)), v.get(&key(2))));
        }
        assert!(outcomes.iter().all(|o| *o == (Some((9, 2)), Some((3, 2)))));
    }

    #[test]
    fn a_full_set_forgets_its_oldest_and_refuses_what_it_cannot_judge() {
        // One set: 8 entries.
        let mut v = Versions::new(1);
        assert_eq!(v.capacity(), WAYS);
        for k in 0..WAYS as u32 {
            assert_eq!(v.offer(&key(k), 100 + u64::from(k), 1), Verdict::Apply);
        }
        // A ninth key evicts the oldest (key 0, stamp 100).
        assert_eq!(v.offer(&key(99), 200, 1), Verdict::Apply);
        assert_eq!(v.get(&key(0)), None);
        // A record for key 0 at or below the forgotten stamp may be older
        // than an event the table forgot: refused. A newer one is applied.
        assert_eq!(v.offer(&key(0), 100, 1), Verdict::Stale);
        assert_eq!(v.offer(&key(0), 50, 1), Verdict::Stale);
        assert_eq!(v.offer(&key(0), 101, 1), Verdict::Apply);
        assert!(v.bytes() >= WAYS * 24);
    }

    #[test]
    fn keys_spread_over_the_sets() {
        let mut v = Versions::new(1 << 12);
        for k in 0..1 << 11 {
            v.offer(&key(k), 1, 1);
        }
        // Half full: with a fair hash (4 keys a set on average, Poisson)
        // about 1 % overflow their set of 8.
        let kept = (0..1 << 11).filter(|&k| v.get(&key(k)).is_some()).count();
        assert!(kept > (1 << 11) * 97 / 100, "{kept}");
    }
}
