//! The management API (`--api`) over real sockets: every endpoint, the token
//! (missing, wrong, counted in /metrics), 409 without the access files, the
//! `limit` cap, bodies over the cap, changes written back that survive a
//! restart and a later hand edit that still reloads, the status page, and
//! the binary's start-up error without a token.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{hex, metric, start_with_manual_clock, wait_until, Client, Proc, Resp, Role, TmpDir};
use serde_json::Value;
use shoal::access::{AccessConfig, Mode};
use shoal::api::ApiToken;
use shoal::server::Config;
use shoal::server::{Running, Server};
use shoal::time::Clock;
use shoal::wire::udp::Event;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

const TOKEN: &str = "test-token-0123456789";
fn config() -> Config {
    let mut c = {
        let mut c = Config::for_udp("127.0.0.1:0".parse().unwrap());
        c.workers = 2;
        c
    };
    c.listen.api = vec!["127.0.0.1:0".parse().unwrap()];
    c.listen.metrics = vec!["127.0.0.1:0".parse().unwrap()];
    c.api.token = Some(ApiToken::parse(TOKEN).unwrap());
    c
}

/// One request on its own connection; `token` None sends no Authorization.
fn request(addr: SocketAddr, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> Resp {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    common::request(addr, method, path, &auth, body)
}

/// `method path` with the token and no body.
fn call(addr: SocketAddr, method: &str, path: &str) -> Resp {
    request(addr, method, path, Some(TOKEN), b"")
}

fn get(addr: SocketAddr, path: &str) -> Resp {
    call(addr, "GET", path)
}

/// The `error` text of a JSON error reply.
fn error(r: &Resp) -> String {
    r.json()["error"].as_str().unwrap().to_string()
}

/// An in-process server whose API manages the files of `access`.
fn start_managed(config: Config, access: &AccessConfig) -> Running {
    let config = Config {
        access: access.clone(),
        ..config
    };
    Server::bind(config).unwrap().spawn().unwrap()
}

#[test]
fn stats_torrents_and_history_reflect_the_swarm() {
    let (running, clock) = start_with_manual_clock(config());
    let api = running.api_addrs()[0];
    let udp = running.udp_addrs()[0];
    let h1 = [0x11; 20];
    let h2 = [0x22; 20];
    let mut seeder = Client::new("127.0.0.1:0", udp);
    seeder.connect();
    seeder.announce(h1, Event::Started, 0, 10);
    let mut leecher = Client::new("127.0.0.1:0", udp);
    leecher.connect();
    leecher.announce(h1, Event::Started, 100, 10);
    leecher.announce(h2, Event::Started, 100, 10);

    let s = get(api, "/api/v1/stats");
    assert_eq!(s.status, 200);
    assert!(
        s.head.contains("Content-Type: application/json"),
        "{}",
        s.head
    );
    let s = s.json();
    assert_eq!(s["torrents"], 2);
    assert_eq!(s["peers"]["total"], 3);
    assert_eq!(s["peers"]["ipv4"]["seeders"], 1);
    assert_eq!(s["peers"]["ipv4"]["leechers"], 2);
    assert_eq!(s["totals"]["requests"]["udp"]["announce"], 3);
    assert_eq!(s["totals"]["requests"]["udp"]["connect"], 2);
    assert_eq!(s["totals"]["replies"]["udp"]["announce"], 3);
    assert_eq!(s["workers"], 2);
    assert_eq!(s["limits"]["max_numwant"], 200);
    // Calm workers hand out --interval; the range is the configuration's.
    assert_eq!(s["interval"]["workers"], serde_json::json!([1800, 1800]));
    assert_eq!(s["interval"]["secs"], 1800);
    assert_eq!(s["interval"]["max_secs"], 7200);
    assert_eq!(s["interval"]["jitter_percent"], 10);
    assert!(s["rates"]["last_10s"]["seconds"].as_f64().unwrap() > 0.0);
    assert!(s["access"]["list"].is_null() && s["access"]["keys"].is_null());
    if cfg!(target_os = "linux") {
        assert!(s["resident_memory_bytes"].as_u64().unwrap() > 1 << 20);
    }

    let t = get(api, "/api/v1/torrents").json();
    assert_eq!(t["total"], 2);
    assert_eq!(t["torrents"][0]["info_hash"], hex(&h1));
    assert_eq!(t["torrents"][0]["seeders"], 1);
    assert_eq!(t["torrents"][0]["leechers"], 1);
    assert_eq!(t["torrents"][1]["info_hash"], hex(&h2));
    let page = get(api, "/api/v1/torrents?limit=1&offset=1").json();
    assert_eq!(page["torrents"].as_array().unwrap().len(), 1);
    assert_eq!(page["torrents"][0]["info_hash"], hex(&h2));

    clock.store(7, Ordering::Relaxed);
    let d = get(api, &format!("/api/v1/torrents/{}", hex(&h1))).json();
    assert_eq!(
        (d["seeders"].as_u64(), d["leechers"].as_u64()),
        (Some(1), Some(1))
    );
    let peers = d["peer_list"].as_array().unwrap();
    assert_eq!(peers.len(), 2);
    assert_eq!(peers[0]["ip"], "127.0.0.1");
    assert_eq!(peers[0]["port"], seeder.port());
    assert_eq!(peers[0]["seeder"], true);
    assert_eq!(peers[0]["protocol"], "udp");
    assert_eq!(peers[0]["last_announce_secs_ago"], 7);
    assert_eq!(
        get(api, &format!("/api/v1/torrents/{}", hex(&[0x33; 20]))).status,
        404
    );
    assert_eq!(get(api, "/api/v1/torrents/xyz").status, 400);

    // History: a sample every 10 s of the server's clock.
    for secs in [10, 20, 30] {
        clock.store(secs, Ordering::Relaxed);
        wait_until("a history sample", || {
            let h = get(api, "/api/v1/stats/history").json();
            h["samples"].as_array().unwrap().len() == (secs / 10) as usize
        });
    }
    let h = get(api, "/api/v1/stats/history").json();
    assert_eq!(h["resolution_secs"], 10);
    let first = &h["samples"][0];
    assert_eq!(first["uptime_secs"], 10);
    assert_eq!(first["torrents"], 2);
    assert_eq!(first["peers"], 3);
    // 5 requests (2 connects, 3 announces) in the first 10 s.
    assert_eq!(first["requests_total"], 0.5);
    assert_eq!(first["requests"]["announce"], 0.3);
    assert_eq!(h["samples"][2]["requests_total"], 0.0);
    running.stop();
}

#[test]
fn the_token_is_required_and_refusals_are_counted() {
    let running = common::start(config());
    let api = running.api_addrs()[0];
    let metrics = running.metrics_addrs()[0];
    let rejected = "shoal_rejected_total{reason=\"api_unauthorized\"}";
    assert_eq!(metric(metrics, rejected), 0);
    for token in [
        None,
        Some("wrong-token-0123456789"),
        Some("test-token-012345678"),
    ] {
        let r = request(api, "GET", "/api/v1/stats", token, b"");
        assert_eq!(r.status, 401);
        assert!(r.head.contains("WWW-Authenticate: Bearer"));
        assert!(error(&r).contains("token"));
    }
    // Another scheme, and unknown API paths, are refused before routing.
    let basic = format!("Authorization: Basic {TOKEN}\r\n");
    let r = common::request(api, "GET", "/api/v1/nothing", &basic, b"");
    assert_eq!(r.status, 401);
    assert_eq!(metric(metrics, rejected), 4);
    // The right token, any case of the scheme.
    let lower = format!("authorization: bearer {TOKEN}\r\n");
    assert_eq!(
        common::request(api, "GET", "/api/v1/stats", &lower, b"").status,
        200
    );
    assert_eq!(get(api, "/api/v1/nothing").status, 404);
    assert_eq!(get(api, "/nothing").status, 404);
    let r = call(api, "POST", "/api/v1/stats");
    assert_eq!(r.status, 405);
    assert!(r.head.contains("Allow: GET"));
    running.stop();
}

#[test]
fn without_files_changes_are_409_naming_the_flag() {
    let running = common::start(config());
    let api = running.api_addrs()[0];
    let h = hex(&[0x44; 20]);
    for (method, path, flag) in [
        ("GET", "/api/v1/access-list".to_string(), "--access-list"),
        ("PUT", format!("/api/v1/access-list/{h}"), "--access-list"),
        (
            "DELETE",
            format!("/api/v1/access-list/{h}"),
            "--access-list",
        ),
        ("GET", "/api/v1/keys".to_string(), "--keys"),
        ("POST", "/api/v1/keys".to_string(), "--keys"),
        (
            "DELETE",
            format!("/api/v1/keys/{}", "a".repeat(32)),
            "--keys",
        ),
    ] {
        let r = request(api, method, &path, Some(TOKEN), b"");
        assert_eq!(r.status, 409, "{method} {path}");
        assert!(error(&r).contains(flag), "{method} {path}: {}", error(&r));
    }
    running.stop();
}

#[test]
fn limit_is_capped_and_bodies_are_bounded() {
    let running = common::start(config());
    let api = running.api_addrs()[0];
    let swarm = running.tracker().swarm();
    for i in 0..1100u32 {
        let mut ih = [0u8; 20];
        ih[..4].copy_from_slice(&i.to_be_bytes());
        let req = shoal::swarm::Announce {
            info_hash: ih,
            addr: (std::net::Ipv4Addr::new(10, 0, 0, 1), 6881),
            role: shoal::swarm::Role::Seeder,
            completed: false,
            now: 0,
            want: 0,
            random: (0, 0),
            peer_id: None,
            emit_ids: false,
        };
        swarm.announce::<shoal::swarm::Peer4>(&req, |_, _| {});
    }
    let t = get(api, "/api/v1/torrents?limit=5000").json();
    assert_eq!(t["limit"], 1000);
    assert_eq!(t["total"], 1100);
    assert_eq!(t["torrents"].as_array().unwrap().len(), 1000);
    assert_eq!(get(api, "/api/v1/torrents?limit=-3").status, 400);
    assert_eq!(
        get(api, "/api/v1/torrents?offset=1090").json()["torrents"]
            .as_array()
            .unwrap()
            .len(),
        10
    );

    // A body over the cap: 413, whatever the endpoint, and the connection closes.
    let big = vec![b' '; 4096];
    let r = request(api, "POST", "/api/v1/keys", Some(TOKEN), &big);
    assert_eq!(r.status, 413);
    assert!(error(&r).contains("too large"));
    assert!(r.head.contains("Connection: close"));
    // A head over MAX_HEAD (a query parameter repeated, as schemathesis sends):
    // 431 in plain text, as docs/openapi.yaml says, and the API carries on.
    let param = "offset=%7B%7D&";
    let long = format!(
        "/api/v1/access-list?{}",
        param.repeat(shoal::wire::http::MAX_HEAD / param.len() + 1)
    );
    let r = get(api, &long);
    assert_eq!(r.status, 431);
    assert!(r.head.contains("Content-Type: text/plain"), "{}", r.head);
    assert_eq!(get(api, "/api/v1/torrents?limit=1").status, 200);
    // A body that arrives in pieces is waited for.
    let mut s = common::connect(api);
    // Head and body in separate segments, most of the time.
    s.set_nodelay(true).unwrap();
    let body = br#"{"valid_for": 60}"#;
    s.write_all(
        format!(
            "POST /api/v1/keys HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    s.flush().unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    assert_eq!(
        Resp::parse(&raw).status,
        409,
        "a complete request (no --keys here)"
    );
    running.stop();
}

#[test]
fn access_list_and_keys_are_written_back_and_survive_a_restart() {
    let dir = TmpDir::new("inproc");
    let list = dir.write("allow.txt", "");
    let keys = dir.write("keys.txt", "");
    let access = AccessConfig {
        list: Some((list.clone(), Mode::Allow)),
        keys: Some(keys.clone()),
        private_scrape: false,
    };
    let running = start_managed(config(), &access);
    let api = running.api_addrs()[0];
    let h = [0x5a; 20];
    let r = call(api, "PUT", &format!("/api/v1/access-list/{}", hex(&h)));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["entries"], 1);
    assert_eq!(
        std::fs::read_to_string(&list).unwrap(),
        format!("{}\n", hex(&h))
    );
    let l = get(api, "/api/v1/access-list").json();
    assert_eq!(l["mode"], "allow");
    assert_eq!(l["info_hashes"][0], hex(&h));
    assert_eq!(call(api, "PUT", "/api/v1/access-list/nothex").status, 400);
    // Pages of the list are sorted by hash.
    for b in [0x90u8, 0x10, 0x70, 0x30] {
        let r = call(
            api,
            "PUT",
            &format!("/api/v1/access-list/{}", hex(&[b; 20])),
        );
        assert_eq!(r.status, 200);
    }
    let page = get(api, "/api/v1/access-list?limit=2&offset=1").json();
    assert_eq!(page["entries"], 5);
    assert_eq!(
        page["info_hashes"],
        serde_json::json!([hex(&[0x30; 20]), hex(&h)])
    );
    for b in [0x90u8, 0x10, 0x70, 0x30] {
        let r = call(
            api,
            "DELETE",
            &format!("/api/v1/access-list/{}", hex(&[b; 20])),
        );
        assert_eq!(r.status, 200);
    }
    let other = hex(&[0x6b; 20]);
    assert_eq!(
        call(api, "DELETE", &format!("/api/v1/access-list/{other}")).status,
        404
    );

    // Keys: one that expires, one that does not; bad bodies refused.
    let k = request(
        api,
        "POST",
        "/api/v1/keys",
        Some(TOKEN),
        br#"{"valid_for": 3600}"#,
    );
    assert_eq!(k.status, 201);
    let k = k.json();
    let key = k["key"].as_str().unwrap().to_string();
    assert_eq!(key.len(), 32);
    assert!(k["expires"].as_u64().unwrap() > 1_700_000_000);
    let forever = call(api, "POST", "/api/v1/keys").json();
    assert!(forever["expires"].is_null());
    for bad in [
        &b"{"[..],
        br#"{"valid_for": -1}"#,
        br#"{"valid_for": 0}"#,
        br#"{"other": 1}"#,
        b"[]",
    ] {
        let r = request(api, "POST", "/api/v1/keys", Some(TOKEN), bad);
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(bad));
    }
    let listed = get(api, "/api/v1/keys").json();
    assert_eq!(listed["entries"], 2);
    assert!(std::fs::read_to_string(&keys).unwrap().contains(&key));
    let gone = forever["key"].as_str().unwrap();
    assert_eq!(
        call(api, "DELETE", &format!("/api/v1/keys/{gone}")).status,
        200
    );
    assert_eq!(
        call(api, "DELETE", &format!("/api/v1/keys/{gone}")).status,
        404
    );
    assert_eq!(call(api, "DELETE", "/api/v1/keys/short").status, 400);
    running.stop();

    // A restart loads what the API wrote.
    let running = start_managed(config(), &access);
    let api = running.api_addrs()[0];
    let l = get(api, "/api/v1/access-list").json();
    assert_eq!(l["entries"], 1);
    assert_eq!(l["info_hashes"][0], hex(&h));
    let listed = get(api, "/api/v1/keys").json();
    assert_eq!(listed["entries"], 1);
    assert_eq!(listed["keys"][0]["key"], key.as_str());
    let s = get(api, "/api/v1/stats").json();
    assert_eq!(s["access"]["list"]["entries"], 1);
    assert_eq!(s["access"]["keys"]["entries"], 1);
    running.stop();
}

// --- the binary --------------------------------------------------------------

/// The binary with UDP, the API and its token, and `args`; the token is never
/// in its start-up log.
fn start_binary(args: &[&str]) -> Proc {
    let mut all = vec![
        "--udp",
        "127.0.0.1:0",
        "--api",
        "127.0.0.1:0",
        "--workers",
        "1",
    ];
    all.extend_from_slice(args);
    let p = Proc::start_with_env(&all, &[("SHOAL_API_TOKEN", TOKEN)]);
    assert!(
        !p.log().iter().any(|l| l.contains(TOKEN)),
        "the token was logged"
    );
    p
}

#[test]
fn binary_writes_back_and_a_later_hand_edit_reloads() {
    let dir = TmpDir::new("bin");
    let list = dir.write("deny.txt", "# denied torrents\n");
    let list_s = list.to_str().unwrap();
    let h1 = [0x71; 20];
    let h2 = [0x72; 20];
    {
        let p = start_binary(&["--access-list", list_s, "--access-mode", "deny"]);
        let api = p.addr(Role::Api);
        let r = call(api, "PUT", &format!("/api/v1/access-list/{}", hex(&h1)));
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(get(api, "/api/v1/access-list").json()["mode"], "deny");
    }
    // Restarted: the change is there.
    let mut p = start_binary(&["--access-list", list_s, "--access-mode", "deny"]);
    let api = p.addr(Role::Api);
    let l = get(api, "/api/v1/access-list").json();
    assert_eq!(l["info_hashes"], serde_json::json!([hex(&h1)]));
    // An operator edits the file by hand afterwards: it reloads as usual.
    let text = std::fs::read_to_string(&list).unwrap();
    std::fs::write(&list, format!("{text}{}  # added by hand\n", hex(&h2))).unwrap();
    p.wait_for("reloaded access list");
    let l = get(api, "/api/v1/access-list").json();
    assert_eq!(l["entries"], 2);
    // And the API goes on from the edited file.
    let r = call(api, "DELETE", &format!("/api/v1/access-list/{}", hex(&h1)));
    assert_eq!(r.json()["entries"], 1);
    assert_eq!(
        std::fs::read_to_string(&list).unwrap(),
        format!("{}\n", hex(&h2))
    );
}

#[test]
fn binary_refuses_api_without_a_token_in_one_line() {
    let out = common::shoal_command()
        .args(["--udp", "127.0.0.1:0", "--api", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--api needs a token"), "{err}");
    let out = common::shoal_command()
        .args([
            "--udp",
            "127.0.0.1:0",
            "--api",
            "127.0.0.1:0",
            "--api-token",
            "short",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("at least 16"));
}

#[test]
fn the_status_page_is_served_self_contained() {
    let secs = Arc::new(AtomicU32::new(0));
    let server = Server::bind_with_clock(config(), Clock::Manual(secs)).unwrap();
    let running = server.spawn().unwrap();
    let api = running.api_addrs()[0];
    let r = request(api, "GET", "/", None, b"");
    assert_eq!(r.status, 200);
    assert!(r.head.contains("Content-Type: text/html"));
    assert!(r
        .head
        .contains("Content-Security-Policy: default-src 'none'"));
    let page = String::from_utf8(r.body).unwrap();
    assert!(page.contains("\"/api/v1/\"") && page.contains("stats/history"));
    assert!(page.contains("sessionStorage"));
    for outside in ["src=\"http", "href=\"http", "@import", "url(http", "//cdn"] {
        assert!(!page.contains(outside), "the page loads {outside}…");
    }
    running.stop();
}

#[test]
fn shoal_api_subcommands_talk_to_a_running_server() {
    let dir = TmpDir::new("cli");
    let access = AccessConfig {
        list: Some((dir.write("allow.txt", ""), Mode::Allow)),
        keys: Some(dir.write("keys.txt", "")),
        private_scrape: false,
    };
    let running = start_managed(config(), &access);
    let url = format!("http://{}", running.api_addrs()[0]);
    let run = |args: &[&str]| {
        let out = common::shoal_command()
            .arg("api")
            .args(args)
            .env("SHOAL_API_URL", &url)
            .env("SHOAL_API_TOKEN", TOKEN)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let h = hex(&[0x3c; 20]);
    let (code, out, _) = run(&["allow", &h]);
    assert_eq!(code, Some(0));
    assert_eq!(out, format!("listed {h}; the list has 1 entries\n"));
    let (code, out, _) = run(&["add-key", "--valid-for", "600"]);
    assert_eq!(code, Some(0));
    let key = out[..32].to_string();
    assert!(out.contains("expires at"), "{out}");
    let (_, out, _) = run(&["keys", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["keys"][0]["key"], key.as_str());
    let (code, out, _) = run(&["remove-key", &key]);
    assert_eq!((code, out.as_str()), (Some(0), "removed; 0 keys left\n"));
    let (_, out, _) = run(&["stats"]);
    assert!(out.contains("access     1 (allow)"), "{out}");
    let (code, out, _) = run(&["torrents"]);
    assert_eq!(code, Some(0));
    assert!(out.ends_with("0 of 0 torrents (from 0)\n"), "{out}");
    // Errors: one line on stderr, or JSON on stdout with --json; exit 1.
    let (code, _, err) = run(&["torrent", &h]);
    assert_eq!(code, Some(1));
    assert_eq!(err.lines().count(), 1);
    assert!(err.starts_with("shoal: HTTP 404"), "{err}");
    let (code, out, _) = run(&["disallow", &hex(&[0x3d; 20]), "--json"]);
    assert_eq!(code, Some(1));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(v["error"].as_str().unwrap().contains("404"));
    let out = common::shoal_command()
        .args(["api", "stats"])
        .env("SHOAL_API_URL", &url)
        .env("SHOAL_API_TOKEN", "not-the-token-at-all")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stderr).unwrap().contains("HTTP 401"));
    running.stop();
}
