//! The sharded in-memory swarm map: torrents, their peers, counts, expiry.
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
//!   no request waits behind a sweep of the whole map.

pub mod peers;
mod table;
mod torrent;

use ahash::RandomState;
use parking_lot::Mutex;
use peers::{Peer, Stamp, Upserted};
pub use peers::{Peer4, Peer6};
use std::collections::HashMap;
use std::net::IpAddr;
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

/// Totals over the whole map, for metrics and the stats line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub torrents: u64,
    pub seeders4: u64,
    pub leechers4: u64,
    pub seeders6: u64,
    pub leechers6: u64,
}

impl Totals {
    pub fn peers(&self) -> u64 {
        self.seeders4 + self.leechers4 + self.seeders6 + self.leechers6
    }
}

/// Live peer counts of one shard, kept exact on every change.
#[derive(Debug, Default, Clone, Copy)]
pub struct ShardTotals {
    seeders4: u64,
    leechers4: u64,
    seeders6: u64,
    leechers6: u64,
}

impl ShardTotals {
    fn peers(&self) -> u64 {
        self.seeders4 + self.leechers4 + self.seeders6 + self.leechers6
    }
}

/// A peer's 20-byte self-chosen id.
pub type PeerId = [u8; 20];

/// Key of the peer-id side table: torrent, address, port.
type PeerIdKey = (InfoHash, IpAddr, u16);

#[derive(Debug)]
struct Shard {
    /// The shard's torrents: a hash table of positions into packed entries
    /// (see [`table`]), 48 bytes and about 8 bytes of table a torrent.
    torrents: Torrents,
    totals: ShardTotals,
    /// Peer ids of peers that announced over HTTP, for non-compact (`compact=0`)
    /// replies. Peers are stored without their id (8 bytes instead of 28), so
    /// only the few HTTP peers pay for one; empty for a UDP-only tracker.
    peer_ids: HashMap<PeerIdKey, PeerId, RandomState>,
    /// When [`Swarm::expire_shard`] last ran on this shard (tracker seconds).
    /// Peers keep only 16 bits of their announce time, which read exactly only
    /// while the shard is swept often enough; this tells when it was not.
    swept_at: u32,
}

/// A shard padded to its own cache lines, so two workers updating neighbouring
/// shards do not fight over one line.
#[derive(Debug)]
#[repr(align(128))]
struct Padded(Mutex<Shard>);

/// Seconds a shard may go unswept before its stamps are ambiguous, at the
/// longest peer timeout: the peer timeout is capped to `32767 - SWEEP_SLACK`
/// (the net loop sweeps every shard at least once a minute).
const SWEEP_SLACK: u16 = 300;

/// The map. Shared by reference between all workers.
#[derive(Debug)]
pub struct Swarm {
    shards: Box<[Padded]>,
    /// Keyed hash for choosing a shard (independent of the in-shard map's key).
    shard_hasher: RandomState,
    /// Keyed hash for the per-torrent peer index.
    peer_hasher: RandomState,
    peer_timeout: u16,
    /// Most peers one shard holds: the map's memory is bounded whatever clients
    /// send. A full shard still answers announces, but stores no new peer.
    max_peers_per_shard: u64,
}

/// What an announce returns besides the peers it emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announced {
    pub counts: Counts,
    /// Peers passed to `emit`.
    pub peers: usize,
    /// The peer was new but not stored: its shard is at the peer limit.
    pub full: bool,
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
        Swarm {
            shards: (0..n)
                .map(|_| {
                    Padded(Mutex::new(Shard {
                        torrents: Torrents::with_hasher(map_hasher.clone()),
                        totals: ShardTotals::default(),
                        peer_ids: HashMap::with_hasher(map_hasher.clone()),
                        swept_at: 0,
                    }))
                })
                .collect(),
            shard_hasher: RandomState::new(),
            peer_hasher: RandomState::new(),
            peer_timeout: peer_timeout.min(i16::MAX as u16 - SWEEP_SLACK),
            max_peers_per_shard: u64::MAX,
        }
    }

    /// Bound the map to about `max_peers` peers in all (0 = no bound). The bound
    /// is split evenly over the shards, so a shard is full slightly before the
    /// whole map is.
    pub fn with_max_peers(mut self, max_peers: u64) -> Swarm {
        self.max_peers_per_shard = if max_peers == 0 {
            u64::MAX
        } else {
            max_peers.div_ceil(self.shards.len() as u64)
        };
        self
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    fn shard(&self, info_hash: &InfoHash) -> &Mutex<Shard> {
        let h = self.shard_hasher.hash_one(info_hash) as usize;
        &self.shards[h & (self.shards.len() - 1)].0
    }

    /// Record an announce and emit up to `req.want` other peers of the same
    /// family: a seeder gets leechers only, nobody gets themself, no peer twice.
    /// `req.completed` counts a download unless the peer was already a seeder.
    /// A `Stopped` peer is removed and gets no peers. With `req.peer_id` the id
    /// is kept for non-compact replies (forgotten on stop); with `req.emit_ids`
    /// `emit` is given each emitted peer's id where one is known.
    pub fn announce<P: PeerFamily>(
        &self,
        req: &Announce<'_, P::Addr>,
        emit: impl FnMut(&P, Option<&PeerId>),
    ) -> Announced {
        let mut guard = self.shard(&req.info_hash).lock();
        let shard = &mut *guard;
        let a = self.announce_locked(shard, req, emit);
        if let Some(peer_id) = req.peer_id {
            let (ip, port) = P::socket_addr(&req.addr);
            let key = (req.info_hash, ip, port);
            if req.role == Role::Stopped {
                shard.peer_ids.remove(&key);
            } else if !a.full {
                shard.peer_ids.insert(key, *peer_id);
            }
        }
        a
    }

    fn announce_locked<P: PeerFamily>(
        &self,
        shard: &mut Shard,
        req: &Announce<'_, P::Addr>,
        mut emit: impl FnMut(&P, Option<&PeerId>),
    ) -> Announced {
        let Announce {
            ref info_hash,
            addr,
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
        if role == Role::Stopped {
            let Some(torrent) = torrents.get_mut(info_hash) else {
                return Announced {
                    counts: Counts::default(),
                    peers: 0,
                    full: false,
                };
            };
            if let Some(was_seeder) = torrent.remove::<P>(&addr, &self.peer_hasher) {
                let (s, l) = P::gauges(totals);
                *if was_seeder { s } else { l } -= 1;
            }
            let counts = torrent.counts();
            if torrent.is_empty() {
                torrents.remove(info_hash);
            }
            return Announced {
                counts,
                peers: 0,
                full: false,
            };
        }
        let seeder = role == Role::Seeder;
        if totals.peers() >= self.max_peers_per_shard {
            let known = torrents
                .get(info_hash)
                .is_some_and(|t| t.contains::<P>(&addr, &self.peer_hasher));
            if !known {
                // Full: answer from what is there, store nothing.
                let Some(torrent) = torrents.get(info_hash) else {
                    return Announced {
                        counts: Counts::default(),
                        peers: 0,
                        full: true,
                    };
                };
                let ids = &*peer_ids;
                let (set, seeders) = torrent.peers::<P>();
                let range = if seeder {
                    seeders..set.len()
                } else {
                    0..set.len()
                };
                let peers = peers::sample(set, range, None, want, random, |p| {
                    emit(p, lookup_id(ids, with_ids, info_hash, p))
                });
                return Announced {
                    counts: torrent.counts(),
                    peers,
                    full: true,
                };
            }
        }
        let torrent = torrents.get_or_insert(info_hash);
        let Upserted { index, was } = torrent.upsert::<P>(addr, seeder, stamp, &self.peer_hasher);
        let (s, l) = P::gauges(totals);
        match was {
            Some(true) => *s -= 1,
            Some(false) => *l -= 1,
            None => {}
        }
        *if seeder { s } else { l } += 1;
        let (set, seeders) = torrent.peers::<P>();
        let range = if seeder {
            seeders..set.len()
        } else {
            0..set.len()
        };
        let ids = &*peer_ids;
        let peers = peers::sample(set, range, Some(index), want, random, |p| {
            emit(p, lookup_id(ids, with_ids, info_hash, p))
        });
        // A download counts once: when a peer reports `completed` as a seeder
        // and was not already known as one.
        if completed_event && seeder && was != Some(true) {
            torrent.add_completed();
        }
        Announced {
            counts: torrent.counts(),
            peers,
            full: false,
        }
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
        let ids = &guard.peer_ids;
        let emit = |p: &P| emit(p, lookup_id(ids, with_ids, info_hash, p));
        let range = if leechers_only {
            seeders..set.len()
        } else {
            0..set.len()
        };
        peers::sample(set, range, None, want, random, emit)
    }

    /// Counts for one torrent; zeros for an unknown one.
    pub fn scrape(&self, info_hash: &InfoHash) -> Counts {
        self.shard(info_hash)
            .lock()
            .torrents
            .get(info_hash)
            .map(Torrent::counts)
            .unwrap_or_default()
    }

    /// Remove the peers of shard `shard % shard_count()` that have not announced
    /// within the peer timeout, and the torrents left empty. Returns peers removed.
    ///
    /// A peer's 16-bit stamp gives its exact age only while every stamp in the
    /// shard is less than 32768 s old ([`peers::Stamp`]). The net loop sweeps
    /// every shard at least once a minute, but should a shard go unswept for
    /// longer than that allows (a stopped process), a stale peer could read as
    /// fresh: then every peer of the shard is dropped instead (they re-announce
    /// within one interval), never a stale one kept.
    pub fn expire_shard(&self, shard: usize, now: u32) -> usize {
        self.expire_shard_with(shard, now, |_| false)
    }

    /// As [`Swarm::expire_shard`], also dropping (with all their peers) the
    /// torrents for which `gone` is true: those the access list no longer allows.
    pub fn expire_shard_with(
        &self,
        shard: usize,
        now: u32,
        gone: impl Fn(&InfoHash) -> bool,
    ) -> usize {
        let stamp = now as Stamp;
        let mut guard = self.shards[shard & (self.shards.len() - 1)].0.lock();
        let Shard {
            torrents,
            totals,
            peer_ids,
            swept_at,
        } = &mut *guard;
        let since = now.saturating_sub(*swept_at);
        *swept_at = now;
        let ambiguous = u64::from(since) + u64::from(self.peer_timeout) > i16::MAX as u64;
        // With ambiguous stamps, a negative timeout keeps nobody.
        let timeout = if ambiguous {
            None
        } else {
            Some(self.peer_timeout)
        };
        let mut removed = 0;
        torrents.retain(|ih, t| {
            // A `None` timeout drops every peer, keeping the gauges exact.
            let timeout = if gone(ih) { None } else { timeout };
            let ((s4, l4), (s6, l6)) = t.expire(stamp, timeout, &self.peer_hasher);
            totals.seeders4 -= s4 as u64;
            totals.leechers4 -= l4 as u64;
            totals.seeders6 -= s6 as u64;
            totals.leechers6 -= l6 as u64;
            removed += s4 + l4 + s6 + l6;
            !t.is_empty()
        });
        if !peer_ids.is_empty() {
            peer_ids.retain(|(ih, ip, port), _| {
                torrents.get(ih).is_some_and(|t| match ip {
                    IpAddr::V4(v4) => t.contains::<Peer4>(&(*v4, *port), &self.peer_hasher),
                    IpAddr::V6(v6) => t.contains::<Peer6>(&(*v6, *port), &self.peer_hasher),
                })
            });
        }
        removed
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
        let guard = self.shards[shard & (self.shards.len() - 1)].0.lock();
        for (ih, t) in guard.torrents.iter() {
            f(
                ih,
                t.counts().completed,
                t.peers::<Peer4>(),
                t.peers::<Peer6>(),
            );
        }
    }

    /// Raise a known torrent's completed count to at least `completed` (state
    /// loaded from another instance, whose count is the cluster's: taking the
    /// larger one never counts a download twice).
    pub fn raise_completed(&self, info_hash: &InfoHash, completed: u32) {
        let mut guard = self.shard(info_hash).lock();
        if let Some(t) = guard.torrents.get_mut(info_hash) {
            t.raise_completed(completed);
        }
    }

    /// Totals over all shards (locks each shard briefly, one at a time).
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for shard in self.shards.iter() {
            let s = shard.0.lock();
            t.torrents += s.torrents.len() as u64;
            t.seeders4 += s.totals.seeders4;
            t.leechers4 += s.totals.leechers4;
            t.seeders6 += s.totals.seeders6;
            t.leechers6 += s.totals.leechers6;
        }
        t
    }

    /// Bytes the map asked the allocator for: the shards, each shard's table
    /// and packed entries, the boxed torrents and their peer vectors and
    /// indexes, and the peer-id side table. The allocator's own per-chunk
    /// overhead is not included (a few percent for a map of small torrents,
    /// nothing measurable for the long tail of one-peer torrents, which make
    /// no allocation of their own). The figure a memory budget can use; the
    /// `swarm_memory` test holds it to a counting allocator.
    pub fn approx_bytes(&self) -> usize {
        let id_entry = std::mem::size_of::<(PeerIdKey, PeerId)>() + 1;
        self.shards
            .iter()
            .map(|shard| {
                let s = shard.0.lock();
                let ids = match s.peer_ids.capacity() {
                    0 => 0,
                    // std's table: buckets a power of two at most 7/8 full,
                    // plus a group (16) of trailing control bytes.
                    cap => (cap * 8 / 7).next_power_of_two() * id_entry + 16,
                };
                s.torrents.own_bytes()
                    + s.torrents.values().map(Torrent::heap_bytes).sum::<usize>()
                    + ids
            })
            .sum::<usize>()
            + self.shards.len() * std::mem::size_of::<Padded>()
    }
}

/// The peer id recorded for an emitted peer, when ids are wanted and known.
fn lookup_id<'m, P: Peer>(
    ids: &'m HashMap<PeerIdKey, PeerId, RandomState>,
    with_ids: bool,
    info_hash: &InfoHash,
    p: &P,
) -> Option<&'m PeerId> {
    if !with_ids || ids.is_empty() {
        return None;
    }
    let (ip, port) = P::socket_addr(&p.addr());
    ids.get(&(*info_hash, ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(n: u8, port: u16) -> (Ipv4Addr, u16) {
        (Ipv4Addr::new(10, 0, 0, n), port)
    }

    fn announce4(
        s: &Swarm,
        ih: &InfoHash,
        n: u8,
        role: Role,
        completed: bool,
        now: u32,
        want: usize,
    ) -> (Announced, Vec<(Ipv4Addr, u16)>) {
        let mut got = Vec::new();
        let req = Announce {
            completed,
            want,
            random: (n as u64, 3),
            ..req(ih, v4(n, 6881), role, now)
        };
        let a = s.announce::<Peer4>(&req, |p, _| got.push(p.addr()));
        (a, got)
    }

    /// An announce of `role` at `now` that wants nothing and has no id.
    fn req<A>(ih: &InfoHash, addr: A, role: Role, now: u32) -> Announce<'static, A> {
        Announce {
            info_hash: *ih,
            addr,
            role,
            completed: false,
            now,
            want: 0,
            random: (0, 0),
            peer_id: None,
            emit_ids: false,
        }
    }

    #[test]
    fn torrent_entry_is_small() {
        // Info hash plus torrent, packed: 1 M one-peer torrents in about 56 MB.
        assert!(std::mem::size_of::<table::Entry>() <= 48);
    }

    #[test]
    fn counts_roles_and_completed_once() {
        let s = Swarm::new(4, 600);
        let ih = [1u8; 20];
        let (a, peers) = announce4(&s, &ih, 1, Role::Leecher, false, 0, 50);
        assert_eq!(
            a.counts,
            Counts {
                seeders: 0,
                leechers: 1,
                completed: 0
            }
        );
        assert!(peers.is_empty(), "never sent itself");
        let (a, peers) = announce4(&s, &ih, 2, Role::Seeder, false, 0, 50);
        assert_eq!((a.counts.seeders, a.counts.leechers), (1, 1));
        assert_eq!(peers, vec![v4(1, 6881)]);
        // Peer 1 completes: counted once; a repeat completed is not counted again.
        let (a, peers) = announce4(&s, &ih, 1, Role::Seeder, true, 1, 50);
        assert_eq!(
            a.counts,
            Counts {
                seeders: 2,
                leechers: 0,
                completed: 1
            }
        );
        assert!(peers.is_empty(), "a seeder gets leechers only");
        let (a, _) = announce4(&s, &ih, 1, Role::Seeder, true, 2, 50);
        assert_eq!(a.counts.completed, 1);
        assert_eq!(
            s.scrape(&ih),
            Counts {
                seeders: 2,
                leechers: 0,
                completed: 1
            }
        );
        // A leecher sees both seeders.
        let (_, peers) = announce4(&s, &ih, 3, Role::Leecher, false, 2, 50);
        assert_eq!(peers.len(), 2);
        // Stopped removes and gets nothing.
        let (a, peers) = announce4(&s, &ih, 2, Role::Stopped, false, 3, 50);
        assert_eq!((a.counts.seeders, a.counts.leechers, a.peers), (1, 1, 0));
        assert!(peers.is_empty());
        let t = s.totals();
        assert_eq!((t.torrents, t.seeders4, t.leechers4), (1, 1, 1));
        announce4(&s, &ih, 1, Role::Stopped, false, 3, 50);
        announce4(&s, &ih, 3, Role::Stopped, false, 3, 50);
        assert_eq!(s.totals(), Totals::default(), "empty torrent dropped");
        assert_eq!(s.scrape(&ih), Counts::default());
    }

    #[test]
    fn completed_counts_only_a_seeder_once() {
        let s = Swarm::new(1, 600);
        let ih = [3u8; 20];
        // `completed` with left > 0 (a confused client) is not a download.
        announce4(&s, &ih, 1, Role::Leecher, true, 0, 0);
        announce4(&s, &ih, 1, Role::Leecher, true, 0, 0);
        assert_eq!(s.scrape(&ih).completed, 0);
        announce4(&s, &ih, 1, Role::Seeder, true, 0, 0);
        announce4(&s, &ih, 1, Role::Seeder, true, 0, 0);
        assert_eq!(s.scrape(&ih).completed, 1);
        // An IPv6 `stopped` on an IPv4-only torrent creates no IPv6 set.
        let stop6 = req(&ih, (Ipv6Addr::LOCALHOST, 1), Role::Stopped, 0);
        s.announce::<Peer6>(&stop6, |_, _| {});
        let shard = s.shards[0].0.lock();
        assert!(shard.torrents.get(&ih).is_some_and(|t| !t.is_big()));
    }

    #[test]
    fn a_full_map_answers_but_stores_no_new_peer() {
        let s = Swarm::new(1, 600).with_max_peers(3);
        let ih = [4u8; 20];
        for n in 1..=3 {
            assert!(!announce4(&s, &ih, n, Role::Leecher, false, 0, 0).0.full);
        }
        let (a, peers) = announce4(&s, &ih, 9, Role::Leecher, false, 0, 50);
        assert!(a.full);
        assert_eq!((a.counts.leechers, peers.len()), (3, 3), "still gets peers");
        let (a, _) = announce4(&s, &[5u8; 20], 9, Role::Leecher, false, 0, 50);
        assert!(a.full && s.totals().torrents == 1, "no new torrent either");
        // Known peers still refresh and change role; a stop makes room.
        assert!(!announce4(&s, &ih, 2, Role::Seeder, false, 1, 0).0.full);
        assert_eq!(s.scrape(&ih).seeders, 1);
        announce4(&s, &ih, 3, Role::Stopped, false, 1, 0);
        assert!(!announce4(&s, &ih, 9, Role::Leecher, false, 1, 0).0.full);
        assert_eq!(s.totals().peers(), 3);
    }

    #[test]
    fn families_are_separate_but_counted_together() {
        let s = Swarm::new(1, 600);
        let ih = [2u8; 20];
        announce4(&s, &ih, 1, Role::Seeder, false, 0, 50);
        let mut got6 = Vec::new();
        let leech6 = Announce {
            want: 50,
            ..req(&ih, (Ipv6Addr::LOCALHOST, 1), Role::Leecher, 0)
        };
        let a = s.announce::<Peer6>(&leech6, |p, _| got6.push(p.addr()));
        assert!(got6.is_empty(), "IPv6 announcer gets no IPv4 peers");
        assert_eq!((a.counts.seeders, a.counts.leechers), (1, 1));
        let mut got4 = Vec::new();
        assert_eq!(
            s.sample::<Peer4, _>(&leech6, 10, |p, _| got4.push(p.addr())),
            1
        );
        let t = s.totals();
        assert_eq!((t.seeders4, t.leechers6), (1, 1));
    }

    #[test]
    fn http_peer_ids_are_kept_for_their_peers_only() {
        let s = Swarm::new(1, 100);
        let ih = [5u8; 20];
        let (a, c) = ([b'a'; 20], [b'c'; 20]);
        let with_id = |addr, id, role, now, want| Announce {
            want,
            peer_id: Some(id),
            emit_ids: true,
            ..req(&ih, addr, role, now)
        };
        s.announce::<Peer4>(&with_id(v4(1, 1), &a, Role::Seeder, 0, 0), |_, _| {});
        announce4(&s, &ih, 2, Role::Seeder, false, 50, 0); // a UDP peer: no id
        let mut got = Vec::new();
        s.announce::<Peer4>(&with_id(v4(3, 1), &c, Role::Leecher, 50, 9), |p, id| {
            got.push((p.addr(), id.copied()))
        });
        got.sort();
        assert_eq!(got, vec![(v4(1, 1), Some([b'a'; 20])), (v4(2, 6881), None)]);
        // Stopped forgets the id; expiry forgets ids of expired peers.
        s.announce::<Peer4>(&with_id(v4(3, 1), &c, Role::Stopped, 50, 0), |_, _| {});
        assert_eq!(s.shards[0].0.lock().peer_ids.len(), 1);
        s.expire_shard(0, 120); // peer 1 (t=0) expires, peer 2 (t=50) stays
        assert!(s.shards[0].0.lock().peer_ids.is_empty());
        assert_eq!(s.scrape(&ih).seeders, 1);
    }

    #[test]
    fn a_shard_unswept_for_longer_than_its_stamps_span_keeps_no_stale_peer() {
        let s = Swarm::new(1, 100);
        announce4(&s, &[1; 20], 1, Role::Leecher, false, 0, 0);
        // 40 000 s later the 16-bit age of peer 1 reads as -25 536: "fresh".
        assert_eq!(s.expire_shard(0, 40_000), 1, "the stale peer is dropped");
        assert_eq!(s.totals(), Totals::default());
        // Swept in time, a fresh peer survives.
        announce4(&s, &[1; 20], 2, Role::Leecher, false, 40_050, 0);
        assert_eq!(s.expire_shard(0, 40_100), 0);
        assert_eq!(s.totals().peers(), 1);
    }

    #[test]
    fn expiry_drops_stale_peers_and_empty_torrents() {
        let s = Swarm::new(2, 100);
        for i in 0..20u8 {
            announce4(&s, &[i; 20], 1, Role::Leecher, false, 0, 0);
        }
        announce4(&s, &[0; 20], 2, Role::Seeder, false, 90, 0);
        // At t=150 peer 1 (t=0) is stale everywhere, peer 2 (t=90) is not.
        let removed: usize = (0..s.shard_count()).map(|i| s.expire_shard(i, 150)).sum();
        assert_eq!(removed, 20);
        let t = s.totals();
        assert_eq!((t.torrents, t.seeders4, t.leechers4), (1, 1, 0));
        assert_eq!(s.scrape(&[0; 20]).seeders, 1);
        let removed: usize = (0..s.shard_count()).map(|i| s.expire_shard(i, 191)).sum();
        assert_eq!(removed, 1);
        assert_eq!(s.totals(), Totals::default());
    }
}
