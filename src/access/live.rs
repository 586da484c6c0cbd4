//! Live replacement of the [`Policy`]: a shared holder the reloader writes,
//! per-worker readers that never wait, and the file watching and reading
//! that feed it.
//!
//! Why a generation counter and not a lock per request: the request path must
//! not touch a global lock. [`PolicyHandle::store`] swaps the `Arc<Policy>`
//! under a mutex and then bumps an atomic generation. A [`PolicyReader`] keeps
//! its own `Arc<Policy>` and the generation it was taken at; per request it does
//! one relaxed load of the generation and, only when that moved (after a
//! reload), takes the mutex for the length of an `Arc` clone. The mutex is never
//! held across parsing or I/O, so even that rare wait is a few nanoseconds.
//! A relaxed load may see the new generation a little late; that only delays
//! the switch, and the mutex orders the `Arc` the reader then takes.
//!
//! Old policies are retired on the reloader's thread ([`PolicyHandle::collect`])
//! rather than freed by whichever worker drops the last reference, so a worker
//! does not pay for unmapping a 40 MB table.
//!
//! Torn reads: [`read_stable`] refuses a file whose size or mtime changed while
//! it was read, and [`FileWatch::changed`] reports a change only once the
//! file's fingerprint has held still for one poll, so a writer that rewrites in
//! place is seen when it is done. Writers should still use
//! [`super::write_atomically`] (rename), which needs neither.

use super::{AccessConfig, AccessList, KeySet, LineError, LoadError, LoadErrorKind, Mode, Policy};
use parking_lot::Mutex;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Shared {
    /// Bumped after every store; readers compare it with the one they hold.
    generation: AtomicU64,
    /// The current policy. Locked only to swap or clone the `Arc`.
    current: Mutex<Arc<Policy>>,
    /// Replaced policies still referenced by some reader; freed by `collect`.
    retired: Mutex<Vec<Arc<Policy>>>,
}

/// The shared holder of the current policy. Clone it freely; the reloader and
/// the management API write through it, workers read through [`PolicyReader`].
#[derive(Clone)]
pub struct PolicyHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PolicyHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyHandle")
            .field(
                "generation",
                &self.shared.generation.load(Ordering::Relaxed),
            )
            .finish()
    }
}

impl PolicyHandle {
    pub fn new(policy: Policy) -> PolicyHandle {
        PolicyHandle {
            shared: Arc::new(Shared {
                generation: AtomicU64::new(0),
                current: Mutex::new(Arc::new(policy)),
                retired: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The current policy (not for the request path: use a reader).
    pub fn load(&self) -> Arc<Policy> {
        self.shared.current.lock().clone()
    }

    /// Replace the policy; readers see it on their next request.
    pub fn store(&self, policy: Policy) {
        self.update(|_| policy);
    }

    /// Replace the policy with one derived from the current one. `f` runs under
    /// the writer lock, so concurrent updates (a reload and an API call) do not
    /// lose each other's change; keep it cheap (build the list before).
    pub fn update(&self, f: impl FnOnce(&Policy) -> Policy) {
        let old = {
            let mut cur = self.shared.current.lock();
            let new = Arc::new(f(&cur));
            let old = std::mem::replace(&mut *cur, new);
            self.shared.generation.fetch_add(1, Ordering::Release);
            old
        };
        self.retire(old);
    }

    fn retire(&self, old: Arc<Policy>) {
        let mut retired = self.shared.retired.lock();
        retired.push(old);
        retired.retain(|p| Arc::strong_count(p) > 1);
    }

    /// Free replaced policies that no reader holds any more. Call from the
    /// reload poll loop (every few seconds); returns how many are still held.
    pub fn collect(&self) -> usize {
        let mut retired = self.shared.retired.lock();
        retired.retain(|p| Arc::strong_count(p) > 1);
        retired.len()
    }

    /// How many times the policy was replaced.
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Relaxed)
    }

    /// A reader for one worker thread.
    pub fn reader(&self) -> PolicyReader {
        let cur = self.shared.current.lock();
        PolicyReader {
            shared: self.shared.clone(),
            seen: self.shared.generation.load(Ordering::Relaxed),
            cached: cur.clone(),
        }
    }
}

/// A worker's view of the policy. `get()` is the per-request call.
pub struct PolicyReader {
    shared: Arc<Shared>,
    seen: u64,
    cached: Arc<Policy>,
}

impl std::fmt::Debug for PolicyReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyReader")
            .field("seen", &self.seen)
            .finish()
    }
}

impl PolicyReader {
    /// The current policy: a relaxed atomic load, and after a reload one
    /// `Arc` clone under the holder's mutex.
    #[inline]
    pub fn get(&mut self) -> &Policy {
        self.get_with_generation().0
    }

    /// [`PolicyReader::get`] with the generation of the policy it returns:
    /// two calls return the same policy exactly when their generations are
    /// equal (what the swarm's admission stamps rely on).
    #[inline]
    pub fn get_with_generation(&mut self) -> (&Policy, u64) {
        if self.shared.generation.load(Ordering::Relaxed) != self.seen {
            self.refresh();
        }
        (&self.cached, self.seen)
    }

    #[cold]
    fn refresh(&mut self) {
        let cur = self.shared.current.lock();
        // Under the lock the generation matches `cur` (stores bump it while
        // holding the lock).
        self.seen = self.shared.generation.load(Ordering::Relaxed);
        self.cached = cur.clone();
    }
}

/// What identifies a version of a file without reading it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Fingerprint {
    pub dev: u64,
    pub ino: u64,
    pub len: u64,
    pub mtime_ns: i128,
}

impl Fingerprint {
    fn of(meta: &std::fs::Metadata) -> Fingerprint {
        Fingerprint {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        }
    }

    pub fn of_path(path: &Path) -> std::io::Result<Fingerprint> {
        std::fs::metadata(path).map(|m| Fingerprint::of(&m))
    }
}

/// Change detection by (device, inode, length, mtime), polled by the caller.
#[derive(Debug)]
pub struct FileWatch {
    path: PathBuf,
    /// The version last loaded or last tried (a file that failed to parse is not
    /// retried, and its error not logged again, until it changes).
    attempted: Option<Fingerprint>,
    /// A new version seen on the previous poll, waiting to hold still.
    pending: Option<Fingerprint>,
}

impl FileWatch {
    /// Watch `path`, taking `loaded` as the version already in use.
    pub fn new(path: impl Into<PathBuf>, loaded: Option<Fingerprint>) -> FileWatch {
        FileWatch {
            path: path.into(),
            attempted: loaded,
            pending: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Poll: true when the file differs from the version last attempted and
    /// has not changed since the previous poll (so a writer is done with it).
    /// A missing file is no change: the old list stays.
    pub fn changed(&mut self) -> bool {
        let Ok(now) = Fingerprint::of_path(&self.path) else {
            self.pending = None;
            return false;
        };
        if Some(now) == self.attempted {
            self.pending = None;
            return false;
        }
        if Some(now) == self.pending {
            return true;
        }
        self.pending = Some(now);
        false
    }

    /// Record the version a load was attempted on (successful or not).
    pub fn attempted(&mut self, fp: Fingerprint) {
        self.attempted = Some(fp);
        self.pending = None;
    }
}

/// Read a whole file, refusing it if its size or mtime changed meanwhile.
pub fn read_stable(path: &Path) -> Result<(Vec<u8>, Fingerprint), LoadError> {
    let err = |kind| LoadError {
        path: path.to_path_buf(),
        kind,
        flag: None,
    };
    let mut f = File::open(path).map_err(|e| err(LoadErrorKind::Io(e)))?;
    let before = Fingerprint::of(&f.metadata().map_err(|e| err(LoadErrorKind::Io(e)))?);
    let mut buf = Vec::with_capacity(usize::try_from(before.len).unwrap_or(0).saturating_add(1));
    f.read_to_end(&mut buf)
        .map_err(|e| err(LoadErrorKind::Io(e)))?;
    let after = Fingerprint::of(&f.metadata().map_err(|e| err(LoadErrorKind::Io(e)))?);
    if before != after || buf.len() as u64 != after.len {
        return Err(err(LoadErrorKind::ChangedWhileReading));
    }
    Ok((buf, after))
}

/// Read and parse; the fingerprint is that of the version read (none when the
/// read failed or raced a writer).
fn load_with<T>(
    path: &Path,
    parse: impl FnOnce(&[u8]) -> Result<T, LineError>,
) -> (Result<T, LoadError>, Option<Fingerprint>) {
    let (bytes, fp) = match read_stable(path) {
        Ok(v) => v,
        Err(e) => return (Err(e), None),
    };
    let parsed = parse(&bytes).map_err(|l| LoadError {
        path: path.to_path_buf(),
        kind: LoadErrorKind::Line(l),
        flag: None,
    });
    (parsed, Some(fp))
}

/// Load an access-list file (start-up: an error here is exit 2).
pub fn load_list(path: &Path) -> Result<AccessList, LoadError> {
    load_with(path, AccessList::parse).0
}

/// Load a key file (start-up: an error here is exit 2).
pub fn load_keys(path: &Path) -> Result<KeySet, LoadError> {
    load_with(path, KeySet::parse).0
}

/// What a successful (re)load did; for the `info!` line and metrics.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct LoadStats {
    /// Hashes or keys now in force.
    pub entries: usize,
    pub bytes: u64,
    pub elapsed: Duration,
}

/// Outcome of one reload round: `None` for a file not configured or not due.
#[derive(Debug, Default)]
pub struct Reloaded {
    pub list: Option<Result<LoadStats, LoadError>>,
    pub keys: Option<Result<LoadStats, LoadError>>,
}

impl Reloaded {
    /// Failed reloads in this round (add to `shoal_access_list_reload_failures_total`).
    pub fn failures(&self) -> usize {
        [&self.list, &self.keys]
            .iter()
            .filter(|r| matches!(r, Some(Err(_))))
            .count()
    }
}

/// Owns the configured files and their watches; lives on the thread that
/// handles SIGHUP and the periodic poll. Workers only see the [`PolicyHandle`].
#[derive(Debug)]
pub struct Reloader {
    handle: PolicyHandle,
    mode: Mode,
    list: Option<FileWatch>,
    keys: Option<FileWatch>,
}

impl Reloader {
    /// Load every configured file. An error names the flag, the file and
    /// the line: print it and exit 2.
    pub fn start(config: &AccessConfig) -> Result<Reloader, LoadError> {
        let mut policy = Policy::new(None, None, config.private_scrape);
        let mut mode = Mode::Allow;
        let mut list = None;
        if let Some((path, m)) = &config.list {
            let (l, fp) = load_with(path, AccessList::parse);
            let l = l.map_err(|e| e.named("--access-list"))?;
            policy = policy.with_list(Some((*m, Arc::new(l))));
            mode = *m;
            list = Some(FileWatch::new(path.clone(), fp));
        }
        let mut keys = None;
        if let Some(path) = &config.keys {
            let (k, fp) = load_with(path, KeySet::parse);
            let k = k.map_err(|e| e.named("--keys"))?;
            policy = policy.with_keys(Some(Arc::new(k)));
            keys = Some(FileWatch::new(path.clone(), fp));
        }
        Ok(Reloader {
            handle: PolicyHandle::new(policy),
            mode,
            list,
            keys,
        })
    }

    pub fn handle(&self) -> &PolicyHandle {
        &self.handle
    }

    /// SIGHUP: reload every configured file now.
    pub fn reload_all(&mut self) -> Reloaded {
        self.run(true)
    }

    /// The periodic check (every few seconds): reload the files that changed
    /// and have held still since the previous poll. Also frees retired policies.
    pub fn poll(&mut self) -> Reloaded {
        let r = self.run(false);
        self.handle.collect();
        r
    }

    fn run(&mut self, force: bool) -> Reloaded {
        let mode = self.mode;
        let list = self.list.as_mut().and_then(|w| {
            (force || w.changed()).then(|| {
                reload_one(
                    w,
                    &self.handle,
                    AccessList::parse,
                    AccessList::len,
                    |p, l| p.with_list(Some((mode, l))),
                )
            })
        });
        let keys = self.keys.as_mut().and_then(|w| {
            (force || w.changed()).then(|| {
                reload_one(w, &self.handle, KeySet::parse, KeySet::len, |p, k| {
                    p.with_keys(Some(k))
                })
            })
        });
        Reloaded { list, keys }
    }
}

/// Parse off the lock, then swap; on error keep the old policy.
fn reload_one<T>(
    watch: &mut FileWatch,
    handle: &PolicyHandle,
    parse: impl FnOnce(&[u8]) -> Result<T, LineError>,
    len: impl Fn(&T) -> usize,
    install: impl FnOnce(&Policy, Arc<T>) -> Policy,
) -> Result<LoadStats, LoadError> {
    let t0 = Instant::now();
    let (parsed, fp) = load_with(watch.path(), parse);
    // A parse error is not retried until the file changes again; a read that
    // raced a writer (no fingerprint) is retried on the next poll.
    if let Some(fp) = fp {
        watch.attempted(fp);
    }
    let v = parsed?;
    let stats = LoadStats {
        entries: len(&v),
        bytes: fp.map_or(0, |f| f.len),
        elapsed: t0.elapsed(),
    };
    let v = Arc::new(v);
    handle.update(|p| install(p, v));
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{write_atomically, Deny, Key, PresentedKey};
    use std::io::Write;

    const A: &str = "0123456789abcdef0123456789abcdef01234567";
    const B: &str = "ffffffffffffffffffffffffffffffffffffffff";

    fn hash(s: &str) -> [u8; 20] {
        crate::access::list::parse_hex20(s.as_bytes()).unwrap()
    }

    /// A fresh directory, removed when the guard drops.
    struct TmpDir(PathBuf);

    impl Drop for TmpDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    impl std::ops::Deref for TmpDir {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    fn tmpdir(name: &str) -> TmpDir {
        let d = std::env::temp_dir().join(format!("shoal-access-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TmpDir(d)
    }

    fn list_config(path: &Path) -> AccessConfig {
        AccessConfig {
            list: Some((path.to_path_buf(), Mode::Allow)),
            ..Default::default()
        }
    }

    #[test]
    fn test_reader_sees_new_policy_after_store() {
        let h = PolicyHandle::new(Policy::default());
        let mut r = h.reader();
        assert!(r.get().torrent_allowed(&hash(B)));
        h.store(Policy::new(
            Some((Mode::Allow, Arc::new(AccessList::from_hashes([hash(A)])))),
            None,
            false,
        ));
        assert_eq!(h.generation(), 1);
        assert!(!r.get().torrent_allowed(&hash(B)));
        assert!(r.get().torrent_allowed(&hash(A)));
        // The old policy is retired until no reader holds it; now none does.
        assert_eq!(h.collect(), 0);
    }

    #[test]
    fn test_reader_on_another_thread_switches() {
        let h = PolicyHandle::new(Policy::default());
        let mut r = h.reader();
        let t = std::thread::spawn(move || {
            // Bounded: a reload must become visible within this many checks.
            for _ in 0..100_000_000u64 {
                if !r.get().torrent_allowed(&[9; 20]) {
                    return true;
                }
                std::hint::spin_loop();
            }
            false
        });
        h.store(Policy::new(
            Some((Mode::Deny, Arc::new(AccessList::from_hashes([[9; 20]])))),
            None,
            false,
        ));
        assert!(t.join().unwrap());
    }

    #[test]
    fn test_start_errors_name_file_and_line() {
        let d = tmpdir("start");
        let p = d.join("allow.txt");
        std::fs::write(&p, format!("{A}\nnot a hash\n")).unwrap();
        let e = Reloader::start(&list_config(&p)).unwrap_err();
        assert_eq!(e.line(), Some(2));
        let s = e.to_string();
        assert!(s.contains("allow.txt:2:") && !s.contains('\n'), "{s}");
        let missing = Reloader::start(&list_config(&d.join("nope"))).unwrap_err();
        assert!(missing.to_string().contains("nope"));
    }

    #[test]
    fn test_reload_replaces_and_keeps_old_on_error() {
        let d = tmpdir("reload");
        let p = d.join("allow.txt");
        write_atomically(&p, format!("{A}\n").as_bytes(), 0o644).unwrap();
        let mut rl = Reloader::start(&list_config(&p)).unwrap();
        let mut r = rl.handle().reader();
        assert!(r.get().torrent_allowed(&hash(A)));

        write_atomically(&p, format!("{B}\n").as_bytes(), 0o644).unwrap();
        let out = rl.reload_all();
        assert_eq!(out.list.unwrap().unwrap().entries, 1);
        assert!(r.get().torrent_allowed(&hash(B)) && !r.get().torrent_allowed(&hash(A)));

        write_atomically(&p, format!("{A}\n{}\n", &A[..12]).as_bytes(), 0o644).unwrap();
        let out = rl.reload_all();
        assert_eq!(out.failures(), 1);
        assert_eq!(out.list.unwrap().unwrap_err().line(), Some(2));
        assert!(r.get().torrent_allowed(&hash(B)) && !r.get().torrent_allowed(&hash(A)));
    }

    #[test]
    fn test_torn_write_is_an_error_not_a_half_list() {
        let d = tmpdir("torn");
        let p = d.join("allow.txt");
        let full = format!("{A}\n{B}\n");
        std::fs::write(&p, &full).unwrap();
        let mut rl = Reloader::start(&list_config(&p)).unwrap();
        // A writer rewriting in place, caught mid-line: truncate and write a prefix.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&p)
            .unwrap();
        f.write_all(&full.as_bytes()[..41 + 17]).unwrap();
        f.sync_all().unwrap();
        let out = rl.reload_all();
        assert_eq!(out.list.unwrap().unwrap_err().line(), Some(2));
        let mut r = rl.handle().reader();
        assert!(r.get().torrent_allowed(&hash(B)), "old list kept");
    }

    #[test]
    fn test_watcher_notices_a_change_once_it_holds_still() {
        let d = tmpdir("watch");
        let p = d.join("allow.txt");
        write_atomically(&p, format!("{A}\n").as_bytes(), 0o644).unwrap();
        let mut rl = Reloader::start(&list_config(&p)).unwrap();
        assert!(rl.poll().list.is_none(), "unchanged");
        write_atomically(&p, format!("{B}\n").as_bytes(), 0o644).unwrap();
        assert!(rl.poll().list.is_none(), "first sight: wait one poll");
        let out = rl.poll();
        assert_eq!(out.list.unwrap().unwrap().entries, 1);
        let mut r = rl.handle().reader();
        assert!(r.get().torrent_allowed(&hash(B)));
        assert!(rl.poll().list.is_none(), "loaded: no change any more");

        // A bad file is reported once, not on every poll.
        write_atomically(&p, b"zz\n", 0o644).unwrap();
        assert!(rl.poll().list.is_none());
        assert_eq!(rl.poll().failures(), 1);
        assert!(rl.poll().list.is_none());
        assert!(r.get().torrent_allowed(&hash(B)));
    }

    #[test]
    fn test_watcher_sees_in_place_change_of_length() {
        let d = tmpdir("inplace");
        let p = d.join("f");
        std::fs::write(&p, "a").unwrap();
        let mut w = FileWatch::new(&p, Some(Fingerprint::of_path(&p).unwrap()));
        assert!(!w.changed());
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"b")
            .unwrap();
        assert!(!w.changed());
        assert!(w.changed());
        std::fs::remove_file(&p).unwrap();
        assert!(!w.changed(), "a missing file keeps the old list");
    }

    #[test]
    fn test_keys_reload_keeps_list() {
        let d = tmpdir("keys");
        let lp = d.join("allow.txt");
        let kp = d.join("keys.txt");
        write_atomically(&lp, format!("{A}\n").as_bytes(), 0o644).unwrap();
        write_atomically(&kp, b"abcdefghijklmnopqrstuvwxyzABCDEF\n", 0o600).unwrap();
        let cfg = AccessConfig {
            list: Some((lp, Mode::Allow)),
            keys: Some(kp.clone()),
            private_scrape: false,
        };
        let mut rl = Reloader::start(&cfg).unwrap();
        let mut r = rl.handle().reader();
        let k = PresentedKey::Key(Key(*b"abcdefghijklmnopqrstuvwxyzABCDEF"));
        assert_eq!(r.get().check_announce(&hash(A), &k, 0), Ok(()));
        write_atomically(&kp, b"abcdefghijklmnopqrstuvwxyzABCDEF 10\n", 0o600).unwrap();
        assert!(rl.reload_all().keys.unwrap().is_ok());
        assert_eq!(
            r.get().check_announce(&hash(A), &k, 10),
            Err(Deny::UnknownKey)
        );
        assert_eq!(
            r.get().check_announce(&hash(B), &k, 0),
            Err(Deny::TorrentNotAllowed)
        );
    }
}
