//! The operator tools end to end: the client library against a real shoal over
//! loopback (IPv4 and IPv6), the HTTP client against a fake tracker thread,
//! https against a rustls server thread with a CA made at run time (rcgen),
//! and the binary's `announce`, `scrape` and `bench` subcommands.
//!
//! No fixed ports and no sleeps: servers bind port 0, and a bound socket queues
//! datagrams before its loop runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::start;
use shoal::client::http::MAX_REPLY;
use shoal::client::{AnnounceParams, Client, ClientError, Event, ScrapeStats, TrackerUrl};
use shoal::server::Config;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::Output;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const HASH: [u8; 20] = [0x5a; 20];
const HASH_HEX: &str = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";

fn client() -> Client {
    Client::new(Duration::from_secs(5), 1)
}

fn url(s: &str) -> TrackerUrl {
    s.parse().unwrap()
}

fn params(port: u16, left: u64) -> AnnounceParams {
    let mut p = AnnounceParams::new(HASH, port);
    p.left = left;
    p
}

// ---------------------------------------------------------------------------
// The client library against shoal (UDP)
// ---------------------------------------------------------------------------

/// A one-worker UDP tracker on `bind` whose replies carry exactly
/// `--interval` (no jitter), for tests that compare the reply shown.
fn fixed_interval(bind: &str) -> Config {
    let mut c = Config::for_udp(bind.parse().unwrap());
    c.tracker.interval_jitter = 0;
    c
}

fn announce_and_scrape(bind: &str) {
    let server = start(fixed_interval(bind));
    let addr = server.udp_addrs()[0];
    // A path and query travel as BEP 41 URL data; shoal accepts them.
    let tracker = url(&format!("udp://{addr}/announce?passkey=abc"));
    let c = client();

    let seeder = c.announce(&tracker, &params(1000, 0)).unwrap();
    assert_eq!(
        (seeder.seeders, seeder.leechers, seeder.peers.len()),
        (1, 0, 0)
    );
    assert_eq!(seeder.interval, Config::default().tracker.interval);

    let leecher = c.announce(&tracker, &params(2000, 5)).unwrap();
    assert_eq!((leecher.seeders, leecher.leechers), (1, 1));
    assert_eq!(
        leecher.peers,
        vec![SocketAddr::new(addr.ip(), 1000)],
        "the leecher is sent the seeder, at the source IP and announced port"
    );
    assert_eq!((leecher.min_interval, leecher.warning), (None, None));

    let mut done = params(2000, 0);
    done.event = Event::Completed;
    done.numwant = Some(0);
    let r = c.announce(&tracker, &done).unwrap();
    assert_eq!((r.seeders, r.leechers, r.peers.len()), (2, 0, 0));

    let stats = c.scrape(&tracker, &[HASH, [0; 20], HASH]).unwrap();
    let row = ScrapeStats {
        seeders: 2,
        completed: 1,
        leechers: 0,
    };
    assert_eq!(
        stats,
        vec![Some(row), Some(ScrapeStats::default()), Some(row)]
    );
    server.stop();
}

#[test]
fn udp_announce_and_scrape_ipv4() {
    announce_and_scrape("127.0.0.1:0");
}

#[test]
fn udp_announce_and_scrape_ipv6() {
    announce_and_scrape("[::1]:0");
}

#[test]
fn udp_session_reuses_its_connection_id() {
    let server = start(Config::for_udp("127.0.0.1:0".parse().unwrap()));
    let addr = server.udp_addrs()[0];
    let mut s = shoal::client::udp::Session::new(addr, b"", &client()).unwrap();
    for port in 1..=3 {
        s.announce(&params(port, 1)).unwrap();
    }
    let r = s.announce(&params(4, 1)).unwrap();
    assert_eq!(r.leechers, 4);
    assert_eq!(r.peers.len(), 3);
    // Scrapes of more than one request's worth of hashes are split and joined.
    let many = vec![HASH; 100];
    let stats = s.scrape(&many).unwrap();
    assert_eq!(stats.len(), 100);
    assert!(stats.iter().all(|s| s.unwrap().leechers == 4));
    server.stop();
}

#[test]
fn udp_error_frame_is_a_tracker_error() {
    // shoal answers an announce for port 0 (with a valid connection id) with an error frame.
    let server = start(Config::for_udp("127.0.0.1:0".parse().unwrap()));
    let tracker = url(&format!("udp://{}", server.udp_addrs()[0]));
    match client().announce(&tracker, &params(0, 1)) {
        Err(ClientError::Tracker(m)) => assert!(!m.is_empty()),
        other => panic!("expected a tracker error, got {other:?}"),
    }
    server.stop();
}

#[test]
fn udp_timeout_against_a_silent_socket() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let tracker = url(&format!("udp://{}", silent.local_addr().unwrap()));
    let c = Client::new(Duration::from_millis(50), 2);
    let t = Instant::now();
    let err = c.announce(&tracker, &params(1, 1)).unwrap_err();
    let took = t.elapsed();
    assert!(
        matches!(err, ClientError::Timeout { tries: 2, .. }),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "no reply after 2 tries (150 ms in all)");
    // 50 ms, then the doubled 100 ms; never much longer.
    assert!(took >= Duration::from_millis(150), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    // Connect requests were sent (and would have been answered by a tracker).
    let mut buf = [0u8; 64];
    silent.set_nonblocking(true).unwrap();
    let (n, _) = silent.recv_from(&mut buf).unwrap();
    assert_eq!(n, 16);
}

// ---------------------------------------------------------------------------
// The HTTP client against a fake tracker
// ---------------------------------------------------------------------------

/// A fake HTTP tracker: answers one connection per canned reply, in order,
/// and returns the request heads it read. With `hold_open`, it keeps each
/// connection open after replying (the client must stop at Content-Length).
fn fake_http(replies: Vec<Vec<u8>>, hold_open: bool) -> (SocketAddr, JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let mut heads = Vec::new();
        let mut held = Vec::new();
        for reply in replies {
            let (mut stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            heads.push(head);
            stream.write_all(&reply).unwrap();
            if hold_open {
                held.push(stream);
            }
        }
        heads
    });
    (addr, handle)
}

fn http_ok(body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

#[test]
fn http_announce_against_a_fake_tracker() {
    let mut body =
        b"d8:completei2e10:incompletei1e8:intervali900e12:min intervali60e5:peers6:".to_vec();
    body.extend_from_slice(&[10, 0, 0, 7, 0x1a, 0xe1]);
    body.extend_from_slice(b"6:peers618:");
    body.extend_from_slice(&[
        0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 80,
    ]);
    body.extend_from_slice(b"e");
    let (addr, fake) = fake_http(vec![http_ok(&body)], true);
    let mut p = params(6881, 0);
    p.info_hash = [0xab; 20];
    p.numwant = Some(10);
    let r = client()
        .announce(&url(&format!("http://{addr}/announce?passkey=x")), &p)
        .unwrap();
    assert_eq!(
        (r.interval, r.min_interval, r.seeders, r.leechers),
        (900, Some(60), 2, 1)
    );
    assert_eq!(
        r.peers,
        vec![
            "10.0.0.7:6881".parse::<SocketAddr>().unwrap(),
            "[2001:db8::1]:80".parse().unwrap()
        ]
    );
    let head = &fake.join().unwrap()[0];
    let line = head.lines().next().unwrap();
    assert!(
        line.starts_with(&format!(
            "GET /announce?passkey=x&info_hash={}&peer_id=-SH0100-",
            "%AB".repeat(20)
        )),
        "{line}"
    );
    assert!(line.contains("&port=6881&uploaded=0&downloaded=0&left=0&compact=1&key="));
    assert!(
        line.contains("&event=started&numwant=10 HTTP/1.1"),
        "{line}"
    );
    // Header names are case-insensitive (ureq sends them in lower case).
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains(&format!("\r\nhost: 127.0.0.1:{}\r\n", addr.port())),
        "{head}"
    );
    assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
    assert!(head.contains("\r\nuser-agent: shoal/"), "{head}");
}

#[test]
fn http_errors_against_a_fake_tracker() {
    let failure = http_ok(b"d14:failure reason17:torrent not founde");
    let not_found = b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope".to_vec();
    let not_bencode = http_ok(b"<html>hello</html>");
    let truncated = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nd8:interval".to_vec();
    let (addr, fake) = fake_http(vec![failure, not_found, not_bencode, truncated], false);
    let tracker = url(&format!("http://{addr}/announce"));
    let err = |c: &Client| c.announce(&tracker, &params(1, 1)).unwrap_err().to_string();
    assert_eq!(err(&client()), "tracker error: torrent not found");
    assert_eq!(err(&client()), "HTTP status 404 Not Found");
    assert_eq!(
        err(&client()),
        "malformed reply: unexpected byte in bencode"
    );
    assert_eq!(
        err(&client()),
        "malformed reply: reply ended after 11 of 100 body bytes"
    );
    fake.join().unwrap();
}

#[test]
fn http_scrape_against_a_fake_tracker() {
    let mut body = b"d5:filesd20:".to_vec();
    body.extend_from_slice(&HASH);
    body.extend_from_slice(b"d8:completei3e10:downloadedi9e10:incompletei4eeee");
    // Chunked, in two chunks.
    let (a, b) = body.split_at(7);
    let mut reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    reply.extend_from_slice(format!("{:x}\r\n", a.len()).as_bytes());
    reply.extend_from_slice(a);
    reply.extend_from_slice(format!("\r\n{:x}\r\n", b.len()).as_bytes());
    reply.extend_from_slice(b);
    reply.extend_from_slice(b"\r\n0\r\n\r\n");
    let (addr, fake) = fake_http(vec![reply], true);
    let stats = client()
        .scrape(
            &url(&format!("http://{addr}/x/announce.php")),
            &[HASH, [1; 20]],
        )
        .unwrap();
    assert_eq!(
        stats,
        vec![
            Some(ScrapeStats {
                seeders: 3,
                completed: 9,
                leechers: 4
            }),
            None
        ]
    );
    let head = &fake.join().unwrap()[0];
    assert!(
        head.starts_with(&format!(
            "GET /x/scrape.php?info_hash={}&info_hash={} HTTP/1.1",
            "Z".repeat(20),
            "%01".repeat(20)
        )),
        "{head}"
    );
}

/// A large reply (150 000 compact peers, 900 kB) written in 1 000-byte
/// pieces with Nagle off, so the client sees it in many small reads, and the
/// connection held open: the client must frame it from Content-Length or the
/// chunks and not wait for EOF. Both framings; the body must come out whole.
#[test]
fn http_large_reply_in_small_pieces() {
    const PEERS: u32 = 150_000;
    let mut compact = Vec::with_capacity(PEERS as usize * 6);
    for i in 0..PEERS {
        compact.extend_from_slice(&(0x0a00_0000 + i).to_be_bytes());
        compact.extend_from_slice(&(i as u16).to_be_bytes());
    }
    let mut body = format!("d8:intervali60e5:peers{}:", compact.len()).into_bytes();
    body.extend_from_slice(&compact);
    body.push(b'e');
    let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for c in body.chunks(4096) {
        chunked.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        chunked.extend_from_slice(c);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    for reply in [http_ok(&body), chunked] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream.set_nodelay(true).unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 2 {
                line.clear();
            }
            for piece in reply.chunks(1000) {
                stream.write_all(piece).unwrap();
            }
            stream // held open until joined
        });
        let r = client()
            .announce(&url(&format!("http://{addr}/announce")), &params(1, 1))
            .unwrap();
        assert_eq!(r.interval, 60);
        assert_eq!(r.peers.len(), PEERS as usize);
        assert_eq!(r.peers[0], "10.0.0.0:0".parse::<SocketAddr>().unwrap());
        assert_eq!(
            r.peers[PEERS as usize - 1],
            "10.2.73.239:18927".parse::<SocketAddr>().unwrap()
        );
        drop(server.join().unwrap());
    }
}

#[test]
fn http_unknown_host_is_a_resolve_error() {
    // `.invalid` never resolves (RFC 2606); whatever the resolver does, it is bounded.
    for scheme in ["http", "https"] {
        let tracker = url(&format!("{scheme}://no-such-host.invalid/announce"));
        match client().announce(&tracker, &params(1, 1)) {
            Err(ClientError::Resolve { host, .. }) => assert_eq!(host, "no-such-host.invalid"),
            other => panic!("{scheme}: {other:?}"),
        }
    }
}

#[test]
fn http_timeout_against_a_silent_tracker() {
    // Accepts connections (the kernel does, from the backlog) but never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let tracker = url(&format!(
        "http://{}/announce",
        listener.local_addr().unwrap()
    ));
    let t = Instant::now();
    let err = Client::new(Duration::from_millis(50), 2)
        .announce(&tracker, &params(1, 1))
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Timeout { tries: 2, .. }),
        "{err:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(3));
}

/// A reply over the 1 MiB cap is refused: at once when Content-Length says
/// so (the body is never waited for), and, with no length, as soon as the
/// cap is passed, the client hanging up on a tracker that would go on.
#[test]
fn http_reply_over_the_cap_is_refused() {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
        MAX_REPLY + 1
    );
    let (addr, fake) = fake_http(vec![head.into_bytes()], true);
    let t = Instant::now();
    let err = client()
        .announce(&url(&format!("http://{addr}/announce")), &params(1, 1))
        .unwrap_err();
    assert!(matches!(err, ClientError::TooLarge(MAX_REPLY)), "{err:?}");
    assert_eq!(err.to_string(), "reply larger than 1048576 bytes, refused");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    fake.join().unwrap();

    // Chunked without end: the server writes until the client is gone, at
    // most 64 MiB, each write bounded in time.
    const BOUND: usize = 64 << 20;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap() > 2 {
            line.clear();
        }
        let mut sent = 0;
        let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        stream.write_all(head).unwrap();
        let mut chunk = b"10000\r\n".to_vec();
        chunk.extend_from_slice(&[b'x'; 0x10000]);
        chunk.extend_from_slice(b"\r\n");
        while sent < BOUND {
            if stream.write_all(&chunk).is_err() {
                return (sent, true);
            }
            sent += chunk.len();
        }
        (sent, false)
    });
    let err = client()
        .announce(&url(&format!("http://{addr}/announce")), &params(1, 1))
        .unwrap_err();
    assert!(matches!(err, ClientError::TooLarge(MAX_REPLY)), "{err:?}");
    let (sent, cut_off) = server.join().unwrap();
    assert!(cut_off, "the client read all {sent} bytes");
    assert!(sent > MAX_REPLY, "{sent}");
}

/// The HTTP client against shoal's own HTTP side, over IPv4 (compact `peers`)
/// and IPv6 (`peers6`).
#[test]
fn http_client_against_shoal() {
    for bind in ["127.0.0.1:0", "[::1]:0"] {
        let config = {
            let mut c = fixed_interval("127.0.0.1:0");
            c.listen.http = vec![bind.parse().unwrap()];
            c
        };
        let server = start(config);
        let http = server.http_addrs()[0];
        let tracker = url(&format!("http://{http}/announce"));
        let c = client();
        c.announce(&tracker, &params(1000, 0)).unwrap();
        let r = c.announce(&tracker, &params(2000, 1)).unwrap();
        assert_eq!((r.seeders, r.leechers), (1, 1));
        assert_eq!(r.interval, Config::default().tracker.interval);
        assert!(r.min_interval.is_some());
        assert_eq!(r.peers, vec![SocketAddr::new(http.ip(), 1000)], "{bind}");
        let stats = c.scrape(&tracker, &[HASH, [0; 20]]).unwrap();
        assert_eq!(
            stats,
            vec![
                Some(ScrapeStats {
                    seeders: 1,
                    completed: 0,
                    leechers: 1
                }),
                Some(ScrapeStats::default())
            ]
        );
        server.stop();
    }
}

/// A private shoal with --private-scrape: the client derives the scrape URL
/// from either keyed announce URL, passkey-first (BEP 48's convention) or
/// with the key after the route, and the key travels with it.
#[test]
fn http_client_scrapes_a_private_tracker_by_its_announce_url() {
    const KEY: &str = "abcdefghijklmnopqrstuvwxyzABCDEF";
    let dir = common::TmpDir::new("tools-private-scrape");
    let mut config = Config::for_udp("127.0.0.1:0".parse().unwrap());
    config.listen.http = vec!["127.0.0.1:0".parse().unwrap()];
    config.access = shoal::access::AccessConfig {
        keys: Some(dir.write("keys.txt", &format!("{KEY}\n"))),
        private_scrape: true,
        ..Default::default()
    };
    let server = start(config);
    let http = server.http_addrs()[0];
    let c = client();
    for (i, path) in [format!("/{KEY}/announce"), format!("/announce/{KEY}")]
        .iter()
        .enumerate()
    {
        let tracker = url(&format!("http://{http}{path}"));
        c.announce(&tracker, &params(1000 + i as u16, 0)).unwrap();
        let stats = c.scrape(&tracker, &[HASH]).unwrap();
        assert_eq!(stats[0].unwrap().seeders, i as u32 + 1, "{path}");
    }
    let o = shoal(&["scrape", &format!("http://{http}/{KEY}/announce"), HASH_HEX]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!("{HASH_HEX}         2")),
        "{}",
        stdout(&o)
    );
    // Without the key the tracker refuses, and says why.
    let o = shoal(&["scrape", &format!("http://{http}/announce"), HASH_HEX]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("missing key"), "{}", stderr(&o));
    server.stop();
}

// ---------------------------------------------------------------------------
// https: a test CA made at run time, and a rustls server thread
// ---------------------------------------------------------------------------

/// A CA (its PEM) and a server configuration whose certificate, for
/// 127.0.0.1 and localhost, that CA signed.
fn test_ca_and_server() -> (String, Arc<rustls::ServerConfig>) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "shoal test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    (ca.pem(), Arc::new(config))
}

/// A fake https tracker on 127.0.0.1:0 for exactly `connections`
/// connections: answers `/announce` with `announce` and `/scrape` with
/// `scrape`, and returns each request line, or `handshake failed: …`.
fn tls_tracker(
    config: Arc<rustls::ServerConfig>,
    connections: usize,
    announce: Vec<u8>,
    scrape: Vec<u8>,
) -> (SocketAddr, JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for _ in 0..connections {
            let (tcp, _) = listener.accept().unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            tcp.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
            let conn = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
            let mut tls = BufReader::new(rustls::StreamOwned::new(conn, tcp));
            let mut line = String::new();
            if let Err(e) = tls.read_line(&mut line) {
                lines.push(format!("handshake failed: {e}"));
                continue;
            }
            let mut header = String::new();
            while tls.read_line(&mut header).unwrap() > 2 {
                header.clear();
            }
            let body = if line.starts_with("GET /scrape") {
                &scrape
            } else {
                &announce
            };
            let tls = tls.get_mut();
            tls.write_all(&http_ok(body)).unwrap();
            tls.conn.send_close_notify();
            tls.flush().unwrap();
            lines.push(line.trim_end().to_string());
        }
        lines
    });
    (addr, handle)
}

/// `shoal announce https://127.0.0.1:PORT/announce --ca-file CA.pem
/// --info-hash HEX` (the interface the nginx end-to-end script uses) against
/// a TLS server whose certificate a test CA signed: the peers come out, and
/// without --ca-file the system's roots refuse the certificate, in one line.
/// Also scrape from an https scrape URL and a probe over https.
#[test]
fn cli_https_with_a_private_ca() {
    let (ca_pem, config) = test_ca_and_server();
    let dir = common::TmpDir::new("tls");
    let ca_file = dir.write("ca.pem", &ca_pem);
    let ca = ca_file.to_str().unwrap();

    let mut announce = b"d8:completei1e10:incompletei0e8:intervali1800e5:peers12:".to_vec();
    announce.extend_from_slice(&[10, 1, 2, 3, 0x1a, 0xe1, 10, 1, 2, 4, 0x1a, 0xe2]);
    announce.push(b'e');
    let mut scrape = b"d5:filesd20:".to_vec();
    scrape.extend_from_slice(&HASH);
    scrape.extend_from_slice(b"d8:completei1e10:downloadedi2e10:incompletei3eeee");
    let (addr, server) = tls_tracker(config, 6, announce, scrape);
    let https = format!("https://127.0.0.1:{}/announce", addr.port());

    let o = shoal(&["announce", &https, "--ca-file", ca, "--info-hash", HASH_HEX]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "interval: 1800 s\nseeders: 1\nleechers: 0\npeers: 2\n10.1.2.3:6881\n10.1.2.4:6882\n"
    );

    let o = shoal(&["announce", &https, "--info-hash", HASH_HEX, "--tries", "1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("shoal: {https}: TLS error: ")),
        "{err}"
    );
    assert!(err.contains("certificate"), "{err}");
    assert!(err.contains("--ca-file"), "{err}");

    let scrape_url = format!("https://localhost:{}/scrape", addr.port());
    let o = shoal(&["scrape", &scrape_url, HASH_HEX, "--ca-file", ca, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!("{{\"files\":[{{\"info_hash\":\"{HASH_HEX}\",\"seeders\":1,\"completed\":2,\"leechers\":3}}]}}\n")
    );

    let o = shoal(&[
        "announce",
        &https,
        "--ca-file",
        ca,
        "--info-hash",
        HASH_HEX,
        "--probe",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json_doc(&o)["peers"][1], "10.1.2.4:6882");

    let o = shoal(&[
        "announce",
        &https,
        "--info-hash",
        HASH_HEX,
        "--tries",
        "1",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(json_doc(&o)["error"]
        .as_str()
        .unwrap()
        .contains("certificate"));

    let lines = server.join().unwrap();
    assert_eq!(lines.len(), 6);
    assert!(
        lines[0].starts_with("GET /announce?info_hash="),
        "{lines:?}"
    );
    assert!(lines[1].starts_with("handshake failed"), "{lines:?}");
    assert!(lines[2].starts_with("GET /scrape?info_hash="), "{lines:?}");
    // The probe: the same peer (id, port, key) announces, then stops.
    fn same_peer(l: &str) -> Vec<&str> {
        l.split(['?', '&', ' '])
            .filter(|kv| {
                ["peer_id=", "port=", "key="]
                    .iter()
                    .any(|k| kv.starts_with(k))
            })
            .collect()
    }
    assert!(lines[3].contains("&event=started"), "{}", lines[3]);
    assert!(
        lines[4].contains("&event=stopped&numwant=0 "),
        "{}",
        lines[4]
    );
    assert_eq!(same_peer(&lines[3]), same_peer(&lines[4]));
    assert_eq!(same_peer(&lines[3]).len(), 3);
    assert!(lines[5].starts_with("handshake failed"), "{lines:?}");
}

/// The library side of https: a Client trusting the test CA announces; one
/// that does not gets a Tls error, not retried.
#[test]
fn client_https_trusts_only_what_it_is_given() {
    let (ca_pem, config) = test_ca_and_server();
    let body = b"d8:intervali60e5:peers0:e".to_vec();
    let (addr, server) = tls_tracker(config, 2, body.clone(), body);
    let tracker = url(&format!("https://127.0.0.1:{}/announce", addr.port()));
    let trusting = client().with_ca_pem(ca_pem.as_bytes()).unwrap();
    let r = trusting.announce(&tracker, &params(1, 1)).unwrap();
    assert_eq!((r.interval, r.peers.len()), (60, 0));
    let err = Client::new(Duration::from_secs(5), 3)
        .announce(&tracker, &params(1, 1))
        .unwrap_err();
    assert!(matches!(err, ClientError::Tls(_)), "{err:?}");
    let lines = server.join().unwrap();
    assert!(lines[1].starts_with("handshake failed"), "{lines:?}");
    assert!(matches!(
        client().with_ca_pem(b"not pem"),
        Err(ClientError::Tls(_))
    ));
}

// ---------------------------------------------------------------------------
// The binary
// ---------------------------------------------------------------------------

fn shoal(args: &[&str]) -> Output {
    common::shoal_command().args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// The number at a dotted `path` (`"errors.malformed"`) of a JSON document.
fn json_number(json: &str, path: &str) -> f64 {
    let doc: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("not JSON ({e}): {json}"));
    let v = path.split('.').fold(&doc, |v, key| &v[key]);
    v.as_f64()
        .unwrap_or_else(|| panic!("{path} is not a number in {json}"))
}

#[test]
fn cli_announce_and_scrape() {
    let server = start(fixed_interval("127.0.0.1:0"));
    let tracker = format!("udp://{}", server.udp_addrs()[0]);
    let t = tracker.as_str();

    let o = shoal(&[
        "announce",
        t,
        "--info-hash",
        HASH_HEX,
        "--port",
        "1111",
        "--left",
        "0",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "interval: 1800 s\nseeders: 1\nleechers: 0\npeers: 0\n"
    );

    let o = shoal(&[
        "announce",
        t,
        "--info-hash",
        HASH_HEX,
        "--port",
        "2222",
        "--peer-id",
        "-XX0001-",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "{\"interval\":1800,\"min_interval\":null,\"seeders\":1,\"leechers\":1,\"peers\":[\"127.0.0.1:1111\"],\"warning\":null}\n"
    );

    let o = shoal(&["announce", t, "--info-hash", HASH_HEX, "--port", "3333"]);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[..4],
        ["interval: 1800 s", "seeders: 1", "leechers: 2", "peers: 2"]
    );
    let mut peers = lines[4..].to_vec();
    peers.sort_unstable();
    assert_eq!(peers, ["127.0.0.1:1111", "127.0.0.1:2222"]);

    let zeros = "0".repeat(40);
    let o = shoal(&["scrape", t, HASH_HEX, &zeros]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!(
            "info hash                                  seeders  completed  leechers\n\
             {HASH_HEX}         1          0         2\n\
             {zeros}         0          0         0\n"
        )
    );
    let o = shoal(&["scrape", t, HASH_HEX, "--json"]);
    assert_eq!(
        stdout(&o),
        format!("{{\"files\":[{{\"info_hash\":\"{HASH_HEX}\",\"seeders\":1,\"completed\":0,\"leechers\":2}}]}}\n")
    );
    server.stop();
}

#[test]
fn cli_errors_are_one_line() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let t = format!("udp://{}", silent.local_addr().unwrap());
    let o = shoal(&[
        "announce",
        &t,
        "--info-hash",
        HASH_HEX,
        "--timeout",
        "0.05",
        "--tries",
        "1",
    ]);
    assert!(!o.status.success());
    assert!(o.stdout.is_empty());
    assert_eq!(
        stderr(&o),
        format!("shoal: {t}: no reply after 1 try (50 ms in all)\n")
    );

    let o = shoal(&["scrape", "ftp://example.org/announce", HASH_HEX]);
    assert_eq!(o.status.code(), Some(2), "a bad argument is a usage error");
    assert!(
        stderr(&o).contains("the scheme must be udp, http or https"),
        "{}",
        stderr(&o)
    );

    let o = shoal(&["announce", "udp://127.0.0.1:1", "--info-hash", "xyz"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not an info hash"), "{}", stderr(&o));
}

/// The one JSON document a `--json` run printed.
fn json_doc(o: &Output) -> serde_json::Value {
    let out = stdout(o);
    assert_eq!(out.lines().count(), 1, "one line: {out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[test]
fn cli_json_errors_are_json_with_the_same_status() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let t = format!("udp://{}", silent.local_addr().unwrap());
    let o = shoal(&[
        "announce",
        &t,
        "--info-hash",
        HASH_HEX,
        "--timeout",
        "0.05",
        "--tries",
        "1",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
    assert_eq!(
        json_doc(&o)["error"],
        format!("{t}: no reply after 1 try (50 ms in all)").as_str()
    );

    let o = shoal(&[
        "scrape",
        &t,
        HASH_HEX,
        "--timeout",
        "0.05",
        "--tries",
        "1",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(json_doc(&o)["error"].as_str().unwrap().contains("no reply"));

    // Usage errors too: exit status 2 as without --json.
    let o = shoal(&["announce", &t, "--info-hash", "xyz", "--json"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
    let msg = json_doc(&o)["error"].as_str().unwrap().to_string();
    assert!(msg.contains("not an info hash"), "{msg}");
    let o = shoal(&["scrape", "http://h/a", HASH_HEX, "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let msg = json_doc(&o)["error"].as_str().unwrap().to_string();
    assert!(msg.contains("neither \"announce\" nor \"scrape\""), "{msg}");
}

/// `--probe` announces and withdraws: the output is the first reply, and the
/// tracker (shoal, over UDP and HTTP) no longer counts the probe afterwards.
/// Also: `--numwant -1`, and scraping from a scrape URL.
#[test]
fn cli_probe_leaves_no_peer_behind() {
    let config = {
        let mut c = fixed_interval("127.0.0.1:0");
        c.listen.http = vec!["127.0.0.1:0".parse().unwrap()];
        c
    };
    let server = start(config);
    let udp = format!("udp://{}", server.udp_addrs()[0]);
    let http = format!("http://{}/announce", server.http_addrs()[0]);
    let http_scrape = format!("http://{}/scrape", server.http_addrs()[0]);
    // A seeder that stays, for the probes to see.
    let o = shoal(&[
        "announce",
        &udp,
        "--info-hash",
        HASH_HEX,
        "--port",
        "1111",
        "--left",
        "0",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));

    for t in [&udp, &http] {
        let o = shoal(&[
            "announce",
            t,
            "--info-hash",
            HASH_HEX,
            "--port",
            "2222",
            "--probe",
        ]);
        assert!(o.status.success(), "{t}: {}", stderr(&o));
        let out = stdout(&o);
        let lines: Vec<&str> = out.lines().collect();
        let first = lines.iter().position(|l| l.starts_with("seeders")).unwrap();
        assert_eq!(
            lines[first..],
            [
                "seeders: 1",
                "leechers: 1",
                "peers: 1",
                "127.0.0.1:1111",
                "after stopped: 1 seeders, 0 leechers"
            ],
            "{t}: {out}"
        );
        // Scraped afterwards (from the announce URL, and from the scrape URL): no leecher.
        for s in [t.as_str(), &http_scrape] {
            let o = shoal(&["scrape", s, HASH_HEX, "--json"]);
            assert!(o.status.success(), "{s}: {}", stderr(&o));
            let doc = json_doc(&o);
            assert_eq!(doc["files"][0]["seeders"], 1, "{s}: {doc}");
            assert_eq!(doc["files"][0]["leechers"], 0, "{s}: {doc}");
        }
    }

    let o = shoal(&[
        "announce",
        &http,
        "--info-hash",
        HASH_HEX,
        "--port",
        "3333",
        "--probe",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc = json_doc(&o);
    assert_eq!(
        (doc["seeders"].as_u64(), doc["leechers"].as_u64()),
        (Some(1), Some(1)),
        "{doc}"
    );
    assert_eq!(doc["peers"][0], "127.0.0.1:1111", "{doc}");
    assert_eq!(doc["after_stopped"]["leechers"], 0, "{doc}");
    assert_eq!(doc["after_stopped"]["seeders"], 1, "{doc}");

    // A second, ordinary announce sees no leecher but itself; --numwant -1
    // is the tracker's default (which sends the seeder), 0 sends none.
    let o = shoal(&[
        "announce",
        &udp,
        "--info-hash",
        HASH_HEX,
        "--port",
        "4444",
        "--numwant",
        "-1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "interval: 1800 s\nseeders: 1\nleechers: 1\npeers: 1\n127.0.0.1:1111\n"
    );
    let o = shoal(&[
        "announce",
        &http,
        "--info-hash",
        HASH_HEX,
        "--port",
        "4444",
        "--numwant",
        "0",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("peers: 0\n"), "{}", stdout(&o));
    server.stop();
}

#[test]
fn client_probe_reuses_the_peer_and_withdraws_it() {
    let server = start(Config::for_udp("127.0.0.1:0".parse().unwrap()));
    let tracker = url(&format!("udp://{}", server.udp_addrs()[0]));
    let c = client();
    let probe = c.probe(&tracker, &params(5000, 1)).unwrap();
    assert_eq!((probe.reply.seeders, probe.reply.leechers), (0, 1));
    let after = probe.stopped.unwrap();
    assert_eq!((after.seeders, after.leechers), (0, 0));
    assert_eq!(
        c.scrape(&tracker, &[HASH]).unwrap(),
        vec![Some(ScrapeStats::default())]
    );
    server.stop();
}

#[test]
fn cli_bench_against_a_target() {
    let server = start(Config::for_udp("127.0.0.1:0".parse().unwrap()));
    let target = format!("udp://{}", server.udp_addrs()[0]);
    let o = shoal(&[
        "bench",
        "--target",
        &target,
        "--duration",
        "1",
        "--torrents",
        "1000",
        "--peers",
        "10000",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json = stdout(&o);
    assert!(json.starts_with(&format!("{{\"target\":\"{target}\",\"in_process\":false,")));
    let sent = json_number(&json, "sent");
    let replies = json_number(&json, "replies");
    assert!(replies > 100.0, "{json}");
    assert!(replies <= sent, "{json}");
    assert!(json_number(&json, "loss_pct") < 5.0, "{json}");
    assert!(json_number(&json, "replies_per_sec") > 0.0, "{json}");
    assert_eq!(json_number(&json, "errors.malformed"), 0.0, "{json}");
    assert_eq!(json_number(&json, "errors.error_frames"), 0.0, "{json}");
    assert!(json_number(&json, "latency_us.p50") > 0.0, "{json}");
    assert!(
        json_number(&json, "latency_us.p99") >= json_number(&json, "latency_us.p50"),
        "{json}"
    );
    // A progress line per second on stderr.
    assert!(stderr(&o).contains("replies"), "{}", stderr(&o));
    // The swarm saw the simulated peers.
    let announces = json_number(&json, "sent_by_kind.announce");
    assert!(announces > 0.0, "{json}");
    server.stop();
}

#[test]
fn cli_bench_in_process_human_report() {
    let o = shoal(&[
        "bench",
        "--duration",
        "1",
        "--torrents",
        "100",
        "--peers",
        "1000",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("(in-process shoal)"), "{out}");
    for field in ["replies/s", "loss", "p50", "p99", "p99.9", "error frames"] {
        assert!(out.contains(field), "{field} missing from {out}");
    }
    assert!(stderr(&o).is_empty(), "--quiet: {}", stderr(&o));
}

/// `shoal bench --shed`: the model, no sockets; the three policies side by
/// side, one row per simulated interval, and a usage error for a bad value.
#[test]
fn cli_bench_shed_compares_the_policies() {
    let o = shoal(&[
        "bench",
        "--shed",
        "--shed-peers",
        "3000",
        "--shed-interval",
        "60",
        "--shed-intervals",
        "6",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        (r["interval"].as_u64(), r["max_interval"].as_u64()),
        (Some(60), Some(240))
    );
    let runs = r["runs"].as_array().unwrap();
    let policies: Vec<&str> = runs.iter().map(|x| x["policy"].as_str().unwrap()).collect();
    assert_eq!(policies, ["fixed", "jitter", "adaptive"]);
    assert!(runs
        .iter()
        .all(|x| x["spans"].as_array().unwrap().len() == 6));
    let last = |i: usize, key: &str| runs[i]["spans"][5][key].as_f64().unwrap();
    assert_eq!(last(0, "interval_max"), 60.0);
    assert!(last(2, "interval_max") > 60.0, "{r}");
    assert!(last(2, "drops_per_sec") < last(0, "drops_per_sec"), "{r}");
    let o = shoal(&["bench", "--shed", "--shed-load", "0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--shed-load"), "{}", stderr(&o));
}

#[test]
fn cli_bench_stops_at_its_duration_against_a_silent_target() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = format!("udp://{}", silent.local_addr().unwrap());
    let t = Instant::now();
    let o = shoal(&[
        "bench",
        "--target",
        &target,
        "--duration",
        "1",
        "--timeout",
        "0.1",
        "--peers",
        "100",
        "--json",
        "--quiet",
    ]);
    // Send phase, then at most one timeout of draining.
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(o.status.code(), Some(1));
    let json = stdout(&o);
    assert_eq!(json_number(&json, "replies"), 0.0, "{json}");
    assert!(json_number(&json, "errors.timeouts") > 0.0, "{json}");
    assert_eq!(json_number(&json, "loss_pct"), 100.0, "{json}");
    assert_eq!(
        stderr(&o),
        format!("shoal: {target}: no replies (is a UDP tracker listening there?)\n")
    );
}

#[test]
fn cli_bench_refuses_a_remote_target_before_sending() {
    // 192.0.2.1 is TEST-NET-1 (RFC 5737): nothing may be sent there. The check
    // runs before any socket exists, so the refusal is immediate.
    let t = Instant::now();
    let o = shoal(&[
        "bench",
        "--target",
        "udp://192.0.2.1:6969",
        "--duration",
        "1",
    ]);
    assert!(!o.status.success());
    assert!(o.stdout.is_empty());
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(
            "shoal: refusing to load udp://192.0.2.1:6969 (192.0.2.1): not a loopback address"
        ),
        "{err}"
    );
    assert!(err.contains("--allow-remote"));
    assert!(t.elapsed() < Duration::from_secs(5));
    // Bounds are enforced too.
    let o = shoal(&["bench", "--duration", "7200"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn cli_help_lists_the_tools() {
    let o = shoal(&["--help"]);
    let out = stdout(&o);
    for tool in ["announce", "scrape", "bench", "serve"] {
        assert!(out.contains(tool), "{out}");
    }
    let o = shoal(&["bench", "--help"]);
    assert!(o.status.success());
    let help = stdout(&o);
    assert!(help.contains("--allow-remote"), "{help}");
}
