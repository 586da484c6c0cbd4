//! Bytes of memory per one-peer torrent: the long tail of a public tracker.
//!
//! Two measurements of the same thing, the map holding `N` torrents of one
//! peer each (distinct info hashes, as a flood of announces for torrents nobody
//! else has leaves it), of IPv4 peers or, with `FLOOD_FAMILY=6`, IPv6 ones:
//!
//! - `server` (default): starts a release `shoal` (`--udp 127.0.0.1:0 --http
//!   127.0.0.1:0`, or `--udp [::1]:0` for IPv6), floods it from one client over
//!   a few UDP sockets on 127.0.0.1 (or ::1) with announces for distinct info
//!   hashes, then reads the
//!   server's `VmRSS` (`/proc/PID/status`) and `shoal_torrents` (`/metrics`).
//!   Prints the RSS growth over a warm-up baseline divided by the torrents
//!   stored in between. Announces are sent in lock-step rounds (a window of a
//!   few thousand in flight), so the kernel drops few; drops only mean fewer
//!   torrents, and the division uses the server's own count.
//! - `inproc`: fills a `Swarm` (1024 shards, the default) in this process the
//!   same way and prints `Swarm::approx_bytes` and this process's RSS growth,
//!   each per torrent: the accounting model against the kernel's view.
//!
//! Bounded: at most `FLOOD_TORRENTS` announces (default 2 000 000) and
//! `FLOOD_SECS` seconds (default 120); only 127.0.0.1 and ::1.
//!
//! ```sh
//! cargo build --release --bin shoal
//! cargo bench --bench flood                        # server, 2 M torrents
//! FLOOD_TORRENTS=4000000 cargo bench --bench flood
//! SHOAL=/tmp/shoal-old cargo bench --bench flood   # another build
//! cargo bench --bench flood -- inproc              # the map alone
//! FLOOD_FAMILY=6 cargo bench --bench flood         # IPv6 peers, over ::1
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use shoal::swarm::{Announce, Peer4, Peer6, Role, Swarm};
use shoal::wire::udp::{self, field, AnnounceRequest};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Sockets the client sends from (one peer address each).
const SOCKETS: usize = 4;
/// Announces per socket per round: the replies of a round must fit the
/// client socket's receive buffer (about 1 KiB of it each on loopback).
const ROUND: usize = 256;
/// Torrents announced before the baseline is read (tables, buffers and the
/// allocator's arenas warmed up).
const WARMUP: u64 = 20_000;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

/// Info hash number `i` of this run: distinct for every `i`.
fn info_hash(salt: u64, i: u64) -> [u8; 20] {
    let mut ih = [0u8; 20];
    ih[..8].copy_from_slice(&salt.to_le_bytes());
    ih[8..16].copy_from_slice(&i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
    ih[16..].copy_from_slice(&(i as u32).to_le_bytes());
    ih
}

fn main() {
    let mode = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_else(|| "server".into());
    let n = env_u64("FLOOD_TORRENTS", 2_000_000);
    let limit = Duration::from_secs(env_u64("FLOOD_SECS", 120));
    let v6 = match env_u64("FLOOD_FAMILY", 4) {
        4 => false,
        6 => true,
        f => panic!("FLOOD_FAMILY={f}: 4 or 6"),
    };
    match mode.as_str() {
        "inproc" => inproc(n, v6),
        _ => server(n, limit, v6),
    }
}

fn inproc(n: u64, v6: bool) {
    let pid = std::process::id();
    let swarm = Swarm::new(1024, 3600);
    let salt = fastrand::u64(..);
    let fill = |from: u64, to: u64| {
        for i in from..to {
            let req = Announce {
                info_hash: info_hash(salt, i),
                addr: (),
                role: Role::Leecher,
                completed: false,
                now: 1000,
                want: 50,
                random: (i, 7),
                peer_id: None,
                emit_ids: false,
            };
            if v6 {
                let req = req.with_addr((Ipv6Addr::LOCALHOST, 6881));
                swarm.announce::<Peer6>(&req, |_, _| {});
            } else {
                let req = req.with_addr((Ipv4Addr::new(127, 0, 0, 1), 6881));
                swarm.announce::<Peer4>(&req, |_, _| {});
            }
        }
    };
    fill(0, WARMUP);
    let (rss0, bytes0) = (rss_bytes(pid), swarm.approx_bytes());
    fill(WARMUP, n);
    let (rss1, bytes1) = (rss_bytes(pid), swarm.approx_bytes());
    let t = swarm.totals().torrents - WARMUP;
    println!(
        "inproc: {t} one-peer IPv{} torrents added: approx_bytes {:.1} B/torrent, RSS {:.1} B/torrent \
         (approx_bytes {:.1} MiB in all)",
        if v6 { 6 } else { 4 },
        (bytes1 - bytes0) as f64 / t as f64,
        (rss1 - rss0) as f64 / t as f64,
        bytes1 as f64 / (1 << 20) as f64
    );
}

struct Server {
    child: Child,
    udp: SocketAddr,
    http: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(v6: bool) -> Server {
    let bin = std::env::var("SHOAL").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/shoal").to_string()
    });
    let mut child = Command::new(&bin)
        .args([
            "--udp",
            if v6 { "[::1]:0" } else { "127.0.0.1:0" },
            "--http",
            "127.0.0.1:0",
            "--http-metrics",
            "--log",
            "info",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{bin}: {e} (cargo build --release --bin shoal)"));
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut udp, mut http) = (None, None);
    // The log says where it listens (bounded: the process exits or logs both).
    while udp.is_none() || http.is_none() {
        let line = lines.next().expect("shoal exited").unwrap();
        let addr = |scheme: &str| {
            line.split(scheme)
                .nth(1)
                .and_then(|a| a.trim().parse::<SocketAddr>().ok())
        };
        udp = udp.or(addr("listening on udp://"));
        http = http.or(addr("listening on http://"));
    }
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Server {
        child,
        udp: udp.unwrap(),
        http: http.unwrap(),
    }
}

fn torrents(http: SocketAddr) -> u64 {
    let mut s = TcpStream::connect(http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix("shoal_torrents "))
        .and_then(|v| v.trim().parse().ok())
        .expect("shoal_torrents in /metrics")
}

fn server(n: u64, limit: Duration, v6: bool) {
    let server = start_server(v6);
    let pid = server.child.id();
    let socks: Vec<UdpSocket> = (0..SOCKETS)
        .map(|_| {
            let s = UdpSocket::bind(if v6 { "[::1]:0" } else { "127.0.0.1:0" }).unwrap();
            s.connect(server.udp).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            // Room for a round of replies (capped by net.core.rmem_max).
            let _ = socket2::SockRef::from(&s).set_recv_buffer_size(4 << 20);
            s
        })
        .collect();
    let mut buf = [0u8; 2048];
    // One connection id serves every socket: it is keyed by the client IP.
    let conn = loop {
        let len = udp::write_connect_request(&mut buf, 1).unwrap();
        socks[0].send(&buf[..len]).unwrap();
        let mut reply = [0u8; 64];
        if let Ok(16) = socks[0].recv(&mut reply) {
            break u64::from_be_bytes(reply[8..16].try_into().unwrap());
        }
    };
    let salt = fastrand::u64(..);
    let mut pkt = [0u8; 128];
    let len = udp::write_announce_request(
        &mut pkt,
        &AnnounceRequest {
            num_want: 0,
            ..AnnounceRequest::new(conn, 0, [0; 20], *b"-FL0001-floodfloodfl", 6881)
        },
        &[],
    )
    .unwrap();
    let start = Instant::now();
    let mut sent = 0u64;
    let mut flood = |upto: u64, sent: &mut u64| {
        while *sent < upto && start.elapsed() < limit {
            let mut in_flight = [0usize; SOCKETS];
            for (k, s) in socks.iter().enumerate() {
                for _ in 0..ROUND {
                    if *sent >= upto {
                        break;
                    }
                    pkt[field::announce::INFO_HASH].copy_from_slice(&info_hash(salt, *sent));
                    pkt[field::request::TRANSACTION_ID]
                        .copy_from_slice(&(*sent as u32).to_be_bytes());
                    if s.send(&pkt[..len]).is_ok() {
                        in_flight[k] += 1;
                    }
                    *sent += 1;
                }
            }
            // Wait for the round's replies (a lost one costs one 20 ms timeout).
            for (k, s) in socks.iter().enumerate() {
                while in_flight[k] > 0 && s.recv(&mut buf).is_ok() {
                    in_flight[k] -= 1;
                }
            }
        }
    };
    flood(WARMUP, &mut sent);
    let (rss0, t0) = (rss_bytes(pid), torrents(server.http));
    let t_start = Instant::now();
    flood(n, &mut sent);
    let secs = t_start.elapsed().as_secs_f64();
    let (rss1, t1) = (rss_bytes(pid), torrents(server.http));
    let added = t1 - t0;
    println!(
        "server: {sent} announces sent over IPv{}, {t1} torrents stored ({:.0} announces/s); \
         RSS {:.1} MiB -> {:.1} MiB: {:.1} B of RSS per one-peer torrent",
        if v6 { 6 } else { 4 },
        (sent - WARMUP) as f64 / secs,
        rss0 as f64 / (1 << 20) as f64,
        rss1 as f64 / (1 << 20) as f64,
        (rss1 - rss0) as f64 / added as f64
    );
}
