//! Who may use the tracker: the access list (`--access-list FILE`,
//! `--access-mode allow|deny`) and private keys (`--keys FILE`).
//!
//! This room owns the file formats, the immutable [`Policy`] a request is
//! checked against, and its live replacement. It does no socket I/O and reads
//! no clock: `now_unix` is an argument. Guarantees:
//!
//! - A request never waits on a reload: workers read through a
//!   [`PolicyReader`] whose per-request cost is one relaxed atomic load and a
//!   local `Arc` deref ([`live`]).
//! - A reload replaces the whole policy atomically or not at all: a file that
//!   does not parse, or changes while being read, keeps the old one.
//! - Keys never reach logs (`Debug` is redacted, errors name only the line)
//!   and are compared in constant time ([`keys::ct_eq`]).
//!
//! Start-up and reload errors ([`LoadError`]) are one line naming the file and
//! the 1-based line number. Request-path outcomes are the `Copy` enum [`Deny`].

pub mod change;
pub mod keys;
pub mod list;
pub mod live;
pub mod reload;
pub mod write;

pub use change::Change;
pub use keys::{key_from_options, key_from_path, key_from_url_data, Key, KeySet, PresentedKey};
pub use list::AccessList;
pub use live::{FileWatch, Fingerprint, LoadStats, PolicyHandle, PolicyReader, Reloaded, Reloader};
pub use write::write_atomically;

use crate::swarm::InfoHash;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// `--access-mode`: whether the list names the torrents served or refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Allow,
    Deny,
}

/// Why an announce (or a private scrape) is refused. The strings are the
/// exact BEP 15 error-frame / HTTP `failure reason` texts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Deny {
    TorrentNotAllowed,
    MissingKey,
    UnknownKey,
}

impl Deny {
    pub fn as_str(self) -> &'static str {
        match self {
            Deny::TorrentNotAllowed => "torrent not allowed",
            Deny::MissingKey => "missing key",
            Deny::UnknownKey => "unknown key",
        }
    }
}

impl fmt::Display for Deny {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the server is told to enforce (from the CLI).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessConfig {
    /// `--access-list FILE` with its `--access-mode`.
    pub list: Option<(PathBuf, Mode)>,
    /// `--keys FILE`: private mode.
    pub keys: Option<PathBuf>,
    /// `--private-scrape`: scrape needs a key too.
    pub private_scrape: bool,
}

impl AccessConfig {
    /// Nothing to enforce: the integrator can skip the checks entirely.
    pub fn is_open(&self) -> bool {
        self.list.is_none() && self.keys.is_none()
    }
}

/// One immutable view of what is allowed. Cheap to rebuild: the list and the
/// keys sit behind their own `Arc`s, so reloading one file shares the other.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    list: Option<(Mode, Arc<AccessList>)>,
    keys: Option<Arc<KeySet>>,
    private_scrape: bool,
}

impl Policy {
    pub fn new(
        list: Option<(Mode, Arc<AccessList>)>,
        keys: Option<Arc<KeySet>>,
        private_scrape: bool,
    ) -> Policy {
        Policy {
            list,
            keys,
            private_scrape,
        }
    }

    /// The same policy with another list (a reload of the list file).
    pub fn with_list(&self, list: Option<(Mode, Arc<AccessList>)>) -> Policy {
        Policy {
            list,
            ..self.clone()
        }
    }

    /// The same policy with other keys (a reload of the key file).
    pub fn with_keys(&self, keys: Option<Arc<KeySet>>) -> Policy {
        Policy {
            keys,
            ..self.clone()
        }
    }

    pub fn list(&self) -> Option<(Mode, &Arc<AccessList>)> {
        self.list.as_ref().map(|(m, l)| (*m, l))
    }

    pub fn keys(&self) -> Option<&Arc<KeySet>> {
        self.keys.as_ref()
    }

    /// Private mode: announces need a key. When false the integrator need not
    /// extract one (pass [`PresentedKey::Missing`]).
    pub fn is_private(&self) -> bool {
        self.keys.is_some()
    }

    /// Whether scrape requests need a key (`--private-scrape` with `--keys`).
    pub fn scrape_needs_key(&self) -> bool {
        self.private_scrape && self.keys.is_some()
    }

    /// Whether the access list lets this torrent be tracked.
    #[inline]
    pub fn torrent_allowed(&self, info_hash: &InfoHash) -> bool {
        match &self.list {
            None => true,
            Some((Mode::Allow, l)) => l.contains(info_hash),
            Some((Mode::Deny, l)) => !l.contains(info_hash),
        }
    }

    /// The key rule alone (no-op outside private mode).
    #[inline]
    pub fn check_key(&self, key: &PresentedKey, now_unix: u64) -> Result<(), Deny> {
        let Some(keys) = &self.keys else {
            return Ok(());
        };
        match key {
            PresentedKey::Missing => Err(Deny::MissingKey),
            PresentedKey::Malformed => Err(Deny::UnknownKey),
            PresentedKey::Key(k) => keys.check(k, now_unix),
        }
    }

    /// An announce: the key is checked first, so a client without a valid key
    /// learns nothing about which torrents are listed; then the access list.
    /// On `Err`, answer with `deny.as_str()` and store nothing.
    #[inline]
    pub fn check_announce(
        &self,
        info_hash: &InfoHash,
        key: &PresentedKey,
        now_unix: u64,
    ) -> Result<(), Deny> {
        self.check_key(key, now_unix)?;
        if self.torrent_allowed(info_hash) {
            Ok(())
        } else {
            Err(Deny::TorrentNotAllowed)
        }
    }

    /// A scrape request as a whole: refused only under `--private-scrape`
    /// without a valid key. (UDP scrape carries no URL data, so under
    /// `--private-scrape` it always answers `missing key`.)
    #[inline]
    pub fn check_scrape_request(&self, key: &PresentedKey, now_unix: u64) -> Result<(), Deny> {
        if self.private_scrape {
            self.check_key(key, now_unix)
        } else {
            Ok(())
        }
    }
}

/// A bad line: 1-based line number and a fixed reason (never the line's text,
/// which may be a key).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct LineError {
    pub line: usize,
    pub reason: &'static str,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// Why a file could not be loaded. `Display` is one line:
/// `FILE:LINE: reason` or `FILE: reason`.
#[derive(Debug)]
pub struct LoadError {
    pub path: PathBuf,
    pub kind: LoadErrorKind,
    /// The flag that named the file (`--access-list`, `--keys`), for an
    /// error at start, where the operator looks for the setting to fix.
    pub flag: Option<&'static str>,
}

#[derive(Debug)]
pub enum LoadErrorKind {
    Io(std::io::Error),
    Line(LineError),
    /// Size or mtime changed while reading: a writer is at work; try again later.
    ChangedWhileReading,
}

impl LoadError {
    /// The same error, saying which flag named the file.
    pub fn named(self, flag: &'static str) -> LoadError {
        LoadError {
            flag: Some(flag),
            ..self
        }
    }

    /// The 1-based line number of a parse error.
    pub fn line(&self) -> Option<usize> {
        match &self.kind {
            LoadErrorKind::Line(l) => Some(l.line),
            _ => None,
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(flag) = self.flag {
            write!(f, "{flag} ")?;
        }
        let path = self.path.display();
        match &self.kind {
            LoadErrorKind::Io(e) => write!(f, "{path}: {e}"),
            LoadErrorKind::Line(l) => write!(f, "{path}:{}: {}", l.line, l.reason),
            LoadErrorKind::ChangedWhileReading => {
                write!(f, "{path}: changed while being read; will retry")
            }
        }
    }
}

impl std::error::Error for LoadError {}

/// File contents produced by `render()`, ready for [`write_atomically`].
#[derive(Clone, PartialEq, Eq)]
pub struct Rendered(pub Vec<u8>);

// Rendered key files hold keys: never print them.
impl fmt::Debug for Rendered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rendered({} bytes)", self.0.len())
    }
}

/// Lines with their 1-based numbers, with a trailing `\r`, a `#` comment and
/// surrounding spaces/tabs removed (neither format has `#` in its data).
fn lines(bytes: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let empty = bytes.is_empty();
    body.split(|c| *c == b'\n')
        .filter(move |_| !empty)
        .enumerate()
        .map(|(i, line)| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let line = match line.iter().position(|c| *c == b'#') {
                Some(p) => &line[..p],
                None => line,
            };
            (i + 1, line.trim_ascii())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const H1: InfoHash = [1; 20];
    const H2: InfoHash = [2; 20];

    fn keys() -> Arc<KeySet> {
        Arc::new(KeySet::from_entries([
            (Key(*b"abcdefghijklmnopqrstuvwxyzABCDEF"), None),
            (Key(*b"0123456789012345678901234567890Z"), Some(100)),
        ]))
    }
    fn good() -> PresentedKey {
        PresentedKey::Key(Key(*b"abcdefghijklmnopqrstuvwxyzABCDEF"))
    }

    #[test]
    fn test_deny_strings() {
        assert_eq!(Deny::TorrentNotAllowed.as_str(), "torrent not allowed");
        assert_eq!(Deny::MissingKey.as_str(), "missing key");
        assert_eq!(Deny::UnknownKey.as_str(), "unknown key");
    }

    #[test]
    fn test_open_policy_allows_everything() {
        let p = Policy::default();
        assert_eq!(p.check_announce(&H1, &PresentedKey::Missing, 0), Ok(()));
        assert!(p.torrent_allowed(&H1) && !p.is_private());
    }

    #[test]
    fn test_allow_and_deny_modes() {
        let l = Arc::new(AccessList::from_hashes([H1]));
        let allow = Policy::new(Some((Mode::Allow, l.clone())), None, false);
        let none = PresentedKey::Missing;
        assert_eq!(allow.check_announce(&H1, &none, 0), Ok(()));
        assert_eq!(
            allow.check_announce(&H2, &none, 0),
            Err(Deny::TorrentNotAllowed)
        );
        assert!(allow.torrent_allowed(&H1) && !allow.torrent_allowed(&H2));
        let deny = Policy::new(Some((Mode::Deny, l)), None, false);
        assert_eq!(
            deny.check_announce(&H1, &none, 0),
            Err(Deny::TorrentNotAllowed)
        );
        assert_eq!(deny.check_announce(&H2, &none, 0), Ok(()));
        assert!(!deny.torrent_allowed(&H1));
    }

    #[test]
    fn test_keys_and_list_combine_key_first() {
        let l = Arc::new(AccessList::from_hashes([H1]));
        let p = Policy::new(Some((Mode::Allow, l)), Some(keys()), false);
        assert_eq!(p.check_announce(&H1, &good(), 0), Ok(()));
        assert_eq!(
            p.check_announce(&H2, &good(), 0),
            Err(Deny::TorrentNotAllowed)
        );
        // Without a valid key the list is not consulted (nothing leaks about it).
        assert_eq!(
            p.check_announce(&H2, &PresentedKey::Missing, 0),
            Err(Deny::MissingKey)
        );
        assert_eq!(
            p.check_announce(&H1, &PresentedKey::Malformed, 0),
            Err(Deny::UnknownKey)
        );
        let expiring = PresentedKey::Key(Key(*b"0123456789012345678901234567890Z"));
        assert_eq!(p.check_announce(&H1, &expiring, 99), Ok(()));
        assert_eq!(p.check_announce(&H1, &expiring, 100), Err(Deny::UnknownKey));
    }

    #[test]
    fn test_scrape_without_key_unless_private_scrape() {
        let p = Policy::new(None, Some(keys()), false);
        assert_eq!(p.check_scrape_request(&PresentedKey::Missing, 0), Ok(()));
        assert!(!p.scrape_needs_key());
        let p = Policy::new(None, Some(keys()), true);
        assert!(p.scrape_needs_key());
        assert_eq!(
            p.check_scrape_request(&PresentedKey::Missing, 0),
            Err(Deny::MissingKey)
        );
        assert_eq!(p.check_scrape_request(&good(), 0), Ok(()));
    }

    #[test]
    fn test_load_error_is_one_line() {
        let e = LoadError {
            path: "/etc/shoal/allow.txt".into(),
            kind: LoadErrorKind::Line(LineError {
                line: 7,
                reason: "bad",
            }),
            flag: None,
        };
        assert_eq!(e.to_string(), "/etc/shoal/allow.txt:7: bad");
        assert_eq!(e.line(), Some(7));
        assert_eq!(
            e.named("--access-list").to_string(),
            "--access-list /etc/shoal/allow.txt:7: bad"
        );
    }

    #[test]
    fn test_lines() {
        let v: Vec<_> = lines(b"a\r\n # c\n\tb # c\nc").collect();
        assert_eq!(v, [(1, &b"a"[..]), (2, b""), (3, b"b"), (4, b"c")]);
        assert_eq!(lines(b"").count(), 0);
        assert_eq!(lines(b"\n").count(), 1);
    }
}
