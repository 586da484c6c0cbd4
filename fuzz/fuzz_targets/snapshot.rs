//! The warm-restart snapshot loader (`shoal::snapshot::decode`) on arbitrary
//! bytes: a state file may be truncated, corrupted or not ours at all, and
//! shoal reads it at start-up, so no input may panic it or allocate more than
//! the input's size.
//!
//! Input: one control byte, then the file's bytes. Control bit 0 set: the last
//! 8 bytes are replaced by the correct checksum first, so mutations reach the
//! structural checks behind it (libFuzzer cannot forge a SipHash); clear: the
//! file is decoded as is. Bits 1-7: seconds of downtime (the clock is the
//! snapshot's own time plus those), so seeds reach the expiry path.
//!
//! Checks on an accepted file, beyond "no panic": every yielded peer is no older
//! than the timeout, its peer ids index its peers in strictly increasing order,
//! the yielded peers never exceed the file's count, and re-encoding the yielded
//! records with the same header gives a file that decodes (with no downtime) to
//! the same records.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal::snapshot::{decode, format, SnapshotWriter, TorrentRecord};
use std::hash::Hasher;

const TIMEOUT: u32 = 1800;

fuzz_target!(|input: &[u8]| {
    let Some((&ctl, data)) = input.split_first() else {
        return;
    };
    let mut data = data.to_vec();
    if ctl & 1 == 1 && data.len() >= 8 {
        let at = data.len() - 8;
        let mut h = format::checksum_hasher();
        h.write(&data[..at]);
        let sum = h.finish().to_le_bytes();
        data[at..].copy_from_slice(&sum);
    }
    let written = data
        .get(12..20)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes);
    let now = written.saturating_add(u64::from(ctl >> 1));
    let Ok(mut loaded) = decode(data, now, TIMEOUT) else {
        return;
    };
    let header = *loaded.header();
    let (_, file_peers) = loaded.counts();
    let mut rec = TorrentRecord::default();
    let mut yielded = Vec::new();
    let mut peers = 0u64;
    while loaded.next_into(&mut rec) {
        assert!(rec.peers() > 0 || rec.completed > 0);
        assert!(rec.v4.iter().all(|p| p.age <= TIMEOUT));
        assert!(rec.v6.iter().all(|p| p.age <= TIMEOUT));
        let mut next = 0u64;
        for (i, _) in &rec.peer_ids {
            assert!(u64::from(*i) >= next && (*i as usize) < rec.peers());
            next = u64::from(*i) + 1;
        }
        peers += rec.peers() as u64;
        yielded.push(rec.clone());
    }
    assert_eq!(peers + loaded.dropped_peers(), file_peers);

    let mut w = SnapshotWriter::new(Vec::new(), &header).unwrap();
    for r in &yielded {
        w.write_torrent(r).unwrap();
    }
    let bytes = w.finish().unwrap();
    let mut again = decode(bytes, header.written_unix, u32::MAX).unwrap();
    for r in &yielded {
        assert!(again.next_into(&mut rec));
        assert_eq!(&rec, r);
    }
    assert!(!again.next_into(&mut rec));
});
