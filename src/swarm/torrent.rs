//! One torrent's peers and counts, shaped for the long tail.
//!
//! Most torrents of a public tracker have one or two peers. Such a torrent
//! keeps them inline ([`Small`]: two IPv4 peers, the seeder count and the
//! completed count in 24 bytes, no allocation). A torrent with a third IPv4
//! peer or any IPv6 peer moves to a boxed [`Big`] (a [`PeerSet`] per family);
//! it moves back inline only when the expiry sweep finds it down to two IPv4
//! peers or fewer and no IPv6 peer, not on a stop. The hysteresis keeps a
//! torrent whose peers come and go around three from allocating and freeing
//! on the announce path; the sweep (every shard at least once a minute)
//! bounds how long a shrunken torrent keeps its box.
//!
//! Guarantees: the same as [`PeerSet`]'s whatever the form: seeders first,
//! exact counts, no peer twice, positions valid until the next change.

use super::peers::{self, Peer, PeerSet, Stamp, Upserted};
use super::{Counts, Peer4, Peer6, ShardTotals};
use std::net::{IpAddr, Ipv4Addr};

/// How many inline peers are in use. An enum, not a `u8`, so its unused
/// values are a niche that stores the [`Torrent`]'s variant for free (24
/// bytes instead of 32).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(u8)]
enum Len {
    #[default]
    Zero = 0,
    One = 1,
    Two = 2,
}

impl Len {
    fn of(n: usize) -> Len {
        match n {
            0 => Len::Zero,
            1 => Len::One,
            _ => Len::Two,
        }
    }
}

/// Up to two IPv4 peers, seeders first, and the completed count.
#[derive(Debug, Clone, Copy)]
pub struct Small {
    completed: u32,
    len: Len,
    seeders: u8,
    peers: [Peer4; 2],
}

impl Default for Small {
    fn default() -> Self {
        let none = Peer4::new((Ipv4Addr::UNSPECIFIED, 0), 0);
        Small {
            completed: 0,
            len: Len::Zero,
            seeders: 0,
            peers: [none; 2],
        }
    }
}

impl Small {
    fn peers(&self) -> &[Peer4] {
        &self.peers[..self.len as usize]
    }

    /// [`PeerSet::upsert`] inline; `None` if a new peer does not fit.
    #[inline]
    fn upsert(&mut self, addr: (Ipv4Addr, u16), seeder: bool, stamp: Stamp) -> Option<Upserted> {
        let n = self.len as usize;
        let s = self.seeders as usize;
        if let Some(i) = self.peers().iter().position(|p| p.addr() == addr) {
            self.peers[i].set_stamp(stamp);
            let was_seeder = i < s;
            let index = match (was_seeder, seeder) {
                (false, true) => {
                    self.peers.swap(i, s);
                    self.seeders += 1;
                    s
                }
                (true, false) => {
                    self.peers.swap(i, s - 1);
                    self.seeders -= 1;
                    s - 1
                }
                _ => i,
            };
            return Some(Upserted {
                index,
                was: Some(was_seeder),
            });
        }
        if n == 2 {
            return None;
        }
        self.peers[n] = Peer4::new(addr, stamp);
        self.len = Len::of(n + 1);
        let index = if seeder {
            self.peers.swap(n, s);
            self.seeders += 1;
            s
        } else {
            n
        };
        Some(Upserted { index, was: None })
    }

    /// [`PeerSet::remove`] inline.
    fn remove(&mut self, addr: &(Ipv4Addr, u16)) -> Option<bool> {
        let mut i = self.peers().iter().position(|p| p.addr() == *addr)?;
        let s = self.seeders as usize;
        let was_seeder = i < s;
        if was_seeder {
            self.peers.swap(i, s - 1);
            self.seeders -= 1;
            i = s - 1;
        }
        let last = self.len as usize - 1;
        self.peers.swap(i, last);
        self.len = Len::of(last);
        Some(was_seeder)
    }

    /// [`PeerSet::expire_by`] inline.
    fn expire_by(&mut self, keep: &mut impl FnMut(Stamp) -> bool) -> (usize, usize) {
        let (n, s) = (self.len as usize, self.seeders as usize);
        let (mut w, mut seeders) = (0, 0);
        for r in 0..n {
            if keep(self.peers[r].stamp()) {
                self.peers[w] = self.peers[r];
                w += 1;
                seeders += usize::from(r < s);
            }
        }
        self.len = Len::of(w);
        self.seeders = seeders as u8;
        (s - seeders, (n - s) - (w - seeders))
    }
}

/// A torrent past the inline form: a set per family.
#[derive(Debug, Default)]
pub struct Big {
    v4: PeerSet<Peer4>,
    v6: PeerSet<Peer6>,
    completed: u32,
}

impl Big {
    fn from_small(s: &Small) -> Big {
        // Room for four when a third IPv4 peer is arriving; none when the
        // torrent is new and its first peer is IPv6.
        let mut v4 = Vec::with_capacity(if s.len == Len::Zero { 0 } else { 4 });
        v4.extend_from_slice(s.peers());
        Big {
            v4: PeerSet::from_ordered(v4, s.seeders as usize),
            v6: PeerSet::default(),
            completed: s.completed,
        }
    }

    /// The inline form, if this fits in it (`max` IPv4 peers, no IPv6 peer).
    fn to_small(&self, max: usize) -> Option<Small> {
        if !self.v6.is_empty() || self.v4.len() > max.min(2) {
            return None;
        }
        let mut s = Small {
            completed: self.completed,
            len: Len::of(self.v4.len()),
            seeders: self.v4.seeders() as u8,
            ..Small::default()
        };
        s.peers[..self.v4.len()].copy_from_slice(self.v4.peers());
        Some(s)
    }
}

#[derive(Debug)]
enum Peers {
    Small(Small),
    Big(Box<Big>),
}

/// One torrent. Opaque outside the swarm.
#[derive(Debug)]
pub struct Torrent {
    peers: Peers,
}

impl Default for Torrent {
    fn default() -> Self {
        Torrent {
            peers: Peers::Small(Small::default()),
        }
    }
}

/// An address family as the swarm stores it: which of a torrent's peer sets
/// its peers live in, and which gauges count them. (Named apart from
/// [`crate::stats::Family`], the metrics label.)
pub trait PeerFamily: Peer {
    /// Whether this is the IPv6 family (indexes per-family arrays).
    const IS_V6: bool;
    /// Per-shard (seeders, leechers) gauges of this family.
    fn gauges(s: &mut ShardTotals) -> (&mut u64, &mut u64);
    /// This family's set of a boxed torrent.
    fn set(b: &Big) -> &PeerSet<Self>;
    fn set_mut(b: &mut Big) -> &mut PeerSet<Self>;
    /// This family's inline peers (none for IPv6).
    fn inline(s: &Small) -> &[Self];
    /// [`PeerSet::upsert`] into the inline peers; `None`: it does not fit.
    fn upsert_inline(
        s: &mut Small,
        addr: Self::Addr,
        seeder: bool,
        stamp: Stamp,
    ) -> Option<Upserted>;
    /// [`PeerSet::remove`] from the inline peers.
    fn remove_inline(s: &mut Small, addr: &Self::Addr) -> Option<bool>;
}

impl PeerFamily for Peer4 {
    const IS_V6: bool = false;
    fn gauges(s: &mut ShardTotals) -> (&mut u64, &mut u64) {
        (&mut s.seeders4, &mut s.leechers4)
    }
    fn set(b: &Big) -> &PeerSet<Self> {
        &b.v4
    }
    fn set_mut(b: &mut Big) -> &mut PeerSet<Self> {
        &mut b.v4
    }
    fn inline(s: &Small) -> &[Self] {
        s.peers()
    }
    #[inline]
    fn upsert_inline(
        s: &mut Small,
        addr: Self::Addr,
        seeder: bool,
        stamp: Stamp,
    ) -> Option<Upserted> {
        s.upsert(addr, seeder, stamp)
    }
    fn remove_inline(s: &mut Small, addr: &Self::Addr) -> Option<bool> {
        s.remove(addr)
    }
}

impl PeerFamily for Peer6 {
    const IS_V6: bool = true;
    fn gauges(s: &mut ShardTotals) -> (&mut u64, &mut u64) {
        (&mut s.seeders6, &mut s.leechers6)
    }
    fn set(b: &Big) -> &PeerSet<Self> {
        &b.v6
    }
    fn set_mut(b: &mut Big) -> &mut PeerSet<Self> {
        &mut b.v6
    }
    fn inline(_: &Small) -> &[Self] {
        &[]
    }
    fn upsert_inline(_: &mut Small, _: Self::Addr, _: bool, _: Stamp) -> Option<Upserted> {
        None
    }
    fn remove_inline(_: &mut Small, _: &Self::Addr) -> Option<bool> {
        None
    }
}

impl Torrent {
    pub(super) fn counts(&self) -> Counts {
        match &self.peers {
            Peers::Small(s) => Counts {
                seeders: u32::from(s.seeders),
                leechers: s.len as u32 - u32::from(s.seeders),
                completed: s.completed,
            },
            Peers::Big(b) => Counts {
                seeders: (b.v4.seeders() + b.v6.seeders()) as u32,
                leechers: (b.v4.leechers() + b.v6.leechers()) as u32,
                completed: b.completed,
            },
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        match &self.peers {
            Peers::Small(s) => s.len == Len::Zero,
            Peers::Big(b) => b.v4.is_empty() && b.v6.is_empty(),
        }
    }

    /// Whether the torrent lives in the boxed form.
    #[cfg(test)]
    pub(super) fn is_big(&self) -> bool {
        matches!(self.peers, Peers::Big(_))
    }

    /// Set the completed count (a warm restart restores it).
    pub(super) fn set_completed(&mut self, n: u32) {
        match &mut self.peers {
            Peers::Small(s) => s.completed = n,
            Peers::Big(b) => b.completed = n,
        }
    }

    /// Raise the completed count to at least `n` (cluster state import).
    pub(super) fn raise_completed(&mut self, n: u32) {
        let c = match &mut self.peers {
            Peers::Small(s) => &mut s.completed,
            Peers::Big(b) => &mut b.completed,
        };
        *c = (*c).max(n);
    }

    /// Count one download.
    pub(super) fn add_completed(&mut self) {
        let c = match &mut self.peers {
            Peers::Small(s) => &mut s.completed,
            Peers::Big(b) => &mut b.completed,
        };
        *c = c.saturating_add(1);
    }

    /// Family `P`'s peers, seeders first, and how many are seeders.
    pub(super) fn peers<P: PeerFamily>(&self) -> (&[P], usize) {
        match &self.peers {
            Peers::Small(s) => {
                let p = P::inline(s);
                (p, (s.seeders as usize).min(p.len()))
            }
            Peers::Big(b) => (P::set(b).peers(), P::set(b).seeders()),
        }
    }

    pub(super) fn contains<P: PeerFamily>(
        &self,
        addr: &P::Addr,
        hasher: &ahash::RandomState,
    ) -> bool {
        match &self.peers {
            Peers::Small(s) => P::inline(s).iter().any(|p| p.addr() == *addr),
            Peers::Big(b) => P::set(b).contains(addr, hasher),
        }
    }

    /// Insert or refresh a peer ([`PeerSet::upsert`], vectors grown to at
    /// most `max` peers' room), boxing the torrent if the peer does not fit
    /// inline. Inlined for the inline form (the long tail's announce is a
    /// few compares and a store); the boxed form is a call.
    #[inline]
    pub(super) fn upsert<P: PeerFamily>(
        &mut self,
        addr: P::Addr,
        seeder: bool,
        stamp: Stamp,
        max: usize,
        hasher: &ahash::RandomState,
    ) -> Upserted {
        if let Peers::Small(s) = &mut self.peers {
            if let Some(u) = P::upsert_inline(s, addr, seeder, stamp) {
                return u;
            }
        }
        self.upsert_boxed::<P>(addr, seeder, stamp, max, hasher)
    }

    /// [`Torrent::upsert`] of a peer that does not fit inline: box the
    /// torrent if it is not yet.
    #[inline(never)]
    fn upsert_boxed<P: PeerFamily>(
        &mut self,
        addr: P::Addr,
        seeder: bool,
        stamp: Stamp,
        max: usize,
        hasher: &ahash::RandomState,
    ) -> Upserted {
        if let Peers::Small(s) = &self.peers {
            self.peers = Peers::Big(Box::new(Big::from_small(s)));
        }
        match &mut self.peers {
            Peers::Big(b) => P::set_mut(b).upsert(addr, seeder, stamp, max, hasher),
            // Unreachable: boxed just above.
            Peers::Small(_) => Upserted {
                index: 0,
                was: None,
            },
        }
    }

    /// Remove a peer ([`PeerSet::remove`]). A boxed torrent stays boxed
    /// however few peers it keeps: the expiry sweep moves it back inline
    /// ([`Torrent::expire_by`]).
    pub(super) fn remove<P: PeerFamily>(
        &mut self,
        addr: &P::Addr,
        hasher: &ahash::RandomState,
    ) -> Option<bool> {
        match &mut self.peers {
            Peers::Small(s) => P::remove_inline(s, addr),
            Peers::Big(b) => P::set_mut(b).remove(addr, hasher),
        }
    }

    /// Drop stale peers ([`PeerSet::expire`]) of both families; returns
    /// (seeders, leechers) removed of IPv4 and of IPv6. A torrent left with
    /// at most two IPv4 peers and no IPv6 peer moves back inline.
    #[cfg(test)]
    pub(super) fn expire(
        &mut self,
        now: Stamp,
        timeout: Option<u16>,
        hasher: &ahash::RandomState,
    ) -> ((usize, usize), (usize, usize)) {
        self.expire_by(&mut |stamp| peers::is_fresh(now, timeout, stamp), hasher)
    }

    /// As [`Torrent::expire`], keeping the peers whose stamp `keep` accepts
    /// (asked once per peer).
    pub(super) fn expire_by(
        &mut self,
        keep: &mut impl FnMut(Stamp) -> bool,
        hasher: &ahash::RandomState,
    ) -> ((usize, usize), (usize, usize)) {
        match &mut self.peers {
            Peers::Small(s) => (s.expire_by(keep), (0, 0)),
            Peers::Big(b) => {
                let r4 = b.v4.expire_by(keep, hasher);
                let r6 = b.v6.expire_by(keep, hasher);
                if let Some(s) = b.to_small(2) {
                    self.peers = Peers::Small(s);
                }
                (r4, r6)
            }
        }
    }

    /// Peers of both families.
    pub(super) fn len(&self) -> usize {
        match &self.peers {
            Peers::Small(s) => s.len as usize,
            Peers::Big(b) => b.v4.len() + b.v6.len(),
        }
    }

    /// The stalest peer of either family and its age at `now` (see
    /// [`PeerSet::stalest`]: exact for small sets, sampled with `rng` for big ones).
    pub(super) fn stalest(&self, now: Stamp, rng: &mut u64) -> Option<(IpAddr, u16, i32)> {
        let (v4, v6) = match &self.peers {
            Peers::Small(s) => (peers::stalest(s.peers(), now, rng), None),
            Peers::Big(b) => (b.v4.stalest(now, rng), b.v6.stalest(now, rng)),
        };
        let v4 = v4.map(|((ip, port), age)| (IpAddr::V4(ip), port, age));
        let v6 = v6.map(|((ip, port), age)| (IpAddr::V6(ip), port, age));
        match (v4, v6) {
            (Some(a), Some(b)) => Some(if b.2 > a.2 { b } else { a }),
            (a, b) => a.or(b),
        }
    }

    /// Call `f` with the age at `now` of every peer (both families).
    pub(super) fn for_each_age(&self, now: Stamp, mut f: impl FnMut(i32)) {
        let mut each = |stamps: &mut dyn Iterator<Item = Stamp>| {
            for s in stamps {
                f(peers::age(now, s));
            }
        };
        match &self.peers {
            Peers::Small(s) => each(&mut s.peers().iter().map(Peer::stamp)),
            Peers::Big(b) => {
                each(&mut b.v4.peers().iter().map(Peer::stamp));
                each(&mut b.v6.peers().iter().map(Peer::stamp));
            }
        }
    }

    /// Heap bytes the torrent owns (requested sizes, as the allocator is asked).
    pub(super) fn heap_bytes(&self) -> usize {
        match &self.peers {
            Peers::Small(_) => 0,
            Peers::Big(b) => std::mem::size_of::<Big>() + b.v4.heap_bytes() + b.v6.heap_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::net::Ipv6Addr;

    #[test]
    fn inline_form_is_24_bytes() {
        assert_eq!(std::mem::size_of::<Torrent>(), 24);
    }

    fn a(n: u32) -> (Ipv4Addr, u16) {
        (Ipv4Addr::from(0x0a00_0000 + n), 6881)
    }

    /// Random upserts, removals and expiries of a few peers of both families
    /// against a model: the torrent moves between forms and never loses count.
    #[test]
    fn matches_a_model_across_forms() {
        let h = ahash::RandomState::new();
        let mut t = Torrent::default();
        let mut model: HashMap<(bool, u32), (bool, Stamp)> = HashMap::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut forms = [0usize; 2];
        let mut stop_kept_box = false;
        for step in 0..20_000u16 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = (x % 5) as u32;
            let v6 = (x >> 8).is_multiple_of(8);
            let seeder = (x >> 16) & 1 == 1;
            let now = step / 4;
            match (x >> 24) % 16 {
                0..=5 => {
                    let u = if v6 {
                        let addr = (Ipv6Addr::from(u128::from(n)), 1);
                        let u = t.upsert::<Peer6>(addr, seeder, now, usize::MAX, &h);
                        assert_eq!(t.peers::<Peer6>().0[u.index].addr(), addr);
                        u
                    } else {
                        let u = t.upsert::<Peer4>(a(n), seeder, now, usize::MAX, &h);
                        assert_eq!(t.peers::<Peer4>().0[u.index].addr(), a(n));
                        u
                    };
                    let was = model.insert((v6, n), (seeder, now)).map(|(s, _)| s);
                    assert_eq!(u.was, was);
                }
                6..=14 => {
                    let boxed = t.is_big();
                    let got = if v6 {
                        t.remove::<Peer6>(&(Ipv6Addr::from(u128::from(n)), 1), &h)
                    } else {
                        t.remove::<Peer4>(&a(n), &h)
                    };
                    assert_eq!(got, model.remove(&(v6, n)).map(|(s, _)| s));
                    assert_eq!(t.is_big(), boxed, "a stop never changes the form");
                    stop_kept_box |= boxed && got.is_some() && model.len() <= 1;
                }
                _ => {
                    let ((s4, l4), (s6, l6)) = t.expire(now, Some(3), &h);
                    if model.keys().all(|(v6, _)| !v6)
                        && model
                            .values()
                            .filter(|(_, at)| now.wrapping_sub(*at) <= 3)
                            .count()
                            <= 2
                    {
                        assert!(!t.is_big(), "the sweep moves a small torrent inline");
                    }
                    let before = model.clone();
                    model.retain(|_, (_, at)| now.wrapping_sub(*at) <= 3);
                    let gone = |fam: bool, s: bool| {
                        before
                            .iter()
                            .filter(|((f, k), (sd, _))| {
                                *f == fam && *sd == s && !model.contains_key(&(*f, *k))
                            })
                            .count()
                    };
                    assert_eq!(
                        (s4, l4, s6, l6),
                        (
                            gone(false, true),
                            gone(false, false),
                            gone(true, true),
                            gone(true, false)
                        )
                    );
                }
            }
            forms[usize::from(t.is_big())] += 1;
            let c = t.counts();
            assert_eq!(
                c.seeders as usize,
                model.values().filter(|(s, _)| *s).count()
            );
            assert_eq!((c.seeders + c.leechers) as usize, model.len());
            assert_eq!(t.is_empty(), model.is_empty());
            let (p4, s4) = t.peers::<Peer4>();
            for (i, p) in p4.iter().enumerate() {
                let n = u32::from(p.addr().0) - 0x0a00_0000;
                assert_eq!(model[&(false, n)].0, i < s4, "seeders first");
            }
        }
        assert!(
            forms[0] > 1000 && forms[1] > 1000,
            "both forms exercised: {forms:?}"
        );
        assert!(stop_kept_box, "a stop down to one peer kept the box");
    }
}
