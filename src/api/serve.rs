//! One API request: body framing, the token check, routing, JSON replies.
//!
//! Called by the control thread's HTTP connection code for listeners of the
//! API role with a parsed head and the bytes buffered after it. Routes (all
//! JSON, errors as `{"error": "..."}`):
//!
//! | method | path | |
//! |---|---|---|
//! | GET | `/` | the status page (no token: it asks for one) |
//! | GET | `/api/v1/stats` | totals, rates over 10 s and 60 s, rejects, the announce interval, limits |
//! | GET | `/api/v1/stats/history` | the last hour at 10 s |
//! | GET | `/api/v1/torrents?limit=N&offset=M` | top torrents by peers |
//! | GET | `/api/v1/torrents/{hex}` | one torrent and its peers |
//! | GET | `/api/v1/access-list` | the list (paged like torrents) |
//! | PUT, DELETE | `/api/v1/access-list/{hex}` | list or unlist a hash |
//! | GET, POST | `/api/v1/keys` | the keys; a new random key |
//! | DELETE | `/api/v1/keys/{key}` | remove a key |
//!
//! Statuses: 400 bad parameter or body, 401 token, 404 unknown path or
//! entry, 405 method, 409 no file to write back to (names the flag), 413
//! body too large, 500 the file could not be written.

use super::history::{Rates, Sample};
use super::manage::{Changed, ManageError};
use super::{Api, MAX_BODY, MAX_LIMIT};
use crate::access::{list::parse_hex20, Key, Mode};
use crate::stats::{Counters, Kind, Proto, Reject};
use crate::swarm::InfoHash;
use crate::time::{unix_now, Epoch, Now};
use crate::wire::http::{query_pairs, Head, MAX_HEAD};
use serde_json::{json, Map, Value};

/// The status page, compiled in: no file to install, nothing fetched.
const PAGE: &str = include_str!("page.html");

/// What became of the bytes buffered for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// The body is not all here yet: read more and call again.
    Incomplete,
    /// Answered (appended to `out`); `used` bytes were this request.
    Done { used: usize, keep_alive: bool },
}

/// A reply before it is written.
struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    /// `Allow` for a 405.
    allow: Option<&'static str>,
}

impl Reply {
    fn json(status: u16, v: &Value) -> Reply {
        let mut body = serde_json::to_vec(v).unwrap_or_default();
        body.push(b'\n');
        Reply {
            status,
            content_type: "application/json",
            body,
            allow: None,
        }
    }

    fn error(status: u16, msg: &str) -> Reply {
        Reply::json(status, &json!({ "error": msg }))
    }

    fn method(allow: &'static str) -> Reply {
        Reply {
            allow: Some(allow),
            ..Reply::error(405, "method not allowed")
        }
    }
}

/// One request as the connection layer buffered it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The head (`head_len` bytes), then whatever followed it.
    pub buf: &'a [u8],
    pub head: &'a Head<'a>,
    pub head_len: usize,
    /// The loop turn's clock.
    pub now: Now,
}

/// Answer the request whose head (`head_len` bytes) starts `buf`, once its
/// body is complete.
pub fn serve(api: &Api, counters: &Counters, req: Request<'_>, out: &mut Vec<u8>) -> Served {
    let Request {
        buf,
        head,
        head_len,
        now,
    } = req;
    let body = match body(buf, head, head_len) {
        Body::Complete(b) => b,
        Body::Incomplete => return Served::Incomplete,
        Body::TooLarge => {
            counters.reject(Reject::HttpMalformed);
            let msg = format!("request body too large (at most {MAX_BODY} bytes)");
            write(out, &Reply::error(413, &msg), false);
            return Served::Done {
                used: head_len,
                keep_alive: false,
            };
        }
    };
    let reply = route(api, counters, method(buf), head, body, now);
    let keep_alive = head.keep_alive;
    write(out, &reply, keep_alive);
    Served::Done {
        used: head_len + body.len(),
        keep_alive,
    }
}

/// The body of a request as far as it is buffered.
pub(super) enum Body<'a> {
    /// All `Content-Length` bytes.
    Complete(&'a [u8]),
    /// Not all here yet: read more.
    Incomplete,
    /// Over [`MAX_BODY`], or head and body over [`MAX_HEAD`]: refuse (413)
    /// without reading it.
    TooLarge,
}

/// The body of the request whose head (`head_len` bytes) starts `buf`.
pub(super) fn body<'a>(buf: &'a [u8], head: &Head<'_>, head_len: usize) -> Body<'a> {
    let len = usize::try_from(head.content_length).unwrap_or(usize::MAX);
    if len > MAX_BODY || head_len.saturating_add(len) > MAX_HEAD {
        return Body::TooLarge;
    }
    buf.get(head_len..head_len + len)
        .map_or(Body::Incomplete, Body::Complete)
}

/// The request method as sent (the head parser keeps GET and HEAD only).
pub(super) fn method(buf: &[u8]) -> &[u8] {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let rest = buf.get(start..).unwrap_or_default();
    let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
    rest.get(..end).unwrap_or_default()
}

fn route(
    api: &Api,
    counters: &Counters,
    method: &[u8],
    head: &Head<'_>,
    body: &[u8],
    now: Now,
) -> Reply {
    let path = head.path;
    if path == b"/" || path == b"/index.html" {
        return match method {
            b"GET" => Reply {
                status: 200,
                content_type: "text/html; charset=utf-8",
                body: PAGE.as_bytes().to_vec(),
                allow: None,
            },
            _ => Reply::method("GET"),
        };
    }
    let Some(rest) = path.strip_prefix(b"/api/v1/") else {
        return Reply::error(404, "no such endpoint");
    };
    if !authorized(api, head) {
        counters.reject(Reject::ApiUnauthorized);
        return Reply::error(
            401,
            "missing or wrong API token (Authorization: Bearer TOKEN)",
        );
    }
    let mut parts = rest.splitn(2, |&b| b == b'/');
    let first = parts.next().unwrap_or_default();
    let second = parts.next();
    match (first, second) {
        (b"stats", None) => get(method, || stats(api, now)),
        (b"stats", Some(b"history")) => get(method, || history(api, now)),
        (b"torrents", None) => get(method, || torrents(api, head.query)),
        (b"torrents", Some(hex)) => get(method, || torrent(api, hex, now)),
        (b"access-list", None) => get(method, || access_list(api, head.query)),
        (b"access-list", Some(hex)) => match method {
            b"PUT" => set_listed(api, hex, true),
            b"DELETE" => set_listed(api, hex, false),
            _ => Reply::method("PUT, DELETE"),
        },
        (b"keys", None) => match method {
            b"GET" => keys(api),
            b"POST" => add_key(api, body),
            _ => Reply::method("GET, POST"),
        },
        (b"keys", Some(key)) => match method {
            b"DELETE" => remove_key(api, key),
            _ => Reply::method("DELETE"),
        },
        _ => Reply::error(404, "no such endpoint"),
    }
}

fn get(method: &[u8], f: impl FnOnce() -> Reply) -> Reply {
    if method == b"GET" {
        f()
    } else {
        Reply::method("GET")
    }
}

fn authorized(api: &Api, head: &Head<'_>) -> bool {
    let Some(value) = head.header("authorization") else {
        return false;
    };
    let Some((scheme, token)) = value.split_at_checked(7) else {
        return false;
    };
    scheme.eq_ignore_ascii_case(b"bearer ") && api.token().matches(token.trim_ascii())
}

/// `limit` (default 100, at most [`MAX_LIMIT`]) and `offset` (default 0).
fn page(query: &[u8]) -> Result<(usize, usize), Reply> {
    let mut limit = 100;
    let mut offset = 0;
    for (k, v) in query_pairs(query) {
        let n = || {
            std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| Reply::error(400, "limit and offset must be non-negative integers"))
        };
        match k {
            b"limit" => limit = usize::try_from(n()?).unwrap_or(usize::MAX),
            b"offset" => offset = usize::try_from(n()?).unwrap_or(usize::MAX),
            _ => {}
        }
    }
    // Offsets past a million torrents are not a page anyone reads; bounding
    // them bounds the ranking's memory.
    Ok((limit.min(MAX_LIMIT), offset.min(1_000_000)))
}

/// Lower-case hex, as info hashes are shown.
pub(super) fn hex(h: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(h.len() * 2);
    for b in h {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

fn info_hash(raw: &[u8]) -> Result<InfoHash, Reply> {
    parse_hex20(raw).ok_or_else(|| Reply::error(400, "not an info hash (40 hex digits)"))
}

/// Resident memory from /proc (Linux); `None` elsewhere.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `{proto: {kind: x}}` for one grid of per-protocol, per-kind values.
fn grid<T: Copy + Into<Value>>(g: &[[T; Kind::COUNT]; Proto::COUNT]) -> Value {
    let mut outer = Map::new();
    for p in Proto::ALL {
        let mut inner = Map::new();
        for k in Kind::ALL {
            inner.insert(k.label().into(), g[p as usize][k as usize].into());
        }
        outer.insert(p.label().into(), Value::Object(inner));
    }
    Value::Object(outer)
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn rates_json(r: &Rates) -> Value {
    let rounded = |g: &[[f64; Kind::COUNT]; Proto::COUNT]| {
        let g: [[f64; Kind::COUNT]; Proto::COUNT] =
            std::array::from_fn(|p| std::array::from_fn(|k| round(g[p][k])));
        grid(&g)
    };
    json!({
        "seconds": round(r.seconds),
        "requests": rounded(&r.requests),
        "replies": rounded(&r.responses),
        "requests_total": round(r.requests_total()),
        "replies_total": round(r.responses_total()),
        "rejects_total": round(r.rejects),
    })
}

fn stats(api: &Api, now: Now) -> Reply {
    let now_ms = now.ms();
    let totals = api.tracker.swarm().totals();
    let now = Sample::read(&api.registry, totals, now_ms);
    let (r10, r60) = {
        let h = api.history();
        let r = |w| h.base(now_ms, w).map(|b| Rates::between(b, &now));
        (r(10_000), r(60_000))
    };
    let mut rejects = Map::new();
    for r in Reject::ALL {
        rejects.insert(r.label().into(), now.rejects[r as usize].into());
    }
    let t = api.tracker.config();
    let iv = api.tracker.intervals();
    let workers: Vec<u64> = api.registry.workers.iter().map(|c| c.interval()).collect();
    let facts = &api.facts;
    let (list, keys) = match api.files() {
        Some(f) => (
            f.list()
                .ok()
                .map(|(mode, l)| json!({ "mode": mode_name(mode), "entries": l.len() })),
            f.keys().ok().map(|k| json!({ "entries": k.len() })),
        ),
        None => (None, None),
    };
    let v = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": now_ms / 1000,
        "workers": facts.workers,
        "resident_memory_bytes": resident_bytes(),
        "torrents": totals.torrents,
        "peers": {
            "total": totals.peers(),
            "seeders": totals.seeders4 + totals.seeders6,
            "leechers": totals.leechers4 + totals.leechers6,
            "ipv4": { "seeders": totals.seeders4, "leechers": totals.leechers4 },
            "ipv6": { "seeders": totals.seeders6, "leechers": totals.leechers6 },
        },
        "totals": {
            "requests": grid(&now.requests),
            "replies": grid(&now.responses),
            "requests_total": now.requests_total(),
            "replies_total": now.responses_total(),
            "rejects_total": now.rejects_total(),
            "drops_total": now.drops,
        },
        "rates": {
            "last_10s": r10.as_ref().map(rates_json),
            "last_60s": r60.as_ref().map(rates_json),
        },
        "rejects": rejects,
        "interval": {
            "secs": workers.iter().max(),
            "workers": workers,
            "base_secs": iv.base(),
            "max_secs": iv.max(),
            "jitter_percent": iv.jitter(),
        },
        "limits": {
            "interval_secs": t.interval,
            "max_interval_secs": iv.max(),
            "interval_jitter_percent": iv.jitter(),
            "peer_timeout_secs": t.peer_timeout,
            "max_numwant": t.max_numwant,
            "max_scrape": t.max_scrape,
            "max_peers": t.max_peers,
            "http_max_connections": facts.http_max_connections,
            "http_idle_timeout_secs": facts.http_idle_timeout.as_secs(),
            "shards": t.shards,
        },
        "access": { "list": list, "keys": keys },
    });
    Reply::json(200, &v)
}

fn history(api: &Api, now: Now) -> Reply {
    let epoch = Epoch::anchored(unix_now(), now);
    let h = api.history();
    let samples: Vec<Value> = h
        .intervals()
        .map(|(s, r)| {
            let mut kinds = Map::new();
            for k in Kind::ALL {
                kinds.insert(k.label().into(), round(r.requests_of(k)).into());
            }
            let mut protos = Map::new();
            for p in Proto::ALL {
                protos.insert(p.label().into(), round(r.requests_over(p)).into());
            }
            json!({
                "uptime_secs": s.t_ms / 1000,
                "unix": epoch.unix(Now::from_ms(s.t_ms)),
                "seconds": round(r.seconds),
                "requests": kinds,
                "requests_by_protocol": protos,
                "requests_total": round(r.requests_total()),
                "replies_total": round(r.responses_total()),
                "rejects_total": round(r.rejects),
                "torrents": s.totals.torrents,
                "peers": s.totals.peers(),
            })
        })
        .collect();
    Reply::json(
        200,
        &json!({
            "resolution_secs": super::history::SAMPLE_MS / 1000,
            "capacity": super::history::CAPACITY - 1,
            "samples": samples,
        }),
    )
}

fn counts_json(ih: &InfoHash, c: &crate::swarm::Counts) -> Value {
    json!({
        "info_hash": hex(ih),
        "seeders": c.seeders,
        "leechers": c.leechers,
        "completed": c.completed,
        "peers": u64::from(c.seeders) + u64::from(c.leechers),
    })
}

fn torrents(api: &Api, query: &[u8]) -> Reply {
    let (limit, offset) = match page(query) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let ranking = api.tracker.swarm().top_torrents(limit, offset);
    let list: Vec<Value> = ranking
        .torrents
        .iter()
        .map(|t| counts_json(&t.info_hash, &t.counts))
        .collect();
    Reply::json(
        200,
        &json!({ "total": ranking.total, "limit": limit, "offset": offset, "torrents": list }),
    )
}

fn torrent(api: &Api, raw: &[u8], now: Now) -> Reply {
    let ih = match info_hash(raw) {
        Ok(h) => h,
        Err(r) => return r,
    };
    let Some(d) = api.tracker.swarm().torrent_detail(&ih, now.secs()) else {
        return Reply::error(404, "no such torrent (no peer announced it lately)");
    };
    let peers: Vec<Value> = d
        .peers
        .iter()
        .map(|p| {
            json!({
                "ip": p.ip.to_string(),
                "port": p.port,
                "seeder": p.seeder,
                "last_announce_secs_ago": p.idle_secs,
                "protocol": if p.http { "http" } else { "udp" },
            })
        })
        .collect();
    let mut v = counts_json(&ih, &d.counts);
    if let Value::Object(m) = &mut v {
        m.insert("peer_list".into(), Value::Array(peers));
    }
    Reply::json(200, &v)
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Allow => "allow",
        Mode::Deny => "deny",
    }
}

fn manage_error(e: ManageError) -> Reply {
    match e {
        ManageError::NoFile(flag) => Reply::error(
            409,
            &format!(
                "no file to manage: start shoal with {flag} FILE to change it through the API"
            ),
        ),
        ManageError::Write(msg) => {
            log::error!("api: {msg}");
            Reply::error(500, &msg)
        }
    }
}

fn files<'a>(api: &'a Api, flag: &'static str) -> Result<&'a super::manage::Files, Reply> {
    api.files()
        .ok_or_else(|| manage_error(ManageError::NoFile(flag)))
}

fn access_list(api: &Api, query: &[u8]) -> Reply {
    let (limit, offset) = match page(query) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let (mode, list) =
        match files(api, "--access-list").and_then(|f| f.list().map_err(manage_error)) {
            Ok(x) => x,
            Err(r) => return r,
        };
    let mut hashes: Vec<&InfoHash> = list.iter().collect();
    // Only the page needs sorting: select its end first (linear), so a
    // million-entry list costs one pass, not a full sort, on the worker.
    let end = offset.saturating_add(limit);
    if end < hashes.len() {
        hashes.select_nth_unstable(end);
        hashes.truncate(end);
    }
    hashes.sort_unstable();
    let page: Vec<String> = hashes
        .iter()
        .skip(offset)
        .take(limit)
        .map(|h| hex(*h))
        .collect();
    Reply::json(
        200,
        &json!({
            "mode": mode_name(mode),
            "entries": list.len(),
            "limit": limit,
            "offset": offset,
            "info_hashes": page,
        }),
    )
}

fn set_listed(api: &Api, raw: &[u8], listed: bool) -> Reply {
    let ih = match info_hash(raw) {
        Ok(h) => h,
        Err(r) => return r,
    };
    match files(api, "--access-list").and_then(|f| f.set_listed(ih, listed).map_err(manage_error)) {
        Ok(Changed { changed, entries }) if changed || listed => Reply::json(
            200,
            &json!({ "info_hash": hex(&ih), "listed": listed, "changed": changed, "entries": entries }),
        ),
        Ok(_) => Reply::error(404, "that info hash is not listed"),
        Err(r) => r,
    }
}

fn keys(api: &Api) -> Reply {
    let set = match files(api, "--keys").and_then(|f| f.keys().map_err(manage_error)) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let now = unix_now();
    let mut list: Vec<(&Key, Option<u64>)> = set.iter().collect();
    list.sort_unstable();
    let keys: Vec<Value> = list
        .iter()
        .map(|(k, e)| {
            json!({
                "key": String::from_utf8_lossy(&k.0),
                "expires": e,
                "expired": e.is_some_and(|e| now >= e),
            })
        })
        .collect();
    Reply::json(200, &json!({ "entries": set.len(), "keys": keys }))
}

/// Longest `valid_for`: ten years.
const MAX_VALID_FOR: u64 = 10 * 365 * 86_400;

fn add_key(api: &Api, body: &[u8]) -> Reply {
    let files = match files(api, "--keys") {
        Ok(f) => f,
        Err(r) => return r,
    };
    // JSON's whitespace only: a form feed is no empty body (RFC 8259 §2).
    let valid_for = if body
        .iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        None
    } else {
        let bad = || {
            Reply::error(
                400,
                &format!("the body must be {{}} or {{\"valid_for\": SECONDS}} with 1..={MAX_VALID_FOR} seconds"),
            )
        };
        let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(body) else {
            return bad();
        };
        if m.keys().any(|k| k != "valid_for") {
            return bad();
        }
        match m.get("valid_for") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(s) if (1..=MAX_VALID_FOR).contains(&s) => Some(s),
                _ => return bad(),
            },
        }
    };
    let expiry = valid_for.map(|s| unix_now() + s);
    match files.add_key(expiry) {
        Ok((key, c)) => Reply::json(
            201,
            &json!({ "key": String::from_utf8_lossy(&key.0), "expires": expiry, "entries": c.entries }),
        ),
        Err(e) => manage_error(e),
    }
}

fn remove_key(api: &Api, raw: &[u8]) -> Reply {
    let Some(key) = Key::parse(raw) else {
        return Reply::error(400, "not a key (32 characters [A-Za-z0-9])");
    };
    match files(api, "--keys").and_then(|f| f.remove_key(&key).map_err(manage_error)) {
        Ok(Changed {
            changed: true,
            entries,
        }) => Reply::json(200, &json!({ "removed": true, "entries": entries })),
        Ok(_) => Reply::error(404, "no such key"),
        Err(r) => r,
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Content Too Large",
        _ => "Internal Server Error",
    }
}

fn write(out: &mut Vec<u8>, r: &Reply, keep_alive: bool) {
    use std::io::Write as _;
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len()
    );
    if r.content_type.starts_with("text/html") {
        // The page is self-contained: forbid anything from elsewhere.
        out.extend_from_slice(
            b"Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'\r\n",
        );
    }
    if r.status == 401 {
        out.extend_from_slice(b"WWW-Authenticate: Bearer\r\n");
    }
    if let Some(allow) = r.allow {
        let _ = write!(out, "Allow: {allow}\r\n");
    }
    out.extend_from_slice(if keep_alive {
        b"Connection: keep-alive\r\n\r\n"
    } else {
        b"Connection: close\r\n\r\n"
    });
    out.extend_from_slice(&r.body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_is_the_first_token() {
        assert_eq!(method(b"PUT /x HTTP/1.1\r\n"), b"PUT");
        assert_eq!(method(b"\r\nDELETE /x HTTP/1.1\r\n"), b"DELETE");
        assert_eq!(method(b""), b"");
    }

    #[test]
    fn pages_are_capped_and_checked() {
        assert_eq!(page(b"").ok(), Some((100, 0)));
        assert_eq!(page(b"limit=5000&offset=7").ok(), Some((MAX_LIMIT, 7)));
        assert_eq!(page(b"limit=0").ok(), Some((0, 0)));
        assert!(page(b"limit=-1").is_err());
        assert!(page(b"offset=x").is_err());
    }

    use super::super::{ApiToken, Facts};
    use crate::stats::Registry;
    use crate::tracker::{Tracker, TrackerConfig};
    use crate::wire::http::parse_head;
    use proptest::prelude::*;
    use std::sync::Arc;

    /// The API of a tracker with no access files, no server around it.
    fn api() -> Api {
        Api::new(
            ApiToken::parse("0123456789abcdef").unwrap(),
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// Whatever the method, path, query and body, with or without the
        /// token: one complete reply, never a 5xx (no files to fail on here).
        #[test]
        fn no_request_panics_or_fails_the_server(
            method in prop::sample::select(vec!["GET", "PUT", "POST", "DELETE", "PATCH", "HEAD"]),
            first in prop::sample::select(vec!["", "stats", "torrents", "access-list", "keys", "x"]),
            rest in "[ -~&&[^ ?#]]{0,48}",
            query in "[a-z=&0-9-]{0,24}",
            token in any::<bool>(),
            body in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let api = api();
            let auth = if token { "Authorization: Bearer 0123456789abcdef\r\n" } else { "" };
            let mut req = format!(
                "{method} /api/v1/{first}{rest}?{query} HTTP/1.1\r\n{auth}Content-Length: {}\r\n\r\n",
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
            prop_assert!(!text.starts_with("HTTP/1.1 5"), "{}", text);
            if !token {
                prop_assert!(text.starts_with("HTTP/1.1 401"), "{}", text);
            }
        }
    }

    #[test]
    fn a_new_key_body_is_empty_only_by_json_whitespace() {
        use crate::access::{KeySet, Policy, PolicyHandle};
        let dir = std::env::temp_dir().join(format!("shoal-serve-ws-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let api = api();
        let keys = Some(Arc::new(KeySet::from_entries([])));
        let handle = PolicyHandle::new(Policy::new(None, keys, false));
        let files = super::super::manage::Files::new(handle, None, Some(dir.join("keys.txt")));
        api.set_files(Arc::new(files)).unwrap();
        for (body, status) in [("", 201), (" \r\n\t", 201), ("\x0c", 400), ("\x0b", 400)] {
            let req = format!(
                "POST /api/v1/keys HTTP/1.1\r\nAuthorization: Bearer 0123456789abcdef\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let (head, used) = parse_head(req.as_bytes()).unwrap().unwrap();
            let mut out = Vec::new();
            let r = Request {
                buf: req.as_bytes(),
                head: &head,
                head_len: used,
                now: Now::from_secs(1),
            };
            serve(&api, &Counters::default(), r, &mut out);
            let want = format!("HTTP/1.1 {status} ");
            assert!(
                out.starts_with(want.as_bytes()),
                "{body:?}: {}",
                String::from_utf8_lossy(&out)
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn replies_have_their_status_and_allow() {
        let mut out = Vec::new();
        write(&mut out, &Reply::method("GET, POST"), true);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nAllow: GET, POST\r\n"));
        assert!(text.ends_with("\r\n\r\n{\"error\":\"method not allowed\"}\n"));
    }
}
