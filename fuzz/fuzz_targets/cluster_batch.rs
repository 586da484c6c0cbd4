//! The cluster batch decoder (`shoal::cluster::batch::decode`) and the apply
//! step on arbitrary bytes: anything that can write to the Redis stream can
//! send a shoal instance any bytes, so no input may panic it, and a batch is
//! applied whole or not at all.
//!
//! Input: one control byte, then the message. Control bit 0 set: the last 32
//! bytes are replaced by the correct tag first (under the keys of an
//! instance without a secret), so mutations reach the record checks behind
//! it (libFuzzer cannot forge an HMAC); clear: decoded as is.
//!
//! Checks beyond "no panic": a refused message yields no record; an accepted
//! one yields exactly its count, re-encodes to the same bytes (one valid
//! encoding per record), and applying it to a swarm keeps the swarm's counts
//! within what the records could add.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal::cluster::apply;
use shoal::cluster::auth::{Keys, TAG_LEN};
use shoal::cluster::batch::{decode, encode, Decoded, Kind, Sender};
use shoal::swarm::Swarm;

fuzz_target!(|input: &[u8]| {
    let Some((&ctl, data)) = input.split_first() else {
        return;
    };
    let keys = Keys::derive(None, "fuzz");
    let mut data = data.to_vec();
    if ctl & 1 == 1 && data.len() >= TAG_LEN {
        let at = data.len() - TAG_LEN;
        let tag = keys.sign_batch(&data[..at]);
        data[at..].copy_from_slice(&tag);
    }
    let mut got = Decoded::default();
    let Ok(h) = decode(&data, &keys, &mut got) else {
        assert!(got.peers.is_empty() && got.access.is_empty(), "nothing half-decoded");
        return;
    };
    assert_eq!(h.count, got.peers.len() + got.access.len());
    let from = Sender {
        instance: h.instance,
        sequence: h.sequence,
        stamp: h.stamp,
    };
    let mut again = Vec::new();
    match h.kind {
        Kind::Peers => encode(&mut again, &keys, from, &got.peers),
        Kind::Access => encode(&mut again, &keys, from, &got.access),
    }
    assert_eq!(again, data, "one encoding per batch");
    let swarm = Swarm::new(4, 600);
    for r in &got.peers {
        apply(&swarm, r, u32::from(ctl >> 1));
    }
    assert!(swarm.totals().peers() <= got.peers.len() as u64);
});
