//! What `shoal bench` runs: [`BenchConfig`], its defaults (aquatic's load
//! tester's) and the limits [`BenchConfig::validate`] enforces, which keep
//! memory, threads and time bounded whatever the flags say.

use super::worker;
use crate::client::TrackerUrl;
use std::time::Duration;

/// The longest run accepted.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// Limits that keep memory and threads bounded.
pub const MAX_WORKERS: usize = 64;
pub const MAX_SOCKETS: usize = 1024;
pub const MAX_PEERS: u32 = 50_000_000;

/// What to run. [`BenchConfig::default`] mirrors `aquatic_udp_load_test`'s
/// defaults (1 worker, 4 sockets, 1 M torrents, 2 M peers, connect:announce:scrape
/// = 50:50:1, 30 peers wanted, up to 10 hashes per scrape, 75 % seeders). The
/// window of 16 per socket (64 in flight) saturates a one-worker tracker on
/// loopback without piling up queueing delay: 4 per socket already reaches the
/// same throughput at a quarter of the latency, 64 only adds latency.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// `udp://` tracker to load; `None` starts an in-process shoal on 127.0.0.1.
    pub target: Option<TrackerUrl>,
    pub duration: Duration,
    pub workers: usize,
    /// Sockets per worker, each with its own source address when possible.
    pub sockets: usize,
    /// Requests in flight per socket (1..=4096).
    pub window: usize,
    /// A request unanswered this long is counted lost.
    pub timeout: Duration,
    pub torrents: u32,
    pub peers: u32,
    /// Request mix weights.
    pub connect: u32,
    pub announce: u32,
    pub scrape: u32,
    /// `num_want` of announces; `None` asks for the tracker's default.
    pub numwant: Option<u32>,
    /// Most hashes per scrape (each scrape asks for 1..=this many).
    pub scrape_max: usize,
    pub seeder_ratio: f64,
    /// Seed of the population (torrents, peers, ids): the same seed gives the same population.
    pub seed: u64,
    /// Worker threads of the in-process shoal.
    pub server_workers: usize,
    /// Allow targets outside 127.0.0.0/8 and ::1.
    pub allow_remote: bool,
    /// Print a progress line on stderr every second.
    pub progress: bool,
    /// With a target: withdraw the simulated peers at the end (`stopped`
    /// announces) within these bounds; `None` keeps them (--keep-peers).
    pub withdraw: Option<Withdraw>,
}

/// The withdrawal's bounds over all workers: at most `rate` `stopped`
/// announces per second, sent for at most `within`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Withdraw {
    pub rate: u64,
    pub within: Duration,
}

impl Default for Withdraw {
    /// 50 000 per second, at most 30 s: a 10 s run at full speed on one
    /// core leaves about 200 000 started peers, withdrawn in about 4 s.
    fn default() -> Withdraw {
        Withdraw {
            rate: 50_000,
            within: Duration::from_secs(30),
        }
    }
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            target: None,
            duration: Duration::from_secs(10),
            workers: 1,
            sockets: 4,
            window: 16,
            timeout: Duration::from_secs(1),
            torrents: 1_000_000,
            peers: 2_000_000,
            connect: 50,
            announce: 50,
            scrape: 1,
            numwant: Some(30),
            scrape_max: 10,
            seeder_ratio: 0.75,
            seed: 0x5348_4f41_4c42_454e,
            server_workers: 1,
            allow_remote: false,
            progress: true,
            withdraw: Some(Withdraw::default()),
        }
    }
}

impl BenchConfig {
    /// Check every limit; the message names the flag.
    pub fn validate(&self) -> Result<(), String> {
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            return Err(format!(
                "--duration must be 1..={} seconds",
                MAX_DURATION.as_secs()
            ));
        }
        if self.workers == 0 || self.workers > MAX_WORKERS {
            return Err(format!("--workers must be 1..={MAX_WORKERS}"));
        }
        if self.sockets == 0 || self.workers * self.sockets > MAX_SOCKETS {
            return Err(format!(
                "--sockets must be at least 1, and workers × sockets at most {MAX_SOCKETS}"
            ));
        }
        if self.window == 0 || self.window > 1 << worker::SLOT_BITS {
            return Err(format!("--window must be 1..={}", 1 << worker::SLOT_BITS));
        }
        if self.timeout < Duration::from_millis(1) || self.timeout > Duration::from_secs(60) {
            return Err("--timeout must be 0.001..=60 seconds".into());
        }
        if self.torrents == 0 {
            return Err("--torrents must be at least 1".into());
        }
        if self.peers > MAX_PEERS || (self.peers as usize) < self.workers * self.sockets {
            return Err(format!(
                "--peers must be at least workers × sockets ({}) and at most {MAX_PEERS}",
                self.workers * self.sockets
            ));
        }
        let weights = u64::from(self.connect) + u64::from(self.announce) + u64::from(self.scrape);
        if weights == 0 || weights > u64::from(u32::MAX) {
            return Err("--connect, --announce and --scrape weights must not all be 0".into());
        }
        if self.scrape_max == 0 || self.scrape_max > worker::MAX_SCRAPE {
            return Err(format!("--scrape-max must be 1..={}", worker::MAX_SCRAPE));
        }
        if !(0.0..=1.0).contains(&self.seeder_ratio) {
            return Err("--seeders must be between 0 and 1".into());
        }
        if self.server_workers == 0 || self.server_workers > 1024 {
            return Err("--server-workers must be 1..=1024".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(BenchConfig::default().validate(), Ok(()));
        let bad = [
            BenchConfig {
                duration: Duration::from_secs(3601),
                ..Default::default()
            },
            BenchConfig {
                duration: Duration::ZERO,
                ..Default::default()
            },
            BenchConfig {
                workers: 0,
                ..Default::default()
            },
            BenchConfig {
                window: 5000,
                ..Default::default()
            },
            BenchConfig {
                peers: 2,
                ..Default::default()
            },
            BenchConfig {
                connect: 0,
                announce: 0,
                scrape: 0,
                ..Default::default()
            },
            BenchConfig {
                seeder_ratio: 1.5,
                ..Default::default()
            },
        ];
        for c in bad {
            assert!(c.validate().is_err(), "{c:?}");
        }
    }
}
