//! Warm restart (`--state-file PATH`): the start-up load and the writes of the
//! swarm's snapshot while serving and at exit. The file format is
//! [`crate::snapshot`]'s; copying the map out and back is
//! [`crate::swarm::Swarm::export_with`] / [`crate::swarm::Swarm::import`].
//!
//! Guarantees:
//! - **Start-up decides.** [`StateFile::open`] runs while the server is
//!   assembled, before any worker: a path that cannot be written is a
//!   start-up error (not a
//!   surprise at the first SIGTERM); a file that cannot be read is one too; a
//!   corrupt, truncated, foreign or future-version file is logged once, moved
//!   aside to `PATH.corrupt-<unix time>` and shoal starts empty. A valid file
//!   is loaded whole before the first request is served.
//! - **Ids survive.** The connection-id key is saved in the file and restored,
//!   and with a state file the ids' issue times count Unix seconds (the
//!   tracker clock plus the Unix time at its second 0), so an id handed out
//!   before a restart is accepted after it for the rest of its lifetime.
//! - **Never in a worker loop.** Periodic writes run on their own thread
//!   ([`Writer`]); the final write runs after the workers have stopped. Writes
//!   are serialised (one temporary file at a time), each copies one shard at a
//!   time out of the map and writes only after releasing its lock.
//! - **Logged and counted, never the key.** One info line per load and per
//!   write (counts, bytes, milliseconds); failures are errors in the log and
//!   `shoal_state_write_failures_total`, and the previous file stays intact.

use crate::snapshot::{self, Header, SnapshotError, SnapshotFile};
use crate::stats::StateCounters;
use crate::swarm::Imported;
use crate::time::{unix_now, Clock, Now};
use crate::tracker::connid::ConnectionIds;
use crate::tracker::Tracker;
use parking_lot::Mutex;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// `--state-file` and `--state-interval`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateConfig {
    pub path: PathBuf,
    /// Period of the writes while running; `None` = at exit only.
    pub interval: Option<Duration>,
}

/// What the writes need of the server: the tracker (its map and
/// connection-id key), its clock, and the state file's counters.
#[derive(Debug, Clone)]
pub struct Context {
    pub tracker: Arc<Tracker>,
    pub clock: Clock,
    pub counters: Arc<StateCounters>,
}

/// Why the state file stopped the start.
#[derive(Debug)]
pub enum OpenError {
    /// The file's directory cannot take a new file.
    Unwritable(PathBuf, io::Error),
    /// The file exists and cannot be read.
    Unreadable(PathBuf, SnapshotError),
    /// The file is corrupt and cannot be moved aside.
    CannotMoveAside(PathBuf, SnapshotError, io::Error),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Unwritable(p, e) => {
                write!(f, "--state-file {}: cannot write there: {e}", p.display())
            }
            OpenError::Unreadable(p, e) => write!(f, "--state-file {}: {e}", p.display()),
            OpenError::CannotMoveAside(p, e, m) => write!(
                f,
                "--state-file {}: {e}, and it cannot be moved aside: {m}",
                p.display()
            ),
        }
    }
}

impl std::error::Error for OpenError {}

/// What the start-up load did, for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadStats {
    pub imported: Imported,
    /// Peers in the file that had expired by the time it was loaded.
    pub expired: u64,
    /// Whether a file was moved aside as corrupt.
    pub refused: bool,
}

/// One write's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub torrents: u64,
    pub peers: u64,
    pub bytes: u64,
    pub elapsed: Duration,
}

/// The configured state file of a server.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    interval: Option<Duration>,
    /// Held for the whole of a write: the periodic and the final write never
    /// share the temporary file.
    writing: Mutex<()>,
    loaded: LoadStats,
}

impl StateFile {
    /// Start-up: checks that `path` can be written, loads it if present into
    /// `tracker` (swarm and connection-id key), with the tracker clock at
    /// `now`. See the module docs for what each failure does.
    pub fn open(
        config: &StateConfig,
        tracker: &mut Tracker,
        now: Now,
    ) -> Result<StateFile, OpenError> {
        let (path, interval) = (config.path.as_path(), config.interval);
        let shown = path.display();
        snapshot::check_writable(path).map_err(|e| OpenError::Unwritable(path.into(), e))?;
        let now = now.secs();
        let unix = unix_now();
        let timeout = tracker.config().peer_timeout;
        let lifetime = tracker.config().connection_id_lifetime;
        // Issue times in Unix seconds: they read the same in the next process.
        let epoch = (unix as u32).wrapping_sub(now);
        let started = Instant::now();
        let mut loaded = LoadStats::default();
        let key = match snapshot::load(path, unix, timeout) {
            Ok(Some(mut file)) => {
                let key = file.header().connid_key;
                loaded.imported = tracker.swarm().import(&mut file, now);
                loaded.expired = file.dropped_peers();
                let i = loaded.imported;
                log::info!(
                    "state loaded from {shown}: {} torrents, {} peers ({} HTTP peer ids), {} peers expired during {} s down, in {} ms",
                    i.torrents,
                    i.peers,
                    i.peer_ids,
                    loaded.expired,
                    file.downtime(),
                    started.elapsed().as_millis()
                );
                if i.not_stored > 0 {
                    log::warn!(
                        "{} peers of the state file not stored: the map is full (--max-peers)",
                        i.not_stored
                    );
                }
                Some(key)
            }
            Ok(None) => {
                log::info!("no state file at {shown} yet: starting empty");
                None
            }
            Err(e) if e.is_corrupt() => {
                let to = snapshot::move_aside(path, unix)
                    .map_err(|m| OpenError::CannotMoveAside(path.into(), e, m))?;
                log::warn!(
                    "state file {shown} refused ({e}): moved aside to {}, starting empty",
                    to.display()
                );
                loaded.refused = true;
                None
            }
            Err(e) => return Err(OpenError::Unreadable(path.into(), e)),
        };
        let ids = match key {
            Some(k) => ConnectionIds::with_key(k, lifetime),
            None => ConnectionIds::new(lifetime),
        };
        tracker.set_connection_ids(ids.with_epoch(epoch));
        Ok(StateFile {
            path: path.to_path_buf(),
            interval,
            writing: Mutex::new(()),
            loaded,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn loaded(&self) -> LoadStats {
        self.loaded
    }

    /// Puts the load's figures into the state counters (before serving).
    pub fn record_load(&self, c: &StateCounters) {
        c.loaded_torrents.set(self.loaded.imported.torrents);
        c.loaded_peers.set(self.loaded.imported.peers);
    }

    /// Writes the snapshot of the tracker's swarm now (atomically replacing
    /// the file). Not logged or counted: see [`StateFile::write_logged`].
    pub fn write(&self, ctx: &Context) -> io::Result<Written> {
        let _one_at_a_time = self.writing.lock();
        let started = Instant::now();
        let now = ctx.clock.now().secs();
        let header = Header {
            written_unix: unix_now(),
            peer_timeout: ctx.tracker.config().peer_timeout,
            connid_key: ctx.tracker.connection_id_key(),
        };
        let mut file = SnapshotFile::create(&self.path, &header)?;
        ctx.tracker
            .swarm()
            .export_with(now, |rec| file.write_torrent(rec))?;
        let (torrents, peers) = file.commit()?;
        let bytes = std::fs::metadata(&self.path).map_or(0, |m| m.len());
        Ok(Written {
            torrents,
            peers,
            bytes,
            elapsed: started.elapsed(),
        })
    }

    /// [`StateFile::write`] with one log line and the metrics; `why` says
    /// which write it is ("periodic", "at exit").
    pub fn write_logged(&self, ctx: &Context, why: &str) -> Option<Written> {
        let c = &ctx.counters;
        match self.write(ctx) {
            Ok(w) => {
                c.writes.incr();
                c.last_write_micros.set(w.elapsed.as_micros() as u64);
                c.last_write_bytes.set(w.bytes);
                c.last_write_peers.set(w.peers);
                log::info!(
                    "state written to {} ({why}): {} torrents, {} peers, {} bytes in {} ms",
                    self.path.display(),
                    w.torrents,
                    w.peers,
                    w.bytes,
                    w.elapsed.as_millis()
                );
                Some(w)
            }
            Err(e) => {
                c.write_failures.incr();
                log::error!(
                    "cannot write the state file {} ({why}): {e}; the previous one stays",
                    self.path.display()
                );
                None
            }
        }
    }
}

/// The state writer of a running server: a thread for the periodic writes
/// (none with `--state-interval 0`), and the final write at [`Writer::finish`].
#[derive(Debug)]
pub struct Writer {
    file: Arc<StateFile>,
    ctx: Context,
    thread: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
}

impl Writer {
    /// Starts the periodic writes of `file`.
    pub fn spawn(file: StateFile, ctx: Context) -> io::Result<Writer> {
        let file = Arc::new(file);
        let thread = match file.interval {
            None => None,
            Some(every) => {
                let (tx, rx) = mpsc::channel::<()>();
                let (f, c) = (Arc::clone(&file), ctx.clone());
                let handle = std::thread::Builder::new()
                    .name("shoal-state".into())
                    .spawn(move || {
                        // Dropping the sender (at `finish`) ends the wait.
                        while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                            f.write_logged(&c, "periodic");
                        }
                    })?;
                Some((tx, handle))
            }
        };
        Ok(Writer { file, ctx, thread })
    }

    /// Stops the periodic writes (waiting for one under way) and writes the
    /// final snapshot. Call after the workers have stopped.
    pub fn finish(self) {
        if let Some((tx, handle)) = self.thread {
            drop(tx);
            if handle.join().is_err() {
                log::error!("the state writer thread panicked");
            }
        }
        self.file.write_logged(&self.ctx, "at exit");
    }
}
