//! A joining instance's state: the swarm as a warm-restart snapshot
//! ([`crate::snapshot`]) in memory, signed and stamped with the stream
//! position it reflects; the import of several instances' snapshots into one
//! map without counting anything twice; and [`join`], which loads them and
//! says where the subscriber starts reading.
//!
//! # Stored value (integers big-endian)
//! ```text
//! 0..4    magic "SHST"
//! 4       version (1)
//! 5..8    reserved, 0
//! 8..16   the writer's instance id
//! 16..32  the stream id its subscriber had applied (ms, seq)
//! 32..    the snapshot
//! last 32 HMAC-SHA256 (the state key, [`super::auth`]) of everything before it
//! ```
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

use super::auth::{Keys, TAG_LEN};
use super::link::{connect, redacted, Context};
use super::stream::{self, StreamId};
use super::{ClusterConfig, Status};
use crate::snapshot::{self, Header, PeerRecord4, PeerRecord6, SnapshotWriter, TorrentRecord};
use crate::swarm::peers::{Peer, Stamp};
use crate::swarm::Swarm;
use crate::time::unix_now;
use std::io;
use std::sync::atomic::Ordering;

const MAGIC: [u8; 4] = *b"SHST";
const VERSION: u8 = 1;
const HEAD_LEN: usize = 32;

/// A snapshot as stored in Redis: signed, with the writer and the stream
/// position it reflects.
pub fn wrap(keys: &Keys, instance: u64, position: StreamId, snapshot: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEAD_LEN + snapshot.len() + TAG_LEN);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[VERSION, 0, 0, 0]);
    out.extend_from_slice(&instance.to_be_bytes());
    out.extend_from_slice(&position.ms.to_be_bytes());
    out.extend_from_slice(&position.seq.to_be_bytes());
    out.extend_from_slice(snapshot);
    let tag = keys.sign_state(&out);
    out.extend_from_slice(&tag);
    out
}

/// The position and snapshot of a stored value, if it is one signed under
/// `keys`.
pub fn unwrap<'a>(keys: &Keys, bytes: &'a [u8]) -> Result<(StreamId, &'a [u8]), &'static str> {
    if bytes.len() < HEAD_LEN + TAG_LEN || bytes[..4] != MAGIC {
        return Err("not a shoal cluster state");
    }
    if bytes[4..8] != [VERSION, 0, 0, 0] {
        return Err("a state version this build does not read");
    }
    let (body, tag) = bytes.split_at(bytes.len() - TAG_LEN);
    if !keys.verify_state(body, tag) {
        return Err("its tag does not verify (another secret, or none)");
    }
    let word = |at: usize| {
        body.get(at..at + 8)
            .and_then(|s| s.try_into().ok())
            .map_or(0, u64::from_be_bytes)
    };
    let position = StreamId {
        ms: word(16),
        seq: word(24),
    };
    Ok((position, &body[HEAD_LEN..]))
}

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

/// Before serving: load the other instances' stored states into the swarm
/// and return the stream position to read from — the newest position among
/// the states loaded (what they reflect), or the start of the stream if
/// there are none. `None`: Redis is unreachable (the subscriber then reads
/// the whole backlog once it connects). Bad states are logged and skipped.
pub fn join(
    cfg: &ClusterConfig,
    keys: &Keys,
    status: &Status,
    ctx: &Context,
    client: &redis::Client,
) -> Option<StreamId> {
    let (blobs, first) = match fetch(cfg, status.instance, client) {
        Ok(b) => b,
        Err(e) => {
            log::warn!(
                "cluster: could not load the other instances' state from {} ({e}); starting empty",
                redacted(&cfg.url)
            );
            return None;
        }
    };
    let stored = blobs.len();
    let mut snapshots = Vec::with_capacity(stored);
    let mut position = None;
    for b in &blobs {
        match unwrap(keys, b) {
            Ok((pos, snap)) => {
                snapshots.push(snap.to_vec());
                position = position.max(Some(pos));
            }
            Err(e) => log::warn!("cluster: skipped another instance's state: {e}"),
        }
    }
    drop(blobs);
    let (got, errors) = import(
        ctx.tracker.swarm(),
        snapshots,
        ctx.now(),
        unix_now(),
        ctx.peer_timeout(),
    );
    for e in &errors {
        log::warn!("cluster: skipped another instance's state: {e}");
    }
    status
        .state_loaded_peers
        .store(got.peers, Ordering::Relaxed);
    let from = position.unwrap_or(StreamId::ZERO);
    if let (Some(p), Some(first)) = (position, first) {
        if first > p && p != StreamId::ZERO {
            log::warn!(
                "cluster: the newest stored state ({p}) is older than the stream's backlog (from {first}): events in between are missed; keep --state-interval below --cluster-backlog"
            );
        }
    }
    log::info!(
        "cluster: loaded {} peers of {} torrents from {} stored state(s); reading the stream from {from}",
        got.peers,
        got.torrents,
        stored - errors.len()
    );
    *status.position.lock() = from;
    Some(from)
}

/// Every other instance's stored value, and the first id of the stream.
fn fetch(
    cfg: &ClusterConfig,
    own: u64,
    client: &redis::Client,
) -> redis::RedisResult<(Vec<Vec<u8>>, Option<StreamId>)> {
    let mut con = connect(client)?;
    let own = cfg.state_key(own);
    let mut keys = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(cfg.state_pattern())
            .arg("COUNT")
            .arg(1000)
            .query(&mut con)?;
        keys.extend(batch.into_iter().filter(|k| *k != own));
        if next == 0 || keys.len() > 10_000 {
            break;
        }
        cursor = next;
    }
    let mut blobs = Vec::with_capacity(keys.len());
    for k in keys {
        let blob: Option<Vec<u8>> = redis::cmd("GET").arg(&k).query(&mut con)?;
        blobs.extend(blob);
    }
    let first = stream::first_id_of(&mut con, &cfg.stream_key())?;
    Ok((blobs, first))
}

#[cfg(test)]
mod tests {
    use super::super::auth::Secret;
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

    #[test]
    fn stored_states_are_signed_and_carry_their_position() {
        let keys = Keys::derive(Some(&Secret::new(b"0123456789abcdef").unwrap()), "t");
        let pos = StreamId {
            ms: 1_700_000_000_000,
            seq: 4,
        };
        let blob = wrap(&keys, 9, pos, b"snapshot bytes");
        assert_eq!(&blob[..8], b"SHST\x01\0\0\0");
        assert_eq!(unwrap(&keys, &blob), Ok((pos, &b"snapshot bytes"[..])));
        let other = Keys::derive(Some(&Secret::new(b"0123456789abcdeX").unwrap()), "t");
        assert!(unwrap(&other, &blob).is_err(), "another secret");
        assert!(
            unwrap(&Keys::derive(None, "t"), &blob).is_err(),
            "no secret"
        );
        for at in [0, 4, 20, 40, blob.len() - 1] {
            let mut bad = blob.clone();
            bad[at] ^= 1;
            assert!(unwrap(&keys, &bad).is_err(), "byte {at}");
        }
        assert!(unwrap(&keys, &blob[..40]).is_err());
        assert!(unwrap(&keys, b"").is_err());
    }

    impl Swarm {
        fn expire_shard_all(&self, now: u32) -> usize {
            (0..self.shard_count())
                .map(|i| self.expire_shard(i, now))
                .sum()
        }
    }
}
