//! The torrust REST API (`--torrust-api`) over real sockets, as its clients
//! use it.
//!
//! The contract comes from torrust's published sources: torrust-tracker's v1
//! API (`packages/axum-rest-tracker-api-server/src/v1/`: `middlewares/auth.rs`
//! for the token and its failure bodies, `responses.rs` for `{"status":"ok"}`
//! and the 500 form, `context/{auth_key,torrent,stats,whitelist}` for routes
//! and resources), its client (`packages/rest-tracker-api-client/src/v1/
//! client.rs`: the token as `?token=`, `POST key/{seconds}`, `POST keys` with
//! `{"key", "seconds_valid"}`), and torrust-index's tracker client
//! (`src/tracker/api.rs`: the five calls and their query strings;
//! `src/tracker/service.rs`: the statuses and bodies it tells apart, and the
//! shapes it parses, mirrored here as `TorrentInfo`, `TorrentBasicInfo` and
//! `TrackerKey`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{hex, metric, pct, Proc, Resp, Role, TmpDir};
use serde::Deserialize;
use shoal::access::{AccessConfig, Mode};
use shoal::api::ApiToken;
use shoal::server::{Config, Running, Server};
use shoal::time::unix_now;
use shoal::wire::udp::{self, AnnounceRequest, Event, Response};
use std::net::SocketAddr;

const TOKEN: &str = "torrust-token-0123456789";

// What torrust-index reads from the tracker (src/tracker/service.rs and
// src/models/tracker_key.rs): a reply that does not parse into these fails
// the index.
#[derive(Debug, Deserialize)]
struct TorrentInfo {
    info_hash: String,
    seeders: i64,
    completed: i64,
    leechers: i64,
    peers: Vec<Peer>,
}

#[derive(Debug, Deserialize)]
struct TorrentBasicInfo {
    info_hash: String,
    seeders: i64,
    completed: i64,
    leechers: i64,
}

#[derive(Debug, Deserialize)]
struct Peer {
    peer_id: Option<PeerId>,
    peer_addr: Option<String>,
    updated: Option<i64>,
    uploaded: Option<i64>,
    downloaded: Option<i64>,
    left: Option<i64>,
    event: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PeerId {
    id: Option<String>,
    client: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TrackerKey {
    key: String,
    valid_until: i64,
}

/// The body torrust-index takes for a wrong token (service.rs).
const INVALID_TOKEN_BODY: &str = "Unhandled rejection: Err { reason: \"token not valid\" }";
/// The body torrust-index takes for an unknown torrent (service.rs).
const NOT_KNOWN_BODY: &str = "\"torrent not known\"";

/// A UDP and an HTTP tracker, the torrust API and a metrics listener, with
/// an allow list and a key file under `dir`.
fn serve(dir: &TmpDir) -> (Running, AccessConfig) {
    let access = AccessConfig {
        list: Some((dir.write("allow.txt", ""), Mode::Allow)),
        keys: Some(dir.write("keys.txt", "")),
        private_scrape: false,
    };
    let mut c = Config::for_udp("127.0.0.1:0".parse().unwrap());
    c.workers = 2;
    c.tracker.shards = 4;
    c.listen.http = vec!["127.0.0.1:0".parse().unwrap()];
    c.listen.torrust = vec!["127.0.0.1:0".parse().unwrap()];
    c.listen.metrics = vec!["127.0.0.1:0".parse().unwrap()];
    c.api.token = Some(ApiToken::parse(TOKEN).unwrap());
    c.access = access.clone();
    (Server::bind(c).unwrap().spawn().unwrap(), access)
}

/// A request as torrust-index's reqwest client sends it: the token as the
/// `token` query parameter, no body.
fn index_call(api: SocketAddr, method: &str, path: &str, query: &str) -> Resp {
    let target = format!("/api/v1/{path}?token={TOKEN}{query}");
    common::request(api, method, &target, "", b"")
}

fn text(r: &Resp) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// An HTTP announce of a seeder (`left=0`) or leecher on `port` at `path`.
fn http_announce(http: SocketAddr, path: &str, ih: [u8; 20], port: u16, left: u64) -> String {
    let q = format!(
        "?info_hash={}&peer_id=-XX0000-{port:012}&port={port}&left={left}&compact=1",
        pct(&ih)
    );
    text(&common::get(http, &format!("{path}{q}")))
}

/// A UDP announce whose BEP 41 URL data is `path`: the reply's (seeders,
/// leechers), or the tracker's error text.
fn udp_announce(
    udp: SocketAddr,
    path: &str,
    ih: [u8; 20],
    left: u64,
) -> Result<(u32, u32), String> {
    let mut c = common::Client::connected(udp);
    let req = AnnounceRequest {
        left,
        event: Event::Started,
        ..AnnounceRequest::new(c.connection_id, c.next_tx(), ih, [9; 20], c.port())
    };
    let mut buf = [0u8; 512];
    let n = udp::write_announce_request(&mut buf, &req, path.as_bytes()).unwrap();
    match udp::parse_response(&c.roundtrip(&buf[..n])) {
        Ok(Response::Announce {
            seeders, leechers, ..
        }) => Ok((seeders, leechers)),
        Ok(Response::Error { message, .. }) => Err(String::from_utf8_lossy(message).into_owned()),
        other => panic!("{other:?}"),
    }
}

/// torrust-index's calls, in the order an index makes them, against shoal:
/// whitelist a torrent on upload, make a key for a user, the user's client
/// announces with it (HTTP and UDP), the importer reads the torrent and then
/// a batch, the torrent is deleted (un-whitelisted) and refused at once.
#[test]
fn torrust_index_calls_in_order() {
    let dir = TmpDir::new("torrust-index-replay");
    let (r, access) = serve(&dir);
    let api = r.torrust_addrs()[0];
    let http = r.http_addrs()[0];
    let udp = r.udp_addrs()[0];
    let ih = [0x5e; 20];
    let other = [0x6f; 20];

    // 1. Upload: POST whitelist/{info_hash}, 200 wanted.
    let w = index_call(api, "POST", &format!("whitelist/{}", hex(&ih)), "");
    assert_eq!((w.status, text(&w)), (200, r#"{"status":"ok"}"#.into()));
    let list = std::fs::read_to_string(&access.list.as_ref().unwrap().0).unwrap();
    assert_eq!(list, format!("{}\n", hex(&ih)), "written to the allow list");

    // 2. Download: POST key/{token_valid_seconds} (the index's default, 12 weeks).
    let before = unix_now();
    let k = index_call(api, "POST", "key/7257600", "");
    assert_eq!(k.status, 200, "{}", text(&k));
    let key: TrackerKey = serde_json::from_slice(&k.body).unwrap();
    assert_eq!(key.key.len(), 32);
    assert!(key.key.bytes().all(|b| b.is_ascii_alphanumeric()));
    let until = u64::try_from(key.valid_until).unwrap();
    assert!((before + 7_257_600..=unix_now() + 7_257_600).contains(&until));
    assert!(k.json()["expiry_time"].as_str().unwrap().ends_with(" UTC"));
    let keys = std::fs::read_to_string(access.keys.as_ref().unwrap()).unwrap();
    assert_eq!(
        keys,
        format!("{} {until}\n", key.key),
        "written to the key file"
    );

    // 3. The user's client announces with the personal URL the index
    // publishes (`…/announce/KEY`): a seeder over HTTP, a leecher over UDP
    // (BEP 41), and the passkey-first form works as well.
    let personal = format!("/announce/{}", key.key);
    let seeded = http_announce(http, &personal, ih, 7001, 0);
    assert!(seeded.starts_with("d8:completei1e"), "{seeded}");
    assert_eq!(udp_announce(udp, &personal, ih, 100), Ok((1, 1)));
    let first = format!("/{}/announce", key.key);
    let again = http_announce(http, &first, ih, 7001, 0);
    assert!(
        again.starts_with("d8:completei1e10:incompletei1e"),
        "{again}"
    );
    assert!(http_announce(http, "/announce", ih, 7002, 0).contains("missing key"));

    // 4. The importer: GET torrent/{info_hash}.
    let t = index_call(api, "GET", &format!("torrent/{}", hex(&ih)), "");
    assert_eq!(t.status, 200, "{}", text(&t));
    let info: TorrentInfo = serde_json::from_slice(&t.body).unwrap();
    assert_eq!(info.info_hash, hex(&ih));
    assert_eq!((info.seeders, info.leechers, info.completed), (1, 1, 0));
    assert_eq!(info.peers.len(), 2);
    let addrs: Vec<String> = info
        .peers
        .iter()
        .map(|p| p.peer_addr.clone().unwrap())
        .collect();
    assert!(addrs.contains(&"127.0.0.1:7001".to_string()), "{addrs:?}");
    for p in &info.peers {
        let now_ms = i64::try_from(unix_now() * 1000).unwrap();
        let updated = p.updated.unwrap();
        assert!(
            (now_ms - 60_000..=now_ms + 1000).contains(&updated),
            "{p:?}"
        );
        // What shoal does not keep is null, not made up.
        assert!(p.uploaded.is_none() && p.downloaded.is_none() && p.left.is_none());
        assert!(p.event.is_none());
        let id = p.peer_id.as_ref().unwrap();
        assert!(id.id.is_none() && id.client.is_none());
    }
    // An unknown torrent: torrust's 200 with the JSON string the index matches.
    let unknown = index_call(api, "GET", &format!("torrent/{}", hex(&other)), "");
    assert_eq!(
        (unknown.status, text(&unknown)),
        (200, NOT_KNOWN_BODY.into())
    );

    // 5. The importer's batch: GET torrents?info_hash=…&info_hash=… (50 at most).
    let mut query = String::new();
    for h in [ih, other] {
        query.push_str(&format!("&info_hash={}", hex(&h)));
    }
    for n in 0..48u8 {
        query.push_str(&format!("&info_hash={}", hex(&[n; 20])));
    }
    let b = index_call(api, "GET", "torrents", &query);
    assert_eq!(b.status, 200, "{}", text(&b));
    let batch: Vec<TorrentBasicInfo> = serde_json::from_slice(&b.body).unwrap();
    assert_eq!(batch.len(), 1, "only the torrents shoal holds");
    assert_eq!(batch[0].info_hash, hex(&ih));
    assert_eq!(
        (batch[0].seeders, batch[0].leechers, batch[0].completed),
        (1, 1, 0)
    );

    // 6. Delete: DELETE whitelist/{info_hash}; refused at once, both ways.
    let d = index_call(api, "DELETE", &format!("whitelist/{}", hex(&ih)), "");
    assert_eq!((d.status, text(&d)), (200, r#"{"status":"ok"}"#.into()));
    assert!(
        http_announce(http, &personal, ih, 7003, 0).contains("torrent not allowed"),
        "HTTP"
    );
    assert_eq!(
        udp_announce(udp, &personal, ih, 0),
        Err("torrent not allowed".into())
    );
    assert_eq!(
        std::fs::read_to_string(&access.list.as_ref().unwrap().0).unwrap(),
        ""
    );

    // A wrong token: the body the index recognises; a missing one: torrust's.
    let target = format!("/api/v1/whitelist/{}?token=wrong-token-0000000", hex(&ih));
    let bad = common::request(api, "POST", &target, "", b"");
    assert_eq!((bad.status, text(&bad)), (500, INVALID_TOKEN_BODY.into()));
    let none = common::request(
        api,
        "POST",
        &format!("/api/v1/whitelist/{}", hex(&ih)),
        "",
        b"",
    );
    assert_eq!(
        (none.status, text(&none)),
        (
            500,
            "Unhandled rejection: Err { reason: \"unauthorized\" }".into()
        )
    );
    let metrics = r.addrs(Role::Metrics)[0];
    assert_eq!(
        metric(metrics, "shoal_rejected_total{reason=\"api_unauthorized\"}"),
        2
    );
    r.stop();
}

#[test]
fn keys_added_given_removed_and_reloaded() {
    let dir = TmpDir::new("torrust-keys");
    let (r, access) = serve(&dir);
    let api = r.torrust_addrs()[0];
    let http = r.http_addrs()[0];
    let keys_path = access.keys.clone().unwrap();
    let ih = [0x4d; 20];
    assert_eq!(
        index_call(api, "POST", &format!("whitelist/{}", hex(&ih)), "").status,
        200
    );
    let json = "Content-Type: application/json\r\n";
    let post_keys = |body: &str| {
        common::request(
            api,
            "POST",
            &format!("/api/v1/keys?token={TOKEN}"),
            json,
            body.as_bytes(),
        )
    };

    // A given key with an expiry: torrust's AuthKey back, in force at once.
    let given = "xqD6NWH9TcKrOCwDmqcdH5hF5RrbL0A6";
    let a = post_keys(&format!(r#"{{"key": "{given}", "seconds_valid": 7200}}"#));
    assert_eq!(a.status, 200, "{}", text(&a));
    assert!(a
        .head
        .contains("Content-Type: application/json; charset=utf-8"));
    let v = a.json();
    assert_eq!(v["key"], given);
    let until = v["valid_until"].as_u64().unwrap();
    assert!(until >= unix_now() + 7199 && until <= unix_now() + 7200);
    assert!(
        http_announce(http, &format!("/{given}/announce"), ih, 7100, 0).starts_with("d8:complete")
    );
    // The same key again: torrust refuses a duplicate.
    let dup = post_keys(&format!(r#"{{"key": "{given}", "seconds_valid": null}}"#));
    assert_eq!(dup.status, 500);
    assert!(text(&dup).contains("already listed"), "{}", text(&dup));

    // No key and no expiry: a new key for ever (both times null).
    let p = post_keys(r#"{"key": null, "seconds_valid": null}"#).json();
    let permanent = p["key"].as_str().unwrap().to_string();
    assert!(p["valid_until"].is_null() && p["expiry_time"].is_null());
    assert_eq!(post_keys("{}").status, 200, "both fields may be left out");
    let file = std::fs::read_to_string(&keys_path).unwrap();
    assert_eq!(file.lines().count(), 3, "{file}");
    assert!(
        file.lines().any(|l| l == permanent),
        "no expiry written: {file}"
    );

    // DELETE key/{key}: gone at once; a second time torrust's 500.
    let del = index_call(api, "DELETE", &format!("key/{given}"), "");
    assert_eq!((del.status, text(&del)), (200, r#"{"status":"ok"}"#.into()));
    assert!(
        http_announce(http, &format!("/{given}/announce"), ih, 7101, 0).contains("unknown key")
    );
    let del = index_call(api, "DELETE", &format!("key/{given}"), "");
    assert_eq!(
        (del.status, text(&del)),
        (
            500,
            "Unhandled rejection: Err { reason: \"failed to delete key: no such key\" }".into()
        )
    );

    // A hand edit, then GET keys/reload: in force when the reply comes.
    let hand = "HANDhandHANDhandHANDhandHANDhand";
    std::fs::write(&keys_path, format!("{hand}\n")).unwrap();
    let rl = index_call(api, "GET", "keys/reload", "");
    assert_eq!((rl.status, text(&rl)), (200, r#"{"status":"ok"}"#.into()));
    assert!(
        http_announce(http, &format!("/{hand}/announce"), ih, 7102, 0).starts_with("d8:complete")
    );
    assert!(
        http_announce(http, &format!("/{permanent}/announce"), ih, 7103, 0).contains("unknown key")
    );
    // A file that does not parse: 500 naming file and line, the keys stay.
    std::fs::write(&keys_path, format!("{hand}\nnot-a-key\n")).unwrap();
    let rl = index_call(api, "GET", "keys/reload", "");
    assert_eq!(rl.status, 500);
    assert!(text(&rl).contains("keys.txt:2"), "{}", text(&rl));
    assert!(!text(&rl).contains("not-a-key"), "never the line's text");
    assert!(
        http_announce(http, &format!("/{hand}/announce"), ih, 7104, 0).starts_with("d8:complete")
    );

    // The whitelist reloads the same way.
    let list_path = access.list.clone().unwrap().0;
    std::fs::write(&list_path, "").unwrap();
    assert_eq!(index_call(api, "GET", "whitelist/reload", "").status, 200);
    assert!(
        http_announce(http, &format!("/{hand}/announce"), ih, 7105, 0)
            .contains("torrent not allowed")
    );
    r.stop();
}

#[test]
fn stats_torrent_pages_and_health() {
    let dir = TmpDir::new("torrust-stats");
    let (r, _) = serve(&dir);
    let api = r.torrust_addrs()[0];
    let http = r.http_addrs()[0];
    let udp = r.udp_addrs()[0];
    let k = index_call(api, "POST", "key/3600", "").json();
    let key = k["key"].as_str().unwrap().to_string();
    let hashes = [[0x0a; 20], [0x01; 20], [0x0c; 20]];
    for h in hashes {
        assert_eq!(
            index_call(api, "POST", &format!("whitelist/{}", hex(&h)), "").status,
            200
        );
    }
    let path = format!("/{key}/announce");
    http_announce(http, &path, hashes[0], 7200, 0);
    http_announce(http, &path, hashes[0], 7201, 10);
    let completed = format!(
        "{path}?info_hash={}&peer_id=-XX0000-000000007201&port=7201&left=0&event=completed",
        pct(&hashes[0])
    );
    common::get(http, &completed);
    udp_announce(udp, &path, hashes[1], 5).unwrap();
    udp_announce(udp, &path, hashes[2], 0).unwrap();
    assert!(
        udp_announce(udp, "/announce", hashes[2], 0).is_err(),
        "refused: an error reply"
    );

    let s = index_call(api, "GET", "stats", "").json();
    assert_eq!(s["torrents"], 3);
    assert_eq!(
        (s["seeders"].as_u64(), s["leechers"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(s["completed"], 1);
    assert_eq!(s["tcp4_announces_handled"], 3);
    assert_eq!(s["tcp4_connections_handled"], 3);
    assert_eq!(s["tcp4_scrapes_handled"], 0);
    assert_eq!(s["udp4_connections_handled"], 3);
    assert_eq!(s["udp4_announces_handled"], 2);
    assert_eq!(s["udp4_errors_handled"], 1);
    assert_eq!(s["udp4_requests"], 6);
    assert_eq!(s["udp4_responses"], 6);
    assert_eq!(s["udp6_requests"], 0);
    assert!(s["udp_requests_banned"].is_null());
    let prom = index_call(api, "GET", "stats", "&format=prometheus");
    assert!(
        text(&prom).contains("\nudp4_announces_handled 2\n"),
        "{}",
        text(&prom)
    );

    // Pages in info-hash order, as torrust lists them.
    let page = |q: &str| -> Vec<String> {
        let v = index_call(api, "GET", "torrents", q).json();
        v.as_array()
            .unwrap()
            .iter()
            .map(|t| t["info_hash"].as_str().unwrap().to_string())
            .collect()
    };
    let sorted: Vec<String> = [[0x01; 20], [0x0a; 20], [0x0c; 20]]
        .iter()
        .map(|h| hex(h))
        .collect();
    assert_eq!(page(""), sorted);
    assert_eq!(page("&offset=1&limit=1"), sorted[1..2]);
    assert_eq!(page("&offset=3"), Vec::<String>::new());
    let t = index_call(api, "GET", "torrents", "&limit=1").json();
    assert_eq!(t[0]["seeders"], 0);
    assert_eq!(t[0]["leechers"], 1);

    // The health check answers without a token.
    let h = common::get(api, "/api/health_check");
    assert_eq!((h.status, text(&h)), (200, r#"{"status":"Ok"}"#.into()));
    r.stop();
}

/// The flag and its environment twin, the start-up line, the token kept out
/// of the log, the warning without an allow list, and the one-line refusal
/// without a token.
#[test]
fn binary_serves_it_from_the_flag_or_the_environment() {
    let dir = TmpDir::new("torrust-bin");
    let list = dir.write("allow.txt", "");
    let keys = dir.write("keys.txt", "");
    let (l, k) = (list.to_str().unwrap(), keys.to_str().unwrap());
    let base = ["--udp", "127.0.0.1:0", "--workers", "1", "--keys", k];
    let mut by_flag = base.to_vec();
    by_flag.extend(["--access-list", l, "--torrust-api", "127.0.0.1:0"]);
    let p = Proc::start_with_env(&by_flag, &[("SHOAL_API_TOKEN", TOKEN)]);
    let api = p.addr(Role::Torrust);
    let made = index_call(api, "POST", "key/60", "").json();
    let key = made["key"].as_str().unwrap().to_string();
    let log = p.stop(libc::SIGTERM);
    assert!(!log.contains(TOKEN), "the token was logged");
    assert!(!log.contains(&key), "a key was logged");
    assert!(
        !log.contains("--torrust-api without an allow list"),
        "{log}"
    );

    let p = Proc::start_with_env(
        &base,
        &[
            ("SHOAL_API_TOKEN", TOKEN),
            ("SHOAL_TORRUST_API", "127.0.0.1:0"),
        ],
    );
    let api = p.addr(Role::Torrust);
    assert_eq!(index_call(api, "GET", "stats", "").status, 200);
    assert!(
        p.log()
            .iter()
            .any(|l| l.contains("--torrust-api without an allow list")),
        "{:#?}",
        p.log()
    );
    // The whitelist call then fails, and says what to do.
    let w = index_call(api, "POST", &format!("whitelist/{}", "ab".repeat(20)), "");
    assert_eq!(w.status, 500);
    assert!(
        text(&w).contains("start shoal with --access-list FILE"),
        "{}",
        text(&w)
    );
    drop(p);

    let out = common::shoal_command()
        .args(["--udp", "127.0.0.1:0", "--torrust-api", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--torrust-api needs a token"), "{err}");
}
