//! The cluster's wire format: fixed-size records and the signed batch that
//! carries them over the Redis/Valkey stream.
//!
//! Guarantees:
//! - a batch is a 36-byte header, `count` records of one kind and a 32-byte
//!   HMAC-SHA256 tag ([`super::auth`]) over everything before it; every
//!   field has one valid encoding;
//! - [`decode`] checks magic, version, kind, length and the tag (in constant
//!   time) before it reads a record, then every record, before it yields
//!   anything: a batch is applied whole or not at all, and no input panics
//!   (unit fixtures, proptests and `fuzz/fuzz_targets/cluster_batch.rs`);
//! - errors are a `Copy` enum with a `&'static str` name (the metrics label).
//!
//! # Layout (all integers big-endian)
//! ```text
//! batch:  0..4   magic "SHCL"
//!         4      version (2)
//!         5      kind: 0 peer records, 1 access changes
//!         6      flags: bit 0 = signed (the sender has a secret); others 0
//!         7      reserved, 0
//!         8..16  sender's instance id (random per process)
//!         16..24 sender's batch sequence number (from 1, +1 per batch)
//!         24..32 sender's clock when it sent the batch (an HLC stamp)
//!         32..34 count of records (at most MAX_RECORDS)
//!         34..36 reserved, 0
//!         36..   count × 48-byte peer records or 56-byte access records
//!         last 32 HMAC-SHA256 of everything before it
//! peer:   0..20  info hash
//!         20..36 IPv6 address (IPv4 as ::ffff:a.b.c.d)
//!         36..38 port (never 0)
//!         38     role: 0 leecher, 1 seeder, 2 stopped
//!         39     flags: bit 0 = event completed; other bits 0
//!         40..48 when it happened (an HLC stamp, [`super::hlc`])
//! access: 0..8   when it happened (an HLC stamp)
//!         8      op: 0 listed, 1 unlisted, 2 key added, 3 key removed
//!         9..16  reserved, 0
//!         16..48 info hash and 12 zero bytes (ops 0, 1), or the key (2, 3)
//!         48..56 key expiry, Unix seconds (op 2; u64::MAX = none), else 0
//! ```

use super::auth::{Keys, TAG_LEN};
use crate::access::{Change, Key};
use crate::swarm::{InfoHash, Role};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

pub const MAGIC: [u8; 4] = *b"SHCL";
pub const VERSION: u8 = 2;
pub const HEADER_LEN: usize = 36;
pub const RECORD_LEN: usize = 48;
pub const ACCESS_LEN: usize = 56;
pub const TRAILER_LEN: usize = TAG_LEN;
/// Most records in one batch (~192 KiB of peer records); the publisher splits
/// bigger bursts.
pub const MAX_RECORDS: usize = 4096;
/// The longest valid batch.
pub const MAX_BATCH: usize = HEADER_LEN + MAX_RECORDS * ACCESS_LEN + TRAILER_LEN;

const FLAG_SIGNED: u8 = 1;

/// One announce as the cluster sees it: fixed-size and `Copy`, so the request
/// path appends it to a preallocated buffer without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub info_hash: InfoHash,
    /// Canonical address (IPv4 stays IPv4).
    pub addr: SocketAddr,
    pub role: Role,
    /// `event=completed`.
    pub completed: bool,
    /// When it happened: an HLC stamp ([`super::hlc`]), set by the outbox.
    pub stamp: u64,
}

/// The bytes that name a peer in the version table: info hash, address
/// (IPv4-mapped) and port.
pub type PeerKey = [u8; 38];

impl Record {
    /// Its key in the version table.
    pub fn key(&self) -> PeerKey {
        let mut k = [0u8; 38];
        k[..20].copy_from_slice(&self.info_hash);
        k[20..36].copy_from_slice(&ip16(self.addr.ip()).octets());
        k[36..].copy_from_slice(&self.addr.port().to_be_bytes());
        k
    }
}

/// One change to the access policy and when it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessRecord {
    pub stamp: u64,
    pub change: Change,
}

impl AccessRecord {
    /// Its key in the access version table: which entry it changes, so that
    /// "listed" and "unlisted" of one hash (or "added" and "removed" of one
    /// key) compete.
    pub fn key(&self) -> [u8; 33] {
        let mut k = [0u8; 33];
        match self.change {
            Change::Listed(h) | Change::Unlisted(h) => {
                k[0] = b'L';
                k[1..21].copy_from_slice(&h);
            }
            Change::KeyAdded(key, _) | Change::KeyRemoved(key) => {
                k[0] = b'K';
                k[1..].copy_from_slice(&key.0);
            }
        }
        k
    }
}

fn ip16(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// What a batch says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub kind: Kind,
    pub instance: u64,
    pub sequence: u64,
    /// The sender's clock when it sent the batch.
    pub stamp: u64,
    pub count: usize,
}

/// What a batch carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Peers,
    Access,
}

/// Why a batch was dropped (the `reason` label of the metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchError {
    /// Shorter than a header and trailer, or its length disagrees with its count.
    Length,
    /// Not a shoal batch (someone else writes to the stream).
    Foreign,
    /// A version or kind this build does not read.
    Version,
    /// Sent by an instance without a secret, to one that has one.
    Unsigned,
    /// The tag does not verify: another secret (or none), corrupted, forged.
    Mac,
    /// A record with an invalid field or reserved byte.
    Record,
    /// A sequence number this sender already used: a replayed batch.
    Replay,
    /// Sent longer ago than the stream keeps batches: a replayed old batch.
    Stale,
}

impl BatchError {
    pub const ALL: [BatchError; 8] = [
        BatchError::Length,
        BatchError::Foreign,
        BatchError::Version,
        BatchError::Unsigned,
        BatchError::Mac,
        BatchError::Record,
        BatchError::Replay,
        BatchError::Stale,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BatchError::Length => "length",
            BatchError::Foreign => "foreign",
            BatchError::Version => "version",
            BatchError::Unsigned => "unsigned",
            BatchError::Mac => "mac",
            BatchError::Record => "record",
            BatchError::Replay => "replay",
            BatchError::Stale => "stale",
        }
    }

    /// Its index in [`BatchError::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A fixed-size record of one kind of batch.
pub trait Item: Sized {
    const KIND: Kind;
    const LEN: usize;
    fn write(&self, out: &mut Vec<u8>);
    fn read(bytes: &[u8]) -> Option<Self>;
}

impl Item for Record {
    const KIND: Kind = Kind::Peers;
    const LEN: usize = RECORD_LEN;

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.key());
        out.push(match self.role {
            Role::Leecher => 0,
            Role::Seeder => 1,
            Role::Stopped => 2,
        });
        out.push(u8::from(self.completed));
        out.extend_from_slice(&self.stamp.to_be_bytes());
    }

    fn read(b: &[u8]) -> Option<Record> {
        let b: &[u8; RECORD_LEN] = b.try_into().ok()?;
        let (ih, rest) = b.split_first_chunk::<20>()?;
        let (ip, rest) = rest.split_first_chunk::<16>()?;
        let (port, rest) = rest.split_first_chunk::<2>()?;
        let (&[role, flags], rest) = rest.split_first_chunk::<2>()?;
        let stamp = u64::from_be_bytes(*rest.first_chunk::<8>()?);
        let port = u16::from_be_bytes(*port);
        if port == 0 || flags > 1 {
            return None;
        }
        let role = match role {
            0 => Role::Leecher,
            1 => Role::Seeder,
            2 => Role::Stopped,
            _ => return None,
        };
        Some(Record {
            info_hash: *ih,
            addr: SocketAddr::new(Ipv6Addr::from(*ip).to_canonical(), port),
            role,
            completed: flags == 1,
            stamp,
        })
    }
}

/// No expiry, on the wire.
const NO_EXPIRY: u64 = u64::MAX;

impl Item for AccessRecord {
    const KIND: Kind = Kind::Access;
    const LEN: usize = ACCESS_LEN;

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.stamp.to_be_bytes());
        let (op, payload, expiry) = match self.change {
            Change::Listed(h) => (0, hash32(&h), 0),
            Change::Unlisted(h) => (1, hash32(&h), 0),
            Change::KeyAdded(k, e) => (2, k.0, e.unwrap_or(NO_EXPIRY)),
            Change::KeyRemoved(k) => (3, k.0, 0),
        };
        out.push(op);
        out.extend_from_slice(&[0; 7]);
        out.extend_from_slice(&payload);
        out.extend_from_slice(&u64::to_be_bytes(expiry));
    }

    fn read(b: &[u8]) -> Option<AccessRecord> {
        let b: &[u8; ACCESS_LEN] = b.try_into().ok()?;
        let (stamp, rest) = b.split_first_chunk::<8>()?;
        let (&op, rest) = rest.split_first()?;
        let (reserved, rest) = rest.split_first_chunk::<7>()?;
        let (payload, rest) = rest.split_first_chunk::<32>()?;
        let expiry = u64::from_be_bytes(*rest.first_chunk::<8>()?);
        if *reserved != [0; 7] {
            return None;
        }
        let hash = || -> Option<InfoHash> {
            let (h, pad) = payload.split_first_chunk::<20>()?;
            (pad.iter().all(|&b| b == 0) && expiry == 0).then_some(*h)
        };
        let change = match op {
            0 => Change::Listed(hash()?),
            1 => Change::Unlisted(hash()?),
            2 => Change::KeyAdded(
                Key::parse(payload)?,
                (expiry != NO_EXPIRY).then_some(expiry),
            ),
            3 if expiry == 0 => Change::KeyRemoved(Key::parse(payload)?),
            _ => return None,
        };
        Some(AccessRecord {
            stamp: u64::from_be_bytes(*stamp),
            change,
        })
    }
}

fn hash32(h: &InfoHash) -> [u8; 32] {
    let mut p = [0u8; 32];
    p[..20].copy_from_slice(h);
    p
}

/// Who sends a batch, and where it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sender {
    pub instance: u64,
    pub sequence: u64,
    /// Its clock when it sends.
    pub stamp: u64,
}

/// Append one signed batch of `items` (at most [`MAX_RECORDS`]; the rest is
/// ignored) to `out`.
pub fn encode<T: Item>(out: &mut Vec<u8>, keys: &Keys, from: Sender, items: &[T]) {
    let items = &items[..items.len().min(MAX_RECORDS)];
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(match T::KIND {
        Kind::Peers => 0,
        Kind::Access => 1,
    });
    out.push(if keys.signed() { FLAG_SIGNED } else { 0 });
    out.push(0);
    out.extend_from_slice(&from.instance.to_be_bytes());
    out.extend_from_slice(&from.sequence.to_be_bytes());
    out.extend_from_slice(&from.stamp.to_be_bytes());
    out.extend_from_slice(&(items.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    for r in items {
        r.write(out);
    }
    let tag = keys.sign_batch(&out[start..]);
    out.extend_from_slice(&tag);
}

/// Where [`decode`] puts a batch's records: one vector per kind, kept
/// between batches so decoding does not allocate once they have grown.
#[derive(Debug, Default)]
pub struct Decoded {
    pub peers: Vec<Record>,
    pub access: Vec<AccessRecord>,
}

impl Decoded {
    pub fn clear(&mut self) {
        self.peers.clear();
        self.access.clear();
    }
}

fn be64(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

/// Check a whole batch and, only if all of it is valid under `keys`, put its
/// records in `out` (cleared first; left empty on error).
pub fn decode(bytes: &[u8], keys: &Keys, out: &mut Decoded) -> Result<BatchHeader, BatchError> {
    out.clear();
    let Some(magic) = bytes.first_chunk::<4>() else {
        return Err(if MAGIC.starts_with(bytes) {
            BatchError::Length
        } else {
            BatchError::Foreign
        });
    };
    if *magic != MAGIC {
        return Err(BatchError::Foreign);
    }
    if bytes.len() < HEADER_LEN + TRAILER_LEN {
        return Err(BatchError::Length);
    }
    let (body, tag) = bytes.split_at(bytes.len() - TRAILER_LEN);
    let head = body.first_chunk::<HEADER_LEN>().ok_or(BatchError::Length)?;
    if head[4] != VERSION {
        return Err(BatchError::Version);
    }
    let (kind, len) = match head[5] {
        0 => (Kind::Peers, RECORD_LEN),
        1 => (Kind::Access, ACCESS_LEN),
        _ => return Err(BatchError::Version),
    };
    let count = usize::from(u16::from_be_bytes([head[32], head[33]]));
    if head[6] & !FLAG_SIGNED != 0 || head[7] != 0 || head[34..36] != [0, 0] {
        return Err(BatchError::Record);
    }
    if count > MAX_RECORDS || body.len() != HEADER_LEN + count * len {
        return Err(BatchError::Length);
    }
    match (keys.signed(), head[6] & FLAG_SIGNED != 0) {
        (true, false) => return Err(BatchError::Unsigned),
        // Signed with a secret this instance does not have: it cannot be
        // checked (and a tag under the public key would be a forgery).
        (false, true) => return Err(BatchError::Mac),
        _ => {}
    }
    if !keys.verify_batch(body, tag) {
        return Err(BatchError::Mac);
    }
    let header = BatchHeader {
        kind,
        instance: be64(head, 8),
        sequence: be64(head, 16),
        stamp: be64(head, 24),
        count,
    };
    let records = &body[HEADER_LEN..];
    let ok = match kind {
        Kind::Peers => read_all(records, &mut out.peers),
        Kind::Access => read_all(records, &mut out.access),
    };
    if !ok {
        out.clear();
        return Err(BatchError::Record);
    }
    Ok(header)
}

fn read_all<T: Item>(bytes: &[u8], out: &mut Vec<T>) -> bool {
    out.reserve(bytes.len() / T::LEN);
    for chunk in bytes.chunks_exact(T::LEN) {
        match T::read(chunk) {
            Some(r) => out.push(r),
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::super::auth::Secret;
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn rec(n: u8, role: Role, completed: bool) -> Record {
        Record {
            info_hash: [n; 20],
            addr: SocketAddr::new(Ipv4Addr::new(10, 0, 0, n).into(), 6881),
            role,
            completed,
            stamp: 0x0102_0304_0506_0708,
        }
    }

    fn keys() -> Keys {
        Keys::derive(Some(&Secret::new(b"0123456789abcdef").unwrap()), "t")
    }

    const FROM: Sender = Sender {
        instance: 7,
        sequence: 9,
        stamp: 11,
    };

    /// A one-record batch, byte by byte (the tag follows).
    const FIXTURE: &str = concat!(
        "5348434c",
        "02",
        "00",
        "01",
        "00",               // magic, version, peers, signed, reserved
        "0000000000000007", // instance 7
        "0000000000000009", // sequence 9
        "000000000000000b", // sent at stamp 11
        "0001",
        "0000",                                     // count, reserved
        "0101010101010101010101010101010101010101", // info hash
        "00000000000000000000ffff0a000001",         // ::ffff:10.0.0.1
        "1ae1",
        "01",
        "01",               // port 6881, seeder, completed
        "0102030405060708", // stamp
    );

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn signed(mut b: Vec<u8>) -> Vec<u8> {
        let tag = keys().sign_batch(&b);
        b.extend_from_slice(&tag);
        b
    }

    #[test]
    fn test_emit() {
        let mut out = Vec::new();
        encode(&mut out, &keys(), FROM, &[rec(1, Role::Seeder, true)]);
        assert_eq!(out, signed(hex(FIXTURE)));
        assert_eq!(out.len(), HEADER_LEN + RECORD_LEN + TRAILER_LEN);
    }

    #[test]
    fn test_parse() {
        let mut got = Decoded::default();
        let h = decode(&signed(hex(FIXTURE)), &keys(), &mut got).unwrap();
        assert_eq!(
            h,
            BatchHeader {
                kind: Kind::Peers,
                instance: 7,
                sequence: 9,
                stamp: 11,
                count: 1
            }
        );
        assert_eq!(got.peers, vec![rec(1, Role::Seeder, true)]);
        assert!(
            got.peers[0].addr.is_ipv4(),
            "mapped addresses come back as IPv4"
        );
    }

    /// An access batch, byte by byte: every op.
    #[test]
    fn access_records_round_trip_byte_by_byte() {
        let key = Key(*b"abcdefghijklmnopqrstuvwxyzABCDEF");
        let recs = [
            AccessRecord {
                stamp: 1,
                change: Change::Listed([0xaa; 20]),
            },
            AccessRecord {
                stamp: 2,
                change: Change::Unlisted([0xbb; 20]),
            },
            AccessRecord {
                stamp: 3,
                change: Change::KeyAdded(key, Some(1_900_000_000)),
            },
            AccessRecord {
                stamp: 4,
                change: Change::KeyAdded(key, None),
            },
            AccessRecord {
                stamp: 5,
                change: Change::KeyRemoved(key),
            },
        ];
        let mut out = Vec::new();
        encode(&mut out, &keys(), FROM, &recs);
        assert_eq!(out[5], 1, "kind: access");
        let third = &out[HEADER_LEN + 2 * ACCESS_LEN..][..ACCESS_LEN];
        let mut want = hex("0000000000000003");
        want.extend_from_slice(&hex("02000000000000"));
        want.push(0);
        want.extend_from_slice(&key.0);
        want.extend_from_slice(&1_900_000_000u64.to_be_bytes());
        assert_eq!(third, &want[..]);
        let mut got = Decoded::default();
        let h = decode(&out, &keys(), &mut got).unwrap();
        assert_eq!((h.kind, h.count), (Kind::Access, 5));
        assert_eq!(got.access, recs);
        assert!(got.peers.is_empty());
    }

    #[test]
    fn bad_batches_are_refused_whole() {
        let good = {
            let mut out = Vec::new();
            let recs = [rec(1, Role::Leecher, false), rec(2, Role::Stopped, false)];
            encode(&mut out, &keys(), FROM, &recs);
            out
        };
        let mut got = Decoded::default();
        got.peers.push(rec(9, Role::Seeder, false));
        let check = |bytes: &[u8], want: BatchError, got: &mut Decoded| {
            assert_eq!(decode(bytes, &keys(), got), Err(want));
            assert!(
                got.peers.is_empty() && got.access.is_empty(),
                "nothing half-applied"
            );
        };
        check(&[], BatchError::Length, &mut got);
        check(b"SHC", BatchError::Length, &mut got);
        check(b"{\"json\":1}", BatchError::Foreign, &mut got);
        check(&good[..good.len() - 1], BatchError::Length, &mut got);
        let mut v = good.clone();
        v[4] = 1;
        check(&v, BatchError::Version, &mut got);
        let mut v = good.clone();
        v[5] = 2;
        check(&v, BatchError::Version, &mut got);
        let mut v = good.clone();
        v[HEADER_LEN + 3] ^= 1; // a bit of the first info hash
        check(&v, BatchError::Mac, &mut got);
        let mut v = good.clone();
        v[12] ^= 1; // the sender id is covered too
        check(&v, BatchError::Mac, &mut got);
        // Signed under another secret, or under none.
        let other = Keys::derive(Some(&Secret::new(b"fedcba9876543210").unwrap()), "t");
        let none = Keys::derive(None, "t");
        for (k, want) in [(&other, BatchError::Mac), (&none, BatchError::Unsigned)] {
            let mut v = Vec::new();
            encode(&mut v, k, FROM, &[rec(1, Role::Leecher, false)]);
            check(&v, want, &mut got);
        }
        // A valid tag over an invalid second record (role 3): the first
        // record is not applied either. Port 0 and unknown flags too.
        for (at, byte) in [(38, 3), (36, 0), (39, 2)] {
            let mut v = good[..good.len() - TRAILER_LEN].to_vec();
            v[HEADER_LEN + RECORD_LEN + at] = byte;
            if at == 36 {
                v[HEADER_LEN + RECORD_LEN + 37] = 0;
            }
            check(&signed(v), BatchError::Record, &mut got);
        }
        // Reserved header bytes.
        for at in [6, 7, 34] {
            let mut v = good[..good.len() - TRAILER_LEN].to_vec();
            v[at] |= 2;
            check(&signed(v), BatchError::Record, &mut got);
        }
    }

    #[test]
    fn unsigned_batches_pass_between_instances_without_a_secret() {
        let none = Keys::derive(None, "t");
        let mut v = Vec::new();
        encode(&mut v, &none, FROM, &[rec(1, Role::Leecher, false)]);
        assert_eq!(v[6], 0, "says it is unsigned");
        let mut got = Decoded::default();
        assert!(decode(&v, &none, &mut got).is_ok());
        assert_eq!(decode(&v, &keys(), &mut got), Err(BatchError::Unsigned));
        // A batch that says it is signed, tagged under the public key: refused.
        v.truncate(v.len() - TRAILER_LEN);
        v[6] = 1;
        let tag = none.sign_batch(&v);
        v.extend_from_slice(&tag);
        assert_eq!(decode(&v, &none, &mut got), Err(BatchError::Mac));
    }

    #[test]
    fn encode_caps_a_batch_at_max_records() {
        let recs = vec![rec(1, Role::Leecher, false); MAX_RECORDS + 5];
        let mut out = Vec::new();
        encode(&mut out, &keys(), FROM, &recs);
        let mut got = Decoded::default();
        assert_eq!(decode(&out, &keys(), &mut got).unwrap().count, MAX_RECORDS);
    }

    fn any_record() -> impl Strategy<Value = Record> {
        (
            any::<[u8; 20]>(),
            any::<bool>(),
            any::<[u8; 16]>(),
            1..=u16::MAX,
            0..3u8,
            any::<bool>(),
            any::<u64>(),
        )
            .prop_map(|(info_hash, v4, ip, port, role, completed, stamp)| {
                let ip: IpAddr = if v4 {
                    Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]).into()
                } else {
                    Ipv6Addr::from(ip).to_canonical()
                };
                Record {
                    info_hash,
                    addr: SocketAddr::new(ip, port),
                    role: [Role::Leecher, Role::Seeder, Role::Stopped][role as usize],
                    completed,
                    stamp,
                }
            })
    }

    fn any_access() -> impl Strategy<Value = AccessRecord> {
        (
            any::<u64>(),
            0..4u8,
            any::<[u8; 20]>(),
            any::<[u8; 32]>(),
            any::<Option<u64>>(),
        )
            .prop_map(|(stamp, op, h, k, e)| {
                let key =
                    Key(k.map(|b| b"abcdefghijklmnopqrstuvwxyz0123456789"[usize::from(b) % 36]));
                let change = match op {
                    0 => Change::Listed(h),
                    1 => Change::Unlisted(h),
                    2 => Change::KeyAdded(key, e.filter(|&e| e != NO_EXPIRY)),
                    _ => Change::KeyRemoved(key),
                };
                AccessRecord { stamp, change }
            })
    }

    proptest! {
        #[test]
        fn round_trip(recs in proptest::collection::vec(any_record(), 0..50), id: u64, seq: u64, stamp: u64) {
            let from = Sender { instance: id, sequence: seq, stamp };
            let mut out = Vec::new();
            encode(&mut out, &keys(), from, &recs);
            let mut got = Decoded::default();
            let h = decode(&out, &keys(), &mut got).unwrap();
            prop_assert_eq!((h.instance, h.sequence, h.stamp, h.count), (id, seq, stamp, recs.len()));
            prop_assert_eq!(got.peers, recs);
        }

        #[test]
        fn access_round_trip(recs in proptest::collection::vec(any_access(), 0..20)) {
            let mut out = Vec::new();
            encode(&mut out, &keys(), FROM, &recs);
            let mut got = Decoded::default();
            decode(&out, &keys(), &mut got).unwrap();
            prop_assert_eq!(got.access, recs);
        }

        #[test]
        fn no_input_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut got = Decoded::default();
            if decode(&bytes, &keys(), &mut got).is_err() {
                prop_assert!(got.peers.is_empty() && got.access.is_empty());
            }
        }

        /// Mutations behind a re-computed tag reach the record checks: each
        /// is refused whole or decodes to exactly its count.
        #[test]
        fn no_mutation_of_a_valid_batch_panics(
            recs in proptest::collection::vec(any_record(), 0..8),
            at: usize,
            byte: u8,
        ) {
            let mut out = Vec::new();
            encode(&mut out, &keys(), FROM, &recs);
            out.truncate(out.len() - TRAILER_LEN);
            let at = at % out.len();
            out[at] = byte;
            let out = signed(out);
            let mut got = Decoded::default();
            match decode(&out, &keys(), &mut got) {
                Ok(h) => prop_assert_eq!(h.count, got.peers.len() + got.access.len()),
                Err(_) => prop_assert!(got.peers.is_empty() && got.access.is_empty()),
            }
        }
    }
}
