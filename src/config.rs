//! The plain, validated configuration the tracker and its server run with.
//!
//! Built by [`crate::cli`] from flags and environment variables, or directly by
//! tests and embedders. [`Config::validate`] is the one place limits are checked.

use crate::api::ApiToken;
use crate::limit::LimitConfig;
use crate::rendezvous::RendezvousConfig;
use std::net::SocketAddr;
use std::time::Duration;

/// Protocol settings: what the sans-IO core needs.
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
    /// stalest peers make room. The CLI's default is half of what the process
    /// may use ([`crate::config::memory_limit`]).
    pub max_memory: u64,
    /// Most one torrent may hold, in percent of `max_peers` and of
    /// `max_memory` (1..=100): past it its stalest peer is replaced.
    pub max_torrent_share: u8,
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
        }
    }
}

/// Everything `shoal serve` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub tracker: TrackerConfig,
    /// UDP addresses to serve. Empty means none (HTTP only).
    pub udp: Vec<SocketAddr>,
    /// HTTP addresses to serve. Empty means no HTTP.
    pub http: Vec<SocketAddr>,
    /// Worker threads, each with its own sockets and event loop.
    pub workers: usize,
    /// Shards in the swarm map (rounded up to a power of two).
    pub shards: usize,
    /// Period of the one-line stats summary in the log; `None` = off.
    pub stats_interval: Option<Duration>,
    /// Socket receive/send buffer size asked of the kernel, bytes.
    pub socket_buffer: usize,
    /// HTTP: most open connections per worker.
    pub http_max_connections: usize,
    /// HTTP: a connection idle (or stuck mid-request) this long is closed.
    pub http_idle_timeout: Duration,
    /// HTTP: take the client address from this header (`X-Forwarded-For`, `X-Real-IP`).
    pub http_client_ip_header: Option<String>,
    /// Also serve `/metrics` and `/health` on the HTTP tracker addresses
    /// (`--http-metrics`). Off by default: the tracker port is public, and
    /// the counters are the operator's business.
    pub http_metrics: bool,
    /// Operator listeners (`--metrics`): `/metrics` and `/health` only, over
    /// the same HTTP connection handling and limits; served with or without
    /// the HTTP tracker.
    pub metrics: Vec<SocketAddr>,
    /// Whether the addresses in `udp`/`http` are the built-in defaults: a default
    /// IPv6 address that cannot be bound (no IPv6 on the host) is then skipped
    /// with a warning instead of failing start-up.
    pub default_addrs: bool,
    /// Sobani rendezvous addresses (UDP, served by the same workers). Empty = off.
    pub rendezvous: Vec<SocketAddr>,
    /// Rendezvous settings; checked even when `rendezvous` is empty, so a
    /// mistyped `--rendezvous-*` flag is reported, not ignored.
    pub rendezvous_settings: RendezvousConfig,
    /// Warm restart (`--state-file`): the swarm is loaded from this file at
    /// start and written to it at exit and every `state_interval`. `None` = off.
    pub state_file: Option<std::path::PathBuf>,
    /// Period of the state file's writes while running; `None` = at exit only.
    pub state_interval: Option<Duration>,
    /// Management API listeners (`--api`), over the same HTTP connection
    /// handling and limits. Empty = off.
    pub api: Vec<SocketAddr>,
    /// The API's bearer token; required when `api` is not empty.
    pub api_token: Option<ApiToken>,
    /// `--cluster`: share the swarm with other instances through Redis; `None` = alone.
    pub cluster: Option<crate::cluster::ClusterConfig>,
    /// Per-address limits: rate, HTTP connections, trusted proxies.
    pub limits: LimitConfig,
}

/// Default port, as most public trackers use.
pub const DEFAULT_PORT: u16 = 6969;

/// Largest peer timeout: peer time stamps are 16-bit seconds (see `swarm::peers::Stamp`).
pub const MAX_PEER_TIMEOUT: u32 = 32_767;

impl Default for Config {
    fn default() -> Self {
        Config {
            tracker: TrackerConfig::default(),
            udp: vec![
                SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)),
                SocketAddr::from(([0u16; 8], DEFAULT_PORT)),
            ],
            http: Vec::new(),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            shards: 1024,
            stats_interval: None,
            socket_buffer: 8 << 20,
            http_max_connections: 1024,
            http_idle_timeout: Duration::from_secs(15),
            http_client_ip_header: None,
            http_metrics: false,
            metrics: Vec::new(),
            default_addrs: true,
            rendezvous: Vec::new(),
            rendezvous_settings: RendezvousConfig::default(),
            state_file: None,
            state_interval: Some(Duration::from_secs(300)),
            api: Vec::new(),
            api_token: None,
            cluster: None,
            limits: LimitConfig::default(),
        }
    }
}

impl Config {
    /// A configuration for tests and embedders: one worker on the given UDP address.
    pub fn for_udp(addr: SocketAddr) -> Config {
        Config {
            udp: vec![addr],
            workers: 1,
            default_addrs: false,
            ..Config::default()
        }
    }

    /// Check every limit; the message names the offending option.
    pub fn validate(&self) -> Result<(), String> {
        let t = &self.tracker;
        if self.udp.is_empty() && self.http.is_empty() && self.rendezvous.is_empty() {
            return Err(
                "nothing to serve: UDP is off (--no-udp) and no --http or --rendezvous address is given".into(),
            );
        }
        self.rendezvous_settings.validate()?;
        if let Some(c) = &self.cluster {
            c.validate()?;
        }
        self.check_duplicates()?;
        if self.workers == 0 || self.workers > 1024 {
            return Err(format!("--workers must be 1..=1024, got {}", self.workers));
        }
        if t.interval == 0 {
            return Err("--interval must be at least 1 second".into());
        }
        if t.peer_timeout <= t.interval {
            return Err(format!(
                "--peer-timeout ({}) must be longer than --interval ({}), or every peer expires between announces",
                t.peer_timeout, t.interval
            ));
        }
        if t.peer_timeout > MAX_PEER_TIMEOUT {
            return Err(format!(
                "--peer-timeout must be at most {MAX_PEER_TIMEOUT} seconds"
            ));
        }
        if t.connection_id_lifetime < 120 {
            return Err("--connection-id-lifetime must be at least 120 seconds (BEP 15 clients use an id for up to 2 minutes)".into());
        }
        if t.connection_id_lifetime > 86_400 {
            return Err("--connection-id-lifetime must be at most 86400 seconds".into());
        }
        if t.max_numwant == 0 || t.default_numwant > t.max_numwant {
            return Err(format!(
                "--default-numwant ({}) must not exceed --max-numwant ({}), which must be at least 1",
                t.default_numwant, t.max_numwant
            ));
        }
        if t.max_scrape == 0 || t.max_scrape > 256 {
            return Err("--max-scrape must be 1..=256".into());
        }
        if self.shards == 0 || self.shards > 65_536 {
            return Err(format!("--shards must be 1..=65536, got {}", self.shards));
        }
        if self.http_max_connections == 0 {
            return Err("--http-max-connections must be at least 1".into());
        }
        if !self.api.is_empty() && self.api_token.is_none() {
            return Err(
                "--api needs a token: give --api-token, SHOAL_API_TOKEN or --api-token-file".into(),
            );
        }
        if self.limits.rate_limit > 0 && self.limits.burst() == 0 {
            return Err("--rate-burst must be at least 1".into());
        }
        Ok(())
    }
}

impl Config {
    /// The effective settings in one line, for the start-up log (the
    /// listeners are logged one per line once bound).
    pub fn summary(&self) -> String {
        let t = &self.tracker;
        let max_peers = match t.max_peers {
            0 => "no limit".to_string(),
            n => n.to_string(),
        };
        let max_memory = match t.max_memory {
            0 => "no limit".to_string(),
            n => format!("{} MiB", n >> 20),
        };
        let share = t.max_torrent_share;
        format!(
            "config: interval {} s, peer timeout {} s, numwant {} (max {}), max scrape {}, max peers {max_peers}, max memory {max_memory} (one torrent at most {share} %), connection id lifetime {} s, workers {}, shards {}, socket buffer {} bytes asked, HTTP: {} connections per worker, {} s idle timeout{}{}",
            t.interval,
            t.peer_timeout,
            t.default_numwant,
            t.max_numwant,
            t.max_scrape,
            t.connection_id_lifetime,
            self.workers,
            self.shards,
            self.socket_buffer,
            self.http_max_connections,
            self.http_idle_timeout.as_secs(),
            match &self.http_client_ip_header {
                Some(h) => format!(", client address from {h}"),
                None => String::new(),
            },
            if self.http_metrics {
                ", /metrics and /health on the tracker port"
            } else {
                ""
            },
        ) + &self.limits_summary()
    }

    /// The per-address limits, for [`Config::summary`].
    fn limits_summary(&self) -> String {
        let l = &self.limits;
        let per_ip = match l.http_max_connections_per_ip {
            0 => "no per-address cap".to_string(),
            n => format!("{n} per address"),
        };
        let rate = match l.rate_limit {
            0 => "off".to_string(),
            n => format!("{n}/s per address, bursts of {}", l.burst()),
        };
        format!(", {per_ip}; rate limit {rate}")
    }

    /// Settings that are valid but hurt clients: one message each, for a
    /// warning at start-up.
    pub fn warnings(&self) -> Vec<String> {
        let t = &self.tracker;
        let mut w = Vec::new();
        if t.interval < 300 {
            w.push(format!(
                "--interval {} is under 5 minutes: clients announce that often (load), and trackers lists such as newTrackon treat it as misconfigured",
                t.interval
            ));
        } else if t.interval > 3 * 3600 {
            w.push(format!(
                "--interval {} is over 3 hours: clients re-announce sooner on their own, swarms go stale, and trackers lists such as newTrackon treat it as misconfigured",
                t.interval
            ));
        }
        let v4 = crate::tracker::MAX_PEERS_V4;
        let v6 = crate::tracker::MAX_PEERS_V6;
        if !self.udp.is_empty() && t.max_numwant as usize > v4 {
            w.push(format!(
                "--max-numwant {} is more than one datagram holds: UDP replies carry at most {v4} peers over IPv4 and {v6} over IPv6 (only HTTP replies can be longer)",
                t.max_numwant
            ));
        }
        // A proxy on another host reaches a listener that is not loopback-only.
        if self.http_client_ip_header.is_some()
            && self.limits.trusted_proxies == LimitConfig::default().trusted_proxies
            && self.http.iter().any(|a| !a.ip().is_loopback())
        {
            w.push(
                "--http-client-ip-header is believed only from --http-trusted-proxy, by default loopback (127.0.0.0/8, ::1/128): if the proxy runs on another host, name its address, or every client behind it is seen as the proxy".into(),
            );
        }
        w
    }

    /// The same fixed address twice for one protocol (in one list, or across
    /// `--udp`/`--rendezvous` or `--http`/`--metrics`) is a configuration
    /// error naming both flags: binding it would fail the in-use probe with a
    /// misleading "address already in use".
    fn check_duplicates(&self) -> Result<(), String> {
        let udp = [("--udp", &self.udp), ("--rendezvous", &self.rendezvous)];
        let tcp = [
            ("--http", &self.http),
            ("--metrics", &self.metrics),
            ("--api", &self.api),
        ];
        for lists in [&udp[..], &tcp[..]] {
            let mut seen: Vec<(&str, SocketAddr)> = Vec::new();
            for &(flag, list) in lists {
                for &a in list.iter().filter(|a| a.port() != 0) {
                    if let Some((first, _)) = seen.iter().find(|(_, b)| *b == a) {
                        return Err(if *first == flag {
                            format!("{flag} {a} is given twice")
                        } else {
                            format!("{flag} {a} is also a {first} address; give each its own port")
                        });
                    }
                    seen.push((flag, a));
                }
            }
        }
        Ok(())
    }
}

/// What this process may use, in bytes, and where that figure comes from:
/// the least of its cgroup's memory limit (cgroup v2 `memory.max` of its own
/// cgroup and each ancestor, or v1 `memory.limit_in_bytes`), its address-space
/// limit (`RLIMIT_AS`, as `ulimit -v` sets it, less what is mapped already:
/// threads and allocator arenas take address space the map never sees) and
/// physical RAM (`MemTotal`). `None` where none can be read (not Linux).
/// Read once at start-up.
pub fn memory_limit() -> Option<(u64, &'static str)> {
    memory_limit_from(|p| std::fs::read_to_string(p).ok())
}

/// [`memory_limit`] over any file reader (tests give it a fake /proc and /sys).
fn memory_limit_from(read: impl Fn(&str) -> Option<String>) -> Option<(u64, &'static str)> {
    let mut best: Option<(u64, &'static str)> = None;
    let mut offer = |bytes: Option<u64>, source: &'static str| {
        if let Some(b) = bytes.filter(|&b| b > 0 && b < 1 << 60) {
            if best.is_none_or(|(x, _)| b < x) {
                best = Some((b, source));
            }
        }
    };
    let kb = |text: Option<String>, key: &str| {
        text?
            .lines()
            .find_map(|l| l.strip_prefix(key))?
            .split_whitespace()
            .next()?
            .parse::<u64>()
            .ok()
            .map(|k| k * 1024)
    };
    offer(kb(read("/proc/meminfo"), "MemTotal:"), "physical memory");
    // /proc/self/limits: "Max address space  unlimited  unlimited  bytes".
    let rlimit_as = read("/proc/self/limits").and_then(|l| {
        let line = l.lines().find(|l| l.starts_with("Max address space"))?;
        line.split_whitespace().nth(3)?.parse::<u64>().ok()
    });
    if let Some(limit) = rlimit_as {
        let mapped = kb(read("/proc/self/status"), "VmSize:").unwrap_or(0);
        offer(
            Some(limit.saturating_sub(mapped)),
            "address-space limit (ulimit -v)",
        );
    }
    let cgroups = read("/proc/self/cgroup").unwrap_or_default();
    for line in cgroups.lines() {
        let mut f = line.splitn(3, ':');
        let (_, controllers, path) = (f.next(), f.next(), f.next().unwrap_or("/"));
        let (root, file) = match controllers {
            Some("") => ("/sys/fs/cgroup", "memory.max"),
            Some(c) if c.split(',').any(|c| c == "memory") => {
                ("/sys/fs/cgroup/memory", "memory.limit_in_bytes")
            }
            _ => continue,
        };
        // The cgroup itself and its ancestors (the tightest applies); inside
        // a container the path may be the host's, so the mount's root counts too.
        let mut dir = path.trim_end_matches('/').to_string();
        loop {
            let value = read(&format!("{root}{dir}/{file}"));
            offer(
                value.and_then(|v| v.trim().parse().ok()),
                "cgroup memory limit",
            );
            match dir.rfind('/') {
                Some(i) => dir.truncate(i),
                None => break,
            }
        }
    }
    best
}

/// The default memory budget of the swarm map: half of [`memory_limit`],
/// leaving the other half to the process itself (buffers, threads, the
/// allocator's slack); 0 (no budget) where no limit can be read.
pub fn default_max_memory() -> (u64, &'static str) {
    memory_limit().map_or((0, "no limit found"), |(b, source)| (b / 2, source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_limits_are_checked() {
        assert_eq!(Config::default().validate(), Ok(()));
        let mut c = Config::default();
        c.tracker.peer_timeout = c.tracker.interval;
        assert!(c.validate().unwrap_err().contains("--peer-timeout"));
        let mut c = Config::default();
        c.tracker.connection_id_lifetime = 60;
        assert!(c
            .validate()
            .unwrap_err()
            .contains("--connection-id-lifetime"));
        let mut c = Config::default();
        c.tracker.default_numwant = 500;
        assert!(c.validate().unwrap_err().contains("--max-numwant"));
        let mut c = Config::default();
        c.udp.clear();
        assert!(c.validate().is_err());
        // Rendezvous alone is something to serve; its settings are checked.
        c.rendezvous = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
        assert_eq!(c.validate(), Ok(()));
        c.rendezvous_settings.timeout = 0;
        assert!(c.validate().unwrap_err().contains("--rendezvous-timeout"));
        let mut c = Config::default();
        c.rendezvous = vec![c.udp[0]];
        assert!(c.validate().unwrap_err().contains("--rendezvous"));
    }

    #[test]
    fn values_that_hurt_clients_are_warned_about() {
        assert!(Config::default().warnings().is_empty());
        let mut c = Config::default();
        c.tracker.interval = 60;
        c.tracker.max_numwant = 500;
        let w = c.warnings();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].starts_with("--interval 60 is under 5 minutes"),
            "{w:?}"
        );
        assert!(
            w[1].contains("at most 242 peers over IPv4 and 67 over IPv6"),
            "{w:?}"
        );
        c.tracker.interval = 4 * 3600;
        c.tracker.peer_timeout = MAX_PEER_TIMEOUT;
        c.udp.clear();
        let w = c.warnings();
        assert_eq!(w.len(), 1, "HTTP-only: long replies are fine: {w:?}");
        assert!(w[0].contains("over 3 hours"), "{w:?}");
    }

    #[test]
    fn the_same_address_twice_is_a_duplicate() {
        let a: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let mut c = Config::for_udp(a);
        c.udp.push(a);
        assert_eq!(
            c.validate().unwrap_err(),
            "--udp 127.0.0.1:7000 is given twice"
        );
        let mut c = Config::for_udp("127.0.0.1:0".parse().unwrap());
        c.http = vec![a];
        c.metrics = vec![a];
        assert!(c
            .validate()
            .unwrap_err()
            .contains("--metrics 127.0.0.1:7000 is also a --http address"));
        // Port 0 is a fresh port each time; UDP and TCP may share a number.
        c.metrics = vec!["127.0.0.1:0".parse().unwrap(); 2];
        c.udp = vec![a];
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn the_memory_limit_is_the_least_of_cgroup_ulimit_and_ram() {
        use std::collections::HashMap;
        let fs = |files: &[(&str, &str)]| {
            let files: HashMap<String, String> = files
                .iter()
                .map(|(p, c)| (p.to_string(), c.to_string()))
                .collect();
            move |p: &str| files.get(p).cloned()
        };
        let meminfo = (
            "/proc/meminfo",
            "MemTotal:       16000000 kB\nMemFree: 1 kB\n",
        );
        let limits = |v: &str| {
            format!("Limit Soft Hard Units\nMax address space         {v}            {v}            bytes\n")
        };
        // RAM only.
        let ram = memory_limit_from(fs(&[meminfo]));
        assert_eq!(ram, Some((16_000_000 * 1024, "physical memory")));
        // cgroup v2: the tightest of the cgroup and its ancestors; "max" is no limit.
        let v2 = memory_limit_from(fs(&[
            meminfo,
            ("/proc/self/cgroup", "0::/a/b\n"),
            ("/sys/fs/cgroup/a/b/memory.max", "max\n"),
            ("/sys/fs/cgroup/a/memory.max", "536870912\n"),
        ]));
        assert_eq!(v2, Some((512 << 20, "cgroup memory limit")));
        // cgroup v1 (a huge value is no limit) beside a tighter ulimit -v,
        // less what is mapped already.
        let al = limits("300000000");
        let v1 = memory_limit_from(fs(&[
            meminfo,
            ("/proc/self/cgroup", "4:memory:/x\n1:cpu:/\n"),
            (
                "/sys/fs/cgroup/memory/x/memory.limit_in_bytes",
                "9223372036854771712\n",
            ),
            (
                "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                "1073741824\n",
            ),
            ("/proc/self/limits", al.as_str()),
            ("/proc/self/status", "VmSize:\t   20000 kB\n"),
        ]));
        assert_eq!(
            v1,
            Some((
                300_000_000 - 20_000 * 1024,
                "address-space limit (ulimit -v)"
            ))
        );
        let unlimited = limits("unlimited");
        let none = memory_limit_from(fs(&[("/proc/self/limits", unlimited.as_str())]));
        assert_eq!(none, None);
    }
}
