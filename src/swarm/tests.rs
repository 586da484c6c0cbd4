//! Tests of the map's public face: announces, scrapes, roles and counts,
//! families, peer ids, expiry, admission, where each shard's table is. The
//! helpers here (`req`, `join`, `stored`, ...) serve the other rooms' tests.

mod budget;

use super::peers::Peer;
use super::*;
use std::net::{Ipv4Addr, Ipv6Addr};

pub(super) fn v4(n: u8, port: u16) -> (Ipv4Addr, u16) {
    (Ipv4Addr::new(10, 0, 0, n), port)
}

pub(super) fn announce4(
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
pub(super) fn req<A>(ih: &InfoHash, addr: A, role: Role, now: u32) -> Announce<'static, A> {
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

/// A policy for the admission tests: allows what `allowed` holds, under
/// stamp `stamp`, and counts the questions.
struct Counting {
    allowed: Vec<InfoHash>,
    stamp: u32,
    asked: std::cell::Cell<usize>,
}

impl Admission for Counting {
    fn stamp(&self) -> u32 {
        self.stamp
    }
    fn admits(&self, ih: &InfoHash) -> bool {
        self.asked.set(self.asked.get() + 1);
        self.allowed.contains(ih)
    }
}

#[test]
fn a_stored_torrent_is_asked_about_once_per_policy() {
    let s = Swarm::new(4, 600);
    let (a, b) = ([1; 20], [2; 20]);
    let p1 = Counting {
        allowed: vec![a, b],
        stamp: 1,
        asked: 0.into(),
    };
    let go = |adm: &Counting, ih: &InfoHash, n: u8, role: Role| {
        s.announce_admitted::<Peer4, _>(&req(ih, v4(n, 1), role, 5), adm, |_, _| {})
    };
    // New torrents are asked about; their re-announces and other peers,
    // scrapes and sweeps are answered from the stamp.
    assert!(go(&p1, &a, 1, Role::Seeder).is_some());
    assert!(go(&p1, &b, 1, Role::Leecher).is_some());
    assert_eq!(p1.asked.get(), 2);
    for n in 1..=5 {
        assert!(go(&p1, &a, n, Role::Leecher).is_some());
    }
    assert_eq!(s.scrape_admitted(&a, &p1).leechers, 5);
    assert_eq!(s.expire_shard_admitted(0, 6, &p1), 0);
    (0..4).for_each(|i| _ = s.expire_shard_admitted(i, 6, &p1));
    assert_eq!(p1.asked.get(), 2, "stored torrents touch no list");
    // A torrent not allowed is asked about every time and stores nothing,
    // even a stop.
    let c = [3; 20];
    assert!(go(&p1, &c, 1, Role::Leecher).is_none());
    assert!(go(&p1, &c, 1, Role::Stopped).is_none());
    assert_eq!(s.scrape_admitted(&c, &p1), Counts::default());
    assert_eq!(p1.asked.get(), 4, "an unknown hash scrapes zeros unasked");
    assert_eq!(s.totals().torrents, 2);

    // A new policy without `b`: `b` is refused at once and untouched, its
    // scrape is zeros, and a sweep drops it and stamps `a`.
    let p2 = Counting {
        allowed: vec![a],
        stamp: 2,
        asked: 0.into(),
    };
    assert!(go(&p2, &b, 2, Role::Leecher).is_none());
    assert_eq!(s.scrape(&b).leechers, 1, "refused: nothing changed");
    assert_eq!(s.scrape_admitted(&b, &p2), Counts::default());
    let swept: usize = (0..4).map(|i| s.expire_shard_admitted(i, 6, &p2)).sum();
    assert_eq!(swept, 1);
    assert_eq!(s.totals().torrents, 1);
    let asked = p2.asked.get();
    assert!(go(&p2, &a, 9, Role::Leecher).is_some());
    assert_eq!(p2.asked.get(), asked, "the sweep renewed a's stamp");
    // Back under the first policy (a reader that has not seen the reload
    // yet): asked again, and stamped back.
    let before = p1.asked.get();
    assert!(go(&p1, &a, 9, Role::Leecher).is_some());
    assert!(go(&p1, &a, 9, Role::Leecher).is_some());
    assert_eq!(p1.asked.get(), before + 1);
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
    assert_eq!(
        (s.totals().torrents, s.totals().peers()),
        (0, 0),
        "empty torrent dropped"
    );
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
    let shard = s.shards[0].lock();
    assert!(shard.torrents.get(&ih).is_some_and(|t| !t.is_big()));
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
    assert_eq!(s.shards[0].lock().peer_ids.len(), 1);
    s.expire_shard(0, 120); // peer 1 (t=0) expires, peer 2 (t=50) stays
    assert!(s.shards[0].lock().peer_ids.is_empty());
    assert_eq!(s.scrape(&ih).seeders, 1);
}

#[test]
fn a_shard_unswept_for_longer_than_its_stamps_span_keeps_no_stale_peer() {
    let s = Swarm::new(1, 100);
    announce4(&s, &[1; 20], 1, Role::Leecher, false, 0, 0);
    // 40 000 s later the 16-bit age of peer 1 reads as -25 536: "fresh".
    assert_eq!(s.expire_shard(0, 40_000), 1, "the stale peer is dropped");
    assert_eq!((s.totals().torrents, s.totals().peers()), (0, 0));
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
    assert_eq!((s.totals().torrents, s.totals().peers()), (0, 0));
    assert_eq!(s.approx_bytes(), s.walked_bytes());
}

pub(super) fn ih(n: u32) -> InfoHash {
    let mut h = [0u8; 20];
    h[..4].copy_from_slice(&n.to_le_bytes());
    h
}

#[test]
fn every_shard_publishes_where_its_table_is() {
    let s = Swarm::new(4, 100);
    s.check_layouts();
    for n in 0..3000 {
        s.prefetch(&ih(n));
        announce4(&s, &ih(n), (n % 200) as u8, Role::Leecher, false, 10, 0);
    }
    s.check_layouts();
    assert!(s.layouts.iter().all(|l| l.get().ctrl != 0));
    // Expiry empties and shrinks the tables: the layouts follow, and a
    // prefetch after it reads nothing stale.
    let removed: usize = (0..4).map(|i| s.expire_shard(i, 1000)).sum();
    assert_eq!(removed, 3000);
    s.check_layouts();
    assert!(s.layouts.iter().all(|l| l.get().ctrl == 0));
    (0..100).for_each(|n| s.prefetch(&ih(n)));
}

/// Peer `n` (a distinct address) announces torrent `t` at `now`.
pub(super) fn join(s: &Swarm, t: u32, n: u32, now: u32) -> Vec<(Ipv4Addr, u16)> {
    let mut got = Vec::new();
    let r = Announce {
        want: 50,
        random: (u64::from(n) * 7 + 1, u64::from(now)),
        ..req(
            &ih(t),
            (Ipv4Addr::from(0x0a00_0000 + n), 6881),
            Role::Leecher,
            now,
        )
    };
    s.announce::<Peer4>(&r, |p, _| got.push(p.addr()));
    got
}

pub(super) fn stored(s: &Swarm, t: u32, n: u32) -> bool {
    let addr = (Ipv4Addr::from(0x0a00_0000 + n), 6881);
    let shard = s.shard(&ih(t)).lock();
    shard
        .torrents
        .get(&ih(t))
        .is_some_and(|t| t.contains::<Peer4>(&addr, &s.peer_hasher))
}

#[test]
fn a_count_that_outgrows_the_inline_ipv6_form_is_paid_for() {
    // A one-IPv6-peer torrent at 65 535 downloads: the next download boxes
    // it, whether counted on a refresh or with a new peer, and the budget
    // covers the box (a prediction short of it trips `settle`).
    let s = Swarm::new(4, 600).with_limits(Limits {
        max_bytes: 1 << 20,
        ..Limits::default()
    });
    let v6 = |n: u128| (Ipv6Addr::from(n), 6881);
    for (t, second_v6) in [(1u32, true), (2, false)] {
        let h = ih(t);
        s.announce::<Peer6>(&req(&h, v6(1), Role::Leecher, 1), |_, _| {});
        {
            let at = s.shard_at(&h);
            let mut g = s.shards[at].lock();
            s.restore_count(at, &mut g, &h, 65_535, false);
            s.settle(at, &mut g);
        }
        let done = Announce {
            completed: true,
            ..req(&h, (), Role::Seeder, 2)
        };
        if second_v6 {
            s.announce::<Peer6>(&done.with_addr(v6(2)), |_, _| {});
        } else {
            s.announce::<Peer4>(&done.with_addr(v4(2, 6881)), |_, _| {});
        }
        assert_eq!(s.scrape(&h).completed, 65_536);
        s.check_reservations();
        assert_eq!(s.approx_bytes(), s.walked_bytes());
    }
    // On a refresh: the IPv6 peer itself completes.
    let h = ih(3);
    s.announce::<Peer6>(&req(&h, v6(1), Role::Leecher, 1), |_, _| {});
    {
        let at = s.shard_at(&h);
        let mut g = s.shards[at].lock();
        s.restore_count(at, &mut g, &h, 65_535, false);
        s.settle(at, &mut g);
    }
    let done = Announce {
        completed: true,
        ..req(&h, v6(1), Role::Seeder, 2)
    };
    s.announce::<Peer6>(&done, |_, _| {});
    assert_eq!(s.scrape(&h).completed, 65_536);
    s.check_reservations();
    assert_eq!(s.approx_bytes(), s.walked_bytes());
}
