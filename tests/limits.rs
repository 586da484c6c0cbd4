//! Per-address limits over real sockets, from several loopback addresses
//! (127.0.0.2, 127.0.0.3 … are all loopback on Linux): `--rate-limit` over
//! UDP and HTTP, `--http-trusted-proxy`, `--http-max-connections-per-ip`, and
//! the longest-idle eviction when every HTTP slot is taken.
//!
//! The rate tests run on a manual clock that stands still, so buckets refill
//! only when the test moves it. Nothing sleeps to synchronise: a test waits
//! for a reply, or for a counter, with a bound.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    assert_closed, peers4, start, start_with_manual_clock, wait_until, Client, REPLY_TIMEOUT,
};
use shoal::limit::LimitConfig;
use shoal::server::Config;
use shoal::server::Running;
use shoal::stats::{Dropped, Reject};
use shoal::wire::udp;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};

fn config(limits: LimitConfig) -> Config {
    let mut c = Config {
        limits,
        ..Config::for_udp("127.0.0.1:0".parse().unwrap())
    };
    c.listen.http = vec!["127.0.0.1:0".parse().unwrap()];
    c.http.metrics_on_tracker_port = true;
    c
}

fn rate(n: u32, burst: u32) -> LimitConfig {
    LimitConfig {
        rate_limit: n,
        rate_burst: Some(burst),
        ..LimitConfig::default()
    }
}

/// Send a connect request; the transaction id sent.
fn send_connect(c: &mut Client) -> u32 {
    let tx = c.next_tx();
    let mut req = [0u8; 16];
    udp::write_connect_request(&mut req, tx).unwrap();
    c.sock.send_to(&req, c.server).unwrap();
    tx
}

/// No datagram is waiting for `c`.
fn assert_silent(c: &Client) {
    c.sock.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    let r = c.sock.recv_from(&mut buf);
    c.sock.set_nonblocking(false).unwrap();
    assert_eq!(
        r.as_ref().map_err(|e| e.kind()).err(),
        Some(ErrorKind::WouldBlock),
        "{r:?}"
    );
}

fn rate_limited(server: &Running) -> u64 {
    server.registry().rejects(Reject::RateLimited)
}

/// A TCP connection from `local` (a loopback address) to `addr`.
fn connect_from(local: &str, addr: SocketAddr) -> TcpStream {
    let local: IpAddr = local.parse().unwrap();
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::new(local, 0).into()).unwrap();
    s.connect(&addr.into()).unwrap();
    let s = TcpStream::from(s);
    s.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    s
}

/// One request on an open connection, its response.
fn request(s: &mut TcpStream, path: &str, headers: &str) -> (u16, Vec<u8>) {
    write!(s, "GET {path} HTTP/1.1\r\nHost: t\r\n{headers}\r\n").unwrap();
    let r = common::read_response(s);
    (r.status, r.body)
}

/// A leecher's compact announce.
fn announce_path(ih: [u8; 20], peer_id: &str, port: u16) -> String {
    common::announce_path(ih, peer_id, port, 5, "&compact=1")
}

/// The compact IPv4 peers of an announce reply, as addresses.
fn peers(body: &[u8]) -> Vec<SocketAddr> {
    let at = body
        .windows(7)
        .position(|w| w == b"5:peers")
        .unwrap_or_else(|| panic!("no peers: {}", String::from_utf8_lossy(body)))
        + 7;
    let colon = at + body[at..].iter().position(|&b| b == b':').unwrap();
    let n: usize = std::str::from_utf8(&body[at..colon])
        .unwrap()
        .parse()
        .unwrap();
    peers4(&body[colon + 1..colon + 1 + n])
}

#[test]
fn udp_over_the_rate_gets_silence_while_another_address_is_answered() {
    let (server, clock) = start_with_manual_clock(config(rate(2, 3)));
    let udp_addr = server.udp_addrs()[0];
    let mut heavy = Client::new("127.0.0.2:0", udp_addr);
    // The burst: three connects answered, the fourth met with silence.
    for _ in 0..3 {
        heavy.connect();
    }
    send_connect(&mut heavy);
    wait_until("the fourth connect to be refused", || {
        rate_limited(&server) == 1
    });
    assert_silent(&heavy);
    // Another address is still answered, announce included.
    let mut other = Client::new("127.0.0.3:0", udp_addr);
    other.connect();
    other.announce([0x33; 20], udp::Event::Started, 5, -1);
    assert_eq!(rate_limited(&server), 1);
    // One second later, two more (the rate), then silence again.
    Client::new("127.0.0.4:0", udp_addr).set_clock(&clock, 1);
    heavy.connect();
    heavy.connect();
    send_connect(&mut heavy);
    wait_until("the third connect at 1 s to be refused", || {
        rate_limited(&server) == 2
    });
    assert_silent(&heavy);
    // The metric as Prometheus reads it.
    let mut s = connect_from("127.0.0.5", server.http_addrs()[0]);
    let (status, body) = request(&mut s, "/metrics", "");
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.contains("shoal_rejected_total{reason=\"rate_limited\"} 2\n"),
        "{text}"
    );
    server.stop();
}

#[test]
fn http_over_the_rate_gets_a_failure_reason_and_shares_the_udp_bucket() {
    let (server, _clock) = start_with_manual_clock(config(rate(1, 3)));
    let addr = server.http_addrs()[0];
    let ih = [0x44; 20];
    let mut s = connect_from("127.0.0.2", addr);
    for i in 0..2 {
        let (status, body) = request(&mut s, &announce_path(ih, "-XX0000-aaaaaaaaaaaa", 7000), "");
        assert_eq!(status, 200);
        assert!(body.starts_with(b"d8:complete"), "announce {i}: {body:?}");
    }
    // Scrape counts too: the third request of the burst.
    let (_, body) = request(
        &mut s,
        "/scrape?info_hash=%44%44%44%44%44%44%44%44%44%44%44%44%44%44%44%44%44%44%44%44",
        "",
    );
    assert!(
        body.starts_with(b"d5:files"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let (status, body) = request(&mut s, &announce_path(ih, "-XX0000-aaaaaaaaaaaa", 7000), "");
    assert_eq!(status, 200);
    assert_eq!(
        String::from_utf8_lossy(&body),
        "d14:failure reason49:rate limited: too many requests from this addresse"
    );
    assert_eq!(rate_limited(&server), 1);
    // Operator endpoints are not charged.
    assert_eq!(request(&mut s, "/health", "").0, 200);
    // UDP from the same address draws on the same, empty, bucket.
    let mut udp_client = Client::new("127.0.0.2:0", server.udp_addrs()[0]);
    send_connect(&mut udp_client);
    wait_until("the UDP connect to be refused", || {
        rate_limited(&server) == 2
    });
    assert_silent(&udp_client);
    // Another address is served.
    let mut t = connect_from("127.0.0.3", addr);
    let (_, body) = request(&mut t, &announce_path(ih, "-XX0000-bbbbbbbbbbbb", 7001), "");
    assert_eq!(peers(&body), vec!["127.0.0.2:7000".parse().unwrap()]);
    server.stop();
}

#[test]
fn client_ip_header_is_believed_only_from_a_trusted_proxy() {
    let server = start({
        let mut c = config(LimitConfig {
            trusted_proxies: vec!["127.0.0.2/32".parse().unwrap()],
            ..LimitConfig::default()
        });
        c.http.client_ip_header = Some("X-Forwarded-For".into());
        c
    });
    let addr = server.http_addrs()[0];
    let ih = [0x55; 20];
    let untrusted = server.registry().rejects(Reject::UntrustedClientIpHeader);
    assert_eq!(untrusted, 0);
    // From an untrusted address the header is ignored: the peer is stored
    // under the address it connected from, and the attempt is counted.
    let mut direct = connect_from("127.0.0.3", addr);
    let (_, body) = request(
        &mut direct,
        &announce_path(ih, "-XX0000-aaaaaaaaaaaa", 7000),
        "X-Forwarded-For: 203.0.113.9\r\n",
    );
    assert!(
        body.starts_with(b"d8:complete"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(
        server.registry().rejects(Reject::UntrustedClientIpHeader),
        1
    );
    // From the trusted proxy the header is the client's address.
    let mut proxy = connect_from("127.0.0.2", addr);
    let (_, body) = request(
        &mut proxy,
        &announce_path(ih, "-XX0000-bbbbbbbbbbbb", 7001),
        "X-Forwarded-For: 198.51.100.7\r\n",
    );
    assert_eq!(peers(&body), vec!["127.0.0.3:7000".parse().unwrap()]);
    let (_, body) = request(
        &mut proxy,
        &announce_path(ih, "-XX0000-cccccccccccc", 7002),
        "X-Forwarded-For: 192.0.2.1\r\n",
    );
    let mut got = peers(&body);
    got.sort();
    assert_eq!(
        got,
        vec![
            "127.0.0.3:7000".parse().unwrap(),
            "198.51.100.7:7001".parse().unwrap()
        ]
    );
    assert_eq!(
        server.registry().rejects(Reject::UntrustedClientIpHeader),
        1,
        "only the untrusted peer's header was refused"
    );
    server.stop();
}

#[test]
fn connections_per_address_are_capped() {
    let server = start(config(LimitConfig {
        http_max_connections_per_ip: 2,
        ..LimitConfig::default()
    }));
    let addr = server.http_addrs()[0];
    let mut a = connect_from("127.0.0.2", addr);
    let mut b = connect_from("127.0.0.2", addr);
    for s in [&mut a, &mut b] {
        assert_eq!(request(s, "/health", "").0, 200);
    }
    let mut c = connect_from("127.0.0.2", addr);
    let _ = c.write_all(b"GET /health HTTP/1.1\r\n\r\n");
    assert_closed(&mut c);
    let drops = || server.registry().drops(Dropped::HttpPerIpLimit);
    assert_eq!(drops(), 1);
    // Another address is not affected.
    let mut d = connect_from("127.0.0.3", addr);
    assert_eq!(request(&mut d, "/health", "").0, 200);
    // A closed connection gives its place back (the server sees the close
    // on a later turn: retry, bounded).
    drop(a);
    wait_until("a freed place to be reused", || {
        let mut e = connect_from("127.0.0.2", addr);
        let _ = e.write_all(b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n");
        let mut all = Vec::new();
        let _ = e.read_to_end(&mut all);
        all.starts_with(b"HTTP/1.1 200")
    });
    assert_eq!(request(&mut b, "/health", "").0, 200);
    server.stop();
}

#[test]
fn when_every_slot_is_taken_the_longest_idle_connection_makes_room() {
    let server = start({
        let mut c = config(LimitConfig::default());
        c.http.max_connections = 2;
        c
    });
    let addr = server.http_addrs()[0];
    let mut idle = connect_from("127.0.0.2", addr);
    assert_eq!(request(&mut idle, "/health", "").0, 200);
    let mut busy = connect_from("127.0.0.3", addr);
    assert_eq!(request(&mut busy, "/health", "").0, 200);
    // A newcomer is served, not refused: the connection idle longest goes.
    let mut newcomer = connect_from("127.0.0.4", addr);
    assert_eq!(request(&mut newcomer, "/health", "").0, 200);
    assert_closed(&mut idle);
    let r = &server.registry();
    assert_eq!(r.drops(Dropped::HttpEvicted), 1);
    assert_eq!(r.drops(Dropped::HttpOverLimit), 0);
    assert_eq!(request(&mut busy, "/health", "").0, 200);
    server.stop();
}
