//! Warm-restart snapshots of the swarm: the versioned, checksummed
//! file format, an atomic writer fed one torrent at a time, and a loader that
//! validates the whole file before it yields a single record.
//!
//! Guarantees:
//! - **Streaming write.** [`SnapshotWriter`] takes torrents one at a time, so the
//!   caller can copy one shard out under its lock, release the lock, then write:
//!   writing never needs the whole map in memory and never holds a lock across I/O.
//! - **Atomic replace.** [`SnapshotFile`] writes `.<name>.tmp` in the same
//!   directory (mode 0600: the file holds the connection-id key), fsyncs it,
//!   renames it over `PATH` and fsyncs the directory. A crash at any point leaves
//!   either the previous snapshot or the new one, never a mix.
//! - **All or nothing on load.** [`load`]/[`decode`] check magic, version, flags,
//!   the checksum over the whole file and every record's structure and counts
//!   before [`Loaded::next_into`] yields anything. A truncated, corrupt, foreign
//!   or future-version file is an `Err` (never a panic, never half a map); the
//!   caller logs one warning, calls [`move_aside`] and starts empty.
//! - **Bounded memory.** The loader holds the file's bytes and one torrent;
//!   every count is checked against the bytes left before anything is sized by
//!   it, so a header claiming 4 billion peers allocates nothing.
//! - **Ages survive the downtime.** Ages are stored relative to the snapshot
//!   time; on load they advance by the wall-clock downtime and peers past the
//!   (current) peer timeout are dropped (a peer exactly at it is still fresh,
//!   as in the live map). A torrent left with no peers keeps
//!   its record when its completed count is non-zero (counts are exact across a
//!   restart) and is skipped when there is nothing left to keep.
//!
//! On disk an IPv4 peer is 8 bytes, an IPv6 peer 20, a torrent 20 + ~4 bytes of
//! counts; byte layout in [`format`].
//!
//! Integration sketch (for the net/swarm side):
//! ```text
//! start:  check_writable(path)?; match load(path, now_unix, timeout) {
//!             Ok(Some(l)) => { key = l.header().connid_key; while l.next_into(&mut rec) { insert } }
//!             Ok(None) => {}                       // no file yet
//!             Err(e) if e.is_corrupt() => { warn!(...); move_aside(path, now_unix)?; }
//!             Err(e) => return start-up error }
//! save:   let mut f = SnapshotFile::create(path, &header)?;
//!         for shard { copy records out under the lock; drop the lock; f.write_torrent(&rec)? }
//!         f.commit()?;
//! ```

pub mod format;
#[cfg(test)]
mod tests;

use format::{Cursor, Scratch, HEADER_LEN, MAGIC, TRAILER_LEN, VERSION};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::hash::Hasher;
use std::io::{self, BufWriter, Write};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// One IPv4 peer. `age` is seconds since its last announce: at the snapshot
/// time when written, at `now_unix` when loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerRecord4 {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub seeder: bool,
    pub age: u32,
}

/// One IPv6 peer; see [`PeerRecord4`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerRecord6 {
    pub ip: Ipv6Addr,
    pub port: u16,
    pub seeder: bool,
    pub age: u32,
}

/// One torrent. Reuse one value across [`SnapshotWriter::write_torrent`] or
/// [`Loaded::next_into`] calls: its vectors keep their capacity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TorrentRecord {
    pub info_hash: [u8; 20],
    pub completed: u32,
    pub v4: Vec<PeerRecord4>,
    pub v6: Vec<PeerRecord6>,
    /// Peer ids kept for HTTP peers (non-compact replies): `(index, id)` where
    /// `index` counts `v4` then `v6`; strictly increasing by index.
    pub peer_ids: Vec<(u32, [u8; 20])>,
}

impl TorrentRecord {
    pub fn clear(&mut self) {
        self.completed = 0;
        self.v4.clear();
        self.v6.clear();
        self.peer_ids.clear();
    }

    pub fn peers(&self) -> usize {
        self.v4.len() + self.v6.len()
    }
}

/// What the file says about itself.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Wall-clock unix seconds when the snapshot was taken (ages are relative to it).
    pub written_unix: u64,
    /// The writer's peer timeout in seconds (informational: load takes the current one).
    pub peer_timeout: u32,
    /// The connection-id SipHash key, so ids issued before a restart stay valid.
    pub connid_key: [u8; 16],
}

// The key is a secret: never printed, not even at debug level.
impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Header")
            .field("written_unix", &self.written_unix)
            .field("peer_timeout", &self.peer_timeout)
            .field("connid_key", &"<redacted>")
            .finish()
    }
}

/// Why a snapshot cannot be loaded. Everything but `Io` means "this file is
/// not a snapshot we can trust": see [`SnapshotError::is_corrupt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotError {
    /// Reading failed (permissions, I/O): a start-up error, the file is left alone.
    Io(io::ErrorKind),
    /// Shorter than a header and a trailer.
    Truncated,
    /// The magic is not `SHOALSNP` (a foreign file).
    Foreign,
    /// Written by a later shoal (format version above ours).
    FutureVersion(u16),
    /// A flag bit this version does not know.
    UnknownFlags(u16),
    /// The checksum does not match the contents (torn or corrupted).
    Checksum,
    /// The checksum matched but the structure is wrong (a writer bug).
    Malformed(&'static str),
}

impl SnapshotError {
    /// Whether the file should be moved aside and shoal started empty.
    pub fn is_corrupt(self) -> bool {
        !matches!(self, SnapshotError::Io(_))
    }
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotError::Io(k) => write!(f, "cannot read the state file: {k}"),
            SnapshotError::Truncated => f.write_str("state file truncated"),
            SnapshotError::Foreign => f.write_str("not a shoal state file (bad magic)"),
            SnapshotError::FutureVersion(v) => {
                write!(
                    f,
                    "state file format version {v} is newer than this shoal ({VERSION})"
                )
            }
            SnapshotError::UnknownFlags(x) => write!(f, "state file has unknown flags {x:#06x}"),
            SnapshotError::Checksum => f.write_str("state file checksum mismatch"),
            SnapshotError::Malformed(m) => write!(f, "state file malformed: {m}"),
        }
    }
}

impl std::error::Error for SnapshotError {}

/// Streams a snapshot into any writer: header now, torrents one at a time,
/// trailer at [`finish`](Self::finish).
#[derive(Debug)]
pub struct SnapshotWriter<W: Write> {
    out: W,
    hasher: siphasher::sip::SipHasher13,
    /// One encoded record, reused: one hash update and one write per torrent.
    buf: Vec<u8>,
    torrents: u64,
    peers: u64,
}

impl<W: Write> SnapshotWriter<W> {
    pub fn new(out: W, header: &Header) -> io::Result<Self> {
        let mut w = SnapshotWriter {
            out,
            hasher: format::checksum_hasher(),
            buf: Vec::with_capacity(4096),
            torrents: 0,
            peers: 0,
        };
        w.buf.extend_from_slice(&MAGIC);
        w.buf.extend_from_slice(&VERSION.to_le_bytes());
        w.buf.extend_from_slice(&0u16.to_le_bytes());
        w.buf.extend_from_slice(&header.written_unix.to_le_bytes());
        w.buf.extend_from_slice(&header.peer_timeout.to_le_bytes());
        w.buf.extend_from_slice(&header.connid_key);
        w.flush_buf()?;
        Ok(w)
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        self.hasher.write(&self.buf);
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    /// Appends one torrent. Ages above [`format::MAX_AGE`] are saturated.
    /// Refuses (`InvalidInput`) a record the loader would reject: peer ids out
    /// of order or out of range.
    pub fn write_torrent(&mut self, rec: &TorrentRecord) -> io::Result<()> {
        format::check_record(rec).map_err(|m| io::Error::new(io::ErrorKind::InvalidInput, m))?;
        format::encode_record(&mut self.buf, rec);
        self.torrents += 1;
        self.peers += rec.peers() as u64;
        self.flush_buf()
    }

    /// Writes the trailer (counts and checksum) and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.buf.extend_from_slice(&self.torrents.to_le_bytes());
        self.buf.extend_from_slice(&self.peers.to_le_bytes());
        self.hasher.write(&self.buf);
        let sum = self.hasher.finish();
        self.buf.extend_from_slice(&sum.to_le_bytes());
        self.out.write_all(&self.buf)?;
        self.out.flush()?;
        Ok(self.out)
    }

    /// Torrents and peers written so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.torrents, self.peers)
    }
}

/// The temporary name a snapshot of `path` is written under: a hidden file in
/// the same directory, so the final rename stays within one file system.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn create_private(path: &Path) -> io::Result<File> {
    // A stale temp file (a crash mid-write) may have any mode: remove it and
    // create afresh so the 0600 below applies.
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// A snapshot being written to `PATH`'s temporary name; [`commit`](Self::commit)
/// makes it the snapshot. Dropped uncommitted, it removes the temporary file
/// and leaves the previous snapshot in place.
#[derive(Debug)]
pub struct SnapshotFile {
    writer: Option<SnapshotWriter<BufWriter<File>>>,
    tmp: PathBuf,
    path: PathBuf,
}

impl SnapshotFile {
    pub fn create(path: &Path, header: &Header) -> io::Result<Self> {
        let tmp = temp_path(path);
        let file = create_private(&tmp)?;
        let writer = SnapshotWriter::new(BufWriter::with_capacity(1 << 16, file), header)?;
        Ok(SnapshotFile {
            writer: Some(writer),
            tmp,
            path: path.to_path_buf(),
        })
    }

    pub fn write_torrent(&mut self, rec: &TorrentRecord) -> io::Result<()> {
        match &mut self.writer {
            Some(w) => w.write_torrent(rec),
            None => Err(io::Error::other("snapshot already finished")),
        }
    }

    /// Finishes, fsyncs, renames over `PATH` and fsyncs the directory.
    /// Returns the torrents and peers written.
    pub fn commit(mut self) -> io::Result<(u64, u64)> {
        let Some(writer) = self.writer.take() else {
            return Err(io::Error::other("snapshot already finished"));
        };
        let counts = writer.counts();
        let file = writer.finish()?.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&self.tmp, &self.path)?;
        File::open(parent_dir(&self.path))?.sync_all()?;
        Ok(counts)
    }
}

impl Drop for SnapshotFile {
    fn drop(&mut self) {
        if self.writer.is_some() {
            // Best effort: a leftover temp file is harmless (the next write replaces it).
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Start-up check that snapshots can be written next to `path`: creates and
/// removes a probe file in its directory. An unwritable path is a start-up
/// error, not a surprise at the first SIGTERM.
pub fn check_writable(path: &Path) -> io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    if name.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "state file path names no file",
        ));
    }
    if path.is_dir() {
        // The final rename could never replace a directory.
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "state file path is a directory",
        ));
    }
    let probe = path.with_file_name(format!(".{name}.probe"));
    let mut f = create_private(&probe)?;
    let res = f.write_all(b"probe").and_then(|()| f.sync_all());
    drop(f);
    fs::remove_file(&probe)?;
    res
}

/// The name a refused snapshot is moved to: `PATH.corrupt-<unix time>`.
pub fn corrupt_path(path: &Path, now_unix: u64) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".corrupt-{now_unix}"));
    PathBuf::from(s)
}

/// Moves a refused snapshot aside (kept for a post-mortem) so the next
/// snapshot does not overwrite the evidence; returns its new name.
pub fn move_aside(path: &Path, now_unix: u64) -> io::Result<PathBuf> {
    let to = corrupt_path(path, now_unix);
    fs::rename(path, &to)?;
    Ok(to)
}

/// Reads and validates `path`. `Ok(None)` when there is no file (a first start).
pub fn load(
    path: &Path,
    now_unix: u64,
    peer_timeout: u32,
) -> Result<Option<Loaded>, SnapshotError> {
    match fs::read(path) {
        Ok(bytes) => decode(bytes, now_unix, peer_timeout).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SnapshotError::Io(e.kind())),
    }
}

/// Validates a whole snapshot held in memory; nothing is yielded unless all of
/// it is valid.
pub fn decode(bytes: Vec<u8>, now_unix: u64, peer_timeout: u32) -> Result<Loaded, SnapshotError> {
    if bytes.len() < HEADER_LEN + TRAILER_LEN {
        // Too short for a header: say "foreign" if even the magic is wrong.
        let n = bytes.len().min(MAGIC.len());
        if bytes[..n] != MAGIC[..n] {
            return Err(SnapshotError::Foreign);
        }
        return Err(SnapshotError::Truncated);
    }
    let mut c = Cursor::new(&bytes);
    let magic: [u8; 8] = c.array()?;
    if magic != MAGIC {
        return Err(SnapshotError::Foreign);
    }
    let version = u16::from_le_bytes(c.array()?);
    if version > VERSION {
        return Err(SnapshotError::FutureVersion(version));
    }
    if version < VERSION {
        return Err(SnapshotError::Malformed("format version 0"));
    }
    let flags = u16::from_le_bytes(c.array()?);
    if flags != 0 {
        return Err(SnapshotError::UnknownFlags(flags));
    }
    let header = Header {
        written_unix: u64::from_le_bytes(c.array()?),
        peer_timeout: u32::from_le_bytes(c.array()?),
        connid_key: c.array()?,
    };
    let sum_at = bytes.len() - 8;
    let mut h = format::checksum_hasher();
    h.write(&bytes[..sum_at]);
    let mut sum = [0u8; 8];
    sum.copy_from_slice(&bytes[sum_at..]);
    if h.finish() != u64::from_le_bytes(sum) {
        return Err(SnapshotError::Checksum);
    }
    let body_end = bytes.len() - TRAILER_LEN;
    let mut t = Cursor::new(&bytes[body_end..sum_at]);
    let torrents = u64::from_le_bytes(t.array()?);
    let peers = u64::from_le_bytes(t.array()?);

    // Pass one: walk every record (no allocation) and check the totals.
    let mut body = Cursor::new(&bytes[HEADER_LEN..body_end]);
    let (mut seen_t, mut seen_p) = (0u64, 0u64);
    while body.remaining() > 0 {
        if seen_t == torrents {
            return Err(SnapshotError::Malformed(
                "more records than the trailer counts",
            ));
        }
        seen_p += format::walk_record(&mut body)?.peers;
        seen_t += 1;
    }
    if seen_t != torrents || seen_p != peers {
        return Err(SnapshotError::Malformed(
            "trailer counts do not match the records",
        ));
    }
    let downtime = now_unix.saturating_sub(header.written_unix);
    Ok(Loaded {
        bytes,
        header,
        torrents,
        peers,
        pos: HEADER_LEN,
        downtime: u32::try_from(downtime).unwrap_or(u32::MAX),
        timeout: peer_timeout,
        scratch: Scratch::default(),
        dropped: 0,
    })
}

/// A validated snapshot: yields its torrents one at a time.
#[derive(Debug)]
pub struct Loaded {
    bytes: Vec<u8>,
    header: Header,
    torrents: u64,
    peers: u64,
    pos: usize,
    downtime: u32,
    timeout: u32,
    scratch: Scratch,
    dropped: u64,
}

impl Loaded {
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Torrents and peers in the file (before expiry).
    pub fn counts(&self) -> (u64, u64) {
        (self.torrents, self.peers)
    }

    /// Seconds the tracker was down (added to every age); 0 if the clock went back.
    pub fn downtime(&self) -> u32 {
        self.downtime
    }

    /// Peers dropped as expired so far.
    pub fn dropped_peers(&self) -> u64 {
        self.dropped
    }

    /// Fills `rec` with the next torrent that still has something to keep
    /// (a live peer or a completed count); `false` at the end.
    pub fn next_into(&mut self, rec: &mut TorrentRecord) -> bool {
        let end = self.bytes.len() - TRAILER_LEN;
        while self.pos < end {
            let mut c = Cursor::new(&self.bytes[self.pos..end]);
            let res =
                format::decode_record(&mut c, rec, &mut self.scratch, self.downtime, self.timeout);
            match res {
                Ok(dropped) => {
                    self.dropped += dropped;
                    self.pos = end - c.remaining();
                    if rec.peers() > 0 || rec.completed > 0 {
                        return true;
                    }
                }
                // Unreachable: pass one validated every record. Stop rather than panic.
                Err(_) => {
                    self.pos = end;
                    break;
                }
            }
        }
        rec.clear();
        false
    }
}
