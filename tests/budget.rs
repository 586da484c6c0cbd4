//! The memory budget against a real `shoal` process: floods several times
//! the budget, over UDP on 127.0.0.1, of announces for distinct info hashes
//! (the costliest shape: one torrent a peer). The map's accounted bytes stay
//! within `--max-memory`, RSS grows by no more than the budget and a margin
//! for the process, the most recent announcers are all stored, a real
//! newcomer is stored and handed to the next peer; and a shoal started under a
//! tight `ulimit -v` picks its budget from it and never aborts.
//!
//! Every flood is bounded in count and time; replies are awaited in
//! lock-step rounds (no sleeps), and a lost datagram costs one short read
//! time-out.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use shoal::wire::udp::{self, field, AnnounceRequest};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_shoal");
/// Sockets the flood is sent from (one peer address each).
const SOCKETS: usize = 4;
/// Announces per socket per round (the replies fit the socket's buffer).
const ROUND: usize = 128;

struct Server {
    child: Child,
    udp: SocketAddr,
    metrics: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// `shoal` run through `sh -c` (so a test can set limits first) with one
    /// worker, UDP and /metrics on ephemeral loopback ports, and `args`.
    fn start(prefix: &str, args: &str) -> Server {
        let script = format!(
            "{prefix} exec {BIN} --udp 127.0.0.1:0 --metrics 127.0.0.1:0 --workers 1 --log info {args}"
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let (mut udp, mut metrics) = (None, None);
        // The log says where it listens (bounded: it logs both or exits).
        while udp.is_none() || metrics.is_none() {
            let line = lines
                .next()
                .expect("shoal exited before listening")
                .unwrap();
            let addr = |scheme: &str| {
                line.split(scheme)
                    .nth(1)
                    .and_then(|a| a.trim().parse::<SocketAddr>().ok())
            };
            udp = udp.or(addr("listening on udp://"));
            metrics = metrics.or(addr("/health on http://"));
        }
        // Keep draining the log so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Server {
            child,
            udp: udp.unwrap(),
            metrics: metrics.unwrap(),
        }
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap()
            * 1024
    }

    /// A sample's value from /metrics (`name` with its labels, if any).
    fn metric(&self, name: &str) -> u64 {
        let mut s = TcpStream::connect(self.metrics).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} in /metrics")) as u64
    }
}

/// Info hash number `i`: distinct for every `i`.
fn info_hash(i: u64) -> [u8; 20] {
    let mut ih = [0u8; 20];
    ih[..8].copy_from_slice(&i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
    ih[8..16].copy_from_slice(&i.to_le_bytes());
    ih[16] = 0xb7;
    ih
}

/// A UDP client on 127.0.0.1 with a short read time-out.
fn socket(server: SocketAddr) -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.connect(server).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    s
}

/// A connection id (keyed by the client IP: one serves every local socket).
fn connect(s: &UdpSocket) -> u64 {
    let mut buf = [0u8; 64];
    for tx in 0..50 {
        let len = udp::write_connect_request(&mut buf, tx).unwrap();
        s.send(&buf[..len]).unwrap();
        if let Ok(16) = s.recv(&mut buf) {
            return u64::from_be_bytes(buf[8..16].try_into().unwrap());
        }
    }
    panic!("no connect reply");
}

/// An announce of `ih` asking for `num_want` peers; returns the peers' ports.
fn announce(s: &UdpSocket, conn: u64, ih: [u8; 20], num_want: i32) -> Option<Vec<u16>> {
    let mut pkt = [0u8; 128];
    let req = AnnounceRequest {
        num_want,
        ..AnnounceRequest::new(
            conn,
            7,
            ih,
            *b"-BG0001-budgetbudget",
            s.local_addr().unwrap().port(),
        )
    };
    let len = udp::write_announce_request(&mut pkt, &req, &[]).unwrap();
    let mut buf = [0u8; 2048];
    for _ in 0..20 {
        s.send(&pkt[..len]).unwrap();
        if let Ok(n) = s.recv(&mut buf) {
            if n >= 20 && buf[..4] == 1u32.to_be_bytes() {
                return Some(
                    buf[20..n]
                        .chunks(6)
                        .map(|p| u16::from_be_bytes([p[4], p[5]]))
                        .collect(),
                );
            }
        }
    }
    None
}

/// Counts (seeders, completed, leechers) of up to 74 hashes.
fn scrape(s: &UdpSocket, conn: u64, hashes: &[[u8; 20]]) -> Vec<u32> {
    let mut pkt = vec![0u8; 16 + 20 * hashes.len()];
    pkt[..8].copy_from_slice(&conn.to_be_bytes());
    pkt[8..12].copy_from_slice(&2u32.to_be_bytes());
    pkt[12..16].copy_from_slice(&9u32.to_be_bytes());
    for (k, h) in hashes.iter().enumerate() {
        pkt[16 + 20 * k..36 + 20 * k].copy_from_slice(h);
    }
    let mut buf = [0u8; 2048];
    for _ in 0..20 {
        s.send(&pkt).unwrap();
        if let Ok(n) = s.recv(&mut buf) {
            if n == 8 + 12 * hashes.len() {
                return buf[8..n]
                    .chunks(12)
                    .map(|c| {
                        let w = |i: usize| u32::from_be_bytes(c[i..i + 4].try_into().unwrap());
                        w(0) + w(8)
                    })
                    .collect();
            }
        }
    }
    panic!("no scrape reply");
}

/// Announce info hashes `from..to` (one peer each: the flood's sockets),
/// in lock-step rounds; calls `check` between every `every` announces.
/// Bounded by `limit`. Returns the announces sent.
fn flood(
    socks: &[UdpSocket],
    conn: u64,
    (from, to): (u64, u64),
    limit: Duration,
    every: u64,
    mut check: impl FnMut(u64),
) -> u64 {
    let mut pkt = [0u8; 128];
    let req = AnnounceRequest {
        num_want: 0,
        ..AnnounceRequest::new(conn, 0, [0; 20], *b"-BG0001-floodfloodfl", 6881)
    };
    let len = udp::write_announce_request(&mut pkt, &req, &[]).unwrap();
    let mut buf = [0u8; 2048];
    let start = Instant::now();
    let mut i = from;
    let mut next_check = from + every;
    while i < to && start.elapsed() < limit {
        let mut in_flight = [0usize; SOCKETS];
        for (k, s) in socks.iter().enumerate() {
            for _ in 0..ROUND.min((to - i) as usize) {
                pkt[field::announce::INFO_HASH].copy_from_slice(&info_hash(i));
                if s.send(&pkt[..len]).is_ok() {
                    in_flight[k] += 1;
                }
                i += 1;
            }
        }
        for (k, s) in socks.iter().enumerate() {
            while in_flight[k] > 0 && s.recv(&mut buf).is_ok() {
                in_flight[k] -= 1;
            }
        }
        if i >= next_check {
            check(i);
            next_check += every;
        }
    }
    i - from
}

#[test]
fn a_flood_of_four_times_the_budget_stays_within_it_and_newcomers_are_stored() {
    const BUDGET: u64 = 4 << 20;
    let mut server = Server::start("", "--max-memory 4M --shards 64");
    assert_eq!(server.metric("shoal_max_memory_bytes"), BUDGET);
    let socks: Vec<UdpSocket> = (0..SOCKETS).map(|_| socket(server.udp)).collect();
    let conn = connect(&socks[0]);
    flood(
        &socks,
        conn,
        (0, 2_000),
        Duration::from_secs(30),
        u64::MAX,
        |_| {},
    );
    let rss0 = server.rss();
    // One-peer torrents cost about 56 bytes: four budgets' worth.
    let n = 4 * BUDGET / 56;
    let mut most = 0;
    let sent = flood(
        &socks,
        conn,
        (2_000, n),
        Duration::from_secs(120),
        20_000,
        |_| {
            let bytes = server.metric("shoal_swarm_bytes");
            assert!(bytes <= BUDGET, "{bytes} bytes accounted, over the budget");
            most = most.max(bytes);
        },
    );
    assert!(sent > 3 * BUDGET / 56, "the flood ran: {sent} announces");
    let rss1 = server.rss();
    let (bytes, torrents) = (
        server.metric("shoal_swarm_bytes"),
        server.metric("shoal_torrents"),
    );
    let evicted = server.metric("shoal_evicted_total{reason=\"memory\"}");
    eprintln!(
        "{sent} announces: {torrents} torrents in {bytes} bytes (most {most}); RSS {} -> {} KiB \
         (+{} KiB); {evicted} evicted",
        rss0 >> 10,
        rss1 >> 10,
        (rss1 - rss0) >> 10
    );
    assert!(
        bytes <= BUDGET && most as f64 > 0.85 * BUDGET as f64,
        "{most} used at most"
    );
    assert!(evicted > 0 && server.alive());
    // RSS grows by the budget at most, plus a margin for the allocator's
    // slack under churn (freed chunks, table doublings).
    assert!(
        rss1.saturating_sub(rss0) <= BUDGET + BUDGET / 4,
        "RSS grew {} KiB for a {} KiB budget",
        (rss1 - rss0) >> 10,
        BUDGET >> 10
    );
    // The most recent announcers are all stored.
    let last: Vec<[u8; 20]> = (2_000 + sent - 74..2_000 + sent).map(info_hash).collect();
    let counts = scrape(&socket(server.udp), conn, &last);
    assert!(counts.iter().all(|&c| c == 1), "the last 74: {counts:?}");
    // A real newcomer is stored, and the next peer of its torrent gets it.
    let (a, b) = (socket(server.udp), socket(server.udp));
    let ih = info_hash(u64::MAX);
    assert_eq!(announce(&a, conn, ih, 50), Some(vec![]));
    let port_a = a.local_addr().unwrap().port();
    assert_eq!(announce(&b, conn, ih, 50), Some(vec![port_a]));
}

#[test]
fn under_a_tight_address_space_limit_shoal_picks_its_budget_from_it_and_never_aborts() {
    // `ulimit -v` caps the address space at 40 000 KiB: about twice what
    // an idle shoal maps. The default budget is half of what is left.
    const LIMIT: u64 = 40_000 * 1024;
    let mut server = Server::start("ulimit -v 40000 &&", "--shards 64");
    let budget = server.metric("shoal_max_memory_bytes");
    assert!(
        budget > 1 << 20 && budget <= LIMIT / 2,
        "a budget of {budget} bytes under a {LIMIT}-byte limit"
    );
    let socks: Vec<UdpSocket> = (0..SOCKETS).map(|_| socket(server.udp)).collect();
    let conn = connect(&socks[0]);
    // Two and a half budgets' worth of one-peer torrents.
    let n = 5 * budget / 2 / 56;
    let sent = flood(
        &socks,
        conn,
        (0, n),
        Duration::from_secs(120),
        50_000,
        |_| {
            let bytes = server.metric("shoal_swarm_bytes");
            assert!(
                bytes <= budget,
                "{bytes} bytes accounted for a budget of {budget}"
            );
        },
    );
    assert!(server.alive(), "shoal aborted under the flood");
    assert!(sent > 2 * budget / 56, "the flood ran: {sent} announces");
    assert!(server.metric("shoal_evicted_total{reason=\"memory\"}") > 0);
    let (a, b) = (socket(server.udp), socket(server.udp));
    let ih = info_hash(u64::MAX - 1);
    assert_eq!(announce(&a, conn, ih, 50), Some(vec![]));
    let port_a = a.local_addr().unwrap().port();
    assert_eq!(announce(&b, conn, ih, 50), Some(vec![port_a]));
    assert!(server.alive());
}
