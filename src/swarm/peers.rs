//! The peers of one torrent in one address family: a dense vector, seeders first.
//!
//! Layout: `peers[..seeders]` are seeders, `peers[seeders..]` leechers. That gives
//! exact counts for free, lets a seeder be sent leechers only by sampling a
//! sub-slice, and makes random sampling an index walk over contiguous memory.
//!
//! Small swarms (most of them) are found by a linear scan of a few cache lines.
//! Once a swarm grows past [`INDEX_AT`] peers, an open-addressing table of `u32`
//! positions (linear probing, backward-shift deletion) is built beside it, so a
//! lookup stays O(1) while a peer costs 8 bytes plus about 8 bytes of table.
//!
//! A peer is identified by its address and port, as opentracker does: a BEP 15
//! tracker has no use for the peer id, and storing it would triple the size.

use std::net::{Ipv4Addr, Ipv6Addr};

/// A peer's last announce time, as the low 16 bits of the tracker clock in seconds.
/// Ages are signed 16-bit differences, exact while every stamp of a shard is
/// less than 32768 s old: the control thread sweeps every shard at least once a
/// minute, the swarm caps the peer timeout to leave room for that, and a
/// shard swept too late for its stamps to be trusted is emptied rather than
/// read wrong (see `Swarm::expire_shard`). 2 bytes a peer instead of 4.
pub type Stamp = u16;

/// Above this many peers a swarm gets a hash index; below half of it the index is dropped.
pub const INDEX_AT: usize = 32;

/// What a stored peer must offer the swarm: identity, time stamp, keyed hashing.
pub trait Peer: Copy + std::fmt::Debug + Send + 'static {
    /// The peer's address and port, as the network gives it.
    type Addr: Copy + Eq + std::fmt::Debug;
    fn new(addr: Self::Addr, stamp: Stamp) -> Self;
    fn addr(&self) -> Self::Addr;
    fn stamp(&self) -> Stamp;
    fn set_stamp(&mut self, stamp: Stamp);
    /// Bytes that identify the peer, for the keyed index hash.
    fn hash_key(addr: &Self::Addr, hasher: &ahash::RandomState) -> u64;
    /// The address as a family-neutral pair.
    fn socket_addr(addr: &Self::Addr) -> (std::net::IpAddr, u16);
}

/// An IPv4 peer: 8 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer4 {
    ip: [u8; 4],
    port: u16,
    stamp: Stamp,
}

/// An IPv6 peer: 20 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer6 {
    ip: [u8; 16],
    port: u16,
    stamp: Stamp,
}

/// `Peer4` and `Peer6` differ only in their address type.
macro_rules! impl_peer {
    ($peer:ty, $ip:ty) => {
        impl Peer for $peer {
            type Addr = ($ip, u16);
            fn new((ip, port): Self::Addr, stamp: Stamp) -> Self {
                Self {
                    ip: ip.octets(),
                    port,
                    stamp,
                }
            }
            fn addr(&self) -> Self::Addr {
                (<$ip>::from(self.ip), self.port)
            }
            fn stamp(&self) -> Stamp {
                self.stamp
            }
            fn set_stamp(&mut self, stamp: Stamp) {
                self.stamp = stamp;
            }
            fn hash_key((ip, port): &Self::Addr, hasher: &ahash::RandomState) -> u64 {
                hasher.hash_one((ip.to_bits(), *port))
            }
            fn socket_addr((ip, port): &Self::Addr) -> (std::net::IpAddr, u16) {
                ((*ip).into(), *port)
            }
        }
    };
}

impl_peer!(Peer4, Ipv4Addr);
impl_peer!(Peer6, Ipv6Addr);

impl Peer4 {
    /// 0.0.0.0:0, stamp 0: what an unused inline slot holds.
    pub const UNSPECIFIED: Peer4 = Peer4 {
        ip: [0; 4],
        port: 0,
        stamp: 0,
    };
}

/// Where an announce left a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upserted {
    /// Its position after the update (skip it when sampling).
    pub index: usize,
    /// Whether it was known before, and as a seeder.
    pub was: Option<bool>,
}

/// The peers of one torrent in one family. See the module docs for the layout.
#[derive(Debug)]
pub struct PeerSet<P> {
    peers: Vec<P>,
    seeders: u32,
    index: Option<Box<Index>>,
}

impl<P> Default for PeerSet<P> {
    fn default() -> Self {
        PeerSet {
            peers: Vec::new(),
            seeders: 0,
            index: None,
        }
    }
}

/// Whether a peer stamped `stamp` is still fresh at `now` with `timeout`
/// (`None`: nobody is). Signed age: a stamp a second or two ahead of `now`
/// (written by a worker whose clock turn started later) is fresh, not 65535
/// seconds old. The timeout is capped below 32768 so the comparison stays exact.
pub fn is_fresh(now: Stamp, timeout: Option<u16>, stamp: Stamp) -> bool {
    timeout.is_some_and(|t| (now.wrapping_sub(stamp) as i16) <= t as i16)
}

impl<P: Peer> PeerSet<P> {
    /// A set of `peers`, seeders first, of which the first `seeders` are
    /// seeders; small enough to need no index.
    pub fn from_ordered(peers: Vec<P>, seeders: usize) -> Self {
        debug_assert!(seeders <= peers.len() && peers.len() <= INDEX_AT);
        PeerSet {
            peers,
            seeders: seeders as u32,
            index: None,
        }
    }

    pub fn len(&self) -> usize {
        self.peers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    pub fn seeders(&self) -> usize {
        self.seeders as usize
    }

    pub fn leechers(&self) -> usize {
        self.peers.len() - self.seeders as usize
    }

    pub fn peers(&self) -> &[P] {
        &self.peers
    }

    /// Heap bytes held (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        self.peers.capacity() * std::mem::size_of::<P>()
            + self
                .index
                .as_ref()
                .map_or(0, |i| std::mem::size_of::<Index>() + i.slots.len() * SLOT)
    }

    pub fn contains(&self, addr: &P::Addr, hasher: &ahash::RandomState) -> bool {
        self.find(addr, hasher).is_some()
    }

    fn find(&self, addr: &P::Addr, hasher: &ahash::RandomState) -> Option<usize> {
        match &self.index {
            None => self.peers.iter().position(|p| p.addr() == *addr),
            Some(index) => index
                .find(P::hash_key(addr, hasher), |i| self.peers[i].addr() == *addr)
                .map(|(_, i)| i),
        }
    }

    /// Swap two positions, keeping the index in step.
    fn swap(&mut self, a: usize, b: usize, hasher: &ahash::RandomState) {
        if a == b {
            return;
        }
        if let Some(index) = &mut self.index {
            let ha = P::hash_key(&self.peers[a].addr(), hasher);
            let hb = P::hash_key(&self.peers[b].addr(), hasher);
            index.replace(ha, a, b);
            index.replace(hb, b, a);
        }
        self.peers.swap(a, b);
    }

    /// Insert or refresh a peer; move it across the seeder boundary if its role changed.
    /// The vector never grows past `max` peers' room (the per-torrent cap: a
    /// torrent at it replaces a peer instead of adding one, so doubling past it
    /// would only be slack).
    pub fn upsert(
        &mut self,
        addr: P::Addr,
        seeder: bool,
        stamp: Stamp,
        max: usize,
        hasher: &ahash::RandomState,
    ) -> Upserted {
        match self.find(&addr, hasher) {
            Some(i) => self.refresh_at(i, seeder, stamp, hasher),
            None => self.insert_absent(addr, seeder, stamp, max, hasher),
        }
    }

    /// Refresh a known peer (its stamp, its role); `None` if it is not here.
    pub fn refresh(
        &mut self,
        addr: &P::Addr,
        seeder: bool,
        stamp: Stamp,
        hasher: &ahash::RandomState,
    ) -> Option<Upserted> {
        let i = self.find(addr, hasher)?;
        Some(self.refresh_at(i, seeder, stamp, hasher))
    }

    fn refresh_at(
        &mut self,
        i: usize,
        seeder: bool,
        stamp: Stamp,
        hasher: &ahash::RandomState,
    ) -> Upserted {
        let s = self.seeders as usize;
        self.peers[i].set_stamp(stamp);
        let was_seeder = i < s;
        let index = match (was_seeder, seeder) {
            (false, true) => {
                self.swap(i, s, hasher);
                self.seeders += 1;
                s
            }
            (true, false) => {
                self.swap(i, s - 1, hasher);
                self.seeders -= 1;
                s - 1
            }
            _ => i,
        };
        Upserted {
            index,
            was: Some(was_seeder),
        }
    }

    /// Add a peer that is not in the set (as [`PeerSet::upsert`] would).
    pub fn insert_absent(
        &mut self,
        addr: P::Addr,
        seeder: bool,
        stamp: Stamp,
        max: usize,
        hasher: &ahash::RandomState,
    ) -> Upserted {
        debug_assert!(self.find(&addr, hasher).is_none());
        let s = self.seeders as usize;
        let i = self.peers.len();
        if self.peers.capacity() == 0 {
            // A set's first peer gets a vector of one, not the four a
            // push would allocate: a one-peer set costs one peer.
            self.peers.reserve_exact(1);
        } else if i == self.peers.capacity() && i * 2 > max {
            // Near the cap: grow to it exactly, not to twice the length.
            self.peers.reserve_exact(max.max(i + 1) - i);
        }
        self.peers.push(P::new(addr, stamp));
        match &mut self.index {
            Some(index) => index.insert(P::hash_key(&addr, hasher), i, &self.peers, hasher),
            None if self.peers.len() > INDEX_AT => self.rebuild_index(hasher),
            None => {}
        }
        let index = if seeder {
            self.swap(i, s, hasher);
            self.seeders += 1;
            s
        } else {
            i
        };
        Upserted { index, was: None }
    }

    /// Heap bytes [`PeerSet::insert_absent`] would allocate with the same
    /// `max`: the vector's growth and the index's (built or doubled). Exact:
    /// the memory budget grants it before the insert.
    #[inline]
    pub fn insert_growth(&self, max: usize) -> usize {
        let (len, cap) = (self.peers.len(), self.peers.capacity());
        // The common case, checked first: room in the vector and the index.
        let index_room = match &self.index {
            Some(index) => (index.len + 1) * 2 <= index.slots.len(),
            None => len < INDEX_AT,
        };
        if len < cap && index_room {
            return 0;
        }
        self.growth_past_room(max)
    }

    /// [`PeerSet::insert_growth`] when the vector or the index is full.
    #[inline(never)]
    fn growth_past_room(&self, max: usize) -> usize {
        let (len, cap) = (self.peers.len(), self.peers.capacity());
        let grown = vec_capacity_after_insert(len, cap, max);
        let vector = (grown - cap) * std::mem::size_of::<P>();
        let index = match &self.index {
            Some(index) if (index.len + 1) * 2 > index.slots.len() => index.slots.len() * SLOT,
            Some(_) => 0,
            None if len + 1 > INDEX_AT => {
                std::mem::size_of::<Index>() + index_capacity(len + 1) * SLOT
            }
            None => 0,
        };
        vector + index
    }

    /// Remove a peer; returns whether it was there, and as a seeder.
    pub fn remove(&mut self, addr: &P::Addr, hasher: &ahash::RandomState) -> Option<bool> {
        let mut i = self.find(addr, hasher)?;
        let was_seeder = i < self.seeders as usize;
        if was_seeder {
            // Move it to the last seeder slot, then shift the boundary left past it.
            let last_seeder = self.seeders as usize - 1;
            self.swap(i, last_seeder, hasher);
            self.seeders -= 1;
            i = last_seeder;
        }
        let last = self.peers.len() - 1;
        self.swap(i, last, hasher);
        if let Some(index) = &mut self.index {
            index.remove(P::hash_key(addr, hasher), last, &self.peers, hasher);
        }
        self.peers.pop();
        self.after_shrink(hasher);
        Some(was_seeder)
    }

    /// Drop every peer whose last announce is more than `timeout` seconds before `now`.
    /// Returns (seeders removed, leechers removed).
    /// `None` drops every peer (the caller cannot trust the stamps' ages).
    pub fn expire(
        &mut self,
        now: Stamp,
        timeout: Option<u16>,
        hasher: &ahash::RandomState,
    ) -> (usize, usize) {
        self.expire_by(&mut |stamp| is_fresh(now, timeout, stamp), hasher)
    }

    /// Keep the peers whose stamp `keep` accepts (asked once per peer, in
    /// order; it may keep state, as the relief's partial cut does).
    /// Returns (seeders removed, leechers removed).
    pub fn expire_by(
        &mut self,
        keep: &mut impl FnMut(Stamp) -> bool,
        hasher: &ahash::RandomState,
    ) -> (usize, usize) {
        let (n, s) = (self.peers.len(), self.seeders as usize);
        let (mut w, mut seeders) = (0, 0);
        for r in 0..n {
            if keep(self.peers[r].stamp()) {
                if w != r {
                    self.peers[w] = self.peers[r];
                }
                w += 1;
                seeders += usize::from(r < s);
            }
        }
        if w == n {
            return (0, 0);
        }
        self.seeders = seeders as u32;
        let removed_seeders = s - seeders;
        let removed_leechers = n - w - removed_seeders;
        self.peers.truncate(w);
        if self.index.is_some() {
            self.index = None;
            if self.peers.len() > INDEX_AT / 2 {
                self.rebuild_index(hasher);
            }
        }
        self.after_shrink(hasher);
        (removed_seeders, removed_leechers)
    }

    fn after_shrink(&mut self, hasher: &ahash::RandomState) {
        if self.index.is_some() && self.peers.len() < INDEX_AT / 2 {
            self.index = None;
        }
        if self.peers.capacity() > 8 && self.peers.len() < self.peers.capacity() / 4 {
            self.peers.shrink_to(self.peers.len() * 2);
            if let Some(index) = &self.index {
                if index.slots.len() > 8 * self.peers.len().max(INDEX_AT) {
                    self.rebuild_index(hasher);
                }
            }
        }
    }

    fn rebuild_index(&mut self, hasher: &ahash::RandomState) {
        let mut index = Index::with_capacity(index_capacity(self.peers.len()));
        for (i, p) in self.peers.iter().enumerate() {
            index.insert_unchecked(P::hash_key(&p.addr(), hasher), i);
        }
        self.index = Some(Box::new(index));
    }

    /// The stalest peer (the longest since its last announce) and its age in
    /// seconds at `now`: exact by a scan of a set of up to [`SCAN_AT`] peers,
    /// else the stalest of [`SAMPLES`] positions drawn from `rng` (a set that
    /// big is at its torrent's cap; sampling keeps the replacement O(1), and
    /// the stalest of 16 draws is older than about 94 % of the set on average).
    pub fn stalest(&self, now: Stamp, rng: &mut u64) -> Option<(P::Addr, i32)> {
        stalest(&self.peers, now, rng)
    }

    /// Visit up to `want` distinct peers of `range`, skipping position `skip`
    /// (see [`sample`]).
    pub fn sample(
        &self,
        range: std::ops::Range<usize>,
        skip: Option<usize>,
        want: usize,
        random: (u64, u64),
        emit: impl FnMut(&P),
    ) -> usize {
        sample(&self.peers, range, skip, want, random, emit)
    }
}

/// The capacity of a set's vector of `len` peers and `cap` room after
/// [`PeerSet::insert_absent`] with `max`: its exact reserves, then a push's
/// amortized growth (twice the room, at least four; std's rule for elements
/// of 2 to 1024 bytes).
pub fn vec_capacity_after_insert(len: usize, cap: usize, max: usize) -> usize {
    let mut c = cap;
    if c == 0 {
        c = len + 1;
    } else if len == c && len * 2 > max {
        c = max.max(len + 1);
    }
    if len + 1 > c {
        c = (2 * c).max(len + 1).max(4);
    }
    c
}

/// Slots of an index built over `len` peers: at most half full.
fn index_capacity(len: usize) -> usize {
    (len * 2).next_power_of_two().max(2 * INDEX_AT)
}

/// Bytes of one index slot (a position).
const SLOT: usize = std::mem::size_of::<u32>();

/// Sets up to this many peers are scanned whole for their stalest peer.
pub const SCAN_AT: usize = 64;
/// Positions drawn from a bigger set when looking for its stalest peer.
pub const SAMPLES: usize = 16;

/// A peer's age in seconds at `now`: signed (a stamp a second ahead reads as
/// fresh, see [`is_fresh`]), clamped to 0 from below.
pub fn age(now: Stamp, stamp: Stamp) -> i32 {
    i32::from(now.wrapping_sub(stamp) as i16).max(0)
}

/// One step of xorshift64: the victim sampling's random source, seeded from
/// the request's random words (no allocation, no shared state).
pub fn next_random(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// [`PeerSet::stalest`] over any slice of peers.
pub fn stalest<P: Peer>(peers: &[P], now: Stamp, rng: &mut u64) -> Option<(P::Addr, i32)> {
    let pick = |best: Option<(P::Addr, i32)>, p: &P| {
        let a = age(now, p.stamp());
        match best {
            Some((_, b)) if b >= a => best,
            _ => Some((p.addr(), a)),
        }
    };
    if peers.len() <= SCAN_AT {
        return peers.iter().fold(None, pick);
    }
    (0..SAMPLES).fold(None, |best, _| {
        let i = (next_random(rng) % peers.len() as u64) as usize;
        pick(best, &peers[i])
    })
}

/// Visit up to `want` distinct peers of `peers[range]`, in a random order,
/// skipping position `skip` (an index into `peers`). `random` supplies two
/// random words. Shared by the boxed sets and a torrent's inline peers.
///
/// Inlined: the long tail's announces (nobody else in the torrent, or fewer
/// than `want`) end here in a test or a short loop; only a partial draw from
/// a bigger set calls out to [`walk`].
#[inline]
pub fn sample<P>(
    peers: &[P],
    range: std::ops::Range<usize>,
    skip: Option<usize>,
    want: usize,
    random: (u64, u64),
    mut emit: impl FnMut(&P),
) -> usize {
    let slice = &peers[range.clone()];
    let n = slice.len();
    let skip = skip.filter(|s| range.contains(s)).map(|s| s - range.start);
    let available = n - usize::from(skip.is_some());
    if want == 0 || available == 0 {
        return 0;
    }
    if want >= available {
        for (i, p) in slice.iter().enumerate() {
            if Some(i) != skip {
                emit(p);
            }
        }
        return available;
    }
    walk(slice, skip, want, random, emit)
}

/// [`sample`]'s partial draw: `want` of the `slice.len()` peers, less one
/// if `skip` is set, with `want` below that.
#[inline(never)]
fn walk<P>(
    slice: &[P],
    skip: Option<usize>,
    want: usize,
    random: (u64, u64),
    mut emit: impl FnMut(&P),
) -> usize {
    let n = slice.len();
    // A walk with a random start and a random stride coprime to n visits a
    // random-looking permutation of the slice: no repeats, no allocation.
    let start = (random.0 % n as u64) as usize;
    let mut stride = 1 + (random.1 % (n as u64 - 1).max(1)) as usize;
    while gcd(stride, n) != 1 {
        stride = if stride + 1 >= n { 1 } else { stride + 1 };
    }
    let mut at = start;
    let mut emitted = 0;
    while emitted < want {
        if Some(at) != skip {
            emit(&slice[at]);
            emitted += 1;
        }
        at += stride;
        if at >= n {
            at -= n;
        }
    }
    emitted
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Open-addressing table of positions into a `PeerSet`'s vector.
#[derive(Debug)]
struct Index {
    slots: Box<[u32]>,
    len: usize,
}

const EMPTY: u32 = u32::MAX;

impl Index {
    fn with_capacity(cap: usize) -> Index {
        Index {
            slots: vec![EMPTY; cap].into_boxed_slice(),
            len: 0,
        }
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// Find the slot whose position satisfies `is_match`.
    fn find(&self, hash: u64, is_match: impl Fn(usize) -> bool) -> Option<(usize, usize)> {
        let mask = self.mask();
        let mut slot = hash as usize & mask;
        loop {
            let v = self.slots[slot];
            if v == EMPTY {
                return None;
            }
            if is_match(v as usize) {
                return Some((slot, v as usize));
            }
            slot = (slot + 1) & mask;
        }
    }

    fn insert_unchecked(&mut self, hash: u64, pos: usize) {
        let mask = self.mask();
        let mut slot = hash as usize & mask;
        while self.slots[slot] != EMPTY {
            slot = (slot + 1) & mask;
        }
        self.slots[slot] = pos as u32;
        self.len += 1;
    }

    fn insert<P: Peer>(&mut self, hash: u64, pos: usize, peers: &[P], hasher: &ahash::RandomState) {
        if (self.len + 1) * 2 > self.slots.len() {
            let mut bigger = Index::with_capacity(self.slots.len() * 2);
            for &v in self.slots.iter().filter(|&&v| v != EMPTY) {
                bigger.insert_unchecked(P::hash_key(&peers[v as usize].addr(), hasher), v as usize);
            }
            *self = bigger;
        }
        self.insert_unchecked(hash, pos);
    }

    /// The entry for the peer hashed `hash` at position `from` now points at `to`.
    fn replace(&mut self, hash: u64, from: usize, to: usize) {
        if let Some((slot, _)) = self.find(hash, |v| v == from) {
            self.slots[slot] = to as u32;
        }
    }

    /// Remove the entry pointing at `pos`, shifting later entries of the probe run back.
    fn remove<P: Peer>(&mut self, hash: u64, pos: usize, peers: &[P], hasher: &ahash::RandomState) {
        let Some((mut hole, _)) = self.find(hash, |v| v == pos) else {
            return;
        };
        let mask = self.mask();
        self.slots[hole] = EMPTY;
        self.len -= 1;
        let mut next = (hole + 1) & mask;
        while self.slots[next] != EMPTY {
            let v = self.slots[next] as usize;
            let home = P::hash_key(&peers[v].addr(), hasher) as usize & mask;
            // Move the entry back if the hole lies on its probe path (home..=next, cyclically).
            let dist_next = next.wrapping_sub(home) & mask;
            let dist_hole = hole.wrapping_sub(home) & mask;
            if dist_hole < dist_next {
                self.slots[hole] = v as u32;
                self.slots[next] = EMPTY;
                hole = next;
            }
            next = (next + 1) & mask;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn a(n: u32) -> (Ipv4Addr, u16) {
        (Ipv4Addr::from(0x0a00_0000 + n), 1000 + (n % 50) as u16)
    }

    fn check<P: Peer>(set: &PeerSet<P>, hasher: &ahash::RandomState) {
        assert!(set.seeders() <= set.len());
        for (i, p) in set.peers().iter().enumerate() {
            assert_eq!(set.find(&p.addr(), hasher), Some(i), "lookup of {p:?}");
        }
        if let Some(index) = &set.index {
            assert_eq!(index.len, set.len());
        }
    }

    #[test]
    fn sizes_stay_compact() {
        assert_eq!(std::mem::size_of::<Peer4>(), 8);
        assert_eq!(std::mem::size_of::<Peer6>(), 20);
    }

    #[test]
    fn upsert_moves_between_roles() {
        let h = ahash::RandomState::new();
        let mut set = PeerSet::<Peer4>::default();
        assert_eq!(set.upsert(a(1), false, 0, usize::MAX, &h).was, None);
        assert_eq!(set.upsert(a(2), true, 0, usize::MAX, &h).was, None);
        assert_eq!((set.seeders(), set.leechers()), (1, 1));
        let u = set.upsert(a(1), true, 5, usize::MAX, &h);
        assert_eq!(u.was, Some(false));
        assert_eq!((set.seeders(), set.leechers()), (2, 0));
        assert_eq!(set.peers()[u.index].addr(), a(1));
        assert_eq!(set.peers()[u.index].stamp(), 5);
        assert_eq!(set.upsert(a(2), false, 5, usize::MAX, &h).was, Some(true));
        assert_eq!((set.seeders(), set.leechers()), (1, 1));
        assert_eq!(set.remove(&a(1), &h), Some(true));
        assert_eq!(set.remove(&a(1), &h), None);
        assert_eq!(set.remove(&a(2), &h), Some(false));
        assert!(set.is_empty());
    }

    /// Random operations against a HashMap model, across the index threshold both ways.
    #[test]
    fn matches_a_model_through_index_growth_and_shrink() {
        let h = ahash::RandomState::new();
        let mut set = PeerSet::<Peer4>::default();
        let mut model: HashMap<(Ipv4Addr, u16), bool> = HashMap::new();
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for step in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Grow for a while, then shrink, then grow again.
            let phase = u64::from((step / 5000) % 2);
            let n = (x % 200) as u32;
            let op = (x >> 32) % 10;
            if op < 6 - phase * 4 {
                let seeder = (x >> 20) & 1 == 1;
                let was = set.upsert(a(n), seeder, 0, usize::MAX, &h).was;
                assert_eq!(was, model.insert(a(n), seeder));
            } else {
                assert_eq!(set.remove(&a(n), &h), model.remove(&a(n)));
            }
            assert_eq!(set.len(), model.len());
            assert_eq!(set.seeders(), model.values().filter(|&&s| s).count());
            if step % 97 == 0 {
                check(&set, &h);
                for (i, p) in set.peers().iter().enumerate() {
                    assert_eq!(model[&p.addr()], i < set.seeders());
                }
            }
        }
    }

    #[test]
    fn expire_keeps_fresh_and_partition() {
        let h = ahash::RandomState::new();
        let mut set = PeerSet::<Peer4>::default();
        for n in 0..100 {
            set.upsert(
                a(n),
                n % 3 == 0,
                if n % 2 == 0 { 10 } else { 100 },
                usize::MAX,
                &h,
            );
        }
        let (s0, l0) = (set.seeders(), set.leechers());
        let (rs, rl) = set.expire(150, Some(60), &h);
        assert_eq!(set.len(), 50);
        assert_eq!((s0 - rs, l0 - rl), (set.seeders(), set.leechers()));
        for (i, p) in set.peers().iter().enumerate() {
            assert_eq!(p.stamp(), 100);
            let n = u32::from(p.addr().0) - 0x0a00_0000;
            assert_eq!(n % 3 == 0, i < set.seeders());
        }
        check(&set, &h);
        // Wrapping: stamps written just before the 16-bit clock wraps are still fresh after it.
        let mut set = PeerSet::<Peer4>::default();
        set.upsert(a(1), false, 65_530, usize::MAX, &h);
        assert_eq!(set.expire(20, Some(60), &h), (0, 0));
        assert_eq!(set.expire(100, Some(60), &h), (0, 1));
        // A stamp from a worker whose turn began a second later is fresh.
        let mut set = PeerSet::<Peer4>::default();
        set.upsert(a(1), false, 1001, usize::MAX, &h);
        assert_eq!(set.expire(1000, Some(60), &h), (0, 0));
    }

    #[test]
    fn sample_is_distinct_excludes_skip_and_varies() {
        let h = ahash::RandomState::new();
        let mut set = PeerSet::<Peer4>::default();
        for n in 0..100 {
            set.upsert(a(n), false, 0, usize::MAX, &h);
        }
        let mut firsts = std::collections::HashSet::new();
        for r in 0..50u64 {
            let mut seen = Vec::new();
            let got = set.sample(0..100, Some(7), 30, (r * 7919, r * 104729 + 3), |p| {
                seen.push(p.addr())
            });
            assert_eq!(got, 30);
            assert_eq!(seen.len(), 30);
            let unique: std::collections::HashSet<_> = seen.iter().collect();
            assert_eq!(unique.len(), 30, "no repeats");
            assert!(
                !seen.contains(&set.peers()[7].addr()),
                "never the announcer"
            );
            firsts.insert(seen[0]);
        }
        assert!(firsts.len() > 10, "not the same first peers every time");
        // Asking for more than there is returns everyone but the skipped one.
        let mut all = 0;
        assert_eq!(set.sample(0..100, Some(3), 500, (1, 2), |_| all += 1), 99);
        assert_eq!(all, 99);
        // A sub-range (leechers only) never yields outside it.
        let mut count = 0;
        set.sample(40..60, None, 5, (9, 9), |p| {
            let n = u32::from(p.addr().0) - 0x0a00_0000;
            assert!((40..60).contains(&n));
            count += 1;
        });
        assert_eq!(count, 5);
        assert_eq!(set.sample(0..1, Some(0), 5, (0, 0), |_| {}), 0);
    }

    #[test]
    fn stalest_is_exact_when_small_and_old_when_sampled() {
        let h = ahash::RandomState::new();
        let mut rng = 0x1234_5678_9abc_def0;
        let mut set = PeerSet::<Peer4>::default();
        for n in 0..40u32 {
            set.upsert(a(n), n % 2 == 0, 1000 + n as u16, usize::MAX, &h);
        }
        assert_eq!(set.stalest(1100, &mut rng), Some((a(0), 100)));
        // A stamp ahead of `now` reads as age 0.
        assert_eq!(
            stalest(&[Peer4::new(a(1), 1200)], 1100, &mut rng),
            Some((a(1), 0))
        );
        // 10 000 peers stamped by number: the sampled stalest is among the
        // oldest quarter nearly always.
        let mut big = PeerSet::<Peer4>::default();
        for n in 0..10_000u32 {
            big.upsert(a(n), false, n as u16, usize::MAX, &h);
        }
        let old = (0..100)
            .filter(|_| {
                big.stalest(10_000, &mut rng)
                    .is_some_and(|(_, age)| age > 7_500)
            })
            .count();
        assert!(old >= 95, "{old} of 100 picks in the oldest quarter");
    }

    #[test]
    fn growth_stops_at_the_cap() {
        let h = ahash::RandomState::new();
        let mut set = PeerSet::<Peer4>::default();
        for n in 0..100u32 {
            set.upsert(a(n), false, 0, 100, &h);
        }
        assert_eq!(set.peers.capacity(), 100, "not 128");
        check(&set, &h);
    }
}
