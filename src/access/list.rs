//! The access list: a set of 20-byte info hashes read from a text file.
//!
//! File format: one info hash per line as 40 hex characters (either case);
//! blank lines, `#` comments (whole-line or after the hash) and CRLF line
//! ends are allowed. Any other line is an error naming the 1-based line, so a
//! typo never silently shrinks an allow list.
//!
//! # Layout: why not a `HashSet`
//!
//! Every announce looks its info hash up here, and announces spread over many
//! torrents find a different entry each time, out of cache. The std
//! `HashSet` of 1 M hashes was ~44 MB of 4 KiB pages, and each lookup touched
//! a control byte and a bucket on two different pages: two cache misses and
//! two TLB misses (a nested page walk in a VM), which made such an announce
//! 2.7× slower (BENCHMARKS.md, "Access list"). This table aims for one lookup
//! reading one cache line on one huge page:
//!
//! - **Full keys, no fingerprints.** Each slot holds the whole 20-byte hash,
//!   so `contains` is exact: no false positive, which would admit an unlisted
//!   torrent in allow mode or refuse an innocent one in deny mode, and
//!   [`AccessList::iter`] gives the hashes back for rewriting the file.
//! - **Three slots to a 64-byte line**, lines in one flat array probed
//!   linearly (wrapping). A lookup starts at the line a keyed hash picks and
//!   stops at the hash or at the first empty slot, so an average hit reads
//!   one line; a miss, or a hash inserted late into a crowded run, may walk
//!   several adjacent lines (measured ~3× the std set's miss, which its
//!   control bytes answer from L2; see BENCHMARKS.md). Slots fill in order and nothing is ever removed
//!   (a list is immutable: a reload builds a new one), so an empty slot ends
//!   every probe sequence that could hold the hash.
//! - **The all-zero hash marks an empty slot**; whether it is listed itself
//!   is a separate flag.
//! - **Keyed hashing.** The line comes from `ahash` with per-table random keys,
//!   so neither a crafted list nor crafted announces can pile onto one long
//!   probe run.
//! - **Load at most 1/2** (about 43 MB for 1 M hashes, 2 slots a hash, the
//!   std set's size): a miss reads 1.4 lines on average, a hit 1.1 (at 3/4 a
//!   miss read 3.3, three times slower than the std set's control bytes).
//! - **Huge pages** on Linux for tables of 4 MiB and more: the array starts on
//!   a 2 MiB boundary and is `madvise(MADV_HUGEPAGE)`d before it is first
//!   written, so 1 M hashes take 14 TLB entries instead of ~7 000 (transparent
//!   huge pages are commonly enabled for `madvise` only). Where the kernel
//!   refuses, the table works the same on small pages.

use super::{LineError, Rendered};
use crate::swarm::InfoHash;
use std::fmt;

/// The empty slot (and the one hash that is not stored in a slot).
const EMPTY: InfoHash = [0; 20];
/// Slots in a [`Line`].
const SLOTS: usize = 3;
/// Slots per listed hash, at least: a load of at most 1/2. At 3/4 a miss
/// (every request for an unlisted torrent, the common case of a deny list)
/// walked 3.3 lines on average; at 1/2 it walks 1.4, about as many as a hit
/// (BENCHMARKS.md). 1 M hashes then take 42.7 MB, what std's set took.
const SLACK_NUM: usize = 2;
const SLACK_DEN: usize = 1;
/// A transparent huge page on x86-64 and most aarch64 kernels.
const HUGE_PAGE: usize = 2 << 20;
const LINES_PER_HUGE_PAGE: usize = HUGE_PAGE / std::mem::size_of::<Line>();
/// Tables smaller than this stay on small pages: they fit in the TLB anyway,
/// and the 2 MiB of alignment slack would outweigh them.
const HUGE_MIN_LINES: usize = 2 * LINES_PER_HUGE_PAGE;

/// One cache line: three hashes, then 4 bytes of padding.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line {
    slots: [InfoHash; SLOTS],
}

impl Line {
    const EMPTY: Line = Line {
        slots: [EMPTY; SLOTS],
    };
}

/// An immutable set of info hashes. Built once per load, shared behind an `Arc`.
pub struct AccessList {
    /// `buf[start..start + lines]` is the table; `start` skips to a 2 MiB
    /// boundary when the table is on huge pages (else 0).
    buf: Vec<Line>,
    start: usize,
    lines: usize,
    /// Whether the all-zero hash is listed (its slot value means "empty").
    zero: bool,
    len: usize,
    hasher: ahash::RandomState,
}

impl AccessList {
    /// Build from hashes; duplicates collapse.
    pub fn from_hashes<I: IntoIterator<Item = InfoHash>>(hashes: I) -> AccessList {
        let hashes: Vec<InfoHash> = hashes.into_iter().collect();
        AccessList::from_slice(&hashes)
    }

    /// Build from a slice of hashes (an upper bound on the size: duplicates
    /// collapse).
    fn from_slice(hashes: &[InfoHash]) -> AccessList {
        // At least one slot always stays empty, so every probe ends.
        let slots = hashes.len() * SLACK_NUM / SLACK_DEN + 1;
        let lines = slots.div_ceil(SLOTS);
        let (buf, start) = alloc_lines(lines);
        let mut list = AccessList {
            buf,
            start,
            lines,
            zero: false,
            len: 0,
            hasher: ahash::RandomState::new(),
        };
        for h in hashes {
            list.insert(h);
        }
        list
    }

    /// The line a probe for `h` starts at: the keyed hash scaled to
    /// `0..lines` by a multiply (no division, any table size).
    #[inline]
    fn home(&self, h: &InfoHash) -> usize {
        let x = self.hasher.hash_one(h);
        ((u128::from(x) * self.lines as u128) >> 64) as usize
    }

    #[inline]
    fn table(&self) -> &[Line] {
        &self.buf[self.start..self.start + self.lines]
    }

    fn insert(&mut self, h: &InfoHash) {
        if *h == EMPTY {
            self.len += usize::from(!self.zero);
            self.zero = true;
            return;
        }
        let mut i = self.home(h);
        let (start, lines) = (self.start, self.lines);
        let table = &mut self.buf[start..start + lines];
        loop {
            for slot in &mut table[i].slots {
                if slot == h {
                    return;
                }
                if *slot == EMPTY {
                    *slot = *h;
                    self.len += 1;
                    return;
                }
            }
            i += 1;
            if i == lines {
                i = 0;
            }
        }
    }

    /// Whether `h` is listed. No allocation, no lock; reads one cache line
    /// unless the probe run spills into the next.
    #[inline]
    pub fn contains(&self, h: &InfoHash) -> bool {
        if *h == EMPTY {
            return self.zero;
        }
        let table = self.table();
        let mut i = self.home(h);
        loop {
            for slot in &table[i].slots {
                if slot == h {
                    return true;
                }
                if *slot == EMPTY {
                    return false;
                }
            }
            i += 1;
            if i == table.len() {
                i = 0;
            }
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every listed hash, in no particular order (for writing the file back).
    pub fn iter(&self) -> impl Iterator<Item = &InfoHash> + '_ {
        static ZERO: InfoHash = EMPTY;
        let zero = self.zero.then_some(&ZERO);
        zero.into_iter().chain(
            self.table()
                .iter()
                .flat_map(|l| l.slots.iter())
                .filter(|s| **s != EMPTY),
        )
    }

    /// The list as file contents: one lower-case hash per line, sorted so a
    /// rewrite of the same set is byte-identical.
    pub fn render(&self) -> Rendered {
        let mut hashes: Vec<&InfoHash> = self.iter().collect();
        hashes.sort_unstable();
        let mut out = Vec::with_capacity(hashes.len() * 41);
        for h in hashes {
            push_hex(&mut out, h);
            out.push(b'\n');
        }
        Rendered(out)
    }

    /// Parse file contents. Errors carry the 1-based line number.
    ///
    /// Two passes: parse every line into a plain vector (sequential writes),
    /// then build the table at its final size, so it is never rehashed.
    pub fn parse(bytes: &[u8]) -> Result<AccessList, LineError> {
        // Lines of 41 bytes (40 hex + newline) is the common case: reserve for it.
        let mut hashes = Vec::with_capacity(bytes.len() / 41 + 1);
        for (n, line) in super::lines(bytes) {
            if line.is_empty() {
                continue;
            }
            match parse_hex20(line) {
                Some(h) => hashes.push(h),
                None => {
                    return Err(LineError {
                        line: n,
                        reason: "expected an info hash of 40 hex characters",
                    })
                }
            }
        }
        Ok(AccessList::from_slice(&hashes))
    }
}

/// `lines` empty lines, as (buffer, offset of the first). Large tables start
/// on a 2 MiB boundary, and the kernel is asked for huge pages before the
/// first write faults the memory in.
fn alloc_lines(lines: usize) -> (Vec<Line>, usize) {
    if lines < HUGE_MIN_LINES {
        return (vec![Line::EMPTY; lines], 0);
    }
    let whole = lines.div_ceil(LINES_PER_HUGE_PAGE) * LINES_PER_HUGE_PAGE;
    // One huge page of slack to slide the start to a boundary.
    let mut buf: Vec<Line> = Vec::with_capacity(whole + LINES_PER_HUGE_PAGE);
    let start = huge_page_offset(buf.as_ptr() as usize);
    if start + whole <= buf.capacity() {
        let line = std::mem::size_of::<Line>();
        advise_huge_pages(buf.as_ptr() as usize + start * line, whole * line);
    }
    buf.resize(start + lines, Line::EMPTY);
    (buf, start)
}

/// Lines from address `addr` (64-byte aligned) to the next 2 MiB boundary.
fn huge_page_offset(addr: usize) -> usize {
    ((HUGE_PAGE - addr % HUGE_PAGE) % HUGE_PAGE) / std::mem::size_of::<Line>()
}

/// `madvise(MADV_HUGEPAGE)` over `len` bytes from `addr`, which must lie
/// inside one allocation of ours, `addr` page aligned. Best effort: a kernel
/// without transparent huge pages says no and the table uses small pages.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn advise_huge_pages(addr: usize, len: usize) {
    // SAFETY: the caller passes a page-aligned range inside a live
    // allocation (a `Vec`'s capacity). MADV_HUGEPAGE only changes how the
    // kernel backs those pages on fault or collapse: it never changes their
    // contents, unmaps or remaps them, so no Rust reference to this memory is
    // affected. The result is ignored on purpose (EINVAL where THP is
    // compiled out).
    unsafe {
        libc::madvise(addr as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_addr: usize, _len: usize) {}

// Never print a million hashes by accident.
impl fmt::Debug for AccessList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessList")
            .field("len", &self.len())
            .finish()
    }
}

/// Hex digit values; 0xff for anything else. A table: parsing 1 M lines is
/// 40 M lookups, and a table has no branches to mispredict.
const HEX_VAL: [u8; 256] = {
    let mut t = [0xff; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// 40 hex characters (either case) → 20 bytes.
pub fn parse_hex20(s: &[u8]) -> Option<InfoHash> {
    if s.len() != 40 {
        return None;
    }
    let mut out = [0u8; 20];
    let mut bad = 0u8;
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let (hi, lo) = (HEX_VAL[usize::from(pair[0])], HEX_VAL[usize::from(pair[1])]);
        bad |= hi | lo;
        *o = (hi << 4) | (lo & 15);
    }
    // Valid digits are < 16; any 0xff entry sets the high bits.
    (bad < 16).then_some(out)
}

fn push_hex(out: &mut Vec<u8>, h: &InfoHash) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in h {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 15)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn test_parse_fixture() {
        let text = format!(
            "# allowed torrents\n\n{A}\n  {}  # upper case, indented\r\n\t\n{}\n",
            "ABCDEFABCDEFABCDEFABCDEFABCDEFABCDEFABCD", "0000000000000000000000000000000000000000"
        );
        let list = AccessList::parse(text.as_bytes()).unwrap();
        assert_eq!(list.len(), 3);
        assert!(list.contains(&parse_hex20(A.as_bytes()).unwrap()));
        assert!(list.contains(&[0xab, 0xcd, 0xef].repeat(7)[..20].try_into().unwrap()));
        assert!(list.contains(&[0; 20]));
        assert!(!list.contains(&[1; 20]));
    }

    #[test]
    fn test_either_case_is_one_hash() {
        let text = format!("{A}\n{}\n", A.to_uppercase());
        assert_eq!(AccessList::parse(text.as_bytes()).unwrap().len(), 1);
    }

    #[test]
    fn test_bad_lines_name_their_line() {
        for (text, line) in [
            (format!("{A}\n\n{}\n", &A[..39]), 3),      // too short
            (format!("# c\n{A}0\n"), 2),                // too long
            (format!("{}g\n", &A[..39]), 1),            // not hex
            (format!("{A}\n{A} extra\n"), 2),           // trailing words
            (format!("{A}\r\n{A}\r\n{}", &A[..20]), 3), // torn last line
        ] {
            let e = AccessList::parse(text.as_bytes()).unwrap_err();
            assert_eq!(e.line, line, "{text:?}");
        }
    }

    #[test]
    fn test_last_line_without_newline_is_fine_when_complete() {
        assert_eq!(AccessList::parse(A.as_bytes()).unwrap().len(), 1);
        assert!(AccessList::parse(b"").unwrap().is_empty());
    }

    #[test]
    fn test_render_round_trip() {
        let hashes: Vec<InfoHash> = (0..1000u32)
            .map(|i| {
                let mut h = [0u8; 20];
                h[..4].copy_from_slice(&i.to_be_bytes());
                h
            })
            .collect();
        let list = AccessList::from_hashes(hashes.iter().copied());
        assert_eq!(list.len(), 1000);
        let back = AccessList::parse(&list.render().0).unwrap();
        assert_eq!(back.len(), 1000);
        assert!(hashes.iter().all(|h| back.contains(h)));
        assert_eq!(back.render().0, list.render().0);
    }

    /// Every size from empty to a few lines' worth, so probe runs fill whole
    /// lines and wrap from the last line to the first.
    #[test]
    fn test_small_tables_fill_and_wrap() {
        let mut rng = fastrand::Rng::with_seed(11);
        for n in 0..200 {
            for _ in 0..20 {
                let hashes: Vec<InfoHash> = (0..n)
                    .map(|_| std::array::from_fn(|_| rng.u8(..)))
                    .collect();
                let list = AccessList::from_hashes(hashes.iter().copied());
                assert_eq!(list.len(), n);
                assert!(hashes.iter().all(|h| list.contains(h)));
                let mut back: Vec<InfoHash> = list.iter().copied().collect();
                let mut want = hashes.clone();
                back.sort_unstable();
                want.sort_unstable();
                assert_eq!(back, want);
                assert!(!list.contains(&[0xee; 20]));
            }
        }
    }

    #[test]
    fn test_zero_hash_and_duplicates() {
        let list = AccessList::from_hashes([[0; 20], [1; 20], [0; 20], [1; 20]]);
        assert_eq!(list.len(), 2);
        assert!(list.contains(&[0; 20]) && list.contains(&[1; 20]));
        assert_eq!(list.iter().count(), 2);
        let list = AccessList::from_hashes([[1; 20]]);
        assert!(!list.contains(&[0; 20]));
        assert_eq!(list.iter().collect::<Vec<_>>(), [&[1; 20]]);
        let empty = AccessList::from_hashes([]);
        assert!(empty.is_empty() && !empty.contains(&[0; 20]) && !empty.contains(&[1; 20]));
    }

    #[test]
    fn test_huge_page_offset() {
        assert_eq!(huge_page_offset(0), 0);
        assert_eq!(huge_page_offset(HUGE_PAGE), 0);
        assert_eq!(huge_page_offset(HUGE_PAGE - 64), 1);
        assert_eq!(huge_page_offset(64), LINES_PER_HUGE_PAGE - 1);
    }

    /// A table big enough for huge pages starts on a 2 MiB boundary, and
    /// everything in it is still found.
    #[test]
    fn test_large_table_is_aligned_and_complete() {
        let mut rng = fastrand::Rng::with_seed(12);
        let hashes: Vec<InfoHash> = (0..200_000)
            .map(|_| std::array::from_fn(|_| rng.u8(..)))
            .collect();
        let list = AccessList::from_hashes(hashes.iter().copied());
        assert!(list.lines >= HUGE_MIN_LINES);
        assert_eq!(list.table().as_ptr() as usize % HUGE_PAGE, 0);
        assert_eq!(list.len(), hashes.len());
        assert!(hashes.iter().all(|h| list.contains(h)));
        let absent = (0..10_000).filter(|_| {
            let h: InfoHash = std::array::from_fn(|_| rng.u8(..));
            list.contains(&h)
        });
        assert_eq!(absent.count(), 0);
    }

    proptest! {
        /// Full keys: membership is exact, so random hashes that were not
        /// inserted are never reported (no false positives to bound).
        #[test]
        fn prop_inserted_found_others_not(
            hashes in proptest::collection::vec(any::<[u8; 20]>(), 0..3000),
            probes in proptest::collection::vec(any::<[u8; 20]>(), 0..100),
        ) {
            let list = AccessList::from_hashes(hashes.iter().copied());
            let set: std::collections::HashSet<_> = hashes.iter().copied().collect();
            prop_assert_eq!(list.len(), set.len());
            prop_assert!(hashes.iter().all(|h| list.contains(h)));
            for p in &probes {
                prop_assert_eq!(list.contains(p), set.contains(p));
            }
            prop_assert_eq!(list.iter().copied().collect::<std::collections::HashSet<_>>(), set);
        }

        #[test]
        fn prop_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = AccessList::parse(&bytes);
        }

        #[test]
        fn prop_membership_matches_a_hashset(
            hashes in proptest::collection::vec(any::<[u8; 20]>(), 0..200),
            probe in any::<[u8; 20]>(),
        ) {
            let list = AccessList::from_hashes(hashes.iter().copied());
            let set: std::collections::HashSet<_> = hashes.iter().copied().collect();
            prop_assert_eq!(list.len(), set.len());
            for h in &hashes {
                prop_assert!(list.contains(h));
            }
            prop_assert_eq!(list.contains(&probe), set.contains(&probe));
        }
    }
}
