//! The access list: a set of 20-byte info hashes read from a text file.
//!
//! File format: one info hash per line as 40 hex characters (either case);
//! blank lines, `#` comments (whole-line or after the hash) and CRLF line
//! ends are allowed. Any other line is an error naming the 1-based line, so a
//! typo never silently shrinks an allow list.
//!
//! The set is a `HashSet` with a per-process keyed hash (ahash), so a crafted
//! list cannot pile its entries onto one probe sequence. A hand-rolled flat
//! open-addressing table was measured against it (benches/access.rs, 1 M
//! hashes): equal on hits, nearly three times slower on misses (hashbrown
//! answers most misses from its control bytes alone), so the std set stays.

use super::{LineError, Rendered};
use crate::swarm::InfoHash;
use std::collections::HashSet;
use std::fmt;

/// An immutable set of info hashes. Built once per load, shared behind an `Arc`.
pub struct AccessList {
    set: HashSet<InfoHash, ahash::RandomState>,
}

impl AccessList {
    /// Build from hashes; duplicates collapse.
    pub fn from_hashes<I: IntoIterator<Item = InfoHash>>(hashes: I) -> AccessList {
        let mut set = HashSet::with_hasher(ahash::RandomState::new());
        set.extend(hashes);
        AccessList { set }
    }

    /// Whether `h` is listed. No allocation, no lock.
    #[inline]
    pub fn contains(&self, h: &InfoHash) -> bool {
        self.set.contains(h)
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Every listed hash, in no particular order (for writing the file back).
    pub fn iter(&self) -> impl Iterator<Item = &InfoHash> + '_ {
        self.set.iter()
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
    pub fn parse(bytes: &[u8]) -> Result<AccessList, LineError> {
        // Lines of 41 bytes (40 hex + newline) is the common case: reserve for it.
        let mut set = HashSet::with_capacity_and_hasher(bytes.len() / 41 + 1, Default::default());
        for (n, line) in super::lines(bytes) {
            if line.is_empty() {
                continue;
            }
            match parse_hex20(line) {
                Some(h) => {
                    set.insert(h);
                }
                None => {
                    return Err(LineError {
                        line: n,
                        reason: "expected an info hash of 40 hex characters",
                    })
                }
            }
        }
        Ok(AccessList { set })
    }
}

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

    proptest! {
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
