//! `shoal bench`: a BEP 15 load generator that behaves like a population of
//! real clients, and its report.
//!
//! [`run`] checks the configuration (a non-loopback target is refused before
//! any socket exists unless `allow_remote` is set), starts an in-process
//! shoal when no target is given, binds each worker's sockets to distinct
//! loopback addresses (127.0.0.1, 127.0.0.2, … for an IPv4 loopback target,
//! so the peers look like different hosts and the server's `SO_REUSEPORT`
//! spreads them), generates the population, runs the workers for the
//! duration (hard-capped at [`MAX_DURATION`]), prints a progress line each
//! second and returns a [`Report`].
//!
//! The load is closed-loop: every socket keeps up to `window` requests in
//! flight, so the generator measures the throughput the target sustains and
//! the latency at that throughput. Memory is bounded by the population
//! (8 bytes per peer) and the slot tables (`workers × sockets × window`).

pub mod hist;
mod population;
mod worker;

use crate::client::json;
use crate::client::{Scheme, TrackerUrl};
use crate::config::Config;
use crate::net::{Running, Server};
use fastrand::Rng;
use hist::Histogram;
use socket2::{Domain, Protocol, Socket, Type};
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use worker::{Live, Settings, Totals, Worker, ANNOUNCE, CONNECT, SCRAPE};

/// The longest run accepted.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// Limits that keep memory and threads bounded.
pub const MAX_WORKERS: usize = 64;
pub const MAX_SOCKETS: usize = 1024;
pub const MAX_PEERS: u32 = 50_000_000;

/// What to run. [`BenchConfig::default`] mirrors `aquatic_udp_load_test`'s
/// defaults (1 worker, 4 sockets, 1 M torrents, 2 M peers, connect:announce:scrape
/// = 50:50:1, 30 peers wanted, up to 10 hashes per scrape, 75 % seeders). The
/// window of 16 per socket (64 in flight) saturates a one-worker tracker on
/// loopback without piling up queueing delay: 4 per socket already reaches the
/// same throughput at a quarter of the latency, 64 only adds latency.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// `udp://` tracker to load; `None` starts an in-process shoal on 127.0.0.1.
    pub target: Option<TrackerUrl>,
    pub duration: Duration,
    pub workers: usize,
    /// Sockets per worker, each with its own source address when possible.
    pub sockets: usize,
    /// Requests in flight per socket (1..=4096).
    pub window: usize,
    /// A request unanswered this long is counted lost.
    pub timeout: Duration,
    pub torrents: u32,
    pub peers: u32,
    /// Request mix weights.
    pub connect: u32,
    pub announce: u32,
    pub scrape: u32,
    /// `num_want` of announces; `None` asks for the tracker's default.
    pub numwant: Option<u32>,
    /// Most hashes per scrape (each scrape asks for 1..=this many).
    pub scrape_max: usize,
    pub seeder_ratio: f64,
    /// Seed of the population (torrents, peers, ids): the same seed gives the same population.
    pub seed: u64,
    /// Worker threads of the in-process shoal.
    pub server_workers: usize,
    /// Allow targets outside 127.0.0.0/8 and ::1.
    pub allow_remote: bool,
    /// Print a progress line on stderr every second.
    pub progress: bool,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            target: None,
            duration: Duration::from_secs(10),
            workers: 1,
            sockets: 4,
            window: 16,
            timeout: Duration::from_secs(1),
            torrents: 1_000_000,
            peers: 2_000_000,
            connect: 50,
            announce: 50,
            scrape: 1,
            numwant: Some(30),
            scrape_max: 10,
            seeder_ratio: 0.75,
            seed: 0x5348_4f41_4c42_454e,
            server_workers: 1,
            allow_remote: false,
            progress: true,
        }
    }
}

impl BenchConfig {
    /// Check every limit; the message names the flag.
    pub fn validate(&self) -> Result<(), String> {
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            return Err(format!(
                "--duration must be 1..={} seconds",
                MAX_DURATION.as_secs()
            ));
        }
        if self.workers == 0 || self.workers > MAX_WORKERS {
            return Err(format!("--workers must be 1..={MAX_WORKERS}"));
        }
        if self.sockets == 0 || self.workers * self.sockets > MAX_SOCKETS {
            return Err(format!(
                "--sockets must be at least 1, and workers × sockets at most {MAX_SOCKETS}"
            ));
        }
        if self.window == 0 || self.window > 1 << worker::SLOT_BITS {
            return Err(format!("--window must be 1..={}", 1 << worker::SLOT_BITS));
        }
        if self.timeout < Duration::from_millis(1) || self.timeout > Duration::from_secs(60) {
            return Err("--timeout must be 0.001..=60 seconds".into());
        }
        if self.torrents == 0 {
            return Err("--torrents must be at least 1".into());
        }
        if self.peers > MAX_PEERS || (self.peers as usize) < self.workers * self.sockets {
            return Err(format!(
                "--peers must be at least workers × sockets ({}) and at most {MAX_PEERS}",
                self.workers * self.sockets
            ));
        }
        let weights = u64::from(self.connect) + u64::from(self.announce) + u64::from(self.scrape);
        if weights == 0 || weights > u64::from(u32::MAX) {
            return Err("--connect, --announce and --scrape weights must not all be 0".into());
        }
        if self.scrape_max == 0 || self.scrape_max > worker::MAX_SCRAPE {
            return Err(format!("--scrape-max must be 1..={}", worker::MAX_SCRAPE));
        }
        if !(0.0..=1.0).contains(&self.seeder_ratio) {
            return Err("--seeders must be between 0 and 1".into());
        }
        if self.server_workers == 0 || self.server_workers > 1024 {
            return Err("--server-workers must be 1..=1024".into());
        }
        Ok(())
    }
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct Report {
    /// The target as given (or the in-process server's address).
    pub target: String,
    pub in_process: bool,
    /// Length of the send phase.
    pub duration: Duration,
    pub workers: usize,
    pub sockets: usize,
    pub window: usize,
    pub torrents: u32,
    pub peers: u32,
    /// Requests sent, by kind: connect, announce, scrape.
    pub sent: [u64; 3],
    /// Replies to our requests (error frames included), by kind.
    pub replies: [u64; 3],
    pub error_frames: u64,
    pub malformed: u64,
    pub unexpected: u64,
    pub timeouts: u64,
    pub refused: u64,
    pub io_errors: u64,
    /// Peers received in announce replies, in all.
    pub peers_received: u64,
    /// Whether every socket got its own loopback address.
    pub distinct_addresses: bool,
    /// Round-trip latency of answered requests, nanoseconds.
    pub latency: Histogram,
}

impl Report {
    pub fn sent_total(&self) -> u64 {
        self.sent.iter().sum()
    }

    pub fn replies_total(&self) -> u64 {
        self.replies.iter().sum()
    }

    pub fn replies_per_sec(&self) -> f64 {
        self.replies_total() as f64 / self.duration.as_secs_f64().max(1e-9)
    }

    /// Requests never answered within the timeout, as a percentage of those sent.
    pub fn loss_pct(&self) -> f64 {
        if self.sent_total() == 0 {
            return 0.0;
        }
        100.0 * self.timeouts as f64 / self.sent_total() as f64
    }

    /// Average peers per announce reply (0 without replies).
    pub fn peers_per_announce(&self) -> f64 {
        let announces = self.replies[ANNOUNCE];
        if announces == 0 {
            0.0
        } else {
            self.peers_received as f64 / announces as f64
        }
    }

    fn us(ns: Option<u64>) -> String {
        ns.map_or_else(|| "-".into(), |v| format!("{:.1}", v as f64 / 1000.0))
    }

    /// The human-readable report.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let h = &self.latency;
        let _ = writeln!(
            s,
            "target        {}{}",
            self.target,
            if self.in_process {
                " (in-process shoal)"
            } else {
                ""
            }
        );
        let _ = writeln!(
            s,
            "load          {} worker(s) × {} socket(s) × window {}, {} torrents, {} peers{}",
            self.workers,
            self.sockets,
            self.window,
            self.torrents,
            self.peers,
            if self.distinct_addresses {
                ""
            } else {
                " (one source address)"
            }
        );
        let _ = writeln!(s, "duration      {:.2} s", self.duration.as_secs_f64());
        let _ = writeln!(
            s,
            "sent          {} (connect {}, announce {}, scrape {})",
            self.sent_total(),
            self.sent[CONNECT],
            self.sent[ANNOUNCE],
            self.sent[SCRAPE]
        );
        let _ = writeln!(
            s,
            "replies       {} (connect {}, announce {}, scrape {})",
            self.replies_total(),
            self.replies[CONNECT],
            self.replies[ANNOUNCE],
            self.replies[SCRAPE]
        );
        let _ = writeln!(s, "replies/s     {:.0}", self.replies_per_sec());
        let _ = writeln!(
            s,
            "peers/reply   {:.1} per announce reply",
            self.peers_per_announce()
        );
        let _ = writeln!(s, "loss          {:.3} %", self.loss_pct());
        let _ = writeln!(
            s,
            "latency µs    p50 {}  p99 {}  p99.9 {}  max {}",
            Self::us(h.quantile(0.5)),
            Self::us(h.quantile(0.99)),
            Self::us(h.quantile(0.999)),
            Self::us(h.max())
        );
        let _ = writeln!(
            s,
            "errors        error frames {}, malformed {}, timeouts {}, unexpected {}, refused {}, I/O {}",
            self.error_frames, self.malformed, self.timeouts, self.unexpected, self.refused, self.io_errors
        );
        s
    }

    /// The report as one JSON object (latencies in microseconds).
    pub fn to_json(&self) -> String {
        let h = &self.latency;
        let us =
            |v: Option<u64>| v.map_or_else(|| "null".into(), |v| json::float(v as f64 / 1000.0));
        let kinds = |c: &[u64; 3]| {
            format!(
                "{{\"connect\":{},\"announce\":{},\"scrape\":{}}}",
                c[CONNECT], c[ANNOUNCE], c[SCRAPE]
            )
        };
        format!(
            concat!(
                "{{\"target\":{},\"in_process\":{},\"duration_secs\":{},\"workers\":{},",
                "\"sockets_per_worker\":{},\"window\":{},\"torrents\":{},\"peers\":{},",
                "\"distinct_addresses\":{},\"sent\":{},\"sent_by_kind\":{},\"replies\":{},",
                "\"replies_by_kind\":{},\"replies_per_sec\":{},\"loss_pct\":{},",
                "\"peers_per_announce\":{},",
                "\"latency_us\":{{\"p50\":{},\"p99\":{},\"p999\":{},\"min\":{},\"max\":{},\"mean\":{}}},",
                "\"errors\":{{\"error_frames\":{},\"malformed\":{},\"timeouts\":{},",
                "\"unexpected\":{},\"refused\":{},\"io\":{}}}}}"
            ),
            json::quoted(&self.target),
            self.in_process,
            json::float(self.duration.as_secs_f64()),
            self.workers,
            self.sockets,
            self.window,
            self.torrents,
            self.peers,
            self.distinct_addresses,
            self.sent_total(),
            kinds(&self.sent),
            self.replies_total(),
            kinds(&self.replies),
            json::float(self.replies_per_sec()),
            json::float(self.loss_pct()),
            json::float(self.peers_per_announce()),
            us(h.quantile(0.5)),
            us(h.quantile(0.99)),
            us(h.quantile(0.999)),
            us(h.min()),
            us(h.max()),
            h.mean().map_or_else(|| "null".into(), |m| json::float(m / 1000.0)),
            self.error_frames,
            self.malformed,
            self.timeouts,
            self.unexpected,
            self.refused,
            self.io_errors,
        )
    }
}

/// Whether `ip` is a loopback address (127.0.0.0/8, ::1, or IPv4-mapped 127/8).
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// The target's address, refusing what the config does not allow. Nothing is
/// sent and no socket is created before this passes.
fn check_target(url: &TrackerUrl, config: &BenchConfig) -> Result<SocketAddr, String> {
    if url.scheme() != Scheme::Udp {
        return Err(format!(
            "{url}: shoal bench drives UDP trackers only (udp://host:port)"
        ));
    }
    let addr = url
        .resolve(Duration::from_secs(5))
        .map_err(|e| format!("{url}: {e}"))?;
    let addr = SocketAddr::new(addr.ip().to_canonical(), addr.port());
    if !config.allow_remote && !is_loopback(addr.ip()) {
        return Err(format!(
            "refusing to load {url} ({}): not a loopback address; pass --allow-remote to load a tracker you run elsewhere",
            addr.ip()
        ));
    }
    Ok(addr)
}

/// Source address of global socket `g` for `target`.
fn local_addr(target: SocketAddr, g: usize) -> SocketAddr {
    match target.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => {
            // 127.0.0.1, 127.0.0.2, …: the whole /8 is local on Linux.
            SocketAddr::from((Ipv4Addr::from(0x7f00_0001u32 + g as u32), 0))
        }
        IpAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        IpAddr::V6(ip) if ip.is_loopback() => SocketAddr::from((Ipv6Addr::LOCALHOST, 0)),
        IpAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    }
}

/// A non-blocking UDP socket bound to `local` and connected to `target`.
fn bench_socket(local: SocketAddr, target: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let s = Socket::new(
        Domain::for_address(target),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    s.set_nonblocking(true)?;
    // Best effort: replies in flight must fit; the kernel caps it anyway.
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.bind(&local.into())?;
    s.connect(&target.into())?;
    Ok(s.into())
}

/// Run a benchmark. Errors are one line, naming the problem.
pub fn run(config: &BenchConfig) -> Result<Report, String> {
    config.validate()?;
    // The target is checked before any socket exists.
    let target = match &config.target {
        Some(url) => Some((check_target(url, config)?, url)),
        None => None,
    };
    let mut server: Option<Running> = None;
    let (addr, target_name, url_data) = match target {
        Some((addr, url)) => (
            addr,
            url.to_string(),
            url.path_and_query().as_bytes().to_vec(),
        ),
        None => {
            let running = start_server(config.server_workers)?;
            let addr = *running
                .udp_addrs()
                .first()
                .ok_or("the in-process server has no UDP address")?;
            server = Some(running);
            (addr, format!("udp://{addr}"), Vec::new())
        }
    };
    let result = run_against(config, addr, &target_name, url_data, server.is_some());
    if let Some(s) = server {
        s.stop();
    }
    result
}

fn start_server(workers: usize) -> Result<Running, String> {
    let config = Config {
        udp: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))],
        workers,
        default_addrs: false,
        ..Config::default()
    };
    Server::bind(config)
        .map_err(|e| format!("cannot start the in-process shoal: {e}"))?
        .spawn()
        .map_err(|e| format!("cannot start the in-process shoal: {e}"))
}

fn run_against(
    config: &BenchConfig,
    addr: SocketAddr,
    target_name: &str,
    url_data: Vec<u8>,
    in_process: bool,
) -> Result<Report, String> {
    let settings = Arc::new(Settings {
        target: addr,
        mix: [config.connect, config.announce, config.scrape],
        numwant: config
            .numwant
            .map_or(-1, |n| i32::try_from(n).unwrap_or(i32::MAX)),
        scrape_max: config.scrape_max,
        seed: config.seed,
        timeout: config.timeout,
        window: config.window,
        url_data,
        seeder_ratio: config.seeder_ratio,
        stop: Default::default(),
    });
    let mut distinct = true;
    let mut workers = Vec::with_capacity(config.workers);
    let mut lives = Vec::with_capacity(config.workers);
    let w_count = config.workers;
    for w in 0..w_count {
        let mut sockets = Vec::with_capacity(config.sockets);
        for s in 0..config.sockets {
            let local = local_addr(addr, w * config.sockets + s);
            let sock = match bench_socket(local, addr) {
                Ok(sock) => sock,
                // Not every OS routes all of 127/8 (macOS): share 127.0.0.1.
                Err(_)
                    if local.ip() != IpAddr::V4(Ipv4Addr::LOCALHOST)
                        && local.ip().is_loopback() =>
                {
                    distinct = false;
                    bench_socket(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), addr)
                        .map_err(|e| format!("cannot open a socket to {addr}: {e}"))?
                }
                Err(e) => return Err(format!("cannot open a socket from {local} to {addr}: {e}")),
            };
            sockets.push(sock);
        }
        // Peers are dealt round-robin to workers: global peer `w + k * workers`.
        let count =
            config.peers as usize / w_count + usize::from(w < config.peers as usize % w_count);
        let mut rng = Rng::with_seed(population::mix64(config.seed ^ (w as u64 + 1)));
        let peers = population::generate(
            &mut rng,
            count,
            config.sockets,
            config.torrents,
            config.seeder_ratio,
        );
        let live = Arc::new(Live::default());
        lives.push(Arc::clone(&live));
        let worker = Worker::new(
            Arc::clone(&settings),
            live,
            sockets,
            peers,
            w as u64,
            w_count as u64,
            rng,
        )
        .map_err(|e| format!("cannot set up a bench worker: {e}"))?;
        workers.push(worker);
    }

    let start = Instant::now();
    let end = start + config.duration.min(MAX_DURATION);
    let mut threads = Vec::with_capacity(workers.len());
    for (i, worker) in workers.into_iter().enumerate() {
        let t = std::thread::Builder::new()
            .name(format!("shoal-bench-{i}"))
            .spawn(move || worker.run(start, end));
        match t {
            Ok(t) => threads.push(t),
            Err(e) => {
                settings
                    .stop
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                for t in threads {
                    let _ = t.join();
                }
                return Err(format!("cannot start a bench thread: {e}"));
            }
        }
    }

    // Progress, once a second, until the deadline.
    let mut last = (0u64, 0u64, 0u64);
    let mut tick = 1;
    loop {
        let next = start + Duration::from_secs(tick);
        if next > end {
            break;
        }
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        let sum = lives.iter().fold((0, 0, 0), |acc, l| {
            use std::sync::atomic::Ordering::Relaxed;
            (
                acc.0 + l.sent.load(Relaxed),
                acc.1 + l.replies.load(Relaxed),
                acc.2 + l.timeouts.load(Relaxed),
            )
        });
        if config.progress {
            let (sent, replies, lost) = (sum.0 - last.0, sum.1 - last.1, sum.2 - last.2);
            let loss = if sent == 0 {
                0.0
            } else {
                100.0 * lost as f64 / sent as f64
            };
            let _ = writeln!(
                std::io::stderr(),
                "bench {tick:>4} s  sent {sent:>8}/s  replies {replies:>8}/s  lost {lost:>6} ({loss:.2} %)"
            );
        }
        last = sum;
        tick += 1;
    }
    let mut totals = Totals::default();
    let mut panicked = false;
    for t in threads {
        match t.join() {
            Ok(t) => totals.merge(&t),
            Err(_) => panicked = true,
        }
    }
    if panicked {
        return Err("a bench worker panicked".into());
    }
    Ok(Report {
        target: target_name.to_string(),
        in_process,
        duration: config.duration.min(MAX_DURATION),
        workers: config.workers,
        sockets: config.sockets,
        window: config.window,
        torrents: config.torrents,
        peers: config.peers,
        sent: totals.sent,
        replies: totals.replies,
        error_frames: totals.error_frames,
        malformed: totals.malformed,
        unexpected: totals.unexpected,
        timeouts: totals.timeouts,
        refused: totals.refused,
        io_errors: totals.io_errors,
        peers_received: totals.peers_received,
        distinct_addresses: distinct,
        latency: totals.latency,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_check() {
        assert!(is_loopback("127.0.0.1".parse().unwrap()));
        assert!(is_loopback("127.255.0.9".parse().unwrap()));
        assert!(is_loopback("::1".parse().unwrap()));
        assert!(is_loopback("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!is_loopback("192.0.2.1".parse().unwrap()));
        assert!(!is_loopback("::".parse().unwrap()));
        assert!(!is_loopback("0.0.0.0".parse().unwrap()));
    }

    #[test]
    fn remote_and_http_targets_are_refused_before_any_socket() {
        let config = BenchConfig {
            target: Some("udp://192.0.2.1:6969".parse().unwrap()),
            ..BenchConfig::default()
        };
        let err = run(&config).unwrap_err();
        assert!(err.contains("not a loopback address"), "{err}");
        assert!(err.contains("--allow-remote"), "{err}");
        let config = BenchConfig {
            target: Some("http://127.0.0.1/announce".parse().unwrap()),
            ..BenchConfig::default()
        };
        assert!(run(&config).unwrap_err().contains("UDP trackers only"));
    }

    #[test]
    fn limits() {
        assert_eq!(BenchConfig::default().validate(), Ok(()));
        let bad = [
            BenchConfig {
                duration: Duration::from_secs(3601),
                ..Default::default()
            },
            BenchConfig {
                duration: Duration::ZERO,
                ..Default::default()
            },
            BenchConfig {
                workers: 0,
                ..Default::default()
            },
            BenchConfig {
                window: 5000,
                ..Default::default()
            },
            BenchConfig {
                peers: 2,
                ..Default::default()
            },
            BenchConfig {
                connect: 0,
                announce: 0,
                scrape: 0,
                ..Default::default()
            },
            BenchConfig {
                seeder_ratio: 1.5,
                ..Default::default()
            },
        ];
        for c in bad {
            assert!(c.validate().is_err(), "{c:?}");
        }
    }

    #[test]
    fn source_addresses() {
        let t: SocketAddr = "127.0.0.1:6969".parse().unwrap();
        assert_eq!(local_addr(t, 0), "127.0.0.1:0".parse().unwrap());
        assert_eq!(local_addr(t, 300), "127.0.1.45:0".parse().unwrap());
        assert_eq!(
            local_addr("[::1]:1".parse().unwrap(), 3),
            "[::1]:0".parse().unwrap()
        );
        assert_eq!(
            local_addr("10.0.0.1:1".parse().unwrap(), 3),
            "0.0.0.0:0".parse().unwrap()
        );
    }

    /// A short run against an in-process shoal: replies arrive, nothing is malformed.
    #[test]
    fn short_run_in_process() {
        let config = BenchConfig {
            duration: Duration::from_millis(300),
            torrents: 100,
            peers: 1000,
            progress: false,
            ..BenchConfig::default()
        };
        let r = run(&config).unwrap();
        assert!(r.in_process);
        assert!(r.replies_total() > 100, "{}", r.to_text());
        assert!(
            r.replies[ANNOUNCE] > 0 && r.replies[CONNECT] > 0,
            "{}",
            r.to_text()
        );
        assert_eq!(
            (r.malformed, r.error_frames, r.refused),
            (0, 0, 0),
            "{}",
            r.to_text()
        );
        assert!(r.latency.count() > 0);
        assert!(r.to_json().starts_with("{\"target\":\"udp://127.0.0.1:"));
    }
}
