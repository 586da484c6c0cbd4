//! The cluster batch decoder (`shoal::cluster::batch::decode`) and the apply
//! step on arbitrary bytes: anything that can PUBLISH on the Redis channel can
//! send a shoal instance any bytes, so no input may panic it, and a batch is
//! applied whole or not at all.
//!
//! Input: one control byte, then the message. Control bit 0 set: the last 8
//! bytes are replaced by the correct checksum first, so mutations reach the
//! record checks behind it (libFuzzer cannot forge a SipHash); clear: decoded
//! as is.
//!
//! Checks beyond "no panic": a refused message yields no record; an accepted
//! one yields exactly its count, re-encodes to the same bytes (one valid
//! encoding per record), and applying it to a swarm keeps the swarm's counts
//! within what the records could add.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal::cluster::apply;
use shoal::cluster::batch::{checksum, decode, encode};
use shoal::swarm::Swarm;

fuzz_target!(|input: &[u8]| {
    let Some((&ctl, data)) = input.split_first() else {
        return;
    };
    let mut data = data.to_vec();
    if ctl & 1 == 1 && data.len() >= 8 {
        let at = data.len() - 8;
        let sum = checksum(&data[..at]).to_be_bytes();
        data[at..].copy_from_slice(&sum);
    }
    let mut records = Vec::new();
    let Ok(h) = decode(&data, &mut records) else {
        assert!(records.is_empty(), "nothing half-decoded");
        return;
    };
    assert_eq!(h.count, records.len());
    let mut again = Vec::new();
    encode(&mut again, h.instance, h.sequence, &records);
    assert_eq!(again, data, "one encoding per batch");
    let swarm = Swarm::new(4, 600);
    for r in &records {
        apply(&swarm, r, u32::from(ctl >> 1));
    }
    assert!(swarm.totals().peers() <= records.len() as u64);
});
