//! Criterion benchmarks of the access room (src/access/): what `--access-list`
//! and `--keys` cost.
//!
//! Groups:
//! - `access/load_1M`: read and parse a file of 1 M hashes (41 MB) into an
//!   [`AccessList`], as a start-up or reload does.
//! - `access/contains_1M/*`: one membership test against 1 M hashes, hit and
//!   miss, probing in an order that defeats the cache (each probe is a
//!   different hash, as each announce is), next to a sorted `Vec` with binary
//!   search (the other candidate layout) for comparison.
//! - `access/keys_10k/check`: one key lookup (keyed digest, index probe,
//!   constant-time compare, expiry) among 10 000 keys.
//! - `access/announce_check/*`: the whole per-request cost through a worker's
//!   [`PolicyReader`]: the generation load, key extraction from BEP 41 URL
//!   data, the key lookup and the list check.
//! - `access/announce_core/{spread_10k,hot_100}/*`: one UDP announce through
//!   the core (`Tracker::handle_udp`: parse, checks, swarm, reply) with no
//!   policy (`open`), with a 1 M-hash allow list, and with the list plus a
//!   10 000-key private mode. `spread_10k`: the re-announce of the one peer of
//!   each of 10 000 torrents in turn (a cheap announce whose list entry is
//!   never in cache: the worst case for the checks' share). `hot_100`: the 100
//!   peers of one torrent re-announce in turn, each getting 50 peers back (as
//!   `udp/announce_v4` in benches/core.rs).
//!
//! ```sh
//! cargo bench --bench access                # everything, about half a minute
//! cargo bench --bench access -- contains    # one group
//! cargo bench --bench access -- announce_core
//! ```

// A bench is a test: a panic is how it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use shoal::access::keys::ANNOUNCE;
use shoal::access::live::load_list;
use shoal::access::{
    key_from_options, key_from_path, write_atomically, AccessList, Key, KeySet, Mode, Policy,
    PolicyHandle,
};
use shoal::net::udp::Answer;
use shoal::stats::Counters;
use shoal::time::Now;
use shoal::tracker::TrackerConfig;
use shoal::tracker::{Tracker, Worker};
use shoal::wire::udp::{self, AnnounceRequest, Event, Options};
use std::hint::black_box;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

const N: usize = 1_000_000;

fn hashes(seed: u64, n: usize) -> Vec<[u8; 20]> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..n)
        .map(|_| {
            let mut h = [0u8; 20];
            rng.fill(&mut h);
            h
        })
        .collect()
}

fn list_file(listed: &[[u8; 20]]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("shoal-bench-access-{}.txt", std::process::id()));
    let list = AccessList::from_hashes(listed.iter().copied());
    write_atomically(&path, &list.render().0, 0o644).unwrap();
    path
}

/// Cycle through `probes`, one per iteration.
fn cycling<'a>(probes: &'a [[u8; 20]]) -> impl FnMut() -> &'a [u8; 20] {
    let mut i = 0;
    move || {
        i = if i + 1 == probes.len() { 0 } else { i + 1 };
        &probes[i]
    }
}

fn bench(c: &mut Criterion) {
    let listed = hashes(1, N);
    let absent = hashes(2, N);
    let mut shuffled = listed.clone();
    fastrand::Rng::with_seed(3).shuffle(&mut shuffled);

    let mut g = c.benchmark_group("access");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let path = list_file(&listed);
    g.bench_function("load_1M", |b| {
        b.iter(|| black_box(load_list(&path).unwrap().len()))
    });
    std::fs::remove_file(&path).unwrap();
    g.finish();

    let list = AccessList::from_hashes(listed.iter().copied());
    let mut sorted = listed.clone();
    sorted.sort_unstable();
    let mut g = c.benchmark_group("access/contains_1M");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    let mut next = cycling(&shuffled);
    g.bench_function("hit", |b| b.iter(|| black_box(list.contains(next()))));
    let mut next = cycling(&absent);
    g.bench_function("miss", |b| b.iter(|| black_box(list.contains(next()))));
    let mut next = cycling(&shuffled);
    g.bench_function("sorted_vec_hit", |b| {
        b.iter(|| black_box(sorted.binary_search(next()).is_ok()))
    });
    let mut next = cycling(&absent);
    g.bench_function("sorted_vec_miss", |b| {
        b.iter(|| black_box(sorted.binary_search(next()).is_ok()))
    });
    drop(sorted);
    g.finish();

    // A private tracker with 10 000 keys and the 1 M allow list.
    let mut rng = fastrand::Rng::with_seed(4);
    let keys: Vec<Key> = (0..10_000)
        .map(|_| Key(std::array::from_fn(|_| rng.alphanumeric() as u8)))
        .collect();
    let key_set = KeySet::from_entries(keys.iter().map(|k| (*k, Some(u64::MAX))));
    let mut g = c.benchmark_group("access/keys_10k");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    let mut i = 0;
    g.bench_function("check", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(key_set.check(&keys[i], 1_000))
        })
    });
    g.finish();
    let handle = PolicyHandle::new(Policy::new(
        Some((Mode::Allow, Arc::new(list))),
        Some(Arc::new(key_set)),
        false,
    ));
    let mut reader = handle.reader();
    // BEP 41 options as a client sends `/announce/KEY`: split over two URL-data options.
    let mut opts = vec![2, 20];
    opts.extend_from_slice(b"/announce/");
    opts.extend_from_slice(&keys[1234].0[..10]);
    opts.extend_from_slice(&[2, 22]);
    opts.extend_from_slice(&keys[1234].0[10..]);
    let options = Options(&opts);

    let mut g = c.benchmark_group("access/announce_check");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    let mut next = cycling(&shuffled);
    g.bench_function("key_and_allowed_1M", |b| {
        b.iter(|| {
            let key = key_from_options(black_box(&options));
            black_box(reader.get().check_announce(next(), &key, 1_000))
        })
    });
    g.bench_function("key_extract", |b| {
        b.iter(|| black_box(key_from_options(black_box(&options))))
    });
    let mut target = b"/announce/".to_vec();
    target.extend_from_slice(&keys[1234].0);
    target.extend_from_slice(b"?info_hash=%00");
    g.bench_function("key_from_http_path", |b| {
        b.iter(|| black_box(key_from_path(black_box(&target), ANNOUNCE)))
    });
    // The passkey-first form, `/KEY/announce`.
    let mut first = b"/".to_vec();
    first.extend_from_slice(&keys[1234].0);
    first.extend_from_slice(b"/announce?info_hash=%00");
    g.bench_function("key_first_from_http_path", |b| {
        b.iter(|| black_box(key_from_path(black_box(&first), ANNOUNCE)))
    });
    let open = PolicyHandle::new(Policy::default());
    let mut open_reader = open.reader();
    let mut next = cycling(&shuffled);
    g.bench_function("open_policy", |b| {
        b.iter(|| {
            black_box(open_reader.get().check_announce(
                next(),
                &shoal::access::PresentedKey::Missing,
                1_000,
            ))
        })
    });
    g.finish();
}

/// The announce through the whole core, open and with the checks.
fn announce_core(c: &mut Criterion) {
    const TORRENTS: usize = 10_000;
    const NOW: Now = Now::from_secs(1_000);
    let torrents = hashes(5, TORRENTS);
    let mut listed = hashes(6, N - TORRENTS);
    listed.extend_from_slice(&torrents);
    let list = Arc::new(AccessList::from_hashes(listed));
    // Only the torrents announced: the same lookups in a table that fits in cache.
    let small = Arc::new(AccessList::from_hashes(torrents.iter().copied()));
    let mut rng = fastrand::Rng::with_seed(8);
    let keys: Vec<Key> = (0..10_000)
        .map(|_| Key(std::array::from_fn(|_| rng.alphanumeric() as u8)))
        .collect();
    let key_set = Arc::new(KeySet::from_entries(keys.iter().map(|k| (*k, None))));
    // Every variant gets the same datagrams, with the key in BEP 41 URL data.
    let mut url = b"/announce/".to_vec();
    url.extend_from_slice(&keys[77].0);
    let policies = || {
        [
            ("open", None),
            (
                "allow_10k",
                Some(Policy::new(Some((Mode::Allow, small.clone())), None, false)),
            ),
            (
                "allow_1M",
                Some(Policy::new(Some((Mode::Allow, list.clone())), None, false)),
            ),
            (
                "allow_1M_keys_10k",
                Some(Policy::new(
                    Some((Mode::Allow, list.clone())),
                    Some(key_set.clone()),
                    false,
                )),
            ),
        ]
    };

    let mut g = c.benchmark_group("access/announce_core");
    g.sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    // The list lookups alone, in the spread workload's order.
    let mut next = cycling(&torrents);
    g.bench_function("spread_10k/contains_only", |b| {
        b.iter(|| black_box(list.contains(next())))
    });
    for (workload, spread) in [("spread_10k", true), ("hot_100", false)] {
        for (policy_name, policy) in policies() {
            let t = Tracker::new(TrackerConfig::default());
            if let Some(p) = policy {
                t.set_access(PolicyHandle::new(p), 1_700_000_000).unwrap();
            }
            let mut core = Worker::with_rng(fastrand::Rng::with_seed(7)).with_events(false);
            let counters = Counters::default();
            // As a packet worker answers: the core, then its counting.
            let mut w = Answer {
                tracker: &t,
                worker: &mut core,
                counters: &counters,
                outbox: None,
                rate_limiter: None,
            };
            let src = SocketAddr::from(([10, 0, 0, 1], 6881));
            let cid = t.connection_id(NOW, src.ip());
            // spread: one seeder in each of 10 000 torrents; hot: 100 peers
            // (3 in 4 seeders) of one torrent, asking for the default 50.
            let requests: Vec<([u8; 20], u16, u64)> = if spread {
                torrents.iter().map(|ih| (*ih, 6881, 0)).collect()
            } else {
                (0..100u16)
                    .map(|i| (torrents[0], 1024 + i, u64::from(i % 4 == 0)))
                    .collect()
            };
            let datagrams: Vec<Vec<u8>> = requests
                .iter()
                .map(|&(ih, port, left)| {
                    let req = AnnounceRequest {
                        left,
                        event: Event::None,
                        ..AnnounceRequest::new(cid, 1, ih, *b"-SH0100-benchbenchbe", port)
                    };
                    let mut buf = vec![0u8; 256];
                    let n = udp::write_announce_request(&mut buf, &req, &url).unwrap();
                    buf.truncate(n);
                    buf
                })
                .collect();
            let mut out = [0u8; 2048];
            for d in &datagrams {
                w.answer(NOW, src, d, &mut out).unwrap();
                assert_eq!(
                    out[..4],
                    [0, 0, 0, 1],
                    "{policy_name}: announced, not refused"
                );
            }
            let mut i = 0;
            g.bench_function(format!("{workload}/{policy_name}"), |b| {
                b.iter(|| {
                    i = if i + 1 == datagrams.len() { 0 } else { i + 1 };
                    black_box(w.answer(NOW, src, &datagrams[i], &mut out))
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench, announce_core);
criterion_main!(benches);
