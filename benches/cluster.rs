//! Criterion benchmarks of what `--cluster` adds to the request path
//! (src/cluster/): the record append, and one whole UDP announce with and
//! without it; and off the request path, what a batch costs to sign, check
//! and apply.
//!
//! Groups:
//! - `cluster/outbox_push`: one [`Outbox::push`] of a 48-byte record into a
//!   worker's buffer (stamp, uncontended lock, copy, unlock); the buffer is
//!   swapped out untimed before it fills, as the publisher does every 100 ms.
//! - `cluster/announce_v4/{off,on}`: one UDP re-announce through the core
//!   (`Tracker::handle_udp`) by the 100 peers of one torrent in turn, each
//!   getting 50 peers back (as `udp/announce_v4` in benches/core.rs), with
//!   the worker's outbox unset and set.
//! - `cluster/mac/{batch_1,batch_4096}`: the HMAC-SHA256 tag of a batch of
//!   one record and of a full batch: the MAC's cost per batch and (the
//!   second over 4096) per record.
//! - `cluster/encode_4096`, `cluster/decode_4096`: the publisher encoding
//!   and signing one full batch; the subscriber checking its tag and
//!   decoding it.
//! - `cluster/versions_offer`: one record judged against the version table
//!   (one million entries, 100 000 peers).
//!
//! ```sh
//! cargo bench --bench cluster
//! ```

// A bench is a test: a panic is how it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shoal::cluster::auth::{Keys, Secret};
use shoal::cluster::batch::{self, Decoded, Sender, MAX_RECORDS};
use shoal::cluster::versions::Versions;
use shoal::cluster::{Record, Status, DEFAULT_VERSIONS, OUTBOX_RECORDS};
use shoal::net::udp::Answer;
use shoal::stats::Counters;
use shoal::swarm::Role;
use shoal::time::Now;
use shoal::tracker::TrackerConfig;
use shoal::tracker::{Tracker, Worker};
use shoal::wire::udp::{self, AnnounceRequest, Event};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

const NOW: Now = Now::from_secs(1_000);
const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

fn record(i: u16) -> Record {
    Record {
        info_hash: [0x5a; 20],
        addr: SocketAddr::new(IpAddr::V4(SRC), 1024 + i),
        role: Role::Seeder,
        completed: false,
        stamp: 0,
    }
}

fn keys() -> Keys {
    Keys::derive(
        Some(&Secret::new(b"a bench secret, 32 bytes long..").unwrap()),
        "bench",
    )
}

const FROM: Sender = Sender {
    instance: 1,
    sequence: 2,
    stamp: 3,
};

fn outbox_push(c: &mut Criterion) {
    let mut g = c.benchmark_group("cluster");
    g.throughput(Throughput::Elements(1));
    let status = Arc::new(Status::new(1));
    let out = status.outbox(0);
    let mut spare = Vec::with_capacity(OUTBOX_RECORDS);
    g.bench_function("outbox_push", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                // Timed in chunks that fit the buffer; the swap is untimed.
                let n = left.min(OUTBOX_RECORDS as u64 - 1);
                let t = Instant::now();
                for i in 0..n {
                    out.push(black_box(record(i as u16)), NOW);
                }
                total += t.elapsed();
                status.take(0, &mut spare);
                spare.clear();
                left -= n;
            }
            total
        })
    });
    let recs: Vec<Record> = (0..MAX_RECORDS as u16).map(record).collect();
    let keys = keys();
    let mut msg = Vec::with_capacity(batch::MAX_BATCH);
    g.throughput(Throughput::Elements(MAX_RECORDS as u64));
    g.bench_function("encode_4096", |b| {
        b.iter(|| {
            msg.clear();
            batch::encode(&mut msg, &keys, FROM, black_box(&recs));
            black_box(msg.len())
        })
    });
    let mut decoded = Decoded::default();
    g.bench_function("decode_4096", |b| {
        b.iter(|| {
            let h = batch::decode(black_box(&msg), &keys, &mut decoded).unwrap();
            black_box(h.count)
        })
    });
    let body = &msg[..msg.len() - batch::TRAILER_LEN];
    g.bench_function("mac/batch_4096", |b| {
        b.iter(|| black_box(keys.sign_batch(black_box(body))))
    });
    let mut one = Vec::new();
    batch::encode(&mut one, &keys, FROM, &recs[..1]);
    let one = &one[..one.len() - batch::TRAILER_LEN];
    g.throughput(Throughput::Elements(1));
    g.bench_function("mac/batch_1", |b| {
        b.iter(|| black_box(keys.sign_batch(black_box(one))))
    });
    // The table at its default size holding 100 000 peers' latest events;
    // each offer is a newer event of one of them.
    let mut versions = Versions::new(DEFAULT_VERSIONS);
    let peers: Vec<[u8; 38]> = (0..100_000u32)
        .map(|i| {
            let mut k = [0u8; 38];
            k[..4].copy_from_slice(&i.to_be_bytes());
            k
        })
        .collect();
    for k in &peers {
        versions.offer(k, 1, 1);
    }
    let mut stamp = 2;
    let mut i = 0;
    g.bench_function("versions_offer", |b| {
        b.iter(|| {
            i = (i + 1) % peers.len();
            stamp += 1;
            black_box(versions.offer(&peers[i], stamp, 2))
        })
    });
    g.finish();
}

/// The 100 peers of one torrent (3 in 4 seeders) announce in turn.
fn announce(c: &mut Criterion) {
    let mut g = c.benchmark_group("cluster/announce_v4");
    g.throughput(Throughput::Elements(1));
    let t = Tracker::new(TrackerConfig::default());
    let ip = IpAddr::V4(SRC);
    let ih = [0x42; 20];
    let datagram = |port: u16| {
        let req = AnnounceRequest {
            left: if port.is_multiple_of(4) { 1000 } else { 0 },
            event: Event::None,
            ..AnnounceRequest::new(t.connection_id(NOW, ip), 7, ih, [1; 20], 1024 + port)
        };
        let mut bytes = vec![0; udp::ANNOUNCE_MIN_LEN];
        let n = udp::write_announce_request(&mut bytes, &req, b"").unwrap();
        bytes.truncate(n);
        bytes
    };
    let reqs: Vec<Vec<u8>> = (0..100).map(datagram).collect();
    let src = SocketAddr::new(ip, 6881);
    let mut out = [0u8; 2048];
    let status = Arc::new(Status::new(1));
    let mut spare = Vec::with_capacity(OUTBOX_RECORDS);
    for on in [false, true] {
        let mut core = Worker::with_rng(fastrand::Rng::with_seed(7)).with_events(on);
        let counters = Counters::default();
        let outbox = on.then(|| status.outbox(0));
        // As a packet worker answers: the core, its counting, the record.
        let mut w = Answer {
            tracker: &t,
            worker: &mut core,
            counters: &counters,
            outbox: outbox.as_ref(),
            rate_limiter: None,
        };
        for r in &reqs {
            w.answer(NOW, src, r, &mut out).unwrap();
        }
        let mut i = 0;
        g.bench_function(if on { "on" } else { "off" }, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(OUTBOX_RECORDS as u64 - 1);
                    let start = Instant::now();
                    for _ in 0..n {
                        i = (i + 1) % reqs.len();
                        black_box(w.answer(NOW, src, &reqs[i], &mut out));
                    }
                    total += start.elapsed();
                    status.take(0, &mut spare);
                    spare.clear();
                    left -= n;
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(benches, outbox_push, announce);
criterion_main!(benches);
