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

use crate::access::live::{load_keys, load_list};
use crate::access::write::{KEYS_MODE, LIST_MODE};
use crate::access::{write_atomically, AccessList, Key, KeySet, LoadError, Mode, PolicyHandle};
use crate::swarm::InfoHash;
use parking_lot::Mutex;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

/// The files behind the policy, and the handle changes are installed through.
#[derive(Debug)]
pub struct Files {
    pub handle: PolicyHandle,
    pub list: Option<(PathBuf, Mode)>,
    pub keys: Option<PathBuf>,
    /// Held for the length of one change (build, write, install).
    lock: Mutex<()>,
}

/// Why a change was not made.
#[derive(Debug)]
pub enum ManageError {
    /// The file to write back to is not configured: the flag that sets it.
    NoFile(&'static str),
    /// Writing the file failed (the change is not in force).
    Write(String),
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
        let _one = self.lock.lock();
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

    /// Add a new random key valid until `expiry` (Unix seconds; `None`: no expiry).
    pub fn add_key(&self, expiry: Option<u64>) -> Result<(Key, Changed), ManageError> {
        let _one = self.lock.lock();
        let path = self.keys.clone().ok_or(ManageError::NoFile("--keys"))?;
        let current = self.keys()?;
        let key = random_key().map_err(|e| ManageError::Write(format!("no randomness: {e}")))?;
        let next =
            KeySet::from_entries(current.iter().map(|(k, e)| (*k, e)).chain([(key, expiry)]));
        let entries = self.install_keys(&path, next)?;
        Ok((
            key,
            Changed {
                changed: true,
                entries,
            },
        ))
    }

    /// Remove `key`; `changed` is false if it was not listed.
    pub fn remove_key(&self, key: &Key) -> Result<Changed, ManageError> {
        let _one = self.lock.lock();
        let path = self.keys.clone().ok_or(ManageError::NoFile("--keys"))?;
        let current = self.keys()?;
        // Equality on keys the operator already holds (a lookup, not an
        // authentication): constant time is not needed, but costs nothing.
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
        let _one = self.lock.lock();
        let path = self.keys.clone().ok_or(ManageError::NoFile("--keys"))?;
        let current = self.keys()?;
        if current
            .iter()
            .any(|(k, _)| crate::access::keys::ct_eq(&k.0, &key.0))
        {
            return Ok(Changed {
                changed: false,
                entries: current.len(),
            });
        }
        let next =
            KeySet::from_entries(current.iter().map(|(k, e)| (*k, e)).chain([(key, expiry)]));
        let entries = self.install_keys(&path, next)?;
        Ok(Changed {
            changed: true,
            entries,
        })
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
    }
}
