//! Tracker queries: percent-decoding and the announce and scrape parameters
//! (BEP 3, 7, 23, 48).
//!
//! Owns percent-decoding ([`percent_decode_into`]), the `key=value` split
//! ([`query_pairs`]), the announce parameters ([`parse_announce`]) and the scrape
//! hashes ([`scrape_hashes`]). The query arrives still encoded, as
//! [`super::Head::query`] gives it.
//!
//! Guarantees: everything borrows from its input, never allocates and never
//! panics; [`QueryError`] is `Copy` and its [`QueryError::as_str`] is a short
//! message fit for a bencoded `failure reason`. Real-client rules: a byte may
//! arrive unescaped (including non-UTF-8 bytes ≥ 0x80), and `+` is a literal `+`,
//! not a space (this is not a form body).

use crate::wire::udp::Event;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::http::fixtures::{escape_all, HASH, PEER_ID};
    use proptest::prelude::*;

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
    fn test_error_messages() {
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
    }
}
