//! The sharded in-memory swarm map: torrents, their peers, counts, expiry, and
//! the memory budget that bounds them. This file is the map's public face:
//! the types the tracker speaks in ([`Announce`], [`Counts`], [`Limits`],
//! [`Totals`]) and the [`Swarm`] methods it calls.
//!
//! Owns all tracker state. Every worker thread calls into it directly (no
//! channels): a request locks exactly one shard for the time it takes to update
//! one torrent and copy out a handful of peers, then releases it before any I/O.
//!
//! Guarantees:
//! - shards are picked by a keyed hash (random per process) of the info hash, so
//!   a client cannot aim every torrent at one hot shard, and the map inside a
//!   shard is keyed the same way against hash flooding;
//! - no socket, no parsing, no clock: `now` is always an argument;
//! - expiry is incremental: [`Swarm::expire_shard`] sweeps one shard at a time so
//!   no request waits behind a sweep of the whole map;
//! - bounded ([`Limits`]), exactly: the map accounts its own bytes (exact,
//!   per shard, on every change) and peers, and each shard reserves them
//!   from the bounds before it grows ([`budget`]), so the peers never pass
//!   `max_peers` and the bytes never pass `max_bytes` by more than
//!   [`MARGIN_BYTES`], at any instant and in any [`Swarm::totals`]. Past
//!   95 % of a bound, [`Swarm::relieve`] sweeps with a shortened timeout so
//!   the peers silent longest go first, down to about 90 %; at a bound a new
//!   peer first evicts the stalest of a few sampled peers of its own shard
//!   (of another shard if its own holds none); a torrent at its share
//!   replaces its own stalest peer. A newcomer is stored and can be found by
//!   the next announce, unless nothing could make room for it (a budget too
//!   small for its shard's first chunk): then it counts as evicted.
//!
//! # Layout
//! - `shard`: one shard, its counts and peer ids, and the changes made under
//!   its lock (store, evict, sweep);
//! - `budget`: the bounds as pools the shards reserve from, making room at
//!   a bound, totals read within the bounds; `relief`: the sweep that keeps
//!   the map below 95 %;
//! - `table`: a shard's torrents (a table of positions into packed entries);
//! - `torrent`: one torrent's peers, inline for the long tail;
//! - `peers`: one family's peer set, sampling, stamps;
//! - `export`: snapshots out and in, the cluster merge; `walk`: read-only
//!   walks for the management API.

mod budget;
mod export;
pub mod peers;
mod relief;
mod shard;
mod table;
#[cfg(test)]
mod tests;
mod torrent;
pub mod walk;

use ahash::RandomState;
pub use budget::MARGIN_BYTES;
use budget::{Budget, Reserve};
pub use export::{ExportBuf, Exported, Imported, Merged};
use parking_lot::Mutex;
pub use peers::{Peer4, Peer6};
use relief::{Relief, Thresholds, AGE_BUCKETS};
use shard::{ids_bytes, ids_wanted, lookup_id, Padded, PeerIds, Shard, ShardTotals, SharedLayout};
use std::sync::atomic::AtomicBool;
use table::Torrents;
pub use torrent::{PeerFamily, Torrent};

/// A torrent's 20-byte info hash.
pub type InfoHash = [u8; 20];

/// What an announce says about the announcing peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `left > 0`: still downloading.
    Leecher,
    /// `left == 0`: has everything.
    Seeder,
    /// `event=stopped`: leaving the swarm.
    Stopped,
}

/// Swarm counts as reported to clients (both address families together).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub seeders: u32,
    pub leechers: u32,
    /// Downloads completed (`event=completed` once per peer) since the torrent appeared.
    pub completed: u32,
}

/// Why a peer was evicted before its timeout: the `reason` label of
/// `shoal_evicted_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    /// The map was at its memory budget (`--max-memory`).
    Memory,
    /// The map was at its peer bound (`--max-peers`).
    Peers,
    /// Its torrent was at its share of the map (`--max-torrent-share`).
    Torrent,
}

impl Eviction {
    /// Number of reasons: the length of arrays indexed by this enum.
    pub const COUNT: usize = 3;
    /// Every reason, in index order.
    pub const ALL: [Eviction; Eviction::COUNT] =
        [Eviction::Memory, Eviction::Peers, Eviction::Torrent];

    /// The Prometheus label value.
    pub const fn label(self) -> &'static str {
        match self {
            Eviction::Memory => "memory",
            Eviction::Peers => "peers",
            Eviction::Torrent => "torrent_share",
        }
    }
}

/// Totals over the whole map, for metrics and the stats line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub torrents: u64,
    pub seeders4: u64,
    pub leechers4: u64,
    pub seeders6: u64,
    pub leechers6: u64,
    /// Bytes the map accounts for ([`Swarm::approx_bytes`]).
    pub bytes: u64,
    /// The byte bound (`Limits::max_bytes`, 0 = none).
    pub max_bytes: u64,
    /// Peers evicted since start, indexed by [`Eviction`].
    pub evicted: [u64; Eviction::COUNT],
}

impl Totals {
    pub fn peers(&self) -> u64 {
        self.seeders4 + self.leechers4 + self.seeders6 + self.leechers6
    }

    /// Peers evicted since start, every reason.
    pub fn evicted_total(&self) -> u64 {
        self.evicted.iter().sum()
    }
}

/// The bounds of the map. Zero means no bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes the map accounts for ([`Swarm::approx_bytes`]).
    pub max_bytes: u64,
    /// Most peers in all.
    pub max_peers: u64,
    /// Most one torrent may hold, in percent of either bound (as peers; a
    /// peer of a big torrent is taken as [`BYTES_PER_CAPPED_PEER`] bytes).
    pub torrent_share: u8,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 0,
            max_peers: 0,
            torrent_share: 10,
        }
    }
}

/// Bytes a peer of a torrent at its cap may cost: 8 (IPv4) plus its index
/// slots (4 to 16 bytes), rounded up; turns a byte share into a peer cap.
pub const BYTES_PER_CAPPED_PEER: u64 = 24;

/// Seconds a shard may go unswept before its stamps are ambiguous, at the
/// longest peer timeout: the peer timeout is capped to `32767 - SWEEP_SLACK`
/// (the control thread sweeps every shard at least once a minute).
const SWEEP_SLACK: u16 = 300;

/// A peer's 20-byte self-chosen id.
pub type PeerId = [u8; 20];

/// The map. Shared by reference between all workers.
#[derive(Debug)]
pub struct Swarm {
    shards: Box<[Padded]>,
    /// Where each shard's table is, by shard ([`SharedLayout`]).
    layouts: Box<[SharedLayout]>,
    /// The shards' in-shard keyed hash (every shard's table uses it), for
    /// [`Swarm::prefetch`].
    map_hasher: RandomState,
    /// Keyed hash for choosing a shard (independent of the in-shard map's key).
    shard_hasher: RandomState,
    /// Keyed hash for the per-torrent peer index.
    peer_hasher: RandomState,
    peer_timeout: u16,
    limits: Limits,
    /// The bounds as pools the shards reserve from ([`budget`]).
    budget: Budget,
    /// Where the relief sweep starts and stops.
    relief_at: Thresholds,
    /// Most peers one torrent holds (its share of the limits).
    max_torrent_peers: usize,
    /// The relief sweep in progress ([`Swarm::relieve`]); one caller at a time.
    relief: Mutex<Relief>,
    /// Whether a relief sweep is under way (so its caller need not take its
    /// lock each turn to find out).
    relieving: AtomicBool,
}

#[cfg(test)]
impl Swarm {
    /// Every shard's published layout is its table's.
    fn check_layouts(&self) {
        for (i, p) in self.shards.iter().enumerate() {
            assert_eq!(
                self.layouts[i].get(),
                p.lock().torrents.layout(),
                "shard {i}"
            );
        }
    }
}

/// Which torrents may be tracked (the access list), as the swarm asks it:
/// only about a torrent it does not hold, or holds with an answer from
/// another policy. Each stored torrent keeps the stamp of the policy that last
/// admitted it (in what was padding of its entry), so the re-announces and
/// scrapes of a stored torrent cost no list lookup and the list's cache lines
/// stay out of the swarm's way (with 1 M listed hashes, a lookup on every
/// announce nearly doubled an announce spread over many torrents).
pub trait Admission {
    /// `false`: everything is admitted; `stamp` and `admits` are never called.
    const CHECKS: bool = true;
    /// Identifies the policy answering: nonzero, and different for every
    /// policy in use at once (the tracker uses its reload generation).
    fn stamp(&self) -> u32;
    /// Whether the policy lets `info_hash` be tracked.
    fn admits(&self, info_hash: &InfoHash) -> bool;
}

/// No access list: every torrent is admitted, nothing is asked.
#[derive(Debug, Clone, Copy)]
pub struct Open;

impl Admission for Open {
    const CHECKS: bool = false;
    fn stamp(&self) -> u32 {
        0
    }
    fn admits(&self, _: &InfoHash) -> bool {
        true
    }
}

/// Whether a stored torrent whose admission stamp is `stamp` is admitted:
/// from the stamp while it is `adm`'s, else asked, renewing the stamp on a yes.
#[inline]
fn readmit<A: Admission>(adm: &A, info_hash: &InfoHash, stamp: &mut u32) -> bool {
    if !A::CHECKS {
        return true;
    }
    debug_assert_ne!(
        adm.stamp(),
        0,
        "0 is the stamp of entries nobody asked about"
    );
    if *stamp == adm.stamp() {
        return true;
    }
    let yes = adm.admits(info_hash);
    if yes {
        *stamp = adm.stamp();
    }
    yes
}

/// What an announce returns besides the peers it emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announced {
    pub counts: Counts,
    /// Peers passed to `emit`.
    pub peers: usize,
}

/// One announce, everything the swarm needs in one value (aquatic hands its
/// swarm the whole typed request the same way). `A` is the peer's address:
/// `(Ipv4Addr, u16)` or `(Ipv6Addr, u16)` for [`Swarm::announce`], or any
/// family-neutral form (the tracker uses `SocketAddr`) before it picks one.
#[derive(Debug, Clone, Copy)]
pub struct Announce<'a, A> {
    pub info_hash: InfoHash,
    pub addr: A,
    pub role: Role,
    /// `event=completed`: counts a download if the peer is a seeder that was not
    /// already known as one.
    pub completed: bool,
    /// Tracker seconds.
    pub now: u32,
    /// Most peers to emit.
    pub want: usize,
    /// Two random words that seed the sampling.
    pub random: (u64, u64),
    /// The peer's self-chosen id (HTTP), kept for non-compact replies; `None`
    /// over UDP, where it is not stored.
    pub peer_id: Option<&'a PeerId>,
    /// Give `emit` each emitted peer's id where one is known (`compact=0`).
    pub emit_ids: bool,
}

impl<'a, A> Announce<'a, A> {
    /// The same announce with the address in another form.
    pub fn with_addr<B>(self, addr: B) -> Announce<'a, B> {
        Announce {
            info_hash: self.info_hash,
            addr,
            role: self.role,
            completed: self.completed,
            now: self.now,
            want: self.want,
            random: self.random,
            peer_id: self.peer_id,
            emit_ids: self.emit_ids,
        }
    }
}

impl Swarm {
    /// `shards` is rounded up to a power of two. `peer_timeout` is in seconds,
    /// capped to 32467 (see [`peers::Stamp`] and [`Swarm::expire_shard`]).
    pub fn new(shards: usize, peer_timeout: u16) -> Swarm {
        let n = shards.max(1).next_power_of_two();
        let map_hasher = RandomState::new();
        let mut swarm = Swarm {
            shards: (0..n)
                .map(|_| {
                    Padded(Mutex::new(Shard {
                        torrents: Torrents::with_hasher(map_hasher.clone()),
                        totals: ShardTotals::default(),
                        peer_ids: PeerIds::with_hasher(map_hasher.clone()),
                        swept_at: 0,
                        reserve: Reserve::default(),
                    }))
                })
                .collect(),
            layouts: (0..n).map(|_| SharedLayout::default()).collect(),
            map_hasher,
            shard_hasher: RandomState::new(),
            peer_hasher: RandomState::new(),
            peer_timeout: peer_timeout.min(i16::MAX as u16 - SWEEP_SLACK),
            limits: Limits::default(),
            budget: Budget::unbounded(),
            relief_at: Thresholds::new(Limits::default(), 0),
            max_torrent_peers: usize::MAX,
            relief: Mutex::new(Relief::default()),
            relieving: AtomicBool::new(false),
        };
        swarm.set_limits(Limits::default());
        swarm
    }

    /// Bound the map (see [`Limits`]); call before the first announce.
    pub fn with_limits(mut self, limits: Limits) -> Swarm {
        self.set_limits(limits);
        self
    }

    /// Bound the map to `max_peers` peers in all (0 = no bound), global: the
    /// stalest peers make room for new ones.
    pub fn with_max_peers(self, max_peers: u64) -> Swarm {
        let limits = Limits {
            max_peers,
            ..self.limits
        };
        self.with_limits(limits)
    }

    fn set_limits(&mut self, limits: Limits) {
        let share = u64::from(limits.torrent_share.clamp(1, 100));
        let of = |max: u64, per_peer: u64| match max {
            0 => u64::MAX,
            m => (m / per_peer).saturating_mul(share) / 100,
        };
        let cap = of(limits.max_peers, 1)
            .min(of(limits.max_bytes, BYTES_PER_CAPPED_PEER))
            .clamp(1, u64::from(u32::MAX));
        self.max_torrent_peers = if limits.max_peers == 0 && limits.max_bytes == 0 {
            usize::MAX
        } else {
            cap as usize
        };
        self.limits = limits;
        let fixed = self.fixed_bytes();
        self.budget = Budget::new(limits, self.shards.len() as u64, fixed);
        self.relief_at = Thresholds::new(limits, fixed);
    }

    /// The bounds in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Most peers one torrent holds (`usize::MAX`: no bound).
    pub fn max_torrent_peers(&self) -> usize {
        self.max_torrent_peers
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Bytes of the shard array itself, of its layout words and of the
    /// relief's tallies.
    fn fixed_bytes(&self) -> u64 {
        let shard = std::mem::size_of::<Padded>() + std::mem::size_of::<SharedLayout>();
        (self.shards.len() * shard + 2 * AGE_BUCKETS * 8) as u64
    }

    fn shard_at(&self, info_hash: &InfoHash) -> usize {
        let h = self.shard_hasher.hash_one(info_hash) as usize;
        h & (self.shards.len() - 1)
    }

    fn shard(&self, info_hash: &InfoHash) -> &Padded {
        &self.shards[self.shard_at(info_hash)]
    }

    /// Start fetching the first cache lines an announce or scrape of
    /// `info_hash` will read from the map (the shard's lock and table header,
    /// its control bytes and positions), without waiting for them and without
    /// the lock. The net loop calls it for the datagrams after the one it is
    /// answering: one lookup's misses depend on each other, but those of
    /// different requests can overlap. Changes nothing; costs two keyed
    /// hashes and a load from the packed [`SharedLayout`] words.
    #[inline]
    pub fn prefetch(&self, info_hash: &InfoHash) {
        let i = self.shard_at(info_hash);
        let shard = (&self.shards[i] as *const Padded).addr();
        table::prefetch(shard);
        table::prefetch(shard + 64);
        self.layouts[i]
            .get()
            .prefetch(self.map_hasher.hash_one(info_hash));
    }

    /// Record an announce and emit up to `req.want` other peers of the same
    /// family: a seeder gets leechers only, nobody gets themself, no peer twice.
    /// `req.completed` counts a download unless the peer was already a seeder.
    /// A `Stopped` peer is removed and gets no peers. With `req.peer_id` the id
    /// is kept for non-compact replies (forgotten on stop); with `req.emit_ids`
    /// `emit` is given each emitted peer's id where one is known.
    ///
    /// A new peer is stored: at the map's bounds it first evicts the stalest
    /// of a few sampled peers of its shard (or of another shard), and at its
    /// torrent's share the stalest peer of the torrent. Only if nothing can
    /// make room for it (see [`budget`]) is it left out, counted as evicted,
    /// and answered from the torrent as it is.
    pub fn announce<P: PeerFamily>(
        &self,
        req: &Announce<'_, P::Addr>,
        emit: impl FnMut(&P, Option<&PeerId>),
    ) -> Announced {
        match self.announce_admitted(req, &Open, emit) {
            Some(a) => a,
            None => unreachable!("Open admits everything"),
        }
    }

    /// [`Swarm::announce`] of a torrent `adm` admits; `None` (nothing stored,
    /// nothing emitted) for one it does not. `adm` is asked only about a
    /// torrent not stored under its stamp ([`Admission`]).
    pub fn announce_admitted<P: PeerFamily, A: Admission>(
        &self,
        req: &Announce<'_, P::Addr>,
        adm: &A,
        emit: impl FnMut(&P, Option<&PeerId>),
    ) -> Option<Announced> {
        let at = self.shard_at(&req.info_hash);
        let mut guard = self.shards[at].lock();
        let shard = &mut *guard;
        // What the budget sees of a shard; a refresh changes none of it.
        // The bytes change only with the torrents, their heap or the ids.
        let bytes = |s: &Shard| (s.torrents.len(), s.totals.heap);
        let size = |s: &Shard| (s.totals.peers(), bytes(s), s.reserve.changes());
        let before = size(shard);
        let a = self.announce_locked(at, shard, req, adm, emit)?;
        let after = size(shard);
        if req.peer_id.is_some() || after != before {
            self.settle_with(at, shard, req.peer_id.is_some() || after.1 != before.1);
        }
        Some(a)
    }

    /// Emit up to `want` peers of family `P` to the announcer of `req` without
    /// announcing it in `P` (HTTP adds the other family's peers this way): a
    /// seeder gets leechers only; ids as for [`Swarm::announce`].
    pub fn sample<P: PeerFamily, A>(
        &self,
        req: &Announce<'_, A>,
        want: usize,
        mut emit: impl FnMut(&P, Option<&PeerId>),
    ) -> usize {
        let Announce {
            ref info_hash,
            random,
            emit_ids: with_ids,
            ..
        } = *req;
        let leechers_only = req.role == Role::Seeder;
        let guard = self.shard(info_hash).lock();
        let Some(torrent) = guard.torrents.get(info_hash) else {
            return 0;
        };
        let (set, seeders) = torrent.peers::<P>();
        let ids = ids_wanted(&guard.peer_ids, with_ids);
        let emit = |p: &P| emit(p, lookup_id(ids, info_hash, p));
        let range = if leechers_only {
            seeders..set.len()
        } else {
            0..set.len()
        };
        peers::sample(set, range, None, want, random, emit)
    }

    /// Counts for one torrent; zeros for an unknown one.
    pub fn scrape(&self, info_hash: &InfoHash) -> Counts {
        self.scrape_admitted(info_hash, &Open)
    }

    /// Counts for one torrent; zeros for an unknown one or one `adm` does not
    /// admit (asked only about a torrent stored under another stamp).
    pub fn scrape_admitted<A: Admission>(&self, info_hash: &InfoHash, adm: &A) -> Counts {
        let mut guard = self.shard(info_hash).lock();
        let Some((admitted, t)) = guard.torrents.entry_mut(info_hash) else {
            return Counts::default();
        };
        if readmit(adm, info_hash, admitted) {
            t.counts()
        } else {
            Counts::default()
        }
    }

    /// Remove the peers of shard `shard % shard_count()` that have not announced
    /// within the peer timeout, and the torrents left empty. Returns peers removed.
    ///
    /// A peer's 16-bit stamp gives its exact age only while every stamp in the
    /// shard is less than 32768 s old ([`peers::Stamp`]). The control thread sweeps
    /// every shard at least once a minute, but should a shard go unswept for
    /// longer than that allows (a stopped process), a stale peer could read as
    /// fresh: then every peer of the shard is dropped instead (they re-announce
    /// within one interval), never a stale one kept.
    pub fn expire_shard(&self, shard: usize, now: u32) -> usize {
        self.expire_shard_admitted(shard, now, &Open)
    }

    /// As [`Swarm::expire_shard`], also dropping (with all their peers) the
    /// torrents `adm` no longer admits (a hash that left an allow list), and
    /// stamping those it does, so that after a reload their announces find the
    /// answer in their entry again.
    pub fn expire_shard_admitted<A: Admission>(&self, shard: usize, now: u32, adm: &A) -> usize {
        self.sweep(shard, now, adm, |_| true, None)
    }

    /// Call `f` on every torrent of shard `shard % shard_count()` under its
    /// lock, with its completed count and each family's peers (seeders first)
    /// and seeder count: the cluster's state export (src/cluster/state.rs).
    /// `f` must not block: the shard waits for it.
    pub fn visit_shard(
        &self,
        shard: usize,
        mut f: impl FnMut(&InfoHash, u32, (&[Peer4], usize), (&[Peer6], usize)),
    ) {
        let guard = self.shards[shard & (self.shards.len() - 1)].lock();
        for (ih, t) in guard.torrents.iter() {
            f(
                ih,
                t.counts().completed,
                t.peers::<Peer4>(),
                t.peers::<Peer6>(),
            );
        }
    }

    /// Totals over all shards (locks each shard briefly, one at a time).
    /// Within the bounds like the map itself: the peers at most
    /// `max_peers`, the bytes at most `max_bytes` plus [`MARGIN_BYTES`]
    /// (see [`budget`]).
    pub fn totals(&self) -> Totals {
        let mut t = Totals {
            bytes: self.fixed_bytes(),
            max_bytes: self.limits.max_bytes,
            ..Totals::default()
        };
        self.walk_shards(|s| {
            t.torrents += s.torrents.len() as u64;
            t.seeders4 += s.totals.seeders4;
            t.leechers4 += s.totals.leechers4;
            t.seeders6 += s.totals.seeders6;
            t.leechers6 += s.totals.leechers6;
            t.bytes += s.bytes() as u64;
            for (sum, n) in t.evicted.iter_mut().zip(s.totals.evicted) {
                *sum += n;
            }
        });
        t
    }

    /// Bytes the map asked the allocator for: the shards, each shard's table
    /// and packed entries, the boxed torrents and their peer vectors and
    /// indexes, and the peer-id side table. The allocator's own per-chunk
    /// overhead is not included (a few percent for a map of small torrents,
    /// nothing measurable for the long tail of one-peer torrents, which make
    /// no allocation of their own). The figure the memory budget holds to:
    /// kept per shard on every change, so this is O(shards), not a walk; the
    /// `swarm_memory` test holds it to a counting allocator and to RSS.
    pub fn approx_bytes(&self) -> usize {
        let mut bytes = self.fixed_bytes() as usize;
        self.walk_shards(|s| bytes += s.bytes());
        bytes
    }

    /// [`Swarm::approx_bytes`] by walking every torrent: what the running sums
    /// must equal (tests).
    #[doc(hidden)]
    pub fn walked_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                let s = shard.lock();
                s.torrents.own_bytes()
                    + s.torrents.values().map(Torrent::heap_bytes).sum::<usize>()
                    + ids_bytes(&s.peer_ids)
            })
            .sum::<usize>()
            + self.fixed_bytes() as usize
    }
}
