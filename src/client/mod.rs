//! A BitTorrent tracker client: announce and scrape against any tracker over
//! UDP (BEP 15, with BEP 41 URL data) or HTTP(S) (BEP 3, 7, 23, 48).
//!
//! Used by `shoal announce` / `shoal scrape` and by the integration tests.
//! Blocking and simple: one socket (UDP) or agent (HTTP) per call, bounded in
//! every dimension: host lookup, per-try timeouts ([`Client::timeout`],
//! doubled on each retry as BEP 15 prescribes for its `15 * 2^n` back-off),
//! number of tries ([`Client::tries`]), and HTTP reply size
//! ([`http::MAX_REPLY`]). [`Client::probe`] announces and withdraws at once,
//! to check a live tracker without leaving a peer behind.
//!
//! ```no_run
//! use shoal::client::{AnnounceParams, Client, TrackerUrl};
//! let url: TrackerUrl = "udp://127.0.0.1:6969".parse()?;
//! let reply = Client::default().announce(&url, &AnnounceParams::new([1; 20], 6881))?;
//! println!("{} seeders, {} leechers", reply.seeders, reply.leechers);
//! # Ok::<(), shoal::client::ClientError>(())
//! ```

pub mod bencode;
pub mod http;
pub mod udp;
mod url;

pub use crate::wire::udp::Event;
pub use url::{Scheme, TrackerUrl};

use serde::Serialize;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// Info hashes asked per scrape request; longer lists are split. BEP 15 says
/// "up to about 74" fit a datagram; shoal answers 74 by default.
pub const SCRAPE_CHUNK: usize = 74;

/// What an announce tells the tracker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceParams {
    pub info_hash: [u8; 20],
    pub peer_id: [u8; 20],
    /// The port the peer accepts connections on.
    pub port: u16,
    pub uploaded: u64,
    pub downloaded: u64,
    /// Bytes left to download; 0 makes a seeder.
    pub left: u64,
    pub event: Event,
    /// Peers wanted; `None` asks for the tracker's default.
    pub numwant: Option<u32>,
    /// Identifies the client across IP changes (BEP 15 `key`, HTTP `key`).
    pub key: u32,
}

impl AnnounceParams {
    /// A `started` announce of a leecher with a random peer id and key, and
    /// `left` = 1 (unknown size, not complete).
    pub fn new(info_hash: [u8; 20], port: u16) -> AnnounceParams {
        let mut rng = fastrand::Rng::new();
        AnnounceParams {
            info_hash,
            peer_id: random_peer_id(&mut rng, b""),
            port,
            uploaded: 0,
            downloaded: 0,
            left: 1,
            event: Event::Started,
            numwant: None,
            key: rng.u32(..),
        }
    }
}

impl AnnounceParams {
    /// The peer of [`Client::probe`]: a `started` leecher with a random peer
    /// id, key and port (in the dynamic range, 49152-65535). A tracker knows a
    /// peer by its address and port (and id, key); a probe that reused a
    /// well-known port such as 6881 would, with its `stopped`, withdraw a
    /// real client on the same host. Random, it can only withdraw itself.
    pub fn probe(info_hash: [u8; 20]) -> AnnounceParams {
        let mut rng = fastrand::Rng::new();
        AnnounceParams {
            port: rng.u16(PROBE_PORTS),
            ..AnnounceParams::new(info_hash, 0)
        }
    }
}

/// The ports [`AnnounceParams::probe`] picks from: IANA's dynamic range,
/// where no client listens by convention.
pub const PROBE_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;

/// What a tracker answered to an announce. Serialises (field order is
/// output order) to the `--json` output of `shoal announce`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnnounceResponse {
    /// Seconds until the next regular announce.
    pub interval: u32,
    /// HTTP only: the tracker's `min interval`.
    pub min_interval: Option<u32>,
    pub seeders: u32,
    pub leechers: u32,
    /// Peers in reply order (IPv4 and, from HTTP `peers6` or a UDP tracker
    /// over IPv6, IPv6); `"ip:port"` strings in JSON.
    pub peers: Vec<SocketAddr>,
    /// HTTP only: the tracker's `warning message`.
    pub warning: Option<String>,
}

impl AnnounceResponse {
    /// Human-readable: one `key: value` line each, then the peers, one `ip:port` a line.
    pub fn to_text(&self) -> String {
        let mut s = format!("interval: {} s\n", self.interval);
        if let Some(m) = self.min_interval {
            s += &format!("min interval: {m} s\n");
        }
        s += &format!("seeders: {}\nleechers: {}\n", self.seeders, self.leechers);
        if let Some(w) = &self.warning {
            s += &format!("warning: {w}\n");
        }
        s += &format!("peers: {}\n", self.peers.len());
        for p in &self.peers {
            s += &format!("{p}\n");
        }
        s
    }

    /// One JSON object: `interval`, `min_interval`, `seeders`, `leechers`,
    /// `peers` (`"ip:port"` strings), `warning`; `null` for what is absent.
    pub fn to_json(&self) -> String {
        // Cannot fail: numbers, strings and addresses (strings in JSON), no maps.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Scrape results as a table: hash, seeders, completed, leechers (`-` where unanswered).
pub fn scrape_to_text(info_hashes: &[[u8; 20]], stats: &[Option<ScrapeStats>]) -> String {
    let mut s = format!(
        "{:<40}  {:>8}  {:>9}  {:>8}\n",
        "info hash", "seeders", "completed", "leechers"
    );
    for (h, st) in info_hashes.iter().zip(stats) {
        match st {
            Some(st) => {
                s += &format!(
                    "{}  {:>8}  {:>9}  {:>8}\n",
                    hex(h),
                    st.seeders,
                    st.completed,
                    st.leechers
                )
            }
            None => s += &format!("{}  {:>8}  {:>9}  {:>8}\n", hex(h), "-", "-", "-"),
        }
    }
    s
}

/// Scrape results as JSON: `{"files":[{"info_hash":…,"seeders":…,"completed":…,"leechers":…}]}`
/// in request order; the numbers are `null` where the tracker did not answer.
pub fn scrape_to_json(info_hashes: &[[u8; 20]], stats: &[Option<ScrapeStats>]) -> String {
    #[derive(Serialize)]
    struct Row {
        info_hash: String,
        seeders: Option<u32>,
        completed: Option<u32>,
        leechers: Option<u32>,
    }
    #[derive(Serialize)]
    struct Files {
        files: Vec<Row>,
    }
    let files = info_hashes
        .iter()
        .zip(stats)
        .map(|(h, st)| Row {
            info_hash: hex(h),
            seeders: st.map(|s| s.seeders),
            completed: st.map(|s| s.completed),
            leechers: st.map(|s| s.leechers),
        })
        .collect();
    // Cannot fail: numbers and strings, no maps.
    serde_json::to_string(&Files { files }).unwrap_or_default()
}

/// One scrape row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScrapeStats {
    pub seeders: u32,
    /// Times the torrent was downloaded (`completed` / HTTP `downloaded`).
    pub completed: u32,
    pub leechers: u32,
}

/// Why a call failed. `Display` is one line, fit for a command-line error.
#[derive(Debug)]
pub enum ClientError {
    /// The URL does not parse.
    Url(String),
    /// Parses, but asks for something this client does not do (an HTTP
    /// scrape from a URL that is neither an announce nor a scrape URL).
    Unsupported(String),
    /// The host name did not resolve (in time).
    Resolve { host: String, reason: String },
    /// No reply after every try.
    Timeout { tries: u32, first_timeout: Duration },
    /// The tracker answered with an error: a BEP 15 error frame or an HTTP `failure reason`.
    Tracker(String),
    /// An HTTP status other than 200, without a `failure reason`.
    HttpStatus(u16, String),
    /// The reply is not what the protocol says; the message says what was wrong.
    Malformed(String),
    /// An HTTP reply body longer than the cap (bytes), refused.
    TooLarge(usize),
    /// The TLS handshake failed, e.g. a certificate no trusted root vouches for.
    Tls(String),
    /// A socket error (e.g. connection refused).
    Io(std::io::Error),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Url(m) => write!(f, "bad tracker URL {m}"),
            ClientError::Unsupported(m) => f.write_str(m),
            ClientError::Resolve { host, reason } => {
                write!(f, "cannot resolve host {host:?}: {reason}")
            }
            ClientError::Timeout {
                tries,
                first_timeout,
            } => {
                let total = (0..*tries).map(|n| backoff(*first_timeout, n)).sum();
                write!(
                    f,
                    "no reply after {tries} {} ({} in all)",
                    if *tries == 1 { "try" } else { "tries" },
                    secs(total)
                )
            }
            ClientError::Tracker(m) => write!(f, "tracker error: {m}"),
            ClientError::HttpStatus(code, reason) => write!(f, "HTTP status {code} {reason}"),
            ClientError::Malformed(m) => write!(f, "malformed reply: {m}"),
            ClientError::TooLarge(cap) => write!(f, "reply larger than {cap} bytes, refused"),
            ClientError::Tls(m) => write!(f, "TLS error: {m}"),
            ClientError::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                f.write_str("connection refused (nothing listening there?)")
            }
            ClientError::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<std::io::Error> for ClientError {
    fn from(e: std::io::Error) -> ClientError {
        ClientError::Io(e)
    }
}

/// `1.5 s`, `200 ms`: durations for messages.
pub(crate) fn secs(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{} s", (d.as_secs_f64() * 10.0).round() / 10.0)
    }
}

/// The wait of try `n` (from 0): `first * 2^n`, BEP 15's back-off with a
/// configurable start (BEP 15 itself starts at 15 s). Saturates at an hour.
pub fn backoff(first: Duration, n: u32) -> Duration {
    first
        .checked_mul(1u32.checked_shl(n).unwrap_or(u32::MAX))
        .unwrap_or(Duration::MAX)
        .min(Duration::from_secs(3600))
}

/// Blocking tracker client settings. One value serves any number of calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// Timeout of the first try; each retry doubles it (BEP 15). Also bounds
    /// host lookup, and for HTTP each connect/read.
    pub timeout: Duration,
    /// Tries before giving up with [`ClientError::Timeout`] (at least 1).
    pub tries: u32,
    /// CA certificates (DER) https trusts besides the system's roots.
    ca_certs: Vec<Vec<u8>>,
}

impl Default for Client {
    /// BEP 15's own start (15 s) with 3 tries: 15 + 30 + 60 s at most.
    fn default() -> Client {
        Client::new(Duration::from_secs(15), 3)
    }
}

impl Client {
    pub fn new(timeout: Duration, tries: u32) -> Client {
        Client {
            timeout,
            tries: tries.max(1),
            ca_certs: Vec::new(),
        }
    }

    /// Trust the CA certificates of a PEM file for https, besides the
    /// system's roots (a tracker behind a private CA).
    pub fn with_ca_pem(mut self, pem: &[u8]) -> Result<Client, ClientError> {
        let certs = http::parse_ca_pem(pem).map_err(ClientError::Tls)?;
        self.ca_certs.extend(certs);
        Ok(self)
    }

    /// Announce to a tracker.
    pub fn announce(
        &self,
        url: &TrackerUrl,
        params: &AnnounceParams,
    ) -> Result<AnnounceResponse, ClientError> {
        match url.scheme() {
            Scheme::Udp => self.udp_session(url)?.announce(params),
            Scheme::Http | Scheme::Https => http::Http::new(self).announce(url, params),
        }
    }

    /// Announce, then withdraw with a `stopped` announce of the same peer
    /// (peer id, port and key) asking for no peers, over the same UDP
    /// connection id or HTTP client. Checking a live tracker this way leaves
    /// no phantom peer in its swarm. `Err` only if the first announce fails.
    pub fn probe(&self, url: &TrackerUrl, params: &AnnounceParams) -> Result<Probe, ClientError> {
        let stop = AnnounceParams {
            event: Event::Stopped,
            numwant: Some(0),
            ..params.clone()
        };
        Ok(match url.scheme() {
            Scheme::Udp => {
                let mut session = self.udp_session(url)?;
                Probe {
                    reply: session.announce(params)?,
                    stopped: session.announce(&stop),
                }
            }
            Scheme::Http | Scheme::Https => {
                let http = http::Http::new(self);
                Probe {
                    reply: http.announce(url, params)?,
                    stopped: http.announce(url, &stop),
                }
            }
        })
    }

    fn udp_session(&self, url: &TrackerUrl) -> Result<udp::Session, ClientError> {
        let addr = url.resolve(self.timeout)?;
        Ok(udp::Session::new(
            addr,
            url.path_and_query().as_bytes(),
            self,
        )?)
    }

    /// Scrape a tracker. One entry per requested hash, in order; `None` where
    /// the tracker left a hash unanswered (a UDP reply cut short, or a hash
    /// missing from an HTTP `files` dict).
    pub fn scrape(
        &self,
        url: &TrackerUrl,
        info_hashes: &[[u8; 20]],
    ) -> Result<Vec<Option<ScrapeStats>>, ClientError> {
        match url.scheme() {
            Scheme::Udp => {
                let addr = url.resolve(self.timeout)?;
                udp::Session::new(addr, b"", self)?.scrape(info_hashes)
            }
            Scheme::Http | Scheme::Https => {
                http::Http::new(self).scrape(&url.scrape_url()?, info_hashes)
            }
        }
    }
}

/// What [`Client::probe`] learnt: the reply to the announce, and how the
/// `stopped` announce that followed went (its reply counts the swarm
/// without the probe).
#[derive(Debug)]
pub struct Probe {
    pub reply: AnnounceResponse,
    pub stopped: Result<AnnounceResponse, ClientError>,
}

/// Parse 40 hex digits (either case) into 20 bytes.
pub fn parse_hex20(s: &str) -> Option<[u8; 20]> {
    let s = s.as_bytes();
    if s.len() != 40 {
        return None;
    }
    let mut out = [0u8; 20];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        *o = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// Azureus-style client prefix of shoal's peer ids (BEP 20).
pub const PEER_ID_PREFIX: &[u8; 8] = b"-SH0100-";

/// A peer id: `prefix` (at most 20 bytes; [`PEER_ID_PREFIX`] when empty)
/// padded with random alphanumerics.
pub(crate) fn random_peer_id(rng: &mut fastrand::Rng, prefix: &[u8]) -> [u8; 20] {
    const ALNUM: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let prefix = if prefix.is_empty() {
        &PEER_ID_PREFIX[..]
    } else {
        prefix
    };
    let mut id = [0u8; 20];
    for (i, b) in id.iter_mut().enumerate() {
        *b = match prefix.get(i) {
            Some(&p) => p,
            None => ALNUM[rng.usize(..ALNUM.len())],
        };
    }
    id
}

/// A peer id from the command line: 40 hex digits, or up to 20 bytes of text
/// (a shorter text is a prefix, padded with random alphanumerics).
pub fn peer_id_from_arg(arg: &str) -> Result<[u8; 20], String> {
    if let Some(id) = parse_hex20(arg) {
        return Ok(id);
    }
    if arg.is_empty() || arg.len() > 20 {
        return Err(format!(
            "peer id {arg:?}: give 40 hex digits or 1 to 20 bytes of text"
        ));
    }
    Ok(random_peer_id(&mut fastrand::Rng::new(), arg.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_hex() {
        let h = parse_hex20("00112233445566778899AABBCCDDEEFF0a1B2c3D").unwrap();
        assert_eq!(h[0], 0x00);
        assert_eq!(h[15], 0xff);
        assert_eq!(h[19], 0x3d);
        assert_eq!(hex(&h), "00112233445566778899aabbccddeeff0a1b2c3d");
        assert_eq!(parse_hex20("0011"), None);
        assert_eq!(parse_hex20(&"g".repeat(40)), None);
        assert_eq!(parse_hex20(&"é".repeat(20)), None);
    }

    #[test]
    fn probes_are_random_peers_that_can_only_withdraw_themselves() {
        let probes: Vec<AnnounceParams> = (0..8).map(|_| AnnounceParams::probe([7; 20])).collect();
        for p in &probes {
            assert!(PROBE_PORTS.contains(&p.port), "{}", p.port);
            assert_ne!(p.port, 6881);
            assert_eq!(&p.peer_id[..8], PEER_ID_PREFIX);
            assert_eq!((p.info_hash, p.event, p.left), ([7; 20], Event::Started, 1));
        }
        // Eight draws of 16 bits (key: 32, id: 72 random bits) do not all
        // collide but by a fault; at most one pair may share a port.
        let distinct = |f: &dyn Fn(&AnnounceParams) -> Vec<u8>| {
            let mut v: Vec<Vec<u8>> = probes.iter().map(f).collect();
            v.sort();
            v.dedup();
            v.len()
        };
        assert!(distinct(&|p| p.port.to_be_bytes().to_vec()) >= 7);
        assert_eq!(distinct(&|p| p.key.to_be_bytes().to_vec()), 8);
        assert_eq!(distinct(&|p| p.peer_id.to_vec()), 8);
    }

    #[test]
    fn test_peer_ids() {
        let id = peer_id_from_arg("-qB4650-").unwrap();
        assert_eq!(&id[..8], b"-qB4650-");
        assert!(id[8..].iter().all(u8::is_ascii_alphanumeric));
        assert_eq!(peer_id_from_arg(&"41".repeat(20)).unwrap(), [b'A'; 20]);
        assert_eq!(
            &peer_id_from_arg("exactly-twenty-bytes").unwrap(),
            b"exactly-twenty-bytes"
        );
        assert!(peer_id_from_arg("twenty-one-bytes-long").is_err());
        assert!(peer_id_from_arg("").is_err());
        let p = AnnounceParams::new([1; 20], 1);
        assert_eq!(&p.peer_id[..8], PEER_ID_PREFIX);
    }

    #[test]
    fn test_output_formats() {
        let r = AnnounceResponse {
            interval: 1800,
            min_interval: None,
            seeders: 2,
            leechers: 1,
            peers: vec![
                "127.0.0.1:6881".parse().unwrap(),
                "[::1]:80".parse().unwrap(),
            ],
            warning: Some("be \"nice\"".into()),
        };
        assert_eq!(
            r.to_text(),
            "interval: 1800 s\nseeders: 2\nleechers: 1\nwarning: be \"nice\"\npeers: 2\n127.0.0.1:6881\n[::1]:80\n"
        );
        assert_eq!(
            r.to_json(),
            r#"{"interval":1800,"min_interval":null,"seeders":2,"leechers":1,"peers":["127.0.0.1:6881","[::1]:80"],"warning":"be \"nice\""}"#
        );
        let odd = AnnounceResponse {
            warning: Some("a\\b\nc\u{1}é".into()),
            ..r.clone()
        };
        assert!(odd.to_json().ends_with(r#""warning":"a\\b\nc\u0001é"}"#));
        let stats = [
            Some(ScrapeStats {
                seeders: 1,
                completed: 2,
                leechers: 3,
            }),
            None,
        ];
        let hashes = [[0xab; 20], [0; 20]];
        assert_eq!(
            scrape_to_json(&hashes, &stats),
            format!(
                r#"{{"files":[{{"info_hash":"{}","seeders":1,"completed":2,"leechers":3}},{{"info_hash":"{}","seeders":null,"completed":null,"leechers":null}}]}}"#,
                "ab".repeat(20),
                "00".repeat(20)
            )
        );
        let text = scrape_to_text(&hashes, &stats);
        assert!(
            text.lines()
                .nth(1)
                .unwrap()
                .ends_with("1          2         3"),
            "{text}"
        );
        assert!(text.lines().nth(2).unwrap().ends_with("-"), "{text}");
    }

    #[test]
    fn test_backoff_and_messages() {
        let s = Duration::from_secs(15);
        assert_eq!(backoff(s, 0), s);
        assert_eq!(backoff(s, 3), Duration::from_secs(120));
        assert_eq!(backoff(s, 40), Duration::from_secs(3600));
        let e = ClientError::Timeout {
            tries: 3,
            first_timeout: Duration::from_secs(5),
        };
        assert_eq!(e.to_string(), "no reply after 3 tries (35 s in all)");
        let e = ClientError::Timeout {
            tries: 1,
            first_timeout: Duration::from_millis(200),
        };
        assert_eq!(e.to_string(), "no reply after 1 try (200 ms in all)");
    }
}
