//! The rendezvous handler allocates nothing per datagram once the registry is
//! warm: announce, alive, push, every answered error and random garbage,
//! counted by a global allocator that tallies this thread's allocations.
//! Also reports the registry's memory per registration.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod alloc_count;

use alloc_count::allocs;
use shoal::rendezvous::{Outcome, Rendezvous, RendezvousConfig, Replies};
use std::net::SocketAddr;

#[global_allocator]
static GLOBAL: alloc_count::Counting = alloc_count::Counting;

fn addr(i: u32) -> SocketAddr {
    if i.is_multiple_of(2) {
        SocketAddr::from((std::net::Ipv4Addr::from(0x0a00_0000 + i), 4000))
    } else {
        SocketAddr::from((
            std::net::Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(i)),
            4000,
        ))
    }
}

#[test]
fn warm_handler_does_not_allocate() {
    const N: u32 = 1000;
    let r = Rendezvous::with_key(RendezvousConfig::default(), 4, [9; 16]);
    let mut out = Replies::new();
    let mut ids = Vec::new();
    for i in 0..N {
        assert_eq!(
            r.handle(0, addr(i), br#"{"action":"announce"}"#, &mut out),
            Outcome::Announced
        );
        let json: serde_json::Value = serde_json::from_slice(out.get(0).unwrap().1).unwrap();
        ids.push(json["data"]["shareId"].as_str().unwrap().to_string());
    }
    let pushes: Vec<String> = ids
        .iter()
        .map(|id| format!(r#"{{"action":"push","shareId":"{id}"}}"#))
        .collect();
    let mut garbage = vec![0u8; 300];
    let mut rng = fastrand::Rng::with_seed(7);

    let before = allocs();
    let mut outcomes = std::collections::HashMap::<Outcome, u32>::new();
    let mut tally = [0u32; Outcome::ALL.len()];
    for round in 0..4u32 {
        let now = 1 + round;
        for i in 0..N {
            let src = addr(i);
            let peer = ((i + 1) % N) as usize;
            let reqs: [&[u8]; 6] = [
                br#"{"action":"announce"}"#,
                br#"{"action":"alive"}"#,
                pushes[peer].as_bytes(),
                br#"{"action":"push","shareId":"1.2.3.4:5"}"#,
                br#"{"action":"nope"}"#,
                &garbage,
            ];
            for req in reqs {
                let o = r.handle(now, src, req, &mut out);
                tally[o.index()] += 1;
            }
            // Unregistered sender.
            let o = r.handle(now, addr(N + i), br#"{"action":"alive"}"#, &mut out);
            tally[o.index()] += 1;
            rng.fill(&mut garbage);
        }
    }
    let spent = allocs() - before;
    for (o, n) in Outcome::ALL.iter().zip(tally) {
        outcomes.insert(*o, n);
    }
    assert_eq!(spent, 0, "allocations in {} requests", 4 * N * 7);
    // The counter does count: a malformed object goes through serde_json,
    // whose error is boxed.
    let mark = allocs();
    r.handle(9, addr(0), br#"{"action":7}"#, &mut out);
    assert!(allocs() > mark, "the counter works");
    for o in [
        Outcome::Announced,
        Outcome::Alive,
        Outcome::Pushed,
        Outcome::Expired,
        Outcome::UnknownId,
    ] {
        assert!(outcomes[&o] > 0, "{o:?} exercised");
    }

    let st = r.registry().stats();
    eprintln!(
        "registry: {} entries, {} bytes allocated, {} bytes/entry (ENTRY_BYTES {})",
        st.entries,
        st.bytes,
        st.bytes / st.entries,
        shoal::rendezvous::registry::ENTRY_BYTES
    );
}
