//! One torrent's peers and counts, shaped for the long tail.
//!
//! Most torrents of a public tracker have one or two peers. Such a torrent
//! keeps them inline, in 24 bytes and no allocation: two IPv4 peers with
//! the seeder and completed counts ([`Peers::Four`]), or one IPv6 peer with
//! its role and a 16-bit completed count ([`Peers::Six`]). A torrent with a
//! third IPv4 peer, a second IPv6 peer, peers of both families, or more
//! downloads than 16 bits count, moves to a boxed [`Big`] (a [`PeerSet`] per
//! family); it moves back inline only when the expiry sweep finds it fits
//! again, not on a stop. The hysteresis keeps a torrent whose peers come and
//! go around the inline limit from allocating and freeing on the announce
//! path; the sweep (every shard at least once a minute) bounds how long a
//! shrunken torrent keeps its box.
//!
//! Guarantees: the same as [`PeerSet`]'s whatever the form: seeders first,
//! exact counts, no peer twice, positions valid until the next change.

use super::peers::{self, Peer, PeerSet, Stamp, Upserted};
use super::{Counts, Peer4, Peer6, ShardTotals};
use std::net::{IpAddr, Ipv4Addr};

/// Up to two IPv4 peers, seeders first (18 bytes, 2-aligned).
#[derive(Debug, Clone, Copy)]
pub struct Pair {
    len: u8,
    seeders: u8,
    peers: [Peer4; 2],
}

impl Pair {
    const EMPTY: Pair = Pair {
        len: 0,
        seeders: 0,
        peers: [Peer4::UNSPECIFIED; 2],
    };

    #[inline(always)]
    fn peers(&self) -> &[Peer4] {
        &self.peers[..self.len as usize]
    }

    /// [`PeerSet::refresh`] inline.
    #[inline(always)]
    fn refresh(&mut self, addr: (Ipv4Addr, u16), seeder: bool, stamp: Stamp) -> Option<Upserted> {
        let s = self.seeders as usize;
        let i = self.peers().iter().position(|p| p.addr() == addr)?;
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
        Some(Upserted {
            index,
            was: Some(was_seeder),
        })
    }

    /// [`PeerSet::insert_absent`] inline; `None` if it does not fit.
    #[inline(always)]
    fn insert(&mut self, addr: (Ipv4Addr, u16), seeder: bool, stamp: Stamp) -> Option<Upserted> {
        let n = self.len as usize;
        let s = self.seeders as usize;
        if n == 2 {
            return None;
        }
        self.peers[n] = Peer4::new(addr, stamp);
        self.len += 1;
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
        self.len -= 1;
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
        self.len = w as u8;
        self.seeders = seeders as u8;
        (s - seeders, (n - s) - (w - seeders))
    }
}

/// A torrent past the inline forms: a set per family.
#[derive(Debug, Default)]
pub struct Big {
    v4: PeerSet<Peer4>,
    v6: PeerSet<Peer6>,
    completed: u32,
}

impl Big {
    fn from_inline(p: &Peers) -> Big {
        match *p {
            Peers::Four {
                ref pair,
                completed,
            } => {
                // Room for four when a third IPv4 peer is arriving; none when
                // the torrent is empty (its first peer then needs the box).
                let mut v4 = Vec::with_capacity(if pair.len == 0 { 0 } else { 4 });
                v4.extend_from_slice(pair.peers());
                Big {
                    v4: PeerSet::from_ordered(v4, pair.seeders as usize),
                    v6: PeerSet::default(),
                    completed,
                }
            }
            Peers::Six {
                seeder,
                completed,
                peer,
            } => Big {
                v4: PeerSet::default(),
                v6: PeerSet::from_ordered(vec![peer], usize::from(seeder)),
                completed: u32::from(completed),
            },
            Peers::Big(_) => Big::default(),
        }
    }

    /// The inline form this fits in, if any: at most two IPv4 peers and no
    /// IPv6 peer, or one IPv6 peer, no IPv4 peer and a 16-bit count.
    fn to_inline(&self) -> Option<Peers> {
        match (self.v4.peers(), self.v6.peers()) {
            (v4, []) if v4.len() <= 2 => {
                let mut pair = Pair {
                    len: v4.len() as u8,
                    seeders: self.v4.seeders() as u8,
                    ..Pair::EMPTY
                };
                pair.peers[..v4.len()].copy_from_slice(v4);
                Some(Peers::Four {
                    pair,
                    completed: self.completed,
                })
            }
            ([], &[peer]) => Some(Peers::Six {
                seeder: self.v6.seeders() == 1,
                completed: u16::try_from(self.completed).ok()?,
                peer,
            }),
            _ => None,
        }
    }
}

/// A torrent's peers, in the form that fits them (see the module docs).
///
/// `repr(u8)`: each variant is laid out as a C struct of the one-byte tag
/// and its fields in order, so both inline forms fill 24 bytes exactly
/// (tag, pair, count; tag, role, count, peer) and the box needs no niche
/// (the size test checks it).
#[derive(Debug)]
#[repr(u8)]
pub enum Peers {
    /// Up to two IPv4 peers and the completed count.
    Four {
        pair: Pair,
        completed: u32,
    },
    /// One IPv6 peer, whether it is a seeder, and the completed count while
    /// it fits 16 bits.
    Six {
        seeder: bool,
        completed: u16,
        peer: Peer6,
    },
    Big(Box<Big>),
}

impl Peers {
    /// No peer, and `completed` downloads.
    const fn empty(completed: u32) -> Peers {
        Peers::Four {
            pair: Pair::EMPTY,
            completed,
        }
    }
}

/// One torrent. Opaque outside the swarm.
#[derive(Debug)]
pub struct Torrent {
    peers: Peers,
}

impl Default for Torrent {
    fn default() -> Self {
        Torrent {
            peers: Peers::empty(0),
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
    /// This family's peers of an inline torrent, and how many are seeders
    /// (none for a boxed one).
    fn inline(p: &Peers) -> (&[Self], usize);
    /// [`PeerSet::refresh`] in an inline torrent; `None`: not there (or
    /// the torrent is boxed).
    fn refresh_inline(
        p: &mut Peers,
        addr: &Self::Addr,
        seeder: bool,
        stamp: Stamp,
    ) -> Option<Upserted>;
    /// Whether a new peer of this family fits an inline torrent.
    fn fits_inline(p: &Peers) -> bool;
    /// [`PeerSet::insert_absent`] into an inline torrent; `None`: it does
    /// not fit (or the torrent is boxed).
    fn insert_inline(
        p: &mut Peers,
        addr: Self::Addr,
        seeder: bool,
        stamp: Stamp,
    ) -> Option<Upserted>;
    /// [`PeerSet::remove`] from an inline torrent.
    fn remove_inline(p: &mut Peers, addr: &Self::Addr) -> Option<bool>;
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
    #[inline(always)]
    fn inline(p: &Peers) -> (&[Self], usize) {
        match p {
            Peers::Four { pair, .. } => (pair.peers(), pair.seeders as usize),
            _ => (&[], 0),
        }
    }
    #[inline(always)]
    fn refresh_inline(
        p: &mut Peers,
        addr: &Self::Addr,
        seeder: bool,
        stamp: Stamp,
    ) -> Option<Upserted> {
        match p {
            Peers::Four { pair, .. } => pair.refresh(*addr, seeder, stamp),
            _ => None,
        }
    }
    fn fits_inline(p: &Peers) -> bool {
        matches!(p, Peers::Four { pair, .. } if pair.len < 2)
    }
    #[inline(always)]
    fn insert_inline(
        p: &mut Peers,
        addr: Self::Addr,
        seeder: bool,
        stamp: Stamp,
    ) -> Option<Upserted> {
        match p {
            Peers::Four { pair, .. } => pair.insert(addr, seeder, stamp),
            _ => None,
        }
    }
    fn remove_inline(p: &mut Peers, addr: &Self::Addr) -> Option<bool> {
        match p {
            Peers::Four { pair, .. } => pair.remove(addr),
            _ => None,
        }
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
    #[inline(always)]
    fn inline(p: &Peers) -> (&[Self], usize) {
        match p {
            Peers::Six { seeder, peer, .. } => (std::slice::from_ref(peer), usize::from(*seeder)),
            _ => (&[], 0),
        }
    }
    #[inline(always)]
    fn refresh_inline(
        p: &mut Peers,
        addr: &Self::Addr,
        seeder: bool,
        stamp: Stamp,
    ) -> Option<Upserted> {
        match p {
            Peers::Six {
                seeder: was, peer, ..
            } if peer.addr() == *addr => {
                peer.set_stamp(stamp);
                let before = *was;
                *was = seeder;
                Some(Upserted {
                    index: 0,
                    was: Some(before),
                })
            }
            _ => None,
        }
    }
    fn fits_inline(p: &Peers) -> bool {
        // An empty torrent takes its first IPv6 peer inline if its count fits.
        matches!(p, Peers::Four { pair, completed } if pair.len == 0 && *completed <= u32::from(u16::MAX))
    }
    #[inline(always)]
    fn insert_inline(
        p: &mut Peers,
        addr: Self::Addr,
        seeder: bool,
        stamp: Stamp,
    ) -> Option<Upserted> {
        match *p {
            Peers::Four { pair, completed } if pair.len == 0 => {
                let completed = u16::try_from(completed).ok()?;
                *p = Peers::Six {
                    seeder,
                    completed,
                    peer: Peer6::new(addr, stamp),
                };
                Some(Upserted {
                    index: 0,
                    was: None,
                })
            }
            _ => None,
        }
    }
    fn remove_inline(p: &mut Peers, addr: &Self::Addr) -> Option<bool> {
        match *p {
            Peers::Six {
                seeder,
                completed,
                peer,
            } if peer.addr() == *addr => {
                *p = Peers::empty(u32::from(completed));
                Some(seeder)
            }
            _ => None,
        }
    }
}

impl Torrent {
    #[inline(always)]
    pub(super) fn counts(&self) -> Counts {
        match &self.peers {
            Peers::Four { pair, completed } => Counts {
                seeders: u32::from(pair.seeders),
                leechers: u32::from(pair.len - pair.seeders),
                completed: *completed,
            },
            Peers::Six {
                seeder, completed, ..
            } => Counts {
                seeders: u32::from(*seeder),
                leechers: u32::from(!*seeder),
                completed: u32::from(*completed),
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
            Peers::Four { pair, .. } => pair.len == 0,
            Peers::Six { .. } => false,
            Peers::Big(b) => b.v4.is_empty() && b.v6.is_empty(),
        }
    }

    /// Whether the torrent lives in the boxed form.
    #[cfg(test)]
    pub(super) fn is_big(&self) -> bool {
        matches!(self.peers, Peers::Big(_))
    }

    /// Which form the torrent is in: 0 two IPv4 inline, 1 one IPv6 inline,
    /// 2 boxed.
    #[cfg(test)]
    fn form(&self) -> usize {
        match self.peers {
            Peers::Four { .. } => 0,
            Peers::Six { .. } => 1,
            Peers::Big(_) => 2,
        }
    }

    /// The completed count.
    pub(super) fn completed(&self) -> u32 {
        self.counts().completed
    }

    /// Set the completed count; an IPv6 torrent whose count no longer fits
    /// its inline 16 bits is boxed.
    fn store_completed(&mut self, n: u32) {
        match &mut self.peers {
            Peers::Four { completed, .. } => *completed = n,
            Peers::Big(b) => b.completed = n,
            Peers::Six { completed, .. } => match u16::try_from(n) {
                Ok(n) => *completed = n,
                Err(_) => {
                    let mut big = Big::from_inline(&self.peers);
                    big.completed = n;
                    self.peers = Peers::Big(Box::new(big));
                }
            },
        }
    }

    /// [`Torrent::insert_growth`] when the new peer also `completes` a
    /// download, counted before it is inserted: an empty torrent at 65 535
    /// downloads then no longer fits the IPv6 form, and boxes its first
    /// IPv6 peer. (Counting never allocates otherwise: the IPv4 form and the
    /// box count in 32 bits, and an IPv6-form torrent taking a new peer is
    /// boxed anyway, the same box either way.)
    pub(super) fn insert_growth_counting<P: PeerFamily>(
        &self,
        max: usize,
        completes: bool,
    ) -> usize {
        if completes
            && P::IS_V6
            && P::fits_inline(&self.peers)
            && self.completed() == u32::from(u16::MAX)
        {
            return std::mem::size_of::<Big>() + std::mem::size_of::<Peer6>();
        }
        self.insert_growth::<P>(max)
    }

    /// Heap bytes a completed count of `n` would allocate: the box of an
    /// inline IPv6 torrent whose count outgrows 16 bits, else nothing.
    pub(super) fn count_growth(&self, n: u32) -> usize {
        match self.peers {
            Peers::Six { .. } if n > u32::from(u16::MAX) => {
                std::mem::size_of::<Big>() + std::mem::size_of::<Peer6>()
            }
            _ => 0,
        }
    }

    /// The completed count after one more download.
    pub(super) fn completed_after_one(&self) -> u32 {
        self.completed().saturating_add(1)
    }

    /// Set the completed count (a warm restart restores it).
    pub(super) fn set_completed(&mut self, n: u32) {
        self.store_completed(n);
    }

    /// Count one download.
    pub(super) fn add_completed(&mut self) {
        let c = self.completed();
        self.store_completed(c.saturating_add(1));
    }

    /// Family `P`'s peers, seeders first, and how many are seeders.
    #[inline(always)]
    pub(super) fn peers<P: PeerFamily>(&self) -> (&[P], usize) {
        match &self.peers {
            Peers::Big(b) => (P::set(b).peers(), P::set(b).seeders()),
            inline => P::inline(inline),
        }
    }

    pub(super) fn contains<P: PeerFamily>(
        &self,
        addr: &P::Addr,
        hasher: &ahash::RandomState,
    ) -> bool {
        match &self.peers {
            Peers::Big(b) => P::set(b).contains(addr, hasher),
            inline => P::inline(inline).0.iter().any(|p| p.addr() == *addr),
        }
    }

    /// Insert or refresh a peer ([`PeerSet::upsert`], vectors grown to at
    /// most `max` peers' room), boxing the torrent if the peer does not fit
    /// inline.
    #[cfg(test)]
    pub(super) fn upsert<P: PeerFamily>(
        &mut self,
        addr: P::Addr,
        seeder: bool,
        stamp: Stamp,
        max: usize,
        hasher: &ahash::RandomState,
    ) -> Upserted {
        match self.refresh::<P>(&addr, seeder, stamp, hasher) {
            Some(u) => u,
            None => self.insert_absent::<P>(addr, seeder, stamp, max, hasher),
        }
    }

    /// Refresh a known peer ([`PeerSet::refresh`]); `None` if it is not
    /// here. Inlined for the inline forms (the long tail's re-announce is a
    /// few compares and a store); the boxed form is a call.
    #[inline(always)]
    pub(super) fn refresh<P: PeerFamily>(
        &mut self,
        addr: &P::Addr,
        seeder: bool,
        stamp: Stamp,
        hasher: &ahash::RandomState,
    ) -> Option<Upserted> {
        match &mut self.peers {
            Peers::Big(b) => P::set_mut(b).refresh(addr, seeder, stamp, hasher),
            inline => P::refresh_inline(inline, addr, seeder, stamp),
        }
    }

    /// Add a peer that is not here ([`PeerSet::insert_absent`], vectors
    /// grown to at most `max` peers' room), boxing the torrent if it does
    /// not fit inline. Inlined for the inline forms; the boxed form is a call.
    #[inline(always)]
    pub(super) fn insert_absent<P: PeerFamily>(
        &mut self,
        addr: P::Addr,
        seeder: bool,
        stamp: Stamp,
        max: usize,
        hasher: &ahash::RandomState,
    ) -> Upserted {
        if let Some(u) = P::insert_inline(&mut self.peers, addr, seeder, stamp) {
            return u;
        }
        self.insert_boxed::<P>(addr, seeder, stamp, max, hasher)
    }

    /// [`Torrent::insert_absent`] of a peer that does not fit inline: box
    /// the torrent if it is not yet.
    #[inline(never)]
    fn insert_boxed<P: PeerFamily>(
        &mut self,
        addr: P::Addr,
        seeder: bool,
        stamp: Stamp,
        max: usize,
        hasher: &ahash::RandomState,
    ) -> Upserted {
        if !matches!(self.peers, Peers::Big(_)) {
            self.peers = Peers::Big(Box::new(Big::from_inline(&self.peers)));
        }
        match &mut self.peers {
            Peers::Big(b) => P::set_mut(b).insert_absent(addr, seeder, stamp, max, hasher),
            // Unreachable: boxed just above.
            _ => Upserted {
                index: 0,
                was: None,
            },
        }
    }

    /// Heap bytes [`Torrent::insert_absent`] of a peer of family `P` would
    /// allocate with the same `max`: nothing inline, the box and its first
    /// vectors when it leaves the inline forms, a vector's or an index's
    /// growth when boxed. Exact: the memory budget grants it before.
    pub(super) fn insert_growth<P: PeerFamily>(&self, max: usize) -> usize {
        match &self.peers {
            Peers::Big(b) => P::set(b).insert_growth(max),
            inline if P::fits_inline(inline) => 0,
            inline => {
                // What `Big::from_inline` allocates (each family's length
                // and room), then the insert into `P`'s set.
                let (v4, v6) = match inline {
                    Peers::Four { pair, .. } if pair.len == 0 => ((0, 0), (0, 0)),
                    Peers::Four { pair, .. } => ((pair.len as usize, 4), (0, 0)),
                    _ => ((0, 0), (1, 1)),
                };
                let (len, cap) = if P::IS_V6 { v6 } else { v4 };
                let grown = peers::vec_capacity_after_insert(len, cap, max);
                std::mem::size_of::<Big>()
                    + v4.1 * std::mem::size_of::<Peer4>()
                    + v6.1 * std::mem::size_of::<Peer6>()
                    + (grown - cap) * std::mem::size_of::<P>()
            }
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
            Peers::Big(b) => P::set_mut(b).remove(addr, hasher),
            inline => P::remove_inline(inline, addr),
        }
    }

    /// Drop stale peers ([`PeerSet::expire`]) of both families; returns
    /// (seeders, leechers) removed of IPv4 and of IPv6. A torrent left small
    /// enough moves back inline.
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
            Peers::Four { pair, .. } => (pair.expire_by(keep), (0, 0)),
            &mut Peers::Six {
                seeder,
                completed,
                peer,
            } => {
                if keep(peer.stamp()) {
                    return ((0, 0), (0, 0));
                }
                self.peers = Peers::empty(u32::from(completed));
                ((0, 0), (usize::from(seeder), usize::from(!seeder)))
            }
            Peers::Big(b) => {
                let r4 = b.v4.expire_by(keep, hasher);
                let r6 = b.v6.expire_by(keep, hasher);
                if let Some(inline) = b.to_inline() {
                    self.peers = inline;
                }
                (r4, r6)
            }
        }
    }

    /// Peers of both families.
    pub(super) fn len(&self) -> usize {
        match &self.peers {
            Peers::Four { pair, .. } => pair.len as usize,
            Peers::Six { .. } => 1,
            Peers::Big(b) => b.v4.len() + b.v6.len(),
        }
    }

    /// The stalest peer of either family and its age at `now` (see
    /// [`PeerSet::stalest`]: exact for small sets, sampled with `rng` for big ones).
    pub(super) fn stalest(&self, now: Stamp, rng: &mut u64) -> Option<(IpAddr, u16, i32)> {
        let (v4, v6) = match &self.peers {
            Peers::Four { pair, .. } => (peers::stalest(pair.peers(), now, rng), None),
            Peers::Six { peer, .. } => (None, peers::stalest(std::slice::from_ref(peer), now, rng)),
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
        let (v4, v6) = (self.peers::<Peer4>().0, self.peers::<Peer6>().0);
        for s in v4.iter().map(Peer::stamp).chain(v6.iter().map(Peer::stamp)) {
            f(peers::age(now, s));
        }
    }

    /// Heap bytes the torrent owns (requested sizes, as the allocator is asked).
    pub(super) fn heap_bytes(&self) -> usize {
        match &self.peers {
            Peers::Big(b) => std::mem::size_of::<Big>() + b.v4.heap_bytes() + b.v6.heap_bytes(),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests;
