//! One shard of the map: its torrents, its live counts, its HTTP peer ids,
//! and the operations that change them under its lock (store or refresh a
//! peer, evict one, sweep the shard).
//!
//! Guarantees: the counts and the heap figure of a shard are exact after
//! every change (no walk needed to know them); a shard's lock is held only
//! for one torrent's update and the copy of a few peers, or one shard's sweep.

use super::budget::TORRENT_BYTES;
use super::peers::{self, Peer, Stamp, Upserted};
use super::table::{ProbeLayout, Torrents};
use super::{
    readmit, Admission, Announce, Announced, Counts, Eviction, InfoHash, Peer4, Peer6, PeerFamily,
    PeerId, Role, Swarm, Torrent,
};
use ahash::RandomState;
use parking_lot::Mutex;
use std::collections::HashMap;
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

pub(super) type PeerIds = HashMap<PeerIdKey, PeerId, RandomState>;

/// Heap bytes of the peer-id table (std's table: buckets a power of two at
/// most 7/8 full, plus a group (16) of trailing control bytes).
pub(super) fn ids_bytes(ids: &PeerIds) -> usize {
    let entry = std::mem::size_of::<(PeerIdKey, PeerId)>() + 1;
    match ids.capacity() {
        0 => 0,
        cap => (cap * 8 / 7).next_power_of_two() * entry + 16,
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
    /// The bytes and peers this shard last added to the map's published
    /// totals ([`Published`]).
    pub(super) published_bytes: u64,
    pub(super) published_peers: u64,
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
/// whenever it changes ([`Swarm::publish`]) and read without it by
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
/// count and peer ids exact; counts it under `why`. Returns the bytes of the
/// budget it frees: the peer, and its torrent's entry if `t` is left empty
/// (the caller removes it).
pub(super) fn evict(
    t: &mut Torrent,
    ih: &InfoHash,
    (ip, port): (IpAddr, u16),
    totals: &mut ShardTotals,
    ids: &mut PeerIds,
    why: Eviction,
    hasher: &RandomState,
) -> usize {
    let before = t.heap_bytes();
    let was = match ip {
        IpAddr::V4(v4) => t.remove::<Peer4>(&(v4, port), hasher).map(|s| (s, false)),
        IpAddr::V6(v6) => t.remove::<Peer6>(&(v6, port), hasher).map(|s| (s, true)),
    };
    totals.heap = totals.heap + t.heap_bytes() - before;
    let Some((seeder, v6)) = was else {
        return 0;
    };
    *totals.gauge(v6, seeder) -= 1;
    totals.evicted[why as usize] += 1;
    if !ids.is_empty() {
        ids.remove(&(*ih, ip, port));
    }
    let peer = if v6 {
        std::mem::size_of::<Peer6>()
    } else {
        std::mem::size_of::<Peer4>()
    };
    peer + if t.is_empty() { TORRENT_BYTES } else { 0 }
}

impl Swarm {
    pub(super) fn announce_locked<P: PeerFamily, A: Admission>(
        &self,
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
            ..
        } = *req;
        let stamp = now as Stamp;
        let Shard {
            torrents,
            totals,
            peer_ids,
            ..
        } = shard;
        // A stored torrent: admitted by its stamp, or asked again (the policy
        // changed). A new one: asked, and stored with the stamp.
        if role == Role::Stopped {
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
            return Some(Announced { counts, peers: 0 });
        }
        let seeder = role == Role::Seeder;
        // Victim sampling's random source; xorshift needs a nonzero seed.
        let mut rng = (random.0 ^ random.1.rotate_left(29)) | 1;
        let (torrent, Upserted { index, was }) = self.store::<P, A>(
            torrents, totals, peer_ids, info_hash, adm, addr, seeder, stamp, &mut rng,
        )?;
        let (set, seeders) = torrent.peers::<P>();
        let range = if seeder {
            seeders..set.len()
        } else {
            0..set.len()
        };
        let ids = ids_wanted(peer_ids, with_ids);
        let peers = peers::sample(set, range, Some(index), want, random, |p| {
            emit(p, lookup_id(ids, info_hash, p))
        });
        // A download counts once: when a peer reports `completed` as a seeder
        // and was not already known as one.
        if completed_event && seeder && was != Some(true) {
            torrent.add_completed();
        }
        Some(Announced {
            counts: torrent.counts(),
            peers,
        })
    }

    /// Store or refresh one peer in a locked shard: the one place a peer is
    /// added (announces; an import goes through it too, so it is held to the
    /// same limits). A new peer first makes room when the map is at a hard
    /// threshold, and replaces its torrent's stalest peer when the torrent is
    /// at its share. Keeps the gauges and the heap count exact; the caller
    /// publishes ([`Swarm::publish`]) once it is done with the shard. `None`
    /// (nothing stored, nobody evicted): `adm` does not admit the torrent.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn store<'t, P: PeerFamily, A: Admission>(
        &self,
        torrents: &'t mut Torrents,
        totals: &mut ShardTotals,
        ids: &mut PeerIds,
        info_hash: &InfoHash,
        adm: &A,
        addr: &P::Addr,
        seeder: bool,
        stamp: Stamp,
        rng: &mut u64,
    ) -> Option<(&'t mut Torrent, Upserted)> {
        if self.over.load(Relaxed) {
            // Admitted before anyone is evicted for it (asked again below
            // only if new: this path is rare).
            if A::CHECKS {
                let yes = match torrents.entry_mut(info_hash) {
                    Some((admitted, _)) => readmit(adm, info_hash, admitted),
                    None => adm.admits(info_hash),
                };
                if !yes {
                    return None;
                }
            }
            let existing = torrents.get(info_hash);
            if !existing.is_some_and(|t| t.contains::<P>(addr, &self.peer_hasher)) {
                let cost =
                    std::mem::size_of::<P>() + if existing.is_none() { TORRENT_BYTES } else { 0 };
                self.make_room(torrents, totals, ids, stamp, cost, rng);
            }
        }
        let torrent = torrents.get_or_insert_admitted(info_hash, adm)?;
        let cap = self.max_torrent_peers;
        if torrent.len() >= cap && !torrent.contains::<P>(addr, &self.peer_hasher) {
            if let Some((ip, port, _)) = torrent.stalest(stamp, rng) {
                let why = Eviction::Torrent;
                evict(
                    torrent,
                    info_hash,
                    (ip, port),
                    totals,
                    ids,
                    why,
                    &self.peer_hasher,
                );
            }
        }
        let before = torrent.heap_bytes();
        let up = torrent.upsert::<P>(*addr, seeder, stamp, cap, &self.peer_hasher);
        totals.heap = totals.heap + torrent.heap_bytes() - before;
        let (s, l) = P::gauges(totals);
        match up.was {
            Some(true) => *s -= 1,
            Some(false) => *l -= 1,
            None => {}
        }
        *if seeder { s } else { l } += 1;
        Some((torrent, up))
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
        self.publish(at, &mut guard);
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
