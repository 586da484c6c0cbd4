//! Several shoal instances, one swarm view, through a Redis or Valkey stream
//! (`--cluster`).
//!
//! Every instance answers every request from its own map. The request path
//! only appends a 48-byte [`Record`], stamped by the instance's hybrid
//! logical clock ([`hlc`]), to its worker's [`Outbox`]; a publisher thread
//! takes the outboxes every [`PUBLISH_EVERY`] and appends them as signed
//! binary batches ([`batch`], [`auth`]) to the stream `<name>:log`, trimmed
//! to the last `--cluster-backlog`; a subscriber thread reads the stream
//! from where it left off and applies other instances' records to the local
//! map. Every instance also keeps its snapshot, with the stream position it
//! reflects, under a key with a TTL; a starting instance loads the newest
//! and reads the stream from there ([`state`]).
//!
//! Guarantees:
//! - **The request path stays local.** [`Outbox::push`] takes a mutex that
//!   only its own worker and the collecting thread touch (no lock shared
//!   between workers), never allocates (the buffer is preallocated and
//!   swapped whole) and never does I/O; a full buffer drops the record and
//!   counts it. Stamping is one relaxed load.
//! - **Every instance converges on each peer's latest event**, whatever order
//!   records arrive in: a record is applied only if it is newer than the
//!   latest event known for its peer ([`versions`]: a bounded table, stops
//!   leave tombstones there), and local events are noted before any remote
//!   batch is applied.
//! - **Only batches signed with the cluster's secret are applied**; others,
//!   replays and malformed messages are dropped whole and counted by reason.
//! - **Nothing is missed across a reconnect** within the backlog: the
//!   subscriber resumes from its last stream id, the publisher keeps what it
//!   could not send (up to [`PENDING_MAX`] records) and sends it when Redis
//!   is back.
//! - **Faults degrade to a single instance.** Redis down at start or later:
//!   the instance serves alone, logs once, retries with back-off (100 ms to
//!   5 s) and reports `shoal_cluster_connected 0`; when Redis returns, sync
//!   resumes.
//! - **Access-list and key changes made through the API replicate** over the
//!   same stream, ordered the same way, and each instance writes them to its
//!   own files ([`AccessSink`]).

pub mod auth;
pub mod batch;
pub mod hlc;
mod link;
mod publish;
pub mod state;
mod stream;
mod subscribe;
pub mod versions;

pub use auth::Secret;
pub use batch::{AccessRecord, Record};
pub use link::{start, Context};
pub use subscribe::apply;

use crate::access::Change;
use crate::stats::{metric, Series};
use crate::swarm::Swarm;
use crate::time::Now;
use crate::tracker::PeerEvent;
use hlc::Hlc;
use parking_lot::Mutex;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use versions::Versions;

/// How often the publisher sends what the workers queued.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(100);

/// Records a worker can queue between two publishes (48 bytes each, twice:
/// the buffer and its spare): 32768 covers 327 k announces/s per worker.
pub const OUTBOX_RECORDS: usize = 32 * 1024;

/// Records the publisher keeps while Redis is unreachable (12 MiB): at
/// 50 000 announces/s, five seconds. Beyond it records are dropped (counted).
pub const PENDING_MAX: usize = 256 * 1024;

/// Access changes waiting to be sent, at most.
pub const ACCESS_PENDING_MAX: usize = 4096;

/// Entries of the access version table (one per list entry or key changed
/// through the API recently).
const ACCESS_VERSIONS: usize = 16 * 1024;

/// Default `--cluster-backlog`.
pub const DEFAULT_BACKLOG: Duration = Duration::from_secs(120);

/// Default `--cluster-versions`.
pub const DEFAULT_VERSIONS: usize = 1 << 20;

/// `--cluster` and its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// `redis[s]://[USER:PASSWORD@]HOST:PORT[/DB]` (also a Valkey server:
    /// same protocol; `valkey[s]://` is an alias).
    pub url: String,
    /// The stream is `<name>:log`, the state keys `<name>:state:<id>`.
    pub name: String,
    /// How often this instance refreshes its snapshot in Redis (at least
    /// every half backlog, so a joining instance finds the stream from the
    /// newest snapshot on).
    pub state_interval: Duration,
    /// `--cluster-secret-file`: signs and checks every batch and state.
    pub secret: Option<Secret>,
    /// `--cluster-ca-file`: the PEM certificate(s) that a `rediss://`
    /// server's certificate must chain to, instead of the system's roots.
    pub ca: Option<Vec<u8>>,
    /// `--cluster-backlog`: how long the stream keeps batches (what a
    /// subscriber that reconnects, or an instance that joins, can catch up on).
    pub backlog: Duration,
    /// `--cluster-versions`: entries of the version table.
    pub versions: usize,
}

impl ClusterConfig {
    /// The settings for `url` and `name`, the rest at their defaults.
    pub fn new(url: &str, name: &str) -> ClusterConfig {
        ClusterConfig {
            url: url.into(),
            name: name.into(),
            state_interval: Duration::from_secs(30),
            secret: None,
            ca: None,
            backlog: DEFAULT_BACKLOG,
            versions: DEFAULT_VERSIONS,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        let tls = self.tls();
        if !tls && !self.url.starts_with("redis://") && !self.url.starts_with("valkey://") {
            return Err(format!(
                "--cluster: {:?} is not a redis[s]://[USER:PASSWORD@]HOST:PORT[/DB] URL",
                link::redacted(&self.url)
            ));
        }
        if self.ca.is_some() && !tls {
            return Err("--cluster-ca-file needs a rediss:// URL".into());
        }
        if self.name.is_empty() || self.name.len() > 200 {
            return Err("--cluster-name must be 1 to 200 bytes".into());
        }
        link::client(self).map_err(|e| format!("--cluster: {e}"))?;
        if self.state_interval < Duration::from_secs(1) {
            return Err("--state-interval must be at least 1 second".into());
        }
        if !(Duration::from_secs(10)..=Duration::from_secs(86_400)).contains(&self.backlog) {
            return Err("--cluster-backlog must be 10 to 86400 seconds".into());
        }
        if !(1024..=1 << 28).contains(&self.versions) {
            return Err("--cluster-versions must be 1024 to 268435456".into());
        }
        Ok(())
    }

    /// Whether the URL asks for TLS.
    pub fn tls(&self) -> bool {
        self.url.starts_with("rediss://") || self.url.starts_with("valkeys://")
    }

    /// The Redis URL the client takes (`valkey[s]://` is an alias).
    fn redis_url(&self) -> String {
        for (alias, scheme) in [("valkey://", "redis://"), ("valkeys://", "rediss://")] {
            if let Some(rest) = self.url.strip_prefix(alias) {
                return format!("{scheme}{rest}");
            }
        }
        self.url.clone()
    }

    /// The stream every instance appends to and reads.
    fn stream_key(&self) -> String {
        format!("{}:log", self.name)
    }

    /// Key under which instance `instance` stores its state.
    fn state_key(&self, instance: u64) -> String {
        format!("{}:state:{instance:016x}", self.name)
    }

    fn state_pattern(&self) -> String {
        format!("{}:state:*", self.name)
    }

    /// How often the state is written: `state_interval`, and at least every
    /// half backlog.
    fn state_period(&self) -> Duration {
        self.state_interval.min(self.backlog / 2)
    }

    /// Batches stamped longer ago than this are refused as replays: the
    /// backlog, and a minute for clock differences.
    fn replay_window_ms(&self) -> u64 {
        self.backlog.as_millis() as u64 + 60_000
    }
}

/// Where other instances' access changes are applied: this instance's
/// policy and files (set by the server when there are access files).
pub trait AccessSink: Send + Sync + fmt::Debug {
    /// Apply `change`; whether it changed anything, or why it failed.
    fn apply(&self, change: &Change) -> Result<bool, String>;
}

/// One worker's buffer: its own lock (the worker and the collecting thread
/// are the only ones that take it) on its own cache lines.
#[derive(Debug)]
#[repr(align(128))]
struct Slot {
    queue: Mutex<Vec<Record>>,
    /// Records dropped because the buffer was full (written by its worker only).
    dropped: AtomicU64,
}

/// A worker's handle on its buffer.
#[derive(Debug, Clone)]
pub struct Outbox {
    status: Arc<Status>,
    slot: usize,
}

impl Outbox {
    /// Queue one record for the cluster, stamped as happening at `now`: no
    /// allocation, no I/O, a lock only this worker and the collector take.
    /// A full buffer drops it (counted).
    #[inline]
    pub fn push(&self, mut r: Record, now: Now) {
        let Some(slot) = self.status.slots.get(self.slot) else {
            return;
        };
        r.stamp = self.status.hlc.stamp(now);
        let mut q = slot.queue.lock();
        if q.len() < OUTBOX_RECORDS {
            q.push(r);
        } else {
            drop(q);
            slot.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What the publisher and the subscriber share, under one lock: the local
/// records collected and not yet sent, and the version tables.
#[derive(Debug)]
struct Shared {
    /// Local records collected, oldest first, not yet sent.
    pending: Vec<Record>,
    /// The swap buffer for a worker's outbox.
    spare: Vec<Record>,
    /// The records of one collection, and those of them to apply again
    /// (kept between collections so they do not allocate once grown).
    fresh: Vec<Record>,
    again: Vec<usize>,
    versions: Versions,
    /// Access changes made here, not yet sent.
    access: Vec<AccessRecord>,
    access_versions: Versions,
}

/// Why a record was not applied (the `reason` label of the metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// A newer event is known for its peer (or entry).
    Superseded,
    /// Older than what the version table can still judge.
    Stale,
    /// Stamped more than [`hlc::MAX_AHEAD_MS`] ahead of this instance's clock.
    Future,
}

impl Skip {
    pub const ALL: [Skip; 3] = [Skip::Superseded, Skip::Stale, Skip::Future];

    pub fn as_str(self) -> &'static str {
        match self {
            Skip::Superseded => "superseded",
            Skip::Stale => "stale",
            Skip::Future => "future",
        }
    }
}

/// What became of access changes (the `outcome` label of the metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessOutcome {
    /// Made here through the API and sent.
    Sent,
    /// Another instance's, applied here (policy and file).
    Applied,
    /// Another instance's, already in force here.
    Unchanged,
    /// Another instance's, older than a change known here.
    Superseded,
    /// Another instance's, not applied: no access file here, or the write failed.
    Failed,
    /// Made here, but the queue was full or Redis unreachable too long.
    Lost,
}

impl AccessOutcome {
    pub const ALL: [AccessOutcome; 6] = [
        AccessOutcome::Sent,
        AccessOutcome::Applied,
        AccessOutcome::Unchanged,
        AccessOutcome::Superseded,
        AccessOutcome::Failed,
        AccessOutcome::Lost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AccessOutcome::Sent => "sent",
            AccessOutcome::Applied => "applied",
            AccessOutcome::Unchanged => "unchanged",
            AccessOutcome::Superseded => "superseded",
            AccessOutcome::Failed => "failed",
            AccessOutcome::Lost => "lost",
        }
    }
}

/// The cluster's shared state: the workers' buffers, the clock, the link's
/// health and its counters (read by `/metrics` and `/health`).
#[derive(Debug)]
pub struct Status {
    slots: Box<[Slot]>,
    /// Random per process: tells our batches and state key from others'.
    pub instance: u64,
    pub hlc: Hlc,
    shared: Mutex<Shared>,
    /// The publisher's connection is up.
    pub_up: AtomicBool,
    /// The subscriber is reading the stream.
    sub_up: AtomicBool,
    /// "Redis unreachable" was logged and "reachable" not yet: one line per
    /// outage for the instance, not one per thread or retry.
    down_logged: AtomicBool,
    /// Failed attempts to reach Redis (connect, TLS, authentication) and
    /// lost connections.
    pub connect_failures: AtomicU64,
    pub published: AtomicU64,
    /// Records dropped because Redis was unreachable longer than
    /// [`PENDING_MAX`] records.
    pub lost: AtomicU64,
    pub batches_sent: AtomicU64,
    pub batches_received: AtomicU64,
    pub applied: AtomicU64,
    /// Records not applied, by [`Skip`] (in `Skip::ALL` order).
    skipped: [AtomicU64; 3],
    /// Batches dropped, by [`batch::BatchError`] (in `BatchError::ALL` order).
    rejected: [AtomicU64; 8],
    /// Batches a sender numbered but we never got (gaps in its sequence).
    pub missed: AtomicU64,
    /// Access changes, by [`AccessOutcome`].
    access: [AtomicU64; 6],
    pub state_writes: AtomicU64,
    /// Peers loaded from other instances' state at start.
    pub state_loaded_peers: AtomicU64,
    /// The stream id of the last entry the subscriber applied: what a state
    /// written now reflects (`ZERO` before the first).
    position: Mutex<stream::StreamId>,
}

impl Status {
    /// State for `workers` workers, each with a preallocated buffer, and a
    /// version table of the default size.
    pub fn new(workers: usize) -> Status {
        Status::with_versions(workers, DEFAULT_VERSIONS)
    }

    /// State for `workers` workers as `cfg` asks.
    pub fn for_config(workers: usize, cfg: &ClusterConfig) -> Status {
        Status::with_versions(workers, cfg.versions)
    }

    fn with_versions(workers: usize, versions: usize) -> Status {
        Status {
            slots: (0..workers)
                .map(|_| Slot {
                    queue: Mutex::new(Vec::with_capacity(OUTBOX_RECORDS)),
                    dropped: AtomicU64::new(0),
                })
                .collect(),
            instance: fastrand::u64(1..),
            hlc: Hlc::default(),
            shared: Mutex::new(Shared {
                pending: Vec::new(),
                spare: Vec::with_capacity(OUTBOX_RECORDS),
                fresh: Vec::new(),
                again: Vec::new(),
                versions: Versions::new(versions),
                access: Vec::new(),
                access_versions: Versions::new(ACCESS_VERSIONS),
            }),
            pub_up: AtomicBool::new(false),
            sub_up: AtomicBool::new(false),
            down_logged: AtomicBool::new(false),
            connect_failures: AtomicU64::new(0),
            published: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            batches_sent: AtomicU64::new(0),
            batches_received: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            skipped: Default::default(),
            rejected: Default::default(),
            missed: AtomicU64::new(0),
            access: Default::default(),
            state_writes: AtomicU64::new(0),
            state_loaded_peers: AtomicU64::new(0),
            position: Mutex::new(stream::StreamId::ZERO),
        }
    }

    /// Worker `i`'s handle.
    pub fn outbox(self: &Arc<Self>, i: usize) -> Outbox {
        Outbox {
            status: Arc::clone(self),
            slot: i,
        }
    }

    /// Both directions of the link are up.
    pub fn connected(&self) -> bool {
        self.pub_up.load(Ordering::Relaxed) && self.sub_up.load(Ordering::Relaxed)
    }

    /// Records dropped because a worker's buffer was full.
    pub fn dropped(&self) -> u64 {
        self.slots
            .iter()
            .map(|s| s.dropped.load(Ordering::Relaxed))
            .sum()
    }

    pub fn rejected(&self, e: batch::BatchError) -> u64 {
        self.rejected[e.index()].load(Ordering::Relaxed)
    }

    fn reject(&self, e: batch::BatchError) {
        self.rejected[e.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn skipped(&self, s: Skip) -> u64 {
        self.skipped[s as usize].load(Ordering::Relaxed)
    }

    fn skip(&self, s: Skip) {
        self.skipped[s as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn access_changes(&self, o: AccessOutcome) -> u64 {
        self.access[o as usize].load(Ordering::Relaxed)
    }

    fn count_access(&self, o: AccessOutcome) {
        self.count_access_n(o, 1);
    }

    fn count_access_n(&self, o: AccessOutcome, n: usize) {
        self.access[o as usize].fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Swap worker `i`'s buffer with `spare` (empty, preallocated): the
    /// worker keeps appending to `spare` while the caller drains the old one.
    /// The collector's side (public for benches and tests).
    pub fn take(&self, i: usize, spare: &mut Vec<Record>) {
        if let Some(slot) = self.slots.get(i) {
            std::mem::swap(&mut *slot.queue.lock(), spare);
        }
    }

    fn workers(&self) -> usize {
        self.slots.len()
    }

    /// Move the workers' records into `sh.pending`, noting the latest
    /// record of each peer as this instance's latest event for it. Where
    /// that record follows a record of another instance already applied
    /// here, it is applied to the swarm again (without its `completed`,
    /// counted once already): the remote record may have been applied after
    /// the local event changed the map, and the local event is the newer.
    /// Only the latest local record of a peer is applied again: an earlier
    /// one would undo what followed it (an announce undoing a stop).
    fn collect(&self, sh: &mut Shared, swarm: &Swarm, now: u32) {
        let Shared {
            pending,
            spare,
            fresh,
            again,
            versions,
            ..
        } = sh;
        for i in 0..self.workers() {
            self.take(i, spare);
            fresh.append(spare);
        }
        if fresh.is_empty() {
            return;
        }
        // Note every record (the table keeps the latest); remember those
        // that follow an older record of another instance.
        again.clear();
        for (i, r) in fresh.iter().enumerate() {
            let prev = versions.note(&r.key(), r.stamp, self.instance);
            if prev.is_some_and(|(s, o)| o != self.instance && (s, o) < (r.stamp, self.instance)) {
                again.push(i);
            }
        }
        // Of those, apply again the ones still the latest of their peer: a
        // later local record of the peer is newer (or, at the same stamp,
        // later) and already in the map.
        for &i in again.iter() {
            let r = fresh[i];
            let key = r.key();
            let latest = versions.get(&key) == Some((r.stamp, self.instance))
                && !fresh[i + 1..]
                    .iter()
                    .any(|l| l.stamp == r.stamp && l.key() == key);
            if latest {
                apply(
                    swarm,
                    &Record {
                        completed: false,
                        ..r
                    },
                    now,
                );
            }
        }
        let room = PENDING_MAX.saturating_sub(pending.len());
        if fresh.len() > room {
            self.lost
                .fetch_add((fresh.len() - room) as u64, Ordering::Relaxed);
            fresh.truncate(room);
        }
        pending.append(fresh);
    }

    /// An access change made here through the API: noted as the latest for
    /// its entry, queued for the publisher.
    pub fn queue_access(&self, change: Change) {
        let stamp = self.hlc.stamp_wall();
        let r = AccessRecord { stamp, change };
        let mut sh = self.shared.lock();
        sh.access_versions.note(&r.key(), stamp, self.instance);
        if sh.access.len() < ACCESS_PENDING_MAX {
            sh.access.push(r);
        } else {
            drop(sh);
            self.count_access(AccessOutcome::Lost);
            log::warn!("cluster: too many access changes waiting for Redis; one was not sent");
        }
    }
}

impl From<PeerEvent> for Record {
    fn from(e: PeerEvent) -> Record {
        Record {
            info_hash: e.info_hash,
            addr: e.addr,
            role: e.role,
            completed: e.completed,
            stamp: 0,
        }
    }
}

/// The cluster link's series, in `/metrics` while it runs.
impl Series for Status {
    fn render(&self, out: &mut String) -> std::fmt::Result {
        let c = self;
        use batch::BatchError;
        use std::sync::atomic::Ordering::Relaxed;
        metric(
            out,
            "shoal_cluster_connected",
            "gauge",
            "1 while both the publisher and the subscriber are connected to Redis.",
            [([], u64::from(c.connected()))],
        )?;
        metric(
            out,
            "shoal_cluster_connection_failures_total",
            "counter",
            "Failed attempts to reach Redis (connect, TLS, authentication) and lost connections.",
            [([], c.connect_failures.load(Relaxed))],
        )?;
        metric(
            out,
            "shoal_cluster_records_total",
            "counter",
            "Announce records this instance queued for the cluster, by what became of them.",
            [
                ([("outcome", "published")], c.published.load(Relaxed)),
                ([("outcome", "dropped_full")], c.dropped()),
                ([("outcome", "lost_disconnected")], c.lost.load(Relaxed)),
            ],
        )?;
        metric(
            out,
            "shoal_cluster_records_applied_total",
            "counter",
            "Other instances' announce records applied to this instance's map.",
            [([], c.applied.load(Relaxed))],
        )?;
        metric(
            out,
            "shoal_cluster_records_skipped_total",
            "counter",
            "Other instances' records not applied, by reason (superseded: a newer event of the peer is known).",
            Skip::ALL.map(|s| ([("reason", s.as_str())], c.skipped(s))),
        )?;
        metric(
            out,
            "shoal_cluster_batches_total",
            "counter",
            "Cluster batches, by direction.",
            [
                ([("direction", "sent")], c.batches_sent.load(Relaxed)),
                (
                    [("direction", "received")],
                    c.batches_received.load(Relaxed),
                ),
            ],
        )?;
        metric(
            out,
            "shoal_cluster_batches_rejected_total",
            "counter",
            "Messages on the cluster stream dropped whole, by reason.",
            BatchError::ALL.map(|e| ([("reason", e.as_str())], c.rejected(e))),
        )?;
        metric(
            out,
            "shoal_cluster_batches_missed_total",
            "counter",
            "Batches other instances numbered that never arrived (gaps in their sequence).",
            [([], c.missed.load(Relaxed))],
        )?;
        metric(
            out,
            "shoal_cluster_access_changes_total",
            "counter",
            "Access-list and key changes made through the API, sent or received, by outcome.",
            AccessOutcome::ALL.map(|o| ([("outcome", o.as_str())], c.access_changes(o))),
        )?;
        metric(
            out,
            "shoal_cluster_state_writes_total",
            "counter",
            "Snapshots of this instance's swarm stored in Redis for joining instances.",
            [([], c.state_writes.load(Relaxed))],
        )?;
        metric(
            out,
            "shoal_cluster_state_loaded_peers",
            "gauge",
            "Peers loaded from other instances' state at start.",
            [([], c.state_loaded_peers.load(Relaxed))],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::swarm::Role;
    use std::net::SocketAddr;

    fn rec(n: u8) -> Record {
        Record {
            info_hash: [n; 20],
            addr: SocketAddr::from(([10, 0, 0, n], 6881)),
            role: Role::Leecher,
            completed: false,
            stamp: 0,
        }
    }

    #[test]
    fn a_full_outbox_drops_and_counts() {
        let s = Arc::new(Status::new(2));
        let (a, b) = (s.outbox(0), s.outbox(1));
        let now = Now::from_ms(5);
        for _ in 0..OUTBOX_RECORDS + 3 {
            a.push(rec(1), now);
        }
        b.push(rec(2), now);
        assert_eq!(s.dropped(), 3);
        let mut spare = Vec::with_capacity(OUTBOX_RECORDS);
        s.take(0, &mut spare);
        assert_eq!(spare.len(), OUTBOX_RECORDS);
        assert!(s.slots[0].queue.lock().is_empty(), "swapped whole");
        assert!(s.slots[0].queue.lock().capacity() >= OUTBOX_RECORDS);
        s.take(1, &mut Vec::new());
        a.push(rec(1), now);
        assert_eq!(s.dropped(), 3, "room again after the swap");
    }

    #[test]
    fn records_are_stamped_by_the_instance_clock() {
        let s = Arc::new(Status::new(1));
        s.hlc.anchor_at(1_000_000, Now::from_ms(0));
        s.outbox(0).push(rec(1), Now::from_ms(250));
        s.hlc.observe(hlc::at_ms(2_000_000));
        s.outbox(0).push(rec(1), Now::from_ms(260));
        let mut got = Vec::new();
        s.take(0, &mut got);
        assert_eq!(got[0].stamp, hlc::at_ms(1_000_250));
        assert_eq!(
            got[1].stamp,
            hlc::at_ms(2_000_000) + 1,
            "after what it received"
        );
    }

    #[test]
    fn config_is_checked() {
        let ok = ClusterConfig::new("redis://127.0.0.1:6379/0", "shoal");
        assert!(ok.validate().is_ok());
        for bad in ["http://x", "redis:/x"] {
            assert!(ClusterConfig::new(bad, "s").validate().is_err(), "{bad}");
        }
        let v = ClusterConfig::new("valkey://h:1", "s");
        assert_eq!(v.redis_url(), "redis://h:1");
        let v = ClusterConfig::new("valkeys://u:p@h:1", "s");
        assert_eq!(v.redis_url(), "rediss://u:p@h:1");
        assert!(v.tls() && v.validate().is_ok());
        let ca = ClusterConfig {
            ca: Some(b"-----BEGIN CERTIFICATE-----\n".to_vec()),
            ..ok.clone()
        };
        assert!(ca.validate().unwrap_err().contains("rediss://"));
        let err = ClusterConfig::new("http://admin:hunter2@h:1", "s")
            .validate()
            .unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(ClusterConfig {
            backlog: Duration::from_secs(5),
            ..ok.clone()
        }
        .validate()
        .is_err());
        assert_eq!(ok.state_key(255), "shoal:state:00000000000000ff");
        assert_eq!(ok.stream_key(), "shoal:log");
        let fast = ClusterConfig {
            state_interval: Duration::from_secs(300),
            ..ok.clone()
        };
        assert_eq!(fast.state_period(), DEFAULT_BACKLOG / 2);
    }
}
