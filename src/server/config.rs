//! The server's configuration: each room's own settings, composed, and the
//! checks that span rooms (something to serve, no address given twice).
//!
//! Built by [`crate::cli`] from flags and environment variables, or directly
//! by tests and embedders. [`Config::validate`] is the one place they are
//! checked before anything binds.

use crate::access::AccessConfig;
use crate::api::ApiConfig;
use crate::cluster::ClusterConfig;
use crate::limit::LimitConfig;
use crate::net::HttpConfig;
use crate::rendezvous::RendezvousConfig;
use crate::state::StateConfig;
use crate::tracker::TrackerConfig;
use crate::xdp::XdpConfig;
use std::net::SocketAddr;
use std::time::Duration;

/// Default port, as most public trackers use.
pub const DEFAULT_PORT: u16 = 6969;

/// The nice value of the control thread by default: below the packet
/// workers' (0), so a saturated host serves packets first.
pub const CONTROL_NICE: i32 = 10;

/// The addresses to serve, by what they serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    /// UDP tracker addresses. Empty: no UDP tracker.
    pub udp: Vec<SocketAddr>,
    /// HTTP tracker addresses. Empty: no HTTP tracker.
    pub http: Vec<SocketAddr>,
    /// Operator listeners (`--metrics`): `/metrics` and `/health` only.
    pub metrics: Vec<SocketAddr>,
    /// Management API listeners (`--api`).
    pub api: Vec<SocketAddr>,
    /// torrust-tracker REST API listeners (`--torrust-api`).
    pub torrust: Vec<SocketAddr>,
    /// Sobani rendezvous addresses (UDP). Empty = off.
    pub rendezvous: Vec<SocketAddr>,
    /// Whether `udp`/`http` are the built-in defaults: a default IPv6
    /// address that cannot be bound (no IPv6 on the host) is then skipped
    /// with a warning instead of failing start-up.
    pub defaults: bool,
}

impl Default for Listen {
    fn default() -> Self {
        Listen {
            udp: vec![
                SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)),
                SocketAddr::from(([0u16; 8], DEFAULT_PORT)),
            ],
            http: Vec::new(),
            metrics: Vec::new(),
            api: Vec::new(),
            torrust: Vec::new(),
            rendezvous: Vec::new(),
            defaults: true,
        }
    }
}

impl Listen {
    /// One UDP address and nothing else (tests, embedders).
    pub fn udp(addr: SocketAddr) -> Listen {
        Listen {
            udp: vec![addr],
            defaults: false,
            ..Listen::default()
        }
    }
}

/// Everything the server runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub listen: Listen,
    /// Packet workers, each with its own sockets and event loop.
    pub workers: usize,
    /// Socket receive/send buffer size asked of the kernel, bytes.
    pub socket_buffer: usize,
    pub tracker: TrackerConfig,
    pub http: HttpConfig,
    /// Per-address limits: rate, HTTP connections, trusted proxies.
    pub limits: LimitConfig,
    /// The access list and private keys.
    pub access: AccessConfig,
    pub api: ApiConfig,
    /// Rendezvous settings; checked even when no rendezvous address is
    /// given, so a mistyped `--rendezvous-*` flag is reported, not ignored.
    pub rendezvous: RendezvousConfig,
    /// Warm restart (`--state-file`); `None` = off.
    pub state: Option<StateConfig>,
    /// `--cluster`: share the swarm with other instances; `None` = alone.
    pub cluster: Option<ClusterConfig>,
    /// Period of the one-line stats summary in the log; `None` = off.
    pub stats_interval: Option<Duration>,
    /// The control thread's nice value (Linux); 0 = the workers' priority.
    pub control_nice: i32,
    /// `--xdp IFACE`: the AF_XDP path for UDP.
    pub xdp: XdpConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: Listen::default(),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            socket_buffer: 8 << 20,
            tracker: TrackerConfig::default(),
            http: HttpConfig::default(),
            limits: LimitConfig::default(),
            access: AccessConfig::default(),
            api: ApiConfig::default(),
            rendezvous: RendezvousConfig::default(),
            state: None,
            cluster: None,
            stats_interval: None,
            control_nice: CONTROL_NICE,
            xdp: XdpConfig::default(),
        }
    }
}

impl Config {
    /// A configuration for tests and embedders: one worker on the given UDP address.
    pub fn for_udp(addr: SocketAddr) -> Config {
        Config {
            listen: Listen::udp(addr),
            workers: 1,
            ..Config::default()
        }
    }

    /// Check every room's settings and the rules across rooms; the message
    /// names the offending flag.
    pub fn validate(&self) -> Result<(), String> {
        let l = &self.listen;
        if l.udp.is_empty() && l.http.is_empty() && l.rendezvous.is_empty() {
            return Err(
                "nothing to serve: UDP is off (--no-udp) and no --http or --rendezvous address is given".into(),
            );
        }
        self.rendezvous.validate()?;
        self.xdp.validate()?;
        if let Some(c) = &self.cluster {
            c.validate()?;
        }
        self.check_duplicates()?;
        if self.workers == 0 || self.workers > 1024 {
            return Err(format!("--workers must be 1..=1024, got {}", self.workers));
        }
        self.tracker.validate()?;
        self.http.validate()?;
        for (flag, list) in [("--api", &l.api), ("--torrust-api", &l.torrust)] {
            if !list.is_empty() && self.api.token.is_none() {
                return Err(format!(
                    "{flag} needs a token: give --api-token, SHOAL_API_TOKEN or --api-token-file"
                ));
            }
        }
        if self.limits.rate_limit > 0 && self.limits.burst() == 0 {
            return Err("--rate-burst must be at least 1".into());
        }
        if !(-20..=19).contains(&self.control_nice) {
            return Err("--control-nice must be -20..=19".into());
        }
        Ok(())
    }

    /// The effective settings in one line, for the start-up log (the
    /// listeners are logged one per line once bound).
    pub fn summary(&self) -> String {
        // Without a tracker listener the tracker's settings govern nothing:
        // say what does run.
        if self.listen.udp.is_empty() && self.listen.http.is_empty() {
            let r = &self.rendezvous;
            return format!(
                "config: no UDP or HTTP tracker; rendezvous registrations expire after {} s, at most {}, {} pushes/s per peer; workers {}, socket buffer {} bytes asked",
                r.timeout, r.max, r.push_rate, self.workers, self.socket_buffer
            );
        }
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
        let h = &self.http;
        format!(
            "config: interval {} s ±{} % ({}), peer timeout {} s, numwant {} (max {}), max scrape {}, max peers {max_peers}, max memory {max_memory} (one torrent at most {share} %), connection id lifetime {} s, workers {}, shards {}, socket buffer {} bytes asked, HTTP: {} connections per worker, {} s idle timeout{}{}",
            t.interval,
            t.interval_jitter,
            match t.max_interval() {
                m if m > t.interval => format!("up to {m} s under load"),
                _ => "fixed".to_string(),
            },
            t.peer_timeout,
            t.default_numwant,
            t.max_numwant,
            t.max_scrape,
            t.connection_id_lifetime,
            self.workers,
            t.shards,
            self.socket_buffer,
            h.max_connections,
            h.idle_timeout.as_secs(),
            match &h.client_ip_header {
                Some(h) => format!(", client address from {h}"),
                None => String::new(),
            },
            if h.metrics_on_tracker_port {
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
        let mut w = self.tracker.warnings(!self.listen.udp.is_empty());
        // A proxy on another host reaches a listener that is not loopback-only.
        if self.http.client_ip_header.is_some()
            && self.limits.trusted_proxies == LimitConfig::default().trusted_proxies
            && self.listen.http.iter().any(|a| !a.ip().is_loopback())
        {
            w.push(
                "--http-client-ip-header is believed only from --http-trusted-proxy, by default loopback (127.0.0.0/8, ::1/128): if the proxy runs on another host, name its address, or every client behind it is seen as the proxy".into(),
            );
        }
        // torrust-index whitelists every torrent it takes in; without an
        // allow list those calls fail.
        if !self.listen.torrust.is_empty()
            && !matches!(self.access.list, Some((_, crate::access::Mode::Allow)))
        {
            w.push(
                "--torrust-api without an allow list (--access-list FILE --access-mode allow): its whitelist calls fail, and torrust-index cannot add torrents".into(),
            );
        }
        w
    }

    /// The same fixed address twice for one protocol (in one list, or across
    /// `--udp`/`--rendezvous` or `--http`/`--metrics`/`--api`/`--torrust-api`) is a
    /// configuration error naming both flags: binding it would fail the
    /// in-use probe with a misleading "address already in use".
    fn check_duplicates(&self) -> Result<(), String> {
        let l = &self.listen;
        let udp = [("--udp", &l.udp), ("--rendezvous", &l.rendezvous)];
        let tcp = [
            ("--http", &l.http),
            ("--metrics", &l.metrics),
            ("--api", &l.api),
            ("--torrust-api", &l.torrust),
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
        c.listen.udp.clear();
        assert!(c.validate().is_err());
        // Rendezvous alone is something to serve; its settings are checked.
        c.listen.rendezvous = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
        assert_eq!(c.validate(), Ok(()));
        c.rendezvous.timeout = 0;
        assert!(c.validate().unwrap_err().contains("--rendezvous-timeout"));
        let mut c = Config::default();
        c.listen.rendezvous = vec![c.listen.udp[0]];
        assert!(c.validate().unwrap_err().contains("--rendezvous"));
        let mut c = Config::default();
        c.listen.api = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
        assert!(c.validate().unwrap_err().contains("--api needs a token"));
        let mut c = Config::default();
        c.listen.torrust = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
        assert!(c
            .validate()
            .unwrap_err()
            .contains("--torrust-api needs a token"));
    }

    #[test]
    fn the_same_address_twice_is_a_duplicate() {
        let a: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let mut c = Config::for_udp(a);
        c.listen.udp.push(a);
        assert_eq!(
            c.validate().unwrap_err(),
            "--udp 127.0.0.1:7000 is given twice"
        );
        let mut c = Config::for_udp("127.0.0.1:0".parse().unwrap());
        c.listen.http = vec![a];
        c.listen.metrics = vec![a];
        assert!(c
            .validate()
            .unwrap_err()
            .contains("--metrics 127.0.0.1:7000 is also a --http address"));
        // Port 0 is a fresh port each time; UDP and TCP may share a number.
        c.listen.metrics = vec!["127.0.0.1:0".parse().unwrap(); 2];
        c.listen.udp = vec![a];
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn a_proxy_header_with_default_trust_on_a_public_port_is_warned_about() {
        let mut c = Config::default();
        c.http.client_ip_header = Some("X-Forwarded-For".into());
        c.listen.http = vec!["0.0.0.0:80".parse().unwrap()];
        let w = c.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("--http-trusted-proxy"), "{w:?}");
        c.listen.http = vec!["127.0.0.1:80".parse().unwrap()];
        assert!(c.warnings().is_empty());
    }
}
