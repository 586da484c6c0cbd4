//! The swarm's side of a warm restart: copying the map out into snapshot
//! records ([`crate::snapshot`]) and putting a loaded snapshot back in.
//!
//! Guarantees:
//! - **One shard lock at a time, no I/O under it.** Export locks a shard,
//!   copies its torrents into reusable records ([`ExportBuf`]), releases the
//!   lock, and only then hands the records to the sink (a file, a `Vec<u8>`):
//!   a slow disk stalls no request, and a request waits at most for the copy
//!   of one shard (about 2 000 peers of a 2 M-peer map of 1024 shards).
//! - **Ages, not stamps.** A peer is written with its age (`now` minus its
//!   last announce) and comes back stamped `now - age` on the importing
//!   clock, whatever that clock reads: it expires exactly when it would have
//!   (the loader has already added the downtime). Import marks every shard as
//!   swept at `now`, so the first sweep after a restart trusts the stamps
//!   instead of reading a long unswept gap as ambiguous and emptying the map.
//! - **Same peers, same counts.** Roles, completed counts and the peer ids of
//!   HTTP peers survive; a peer already past the timeout (not yet swept) is not
//!   written; a torrent without peers is not imported (the live map drops such
//!   a torrent at once too).
//! - **Any byte sink.** [`Swarm::write_snapshot`] writes a complete snapshot
//!   into any `Write` (a file, a buffer for another store); [`Swarm::import`]
//!   takes a validated [`Loaded`], from a file ([`crate::snapshot::load`]) or
//!   from bytes ([`crate::snapshot::decode`]).

use super::peers::{is_fresh, Peer, Stamp};
use super::{
    Announce, InfoHash, Open, Peer4, Peer6, PeerFamily, PeerId, Role, Shard, Swarm, Torrent,
};
use crate::snapshot::{Header, Loaded, PeerRecord4, PeerRecord6, SnapshotWriter, TorrentRecord};
use std::io::{self, Write};
use std::net::IpAddr;

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exported {
    pub torrents: u64,
    pub peers: u64,
}

/// What an import stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Imported {
    pub torrents: u64,
    pub peers: u64,
    /// HTTP peer ids restored.
    pub peer_ids: u64,
    /// Peers in the snapshot the map had no room for (`--max-peers`).
    pub not_stored: u64,
}

/// What a merge ([`Swarm::merge`]) was offered: the snapshot's torrents and
/// peers, whether new to the map or already in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Merged {
    pub torrents: u64,
    pub peers: u64,
}

/// One shard's torrents as records, reused from shard to shard so an export
/// allocates only while the largest shard seen so far grows.
#[derive(Debug, Default)]
pub struct ExportBuf {
    records: Vec<TorrentRecord>,
    used: usize,
}

impl ExportBuf {
    /// The records of the last copied shard.
    pub fn records(&self) -> &[TorrentRecord] {
        &self.records[..self.used]
    }

    /// A cleared record to fill next.
    fn next(&mut self) -> &mut TorrentRecord {
        if self.used == self.records.len() {
            self.records.push(TorrentRecord::default());
        }
        let rec = &mut self.records[self.used];
        self.used += 1;
        rec.clear();
        rec
    }
}

/// A peer's age at `now` in seconds; a stamp a little ahead of `now` (another
/// worker's later clock turn) is age 0.
fn age(now: Stamp, stamp: Stamp) -> u32 {
    (now.wrapping_sub(stamp) as i16).max(0) as u32
}

/// The peer-id side table of a shard.
use super::shard::PeerIds;

/// What copying one torrent's peers needs to know.
#[derive(Clone, Copy)]
struct Scope<'a> {
    now: Stamp,
    timeout: u16,
    /// The shard's peer ids and the torrent's hash; `None` when the shard has no id.
    ids: Option<(&'a PeerIds, &'a InfoHash)>,
}

/// Copies one family's fresh peers into `out`, with their ids.
fn copy_family<P: PeerFamily, R>(
    torrent: &Torrent,
    cx: Scope<'_>,
    first_index: usize,
    out: &mut Vec<R>,
    out_ids: &mut Vec<(u32, PeerId)>,
    make: impl Fn(&P, bool, u32) -> R,
) {
    let Scope { now, timeout, ids } = cx;
    let (set, seeders) = torrent.peers::<P>();
    for (i, p) in set.iter().enumerate() {
        if !is_fresh(now, Some(timeout), p.stamp()) {
            continue;
        }
        if let Some((ids, info_hash)) = ids {
            let (ip, port) = P::socket_addr(&p.addr());
            if let Some(id) = ids.get(&(*info_hash, ip, port)) {
                out_ids.push(((first_index + out.len()) as u32, *id));
            }
        }
        out.push(make(p, i < seeders, age(now, p.stamp())));
    }
}

impl Swarm {
    /// Copies the torrents of shard `shard % shard_count()` into `buf` (its
    /// previous contents are replaced), under that shard's lock only.
    pub fn export_shard(&self, shard: usize, now: u32, buf: &mut ExportBuf) {
        buf.used = 0;
        let stamp = now as Stamp;
        let timeout = self.peer_timeout;
        let guard = self.shards[shard & (self.shards.len() - 1)].lock();
        let Shard {
            torrents, peer_ids, ..
        } = &*guard;
        let with_ids = !peer_ids.is_empty();
        for (info_hash, torrent) in torrents.iter() {
            let rec = buf.next();
            rec.info_hash = *info_hash;
            rec.completed = torrent.counts().completed;
            let cx = Scope {
                now: stamp,
                timeout,
                ids: with_ids.then_some((peer_ids, info_hash)),
            };
            copy_family::<Peer4, _>(
                torrent,
                cx,
                0,
                &mut rec.v4,
                &mut rec.peer_ids,
                |p, seeder, age| {
                    let (ip, port) = p.addr();
                    PeerRecord4 {
                        ip,
                        port,
                        seeder,
                        age,
                    }
                },
            );
            let n4 = rec.v4.len();
            copy_family::<Peer6, _>(
                torrent,
                cx,
                n4,
                &mut rec.v6,
                &mut rec.peer_ids,
                |p, seeder, age| {
                    let (ip, port) = p.addr();
                    PeerRecord6 {
                        ip,
                        port,
                        seeder,
                        age,
                    }
                },
            );
            if rec.peers() == 0 {
                // Every peer stale, not yet swept: nothing worth restoring.
                buf.used -= 1;
            }
        }
    }

    /// Every torrent as a record, shard by shard, handed to `sink` after the
    /// shard's lock is released. Stops at the sink's first error.
    pub fn export_with(
        &self,
        now: u32,
        mut sink: impl FnMut(&TorrentRecord) -> io::Result<()>,
    ) -> io::Result<Exported> {
        let mut buf = ExportBuf::default();
        let mut done = Exported::default();
        for shard in 0..self.shards.len() {
            self.export_shard(shard, now, &mut buf);
            for rec in buf.records() {
                sink(rec)?;
                done.torrents += 1;
                done.peers += rec.peers() as u64;
            }
        }
        Ok(done)
    }

    /// A complete snapshot (header, every torrent, trailer) into `out`; `now`
    /// is the tracker clock the ages are taken at, `header.written_unix` the
    /// wall-clock time it stands for. Returns the writer and the counts.
    pub fn write_snapshot<W: Write>(
        &self,
        now: u32,
        header: &Header,
        out: W,
    ) -> io::Result<(W, Exported)> {
        let mut w = SnapshotWriter::new(out, header)?;
        let done = self.export_with(now, |rec| w.write_torrent(rec))?;
        Ok((w.finish()?, done))
    }

    /// Stores every torrent of `loaded` (ages already advanced by the
    /// downtime, expired peers already dropped) with its peers stamped
    /// `now - age`, its completed count and its HTTP peer ids. Each peer goes
    /// through the announce path (an announce made `age` seconds before `now`
    /// that wants no peers), so the map's bounds and accounting apply to it as
    /// to any other; a peer the map has no room for is counted in
    /// [`Imported::not_stored`]. Meant for an empty map before serving.
    pub fn import(&self, loaded: &mut Loaded, now: u32) -> Imported {
        let mut rec = TorrentRecord::default();
        let mut done = Imported::default();
        let mut offered = 0u64;
        while loaded.next_into(&mut rec) {
            if rec.peers() == 0 {
                continue;
            }
            let info_hash = rec.info_hash;
            let at = self.shard_at(&info_hash);
            let mut guard = self.shards[at].lock();
            let shard = &mut *guard;
            // Past its bounds the map evicts its stalest (or leaves out a
            // peer nothing makes room for), so what was not kept is read
            // back from the torrent afterwards.
            self.store_record(at, shard, &rec, now);
            offered += rec.peers() as u64;
            if shard.torrents.lookup(&info_hash).is_err() {
                continue;
            }
            self.restore_count(at, shard, &info_hash, rec.completed, false);
            for &(index, id) in &rec.peer_ids {
                let i = index as usize;
                let Ok(pos) = shard.torrents.lookup(&info_hash) else {
                    break;
                };
                let torrent = shard.torrents.torrent_at(pos);
                let key = match (rec.v4.get(i), rec.v6.get(i.wrapping_sub(rec.v4.len()))) {
                    (Some(p), _)
                        if torrent.contains::<Peer4>(&(p.ip, p.port), &self.peer_hasher) =>
                    {
                        (info_hash, IpAddr::V4(p.ip), p.port)
                    }
                    (None, Some(p))
                        if torrent.contains::<Peer6>(&(p.ip, p.port), &self.peer_hasher) =>
                    {
                        (info_hash, IpAddr::V6(p.ip), p.port)
                    }
                    // Not stored (no room), or an index the loader would
                    // have refused: no id to keep.
                    _ => continue,
                };
                if self.keep_peer_id(at, shard, key, &id) {
                    done.peer_ids += 1;
                }
            }
            done.torrents += 1;
            self.settle(at, shard);
        }
        // The stamps just written are exact at `now`: the next sweep measures
        // from here, not from the empty map's start (see `expire_shard`).
        for (at, shard) in self.shards.iter().enumerate() {
            let mut guard = shard.lock();
            guard.swept_at = now;
            self.settle(at, &mut guard);
        }
        // Past 95 % of a bound the relief sweep evicts the stalest, here as
        // the control thread would. What is left is what the import
        // kept (the map was empty before it).
        for _ in 0..4 {
            if !self.under_pressure() {
                break;
            }
            self.relieve(now, 2 * self.shards.len());
        }
        done.peers = self.totals().peers();
        done.not_stored = offered.saturating_sub(done.peers);
        done
    }

    /// Adds every torrent of `loaded` to a map that is already serving (the
    /// state of other instances, [`crate::cluster`]): peers as [`Swarm::import`]
    /// stores them, the completed count raised to the snapshot's, and no
    /// peer ids (a non-compact reply lists such a peer without one until it
    /// announces here). A peer already held keeps whichever stamp was stored
    /// last. Returns what the snapshot offered.
    pub fn merge(&self, loaded: &mut Loaded, now: u32) -> Merged {
        let mut rec = TorrentRecord::default();
        let mut done = Merged::default();
        while loaded.next_into(&mut rec) {
            let at = self.shard_at(&rec.info_hash);
            let mut guard = self.shards[at].lock();
            let shard = &mut *guard;
            self.store_record(at, shard, &rec, now);
            // The other instance's count is already the cluster's: the
            // larger one never counts a download twice.
            self.restore_count(at, shard, &rec.info_hash, rec.completed, true);
            self.settle(at, shard);
            done.torrents += 1;
            done.peers += rec.peers() as u64;
        }
        done
    }

    /// Stores `rec`'s peers in `shard` (the shard of its info hash), each as
    /// an announce made `age` seconds before `now` that wants no peers, so
    /// the map's bounds and accounting apply to them as to any other.
    fn store_record(&self, at: usize, shard: &mut Shard, rec: &TorrentRecord, now: u32) {
        let role = |seeder| if seeder { Role::Seeder } else { Role::Leecher };
        let past = |age: u32, seeder: bool| Announce {
            info_hash: rec.info_hash,
            addr: (),
            role: role(seeder),
            completed: false,
            // 16-bit wrapping stamps: below zero on a young clock still
            // reads as the right age.
            now: now.wrapping_sub(age),
            want: 0,
            random: (0, 0),
            peer_id: None,
            emit_ids: false,
        };
        for p in &rec.v4 {
            let req = past(p.age, p.seeder).with_addr((p.ip, p.port));
            self.announce_locked::<Peer4, _>(at, shard, &req, &Open, |_, _| {});
        }
        for p in &rec.v6 {
            let req = past(p.age, p.seeder).with_addr((p.ip, p.port));
            self.announce_locked::<Peer6, _>(at, shard, &req, &Open, |_, _| {});
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Counts, Totals};
    use super::*;
    use crate::snapshot::decode;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const KEY: [u8; 16] = [9; 16];

    fn header(written_unix: u64) -> Header {
        Header {
            written_unix,
            peer_timeout: 100,
            connid_key: KEY,
        }
    }

    fn announce<P: PeerFamily>(
        s: &Swarm,
        ih: u8,
        addr: P::Addr,
        role: Role,
        completed: bool,
        now: u32,
        id: Option<&PeerId>,
    ) {
        let req = Announce {
            info_hash: [ih; 20],
            addr,
            role,
            completed,
            now,
            want: 0,
            random: (1, 2),
            peer_id: id,
            emit_ids: false,
        };
        s.announce::<P>(&req, |_, _| {});
    }

    /// Every torrent of `s` as sorted records (ages at `now`).
    fn records(s: &Swarm, now: u32) -> Vec<TorrentRecord> {
        let mut all = Vec::new();
        s.export_with(now, |r| {
            all.push(r.clone());
            Ok(())
        })
        .unwrap();
        for r in &mut all {
            r.v4.sort_by_key(|p| (p.ip, p.port));
            r.v6.sort_by_key(|p| (p.ip, p.port));
            // Indices depend on order: compare ids by address instead.
            r.peer_ids.clear();
        }
        all.sort_by_key(|r| r.info_hash);
        all
    }

    fn sample_swarm() -> Swarm {
        let s = Swarm::new(8, 100);
        let v4 = |n: u8| (Ipv4Addr::new(10, 0, 0, n), 6881);
        let v6 = |n: u16| (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n), 51413);
        for ih in 0..20u8 {
            for n in 0..(ih % 5) {
                let role = if n % 2 == 0 {
                    Role::Seeder
                } else {
                    Role::Leecher
                };
                announce::<Peer4>(
                    &s,
                    ih,
                    v4(n),
                    role,
                    role == Role::Seeder,
                    u32::from(n),
                    None,
                );
            }
        }
        announce::<Peer6>(&s, 1, v6(1), Role::Seeder, true, 3, Some(&[b'x'; 20]));
        announce::<Peer4>(&s, 1, v4(9), Role::Leecher, false, 4, Some(&[b'y'; 20]));
        announce::<Peer6>(&s, 30, v6(2), Role::Leecher, false, 5, None);
        s
    }

    #[test]
    fn a_round_trip_through_bytes_keeps_peers_roles_ages_counts_and_ids() {
        let a = sample_swarm();
        let (bytes, done) = a.write_snapshot(10, &header(5000), Vec::new()).unwrap();
        assert_eq!(done.peers, a.totals().peers());
        assert_eq!(done.torrents, a.totals().torrents);
        // Reloaded at the same wall-clock time into a clock that reads 7.
        let mut loaded = decode(bytes, 5000, 100).unwrap();
        assert_eq!(loaded.header().connid_key, KEY);
        let b = Swarm::new(4, 100);
        let got = b.import(&mut loaded, 7);
        assert_eq!(got.peers, done.peers);
        assert_eq!(got.peer_ids, 2);
        // The same peers and counts; the bytes differ with each map's growth history.
        assert_eq!(
            Totals {
                bytes: 0,
                ..a.totals()
            },
            Totals {
                bytes: 0,
                ..b.totals()
            }
        );
        // Ages at a's 10 equal ages at b's 7.
        assert_eq!(records(&a, 10), records(&b, 7));
        for ih in 0..31u8 {
            assert_eq!(a.scrape(&[ih; 20]), b.scrape(&[ih; 20]), "torrent {ih}");
        }
        assert_eq!(
            b.scrape(&[1; 20]),
            Counts {
                seeders: 2,
                leechers: 1,
                completed: 2
            }
        );
        // HTTP ids come back for their peers.
        let mut ids = Vec::new();
        let req = Announce {
            info_hash: [1; 20],
            addr: (Ipv4Addr::new(10, 0, 0, 77), 1),
            role: Role::Leecher,
            completed: false,
            now: 7,
            want: 50,
            random: (0, 0),
            peer_id: None,
            emit_ids: true,
        };
        b.announce::<Peer4>(&req, |p, id| ids.push((p.addr(), id.copied())));
        assert!(ids.contains(&((Ipv4Addr::new(10, 0, 0, 9), 6881), Some([b'y'; 20]))));
        let mut ids6 = Vec::new();
        b.sample::<Peer6, _>(&req, 50, |p, id| ids6.push((p.addr().1, id.copied())));
        assert_eq!(ids6, vec![(51413, Some([b'x'; 20]))]);
    }

    #[test]
    fn imported_peers_expire_when_they_would_have() {
        // Peer announced at 0 with a 100 s timeout is stale after 100. Snapshot
        // at 40, 25 s of downtime: 35 s of life are left on the new clock.
        let a = Swarm::new(1, 100);
        announce::<Peer4>(
            &a,
            1,
            (Ipv4Addr::LOCALHOST, 1),
            Role::Seeder,
            false,
            0,
            None,
        );
        announce::<Peer4>(
            &a,
            2,
            (Ipv4Addr::LOCALHOST, 2),
            Role::Seeder,
            false,
            30,
            None,
        );
        let (bytes, _) = a.write_snapshot(40, &header(1000), Vec::new()).unwrap();
        let b = Swarm::new(1, 100);
        // The new process's clock starts at 0, far below the old one.
        b.import(&mut decode(bytes, 1025, 100).unwrap(), 0);
        b.check_layouts();
        assert_eq!(b.expire_shard(0, 35), 0, "35 s left: still there at 35");
        assert_eq!(b.totals().peers(), 2);
        assert_eq!(b.expire_shard(0, 36), 1, "gone one second later");
        assert_eq!(b.expire_shard(0, 65), 0);
        assert_eq!(b.expire_shard(0, 66), 1, "the later peer 30 s after");
        assert_eq!(b.totals().torrents, 0);
    }

    #[test]
    fn import_into_a_late_clock_is_not_read_as_an_unswept_gap() {
        let a = Swarm::new(2, 100);
        announce::<Peer4>(
            &a,
            1,
            (Ipv4Addr::LOCALHOST, 1),
            Role::Leecher,
            false,
            5,
            None,
        );
        let (bytes, _) = a.write_snapshot(5, &header(1000), Vec::new()).unwrap();
        let b = Swarm::new(2, 100);
        b.import(&mut decode(bytes, 1000, 100).unwrap(), 50_000);
        let removed: usize = (0..2).map(|i| b.expire_shard(i, 50_010)).sum();
        assert_eq!(removed, 0, "a fresh imported peer survives the first sweep");
        assert_eq!(b.totals().peers(), 1);
    }

    #[test]
    fn stale_unswept_peers_are_not_written() {
        let a = Swarm::new(1, 100);
        announce::<Peer4>(
            &a,
            1,
            (Ipv4Addr::LOCALHOST, 1),
            Role::Leecher,
            false,
            0,
            None,
        );
        announce::<Peer4>(
            &a,
            2,
            (Ipv4Addr::LOCALHOST, 1),
            Role::Leecher,
            false,
            50,
            None,
        );
        let (bytes, done) = a.write_snapshot(120, &header(1), Vec::new()).unwrap();
        assert_eq!((done.torrents, done.peers), (1, 1));
        assert_eq!(decode(bytes, 1, 100).unwrap().counts(), (1, 1));
    }

    #[test]
    fn import_respects_the_peer_bound() {
        let a = sample_swarm();
        let (bytes, done) = a.write_snapshot(10, &header(1), Vec::new()).unwrap();
        let b = Swarm::new(1, 100).with_max_peers(5);
        let got = b.import(&mut decode(bytes, 1, 100).unwrap(), 10);
        // Past the bound the stalest are evicted, as when serving, down to
        // about 90 % of it.
        assert!((1..=5).contains(&got.peers), "{got:?}");
        assert_eq!(got.not_stored, done.peers - got.peers);
        assert_eq!(b.totals().peers(), got.peers);
    }

    #[test]
    fn a_merge_adds_to_a_serving_map_without_counting_twice() {
        let a = sample_swarm();
        let (bytes, done) = a.write_snapshot(10, &header(5000), Vec::new()).unwrap();
        // b already serves torrent 1 (a has it too: 2 seeders, 1 leecher, 2
        // downloads) with three seeders of its own that completed there, and
        // one seeder a also has.
        let b = Swarm::new(4, 100);
        for n in 200..203 {
            let own = (Ipv4Addr::new(10, 0, 0, n), 1);
            announce::<Peer4>(&b, 1, own, Role::Seeder, true, 9, None);
        }
        let shared = (Ipv4Addr::new(10, 0, 0, 0), 6881);
        announce::<Peer4>(&b, 1, shared, Role::Seeder, false, 9, None);
        let got = b.merge(&mut decode(bytes, 5000, 100).unwrap(), 7);
        assert_eq!((got.torrents, got.peers), (done.torrents, done.peers));
        b.check_layouts();
        // Every other torrent of a arrives as it was, completed count too.
        for ih in (0..31u8).filter(|&ih| ih != 1) {
            assert_eq!(a.scrape(&[ih; 20]), b.scrape(&[ih; 20]), "torrent {ih}");
        }
        // Torrent 1: the shared seeder once, b's own kept, and the larger
        // download count (each instance's is already the cluster's), not the sum.
        assert_eq!(
            b.scrape(&[1; 20]),
            Counts {
                seeders: 5,
                leechers: 1,
                completed: 3
            }
        );
        assert_eq!(b.totals().peers(), a.totals().peers() + 3);
    }

    #[test]
    fn an_empty_map_round_trips() {
        let (bytes, done) = Swarm::new(4, 100)
            .write_snapshot(0, &header(1), Vec::new())
            .unwrap();
        assert_eq!(done, Exported::default());
        let b = Swarm::new(4, 100);
        assert_eq!(
            b.import(&mut decode(bytes, 1, 100).unwrap(), 0),
            Imported::default()
        );
    }
}
