//! Who may use the tracker, over real sockets: the access list (allow and
//! deny), private keys over UDP (BEP 41 URL data) and HTTP (`/announce/KEY`
//! and the passkey-first `/KEY/announce`, `/KEY/scrape`), both combined,
//! private scrape, reloads by SIGHUP and by file change, a torn
//! write, 1 M entries, start-up errors, the expiry pass dropping a swarm that
//! left the list, `shoal announce` with a key, and no allocation per checked
//! announce.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod alloc_count;
mod common;

use alloc_count::allocs;
use common::{hex, http_get, pct, wait_until, Client, Proc, Role, TmpDir};
use shoal::access::{write_atomically, AccessConfig, Mode, Reloader};
use shoal::server::{Config, Running, Server};
use shoal::stats::Reject;
use shoal::time::{Clock, Now};
use shoal::tracker::Outcome::Refused;
use shoal::tracker::{Asked, Refusal, Tracker, Worker};
use shoal::wire::udp::{self, AnnounceRequest, Event, Response};
use std::net::SocketAddr;
use std::path::Path;

#[global_allocator]
static GLOBAL: alloc_count::Counting = alloc_count::Counting;

const H1: [u8; 20] = [0x11; 20];
const H2: [u8; 20] = [0x22; 20];
const K1: &str = "abcdefghijklmnopqrstuvwxyzABCDEF";
/// Listed with an expiry long past.
const K_EXPIRED: &str = "0123456789abcdefghijABCDEFGHIJ01";
const K_UNKNOWN: &str = "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ";

/// Append 40 hex digits (fast enough for a million lines in a debug build).
fn push_hex(s: &mut String, h: &[u8; 20]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in h {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
}

fn list_text(hashes: &[[u8; 20]]) -> String {
    let mut s = String::from("# test list\n\n");
    for h in hashes {
        s.push_str(&hex(h).to_uppercase());
        s.push('\n');
    }
    s
}

fn keys_text() -> String {
    format!("{K1}\n# a comment\n{K_EXPIRED} 1000\n")
}

/// Two UDP and two HTTP addresses (both families), and an operator
/// listener, enforcing `access`.
fn config(access: &AccessConfig) -> Config {
    let mut c = Config::for_udp("127.0.0.1:0".parse().unwrap());
    c.listen.udp = vec!["127.0.0.1:0".parse().unwrap(), "[::1]:0".parse().unwrap()];
    c.listen.http = vec!["127.0.0.1:0".parse().unwrap(), "[::1]:0".parse().unwrap()];
    c.listen.metrics = vec!["127.0.0.1:0".parse().unwrap()];
    c.tracker.shards = 4;
    c.access = access.clone();
    c
}

/// An in-process server enforcing `access`.
fn serve_with_clock(access: &AccessConfig, clock: Clock) -> Running {
    Server::bind_with_clock(config(access), clock)
        .unwrap()
        .spawn()
        .unwrap()
}

fn serve(access: &AccessConfig) -> Running {
    serve_with_clock(access, Clock::system())
}

fn allow(path: &Path) -> AccessConfig {
    AccessConfig {
        list: Some((path.to_path_buf(), Mode::Allow)),
        ..AccessConfig::default()
    }
}

/// An announce's outcome: the counts, or the tracker's error text.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Peers { seeders: u32, leechers: u32 },
    Error(String),
}

impl Outcome {
    fn is_ok(&self) -> bool {
        matches!(self, Outcome::Peers { .. })
    }
}

fn ok(seeders: u32, leechers: u32) -> Outcome {
    Outcome::Peers { seeders, leechers }
}

fn err(s: &str) -> Outcome {
    Outcome::Error(s.into())
}

/// A UDP announce (a seeder) whose options are the given BEP 41 URL-data pieces.
fn udp_announce(c: &mut Client, ih: [u8; 20], pieces: &[&str]) -> Outcome {
    let req = AnnounceRequest {
        left: 0,
        event: Event::Started,
        ..AnnounceRequest::new(c.connection_id, c.next_tx(), ih, [7; 20], c.port())
    };
    let mut buf = vec![0u8; 2048];
    let mut n = udp::write_announce_request(&mut buf, &req, b"").unwrap();
    for p in pieces {
        buf[n] = 2;
        buf[n + 1] = p.len() as u8;
        buf[n + 2..n + 2 + p.len()].copy_from_slice(p.as_bytes());
        n += 2 + p.len();
    }
    match udp::parse_response(&c.roundtrip(&buf[..n])) {
        Ok(Response::Announce {
            seeders, leechers, ..
        }) => Outcome::Peers { seeders, leechers },
        Ok(Response::Error { message, .. }) => {
            Outcome::Error(String::from_utf8(message.to_vec()).unwrap())
        }
        other => panic!("bad announce reply: {other:?}"),
    }
}

/// An HTTP announce at `/announce{key_path}?…` (a seeder).
fn http_announce(addr: SocketAddr, ih: [u8; 20], key_path: &str) -> Outcome {
    let body = http_get(
        addr,
        &format!(
            "/announce{key_path}?info_hash={}&peer_id=-XX0000-000000000000&port=6881&left=0&compact=1",
            pct(&ih)
        ),
    );
    bencoded_outcome(&body)
}

fn bencoded_outcome(body: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(body);
    if let Some(rest) = text.strip_prefix("d14:failure reason") {
        let (len, msg) = rest.split_once(':').unwrap();
        return Outcome::Error(msg[..len.parse::<usize>().unwrap()].to_string());
    }
    let int = |key: &str| -> u32 {
        let at = text.find(key).unwrap() + key.len() + 1;
        text[at..].split('e').next().unwrap().parse().unwrap()
    };
    Outcome::Peers {
        seeders: int("8:complete"),
        leechers: int("10:incomplete"),
    }
}

fn rejects(r: &Running, reason: Reject) -> u64 {
    r.registry().rejects(reason)
}

#[test]
fn allow_list_over_udp_and_http_v4_and_v6() {
    let d = TmpDir::new("allow");
    let r = serve(&allow(&d.write("allow.txt", &list_text(&[H1]))));
    for udp_addr in r.udp_addrs().to_vec() {
        let mut c = Client::connected(udp_addr);
        assert!(
            udp_announce(&mut c, H1, &["/announce"]).is_ok(),
            "{udp_addr}"
        );
        assert_eq!(
            udp_announce(&mut c, H2, &["/announce"]),
            err("torrent not allowed"),
            "{udp_addr}"
        );
        // Scrape: the listed hash counts, the other is zeros.
        let rows = c.scrape(&[H1, H2]);
        assert_eq!(rows[1], (0, 0, 0));
        assert!(rows[0].0 >= 1, "{rows:?}");
    }
    for http in r.http_addrs().to_vec() {
        assert_eq!(http_announce(http, H2, ""), err("torrent not allowed"));
        assert!(http_announce(http, H1, "").is_ok());
        let body = http_get(
            http,
            &format!("/scrape?info_hash={}&info_hash={}", pct(&H1), pct(&H2)),
        );
        let want = format!("{}d8:completei0e10:downloadedi0e10:incompletei0ee", {
            let mut s = String::from("20:");
            s.push_str(&String::from_utf8_lossy(&H2));
            s
        });
        assert!(String::from_utf8_lossy(&body).contains(&want), "{body:?}");
    }
    // Nothing was stored for the refused hash.
    let totals = r.tracker().swarm().totals();
    assert_eq!(totals.torrents, 1);
    assert_eq!(rejects(&r, Reject::TorrentNotAllowed), 4);
    let mut metrics = String::new();
    r.registry().render_prometheus(&mut metrics, &totals, 0);
    assert!(metrics.contains("shoal_rejected_total{reason=\"torrent_not_allowed\"} 4"));
    r.stop();
}

#[test]
fn a_refusal_needs_a_valid_connection_id() {
    let d = TmpDir::new("connid");
    let r = serve(&allow(&d.write("allow.txt", &list_text(&[H1]))));
    let mut c = Client::connected(r.udp_addrs()[0]);
    let good = c.connection_id;
    c.connection_id = good ^ 1;
    let req = AnnounceRequest::new(c.connection_id, 99, H2, [7; 20], 6881);
    let mut buf = [0u8; 128];
    let n = udp::write_announce_request(&mut buf, &req, b"/announce").unwrap();
    c.sock.send_to(&buf[..n], c.server).unwrap();
    // The next reply is the connect's: the forged announce got none.
    let mut connect = [0u8; 16];
    udp::write_connect_request(&mut connect, 1234).unwrap();
    match udp::parse_response(&c.roundtrip(&connect)) {
        Ok(Response::Connect { transaction_id, .. }) => assert_eq!(transaction_id, 1234),
        other => panic!("expected the connect reply first: {other:?}"),
    }
    assert_eq!(rejects(&r, Reject::TorrentNotAllowed), 0);
    assert_eq!(rejects(&r, Reject::BadConnectionId), 1);
    r.stop();
}

#[test]
fn deny_list_refuses_only_its_hashes() {
    let d = TmpDir::new("deny");
    let access = AccessConfig {
        list: Some((d.write("deny.txt", &list_text(&[H1])), Mode::Deny)),
        ..AccessConfig::default()
    };
    let r = serve(&access);
    let mut c = Client::connected(r.udp_addrs()[1]);
    assert_eq!(udp_announce(&mut c, H1, &[]), err("torrent not allowed"));
    assert_eq!(udp_announce(&mut c, H2, &[]), ok(1, 0));
    let http = r.http_addrs()[0];
    assert_eq!(http_announce(http, H1, ""), err("torrent not allowed"));
    assert_eq!(http_announce(http, H2, ""), ok(2, 0));
    r.stop();
}

fn private(d: &TmpDir, private_scrape: bool) -> AccessConfig {
    AccessConfig {
        keys: Some(d.write("keys.txt", &keys_text())),
        private_scrape,
        ..AccessConfig::default()
    }
}

#[test]
fn keys_over_udp_in_bep41_url_data() {
    let d = TmpDir::new("keys-udp");
    let r = serve(&private(&d, false));
    for udp_addr in r.udp_addrs().to_vec() {
        let mut c = Client::connected(udp_addr);
        let k1 = format!("/announce/{K1}");
        assert!(udp_announce(&mut c, H1, &[&k1]).is_ok(), "{udp_addr}");
        // Split over two URL-data options, and with a query after the key.
        let (a, b) = k1.split_at(13);
        assert!(udp_announce(&mut c, H1, &[a, b]).is_ok());
        assert!(udp_announce(&mut c, H1, &[&format!("{k1}?passkey=x")]).is_ok());
        assert_eq!(udp_announce(&mut c, H1, &[]), err("missing key"));
        assert_eq!(udp_announce(&mut c, H1, &["/announce"]), err("missing key"));
        let unknown = format!("/announce/{K_UNKNOWN}");
        assert_eq!(udp_announce(&mut c, H1, &[&unknown]), err("unknown key"));
        let expired = format!("/announce/{K_EXPIRED}");
        assert_eq!(udp_announce(&mut c, H1, &[&expired]), err("unknown key"));
        assert_eq!(
            udp_announce(&mut c, H1, &["/announce/short"]),
            err("unknown key")
        );
        // Scrape works without a key unless --private-scrape.
        assert!(c.scrape(&[H1])[0].0 >= 1);
    }
    assert_eq!(rejects(&r, Reject::MissingKey), 4);
    assert_eq!(rejects(&r, Reject::UnknownKey), 6);
    assert_eq!(r.tracker().swarm().totals().peers(), 2);
    r.stop();
}

#[test]
fn keys_over_http_in_the_path() {
    let d = TmpDir::new("keys-http");
    let r = serve(&private(&d, false));
    for http in r.http_addrs().to_vec() {
        assert!(http_announce(http, H1, &format!("/{K1}")).is_ok());
        assert_eq!(http_announce(http, H1, ""), err("missing key"));
        assert_eq!(http_announce(http, H1, "/"), err("missing key"));
        assert_eq!(
            http_announce(http, H1, &format!("/{K_UNKNOWN}")),
            err("unknown key")
        );
        assert_eq!(
            http_announce(http, H1, &format!("/{K_EXPIRED}")),
            err("unknown key")
        );
        // Scrape without a key is fine by default.
        let body = http_get(http, &format!("/scrape?info_hash={}", pct(&H1)));
        assert!(body.starts_with(b"d5:files"), "{body:?}");
    }
    assert_eq!(rejects(&r, Reject::MissingKey), 4);
    assert_eq!(rejects(&r, Reject::UnknownKey), 4);
    r.stop();
}

#[test]
fn private_scrape_needs_a_key() {
    let d = TmpDir::new("pscrape");
    let r = serve(&private(&d, true));
    let mut c = Client::connected(r.udp_addrs()[0]);
    // A UDP scrape carries no URL data: it cannot bring a key.
    let mut buf = [0u8; 36];
    let tx = c.next_tx();
    udp::write_scrape_request(&mut buf, c.connection_id, tx, &[H1]).unwrap();
    match udp::parse_response(&c.roundtrip(&buf)) {
        Ok(Response::Error { message, .. }) => assert_eq!(message, b"missing key"),
        other => panic!("expected an error: {other:?}"),
    }
    let http = r.http_addrs()[0];
    let q = format!("?info_hash={}", pct(&H1));
    assert!(http_get(http, &format!("/scrape/{K1}{q}")).starts_with(b"d5:files"));
    assert_eq!(
        bencoded_outcome(&http_get(http, &format!("/scrape{q}"))),
        err("missing key")
    );
    assert_eq!(
        bencoded_outcome(&http_get(http, &format!("/scrape/{K_UNKNOWN}{q}"))),
        err("unknown key")
    );
    r.stop();
}

/// The passkey-first form: `/KEY/announce` over HTTP and in BEP 41 URL data,
/// `/KEY/scrape` under --private-scrape, with the same refusals as the key
/// after the route.
#[test]
fn passkey_first_urls_over_http_and_udp() {
    let d = TmpDir::new("passkey-first");
    let r = serve(&private(&d, true));
    let q = |ih: &[u8; 20]| {
        format!(
            "?info_hash={}&peer_id=-XX0000-000000000000&port=6881&left=0&compact=1",
            pct(ih)
        )
    };
    // One seeder per address family.
    for (seeders, http) in (1..).zip(r.http_addrs().to_vec()) {
        let announce =
            |key: &str| bencoded_outcome(&http_get(http, &format!("/{key}/announce{}", q(&H1))));
        assert_eq!(announce(K1), ok(seeders, 0), "{http}");
        assert_eq!(announce(K_UNKNOWN), err("unknown key"));
        assert_eq!(announce(K_EXPIRED), err("unknown key"));
        assert_eq!(announce("short"), err("unknown key"));
        let scrape = |key: &str| http_get(http, &format!("/{key}/scrape?info_hash={}", pct(&H1)));
        let files = scrape(K1);
        assert!(files.starts_with(b"d5:filesd20:"), "{files:?}");
        assert!(
            String::from_utf8_lossy(&files).contains(&format!("8:completei{seeders}e")),
            "{files:?}"
        );
        assert_eq!(bencoded_outcome(&scrape(K_UNKNOWN)), err("unknown key"));
        // Two segments before the route: not a tracker path.
        let r = common::get(http, &format!("/x/{K1}/announce{}", q(&H1)));
        assert_eq!(r.status, 404);
    }
    for udp_addr in r.udp_addrs().to_vec() {
        let mut c = Client::connected(udp_addr);
        let first = format!("/{K1}/announce");
        assert!(udp_announce(&mut c, H2, &[&first]).is_ok(), "{udp_addr}");
        let (a, b) = first.split_at(20);
        assert!(udp_announce(&mut c, H2, &[a, b, "?passkey=x"]).is_ok());
        let unknown = format!("/{K_UNKNOWN}/announce");
        assert_eq!(udp_announce(&mut c, H2, &[&unknown]), err("unknown key"));
    }
    // Per HTTP address 3 announces and 1 scrape, per UDP address 1 announce.
    assert_eq!(rejects(&r, Reject::UnknownKey), 2 * 4 + 2);
    assert_eq!(rejects(&r, Reject::MissingKey), 0);
    r.stop();
}

#[test]
fn list_and_keys_combine() {
    let d = TmpDir::new("combined");
    let access = AccessConfig {
        list: Some((d.write("allow.txt", &list_text(&[H1])), Mode::Allow)),
        ..private(&d, false)
    };
    let r = serve(&access);
    let mut c = Client::connected(r.udp_addrs()[0]);
    let k1 = format!("/announce/{K1}");
    assert_eq!(udp_announce(&mut c, H1, &[&k1]), ok(1, 0));
    assert_eq!(udp_announce(&mut c, H2, &[&k1]), err("torrent not allowed"));
    // Without a valid key nothing is said about the list.
    assert_eq!(udp_announce(&mut c, H2, &[]), err("missing key"));
    let unknown = format!("/{K_UNKNOWN}");
    let http = r.http_addrs()[1];
    assert_eq!(http_announce(http, H2, &unknown), err("unknown key"));
    assert_eq!(
        http_announce(http, H2, &format!("/{K1}")),
        err("torrent not allowed")
    );
    assert_eq!(http_announce(http, H1, &format!("/{K1}")), ok(2, 0));
    r.stop();
}

#[test]
fn a_hash_that_leaves_the_allow_list_loses_its_swarm_in_one_expiry_pass() {
    let d = TmpDir::new("drop");
    let path = d.write("allow.txt", &list_text(&[H1, H2]));
    let (clock, secs) = Clock::manual();
    let r = serve_with_clock(&allow(&path), clock);
    let mut c = Client::connected(r.udp_addrs()[0]);
    assert_eq!(udp_announce(&mut c, H1, &[]), ok(1, 0));
    assert_eq!(udp_announce(&mut c, H2, &[]), ok(1, 0));
    let swarm = r.tracker().swarm();
    assert_eq!(swarm.totals().torrents, 2);

    write_atomically(&path, list_text(&[H1]).as_bytes(), 0o644).unwrap();
    assert!(r.reload_access());
    wait_until("H2 is refused", || {
        udp_announce(&mut c, H2, &[]) == err("torrent not allowed")
    });
    // Every shard is swept once per sweep period (at most 60 s), a shard when
    // its slot in the period comes; nothing expires by age yet (peer timeout
    // 2700 s). After two whole periods every shard has been swept at least
    // once since the reload.
    let metrics = r.metrics_addrs()[0];
    for t in [60, 120] {
        secs.store(t, std::sync::atomic::Ordering::SeqCst);
        common::control_at(metrics, t);
    }
    let t = swarm.totals();
    assert_eq!(
        (t.torrents, t.peers()),
        (1, 1),
        "only the allowed swarm is left"
    );
    assert_eq!(swarm.scrape(&H2).seeders, 0);
    assert_eq!(swarm.scrape(&H1).seeders, 1);
    r.stop();
}

#[test]
fn a_checked_announce_allocates_nothing() {
    let d = TmpDir::new("alloc");
    let access = AccessConfig {
        list: Some((d.write("allow.txt", &list_text(&[H1])), Mode::Allow)),
        ..private(&d, false)
    };
    let reloader = Reloader::start(&access).unwrap();
    let t = Tracker::new(shoal::tracker::TrackerConfig {
        shards: 4,
        ..Default::default()
    });
    t.set_access(reloader.handle().clone(), 1_700_000_000)
        .unwrap();
    let mut w = Worker::new();
    let src: SocketAddr = "127.0.0.1:6881".parse().unwrap();
    let now = Now::from_secs(0);
    let cid = t.connection_id(now, src.ip());
    let mut datagrams = Vec::new();
    for (ih, data) in [
        (H1, format!("/announce/{K1}")),
        (H2, format!("/announce/{K1}")),
        (H1, format!("/announce/{K_UNKNOWN}")),
        (H1, String::new()),
    ] {
        let mut buf = vec![0u8; 256];
        let req = AnnounceRequest::new(cid, 1, ih, [7; 20], 6881);
        let n = udp::write_announce_request(&mut buf, &req, data.as_bytes()).unwrap();
        buf.truncate(n);
        datagrams.push(buf);
    }
    let mut out = [0u8; 2048];
    // Warm up: the worker takes its policy reader, the swarm its torrent.
    for d in &datagrams {
        assert!(t.handle_udp(&mut w, now, src, d, &mut out).reply > 0);
    }
    // A reload in between: the reader switches without allocating.
    reloader.handle().store((*reloader.handle().load()).clone());
    let before = allocs();
    let mut unknown = 0;
    for _ in 0..100 {
        for d in &datagrams {
            let h = t.handle_udp(&mut w, now, src, d, &mut out);
            assert!(h.reply > 0);
            unknown +=
                usize::from(h.outcome == Refused(Some(Asked::Announce), Refusal::UnknownKey));
        }
    }
    assert_eq!(allocs() - before, 0);
    assert_eq!(unknown, 100);
}

// --- the binary, as an operator runs it ------------------------------------

/// The binary on IPv4 UDP and HTTP (with /metrics there) and `args`.
fn start(args: &[&str]) -> Proc {
    let mut all = vec!["--udp", "127.0.0.1:0", "--http", "127.0.0.1:0"];
    all.extend(["--http-metrics", "--workers", "2"]);
    all.extend_from_slice(args);
    Proc::start(&all)
}

#[test]
fn sighup_reloads_the_list_and_the_keys() {
    let d = TmpDir::new("sighup");
    let list = d.write("allow.txt", &list_text(&[H1]));
    let keys = d.write("keys.txt", &format!("{K_UNKNOWN}\n"));
    let mut p = start(&[
        "--access-list",
        list.to_str().unwrap(),
        "--keys",
        keys.to_str().unwrap(),
    ]);
    let mut c = Client::connected(p.addr(Role::Udp));
    let k1 = format!("/announce/{K1}");
    assert_eq!(udp_announce(&mut c, H1, &[&k1]), err("unknown key"));

    write_atomically(&list, list_text(&[H1, H2]).as_bytes(), 0o644).unwrap();
    write_atomically(&keys, keys_text().as_bytes(), 0o600).unwrap();
    p.signal(libc::SIGHUP);
    p.wait_for("SIGHUP received");
    // The reload that SIGHUP triggers logs both files (the periodic check may
    // have loaded them already; SIGHUP reloads regardless). The reload thread
    // may log before or after the signal's own line.
    let list_line = p.wait_for("reloaded access list");
    assert!(list_line.contains("2 info hashes"), "{list_line}");
    let keys_line = p.wait_for("reloaded key file");
    assert!(keys_line.contains("2 keys"), "{keys_line}");
    assert_eq!(udp_announce(&mut c, H2, &[&k1]), ok(1, 0));
    assert_eq!(
        http_announce(p.addr(Role::Http), H2, &format!("/{K1}")),
        ok(2, 0)
    );
    assert_eq!(p.metric("shoal_access_list_reload_failures_total"), 0);
    // Still serving: SIGHUP does not stop shoal.
    assert_eq!(udp_announce(&mut c, H1, &[&k1]), ok(1, 0));
    let log = p.log().join("\n");
    assert!(!log.contains(K1), "a key in the log: {log}");
}

#[test]
fn a_changed_file_is_picked_up_without_a_signal() {
    let d = TmpDir::new("poll");
    let list = d.write("allow.txt", &list_text(&[H1]));
    let p = start(&["--access-list", list.to_str().unwrap()]);
    let mut c = Client::connected(p.addr(Role::Udp));
    assert_eq!(udp_announce(&mut c, H2, &[]), err("torrent not allowed"));
    write_atomically(&list, list_text(&[H2]).as_bytes(), 0o644).unwrap();
    wait_until("the new list to allow H2", || {
        c.connect();
        udp_announce(&mut c, H2, &[]) == ok(1, 0)
    });
    assert_eq!(udp_announce(&mut c, H1, &[]), err("torrent not allowed"));
}

#[test]
fn a_torn_write_keeps_the_old_list_and_counts_a_failure() {
    let d = TmpDir::new("torn");
    let full = list_text(&[H1, H2]);
    let list = d.write("allow.txt", &full);
    let mut p = start(&["--access-list", list.to_str().unwrap()]);
    // A writer that rewrites in place, caught mid-line by the reader.
    let torn = &full[..full.len() - 10];
    std::fs::write(&list, torn).unwrap();
    wait_until("the failure metric", || {
        p.metric("shoal_access_list_reload_failures_total") >= 1
    });
    let line = p.wait_for("cannot reload");
    let want = format!("{}:4:", list.display());
    assert!(line.contains(&want), "{line}");
    let mut c = Client::connected(p.addr(Role::Udp));
    assert_eq!(
        udp_announce(&mut c, H2, &[]),
        ok(1, 0),
        "the old list stays"
    );
}

#[test]
fn a_million_hashes_load_at_start_up() {
    let d = TmpDir::new("million");
    let mut text = String::with_capacity(41_000_000);
    let mut rng = fastrand::Rng::with_seed(7);
    let mut h = [0u8; 20];
    for _ in 0..999_999 {
        rng.fill(&mut h);
        push_hex(&mut text, &h);
        text.push('\n');
    }
    text.push_str(&hex(&H1));
    text.push('\n');
    let list = d.write("big.txt", &text);
    let p = start(&["--access-list", list.to_str().unwrap()]);
    let mut c = Client::connected(p.addr(Role::Udp));
    assert_eq!(udp_announce(&mut c, H1, &[]), ok(1, 0));
    assert_eq!(udp_announce(&mut c, H2, &[]), err("torrent not allowed"));
}

#[test]
fn a_bad_file_at_start_up_exits_2_naming_file_and_line() {
    let d = TmpDir::new("badstart");
    let list = d.write("allow.txt", &format!("{}\n\nnot-a-hash\n", hex(&H1)));
    let keys = d.write("keys.txt", &format!("{K1}\n{K1} soon\n"));
    for (flag, path, line) in [("--access-list", &list, 3), ("--keys", &keys, 2)] {
        let out = common::shoal_command()
            .args(["--udp", "127.0.0.1:0", flag, path.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(&format!("{}:{line}:", path.display())),
            "{err}"
        );
        assert!(!err.contains(K1), "a key in the error: {err}");
    }
}

#[test]
fn shoal_announce_sends_the_key_and_prints_the_trackers_error() {
    let d = TmpDir::new("tool");
    let keys = d.write("keys.txt", &keys_text());
    let p = start(&["--keys", keys.to_str().unwrap()]);
    let announce = |url: String| {
        common::shoal_command()
            .args(["announce", &url, "--info-hash", &hex(&H1), "--tries", "1"])
            .output()
            .unwrap()
    };
    for base in [
        format!("udp://{}", p.addr(Role::Udp)),
        format!("http://{}", p.addr(Role::Http)),
    ] {
        let out = announce(format!("{base}/announce/{K1}"));
        assert!(out.status.success(), "{base}: {out:?}");
        let out = announce(format!("{base}/{K1}/announce"));
        assert!(out.status.success(), "{base}: {out:?}");
        let out = announce(format!("{base}/announce/{K_UNKNOWN}"));
        assert!(!out.status.success());
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains("unknown key"), "{base}: {err}");
        let out = announce(format!("{base}/announce"));
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains("missing key"), "{base}: {err}");
    }
}
