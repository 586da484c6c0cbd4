//! Criterion benchmarks of the warm-restart snapshot and the rate limiter.
//!
//! Groups:
//! - `snapshot/write_2M`: [`SnapshotFile`] create → one `write_torrent` per
//!   torrent → `commit` (fsync + rename + directory fsync) of 2 M IPv4 peers.
//! - `snapshot/load_2M`: [`load`] (read, checksum, validating pass) and
//!   `next_into` over every torrent.
//! - `limit/allow_*`: one [`RateLimiter::allow`] in a full 64 Ki-slot table:
//!   misses (evictions), hits, and hits while a second thread charges the
//!   same shared table.
//!
//! The population: 2 M peers, each in one of 1 M torrents drawn Zipf(1)
//! (the load generator's skew, `src/bench/population.rs`),
//! random ages below the peer timeout, 3 in 4 seeders, no HTTP peer ids (a UDP
//! swarm). The file size and bytes per peer go to stderr.
//!
//! One-shot mode (`SHOAL_SNAPSHOT_ONCE=PEERS`, no criterion): the whole warm
//! restart path once, as `--state-file` runs it, for BENCHMARKS.md: a real
//! [`Swarm`] (1024 shards) filled by announces of PEERS peers over PEERS/2
//! torrents drawn as above, then timed: the write (`export_with`, one shard
//! lock at a time, into a [`SnapshotFile`] with fsync and rename) and, with
//! that swarm dropped, the load ([`load`]: read, checksum, validation) and
//! [`Swarm::import`] into an empty swarm. Prints one line per step.
//!
//! ```sh
//! cargo bench --bench snapshot
//! cargo bench --bench snapshot -- limit
//! SHOAL_SNAPSHOT_ONCE=2000000 cargo bench --bench snapshot
//! SHOAL_SNAPSHOT_ONCE=20000000 cargo bench --bench snapshot
//! ```

// A bench is a test: a panic is how it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, Criterion};
use shoal::limit::RateLimiter;
use shoal::snapshot::{load, Header, PeerRecord4, SnapshotFile, TorrentRecord};
use shoal::swarm::{Announce, Peer4, Role, Swarm};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};

const PEERS: u32 = 2_000_000;
const TORRENTS: u32 = 1_000_000;
const NOW: u64 = 1_800_000_000;
const TIMEOUT: u32 = 1800;

/// A Zipf(1)-distributed torrent index in `0..torrents` (a copy of the load
/// generator's, whose module is private).
fn zipf_torrent(rng: &mut fastrand::Rng, torrents: u32) -> u32 {
    let n = f64::from(torrents) + 1.0;
    let rank = (n.powf(rng.f64()) - 1.0) as u32;
    rank.min(torrents.saturating_sub(1))
}

fn population() -> Vec<TorrentRecord> {
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let mut by_torrent: Vec<Vec<PeerRecord4>> = vec![Vec::new(); TORRENTS as usize];
    for p in 0..PEERS {
        let t = zipf_torrent(&mut rng, TORRENTS) as usize;
        by_torrent[t].push(PeerRecord4 {
            ip: Ipv4Addr::from(0x0a00_0000 | p),
            port: 6881,
            seeder: !rng.u8(..).is_multiple_of(4),
            age: rng.u32(..TIMEOUT),
        });
    }
    by_torrent
        .into_iter()
        .enumerate()
        .filter(|(_, v4)| !v4.is_empty())
        .map(|(i, v4)| {
            let mut info_hash = [0u8; 20];
            info_hash[..8].copy_from_slice(&(i as u64).to_le_bytes());
            TorrentRecord {
                info_hash,
                completed: rng.u32(..1000),
                v4,
                ..TorrentRecord::default()
            }
        })
        .collect()
}

fn header() -> Header {
    Header {
        written_unix: NOW,
        peer_timeout: TIMEOUT,
        connid_key: [7; 16],
    }
}

fn save(path: &Path, recs: &[TorrentRecord]) {
    let mut f = SnapshotFile::create(path, &header()).unwrap();
    for r in recs {
        f.write_torrent(r).unwrap();
    }
    f.commit().unwrap();
}

fn bench_snapshot(c: &mut Criterion) {
    let recs = population();
    let dir = std::env::temp_dir().join(format!("shoal-bench-snap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("state.bin");
    save(&path, &recs);
    let size = std::fs::metadata(&path).unwrap().len();
    eprintln!(
        "snapshot: {} torrents, {PEERS} peers, {size} bytes, {:.2} bytes/peer (8 per peer + torrent overhead)",
        recs.len(),
        size as f64 / f64::from(PEERS)
    );

    let mut g = c.benchmark_group("snapshot");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    g.bench_function("write_2M", |b| b.iter(|| save(&path, black_box(&recs))));
    g.bench_function("load_2M", |b| {
        let mut rec = TorrentRecord::default();
        b.iter(|| {
            // One second of downtime: ages advance, a few peers expire.
            let mut l = load(&path, NOW + 1, TIMEOUT).unwrap().unwrap();
            let mut peers = 0usize;
            while l.next_into(&mut rec) {
                peers += rec.peers();
            }
            black_box(peers)
        })
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

fn bench_limit(c: &mut Criterion) {
    let l = RateLimiter::new(100, 200, RateLimiter::DEFAULT_SLOTS);
    // 256 Ki addresses over 64 Ki slots: mostly misses (evictions), the worst case.
    let mut rng = fastrand::Rng::with_seed(1);
    let ips: Vec<IpAddr> = (0..1 << 18)
        .map(|_| IpAddr::V4(Ipv4Addr::from(rng.u32(..))))
        .collect();
    let hot: Vec<IpAddr> = ips[..1024].to_vec();
    let mut g = c.benchmark_group("limit");
    let (mut i, mut now) = (0usize, 0u64);
    g.bench_function("allow_miss", |b| {
        b.iter(|| {
            i = (i + 1) & (ips.len() - 1);
            now += 1;
            black_box(l.allow(black_box(ips[i]), now / 1000))
        })
    });
    g.bench_function("allow_hit", |b| {
        b.iter(|| {
            i = (i + 1) & (hot.len() - 1);
            now += 1;
            black_box(l.allow(black_box(hot[i]), now / 1000))
        })
    });
    // The table is shared by every worker: the same hits while another
    // thread charges other addresses in it as fast as it can (the cost of
    // the set locks under contention; on 2 cores the other thread also
    // competes for the CPU, so read the difference as an upper bound).
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut j = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                j = (j + 1) & (ips.len() - 1);
                black_box(l.allow(ips[j], 0));
            }
        });
        g.bench_function("allow_hit_with_a_second_thread", |b| {
            b.iter(|| {
                i = (i + 1) & (hot.len() - 1);
                now += 1;
                black_box(l.allow(black_box(hot[i]), now / 1000))
            })
        });
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    g.finish();
}

/// CPU time of this (single-threaded) process in ms, from /proc/self/stat
/// (10 ms ticks): on a shared machine wall time includes waiting for a core.
fn cpu_ms() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // Fields 14 and 15 (utime, stime); `after` starts at field 3.
    (f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)) * 10
}

/// The one-shot mode: see the module docs.
fn once(peers: u32) {
    let torrents = (peers / 2).max(1);
    let swarm = Swarm::new(1024, TIMEOUT as u16);
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let fill = Instant::now();
    for p in 0..peers {
        let t = zipf_torrent(&mut rng, torrents);
        let mut info_hash = [0u8; 20];
        info_hash[..4].copy_from_slice(&t.to_le_bytes());
        let req = Announce {
            info_hash,
            addr: (Ipv4Addr::from(0x0a00_0000 | p), 6881),
            role: if rng.u8(..).is_multiple_of(4) {
                Role::Leecher
            } else {
                Role::Seeder
            },
            completed: rng.bool(),
            // Stamps spread over the timeout: the snapshot is taken at TIMEOUT.
            now: rng.u32(1..TIMEOUT),
            want: 0,
            random: (0, 0),
            peer_id: None,
            emit_ids: false,
        };
        swarm.announce::<Peer4>(&req, |_, _| {});
    }
    let totals = swarm.totals();
    eprintln!(
        "filled: {} torrents, {} peers in {:.1} s",
        totals.torrents,
        totals.peers(),
        fill.elapsed().as_secs_f64()
    );
    let dir = std::env::temp_dir().join(format!("shoal-bench-once-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("state.bin");

    let (t0, c0) = (Instant::now(), cpu_ms());
    let mut f = SnapshotFile::create(&path, &header()).unwrap();
    swarm
        .export_with(TIMEOUT, |rec| f.write_torrent(rec))
        .unwrap();
    let (t, p) = f.commit().unwrap();
    let write = t0.elapsed();
    let write_cpu = cpu_ms() - c0;
    let size = std::fs::metadata(&path).unwrap().len();
    eprintln!(
        "write: {t} torrents, {p} peers, {size} bytes ({:.2} bytes/peer) in {} ms ({write_cpu} ms CPU)",
        size as f64 / p as f64,
        write.as_millis()
    );
    drop(swarm);

    let (t0, c0) = (Instant::now(), cpu_ms());
    let mut l = load(&path, NOW, TIMEOUT).unwrap().unwrap();
    let read = t0.elapsed();
    let fresh = Swarm::new(1024, TIMEOUT as u16);
    let got = fresh.import(&mut l, 0);
    let total = t0.elapsed();
    let load_cpu = cpu_ms() - c0;
    eprintln!(
        "load: {} torrents, {} peers in {} ms ({load_cpu} ms CPU; {} ms read and validated, {} ms imported)",
        got.torrents,
        got.peers,
        total.as_millis(),
        read.as_millis(),
        (total - read).as_millis()
    );
    assert_eq!(got.peers, p);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench_snapshot, bench_limit);

fn main() {
    if let Ok(n) = std::env::var("SHOAL_SNAPSHOT_ONCE") {
        once(n.parse().expect("SHOAL_SNAPSHOT_ONCE=PEERS"));
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
