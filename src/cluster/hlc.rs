//! The cluster's clock: a hybrid logical clock (Kulkarni et al., 2014) whose
//! stamps order every instance's peer events.
//!
//! A stamp is a `u64`: Unix milliseconds in the high 48 bits, a logical
//! count in the low 16. An event is stamped with the larger of the instance's
//! physical time and one more than the largest stamp it has received, so:
//! - **causality survives clock skew**: an event that happens on B after B
//!   applied A's record of an earlier event is stamped later than that
//!   record, however far B's clock lags A's. Records reach every instance
//!   within a publish period and one Redis hop (~0.1 s), so two events of one
//!   peer further apart than that are ordered right whatever the skew;
//! - **stamps stay close to real time**: with no records received, a stamp is
//!   the wall clock, so events closer together than one hop, on different
//!   instances, are ordered by the instances' clocks (right when their skew
//!   is smaller than the time between the events).
//!
//! A plain wall clock would order a stop on a lagging instance before the
//! announce it follows; a pure logical clock (Lamport) would order
//! concurrent events on different instances arbitrarily and keeps no link to
//! time, which the staleness bound ([`super::versions`]) needs.
//!
//! The physical part is the tracker's monotonic clock anchored to the wall
//! clock ([`Hlc::anchor`]), so a packet worker stamps an event from the
//! `Now` it already holds: one relaxed load of a word the subscriber writes
//! once per batch, no clock read, no lock.

use crate::time::{Clock, Now};
use std::sync::atomic::{AtomicU64, Ordering};

/// Bits of a stamp below the milliseconds.
pub const LOGICAL_BITS: u32 = 16;

/// How far ahead of this instance's wall clock a received stamp may be: one
/// further ahead comes from an instance whose clock is wrong (or a forged
/// record), is not applied, and does not move this clock.
pub const MAX_AHEAD_MS: u64 = 60_000;

/// The stamp at Unix millisecond `ms`, logical part 0.
pub const fn at_ms(ms: u64) -> u64 {
    ms << LOGICAL_BITS
}

/// The Unix millisecond of a stamp.
pub const fn ms_of(stamp: u64) -> u64 {
    stamp >> LOGICAL_BITS
}

/// Wall-clock Unix milliseconds (0 before 1970).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One instance's clock, shared by its workers (which stamp) and its
/// subscriber (which observes what it receives).
#[derive(Debug, Default)]
pub struct Hlc {
    /// Unix milliseconds at the tracker clock's zero; only ever raised (a
    /// wall clock stepped back does not make stamps go back).
    epoch_ms: AtomicU64,
    /// The largest stamp received and accepted.
    seen: AtomicU64,
}

impl Hlc {
    /// Anchor the tracker clock to the wall clock now; called at start and
    /// by the publisher on every turn, so a wall clock that NTP steps
    /// forward is followed within a publish period.
    pub fn anchor(&self, clock: &Clock) {
        self.anchor_at(unix_ms(), clock.now());
    }

    /// Anchor: tracker reading `now` happened at Unix millisecond `unix_ms`.
    pub fn anchor_at(&self, unix_ms: u64, now: Now) {
        self.epoch_ms
            .fetch_max(unix_ms.saturating_sub(now.ms()), Ordering::Relaxed);
    }

    /// The wall-clock part of a stamp taken at tracker reading `now`.
    #[inline]
    pub fn physical(&self, now: Now) -> u64 {
        at_ms(self.epoch_ms.load(Ordering::Relaxed) + now.ms())
    }

    /// The stamp of an event at tracker reading `now`: later than its
    /// physical time and than every stamp received so far.
    #[inline]
    pub fn stamp(&self, now: Now) -> u64 {
        self.physical(now)
            .max(self.seen.load(Ordering::Relaxed).saturating_add(1))
    }

    /// The stamp of an event now, from the wall clock: for the control
    /// plane (an API change), which holds no tracker reading.
    pub fn stamp_wall(&self) -> u64 {
        at_ms(unix_ms()).max(self.seen.load(Ordering::Relaxed).saturating_add(1))
    }

    /// Whether a received stamp is believable at tracker reading `now`
    /// (not more than [`MAX_AHEAD_MS`] ahead of our wall clock).
    pub fn plausible(&self, stamp: u64, now: Now) -> bool {
        stamp <= self.physical(now) + at_ms(MAX_AHEAD_MS)
    }

    /// A received stamp: later local events are stamped after it. Called by
    /// the subscriber before it applies the records that carry it.
    pub fn observe(&self, stamp: u64) {
        self.seen.fetch_max(stamp, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_follow_the_wall_clock_and_what_was_received() {
        let hlc = Hlc::default();
        hlc.anchor_at(1_000_000, Now::from_ms(500));
        let t0 = hlc.stamp(Now::from_ms(600));
        assert_eq!(t0, at_ms(1_000_100), "wall clock, logical 0");
        // A record from an instance 2 s ahead: our next event is after it,
        // although our own clock says it happened earlier.
        let ahead = at_ms(1_002_100) + 7;
        assert!(hlc.plausible(ahead, Now::from_ms(600)));
        hlc.observe(ahead);
        assert_eq!(hlc.stamp(Now::from_ms(650)), ahead + 1);
        // Once our clock passes it, stamps are the wall clock again.
        assert_eq!(hlc.stamp(Now::from_ms(3_000)), at_ms(1_002_500));
        assert_eq!(ms_of(hlc.stamp(Now::from_ms(3_000))), 1_002_500);
    }

    #[test]
    fn the_anchor_never_moves_back() {
        let hlc = Hlc::default();
        hlc.anchor_at(2_000_000, Now::from_ms(0));
        hlc.anchor_at(1_000_000, Now::from_ms(10));
        assert_eq!(hlc.physical(Now::from_ms(10)), at_ms(2_000_010));
        hlc.anchor_at(3_000_000, Now::from_ms(10));
        assert_eq!(hlc.physical(Now::from_ms(10)), at_ms(3_000_000));
    }

    #[test]
    fn stamps_from_far_ahead_are_implausible() {
        let hlc = Hlc::default();
        hlc.anchor_at(1_000_000, Now::from_ms(0));
        let now = Now::from_ms(0);
        assert!(hlc.plausible(at_ms(1_000_000 + MAX_AHEAD_MS), now));
        assert!(!hlc.plausible(at_ms(1_000_001 + MAX_AHEAD_MS), now));
        assert_eq!(hlc.stamp(now), at_ms(1_000_000));
        // Saturates rather than wraps.
        hlc.observe(u64::MAX);
        assert_eq!(hlc.stamp(now), u64::MAX);
    }
}
