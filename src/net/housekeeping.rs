//! The control thread's periodic work: everything that walks the map or
//! writes a log line about it, off the packet workers.
//!
//! - **Expiry**: shard `k` (counted from start) is swept at `k * period /
//!   shards`, so every shard is swept once per period (an eighth of the peer
//!   timeout, 1 s..60 s): a peer leaves at most that late. A turn sweeps
//!   enough shards to keep pace even when the loop only wakes every
//!   [`IDLE_TICK`] (twice the rate needed), and after a stall the cursor
//!   skips whole rounds only, so the shards keep their order and none is
//!   passed over. The rendezvous registry is swept the same way.
//! - **Relief**: past 95 % of a bound, a share of the swarm's relief sweep
//!   each turn ([`crate::swarm::Swarm::relieve`]), turns coming quickly
//!   until the map is back under it.
//! - **Logs**: evictions at most once a minute; the `--stats-interval` line.
//! - **The API's history**: a sample every 10 s.
//! - **Announce intervals**: each packet worker's, from its load, once a
//!   second ([`super::load`]).

use super::load::{Link, Shedding};
use super::worker::IDLE_TICK;
use crate::api::Api;
use crate::rendezvous::Rendezvous;
use crate::stats::{Kind, Proto, Registry};
use crate::time::{Clock, Now};
use crate::tracker::{Tracker, Worker};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Shards swept at most per loop turn, unless more are needed to keep pace.
const SWEEP_BUDGET: u64 = 64;
/// How soon the loop comes back while the map is past 95 % of a bound.
const RELIEF_TICK: Duration = Duration::from_millis(5);

/// What the periodic work reads.
#[derive(Debug, Clone)]
pub struct Sources {
    pub tracker: Arc<Tracker>,
    pub registry: Arc<Registry>,
    pub api: Option<Arc<Api>>,
    pub rendezvous: Option<Arc<Rendezvous>>,
    /// `--stats-interval`.
    pub stats_interval: Option<Duration>,
    /// Whether HTTP is served (the stats line then shows its rate).
    pub http: bool,
    /// Each packet worker's interval target and sockets, in worker order.
    pub links: Vec<Link>,
}

/// The control thread's periodic work and where each part stands.
#[derive(Debug)]
pub struct Housekeeping {
    src: Sources,
    /// The sweeps check torrents against the access policy through this.
    worker: Worker,
    /// Next shard to sweep, counted from start.
    sweep_cursor: u64,
    sweep_period_ms: u64,
    rdv_cursor: u64,
    rdv_period_ms: u64,
    /// When (ms) evictions may next be logged, and the eviction total last
    /// logged: at most one line a minute, whatever the flood.
    evict_log_at: u64,
    evicted_logged: u64,
    stats: StatsLine,
    shedding: Shedding,
}

impl Housekeeping {
    pub fn new(src: Sources, clock: &Clock) -> Housekeeping {
        let peer_timeout_ms = u64::from(src.tracker.config().peer_timeout) * 1000;
        // Expired registrations are already ignored; their sweep frees the
        // memory an eighth of the timeout late at most (1 s..60 s).
        let rdv_period_ms = src.rendezvous.as_ref().map_or(60_000, |r| {
            (u64::from(r.registry().config().timeout) * 1000 / 8).clamp(1000, 60_000)
        });
        let every_ms = src.stats_interval.map(|d| d.as_millis().max(1) as u64);
        Housekeeping {
            worker: Worker::new(),
            sweep_cursor: 0,
            sweep_period_ms: (peer_timeout_ms / 8).clamp(1000, 60_000),
            rdv_cursor: 0,
            rdv_period_ms,
            evict_log_at: EVICT_LOG_MS,
            evicted_logged: 0,
            stats: StatsLine::starting(every_ms, clock.now().ms()),
            shedding: Shedding::new(
                src.tracker.intervals(),
                &src.registry,
                &src.links,
                Instant::now(),
            ),
            src,
        }
    }

    /// One turn's work at `now`; how soon the next turn is wanted.
    pub fn turn(&mut self, now: Now) -> Duration {
        let swarm = self.src.tracker.swarm();
        swarm.relieve(now.secs(), RELIEF_SHARDS);
        let pressed = swarm.under_pressure();
        self.sweep(now);
        self.sweep_rendezvous(now);
        self.log_evictions(now.ms());
        self.shedding.turn(Instant::now());
        self.stats.maybe_log(&self.src, now.ms());
        if let Some(api) = &self.src.api {
            api.tick(now);
        }
        if pressed {
            RELIEF_TICK
        } else {
            IDLE_TICK
        }
    }

    /// Sweep the shards that are due (see the module docs).
    fn sweep(&mut self, now: Now) {
        let tracker = &*self.src.tracker;
        let shards = tracker.swarm().shard_count() as u64;
        let period = self.sweep_period_ms;
        let due = now.ms() * shards / period;
        let per_tick = (2 * shards * IDLE_TICK.as_millis() as u64).div_ceil(period);
        for _ in 0..SWEEP_BUDGET.max(per_tick) {
            let cursor = self.sweep_cursor;
            if cursor >= due {
                return;
            }
            // More than a round behind: one round covers everything that is due.
            let next = cursor + (due - cursor - 1) / shards * shards;
            self.sweep_cursor = next + 1;
            // Through the access policy: torrents it no longer allows go too.
            let removed = tracker.expire_shard(&mut self.worker, (next % shards) as usize, now);
            if removed > 0 {
                log::trace!("expired {removed} peers from shard {}", next % shards);
            }
        }
    }

    /// Sweep the rendezvous registry shards that are due, as the swarm's.
    fn sweep_rendezvous(&mut self, now: Now) {
        let Some(r) = &self.src.rendezvous else {
            return;
        };
        let shards = r.shard_count() as u64;
        let due = now.ms() * shards / self.rdv_period_ms;
        for _ in 0..SWEEP_BUDGET {
            let cursor = self.rdv_cursor;
            if cursor >= due {
                return;
            }
            let next = cursor.max(due.saturating_sub(shards));
            self.rdv_cursor = next + 1;
            let removed = r.expire_shard((next % shards) as usize, now.secs());
            if removed > 0 {
                log::trace!("expired {removed} rendezvous registrations");
            }
        }
    }

    /// Log the peers evicted since the last line, at most once a minute.
    fn log_evictions(&mut self, now_ms: u64) {
        if now_ms < self.evict_log_at {
            return;
        }
        self.evict_log_at = now_ms + EVICT_LOG_MS;
        let swarm = self.src.tracker.swarm();
        let t = swarm.totals();
        let before = std::mem::replace(&mut self.evicted_logged, t.evicted_total());
        let n = t.evicted_total().saturating_sub(before);
        if n > 0 {
            let limits = swarm.limits();
            let bound = |v: u64| match v {
                0 => "no limit".to_string(),
                v => v.to_string(),
            };
            log::warn!(
                "evicted {n} peers since the last report to stay within bounds (total by reason: {}); \
                 the map holds {} peers in {} torrents, {} MiB of --max-memory {} bytes, --max-peers {}",
                crate::swarm::Eviction::ALL
                    .map(|e| format!("{} {}", e.label(), t.evicted[e as usize]))
                    .join(", "),
                t.peers(),
                t.torrents,
                t.bytes >> 20,
                bound(limits.max_bytes),
                bound(limits.max_peers),
            );
        }
    }
}

/// Shards the relief sweep tallies or sweeps per turn ([`crate::swarm::Swarm::relieve`]):
/// 1024 shards of a 20 M-peer map take about 64 turns, each a few milliseconds.
const RELIEF_SHARDS: usize = 32;
/// Evictions are logged at most this often.
const EVICT_LOG_MS: u64 = 60_000;

/// Counters the stats line reports as rates, in this order.
const STATS_SERIES: usize = 8;

/// The periodic one-line summary.
#[derive(Debug)]
struct StatsLine {
    every_ms: Option<u64>,
    next_ms: u64,
    /// When `last` was read: rates divide by the time that really passed, as
    /// a busy or stalled loop logs later than `every_ms` after the last line.
    last_ms: u64,
    last: [u64; STATS_SERIES],
}

impl StatsLine {
    fn starting(every_ms: Option<u64>, now_ms: u64) -> StatsLine {
        StatsLine {
            every_ms,
            next_ms: now_ms + every_ms.unwrap_or(0),
            last_ms: now_ms,
            last: [0; STATS_SERIES],
        }
    }

    /// Per-second rates of the counts `cur` since the last line, if a line
    /// is due.
    fn rates<const N: usize>(&mut self, now_ms: u64, cur: [u64; N]) -> Option<[f64; N]> {
        let every = self.every_ms?;
        if now_ms < self.next_ms {
            return None;
        }
        let secs = (now_ms.saturating_sub(self.last_ms) as f64 / 1000.0).max(0.001);
        let rates = std::array::from_fn(|i| {
            cur[i].wrapping_sub(self.last.get(i).copied().unwrap_or(0)) as f64 / secs
        });
        self.next_ms = now_ms + every;
        self.last_ms = now_ms;
        for (l, c) in self.last.iter_mut().zip(cur) {
            *l = c;
        }
        Some(rates)
    }

    fn maybe_log(&mut self, src: &Sources, now_ms: u64) {
        if self.every_ms.is_none() || now_ms < self.next_ms {
            return;
        }
        let r = &src.registry;
        let cur: [u64; STATS_SERIES] = [
            r.requests_of(Kind::Connect),
            r.requests_of(Kind::Announce),
            r.requests_of(Kind::Scrape),
            r.requests_over(Proto::Rendezvous),
            r.requests_over(Proto::Http),
            r.responses_of(Kind::Error),
            r.rejects_total(),
            r.drops_total(),
        ];
        let Some([connect, announce, scrape, rdv, http, errors, rejects, drops]) =
            self.rates(now_ms, cur)
        else {
            return;
        };
        let t = src.tracker.swarm().totals();
        // Only when the service is on: the registry read locks each of its
        // shards once, once per line.
        let rendezvous = src.rendezvous.as_ref().map(|s| {
            format!(
                "; rendezvous {} req/s, {} registrations",
                rate(rdv),
                s.registry().stats().entries
            )
        });
        let http = src.http.then(|| format!(", http {}/s", rate(http)));
        let interval = match r.interval_range() {
            Some((lo, hi)) if lo == hi => format!("; interval {lo} s"),
            Some((lo, hi)) => format!("; interval {lo}-{hi} s"),
            None => String::new(),
        };
        log::info!(
            "stats: {} req/s (connect {}/s, announce {}/s, scrape {}/s{}); errors {}/s, rejects {}/s, drops {}/s; {} torrents, {} peers ({} seeders, {} leechers){}{}",
            rate(connect + announce + scrape),
            rate(connect),
            rate(announce),
            rate(scrape),
            http.as_deref().unwrap_or(""),
            rate(errors),
            rate(rejects),
            rate(drops),
            t.torrents,
            t.peers(),
            t.seeders4 + t.seeders6,
            t.leechers4 + t.leechers6,
            interval,
            rendezvous.as_deref().unwrap_or(""),
        );
    }
}

/// A rate as a person reads it: two significant digits below 1 (an idle
/// tracker's 0.017/s is not "0"), one decimal below 100, whole above.
fn rate(x: f64) -> String {
    if x <= 0.0 {
        "0".into()
    } else if x < 0.001 {
        "<0.001".into()
    } else if x < 1.0 {
        let decimals = (1.0 - x.log10().floor()) as usize;
        format!("{x:.decimals$}")
    } else if x < 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::swarm::{Announce, Peer4, Role};
    use crate::tracker::TrackerConfig;
    use std::net::Ipv4Addr;

    #[test]
    fn stats_rates_divide_by_the_time_that_passed() {
        let mut line = StatsLine::starting(Some(1000), 0);
        assert_eq!(line.rates(999, [5, 5, 5, 5]), None, "not due yet");
        // A loop that was busy logs late: 300 announces in 3 s are 100/s,
        // not 300/s over the configured 1 s.
        assert_eq!(
            line.rates(3000, [0, 300, 30, 3]),
            Some([0.0, 100.0, 10.0, 1.0])
        );
        assert_eq!(line.rates(3500, [0, 400, 30, 3]), None);
        assert_eq!(
            line.rates(5000, [20, 400, 30, 9]),
            Some([10.0, 50.0, 0.0, 3.0])
        );
        assert_eq!(
            StatsLine::starting(None, 0).rates(10_000, [1, 1, 1, 1]),
            None
        );
    }

    #[test]
    fn rates_read_as_fractions_when_small() {
        assert_eq!(rate(0.0), "0");
        assert_eq!(rate(1.0 / 60.0), "0.017");
        assert_eq!(rate(0.1), "0.10");
        assert_eq!(rate(0.25), "0.25");
        assert_eq!(rate(0.0004), "<0.001");
        assert_eq!(rate(3.04), "3.0");
        assert_eq!(rate(99.94), "99.9");
        assert_eq!(rate(12345.6), "12346");
    }

    /// With a 4 s peer timeout, 64 shards per 250 ms idle tick cannot keep
    /// up with 1024 shards a second unless a turn sweeps more: every shard
    /// must be swept within its period when the loop only wakes when idle.
    #[test]
    fn an_idle_tracker_sweeps_every_shard_within_its_period() {
        let tracker = Arc::new(Tracker::new(TrackerConfig {
            peer_timeout: 4,
            interval: 2,
            ..TrackerConfig::default()
        }));
        let swarm = tracker.swarm();
        for i in 0..300u32 {
            let mut info_hash = [0u8; 20];
            info_hash[..4].copy_from_slice(&i.to_be_bytes());
            let req = Announce {
                info_hash,
                addr: (Ipv4Addr::new(10, 0, 0, 1), 6881),
                role: Role::Seeder,
                completed: false,
                now: 0,
                want: 0,
                random: (0, 0),
                peer_id: None,
                emit_ids: false,
            };
            swarm.announce::<Peer4>(&req, |_, _| {});
        }
        let (clock, _) = Clock::manual();
        let src = Sources {
            tracker: Arc::clone(&tracker),
            registry: Arc::new(Registry::default()),
            api: None,
            rendezvous: None,
            stats_interval: None,
            http: false,
            links: Vec::new(),
        };
        let mut hk = Housekeeping::new(src, &clock);
        // An idle loop: one turn per IDLE_TICK.
        let tick = IDLE_TICK.as_millis() as u64;
        let mut ms = 0;
        while ms <= 4_000 {
            hk.turn(Now::from_ms(ms));
            ms += tick;
        }
        assert_eq!(swarm.totals().peers(), 300, "nobody expires early");
        // Stale from t = 5 s; the sweep period is 1 s: gone by 6 s and a tick.
        while ms <= 6_000 + tick {
            hk.turn(Now::from_ms(ms));
            ms += tick;
        }
        assert_eq!(swarm.totals().peers(), 0, "every shard was swept");
    }
}
