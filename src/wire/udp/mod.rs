//! BEP 15 frames: request parsing and response writing.
//!
//! Owns the byte layouts of the UDP tracker protocol
//! (<https://www.bittorrent.org/beps/bep_0015.html>) and the BEP 41 options that
//! may follow an announce (<https://www.bittorrent.org/beps/bep_0041.html>).
//!
//! Guarantees: parsing never panics and never allocates; it borrows from the
//! datagram. Writers take a `&mut [u8]` and return how many bytes they wrote, or
//! `None` when the buffer is too small; they never write past it. All integers
//! are big-endian. Every byte offset lives in one public table, [`field`]; the
//! parsers, the writers and any code that patches a frame in place index through it.

use byteorder::{BigEndian, ByteOrder};
use std::net::{Ipv4Addr, Ipv6Addr};

/// `protocol_id` of a connect request (BEP 15).
pub const PROTOCOL_ID: u64 = 0x0417_2710_1980;

/// Byte ranges of every field of every frame (start..end, or start.. for the
/// variable-length rest), after smoltcp's `mod field`. Every parser and writer
/// here indexes through this table; benchmarks and the load generator that patch
/// frames in place should too, so that one table is the only place a layout lives.
pub mod field {
    use core::ops::{Range, RangeFrom};

    /// A fixed-size field.
    pub type Field = Range<usize>;
    /// The variable-length rest of a frame.
    pub type Rest = RangeFrom<usize>;

    /// The 16 bytes every request starts with (connect, announce, scrape).
    pub mod request {
        use super::Field;
        /// In a connect request, the magic [`PROTOCOL_ID`](crate::wire::udp::PROTOCOL_ID).
        pub const CONNECTION_ID: Field = 0..8;
        pub const ACTION: Field = 8..12;
        pub const TRANSACTION_ID: Field = 12..16;
    }

    /// Announce request, after the request header; BEP 41 options may follow.
    pub mod announce {
        use super::{Field, Rest};
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
        /// BEP 41 options, each laid out as [`option`](super::option).
        pub const OPTIONS: Rest = 98..;
    }

    /// Scrape request, after the request header: whole 20-byte info hashes.
    pub mod scrape {
        use super::Rest;
        pub const INFO_HASHES: Rest = 16..;
    }

    /// One BEP 41 option: a type byte, then (for types other than end-of-options
    /// and no-op) a length byte and that many bytes of payload.
    pub mod option {
        use super::Rest;
        pub const KIND: usize = 0;
        pub const LEN: usize = 1;
        pub const DATA: Rest = 2..;
    }

    /// The 8 bytes every response starts with.
    pub mod response {
        use super::Field;
        pub const ACTION: Field = 0..4;
        pub const TRANSACTION_ID: Field = 4..8;
    }

    /// Connect response, after the response header.
    pub mod connect_response {
        use super::Field;
        pub const CONNECTION_ID: Field = 8..16;
    }

    /// Announce response, after the response header. Note the order: leechers, then seeders.
    pub mod announce_response {
        use super::{Field, Rest};
        pub const INTERVAL: Field = 8..12;
        pub const LEECHERS: Field = 12..16;
        pub const SEEDERS: Field = 16..20;
        /// Compact peers, each laid out as [`peer4`](super::peer4) or [`peer6`](super::peer6).
        pub const PEERS: Rest = 20..;
    }

    /// Scrape response, after the response header.
    pub mod scrape_response {
        use super::Rest;
        /// One row per requested hash, each laid out as [`scrape_row`](super::scrape_row).
        pub const ROWS: Rest = 8..;
    }

    /// One scrape response row. Note the order: seeders, completed, leechers.
    pub mod scrape_row {
        use super::Field;
        pub const SEEDERS: Field = 0..4;
        pub const COMPLETED: Field = 4..8;
        pub const LEECHERS: Field = 8..12;
    }

    /// Error response, after the response header: the message, not terminated.
    pub mod error_response {
        use super::Rest;
        pub const MESSAGE: Rest = 8..;
    }

    /// A compact IPv4 peer.
    pub mod peer4 {
        use super::Field;
        pub const IP: Field = 0..4;
        pub const PORT: Field = 4..6;
    }

    /// A compact IPv6 peer.
    pub mod peer6 {
        use super::Field;
        pub const IP: Field = 0..16;
        pub const PORT: Field = 16..18;
    }
}

/// Length of an info hash or a peer id.
pub const HASH_LEN: usize = field::announce::INFO_HASH.end - field::announce::INFO_HASH.start;
/// A connect request, and the common header of every request.
pub const CONNECT_LEN: usize = field::request::TRANSACTION_ID.end;
/// Shortest valid announce; BEP 41 options may follow.
pub const ANNOUNCE_MIN_LEN: usize = field::announce::OPTIONS.start;
/// Header of a scrape request: connection id, action, transaction id.
pub const SCRAPE_HEADER_LEN: usize = field::scrape::INFO_HASHES.start;
/// The common header of every response: action, transaction id.
pub const RESPONSE_HEADER_LEN: usize = field::response::TRANSACTION_ID.end;
/// A connect response.
pub const CONNECT_RESPONSE_LEN: usize = field::connect_response::CONNECTION_ID.end;
/// Header of an announce response before the peer list.
pub const ANNOUNCE_RESPONSE_HEADER_LEN: usize = field::announce_response::PEERS.start;
/// Header of a scrape response before the per-hash rows.
pub const SCRAPE_RESPONSE_HEADER_LEN: usize = field::scrape_response::ROWS.start;
/// Header of an error response before the message.
pub const ERROR_HEADER_LEN: usize = field::error_response::MESSAGE.start;
/// One scrape response row: seeders, completed, leechers.
pub const SCRAPE_ROW_LEN: usize = field::scrape_row::LEECHERS.end;
/// A compact IPv4 peer: address and port.
pub const PEER4_LEN: usize = field::peer4::PORT.end;
/// A compact IPv6 peer: address and port.
pub const PEER6_LEN: usize = field::peer6::PORT.end;

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
        self.info_hashes.len() / HASH_LEN
    }

    pub fn is_empty(&self) -> bool {
        self.info_hashes.is_empty()
    }

    /// The requested hashes, in request order, duplicates kept.
    pub fn info_hashes(&self) -> impl ExactSizeIterator<Item = &'a [u8; 20]> + 'a {
        self.info_hashes.as_chunks::<HASH_LEN>().0.iter()
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
    if buf.len() < CONNECT_LEN {
        return None;
    }
    Some(Header {
        connection_id: BigEndian::read_u64(&buf[field::request::CONNECTION_ID]),
        action: BigEndian::read_u32(&buf[field::request::ACTION]),
        transaction_id: BigEndian::read_u32(&buf[field::request::TRANSACTION_ID]),
    })
}

/// Parse one datagram into a request.
#[inline]
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
            info_hash.copy_from_slice(&buf[field::announce::INFO_HASH]);
            let mut peer_id = [0u8; 20];
            peer_id.copy_from_slice(&buf[field::announce::PEER_ID]);
            Ok(Request::Announce(AnnounceRequest {
                connection_id: header.connection_id,
                transaction_id: header.transaction_id,
                info_hash,
                peer_id,
                downloaded: BigEndian::read_u64(&buf[field::announce::DOWNLOADED]),
                left: BigEndian::read_u64(&buf[field::announce::LEFT]),
                uploaded: BigEndian::read_u64(&buf[field::announce::UPLOADED]),
                event: Event::from_u32(BigEndian::read_u32(&buf[field::announce::EVENT])),
                ip: BigEndian::read_u32(&buf[field::announce::IP]),
                key: BigEndian::read_u32(&buf[field::announce::KEY]),
                num_want: BigEndian::read_i32(&buf[field::announce::NUM_WANT]),
                port: BigEndian::read_u16(&buf[field::announce::PORT]),
                options: Options(&buf[field::announce::OPTIONS]),
            }))
        }
        Some(Action::Scrape) => Ok(Request::Scrape(ScrapeRequest {
            connection_id: header.connection_id,
            transaction_id: header.transaction_id,
            info_hashes: {
                let body = &buf[field::scrape::INFO_HASHES];
                &body[..body.len() - body.len() % HASH_LEN]
            },
        })),
        Some(Action::Error) | None => Err(ParseError::UnknownAction),
    }
}

/// The info hashes a datagram names, read without checking the rest: an
/// announce's one, a scrape's (whole ones only); none for anything else. For
/// looking ahead in a batch only: the datagram is still to be parsed and its
/// connection id checked before anything is served.
#[inline]
pub fn peek_info_hashes(buf: &[u8]) -> &[[u8; HASH_LEN]] {
    let body = match parse_header(buf).map(|h| Action::from_u32(h.action)) {
        Some(Some(Action::Announce)) => buf.get(field::announce::INFO_HASH),
        Some(Some(Action::Scrape)) => buf.get(field::scrape::INFO_HASHES),
        _ => None,
    };
    body.map_or(&[], |b| b.as_chunks().0)
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
/// Most payload bytes one option can carry (its length is one byte).
pub const OPTION_MAX_DATA: usize = u8::MAX as usize;

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
            let &kind = self.0.get(field::option::KIND)?;
            match kind {
                OPTION_END => {
                    self.0 = &[];
                    return None;
                }
                // A no-op is its type byte alone.
                OPTION_NOP => self.0 = self.0.get(field::option::LEN..).unwrap_or(&[]),
                _ => {
                    let len = self.0.get(field::option::LEN).map(|&len| usize::from(len));
                    let body = self.0.get(field::option::DATA);
                    let Some((data, rest)) = len.zip(body).and_then(|(l, b)| b.split_at_checked(l))
                    else {
                        self.0 = &[];
                        return None;
                    };
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
    BigEndian::write_u32(&mut out[field::response::ACTION], action as u32);
    BigEndian::write_u32(&mut out[field::response::TRANSACTION_ID], transaction_id);
}

/// Connect response: [`CONNECT_RESPONSE_LEN`] bytes.
pub fn write_connect_response(
    out: &mut [u8],
    transaction_id: u32,
    connection_id: u64,
) -> Option<usize> {
    if out.len() < CONNECT_RESPONSE_LEN {
        return None;
    }
    write_action_tx(out, Action::Connect, transaction_id);
    BigEndian::write_u64(
        &mut out[field::connect_response::CONNECTION_ID],
        connection_id,
    );
    Some(CONNECT_RESPONSE_LEN)
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
    BigEndian::write_u32(&mut out[field::announce_response::INTERVAL], interval);
    BigEndian::write_u32(&mut out[field::announce_response::LEECHERS], leechers);
    BigEndian::write_u32(&mut out[field::announce_response::SEEDERS], seeders);
    Some(ANNOUNCE_RESPONSE_HEADER_LEN)
}

/// A compact IPv4 peer (6 bytes) at the start of `out`.
pub fn write_peer4(out: &mut [u8], ip: Ipv4Addr, port: u16) -> Option<usize> {
    let out = out.get_mut(..PEER4_LEN)?;
    out[field::peer4::IP].copy_from_slice(&ip.octets());
    BigEndian::write_u16(&mut out[field::peer4::PORT], port);
    Some(PEER4_LEN)
}

/// A compact IPv6 peer (18 bytes) at the start of `out`.
pub fn write_peer6(out: &mut [u8], ip: Ipv6Addr, port: u16) -> Option<usize> {
    let out = out.get_mut(..PEER6_LEN)?;
    out[field::peer6::IP].copy_from_slice(&ip.octets());
    BigEndian::write_u16(&mut out[field::peer6::PORT], port);
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
    BigEndian::write_u32(&mut out[field::scrape_row::SEEDERS], seeders);
    BigEndian::write_u32(&mut out[field::scrape_row::COMPLETED], completed);
    BigEndian::write_u32(&mut out[field::scrape_row::LEECHERS], leechers);
    Some(SCRAPE_ROW_LEN)
}

/// Error response: action 3, transaction id, message bytes (truncated to fit `out`).
pub fn write_error_response(out: &mut [u8], transaction_id: u32, message: &str) -> Option<usize> {
    if out.len() < ERROR_HEADER_LEN {
        return None;
    }
    write_action_tx(out, Action::Error, transaction_id);
    let room = &mut out[field::error_response::MESSAGE];
    let msg = message.as_bytes();
    let n = msg.len().min(room.len());
    room[..n].copy_from_slice(&msg[..n]);
    Some(ERROR_HEADER_LEN + n)
}

// ---------------------------------------------------------------------------
// Client side: request writers and response parsing (used by `shoal announce`,
// `shoal bench` and the tests). Same guarantees as above.
// ---------------------------------------------------------------------------

/// Connect request: [`CONNECT_LEN`] bytes.
pub fn write_connect_request(out: &mut [u8], transaction_id: u32) -> Option<usize> {
    let out = out.get_mut(..CONNECT_LEN)?;
    BigEndian::write_u64(&mut out[field::request::CONNECTION_ID], PROTOCOL_ID);
    BigEndian::write_u32(&mut out[field::request::ACTION], Action::Connect as u32);
    BigEndian::write_u32(&mut out[field::request::TRANSACTION_ID], transaction_id);
    Some(CONNECT_LEN)
}

/// Announce request (98 bytes) followed by `url_data` as BEP 41 URL-data options
/// (split into [`OPTION_MAX_DATA`]-byte pieces) when it is not empty.
pub fn write_announce_request(
    out: &mut [u8],
    req: &AnnounceRequest<'_>,
    url_data: &[u8],
) -> Option<usize> {
    // Each piece costs its bytes plus the type and length bytes.
    let pieces = url_data.len().div_ceil(OPTION_MAX_DATA);
    let total = ANNOUNCE_MIN_LEN + url_data.len() + field::option::DATA.start * pieces;
    let out = out.get_mut(..total)?;
    BigEndian::write_u64(&mut out[field::request::CONNECTION_ID], req.connection_id);
    BigEndian::write_u32(&mut out[field::request::ACTION], Action::Announce as u32);
    BigEndian::write_u32(&mut out[field::request::TRANSACTION_ID], req.transaction_id);
    out[field::announce::INFO_HASH].copy_from_slice(&req.info_hash);
    out[field::announce::PEER_ID].copy_from_slice(&req.peer_id);
    BigEndian::write_u64(&mut out[field::announce::DOWNLOADED], req.downloaded);
    BigEndian::write_u64(&mut out[field::announce::LEFT], req.left);
    BigEndian::write_u64(&mut out[field::announce::UPLOADED], req.uploaded);
    BigEndian::write_u32(&mut out[field::announce::EVENT], req.event.to_u32());
    BigEndian::write_u32(&mut out[field::announce::IP], req.ip);
    BigEndian::write_u32(&mut out[field::announce::KEY], req.key);
    BigEndian::write_i32(&mut out[field::announce::NUM_WANT], req.num_want);
    BigEndian::write_u16(&mut out[field::announce::PORT], req.port);
    let mut opts = &mut out[field::announce::OPTIONS];
    for piece in url_data.chunks(OPTION_MAX_DATA) {
        let (opt, rest) = opts.split_at_mut(field::option::DATA.start + piece.len());
        opt[field::option::KIND] = OPTION_URL_DATA;
        opt[field::option::LEN] = piece.len() as u8;
        opt[field::option::DATA].copy_from_slice(piece);
        opts = rest;
    }
    Some(total)
}

/// Scrape request for `info_hashes`.
pub fn write_scrape_request(
    out: &mut [u8],
    connection_id: u64,
    transaction_id: u32,
    info_hashes: &[[u8; 20]],
) -> Option<usize> {
    let total = SCRAPE_HEADER_LEN + HASH_LEN * info_hashes.len();
    let out = out.get_mut(..total)?;
    BigEndian::write_u64(&mut out[field::request::CONNECTION_ID], connection_id);
    BigEndian::write_u32(&mut out[field::request::ACTION], Action::Scrape as u32);
    BigEndian::write_u32(&mut out[field::request::TRANSACTION_ID], transaction_id);
    let body = out[field::scrape::INFO_HASHES].chunks_exact_mut(HASH_LEN);
    for (slot, h) in body.zip(info_hashes) {
        slot.copy_from_slice(h);
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
    if buf.len() < RESPONSE_HEADER_LEN {
        return Err(ParseError::Truncated);
    }
    let transaction_id = BigEndian::read_u32(&buf[field::response::TRANSACTION_ID]);
    match Action::from_u32(BigEndian::read_u32(&buf[field::response::ACTION])) {
        Some(Action::Connect) => {
            if buf.len() < CONNECT_RESPONSE_LEN {
                return Err(ParseError::Truncated);
            }
            Ok(Response::Connect {
                transaction_id,
                connection_id: BigEndian::read_u64(&buf[field::connect_response::CONNECTION_ID]),
            })
        }
        Some(Action::Announce) => {
            if buf.len() < ANNOUNCE_RESPONSE_HEADER_LEN {
                return Err(ParseError::Truncated);
            }
            Ok(Response::Announce {
                transaction_id,
                interval: BigEndian::read_u32(&buf[field::announce_response::INTERVAL]),
                leechers: BigEndian::read_u32(&buf[field::announce_response::LEECHERS]),
                seeders: BigEndian::read_u32(&buf[field::announce_response::SEEDERS]),
                peers: &buf[field::announce_response::PEERS],
            })
        }
        Some(Action::Scrape) => {
            let body = &buf[field::scrape_response::ROWS];
            Ok(Response::Scrape {
                transaction_id,
                rows: &body[..body.len() - body.len() % SCRAPE_ROW_LEN],
            })
        }
        Some(Action::Error) => Ok(Response::Error {
            transaction_id,
            message: &buf[field::error_response::MESSAGE],
        }),
        None => Err(ParseError::UnknownAction),
    }
}

/// Decode one scrape row ([`SCRAPE_ROW_LEN`] bytes) into (seeders, completed, leechers).
pub fn read_scrape_row(row: &[u8]) -> Option<(u32, u32, u32)> {
    let row = row.get(..SCRAPE_ROW_LEN)?;
    Some((
        BigEndian::read_u32(&row[field::scrape_row::SEEDERS]),
        BigEndian::read_u32(&row[field::scrape_row::COMPLETED]),
        BigEndian::read_u32(&row[field::scrape_row::LEECHERS]),
    ))
}

#[cfg(test)]
mod tests;
