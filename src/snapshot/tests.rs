//! Snapshot tests: a byte fixture of the format, round trips, every truncation
//! and every flipped byte refused, foreign and future files, and the
//! crash-shaped faults on the real file system.

use super::*;
use proptest::prelude::*;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicU32, Ordering};

const KEY: [u8; 16] = [0x11; 16];

fn header(written_unix: u64) -> Header {
    Header {
        written_unix,
        peer_timeout: 1800,
        connid_key: KEY,
    }
}

fn tiny_record() -> TorrentRecord {
    TorrentRecord {
        info_hash: [0xaa; 20],
        completed: 3,
        v4: vec![PeerRecord4 {
            ip: Ipv4Addr::new(10, 0, 0, 1),
            port: 6881,
            seeder: true,
            age: 5,
        }],
        v6: vec![PeerRecord6 {
            ip: Ipv6Addr::LOCALHOST,
            port: 80,
            seeder: false,
            age: 10,
        }],
        peer_ids: vec![(1, [0x22; 20])],
    }
}

fn encode(h: &Header, recs: &[TorrentRecord]) -> Vec<u8> {
    let mut w = SnapshotWriter::new(Vec::new(), h).unwrap();
    for r in recs {
        w.write_torrent(r).unwrap();
    }
    w.finish().unwrap()
}

fn decode_all(
    bytes: Vec<u8>,
    now: u64,
    timeout: u32,
) -> Result<(Header, Vec<TorrentRecord>), SnapshotError> {
    let mut l = decode(bytes, now, timeout)?;
    let mut out = Vec::new();
    let mut rec = TorrentRecord::default();
    while l.next_into(&mut rec) {
        out.push(rec.clone());
    }
    Ok((*l.header(), out))
}

fn tiny_file() -> Vec<u8> {
    encode(&header(1000), &[tiny_record()])
}

#[test]
fn test_emit_fixture() {
    let mut want = Vec::new();
    want.extend_from_slice(b"SHOALSNP");
    want.extend_from_slice(&[1, 0, 0, 0]); // version 1, flags 0
    want.extend_from_slice(&1000u64.to_le_bytes());
    want.extend_from_slice(&1800u32.to_le_bytes());
    want.extend_from_slice(&KEY);
    assert_eq!(want.len(), format::HEADER_LEN);
    want.extend_from_slice(&[0xaa; 20]);
    want.extend_from_slice(&[3, 1]); // completed, n4
    want.extend_from_slice(&[10, 0, 0, 1, 0x1a, 0xe1, 0x05, 0x80]); // 10.0.0.1:6881 seeder age 5
    want.push(1); // n6
    want.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
    want.extend_from_slice(&[0, 80, 10, 0]); // port 80, leecher age 10
    want.extend_from_slice(&[1, 1]); // one id, index 1
    want.extend_from_slice(&[0x22; 20]);
    want.extend_from_slice(&1u64.to_le_bytes()); // torrents
    want.extend_from_slice(&2u64.to_le_bytes()); // peers
    let got = tiny_file();
    assert_eq!(got[..want.len()], want[..]);
    // The checksum pins the hash function and its key: changing either is a
    // format change and needs a new version.
    assert_eq!(got[want.len()..], 0x5b7a_bdb0_dcb2_6bef_u64.to_le_bytes());
    assert_eq!(got.len(), want.len() + 8);
}

#[test]
fn fuzz_seed_is_the_fixture() {
    // fuzz/corpus/snapshot/tiny is a control byte (reseal, no downtime) and
    // this fixture: a format change must refresh it.
    let seed = include_bytes!("../../fuzz/corpus/snapshot/tiny");
    assert_eq!(seed[0], 1);
    assert_eq!(seed[1..], tiny_file()[..]);
}

#[test]
fn test_round_trip_tiny() {
    let (h, recs) = decode_all(tiny_file(), 1000, 1800).unwrap();
    assert_eq!(h, header(1000));
    assert_eq!(recs, vec![tiny_record()]);
}

#[test]
fn ages_advance_by_downtime_and_expired_peers_drop() {
    // Down 1785 s: the v4 peer (age 5) is 1790 < 1800 and stays; the v6 peer
    // (age 10) reaches 1795... both stay. At 1791 s down the v6 peer reaches 1801.
    let (_, recs) = decode_all(tiny_file(), 1000 + 1785, 1800).unwrap();
    assert_eq!(recs[0].v4[0].age, 1790);
    assert_eq!(recs[0].v6[0].age, 1795);
    assert_eq!(recs[0].peer_ids, vec![(1, [0x22; 20])]);

    let mut l = decode(tiny_file(), 1000 + 1791, 1800).unwrap();
    let mut rec = TorrentRecord::default();
    assert!(l.next_into(&mut rec));
    assert_eq!(rec.v4[0].age, 1796);
    assert!(rec.v6.is_empty());
    assert!(
        rec.peer_ids.is_empty(),
        "the id of an expired peer is dropped with it"
    );
    assert_eq!(l.dropped_peers(), 1);
    assert!(!l.next_into(&mut rec));
}

#[test]
fn peer_id_indices_are_remapped_past_expired_peers() {
    let mut r = tiny_record();
    r.v4.insert(
        0,
        PeerRecord4 {
            ip: Ipv4Addr::new(10, 0, 0, 9),
            port: 1,
            seeder: false,
            age: 1800,
        },
    );
    r.peer_ids = vec![(0, [1; 20]), (2, [2; 20])];
    let (_, recs) = decode_all(encode(&header(1000), &[r]), 1001, 1800).unwrap();
    assert_eq!(recs[0].v4.len(), 1);
    assert_eq!(recs[0].peer_ids, vec![(1, [2; 20])]);
}

#[test]
fn empty_torrents_keep_completed_counts_only() {
    let mut gone = tiny_record();
    gone.completed = 0;
    gone.info_hash = [1; 20];
    let kept = tiny_record();
    let (_, recs) = decode_all(encode(&header(1000), &[gone, kept]), 1000 + 5000, 1800).unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].info_hash, [0xaa; 20]);
    assert_eq!(recs[0].completed, 3);
    assert_eq!(recs[0].peers(), 0);
}

#[test]
fn clock_going_back_is_no_downtime() {
    let l = decode(tiny_file(), 10, 1800).unwrap();
    assert_eq!(l.downtime(), 0);
}

#[test]
fn ages_saturate() {
    let mut r = tiny_record();
    r.v4[0].age = 1_000_000;
    let (_, recs) = decode_all(encode(&header(1000), &[r]), 1000, u32::MAX).unwrap();
    assert_eq!(recs[0].v4[0].age, format::MAX_AGE);
}

#[test]
fn writer_refuses_bad_peer_ids() {
    let mut w = SnapshotWriter::new(Vec::new(), &header(0)).unwrap();
    let mut r = tiny_record();
    r.peer_ids = vec![(2, [0; 20])];
    assert_eq!(
        w.write_torrent(&r).unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
    r.peer_ids = vec![(1, [0; 20]), (0, [0; 20])];
    assert_eq!(
        w.write_torrent(&r).unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
}

#[test]
fn every_truncation_is_refused() {
    let full = tiny_file();
    for len in 0..full.len() {
        let err = decode(full[..len].to_vec(), 1000, 1800).unwrap_err();
        assert!(err.is_corrupt(), "len {len}: {err:?}");
    }
}

#[test]
fn every_flipped_byte_is_refused() {
    let full = tiny_file();
    for i in 0..full.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut b = full.clone();
            b[i] ^= mask;
            assert!(
                decode(b, 1000, 1800).is_err(),
                "byte {i} ^ {mask:#x} accepted"
            );
        }
    }
}

#[test]
fn foreign_files_are_refused() {
    // An empty file is most likely a truncation (e.g. written by something else
    // without fsync); either way it is refused.
    assert_eq!(
        decode(Vec::new(), 0, 1800).unwrap_err(),
        SnapshotError::Truncated
    );
    assert_eq!(
        decode(b"[state]\npeers = 12\n".repeat(10), 0, 1800).unwrap_err(),
        SnapshotError::Foreign
    );
    let mut rng = fastrand::Rng::with_seed(7);
    for len in [1usize, 63, 64, 65, 4096] {
        let bytes: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
        assert!(decode(bytes, 0, 1800).unwrap_err().is_corrupt());
    }
    // Right magic, too short.
    assert_eq!(
        decode(b"SHOALSNP".to_vec(), 0, 1800).unwrap_err(),
        SnapshotError::Truncated
    );
}

#[test]
fn wrong_magic_future_version_and_flags() {
    let mut b = tiny_file();
    b[0] = b'X';
    assert_eq!(decode(b, 0, 1800).unwrap_err(), SnapshotError::Foreign);
    let mut b = tiny_file();
    b[8] = 2;
    assert_eq!(
        decode(b, 0, 1800).unwrap_err(),
        SnapshotError::FutureVersion(2)
    );
    let mut b = tiny_file();
    b[10] = 1;
    assert_eq!(
        decode(b, 0, 1800).unwrap_err(),
        SnapshotError::UnknownFlags(1)
    );
}

/// Re-checksums `body` (everything but the last 8 bytes) so a structural lie
/// reaches the structure checks.
fn reseal(mut b: Vec<u8>) -> Vec<u8> {
    let at = b.len() - 8;
    let mut h = format::checksum_hasher();
    h.write(&b[..at]);
    let sum = h.finish().to_le_bytes();
    b[at..].copy_from_slice(&sum);
    b
}

#[test]
fn lying_counts_with_a_valid_checksum_are_refused_without_allocating() {
    // A peer count of 2^32-1 (varint ff ff ff ff 0f) in a tiny file.
    let mut b = tiny_file();
    let n4_at = format::HEADER_LEN + 20 + 1;
    b.splice(n4_at..n4_at + 1, [0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert!(matches!(
        decode(reseal(b), 0, 1800).unwrap_err(),
        SnapshotError::Malformed(_)
    ));
    // Trailer counts 4 billion torrents.
    let mut b = tiny_file();
    let t_at = b.len() - format::TRAILER_LEN;
    b[t_at..t_at + 8].copy_from_slice(&4_000_000_000u64.to_le_bytes());
    assert!(matches!(
        decode(reseal(b), 0, 1800).unwrap_err(),
        SnapshotError::Malformed(_)
    ));
}

fn arb_record() -> impl Strategy<Value = TorrentRecord> {
    let p4 = (
        any::<[u8; 4]>(),
        any::<u16>(),
        any::<bool>(),
        0..=format::MAX_AGE,
    )
        .prop_map(|(ip, port, seeder, age)| PeerRecord4 {
            ip: ip.into(),
            port,
            seeder,
            age,
        });
    let p6 = (
        any::<[u8; 16]>(),
        any::<u16>(),
        any::<bool>(),
        0..=format::MAX_AGE,
    )
        .prop_map(|(ip, port, seeder, age)| PeerRecord6 {
            ip: ip.into(),
            port,
            seeder,
            age,
        });
    (
        any::<[u8; 20]>(),
        any::<u32>(),
        prop::collection::vec(p4, 0..20),
        prop::collection::vec(p6, 0..5),
        prop::collection::vec(any::<(bool, [u8; 20])>(), 0..25),
    )
        .prop_map(|(info_hash, completed, v4, v6, ids)| {
            let peer_ids = ids
                .into_iter()
                .take(v4.len() + v6.len())
                .enumerate()
                .filter(|(_, (keep, _))| *keep)
                .map(|(i, (_, id))| (i as u32, id))
                .collect();
            TorrentRecord {
                info_hash,
                completed: completed.max(1),
                v4,
                v6,
                peer_ids,
            }
        })
}

proptest! {
    #[test]
    fn round_trip(written in any::<u64>(), key in any::<[u8; 16]>(),
                  recs in prop::collection::vec(arb_record(), 0..8)) {
        let h = Header { written_unix: written, peer_timeout: 60, connid_key: key };
        // No downtime, timeout above every age: everything comes back as written.
        let (h2, back) = decode_all(encode(&h, &recs), written, u32::MAX).unwrap();
        prop_assert_eq!(h2, h);
        prop_assert_eq!(back, recs);
    }

    #[test]
    fn no_input_panics(bytes in prop::collection::vec(any::<u8>(), 0..300), now in any::<u64>()) {
        if let Ok(mut l) = decode(bytes, now, 1800) {
            let mut rec = TorrentRecord::default();
            while l.next_into(&mut rec) {}
        }
    }

    #[test]
    fn sealed_garbage_after_a_header_never_panics(body in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut b = tiny_file()[..format::HEADER_LEN].to_vec();
        b.extend_from_slice(&body);
        b.extend_from_slice(&[0; format::TRAILER_LEN]);
        if let Ok(mut l) = decode(reseal(b), 0, 1800) {
            let mut rec = TorrentRecord::default();
            while l.next_into(&mut rec) {}
        }
    }
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "shoal-snap-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn save(path: &Path, h: &Header, recs: &[TorrentRecord]) {
    let mut f = SnapshotFile::create(path, h).unwrap();
    for r in recs {
        f.write_torrent(r).unwrap();
    }
    f.commit().unwrap();
}

#[test]
fn file_round_trip_mode_0600_and_no_temp_left() {
    let d = TempDir::new();
    let path = d.0.join("state.bin");
    assert!(load(&path, 0, 1800).unwrap().is_none());
    save(&path, &header(1000), &[tiny_record()]);
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(!temp_path(&path).exists());
    let mut l = load(&path, 1000, 1800).unwrap().unwrap();
    assert_eq!(l.header().connid_key, KEY);
    let mut rec = TorrentRecord::default();
    assert!(l.next_into(&mut rec));
    assert_eq!(rec, tiny_record());
}

#[test]
fn torn_write_leaves_previous_snapshot_loadable() {
    let d = TempDir::new();
    let path = d.0.join("state.bin");
    save(&path, &header(1000), &[tiny_record()]);

    // A crash mid-write: a partial temp file with loose permissions left behind.
    let partial = &tiny_file()[..50];
    fs::write(temp_path(&path), partial).unwrap();
    fs::set_permissions(temp_path(&path), fs::Permissions::from_mode(0o644)).unwrap();
    let (_, recs) = decode_all(fs::read(&path).unwrap(), 1000, 1800).unwrap();
    assert_eq!(recs, vec![tiny_record()]);

    // A writer dropped before commit (an error mid-way) removes its temp file.
    {
        let mut f = SnapshotFile::create(&path, &header(2000)).unwrap();
        f.write_torrent(&TorrentRecord::default()).unwrap();
    }
    assert!(!temp_path(&path).exists());
    assert_eq!(
        load(&path, 1000, 1800)
            .unwrap()
            .unwrap()
            .header()
            .written_unix,
        1000
    );

    // The next snapshot replaces both, still 0600.
    fs::write(temp_path(&path), partial).unwrap();
    fs::set_permissions(temp_path(&path), fs::Permissions::from_mode(0o644)).unwrap();
    save(&path, &header(3000), &[]);
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        load(&path, 3000, 1800)
            .unwrap()
            .unwrap()
            .header()
            .written_unix,
        3000
    );
}

#[test]
fn corrupt_file_is_refused_and_moved_aside() {
    let d = TempDir::new();
    let path = d.0.join("state.bin");
    let mut b = tiny_file();
    b[60] ^= 4;
    fs::write(&path, &b).unwrap();
    let err = load(&path, 5000, 1800).unwrap_err();
    assert_eq!(err, SnapshotError::Checksum);
    assert!(err.is_corrupt());
    let moved = move_aside(&path, 1_700_000_000).unwrap();
    assert_eq!(moved, d.0.join("state.bin.corrupt-1700000000"));
    assert!(!path.exists());
    assert_eq!(fs::read(&moved).unwrap(), b);
    assert!(load(&path, 5000, 1800).unwrap().is_none());
}

#[test]
fn check_writable_accepts_a_directory_and_refuses_a_missing_one() {
    let d = TempDir::new();
    check_writable(&d.0.join("state.bin")).unwrap();
    assert_eq!(fs::read_dir(&d.0).unwrap().count(), 0, "probe removed");
    assert!(check_writable(&d.0.join("no/such/dir/state.bin")).is_err());
    assert!(
        check_writable(&d.0).is_err(),
        "a directory is no state file"
    );
    // An unreadable file is an Io error, not "corrupt": it is not moved aside.
    let err = load(&d.0, 0, 1800).unwrap_err();
    assert!(!err.is_corrupt(), "{err:?}");
}

#[test]
fn header_debug_hides_the_key() {
    let s = format!("{:?}", header(1));
    assert!(!s.contains("17"), "{s}");
    assert!(s.contains("redacted"));
}
