//! The cluster's two background threads and its start-up state load: all the
//! Redis I/O, none of it on a worker.
//!
//! - The publisher wakes every [`PUBLISH_EVERY`], swaps every worker's buffer
//!   for an empty one, publishes the records in batches of at most
//!   [`batch::MAX_RECORDS`], and every `--state-interval` stores the swarm's
//!   snapshot under its key with a TTL of three intervals.
//! - The subscriber blocks on the channel (with a read timeout, to see a
//!   shutdown) and applies other instances' batches to the swarm.
//! - Either side that loses Redis marks the link down, logs once for the
//!   instance, and reconnects with back-off; records taken meanwhile are lost
//!   (counted). Peers learned before stay until they expire.

use super::batch::{self, Record, MAX_RECORDS};
use super::{state, ClusterConfig, Status, OUTBOX_RECORDS, PUBLISH_EVERY};
use crate::swarm::{Announce, Peer4, Peer6, Swarm};
use crate::time::{unix_now, Clock};
use crate::tracker::Tracker;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the cluster's threads need of the server: the map (and its peer
/// timeout), the tracker's clock, and the shutdown flag. No more.
#[derive(Debug, Clone)]
pub struct Context {
    pub tracker: Arc<Tracker>,
    pub clock: Clock,
    pub stop: Arc<AtomicBool>,
}

impl Context {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn now(&self) -> u32 {
        self.clock.now().secs()
    }

    fn peer_timeout(&self) -> u32 {
        self.tracker.config().peer_timeout
    }
}

/// Longest wait for a TCP connect or a reply from Redis.
const IO_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the subscriber blocks before it looks at the shutdown flag.
const READ_TIMEOUT: Duration = Duration::from_millis(250);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Reconnection back-off: doubles from 100 ms to 5 s, reset on success.
#[derive(Debug)]
struct Backoff {
    next: Instant,
    delay: Duration,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            next: Instant::now(),
            delay: BACKOFF_MIN,
        }
    }

    fn due(&self) -> bool {
        Instant::now() >= self.next
    }

    fn failed(&mut self) {
        self.next = Instant::now() + self.delay;
        self.delay = (self.delay * 2).min(BACKOFF_MAX);
    }

    fn reset(&mut self) {
        self.delay = BACKOFF_MIN;
    }
}

/// The URL without its user and password, for logs.
fn redacted(url: &str) -> &str {
    match url.rsplit_once('@') {
        Some((_, host)) => host,
        None => url.split_once("://").map_or(url, |(_, rest)| rest),
    }
}

impl Status {
    /// One side lost Redis: log once for the instance until it is back.
    fn note_down(
        &self,
        flag: &std::sync::atomic::AtomicBool,
        cfg: &ClusterConfig,
        e: &dyn std::fmt::Display,
    ) {
        flag.store(false, Ordering::Relaxed);
        if !self.down_logged.swap(true, Ordering::Relaxed) {
            log::warn!(
                "cluster: Redis at {} unreachable ({e}); serving alone, retrying with back-off",
                redacted(&cfg.url)
            );
        }
    }

    fn note_up(&self, flag: &std::sync::atomic::AtomicBool, cfg: &ClusterConfig) {
        flag.store(true, Ordering::Relaxed);
        if self.connected() && self.down_logged.swap(false, Ordering::Relaxed) {
            log::info!(
                "cluster: Redis at {} reachable, sync resumed",
                redacted(&cfg.url)
            );
        }
    }
}

fn connect(client: &redis::Client) -> redis::RedisResult<redis::Connection> {
    let con = client.get_connection_with_timeout(IO_TIMEOUT)?;
    con.set_write_timeout(Some(IO_TIMEOUT))?;
    con.set_read_timeout(Some(IO_TIMEOUT))?;
    Ok(con)
}

/// Start the publisher and subscriber threads.
pub fn spawn(
    cfg: &ClusterConfig,
    status: &Arc<Status>,
    ctx: &Context,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    let client = redis::Client::open(cfg.redis_url()).map_err(std::io::Error::other)?;
    let publisher = {
        let (ctx, status, cfg, client) =
            (ctx.clone(), Arc::clone(status), cfg.clone(), client.clone());
        std::thread::Builder::new()
            .name("shoal-cluster-pub".into())
            .spawn(move || publish_loop(&ctx, &status, &cfg, &client))?
    };
    let subscriber = {
        let (ctx, status, cfg) = (ctx.clone(), Arc::clone(status), cfg.clone());
        std::thread::Builder::new()
            .name("shoal-cluster-sub".into())
            .spawn(move || subscribe_loop(&ctx, &status, &cfg, &client))?
    };
    Ok(vec![publisher, subscriber])
}

fn publish_loop(ctx: &Context, status: &Status, cfg: &ClusterConfig, client: &redis::Client) {
    let mut con: Option<redis::Connection> = None;
    let mut backoff = Backoff::new();
    let mut spare = Vec::with_capacity(OUTBOX_RECORDS);
    let mut pending: Vec<Record> = Vec::new();
    let mut msg = Vec::with_capacity(batch::HEADER_LEN + MAX_RECORDS * batch::RECORD_LEN + 8);
    let mut sequence = 0u64;
    let mut next_state = Instant::now();
    let key = cfg.state_key(status.instance);
    let ttl = cfg.state_interval.as_secs().saturating_mul(3).max(3);
    let mut tick = Instant::now();
    loop {
        let stopping = ctx.stopping();
        if con.is_none() && backoff.due() && !stopping {
            match connect(client) {
                Ok(c) => {
                    con = Some(c);
                    backoff.reset();
                    status.note_up(&status.pub_up, cfg);
                }
                Err(e) => {
                    backoff.failed();
                    status.note_down(&status.pub_up, cfg, &e);
                }
            }
        }
        for i in 0..status.workers() {
            status.take(i, &mut spare);
            pending.extend_from_slice(&spare);
            spare.clear();
        }
        for chunk in pending.chunks(MAX_RECORDS) {
            let Some(c) = con.as_mut() else {
                status.lost.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                continue;
            };
            msg.clear();
            batch::encode(&mut msg, status.instance, sequence, chunk);
            sequence += 1;
            let sent: redis::RedisResult<i64> =
                redis::cmd("PUBLISH").arg(&cfg.name).arg(&msg).query(c);
            match sent {
                Ok(_) => {
                    status
                        .published
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    status.batches_sent.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    con = None;
                    backoff.failed();
                    status.note_down(&status.pub_up, cfg, &e);
                    status.lost.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
            }
        }
        pending.clear();
        if let Some(c) = con
            .as_mut()
            .filter(|_| Instant::now() >= next_state && !stopping)
        {
            next_state = Instant::now() + cfg.state_interval;
            let swarm = ctx.tracker.swarm();
            match state::export(swarm, ctx.now(), unix_now(), ctx.peer_timeout()) {
                Ok(blob) => {
                    let set: redis::RedisResult<()> = redis::cmd("SET")
                        .arg(&key)
                        .arg(blob)
                        .arg("EX")
                        .arg(ttl)
                        .query(c);
                    match set {
                        Ok(()) => {
                            status.state_writes.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            con = None;
                            backoff.failed();
                            status.note_down(&status.pub_up, cfg, &e);
                        }
                    }
                }
                Err(e) => log::warn!("cluster: could not encode the state snapshot: {e}"),
            }
        }
        if stopping {
            // The last records were flushed above.
            return;
        }
        tick += PUBLISH_EVERY;
        let now = Instant::now();
        if tick > now {
            std::thread::sleep(tick - now);
        } else {
            tick = now;
        }
    }
}

fn subscribe_loop(ctx: &Context, status: &Status, cfg: &ClusterConfig, client: &redis::Client) {
    let mut backoff = Backoff::new();
    let mut records = Vec::with_capacity(MAX_RECORDS);
    // Last sequence seen per sender, to count batches lost in between.
    let mut last_seq: HashMap<u64, u64> = HashMap::new();
    while !ctx.stopping() {
        if !backoff.due() {
            std::thread::sleep(READ_TIMEOUT.min(backoff.next - Instant::now()));
            continue;
        }
        let mut con = match connect(client) {
            Ok(c) => c,
            Err(e) => {
                backoff.failed();
                status.note_down(&status.sub_up, cfg, &e);
                continue;
            }
        };
        let mut ps = con.as_pubsub();
        let subscribed = ps
            .subscribe(&cfg.name)
            .and_then(|()| ps.set_read_timeout(Some(READ_TIMEOUT)));
        if let Err(e) = subscribed {
            backoff.failed();
            status.note_down(&status.sub_up, cfg, &e);
            continue;
        }
        backoff.reset();
        status.note_up(&status.sub_up, cfg);
        while !ctx.stopping() {
            match ps.get_message() {
                Ok(m) => {
                    let now = ctx.now();
                    handle(
                        ctx.tracker.swarm(),
                        status,
                        &mut last_seq,
                        &mut records,
                        m.get_payload_bytes(),
                        now,
                    );
                }
                Err(e) if e.is_timeout() => {}
                Err(e) => {
                    backoff.failed();
                    status.note_down(&status.sub_up, cfg, &e);
                    break;
                }
            }
        }
    }
    status.sub_up.store(false, Ordering::Relaxed);
}

/// One message from the channel: checked whole, then applied (unless it is ours).
fn handle(
    swarm: &Swarm,
    status: &Status,
    last_seq: &mut HashMap<u64, u64>,
    records: &mut Vec<Record>,
    bytes: &[u8],
    now: u32,
) {
    let h = match batch::decode(bytes, records) {
        Ok(h) => h,
        Err(e) => {
            status.reject(e);
            log::debug!(
                "cluster: dropped a batch of {} bytes: {}",
                bytes.len(),
                e.as_str()
            );
            return;
        }
    };
    if h.instance == status.instance {
        return;
    }
    status.batches_received.fetch_add(1, Ordering::Relaxed);
    // Senders are few; a flood of made-up instance ids must not grow this.
    if last_seq.len() > 4096 {
        last_seq.clear();
    }
    if let Some(prev) = last_seq.insert(h.instance, h.sequence) {
        if h.sequence > prev + 1 {
            status
                .missed
                .fetch_add(h.sequence - prev - 1, Ordering::Relaxed);
        }
    }
    for r in records.iter() {
        apply(swarm, r, now);
    }
    status
        .applied
        .fetch_add(records.len() as u64, Ordering::Relaxed);
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

/// Before serving: load every other instance's state from Redis into the
/// swarm, so the first replies carry full peer lists. Redis unreachable or a
/// bad snapshot: logged, and the instance starts with what it has.
pub fn join_state(cfg: &ClusterConfig, status: &Status, ctx: &Context) {
    let blobs = match fetch_states(cfg, status.instance) {
        Ok(b) => b,
        Err(e) => {
            log::warn!(
                "cluster: could not load the other instances' state from {} ({e}); starting empty",
                redacted(&cfg.url)
            );
            return;
        }
    };
    let instances = blobs.len();
    let (got, errors) = state::import(
        ctx.tracker.swarm(),
        blobs,
        ctx.now(),
        unix_now(),
        ctx.peer_timeout(),
    );
    for e in &errors {
        log::warn!("cluster: skipped another instance's state: {e}");
    }
    status
        .state_loaded_peers
        .store(got.peers, Ordering::Relaxed);
    log::info!(
        "cluster: loaded {} peers of {} torrents from {} instance(s)",
        got.peers,
        got.torrents,
        instances - errors.len()
    );
}

fn fetch_states(cfg: &ClusterConfig, own: u64) -> redis::RedisResult<Vec<Vec<u8>>> {
    let client = redis::Client::open(cfg.redis_url())?;
    let mut con = connect(&client)?;
    let own = cfg.state_key(own);
    let mut keys = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(cfg.state_pattern())
            .arg("COUNT")
            .arg(1000)
            .query(&mut con)?;
        keys.extend(batch.into_iter().filter(|k| *k != own));
        if next == 0 || keys.len() > 10_000 {
            break;
        }
        cursor = next;
    }
    let mut blobs = Vec::with_capacity(keys.len());
    for k in keys {
        let blob: Option<Vec<u8>> = redis::cmd("GET").arg(&k).query(&mut con)?;
        blobs.extend(blob);
    }
    Ok(blobs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::swarm::Role;

    #[test]
    fn urls_are_logged_without_credentials() {
        assert_eq!(
            redacted("redis://:secret@10.0.0.1:6379/2"),
            "10.0.0.1:6379/2"
        );
        assert_eq!(redacted("redis://h:1"), "h:1");
    }

    #[test]
    fn own_and_bad_batches_are_not_applied() {
        let swarm = Swarm::new(1, 600);
        let status = Status::new(1);
        let mut seqs = HashMap::new();
        let mut recs = Vec::new();
        let r = Record {
            info_hash: [1; 20],
            addr: SocketAddr::from(([10, 0, 0, 1], 1)),
            role: Role::Seeder,
            completed: true,
        };
        let mut own = Vec::new();
        batch::encode(&mut own, status.instance, 0, &[r]);
        handle(&swarm, &status, &mut seqs, &mut recs, &own, 0);
        assert_eq!(swarm.totals().peers(), 0, "own batch ignored");
        handle(&swarm, &status, &mut seqs, &mut recs, b"garbage", 0);
        assert_eq!(status.rejected(batch::BatchError::Foreign), 1);
        let mut other = Vec::new();
        batch::encode(&mut other, status.instance ^ 1, 0, &[r]);
        handle(&swarm, &status, &mut seqs, &mut recs, &other, 0);
        let mut later = Vec::new();
        batch::encode(&mut later, status.instance ^ 1, 3, &[r]);
        handle(&swarm, &status, &mut seqs, &mut recs, &later, 0);
        let c = swarm.scrape(&[1; 20]);
        assert_eq!((c.seeders, c.completed), (1, 1), "completed counted once");
        assert_eq!(status.missed.load(Ordering::Relaxed), 2);
        assert_eq!(status.applied.load(Ordering::Relaxed), 2);
        let stop = Record {
            role: Role::Stopped,
            completed: false,
            ..r
        };
        apply(&swarm, &stop, 1);
        assert_eq!(swarm.totals().peers(), 0);
    }
}
