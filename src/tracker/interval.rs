//! The interval an announce reply carries, and how a worker's interval
//! follows its load. Both parts are pure: no clock, no sockets, and nothing
//! allocated after construction.
//!
//! - [`Intervals::reply`], per reply on a packet worker: the worker's
//!   current interval, spread uniformly by ± `--interval-jitter` with the
//!   worker's own generator, so clients that announced together (after a
//!   restart, a popular release, a network blip) drift apart instead of
//!   coming back as one wave every interval.
//! - [`Governor`], once a second per worker on the control thread: the
//!   interval that worker should hand out, from its measured [`Load`].
//!
//! # The control law
//!
//! **Load.** Over one period a worker was busy (not waiting in `poll`) a
//! fraction `u` of the time, handled `S` requests, and the kernel dropped
//! `D` datagrams at its sockets. The load ratio is
//! `ρ = u + D / S` ([`Load::ratio`]): its utilisation, plus the requests
//! lost per request answered. A CPU-bound worker (`u → 1`) is offered
//! `(S + D) / S` times what it can answer, which is what `ρ` then is;
//! below that, losses count in full however they came about (a socket
//! buffer too small for the bursts, a worker starved of the CPU), while a
//! few drops at moderate load (0.1 % lost at 50 % busy: `ρ = 0.501`) move
//! nothing. `ρ̄` is `ρ` through a first-order low-pass with time constant
//! [`LOAD_TAU_SECS`] (5 s): a burst shorter than that moves the interval
//! little.
//!
//! **Who arrives now.** A client answered at time `s` with interval `I(s)`
//! comes back at `s + I(s)`, so the re-announces arriving now were set by
//! the interval handed out about one (older) interval ago:
//! `I_ret = I(s*)`, `s*` the latest time with `s* + I(s*) ≤ now`, read from
//! a ring of the intervals handed out ([`Governor::returning`]). The
//! interval that brings today's arrivals down to [`LOAD_HIGH`] (90 %) of
//! capacity is `I* = I_ret · ρ̄ / 0.9`, clamped to `[--interval,
//! --max-interval]`.
//!
//! - **Rise**: when `I* > I`, `I ← I*`. `I*` is computed from `I_ret`, not
//!   from `I`, so the interval does not wind up while the clients told the
//!   new one are still away (a rise shows in the arrivals only one old
//!   interval later): it holds the level the measured overload asks for.
//! - **Hold**: while `ρ̄ ≥` [`LOAD_LOW`] (50 %), or while the clients
//!   coming back were told a shorter interval than the current one (the
//!   arrivals do not show the current interval's effect yet).
//! - **Release**: otherwise `I` falls linearly at [`RELEASE_RATE`]
//!   (0.2 s per s) towards `--interval`.
//!
//! **No oscillation.** Clients answered while the interval falls at rate
//! `β` come back `1 / (1 − β)` times as fast as they were answered (each
//! is told a little less than the one before), and the fall runs about one
//! interval before it shows. A release that starts below `ρ̄ = 0.5`
//! therefore raises the arrivals to at most `0.5 · 1.25 · 1.25 ≈ 0.78` of
//! capacity: below the 0.9 that makes the interval rise, so a release
//! cannot trigger the next rise, and between 0.5 and 0.9 nothing moves.
//!
//! **Time constants.** Rise: within about two `τ` (10 s) of an overload.
//! Hold: at least one interval after any rise. Release: `(I − --interval)
//! / 0.2` seconds, five base intervals per doubling: 7200 s back to 1800 s
//! takes 7.5 h. Faster would bring the clients back as a wave.

use super::config::{spread, TrackerConfig};

/// Above this filtered load ratio the interval rises (and it rises to
/// bring the load back to it).
pub const LOAD_HIGH: f64 = 0.9;
/// Below this filtered load ratio the interval may fall.
pub const LOAD_LOW: f64 = 0.5;
/// Time constant of the load ratio's low-pass filter, seconds.
pub const LOAD_TAU_SECS: f64 = 5.0;
/// How fast the interval falls once calm: seconds of interval per second.
pub const RELEASE_RATE: f64 = 0.2;

/// Entries of the ring of past intervals (their spacing is chosen so the
/// ring covers a quarter more than the longest reply).
const PAST: usize = 256;

/// The interval settings every reply reads: copied out of the
/// configuration once, so a reply does no more than a clamp, a multiply
/// and one draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intervals {
    base: u32,
    max: u32,
    jitter: u8,
}

impl Intervals {
    pub fn of(config: &TrackerConfig) -> Intervals {
        Intervals {
            base: config.interval,
            // Never below the base: `clamp` must not see them crossed.
            max: config.max_interval().max(config.interval),
            jitter: config.interval_jitter,
        }
    }

    /// `--interval`.
    pub fn base(&self) -> u32 {
        self.base
    }

    /// The interval a worker hands out at most (before jitter).
    pub fn max(&self) -> u32 {
        self.max
    }

    /// `--interval-jitter`, percent.
    pub fn jitter(&self) -> u8 {
        self.jitter
    }

    /// Whether the interval can follow the load at all.
    pub fn adaptive(&self) -> bool {
        self.max > self.base
    }

    /// The interval replies spread around when a worker's governor asks
    /// for `current` (0: none yet).
    #[inline]
    pub fn centre(&self, current: u32) -> u32 {
        current.clamp(self.base, self.max)
    }

    /// What a worker's replies carry while its governor asks for `current`.
    pub fn spread(&self, current: u32) -> Spread {
        let centre = self.centre(current);
        let s = spread(centre, self.jitter);
        Spread {
            lo: centre - s,
            span: 2 * s + 1,
            // Never above the shortest reply: the jitter is at most 50 %.
            min: (centre / 2).max(1),
        }
    }

    /// One reply's interval: uniform in `centre ± jitter %`.
    pub fn reply(&self, rng: &mut fastrand::Rng, current: u32) -> u32 {
        self.spread(current).draw(rng)
    }

    /// An HTTP reply's `min interval`: half the current interval.
    pub fn min_interval(&self, current: u32) -> u32 {
        self.spread(current).min
    }
}

/// The intervals a worker's replies carry until its interval changes,
/// worked out once per change, so that a reply pays for one draw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spread {
    /// The shortest interval.
    lo: u32,
    /// How many values from `lo` on (1: no jitter; 0: not worked out yet).
    span: u32,
    /// The `min interval` of an HTTP reply.
    min: u32,
}

impl Spread {
    /// Not worked out yet.
    pub const UNSET: Spread = Spread {
        lo: 0,
        span: 0,
        min: 0,
    };

    /// Whether it is still to be worked out.
    #[inline(always)]
    pub fn is_unset(&self) -> bool {
        self.span == 0
    }

    /// One reply's interval: uniform over `lo .. lo + span`, by Lemire's
    /// multiply-shift of one 32-bit draw (within `span / 2^32` of uniform:
    /// the span is at most 2^15 + 1). No draw without jitter.
    #[inline(always)]
    pub fn draw(self, rng: &mut fastrand::Rng) -> u32 {
        if self.span <= 1 {
            return self.lo;
        }
        self.lo + ((u64::from(rng.u32(..)) * u64::from(self.span)) >> 32) as u32
    }

    /// The `min interval` of an HTTP reply.
    #[inline(always)]
    pub fn min_interval(self) -> u32 {
        self.min
    }
}

/// One period's measurement of a packet worker.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Load {
    /// Fraction of the period the worker was not waiting for work (0..=1).
    pub busy: f64,
    /// Requests it handled (answered, refused or ignored).
    pub handled: u64,
    /// Datagrams the kernel dropped at its sockets (receive buffer full).
    pub dropped: u64,
}

impl Load {
    /// Utilisation plus requests lost per request answered (see the
    /// module docs): `busy + dropped / handled`.
    pub fn ratio(&self) -> f64 {
        let busy = if self.busy.is_finite() {
            self.busy.clamp(0.0, 1.0)
        } else {
            0.0
        };
        busy + self.dropped as f64 / self.handled.max(1) as f64
    }
}

/// One worker's interval as its load moves it (see the module docs).
#[derive(Debug, Clone)]
pub struct Governor {
    base: f64,
    max: f64,
    /// The interval handed out now (before jitter), seconds.
    interval: f64,
    /// The filtered load ratio `ρ̄`.
    load: f64,
    /// Seconds since the governor started (the sum of the periods).
    clock: f64,
    /// Spacing of `past`, seconds.
    slot: f64,
    /// `(time, interval)` every `slot` seconds, oldest overwritten first.
    past: Box<[(f64, f64)]>,
    /// Where the next entry of `past` goes, and how many are filled.
    head: usize,
    filled: usize,
}

impl Governor {
    /// A governor at `intervals`' base, calm.
    pub fn new(intervals: Intervals) -> Governor {
        let (base, max) = (f64::from(intervals.base), f64::from(intervals.max));
        let longest = f64::from(TrackerConfig::longest_reply(
            intervals.max,
            intervals.jitter,
        ));
        let mut g = Governor {
            base,
            max,
            interval: base,
            load: 0.0,
            clock: 0.0,
            slot: (longest * 1.25 / PAST as f64).max(1.0),
            past: vec![(0.0, base); PAST].into_boxed_slice(),
            head: 0,
            filled: 0,
        };
        g.remember();
        g
    }

    /// The interval to hand out now, whole seconds.
    pub fn interval(&self) -> u32 {
        self.interval.round() as u32
    }

    /// The filtered load ratio `ρ̄`.
    pub fn load(&self) -> f64 {
        self.load
    }

    /// Take one period of `dt` seconds with load `load`; the interval to
    /// hand out from now on.
    pub fn step(&mut self, dt: f64, load: Load) -> u32 {
        if !(dt > 0.0 && dt.is_finite()) {
            return self.interval();
        }
        self.clock += dt;
        let alpha = 1.0 - (-dt / LOAD_TAU_SECS).exp();
        self.load += (load.ratio() - self.load) * alpha;
        let returning = self.returning();
        let wanted = (returning * self.load / LOAD_HIGH).clamp(self.base, self.max);
        if wanted > self.interval {
            self.interval = wanted;
        } else if self.load < LOAD_LOW && returning >= self.interval - 0.5 {
            self.interval = (self.interval - RELEASE_RATE * dt).max(self.base);
        }
        let last = self.head.checked_sub(1).unwrap_or(PAST - 1);
        if self.clock >= self.past[last].0 + self.slot {
            self.remember();
        }
        self.interval()
    }

    /// The interval the clients arriving now were told: the one handed out
    /// at the latest time `s` with `s + I(s) ≤ now`; before the governor's
    /// memory reaches back that far, the base.
    pub fn returning(&self) -> f64 {
        for k in 1..=self.filled {
            let (s, i) = self.past[(self.head + PAST - k) % PAST];
            if s + i <= self.clock {
                return i;
            }
        }
        self.base
    }

    fn remember(&mut self) {
        self.past[self.head] = (self.clock, self.interval);
        self.head = (self.head + 1) % PAST;
        self.filled = (self.filled + 1).min(PAST);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intervals(base: u32, max: u32, jitter: u8) -> Intervals {
        Intervals::of(&TrackerConfig {
            interval: base,
            max_interval: Some(max),
            interval_jitter: jitter,
            peer_timeout: TrackerConfig::default_peer_timeout(base, jitter, max),
            ..TrackerConfig::default()
        })
    }

    #[test]
    fn replies_spread_uniformly_within_the_jitter() {
        let iv = intervals(1800, 7200, 10);
        let mut rng = fastrand::Rng::with_seed(3);
        let mut seen = [0u32; 10];
        for _ in 0..100_000 {
            let r = iv.reply(&mut rng, 0);
            assert!((1620..=1980).contains(&r), "{r}");
            seen[((r - 1620) * 10 / 361) as usize] += 1;
        }
        // Ten equal bins of 10 000 each, within 5 %.
        for n in seen {
            assert!((9_500..=10_500).contains(&n), "{seen:?}");
        }
        // The current interval is clamped to [base, max], then spread.
        for _ in 0..1000 {
            assert!((6480..=7920).contains(&iv.reply(&mut rng, 99_999)));
            assert!((2700..=3300).contains(&iv.reply(&mut rng, 3000)));
        }
        assert_eq!(iv.min_interval(3000), 1500);
        // The min interval never exceeds the shortest reply, even at 50 %.
        let wide = intervals(3, 3, 50);
        for _ in 0..100 {
            assert!(wide.reply(&mut rng, 0) >= wide.min_interval(0));
        }
        // No jitter: no draw, the interval itself.
        let fixed = intervals(1800, 1800, 0);
        let mut a = fastrand::Rng::with_seed(9);
        assert_eq!(fixed.reply(&mut a, 5000), 1800);
        assert_eq!(a.u64(..), fastrand::Rng::with_seed(9).u64(..));
        assert!(!fixed.adaptive() && iv.adaptive());
    }

    #[test]
    fn load_ratio_is_utilisation_then_offered_over_capacity() {
        let l = |busy, handled, dropped| {
            Load {
                busy,
                handled,
                dropped,
            }
            .ratio()
        };
        assert_eq!(l(0.3, 1000, 0), 0.3);
        // Saturated: offered over answered.
        assert_eq!(l(1.0, 1000, 1000), 2.0);
        // Losing requests without being busy still counts them all.
        assert_eq!(l(0.4, 1000, 4000), 4.4);
        // A few drops at moderate load hardly count.
        assert_eq!(l(0.5, 1000, 1), 0.501);
        assert_eq!(l(7.0, 10, 0), 1.0);
        assert_eq!(l(f64::NAN, 10, 0), 0.0);
        assert_eq!(l(1.0, 0, 5), 6.0);
    }

    /// Steps of one second at a constant load until `secs`.
    fn run(g: &mut Governor, secs: u32, load: Load) -> Vec<u32> {
        (0..secs).map(|_| g.step(1.0, load)).collect()
    }

    const CALM: Load = Load {
        busy: 0.2,
        handled: 1000,
        dropped: 0,
    };

    fn overload(times: u64) -> Load {
        Load {
            busy: 1.0,
            handled: 1000,
            dropped: 1000 * (times - 1),
        }
    }

    #[test]
    fn calm_keeps_the_base_and_a_short_burst_moves_little() {
        let mut g = Governor::new(intervals(1800, 7200, 10));
        assert!(run(&mut g, 600, CALM).iter().all(|&i| i == 1800));
        // One second at 3x is a fifth of the filter's time constant.
        g.step(1.0, overload(3));
        assert!(g.interval() < 1800 * 13 / 10, "{}", g.interval());
    }

    #[test]
    fn overload_raises_the_interval_in_proportion_and_it_holds() {
        let mut g = Governor::new(intervals(1800, 7200, 10));
        // 2x what the worker answers: the interval goes to 2 / 0.9 of the
        // base within a few time constants, and not beyond while the
        // clients told it are still away (no wind-up).
        let seq = run(&mut g, 30, overload(2));
        let want = (1800.0 * 2.0 / LOAD_HIGH) as u32;
        assert!(seq[9] > 3000, "{seq:?}");
        assert!((want - 20..=want + 1).contains(&seq[29]), "{seq:?}");
        let seq = run(&mut g, 1500, overload(2));
        assert!(
            seq.iter().all(|&i| i <= want + 1),
            "wound up: {:?}",
            seq.last()
        );
        // Far beyond: capped.
        run(&mut g, 60, overload(20));
        assert_eq!(g.interval(), 7200);
    }

    #[test]
    fn calm_after_overload_holds_one_interval_then_releases_slowly_to_the_base() {
        let mut g = Governor::new(intervals(1800, 7200, 10));
        run(&mut g, 60, overload(3));
        let peak = g.interval();
        assert!(peak > 5000, "{peak}");
        // Calm at once: the clients told `peak` are away for `peak`, so
        // nothing moves for that long.
        let seq = run(&mut g, peak - 100, CALM);
        assert!(seq.iter().all(|&i| i == peak), "released early");
        // Once the clients told `peak` come back, a linear fall at
        // RELEASE_RATE, never below the base.
        let seq = run(&mut g, 400, CALM);
        assert!(seq.iter().any(|&i| i < peak), "no release");
        let seq = run(&mut g, 1000, CALM);
        let fell = f64::from(seq[0] - seq[999]);
        assert!(
            (198.0..=201.0).contains(&fell),
            "{} -> {}",
            seq[0],
            seq[999]
        );
        assert!(seq.windows(2).all(|w| w[1] <= w[0]));
        let left = ((f64::from(g.interval()) - 1800.0) / RELEASE_RATE) as u32 + 10;
        run(&mut g, left, CALM);
        assert_eq!(g.interval(), 1800);
    }

    #[test]
    fn a_load_in_the_dead_band_neither_rises_nor_falls() {
        let mut g = Governor::new(intervals(1800, 7200, 10));
        run(&mut g, 60, overload(2));
        let held = g.interval();
        let middling = Load {
            busy: 0.7,
            handled: 1000,
            dropped: 0,
        };
        assert!(run(&mut g, 20_000, middling).iter().all(|&i| i == held));
    }

    #[test]
    fn returning_reads_the_interval_clients_were_told() {
        let mut g = Governor::new(intervals(10, 40, 0));
        run(&mut g, 100, CALM);
        assert_eq!(g.returning(), 10.0);
        // Raised to 40 from t = 103: clients answered then return from
        // t = 143 on; at t = 110, those told 10 at t = 100 are arriving.
        run(&mut g, 10, overload(10));
        assert_eq!(g.interval(), 40);
        assert_eq!(g.returning(), 10.0, "t = 110: those told 10 at t = 100");
        run(&mut g, 35, CALM);
        assert!(g.returning() > 39.0, "t = 145: {}", g.returning());
    }

    #[test]
    fn no_adaptation_when_max_is_the_base() {
        let mut g = Governor::new(intervals(1800, 1800, 10));
        assert!(run(&mut g, 100, overload(5)).iter().all(|&i| i == 1800));
        assert_eq!(g.step(0.0, overload(5)), 1800);
        assert_eq!(g.step(f64::NAN, overload(5)), 1800);
    }
}
