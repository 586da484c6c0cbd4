//! The HTTP tracker client: one `GET` per call over a plain `TcpStream`.
//!
//! Announce (BEP 3, compact BEP 23, IPv6 `peers6` BEP 7) and scrape (BEP 48
//! convention for the URL). The request sends `Connection: close`; the reply
//! is read until EOF, or until `Content-Length` / the last chunk says it is
//! complete, capped at [`MAX_REPLY`] bytes and bounded in time by the
//! client's timeout per connect and per read. Tries are retried, with the
//! timeout doubled, only when the tracker does not answer in time.

use super::bencode::{self, Value};
use super::{
    backoff, AnnounceParams, AnnounceResponse, Client, ClientError, Event, ScrapeStats, TrackerUrl,
};
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Largest HTTP reply read, head and body.
pub const MAX_REPLY: usize = 1 << 20;

/// Appends `bytes` percent-encoded for a query string: RFC 3986 unreserved
/// characters (`A-Z a-z 0-9 - . _ ~`) as they are, every other byte as `%XX`.
pub fn percent_encode(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
}

/// The announce query parameters (without the leading `?`/`&`).
pub fn announce_query(p: &AnnounceParams) -> String {
    let mut q = String::with_capacity(256);
    q.push_str("info_hash=");
    percent_encode(&mut q, &p.info_hash);
    q.push_str("&peer_id=");
    percent_encode(&mut q, &p.peer_id);
    q.push_str(&format!(
        "&port={}&uploaded={}&downloaded={}&left={}&compact=1&key={:08x}",
        p.port, p.uploaded, p.downloaded, p.left, p.key
    ));
    let event = match p.event {
        Event::Started => Some("started"),
        Event::Completed => Some("completed"),
        Event::Stopped => Some("stopped"),
        Event::None => None,
    };
    if let Some(e) = event {
        q.push_str("&event=");
        q.push_str(e);
    }
    if let Some(n) = p.numwant {
        q.push_str(&format!("&numwant={n}"));
    }
    q
}

/// `target` with `query` appended after `?` or `&`.
fn with_query(target: &str, query: &str) -> String {
    let sep = if target.contains('?') { '&' } else { '?' };
    format!("{target}{sep}{query}")
}

pub fn announce(
    url: &TrackerUrl,
    addr: SocketAddr,
    p: &AnnounceParams,
    client: &Client,
) -> Result<AnnounceResponse, ClientError> {
    let target = with_query(url.request_target(), &announce_query(p));
    let body = get(url, addr, &target, client)?;
    parse_announce(&body)
}

pub fn scrape(
    url: &TrackerUrl,
    addr: SocketAddr,
    info_hashes: &[[u8; 20]],
    client: &Client,
) -> Result<Vec<Option<ScrapeStats>>, ClientError> {
    let mut stats = Vec::with_capacity(info_hashes.len());
    for chunk in info_hashes.chunks(super::SCRAPE_CHUNK) {
        let mut q = String::new();
        for (i, h) in chunk.iter().enumerate() {
            q.push_str(if i == 0 { "info_hash=" } else { "&info_hash=" });
            percent_encode(&mut q, h);
        }
        let body = get(url, addr, &with_query(url.request_target(), &q), client)?;
        stats.extend(parse_scrape(&body, chunk)?);
    }
    Ok(stats)
}

/// `GET target` with retries on timeout; the body of a 200 reply. A non-200
/// reply whose body carries a `failure reason` is a tracker error.
fn get(
    url: &TrackerUrl,
    addr: SocketAddr,
    target: &str,
    client: &Client,
) -> Result<Vec<u8>, ClientError> {
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: {}\r\nUser-Agent: shoal/{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        url.host_header(),
        env!("CARGO_PKG_VERSION")
    );
    let tries = client.tries.max(1);
    for n in 0..tries {
        let wait = backoff(client.timeout.max(Duration::from_millis(1)), n);
        match get_once(addr, request.as_bytes(), wait) {
            Ok(reply) => {
                let (status, reason, body) = parse_reply(&reply)?;
                if status == 200 {
                    return Ok(body);
                }
                if let Some(Err(e @ ClientError::Tracker(_))) =
                    bencode::decode(&body).ok().map(|v| failure(&v))
                {
                    return Err(e);
                }
                return Err(ClientError::HttpStatus(status, reason));
            }
            Err(e) if is_timeout(&e) => continue,
            Err(e) => return Err(ClientError::Io(e)),
        }
    }
    Err(ClientError::Timeout {
        tries,
        first_timeout: client.timeout,
    })
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// One request: the raw reply, read until EOF or complete, within `wait` in all.
fn get_once(addr: SocketAddr, request: &[u8], wait: Duration) -> io::Result<Vec<u8>> {
    let deadline = Instant::now() + wait;
    let left = || {
        let d = deadline.saturating_duration_since(Instant::now());
        if d.is_zero() {
            Err(io::Error::from(io::ErrorKind::TimedOut))
        } else {
            Ok(d)
        }
    };
    let mut stream = TcpStream::connect_timeout(&addr, left()?)?;
    stream.set_write_timeout(Some(left()?))?;
    stream.write_all(request)?;
    let (reply, _) = read_reply(&mut &stream, || stream.set_read_timeout(Some(left()?)))?;
    Ok(reply)
}

/// Reads a raw reply from `r` until EOF, or until the reply declares its
/// length and has all of it (so a server that keeps the connection open
/// despite `Connection: close` does not stall us), at most [`MAX_REPLY`]
/// bytes. `before_read` runs before every read (it arms the deadline).
///
/// However the reply is split into reads, the work is linear in its size:
/// [`Framing`] examines each byte of the head and of the chunk-size lines
/// once and skips over body data, instead of re-parsing everything received
/// after every read (quadratic in the number of reads up to 1 MiB).
fn read_reply(
    r: &mut impl Read,
    mut before_read: impl FnMut() -> io::Result<()>,
) -> io::Result<(Vec<u8>, Framing)> {
    let mut reply = Vec::with_capacity(4096);
    let mut chunk = [0u8; 16 * 1024];
    let mut framing = Framing::default();
    loop {
        before_read()?;
        let n = match r.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok((reply, framing));
        }
        if reply.len() + n > MAX_REPLY {
            return Err(io::Error::other(format!(
                "reply larger than {MAX_REPLY} bytes"
            )));
        }
        reply.extend_from_slice(&chunk[..n]);
        if framing.is_complete(&reply) {
            return Ok((reply, framing));
        }
    }
}

/// Where the framing of a reply being received stands. [`Framing::is_complete`]
/// is called with the whole reply so far after every read and resumes where
/// the previous call stopped.
#[derive(Debug, Default)]
struct Framing {
    state: FrameState,
    /// Bytes examined so far, head parse included: the work done, which tests
    /// check stays linear in the reply's size.
    examined: usize,
}

#[derive(Debug)]
enum FrameState {
    /// Looking for the empty line that ends the head: the next byte to look
    /// at and the start of the current line.
    Head { next: usize, line: usize },
    /// `Content-Length` given: the reply is whole at this many bytes.
    Length(usize),
    /// Chunked: the next chunk-size line starts at `line`, and is scanned up to `next`.
    Chunked { line: usize, next: usize },
    /// Neither length nor chunked, or a head httparse rejects: whole at EOF
    /// (and the final parse says what was wrong).
    UntilEof,
    /// The last chunk was seen, or the chunked framing is broken (the final
    /// parse reports it): stop reading.
    Done,
}

impl Default for FrameState {
    fn default() -> FrameState {
        FrameState::Head { next: 0, line: 0 }
    }
}

impl Framing {
    /// Whether `reply` (everything received so far; it only ever grows) is a
    /// whole reply.
    fn is_complete(&mut self, reply: &[u8]) -> bool {
        loop {
            match self.state {
                FrameState::Head { next, line } => {
                    let Some(head_len) = self.find_blank_line(reply, next, line) else {
                        return false;
                    };
                    self.state = self.framing_of(&reply[..head_len]);
                }
                FrameState::Length(end) => return reply.len() >= end,
                FrameState::Chunked { line, next } => {
                    if line > reply.len() {
                        return false; // still inside a chunk's data
                    }
                    let Some(eol) = self.find_byte(reply, next, b'\n') else {
                        self.state = FrameState::Chunked {
                            line,
                            next: reply.len(),
                        };
                        return false;
                    };
                    // The size line, CRLF excluded (a bare LF is caught by the final parse).
                    let text = reply[line..eol].strip_suffix(b"\r").unwrap_or(&[]);
                    self.state = match chunk_size(text) {
                        Some(0) => FrameState::Done,
                        // Skip the data and its CRLF without looking at them.
                        Some(size) => match size.checked_add(eol + 3) {
                            Some(at) => FrameState::Chunked { line: at, next: at },
                            None => FrameState::Done,
                        },
                        None => FrameState::Done,
                    };
                }
                FrameState::UntilEof => return false,
                FrameState::Done => return true,
            }
        }
    }

    /// The offset just past the head's ending empty line, scanning from
    /// `next` (the current line began at `line`); saves the position if not yet found.
    fn find_blank_line(&mut self, reply: &[u8], mut next: usize, mut line: usize) -> Option<usize> {
        while let Some(eol) = self.find_byte(reply, next, b'\n') {
            if matches!(&reply[line..eol], b"" | b"\r") {
                return Some(eol + 1);
            }
            line = eol + 1;
            next = eol + 1;
        }
        self.state = FrameState::Head {
            next: reply.len(),
            line,
        };
        None
    }

    /// The first `byte` at or after `from`, counting the bytes looked at.
    fn find_byte(&mut self, reply: &[u8], from: usize, byte: u8) -> Option<usize> {
        let rest = reply.get(from..)?;
        let found = rest.iter().position(|&b| b == byte);
        self.examined += found.map_or(rest.len(), |i| i + 1);
        found.map(|i| from + i)
    }

    /// How the body after `head` is framed (one httparse pass over the head).
    fn framing_of(&mut self, head: &[u8]) -> FrameState {
        self.examined += head.len();
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut r = httparse::Response::new(&mut headers);
        match r.parse(head) {
            Ok(httparse::Status::Complete(n)) => {
                if is_chunked(r.headers) {
                    FrameState::Chunked { line: n, next: n }
                } else if let Some(len) = content_length(r.headers) {
                    n.checked_add(len)
                        .map_or(FrameState::UntilEof, FrameState::Length)
                } else {
                    FrameState::UntilEof
                }
            }
            _ => FrameState::UntilEof,
        }
    }
}

/// The size of a chunk from its size line (extensions after `;` ignored).
fn chunk_size(line: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(line).ok()?;
    usize::from_str_radix(text.split(';').next().unwrap_or("").trim(), 16).ok()
}

fn header<'h>(headers: &'h [httparse::Header<'_>], name: &str) -> Option<&'h [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

fn content_length(headers: &[httparse::Header<'_>]) -> Option<usize> {
    std::str::from_utf8(header(headers, "content-length")?)
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn is_chunked(headers: &[httparse::Header<'_>]) -> bool {
    header(headers, "transfer-encoding").is_some_and(|v| {
        String::from_utf8_lossy(v)
            .to_ascii_lowercase()
            .contains("chunked")
    })
}

/// Status, reason phrase and body of a whole raw reply.
fn parse_reply(reply: &[u8]) -> Result<(u16, String, Vec<u8>), ClientError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut r = httparse::Response::new(&mut headers);
    let head_len = match r.parse(reply) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if reply.is_empty() => {
            return Err(ClientError::Malformed(
                "connection closed without a reply".into(),
            ))
        }
        Ok(httparse::Status::Partial) => {
            return Err(ClientError::Malformed("incomplete HTTP head".into()))
        }
        Err(e) => return Err(ClientError::Malformed(format!("bad HTTP head: {e}"))),
    };
    let status = r.code.unwrap_or(0);
    let reason = r.reason.unwrap_or("").to_string();
    if let Some(enc) = header(r.headers, "content-encoding") {
        if !enc.eq_ignore_ascii_case(b"identity") {
            return Err(ClientError::Malformed(format!(
                "compressed reply ({}) not supported",
                String::from_utf8_lossy(enc)
            )));
        }
    }
    let raw = &reply[head_len..];
    let body = if is_chunked(r.headers) {
        dechunk(raw)?
    } else if let Some(len) = content_length(r.headers) {
        match raw.get(..len) {
            Some(b) => b.to_vec(),
            None => {
                return Err(ClientError::Malformed(format!(
                    "reply ended after {} of {len} body bytes",
                    raw.len()
                )))
            }
        }
    } else {
        raw.to_vec()
    };
    Ok((status, reason, body))
}

/// Decode a `Transfer-Encoding: chunked` body (chunk extensions and trailers ignored).
fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>, ClientError> {
    let bad = |m: &str| ClientError::Malformed(format!("bad chunked body: {m}"));
    let mut body = Vec::new();
    loop {
        let eol = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| bad("truncated"))?;
        let size = chunk_size(&raw[..eol]).ok_or_else(|| bad("size"))?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Ok(body);
        }
        let data = raw.get(..size).ok_or_else(|| bad("truncated"))?;
        body.extend_from_slice(data);
        raw = raw
            .get(size..)
            .and_then(|r| r.strip_prefix(b"\r\n"))
            .ok_or_else(|| bad("missing CRLF after a chunk"))?;
    }
}

/// `Err(Tracker)` if the dict has a `failure reason`.
fn failure(v: &Value<'_>) -> Result<(), ClientError> {
    match v.get(b"failure reason") {
        Some(Value::Bytes(m)) => Err(ClientError::Tracker(
            String::from_utf8_lossy(m).into_owned(),
        )),
        Some(_) => Err(ClientError::Tracker(
            "(failure reason is not a string)".into(),
        )),
        None => Ok(()),
    }
}

fn decode_dict(body: &[u8]) -> Result<Value<'_>, ClientError> {
    match bencode::decode(body) {
        Ok(v @ Value::Dict(_)) => Ok(v),
        Ok(_) => Err(ClientError::Malformed(
            "reply is not a bencoded dict".into(),
        )),
        Err(e) => Err(ClientError::Malformed(e.as_str().into())),
    }
}

/// An optional non-negative integer that fits a `u32`.
fn get_u32(v: &Value<'_>, key: &str) -> Result<Option<u32>, ClientError> {
    match v.get(key.as_bytes()) {
        None => Ok(None),
        Some(Value::Int(n)) => u32::try_from(*n)
            .map(Some)
            .map_err(|_| ClientError::Malformed(format!("{key:?} out of range: {n}"))),
        Some(_) => Err(ClientError::Malformed(format!("{key:?} is not an integer"))),
    }
}

/// Parse a bencoded announce reply.
pub fn parse_announce(body: &[u8]) -> Result<AnnounceResponse, ClientError> {
    let v = decode_dict(body)?;
    failure(&v)?;
    let interval =
        get_u32(&v, "interval")?.ok_or_else(|| ClientError::Malformed("no \"interval\"".into()))?;
    let mut peers = match v.get(b"peers") {
        None => Vec::new(),
        Some(Value::Bytes(b)) => super::udp::compact_peers(b, 6)?,
        Some(Value::List(list)) => list.iter().map(dict_peer).collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ClientError::Malformed(
                "\"peers\" is neither a string nor a list".into(),
            ))
        }
    };
    match v.get(b"peers6") {
        None => {}
        Some(Value::Bytes(b)) => peers.extend(super::udp::compact_peers(b, 18)?),
        Some(_) => return Err(ClientError::Malformed("\"peers6\" is not a string".into())),
    }
    let warning = match v.get(b"warning message") {
        Some(Value::Bytes(m)) => Some(String::from_utf8_lossy(m).into_owned()),
        _ => None,
    };
    Ok(AnnounceResponse {
        interval,
        min_interval: get_u32(&v, "min interval")?,
        seeders: get_u32(&v, "complete")?.unwrap_or(0),
        leechers: get_u32(&v, "incomplete")?.unwrap_or(0),
        peers,
        warning,
    })
}

/// A non-compact peer: `{ip: "1.2.3.4" or "::1", port: N, peer id: …}`.
fn dict_peer(v: &Value<'_>) -> Result<SocketAddr, ClientError> {
    let bad = || ClientError::Malformed("bad peer in the \"peers\" list".into());
    let ip = v.get(b"ip").and_then(Value::as_bytes).ok_or_else(bad)?;
    let ip: IpAddr = std::str::from_utf8(ip)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let port = v.get(b"port").and_then(Value::as_int).ok_or_else(bad)?;
    let port = u16::try_from(port).map_err(|_| bad())?;
    Ok(SocketAddr::new(ip, port))
}

/// Parse a bencoded scrape reply: one entry per requested hash, `None` where
/// the `files` dict lacks it.
pub fn parse_scrape(
    body: &[u8],
    info_hashes: &[[u8; 20]],
) -> Result<Vec<Option<ScrapeStats>>, ClientError> {
    let v = decode_dict(body)?;
    failure(&v)?;
    let files = match v.get(b"files") {
        Some(f @ Value::Dict(_)) => f,
        _ => return Err(ClientError::Malformed("no \"files\" dict".into())),
    };
    info_hashes
        .iter()
        .map(|h| match files.get(h) {
            None => Ok(None),
            Some(f @ Value::Dict(_)) => Ok(Some(ScrapeStats {
                seeders: get_u32(f, "complete")?.unwrap_or(0),
                completed: get_u32(f, "downloaded")?.unwrap_or(0),
                leechers: get_u32(f, "incomplete")?.unwrap_or(0),
            })),
            Some(_) => Err(ClientError::Malformed(
                "a \"files\" entry is not a dict".into(),
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_percent_encode() {
        let mut s = String::new();
        percent_encode(&mut s, b"aZ09-._~ /%+\x00\xff");
        assert_eq!(s, "aZ09-._~%20%2F%25%2B%00%FF");
        // Round trip through the tracker's own decoder.
        let bytes: Vec<u8> = (0..=255).collect();
        let mut s = String::new();
        percent_encode(&mut s, &bytes);
        let mut back = [0u8; 256];
        let n = crate::wire::http::percent_decode_into(s.as_bytes(), &mut back).unwrap();
        assert_eq!(&back[..n], &bytes[..]);
    }

    #[test]
    fn test_announce_query() {
        let mut p = AnnounceParams::new([0xab; 20], 6881);
        p.peer_id = *b"-SH0100-abcdefghijkl";
        p.numwant = Some(5);
        p.key = 0x1234;
        let q = announce_query(&p);
        assert_eq!(
            q,
            format!(
                "info_hash={}&peer_id=-SH0100-abcdefghijkl&port=6881&uploaded=0&downloaded=0&left=1&compact=1&key=00001234&event=started&numwant=5",
                "%AB".repeat(20)
            )
        );
        assert_eq!(with_query("/announce", "a=1"), "/announce?a=1");
        assert_eq!(with_query("/announce?k=x", "a=1"), "/announce?k=x&a=1");
    }

    #[test]
    fn test_parse_announce_fixtures() {
        let mut body =
            b"d8:completei3e10:incompletei1e8:intervali1800e12:min intervali900e5:peers12:"
                .to_vec();
        body.extend_from_slice(&[10, 0, 0, 1, 0x1a, 0xe1, 10, 0, 0, 2, 0x1a, 0xe2]);
        body.extend_from_slice(b"6:peers618:");
        body.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 80]);
        body.extend_from_slice(b"15:warning message4:oopse");
        let r = parse_announce(&body).unwrap();
        assert_eq!(
            (r.interval, r.min_interval, r.seeders, r.leechers),
            (1800, Some(900), 3, 1)
        );
        assert_eq!(
            r.peers,
            vec![
                "10.0.0.1:6881".parse::<SocketAddr>().unwrap(),
                "10.0.0.2:6882".parse().unwrap(),
                "[::1]:80".parse().unwrap()
            ]
        );
        assert_eq!(r.warning.as_deref(), Some("oops"));
        // Non-compact list of dicts, no counts.
        let r = parse_announce(
            b"d8:intervali60e5:peersld2:ip3:::17:peer id20:aaaaaaaaaaaaaaaaaaaa4:porti1eed2:ip7:1.2.3.44:porti2eeee",
        )
        .unwrap();
        assert_eq!(
            r.peers,
            vec![
                "[::1]:1".parse::<SocketAddr>().unwrap(),
                "1.2.3.4:2".parse().unwrap()
            ]
        );
        assert_eq!((r.seeders, r.leechers), (0, 0));
    }

    #[test]
    fn test_parse_announce_errors() {
        let err = |b: &[u8]| parse_announce(b).unwrap_err().to_string();
        assert_eq!(
            err(b"d14:failure reason12:unregisterede"),
            "tracker error: unregistered"
        );
        assert_eq!(err(b"d5:peers0:e"), "malformed reply: no \"interval\"");
        assert_eq!(
            err(b"d8:intervali-1ee"),
            "malformed reply: \"interval\" out of range: -1"
        );
        assert_eq!(
            err(b"d8:intervali1e5:peers5:abcdee"),
            "malformed reply: peer list of 5 bytes is not a multiple of 6"
        );
        assert_eq!(
            err(b"d8:intervali1e5:peersld2:ip3:bad4:porti1eeee"),
            "malformed reply: bad peer in the \"peers\" list"
        );
        assert_eq!(
            err(b"li1ee"),
            "malformed reply: reply is not a bencoded dict"
        );
        assert_eq!(
            err(b"<html>"),
            "malformed reply: unexpected byte in bencode"
        );
    }

    #[test]
    fn test_parse_scrape_fixture() {
        let mut body = b"d5:filesd20:".to_vec();
        body.extend_from_slice(&[1; 20]);
        body.extend_from_slice(b"d8:completei5e10:downloadedi7e10:incompletei2eeee");
        let r = parse_scrape(&body, &[[1; 20], [2; 20]]).unwrap();
        assert_eq!(
            r,
            vec![
                Some(ScrapeStats {
                    seeders: 5,
                    completed: 7,
                    leechers: 2
                }),
                None
            ]
        );
        assert!(parse_scrape(b"de", &[[1; 20]]).is_err());
    }

    #[test]
    fn test_parse_reply_framing() {
        let (s, _, b) = parse_reply(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef").unwrap();
        assert_eq!((s, b.as_slice()), (200, &b"abc"[..]));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_reply(chunked).unwrap().2, b"abcde");
        assert!(Framing::default().is_complete(chunked));
        assert!(!Framing::default().is_complete(&chunked[..chunked.len() - 8]));
        let (s, r, b) = parse_reply(b"HTTP/1.0 404 Not Found\r\n\r\nnope").unwrap();
        assert_eq!(
            (s, r.as_str(), b.as_slice()),
            (404, "Not Found", &b"nope"[..])
        );
        assert!(parse_reply(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc").is_err());
        assert!(parse_reply(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n").is_err());
        assert!(parse_reply(b"").is_err());
        assert!(parse_reply(b"garbage\r\n\r\n").is_err());
    }

    /// Hands out `data` at most `piece` bytes per read; reading past the end
    /// is an error (the server holds the connection open), so the reply must
    /// be recognised as whole from its framing.
    struct Dribble<'a> {
        data: &'a [u8],
        piece: usize,
    }

    impl Read for Dribble<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.data.is_empty() {
                return Err(io::Error::other("read past the end of the reply"));
            }
            let n = self.piece.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// A reply of almost 1 MiB read 97 bytes at a time (about 10 400 reads):
    /// the body comes out whole and the framing examines each byte at most
    /// twice. Re-parsing everything after every read, as before, examined
    /// about 5 * 10^9 bytes for the chunked reply (n^2 / 2 / 97).
    #[test]
    fn test_large_reply_in_small_reads_is_linear_work() {
        let body: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for c in body.chunks(1000) {
            chunked.extend_from_slice(format!("{:x};ext=1\r\n", c.len()).as_bytes());
            chunked.extend_from_slice(c);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        let mut sized =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        sized.extend_from_slice(&body);
        for reply in [chunked, sized] {
            assert!(reply.len() <= MAX_REPLY);
            let mut reads = 0;
            let mut r = Dribble {
                data: &reply,
                piece: 97,
            };
            let (got, framing) = read_reply(&mut r, || {
                reads += 1;
                Ok(())
            })
            .unwrap();
            assert_eq!(reads, reply.len().div_ceil(97));
            assert!(got == reply, "the reply is read whole, and no further");
            let (status, _, b) = parse_reply(&got).unwrap();
            assert_eq!(status, 200);
            assert!(b == body, "body differs");
            assert!(
                framing.examined <= 2 * reply.len(),
                "{} bytes examined for a reply of {}",
                framing.examined,
                reply.len()
            );
        }
    }

    #[test]
    fn test_framing_stops_on_broken_chunks_and_waits_for_eof_without_length() {
        let mut f = Framing::default();
        assert!(!f.is_complete(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz"));
        assert!(f.is_complete(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"));
        // A size that overflows is broken framing too, not a wait.
        let mut f = Framing::default();
        assert!(f.is_complete(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n"
        ));
        let mut f = Framing::default();
        let head = b"HTTP/1.0 200 OK\n\nbody";
        for end in 0..=head.len() {
            assert!(
                !f.is_complete(&head[..end]),
                "no length: complete at EOF only"
            );
        }
        // A head that arrives a byte at a time is scanned once.
        let mut f = Framing::default();
        let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        for end in 0..reply.len() {
            assert!(!f.is_complete(&reply[..end]));
        }
        assert!(f.is_complete(reply));
        assert!(f.examined <= 2 * reply.len(), "{}", f.examined);
    }
}
