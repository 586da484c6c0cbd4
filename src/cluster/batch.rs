//! The cluster's wire format: fixed-size announce records and the binary batch
//! that carries them over the Redis/Valkey channel.
//!
//! Guarantees:
//! - a record is 40 bytes, a batch a 24-byte header, `count` records and an
//!   8-byte checksum; every field has one valid encoding;
//! - [`decode`] checks magic, version, length, checksum and every record
//!   before it yields anything: a batch is applied whole or not at all, and no
//!   input panics (unit fixtures, a proptest and `fuzz/fuzz_targets/cluster_batch.rs`);
//! - errors are a `Copy` enum with a `&'static str` name (the metrics label).
//!
//! # Layout (all integers big-endian)
//! ```text
//! batch:  0..4   magic "SHCL"
//!         4      version (1)
//!         5      reserved, 0
//!         6..8   count of records (at most MAX_RECORDS)
//!         8..16  sender's instance id (random per process)
//!         16..24 sender's batch sequence number
//!         24..   count × 40-byte records
//!         last 8 SipHash-1-3 (zero key) of everything before it
//! record: 0..20  info hash
//!         20..36 IPv6 address (IPv4 as ::ffff:a.b.c.d)
//!         36..38 port (never 0)
//!         38     role: 0 leecher, 1 seeder, 2 stopped
//!         39     flags: bit 0 = event completed; other bits 0
//! ```
//! The checksum catches corruption and foreign publishers on the same channel;
//! it is not authentication (anyone who can PUBLISH on the Redis can inject).

use crate::swarm::{InfoHash, Role};
use std::hash::Hasher;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

pub const MAGIC: [u8; 4] = *b"SHCL";
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 24;
pub const RECORD_LEN: usize = 40;
pub const TRAILER_LEN: usize = 8;
/// Most records in one batch (~160 KiB message); the publisher splits bigger bursts.
pub const MAX_RECORDS: usize = 4096;

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
}

/// What a batch says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub instance: u64,
    pub sequence: u64,
    pub count: usize,
}

/// Why a batch was dropped (the `reason` label of the metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchError {
    /// Shorter than a header and trailer, or its length disagrees with its count.
    Length,
    /// Not a shoal batch (someone else publishes on the channel).
    Foreign,
    /// A version this build does not read.
    Version,
    /// The checksum does not match: corrupted or forged.
    Checksum,
    /// A record with an invalid role, flags, reserved byte or port.
    Record,
}

impl BatchError {
    pub const ALL: [BatchError; 5] = [
        BatchError::Length,
        BatchError::Foreign,
        BatchError::Version,
        BatchError::Checksum,
        BatchError::Record,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BatchError::Length => "length",
            BatchError::Foreign => "foreign",
            BatchError::Version => "version",
            BatchError::Checksum => "checksum",
            BatchError::Record => "record",
        }
    }
}

/// The trailer's checksum of a batch's bytes before it.
pub fn checksum(bytes: &[u8]) -> u64 {
    let mut h = siphasher::sip::SipHasher13::new();
    h.write(bytes);
    h.finish()
}

/// Append one batch of `records` (at most [`MAX_RECORDS`]; the rest is
/// ignored) to `out`.
pub fn encode(out: &mut Vec<u8>, instance: u64, sequence: u64, records: &[Record]) {
    let records = &records[..records.len().min(MAX_RECORDS)];
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(0);
    out.extend_from_slice(&(records.len() as u16).to_be_bytes());
    out.extend_from_slice(&instance.to_be_bytes());
    out.extend_from_slice(&sequence.to_be_bytes());
    for r in records {
        encode_record(out, r);
    }
    let sum = checksum(&out[start..]);
    out.extend_from_slice(&sum.to_be_bytes());
}

fn encode_record(out: &mut Vec<u8>, r: &Record) {
    out.extend_from_slice(&r.info_hash);
    let ip = match r.addr.ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    out.extend_from_slice(&ip.octets());
    out.extend_from_slice(&r.addr.port().to_be_bytes());
    out.push(match r.role {
        Role::Leecher => 0,
        Role::Seeder => 1,
        Role::Stopped => 2,
    });
    out.push(u8::from(r.completed));
}

fn decode_record(b: &[u8; RECORD_LEN]) -> Option<Record> {
    let (ih, rest) = b.split_first_chunk::<20>()?;
    let (ip, rest) = rest.split_first_chunk::<16>()?;
    let (port, rest) = rest.split_first_chunk::<2>()?;
    let (&role, rest) = rest.split_first()?;
    let (&flags, _) = rest.split_first()?;
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
    })
}

/// Check a whole batch and, only if all of it is valid, put its records in
/// `out` (cleared first; left empty on error).
pub fn decode(bytes: &[u8], out: &mut Vec<Record>) -> Result<BatchHeader, BatchError> {
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
    let (body, sum) = bytes.split_at(bytes.len() - TRAILER_LEN);
    let head = body.first_chunk::<HEADER_LEN>().ok_or(BatchError::Length)?;
    if head[4] != VERSION {
        return Err(BatchError::Version);
    }
    let count = usize::from(u16::from_be_bytes([head[6], head[7]]));
    if head[5] != 0 || count > MAX_RECORDS {
        return Err(BatchError::Record);
    }
    if body.len() != HEADER_LEN + count * RECORD_LEN {
        return Err(BatchError::Length);
    }
    let sum = u64::from_be_bytes(sum.try_into().map_err(|_| BatchError::Length)?);
    if checksum(body) != sum {
        return Err(BatchError::Checksum);
    }
    let mut word = [0u8; 8];
    word.copy_from_slice(&head[8..16]);
    let instance = u64::from_be_bytes(word);
    word.copy_from_slice(&head[16..24]);
    let sequence = u64::from_be_bytes(word);
    out.reserve(count);
    for chunk in body[HEADER_LEN..].chunks_exact(RECORD_LEN) {
        let rec = chunk
            .first_chunk::<RECORD_LEN>()
            .and_then(decode_record)
            .ok_or(BatchError::Record);
        match rec {
            Ok(r) => out.push(r),
            Err(e) => {
                out.clear();
                return Err(e);
            }
        }
    }
    Ok(BatchHeader {
        instance,
        sequence,
        count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn rec(n: u8, role: Role, completed: bool) -> Record {
        Record {
            info_hash: [n; 20],
            addr: SocketAddr::new(Ipv4Addr::new(10, 0, 0, n).into(), 6881),
            role,
            completed,
        }
    }

    /// A one-record batch, byte by byte.
    const FIXTURE: &str = concat!(
        "5348434c",
        "01",
        "00",
        "0001", // magic, version, reserved, count
        "0000000000000007",
        "0000000000000009",                         // instance 7, sequence 9
        "0101010101010101010101010101010101010101", // info hash
        "00000000000000000000ffff0a000001",
        "1ae1", // ::ffff:10.0.0.1, port 6881
        "01",
        "01", // seeder, completed
    );

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn fixture() -> Vec<u8> {
        let mut b = hex(FIXTURE);
        let sum = checksum(&b);
        b.extend_from_slice(&sum.to_be_bytes());
        b
    }

    #[test]
    fn test_emit() {
        let mut out = Vec::new();
        encode(&mut out, 7, 9, &[rec(1, Role::Seeder, true)]);
        assert_eq!(out, fixture());
        assert_eq!(out.len(), HEADER_LEN + RECORD_LEN + TRAILER_LEN);
    }

    #[test]
    fn test_parse() {
        let mut got = Vec::new();
        let h = decode(&fixture(), &mut got).unwrap();
        assert_eq!(
            h,
            BatchHeader {
                instance: 7,
                sequence: 9,
                count: 1
            }
        );
        assert_eq!(got, vec![rec(1, Role::Seeder, true)]);
        assert!(got[0].addr.is_ipv4(), "mapped addresses come back as IPv4");
    }

    #[test]
    fn bad_batches_are_refused_whole() {
        let good = {
            let mut out = Vec::new();
            let recs = [rec(1, Role::Leecher, false), rec(2, Role::Stopped, false)];
            encode(&mut out, 1, 1, &recs);
            out
        };
        let mut got = vec![rec(9, Role::Seeder, false)];
        let check = |bytes: &[u8], want: BatchError, got: &mut Vec<Record>| {
            assert_eq!(decode(bytes, got), Err(want));
            assert!(got.is_empty(), "nothing half-applied");
        };
        check(&[], BatchError::Length, &mut got);
        check(b"SHC", BatchError::Length, &mut got);
        check(b"{\"json\":1}", BatchError::Foreign, &mut got);
        check(&good[..good.len() - 1], BatchError::Length, &mut got);
        let mut v = good.clone();
        v[4] = 2;
        check(&v, BatchError::Version, &mut got);
        let mut v = good.clone();
        v[30] ^= 1; // a bit of the first info hash
        check(&v, BatchError::Checksum, &mut got);
        // A valid checksum over an invalid second record (role 3): the first
        // record is not applied either.
        let mut v = good[..good.len() - TRAILER_LEN].to_vec();
        v[HEADER_LEN + RECORD_LEN + 38] = 3;
        let sum = checksum(&v);
        v.extend_from_slice(&sum.to_be_bytes());
        check(&v, BatchError::Record, &mut got);
        // Port 0 and unknown flags too.
        for (at, byte) in [(36, 0), (39, 2)] {
            let mut v = hex(FIXTURE);
            v[HEADER_LEN + at] = byte;
            if at == 36 {
                v[HEADER_LEN + 37] = 0;
            }
            let sum = checksum(&v);
            v.extend_from_slice(&sum.to_be_bytes());
            check(&v, BatchError::Record, &mut got);
        }
    }

    #[test]
    fn encode_caps_a_batch_at_max_records() {
        let recs = vec![rec(1, Role::Leecher, false); MAX_RECORDS + 5];
        let mut out = Vec::new();
        encode(&mut out, 1, 1, &recs);
        let mut got = Vec::new();
        assert_eq!(decode(&out, &mut got).unwrap().count, MAX_RECORDS);
    }

    fn any_record() -> impl Strategy<Value = Record> {
        (
            any::<[u8; 20]>(),
            any::<bool>(),
            any::<[u8; 16]>(),
            1..=u16::MAX,
            0..3u8,
            any::<bool>(),
        )
            .prop_map(|(info_hash, v4, ip, port, role, completed)| {
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
                }
            })
    }

    proptest! {
        #[test]
        fn round_trip(recs in proptest::collection::vec(any_record(), 0..50), id: u64, seq: u64) {
            let mut out = Vec::new();
            encode(&mut out, id, seq, &recs);
            let mut got = Vec::new();
            let h = decode(&out, &mut got).unwrap();
            prop_assert_eq!((h.instance, h.sequence, h.count), (id, seq, recs.len()));
            prop_assert_eq!(got, recs);
        }

        #[test]
        fn no_input_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut got = Vec::new();
            if decode(&bytes, &mut got).is_err() {
                prop_assert!(got.is_empty());
            }
        }

        #[test]
        fn no_mutation_of_a_valid_batch_panics(
            recs in proptest::collection::vec(any_record(), 0..8),
            at: usize,
            byte: u8,
        ) {
            let mut out = Vec::new();
            encode(&mut out, 1, 2, &recs);
            let at = at % out.len();
            out[at] = byte;
            let mut got = Vec::new();
            match decode(&out, &mut got) {
                Ok(h) => prop_assert_eq!(h.count, got.len()),
                Err(_) => prop_assert!(got.is_empty()),
            }
        }
    }
}
