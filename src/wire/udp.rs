//! BEP 15 frames: request parsing and response writing.
//!
//! Owns the byte layouts of the UDP tracker protocol
//! (<https://www.bittorrent.org/beps/bep_0015.html>) and the BEP 41 options that
//! may follow an announce (<https://www.bittorrent.org/beps/bep_0041.html>).
//!
//! Guarantees: parsing never panics and never allocates; it borrows from the
//! datagram. Writers take a `&mut [u8]` and return how many bytes they wrote, or
//! `None` when the buffer is too small; they never write past it. All integers
//! are big-endian.

use byteorder::{BigEndian, ByteOrder};
use std::net::{Ipv4Addr, Ipv6Addr};

/// `protocol_id` of a connect request (BEP 15).
pub const PROTOCOL_ID: u64 = 0x0417_2710_1980;

/// Frame length limits.
pub const CONNECT_LEN: usize = 16;
/// Shortest valid announce; BEP 41 options may follow.
pub const ANNOUNCE_MIN_LEN: usize = 98;
/// Header of a scrape request: connection id, action, transaction id.
pub const SCRAPE_HEADER_LEN: usize = 16;
/// Header of an announce response before the peer list.
pub const ANNOUNCE_RESPONSE_HEADER_LEN: usize = 20;
/// Header of a scrape response before the per-hash rows.
pub const SCRAPE_RESPONSE_HEADER_LEN: usize = 8;
/// Header of an error response before the message.
pub const ERROR_HEADER_LEN: usize = 8;
/// One scrape response row: seeders, completed, leechers.
pub const SCRAPE_ROW_LEN: usize = 12;
/// A compact IPv4 peer: address and port.
pub const PEER4_LEN: usize = 6;
/// A compact IPv6 peer: address and port.
pub const PEER6_LEN: usize = 18;

/// Field offsets (start..end), after smoltcp's `mod field`.
#[allow(dead_code)]
mod field {
    pub type Field = core::ops::Range<usize>;
    pub const CONNECTION_ID: Field = 0..8;
    pub const ACTION: Field = 8..12;
    pub const TRANSACTION_ID: Field = 12..16;
    // announce request
    pub const INFO_HASH: Field = 16..36;
    pub const PEER_ID: Field = 36..56;
    pub const DOWNLOADED: Field = 56..64;
    pub const LEFT: Field = 64..72;
    pub const UPLOADED: Field = 72..80;
    pub const EVENT: Field = 80..84;
    pub const IP: Field = 84..88;
    pub const KEY: Field = 88..92;
    pub const NUM_WANT: Field = 92..96;
    pub const PORT: Field = 96..98;
    // responses
    pub const R_ACTION: Field = 0..4;
    pub const R_TRANSACTION_ID: Field = 4..8;
    pub const R_CONNECTION_ID: Field = 8..16;
    pub const R_INTERVAL: Field = 8..12;
    pub const R_LEECHERS: Field = 12..16;
    pub const R_SEEDERS: Field = 16..20;
}

/// BEP 15 action codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Action {
    Connect = 0,
    Announce = 1,
    Scrape = 2,
    Error = 3,
}

impl Action {
    pub fn from_u32(v: u32) -> Option<Action> {
        match v {
            0 => Some(Action::Connect),
            1 => Some(Action::Announce),
            2 => Some(Action::Scrape),
            3 => Some(Action::Error),
            _ => None,
        }
    }
}

/// Announce event. libtorrent sends 4 ("paused") over UDP; it is read as `None`,
/// and so is any other value we do not know, so that an odd client still gets peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    None,
    Completed,
    Started,
    Stopped,
}

impl Event {
    pub fn from_u32(v: u32) -> Event {
        match v {
            1 => Event::Completed,
            2 => Event::Started,
            3 => Event::Stopped,
            _ => Event::None,
        }
    }

    pub fn to_u32(self) -> u32 {
        match self {
            Event::None => 0,
            Event::Completed => 1,
            Event::Started => 2,
            Event::Stopped => 3,
        }
    }
}

/// Why a datagram is not a request we serve. `Copy`, allocation-free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than the 16-byte common header, or shorter than its action needs.
    Truncated,
    /// A connect request whose `protocol_id` is not the BEP 15 magic.
    BadProtocolId,
    /// An action number we do not serve (including 3, "error", as a request).
    UnknownAction,
}

impl ParseError {
    pub fn as_str(self) -> &'static str {
        match self {
            ParseError::Truncated => "truncated request",
            ParseError::BadProtocolId => "bad protocol id",
            ParseError::UnknownAction => "unknown action",
        }
    }
}

/// A parsed request, borrowing from the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    Connect(ConnectRequest),
    Announce(AnnounceRequest<'a>),
    Scrape(ScrapeRequest<'a>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectRequest {
    pub transaction_id: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnounceRequest<'a> {
    pub connection_id: u64,
    pub transaction_id: u32,
    pub info_hash: [u8; 20],
    pub peer_id: [u8; 20],
    pub downloaded: u64,
    pub left: u64,
    pub uploaded: u64,
    pub event: Event,
    /// The `ip` field. Trackers should ignore it: it lets anyone point a swarm at a victim.
    pub ip: u32,
    pub key: u32,
    /// As sent; negative means "the tracker's default".
    pub num_want: i32,
    pub port: u16,
    /// BEP 41 option bytes after the 98-byte announce (possibly empty or malformed).
    pub options: Options<'a>,
}

impl AnnounceRequest<'static> {
    /// A leecher's first announce (`event=started`, `left` unknown so 1, the
    /// tracker's default `num_want`), with every other field zero and no BEP 41
    /// options. Callers set what they need with struct update syntax:
    /// `AnnounceRequest { left: 0, ..AnnounceRequest::new(conn, tx, ih, pid, port) }`.
    pub fn new(
        connection_id: u64,
        transaction_id: u32,
        info_hash: [u8; 20],
        peer_id: [u8; 20],
        port: u16,
    ) -> AnnounceRequest<'static> {
        AnnounceRequest {
            connection_id,
            transaction_id,
            info_hash,
            peer_id,
            downloaded: 0,
            left: 1,
            uploaded: 0,
            event: Event::Started,
            ip: 0,
            key: 0,
            num_want: -1,
            port,
            options: Options(&[]),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScrapeRequest<'a> {
    pub connection_id: u64,
    pub transaction_id: u32,
    /// Whole 20-byte info hashes; a trailing partial hash is ignored.
    info_hashes: &'a [u8],
}

impl<'a> ScrapeRequest<'a> {
    pub fn len(&self) -> usize {
        self.info_hashes.len() / 20
    }

    pub fn is_empty(&self) -> bool {
        self.info_hashes.is_empty()
    }

    /// The requested hashes, in request order, duplicates kept.
    pub fn info_hashes(&self) -> impl ExactSizeIterator<Item = &'a [u8; 20]> + 'a {
        self.info_hashes.as_chunks::<20>().0.iter()
    }
}

/// The header every non-connect request starts with; readable from any datagram
/// of 16 bytes or more. The core uses it to decide whether a bad request is
/// answerable (known transaction id, valid connection id) or must be dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub connection_id: u64,
    pub action: u32,
    pub transaction_id: u32,
}

pub fn parse_header(buf: &[u8]) -> Option<Header> {
    if buf.len() < 16 {
        return None;
    }
    Some(Header {
        connection_id: BigEndian::read_u64(&buf[field::CONNECTION_ID]),
        action: BigEndian::read_u32(&buf[field::ACTION]),
        transaction_id: BigEndian::read_u32(&buf[field::TRANSACTION_ID]),
    })
}

/// Parse one datagram into a request.
pub fn parse_request(buf: &[u8]) -> Result<Request<'_>, ParseError> {
    let header = parse_header(buf).ok_or(ParseError::Truncated)?;
    match Action::from_u32(header.action) {
        Some(Action::Connect) => {
            if header.connection_id != PROTOCOL_ID {
                return Err(ParseError::BadProtocolId);
            }
            Ok(Request::Connect(ConnectRequest {
                transaction_id: header.transaction_id,
            }))
        }
        Some(Action::Announce) => {
            if buf.len() < ANNOUNCE_MIN_LEN {
                return Err(ParseError::Truncated);
            }
            let mut info_hash = [0u8; 20];
            info_hash.copy_from_slice(&buf[field::INFO_HASH]);
            let mut peer_id = [0u8; 20];
            peer_id.copy_from_slice(&buf[field::PEER_ID]);
            Ok(Request::Announce(AnnounceRequest {
                connection_id: header.connection_id,
                transaction_id: header.transaction_id,
                info_hash,
                peer_id,
                downloaded: BigEndian::read_u64(&buf[field::DOWNLOADED]),
                left: BigEndian::read_u64(&buf[field::LEFT]),
                uploaded: BigEndian::read_u64(&buf[field::UPLOADED]),
                event: Event::from_u32(BigEndian::read_u32(&buf[field::EVENT])),
                ip: BigEndian::read_u32(&buf[field::IP]),
                key: BigEndian::read_u32(&buf[field::KEY]),
                num_want: BigEndian::read_i32(&buf[field::NUM_WANT]),
                port: BigEndian::read_u16(&buf[field::PORT]),
                options: Options(&buf[ANNOUNCE_MIN_LEN..]),
            }))
        }
        Some(Action::Scrape) => Ok(Request::Scrape(ScrapeRequest {
            connection_id: header.connection_id,
            transaction_id: header.transaction_id,
            info_hashes: {
                let body = &buf[SCRAPE_HEADER_LEN..];
                &body[..body.len() - body.len() % 20]
            },
        })),
        Some(Action::Error) | None => Err(ParseError::UnknownAction),
    }
}

/// BEP 41 options trailing an announce. Iterating yields the options that are
/// well formed and stops at "end of options", at the end of the buffer, or at
/// the first malformed option: a broken option never breaks the announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options<'a>(pub &'a [u8]);

/// One BEP 41 option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnounceOption<'a> {
    /// Type 2: a piece of the tracker URL's path and query; consecutive pieces concatenate.
    UrlData(&'a [u8]),
    /// A type we do not know (3..=255), with its payload; skipped by the core.
    Unknown(u8, &'a [u8]),
}

/// BEP 41 option types.
pub const OPTION_END: u8 = 0;
pub const OPTION_NOP: u8 = 1;
pub const OPTION_URL_DATA: u8 = 2;

impl<'a> Options<'a> {
    pub fn iter(&self) -> OptionsIter<'a> {
        OptionsIter(self.0)
    }

    /// Concatenate all URL data into `buf`, returning the bytes written (the
    /// URL's path and query, e.g. `/announce?key=1`). Stops when `buf` is full.
    pub fn copy_url_data(&self, buf: &mut [u8]) -> usize {
        let mut n = 0;
        for opt in self.iter() {
            if let AnnounceOption::UrlData(data) = opt {
                let take = data.len().min(buf.len() - n);
                buf[n..n + take].copy_from_slice(&data[..take]);
                n += take;
            }
        }
        n
    }
}

#[derive(Debug, Clone)]
pub struct OptionsIter<'a>(&'a [u8]);

impl<'a> Iterator for OptionsIter<'a> {
    type Item = AnnounceOption<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (&kind, rest) = self.0.split_first()?;
            match kind {
                OPTION_END => {
                    self.0 = &[];
                    return None;
                }
                OPTION_NOP => self.0 = rest,
                _ => {
                    let Some((&len, rest)) = rest.split_first() else {
                        self.0 = &[];
                        return None;
                    };
                    let len = len as usize;
                    if rest.len() < len {
                        self.0 = &[];
                        return None;
                    }
                    let (data, rest) = rest.split_at(len);
                    self.0 = rest;
                    return Some(if kind == OPTION_URL_DATA {
                        AnnounceOption::UrlData(data)
                    } else {
                        AnnounceOption::Unknown(kind, data)
                    });
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Writers
// ---------------------------------------------------------------------------

fn write_action_tx(out: &mut [u8], action: Action, transaction_id: u32) {
    BigEndian::write_u32(&mut out[field::R_ACTION], action as u32);
    BigEndian::write_u32(&mut out[field::R_TRANSACTION_ID], transaction_id);
}

/// Connect response: 16 bytes.
pub fn write_connect_response(
    out: &mut [u8],
    transaction_id: u32,
    connection_id: u64,
) -> Option<usize> {
    if out.len() < 16 {
        return None;
    }
    write_action_tx(out, Action::Connect, transaction_id);
    BigEndian::write_u64(&mut out[field::R_CONNECTION_ID], connection_id);
    Some(16)
}

/// Announce response header; peers follow at [`ANNOUNCE_RESPONSE_HEADER_LEN`],
/// written with [`write_peer4`] / [`write_peer6`]. Note the order: leechers, then seeders.
pub fn write_announce_header(
    out: &mut [u8],
    transaction_id: u32,
    interval: u32,
    leechers: u32,
    seeders: u32,
) -> Option<usize> {
    if out.len() < ANNOUNCE_RESPONSE_HEADER_LEN {
        return None;
    }
    write_action_tx(out, Action::Announce, transaction_id);
    BigEndian::write_u32(&mut out[field::R_INTERVAL], interval);
    BigEndian::write_u32(&mut out[field::R_LEECHERS], leechers);
    BigEndian::write_u32(&mut out[field::R_SEEDERS], seeders);
    Some(ANNOUNCE_RESPONSE_HEADER_LEN)
}

/// A compact IPv4 peer (6 bytes) at the start of `out`.
pub fn write_peer4(out: &mut [u8], ip: Ipv4Addr, port: u16) -> Option<usize> {
    let out = out.get_mut(..PEER4_LEN)?;
    out[..4].copy_from_slice(&ip.octets());
    BigEndian::write_u16(&mut out[4..6], port);
    Some(PEER4_LEN)
}

/// A compact IPv6 peer (18 bytes) at the start of `out`.
pub fn write_peer6(out: &mut [u8], ip: Ipv6Addr, port: u16) -> Option<usize> {
    let out = out.get_mut(..PEER6_LEN)?;
    out[..16].copy_from_slice(&ip.octets());
    BigEndian::write_u16(&mut out[16..18], port);
    Some(PEER6_LEN)
}

/// Scrape response header; rows follow, one per requested hash, via [`write_scrape_row`].
pub fn write_scrape_header(out: &mut [u8], transaction_id: u32) -> Option<usize> {
    if out.len() < SCRAPE_RESPONSE_HEADER_LEN {
        return None;
    }
    write_action_tx(out, Action::Scrape, transaction_id);
    Some(SCRAPE_RESPONSE_HEADER_LEN)
}

/// One scrape row: seeders, completed, leechers (note: not the announce order).
pub fn write_scrape_row(
    out: &mut [u8],
    seeders: u32,
    completed: u32,
    leechers: u32,
) -> Option<usize> {
    let out = out.get_mut(..SCRAPE_ROW_LEN)?;
    BigEndian::write_u32(&mut out[0..4], seeders);
    BigEndian::write_u32(&mut out[4..8], completed);
    BigEndian::write_u32(&mut out[8..12], leechers);
    Some(SCRAPE_ROW_LEN)
}

/// Error response: action 3, transaction id, message bytes (truncated to fit `out`).
pub fn write_error_response(out: &mut [u8], transaction_id: u32, message: &str) -> Option<usize> {
    if out.len() < ERROR_HEADER_LEN {
        return None;
    }
    write_action_tx(out, Action::Error, transaction_id);
    let msg = message.as_bytes();
    let n = msg.len().min(out.len() - ERROR_HEADER_LEN);
    out[ERROR_HEADER_LEN..ERROR_HEADER_LEN + n].copy_from_slice(&msg[..n]);
    Some(ERROR_HEADER_LEN + n)
}

// ---------------------------------------------------------------------------
// Client side: request writers and response parsing (used by `shoal announce`,
// `shoal bench` and the tests). Same guarantees as above.
// ---------------------------------------------------------------------------

/// Connect request: 16 bytes.
pub fn write_connect_request(out: &mut [u8], transaction_id: u32) -> Option<usize> {
    let out = out.get_mut(..CONNECT_LEN)?;
    BigEndian::write_u64(&mut out[field::CONNECTION_ID], PROTOCOL_ID);
    BigEndian::write_u32(&mut out[field::ACTION], Action::Connect as u32);
    BigEndian::write_u32(&mut out[field::TRANSACTION_ID], transaction_id);
    Some(CONNECT_LEN)
}

/// Announce request (98 bytes) followed by `url_data` as BEP 41 URL-data options
/// (split into 255-byte pieces) when it is not empty.
pub fn write_announce_request(
    out: &mut [u8],
    req: &AnnounceRequest<'_>,
    url_data: &[u8],
) -> Option<usize> {
    let opts_len = url_data.len() + 2 * url_data.len().div_ceil(255);
    let total = ANNOUNCE_MIN_LEN + opts_len;
    let out = out.get_mut(..total)?;
    BigEndian::write_u64(&mut out[field::CONNECTION_ID], req.connection_id);
    BigEndian::write_u32(&mut out[field::ACTION], Action::Announce as u32);
    BigEndian::write_u32(&mut out[field::TRANSACTION_ID], req.transaction_id);
    out[field::INFO_HASH].copy_from_slice(&req.info_hash);
    out[field::PEER_ID].copy_from_slice(&req.peer_id);
    BigEndian::write_u64(&mut out[field::DOWNLOADED], req.downloaded);
    BigEndian::write_u64(&mut out[field::LEFT], req.left);
    BigEndian::write_u64(&mut out[field::UPLOADED], req.uploaded);
    BigEndian::write_u32(&mut out[field::EVENT], req.event.to_u32());
    BigEndian::write_u32(&mut out[field::IP], req.ip);
    BigEndian::write_u32(&mut out[field::KEY], req.key);
    BigEndian::write_i32(&mut out[field::NUM_WANT], req.num_want);
    BigEndian::write_u16(&mut out[field::PORT], req.port);
    let mut at = ANNOUNCE_MIN_LEN;
    for piece in url_data.chunks(255) {
        out[at] = OPTION_URL_DATA;
        out[at + 1] = piece.len() as u8;
        out[at + 2..at + 2 + piece.len()].copy_from_slice(piece);
        at += 2 + piece.len();
    }
    Some(at)
}

/// Scrape request for `info_hashes`.
pub fn write_scrape_request(
    out: &mut [u8],
    connection_id: u64,
    transaction_id: u32,
    info_hashes: &[[u8; 20]],
) -> Option<usize> {
    let total = SCRAPE_HEADER_LEN + 20 * info_hashes.len();
    let out = out.get_mut(..total)?;
    BigEndian::write_u64(&mut out[field::CONNECTION_ID], connection_id);
    BigEndian::write_u32(&mut out[field::ACTION], Action::Scrape as u32);
    BigEndian::write_u32(&mut out[field::TRANSACTION_ID], transaction_id);
    for (i, h) in info_hashes.iter().enumerate() {
        out[SCRAPE_HEADER_LEN + 20 * i..SCRAPE_HEADER_LEN + 20 * (i + 1)].copy_from_slice(h);
    }
    Some(total)
}

/// A parsed tracker response, borrowing from the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response<'a> {
    Connect {
        transaction_id: u32,
        connection_id: u64,
    },
    Announce {
        transaction_id: u32,
        interval: u32,
        leechers: u32,
        seeders: u32,
        /// Compact peers, 6 or 18 bytes each depending on the address family asked over.
        peers: &'a [u8],
    },
    Scrape {
        transaction_id: u32,
        /// Rows of 12 bytes: seeders, completed, leechers.
        rows: &'a [u8],
    },
    Error {
        transaction_id: u32,
        message: &'a [u8],
    },
}

impl Response<'_> {
    pub fn transaction_id(&self) -> u32 {
        match *self {
            Response::Connect { transaction_id, .. }
            | Response::Announce { transaction_id, .. }
            | Response::Scrape { transaction_id, .. }
            | Response::Error { transaction_id, .. } => transaction_id,
        }
    }
}

/// Parse a tracker's response datagram.
pub fn parse_response(buf: &[u8]) -> Result<Response<'_>, ParseError> {
    if buf.len() < 8 {
        return Err(ParseError::Truncated);
    }
    let transaction_id = BigEndian::read_u32(&buf[field::R_TRANSACTION_ID]);
    match Action::from_u32(BigEndian::read_u32(&buf[field::R_ACTION])) {
        Some(Action::Connect) => {
            if buf.len() < 16 {
                return Err(ParseError::Truncated);
            }
            Ok(Response::Connect {
                transaction_id,
                connection_id: BigEndian::read_u64(&buf[field::R_CONNECTION_ID]),
            })
        }
        Some(Action::Announce) => {
            if buf.len() < ANNOUNCE_RESPONSE_HEADER_LEN {
                return Err(ParseError::Truncated);
            }
            Ok(Response::Announce {
                transaction_id,
                interval: BigEndian::read_u32(&buf[field::R_INTERVAL]),
                leechers: BigEndian::read_u32(&buf[field::R_LEECHERS]),
                seeders: BigEndian::read_u32(&buf[field::R_SEEDERS]),
                peers: &buf[ANNOUNCE_RESPONSE_HEADER_LEN..],
            })
        }
        Some(Action::Scrape) => {
            let body = &buf[SCRAPE_RESPONSE_HEADER_LEN..];
            Ok(Response::Scrape {
                transaction_id,
                rows: &body[..body.len() - body.len() % SCRAPE_ROW_LEN],
            })
        }
        Some(Action::Error) => Ok(Response::Error {
            transaction_id,
            message: &buf[ERROR_HEADER_LEN..],
        }),
        None => Err(ParseError::UnknownAction),
    }
}

/// Decode one scrape row (12 bytes) into (seeders, completed, leechers).
pub fn read_scrape_row(row: &[u8]) -> Option<(u32, u32, u32)> {
    let row = row.get(..SCRAPE_ROW_LEN)?;
    Some((
        BigEndian::read_u32(&row[0..4]),
        BigEndian::read_u32(&row[4..8]),
        BigEndian::read_u32(&row[8..12]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn test_parse_connect() {
        let buf = hex("00000417 27101980 00000000 deadbeef");
        assert_eq!(
            parse_request(&buf),
            Ok(Request::Connect(ConnectRequest {
                transaction_id: 0xdeadbeef
            }))
        );
    }

    #[test]
    fn test_connect_bad_magic_and_short() {
        let buf = hex("00000417 27101981 00000000 deadbeef");
        assert_eq!(parse_request(&buf), Err(ParseError::BadProtocolId));
        assert_eq!(parse_request(&buf[..15]), Err(ParseError::Truncated));
        assert_eq!(parse_request(&[]), Err(ParseError::Truncated));
    }

    const ANNOUNCE_HEX: &str = "
        0102030405060708 00000001 0000abcd
        1111111111111111111111111111111111111111
        2d5452343030302d6162636465666768696a6b6c
        0000000000000010 0000000000000020 0000000000000030
        00000004 7f000001 00001234 ffffffff 1ae1";

    #[test]
    fn test_parse_announce() {
        let buf = hex(ANNOUNCE_HEX);
        assert_eq!(buf.len(), 98);
        let Ok(Request::Announce(a)) = parse_request(&buf) else {
            panic!("not an announce")
        };
        assert_eq!(a.connection_id, 0x0102030405060708);
        assert_eq!(a.transaction_id, 0xabcd);
        assert_eq!(a.info_hash, [0x11; 20]);
        assert_eq!(&a.peer_id[..8], b"-TR4000-");
        assert_eq!((a.downloaded, a.left, a.uploaded), (16, 32, 48));
        assert_eq!(a.event, Event::None, "event 4 (paused) reads as none");
        assert_eq!(a.ip, 0x7f000001);
        assert_eq!(a.key, 0x1234);
        assert_eq!(a.num_want, -1);
        assert_eq!(a.port, 6881);
        assert_eq!(a.options.iter().count(), 0);
        assert_eq!(parse_request(&buf[..97]), Err(ParseError::Truncated));
    }

    #[test]
    fn test_announce_roundtrip_with_url_data() {
        let buf = hex(ANNOUNCE_HEX);
        let Ok(Request::Announce(a)) = parse_request(&buf) else {
            panic!()
        };
        let mut out = [0u8; 1024];
        let url = b"/announce?passkey=abc";
        let n = write_announce_request(&mut out, &a, url).unwrap();
        assert_eq!(n, 98 + 2 + url.len());
        // event 4 does not survive the round trip: it was read as "none" (0).
        assert_eq!(&out[..80], &buf[..80]);
        assert_eq!(&out[80..84], &[0, 0, 0, 0]);
        assert_eq!(&out[84..98], &buf[84..98]);
        let Ok(Request::Announce(b)) = parse_request(&out[..n]) else {
            panic!()
        };
        let mut url_buf = [0u8; 64];
        let m = b.options.copy_url_data(&mut url_buf);
        assert_eq!(&url_buf[..m], url);
    }

    #[test]
    fn test_bep41_options() {
        // libtorrent's "02 01 2f" for a tracker URL without a path.
        let o = Options(&[2, 1, b'/']);
        assert_eq!(
            o.iter().collect::<Vec<_>>(),
            vec![AnnounceOption::UrlData(b"/")]
        );
        // NOPs, two URL pieces that concatenate, then end-of-options hides the rest.
        let bytes = [
            1, 1, 2, 2, b'/', b'a', 1, 2, 3, b'b', b'?', b'x', 0, 2, 1, b'z',
        ];
        let o = Options(&bytes);
        let mut buf = [0u8; 16];
        let n = o.copy_url_data(&mut buf);
        assert_eq!(&buf[..n], b"/ab?x");
        // Unknown types are skipped by their length.
        let o = Options(&[9, 2, 0xaa, 0xbb, 2, 1, b'/']);
        assert_eq!(
            o.iter().collect::<Vec<_>>(),
            vec![
                AnnounceOption::Unknown(9, &[0xaa, 0xbb]),
                AnnounceOption::UrlData(b"/")
            ]
        );
        // Truncated length or payload: iteration stops, no panic.
        assert_eq!(Options(&[2]).iter().count(), 0);
        assert_eq!(Options(&[2, 5, b'/']).iter().count(), 0);
        // copy_url_data stops at a full buffer.
        let mut small = [0u8; 2];
        assert_eq!(
            Options(&[2, 3, b'a', b'b', b'c']).copy_url_data(&mut small),
            2
        );
    }

    #[test]
    fn test_parse_scrape() {
        let mut buf = hex("0102030405060708 00000002 00000007");
        buf.extend_from_slice(&[0xaa; 20]);
        buf.extend_from_slice(&[0xbb; 20]);
        buf.extend_from_slice(&[0xaa; 20]);
        buf.extend_from_slice(&[0xcc; 7]); // trailing partial hash: ignored
        let Ok(Request::Scrape(s)) = parse_request(&buf) else {
            panic!()
        };
        assert_eq!(s.connection_id, 0x0102030405060708);
        assert_eq!(s.transaction_id, 7);
        let hashes: Vec<_> = s.info_hashes().copied().collect();
        assert_eq!(hashes, vec![[0xaa; 20], [0xbb; 20], [0xaa; 20]]);
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn test_unknown_action() {
        let buf = hex("0102030405060708 00000003 00000007");
        assert_eq!(parse_request(&buf), Err(ParseError::UnknownAction));
        let buf = hex("0102030405060708 00000009 00000007");
        assert_eq!(parse_request(&buf), Err(ParseError::UnknownAction));
    }

    #[test]
    fn test_emit_connect() {
        let mut out = [0u8; 16];
        assert_eq!(
            write_connect_response(&mut out, 0xdeadbeef, 0x0102030405060708),
            Some(16)
        );
        assert_eq!(out.to_vec(), hex("00000000 deadbeef 0102030405060708"));
        assert_eq!(write_connect_response(&mut out[..15], 1, 1), None);
    }

    #[test]
    fn test_emit_announce() {
        let mut out = [0u8; 64];
        let mut n = write_announce_header(&mut out, 5, 1800, 3, 4).unwrap();
        n += write_peer4(&mut out[n..], Ipv4Addr::new(10, 0, 0, 1), 6881).unwrap();
        assert_eq!(
            out[..n].to_vec(),
            hex("00000001 00000005 00000708 00000003 00000004 0a000001 1ae1")
        );
        let mut out6 = [0u8; 18];
        write_peer6(&mut out6, Ipv6Addr::LOCALHOST, 80).unwrap();
        assert_eq!(out6.to_vec(), hex("00000000000000000000000000000001 0050"));
        assert_eq!(write_peer6(&mut out6[..17], Ipv6Addr::LOCALHOST, 80), None);
    }

    #[test]
    fn test_emit_scrape_and_error() {
        let mut out = [0u8; 32];
        let mut n = write_scrape_header(&mut out, 9).unwrap();
        n += write_scrape_row(&mut out[n..], 1, 2, 3).unwrap();
        assert_eq!(
            out[..n].to_vec(),
            hex("00000002 00000009 00000001 00000002 00000003")
        );
        let n = write_error_response(&mut out, 9, "bad").unwrap();
        assert_eq!(out[..n].to_vec(), hex("00000003 00000009 626164"));
        // The message is truncated, never overflows.
        let n = write_error_response(&mut out[..10], 9, "a long message").unwrap();
        assert_eq!(n, 10);
    }

    #[test]
    fn test_parse_responses() {
        let buf = hex("00000000 deadbeef 0102030405060708");
        assert_eq!(
            parse_response(&buf),
            Ok(Response::Connect {
                transaction_id: 0xdeadbeef,
                connection_id: 0x0102030405060708
            })
        );
        let buf = hex("00000001 00000005 00000708 00000003 00000004 0a000001 1ae1");
        let Ok(Response::Announce {
            seeders,
            leechers,
            peers,
            ..
        }) = parse_response(&buf)
        else {
            panic!()
        };
        assert_eq!((seeders, leechers, peers.len()), (4, 3, 6));
        let buf = hex("00000002 00000009 00000001 00000002 00000003");
        let Ok(Response::Scrape { rows, .. }) = parse_response(&buf) else {
            panic!()
        };
        assert_eq!(read_scrape_row(rows), Some((1, 2, 3)));
        let buf = hex("00000003 00000009 626164");
        assert_eq!(
            parse_response(&buf),
            Ok(Response::Error {
                transaction_id: 9,
                message: b"bad"
            })
        );
    }

    #[test]
    fn test_scrape_request_roundtrip() {
        let mut out = [0u8; 100];
        let n = write_scrape_request(&mut out, 42, 7, &[[1; 20], [2; 20]]).unwrap();
        let Ok(Request::Scrape(s)) = parse_request(&out[..n]) else {
            panic!()
        };
        assert_eq!((s.connection_id, s.transaction_id, s.len()), (42, 7, 2));
        let mut c = [0u8; 16];
        write_connect_request(&mut c, 3).unwrap();
        assert_eq!(
            parse_request(&c),
            Ok(Request::Connect(ConnectRequest { transaction_id: 3 }))
        );
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn no_input_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1500)) {
            if let Ok(Request::Announce(a)) = parse_request(&bytes) {
                let mut buf = [0u8; 64];
                let _ = a.options.copy_url_data(&mut buf);
                let _ = a.options.iter().count();
            }
            let _ = parse_response(&bytes);
        }

        #[test]
        fn every_action_every_length(action in 0u32..5, len in 0usize..=256, fill in any::<u8>()) {
            let mut bytes = vec![fill; len];
            if len >= 12 {
                bytes[8..12].copy_from_slice(&action.to_be_bytes());
            }
            if len >= 8 && action == 0 {
                bytes[0..8].copy_from_slice(&PROTOCOL_ID.to_be_bytes());
            }
            let _ = parse_request(&bytes);
        }

        #[test]
        fn announce_roundtrip(
            connection_id in any::<u64>(), transaction_id in any::<u32>(),
            info_hash in any::<[u8; 20]>(), peer_id in any::<[u8; 20]>(),
            downloaded in any::<u64>(), left in any::<u64>(), uploaded in any::<u64>(),
            event in 0u32..4, ip in any::<u32>(), key in any::<u32>(), num_want in any::<i32>(),
            port in any::<u16>(), url in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let req = AnnounceRequest {
                connection_id, transaction_id, info_hash, peer_id, downloaded, left, uploaded,
                event: Event::from_u32(event), ip, key, num_want, port, options: Options(&[]),
            };
            let mut out = [0u8; 2048];
            let n = write_announce_request(&mut out, &req, &url).unwrap();
            let Ok(Request::Announce(back)) = parse_request(&out[..n]) else { panic!() };
            prop_assert_eq!(Request::Announce(AnnounceRequest { options: Options(&[]), ..back }), Request::Announce(req));
            let mut url_back = [0u8; 1024];
            let m = back.options.copy_url_data(&mut url_back);
            prop_assert_eq!(&url_back[..m], &url[..]);
        }

        #[test]
        fn scrape_roundtrip(connection_id in any::<u64>(), tx in any::<u32>(),
                            hashes in proptest::collection::vec(any::<[u8; 20]>(), 0..80)) {
            let mut out = [0u8; 2048];
            let n = write_scrape_request(&mut out, connection_id, tx, &hashes).unwrap();
            let Ok(Request::Scrape(s)) = parse_request(&out[..n]) else { panic!() };
            prop_assert_eq!(s.connection_id, connection_id);
            prop_assert_eq!(s.info_hashes().copied().collect::<Vec<_>>(), hashes);
        }
    }
}
