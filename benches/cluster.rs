//! Criterion benchmarks of what `--cluster` adds to the request path
//! (src/cluster/): the record append, and one whole UDP announce with and
//! without it.
//!
//! Groups:
//! - `cluster/outbox_push`: one [`Outbox::push`] of a 40-byte record into a
//!   worker's buffer (uncontended lock, copy, unlock); the buffer is swapped
//!   out untimed before it fills, as the publisher does every 100 ms.
//! - `cluster/announce_v4/{off,on}`: one UDP re-announce through the core
//!   (`Tracker::handle_udp`) by the 100 peers of one torrent in turn, each
//!   getting 50 peers back (as `udp/announce_v4` in benches/core.rs), with
//!   the worker's outbox unset and set.
//! - `cluster/encode_4096`: the publisher encoding one full batch.
//!
//! ```sh
//! cargo bench --bench cluster
//! ```

// A bench is a test: a panic is how it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shoal::cluster::batch::{self, MAX_RECORDS};
use shoal::cluster::{Record, Status, OUTBOX_RECORDS};
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
    }
}

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
                    out.push(black_box(record(i as u16)));
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
    let mut msg = Vec::with_capacity(MAX_RECORDS * batch::RECORD_LEN + 64);
    g.throughput(Throughput::Elements(MAX_RECORDS as u64));
    g.bench_function("encode_4096", |b| {
        b.iter(|| {
            msg.clear();
            batch::encode(&mut msg, 1, 2, black_box(&recs));
            black_box(msg.len())
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
