//! Time: the tracker's clock and the units it is read in.
//!
//! Three units meet in shoal, and each has one way in:
//! - **milliseconds since start** — loop timers, the rate limiter, HTTP
//!   time-outs: [`Now::ms`];
//! - **tracker seconds since start** — what the swarm stamps peers with and
//!   connection ids carry (a `u32`: 136 years): [`Now::secs`];
//! - **Unix seconds** — key expiries, the state file, the API: [`unix_now`],
//!   or [`Epoch::unix`] for a tracker reading.
//!
//! A loop reads the clock once per turn ([`Clock::now`]) and passes the
//! [`Now`] down: nothing below a loop reads the OS clock, so tests move time
//! by hand ([`Clock::Manual`]) and never sleep.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The tracker's clock.
#[derive(Debug, Clone)]
pub enum Clock {
    /// Real monotonic time since the clock was made.
    System(Instant),
    /// Time set by hand in whole seconds, for tests of expiry and
    /// connection-id lifetimes.
    Manual(Arc<AtomicU32>),
}

impl Clock {
    /// A clock at zero now.
    pub fn system() -> Clock {
        Clock::System(Instant::now())
    }

    /// A manual clock and the handle that moves it (seconds).
    pub fn manual() -> (Clock, Arc<AtomicU32>) {
        let secs = Arc::new(AtomicU32::new(0));
        (Clock::Manual(Arc::clone(&secs)), secs)
    }

    /// One reading. Manual clocks move in whole seconds.
    pub fn now(&self) -> Now {
        Now::from_ms(match self {
            Clock::System(start) => start.elapsed().as_millis() as u64,
            Clock::Manual(secs) => u64::from(secs.load(Ordering::Relaxed)) * 1000,
        })
    }
}

/// One reading of a [`Clock`]: time since the tracker started. Both units
/// are kept: the seconds are what every request reads, so they are divided
/// out once per reading, not once per request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Now {
    ms: u64,
    secs: u32,
}

impl Now {
    pub const fn from_ms(ms: u64) -> Now {
        Now {
            ms,
            secs: (ms / 1000) as u32,
        }
    }

    /// A reading at whole second `secs` (tests and benches).
    pub const fn from_secs(secs: u32) -> Now {
        Now {
            ms: secs as u64 * 1000,
            secs,
        }
    }

    /// Milliseconds since start.
    pub const fn ms(self) -> u64 {
        self.ms
    }

    /// Whole tracker seconds since start: the swarm's and the connection
    /// ids' unit. Wraps after 136 years of uptime.
    pub const fn secs(self) -> u32 {
        self.secs
    }

    /// Whole seconds since start, unwrapped (uptime).
    pub const fn uptime_secs(self) -> u64 {
        self.ms / 1000
    }
}

/// Wall-clock Unix seconds (0 if the system clock is before 1970).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The Unix time of a tracker clock's second 0: turns tracker readings into
/// Unix seconds without reading the system clock per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch {
    unix_at_zero: u64,
}

impl Epoch {
    /// Anchor `clock` to the system's wall clock now.
    pub fn of(clock: &Clock) -> Epoch {
        Epoch::anchored(unix_now(), clock.now())
    }

    /// The epoch at which reading `now` happened at Unix second `unix`.
    pub fn anchored(unix: u64, now: Now) -> Epoch {
        Epoch {
            unix_at_zero: unix.saturating_sub(now.uptime_secs()),
        }
    }

    /// Unix seconds at tracker second 0.
    pub const fn unix_at_zero(self) -> u64 {
        self.unix_at_zero
    }

    /// Unix seconds at reading `now`.
    pub const fn unix(self, now: Now) -> u64 {
        self.unix_at_zero + now.uptime_secs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_convert_between_units() {
        let now = Now::from_ms(12_999);
        assert_eq!((now.ms(), now.secs(), now.uptime_secs()), (12_999, 12, 12));
        assert_eq!(Now::from_secs(7).ms(), 7000);
        let epoch = Epoch::anchored(1_700_000_100, Now::from_secs(100));
        assert_eq!(epoch.unix_at_zero(), 1_700_000_000);
        assert_eq!(epoch.unix(Now::from_ms(5_500)), 1_700_000_005);
        // A clock that claims more uptime than Unix time does not underflow.
        assert_eq!(Epoch::anchored(5, Now::from_secs(10)).unix_at_zero(), 0);
    }

    #[test]
    fn a_manual_clock_moves_only_by_hand() {
        let (clock, secs) = Clock::manual();
        assert_eq!(clock.now(), Now::from_secs(0));
        secs.store(42, Ordering::Relaxed);
        assert_eq!(clock.now().secs(), 42);
        assert_eq!(clock.now().ms(), 42_000);
    }
}
