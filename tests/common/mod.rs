//! Helpers shared by the integration tests: start a server on ephemeral
//! loopback ports, and a blocking BEP 15 client that speaks raw bytes.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use shoal::server::{Config, Running, Server};
use shoal::time::Clock;
use shoal::wire::udp::{self, AnnounceRequest, Event, Response};
use std::io::Read;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::Duration;

/// Upper bound for any reply: a test that waits this long has failed.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// The shoal binary with no `SHOAL_*` or `RUST_LOG` from the test's own
/// environment, so a developer's settings cannot change what a test sees.
pub fn shoal_command() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_shoal"));
    c.env_remove("RUST_LOG");
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("SHOAL_")) {
        c.env_remove(k);
    }
    c
}

/// One HTTP/1.1 response as a test reads it.
pub struct Resp {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

/// Read one HTTP response from `s`: the head byte by byte (so nothing of a
/// next response is consumed), then `Content-Length` bytes of body.
pub fn read_response(s: &mut TcpStream) -> Resp {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut byte).expect("response head"),
            1,
            "closed mid-head: {buf:?}"
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let status = head[9..12].parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    Resp { status, head, body }
}

/// `GET target` on a fresh connection; the reply (status, head, body).
pub fn get(addr: SocketAddr, target: &str) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    use std::io::Write as _;
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    read_response(&mut s)
}

/// The body of `GET target`, which must answer 200.
pub fn http_get(addr: SocketAddr, target: &str) -> Vec<u8> {
    let r = get(addr, target);
    assert_eq!(
        r.status,
        200,
        "{} {}",
        r.head,
        String::from_utf8_lossy(&r.body)
    );
    r.body
}

/// One sample of `/metrics` at `addr` (a metric without labels).
pub fn metric(addr: SocketAddr, name: &str) -> Option<u64> {
    let body = http_get(addr, "/metrics");
    String::from_utf8_lossy(&body).lines().find_map(|l| {
        l.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse::<f64>()
            .ok()
            .map(|v| v as u64)
    })
}

/// Wait until the control thread has done a turn of its periodic work (the
/// sweeps) at tracker second `secs` or later: its turn runs that work before
/// it answers `/metrics`, and `shoal_uptime_seconds` is the turn's clock.
/// `metrics` is a `--metrics` listener of the server.
pub fn control_at(metrics: SocketAddr, secs: u32) {
    wait_until(&format!("the control thread reached t={secs}"), || {
        metric(metrics, "shoal_uptime_seconds").is_some_and(|t| t >= u64::from(secs))
    });
}

pub fn start(config: Config) -> Running {
    Server::bind(config).expect("bind").spawn().expect("spawn")
}

/// A server whose clock the test moves by hand (seconds).
pub fn start_with_manual_clock(config: Config) -> (Running, Arc<AtomicU32>) {
    let (clock, secs) = Clock::manual();
    let server = Server::bind_with_clock(config, clock).expect("bind");
    (server.spawn().expect("spawn"), secs)
}

/// Wait until `cond` holds, checking every few milliseconds; panics naming
/// `what` after `REPLY_TIMEOUT`. For effects of another thread (the control
/// thread's sweeps, a reload) that no reply announces.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + REPLY_TIMEOUT;
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub struct Client {
    pub sock: UdpSocket,
    pub server: SocketAddr,
    pub connection_id: u64,
    tx: u32,
}

pub struct Announced {
    pub interval: u32,
    pub seeders: u32,
    pub leechers: u32,
    pub peers: Vec<u8>,
}

impl Client {
    /// A client bound to `local` (e.g. "127.0.0.1:0") talking to `server`.
    pub fn new(local: &str, server: SocketAddr) -> Client {
        let sock = UdpSocket::bind(local).unwrap();
        sock.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        Client {
            sock,
            server,
            connection_id: 0,
            tx: 0,
        }
    }

    pub fn port(&self) -> u16 {
        self.sock.local_addr().unwrap().port()
    }

    pub fn roundtrip(&self, req: &[u8]) -> Vec<u8> {
        self.sock.send_to(req, self.server).unwrap();
        let mut buf = [0u8; 4096];
        let (n, _) = self
            .sock
            .recv_from(&mut buf)
            .expect("reply within the timeout");
        buf[..n].to_vec()
    }

    pub fn next_tx(&mut self) -> u32 {
        self.tx += 1;
        self.tx
    }

    pub fn connect(&mut self) -> u64 {
        let tx = self.next_tx();
        let mut req = [0u8; 16];
        udp::write_connect_request(&mut req, tx).unwrap();
        match udp::parse_response(&self.roundtrip(&req)) {
            Ok(Response::Connect {
                transaction_id,
                connection_id,
            }) if transaction_id == tx => {
                self.connection_id = connection_id;
                connection_id
            }
            other => panic!("bad connect reply: {other:?}"),
        }
    }

    /// Move a manual clock and wait until the server's loop runs with it. A loop
    /// turn reads the clock once, so a packet may still be handled with the old
    /// time; a connect reply tells which time was used (its id starts with the
    /// issue time in seconds), so connect until it shows the new one.
    pub fn set_clock(&mut self, clock: &AtomicU32, secs: u32) {
        clock.store(secs, std::sync::atomic::Ordering::SeqCst);
        for _ in 0..10_000 {
            if (self.connect() >> 32) as u32 == secs {
                return;
            }
        }
        panic!("the server never picked up clock time {secs}");
    }

    pub fn announce_bytes(
        &mut self,
        info_hash: [u8; 20],
        event: Event,
        left: u64,
        num_want: i32,
        port: u16,
    ) -> Vec<u8> {
        let req = AnnounceRequest {
            left,
            event,
            num_want,
            ..AnnounceRequest::new(self.connection_id, self.next_tx(), info_hash, [7; 20], port)
        };
        let mut buf = [0u8; 256];
        let n = udp::write_announce_request(&mut buf, &req, b"/announce").unwrap();
        buf[..n].to_vec()
    }

    pub fn announce(
        &mut self,
        info_hash: [u8; 20],
        event: Event,
        left: u64,
        num_want: i32,
    ) -> Announced {
        let port = self.port();
        let req = self.announce_bytes(info_hash, event, left, num_want, port);
        match udp::parse_response(&self.roundtrip(&req)) {
            Ok(Response::Announce {
                interval,
                seeders,
                leechers,
                peers,
                ..
            }) => Announced {
                interval,
                seeders,
                leechers,
                peers: peers.to_vec(),
            },
            other => panic!("bad announce reply: {other:?}"),
        }
    }

    /// (seeders, completed, leechers) per hash.
    pub fn scrape(&mut self, hashes: &[[u8; 20]]) -> Vec<(u32, u32, u32)> {
        let tx = self.next_tx();
        let mut buf = vec![0u8; 16 + 20 * hashes.len()];
        udp::write_scrape_request(&mut buf, self.connection_id, tx, hashes).unwrap();
        match udp::parse_response(&self.roundtrip(&buf)) {
            Ok(Response::Scrape {
                transaction_id,
                rows,
            }) if transaction_id == tx => rows
                .chunks(12)
                .map(|r| udp::read_scrape_row(r).unwrap())
                .collect(),
            other => panic!("bad scrape reply: {other:?}"),
        }
    }
}
