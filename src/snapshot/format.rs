//! The byte layout of a snapshot (format version 1) and its two codecs: a
//! streaming encoder that never needs more than one torrent in memory, and a
//! decoder that validates the whole file before yielding a single record.
//!
//! All integers are little-endian unless noted; counts are LEB128 varints
//! (most torrents have a handful of peers, so a count costs one byte).
//!
//! ```text
//! header   (40 bytes)
//!   0..8    magic "SHOALSNP"
//!   8..10   format version u16 (= 1)
//!   10..12  flags u16 (none defined: any set bit is refused, not ignored)
//!   12..20  wall-clock unix seconds when the snapshot was taken, u64
//!   20..24  peer timeout (seconds) of the writer, u32
//!   24..40  connection-id key (16 bytes, SipHash key)
//! records  (one per torrent, as many as the trailer says)
//!   info hash [20]
//!   completed           varint
//!   n4                  varint, then n4 × 8 bytes:
//!       ip [4], port u16 big-endian (BEP 23 compact order), role/age u16
//!   n6                  varint, then n6 × 20 bytes:
//!       ip [16], port u16 big-endian, role/age u16
//!   n_ids               varint, then n_ids × (index varint, peer id [20])
//!       index into this torrent's peers, v4 first then v6; strictly increasing
//! trailer  (24 bytes)
//!   torrents u64, peers u64, checksum u64
//! ```
//!
//! The torrent and peer counts sit in the trailer, not the header, because the
//! writer streams: it knows them only at the end, and patching the header
//! afterwards would mean a second pass over the file for the checksum. The
//! loader checks them against the records it walks.
//!
//! role/age: bit 15 is "seeder", bits 0..15 the peer's age in seconds at the
//! snapshot time, saturated at [`MAX_AGE`] (9 h 6 min: far above any sane
//! peer timeout; an older peer comes back as `MAX_AGE` old).
//!
//! The checksum is SipHash-1-3 with a fixed, public key over every byte before
//! it. It detects accidents (torn writes, bit rot, a foreign file), not forgery:
//! whoever can write the state file can also read the key inside it. SipHash
//! rather than CRC32 because `siphasher` is already a dependency (no new crate)
//! and 64 bits make an undetected random corruption a 2⁻⁶⁴ event; it hashes
//! well over 1 GB/s, a few ms for a 2 M-peer file.

use super::{PeerRecord4, PeerRecord6, SnapshotError, TorrentRecord};
use siphasher::sip::SipHasher13;
use std::net::{Ipv4Addr, Ipv6Addr};

pub const MAGIC: [u8; 8] = *b"SHOALSNP";
pub const VERSION: u16 = 1;
pub const HEADER_LEN: usize = 40;
pub const TRAILER_LEN: usize = 24;
pub const PEER4_LEN: usize = 8;
pub const PEER6_LEN: usize = 20;
pub const ID_LEN: usize = 20;
/// The largest storable age (15 bits of seconds).
pub const MAX_AGE: u32 = 0x7fff;
const SEEDER_BIT: u16 = 0x8000;
/// Fixed, public checksum key ("shoal snapshot 1"): see the module doc.
const CHECKSUM_KEY: [u8; 16] = *b"shoal snapshot 1";

pub fn checksum_hasher() -> SipHasher13 {
    SipHasher13::new_with_key(&CHECKSUM_KEY)
}

/// Packs role and age into the on-disk u16.
pub fn role_age(seeder: bool, age: u32) -> u16 {
    // MAX_AGE is 15 bits, so the cast cannot truncate.
    let age = age.min(MAX_AGE) as u16;
    if seeder {
        age | SEEDER_BIT
    } else {
        age
    }
}

pub fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends one torrent's record to `out`. The caller has checked the record
/// (`check_record`), so the encoding is always one the decoder accepts.
pub fn encode_record(out: &mut Vec<u8>, rec: &TorrentRecord) {
    out.extend_from_slice(&rec.info_hash);
    put_varint(out, rec.completed);
    put_varint(out, rec.v4.len() as u32);
    for p in &rec.v4 {
        out.extend_from_slice(&p.ip.octets());
        out.extend_from_slice(&p.port.to_be_bytes());
        out.extend_from_slice(&role_age(p.seeder, p.age).to_le_bytes());
    }
    put_varint(out, rec.v6.len() as u32);
    for p in &rec.v6 {
        out.extend_from_slice(&p.ip.octets());
        out.extend_from_slice(&p.port.to_be_bytes());
        out.extend_from_slice(&role_age(p.seeder, p.age).to_le_bytes());
    }
    put_varint(out, rec.peer_ids.len() as u32);
    for (index, id) in &rec.peer_ids {
        put_varint(out, *index);
        out.extend_from_slice(id);
    }
}

/// Why a record cannot be written (the writer refuses it rather than emit a
/// file its own loader would reject).
pub fn check_record(rec: &TorrentRecord) -> Result<(), &'static str> {
    let total = rec.v4.len() as u64 + rec.v6.len() as u64;
    if total > u64::from(u32::MAX) {
        return Err("more than u32::MAX peers in one torrent");
    }
    let mut next = 0u64;
    for (index, _) in &rec.peer_ids {
        let index = u64::from(*index);
        if index < next {
            return Err("peer ids not strictly increasing by index");
        }
        if index >= total {
            return Err("peer id index past the torrent's peers");
        }
        next = index + 1;
    }
    Ok(())
}

/// A bounds-checked reader over the record area: every read fails with
/// `Truncated` instead of panicking.
#[derive(Debug)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        if n > self.remaining() {
            return Err(SnapshotError::Malformed("record runs past the end"));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub fn varint(&mut self) -> Result<u32, SnapshotError> {
        let mut v: u32 = 0;
        for i in 0..5 {
            let [b] = self.array::<1>()?;
            if i == 4 && b > 0x0f {
                return Err(SnapshotError::Malformed("varint overflows u32"));
            }
            v |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(SnapshotError::Malformed("varint overflows u32"))
    }

    /// A count of `size`-byte items that must fit in what is left: checked
    /// before anything is allocated, so a lying count cannot allocate.
    pub fn count(&mut self, size: usize) -> Result<usize, SnapshotError> {
        let n = self.varint()? as usize;
        if n.checked_mul(size).is_none_or(|b| b > self.remaining()) {
            return Err(SnapshotError::Malformed("count larger than the file"));
        }
        Ok(n)
    }
}

/// The counts a record declares, found by walking it.
#[derive(Debug)]
pub struct Walked {
    pub peers: u64,
}

/// Pass one: checks one record's structure without allocating.
pub fn walk_record(c: &mut Cursor<'_>) -> Result<Walked, SnapshotError> {
    c.take(20)?;
    c.varint()?;
    let n4 = c.count(PEER4_LEN)?;
    c.take(n4 * PEER4_LEN)?;
    let n6 = c.count(PEER6_LEN)?;
    c.take(n6 * PEER6_LEN)?;
    let total = n4 as u64 + n6 as u64;
    let n_ids = c.count(1 + ID_LEN)?;
    let mut next = 0u64;
    for _ in 0..n_ids {
        let index = u64::from(c.varint()?);
        if index < next || index >= total {
            return Err(SnapshotError::Malformed(
                "peer id index out of order or range",
            ));
        }
        next = index + 1;
        c.take(ID_LEN)?;
    }
    Ok(Walked { peers: total })
}

/// Reusable buffers for pass two: maps a stored peer index to its index in the
/// yielded record (or `u32::MAX` when the peer expired).
#[derive(Debug, Default)]
pub struct Scratch {
    new_index: Vec<u32>,
}

/// Pass two: decodes one (already validated) record into `rec`, advancing ages
/// by `downtime` and dropping peers whose age passes `timeout` (a peer is
/// fresh up to its timeout, as in `swarm::peers::is_fresh`). Returns the
/// number of peers dropped.
pub fn decode_record(
    c: &mut Cursor<'_>,
    rec: &mut TorrentRecord,
    scratch: &mut Scratch,
    downtime: u32,
    timeout: u32,
) -> Result<u64, SnapshotError> {
    rec.v4.clear();
    rec.v6.clear();
    rec.peer_ids.clear();
    scratch.new_index.clear();
    rec.info_hash = c.array()?;
    rec.completed = c.varint()?;
    let mut dropped = 0u64;
    let mut kept = 0u32;
    let n4 = c.count(PEER4_LEN)?;
    for _ in 0..n4 {
        let b: [u8; PEER4_LEN] = c.array()?;
        let ra = u16::from_le_bytes([b[6], b[7]]);
        let age = u32::from(ra & !SEEDER_BIT).saturating_add(downtime);
        if age <= timeout {
            rec.v4.push(PeerRecord4 {
                ip: Ipv4Addr::new(b[0], b[1], b[2], b[3]),
                port: u16::from_be_bytes([b[4], b[5]]),
                seeder: ra & SEEDER_BIT != 0,
                age,
            });
            scratch.new_index.push(kept);
            kept += 1;
        } else {
            scratch.new_index.push(u32::MAX);
            dropped += 1;
        }
    }
    let n6 = c.count(PEER6_LEN)?;
    for _ in 0..n6 {
        let b: [u8; PEER6_LEN] = c.array()?;
        let mut ip = [0u8; 16];
        ip.copy_from_slice(&b[..16]);
        let ra = u16::from_le_bytes([b[18], b[19]]);
        let age = u32::from(ra & !SEEDER_BIT).saturating_add(downtime);
        if age <= timeout {
            rec.v6.push(PeerRecord6 {
                ip: Ipv6Addr::from(ip),
                port: u16::from_be_bytes([b[16], b[17]]),
                seeder: ra & SEEDER_BIT != 0,
                age,
            });
            scratch.new_index.push(kept);
            kept += 1;
        } else {
            scratch.new_index.push(u32::MAX);
            dropped += 1;
        }
    }
    let n_ids = c.count(1 + ID_LEN)?;
    for _ in 0..n_ids {
        let index = c.varint()? as usize;
        let id: [u8; ID_LEN] = c.array()?;
        match scratch.new_index.get(index) {
            Some(&i) if i != u32::MAX => rec.peer_ids.push((i, id)),
            Some(_) => {}
            None => return Err(SnapshotError::Malformed("peer id index out of range")),
        }
    }
    Ok(dropped)
}
