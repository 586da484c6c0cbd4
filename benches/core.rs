//! Criterion benchmarks of the sans-IO core and the swarm map.
//!
//! Everything here runs in one thread against [`Tracker::handle_udp`] (with
//! the counting a packet worker does on its outcome, [`Answer::answer`]) or
//! [`Swarm`] directly: no sockets, no clock (time is the constant [`NOW`]), so the
//! numbers are the CPU cost of the tracker itself, the upper bound of what a
//! worker can do per core before the kernel's share.
//!
//! Groups:
//! - `udp/*`: decode + handle + encode of one datagram: connect, announce from
//!   an IPv4 and an IPv6 source, scrape of 1 and 74 hashes.
//! - `connid/*`: issuing and checking one connection id, IPv4 and IPv6.
//! - `announce/*`: a UDP announce into one torrent of 1, 100 and 10 000 peers,
//!   by a peer already there (`existing`, the steady state) and by a new one
//!   (`new`).
//! - `sweep/*`: [`Swarm::expire_shard`] over every shard of a large map, when
//!   nothing is due and when everything is. The populations are skewed the way
//!   `aquatic_udp_load_test` skews them (see [`Population`]); the bytes per peer
//!   of each population ([`Swarm::approx_bytes`]) are printed on stderr.
//!
//! ```sh
//! cargo bench --bench core                 # everything (a few minutes on 2 cores)
//! cargo bench --bench core -- sweep        # one group
//! cargo bench --bench core -- sweep/nothing_expires/2M   # also the bytes-per-peer line
//! ```
//!
//! Warm-up and measurement times are short (1 s / 2 s) so a full run stays
//! cheap on a shared machine; pass `--measurement-time 10` for tighter intervals.

// A bench is a test: a panic is how it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};
use shoal::net::udp::Answer;
use shoal::stats::Counters;
use shoal::swarm::{Announce, InfoHash, Peer4, Role, Swarm};
use shoal::time::Now;
use shoal::tracker::connid::ConnectionIds;
use shoal::tracker::{self, Tracker, TrackerConfig};
use shoal::wire::udp::{self, AnnounceRequest, Event};
use std::cell::OnceCell;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

/// Tracker time of every request: connection ids issued at `NOW` stay valid.
const NOW: u32 = 1_000;
/// The default shard count (`--shards`).
const SHARDS: usize = 1024;

fn tracker() -> Tracker {
    Tracker::new(TrackerConfig {
        shards: SHARDS,
        ..TrackerConfig::default()
    })
}

/// What a packet worker keeps per thread for the core: its state and its
/// counters.
struct Worker {
    core: tracker::Worker,
    counters: Counters,
}

fn worker() -> Worker {
    Worker {
        // No cluster: the worker asks for no peer events, as a packet worker without one.
        core: tracker::Worker::with_rng(fastrand::Rng::with_seed(7)).with_events(false),
        counters: Counters::default(),
    }
}

/// An announce straight into the swarm that asks for no peers.
fn bare(
    ih: &InfoHash,
    addr: (Ipv4Addr, u16),
    role: Role,
    now: u32,
) -> Announce<'static, (Ipv4Addr, u16)> {
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

/// The one IPv4 source of the request benchmarks.
const SRC4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// The one IPv6 source of the request benchmarks.
const SRC6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
/// Port of peer 0; peer `i` announces port `FIRST_PORT + i`.
const FIRST_PORT: u16 = 1024;
/// Ports of peers that are new to a torrent (above any `FIRST_PORT + i` used).
const NEW_PORT: u16 = 60_000;

fn info_hash(i: u32) -> InfoHash {
    let mut h = [0x5a; 20];
    h[..4].copy_from_slice(&i.to_be_bytes());
    h
}

/// A role mix like the load tester's (3 in 4 announces are seeders'): peer `i`'s `left`.
fn left(i: u32) -> u64 {
    if i.is_multiple_of(4) {
        1_000
    } else {
        0
    }
}

/// One datagram from one source, ready to hand to the core.
///
/// Request benchmarks reuse one buffer and patch the fields that differ between
/// peers (port, `left`), as a receive buffer is reused: the request is in cache,
/// as it is when the core reads it straight after `recv`. The peers of a torrent
/// share the source IP and differ by port (as the load tester's do), so one
/// connection id serves them all.
struct Datagram {
    src: SocketAddr,
    bytes: Vec<u8>,
}

impl Datagram {
    fn connect(src: SocketAddr) -> Datagram {
        let mut bytes = vec![0; udp::CONNECT_LEN];
        udp::write_connect_request(&mut bytes, 7).expect("16 bytes");
        Datagram { src, bytes }
    }

    /// An announce of torrent `ih` from `ip` with a valid connection id, asking for
    /// the default number of peers (`num_want` −1: 50). Port and `left` are set by [`Self::peer`].
    fn announce(t: &Tracker, ip: IpAddr, ih: &InfoHash, event: Event) -> Datagram {
        let req = AnnounceRequest {
            left: 0,
            event,
            ..AnnounceRequest::new(
                t.connection_id(Now::from_secs(NOW), ip),
                0x1234,
                *ih,
                *b"-SH0100-benchbenchbe",
                FIRST_PORT,
            )
        };
        let mut bytes = vec![0; udp::ANNOUNCE_MIN_LEN];
        let n = udp::write_announce_request(&mut bytes, &req, b"").expect("98 bytes");
        bytes.truncate(n);
        Datagram {
            src: SocketAddr::new(ip, 6881),
            bytes,
        }
    }

    fn scrape(t: &Tracker, ip: IpAddr, hashes: &[InfoHash]) -> Datagram {
        let mut bytes = vec![0; udp::SCRAPE_HEADER_LEN + 20 * hashes.len()];
        let n = udp::write_scrape_request(
            &mut bytes,
            t.connection_id(Now::from_secs(NOW), ip),
            9,
            hashes,
        )
        .expect("sized above");
        bytes.truncate(n);
        Datagram {
            src: SocketAddr::new(ip, 6881),
            bytes,
        }
    }

    /// Make this announce peer `i`'s: port `FIRST_PORT + i`, its role's `left`.
    fn peer(&mut self, i: u32) -> &mut Self {
        self.set(FIRST_PORT + i as u16, left(i))
    }

    fn set(&mut self, port: u16, left: u64) -> &mut Self {
        self.bytes[udp::field::announce::PORT].copy_from_slice(&port.to_be_bytes());
        self.bytes[udp::field::announce::LEFT].copy_from_slice(&left.to_be_bytes());
        self
    }

    /// Hand the datagram to the core and count its outcome, as a worker
    /// does; the reply length (asserted to exist).
    fn send(&self, t: &Tracker, w: &mut Worker, out: &mut [u8]) -> usize {
        let mut a = Answer {
            tracker: t,
            worker: &mut w.core,
            counters: &w.counters,
            outbox: None,
            rate_limiter: None,
        };
        let n = a.answer(Now::from_secs(NOW), self.src, &self.bytes, out);
        n.expect("the core answers every benchmark request")
    }
}

/// Announce peers `0..n` of torrent `ih` from `ip`.
fn prefill(t: &Tracker, ip: IpAddr, ih: &InfoHash, n: u32) {
    let mut w = worker();
    let mut out = [0u8; 2048];
    let mut req = Datagram::announce(t, ip, ih, Event::Started);
    for i in 0..n {
        req.peer(i).send(t, &mut w, &mut out);
    }
}

/// Criterion settings for a shared 2-core machine: short, and at most 2 s per benchmark.
fn short<'c>(c: &'c mut Criterion, name: &str) -> BenchmarkGroup<'c, WallTime> {
    let mut g = c.benchmark_group(name);
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    g
}

// ---------------------------------------------------------------------------
// udp/*: one request through decode + handle + encode.
// ---------------------------------------------------------------------------

fn udp_requests(c: &mut Criterion) {
    let t = tracker();
    let mut w = worker();
    let mut out = [0u8; 2048];
    let mut g = short(c, "udp");

    let connect = Datagram::connect(SocketAddr::from((SRC4, 6881)));
    g.bench_function("connect", |b| {
        b.iter(|| black_box(connect.send(&t, &mut w, &mut out)))
    });

    // Re-announces by the 100 members of a 100-peer torrent (3 in 4 seeders),
    // each asking for the default 50 peers; one family per torrent.
    for (name, ip, ih) in [
        ("announce_v4", IpAddr::V4(SRC4), info_hash(4)),
        ("announce_v6", IpAddr::V6(SRC6), info_hash(6)),
    ] {
        prefill(&t, ip, &ih, 100);
        let mut req = Datagram::announce(&t, ip, &ih, Event::None);
        let mut i = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % 100;
                black_box(req.peer(i).send(&t, &mut w, &mut out))
            })
        });
    }

    // 74 known torrents of 1..=74 peers; scrape the first one, then all of them.
    let hashes: Vec<InfoHash> = (1000..1074).map(info_hash).collect();
    for (k, ih) in (1..).zip(&hashes) {
        prefill(&t, IpAddr::V4(SRC4), ih, k);
    }
    for n in [1, 74] {
        let scrape = Datagram::scrape(&t, IpAddr::V4(SRC4), &hashes[..n]);
        g.bench_function(format!("scrape_{n}"), |b| {
            b.iter(|| black_box(scrape.send(&t, &mut w, &mut out)))
        });
    }
    g.finish();
}

// ---------------------------------------------------------------------------
// announce/*: swarm size.
// ---------------------------------------------------------------------------

/// New peers announced per timed chunk before they are removed again (untimed).
/// Seven keeps the larger torrents within their vector's allocation, so removing
/// them never shrinks (and the next chunk never regrows) it: the chunk measures
/// joining, not the allocator. A 1-peer torrent (inline) is boxed by the first
/// chunk and stays boxed: a stop never unboxes a torrent, only the expiry sweep
/// moves it back inline, and the bench runs none. So `new/1` measures joins into
/// a boxed torrent. The clock read per chunk costs about 3 ns a peer.
const NEW_CHUNK: u16 = 7;

fn announce_by_swarm_size(c: &mut Criterion) {
    let mut g = short(c, "announce");
    let ip = IpAddr::V4(SRC4);
    for n in [1u32, 100, 10_000] {
        let t = tracker();
        let mut w = worker();
        let mut out = [0u8; 2048];
        let ih = info_hash(n);
        prefill(&t, ip, &ih, n);

        // The steady state: members re-announcing in turn (3 in 4 seeders).
        let mut req = Datagram::announce(&t, ip, &ih, Event::None);
        let mut i = 0;
        g.bench_function(format!("existing/{n}"), |b| {
            b.iter(|| {
                i = (i + 1) % n;
                black_box(req.peer(i).send(&t, &mut w, &mut out))
            })
        });

        // Leechers arriving (`started`) on ports the torrent has not seen.
        let mut req = Datagram::announce(&t, ip, &ih, Event::Started);
        g.bench_function(format!("new/{n}"), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let k = left.min(u64::from(NEW_CHUNK)) as u16;
                    let start = Instant::now();
                    for port in NEW_PORT..NEW_PORT + k {
                        black_box(req.set(port, 1_000).send(&t, &mut w, &mut out));
                    }
                    timed += start.elapsed();
                    for port in NEW_PORT..NEW_PORT + k {
                        let stop = bare(&ih, (SRC4, port), Role::Stopped, NOW);
                        t.swarm().announce::<Peer4>(&stop, |_, _| {});
                    }
                    left -= u64::from(k);
                }
                timed
            })
        });
        assert_eq!(
            t.swarm().totals().peers(),
            u64::from(n),
            "new peers removed"
        );
    }
    g.finish();
}

// ---------------------------------------------------------------------------
// sweep/*: expiry over the whole map.
// ---------------------------------------------------------------------------

/// A population shaped like `aquatic_udp_load_test`'s: `peers` peers, each in one
/// of `torrents` torrents drawn with weight `floor + e^(6.5 − 500·i/torrents)`
/// (`floor = torrents / peers`), the load tester's current skew (older versions
/// drew from a Pareto; both give a few hundred peers to the hottest torrents and
/// leave most torrents with zero or one). Each peer has its own address (the
/// load tester's share one IP with random ports: the same storage).
struct Population {
    torrents: u32,
    peers: u32,
}

impl Population {
    /// 2 M peers over 1 M torrents: the load tester's default.
    const AQUATIC: Population = Population {
        torrents: 1_000_000,
        peers: 2_000_000,
    };
    /// The same shape at half scale: 1 M peers.
    const HALF: Population = Population {
        torrents: 500_000,
        peers: 1_000_000,
    };

    /// Fill `swarm` at time `now` (directly, not through the wire: the same state).
    fn fill(&self, swarm: &Swarm, now: u32) {
        let cdf = self.cdf();
        let total = cdf.last().copied().unwrap_or(0.0);
        let mut rng = fastrand::Rng::with_seed(0x5eed);
        for p in 0..self.peers {
            let u = rng.f64();
            let t = cdf.partition_point(|&c| c <= u * total) as u32;
            let ip = Ipv4Addr::from(0x0a00_0000 | p);
            let role = if rng.u64(..).is_multiple_of(4) {
                Role::Leecher
            } else {
                Role::Seeder
            };
            let req = bare(&info_hash(t.min(self.torrents - 1)), (ip, 6881), role, now);
            swarm.announce::<Peer4>(&req, |_, _| {});
        }
    }

    fn cdf(&self) -> Vec<f64> {
        let n = f64::from(self.torrents);
        let floor = n / f64::from(self.peers);
        let mut acc = 0.0;
        (0..self.torrents)
            .map(|i| {
                acc += floor + (6.5 - 500.0 * f64::from(i) / n).exp();
                acc
            })
            .collect()
    }

    fn swarm(&self) -> Swarm {
        let swarm = Swarm::new(SHARDS, TrackerConfig::default().peer_timeout as u16);
        self.fill(&swarm, NOW);
        swarm
    }
}

/// Print the bytes per peer of a filled map (the BENCHMARKS.md figure).
fn report_memory(label: &str, swarm: &Swarm) {
    let totals = swarm.totals();
    let bytes = swarm.approx_bytes();
    eprintln!(
        "memory {label}: {} peers in {} torrents, {:.1} MiB, {:.1} bytes/peer",
        totals.peers(),
        totals.torrents,
        bytes as f64 / (1024.0 * 1024.0),
        bytes as f64 / totals.peers() as f64
    );
}

fn sweep_all(swarm: &Swarm, now: u32) -> usize {
    (0..swarm.shard_count())
        .map(|s| swarm.expire_shard(s, now))
        .sum()
}

fn sweep(c: &mut Criterion) {
    let timeout = TrackerConfig::default().peer_timeout;
    let mut g = short(c, "sweep");
    g.sample_size(10);

    // Nothing due: the steady-state cost of looking at every peer once.
    for (label, pop) in [("1M", Population::HALF), ("2M", Population::AQUATIC)] {
        // Filled lazily, so a filter that skips the benchmark skips the fill.
        let swarm = OnceCell::new();
        g.throughput(Throughput::Elements(u64::from(pop.peers)));
        g.bench_function(format!("nothing_expires/{label}"), |b| {
            let swarm = swarm.get_or_init(|| {
                let s = pop.swarm();
                report_memory(label, &s);
                s
            });
            b.iter(|| {
                let removed = sweep_all(swarm, black_box(NOW + 60));
                debug_assert_eq!(removed, 0);
                removed
            })
        });
    }

    // Everything due: each iteration empties a freshly filled 1 M-peer map. The
    // refill (about 0.4 s, untimed, as is dropping the emptied map) dwarfs the
    // sweep, so this one runs flat: 10 samples of one or two iterations each,
    // about 10 s of wall time in all. (Criterion may warn that it cannot complete
    // 10 samples in 300 ms: that is the point, one sample is one refill.)
    let pop = Population::HALF;
    g.throughput(Throughput::Elements(u64::from(pop.peers)));
    g.sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_millis(300));
    g.bench_function("everything_expires/1M", |b| {
        b.iter_batched(
            || pop.swarm(),
            |swarm| {
                let removed = sweep_all(&swarm, black_box(NOW + timeout + 1));
                debug_assert_eq!(removed, pop.peers as usize);
                swarm
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

// ---------------------------------------------------------------------------
// connid/*: issuing and checking one connection id (every request checks one).
// ---------------------------------------------------------------------------

fn connection_ids(c: &mut Criterion) {
    let ids = ConnectionIds::new(120);
    let mut g = short(c, "connid");
    for (name, ip) in [("v4", IpAddr::V4(SRC4)), ("v6", IpAddr::V6(SRC6))] {
        g.bench_function(format!("issue_{name}"), |b| {
            b.iter(|| black_box(ids.issue(black_box(NOW), black_box(ip))))
        });
        let id = ids.issue(NOW, ip);
        g.bench_function(format!("check_{name}"), |b| {
            b.iter(|| black_box(ids.check(black_box(id), black_box(NOW), black_box(ip))))
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    udp_requests,
    connection_ids,
    announce_by_swarm_size,
    sweep
);
criterion_main!(benches);
