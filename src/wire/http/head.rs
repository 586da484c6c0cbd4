//! HTTP/1.x heads: parsing a request head, writing a response head.
//!
//! Owns the request line (parsed here, not by `httparse`, because a tracker
//! target may carry raw bytes ≥ 0x80 that are not UTF-8), the header lines
//! (`httparse`), the framing rules (keep-alive, `Content-Length`, no
//! `Transfer-Encoding`), the limit on header lines ([`MAX_HEADERS`]), and the
//! response head writer. What the query means belongs to [`super::query`].
//!
//! Guarantees: [`parse_head`] borrows from its input, never allocates and never
//! panics; [`HttpError`] is `Copy` and knows its status code. The response writer
//! only appends to a caller-owned `Vec<u8>`.

use crate::wire::bencode;

/// Most header lines accepted in one request head; more is
/// [`HttpError::TooManyHeaders`]. Tracker clients send about five, browsers
/// about fifteen.
pub const MAX_HEADERS: usize = 32;

/// Largest request head a server buffers: a longer one is refused (431)
/// before it is parsed.
pub const MAX_HEAD: usize = 8 * 1024;

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
pub(super) fn is_target_byte(b: u8) -> bool {
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
    use crate::wire::http::fixtures::libtorrent_request;

    fn head(buf: &[u8]) -> (Head<'_>, usize) {
        parse_head(buf).unwrap().unwrap()
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
    fn test_error_statuses() {
        assert_eq!(HttpError::Malformed.status(), 400);
        assert_eq!(HttpError::UnsupportedVersion.status(), 505);
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
}
