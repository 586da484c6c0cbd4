//! Byte fixtures of the torrust surface, from torrust-tracker's published
//! responses (`packages/axum-rest-tracker-api-server/src/v1/responses.rs`,
//! `middlewares/auth.rs`, `context/*/resources.rs`) and what torrust-index
//! matches (`src/tracker/service.rs`): the same bytes, or the same shape.

use super::*;
use crate::api::{ApiToken, Facts};
use crate::stats::Registry;
use crate::tracker::{Tracker, TrackerConfig};
use crate::wire::http::parse_head;
use proptest::prelude::*;
use std::sync::Arc;

const TOKEN: &str = "0123456789abcdef";

/// An API over a tracker with no access files, no server around it.
fn api() -> Api {
    Api::new(
        ApiToken::parse(TOKEN).unwrap(),
        Arc::new(Tracker::new(TrackerConfig {
            shards: 4,
            ..TrackerConfig::default()
        })),
        Arc::new(Registry::default()),
        Facts {
            workers: 1,
            http_max_connections: 8,
            http_idle_timeout: std::time::Duration::from_secs(5),
        },
    )
}

/// One whole request through `serve`: status, head, body.
fn call(api: &Api, counters: &Counters, raw: &[u8]) -> (u16, String, Vec<u8>) {
    let (head, used) = parse_head(raw).unwrap().unwrap();
    let mut out = Vec::new();
    let req = Request {
        buf: raw,
        head: &head,
        head_len: used,
        now: Now::from_secs(10),
    };
    let served = serve(api, counters, req, &mut out);
    assert_eq!(
        served,
        Served::Done {
            used: raw.len(),
            keep_alive: head.keep_alive
        }
    );
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(out[..split].to_vec()).unwrap();
    let status = head[9..12].parse().unwrap();
    (status, head, out[split + 4..].to_vec())
}

fn get(api: &Api, target: &str) -> (u16, String, Vec<u8>) {
    let raw = format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n");
    call(api, &Counters::default(), raw.as_bytes())
}

fn text(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap()
}

#[test]
fn a_missing_or_wrong_token_gets_torrusts_bodies() {
    let api = api();
    let counters = Counters::default();
    let cases: [(&str, &str, &str); 7] = [
        ("/api/v1/stats", "", "unauthorized"),
        (
            "/api/v1/stats?token=wrong-token-000000",
            "",
            "token not valid",
        ),
        ("/api/v1/stats?token=", "", "token not valid"),
        (
            "/api/v1/stats",
            "Authorization: Bearer\r\n",
            "token not valid",
        ),
        (
            "/api/v1/stats",
            "Authorization: Basic eDp5\r\n",
            "unknown token provided",
        ),
        // The header wins over the query, as torrust has it.
        (
            "/api/v1/stats?token=0123456789abcdef",
            "Authorization: Bearer nope-nope-nope-no\r\n",
            "token not valid",
        ),
        // Unknown paths are behind the token too.
        ("/nowhere", "", "unauthorized"),
    ];
    for (target, header, reason) in cases {
        let raw = format!("GET {target} HTTP/1.1\r\n{header}\r\n");
        let (status, head, body) = call(&api, &counters, raw.as_bytes());
        assert_eq!(status, 500, "{target} {header}");
        assert!(
            head.contains("\r\nContent-Type: text/plain; charset=utf-8\r\n"),
            "{head}"
        );
        assert_eq!(
            text(&body),
            format!("Unhandled rejection: Err {{ reason: \"{reason}\" }}"),
            "{target} {header}"
        );
    }
    assert_eq!(
        counters.rejects(Reject::ApiUnauthorized),
        cases.len() as u64
    );
    // torrust-index's exact comparison for a wrong token.
    let (_, _, body) = get(&api, "/api/v1/torrents?token=x");
    assert_eq!(
        body,
        b"Unhandled rejection: Err { reason: \"token not valid\" }"
    );
}

#[test]
fn the_token_is_taken_from_the_query_or_a_bearer_header() {
    let api = api();
    for (target, header) in [
        ("/api/v1/stats?token=0123456789abcdef", ""),
        ("/api/v1/stats?format=json&token=0123456789abcdef&x=1", ""),
        // Percent-encoded, as a URL library writes any byte.
        ("/api/v1/stats?token=%30123456789abcde%66", ""),
        (
            "/api/v1/stats",
            "Authorization: Bearer 0123456789abcdef\r\n",
        ),
        (
            "/api/v1/stats",
            "authorization: bearer 0123456789abcdef\r\n",
        ),
    ] {
        let raw = format!("GET {target} HTTP/1.1\r\n{header}\r\n");
        let (status, _, body) = call(&api, &Counters::default(), raw.as_bytes());
        assert_eq!(status, 200, "{target} {header}: {}", text(&body));
    }
}

#[test]
fn health_check_needs_no_token() {
    let (status, head, body) = get(&api(), "/api/health_check");
    assert_eq!(status, 200);
    assert!(head.contains("\r\nContent-Type: application/json\r\n"));
    assert_eq!(body, br#"{"status":"Ok"}"#);
    let raw = b"POST /api/health_check HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
    let (status, head, body) = call(&api(), &Counters::default(), raw);
    assert_eq!(status, 405);
    assert!(head.contains("\r\nAllow: GET, HEAD\r\n") && body.is_empty());
}

#[test]
fn unknown_paths_and_methods_have_no_body() {
    let api = api();
    for target in [
        "/api/v1/nothing?token=0123456789abcdef",
        "/api/v1/torrent/?token=0123456789abcdef",
        "/api/v1/torrent/a/b?token=0123456789abcdef",
        "/api/v1/stats/?token=0123456789abcdef",
        "/api/v2/stats?token=0123456789abcdef",
    ] {
        let (status, head, body) = get(&api, target);
        assert_eq!(status, 404, "{target}");
        assert!(
            body.is_empty() && !head.contains("\r\nContent-Type:"),
            "{head}"
        );
    }
    let (status, head, _) = get(&api, "/api/v1/whitelist/00?token=0123456789abcdef");
    assert_eq!(status, 405);
    assert!(head.contains("\r\nAllow: POST, DELETE\r\n"), "{head}");
    // The static segment wins: POST /whitelist/reload is not a whitelisting.
    let raw = b"POST /api/v1/whitelist/reload?token=0123456789abcdef HTTP/1.1\r\n\r\n";
    assert_eq!(call(&api, &Counters::default(), raw).0, 405);
}

#[test]
fn stats_have_torrusts_fields_in_order_and_null_where_shoal_has_no_counter() {
    let (status, _, body) = get(&api(), "/api/v1/stats?token=0123456789abcdef");
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    let Value::Object(m) = v else {
        panic!("{}", text(&body))
    };
    // In the order sent (a JSON object read back forgets it).
    let names: Vec<&str> = text(&body)
        .split(['{', ','])
        .filter_map(|field| field.split('"').nth(1))
        .collect();
    // torrust-tracker's `Stats` resource, field for field.
    assert_eq!(
        names,
        [
            "torrents",
            "seeders",
            "completed",
            "leechers",
            "tcp4_connections_handled",
            "tcp4_announces_handled",
            "tcp4_scrapes_handled",
            "tcp6_connections_handled",
            "tcp6_announces_handled",
            "tcp6_scrapes_handled",
            "udp_requests_aborted",
            "udp_requests_banned",
            "udp_banned_ips_total",
            "udp_avg_connect_processing_time_ns",
            "udp_avg_announce_processing_time_ns",
            "udp_avg_scrape_processing_time_ns",
            "udp4_requests",
            "udp4_connections_handled",
            "udp4_announces_handled",
            "udp4_scrapes_handled",
            "udp4_responses",
            "udp4_errors_handled",
            "udp6_requests",
            "udp6_connections_handled",
            "udp6_announces_handled",
            "udp6_scrapes_handled",
            "udp6_responses",
            "udp6_errors_handled",
        ]
    );
    assert!(
        m["udp_requests_banned"].is_null() && m["udp_avg_connect_processing_time_ns"].is_null()
    );
    assert_eq!(m["torrents"], 0);
    let (_, _, prom) = get(
        &api(),
        "/api/v1/stats?token=0123456789abcdef&format=prometheus",
    );
    let prom = text(&prom);
    assert!(
        prom.starts_with("torrents 0\nseeders 0\ncompleted 0\nleechers 0\n"),
        "{prom}"
    );
    assert!(
        !prom.contains("udp_requests_banned"),
        "no invented number: {prom}"
    );
    for bad in ["format=xml", "format=json&format=json"] {
        let (status, _, body) = get(&api(), &format!("/api/v1/stats?token={TOKEN}&{bad}"));
        assert_eq!(status, 400, "{bad}: {}", text(&body));
    }
}

#[test]
fn torrents_and_a_torrent_of_an_empty_swarm() {
    let api = api();
    let t = "token=0123456789abcdef";
    let (status, head, body) = get(&api, &format!("/api/v1/torrent/{}?{t}", "ab".repeat(20)));
    assert_eq!(status, 200);
    assert!(head.contains("\r\nContent-Type: application/json\r\n"));
    // torrust-index's exact comparison for an unknown torrent.
    assert_eq!(body, b"\"torrent not known\"");
    let (status, _, body) = get(&api, &format!("/api/v1/torrent/xyz?{t}"));
    assert_eq!(status, 400);
    assert_eq!(
        text(&body),
        "Invalid URL: invalid infohash param: string \"xyz\", expected a 40 character long string"
    );
    assert_eq!(get(&api, &format!("/api/v1/torrents?{t}")).2, b"[]");
    let q = format!(
        "/api/v1/torrents?{t}&info_hash={}&info_hash={}",
        "00".repeat(20),
        "AB".repeat(20)
    );
    assert_eq!(get(&api, &q).2, b"[]");
    let (status, _, _) = get(&api, &format!("/api/v1/torrents?{t}&info_hash=00"));
    assert_eq!(status, 400);
    let ih = "ab".repeat(20);
    for bad in [
        "offset=-1",
        "limit=x",
        "limit=4294967296",
        "offset=1&offset=",
        &format!("info_hash={ih}&limit=-1"),
    ] {
        let (status, _, _) = get(&api, &format!("/api/v1/torrents?{t}&{bad}"));
        assert_eq!(status, 400, "{bad}");
    }
    let (status, _, _) = get(&api, &format!("/api/v1/torrents?{t}&offset=&limit="));
    assert_eq!(status, 200, "empty is absent");
}

#[test]
fn changes_without_files_fail_as_torrust_fails() {
    let api = api();
    let t = "token=0123456789abcdef";
    let req = |method: &str, target: String, body: &str| {
        let raw = format!(
            "{method} {target}?{t} HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let (status, _, body) = call(&api, &Counters::default(), raw.as_bytes());
        (status, String::from_utf8(body).unwrap())
    };
    let ih = "ab".repeat(20);
    assert_eq!(
        req("POST", format!("/api/v1/whitelist/{ih}"), ""),
        (
            500,
            "Unhandled rejection: Err { reason: \"failed to whitelist torrent: no file to write to: start shoal with --access-list FILE\" }".into()
        )
    );
    assert_eq!(req("DELETE", format!("/api/v1/whitelist/{ih}"), "").0, 500);
    assert_eq!(req("GET", "/api/v1/whitelist/reload".into(), "").0, 500);
    let (status, body) = req("POST", "/api/v1/key/60".into(), "");
    assert_eq!(status, 500);
    assert!(
        body.contains("failed to generate key: no file to write to: start shoal with --keys FILE"),
        "{body}"
    );
    assert_eq!(req("POST", "/api/v1/keys".into(), "{}").0, 500);
    assert_eq!(req("GET", "/api/v1/keys/reload".into(), "").0, 500);
    // Parameters are checked before the files are looked for.
    assert_eq!(
        req("POST", "/api/v1/key/-1".into(), ""),
        (400, "Invalid URL: Cannot parse \"-1\" to a `u64`".into())
    );
    assert_eq!(
        req("POST", format!("/api/v1/key/{}", MAX_SECONDS_VALID + 1), ""),
        (
            400,
            format!(
                "Invalid URL: invalid auth key duration: \"{}\"",
                MAX_SECONDS_VALID + 1
            )
        )
    );
    assert_eq!(
        req("DELETE", "/api/v1/key/short".into(), ""),
        (400, "Invalid auth key id param \"short\"".into())
    );
    assert_eq!(req("POST", "/api/v1/keys".into(), "{").0, 400);
    assert_eq!(req("POST", "/api/v1/keys".into(), "[]").0, 422);
    assert_eq!(
        req("POST", "/api/v1/keys".into(), r#"{"seconds_valid": -5}"#).0,
        422
    );
    assert_eq!(req("POST", "/api/v1/keys".into(), r#"{"key": 5}"#).0, 422);
    assert_eq!(
        req("POST", "/api/v1/keys".into(), r#"{"key": "bad"}"#).0,
        400
    );
    let raw = format!("POST /api/v1/keys?{t} HTTP/1.1\r\nContent-Length: 2\r\n\r\n{{}}");
    let (status, _, body) = call(&api, &Counters::default(), raw.as_bytes());
    assert_eq!(status, 415, "{}", text(&body));
}

#[test]
fn a_body_over_the_cap_is_refused_unread() {
    let raw = format!(
        "POST /api/v1/keys?token={TOKEN} HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        MAX_BODY + 1
    );
    let (head, used) = parse_head(raw.as_bytes()).unwrap().unwrap();
    let mut out = Vec::new();
    let req = Request {
        buf: raw.as_bytes(),
        head: &head,
        head_len: used,
        now: Now::from_secs(1),
    };
    let counters = Counters::default();
    let served = serve(&api(), &counters, req, &mut out);
    assert_eq!(
        served,
        Served::Done {
            used,
            keep_alive: false
        }
    );
    assert!(out.starts_with(b"HTTP/1.1 413 "));
    assert_eq!(counters.rejects(Reject::HttpMalformed), 1);
}

#[test]
fn head_gets_the_head_alone() {
    let raw = format!("HEAD /api/v1/stats?token={TOKEN} HTTP/1.1\r\n\r\n");
    let (status, head, body) = call(&api(), &Counters::default(), raw.as_bytes());
    assert_eq!(status, 200);
    assert!(body.is_empty());
    assert!(
        !head.contains("Content-Length: 0\r\n"),
        "the GET's length: {head}"
    );
}

#[test]
fn decoding_query_values_and_path_segments() {
    assert_eq!(form_decode(b"a+b%2B%41%zz%4"), b"a b+A%zz%4");
    assert_eq!(path_param(b"a+b%2B%41"), b"a+b+A");
    assert_eq!(form_decode(b""), b"");
    assert_eq!(form_decode(b"%ff"), [0xff]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    /// Whatever the method, path, query, token and body: one complete reply,
    /// and a 5xx only in torrust's rejection form (no files to change here).
    #[test]
    fn no_request_panics_and_every_failure_is_torrusts(
        method in prop::sample::select(vec!["GET", "PUT", "POST", "DELETE", "PATCH", "HEAD"]),
        first in prop::sample::select(vec!["", "stats", "torrents", "torrent/", "whitelist/", "key/", "keys", "keys/", "x"]),
        rest in "[ -~&&[^ ?#]]{0,48}",
        query in "[a-z_=&%0-9A-F+-]{0,40}",
        token in any::<bool>(),
        json in any::<bool>(),
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let api = api();
        let t = if token { "&token=0123456789abcdef" } else { "" };
        let ct = if json { "Content-Type: application/json\r\n" } else { "" };
        let mut req = format!(
            "{method} /api/v1/{first}{rest}?{query}{t} HTTP/1.1\r\n{ct}Content-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(&body);
        let Ok(Some((head, used))) = parse_head(&req) else {
            return Ok(());
        };
        let counters = Counters::default();
        let mut out = Vec::new();
        let r = Request { buf: &req, head: &head, head_len: used, now: Now::from_secs(1) };
        let served = serve(&api, &counters, r, &mut out);
        prop_assert_eq!(served, Served::Done { used: req.len(), keep_alive: true });
        let text = String::from_utf8_lossy(&out);
        prop_assert!(text.starts_with("HTTP/1.1 "), "{}", text);
        if text.starts_with("HTTP/1.1 5") && method != "HEAD" {
            prop_assert!(text.contains("\r\n\r\nUnhandled rejection: Err { reason: \""), "{}", text);
        }
    }
}
