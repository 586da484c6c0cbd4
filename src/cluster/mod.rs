//! Several shoal instances, one swarm view, through Redis or Valkey pub/sub
//! (`--cluster`).
//!
//! Every instance answers every request from its own map. The request path
//! only appends a 40-byte [`Record`] to its worker's [`Outbox`]; a publisher
//! thread takes the outboxes every [`PUBLISH_EVERY`] and publishes them as
//! binary batches ([`batch`]) on the channel `--cluster-name`; a subscriber
//! thread applies other instances' batches to the local map. Every instance
//! also keeps its snapshot (the warm-restart format) under a key with a TTL,
//! and a starting instance loads them ([`state`]).
//!
//! Guarantees:
//! - **The request path stays local.** [`Outbox::push`] takes a mutex that
//!   only its own worker and the publisher touch (no lock shared between
//!   workers), never allocates (the buffer is preallocated and swapped whole by
//!   the publisher) and never does I/O; a full buffer drops the record and
//!   counts it.
//! - **Faults degrade to a single instance.** Redis down at start or later:
//!   the instance serves alone, logs once, retries with back-off (100 ms to
//!   5 s) and reports `shoal_cluster_connected 0`; records taken while it is
//!   down are counted as lost; when Redis returns, sync resumes.
//! - **Bad batches are dropped whole** and counted by reason; own batches are
//!   ignored.
//! - Remote peers are stored like local ones: handed out, expired by the same
//!   `--peer-timeout`, removed by `stopped`. A `completed` counts once per
//!   peer cluster-wide, by the swarm's rule (a peer that was not yet a seeder
//!   there), which every instance applies to the same stream of records.

pub mod batch;
mod link;
pub mod state;

pub use batch::Record;
pub use link::{apply, join_state, spawn, Context};

use crate::stats::{metric, Series};
use crate::tracker::PeerEvent;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often the publisher sends what the workers queued.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(100);

/// Records a worker can queue between two publishes (40 bytes each, twice:
/// the buffer and its spare): 32768 covers 327 k announces/s per worker.
pub const OUTBOX_RECORDS: usize = 32 * 1024;

/// `--cluster` and its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// `redis://HOST:PORT[/DB]` (also a Valkey server: same protocol).
    pub url: String,
    /// The pub/sub channel, and the prefix of the state keys.
    pub name: String,
    /// How often this instance refreshes its snapshot in Redis.
    pub state_interval: Duration,
}

impl ClusterConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.url.starts_with("redis://") || self.url.starts_with("valkey://")) {
            return Err(format!(
                "--cluster: {:?} is not a redis://HOST:PORT[/DB] URL",
                self.url
            ));
        }
        if self.name.is_empty() || self.name.len() > 200 {
            return Err("--cluster-name must be 1 to 200 bytes".into());
        }
        redis::Client::open(self.redis_url()).map_err(|e| format!("--cluster: {e}"))?;
        if self.state_interval < Duration::from_secs(1) {
            return Err("--state-interval must be at least 1 second".into());
        }
        Ok(())
    }

    /// The Redis URL the client takes (`valkey://` is an alias of `redis://`).
    fn redis_url(&self) -> String {
        match self.url.strip_prefix("valkey://") {
            Some(rest) => format!("redis://{rest}"),
            None => self.url.clone(),
        }
    }

    /// Key under which instance `instance` stores its state.
    fn state_key(&self, instance: u64) -> String {
        format!("{}:state:{instance:016x}", self.name)
    }

    fn state_pattern(&self) -> String {
        format!("{}:state:*", self.name)
    }
}

/// One worker's buffer: its own lock (the worker and the publisher are the
/// only ones that take it) on its own cache lines.
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
    /// Queue one record for the cluster: no allocation, no I/O, a lock only
    /// this worker and the publisher take. A full buffer drops it (counted).
    #[inline]
    pub fn push(&self, r: Record) {
        let Some(slot) = self.status.slots.get(self.slot) else {
            return;
        };
        let mut q = slot.queue.lock();
        if q.len() < OUTBOX_RECORDS {
            q.push(r);
        } else {
            drop(q);
            slot.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The cluster's shared state: the workers' buffers, the link's health and
/// its counters (read by `/metrics` and `/health`).
#[derive(Debug)]
pub struct Status {
    slots: Box<[Slot]>,
    /// Random per process: tells our batches and state key from others'.
    pub instance: u64,
    /// The publisher's connection is up.
    pub_up: AtomicBool,
    /// The subscriber is subscribed.
    sub_up: AtomicBool,
    /// "Redis unreachable" was logged and "reachable" not yet: one line per
    /// outage for the instance, not one per thread or retry.
    down_logged: AtomicBool,
    pub published: AtomicU64,
    /// Records taken from the buffers while Redis was unreachable.
    pub lost: AtomicU64,
    pub batches_sent: AtomicU64,
    pub batches_received: AtomicU64,
    pub applied: AtomicU64,
    /// Batches dropped, by [`batch::BatchError`] (in `BatchError::ALL` order).
    pub rejected: [AtomicU64; 5],
    /// Batches a sender numbered but we never got (gaps in its sequence).
    pub missed: AtomicU64,
    pub state_writes: AtomicU64,
    /// Peers loaded from other instances' state at start.
    pub state_loaded_peers: AtomicU64,
}

impl Status {
    /// State for `workers` workers, each with a preallocated buffer.
    pub fn new(workers: usize) -> Status {
        Status {
            slots: (0..workers)
                .map(|_| Slot {
                    queue: Mutex::new(Vec::with_capacity(OUTBOX_RECORDS)),
                    dropped: AtomicU64::new(0),
                })
                .collect(),
            instance: fastrand::u64(1..),
            pub_up: AtomicBool::new(false),
            sub_up: AtomicBool::new(false),
            down_logged: AtomicBool::new(false),
            published: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            batches_sent: AtomicU64::new(0),
            batches_received: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            rejected: Default::default(),
            missed: AtomicU64::new(0),
            state_writes: AtomicU64::new(0),
            state_loaded_peers: AtomicU64::new(0),
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
        let i = batch::BatchError::ALL
            .iter()
            .position(|&x| x == e)
            .unwrap_or(0);
        self.rejected[i].load(Ordering::Relaxed)
    }

    fn reject(&self, e: batch::BatchError) {
        if let Some(i) = batch::BatchError::ALL.iter().position(|&x| x == e) {
            self.rejected[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Swap worker `i`'s buffer with `spare` (empty, preallocated): the
    /// worker keeps appending to `spare` while the caller drains the old one.
    /// The publisher's side (public for benches and tests).
    pub fn take(&self, i: usize, spare: &mut Vec<Record>) {
        if let Some(slot) = self.slots.get(i) {
            std::mem::swap(&mut *slot.queue.lock(), spare);
        }
    }

    fn workers(&self) -> usize {
        self.slots.len()
    }
}

impl From<PeerEvent> for Record {
    fn from(e: PeerEvent) -> Record {
        Record {
            info_hash: e.info_hash,
            addr: e.addr,
            role: e.role,
            completed: e.completed,
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
            "Messages on the cluster channel dropped whole, by reason.",
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
        }
    }

    #[test]
    fn a_full_outbox_drops_and_counts() {
        let s = Arc::new(Status::new(2));
        let (a, b) = (s.outbox(0), s.outbox(1));
        for _ in 0..OUTBOX_RECORDS + 3 {
            a.push(rec(1));
        }
        b.push(rec(2));
        assert_eq!(s.dropped(), 3);
        let mut spare = Vec::with_capacity(OUTBOX_RECORDS);
        s.take(0, &mut spare);
        assert_eq!(spare.len(), OUTBOX_RECORDS);
        assert!(s.slots[0].queue.lock().is_empty(), "swapped whole");
        assert!(s.slots[0].queue.lock().capacity() >= OUTBOX_RECORDS);
        s.take(1, &mut Vec::new());
        a.push(rec(1));
        assert_eq!(s.dropped(), 3, "room again after the swap");
    }

    #[test]
    fn config_is_checked() {
        let ok = ClusterConfig {
            url: "redis://127.0.0.1:6379/0".into(),
            name: "shoal".into(),
            state_interval: Duration::from_secs(30),
        };
        assert!(ok.validate().is_ok());
        let bad = ClusterConfig {
            url: "http://x".into(),
            ..ok.clone()
        };
        assert!(bad.validate().is_err());
        let v = ClusterConfig {
            url: "valkey://h:1".into(),
            ..ok.clone()
        };
        assert_eq!(v.redis_url(), "redis://h:1");
        assert_eq!(ok.state_key(255), "shoal:state:00000000000000ff");
    }
}
