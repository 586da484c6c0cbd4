//! Tests of the budget ([`crate::swarm::budget`]): the bounds hold exactly,
//! whatever the shards, in every reading, and give back what they no longer
//! need.

use super::super::peers::next_random;
use super::super::*;
use super::{ih, join, req, stored};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::Ordering::Relaxed;

#[test]
fn the_peer_bound_is_global_and_evicts_instead_of_refusing() {
    // A bound kept per shard would store only ~1336 of 2000 under this
    // flood and refuse 60 of the 100 latest announcers: the bound is global
    // and evicts.
    let s = Swarm::new(64, 3600).with_max_peers(2000);
    for n in 0..20_000u32 {
        join(&s, n % 5000, n, n / 100);
        if n % 97 == 0 {
            assert!(s.totals().peers() <= 2000, "{} at {n}", s.totals().peers());
        }
    }
    let t = s.totals();
    assert!(
        t.peers() <= 2000 && t.peers() >= 1990,
        "{} stored",
        t.peers()
    );
    let recent = (19_900..20_000)
        .filter(|&n| stored(&s, n % 5000, n))
        .count();
    assert_eq!(recent, 100, "the 100 most recent announcers are all stored");
    assert_eq!(t.evicted[Eviction::Peers as usize], 20_000 - t.peers());
    assert_eq!(s.approx_bytes(), s.walked_bytes());
}

#[test]
fn a_newcomer_at_the_bound_is_stored_and_found_by_the_next_announce() {
    let s = Swarm::new(4, 600).with_max_peers(50);
    for n in 0..50 {
        join(&s, n, n, 0);
    }
    join(&s, 1000, 1000, 5);
    assert_eq!(s.totals().peers(), 50);
    assert!(stored(&s, 1000, 1000));
    assert_eq!(
        join(&s, 1000, 1001, 6),
        vec![(Ipv4Addr::from(0x0a00_0000 + 1000), 6881)]
    );
    // A known peer refreshes without evicting anybody.
    let before = s.totals().evicted_total();
    join(&s, 1000, 1000, 7);
    assert_eq!(s.totals().evicted_total(), before);
}

#[test]
fn a_torrent_cannot_exceed_its_share() {
    let limits = Limits {
        max_peers: 1000,
        torrent_share: 10,
        ..Limits::default()
    };
    let s = Swarm::new(4, 600).with_limits(limits);
    assert_eq!(s.max_torrent_peers(), 100);
    // One address floods one torrent from 5000 ports (an attack seen on
    // the old bound): the torrent stays at its cap, the newest are in it.
    for port in 0..5000u16 {
        let r = req(
            &ih(7),
            (Ipv4Addr::new(10, 9, 9, 9), 1000 + port),
            Role::Seeder,
            u32::from(port / 10),
        );
        s.announce::<Peer4>(&r, |_, _| {});
    }
    assert_eq!(s.scrape(&ih(7)).seeders, 100);
    let last = (Ipv4Addr::new(10, 9, 9, 9), 1000 + 4999);
    assert!(s
        .shard(&ih(7))
        .lock()
        .torrents
        .get(&ih(7))
        .is_some_and(|t| t.contains::<Peer4>(&last, &s.peer_hasher)));
    // A real newcomer (a leecher) is stored and gets seeders.
    assert_eq!(join(&s, 7, 1, 600).len(), 50);
    assert!(stored(&s, 7, 1));
    let t = s.totals();
    assert_eq!(
        (t.peers(), t.evicted[Eviction::Torrent as usize]),
        (100, 4901)
    );
    // Its vector never grew past the cap.
    assert!(s.approx_bytes() - (s.fixed_bytes() as usize) < 100 * 24 + 4096);
}

#[test]
fn a_byte_budget_holds_under_a_flood_of_distinct_torrents() {
    let budget = 1 << 20;
    let limits = Limits {
        max_bytes: budget,
        ..Limits::default()
    };
    let s = Swarm::new(16, 3600).with_limits(limits);
    for n in 0..200_000u32 {
        join(&s, n, n, n / 1000);
        if n % 64 == 0 {
            s.relieve(n / 1000, 4);
        }
        if n % 1000 == 0 {
            assert!(
                s.approx_bytes() as u64 <= budget,
                "{} at {n}",
                s.approx_bytes()
            );
        }
    }
    let t = s.totals();
    assert!(
        t.bytes as f64 > 0.8 * budget as f64,
        "{} bytes used",
        t.bytes
    );
    assert!(
        (199_000..200_000).all(|n| stored(&s, n, n)),
        "the most recent are stored"
    );
    assert_eq!(s.approx_bytes(), s.walked_bytes());
    assert_eq!(t.evicted_total(), 200_000 - t.peers());
}

#[test]
fn running_byte_sums_match_a_walk() {
    let s = Swarm::new(4, 100).with_max_peers(3000);
    let id = [1u8; 20];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for step in 0..50_000u32 {
        let r = next_random(&mut x);
        let t = (r % 40) as u32;
        let n = ((r >> 8) % 5000) as u32;
        let now = step / 50;
        let role = match (r >> 20) % 8 {
            0 => Role::Stopped,
            1..=3 => Role::Seeder,
            _ => Role::Leecher,
        };
        let mut q = req(&ih(t), (Ipv4Addr::from(0x0a00_0000 + n), 1), role, now);
        if (r >> 30).is_multiple_of(16) {
            q.peer_id = Some(&id);
        }
        if (r >> 34).is_multiple_of(10) {
            let q6 = req(&ih(t), (Ipv6Addr::from(u128::from(n)), 1), role, now);
            s.announce::<Peer6>(&q6, |_, _| {});
        } else {
            s.announce::<Peer4>(&q, |_, _| {});
        }
        if step % 5000 == 0 {
            s.expire_shard((step / 5000) as usize, now);
            assert_eq!(s.approx_bytes(), s.walked_bytes(), "at {step}");
        }
    }
    assert_eq!(s.approx_bytes(), s.walked_bytes());
    assert!(s.totals().peers() <= 3000);
}

/// Peer `n` of torrent `t`, an IPv4 or (every third) IPv6 address.
fn join_any(s: &Swarm, t: u32, n: u32, now: u32) {
    let r = Announce {
        want: 5,
        random: (u64::from(n) * 7 + 1, u64::from(now)),
        ..req(&ih(t), (), Role::Leecher, now)
    };
    if n.is_multiple_of(3) {
        let addr = (Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(n)), 6881);
        s.announce::<Peer6>(&r.with_addr(addr), |_, _| {});
    } else {
        let addr = (Ipv4Addr::from(0x0a00_0000 + n), 6881);
        s.announce::<Peer4>(&r.with_addr(addr), |_, _| {});
    }
}

#[test]
fn the_peer_bound_is_exact_however_many_shards() {
    // A bound far smaller than the shards: most shards are empty, so a
    // newcomer there takes its room from another shard.
    for (shards, max) in [(1024, 50), (1024, 2000), (16, 7), (1, 30)] {
        let s = Swarm::new(shards, 3600).with_max_peers(max);
        for n in 0..6000u32 {
            join_any(&s, n % 700, n, n / 50);
            if n % 37 == 0 {
                let p = s.totals().peers();
                assert!(p <= max, "{p} peers of {max} at {n}, {shards} shards");
                s.check_reservations();
            }
        }
        let t = s.totals();
        assert!(
            t.peers() <= max && t.peers() >= max * 9 / 10,
            "{} stored of {max}",
            t.peers()
        );
        // Every newcomer was stored: the most recent all are.
        assert_eq!(t.evicted[Eviction::Peers as usize], 6000 - t.peers());
        let last = 5999u32;
        assert!(
            s.torrent_detail(&ih(last % 700), last / 50).is_some(),
            "the last announcer's torrent is there"
        );
        // A newcomer is handed to the next peer of its torrent (which
        // does not evict it, even where it is its shard's only peer),
        // where a torrent may hold two.
        join(&s, 9999, 10_000, 200);
        if s.max_torrent_peers() >= 2 {
            assert_eq!(
                join(&s, 9999, 10_001, 200),
                vec![(Ipv4Addr::from(0x0a00_0000 + 10_000), 6881)],
                "{shards} shards"
            );
        }
        s.check_reservations();
        assert_eq!(s.approx_bytes(), s.walked_bytes());
    }
}

#[test]
fn the_byte_bound_holds_within_its_margin_however_many_shards() {
    // Budgets over the shard array's own bytes.
    for (shards, room) in [(1024, 300 << 10), (64, 300 << 10), (1, 200 << 10)] {
        let s = Swarm::new(shards, 3600);
        let max_bytes = s.fixed_bytes() + room;
        let limits = Limits {
            max_bytes,
            ..Limits::default()
        };
        let s = s.with_limits(limits);
        let mut most = 0;
        for n in 0..40_000u32 {
            // Mostly one-peer torrents, some bigger ones.
            let t = if n % 4 == 0 { n % 97 } else { n };
            join_any(&s, t, n, n / 1000);
            if n % 101 == 0 {
                let b = s.totals().bytes;
                assert!(
                    b <= max_bytes + MARGIN_BYTES,
                    "{b} bytes of {max_bytes} at {n}, {shards} shards"
                );
                most = most.max(b);
                s.check_reservations();
            }
        }
        assert!(most > max_bytes - room / 5, "{most} used of {max_bytes}");
        assert!(s.totals().evicted[Eviction::Memory as usize] > 0);
        assert_eq!(s.approx_bytes(), s.walked_bytes());
    }
}

#[test]
fn what_nothing_makes_room_for_is_counted_not_stored() {
    // Too small a budget for 1024 shards' first chunks: a torrent of an
    // empty shard has nobody to evict, and the margin covers only a few.
    let s = Swarm::new(1024, 3600);
    let fixed = s.fixed_bytes();
    let s = s.with_limits(Limits {
        max_bytes: fixed + 4096,
        ..Limits::default()
    });
    for n in 0..500u32 {
        join(&s, n, n, 1);
        s.check_reservations();
    }
    let t = s.totals();
    assert!(t.bytes <= fixed + 4096 + MARGIN_BYTES, "{}", t.bytes);
    assert!(t.torrents > 0 && t.torrents < 20, "{} stored", t.torrents);
    assert_eq!(t.evicted[Eviction::Memory as usize], 500 - t.peers());
    // A refused announce still gets an answer: nothing, from nobody.
    assert!(join(&s, 100_000, 1, 2).is_empty());
}

#[test]
fn a_refresh_touches_no_pool() {
    let s = Swarm::new(16, 600).with_max_peers(1000);
    for n in 0..100 {
        join(&s, n, n, 0);
    }
    let before = (s.budget.peers.reserved(), s.budget.bytes.reserved());
    for round in 1..5 {
        for n in 0..100 {
            join(&s, n, n, round);
        }
    }
    assert_eq!(
        (s.budget.peers.reserved(), s.budget.bytes.reserved()),
        before
    );
}

#[test]
fn spare_reservations_go_back_at_the_bound() {
    // Far from the bound a shard keeps a little spare; once all of it is
    // needed, a shard keeps none, so the map fills to the bound.
    let s = Swarm::new(64, 3600).with_max_peers(100_000);
    for n in 0..1000 {
        join(&s, n, n, 0);
    }
    let reserved = s.budget.peers.reserved();
    assert!(
        reserved > 1000 && reserved <= 1000 + 100_000 / 8,
        "{reserved}"
    );
    // Expire them all: every unit goes back but what the shards keep.
    (0..64).for_each(|i| _ = s.expire_shard(i, 10_000));
    assert!(s.budget.peers.reserved() <= 64 * 64);
    s.check_reservations();
    let s = Swarm::new(64, 3600).with_max_peers(500);
    for n in 0..5000 {
        join(&s, n, n, n / 10);
    }
    assert_eq!(s.totals().peers(), 500, "filled to the bound");
    s.check_reservations();
}

/// Several workers flood the map while another thread reads its totals:
/// every reading is within the bounds, though it reads the shards one at
/// a time while peers come and go in them.
#[test]
fn readings_taken_during_a_flood_stay_within_the_bounds() {
    for shards in [1024, 8] {
        let s = Swarm::new(shards, 3600);
        let (max_peers, max_bytes) = (300, s.fixed_bytes() + (128 << 10));
        let limits = Limits {
            max_peers,
            max_bytes,
            torrent_share: 10,
        };
        let s = s.with_limits(limits);
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            for w in 0..3u32 {
                let (s, done) = (&s, &done);
                scope.spawn(move || {
                    for n in 0..100_000u32 {
                        let id = w * 1_000_000 + n;
                        let r = Announce {
                            want: 5,
                            random: (u64::from(id), 9),
                            ..req(&ih(id % 2000), (), Role::Seeder, n / 500)
                        };
                        if n % 5 == 4 {
                            // A stop now and then: units go back and move.
                            let a = (Ipv4Addr::from(id - 3), 1);
                            let stop = Announce {
                                role: Role::Stopped,
                                ..r
                            };
                            s.announce::<Peer4>(&stop.with_addr(a), |_, _| {});
                        }
                        s.announce::<Peer4>(&r.with_addr((Ipv4Addr::from(id), 1)), |_, _| {});
                    }
                    done.store(true, Relaxed);
                });
            }
            let mut readings = 0;
            while !done.load(Relaxed) || readings < 10 {
                let t = s.totals();
                assert!(t.peers() <= max_peers, "{} peers read", t.peers());
                assert!(
                    t.bytes <= max_bytes + MARGIN_BYTES,
                    "{} bytes read, {} reserved of {}, fixed {}, {shards} shards",
                    t.bytes,
                    s.budget.bytes.reserved(),
                    s.budget.bytes.bound(),
                    s.fixed_bytes()
                );
                readings += 1;
            }
        });
        s.check_reservations();
        assert!(s.totals().evicted_total() > 0);
    }
}
