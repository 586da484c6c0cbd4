//! The tracker's own settings: what the sans-IO core and its swarm map need,
//! and the limits they must respect.
//!
//! The announce interval has three settings that hang together: the
//! interval itself, the spread of each reply around the current interval
//! (`interval_jitter`), and the longest interval an overloaded worker hands
//! out (`max_interval`). The peer timeout must exceed the longest interval
//! any reply can carry ([`TrackerConfig::longest_reply`]), or a peer told to
//! come back that late expires before it does.

/// Largest peer timeout: peer time stamps are 16-bit seconds (see the swarm's `Stamp`).
pub const MAX_PEER_TIMEOUT: u32 = 32_767;

/// Largest `--interval-jitter`: at 50 % the shortest reply is half the
/// current interval, which is the `min interval` an HTTP reply carries.
pub const MAX_INTERVAL_JITTER: u8 = 50;

/// `--max-interval`'s default is at most this (3 hours: the longest
/// interval trackers lists such as newTrackon accept).
pub const DEFAULT_MAX_INTERVAL_CAP: u32 = 3 * 3600;

/// Protocol and map settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerConfig {
    /// Announce interval sent to clients when the worker is not overloaded,
    /// seconds.
    pub interval: u32,
    /// Each reply's interval is drawn uniformly within ± this percent of the
    /// current interval (0..=[`MAX_INTERVAL_JITTER`]), so clients that
    /// announced together drift apart.
    pub interval_jitter: u8,
    /// Longest interval (before jitter) an overloaded worker hands out,
    /// seconds; `None`: [`TrackerConfig::default_max_interval`], lowered to
    /// fit under `peer_timeout`. Equal to `interval`: no adaptation.
    pub max_interval: Option<u32>,
    /// A peer that has not announced for this long is dropped, seconds.
    /// Longer than [`TrackerConfig::longest_reply`].
    pub peer_timeout: u32,
    /// Peers sent when a client asks for the default (`num_want` < 0).
    pub default_numwant: u32,
    /// Most peers sent in one reply (also capped by what fits in one datagram).
    pub max_numwant: u32,
    /// Most info hashes answered in one scrape; further hashes are not answered.
    pub max_scrape: u32,
    /// How long a UDP connection id stays valid, seconds.
    pub connection_id_lifetime: u32,
    /// Most peers held in all (0 = no limit): past it the stalest make room.
    pub max_peers: u64,
    /// Most bytes the swarm map accounts for (0 = no limit): past it the
    /// stalest peers make room. The command line's default is half of what
    /// the process may use.
    pub max_memory: u64,
    /// Most one torrent may hold, in percent of `max_peers` and of
    /// `max_memory` (1..=100): past it its stalest peer is replaced.
    pub max_torrent_share: u8,
    /// Shards of the swarm map (rounded up to a power of two).
    pub shards: usize,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        let (interval, interval_jitter) = (1800, 10);
        let max = TrackerConfig::default_max_interval(interval);
        TrackerConfig {
            interval,
            interval_jitter,
            max_interval: None,
            peer_timeout: TrackerConfig::default_peer_timeout(interval, interval_jitter, max),
            default_numwant: 50,
            max_numwant: 200,
            max_scrape: 74,
            connection_id_lifetime: 120,
            max_peers: 20_000_000,
            max_memory: 0,
            max_torrent_share: 10,
            shards: 1024,
        }
    }
}

impl TrackerConfig {
    /// `--max-interval`'s default for `interval`: four intervals, at most
    /// [`DEFAULT_MAX_INTERVAL_CAP`], never below the interval itself.
    pub fn default_max_interval(interval: u32) -> u32 {
        interval
            .saturating_mul(4)
            .min(DEFAULT_MAX_INTERVAL_CAP)
            .max(interval)
    }

    /// The longest interval a reply carries when the current interval is
    /// `interval` and replies spread by `jitter` percent (the same rounding
    /// as the replies themselves).
    pub fn longest_reply(interval: u32, jitter: u8) -> u32 {
        interval.saturating_add(spread(interval, jitter))
    }

    /// `--peer-timeout`'s default: the longest reply at `max_interval`,
    /// plus half the interval (the margin the old default, 1.5 × the
    /// interval, gave a late client), at most [`MAX_PEER_TIMEOUT`].
    pub fn default_peer_timeout(interval: u32, jitter: u8, max_interval: u32) -> u32 {
        TrackerConfig::longest_reply(max_interval, jitter)
            .saturating_add((interval / 2).max(1))
            .min(MAX_PEER_TIMEOUT)
    }

    /// The longest interval (before jitter) a worker hands out: the one
    /// given, or the default lowered until its longest reply fits under
    /// the peer timeout (never below the interval: [`Self::validate`]
    /// then names the flags that clash).
    pub fn max_interval(&self) -> u32 {
        if let Some(m) = self.max_interval {
            return m;
        }
        let mut m = TrackerConfig::default_max_interval(self.interval);
        if TrackerConfig::longest_reply(m, self.interval_jitter) >= self.peer_timeout {
            // The largest m whose longest reply is below the timeout: about
            // (timeout - 1) / (1 + jitter), then corrected for the rounding.
            let below = u64::from(self.peer_timeout.saturating_sub(1));
            let guess = below * 100 / (100 + u64::from(self.interval_jitter));
            m = u32::try_from(guess).unwrap_or(u32::MAX).min(m);
            while m > 0 && u64::from(TrackerConfig::longest_reply(m, self.interval_jitter)) > below
            {
                m -= 1;
            }
            while u64::from(TrackerConfig::longest_reply(m + 1, self.interval_jitter)) <= below {
                m += 1;
            }
        }
        m.max(self.interval)
    }

    /// Check every limit; the message names the offending flag.
    pub fn validate(&self) -> Result<(), String> {
        if self.interval == 0 {
            return Err("--interval must be at least 1 second".into());
        }
        if self.interval_jitter > MAX_INTERVAL_JITTER {
            return Err(format!(
                "--interval-jitter must be 0..={MAX_INTERVAL_JITTER} percent"
            ));
        }
        let max = self.max_interval();
        if max < self.interval {
            return Err(format!(
                "--max-interval ({max}) must be at least --interval ({})",
                self.interval
            ));
        }
        let longest = TrackerConfig::longest_reply(max, self.interval_jitter);
        if self.peer_timeout <= longest {
            let what = if max > self.interval {
                format!("--max-interval {max}")
            } else {
                format!("--interval {}", self.interval)
            };
            return Err(format!(
                "--peer-timeout ({}) must be longer than the longest interval handed out ({longest} s: {what} plus --interval-jitter {} %), or peers expire between announces",
                self.peer_timeout, self.interval_jitter
            ));
        }
        if self.peer_timeout > MAX_PEER_TIMEOUT {
            return Err(format!(
                "--peer-timeout must be at most {MAX_PEER_TIMEOUT} seconds"
            ));
        }
        if self.connection_id_lifetime < 120 {
            return Err("--connection-id-lifetime must be at least 120 seconds (BEP 15 clients use an id for up to 2 minutes)".into());
        }
        if self.connection_id_lifetime > 86_400 {
            return Err("--connection-id-lifetime must be at most 86400 seconds".into());
        }
        if self.max_numwant == 0 || self.default_numwant > self.max_numwant {
            return Err(format!(
                "--default-numwant ({}) must not exceed --max-numwant ({}), which must be at least 1",
                self.default_numwant, self.max_numwant
            ));
        }
        if self.max_scrape == 0 || self.max_scrape > 256 {
            return Err("--max-scrape must be 1..=256".into());
        }
        if self.shards == 0 || self.shards > 65_536 {
            return Err(format!("--shards must be 1..=65536, got {}", self.shards));
        }
        if self.max_torrent_share == 0 || self.max_torrent_share > 100 {
            return Err("--max-torrent-share must be 1..=100".into());
        }
        Ok(())
    }

    /// Settings that are valid but hurt clients, one message each (for a
    /// warning at start-up). `udp`: whether UDP is served (datagram limits).
    pub fn warnings(&self, udp: bool) -> Vec<String> {
        let mut w = Vec::new();
        if self.interval < 300 {
            w.push(format!(
                "--interval {} is under 5 minutes: clients announce that often (load), and trackers lists such as newTrackon treat it as misconfigured",
                self.interval
            ));
        } else if self.interval > DEFAULT_MAX_INTERVAL_CAP {
            w.push(format!(
                "--interval {} is over 3 hours: clients re-announce sooner on their own, swarms go stale, and trackers lists such as newTrackon treat it as misconfigured",
                self.interval
            ));
        }
        let max = self.max_interval();
        if max > DEFAULT_MAX_INTERVAL_CAP && max > self.interval {
            w.push(format!(
                "--max-interval {max} is over 3 hours: under load, clients would be told to wait longer than trackers lists such as newTrackon accept"
            ));
        }
        let (v4, v6) = (super::MAX_PEERS_V4, super::MAX_PEERS_V6);
        if udp && self.max_numwant as usize > v4 {
            w.push(format!(
                "--max-numwant {} is more than one datagram holds: UDP replies carry at most {v4} peers over IPv4 and {v6} over IPv6 (only HTTP replies can be longer)",
                self.max_numwant
            ));
        }
        w
    }
}

/// Half the width of the spread of replies around `interval` (rounded
/// down): a reply carries `interval - spread ..= interval + spread`.
#[inline]
pub(crate) fn spread(interval: u32, jitter: u8) -> u32 {
    (u64::from(interval) * u64::from(jitter) / 100) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_limits_name_their_flag() {
        assert_eq!(TrackerConfig::default().validate(), Ok(()));
        let bad = |f: fn(&mut TrackerConfig)| {
            let mut c = TrackerConfig::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert!(bad(|c| c.peer_timeout = c.interval).contains("--peer-timeout"));
        assert!(bad(|c| c.peer_timeout = MAX_PEER_TIMEOUT + 1).contains("--peer-timeout"));
        assert!(bad(|c| c.connection_id_lifetime = 60).contains("--connection-id-lifetime"));
        assert!(bad(|c| c.default_numwant = 500).contains("--max-numwant"));
        assert!(bad(|c| c.max_scrape = 0).contains("--max-scrape"));
        assert!(bad(|c| c.shards = 0).contains("--shards"));
        assert!(bad(|c| c.interval_jitter = 51).contains("--interval-jitter"));
        assert!(bad(|c| c.max_interval = Some(c.interval - 1)).contains("--max-interval"));
    }

    #[test]
    fn the_default_intervals_and_the_peer_timeout_that_covers_them() {
        let c = TrackerConfig::default();
        assert_eq!((c.interval, c.interval_jitter), (1800, 10));
        assert_eq!(c.max_interval(), 4 * 1800);
        assert_eq!(TrackerConfig::longest_reply(7200, 10), 7920);
        // The longest reply and half an interval's margin.
        assert_eq!(c.peer_timeout, 7920 + 900);
        // Four intervals, but never more than 3 hours nor less than one interval.
        assert_eq!(TrackerConfig::default_max_interval(3600), 10_800);
        assert_eq!(TrackerConfig::default_max_interval(20_000), 20_000);
        assert_eq!(TrackerConfig::default_max_interval(u32::MAX), u32::MAX);
        assert_eq!(
            TrackerConfig::default_peer_timeout(20_000, 50, 20_000),
            MAX_PEER_TIMEOUT
        );
    }

    #[test]
    fn a_given_peer_timeout_lowers_the_default_max_interval_to_fit() {
        let c = TrackerConfig {
            peer_timeout: 2700,
            ..TrackerConfig::default()
        };
        let m = c.max_interval();
        assert_eq!(m, 2454);
        assert!(TrackerConfig::longest_reply(m, 10) < 2700);
        assert!(TrackerConfig::longest_reply(m + 1, 10) >= 2700);
        assert_eq!(c.validate(), Ok(()));
        // Every timeout finds the largest max interval that fits, or the
        // interval itself, which validate() then refuses.
        for peer_timeout in 2..3000 {
            for jitter in [0, 10, 33, 50] {
                let c = TrackerConfig {
                    interval: 100,
                    interval_jitter: jitter,
                    peer_timeout,
                    ..TrackerConfig::default()
                };
                let m = c.max_interval();
                let fits = |m| TrackerConfig::longest_reply(m, jitter) < peer_timeout;
                if fits(100) {
                    assert!(
                        fits(m) && !fits(m + 1) || m == 400,
                        "{peer_timeout} {jitter}: {m}"
                    );
                    assert_eq!(c.validate(), Ok(()));
                } else {
                    assert_eq!(m, 100);
                    assert!(c.validate().unwrap_err().contains("--peer-timeout"));
                }
            }
        }
    }

    #[test]
    fn a_peer_timeout_below_the_longest_reply_is_refused_naming_the_flags() {
        let c = TrackerConfig {
            max_interval: Some(7200),
            peer_timeout: 2700,
            ..TrackerConfig::default()
        };
        let e = c.validate().unwrap_err();
        assert!(e.contains("--peer-timeout (2700)"), "{e}");
        assert!(
            e.contains("7920 s: --max-interval 7200 plus --interval-jitter 10 %"),
            "{e}"
        );
        // Without adaptation the interval and its jitter must fit.
        let c = TrackerConfig {
            peer_timeout: 1900,
            ..TrackerConfig::default()
        };
        let e = c.validate().unwrap_err();
        assert!(
            e.contains("1980 s: --interval 1800 plus --interval-jitter 10 %"),
            "{e}"
        );
    }

    #[test]
    fn values_that_hurt_clients_are_warned_about() {
        assert!(TrackerConfig::default().warnings(true).is_empty());
        let mut c = TrackerConfig {
            interval: 60,
            max_numwant: 500,
            ..TrackerConfig::default()
        };
        let w = c.warnings(true);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].starts_with("--interval 60 is under 5 minutes"),
            "{w:?}"
        );
        assert!(
            w[1].contains("at most 242 peers over IPv4 and 67 over IPv6"),
            "{w:?}"
        );
        c.interval = 4 * 3600;
        c.peer_timeout = MAX_PEER_TIMEOUT;
        let w = c.warnings(false);
        assert_eq!(w.len(), 1, "HTTP-only: long replies are fine: {w:?}");
        assert!(w[0].contains("over 3 hours"), "{w:?}");
        let c = TrackerConfig {
            max_interval: Some(4 * 3600),
            peer_timeout: MAX_PEER_TIMEOUT,
            ..TrackerConfig::default()
        };
        let w = c.warnings(false);
        assert!(
            w.len() == 1 && w[0].contains("--max-interval 14400"),
            "{w:?}"
        );
    }
}
