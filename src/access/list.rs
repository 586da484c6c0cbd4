//! The access list: a set of 20-byte info hashes read from a text file.
//!
//! File format: one info hash per line as 40 hex characters (either case);
//! blank lines, `#` comments (whole-line or after the hash) and CRLF line
//! ends are allowed. Any other line is an error naming the 1-based line, so a
//! typo never silently shrinks an allow list.
//!
//! The set is a flat open-addressing table (linear probing, load factor at
//! most 1/2, slots of 20 bytes with no side metadata): a lookup in a list of
//! 1 M hashes is one keyed hash and, in the common case, one cache miss, where
//! a `HashSet` pays for its control bytes and its bucket in two. The hash is
//! keyed per process (ahash), so a crafted list cannot pile its entries onto
//! one probe chain. The all-zero hash marks an empty slot and is kept as a flag.

use super::{LineError, Rendered};
use crate::swarm::InfoHash;
use std::fmt;

/// An immutable set of info hashes. Built once per load, shared behind an `Arc`.
pub struct AccessList {
    slots: Box<[InfoHash]>,
    mask: usize,
    has_zero: bool,
    len: usize,
    hasher: ahash::RandomState,
}

const EMPTY: InfoHash = [0; 20];

impl AccessList {
    /// Build from hashes; duplicates collapse.
    pub fn from_hashes<I: IntoIterator<Item = InfoHash>>(hashes: I) -> AccessList {
        let iter = hashes.into_iter();
        let mut list = AccessList::with_capacity(iter.size_hint().0);
        for h in iter {
            list.insert(h);
        }
        list
    }

    fn with_capacity(n: usize) -> AccessList {
        // At least twice the entries, a power of two, never fewer than 16.
        let cap = (n.max(8) * 2).next_power_of_two();
        AccessList {
            slots: vec![EMPTY; cap].into_boxed_slice(),
            mask: cap - 1,
            has_zero: false,
            len: 0,
            hasher: ahash::RandomState::new(),
        }
    }

    fn insert(&mut self, h: InfoHash) {
        if h == EMPTY {
            self.len += usize::from(!self.has_zero);
            self.has_zero = true;
            return;
        }
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let mut i = self.index(&h);
        loop {
            let slot = &mut self.slots[i];
            if *slot == h {
                return;
            }
            if *slot == EMPTY {
                *slot = h;
                self.len += 1;
                return;
            }
            i = (i + 1) & self.mask;
        }
    }

    fn grow(&mut self) {
        let old = std::mem::take(&mut self.slots);
        let mut bigger = AccessList::with_capacity(old.len());
        bigger.hasher = self.hasher.clone();
        bigger.has_zero = self.has_zero;
        bigger.len = usize::from(self.has_zero);
        for h in old.iter().filter(|h| **h != EMPTY) {
            bigger.insert(*h);
        }
        *self = bigger;
    }

    #[inline]
    fn index(&self, h: &InfoHash) -> usize {
        (self.hasher.hash_one(h) as usize) & self.mask
    }

    /// Whether `h` is listed. No allocation, no lock.
    #[inline]
    pub fn contains(&self, h: &InfoHash) -> bool {
        if *h == EMPTY {
            return self.has_zero;
        }
        let mut i = self.index(h);
        loop {
            let slot = &self.slots[i];
            if slot == h {
                return true;
            }
            if *slot == EMPTY {
                return false;
            }
            i = (i + 1) & self.mask;
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
        let zero = self.has_zero.then_some(&EMPTY);
        zero.into_iter()
            .chain(self.slots.iter().filter(|h| **h != EMPTY))
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
        let mut list = AccessList::with_capacity(bytes.len() / 41 + 1);
        for (n, line) in super::lines(bytes) {
            if line.is_empty() {
                continue;
            }
            match parse_hex20(line) {
                Some(h) => list.insert(h),
                None => {
                    return Err(LineError {
                        line: n,
                        reason: "expected an info hash of 40 hex characters",
                    })
                }
            }
        }
        Ok(list)
    }
}

// Never print a million hashes by accident.
impl fmt::Debug for AccessList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessList")
            .field("len", &self.len)
            .finish()
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// 40 hex characters (either case) → 20 bytes.
pub fn parse_hex20(s: &[u8]) -> Option<InfoHash> {
    if s.len() != 40 {
        return None;
    }
    let mut out = [0u8; 20];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        *o = (hex_val(pair[0])? << 4) | hex_val(pair[1])?;
    }
    Some(out)
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
