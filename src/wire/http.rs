//! HTTP/1.x request heads and tracker queries (BEP 3, 7, 23, 48).
//!
//! Owns: the request head ([`parse_head`]), percent-decoding
//! ([`percent_decode_into`]), the query string ([`query_pairs`]), the announce and
//! scrape parameters ([`parse_announce`], [`scrape_hashes`]), and the response head
//! ([`write_response_head`]). Bodies and connection state belong to `net/`, reply
//! bodies to the core (with [`super::bencode`]).
//!
//! Guarantees: parsers borrow from their input, never allocate and never panic on
//! any input; their errors are `Copy` enums whose [`HttpError::as_str`] /
//! [`QueryError::as_str`] is a short human message fit for a bencoded
//! `failure reason`. The response writer only appends to a caller-owned `Vec<u8>`.
//!
//! Real-client rules followed here (see `PROTOCOL.md`):
//! - `info_hash` and `peer_id` are 20 raw bytes, percent-encoded, but a byte may
//!   also arrive unescaped — including bytes ≥ 0x80 that are not UTF-8, so the
//!   request line is parsed here rather than by `httparse` (which insists on a
//!   UTF-8 target); `httparse` parses the header lines.
//! - `+` is a literal `+`, not a space (this is not a form body).
//! - HTTP/1.1 keep-alive and pipelining: [`parse_head`] returns how many bytes the
//!   head used, and the next request starts right after it (and after any body).

use super::bencode;
use crate::wire::udp::Event;

/// Most header lines accepted in one request head; more is
/// [`HttpError::TooManyHeaders`]. Tracker clients send about five, browsers
/// about fifteen.
pub const MAX_HEADERS: usize = 32;

/// Request method. Trackers serve `GET` (and `HEAD`); the rest get a 405.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Other,
}

/// Why bytes are not a request head we serve. `Copy`, allocation-free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// Not an HTTP/1.x request head: bad request line, header line or line ending.
    Malformed,
    /// More than [`MAX_HEADERS`] header lines.
    TooManyHeaders,
    /// A version other than HTTP/1.0 and HTTP/1.1 (e.g. an HTTP/2 preface).
    UnsupportedVersion,
    /// `Content-Length` that is not a decimal number, or two that disagree.
    BadContentLength,
    /// Any `Transfer-Encoding` (in a request, that means a chunked body).
    /// Tracker requests have no body, so we do not decode one.
    UnsupportedTransferEncoding,
}

impl HttpError {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpError::Malformed => "malformed request",
            HttpError::TooManyHeaders => "too many headers",
            HttpError::UnsupportedVersion => "unsupported HTTP version",
            HttpError::BadContentLength => "invalid content-length",
            HttpError::UnsupportedTransferEncoding => "transfer-encoding not supported",
        }
    }

    /// The status to answer with (then close the connection: framing is lost).
    pub fn status(self) -> u16 {
        match self {
            HttpError::TooManyHeaders => 431,
            HttpError::UnsupportedVersion => 505,
            HttpError::Malformed
            | HttpError::BadContentLength
            | HttpError::UnsupportedTransferEncoding => 400,
        }
    }
}

/// A parsed request head, borrowing from the read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head<'a> {
    pub method: Method,
    /// Request target before the first `?`, still percent-encoded. The
    /// absolute form (`http://host/announce?…`, sent through proxies) is reduced
    /// to its path. Never empty: an empty path reads as `/`.
    pub path: &'a [u8],
    /// Request target after the first `?`, still percent-encoded; empty if none.
    pub query: &'a [u8],
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Whether the connection may stay open after the reply: HTTP/1.1 unless
    /// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
    pub keep_alive: bool,
    /// `Content-Length`, 0 if absent. The caller skips or refuses the body.
    pub content_length: u64,
    /// The header lines (after the request line, up to and including the blank
    /// line), already validated; [`Head::header`] rescans them.
    headers: &'a [u8],
}

impl<'a> Head<'a> {
    /// The value of the first header named `name` (ASCII case-insensitive),
    /// without surrounding spaces or tabs.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// Every header line as `(name, value)`, in order, values trimmed. Use this
    /// for headers that may repeat (e.g. the rightmost `X-Forwarded-For`).
    pub fn headers(&self) -> Headers<'a> {
        Headers { rest: self.headers }
    }
}

/// Iterator over the header lines of a [`Head`].
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (line, rest) = match self.rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
            None => (self.rest, &[][..]),
        };
        self.rest = rest;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            // The blank line that ends the head.
            self.rest = &[];
            return None;
        }
        // httparse checked every line is `token ":" value`.
        let colon = line.iter().position(|&b| b == b':')?;
        Some((&line[..colon], trim_ows(&line[colon + 1..])))
    }
}

/// Parses one request head from the start of `buf`.
///
/// `Ok(None)`: the head is not complete yet; read more (and give up at the
/// caller's size cap). `Ok(Some((head, len)))`: `len` bytes were the head; a body
/// of `head.content_length` bytes follows, then the next pipelined request.
/// Leading empty lines are skipped (RFC 9112 §2.2). Garbage is rejected as soon as
/// it is seen, without waiting for more bytes.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head<'_>, usize)>, HttpError> {
    let Some(line) = parse_request_line(buf)? else {
        return Ok(None);
    };
    let header_bytes = buf.get(line.len..).unwrap_or(&[]);
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let (headers_len, headers) = match httparse::parse_headers(header_bytes, &mut storage) {
        Ok(httparse::Status::Complete(done)) => done,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::TooManyHeaders),
        Err(_) => return Err(HttpError::Malformed),
    };

    let mut close = false;
    let mut keep_alive = false;
    let mut content_length: Option<u64> = None;
    for h in headers {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"connection") {
            for token in h.value.split(|&b| b == b',').map(trim_ows) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let n = parse_content_length(trim_ows(h.value)).ok_or(HttpError::BadContentLength)?;
            if content_length.is_some_and(|seen| seen != n) {
                return Err(HttpError::BadContentLength);
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Err(HttpError::UnsupportedTransferEncoding);
        }
    }

    let keep_alive = if line.minor_version == 1 {
        !close
    } else {
        keep_alive && !close
    };
    let target = origin_form(line.target);
    let (path, query) = match target.iter().position(|&b| b == b'?') {
        Some(q) => (&target[..q], &target[q + 1..]),
        None => (target, &[][..]),
    };
    let path: &[u8] = if path.is_empty() { b"/" } else { path };
    let method = match line.method {
        b"GET" => Method::Get,
        b"HEAD" => Method::Head,
        _ => Method::Other,
    };
    let head = Head {
        method,
        path,
        query,
        minor_version: line.minor_version,
        keep_alive,
        content_length: content_length.unwrap_or(0),
        headers: header_bytes.get(..headers_len).unwrap_or(header_bytes),
    };
    Ok(Some((head, line.len + headers_len)))
}

struct RequestLine<'a> {
    method: &'a [u8],
    target: &'a [u8],
    minor_version: u8,
    /// Bytes used, including leading empty lines and the line ending.
    len: usize,
}

/// `method SP request-target SP HTTP/1.x CRLF` (a bare LF is accepted too).
fn parse_request_line(buf: &[u8]) -> Result<Option<RequestLine<'_>>, HttpError> {
    let mut i = 0;
    // Leading empty lines.
    loop {
        match buf.get(i) {
            None => return Ok(None),
            Some(b'\n') => i += 1,
            Some(b'\r') => match buf.get(i + 1) {
                None => return Ok(None),
                Some(b'\n') => i += 2,
                Some(_) => return Err(HttpError::Malformed),
            },
            Some(_) => break,
        }
    }
    let Some((method, next)) = take_until_space(buf, i, is_tchar)? else {
        return Ok(None);
    };
    let Some((target, next)) = take_until_space(buf, next, is_target_byte)? else {
        return Ok(None);
    };
    i = next;
    const VERSION: &[u8; 7] = b"HTTP/1.";
    for (k, &want) in VERSION.iter().enumerate() {
        match buf.get(i + k) {
            None => return Ok(None),
            Some(&b) if b == want => {}
            // "HTTP/2.0", "HTTP/3": an HTTP version, not one we speak.
            Some(_) if k >= 5 => return Err(HttpError::UnsupportedVersion),
            Some(_) => return Err(HttpError::Malformed),
        }
    }
    i += VERSION.len();
    let minor_version = match buf.get(i) {
        None => return Ok(None),
        Some(b'0') => 0,
        Some(b'1') => 1,
        Some(_) => return Err(HttpError::UnsupportedVersion),
    };
    i += 1;
    let len = match buf.get(i) {
        None => return Ok(None),
        Some(b'\n') => i + 1,
        Some(b'\r') => match buf.get(i + 1) {
            None => return Ok(None),
            Some(b'\n') => i + 2,
            Some(_) => return Err(HttpError::Malformed),
        },
        Some(_) => return Err(HttpError::Malformed),
    };
    Ok(Some(RequestLine {
        method,
        target,
        minor_version,
        len,
    }))
}

/// A non-empty run of `allowed` bytes from `start`, ended by one space.
/// Returns the run and the index after the space.
fn take_until_space(
    buf: &[u8],
    start: usize,
    allowed: fn(u8) -> bool,
) -> Result<Option<(&[u8], usize)>, HttpError> {
    let mut i = start;
    loop {
        match buf.get(i) {
            None => return Ok(None),
            Some(b' ') if i > start => {
                return Ok(buf.get(start..i).map(|run| (run, i + 1)));
            }
            Some(&b) if allowed(b) => i += 1,
            Some(_) => return Err(HttpError::Malformed),
        }
    }
}

/// RFC 9110 `tchar`, the bytes of a method.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Bytes allowed in a request target: visible ASCII and, for clients that send
/// hash bytes unescaped, anything ≥ 0x80 (not necessarily UTF-8).
fn is_target_byte(b: u8) -> bool {
    (0x21..0x7f).contains(&b) || b >= 0x80
}

/// Reduces an absolute-form target (`scheme://authority/path?query`) to its
/// path and query; other targets are returned unchanged.
fn origin_form(target: &[u8]) -> &[u8] {
    if target.first() == Some(&b'/') {
        return target;
    }
    let Some(scheme_end) = target.windows(3).position(|w| w == b"://") else {
        return target;
    };
    let after = target.get(scheme_end + 3..).unwrap_or(&[]);
    match after.iter().position(|&b| b == b'/' || b == b'?') {
        // "http://host?query" keeps its `?`: the path comes out empty and
        // `parse_head` reads an empty path as "/".
        Some(p) => &after[p..],
        None => b"/",
    }
}

/// `Content-Length = 1*DIGIT`, at most `u64::MAX`.
fn parse_content_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// Strips optional whitespace (spaces and tabs) from both ends.
fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// Why a tracker query cannot be served. `Copy`, allocation-free; [`as_str`]
/// is the bencoded `failure reason` the client sees.
///
/// [`as_str`]: QueryError::as_str
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryError {
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// A decoded value longer than the space for it.
    TooLong,
    MissingInfoHash,
    /// Not exactly 20 bytes once decoded, or a bad escape.
    InvalidInfoHash,
    MissingPeerId,
    /// Not exactly 20 bytes once decoded, or a bad escape.
    InvalidPeerId,
    MissingPort,
    /// Not a decimal number in 1..=65535.
    InvalidPort,
    InvalidUploaded,
    InvalidDownloaded,
    InvalidLeft,
    /// Not one of `started`, `completed`, `stopped`, `paused`, `empty` or empty.
    InvalidEvent,
}

impl QueryError {
    pub fn as_str(self) -> &'static str {
        match self {
            QueryError::BadEscape => "invalid percent-encoding",
            QueryError::TooLong => "value too long",
            QueryError::MissingInfoHash => "missing info_hash",
            QueryError::InvalidInfoHash => "invalid info_hash",
            QueryError::MissingPeerId => "missing peer_id",
            QueryError::InvalidPeerId => "invalid peer_id",
            QueryError::MissingPort => "missing port",
            QueryError::InvalidPort => "invalid port",
            QueryError::InvalidUploaded => "invalid uploaded",
            QueryError::InvalidDownloaded => "invalid downloaded",
            QueryError::InvalidLeft => "invalid left",
            QueryError::InvalidEvent => "invalid event",
        }
    }
}

/// Iterator over the bytes of a percent-encoded value: `%XX` (either case)
/// decodes; every other byte, `+` included, is itself.
#[derive(Debug, Clone)]
struct Decoded<'a> {
    src: &'a [u8],
}

impl Iterator for Decoded<'_> {
    type Item = Result<u8, QueryError>;

    fn next(&mut self) -> Option<Self::Item> {
        match *self.src {
            [] => None,
            [b'%', hi, lo, ref rest @ ..] => match (hex_value(hi), hex_value(lo)) {
                (Some(hi), Some(lo)) => {
                    self.src = rest;
                    Some(Ok((hi << 4) | lo))
                }
                _ => self.fail(),
            },
            [b'%', ..] => self.fail(),
            [b, ref rest @ ..] => {
                self.src = rest;
                Some(Ok(b))
            }
        }
    }
}

impl Decoded<'_> {
    /// Reports a bad escape once, then ends.
    fn fail(&mut self) -> Option<Result<u8, QueryError>> {
        self.src = &[];
        Some(Err(QueryError::BadEscape))
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `src` into `dst` and returns the decoded length.
///
/// `%XX` with two hex digits of either case becomes one byte; any other byte,
/// including `+` and raw bytes ≥ 0x80, is copied as is. Errors: a `%` without two
/// hex digits ([`QueryError::BadEscape`]), or more decoded bytes than `dst` holds
/// ([`QueryError::TooLong`]).
pub fn percent_decode_into(src: &[u8], dst: &mut [u8]) -> Result<usize, QueryError> {
    let mut n = 0;
    for byte in (Decoded { src }) {
        let slot = dst.get_mut(n).ok_or(QueryError::TooLong)?;
        *slot = byte?;
        n += 1;
    }
    Ok(n)
}

/// Whether `raw` percent-decodes to exactly `want`.
fn decodes_to(raw: &[u8], want: &[u8]) -> bool {
    let mut it = Decoded { src: raw };
    want.iter().all(|&w| it.next() == Some(Ok(w))) && it.next().is_none()
}

/// The `key=value` pairs of a query string, still percent-encoded, in order.
///
/// Pieces are split on `&`; empty pieces are skipped; a piece splits on its first
/// `=`, and a piece without `=` has an empty value.
pub fn query_pairs(query: &[u8]) -> QueryPairs<'_> {
    QueryPairs { rest: query }
}

/// Iterator returned by [`query_pairs`].
#[derive(Debug, Clone)]
pub struct QueryPairs<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for QueryPairs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let (piece, rest) = match self.rest.iter().position(|&b| b == b'&') {
                Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
                None => (self.rest, &[][..]),
            };
            self.rest = rest;
            if piece.is_empty() {
                continue;
            }
            return Some(match piece.iter().position(|&b| b == b'=') {
                Some(i) => (&piece[..i], &piece[i + 1..]),
                None => (piece, &[][..]),
            });
        }
    }
}

/// An HTTP announce (BEP 3), decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnounceQuery {
    pub info_hash: [u8; 20],
    pub peer_id: [u8; 20],
    /// 1..=65535.
    pub port: u16,
    /// 0 if absent or negative.
    pub uploaded: u64,
    /// 0 if absent or negative.
    pub downloaded: u64,
    /// 0 if absent. Negative (a client that does not know the size yet) becomes
    /// `u64::MAX`: still downloading, as a UDP `left` of -1 reads.
    pub left: u64,
    /// `paused`, `empty` and an empty value read as [`Event::None`].
    pub event: Event,
    /// BEP 23. Default true; `compact=0` asks for the dict model.
    pub compact: bool,
    /// True when `no_peer_id` is present with any value but `0`.
    pub no_peer_id: bool,
    /// `numwant` / `num_want`. `None` (the tracker's default) when absent,
    /// negative or not a number; values above `u32::MAX` saturate.
    pub numwant: Option<u32>,
    /// `key` when it is 1 to 8 hex digits (libtorrent's form), else `None`.
    pub key: Option<u32>,
}

/// Decodes an announce query string (the part after `?`).
///
/// - Required: `info_hash` and `peer_id` (20 bytes each once decoded) and `port`.
/// - A repeated parameter: **the last one wins** (as in opentracker and PHP);
///   only the winning value is checked.
/// - Missing `uploaded`/`downloaded`/`left` read as 0; present but not a decimal
///   integer is an error; negatives are handled as documented on
///   [`AnnounceQuery`].
/// - Unknown parameters (passkeys, `corrupt`, `supportcrypto`, …), `trackerid` and
///   `ip` are ignored. Parameter names are compared as sent, not decoded.
/// - Errors are reported in this order: info_hash, peer_id, port, uploaded,
///   downloaded, left, event.
pub fn parse_announce(query: &[u8]) -> Result<AnnounceQuery, QueryError> {
    let mut info_hash = None;
    let mut peer_id = None;
    let mut port = None;
    let mut uploaded = None;
    let mut downloaded = None;
    let mut left = None;
    let mut event = None;
    let mut compact = None;
    let mut no_peer_id = None;
    let mut numwant = None;
    let mut key = None;
    for (name, value) in query_pairs(query) {
        let slot = match name {
            b"info_hash" => &mut info_hash,
            b"peer_id" => &mut peer_id,
            b"port" => &mut port,
            b"uploaded" => &mut uploaded,
            b"downloaded" => &mut downloaded,
            b"left" => &mut left,
            b"event" => &mut event,
            b"compact" => &mut compact,
            b"no_peer_id" => &mut no_peer_id,
            b"numwant" | b"num_want" => &mut numwant,
            b"key" => &mut key,
            _ => continue,
        };
        *slot = Some(value);
    }

    let info_hash = decode_20(info_hash.ok_or(QueryError::MissingInfoHash)?)
        .ok_or(QueryError::InvalidInfoHash)?;
    let peer_id =
        decode_20(peer_id.ok_or(QueryError::MissingPeerId)?).ok_or(QueryError::InvalidPeerId)?;
    let port = match parse_int(port.ok_or(QueryError::MissingPort)?) {
        Some(Int::NonNegative(n)) => u16::try_from(n).ok().filter(|&p| p != 0),
        _ => None,
    }
    .ok_or(QueryError::InvalidPort)?;
    let uploaded = stat(uploaded, 0, QueryError::InvalidUploaded)?;
    let downloaded = stat(downloaded, 0, QueryError::InvalidDownloaded)?;
    let left = stat(left, u64::MAX, QueryError::InvalidLeft)?;
    let event = match event {
        None => Event::None,
        Some(v) if v.is_empty() || decodes_to(v, b"empty") || decodes_to(v, b"paused") => {
            Event::None
        }
        Some(v) if decodes_to(v, b"started") => Event::Started,
        Some(v) if decodes_to(v, b"completed") => Event::Completed,
        Some(v) if decodes_to(v, b"stopped") => Event::Stopped,
        Some(_) => return Err(QueryError::InvalidEvent),
    };
    let numwant = match numwant.and_then(parse_int) {
        Some(Int::NonNegative(n)) => Some(u32::try_from(n).unwrap_or(u32::MAX)),
        _ => None,
    };
    Ok(AnnounceQuery {
        info_hash,
        peer_id,
        port,
        uploaded,
        downloaded,
        left,
        event,
        compact: compact.is_none_or(|v| !decodes_to(v, b"0")),
        no_peer_id: no_peer_id.is_some_and(|v| !decodes_to(v, b"0")),
        numwant,
        key: key.and_then(parse_key),
    })
}

/// A byte-count statistic: absent → 0, negative → `if_negative`.
fn stat(raw: Option<&[u8]>, if_negative: u64, err: QueryError) -> Result<u64, QueryError> {
    match raw.map(parse_int) {
        None => Ok(0),
        Some(Some(Int::NonNegative(n))) => Ok(n),
        Some(Some(Int::Negative)) => Ok(if_negative),
        Some(None) => Err(err),
    }
}

/// Percent-decodes a value that must be exactly 20 bytes.
fn decode_20(raw: &[u8]) -> Option<[u8; 20]> {
    let mut out = [0u8; 20];
    match percent_decode_into(raw, &mut out) {
        Ok(20) => Some(out),
        _ => None,
    }
}

enum Int {
    NonNegative(u64),
    /// Below zero; the magnitude is not needed.
    Negative,
}

/// A decimal integer, optionally `-`-signed, at least one digit, percent-decoded
/// first. `None` for anything else or a magnitude above `u64::MAX`.
fn parse_int(raw: &[u8]) -> Option<Int> {
    let mut bytes = Decoded { src: raw }.peekable();
    let negative = bytes.next_if_eq(&Ok(b'-')).is_some();
    let mut n: u64 = 0;
    let mut digits = 0usize;
    for b in bytes {
        let d = match b {
            Ok(b @ b'0'..=b'9') => u64::from(b - b'0'),
            _ => return None,
        };
        n = n.checked_mul(10)?.checked_add(d)?;
        digits += 1;
    }
    match (digits, negative) {
        (0, _) => None,
        (_, true) if n > 0 => Some(Int::Negative),
        _ => Some(Int::NonNegative(n)),
    }
}

/// 1 to 8 hex digits, as libtorrent writes its `key`.
fn parse_key(raw: &[u8]) -> Option<u32> {
    if raw.is_empty() || raw.len() > 8 {
        return None;
    }
    raw.iter()
        .try_fold(0u32, |n, &b| Some((n << 4) | u32::from(hex_value(b)?)))
}

/// Every `info_hash` of a scrape query, in order, duplicates repeated; a value
/// that does not decode to 20 bytes yields [`QueryError::InvalidInfoHash`].
pub fn scrape_hashes(query: &[u8]) -> ScrapeHashes<'_> {
    ScrapeHashes {
        pairs: query_pairs(query),
    }
}

/// Iterator returned by [`scrape_hashes`].
#[derive(Debug, Clone)]
pub struct ScrapeHashes<'a> {
    pairs: QueryPairs<'a>,
}

impl Iterator for ScrapeHashes<'_> {
    type Item = Result<[u8; 20], QueryError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (_, value) = self.pairs.find(|(name, _)| *name == b"info_hash")?;
        Some(decode_20(value).ok_or(QueryError::InvalidInfoHash))
    }
}

/// The reason phrase shoal sends with `status` ("Unknown" for others).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Appends a response head:
/// `HTTP/1.1 <status> <reason>\r\nContent-Type: <content_type>\r\nContent-Length:
/// <content_length>\r\nConnection: keep-alive|close\r\n\r\n`.
///
/// `content_type` is written as given: pass a constant (no CR or LF). Writes the
/// digits by hand; allocates only if `out` must grow.
pub fn write_response_head(
    out: &mut Vec<u8>,
    status: u16,
    content_type: &str,
    content_length: usize,
    keep_alive: bool,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    bencode::decimal(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\nContent-Type: ");
    out.extend_from_slice(content_type.as_bytes());
    out.extend_from_slice(b"\r\nContent-Length: ");
    bencode::decimal(out, content_length as u64);
    let connection: &[u8] = if keep_alive {
        b"\r\nConnection: keep-alive\r\n\r\n"
    } else {
        b"\r\nConnection: close\r\n\r\n"
    };
    out.extend_from_slice(connection);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HASH: [u8; 20] = [
        0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66,
        0x77, 0x88, 0x99, 0xaa, 0xbb,
    ];
    const HASH_ESCAPED: &str = "%124Vx%9A%BC%DE%F0%00%11%223DUfw%88%99%AA%BB";
    const PEER_ID: &[u8; 20] = b"-lt2010-abcdefghijkl";

    fn libtorrent_request() -> Vec<u8> {
        format!(
            "GET /announce?info_hash={HASH_ESCAPED}&peer_id=-lt2010-abcdefghijkl&port=6881\
             &uploaded=0&downloaded=0&left=100&corrupt=0&key=ABCD&event=started&numwant=200\
             &compact=1&no_peer_id=1 HTTP/1.1\r\nHost: 127.0.0.1:1234\r\n\
             User-Agent: libtorrent/2.0\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n"
        )
        .into_bytes()
    }

    fn head(buf: &[u8]) -> (Head<'_>, usize) {
        parse_head(buf).unwrap().unwrap()
    }

    /// Percent-encodes every byte.
    fn escape_all(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("%{b:02X}")).collect()
    }

    fn announce(query: &str) -> Result<AnnounceQuery, QueryError> {
        parse_announce(query.as_bytes())
    }

    fn minimal() -> String {
        format!(
            "info_hash={}&peer_id={}&port=6881",
            escape_all(&HASH),
            escape_all(PEER_ID)
        )
    }

    #[test]
    fn test_parse_libtorrent_announce() {
        let req = libtorrent_request();
        let (h, len) = head(&req);
        assert_eq!(len, req.len());
        assert_eq!(h.method, Method::Get);
        assert_eq!(h.path, b"/announce");
        assert!(h.query.starts_with(b"info_hash=%124Vx"));
        assert!(h.query.ends_with(b"&no_peer_id=1"));
        assert_eq!(h.minor_version, 1);
        assert!(!h.keep_alive);
        assert_eq!(h.content_length, 0);
        assert_eq!(h.header("host"), Some(&b"127.0.0.1:1234"[..]));
        assert_eq!(h.header("USER-AGENT"), Some(&b"libtorrent/2.0"[..]));
        assert_eq!(h.header("Accept-Encoding"), Some(&b"gzip"[..]));
        assert_eq!(h.header("X-Real-IP"), None);
        assert_eq!(h.headers().count(), 4);

        let a = parse_announce(h.query).unwrap();
        assert_eq!(
            a,
            AnnounceQuery {
                info_hash: HASH,
                peer_id: *PEER_ID,
                port: 6881,
                uploaded: 0,
                downloaded: 0,
                left: 100,
                event: Event::Started,
                compact: true,
                no_peer_id: true,
                numwant: Some(200),
                key: Some(0xABCD),
            }
        );
    }

    #[test]
    fn test_incomplete_head() {
        let req = libtorrent_request();
        for cut in 0..req.len() {
            assert_eq!(parse_head(&req[..cut]), Ok(None), "cut at {cut}");
        }
        assert_eq!(parse_head(b"\r\n"), Ok(None));
        assert_eq!(parse_head(b"GET / HTTP/1.1\r\nHost: x\r"), Ok(None));
    }

    #[test]
    fn test_pipelined_requests() {
        let mut buf = b"GET /announce?a=1 HTTP/1.1\r\nHost: t\r\n\r\n".to_vec();
        buf.extend_from_slice(b"GET /scrape?info_hash=x HTTP/1.1\r\nHost: t\r\n\r\nGET /par");
        let (first, n) = head(&buf);
        assert_eq!((first.path, first.query), (&b"/announce"[..], &b"a=1"[..]));
        assert!(first.keep_alive);
        let (second, m) = head(&buf[n..]);
        assert_eq!(
            (second.path, second.query),
            (&b"/scrape"[..], &b"info_hash=x"[..])
        );
        assert_eq!(second.header("host"), Some(&b"t"[..]));
        assert_eq!(parse_head(&buf[n + m..]), Ok(None));
    }

    #[test]
    fn test_keep_alive_rules() {
        let ka = |req: &[u8]| head(req).0.keep_alive;
        assert!(ka(b"GET / HTTP/1.1\r\n\r\n"));
        assert!(!ka(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
        assert!(!ka(b"GET / HTTP/1.1\r\nconnection: CLOSE\r\n\r\n"));
        assert!(!ka(b"GET / HTTP/1.1\r\nConnection: Upgrade ,close\r\n\r\n"));
        assert!(!ka(
            b"GET / HTTP/1.1\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n"
        ));
        assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(ka(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        assert!(ka(
            b"GET / HTTP/1.0\r\nConnection: keep-alive, Upgrade\r\n\r\n"
        ));
        assert!(!ka(
            b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"
        ));
        // Not a token match.
        assert!(!ka(b"GET / HTTP/1.0\r\nConnection: keep-alives\r\n\r\n"));
    }

    #[test]
    fn test_http_1_0() {
        let (h, len) = head(b"GET /announce HTTP/1.0\r\n\r\nrest");
        assert_eq!(len, 26);
        assert_eq!(h.minor_version, 0);
        assert_eq!(h.query, b"");
        assert!(!h.keep_alive);
    }

    #[test]
    fn test_methods_and_targets() {
        assert_eq!(head(b"HEAD /x HTTP/1.1\r\n\r\n").0.method, Method::Head);
        assert_eq!(head(b"POST /x HTTP/1.1\r\n\r\n").0.method, Method::Other);
        assert_eq!(head(b"get /x HTTP/1.1\r\n\r\n").0.method, Method::Other);
        let h = head(b"GET http://tracker.example:80/announce?a=b HTTP/1.1\r\n\r\n").0;
        assert_eq!((h.path, h.query), (&b"/announce"[..], &b"a=b"[..]));
        let h = head(b"GET http://tracker.example?a=b HTTP/1.1\r\n\r\n").0;
        assert_eq!((h.path, h.query), (&b"/"[..], &b"a=b"[..]));
        let h = head(b"GET http://tracker.example HTTP/1.1\r\n\r\n").0;
        assert_eq!((h.path, h.query), (&b"/"[..], &b""[..]));
        let h = head(b"GET /a?b?c HTTP/1.1\r\n\r\n").0;
        assert_eq!((h.path, h.query), (&b"/a"[..], &b"b?c"[..]));
        // Leading empty lines and bare LF line endings.
        let (h, len) = head(b"\r\n\nGET /x HTTP/1.1\nHost: a\n\n");
        assert_eq!((h.path, len), (&b"/x"[..], 28));
        assert_eq!(h.header("host"), Some(&b"a"[..]));
    }

    #[test]
    fn test_raw_bytes_in_target() {
        // Hash bytes sent unescaped, not valid UTF-8; `+` is literal.
        let mut req = b"GET /announce?info_hash=".to_vec();
        let raw: [u8; 20] = [
            0xff,
            0xfe,
            b'+',
            0x80,
            0xc3,
            b'a',
            0x9f,
            b'=',
            b'/',
            b'?',
            0xe2,
            0x82,
            0xff,
            1 + b'0',
            b'~',
            0xaa,
            0xbb,
            0xcc,
            0xdd,
            0xee,
        ];
        req.extend_from_slice(&raw);
        req.extend_from_slice(b"&peer_id=-qB4650-abcdef%2B%2bwxyz&port=1 HTTP/1.1\r\n\r\n");
        let (h, _) = head(&req);
        assert_eq!(h.path, b"/announce");
        let a = parse_announce(h.query).unwrap();
        assert_eq!(a.info_hash, raw);
        assert_eq!(&a.peer_id, b"-qB4650-abcdef++wxyz");
    }

    #[test]
    fn test_head_errors() {
        let err = |req: &[u8]| parse_head(req).unwrap_err();
        assert_eq!(
            err(b"GET / HTTP/2.0\r\n\r\n"),
            HttpError::UnsupportedVersion
        );
        assert_eq!(
            err(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
            HttpError::UnsupportedVersion
        );
        assert_eq!(
            err(b"GET / HTTP/1.2\r\n\r\n"),
            HttpError::UnsupportedVersion
        );
        assert_eq!(err(b"GET / FTP/1.1\r\n\r\n"), HttpError::Malformed);
        assert_eq!(err(b"GET /  HTTP/1.1\r\n\r\n"), HttpError::Malformed);
        assert_eq!(err(b" GET / HTTP/1.1\r\n\r\n"), HttpError::Malformed);
        assert_eq!(err(b"GET /\x01 HTTP/1.1\r\n\r\n"), HttpError::Malformed);
        assert_eq!(err(b"GET / HTTP/1.1 \r\n\r\n"), HttpError::Malformed);
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"),
            HttpError::Malformed
        );
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nNoColon\r\n\r\n"),
            HttpError::Malformed
        );
        assert_eq!(err(b"\x16\x03\x01\x02\x00"), HttpError::Malformed); // TLS
                                                                        // Garbage is refused at once, not after more bytes.
        assert_eq!(err(b"G\x00"), HttpError::Malformed);
        assert_eq!(err(b"GET / HTX"), HttpError::Malformed);
        assert_eq!(err(b"GET / HTTP/3"), HttpError::UnsupportedVersion);
    }

    #[test]
    fn test_body_framing() {
        let req = b"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
        let (h, len) = head(req);
        assert_eq!((h.content_length, len), (5, req.len() - 5));
        let same = b"GET / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length:  5 \r\n\r\n";
        assert_eq!(head(same).0.content_length, 5);
        let err = |req: &[u8]| parse_head(req).unwrap_err();
        for bad in [
            &b"GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length:\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
        ] {
            assert_eq!(err(bad), HttpError::BadContentLength);
        }
        for te in [
            &b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\ntransfer-encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: identity\r\n\r\n",
        ] {
            assert_eq!(err(te), HttpError::UnsupportedTransferEncoding);
        }
    }

    #[test]
    fn test_too_many_headers() {
        let mut req = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..MAX_HEADERS {
            req.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        req.extend_from_slice(b"\r\n");
        let (h, _) = head(&req);
        assert_eq!(h.header("x-31"), Some(&b"v"[..]));
        let mut more = req[..req.len() - 2].to_vec();
        more.extend_from_slice(b"X-Last: v\r\n\r\n");
        assert_eq!(parse_head(&more), Err(HttpError::TooManyHeaders));
        assert_eq!(HttpError::TooManyHeaders.status(), 431);
    }

    #[test]
    fn test_header_lookup() {
        let (h, _) = head(
            b"GET / HTTP/1.1\r\nX-Forwarded-For: 1.1.1.1, 2.2.2.2\r\nx-forwarded-for:\t3.3.3.3 \r\nEmpty:\r\n\r\n",
        );
        assert_eq!(h.header("X-FORWARDED-FOR"), Some(&b"1.1.1.1, 2.2.2.2"[..]));
        let last = h
            .headers()
            .filter(|(n, _)| n.eq_ignore_ascii_case(b"x-forwarded-for"))
            .last();
        assert_eq!(last.map(|(_, v)| v), Some(&b"3.3.3.3"[..]));
        assert_eq!(h.header("empty"), Some(&b""[..]));
        assert_eq!(h.header("x-forwarded"), None);
    }

    #[test]
    fn test_error_messages() {
        assert_eq!(HttpError::Malformed.status(), 400);
        assert_eq!(HttpError::UnsupportedVersion.status(), 505);
        assert_eq!(QueryError::MissingInfoHash.as_str(), "missing info_hash");
        assert_eq!(QueryError::InvalidPort.as_str(), "invalid port");
        assert_eq!(QueryError::InvalidEvent.as_str(), "invalid event");
    }

    #[test]
    fn test_percent_decode() {
        let mut buf = [0u8; 8];
        let mut dec = |src: &[u8]| percent_decode_into(src, &mut buf).map(|n| buf[..n].to_vec());
        assert_eq!(dec(b""), Ok(vec![]));
        assert_eq!(dec(b"%41%6a%6A"), Ok(b"Ajj".to_vec()));
        assert_eq!(dec(b"a+b"), Ok(b"a+b".to_vec()));
        assert_eq!(dec(b"%2B%2b+"), Ok(b"+++".to_vec()));
        assert_eq!(dec(b"\xff%ff"), Ok(vec![0xff, 0xff]));
        assert_eq!(dec(b"%00"), Ok(vec![0]));
        assert_eq!(dec(b"12345678"), Ok(b"12345678".to_vec()));
        assert_eq!(dec(b"123456789"), Err(QueryError::TooLong));
        for bad in [&b"%"[..], b"%4", b"%4g", b"%g4", b"ab%", b"%%41", b"% 41"] {
            assert_eq!(dec(bad), Err(QueryError::BadEscape), "{bad:?}");
        }
        assert_eq!(percent_decode_into(b"a", &mut []), Err(QueryError::TooLong));
    }

    #[test]
    fn test_query_pairs() {
        let pairs: Vec<_> = query_pairs(b"a=1&&b&c=&=d&e=f=g&").collect();
        assert_eq!(
            pairs,
            vec![
                (&b"a"[..], &b"1"[..]),
                (b"b", b""),
                (b"c", b""),
                (b"", b"d"),
                (b"e", b"f=g"),
            ]
        );
        assert_eq!(query_pairs(b"").count(), 0);
        assert_eq!(query_pairs(b"&&&").count(), 0);
    }

    #[test]
    fn test_announce_minimal_defaults() {
        let a = announce(&minimal()).unwrap();
        assert_eq!(a.info_hash, HASH);
        assert_eq!(&a.peer_id, PEER_ID);
        assert_eq!(a.port, 6881);
        assert_eq!((a.uploaded, a.downloaded, a.left), (0, 0, 0));
        assert_eq!(a.event, Event::None);
        assert!(a.compact);
        assert!(!a.no_peer_id);
        assert_eq!(a.numwant, None);
        assert_eq!(a.key, None);
    }

    #[test]
    fn test_announce_missing_and_invalid() {
        let ih = escape_all(&HASH);
        let pid = escape_all(PEER_ID);
        let cases: &[(String, QueryError)] = &[
            (format!("peer_id={pid}&port=1"), QueryError::MissingInfoHash),
            (format!("info_hash={ih}&port=1"), QueryError::MissingPeerId),
            (
                format!("info_hash={ih}&peer_id={pid}"),
                QueryError::MissingPort,
            ),
            // Error order: info_hash first.
            (
                "info_hash=short&peer_id=short".to_string(),
                QueryError::InvalidInfoHash,
            ),
            (
                format!("info_hash={ih}%00&peer_id={pid}&port=1"),
                QueryError::InvalidInfoHash,
            ),
            (
                format!("info_hash={}&peer_id={pid}&port=1", &ih[3..]),
                QueryError::InvalidInfoHash,
            ),
            (
                format!("info_hash={}%zz&peer_id={pid}&port=1", &ih[3..]),
                QueryError::InvalidInfoHash,
            ),
            (
                format!("info_hash=&peer_id={pid}&port=1"),
                QueryError::InvalidInfoHash,
            ),
            (
                format!("info_hash={ih}&peer_id=-lt2010-abc&port=1"),
                QueryError::InvalidPeerId,
            ),
            (
                format!("info_hash={ih}&peer_id={pid}&port=0"),
                QueryError::InvalidPort,
            ),
            (
                format!("info_hash={ih}&peer_id={pid}&port=65536"),
                QueryError::InvalidPort,
            ),
            (
                format!("info_hash={ih}&peer_id={pid}&port=-1"),
                QueryError::InvalidPort,
            ),
            (
                format!("info_hash={ih}&peer_id={pid}&port="),
                QueryError::InvalidPort,
            ),
            (
                format!("info_hash={ih}&peer_id={pid}&port=68x1"),
                QueryError::InvalidPort,
            ),
            (
                format!("{}&uploaded=1e3", minimal()),
                QueryError::InvalidUploaded,
            ),
            (
                format!("{}&downloaded=", minimal()),
                QueryError::InvalidDownloaded,
            ),
            (format!("{}&left=+5", minimal()), QueryError::InvalidLeft),
            (
                format!("{}&left=99999999999999999999", minimal()),
                QueryError::InvalidLeft,
            ),
            (format!("{}&left=-", minimal()), QueryError::InvalidLeft),
            (
                format!("{}&event=start", minimal()),
                QueryError::InvalidEvent,
            ),
            (
                format!("{}&event=STARTED", minimal()),
                QueryError::InvalidEvent,
            ),
            (format!("{}&event=%zz", minimal()), QueryError::InvalidEvent),
        ];
        for (query, want) in cases {
            assert_eq!(announce(query), Err(*want), "{query}");
        }
    }

    #[test]
    fn test_announce_numbers() {
        let a = announce(&format!(
            "{}&uploaded=18446744073709551615&downloaded=%31%32&left=0&port=65535",
            minimal()
        ))
        .unwrap();
        assert_eq!(
            (a.uploaded, a.downloaded, a.left, a.port),
            (u64::MAX, 12, 0, 65535)
        );
        // Negative stats: uploaded/downloaded clamp to 0; left means "unknown,
        // still downloading".
        let a = announce(&format!("{}&uploaded=-5&downloaded=-1&left=-1", minimal())).unwrap();
        assert_eq!((a.uploaded, a.downloaded, a.left), (0, 0, u64::MAX));
        assert_eq!(announce(&format!("{}&left=-0", minimal())).unwrap().left, 0);
        assert_eq!(
            announce(&format!("{}&left=007", minimal())).unwrap().left,
            7
        );
    }

    #[test]
    fn test_announce_options() {
        let q = |extra: &str| announce(&format!("{}&{extra}", minimal())).unwrap();
        assert_eq!(q("event=completed").event, Event::Completed);
        assert_eq!(q("event=stopped").event, Event::Stopped);
        assert_eq!(q("event=paused").event, Event::None);
        assert_eq!(q("event=empty").event, Event::None);
        assert_eq!(q("event=").event, Event::None);
        assert_eq!(q("event=%73tarted").event, Event::Started);
        assert!(!q("compact=0").compact);
        assert!(q("compact=1").compact);
        assert!(q("compact").compact);
        assert!(q("no_peer_id").no_peer_id);
        assert!(!q("no_peer_id=0").no_peer_id);
        assert_eq!(q("numwant=0").numwant, Some(0));
        assert_eq!(q("num_want=50").numwant, Some(50));
        assert_eq!(q("numwant=-1").numwant, None);
        assert_eq!(q("numwant=lots").numwant, None);
        assert_eq!(q("numwant=99999999999").numwant, Some(u32::MAX));
        assert_eq!(q("key=8f3a9B01").key, Some(0x8f3a_9b01));
        assert_eq!(q("key=123456789").key, None);
        assert_eq!(q("key=xyz").key, None);
        // Ignored: unknown parameters, trackerid, ip, passkeys.
        let a = q("trackerid=abc&ip=10.0.0.1&passkey=s3cr3t&supportcrypto=1&=&x");
        assert_eq!(a, announce(&minimal()).unwrap());
    }

    #[test]
    fn test_announce_duplicates_last_wins() {
        let a = announce(&format!(
            "info_hash=garbage&{}&port=1&event=bogus&event=started&numwant=5&num_want=7",
            minimal()
        ))
        .unwrap();
        assert_eq!(a.info_hash, HASH);
        assert_eq!(a.port, 1);
        assert_eq!(a.event, Event::Started);
        assert_eq!(a.numwant, Some(7));
        assert_eq!(
            announce(&format!("{}&port=0", minimal())),
            Err(QueryError::InvalidPort)
        );
    }

    #[test]
    fn test_scrape_hashes() {
        let other = [0xab; 20];
        let query = format!(
            "info_hash={}&info_hash={}&foo=bar&info_hash={}&info_hash=short",
            escape_all(&HASH),
            escape_all(&other),
            escape_all(&HASH)
        );
        let got: Vec<_> = scrape_hashes(query.as_bytes()).collect();
        assert_eq!(
            got,
            vec![
                Ok(HASH),
                Ok(other),
                Ok(HASH),
                Err(QueryError::InvalidInfoHash)
            ]
        );
        assert_eq!(scrape_hashes(b"").count(), 0);
        assert_eq!(scrape_hashes(b"passkey=x").count(), 0);
        let raw: Vec<_> = scrape_hashes(b"info_hash=aaaaaaaaaaaaaaaaaaa%2b").collect();
        assert_eq!(raw, vec![Ok(*b"aaaaaaaaaaaaaaaaaaa+")]);
    }

    #[test]
    fn test_emit_response_head() {
        let mut out = Vec::new();
        write_response_head(&mut out, 200, "text/plain", 1234, true);
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1234\r\n\
              Connection: keep-alive\r\n\r\n"
        );
        out.clear();
        write_response_head(&mut out, 405, "text/plain", 0, false);
        assert_eq!(
            out,
            b"HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain\r\n\
              Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
        for (status, reason) in [
            (400, "Bad Request"),
            (404, "Not Found"),
            (408, "Request Timeout"),
            (413, "Content Too Large"),
            (431, "Request Header Fields Too Large"),
            (500, "Internal Server Error"),
            (503, "Service Unavailable"),
        ] {
            out.clear();
            write_response_head(&mut out, status, "x", 0, false);
            let line = format!("HTTP/1.1 {status} {reason}\r\n");
            assert!(out.starts_with(line.as_bytes()), "{status}");
        }
    }

    #[test]
    fn test_every_prefix_of_garbage_never_panics() {
        let req = libtorrent_request();
        for len in 0..=req.len() {
            for flip in [0u8, 0x20, 0x80] {
                let mut b = req[..len].to_vec();
                if let Some(last) = b.last_mut() {
                    *last ^= flip;
                }
                let _ = parse_head(&b);
            }
        }
    }

    /// Encodes each byte either as `%XX` (random case) or raw when a raw byte
    /// is unambiguous in a query value (anything but `%` and `&`).
    fn encode(bytes: &[u8], raw_mask: u32, lower_mask: u32) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, &b) in bytes.iter().enumerate() {
            if raw_mask >> i & 1 == 1 && b != b'%' && b != b'&' {
                out.push(b);
            } else if lower_mask >> i & 1 == 1 {
                out.extend_from_slice(format!("%{b:02x}").as_bytes());
            } else {
                out.extend_from_slice(format!("%{b:02X}").as_bytes());
            }
        }
        out
    }

    proptest! {
        #[test]
        fn prop_announce_round_trip(
            ih in any::<[u8; 20]>(),
            pid in any::<[u8; 20]>(),
            port in 1u16..,
            left in any::<u64>(),
            raw_mask in any::<u32>(),
            lower_mask in any::<u32>(),
        ) {
            let mut q = b"info_hash=".to_vec();
            q.extend(encode(&ih, raw_mask, lower_mask));
            q.extend_from_slice(b"&peer_id=");
            q.extend(encode(&pid, !raw_mask, lower_mask));
            q.extend_from_slice(format!("&port={port}&left={left}").as_bytes());
            let a = parse_announce(&q).unwrap();
            prop_assert_eq!(a.info_hash, ih);
            prop_assert_eq!(a.peer_id, pid);
            prop_assert_eq!(a.port, port);
            prop_assert_eq!(a.left, left);
            let hashes: Vec<_> = scrape_hashes(&q).collect();
            prop_assert_eq!(hashes, vec![Ok(ih)]);
        }

        #[test]
        fn prop_head_round_trip(ih in any::<[u8; 20]>(), raw_mask in any::<u32>()) {
            // Raw bytes are only safe in a request line when visible or >= 0x80.
            let mut target = b"/announce?info_hash=".to_vec();
            for (i, &b) in ih.iter().enumerate() {
                if raw_mask >> i & 1 == 1 && is_target_byte(b) && b != b'%' && b != b'&' {
                    target.push(b);
                } else {
                    target.extend_from_slice(format!("%{b:02X}").as_bytes());
                }
            }
            let mut req = b"GET ".to_vec();
            req.extend_from_slice(&target);
            req.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
            let (h, len) = parse_head(&req).unwrap().unwrap();
            prop_assert_eq!(len, req.len());
            let hashes: Vec<_> = scrape_hashes(h.query).collect();
            prop_assert_eq!(hashes, vec![Ok(ih)]);
        }

        #[test]
        fn prop_random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(Some((h, len))) = parse_head(&bytes) {
                prop_assert!(len <= bytes.len());
                let _ = h.header("connection");
                let _ = h.headers().count();
            }
            let _ = parse_announce(&bytes);
            let _ = scrape_hashes(&bytes).count();
            let _ = query_pairs(&bytes).count();
            let _ = percent_decode_into(&bytes, &mut [0u8; 20]);
        }

        #[test]
        fn prop_request_shaped_bytes_never_panic(
            tail in proptest::collection::vec(
                prop_oneof![Just(b'\r'), Just(b'\n'), Just(b' '), Just(b':'), Just(b'%'), Just(b'&'), Just(b'='), any::<u8>()],
                0..200,
            ),
            prefix in prop_oneof![Just(&b"GET /announce?"[..]), Just(&b"GET / HTTP/1.1\r\n"[..]), Just(&b""[..])],
        ) {
            let mut buf = prefix.to_vec();
            buf.extend_from_slice(&tail);
            let _ = parse_head(&buf);
            let _ = parse_announce(&buf);
            let _ = scrape_hashes(&buf).count();
        }
    }
}
