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
//! (8 bytes per peer), the slot tables (`workers × sockets × window`) and one
//! latency histogram per worker (about 230 kB).
//!
//! Files: `config.rs` what to run and its limits; `population.rs` the
//! simulated torrents and peers; `worker.rs` one load-generating thread and
//! its counts ([`Totals`]); `hist.rs` the latency histogram; `report.rs` the
//! outcome and its text and JSON forms; this file the set-up and the run.
//! `shed.rs` is `shoal bench --shed`: no sockets, a model of one worker and
//! a population that honours the announce interval, in simulated time.

mod config;
pub mod hist;
mod population;
mod report;
pub mod shed;
mod worker;

pub use config::{BenchConfig, MAX_DURATION, MAX_PEERS, MAX_SOCKETS, MAX_WORKERS};
pub use report::Report;
pub use shed::{ShedConfig, ShedReport};
pub use worker::{Totals, ANNOUNCE, CONNECT, SCRAPE};

use crate::client::{Scheme, TrackerUrl};
use crate::server::{Config, Running, Server};
use fastrand::Rng;
use socket2::{Domain, Protocol, Socket, Type};
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use worker::{Live, Settings, Worker};

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
        workers,
        ..Config::for_udp(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
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
    let mut totals =
        Totals::new().map_err(|e| format!("cannot set up the latency histogram: {e}"))?;
    let mut panicked = false;
    for t in threads {
        match t.join() {
            Ok(t) => totals
                .merge(&t)
                .map_err(|e| format!("cannot merge latencies: {e}"))?,
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
        distinct_addresses: distinct,
        totals,
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
            r.totals.replies[ANNOUNCE] > 0 && r.totals.replies[CONNECT] > 0,
            "{}",
            r.to_text()
        );
        assert_eq!(
            (r.totals.malformed, r.totals.error_frames, r.totals.refused),
            (0, 0, 0),
            "{}",
            r.to_text()
        );
        assert!(r.totals.latency.count() > 0);
        assert!(r.to_json().starts_with("{\"target\":\"udp://127.0.0.1:"));
    }
}
