//! The tracker's own settings: what the sans-IO core and its swarm map need,
//! and the limits they must respect.

/// Largest peer timeout: peer time stamps are 16-bit seconds (see the swarm's `Stamp`).
pub const MAX_PEER_TIMEOUT: u32 = 32_767;

/// Protocol and map settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerConfig {
    /// Announce interval sent to clients, seconds.
    pub interval: u32,
    /// A peer that has not announced for this long is dropped, seconds.
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
        TrackerConfig {
            interval: 1800,
            peer_timeout: 2700,
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
    /// Check every limit; the message names the offending flag.
    pub fn validate(&self) -> Result<(), String> {
        if self.interval == 0 {
            return Err("--interval must be at least 1 second".into());
        }
        if self.peer_timeout <= self.interval {
            return Err(format!(
                "--peer-timeout ({}) must be longer than --interval ({}), or every peer expires between announces",
                self.peer_timeout, self.interval
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
        } else if self.interval > 3 * 3600 {
            w.push(format!(
                "--interval {} is over 3 hours: clients re-announce sooner on their own, swarms go stale, and trackers lists such as newTrackon treat it as misconfigured",
                self.interval
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
        let w = c.warnings(false);
        assert_eq!(w.len(), 1, "HTTP-only: long replies are fine: {w:?}");
        assert!(w[0].contains("over 3 hours"), "{w:?}");
    }
}
