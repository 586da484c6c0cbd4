//! One shard of the map: its torrents, its live counts, its HTTP peer ids,
//! and the operations that change them under its lock (store or refresh a
//! peer, evict one, sweep the shard).
//!
//! Guarantees: the counts and the heap figure of a shard are exact after
//! every change (no walk needed to know them); a shard's lock is held only
//! for one torrent's update and the copy of a few peers, or one shard's sweep.

use super::budget::{Need, Reserve};
use super::peers::{self, Peer, Stamp, Upserted};
use super::table::{ProbeLayout, Torrents};
use super::{
    readmit, Admission, Announce, Announced, Counts, Eviction, InfoHash, Peer4, Peer6, PeerFamily,
    PeerId, Role, Swarm, Torrent,
};
use ahash::RandomState;
use hashbrown::HashMap;
use parking_lot::Mutex;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Live counts of one shard, kept exact on every change.
#[derive(Debug, Default, Clone, Copy)]
pub struct ShardTotals {
    pub(super) seeders4: u64,
    pub(super) leechers4: u64,
    pub(super) seeders6: u64,
    pub(super) leechers6: u64,
    /// Sum of the torrents' [`Torrent::heap_bytes`], updated with each change
    /// so the shard's bytes are known without a walk.
    pub(super) heap: usize,
    /// Peers evicted, by [`Eviction`].
    pub(super) evicted: [u64; Eviction::COUNT],
}

impl ShardTotals {
    pub(super) fn peers(&self) -> u64 {
        self.seeders4 + self.leechers4 + self.seeders6 + self.leechers6
    }

    /// The gauge of a peer of family `v6` and role `seeder`.
    pub(super) fn gauge(&mut self, v6: bool, seeder: bool) -> &mut u64 {
        match (v6, seeder) {
            (false, true) => &mut self.seeders4,
            (false, false) => &mut self.leechers4,
            (true, true) => &mut self.seeders6,
            (true, false) => &mut self.leechers6,
        }
    }
}

/// Key of the peer-id side table: torrent, address, port.
pub(super) type PeerIdKey = (InfoHash, IpAddr, u16);

/// `hashbrown`'s map rather than std's: it tells its allocation's size.
pub(super) type PeerIds = HashMap<PeerIdKey, PeerId, RandomState>;

/// Heap bytes of the peer-id table.
pub(super) fn ids_bytes(ids: &PeerIds) -> usize {
    ids.allocation_size()
}

/// Heap bytes inserting a new key into `ids` may allocate: an upper bound
/// of its growth when it is full (doubling adds at most what it had; an
/// empty table's first has 4 buckets).
fn ids_growth(ids: &PeerIds) -> usize {
    const ENTRY: usize = std::mem::size_of::<(PeerIdKey, PeerId)>();
    match ids.allocation_size() {
        _ if ids.len() < ids.capacity() => 0,
        0 => (4 * ENTRY).next_multiple_of(16) + 4 + 16,
        bytes => bytes,
    }
}

/// Heap bytes a new peer of family `P` costs shard `torrents`: its
/// torrent's growth (at `pos`), or a new torrent's entry and table slot;
/// and, if it `completes` a download, what counting it may take. Exact, or
/// an upper bound where a table may reuse a tombstone.
fn new_peer_growth<P: PeerFamily>(
    torrents: &Torrents,
    pos: Option<usize>,
    cap: usize,
    completes: bool,
) -> usize {
    match pos {
        Some(i) => {
            let t = torrents.torrent_at(i);
            t.insert_growth_counting::<P>(cap, completes)
        }
        // A new torrent takes its first peer inline, either family.
        None => torrents.insert_growth(),
    }
}

#[derive(Debug)]
pub(super) struct Shard {
    /// The shard's torrents: a hash table of positions into packed entries
    /// (see [`table`]), 48 bytes and about 8 bytes of table a torrent.
    pub(super) torrents: Torrents,
    pub(super) totals: ShardTotals,
    /// Peer ids of peers that announced over HTTP, for non-compact (`compact=0`)
    /// replies. Peers are stored without their id (8 bytes instead of 28), so
    /// only the few HTTP peers pay for one; empty for a UDP-only tracker.
    pub(super) peer_ids: PeerIds,
    /// When [`Swarm::expire_shard`] last ran on this shard (tracker seconds).
    /// Peers keep only 16 bits of their announce time, which read exactly only
    /// while the shard is swept often enough; this tells when it was not.
    pub(super) swept_at: u32,
    /// What the shard has reserved of the map's bounds ([`super::budget`]).
    pub(super) reserve: Reserve,
}

impl Shard {
    /// Heap bytes of the shard: table, entries, what the torrents own, peer
    /// ids. O(1): the torrents' part is kept as a running sum.
    pub(super) fn bytes(&self) -> usize {
        self.torrents.own_bytes() + self.totals.heap + ids_bytes(&self.peer_ids)
    }
}

/// A shard padded to its own cache lines, so two workers updating neighbouring
/// shards do not fight over one line.
#[derive(Debug)]
#[repr(align(128))]
pub(super) struct Padded(pub(super) Mutex<Shard>);

impl Padded {
    pub(super) fn lock(&self) -> parking_lot::MutexGuard<'_, Shard> {
        self.0.lock()
    }
}

/// A shard's [`ProbeLayout`] in one word, republished under the shard's lock
/// whenever it changes ([`Swarm::settle`]) and read without it by
/// [`Swarm::prefetch`]. The words of all shards are packed together (8 KiB
/// for 1024 shards), apart from the shards, so reading one is a cache hit
/// where the shard's own lines would be a miss. The control bytes' address
/// shifted left by 6, or'ed with the log2 of the bucket count; 0: none.
#[derive(Debug, Default)]
pub(super) struct SharedLayout(AtomicU64);

impl SharedLayout {
    pub(super) fn get(&self) -> ProbeLayout {
        let w = self.0.load(Relaxed);
        ProbeLayout {
            ctrl: (w >> 6) as usize,
            mask: (1usize << (w & 63)) - 1,
        }
    }

    /// Whether the shard held no torrent when it last settled (its table
    /// freed, nothing published): read without its lock, a hint that lets a
    /// search for a peer to evict pass it by.
    pub(super) fn vacant(&self) -> bool {
        self.0.load(Relaxed) == 0
    }

    pub(super) fn set(&self, layout: ProbeLayout) {
        let buckets = layout.mask.wrapping_add(1);
        let w = match layout.ctrl as u64 {
            // An address too high to shift (none on Linux): no prefetch.
            c if c >> 58 != 0 || layout.ctrl == 0 => 0,
            c => c << 6 | u64::from(buckets.trailing_zeros()),
        };
        if self.0.load(Relaxed) != w {
            self.0.store(w, Relaxed);
        }
    }
}

/// Remove `victim` (address, port) from `t`, keeping the shard's gauges, heap
/// count and peer ids exact; counts it under `why`. The caller removes `t`
/// if it is left empty.
pub(super) fn evict(
    t: &mut Torrent,
    ih: &InfoHash,
    (ip, port): (IpAddr, u16),
    totals: &mut ShardTotals,
    ids: &mut PeerIds,
    why: Eviction,
    hasher: &RandomState,
) {
    let before = t.heap_bytes();
    let was = match ip {
        IpAddr::V4(v4) => t.remove::<Peer4>(&(v4, port), hasher).map(|s| (s, false)),
        IpAddr::V6(v6) => t.remove::<Peer6>(&(v6, port), hasher).map(|s| (s, true)),
    };
    totals.heap = totals.heap + t.heap_bytes() - before;
    let Some((seeder, v6)) = was else {
        return;
    };
    *totals.gauge(v6, seeder) -= 1;
    totals.evicted[why as usize] += 1;
    if !ids.is_empty() {
        ids.remove(&(*ih, ip, port));
    }
}

/// What [`Swarm::store`] did with a peer.
pub(super) enum Stored {
    /// The access policy does not admit the torrent: nothing changed.
    NotAdmitted,
    /// New, and nothing made room for it in the budget: not stored (counted
    /// as evicted).
    Refused,
    /// Stored or refreshed; its torrent is at position `at`.
    Yes { at: usize, up: Upserted },
}

impl Swarm {
    /// [`Swarm::announce_admitted`] in shard `at`, locked.
    pub(super) fn announce_locked<P: PeerFamily, A: Admission>(
        &self,
        at: usize,
        shard: &mut Shard,
        req: &Announce<'_, P::Addr>,
        adm: &A,
        mut emit: impl FnMut(&P, Option<&PeerId>),
    ) -> Option<Announced> {
        let Announce {
            ref info_hash,
            ref addr,
            role,
            completed: completed_event,
            now,
            want,
            random,
            emit_ids: with_ids,
            peer_id,
        } = *req;
        let stamp = now as Stamp;
        // A stored torrent: admitted by its stamp, or asked again (the policy
        // changed). A new one: asked, and stored with the stamp.
        if role == Role::Stopped {
            return self.stop::<P, A>(shard, info_hash, addr, adm, peer_id.is_some());
        }
        let seeder = role == Role::Seeder;
        let completes = completed_event && seeder;
        // Victim sampling's random source; xorshift needs a nonzero seed.
        let mut rng = (random.0 ^ random.1.rotate_left(29)) | 1;
        let stored = self.store::<P, A>(
            at, shard, info_hash, adm, addr, seeder, stamp, completes, &mut rng,
        );
        let (pos, skip) = match stored {
            Stored::NotAdmitted => return None,
            Stored::Yes { at: pos, up } => {
                if let Some(id) = peer_id {
                    let (ip, port) = P::socket_addr(addr);
                    self.keep_peer_id(at, shard, (*info_hash, ip, port), id);
                }
                (Some(pos), Some(up.index))
            }
            // Answered from the torrent as it is, without the newcomer.
            Stored::Refused => (shard.torrents.lookup(info_hash).ok(), None),
        };
        let Some(pos) = pos else {
            return Some(Announced {
                counts: Counts::default(),
                peers: 0,
            });
        };
        let Shard {
            torrents, peer_ids, ..
        } = shard;
        let (_, torrent) = torrents.entry_at(pos);
        let (set, seeders) = torrent.peers::<P>();
        let range = if seeder {
            seeders..set.len()
        } else {
            0..set.len()
        };
        let ids = ids_wanted(peer_ids, with_ids);
        let peers = peers::sample(set, range, skip, want, random, |p| {
            emit(p, lookup_id(ids, info_hash, p))
        });
        Some(Announced {
            counts: torrent.counts(),
            peers,
        })
    }

    /// A `stopped` announce: the peer (and its id, if `with_id`) removed;
    /// its torrent too if left empty.
    fn stop<P: PeerFamily, A: Admission>(
        &self,
        shard: &mut Shard,
        info_hash: &InfoHash,
        addr: &P::Addr,
        adm: &A,
        with_id: bool,
    ) -> Option<Announced> {
        let Shard {
            torrents,
            totals,
            peer_ids,
            ..
        } = shard;
        let Some((admitted, torrent)) = torrents.entry_mut(info_hash) else {
            // Nothing to remove; refused all the same if not admitted.
            return (!A::CHECKS || adm.admits(info_hash)).then_some(Announced {
                counts: Counts::default(),
                peers: 0,
            });
        };
        if !readmit(adm, info_hash, admitted) {
            return None;
        }
        let before = torrent.heap_bytes();
        if let Some(was_seeder) = torrent.remove::<P>(addr, &self.peer_hasher) {
            let (s, l) = P::gauges(totals);
            *if was_seeder { s } else { l } -= 1;
        }
        totals.heap = totals.heap + torrent.heap_bytes() - before;
        let counts = torrent.counts();
        if torrent.is_empty() {
            if let Some(t) = torrents.remove(info_hash) {
                totals.heap -= t.heap_bytes();
            }
        }
        if with_id {
            let (ip, port) = P::socket_addr(addr);
            peer_ids.remove(&(*info_hash, ip, port));
        }
        Some(Announced { counts, peers: 0 })
    }

    /// Keep the id of a stored peer that announced over HTTP, for
    /// non-compact replies; whether it is kept. If the id table has to grow
    /// for it and the budget has no bytes for that, the peer stays without
    /// an id (listed as a UDP peer is).
    pub(super) fn keep_peer_id(
        &self,
        at: usize,
        shard: &mut Shard,
        key: PeerIdKey,
        id: &PeerId,
    ) -> bool {
        if let Some(old) = shard.peer_ids.get_mut(&key) {
            *old = *id;
        } else if self.grant_bytes(at, shard, ids_growth(&shard.peer_ids) as u64) {
            shard.peer_ids.insert(key, *id);
        } else {
            return false;
        }
        true
    }

    /// Set the completed count of torrent `info_hash` of shard `at` to `n`
    /// (a warm restart), or raise it to `n` (`raise`: a cluster merge). A
    /// count its torrent's form cannot hold ([`Torrent::count_growth`])
    /// grows the torrent if the budget has the bytes, and stops at 65 535
    /// if not.
    pub(super) fn restore_count(
        &self,
        at: usize,
        shard: &mut Shard,
        info_hash: &InfoHash,
        n: u32,
        raise: bool,
    ) {
        let Ok(pos) = shard.torrents.lookup(info_hash) else {
            return;
        };
        let t = shard.torrents.torrent_at(pos);
        let mut n = if raise { n.max(t.completed()) } else { n };
        let growth = t.count_growth(n);
        if growth > 0 && !self.grant_bytes(at, shard, growth as u64) {
            n = n.min(u32::from(u16::MAX));
        }
        let Shard {
            torrents, totals, ..
        } = shard;
        let (_, t) = torrents.entry_at(pos);
        let before = t.heap_bytes();
        t.set_completed(n);
        totals.heap = totals.heap + t.heap_bytes() - before;
    }

    /// Store or refresh one peer in shard `at`, locked: the one place a peer
    /// is added (announces; an import goes through it too, so it is held to
    /// the same limits). A known peer is refreshed, with no look at the
    /// budget. A new peer replaces its torrent's stalest peer when the
    /// torrent is at its share, and has what its insert needs reserved in
    /// the budget first, making room if the map is at a bound
    /// ([`Swarm::reserve`]). `completes`: the announce reports a completed
    /// download as a seeder, counted unless the peer was known as a seeder.
    /// Keeps the gauges and the heap count exact; the caller settles
    /// ([`Swarm::settle`]) once it is done with the shard.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn store<P: PeerFamily, A: Admission>(
        &self,
        at: usize,
        shard: &mut Shard,
        info_hash: &InfoHash,
        adm: &A,
        addr: &P::Addr,
        seeder: bool,
        stamp: Stamp,
        completes: bool,
        rng: &mut u64,
    ) -> Stored {
        let h = &self.peer_hasher;
        let cap = self.max_torrent_peers;
        let mut found = shard.torrents.lookup(info_hash);
        if let Ok(pos) = found {
            let (admitted, t) = shard.torrents.entry_at(pos);
            if !readmit(adm, info_hash, admitted) {
                return Stored::NotAdmitted;
            }
            if let Some(up) = t.refresh::<P>(addr, seeder, stamp, h) {
                let (s, l) = P::gauges(&mut shard.totals);
                if up.was != Some(seeder) {
                    let (from, to) = if seeder { (l, s) } else { (s, l) };
                    *from -= 1;
                    *to += 1;
                }
                if completes && up.was != Some(true) {
                    self.count_download(at, shard, pos);
                }
                return Stored::Yes { at: pos, up };
            }
            // A new peer of a torrent at its share replaces the stalest.
            let victim = if t.len() >= cap {
                t.stalest(stamp, rng)
            } else {
                None
            };
            if let Some((ip, port, _)) = victim {
                let Shard {
                    torrents,
                    totals,
                    peer_ids,
                    ..
                } = shard;
                let (_, t) = torrents.entry_at(pos);
                let why = Eviction::Torrent;
                evict(t, info_hash, (ip, port), totals, peer_ids, why, h);
            }
        } else if A::CHECKS && !adm.admits(info_hash) {
            return Stored::NotAdmitted;
        }
        let b = &self.budget;
        if b.bounded() {
            // Bytes only matter to a byte bound (the growth is worked out
            // only then).
            let bytes = b.bytes.bounded();
            let need = |s: &Shard, pos: Option<usize>| Need {
                peers: 1,
                bytes: match bytes {
                    true => new_peer_growth::<P>(&s.torrents, pos, cap, completes) as u64,
                    false => 0,
                },
            };
            if !shard.covers(b, need(shard, found.ok())) {
                let need = |s: &Shard| need(s, s.torrents.lookup(info_hash).ok());
                if let Err(why) = self.reserve(at, shard, info_hash, stamp, rng, need) {
                    shard.totals.evicted[why as usize] += 1;
                    return Stored::Refused;
                }
                // Making room may have moved or removed the torrent.
                found = shard.torrents.lookup(info_hash);
            }
        }
        let pos = match found {
            Ok(pos) => pos,
            Err(hash) => shard.torrents.insert_new(hash, info_hash, adm.stamp()),
        };
        let Shard {
            torrents, totals, ..
        } = shard;
        let (_, t) = torrents.entry_at(pos);
        let before = t.heap_bytes();
        // A download counts once: when a peer reports `completed` as a
        // seeder and was not already known as one.
        if completes {
            t.add_completed();
        }
        let up = t.insert_absent::<P>(*addr, seeder, stamp, cap, h);
        totals.heap = totals.heap + t.heap_bytes() - before;
        let (s, l) = P::gauges(totals);
        *if seeder { s } else { l } += 1;
        Stored::Yes { at: pos, up }
    }

    /// Count a download of a stored torrent (at position `pos`). If its form
    /// cannot hold the count ([`Torrent::count_growth`]), the torrent grows
    /// when the budget has the bytes, else the count stays where it is.
    fn count_download(&self, at: usize, shard: &mut Shard, pos: usize) {
        let (_, t) = shard.torrents.entry_at(pos);
        let growth = t.count_growth(t.completed_after_one());
        if growth > 0 && !self.grant_bytes(at, shard, growth as u64) {
            return;
        }
        let Shard {
            torrents, totals, ..
        } = shard;
        let (_, t) = torrents.entry_at(pos);
        let before = t.heap_bytes();
        t.add_completed();
        totals.heap = totals.heap + t.heap_bytes() - before;
    }

    /// Sweep one shard: drop the peers past the peer timeout, and those
    /// `keep` refuses (asked once for each peer within the timeout, with its
    /// stamp); peers removed count as evicted for `why` if given.
    pub(super) fn sweep<A: Admission>(
        &self,
        shard: usize,
        now: u32,
        adm: &A,
        mut keep: impl FnMut(Stamp) -> bool,
        why: Option<Eviction>,
    ) -> usize {
        let stamp = now as Stamp;
        let at = shard & (self.shards.len() - 1);
        let mut guard = self.shards[at].lock();
        let Shard {
            torrents,
            totals,
            peer_ids,
            swept_at,
            ..
        } = &mut *guard;
        let since = now.saturating_sub(*swept_at);
        *swept_at = now;
        let ambiguous = u64::from(since) + u64::from(self.peer_timeout) > i16::MAX as u64;
        let timeout = Some(self.peer_timeout);
        let mut removed = 0;
        torrents.retain(|ih, admitted, t| {
            let before = t.heap_bytes();
            let h = &self.peer_hasher;
            // With ambiguous stamps, nobody is kept (the gauges stay exact).
            let ((s4, l4), (s6, l6)) = if ambiguous || !readmit(adm, ih, admitted) {
                t.expire_by(&mut |_| false, h)
            } else {
                t.expire_by(&mut |s| peers::is_fresh(stamp, timeout, s) && keep(s), h)
            };
            totals.heap = totals.heap + t.heap_bytes() - before;
            totals.seeders4 -= s4 as u64;
            totals.leechers4 -= l4 as u64;
            totals.seeders6 -= s6 as u64;
            totals.leechers6 -= l6 as u64;
            removed += s4 + l4 + s6 + l6;
            if t.is_empty() {
                // Dropped by `retain`: its heap goes with it.
                totals.heap -= t.heap_bytes();
            }
            !t.is_empty()
        });
        if let Some(why) = why {
            totals.evicted[why as usize] += removed as u64;
        }
        if !peer_ids.is_empty() {
            peer_ids.retain(|(ih, ip, port), _| {
                torrents.get(ih).is_some_and(|t| match ip {
                    IpAddr::V4(v4) => t.contains::<Peer4>(&(*v4, *port), &self.peer_hasher),
                    IpAddr::V6(v6) => t.contains::<Peer6>(&(*v6, *port), &self.peer_hasher),
                })
            });
            if peer_ids.len() < peer_ids.capacity() / 4 {
                peer_ids.shrink_to(peer_ids.len() * 2);
            }
        }
        self.settle(at, &mut guard);
        removed
    }
}

/// The ids to look emitted peers up in: `None` (nothing to look up, decided
/// once per announce rather than per emitted peer) unless ids are wanted and
/// some are known.
#[inline]
pub(super) fn ids_wanted(ids: &PeerIds, with_ids: bool) -> Option<&PeerIds> {
    (with_ids && !ids.is_empty()).then_some(ids)
}

/// The peer id recorded for an emitted peer, when ids are wanted and known.
#[inline]
pub(super) fn lookup_id<'m, P: Peer>(
    ids: Option<&'m PeerIds>,
    info_hash: &InfoHash,
    p: &P,
) -> Option<&'m PeerId> {
    let ids = ids?;
    let (ip, port) = P::socket_addr(&p.addr());
    ids.get(&(*info_hash, ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layout_survives_its_packing() {
        let l = SharedLayout::default();
        assert_eq!(l.get(), ProbeLayout::default());
        for (ctrl, mask) in [(0x7fff_1234_5670, 0), (0x5555_0000_0010, (1 << 20) - 1)] {
            l.set(ProbeLayout { ctrl, mask });
            assert_eq!(l.get(), ProbeLayout { ctrl, mask });
        }
        // Not packable: no prefetch rather than a wrong one.
        l.set(ProbeLayout {
            ctrl: 1 << 60,
            mask: 15,
        });
        assert_eq!(l.get(), ProbeLayout::default());
    }
}
