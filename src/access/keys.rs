//! Private-tracker keys: the key file, the key set and key extraction from
//! announce URLs.
//!
//! File format: one key per line, 32 characters of `[A-Za-z0-9]`, optionally
//! followed by whitespace and an expiry in Unix seconds (the key is valid while
//! `now < expiry`). Blank lines, `#` comments and CRLF are allowed. A later
//! line for the same key replaces the earlier one. Unlike the access list, a
//! non-empty last line must end in a newline: a write torn inside
//! `KEY 1700000000` can leave a shorter expiry or none at all (a key that never
//! expires), and the only sign of it is the missing newline.
//!
//! Guarantees: key bytes never reach `Debug`/`Display`/logs (redacted), and a
//! presented key is compared with a stored one in constant time. The lookup
//! finds candidates by a keyed 64-bit digest (unknown to clients, so its timing
//! tells them nothing about the stored keys) and then compares all 32 bytes
//! with [`ct_eq`].
//!
//! The key travels in the announce URL path, after the route (`/announce/KEY`)
//! or before it (`/KEY/announce`, the passkey-first form, whose last segment
//! is the route's name so a client derives `/KEY/scrape` by BEP 48's
//! convention): for HTTP in the request target ([`key_from_path`]), for UDP in
//! BEP 41 URL data ([`key_from_url_data`], [`key_from_options`]), both without
//! allocation. A path in both forms (`/announce/announce`) is read route first.

use super::{Deny, LineError, Rendered};
use crate::wire::udp::{AnnounceOption, Options};
use std::fmt;

pub const KEY_LEN: usize = 32;

/// A private key. `Debug` is redacted: keys never appear in logs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(pub [u8; KEY_LEN]);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

impl Key {
    /// 32 characters of `[A-Za-z0-9]`, else `None`.
    pub fn parse(s: &[u8]) -> Option<Key> {
        let arr: [u8; KEY_LEN] = s.try_into().ok()?;
        // A branch-free fold the compiler can vectorise (`all` exits early
        // byte by byte); this runs on every private announce.
        arr.iter()
            .fold(true, |ok, &c| ok & is_alnum(c))
            .then_some(Key(arr))
    }
}

/// `[A-Za-z0-9]` without branches: `| 0x20` folds upper case onto lower case
/// and maps no other byte into `a..=z`.
#[inline]
fn is_alnum(c: u8) -> bool {
    ((c | 0x20).wrapping_sub(b'a') < 26) | (c.wrapping_sub(b'0') < 10)
}

/// Constant-time equality of two keys: the time taken does not depend on
/// where (or whether) they differ.
#[inline(never)]
pub fn ct_eq(a: &[u8; KEY_LEN], b: &[u8; KEY_LEN]) -> bool {
    let mut diff = 0u8;
    for i in 0..KEY_LEN {
        diff |= a[i] ^ b[i];
    }
    // black_box keeps the optimiser from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

/// What a request carried where a key belongs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PresentedKey {
    /// No key segment: `/announce`, `/announce/`, no URL data, another path.
    Missing,
    /// A key segment that is not 32 alphanumerics (answered as `unknown key`).
    Malformed,
    Key(Key),
}

/// Route prefixes the key follows.
pub const ANNOUNCE: &[u8] = b"/announce";
pub const SCRAPE: &[u8] = b"/scrape";

/// Longest path we need to see: `/announce/` + key (or `/` + key +
/// `/announce`); one more byte tells "too long".
const PATH_BUF: usize = ANNOUNCE.len() + 1 + KEY_LEN + 1;

/// The first segment of a passkey-first path, `/SEG` + `route` with `SEG` one
/// non-empty segment (`/KEY/announce` → `KEY`); `None` for any other path
/// (query already removed).
pub fn key_first<'a>(path: &'a [u8], route: &[u8]) -> Option<&'a [u8]> {
    let seg = path.strip_suffix(route)?.strip_prefix(b"/")?;
    (!seg.is_empty() && !seg.contains(&b'/')).then_some(seg)
}

/// Classify a path (query already removed). `truncated` says more path bytes
/// followed what is in `path`.
fn classify(path: &[u8], truncated: bool, route: &[u8]) -> PresentedKey {
    let Some(rest) = path.strip_prefix(route) else {
        // A truncated path's end is unseen: it cannot be told passkey-first.
        return match key_first(path, route) {
            Some(seg) if !truncated => {
                Key::parse(seg).map_or(PresentedKey::Malformed, PresentedKey::Key)
            }
            _ => PresentedKey::Missing,
        };
    };
    if rest.is_empty() && !truncated {
        return PresentedKey::Missing;
    }
    let Some(seg) = rest.strip_prefix(b"/") else {
        // e.g. `/announcer`: not our route.
        return PresentedKey::Missing;
    };
    if seg.is_empty() && !truncated {
        return PresentedKey::Missing;
    }
    if truncated {
        return PresentedKey::Malformed;
    }
    match Key::parse(seg) {
        Some(k) => PresentedKey::Key(k),
        None => PresentedKey::Malformed,
    }
}

/// The key in an HTTP request target such as `/announce/KEY?info_hash=…` or
/// `/KEY/announce?info_hash=…`.
pub fn key_from_path(target: &[u8], route: &[u8]) -> PresentedKey {
    let path = match target.iter().position(|&c| c == b'?') {
        Some(q) => &target[..q],
        None => target,
    };
    classify(path, false, route)
}

/// The key in BEP 41 URL data given as its chunks in order (consecutive
/// chunks concatenate). Copies at most a few dozen bytes into a stack buffer.
pub fn key_from_url_data<'a, I>(chunks: I, route: &[u8]) -> PresentedKey
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let mut buf = [0u8; PATH_BUF];
    let mut n = 0;
    let mut truncated = false;
    for chunk in chunks {
        // The path ends at the query.
        let (path, query) = match chunk.iter().position(|&c| c == b'?') {
            Some(q) => (&chunk[..q], true),
            None => (chunk, false),
        };
        let take = path.len().min(buf.len() - n);
        buf[n..n + take].copy_from_slice(&path[..take]);
        n += take;
        if take < path.len() {
            truncated = true;
            break;
        }
        if query {
            break;
        }
    }
    classify(&buf[..n], truncated, route)
}

/// The announce key in a UDP announce's BEP 41 options.
pub fn key_from_options(options: &Options<'_>) -> PresentedKey {
    let chunks = options.iter().filter_map(|o| match o {
        AnnounceOption::UrlData(d) => Some(d),
        AnnounceOption::Unknown(..) => None,
    });
    key_from_url_data(chunks, ANNOUNCE)
}

#[derive(Clone, Copy)]
struct Entry {
    digest: u64,
    key: Key,
    expiry: Option<u64>,
}

/// An immutable set of keys with optional expiries.
pub struct KeySet {
    /// Sorted by digest: candidates for a presented key are one contiguous run.
    entries: Box<[Entry]>,
    /// Digest → start of its run in `entries`: one hash probe instead of a
    /// binary search that misses the cache at every step (measured: the key
    /// check on 10 000 keys went from ~250 ns to ~25 ns).
    index: ahash::HashMap<u64, u32>,
    hasher: ahash::RandomState,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet")
            .field("len", &self.entries.len())
            .finish()
    }
}

impl KeySet {
    /// Build from `(key, expiry)` pairs; a later pair for the same key wins.
    pub fn from_entries<I: IntoIterator<Item = (Key, Option<u64>)>>(items: I) -> KeySet {
        let mut map: ahash::HashMap<Key, Option<u64>> = Default::default();
        for (k, e) in items {
            map.insert(k, e);
        }
        let hasher = ahash::RandomState::new();
        let mut entries: Vec<Entry> = map
            .into_iter()
            .map(|(key, expiry)| Entry {
                digest: hasher.hash_one(key.0),
                key,
                expiry,
            })
            .collect();
        entries.sort_unstable_by_key(|e| e.digest);
        let mut index: ahash::HashMap<u64, u32> = Default::default();
        index.reserve(entries.len());
        for (i, e) in entries.iter().enumerate().rev() {
            // Reverse order: the first entry of each run wins. Key files
            // beyond 4 G entries are not a use case; clamp rather than panic.
            index.insert(e.digest, u32::try_from(i).unwrap_or(u32::MAX));
        }
        KeySet {
            entries: entries.into_boxed_slice(),
            index,
            hasher,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Is `key` listed and unexpired at `now_unix`? Unknown and expired keys
    /// both answer [`Deny::UnknownKey`].
    pub fn check(&self, key: &Key, now_unix: u64) -> Result<(), Deny> {
        let digest = self.hasher.hash_one(key.0);
        let Some(&start) = self.index.get(&digest) else {
            return Err(Deny::UnknownKey);
        };
        let run = self.entries.get(start as usize..).unwrap_or(&[]);
        let mut found = None;
        for e in run.iter().take_while(|e| e.digest == digest) {
            if ct_eq(&e.key.0, &key.0) {
                found = Some(e.expiry);
            }
        }
        match found {
            Some(None) => Ok(()),
            Some(Some(expiry)) if now_unix < expiry => Ok(()),
            _ => Err(Deny::UnknownKey),
        }
    }

    /// Every key with its expiry, in no particular order (for the writer).
    pub fn iter(&self) -> impl Iterator<Item = (&Key, Option<u64>)> + '_ {
        self.entries.iter().map(|e| (&e.key, e.expiry))
    }

    /// The set as file contents, sorted by key.
    pub fn render(&self) -> Rendered {
        let mut v: Vec<(&Key, Option<u64>)> = self.iter().collect();
        v.sort_unstable();
        let mut out = Vec::with_capacity(v.len() * 44);
        for (k, e) in v {
            out.extend_from_slice(&k.0);
            if let Some(e) = e {
                out.push(b' ');
                out.extend_from_slice(e.to_string().as_bytes());
            }
            out.push(b'\n');
        }
        Rendered(out)
    }

    /// Parse file contents. Errors carry the 1-based line number and never the key.
    pub fn parse(bytes: &[u8]) -> Result<KeySet, LineError> {
        let mut items = Vec::with_capacity(bytes.len() / 33 + 1);
        let mut last_nonempty = 0;
        for (n, line) in super::lines(bytes) {
            if line.is_empty() {
                continue;
            }
            last_nonempty = n;
            let mut fields = line
                .split(|c| *c == b' ' || *c == b'\t')
                .filter(|f| !f.is_empty());
            let bad = |reason| LineError { line: n, reason };
            let key = fields
                .next()
                .and_then(Key::parse)
                .ok_or(bad("expected a key of 32 characters [A-Za-z0-9]"))?;
            let expiry = match fields.next() {
                None => None,
                Some(f) => Some(parse_u64(f).ok_or(bad("expiry is not Unix seconds"))?),
            };
            if fields.next().is_some() {
                return Err(bad("unexpected text after the expiry"));
            }
            items.push((key, expiry));
        }
        if last_nonempty != 0 && !bytes.ends_with(b"\n") {
            let last_line = super::lines(bytes).count();
            if last_line == last_nonempty {
                return Err(LineError {
                    line: last_nonempty,
                    reason: "last line has no newline (incomplete write?)",
                });
            }
        }
        Ok(KeySet::from_entries(items))
    }
}

fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &c| {
        acc.checked_mul(10)?.checked_add(u64::from(c - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const K1: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyzABCDEF";
    const K2: &[u8; 32] = b"0123456789012345678901234567890Z";
    const K3: &[u8; 32] = b"ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ";

    fn key(k: &[u8; 32]) -> Key {
        Key(*k)
    }

    fn fixture() -> Vec<u8> {
        let mut v = b"# keys\r\n\r\n".to_vec();
        v.extend_from_slice(K1);
        v.extend_from_slice(b"\r\n  ");
        v.extend_from_slice(K2);
        v.extend_from_slice(b"\t1700000000  # expires\n");
        v
    }

    #[test]
    fn test_parse_fixture_and_expiry() {
        let set = KeySet::parse(&fixture()).unwrap();
        assert_eq!(set.len(), 2);
        assert_eq!(set.check(&key(K1), u64::MAX), Ok(()));
        assert_eq!(set.check(&key(K2), 1_699_999_999), Ok(()));
        assert_eq!(set.check(&key(K2), 1_700_000_000), Err(Deny::UnknownKey));
        assert_eq!(set.check(&key(K3), 0), Err(Deny::UnknownKey));
    }

    #[test]
    fn test_later_line_wins() {
        let mut v = K1.to_vec();
        v.extend_from_slice(b" 5\n");
        v.extend_from_slice(K1);
        v.extend_from_slice(b"\n");
        let set = KeySet::parse(&v).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set.check(&key(K1), 10), Ok(()));
    }

    #[test]
    fn test_bad_lines_name_their_line() {
        let cases: [(&[u8], usize); 6] = [
            (b"\nshort\n", 2),
            (b"abcdefghijklmnopqrstuvwxyzABCDE-\n", 1),
            (b"abcdefghijklmnopqrstuvwxyzABCDEF 12x\n", 1),
            (b"abcdefghijklmnopqrstuvwxyzABCDEF 1 2\n", 1),
            (
                b"abcdefghijklmnopqrstuvwxyzABCDEF 99999999999999999999999\n",
                1,
            ),
            // A write torn after the key: without the newline rule this would
            // be a key that never expires.
            (b"# c\nabcdefghijklmnopqrstuvwxyzABCDEF", 2),
        ];
        for (text, line) in cases {
            let e = KeySet::parse(text).unwrap_err();
            assert_eq!(e.line, line, "{:?}", String::from_utf8_lossy(text));
        }
        // A trailing comment without newline is harmless.
        let mut ok = K1.to_vec();
        ok.extend_from_slice(b"\n# end");
        assert_eq!(KeySet::parse(&ok).unwrap().len(), 1);
    }

    #[test]
    fn test_error_and_debug_never_show_keys() {
        let e = KeySet::parse(b"abcdefghijklmnopqrstuvwxyzABCDE!\n").unwrap_err();
        assert!(!e.to_string().contains("abcdefghij"));
        let k = key(K1);
        assert!(!format!("{k:?} {:?}", PresentedKey::Key(k)).contains("abcdefghij"));
        let set = KeySet::parse(&fixture()).unwrap();
        assert!(!format!("{set:?}").contains("abcdefghij"));
    }

    #[test]
    fn test_is_alnum_matches_std() {
        for c in 0..=255u8 {
            assert_eq!(is_alnum(c), c.is_ascii_alphanumeric(), "byte {c}");
        }
    }

    #[test]
    fn test_ct_eq() {
        assert!(ct_eq(K1, K1));
        assert!(!ct_eq(K1, K2));
        for i in 0..32 {
            let mut k = *K1;
            k[i] ^= 1;
            assert!(!ct_eq(K1, &k), "difference at byte {i}");
        }
    }

    #[test]
    fn test_render_round_trip() {
        let set = KeySet::parse(&fixture()).unwrap();
        let back = KeySet::parse(&set.render().0).unwrap();
        assert_eq!(back.render().0, set.render().0);
        assert_eq!(back.check(&key(K2), 1_700_000_000), Err(Deny::UnknownKey));
        assert_eq!(back.check(&key(K1), 0), Ok(()));
    }

    #[test]
    fn test_key_from_http_path() {
        let k = PresentedKey::Key(key(K1));
        let p = |s: &str| key_from_path(s.as_bytes(), ANNOUNCE);
        assert_eq!(p("/announce/abcdefghijklmnopqrstuvwxyzABCDEF"), k);
        assert_eq!(
            p("/announce/abcdefghijklmnopqrstuvwxyzABCDEF?info_hash=%00&port=1"),
            k
        );
        assert_eq!(p("/announce"), PresentedKey::Missing);
        assert_eq!(p("/announce/"), PresentedKey::Missing);
        assert_eq!(p("/announce?info_hash=x"), PresentedKey::Missing);
        assert_eq!(p("/announce/?info_hash=x"), PresentedKey::Missing);
        assert_eq!(p("/"), PresentedKey::Missing);
        assert_eq!(p(""), PresentedKey::Missing);
        assert_eq!(
            p("/announcer/abcdefghijklmnopqrstuvwxyzABCDEF"),
            PresentedKey::Missing
        );
        assert_eq!(p("/announce/short"), PresentedKey::Malformed);
        assert_eq!(
            p("/announce/abcdefghijklmnopqrstuvwxyzABCDEF/x"),
            PresentedKey::Malformed
        );
        assert_eq!(
            p("/announce/abcdefghijklmnopqrstuvwxyzABCDE%46"),
            PresentedKey::Malformed
        );
        assert_eq!(
            key_from_path(
                b"/scrape/abcdefghijklmnopqrstuvwxyzABCDEF?info_hash=1",
                SCRAPE
            ),
            k
        );
    }

    #[test]
    fn test_key_first_paths() {
        let k = PresentedKey::Key(key(K1));
        let p = |s: &str, route| key_from_path(s.as_bytes(), route);
        assert_eq!(p("/abcdefghijklmnopqrstuvwxyzABCDEF/announce", ANNOUNCE), k);
        assert_eq!(
            p(
                "/abcdefghijklmnopqrstuvwxyzABCDEF/announce?info_hash=%00",
                ANNOUNCE
            ),
            k
        );
        assert_eq!(p("/abcdefghijklmnopqrstuvwxyzABCDEF/scrape?x=1", SCRAPE), k);
        // The scrape route does not take an announce path, nor the reverse.
        assert_eq!(
            p("/abcdefghijklmnopqrstuvwxyzABCDEF/announce", SCRAPE),
            PresentedKey::Missing
        );
        assert_eq!(p("/short/announce", ANNOUNCE), PresentedKey::Malformed);
        assert_eq!(
            p("/abcdefghijklmnopqrstuvwxyzABCDE%46/announce", ANNOUNCE),
            PresentedKey::Malformed
        );
        for missing in [
            "//announce",
            "/a/b/announce",
            "/abcdefghijklmnopqrstuvwxyzABCDEF/announce/",
            "/abcdefghijklmnopqrstuvwxyzABCDEF/announce.php",
            "abcdefghijklmnopqrstuvwxyzABCDEF/announce",
        ] {
            assert_eq!(p(missing, ANNOUNCE), PresentedKey::Missing, "{missing}");
        }
        // Route first when a path reads both ways.
        assert_eq!(p("/announce/announce", ANNOUNCE), PresentedKey::Malformed);
        assert_eq!(key_first(b"/k/scrape", SCRAPE), Some(&b"k"[..]));
        assert_eq!(key_first(b"/scrape", SCRAPE), None);
        assert_eq!(key_first(b"/k/x/scrape", SCRAPE), None);
    }

    #[test]
    fn test_key_from_split_url_data() {
        let k = PresentedKey::Key(key(K1));
        let whole = b"/announce/abcdefghijklmnopqrstuvwxyzABCDEF?a=b";
        // Every split into two chunks, and one byte per chunk.
        for cut in 0..=whole.len() {
            let (a, b) = whole.split_at(cut);
            assert_eq!(key_from_url_data([a, b], ANNOUNCE), k, "cut at {cut}");
        }
        assert_eq!(key_from_url_data(whole.chunks(1), ANNOUNCE), k);
        assert_eq!(key_from_url_data([], ANNOUNCE), PresentedKey::Missing);
        assert_eq!(
            key_from_url_data([&b"/announce"[..], b"/"], ANNOUNCE),
            PresentedKey::Missing
        );
        let long = [b'a'; 300];
        assert_eq!(
            key_from_url_data([&b"/announce/"[..], &long[..]], ANNOUNCE),
            PresentedKey::Malformed
        );
        assert_eq!(
            key_from_url_data([&long[..]], ANNOUNCE),
            PresentedKey::Missing
        );
        let first = b"/abcdefghijklmnopqrstuvwxyzABCDEF/announce?a=b";
        for cut in 0..=first.len() {
            let (a, b) = first.split_at(cut);
            assert_eq!(key_from_url_data([a, b], ANNOUNCE), k, "cut at {cut}");
        }
        // Too long to see its end: not taken as passkey-first.
        assert_eq!(
            key_from_url_data([&long[..], b"/announce"], ANNOUNCE),
            PresentedKey::Missing
        );
    }

    #[test]
    fn test_key_from_udp_options() {
        // BEP 41: type 2 (URL data) chunks around a NOP and an unknown option.
        let mut opts = vec![2, 12];
        opts.extend_from_slice(b"/announce/ab");
        opts.extend_from_slice(&[1, 9, 2, 0xaa, 0xbb, 2, 30]);
        opts.extend_from_slice(b"cdefghijklmnopqrstuvwxyzABCDEF");
        opts.extend_from_slice(&[0, 2, 3, b'x', b'y', b'z']); // after end of options: ignored
        assert_eq!(
            key_from_options(&Options(&opts)),
            PresentedKey::Key(key(K1))
        );
        assert_eq!(key_from_options(&Options(&[])), PresentedKey::Missing);
    }

    proptest! {
        #[test]
        fn prop_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = KeySet::parse(&bytes);
        }

        #[test]
        fn prop_every_listed_key_checks_and_others_do_not(
            keys in proptest::collection::vec("[A-Za-z0-9]{32}", 0..100),
            other in "[A-Za-z0-9]{32}",
        ) {
            let set = KeySet::from_entries(keys.iter().map(|k| (Key::parse(k.as_bytes()).unwrap(), None)));
            for k in &keys {
                prop_assert_eq!(set.check(&Key::parse(k.as_bytes()).unwrap(), 0), Ok(()));
            }
            let expected = if keys.contains(&other) { Ok(()) } else { Err(Deny::UnknownKey) };
            prop_assert_eq!(set.check(&Key::parse(other.as_bytes()).unwrap(), 0), expected);
        }

        #[test]
        fn prop_arbitrary_url_data_never_panics(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 0..6),
            opts in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let _ = key_from_url_data(chunks.iter().map(Vec::as_slice), ANNOUNCE);
            let _ = key_from_options(&Options(&opts));
            let _ = key_from_path(&opts, ANNOUNCE);
        }

        #[test]
        fn prop_url_data_split_anywhere_agrees_with_path(
            key in "[A-Za-z0-9]{32}", query in "[?][a-z=&]{0,20}", cuts in proptest::collection::vec(0usize..60, 0..4),
            first in any::<bool>(),
        ) {
            let whole = if first {
                format!("/{key}/announce{query}")
            } else {
                format!("/announce/{key}{query}")
            }
            .into_bytes();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(whole.len())).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut prev = 0;
            for c in cuts { chunks.push(&whole[prev..c]); prev = c; }
            chunks.push(&whole[prev..]);
            let expected = key_from_path(&whole, ANNOUNCE);
            prop_assert_eq!(key_from_url_data(chunks, ANNOUNCE), expected);
            prop_assert!(matches!(expected, PresentedKey::Key(_)));
        }
    }
}
