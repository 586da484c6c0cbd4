//! The HTTP(S) tracker client: announce (BEP 3, compact BEP 23, IPv6 `peers6`
//! BEP 7) and scrape (BEP 48 convention for the URL), one `GET` each.
//!
//! HTTP/1.1 framing, redirects and TLS are ureq's (rustls; the system's
//! trusted roots plus any CA given with [`Client::with_ca_pem`]). This file
//! owns the query, the bounds, the bencode reading, and the mapping of every
//! failure to a [`ClientError`] with a one-line message.
//!
//! Bounds: each try has one deadline for host lookup, connect, TLS handshake,
//! request and the whole reply (ureq's global timeout); tries are retried,
//! with the deadline doubled, only when the tracker does not answer in time.
//! The body is read through a hard cap of [`MAX_REPLY`] bytes, whatever its
//! `Content-Length` says or omits, and ureq caps the head at 64 KiB.

use super::bencode::{self, Value};
use super::{
    backoff, AnnounceParams, AnnounceResponse, Client, ClientError, Event, ScrapeStats, TrackerUrl,
};
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

/// Largest reply body read; a longer one is refused.
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

/// One tracker's HTTP(S) client: a ureq agent configured from a [`Client`]
/// (timeouts, tries, trusted roots), for one or more requests.
#[derive(Debug)]
pub struct Http {
    agent: ureq::Agent,
    timeout: Duration,
    tries: u32,
}

impl Http {
    /// The agent for `client`'s settings. The system's roots are read once
    /// per process whichever the scheme, as an http tracker may redirect to
    /// https (measured: about 85 ms of a debug build's start for 144 roots).
    pub fn new(client: &Client) -> Http {
        let config = ureq::Agent::config_builder()
            // Non-200 replies are read: their body may carry a `failure reason`.
            .http_status_as_error(false)
            // Checking a tracker means talking to it, whatever HTTP_PROXY says.
            .proxy(None)
            .user_agent(format!("shoal/{}", env!("CARGO_PKG_VERSION")))
            .tls_config(
                TlsConfig::builder()
                    .root_certs(root_certs(&client.ca_certs))
                    .build(),
            )
            .build();
        Http {
            agent: config.new_agent(),
            timeout: client.timeout.max(Duration::from_millis(1)),
            tries: client.tries.max(1),
        }
    }

    pub fn announce(
        &self,
        url: &TrackerUrl,
        p: &AnnounceParams,
    ) -> Result<AnnounceResponse, ClientError> {
        let target = with_query(url.request_target(), &announce_query(p));
        parse_announce(&self.get(url, &target)?)
    }

    /// Scrape `info_hashes` from `url`, which must already be a scrape URL,
    /// in requests of at most [`super::SCRAPE_CHUNK`] hashes.
    pub fn scrape(
        &self,
        url: &TrackerUrl,
        info_hashes: &[[u8; 20]],
    ) -> Result<Vec<Option<ScrapeStats>>, ClientError> {
        let mut stats = Vec::with_capacity(info_hashes.len());
        for chunk in info_hashes.chunks(super::SCRAPE_CHUNK) {
            let mut q = String::new();
            for (i, h) in chunk.iter().enumerate() {
                q.push_str(if i == 0 { "info_hash=" } else { "&info_hash=" });
                percent_encode(&mut q, h);
            }
            let body = self.get(url, &with_query(url.request_target(), &q))?;
            stats.extend(parse_scrape(&body, chunk)?);
        }
        Ok(stats)
    }

    /// `GET target` with retries on timeout; the body of a 200 reply. A non-200
    /// reply whose body carries a `failure reason` is a tracker error.
    fn get(&self, url: &TrackerUrl, target: &str) -> Result<Vec<u8>, ClientError> {
        let uri = format!("{}://{}{target}", url.scheme().as_str(), url.host_header());
        // ureq resolves the name again (the system usually caches it): this
        // lookup is for the message, ureq's failure being a bare I/O error.
        url.resolve(self.timeout)?;
        for n in 0..self.tries {
            let wait = backoff(self.timeout, n);
            match self.get_once(&uri, url.host(), wait) {
                Err(Failure::Timeout) => continue,
                Err(Failure::Fatal(e)) => return Err(e),
                Ok((200, _, body)) => return Ok(body),
                Ok((status, reason, body)) => {
                    if let Some(Err(e @ ClientError::Tracker(_))) =
                        bencode::decode(&body).ok().map(|v| failure(&v))
                    {
                        return Err(e);
                    }
                    return Err(ClientError::HttpStatus(status, reason.into()));
                }
            }
        }
        Err(ClientError::Timeout {
            tries: self.tries,
            first_timeout: self.timeout,
        })
    }

    /// One request within `wait` in all: status, reason phrase and body.
    fn get_once(
        &self,
        uri: &str,
        host: &str,
        wait: Duration,
    ) -> Result<(u16, &'static str, Vec<u8>), Failure> {
        let mut reply = self
            .agent
            .get(uri)
            // One request per connection, as before ureq: a kept-alive
            // connection the tracker closed meanwhile would fail the next
            // request (ureq does not retry), and a check makes only a few.
            .header("Connection", "close")
            .config()
            .timeout_global(Some(wait))
            .build()
            .call()
            .map_err(|e| Failure::of(e, host))?;
        let status = reply.status();
        if let Some(enc) = reply.headers().get("content-encoding") {
            if !enc.as_bytes().eq_ignore_ascii_case(b"identity") {
                return Err(Failure::Fatal(ClientError::Malformed(format!(
                    "compressed reply ({}) not supported",
                    String::from_utf8_lossy(enc.as_bytes())
                ))));
            }
        }
        let length = reply
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if length.is_some_and(|n| n > MAX_REPLY as u64) {
            return Err(Failure::Fatal(ClientError::TooLarge(MAX_REPLY)));
        }
        let body = read_capped(&mut reply.body_mut().as_reader(), MAX_REPLY).map_err(|e| {
            match (e.kind(), length) {
                // Say how much of the announced body came, as a tracker operator wants to know.
                (io::ErrorKind::UnexpectedEof, Some(len)) => {
                    Failure::Fatal(ClientError::Malformed(format!(
                        "reply ended after {} of {len} body bytes",
                        e.got
                    )))
                }
                _ => Failure::of(ureq::Error::from(e.error), host),
            }
        })?;
        Ok((
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            body.ok_or(Failure::Fatal(ClientError::TooLarge(MAX_REPLY)))?,
        ))
    }
}

/// Why one try failed: worth another try, or not.
enum Failure {
    Timeout,
    Fatal(ClientError),
}

impl Failure {
    /// Classify a ureq error; `host` is for the messages that need it.
    fn of(e: ureq::Error, host: &str) -> Failure {
        let fatal = |e| Failure::Fatal(e);
        match e {
            ureq::Error::Timeout(_) => Failure::Timeout,
            ureq::Error::Io(e) if is_timeout(&e) => Failure::Timeout,
            ureq::Error::Io(e) => match e.get_ref().and_then(|r| r.downcast_ref()) {
                Some(tls) => fatal(tls_error(tls)),
                None => fatal(ClientError::Io(e)),
            },
            ureq::Error::HostNotFound => fatal(ClientError::Resolve {
                host: host.into(),
                reason: "no such host".into(),
            }),
            ureq::Error::Rustls(e) => fatal(tls_error(&e)),
            ureq::Error::Tls(m) => fatal(ClientError::Tls(m.into())),
            ureq::Error::BadUri(m) => fatal(ClientError::Url(m)),
            ureq::Error::Http(e) => fatal(ClientError::Url(e.to_string())),
            ureq::Error::LargeResponseHeader(_, limit) => fatal(ClientError::Malformed(format!(
                "reply head larger than {limit} bytes"
            ))),
            ureq::Error::Protocol(e) => fatal(ClientError::Malformed(e.to_string())),
            ureq::Error::TooManyRedirects | ureq::Error::RedirectFailed => {
                fatal(ClientError::Malformed(e.to_string()))
            }
            e => fatal(ClientError::Io(io::Error::other(e.to_string()))),
        }
    }
}

/// A TLS failure, with a hint where the likely cause is a private CA or a
/// self-signed certificate.
fn tls_error(e: &rustls::Error) -> ClientError {
    use rustls::CertificateError;
    match e {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            ClientError::Tls(format!(
                "{e} (no trusted CA signed the server's certificate; \
                 trust a private CA with --ca-file)"
            ))
        }
        // webpki's CaUsedAsEndEntity, which rustls passes on only as an
        // opaque `Other`: the server presents a CA certificate as its own,
        // what `openssl req -x509` makes unless told otherwise.
        rustls::Error::InvalidCertificate(CertificateError::Other(o))
            if format!("{o:?}").contains("CaUsedAsEndEntity") =>
        {
            ClientError::Tls(format!(
                "{e} (the server's certificate is a CA certificate, basicConstraints \
                 CA:TRUE, as `openssl req -x509` makes by default; TLS accepts only a \
                 leaf certificate from a server: sign one with that CA, or make the \
                 self-signed one with -addext basicConstraints=critical,CA:FALSE)"
            ))
        }
        _ => ClientError::Tls(e.to_string()),
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// A read that failed after `got` bytes.
struct ReadError {
    error: io::Error,
    got: usize,
}

impl ReadError {
    fn kind(&self) -> io::ErrorKind {
        self.error.kind()
    }
}

/// Reads `r` to its end, holding at most `cap` bytes: `Ok(None)` as soon as
/// there is more than that, without reading further.
fn read_capped(r: &mut impl Read, cap: usize) -> Result<Option<Vec<u8>>, ReadError> {
    let mut body = Vec::new();
    // One byte past the cap tells "exactly cap" from "more".
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    match r.take(limit).read_to_end(&mut body) {
        Ok(_) if body.len() > cap => Ok(None),
        Ok(_) => Ok(Some(body)),
        Err(error) => Err(ReadError {
            error,
            got: body.len(),
        }),
    }
}

/// The roots an https connection trusts: the system's, and `extra` (DER)
/// after them. Only when the system has none and no extra CA was given, the
/// Mozilla roots bundled with ureq (webpki-roots).
fn root_certs(extra: &[Vec<u8>]) -> RootCerts {
    let system = system_roots();
    if system.is_empty() && extra.is_empty() {
        return RootCerts::WebPki;
    }
    let mut roots = Vec::with_capacity(system.len() + extra.len());
    roots.extend(system.iter().cloned());
    roots.extend(
        extra
            .iter()
            .map(|der| Certificate::from_der(der).to_owned()),
    );
    RootCerts::Specific(Arc::new(roots))
}

/// The system's trusted roots (rustls-native-certs: `SSL_CERT_FILE`,
/// `SSL_CERT_DIR`, else the distribution's bundle), loaded once per process.
fn system_roots() -> &'static [Certificate<'static>] {
    static ROOTS: OnceLock<Vec<Certificate<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            log::debug!("system root certificates: {e}");
        }
        found
            .certs
            .iter()
            .map(|c| Certificate::from_der(c.as_ref()).to_owned())
            .collect()
    })
}

/// The certificates (DER) of a PEM file, for [`Client::with_ca_pem`].
pub fn parse_ca_pem(pem: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        match item {
            Ok(PemItem::Certificate(c)) => certs.push(c.der().to_vec()),
            Ok(_) => {} // keys and the like: not roots
            Err(e) => return Err(format!("not a PEM file: {e}")),
        }
    }
    if certs.is_empty() {
        return Err("no certificate in it (expected PEM: -----BEGIN CERTIFICATE-----)".into());
    }
    Ok(certs)
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
    fn test_read_capped() {
        let data = vec![7u8; 1000];
        assert_eq!(
            read_capped(&mut &data[..], 1000).ok().unwrap().unwrap(),
            data
        );
        assert!(read_capped(&mut &data[..], 999).ok().unwrap().is_none());
        // Past the cap, nothing more is read than one byte.
        let mut endless = io::repeat(1);
        let mut counted = (&mut endless).take(10_000);
        assert!(read_capped(&mut counted, 100).ok().unwrap().is_none());
        assert_eq!(counted.limit(), 10_000 - 101);
    }

    /// An https tracker on 127.0.0.1:0 whose certificate is self-signed
    /// (CA:TRUE or not) for 127.0.0.1, for one connection; its PEM.
    fn self_signed_tracker(ca: bool) -> (String, SocketAddr, std::thread::JoinHandle<()>) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        use std::io::Write;
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        if ca {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        }
        let cert = params.self_signed(&key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (tcp, _) = listener.accept().unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let conn = rustls::ServerConnection::new(Arc::new(config)).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match tls.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => return, // the client gave up on the handshake
                }
            }
            let body = b"d8:intervali900e5:peers0:e";
            let _ = write!(
                tls,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let _ = tls.write_all(body);
            tls.conn.send_close_notify();
            let _ = tls.flush();
        });
        (cert.pem(), addr, server)
    }

    #[test]
    fn a_self_signed_ca_certificate_gets_a_hint() {
        let (pem, addr, server) = self_signed_tracker(true);
        let client = Client::new(Duration::from_secs(5), 1)
            .with_ca_pem(pem.as_bytes())
            .unwrap();
        let url: TrackerUrl = format!("https://{addr}/announce").parse().unwrap();
        let e = client
            .announce(&url, &AnnounceParams::new([1; 20], 6881))
            .unwrap_err();
        let m = e.to_string();
        assert!(matches!(e, ClientError::Tls(_)), "{m}");
        assert!(m.contains("CaUsedAsEndEntity"), "{m}");
        assert!(m.contains("CA:TRUE") && m.contains("CA:FALSE"), "{m}");
        server.join().unwrap();
        // What the hint says to do works: the same, made CA:FALSE.
        let (pem, addr, server) = self_signed_tracker(false);
        let client = Client::new(Duration::from_secs(5), 1)
            .with_ca_pem(pem.as_bytes())
            .unwrap();
        let url: TrackerUrl = format!("https://{addr}/announce").parse().unwrap();
        let reply = client
            .announce(&url, &AnnounceParams::new([1; 20], 6881))
            .unwrap();
        assert_eq!(reply.interval, 900);
        server.join().unwrap();
    }

    #[test]
    fn test_parse_ca_pem() {
        assert!(parse_ca_pem(b"").unwrap_err().contains("no certificate"));
        assert!(parse_ca_pem(b"hello")
            .unwrap_err()
            .contains("no certificate"));
        let pem = b"-----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----\n";
        assert_eq!(parse_ca_pem(pem).unwrap(), vec![vec![1, 2, 3]]);
    }
}
