//! A joining instance's state: the swarm as a warm-restart snapshot
//! ([`crate::snapshot`]) in memory, and the import of several instances'
//! snapshots into one map without counting anything twice.
//!
//! Guarantees:
//! - the export holds one shard's lock at a time and only copies into memory;
//! - the snapshot's connection-id key is all zeros: it goes over the network
//!   to Redis, and each instance keeps its own key;
//! - import is all-or-nothing per snapshot (the loader validates the whole
//!   blob first); the same peer in two snapshots is stored once (upsert), with
//!   the age of the newest snapshot when snapshots are imported oldest first;
//!   a torrent's completed count is the largest over the snapshots, never the
//!   sum (each instance's count is already the cluster's).

use crate::snapshot::{self, Header, PeerRecord4, PeerRecord6, SnapshotWriter, TorrentRecord};
use crate::swarm::peers::{Peer, Stamp};
use crate::swarm::Swarm;
use std::io;

/// Age in seconds of a peer stamped `stamp`, at tracker second `now`.
fn age(now: u32, stamp: Stamp) -> u32 {
    let a = (now as Stamp).wrapping_sub(stamp) as i16;
    a.max(0) as u32
}

/// The whole swarm as snapshot bytes, ages relative to `now` (tracker
/// seconds) and written at `now_unix`.
pub fn export(swarm: &Swarm, now: u32, now_unix: u64, peer_timeout: u32) -> io::Result<Vec<u8>> {
    let header = Header {
        written_unix: now_unix,
        peer_timeout,
        connid_key: [0; 16],
    };
    let mut w = SnapshotWriter::new(Vec::new(), &header)?;
    let mut rec = TorrentRecord::default();
    let mut err = None;
    for shard in 0..swarm.shard_count() {
        swarm.visit_shard(shard, |ih, completed, (v4, s4), (v6, s6)| {
            rec.clear();
            rec.info_hash = *ih;
            rec.completed = completed;
            rec.v4.extend(v4.iter().enumerate().map(|(i, p)| {
                let (ip, port) = p.addr();
                PeerRecord4 {
                    ip,
                    port,
                    seeder: i < s4,
                    age: age(now, p.stamp()),
                }
            }));
            rec.v6.extend(v6.iter().enumerate().map(|(i, p)| {
                let (ip, port) = p.addr();
                PeerRecord6 {
                    ip,
                    port,
                    seeder: i < s6,
                    age: age(now, p.stamp()),
                }
            }));
            if let Err(e) = w.write_torrent(&rec) {
                err.get_or_insert(e);
            }
        });
    }
    if let Some(e) = err {
        return Err(e);
    }
    w.finish()
}

/// What an import stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Imported {
    pub torrents: u64,
    pub peers: u64,
}

/// Decode every snapshot in `blobs` and add it to `swarm` at tracker second
/// `now` (peers keep their ages). Snapshots that do not decode are skipped
/// (returned as errors alongside what was imported). The oldest snapshot goes
/// first, so a peer seen by several instances keeps its newest age.
pub fn import(
    swarm: &Swarm,
    blobs: Vec<Vec<u8>>,
    now: u32,
    now_unix: u64,
    peer_timeout: u32,
) -> (Imported, Vec<snapshot::SnapshotError>) {
    let mut errors = Vec::new();
    let mut loaded = Vec::new();
    for b in blobs {
        match snapshot::decode(b, now_unix, peer_timeout) {
            Ok(l) => loaded.push(l),
            Err(e) => errors.push(e),
        }
    }
    loaded.sort_by_key(|l| l.header().written_unix);
    let mut total = Imported::default();
    for mut l in loaded {
        let m = swarm.merge(&mut l, now);
        total.torrents += m.torrents;
        total.peers += m.peers;
    }
    (total, errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::swarm::{Announce, Counts, Peer4, Role};
    use std::net::Ipv4Addr;

    fn announce(s: &Swarm, ih: u8, n: u8, role: Role, completed: bool, now: u32) {
        let req = Announce {
            info_hash: [ih; 20],
            addr: (Ipv4Addr::new(10, 0, 0, n), 1),
            role,
            completed,
            now,
            want: 0,
            random: (0, 0),
            peer_id: None,
            emit_ids: false,
        };
        s.announce::<Peer4>(&req, |_, _| {});
    }

    #[test]
    fn two_instances_snapshots_merge_without_double_counting() {
        // A and B saw the same peers (the cluster synced them) and the same
        // download; B also has a peer of its own.
        let (a, b) = (Swarm::new(4, 600), Swarm::new(4, 600));
        for s in [&a, &b] {
            announce(s, 1, 1, Role::Leecher, false, 100);
            announce(s, 1, 1, Role::Seeder, true, 110);
            announce(s, 1, 2, Role::Leecher, false, 120);
        }
        announce(&b, 1, 3, Role::Leecher, false, 130);
        let blobs = vec![
            export(&a, 140, 1_000_140, 600).unwrap(),
            export(&b, 140, 1_000_141, 600).unwrap(),
        ];
        // A fresh instance D, started at tracker second 0, ten seconds later.
        let d = Swarm::new(4, 600);
        let (got, errs) = import(&d, blobs, 0, 1_000_150, 600);
        assert!(errs.is_empty());
        assert_eq!(got.torrents, 2);
        assert_eq!(
            d.scrape(&[1; 20]),
            Counts {
                seeders: 1,
                leechers: 2,
                completed: 1
            },
            "the same peers and download, once"
        );
        // Ages survived: peer 1 was 30 s old at B's export, 39 s at D's
        // start (B's is the newer snapshot), so it leaves at about 561 s.
        assert_eq!(d.expire_shard_all(555), 0);
        assert_eq!(d.expire_shard_all(565), 1);
    }

    #[test]
    fn a_bad_blob_is_skipped_not_half_applied() {
        let a = Swarm::new(1, 600);
        announce(&a, 1, 1, Role::Leecher, false, 0);
        let mut bad = export(&a, 0, 1000, 600).unwrap();
        let n = bad.len();
        bad[n - 20] ^= 1;
        let d = Swarm::new(1, 600);
        let (got, errs) = import(&d, vec![bad, b"junk".to_vec()], 0, 1000, 600);
        assert_eq!((got, errs.len()), (Imported::default(), 2));
        assert_eq!(d.totals().peers(), 0);
    }

    impl Swarm {
        fn expire_shard_all(&self, now: u32) -> usize {
            (0..self.shard_count())
                .map(|i| self.expire_shard(i, now))
                .sum()
        }
    }
}
