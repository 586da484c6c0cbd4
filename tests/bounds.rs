//! The bounds on a real process: `--max-peers` and `--max-memory` hold at
//! every reading of /metrics while two workers take a flood from IPv4 and
//! IPv6 clients, of new peers and stops, with the default 1024 shards and
//! bounds far smaller than that many shards would hold. `shoal_peers` (both
//! families) never passes `--max-peers`, and `shoal_swarm_bytes` never passes
//! `--max-memory` by more than `shoal::swarm::MARGIN_BYTES`; the bounds are
//! reached, evictions are counted, and a newcomer is still stored.
//!
//! A reader thread polls /metrics for as long as the flood runs. Every
//! flood is bounded in count and time; replies are awaited in lock-step
//! rounds (no sleeps), and a lost datagram costs one short read time-out.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Client, Proc, Role};
use shoal::swarm::MARGIN_BYTES;
use shoal::wire::udp::{self, AnnounceRequest, Event};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Announces per socket per round (the replies fit the socket's buffer).
const ROUND: usize = 64;

/// `shoal` with two workers, UDP on 127.0.0.1 and ::1, /metrics, all on
/// ephemeral ports, and `args`.
fn start(args: &[&str]) -> Proc {
    let mut all = vec![
        "--udp",
        "127.0.0.1:0",
        "--udp",
        "[::1]:0",
        "--metrics",
        "127.0.0.1:0",
        "--workers",
        "2",
    ];
    all.extend_from_slice(args);
    Proc::start(&all)
}

/// Its UDP listener of family IPv4 (`v6` false) or IPv6.
fn udp(shoal: &Proc, v6: bool) -> SocketAddr {
    let addrs = shoal.addrs(Role::Udp);
    *addrs.iter().find(|a| a.is_ipv6() == v6).unwrap()
}

/// One reading of /metrics: the peers of both families, the bytes, and
/// the evictions by reason.
#[derive(Debug, Default, Clone, Copy)]
struct Reading {
    peers: u64,
    bytes: u64,
    evicted_peers: u64,
    evicted_memory: u64,
}

fn read_metrics(addr: SocketAddr) -> Reading {
    let body = common::metrics_text(addr);
    let value = |name: &str| {
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} in /metrics")) as u64
    };
    Reading {
        peers: value("shoal_peers{family=\"ipv4\"}") + value("shoal_peers{family=\"ipv6\"}"),
        bytes: value("shoal_swarm_bytes"),
        evicted_peers: value("shoal_evicted_total{reason=\"peers\"}"),
        evicted_memory: value("shoal_evicted_total{reason=\"memory\"}"),
    }
}

/// Read /metrics until `done`, checking `check` on every reading (bounded
/// in time); the readings, and the most of each figure seen.
fn read_until(addr: SocketAddr, done: &AtomicBool, check: impl Fn(&Reading)) -> (usize, Reading) {
    let start = Instant::now();
    let (mut n, mut most) = (0, Reading::default());
    while !done.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(300) {
        let r = read_metrics(addr);
        check(&r);
        most.peers = most.peers.max(r.peers);
        most.bytes = most.bytes.max(r.bytes);
        n += 1;
    }
    (n, most)
}

/// A client socket of `server`'s family, connected, with a short read
/// time-out, and a connection id for its address.
fn client(server: SocketAddr) -> (UdpSocket, u64) {
    let c = Client::connected(server);
    let (s, conn) = (c.sock, c.connection_id);
    s.connect(server).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    (s, conn)
}

/// Info hash number `i`: distinct for every `i`.
fn info_hash(i: u64) -> [u8; 20] {
    let mut ih = [0u8; 20];
    ih[..8].copy_from_slice(&i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
    ih[8..16].copy_from_slice(&i.to_le_bytes());
    ih[16] = 0xb0;
    ih
}

/// Announce `n` new peers from `clients` in lock-step rounds: peer `k`
/// announces torrent `torrent(k)` on port `k % 60000 + 1024` (its own peer,
/// with the client's address); every eighth announce is instead a stop of
/// the peer announced sixteen before it. Bounded by `limit`. The announces
/// sent.
fn flood(
    clients: &[(UdpSocket, u64)],
    n: u64,
    limit: Duration,
    torrent: impl Fn(u64) -> u64,
) -> u64 {
    let mut pkt = [0u8; 128];
    let mut buf = [0u8; 2048];
    let start = Instant::now();
    let mut k = 0u64;
    while k < n && start.elapsed() < limit {
        let mut in_flight = vec![0usize; clients.len()];
        for (c, (s, conn)) in clients.iter().enumerate() {
            for _ in 0..ROUND {
                let (peer, event) = match k % 8 {
                    7 if k >= 16 => (k - 16, Event::Stopped),
                    _ => (k, Event::Started),
                };
                let req = AnnounceRequest {
                    event,
                    num_want: 5,
                    ..AnnounceRequest::new(
                        *conn,
                        k as u32,
                        info_hash(torrent(peer)),
                        *b"-BD0001-boundsbounds",
                        (peer % 60_000) as u16 + 1024,
                    )
                };
                let len = udp::write_announce_request(&mut pkt, &req, &[]).unwrap();
                if s.send(&pkt[..len]).is_ok() {
                    in_flight[c] += 1;
                }
                k += 1;
            }
        }
        for (c, (s, _)) in clients.iter().enumerate() {
            while in_flight[c] > 0 && s.recv(&mut buf).is_ok() {
                in_flight[c] -= 1;
            }
        }
    }
    k
}

/// Three IPv4 clients and one IPv6 client (several sockets, so both
/// workers' sockets take a share).
fn clients(shoal: &Proc) -> Vec<(UdpSocket, u64)> {
    let mut c: Vec<_> = (0..3).map(|_| client(udp(shoal, false))).collect();
    c.push(client(udp(shoal, true)));
    c
}

/// A real newcomer is stored, and the next peer of its torrent gets it.
fn newcomer_is_stored(shoal: &Proc) {
    let ih = info_hash(u64::MAX);
    let mut a = Client::connected(udp(shoal, false));
    let mut b = Client::connected(udp(shoal, false));
    assert_eq!(a.announce(ih, Event::Started, 10, 50).peers, b"");
    let got = b.announce(ih, Event::Started, 10, 50).peers;
    assert_eq!(got.len(), 6, "the newcomer is returned: {got:?}");
    assert_eq!(u16::from_be_bytes([got[4], got[5]]), a.port());
}

#[test]
fn under_a_flood_the_peer_bound_holds_at_every_reading() {
    const MAX: u64 = 300;
    let shoal = start(&["--max-peers", "300"]);
    let clients = clients(&shoal);
    let metrics = shoal.addr(Role::Metrics);
    let done = AtomicBool::new(false);
    let (sent, (readings, most)) = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            read_until(metrics, &done, |r| {
                assert!(r.peers <= MAX, "{} peers read, bound {MAX}", r.peers);
            })
        });
        // 600 torrents of many peers each, from both families.
        let sent = flood(&clients, 40_000, Duration::from_secs(90), |k| k % 600);
        done.store(true, Ordering::Relaxed);
        (sent, reader.join().unwrap())
    });
    let end = read_metrics(metrics);
    eprintln!("{sent} announces, {readings} readings, most {most:?}, end {end:?}");
    assert!(sent > 10_000, "the flood ran: {sent} announces");
    assert!(readings >= 5, "{readings} readings");
    assert!(end.peers <= MAX);
    assert!(
        most.peers.max(end.peers) >= MAX * 9 / 10,
        "the bound was reached: {most:?}"
    );
    assert!(end.evicted_peers > 0);
    newcomer_is_stored(&shoal);
}

#[test]
fn under_a_flood_the_memory_bound_holds_at_every_reading() {
    // 1 MiB, of which 1024 shards take about 400 KiB themselves: room for
    // a few thousand one-peer torrents, and first chunks in a few hundred
    // shards.
    const MAX: u64 = 1 << 20;
    let shoal = start(&["--max-memory", "1M", "--max-peers", "0"]);
    let clients = clients(&shoal);
    let metrics = shoal.addr(Role::Metrics);
    let done = AtomicBool::new(false);
    let (sent, (readings, most)) = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            read_until(metrics, &done, |r| {
                assert!(
                    r.bytes <= MAX + MARGIN_BYTES,
                    "{} bytes read, bound {MAX} + {MARGIN_BYTES}",
                    r.bytes
                );
            })
        });
        // Distinct torrents of one peer each (and a stop now and then).
        let sent = flood(&clients, 40_000, Duration::from_secs(90), |k| k);
        done.store(true, Ordering::Relaxed);
        (sent, reader.join().unwrap())
    });
    let end = read_metrics(metrics);
    eprintln!("{sent} announces, {readings} readings, most {most:?}, end {end:?}");
    assert!(sent > 10_000, "the flood ran: {sent} announces");
    assert!(readings >= 5, "{readings} readings");
    assert!(end.bytes <= MAX + MARGIN_BYTES);
    assert!(
        most.bytes.max(end.bytes) >= MAX * 9 / 10,
        "the bound was reached: {most:?}"
    );
    assert!(end.evicted_memory > 0);
    newcomer_is_stored(&shoal);
}
