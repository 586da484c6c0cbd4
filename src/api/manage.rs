//! Changes to the access list and the key set made through the API, written
//! back to their files.
//!
//! Each change is built from the policy in force, written to the file with
//! [`write_atomically`] (temporary file, fsync, rename), and only then
//! installed, so what the file says and what is enforced agree, and a restart
//! finds the change. One change at a time (a lock per [`Files`]): two API calls
//! cannot write the file out of order. The reloader later sees the renamed
//! file and loads the same contents again, which changes nothing; a hand
//! edit after that reloads as usual.
//!
//! Without the file (`--access-list`, `--keys`) there is nothing to write
//! back to: [`ManageError::NoFile`] names the flag, answered with 409.
//!
//! Every change is a [`Change`] value. One made through the API is also
//! handed to the [`Replicate`] hook, if the server set one (`--cluster`
//! carries it to the other instances); one that came from elsewhere goes
//! through [`Files::apply`], which changes policy and file alike and hands
//! nothing on.

use crate::access::live::{load_keys, load_list};
use crate::access::write::{KEYS_MODE, LIST_MODE};
use crate::access::{
    write_atomically, AccessList, Change, Key, KeySet, LoadError, Mode, PolicyHandle,
};
use crate::swarm::InfoHash;
use parking_lot::Mutex;
use std::fmt;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// Where a change made through the API goes besides this instance's own
/// policy and files: set by the server (the cluster's outbox of changes).
pub trait Replicate: Send + Sync + fmt::Debug {
    /// `change` was just applied here.
    fn changed(&self, change: &Change);
}

/// The files behind the policy, and the handle changes are installed through.
#[derive(Debug)]
pub struct Files {
    pub handle: PolicyHandle,
    pub list: Option<(PathBuf, Mode)>,
    pub keys: Option<PathBuf>,
    /// Held for the length of one change (build, write, install).
    lock: Mutex<()>,
    /// Told of every change made through the API.
    replicate: OnceLock<Arc<dyn Replicate>>,
}

/// Why a change was not made.
#[derive(Debug)]
pub enum ManageError {
    /// The file to write back to is not configured: the flag that sets it.
    NoFile(&'static str),
    /// Writing the file failed (the change is not in force).
    Write(String),
}

impl fmt::Display for ManageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManageError::NoFile(flag) => write!(f, "no {flag} file to write to"),
            ManageError::Write(e) => f.write_str(e),
        }
    }
}

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Changed {
    /// False: it was already so (nothing written).
    pub changed: bool,
    /// Entries in force after it.
    pub entries: usize,
}

impl Files {
    pub fn new(
        handle: PolicyHandle,
        list: Option<(PathBuf, Mode)>,
        keys: Option<PathBuf>,
    ) -> Files {
        Files {
            handle,
            list,
            keys,
            lock: Mutex::new(()),
            replicate: OnceLock::new(),
        }
    }

    /// Hand every change made through the API to `r` too (at most once).
    pub fn set_replicate(&self, r: Arc<dyn Replicate>) -> Result<(), Arc<dyn Replicate>> {
        self.replicate.set(r)
    }

    /// A change made through the API: applied here, then handed on.
    fn make(&self, change: Change) -> Result<Changed, ManageError> {
        let c = self.apply(&change)?;
        self.hand_on(&change, c);
        Ok(c)
    }

    /// Tell the hook of `change` if it changed anything here.
    fn hand_on(&self, change: &Change, c: Changed) {
        if c.changed {
            if let Some(r) = self.replicate.get() {
                r.changed(change);
            }
        }
    }

    /// Apply `change` (made elsewhere: another instance of a cluster) to
    /// the policy and its file, handing nothing on.
    pub fn apply(&self, change: &Change) -> Result<Changed, ManageError> {
        let _one = self.lock.lock();
        match *change {
            Change::Listed(h) => self.list_one(h, true),
            Change::Unlisted(h) => self.list_one(h, false),
            Change::KeyAdded(k, expiry) => self.add_one(k, expiry, false),
            Change::KeyRemoved(k) => self.remove_one(&k),
        }
    }

    /// The access list in force (empty if none is loaded) and its mode, or
    /// `NoFile` without `--access-list`.
    pub fn list(&self) -> Result<(Mode, Arc<AccessList>), ManageError> {
        let (_, mode) = self
            .list
            .as_ref()
            .ok_or(ManageError::NoFile("--access-list"))?;
        let policy = self.handle.load();
        let list = policy.list().map_or_else(
            || Arc::new(AccessList::from_hashes([])),
            |(_, l)| Arc::clone(l),
        );
        Ok((*mode, list))
    }

    /// The key set in force, or `NoFile` without `--keys`.
    pub fn keys(&self) -> Result<Arc<KeySet>, ManageError> {
        self.keys.as_ref().ok_or(ManageError::NoFile("--keys"))?;
        let policy = self.handle.load();
        Ok(policy
            .keys()
            .map_or_else(|| Arc::new(KeySet::from_entries([])), Arc::clone))
    }

    /// List `hash` (`listed`) or take it off the list.
    pub fn set_listed(&self, hash: InfoHash, listed: bool) -> Result<Changed, ManageError> {
        self.make(if listed {
            Change::Listed(hash)
        } else {
            Change::Unlisted(hash)
        })
    }

    /// Add a new random key valid until `expiry` (Unix seconds; `None`: no expiry).
    pub fn add_key(&self, expiry: Option<u64>) -> Result<(Key, Changed), ManageError> {
        self.keys.as_ref().ok_or(ManageError::NoFile("--keys"))?;
        let key = random_key().map_err(|e| ManageError::Write(format!("no randomness: {e}")))?;
        let c = self.make(Change::KeyAdded(key, expiry))?;
        Ok((key, c))
    }

    /// Remove `key`; `changed` is false if it was not listed.
    pub fn remove_key(&self, key: &Key) -> Result<Changed, ManageError> {
        self.make(Change::KeyRemoved(*key))
    }

    fn list_one(&self, hash: InfoHash, listed: bool) -> Result<Changed, ManageError> {
        let (path, mode) = self
            .list
            .clone()
            .ok_or(ManageError::NoFile("--access-list"))?;
        let (_, current) = self.list()?;
        if current.contains(&hash) == listed {
            return Ok(Changed {
                changed: false,
                entries: current.len(),
            });
        }
        let next = if listed {
            AccessList::from_hashes(current.iter().copied().chain([hash]))
        } else {
            AccessList::from_hashes(current.iter().copied().filter(|h| *h != hash))
        };
        write_atomically(&path, &next.render().0, LIST_MODE)
            .map_err(|e| ManageError::Write(format!("cannot write {}: {e}", path.display())))?;
        let entries = next.len();
        let next = Arc::new(next);
        self.handle.update(|p| p.with_list(Some((mode, next))));
        Ok(Changed {
            changed: true,
            entries,
        })
    }

    /// Add `key` valid until `expiry`. With `keep`, a key already listed is
    /// left as it is whatever its expiry; without, it takes the new one.
    fn add_one(&self, key: Key, expiry: Option<u64>, keep: bool) -> Result<Changed, ManageError> {
        let path = self.keys.clone().ok_or(ManageError::NoFile("--keys"))?;
        let current = self.keys()?;
        // Equality on keys the operator already holds (a lookup, not an
        // authentication): constant time is not needed, but costs nothing.
        let same = current
            .iter()
            .any(|(k, e)| crate::access::keys::ct_eq(&k.0, &key.0) && (keep || e == expiry));
        if same {
            return Ok(Changed {
                changed: false,
                entries: current.len(),
            });
        }
        // A key already listed with another expiry takes the new one.
        let next =
            KeySet::from_entries(current.iter().map(|(k, e)| (*k, e)).chain([(key, expiry)]));
        let entries = self.install_keys(&path, next)?;
        Ok(Changed {
            changed: true,
            entries,
        })
    }

    fn remove_one(&self, key: &Key) -> Result<Changed, ManageError> {
        let path = self.keys.clone().ok_or(ManageError::NoFile("--keys"))?;
        let current = self.keys()?;
        let listed = current
            .iter()
            .any(|(k, _)| crate::access::keys::ct_eq(&k.0, &key.0));
        if !listed {
            return Ok(Changed {
                changed: false,
                entries: current.len(),
            });
        }
        let next = KeySet::from_entries(
            current
                .iter()
                .filter(|(k, _)| *k != key)
                .map(|(k, e)| (*k, e)),
        );
        let entries = self.install_keys(&path, next)?;
        Ok(Changed {
            changed: true,
            entries,
        })
    }

    /// Add the given `key` valid until `expiry` (Unix seconds; `None`: no
    /// expiry). `changed` is false, and nothing is written, if it is already
    /// listed (whatever its expiry).
    pub fn insert_key(&self, key: Key, expiry: Option<u64>) -> Result<Changed, ManageError> {
        let c = self.insert_one(key, expiry)?;
        self.hand_on(&Change::KeyAdded(key, expiry), c);
        Ok(c)
    }

    fn insert_one(&self, key: Key, expiry: Option<u64>) -> Result<Changed, ManageError> {
        let _one = self.lock.lock();
        self.add_one(key, expiry, true)
    }

    /// Read the access list again and put it in force, as a SIGHUP does, but
    /// answering when done: the entries now in force, or why the file was
    /// not loaded (the list in force stays). `None` without `--access-list`.
    pub fn reload_list(&self) -> Option<Result<usize, LoadError>> {
        let _one = self.lock.lock();
        let (path, mode) = self.list.clone()?;
        Some(load_list(&path).map(|list| {
            let entries = list.len();
            let list = Arc::new(list);
            self.handle.update(|p| p.with_list(Some((mode, list))));
            entries
        }))
    }

    /// The key file's counterpart of [`Files::reload_list`]; `None` without
    /// `--keys`.
    pub fn reload_keys(&self) -> Option<Result<usize, LoadError>> {
        let _one = self.lock.lock();
        let path = self.keys.clone()?;
        Some(load_keys(&path).map(|keys| {
            let entries = keys.len();
            let keys = Arc::new(keys);
            self.handle.update(|p| p.with_keys(Some(keys)));
            entries
        }))
    }

    fn install_keys(&self, path: &std::path::Path, next: KeySet) -> Result<usize, ManageError> {
        write_atomically(path, &next.render().0, KEYS_MODE)
            .map_err(|e| ManageError::Write(format!("cannot write {}: {e}", path.display())))?;
        let entries = next.len();
        let next = Arc::new(next);
        self.handle.update(|p| p.with_keys(Some(next)));
        Ok(entries)
    }
}

/// A fresh key: 32 characters of `[A-Za-z0-9]` from the kernel's random
/// source (keys are credentials: not from a seeded generator).
pub fn random_key() -> std::io::Result<Key> {
    const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut f = std::fs::File::open("/dev/urandom")?;
    let mut key = [0u8; 32];
    let mut filled = 0;
    let mut buf = [0u8; 64];
    while filled < key.len() {
        f.read_exact(&mut buf)?;
        // Rejection sampling: 248 = 4 × 62, so every character is equally likely.
        for &b in buf.iter().filter(|&&b| b < 248) {
            if let Some(slot) = key.get_mut(filled) {
                *slot = ALPHABET[usize::from(b % 62)];
                filled += 1;
            }
        }
    }
    Ok(Key(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Policy;

    struct Tmp(PathBuf);
    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn tmp(name: &str) -> Tmp {
        let d =
            std::env::temp_dir().join(format!("shoal-api-manage-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Tmp(d)
    }

    #[test]
    fn list_changes_are_written_then_enforced() {
        let d = tmp("list");
        let path = d.0.join("allow.txt");
        std::fs::write(&path, "").unwrap();
        let handle = PolicyHandle::new(Policy::new(
            Some((Mode::Allow, Arc::new(AccessList::from_hashes([])))),
            None,
            false,
        ));
        let files = Files::new(handle.clone(), Some((path.clone(), Mode::Allow)), None);
        let h = [0xab; 20];
        assert!(!handle.load().torrent_allowed(&h));
        let c = files.set_listed(h, true).unwrap();
        assert_eq!((c.changed, c.entries), (true, 1));
        assert!(handle.load().torrent_allowed(&h));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{}\n", "ab".repeat(20))
        );
        assert!(!files.set_listed(h, true).unwrap().changed, "idempotent");
        let c = files.set_listed(h, false).unwrap();
        assert_eq!((c.changed, c.entries), (true, 0));
        assert!(!handle.load().torrent_allowed(&h));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        assert!(matches!(
            files.add_key(None),
            Err(ManageError::NoFile("--keys"))
        ));
    }

    #[test]
    fn keys_are_random_written_and_removable() {
        let d = tmp("keys");
        let path = d.0.join("keys.txt");
        let handle = PolicyHandle::new(Policy::new(
            None,
            Some(Arc::new(KeySet::from_entries([]))),
            false,
        ));
        let files = Files::new(handle.clone(), None, Some(path.clone()));
        let (k1, c) = files.add_key(Some(4_000_000_000)).unwrap();
        assert_eq!(c.entries, 1);
        let (k2, _) = files.add_key(None).unwrap();
        assert_ne!(k1, k2);
        assert!(Key::parse(&k1.0).is_some(), "32 alphanumerics");
        let policy = handle.load();
        assert_eq!(policy.keys().unwrap().check(&k2, 0), Ok(()));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert_eq!(KeySet::parse(text.as_bytes()).unwrap().len(), 2);
        assert!(files.remove_key(&k1).unwrap().changed);
        assert!(!files.remove_key(&k1).unwrap().changed);
        assert_eq!(
            KeySet::parse(&std::fs::read(&path).unwrap()).unwrap().len(),
            1
        );
        assert!(matches!(
            files.set_listed([1; 20], true),
            Err(ManageError::NoFile("--access-list"))
        ));
    }

    #[derive(Debug, Default)]
    struct Recorder(Mutex<Vec<Change>>);
    impl Replicate for Recorder {
        fn changed(&self, change: &Change) {
            self.0.lock().push(*change);
        }
    }

    /// Changes made through the API are handed on once each; changes from
    /// elsewhere ([`Files::apply`]) are written and enforced but not handed
    /// on again.
    #[test]
    fn api_changes_reach_the_hook_and_applied_ones_do_not() {
        let d = tmp("hook");
        let (list, keys) = (d.0.join("allow.txt"), d.0.join("keys.txt"));
        let handle = PolicyHandle::new(Policy::new(
            Some((Mode::Allow, Arc::new(AccessList::from_hashes([])))),
            Some(Arc::new(KeySet::from_entries([]))),
            false,
        ));
        let files = Files::new(
            handle.clone(),
            Some((list, Mode::Allow)),
            Some(keys.clone()),
        );
        let rec = Arc::new(Recorder::default());
        files.set_replicate(rec.clone()).unwrap();
        files.set_listed([1; 20], true).unwrap();
        files.set_listed([1; 20], true).unwrap(); // unchanged: not handed on
        let (k, _) = files.add_key(Some(5_000_000_000)).unwrap();
        files.remove_key(&k).unwrap();
        assert_eq!(
            *rec.0.lock(),
            vec![
                Change::Listed([1; 20]),
                Change::KeyAdded(k, Some(5_000_000_000)),
                Change::KeyRemoved(k)
            ]
        );
        let other = Key(*b"abcdefghijklmnopqrstuvwxyzABCDEF");
        assert!(files.apply(&Change::KeyAdded(other, None)).unwrap().changed);
        assert!(files.apply(&Change::Unlisted([1; 20])).unwrap().changed);
        assert_eq!(rec.0.lock().len(), 3, "nothing handed on");
        assert!(!handle.load().torrent_allowed(&[1; 20]));
        assert_eq!(handle.load().keys().unwrap().check(&other, 0), Ok(()));
        assert!(std::fs::read_to_string(&keys)
            .unwrap()
            .contains("abcdefghijklmnopqrstuvwxyzABCDEF"));
        // The same key again with another expiry takes the new one.
        assert!(
            files
                .apply(&Change::KeyAdded(other, Some(7)))
                .unwrap()
                .changed
        );
        assert!(
            !files
                .apply(&Change::KeyAdded(other, Some(7)))
                .unwrap()
                .changed
        );
    }

    #[test]
    fn given_keys_are_added_once_and_files_reload_on_demand() {
        let d = tmp("given");
        let path = d.0.join("keys.txt");
        let handle = PolicyHandle::new(Policy::new(
            None,
            Some(Arc::new(KeySet::from_entries([]))),
            false,
        ));
        let files = Files::new(handle.clone(), None, Some(path.clone()));
        let rec = Arc::new(Recorder::default());
        files.set_replicate(rec.clone()).unwrap();
        let k = Key(*b"abcdefghijklmnopqrstuvwxyzABCDEF");
        let c = files.insert_key(k, Some(4_000_000_000)).unwrap();
        assert_eq!((c.changed, c.entries), (true, 1));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "abcdefghijklmnopqrstuvwxyzABCDEF 4000000000\n"
        );
        let again = files.insert_key(k, None).unwrap();
        assert_eq!((again.changed, again.entries), (false, 1));
        assert_eq!(handle.load().keys().unwrap().check(&k, 0), Ok(()));
        // A hand edit is read on demand; a bad one keeps what is in force.
        std::fs::write(&path, "").unwrap();
        assert_eq!(files.reload_keys().unwrap().unwrap(), 0);
        assert!(handle.load().keys().unwrap().check(&k, 0).is_err());
        std::fs::write(&path, "not a key\n").unwrap();
        assert!(files.reload_keys().unwrap().is_err());
        assert!(files.reload_list().is_none(), "no --access-list");
        // A given key is handed on once, as a random one is; a reload reads
        // this instance's own file and hands nothing on.
        assert_eq!(
            *rec.0.lock(),
            vec![Change::KeyAdded(k, Some(4_000_000_000))]
        );
    }
}
