//! The budget and eviction: how the map holds to `--max-peers` and
//! `--max-memory` exactly, under any load, with any number of workers and
//! shards.
//!
//! Each bound is a [`Pool`] of units (peers, bytes) that shards reserve from.
//! A shard's reservation covers what it holds plus a little spare, and the
//! pool's count of reservations never passes the bound, so what the shards
//! hold never does either:
//!
//! - **Growth is granted before it happens.** A new peer needs one peer unit
//!   and the bytes its insert will allocate ([`Torrent::insert_growth`],
//!   [`Torrents::insert_growth`]: exact). A shard with that much spare takes
//!   it from its spare, touching nothing shared; otherwise it asks the pool
//!   for it plus a batch of spare, a share of the room left that shrinks to
//!   nothing at the bound. A refresh of a known peer needs nothing.
//! - **At the bound, room is made first.** The new peer evicts the stalest
//!   of a few sampled peers of its own shard (which frees what it needs, or
//!   removes the need: a freed position needs no new chunk). If that cannot
//!   do it (its shard holds nobody, or frees bytes only a chunk at a time),
//!   it evicts in the shards a clock hand points to, never waiting for
//!   their locks, and takes what they free. Bytes nothing freed may be
//!   taken past the bound, within [`MARGIN_BYTES`] in all. A new peer
//!   nothing makes room for is not stored, and counts as evicted.
//! - **Freed units go back** once a shard's spare passes what it may keep.
//! - **A reading is a bound too.** [`Swarm::walk_shards`] reads the shards
//!   one at a time, and units moving from a shard already read to one not
//!   yet read would be counted twice; so while a walk runs, grants to the
//!   shards it has not reached are also charged to the room the pool had
//!   when it started ([`Walk`]). Every walked total then stays within its
//!   bound, like the true one.
//!
//! Guarantees: at any instant the map holds at most `max_peers` peers, and
//! accounts at most `max_bytes + MARGIN_BYTES` bytes (for a `max_bytes`
//! above what the shard array itself takes, which is spent first); so does
//! every [`Swarm::totals`]. The relief sweep ([`super::relief`]) keeps the map
//! below 95 % in the steady state, so that this path rarely runs.

use super::peers::{next_random, Stamp};
use super::shard::{evict, Shard};
#[cfg(doc)]
use super::table::Torrents;
#[cfg(doc)]
use super::Torrent;
use super::{Eviction, InfoHash, Limits, Swarm};
use parking_lot::Mutex;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};

/// Most bytes the map may account past `--max-memory`: what the grants no
/// eviction in the shard could make room for may take past the bound, in
/// all (a new shard's first chunk of entries is 3 KiB).
pub const MARGIN_BYTES: u64 = 16 * 1024;

/// Torrents sampled for the stalest peer when a new peer must make room.
const VICTIM_TORRENTS: usize = 4;
/// Most peers one new peer evicts in its own shard.
const MAX_EVICTIONS: usize = 8;
/// Most other shards a new peer locks (without waiting) for a peer to
/// evict, when its own holds none. Shards that hold no torrent are passed
/// by without locking, so however small the bound and many the shards, the
/// search reaches the shards that hold peers.
const HAND_TRIES: usize = 64;
/// Most peers a new peer evicts in another shard for bytes (which a shard
/// frees when its last chunk of 64 torrents empties).
const CHUNK_EVICTIONS: usize = 64;

/// A pool's counts, on their own cache lines: grants write them, and
/// nothing on an announce's common path reads them.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Counts {
    /// Units all shards together have reserved: what they hold and their
    /// spare. Grants never take it past `max`, forced ones past `max + margin`.
    reserved: AtomicU64,
    /// While a walk runs, what may still be granted to shards it has not
    /// read yet ([`Walk`]).
    walk_room: AtomicU64,
}

/// One bound's reservations.
#[derive(Debug)]
pub(super) struct Pool {
    counts: Counts,
    /// The bound; `u64::MAX`: none (nothing is reserved). Read by every new
    /// peer, so kept apart from `counts` (a line no grant writes).
    max: u64,
    /// How far past `max` a forced grant may go.
    margin: u64,
    /// A grant's batch of spare: the room left divided by `batch_div`, at
    /// most `batch_cap`.
    batch_cap: u64,
    batch_div: u64,
}

impl Pool {
    fn new(max: u64, margin: u64, batch_cap: u64, shards: u64) -> Pool {
        Pool {
            counts: Counts::default(),
            max,
            margin: if max == u64::MAX { 0 } else { margin },
            batch_cap,
            // Every shard's spare together is at most an eighth of the room.
            batch_div: 8 * shards.max(1),
        }
    }

    fn unbounded() -> Pool {
        Pool::new(u64::MAX, 0, 0, 1)
    }

    pub(super) fn bounded(&self) -> bool {
        self.max != u64::MAX
    }

    /// The bound (`u64::MAX`: none).
    #[cfg(test)]
    pub(super) fn bound(&self) -> u64 {
        self.max
    }

    /// Units reserved by all shards (0 for an unbounded pool).
    pub(super) fn reserved(&self) -> u64 {
        self.counts.reserved.load(Relaxed)
    }

    /// The spare a grant adds, and that a shard may keep, with `reserved`
    /// reserved: a share of the room left, nothing at the bound.
    fn batch(&self, reserved: u64) -> u64 {
        (self.max.saturating_sub(reserved) / self.batch_div).min(self.batch_cap)
    }

    /// Reserve `need` units for shard `at`, and a batch of spare unless
    /// `forced`: within `max`, or `max + margin` if `forced`, and within
    /// the room of a walk that has not read shard `at` yet. The units
    /// granted; `None` if that much is not there.
    fn grant(&self, need: u64, forced: bool, walk: &Walk, at: usize) -> Option<u64> {
        let limit = if forced {
            self.max.saturating_add(self.margin)
        } else {
            self.max
        };
        let mut r = self.counts.reserved.load(Relaxed);
        let amount = loop {
            let after = r.checked_add(need).filter(|&a| a <= limit)?;
            let amount = if forced {
                need
            } else {
                need + self.batch(after)
            };
            // SeqCst, as is the walk's read of the pool when it starts: of
            // this grant and that read, whichever comes second sees the other.
            match self
                .counts
                .reserved
                .compare_exchange_weak(r, r + amount, SeqCst, Relaxed)
            {
                Ok(_) => break amount,
                Err(now) => r = now,
            }
        };
        if walk.unvisited(at) && !take(&self.counts.walk_room, amount) {
            self.counts.reserved.fetch_sub(amount, Relaxed);
            return None;
        }
        Some(amount)
    }

    fn release(&self, n: u64) {
        if n > 0 {
            self.counts.reserved.fetch_sub(n, Relaxed);
        }
    }

    /// Square a shard's reservation (`reserved`) with what it holds
    /// (`held`) after a change: growth that was not granted before (none,
    /// unless a caller forgot) is reserved now, whatever the bound, since
    /// the count must stay exact; spare past what a shard keeps goes back.
    /// `keep`: the most spare the shard keeps without looking at the pool
    /// (the batch its last grant came with).
    fn square(&self, held: u64, reserved: &mut u64, keep: &mut u64, walk: &Walk, at: usize) {
        if held > *reserved {
            debug_assert!(false, "{} units held past the {reserved} reserved", held);
            let need = held - *reserved;
            if self.grant(need, true, walk, at).is_none() {
                self.counts.reserved.fetch_add(need, Relaxed);
            }
            *reserved = held;
        } else if *reserved - held > *keep {
            let now = self.batch(self.reserved());
            let spare = *reserved - held;
            if spare > now {
                self.release(spare - now);
                *reserved = held + now;
            }
            *keep = now;
        }
    }
}

/// Take `n` from `room` if it holds that much.
fn take(room: &AtomicU64, n: u64) -> bool {
    room.fetch_update(SeqCst, SeqCst, |r| r.checked_sub(n))
        .is_ok()
}

/// The walk in progress, if any: which shards it has read.
///
/// Why the walk's totals stay within the bounds: call a shard's reservation
/// *frozen* once the walk has read it. Frozen reservations plus those of the
/// shards not yet read start at the pool's count (at most the bound) and
/// only shrink, except by grants to shards not yet read, which the walk's
/// room caps at what the pool had left when the walk started. What the walk
/// reads of each shard is at most its frozen reservation.
#[derive(Debug)]
#[repr(align(128))]
pub(super) struct Walk {
    /// The next shard the running walk reads; `IDLE`: no walk.
    next: AtomicU64,
    /// One walk at a time.
    one: Mutex<()>,
}

const IDLE: u64 = u64::MAX;

impl Walk {
    fn new() -> Walk {
        Walk {
            next: AtomicU64::new(IDLE),
            one: Mutex::new(()),
        }
    }

    /// Whether a walk runs that has not read shard `at` yet. Asked after the
    /// grant (SeqCst): a grant the walk's start did not see is seen here.
    fn unvisited(&self, at: usize) -> bool {
        let next = self.next.load(SeqCst);
        next != IDLE && at as u64 >= next
    }
}

/// The map's bounds as pools, the walk that reads them, and where the
/// search for a victim in another shard goes next.
#[derive(Debug)]
pub(super) struct Budget {
    pub(super) peers: Pool,
    pub(super) bytes: Pool,
    walk: Walk,
    /// A clock hand over the shards.
    hand: Hand,
}

/// [`Budget::hand`], on its own cache lines (moved only by new peers that
/// make room elsewhere).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Hand(AtomicUsize);

impl Budget {
    pub(super) fn unbounded() -> Budget {
        Budget {
            peers: Pool::unbounded(),
            bytes: Pool::unbounded(),
            walk: Walk::new(),
            hand: Hand::default(),
        }
    }

    /// Pools for `limits` over `shards` shards; `fixed` bytes (the shard
    /// array's) are already spent.
    pub(super) fn new(limits: Limits, shards: u64, fixed: u64) -> Budget {
        let bound = |max: u64, less: u64| match max {
            0 => u64::MAX,
            m => m.saturating_sub(less),
        };
        Budget {
            peers: Pool::new(bound(limits.max_peers, 0), 0, 64, shards),
            bytes: Pool::new(
                bound(limits.max_bytes, fixed),
                MARGIN_BYTES,
                64 * 1024,
                shards,
            ),
            walk: Walk::new(),
            hand: Hand::default(),
        }
    }

    pub(super) fn bounded(&self) -> bool {
        self.peers.bounded() || self.bytes.bounded()
    }
}

/// A shard's reservations from the pools, and the spare it may keep of each
/// without asking the pool again.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Reserve {
    peers: u64,
    bytes: u64,
    keep_peers: u64,
    keep_bytes: u64,
}

impl Reserve {
    /// What changes when the shard is granted more.
    pub(super) fn changes(&self) -> (u64, u64) {
        (self.peers, self.bytes)
    }
}

/// What a change needs reserved beyond what a shard holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Need {
    pub(super) peers: u64,
    pub(super) bytes: u64,
}

impl Shard {
    /// Whether this shard's spare covers `need` (no pool asked; a bound not
    /// in force is no bound: its reservations are not kept).
    #[inline]
    pub(super) fn covers(&self, budget: &Budget, need: Need) -> bool {
        (!budget.peers.bounded() || self.totals.peers() + need.peers <= self.reserve.peers)
            && (need.bytes == 0
                || !budget.bytes.bounded()
                || self.bytes() as u64 + need.bytes <= self.reserve.bytes)
    }

    /// What `need` lacks of this shard's spare: (peers, bytes).
    fn short(&self, budget: &Budget, need: Need) -> (u64, u64) {
        let short = |pool: &Pool, held: u64, reserved: u64| match pool.bounded() {
            true => held.saturating_sub(reserved),
            false => 0,
        };
        (
            short(
                &budget.peers,
                self.totals.peers() + need.peers,
                self.reserve.peers,
            ),
            short(
                &budget.bytes,
                self.bytes() as u64 + need.bytes,
                self.reserve.bytes,
            ),
        )
    }
}

impl Swarm {
    /// After a change to shard `at`, under its lock: republish where its
    /// table is, and square its reservations with what it holds.
    pub(super) fn settle(&self, at: usize, shard: &mut Shard) {
        self.settle_with(at, shard, true);
    }

    /// [`Swarm::settle`]; its bytes only if they may have changed (`bytes`:
    /// false when no torrent came or went and no heap or peer id changed).
    #[inline]
    pub(super) fn settle_with(&self, at: usize, shard: &mut Shard, bytes: bool) {
        self.layouts[at].set(shard.torrents.layout());
        let b = &self.budget;
        if b.peers.bounded() {
            let held = shard.totals.peers();
            let r = &mut shard.reserve;
            b.peers
                .square(held, &mut r.peers, &mut r.keep_peers, &b.walk, at);
        }
        if bytes && b.bytes.bounded() {
            let held = shard.bytes() as u64;
            let r = &mut shard.reserve;
            b.bytes
                .square(held, &mut r.bytes, &mut r.keep_bytes, &b.walk, at);
        }
    }

    /// Reserve what `need` lacks of shard `at`'s spare, making room first
    /// when the pools have not got it (see the module docs). `need` is asked
    /// again after each eviction, since an eviction may remove the need (a
    /// freed position needs no new chunk). `Err`: nothing made room; the
    /// reason to count the new peer's eviction under.
    pub(super) fn reserve(
        &self,
        at: usize,
        shard: &mut Shard,
        for_torrent: &InfoHash,
        now: Stamp,
        rng: &mut u64,
        need: impl Fn(&Shard) -> Need,
    ) -> Result<(), Eviction> {
        let b = &self.budget;
        let mut evictions = 0;
        let (mut short_peers, mut short_bytes);
        loop {
            (short_peers, short_bytes) = shard.short(b, need(shard));
            if short_peers > 0 {
                if let Some(n) = b.peers.grant(short_peers, false, &b.walk, at) {
                    shard.reserve.peers += n;
                    shard.reserve.keep_peers = n - short_peers;
                    short_peers = 0;
                }
            }
            if short_bytes > 0 {
                if let Some(n) = b.bytes.grant(short_bytes, false, &b.walk, at) {
                    shard.reserve.bytes += n;
                    shard.reserve.keep_bytes = n - short_bytes;
                    short_bytes = 0;
                }
            }
            if short_peers == 0 && short_bytes == 0 {
                return Ok(());
            }
            let why = if short_peers > 0 {
                Eviction::Peers
            } else {
                Eviction::Memory
            };
            if evictions == MAX_EVICTIONS
                || !self.evict_stalest(shard, now, rng, why, Some(for_torrent))
            {
                break;
            }
            evictions += 1;
        }
        // Nobody left to evict here: from other shards.
        let mut tries = HAND_TRIES;
        while (short_peers > 0 || short_bytes > 0) && tries > 0 {
            let Some(tried) = self.evict_elsewhere(at, now, rng, (short_peers, short_bytes)) else {
                break;
            };
            tries = tries.saturating_sub(tried);
            // Exactly what is short, no batch: what was freed is for this.
            if short_peers > 0 {
                if let Some(n) = b.peers.grant(short_peers, true, &b.walk, at) {
                    shard.reserve.peers += n;
                    short_peers = 0;
                }
            }
            if short_bytes > 0 {
                if let Some(n) = b.bytes.grant(short_bytes, false, &b.walk, at) {
                    shard.reserve.bytes += n;
                    short_bytes = 0;
                }
            }
        }
        // Bytes nothing could free: within the margin.
        if short_peers == 0 && short_bytes > 0 {
            if let Some(n) = b.bytes.grant(short_bytes, true, &b.walk, at) {
                shard.reserve.bytes += n;
                short_bytes = 0;
            }
        }
        match (short_peers, short_bytes) {
            (0, 0) => Ok(()),
            (0, _) => Err(Eviction::Memory),
            _ => Err(Eviction::Peers),
        }
    }

    /// Reserve `bytes` more for shard `at` without evicting anybody: from
    /// its spare, the pool, or the margin. `false`: none of them has it.
    pub(super) fn grant_bytes(&self, at: usize, shard: &mut Shard, bytes: u64) -> bool {
        let b = &self.budget;
        if bytes == 0 || !b.bytes.bounded() {
            return true;
        }
        let (_, short) = shard.short(b, Need { peers: 0, bytes });
        if short == 0 {
            return true;
        }
        let granted = b.bytes.grant(short, false, &b.walk, at);
        match granted.or_else(|| b.bytes.grant(short, true, &b.walk, at)) {
            Some(n) => {
                shard.reserve.bytes += n;
                true
            }
            None => false,
        }
    }

    /// Evict the stalest of the peers of [`VICTIM_TORRENTS`] torrents drawn
    /// at random from `shard` (positions are dense, so each torrent is
    /// equally likely), counted under `why`; its torrent goes too if left
    /// empty. O(1) whatever the shard holds. Never the last peer of torrent
    /// `spare`: the one a newcomer to it would be handed. `false`: nobody
    /// to evict.
    pub(super) fn evict_stalest(
        &self,
        shard: &mut Shard,
        now: Stamp,
        rng: &mut u64,
        why: Eviction,
        spare: Option<&InfoHash>,
    ) -> bool {
        let Shard {
            torrents,
            totals,
            peer_ids,
            ..
        } = shard;
        let n = torrents.len();
        if n == 0 {
            return false;
        }
        let mut best: Option<(usize, (IpAddr, u16, i32))> = None;
        for _ in 0..VICTIM_TORRENTS {
            let i = (next_random(rng) % n as u64) as usize;
            let (ih, t) = torrents.at_position(i);
            if t.len() <= 1 && Some(ih) == spare {
                continue;
            }
            if let Some(v) = t.stalest(now, rng) {
                if best.is_none_or(|(_, b)| v.2 > b.2) {
                    best = Some((i, v));
                }
            }
        }
        let Some((i, (ip, port, _))) = best else {
            return false;
        };
        let (ih, t) = torrents.at_position(i);
        let ih = *ih;
        evict(t, &ih, (ip, port), totals, peer_ids, why, &self.peer_hasher);
        if t.is_empty() {
            totals.heap -= t.heap_bytes();
            torrents.remove_at(i);
        }
        true
    }

    /// Free `(peers, bytes)` in another shard than `at`: evict the stalest
    /// of sampled peers of the next shard the clock hand points to that holds
    /// any and is not locked (never waiting: the caller holds its own
    /// shard's lock), until that shard's spare covers them or it has no
    /// peer left (at most [`MAX_EVICTIONS`] a shard, more for bytes, which
    /// a shard frees a chunk at a time), and give its spare back to the
    /// pools at once. Shards published vacant are passed by unlocked (a read
    /// of one word each, 8 KiB for 1024 shards). The shards locked; `None`:
    /// none found among all shards within [`HAND_TRIES`] locks.
    fn evict_elsewhere(
        &self,
        at: usize,
        now: Stamp,
        rng: &mut u64,
        (peers, bytes): (u64, u64),
    ) -> Option<usize> {
        let n = self.shards.len();
        let why = if peers > 0 {
            Eviction::Peers
        } else {
            Eviction::Memory
        };
        let most = if bytes > 0 { CHUNK_EVICTIONS } else { 1 };
        let start = self.budget.hand.0.fetch_add(HAND_TRIES, Relaxed);
        let mut locked = 0;
        for k in 0..n {
            let y = start.wrapping_add(k) & (n - 1);
            if y == at || self.layouts[y].vacant() {
                continue;
            }
            if locked == HAND_TRIES {
                break;
            }
            locked += 1;
            let Some(mut guard) = self.shards[y].0.try_lock() else {
                continue;
            };
            let shard = &mut *guard;
            let mut evicted = 0;
            while evicted < most
                && (shard.short(&self.budget, Need { peers, bytes }) != (0, 0))
                && self.evict_stalest(shard, now, rng, why, None)
            {
                evicted += 1;
            }
            if evicted == 0 {
                continue;
            }
            // Keep no spare: what was freed is for shard `at`.
            let (held_peers, held_bytes) = (shard.totals.peers(), shard.bytes() as u64);
            let b = &self.budget;
            let r = &mut shard.reserve;
            if b.peers.bounded() {
                b.peers.release(r.peers - held_peers);
                (r.peers, r.keep_peers) = (held_peers, 0);
            }
            if b.bytes.bounded() {
                b.bytes.release(r.bytes.saturating_sub(held_bytes));
                (r.bytes, r.keep_bytes) = (r.bytes.min(held_bytes), 0);
            }
            self.settle(y, shard);
            return Some(locked);
        }
        None
    }

    /// Call `f` on every shard in turn, under its lock, such that what the
    /// shards hold summed over the walk stays within the bounds (see
    /// [`Walk`]). One walk at a time; it never holds two shard locks.
    pub(super) fn walk_shards(&self, mut f: impl FnMut(&Shard)) {
        let b = &self.budget;
        let _one = b.walk.one.lock();
        let pools = [&b.peers, &b.bytes];
        for p in pools {
            p.counts.walk_room.store(0, SeqCst);
        }
        b.walk.next.store(0, SeqCst);
        for p in pools.into_iter().filter(|p| p.bounded()) {
            let limit = p.max.saturating_add(p.margin);
            let room = limit.saturating_sub(p.counts.reserved.load(SeqCst));
            p.counts.walk_room.store(room, SeqCst);
        }
        for (i, shard) in self.shards.iter().enumerate() {
            let guard = shard.lock();
            f(&guard);
            b.walk.next.store(i as u64 + 1, SeqCst);
        }
        b.walk.next.store(IDLE, SeqCst);
    }

    /// Every shard's reservations squared with what it holds, and the pools
    /// with the shards' reservations (tests).
    #[cfg(test)]
    pub(super) fn check_reservations(&self) {
        let b = &self.budget;
        let (mut peers, mut bytes) = (0, 0);
        for (i, shard) in self.shards.iter().enumerate() {
            let s = shard.lock();
            if b.peers.bounded() {
                assert!(s.totals.peers() <= s.reserve.peers, "shard {i}: peers");
            }
            if b.bytes.bounded() {
                assert!(s.bytes() as u64 <= s.reserve.bytes, "shard {i}: bytes");
            }
            peers += s.reserve.peers;
            bytes += s.reserve.bytes;
        }
        if b.peers.bounded() {
            assert_eq!(peers, b.peers.reserved());
            assert!(peers <= b.peers.max);
        }
        if b.bytes.bounded() {
            assert_eq!(bytes, b.bytes.reserved());
            assert!(bytes <= b.bytes.max + b.bytes.margin);
        }
    }
}
