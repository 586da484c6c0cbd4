//! Each packet worker's load, and the announce interval it hands out
//! because of it ([`crate::tracker::interval`] states the law).
//!
//! The signal, and why: a worker is overloaded when requests arrive
//! faster than it answers them. Its **busy time** (the time it is not
//! waiting in `poll`) says how close to that it is, and the **receive
//! drops** at its own sockets say by how much it is past it: the kernel
//! drops a datagram when the socket's buffer is full, which is the moment
//! a client's request is lost and its BEP 15 back-off starts. Busy time
//! alone saturates at 100 % and cannot tell 1.1 × from 3 × overload; drops
//! alone say nothing until requests are already lost, and nothing about
//! how far below capacity a calm worker is (which the release needs).
//! Together, utilisation plus requests lost per request answered
//! ([`crate::tracker::Load::ratio`]): offered load over capacity when the
//! worker is CPU-bound, and every loss counted when it is not (the flood
//! in `tests/intervals.rs` loses four requests in five to a minimal socket
//! buffer with the worker busy 40 % of the time).
//!
//! Who does what:
//! - the **packet worker** adds each loop turn's busy time to its counters
//!   (two clock readings per turn, none per packet) and, once per turn,
//!   loads its [`Target`] (one relaxed atomic load) and hands it to the
//!   core ([`crate::tracker::Worker::set_interval`]);
//! - the **control thread** ([`Shedding::turn`], from the housekeeping)
//!   once a second reads each worker's busy time and requests handled from
//!   its counters and its sockets' drops from `/proc/net/udp{,6}` (by the
//!   sockets' inodes, found once at start), steps the worker's
//!   [`Governor`], and stores the interval in the worker's [`Target`]. No
//!   `/proc` read and no law ever runs on a packet worker. Changes are
//!   logged at most once a minute.
//!
//! Load is measured in real time (`Instant`), whatever the tracker's clock.

use crate::stats::{self, Counters, Registry};
use crate::tracker::{Governor, Intervals, Load};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the control thread steps the governors.
pub const PERIOD: Duration = Duration::from_secs(1);
/// Interval changes are logged at most this often.
pub const LOG_EVERY: Duration = Duration::from_secs(60);

/// The interval the control thread asks one worker to hand out (seconds,
/// before jitter). Written by the control thread only; the worker loads it
/// once per loop turn.
#[derive(Debug, Default)]
pub struct Target(AtomicU32);

impl Target {
    pub fn new(secs: u32) -> Target {
        Target(AtomicU32::new(secs))
    }

    #[inline]
    pub fn get(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }

    pub fn set(&self, secs: u32) {
        self.0.store(secs, Ordering::Relaxed);
    }
}

/// What the control thread needs of one packet worker: where to put its
/// interval, and which sockets' drops are its own.
#[derive(Debug, Clone)]
pub struct Link {
    pub target: Arc<Target>,
    /// The inodes of the worker's tracker UDP sockets (empty off Linux, or
    /// without UDP).
    pub inodes: Vec<u64>,
}

/// One worker as the control thread follows it.
#[derive(Debug)]
struct Watched {
    link: Link,
    counters: Arc<Counters>,
    governor: Governor,
    /// Readings at the last step: busy ns, requests handled, drops.
    busy_ns: u64,
    handled: u64,
    drops: Option<u64>,
    /// The last step's measurement, for the log line.
    load: Load,
    /// The interval in the last log line.
    logged: u32,
}

/// The control thread's side: every worker's governor.
#[derive(Debug)]
pub struct Shedding {
    intervals: Intervals,
    workers: Vec<Watched>,
    last: Instant,
    /// When interval changes may next be logged.
    log_at: Instant,
}

impl Shedding {
    /// Governors for the workers of `registry`, linked by `links` (one per
    /// worker, in order), starting calm at `now`.
    pub fn new(
        intervals: Intervals,
        registry: &Registry,
        links: &[Link],
        now: Instant,
    ) -> Shedding {
        let workers = links
            .iter()
            .zip(&registry.workers)
            .map(|(link, counters)| Watched {
                link: link.clone(),
                counters: Arc::clone(counters),
                governor: Governor::new(intervals),
                busy_ns: counters.busy_ns(),
                handled: counters.handled(),
                drops: None,
                load: Load::default(),
                logged: intervals.base(),
            })
            .collect();
        Shedding {
            intervals,
            workers,
            last: now,
            log_at: now,
        }
    }

    /// Step every governor if a [`PERIOD`] has passed since the last step;
    /// log the intervals that changed if a line is due.
    pub fn turn(&mut self, now: Instant) {
        if !self.intervals.adaptive() {
            return;
        }
        let dt = now.saturating_duration_since(self.last);
        if dt < PERIOD {
            return;
        }
        self.last = now;
        let inodes: Vec<u64> = self
            .workers
            .iter()
            .flat_map(|w| w.link.inodes.iter().copied())
            .collect();
        // One read of the tables for every worker; per socket, in order.
        let mut drops = if inodes.is_empty() {
            None
        } else {
            stats::udp_drops_of(&inodes)
        }
        .map(Vec::into_iter);
        for w in &mut self.workers {
            let mine = drops
                .as_mut()
                .map(|d| d.by_ref().take(w.link.inodes.len()).sum::<u64>());
            w.step(dt, mine);
        }
        if now >= self.log_at
            && self
                .workers
                .iter()
                .any(|w| w.governor.interval() != w.logged)
        {
            self.log_at = now + LOG_EVERY;
            self.log_changes();
        }
    }

    fn log_changes(&mut self) {
        let mut parts = Vec::new();
        for (i, w) in self.workers.iter_mut().enumerate() {
            let now = w.governor.interval();
            if now == w.logged {
                continue;
            }
            let l = w.load;
            parts.push(format!(
                "worker {i} {} s -> {now} s (load {:.2}: busy {:.0} %, {} requests and {} receive drops in the last second)",
                w.logged,
                w.governor.load(),
                l.busy * 100.0,
                l.handled,
                l.dropped
            ));
            w.logged = now;
        }
        log::info!(
            "announce interval (--interval {} s, --max-interval {} s): {}",
            self.intervals.base(),
            self.intervals.max(),
            parts.join("; ")
        );
    }

    /// The interval each worker is told to hand out now.
    pub fn intervals(&self) -> impl Iterator<Item = u32> + '_ {
        self.workers.iter().map(|w| w.governor.interval())
    }
}

impl Watched {
    /// One period of `dt`: the worker's load since the last step, the
    /// governor's step, the new interval for the worker. `drops`: the
    /// receive drops of its sockets now (`None`: unknown).
    fn step(&mut self, dt: Duration, drops: Option<u64>) {
        let busy_ns = self.counters.busy_ns();
        let handled = self.counters.handled();
        let secs = dt.as_secs_f64();
        let load = Load {
            busy: busy_ns.saturating_sub(self.busy_ns) as f64 / 1e9 / secs,
            handled: handled.saturating_sub(self.handled),
            // The first reading is the baseline: drops before it are old.
            dropped: match (self.drops, drops) {
                (Some(before), Some(now)) => now.saturating_sub(before),
                _ => 0,
            },
        };
        (self.busy_ns, self.handled) = (busy_ns, handled);
        if drops.is_some() {
            self.drops = drops;
        }
        self.load = load;
        let interval = self.governor.step(secs, load);
        self.link.target.set(interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Family, Kind, Proto};
    use crate::tracker::TrackerConfig;

    fn setup(max: u32) -> (Shedding, Arc<Registry>, Vec<Link>, Instant) {
        let config = TrackerConfig {
            interval: 100,
            max_interval: Some(max),
            peer_timeout: 1000,
            ..TrackerConfig::default()
        };
        let registry = Arc::new(Registry::new(2));
        let links: Vec<Link> = (0..2)
            .map(|_| Link {
                target: Arc::new(Target::new(100)),
                inodes: Vec::new(),
            })
            .collect();
        let t0 = Instant::now();
        let s = Shedding::new(Intervals::of(&config), &registry, &links, t0);
        (s, registry, links, t0)
    }

    /// A worker busy all the time is past 90 % of capacity: its interval
    /// rises; the other, idle, keeps the base. Steps come once a period.
    #[test]
    fn a_saturated_worker_gets_a_longer_interval_and_only_it() {
        let (mut s, reg, links, t0) = setup(400);
        for k in 1..=30u64 {
            let busy = &reg.workers[0];
            busy.add_busy(1_000_000_000);
            for _ in 0..1000 {
                busy.request(Proto::Udp, Family::V4, Kind::Announce);
            }
            s.turn(t0 + Duration::from_secs(k));
            // A turn within the period changes nothing.
            busy.add_busy(1_000_000_000);
            s.turn(t0 + Duration::from_millis(k * 1000 + 500));
        }
        let now: Vec<u32> = s.intervals().collect();
        assert!(now[0] > 100 && now[0] <= 112, "{now:?}");
        assert_eq!(now[1], 100);
        assert_eq!(links[0].target.get(), now[0]);
        assert_eq!(links[1].target.get(), 100);
    }

    #[test]
    fn a_fixed_interval_never_steps() {
        let (mut s, reg, links, t0) = setup(100);
        reg.workers[0].add_busy(60_000_000_000);
        s.turn(t0 + Duration::from_secs(60));
        assert_eq!(links[0].target.get(), 100);
        assert!(s.intervals().all(|i| i == 100));
    }
}
