//! The torrust REST API, v1 (`--torrust-api ADDR`): torrust-tracker's
//! management contract served over shoal's access list, keys and swarm, so
//! tools written for torrust (torrust-index first) drive shoal unchanged.
//!
//! The contract is read from torrust-tracker's published v1 API (its routes,
//! auth middleware, resources and responses under
//! `packages/axum-rest-tracker-api-server/src/v1/`, and its client,
//! `packages/rest-tracker-api-client/src/v1/client.rs`) and from what
//! torrust-index sends and reads (`src/tracker/api.rs`,
//! `src/tracker/service.rs`). Routes:
//!
//! | method | path | reply |
//! |---|---|---|
//! | GET | `/api/health_check` | `{"status":"Ok"}`, no token asked |
//! | GET | `/api/v1/stats[?format=prometheus]` | flat counters ([`resources::stats`]) |
//! | GET | `/api/v1/torrents?offset=M&limit=N` | `[{info_hash, seeders, completed, leechers}]` in info-hash order |
//! | GET | `/api/v1/torrents?info_hash=A&info_hash=B…` | the ones of those the swarm holds |
//! | GET | `/api/v1/torrent/{info_hash}` | one torrent with its `peers`; 200 `"torrent not known"` |
//! | POST, DELETE | `/api/v1/whitelist/{info_hash}` | `{"status":"ok"}` |
//! | GET | `/api/v1/whitelist/reload` | `{"status":"ok"}` |
//! | POST | `/api/v1/key/{seconds_valid}` | a new key: `{key, valid_until, expiry_time}` |
//! | DELETE | `/api/v1/key/{key}` | `{"status":"ok"}` |
//! | POST | `/api/v1/keys` | body `{"key": KEY or null, "seconds_valid": N or null}`: that key (or a new one) |
//! | GET | `/api/v1/keys/reload` | `{"status":"ok"}` |
//!
//! The token is torrust's: `Authorization: Bearer TOKEN`, else the query
//! parameter `?token=TOKEN` (torrust-index sends only that). Failures carry
//! torrust's own bodies, which its clients compare byte for byte: a 500
//! `Unhandled rejection: Err { reason: "unauthorized" }` without a token,
//! `… "token not valid" …` for a wrong one, `… "unknown token provided" …`
//! for an `Authorization` header of another scheme; the same 500 form for a
//! change that could not be made (`failed to whitelist torrent: …`); 400 with
//! a plain-text reason for a bad parameter; 404 and 405 with no body.
//!
//! The whitelist is shoal's access list in allow mode, the keys its key
//! file: a change is written to the file ([`super::manage`], temporary file,
//! fsync, rename) before it is in force, exactly as the native API's, and
//! holds at once over UDP and HTTP. Without the file, or with a deny list,
//! there is no whitelist to change and the call fails (500, naming why).
//!
//! Guarantees, as the native API's: the token is checked in constant time
//! before anything else but the health check, a refusal is counted
//! (`shoal_rejected_total{reason="api_unauthorized"}`), the token is never
//! logged, and at most [`super::MAX_BODY`] bytes of body are read.

mod resources;
#[cfg(test)]
mod tests;

use super::manage::{Changed, Files, ManageError};
use super::serve::{body, method, Body};
use super::{Api, ApiToken, Served, MAX_BODY};
use crate::access::list::parse_hex20;
use crate::access::{Key, Mode};
use crate::stats::{Counters, Reject};
use crate::swarm::InfoHash;
use crate::time::{unix_now, Now};
use crate::wire::http::{query_pairs, Head};
use resources::{auth_key, page_by_hash, peer_json, stats, ListItem};
use serde_json::{json, Value};

pub use super::serve::Request;

/// Longest `seconds_valid` a key is given: ten years, as the native API.
pub const MAX_SECONDS_VALID: u64 = 10 * 365 * 86_400;
/// Most torrents one `/torrents` page lists: torrust's default page size.
pub const MAX_PAGE: usize = 4000;

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";

/// A reply before it is written.
#[derive(Debug)]
struct Reply {
    status: u16,
    /// `None`: no body at all (404, 405, as axum answers them).
    content_type: Option<&'static str>,
    body: Vec<u8>,
    /// `Allow` for a 405.
    allow: Option<&'static str>,
}

impl Reply {
    fn with(status: u16, content_type: &'static str, body: Vec<u8>) -> Reply {
        Reply {
            status,
            content_type: Some(content_type),
            body,
            allow: None,
        }
    }

    fn json(v: &Value) -> Reply {
        Reply::with(200, JSON, serde_json::to_vec(v).unwrap_or_default())
    }

    /// `{"status":"ok"}`: torrust's answer to a command that was carried out.
    fn ok() -> Reply {
        Reply::json(&json!({ "status": "ok" }))
    }

    /// torrust's 500: the reason as Rust's `Debug` writes a string (quoted,
    /// escaped) inside `Err { reason: … }`.
    fn rejection(reason: &str) -> Reply {
        let text = format!("Unhandled rejection: Err {{ reason: {reason:?} }}");
        Reply::with(500, TEXT, text.into_bytes())
    }

    fn bad_request(text: &str) -> Reply {
        Reply::with(400, TEXT, text.as_bytes().to_vec())
    }

    fn empty(status: u16) -> Reply {
        Reply {
            status,
            content_type: None,
            body: Vec::new(),
            allow: None,
        }
    }

    fn method(allow: &'static str) -> Reply {
        Reply {
            allow: Some(allow),
            ..Reply::empty(405)
        }
    }
}

/// Answer the request whose head (`head_len` bytes) starts `req.buf`, once
/// its body is complete.
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
            let text = format!("request body too large (at most {MAX_BODY} bytes)");
            write(
                out,
                &Reply::with(413, TEXT, text.into_bytes()),
                false,
                false,
            );
            return Served::Done {
                used: head_len,
                keep_alive: false,
            };
        }
    };
    let method = method(buf);
    let reply = route(api, counters, method, head, body, now);
    write(out, &reply, head.keep_alive, method == b"HEAD");
    Served::Done {
        used: head_len + body.len(),
        keep_alive: head.keep_alive,
    }
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
    if path == b"/api/health_check" {
        return get(method, || Reply::json(&json!({ "status": "Ok" })));
    }
    // torrust checks the token on every other path, a missing one included.
    if let Err(reason) = authenticate(api.token(), head) {
        counters.reject(Reject::ApiUnauthorized);
        return Reply::rejection(reason);
    }
    let Some(rest) = path.strip_prefix(b"/api/v1/") else {
        return Reply::empty(404);
    };
    let (first, param) = match rest.iter().position(|&b| b == b'/') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    // A path parameter is one non-empty segment.
    if param.is_some_and(|p| p.is_empty() || p.contains(&b'/')) {
        return Reply::empty(404);
    }
    let post_delete = |post: &dyn Fn() -> Reply, delete: &dyn Fn() -> Reply| match method {
        b"POST" => post(),
        b"DELETE" => delete(),
        _ => Reply::method("POST, DELETE"),
    };
    match (first, param) {
        (b"stats", None) => get(method, || stats_reply(api, head.query)),
        (b"torrents", None) => get(method, || torrents(api, head.query, now)),
        (b"torrent", Some(ih)) => get(method, || torrent(api, ih, now)),
        (b"whitelist", Some(b"reload")) => get(method, || reload(api, Which::List)),
        (b"whitelist", Some(ih)) => {
            post_delete(&|| whitelist(api, ih, true), &|| whitelist(api, ih, false))
        }
        (b"key", Some(p)) => post_delete(&|| generate_key(api, p), &|| delete_key(api, p)),
        (b"keys", Some(b"reload")) => get(method, || reload(api, Which::Keys)),
        (b"keys", None) => match method {
            b"POST" => add_key(api, head, body),
            _ => Reply::method("POST"),
        },
        _ => Reply::empty(404),
    }
}

/// A GET route (HEAD too: the same reply without its body).
fn get(method: &[u8], f: impl FnOnce() -> Reply) -> Reply {
    match method {
        b"GET" | b"HEAD" => f(),
        _ => Reply::method("GET, HEAD"),
    }
}

/// torrust's rule: the `Authorization` header if there is one (it must be
/// `Bearer TOKEN`), else the first `token` query parameter. `Err` is the
/// reason torrust gives.
fn authenticate(token: &ApiToken, head: &Head<'_>) -> Result<(), &'static str> {
    let presented = if let Some(value) = head.header("authorization") {
        match value.split_at_checked(6) {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case(b"bearer") => {
                match rest.split_first() {
                    // `Bearer` alone is an empty token: not valid.
                    None => Vec::new(),
                    Some((b' ', t)) => t.to_vec(),
                    Some(_) => return Err("unknown token provided"),
                }
            }
            _ => return Err("unknown token provided"),
        }
    } else {
        match params(head.query, b"token").next() {
            Some(t) => t,
            None => return Err("unauthorized"),
        }
    };
    if token.matches(&presented) {
        Ok(())
    } else {
        Err("token not valid")
    }
}

/// A query value as a form decoder reads it: `+` is a space, `%XX` a byte,
/// and a `%` without two hex digits is itself.
fn form_decode(raw: &[u8]) -> Vec<u8> {
    decode(raw, true)
}

/// A path segment as the router hands it over: percent-decoded, `+` kept.
fn path_param(raw: &[u8]) -> Vec<u8> {
    decode(raw, false)
}

fn decode(raw: &[u8], plus_is_space: bool) -> Vec<u8> {
    let hex = |b: &u8| char::from(*b).to_digit(16);
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        let escaped = match (
            b,
            raw.get(i + 1).and_then(hex),
            raw.get(i + 2).and_then(hex),
        ) {
            // Two hex digits make a byte: h * 16 + l < 256.
            (b'%', Some(h), Some(l)) => u8::try_from(h * 16 + l).ok(),
            _ => None,
        };
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(if plus_is_space && b == b'+' { b' ' } else { b });
                i += 1;
            }
        }
    }
    out
}

/// The decoded values of query parameter `name`, in order.
fn params<'q>(query: &'q [u8], name: &'q [u8]) -> impl Iterator<Item = Vec<u8>> + 'q {
    query_pairs(query)
        .filter(move |(k, _)| form_decode(k) == name)
        .map(|(_, v)| form_decode(v))
}

/// torrust's 400 for an info hash that is not 40 hex digits.
fn info_hash(raw: &[u8]) -> Result<InfoHash, Reply> {
    parse_hex20(raw).ok_or_else(|| {
        Reply::bad_request(&format!(
            "Invalid URL: invalid infohash param: string \"{}\", expected a 40 character long string",
            String::from_utf8_lossy(raw)
        ))
    })
}

fn stats_reply(api: &Api, query: &[u8]) -> Reply {
    let format = match single(query, "format") {
        Ok(f) => f,
        Err(r) => return r,
    };
    let prometheus = match format.as_deref() {
        None | Some(b"json") => false,
        Some(b"prometheus") => true,
        Some(other) => {
            return Reply::bad_request(&format!(
                "Failed to deserialize query string: format: unknown variant `{}`, expected `json` or `prometheus`",
                String::from_utf8_lossy(other)
            ))
        }
    };
    let values = stats(api);
    if prometheus {
        // One `name value` line per field shoal has a number for.
        let lines: Vec<String> = values
            .iter()
            .filter_map(|(name, v)| v.map(|v| format!("{name} {v}")))
            .collect();
        return Reply::with(200, TEXT, lines.join("\n").into_bytes());
    }
    // Written by hand to keep torrust's field order.
    let mut body = b"{".to_vec();
    for (i, (name, v)) in values.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        let value = v.map_or_else(|| "null".to_string(), |v| v.to_string());
        body.extend_from_slice(format!("\"{name}\":{value}").as_bytes());
    }
    body.push(b'}');
    Reply::with(200, JSON, body)
}

/// The value of a query parameter that may be given once (torrust's
/// extractor refuses a second one).
fn single(query: &[u8], name: &'static str) -> Result<Option<Vec<u8>>, Reply> {
    let mut values = params(query, name.as_bytes());
    let first = values.next();
    if values.next().is_some() {
        return Err(Reply::bad_request(&format!(
            "Failed to deserialize query string: duplicate field `{name}`"
        )));
    }
    Ok(first)
}

/// A `u32` query parameter as torrust reads it: absent or empty is `None`.
fn number(query: &[u8], name: &'static str) -> Result<Option<u32>, Reply> {
    match single(query, name)? {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) => std::str::from_utf8(&v)
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
            .map(Some)
            .ok_or_else(|| {
                Reply::bad_request(&format!(
                    "Failed to deserialize query string: {name}: invalid digit found in string, expected a number 0..={}",
                    u32::MAX
                ))
            }),
    }
}

fn torrents(api: &Api, query: &[u8], now: Now) -> Reply {
    let swarm = api.tracker.swarm();
    // Both are read (and a bad one refused) even when `info_hash` makes
    // them moot, as torrust's query extractor does.
    let (offset, limit) = match (number(query, "offset"), number(query, "limit")) {
        (Ok(o), Ok(l)) => (o.unwrap_or(0), l.unwrap_or(MAX_PAGE as u32)),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let hashes: Vec<Vec<u8>> = params(query, b"info_hash").collect();
    let items: Vec<ListItem> = if hashes.is_empty() {
        let limit = (limit as usize).min(MAX_PAGE);
        page_by_hash(swarm, offset as usize, limit)
    } else {
        let mut parsed = Vec::with_capacity(hashes.len());
        for raw in &hashes {
            match info_hash(raw) {
                Ok(h) => parsed.push(h),
                Err(r) => return r,
            }
        }
        // The ones the swarm holds, in the order asked.
        parsed
            .iter()
            .filter_map(|ih| {
                swarm
                    .torrent_detail(ih, now.secs())
                    .map(|d| ListItem::new(ih, &d.counts))
            })
            .collect()
    };
    Reply::json(&Value::Array(items.iter().map(ListItem::json).collect()))
}

fn torrent(api: &Api, raw: &[u8], now: Now) -> Reply {
    let ih = match info_hash(&path_param(raw)) {
        Ok(h) => h,
        Err(r) => return r,
    };
    let Some(d) = api.tracker.swarm().torrent_detail(&ih, now.secs()) else {
        return Reply::json(&json!("torrent not known"));
    };
    let unix = unix_now();
    let mut v = ListItem::new(&ih, &d.counts).json();
    if let Value::Object(m) = &mut v {
        let peers = d.peers.iter().map(|p| peer_json(p, unix)).collect();
        m.insert("peers".into(), Value::Array(peers));
    }
    Reply::json(&v)
}

/// Which access file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    List,
    Keys,
}

impl Which {
    fn flag(self) -> &'static str {
        match self {
            Which::List => "--access-list",
            Which::Keys => "--keys",
        }
    }
}

/// torrust's 500 for a change with no file behind it: `{what}: …`.
fn no_file(what: &str, flag: &str) -> Reply {
    Reply::rejection(&format!(
        "{what}: no file to write to: start shoal with {flag} FILE"
    ))
}

/// The access files, or torrust's 500 (after `what`) if there are none.
fn files<'a>(api: &'a Api, what: &str, which: Which) -> Result<&'a Files, Reply> {
    api.files().ok_or_else(|| no_file(what, which.flag()))
}

/// A failed change as torrust words it: `{what}: {why}`. A write failure is
/// logged (it names the file, never a key).
fn manage_error(what: &str, e: ManageError) -> Reply {
    match e {
        ManageError::NoFile(flag) => no_file(what, flag),
        ManageError::Write(msg) => {
            log::error!("torrust api: {msg}");
            Reply::rejection(&format!("{what}: {msg}"))
        }
    }
}

fn whitelist(api: &Api, raw: &[u8], listed: bool) -> Reply {
    let what = if listed {
        "failed to whitelist torrent"
    } else {
        "failed to remove torrent from whitelist"
    };
    let ih = match info_hash(&path_param(raw)) {
        Ok(h) => h,
        Err(r) => return r,
    };
    let files = match files(api, what, Which::List) {
        Ok(f) => f,
        Err(r) => return r,
    };
    // torrust's whitelist names the torrents served: shoal's allow list. A
    // deny list means the opposite, and is not turned inside out.
    match files.list() {
        Ok((Mode::Allow, _)) => {}
        Ok((Mode::Deny, _)) => {
            return Reply::rejection(&format!(
                "{what}: the access list is a deny list (--access-mode deny), and the whitelist is an allow list"
            ))
        }
        Err(e) => return manage_error(what, e),
    }
    match files.set_listed(ih, listed) {
        Ok(_) => Reply::ok(),
        Err(e) => manage_error(what, e),
    }
}

fn reload(api: &Api, which: Which) -> Reply {
    let what = match which {
        Which::List => "failed to reload whitelist",
        Which::Keys => "failed to reload keys",
    };
    let files = match files(api, what, which) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let done = match which {
        Which::List => files.reload_list(),
        Which::Keys => files.reload_keys(),
    };
    match done {
        Some(Ok(_)) => Reply::ok(),
        // `FILE:LINE: reason`, never the line's text (it may be a key).
        Some(Err(e)) => {
            log::error!("torrust api: {e}; the previous contents stay in force");
            Reply::rejection(&format!("{what}: {e}"))
        }
        None => no_file(what, which.flag()),
    }
}

/// A key's expiry `seconds` from now, or torrust's 400 for a duration it
/// cannot take.
fn expiry(seconds: u64) -> Result<u64, Reply> {
    if seconds > MAX_SECONDS_VALID {
        return Err(Reply::bad_request(&format!(
            "Invalid URL: invalid auth key duration: \"{seconds}\""
        )));
    }
    Ok(unix_now() + seconds)
}

fn generate_key(api: &Api, raw: &[u8]) -> Reply {
    const WHAT: &str = "failed to generate key";
    let raw = path_param(raw);
    let Some(seconds) = std::str::from_utf8(&raw)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    else {
        return Reply::bad_request(&format!(
            "Invalid URL: Cannot parse \"{}\" to a `u64`",
            String::from_utf8_lossy(&raw)
        ));
    };
    let until = match expiry(seconds) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let files = match files(api, WHAT, Which::Keys) {
        Ok(f) => f,
        Err(r) => return r,
    };
    match files.add_key(Some(until)) {
        Ok((key, _)) => auth_key(&key, Some(until)),
        Err(e) => manage_error(WHAT, e),
    }
}

fn delete_key(api: &Api, raw: &[u8]) -> Reply {
    const WHAT: &str = "failed to delete key";
    let raw = path_param(raw);
    let Some(key) = Key::parse(&raw) else {
        return Reply::bad_request(&format!(
            "Invalid auth key id param \"{}\"",
            String::from_utf8_lossy(&raw)
        ));
    };
    let files = match files(api, WHAT, Which::Keys) {
        Ok(f) => f,
        Err(r) => return r,
    };
    match files.remove_key(&key) {
        Ok(Changed { changed: true, .. }) => Reply::ok(),
        Ok(_) => Reply::rejection(&format!("{WHAT}: no such key")),
        Err(e) => manage_error(WHAT, e),
    }
}

/// `POST /api/v1/keys` with `{"key": KEY or null, "seconds_valid": N or
/// null}` (either may be left out): that key, or a new random one, valid for
/// N seconds or for ever. torrust's extractor's statuses: 415 without a JSON
/// content type, 400 for JSON that does not parse, 422 for the wrong shape.
fn add_key(api: &Api, head: &Head<'_>, body: &[u8]) -> Reply {
    const WHAT: &str = "failed to add key";
    let json_type = head.header("content-type").is_some_and(|t| {
        let essence = t
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        essence.eq_ignore_ascii_case(b"application/json")
            || (essence.len() > 5
                && essence[..essence.len() - 5].starts_with(b"application/")
                && essence[essence.len() - 5..].eq_ignore_ascii_case(b"+json"))
    });
    if !json_type {
        return Reply::with(
            415,
            TEXT,
            b"Expected request with `Content-Type: application/json`".to_vec(),
        );
    }
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return Reply::bad_request(&format!("Failed to parse the request body as JSON: {e}"))
        }
    };
    let shape = |why: &str| {
        Reply::with(
            422,
            TEXT,
            format!("Failed to deserialize the JSON body into the target type: {why}").into_bytes(),
        )
    };
    let Value::Object(form) = v else {
        return shape("expected a JSON object");
    };
    let key = match form.get("key") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return shape("key: expected a string or null"),
    };
    let seconds = match form.get("seconds_valid") {
        None | Some(Value::Null) => None,
        Some(n) => match n.as_u64() {
            Some(s) => Some(s),
            None => return shape("seconds_valid: expected a non-negative integer or null"),
        },
    };
    let until = match seconds.map(expiry).transpose() {
        Ok(u) => u,
        Err(r) => return r,
    };
    let key = match key.map(|k| Key::parse(k.as_bytes()).ok_or(k)).transpose() {
        Ok(k) => k,
        Err(bad) => {
            return Reply::bad_request(&format!(
                "Invalid URL: invalid auth key: string \"{bad}\", a key is 32 characters of [0-9A-Za-z]"
            ))
        }
    };
    let files = match files(api, WHAT, Which::Keys) {
        Ok(f) => f,
        Err(r) => return r,
    };
    match key {
        None => match files.add_key(until) {
            Ok((key, _)) => auth_key(&key, until),
            Err(e) => manage_error(WHAT, e),
        },
        Some(key) => match files.insert_key(key, until) {
            Ok(Changed { changed: true, .. }) => auth_key(&key, until),
            Ok(_) => Reply::rejection(&format!("{WHAT}: the key is already listed")),
            Err(e) => manage_error(WHAT, e),
        },
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        _ => "Internal Server Error",
    }
}

/// Write the reply; a HEAD request gets the head alone.
fn write(out: &mut Vec<u8>, r: &Reply, keep_alive: bool, head_only: bool) {
    use std::io::Write as _;
    let _ = write!(out, "HTTP/1.1 {} {}\r\n", r.status, reason(r.status));
    if let Some(t) = r.content_type {
        let _ = write!(out, "Content-Type: {t}\r\n");
    }
    let _ = write!(
        out,
        "Content-Length: {}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n",
        r.body.len()
    );
    if let Some(allow) = r.allow {
        let _ = write!(out, "Allow: {allow}\r\n");
    }
    out.extend_from_slice(if keep_alive {
        b"Connection: keep-alive\r\n\r\n"
    } else {
        b"Connection: close\r\n\r\n"
    });
    if !head_only {
        out.extend_from_slice(&r.body);
    }
}
