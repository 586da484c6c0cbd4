//! One-shot HTTP/1.1 requests as a test makes them, and the pieces of a
//! tracker URL.

use super::REPLY_TIMEOUT;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};

/// One HTTP/1.1 response as a test reads it.
pub struct Resp {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Resp {
    /// A response from its head (without the blank line) and its body; the
    /// body must be as long as the head's `Content-Length` says.
    fn new(head: String, body: Vec<u8>) -> Resp {
        assert!(
            head.starts_with("HTTP/1.1 "),
            "not an HTTP/1.1 reply: {head}"
        );
        let status = head[9..12].parse().unwrap();
        if let Some(len) = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
        {
            let len: usize = len.trim().parse().unwrap();
            assert_eq!(body.len(), len, "body length against {head}");
        }
        Resp { status, head, body }
    }

    /// A whole response as read up to the close: head, blank line, body.
    pub fn parse(raw: &[u8]) -> Resp {
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no reply head in {:?}", String::from_utf8_lossy(raw)));
        let head = String::from_utf8(raw[..split].to_vec()).unwrap();
        Resp::new(head, raw[split + 4..].to_vec())
    }

    /// The body as text (it must be UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("a UTF-8 body")
    }

    /// The body as JSON (it must be JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// A connection to `addr` whose reads give up after [`REPLY_TIMEOUT`].
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    s
}

/// Read one HTTP response from `s`: the head byte by byte (so nothing of a
/// next response is consumed), then `Content-Length` bytes of body.
pub fn read_response(s: &mut TcpStream) -> Resp {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut byte).expect("response head"),
            1,
            "closed mid-head: {buf:?}"
        );
        buf.push(byte[0]);
    }
    buf.truncate(buf.len() - 4);
    let head = String::from_utf8(buf).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    Resp::new(head, body)
}

/// `METHOD target` with `headers` (each ending in CRLF) and `body` on a
/// fresh `Connection: close` connection; the response, read up to the close,
/// which must be one whole response and nothing more.
pub fn request(addr: SocketAddr, method: &str, target: &str, headers: &str, body: &[u8]) -> Resp {
    let mut s = connect(addr);
    let length = if body.is_empty() && method == "GET" {
        String::new()
    } else {
        format!("Content-Length: {}\r\n", body.len())
    };
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: t\r\n{headers}{length}Connection: close\r\n\r\n"
    )
    .unwrap();
    // A server may answer (413) and close before taking the whole body.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    if let Err(e) = s.read_to_end(&mut raw) {
        // A reset after the reply (the server closed with our body unread)
        // still leaves the reply; anything else is a failure.
        assert_eq!(
            e.kind(),
            ErrorKind::ConnectionReset,
            "reading the reply: {e}"
        );
    }
    Resp::parse(&raw)
}

/// `GET target` on a fresh connection; the reply (status, head, body).
pub fn get(addr: SocketAddr, target: &str) -> Resp {
    request(addr, "GET", target, "", b"")
}

/// The body of `GET target`, which must answer 200.
pub fn http_get(addr: SocketAddr, target: &str) -> Vec<u8> {
    let r = get(addr, target);
    assert_eq!(
        r.status,
        200,
        "{} {}",
        r.head,
        String::from_utf8_lossy(&r.body)
    );
    r.body
}

/// The text of `/metrics` at `addr` (which must answer 200).
pub fn metrics_text(addr: SocketAddr) -> String {
    String::from_utf8(http_get(addr, "/metrics")).unwrap()
}

/// The value of the sample `name` (with its labels, if any) in `/metrics`
/// at `addr`; panics if there is no such sample or it is not an integer.
pub fn metric(addr: SocketAddr, name: &str) -> u64 {
    let text = metrics_text(addr);
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"));
    value
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{name} {value}: {e}"))
}

/// The server closed the connection (EOF, or a reset).
pub fn assert_closed(s: &mut TcpStream) {
    let mut rest = Vec::new();
    match s.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
    }
}

/// Every byte percent-encoded, as a URL query carries binary values.
pub fn pct(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02x}")).collect()
}

/// Lower-case hex, as the API and the tools print info hashes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The target of an HTTP announce (BEP 3) with nothing uploaded or
/// downloaded; `extra` is appended as is (`"&compact=1"`).
pub fn announce_path(
    ih: [u8; 20],
    peer_id: impl AsRef<[u8]>,
    port: u16,
    left: u64,
    extra: &str,
) -> String {
    format!(
        "/announce?info_hash={}&peer_id={}&port={port}&uploaded=0&downloaded=0&left={left}{extra}",
        pct(&ih),
        pct(peer_id.as_ref())
    )
}
