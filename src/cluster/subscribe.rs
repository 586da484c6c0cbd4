//! The subscriber thread: reads the stream from where it left off (across
//! reconnects), checks each batch whole — tag, sender, sequence, age — and
//! applies other instances' records that are newer than what this instance
//! knows of their peer ([`super::versions`]), and their access changes.
//!
//! Order of a peer batch: raise the clock past its stamps, collect the local
//! records (so a stale remote record cannot undo a local event), decide each
//! record against the version table and apply the newer ones. The table and
//! the collection share one lock with the publisher; access changes are
//! decided under it and written to the files after it is released.

use super::auth::Keys;
use super::batch::{self, AccessRecord, BatchError, BatchHeader, Decoded, Kind, Record};
use super::link::{connect, Backoff, Context, IO_TIMEOUT};
use super::stream::{self, StreamId};
use super::versions::Verdict;
use super::{AccessOutcome, ClusterConfig, Skip, Status};
use crate::access::Change;
use crate::swarm::{Announce, Peer4, Peer6, Swarm};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long one read waits for new entries before looking at the shutdown flag.
const BLOCK: Duration = Duration::from_millis(250);
/// Entries per read (each at most [`batch::MAX_BATCH`] bytes).
const READ_COUNT: usize = 16;
/// Senders whose sequence is remembered (only holders of the secret can
/// make new ones; a process restart is a new sender).
const MAX_SENDERS: usize = 4096;

/// The last sequence seen from a sender, and when (for forgetting it).
#[derive(Debug, Clone, Copy)]
struct Seen {
    sequence: u64,
    at: Instant,
}

/// What the subscriber keeps between batches.
pub(super) struct Subscriber<'a> {
    ctx: &'a Context,
    status: &'a Status,
    keys: &'a Keys,
    replay_window_ms: u64,
    senders: HashMap<u64, Seen>,
    decoded: Decoded,
    /// Access changes decided under the lock, applied after it.
    changes: Vec<Change>,
}

pub(super) fn run(
    ctx: &Context,
    status: &Status,
    cfg: &ClusterConfig,
    client: &redis::Client,
    keys: &Keys,
    from: Option<StreamId>,
) {
    let mut sub = Subscriber::new(ctx, status, cfg, keys);
    let key = cfg.stream_key();
    let mut position = from.unwrap_or(StreamId::ZERO);
    let mut backoff = Backoff::new();
    let mut entries = Vec::with_capacity(READ_COUNT);
    while !ctx.stopping() {
        if !backoff.due() {
            std::thread::sleep(BLOCK.min(backoff.next.saturating_duration_since(Instant::now())));
            continue;
        }
        let mut con = match connect(client).and_then(|c| {
            c.set_read_timeout(Some(BLOCK + IO_TIMEOUT))?;
            Ok(c)
        }) {
            Ok(c) => c,
            Err(e) => {
                backoff.failed();
                status.note_down(&status.sub_up, cfg, &e);
                continue;
            }
        };
        let mut up = false;
        while !ctx.stopping() {
            entries.clear();
            let block = BLOCK.as_millis() as u64;
            if let Err(e) = stream::read(&mut con, &key, position, READ_COUNT, block, &mut entries)
            {
                backoff.failed();
                status.note_down(&status.sub_up, cfg, &e);
                break;
            }
            if !up {
                // Connected and read once: the stream is there for us.
                up = true;
                backoff.reset();
                status.note_up(&status.sub_up, cfg);
            }
            for (id, bytes) in entries.drain(..) {
                match bytes {
                    Some(b) => sub.handle(&b),
                    None => status.reject(BatchError::Foreign),
                }
                position = id;
                *status.position.lock() = id;
            }
        }
    }
    status.sub_up.store(false, Ordering::Relaxed);
}

impl<'a> Subscriber<'a> {
    pub(super) fn new(
        ctx: &'a Context,
        status: &'a Status,
        cfg: &ClusterConfig,
        keys: &'a Keys,
    ) -> Subscriber<'a> {
        Subscriber {
            ctx,
            status,
            keys,
            replay_window_ms: cfg.replay_window_ms(),
            senders: HashMap::new(),
            decoded: Decoded::default(),
            changes: Vec::new(),
        }
    }

    /// One entry of the stream: checked whole, then applied (unless ours).
    pub(super) fn handle(&mut self, bytes: &[u8]) {
        let status = self.status;
        // Our own batch (its sender id, unverified): skipped before the tag
        // is computed. A forged one changes nothing here either way.
        if bytes.get(..4) == Some(&batch::MAGIC[..])
            && bytes.get(8..16) == Some(&status.instance.to_be_bytes()[..])
        {
            return;
        }
        let h = match batch::decode(bytes, self.keys, &mut self.decoded) {
            Ok(h) => h,
            Err(e) => {
                status.reject(e);
                log::debug!(
                    "cluster: dropped a message of {} bytes: {}",
                    bytes.len(),
                    e.as_str()
                );
                return;
            }
        };
        if h.instance == status.instance {
            return;
        }
        if let Err(e) = self.check_sender(&h) {
            status.reject(e);
            log::debug!(
                "cluster: dropped batch {} of {:016x}: {}",
                h.sequence,
                h.instance,
                e.as_str()
            );
            return;
        }
        status.batches_received.fetch_add(1, Ordering::Relaxed);
        match h.kind {
            Kind::Peers => self.apply_peers(h.instance),
            Kind::Access => self.apply_access(h.instance),
        }
    }

    /// A batch's sequence must be new for its sender, and its stamp within
    /// the replay window: a copy of an old batch is refused even by an
    /// instance that never saw its sender.
    fn check_sender(&mut self, h: &BatchHeader) -> Result<(), BatchError> {
        let now = self.status.hlc.stamp(self.ctx.clock.now());
        let window = super::hlc::at_ms(self.replay_window_ms);
        if h.stamp < now.saturating_sub(window) {
            return Err(BatchError::Stale);
        }
        let at = Instant::now();
        match self.senders.get_mut(&h.instance) {
            Some(seen) if h.sequence <= seen.sequence => return Err(BatchError::Replay),
            Some(seen) => {
                if h.sequence > seen.sequence + 1 {
                    self.status
                        .missed
                        .fetch_add(h.sequence - seen.sequence - 1, Ordering::Relaxed);
                }
                *seen = Seen {
                    sequence: h.sequence,
                    at,
                };
            }
            None => {
                if self.senders.len() >= MAX_SENDERS {
                    let window = Duration::from_millis(self.replay_window_ms);
                    self.senders.retain(|_, s| at.duration_since(s.at) < window);
                    if self.senders.len() >= MAX_SENDERS {
                        self.senders.clear();
                    }
                }
                self.senders.insert(
                    h.instance,
                    Seen {
                        sequence: h.sequence,
                        at,
                    },
                );
            }
        }
        Ok(())
    }

    fn apply_peers(&mut self, origin: u64) {
        let (status, ctx) = (self.status, self.ctx);
        let now = ctx.clock.now();
        let plausible = |r: &&Record| status.hlc.plausible(r.stamp, now);
        if let Some(max) = self
            .decoded
            .peers
            .iter()
            .filter(plausible)
            .map(|r| r.stamp)
            .max()
        {
            status.hlc.observe(max);
        }
        let swarm = ctx.tracker.swarm();
        let secs = now.secs();
        let mut sh = status.shared.lock();
        status.collect(&mut sh, swarm, secs);
        let mut applied = 0u64;
        for r in &self.decoded.peers {
            if !status.hlc.plausible(r.stamp, now) {
                status.skip(Skip::Future);
                continue;
            }
            match sh.versions.offer(&r.key(), r.stamp, origin) {
                Verdict::Apply => {
                    apply(swarm, r, secs);
                    applied += 1;
                }
                Verdict::Superseded => status.skip(Skip::Superseded),
                Verdict::Stale => status.skip(Skip::Stale),
            }
        }
        // Local events that happened while the batch was applied: noted,
        // and applied again where the batch overwrote them with older state.
        status.collect(&mut sh, swarm, secs);
        drop(sh);
        status.applied.fetch_add(applied, Ordering::Relaxed);
    }

    fn apply_access(&mut self, origin: u64) {
        let status = self.status;
        let now = self.ctx.clock.now();
        let records: &[AccessRecord] = &self.decoded.access;
        if let Some(max) = records
            .iter()
            .filter(|r| status.hlc.plausible(r.stamp, now))
            .map(|r| r.stamp)
            .max()
        {
            status.hlc.observe(max);
        }
        self.changes.clear();
        {
            let mut sh = status.shared.lock();
            for r in records {
                if !status.hlc.plausible(r.stamp, now) {
                    status.skip(Skip::Future);
                    continue;
                }
                match sh.access_versions.offer(&r.key(), r.stamp, origin) {
                    Verdict::Apply => self.changes.push(r.change),
                    Verdict::Superseded | Verdict::Stale => {
                        status.count_access(AccessOutcome::Superseded);
                    }
                }
            }
        }
        for change in &self.changes {
            let outcome = match &self.ctx.access {
                Some(sink) => match sink.apply(change) {
                    Ok(true) => AccessOutcome::Applied,
                    Ok(false) => AccessOutcome::Unchanged,
                    Err(e) => {
                        log::warn!(
                            "cluster: could not apply another instance's access change: {e}"
                        );
                        AccessOutcome::Failed
                    }
                },
                None => {
                    static SAID: AtomicBool = AtomicBool::new(false);
                    if !SAID.swap(true, Ordering::Relaxed) {
                        log::warn!(
                            "cluster: another instance changed its access list or keys through its API; this instance has no access files to apply the change to"
                        );
                    }
                    AccessOutcome::Failed
                }
            };
            status.count_access(outcome);
        }
    }
}

/// Store one remote announce as if it had been made here at `now`.
pub fn apply(swarm: &Swarm, r: &Record, now: u32) {
    let req = Announce {
        info_hash: r.info_hash,
        addr: r.addr,
        role: r.role,
        completed: r.completed,
        now,
        want: 0,
        random: (0, 0),
        peer_id: None,
        emit_ids: false,
    };
    match r.addr {
        SocketAddr::V4(a) => {
            swarm.announce::<Peer4>(&req.with_addr((*a.ip(), a.port())), |_, _| {});
        }
        SocketAddr::V6(a) => {
            swarm.announce::<Peer6>(&req.with_addr((*a.ip(), a.port())), |_, _| {});
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::auth::Secret;
    use super::super::batch::Sender;
    use super::*;
    use crate::swarm::Role;
    use crate::time::{Clock, Now};
    use crate::tracker::{Tracker, TrackerConfig};
    use std::sync::Arc;

    struct Rig {
        ctx: Context,
        status: Arc<Status>,
        cfg: ClusterConfig,
        keys: Keys,
    }

    fn rig() -> Rig {
        let (clock, _) = Clock::manual();
        let ctx = Context {
            tracker: Arc::new(Tracker::new(TrackerConfig {
                shards: 4,
                ..TrackerConfig::default()
            })),
            clock: clock.clone(),
            stop: Arc::new(AtomicBool::new(false)),
            access: None,
        };
        let status = Arc::new(Status::new(1));
        status.hlc.anchor(&clock);
        let secret = Secret::new(b"0123456789abcdef").unwrap();
        Rig {
            keys: Keys::derive(Some(&secret), "t"),
            cfg: ClusterConfig::new("redis://h:1", "t"),
            ctx,
            status,
        }
    }

    fn peer(port: u16, role: Role, stamp: u64) -> Record {
        Record {
            info_hash: [1; 20],
            addr: SocketAddr::from(([10, 0, 0, 1], port)),
            role,
            completed: false,
            stamp,
        }
    }

    fn msg(keys: &Keys, instance: u64, sequence: u64, recs: &[Record]) -> Vec<u8> {
        let mut out = Vec::new();
        let stamp = recs.iter().map(|r| r.stamp).max().unwrap_or(0);
        batch::encode(
            &mut out,
            keys,
            Sender {
                instance,
                sequence,
                stamp,
            },
            recs,
        );
        out
    }

    fn counts(r: &Rig) -> (u32, u32) {
        let c = r.ctx.tracker.swarm().scrape(&[1; 20]);
        (c.seeders, c.leechers)
    }

    #[test]
    fn a_stop_beats_the_older_announce_that_arrives_after_it() {
        let r = rig();
        let mut sub = Subscriber::new(&r.ctx, &r.status, &r.cfg, &r.keys);
        let t = r.status.hlc.stamp(Now::from_ms(0));
        // B's stop (later) arrives before A's announce (earlier).
        sub.handle(&msg(&r.keys, 2, 1, &[peer(1, Role::Stopped, t + 20)]));
        sub.handle(&msg(&r.keys, 1, 1, &[peer(1, Role::Seeder, t + 10)]));
        assert_eq!(counts(&r), (0, 0), "the stale announce is refused");
        assert_eq!(r.status.skipped(Skip::Superseded), 1);
        // A later announce is applied.
        sub.handle(&msg(&r.keys, 1, 2, &[peer(1, Role::Leecher, t + 30)]));
        assert_eq!(counts(&r), (0, 1));
        assert_eq!(r.status.applied.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_stale_record_cannot_undo_a_local_event() {
        let r = rig();
        let mut sub = Subscriber::new(&r.ctx, &r.status, &r.cfg, &r.keys);
        let now = Now::from_ms(0);
        let old = r.status.hlc.stamp(now);
        // A client announces here (the worker changed the map and queued a
        // record)...
        let here = Record {
            stamp: 0,
            ..peer(1, Role::Seeder, 0)
        };
        apply(r.ctx.tracker.swarm(), &here, 0);
        r.status.outbox(0).push(here, Now::from_ms(5));
        // ...then another instance's older stop of the same peer arrives.
        sub.handle(&msg(&r.keys, 2, 1, &[peer(1, Role::Stopped, old)]));
        assert_eq!(counts(&r), (1, 0), "the local announce is newer");
        // Another instance's newer stop does remove it.
        let newer = r.status.hlc.stamp(Now::from_ms(10)) + 1;
        sub.handle(&msg(&r.keys, 2, 2, &[peer(1, Role::Stopped, newer)]));
        assert_eq!(counts(&r), (0, 0));
    }

    /// A peer of another instance announces here, then stops here, and
    /// both local records are collected together: the stop stays.
    #[test]
    fn a_local_stop_is_not_undone_by_the_announce_before_it() {
        let r = rig();
        let mut sub = Subscriber::new(&r.ctx, &r.status, &r.cfg, &r.keys);
        let t = r.status.hlc.stamp(Now::from_ms(0));
        sub.handle(&msg(&r.keys, 2, 1, &[peer(1, Role::Leecher, t)]));
        assert_eq!(counts(&r), (0, 1));
        let swarm = r.ctx.tracker.swarm();
        for (role, ms) in [(Role::Seeder, 5), (Role::Stopped, 10)] {
            let local = peer(1, role, 0);
            apply(swarm, &local, 0);
            r.status.outbox(0).push(local, Now::from_ms(ms));
        }
        assert_eq!(counts(&r), (0, 0));
        // The next batch (of another peer) collects both first.
        sub.handle(&msg(&r.keys, 2, 2, &[peer(2, Role::Leecher, t)]));
        assert_eq!(counts(&r), (0, 1), "peer 1 stays stopped");
    }

    #[test]
    fn own_foreign_replayed_stale_and_future_batches_are_not_applied() {
        let r = rig();
        let mut sub = Subscriber::new(&r.ctx, &r.status, &r.cfg, &r.keys);
        let t = r.status.hlc.stamp(Now::from_ms(0));
        let rec = peer(1, Role::Seeder, t);
        sub.handle(&msg(&r.keys, r.status.instance, 1, &[rec]));
        assert_eq!(counts(&r), (0, 0), "own batch ignored");
        sub.handle(b"garbage");
        assert_eq!(r.status.rejected(BatchError::Foreign), 1);
        let unsigned = Keys::derive(None, "t");
        sub.handle(&msg(&unsigned, 5, 1, &[rec]));
        assert_eq!(r.status.rejected(BatchError::Unsigned), 1);
        let first = msg(&r.keys, 5, 1, &[rec]);
        sub.handle(&first);
        assert_eq!(counts(&r), (1, 0));
        sub.handle(&first);
        assert_eq!(r.status.rejected(BatchError::Replay), 1);
        // Sequence 4 after 1: two batches missed.
        sub.handle(&msg(&r.keys, 5, 4, &[peer(2, Role::Leecher, t)]));
        assert_eq!(r.status.missed.load(Ordering::Relaxed), 2);
        // From before the replay window.
        let window = super::super::hlc::at_ms(r.cfg.replay_window_ms() + 1000);
        sub.handle(&msg(&r.keys, 6, 1, &[peer(3, Role::Seeder, t - window)]));
        assert_eq!(r.status.rejected(BatchError::Stale), 1);
        // From a clock far ahead: the batch is taken, the record is not,
        // and our clock does not jump.
        let ahead = t + super::super::hlc::at_ms(super::super::hlc::MAX_AHEAD_MS + 5000);
        sub.handle(&msg(&r.keys, 7, 1, &[peer(4, Role::Seeder, ahead)]));
        assert_eq!(r.status.skipped(Skip::Future), 1);
        assert!(r.status.hlc.stamp(Now::from_ms(0)) < ahead);
        assert_eq!(counts(&r), (1, 1));
        assert_eq!(r.status.batches_received.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn completed_counts_once_per_peer() {
        let r = rig();
        let mut sub = Subscriber::new(&r.ctx, &r.status, &r.cfg, &r.keys);
        let t = r.status.hlc.stamp(Now::from_ms(0));
        let done = Record {
            completed: true,
            ..peer(1, Role::Seeder, t)
        };
        sub.handle(&msg(&r.keys, 1, 1, &[done]));
        sub.handle(&msg(
            &r.keys,
            2,
            1,
            &[Record {
                stamp: t + 1,
                ..done
            }],
        ));
        let c = r.ctx.tracker.swarm().scrape(&[1; 20]);
        assert_eq!((c.seeders, c.completed), (1, 1));
    }

    #[derive(Debug, Default)]
    struct Sink(parking_lot::Mutex<Vec<Change>>);
    impl super::super::AccessSink for Sink {
        fn apply(&self, change: &Change) -> Result<bool, String> {
            self.0.lock().push(*change);
            Ok(true)
        }
    }

    #[test]
    fn access_changes_are_applied_latest_first_wins() {
        let mut r = rig();
        let sink = Arc::new(Sink::default());
        r.ctx.access = Some(sink.clone());
        let mut sub = Subscriber::new(&r.ctx, &r.status, &r.cfg, &r.keys);
        let t = r.status.hlc.stamp(Now::from_ms(0));
        let rec = |stamp, change| AccessRecord { stamp, change };
        let mut out = Vec::new();
        let from = |sequence| Sender {
            instance: 3,
            sequence,
            stamp: t,
        };
        batch::encode(
            &mut out,
            &r.keys,
            from(1),
            &[
                rec(t + 2, Change::Unlisted([9; 20])),
                rec(t + 1, Change::Listed([9; 20])),
            ],
        );
        sub.handle(&out);
        assert_eq!(
            *sink.0.lock(),
            vec![Change::Unlisted([9; 20])],
            "the older is superseded"
        );
        assert_eq!(r.status.access_changes(AccessOutcome::Applied), 1);
        assert_eq!(r.status.access_changes(AccessOutcome::Superseded), 1);
        // A local change newer than a remote one in flight wins here too.
        r.status.queue_access(Change::Listed([8; 20]));
        out.clear();
        batch::encode(
            &mut out,
            &r.keys,
            from(2),
            &[rec(t - 1, Change::Unlisted([8; 20]))],
        );
        sub.handle(&out);
        assert_eq!(sink.0.lock().len(), 1);
    }
}
