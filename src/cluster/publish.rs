//! The publisher thread: every [`PUBLISH_EVERY`] it collects the workers'
//! records, appends them to the stream as signed batches of at most
//! [`MAX_RECORDS`], sends the access changes made through the API, and every
//! state period stores the swarm's snapshot with the stream position it
//! reflects.
//!
//! While Redis is unreachable it keeps collecting (so the version table
//! keeps knowing local events) and keeps up to [`PENDING_MAX`] records and
//! [`super::ACCESS_PENDING_MAX`] access changes to send when Redis is back;
//! a batch that failed is sent again with the same sequence number, so if
//! Redis did take it, the copy is refused as a replay.

use super::auth::Keys;
use super::batch::{self, AccessRecord, Item, Record, Sender, MAX_BATCH, MAX_RECORDS};
use super::link::{connect, Backoff, Context};
use super::stream::{self, StreamId};
use super::{state, AccessOutcome, ClusterConfig, Status, PENDING_MAX, PUBLISH_EVERY};
use crate::time::unix_now;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// The publisher's own state between turns.
struct Publisher<'a> {
    ctx: &'a Context,
    status: &'a Status,
    cfg: &'a ClusterConfig,
    keys: &'a Keys,
    stream: String,
    /// The message being built.
    msg: Vec<u8>,
    /// The next batch's sequence number.
    sequence: u64,
    /// Our last append's id: its millisecond part is Redis's clock, which
    /// the trimming goes by.
    last: StreamId,
}

pub(super) fn run(
    ctx: &Context,
    status: &Status,
    cfg: &ClusterConfig,
    client: &redis::Client,
    keys: &Keys,
) {
    let mut p = Publisher {
        ctx,
        status,
        cfg,
        keys,
        stream: cfg.stream_key(),
        msg: Vec::with_capacity(MAX_BATCH),
        sequence: 1,
        last: StreamId::ZERO,
    };
    let mut con: Option<redis::Connection> = None;
    let mut backoff = Backoff::new();
    let mut records: Vec<Record> = Vec::new();
    let mut access: Vec<AccessRecord> = Vec::new();
    let mut next_state = Instant::now();
    let mut tick = Instant::now();
    loop {
        let stopping = ctx.stopping();
        status.hlc.anchor(&ctx.clock);
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
        {
            let mut sh = status.shared.lock();
            status.collect(&mut sh, ctx.tracker.swarm(), ctx.now());
            if con.is_some() {
                std::mem::swap(&mut sh.pending, &mut records);
                std::mem::swap(&mut sh.access, &mut access);
            }
        }
        if let Some(c) = con.as_mut() {
            let sent = match p.send(c, &access) {
                Ok(n) => {
                    status.count_access_n(AccessOutcome::Sent, n);
                    access.clear();
                    match p.send(c, &records) {
                        Ok(n) => {
                            status.published.fetch_add(n as u64, Ordering::Relaxed);
                            records.clear();
                            Ok(())
                        }
                        Err((e, n)) => {
                            status.published.fetch_add(n as u64, Ordering::Relaxed);
                            records.drain(..n);
                            Err(e)
                        }
                    }
                }
                Err((e, n)) => {
                    status.count_access_n(AccessOutcome::Sent, n);
                    access.drain(..n);
                    Err(e)
                }
            };
            if let Err(e) = sent {
                con = None;
                backoff.failed();
                status.note_down(&status.pub_up, cfg, &e);
                p.requeue(&mut access, &mut records);
            }
        }
        if let Some(c) = con
            .as_mut()
            .filter(|_| Instant::now() >= next_state && !stopping)
        {
            next_state = Instant::now() + cfg.state_period();
            if let Err(e) = p.store_state(c) {
                con = None;
                backoff.failed();
                status.note_down(&status.pub_up, cfg, &e);
            }
        }
        if stopping {
            // The last records were flushed above (if Redis was there).
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

impl Publisher<'_> {
    /// Append `items` in batches; how many went, or the error and how
    /// many went before it.
    fn send<T: Item>(
        &mut self,
        c: &mut redis::Connection,
        items: &[T],
    ) -> Result<usize, (redis::RedisError, usize)> {
        let mut sent = 0;
        for chunk in items.chunks(MAX_RECORDS) {
            self.msg.clear();
            let from = Sender {
                instance: self.status.instance,
                sequence: self.sequence,
                stamp: self.status.hlc.stamp(self.ctx.clock.now()),
            };
            batch::encode(&mut self.msg, self.keys, from, chunk);
            let backlog_ms = self.cfg.backlog.as_millis() as u64;
            match stream::append(c, &self.stream, self.last, backlog_ms, &self.msg) {
                Ok(id) => {
                    self.last = id;
                    self.sequence += 1;
                    sent += chunk.len();
                    self.status.batches_sent.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => return Err((e, sent)),
            }
        }
        Ok(sent)
    }

    /// Put what was not sent back in front of what was collected since, up
    /// to the bounds (the rest is counted as lost).
    fn requeue(&self, access: &mut Vec<AccessRecord>, records: &mut Vec<Record>) {
        let mut sh = self.status.shared.lock();
        access.append(&mut sh.access);
        std::mem::swap(&mut sh.access, access);
        if sh.access.len() > super::ACCESS_PENDING_MAX {
            let over = sh.access.len() - super::ACCESS_PENDING_MAX;
            sh.access.truncate(super::ACCESS_PENDING_MAX);
            self.status.count_access_n(AccessOutcome::Lost, over);
        }
        records.append(&mut sh.pending);
        std::mem::swap(&mut sh.pending, records);
        if sh.pending.len() > PENDING_MAX {
            let over = sh.pending.len() - PENDING_MAX;
            sh.pending.truncate(PENDING_MAX);
            self.status.lost.fetch_add(over as u64, Ordering::Relaxed);
        }
    }

    /// Store the swarm's snapshot, with the stream position it reflects,
    /// under this instance's key for three state periods.
    fn store_state(&mut self, c: &mut redis::Connection) -> redis::RedisResult<()> {
        // Read before the walk: what the walk sees is at least this.
        let position = *self.status.position.lock();
        let swarm = self.ctx.tracker.swarm();
        let snapshot =
            match state::export(swarm, self.ctx.now(), unix_now(), self.ctx.peer_timeout()) {
                Ok(s) => s,
                Err(e) => {
                    log::warn!("cluster: could not encode the state snapshot: {e}");
                    return Ok(());
                }
            };
        let blob = state::wrap(self.keys, self.status.instance, position, &snapshot);
        let ttl = self.cfg.state_period().as_secs().saturating_mul(3).max(3);
        redis::cmd("SET")
            .arg(self.cfg.state_key(self.status.instance))
            .arg(blob)
            .arg("EX")
            .arg(ttl)
            .query::<()>(c)?;
        self.status.state_writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
