//! From parsed flags to what runs: [`ServeArgs::to_config`] builds each
//! room's configuration from its own flags and composes them into a
//! validated [`Config`]; the tools' arguments become [`BenchConfig`],
//! [`AnnounceParams`], a [`Client`] or an API request.
//!
//! Checks that span flags live here or in [`Config::validate`]; a value that
//! is wrong on its own is refused earlier, by the value parsers in
//! [`super::defs`].

use super::defs::{
    AccessModeArg, AnnounceArgs, ApiArgs, ApiCommand, BenchArgs, ClientArgs, EventArg, ServeArgs,
};
use super::UsageError;
use crate::access::{AccessConfig, Mode};
use crate::api::client::Request;
use crate::api::{ApiConfig, ApiToken};
use crate::bench::{BenchConfig, ShedConfig, Withdraw};
use crate::client::{AnnounceParams, Client, Event};
use crate::cluster::{ClusterConfig, Secret};
use crate::limit::LimitConfig;
use crate::net::HttpConfig;
use crate::rendezvous::RendezvousConfig;
use crate::server::{Config, Listen};
use crate::state::StateConfig;
use crate::tracker::TrackerConfig;
use crate::xdp::XdpConfig;
use std::time::Duration;

/// How often a cluster member stores its swarm state when
/// `--state-interval 0` asks for "only at exit", which a cluster has no use for.
const CLUSTER_STATE_INTERVAL: u64 = 300;

impl ServeArgs {
    /// The validated configuration these flags describe.
    pub fn to_config(&self) -> Result<Config, UsageError> {
        if let Some(spec) = self.log.as_deref() {
            check_log_filter(spec)?;
        }
        // Checked here, not by clap's `requires`: SHOAL_PRIVATE_SCRAPE=false
        // in the environment must not demand --keys.
        if self.private_scrape && self.keys.is_none() {
            return Err(UsageError::new(
                "--private-scrape needs --keys (private mode)",
            ));
        }
        // A burst is the allowance of a rate limit: without one it would be
        // silently ignored, and the operator would think addresses are capped.
        if self.rate_burst.is_some() && self.rate_limit == 0 {
            return Err(UsageError::new(
                "--rate-burst (SHOAL_RATE_BURST) needs --rate-limit (SHOAL_RATE_LIMIT) above 0",
            ));
        }
        if self.http_idle_timeout == 0 {
            return Err(UsageError::new(
                "--http-idle-timeout must be at least 1 second",
            ));
        }
        if self.no_udp && !self.udp.is_empty() {
            return Err(UsageError::new(
                "--no-udp cannot be used with --udp (SHOAL_NO_UDP, SHOAL_UDP)",
            ));
        }
        let defaults = Config::default();
        let config = Config {
            listen: self.listen(),
            workers: self.workers.unwrap_or(defaults.workers),
            socket_buffer: self.socket_buffer,
            tracker: self.tracker(),
            http: self.http(),
            limits: self.limits(),
            access: self.access(),
            api: self.api()?,
            rendezvous: self.rendezvous(),
            state: self.state(),
            cluster: self.cluster()?,
            stats_interval: secs_or_off(self.stats_interval),
            control_nice: self.control_nice,
            xdp: XdpConfig {
                iface: self.xdp.clone(),
            },
        };
        config.validate().map_err(UsageError)?;
        Ok(config)
    }

    /// The addresses to serve. Without `--udp` (and without `--no-udp`),
    /// the built-in UDP addresses, marked as such.
    fn listen(&self) -> Listen {
        let defaults = self.udp.is_empty() && !self.no_udp;
        let udp = if self.no_udp {
            Vec::new()
        } else if self.udp.is_empty() {
            Listen::default().udp
        } else {
            self.udp.clone()
        };
        Listen {
            udp,
            http: self.http.clone(),
            metrics: self.metrics.clone(),
            api: self.api.clone(),
            torrust: self.torrust_api.clone(),
            rendezvous: self.rendezvous.clone(),
            defaults,
        }
    }

    /// The tracker's settings. Of `--max-interval` and `--peer-timeout`, one
    /// given alone sets the other's default (the longest interval handed out
    /// must stay below the peer timeout); neither given: the default max
    /// interval, and a peer timeout that covers it.
    fn tracker(&self) -> TrackerConfig {
        let jitter = self.interval_jitter;
        let peer_timeout = self.peer_timeout.unwrap_or_else(|| {
            let max = self
                .max_interval
                .unwrap_or_else(|| TrackerConfig::default_max_interval(self.interval));
            TrackerConfig::default_peer_timeout(self.interval, jitter, max)
        });
        let mut t = TrackerConfig {
            interval: self.interval,
            interval_jitter: jitter,
            max_interval: self.max_interval,
            peer_timeout,
            default_numwant: self.default_numwant,
            max_numwant: self.max_numwant,
            max_scrape: self.max_scrape,
            connection_id_lifetime: self.connection_id_lifetime,
            max_peers: self.max_peers,
            max_memory: self
                .max_memory
                .unwrap_or_else(|| crate::server::host::default_max_memory().0),
            max_torrent_share: self.max_torrent_share,
            shards: self.shards,
        };
        // Resolved here, so the configuration (and --print-config) holds
        // the value in force.
        t.max_interval = Some(t.max_interval());
        t
    }

    fn http(&self) -> HttpConfig {
        HttpConfig {
            max_connections: self.http_max_connections,
            idle_timeout: Duration::from_secs(self.http_idle_timeout),
            client_ip_header: self.http_client_ip_header.clone(),
            metrics_on_tracker_port: self.http_metrics,
        }
    }

    fn limits(&self) -> LimitConfig {
        LimitConfig {
            rate_limit: self.rate_limit,
            rate_burst: self.rate_burst,
            trusted_proxies: self.http_trusted_proxy.clone(),
            http_max_connections_per_ip: self.http_max_connections_per_ip,
        }
    }

    /// Who may use the tracker: the files to load (by the server, which
    /// reports a bad line and exits 2).
    pub fn access(&self) -> AccessConfig {
        let mode = match self.access_mode {
            AccessModeArg::Allow => Mode::Allow,
            AccessModeArg::Deny => Mode::Deny,
        };
        AccessConfig {
            list: self.access_list.clone().map(|p| (p, mode)),
            keys: self.keys.clone(),
            private_scrape: self.private_scrape,
        }
    }

    /// The API's token, from the flag (or its environment twin) or from the
    /// first line of `--api-token-file`; at most one of them.
    fn api(&self) -> Result<ApiConfig, UsageError> {
        let token = match token_source(&self.api_token, &self.api_token_file)? {
            Some(TokenSource::Given(t)) => Some(ApiToken::parse(&t).map_err(UsageError)?),
            Some(TokenSource::File(path, first)) => Some(
                ApiToken::parse(&first)
                    .map_err(|e| UsageError(format!("--api-token-file {}: {e}", path.display())))?,
            ),
            None => None,
        };
        Ok(ApiConfig { token })
    }

    fn rendezvous(&self) -> RendezvousConfig {
        RendezvousConfig {
            timeout: self.rendezvous_timeout,
            max: self.rendezvous_max,
            push_rate: self.rendezvous_push_rate,
        }
    }

    fn state(&self) -> Option<StateConfig> {
        self.state_file.clone().map(|path| StateConfig {
            path,
            interval: secs_or_off(self.state_interval),
        })
    }

    /// The cluster's settings; the secret and the CA are read here, once.
    fn cluster(&self) -> Result<Option<ClusterConfig>, UsageError> {
        let Some(url) = &self.cluster else {
            if self.cluster_secret_file.is_some() || self.cluster_ca_file.is_some() {
                return Err(UsageError::new(
                    "--cluster-secret-file and --cluster-ca-file need --cluster",
                ));
            }
            return Ok(None);
        };
        let secret = match &self.cluster_secret_file {
            Some(path) => Some(
                Secret::read(path).map_err(|e| UsageError(format!("--cluster-secret-file {e}")))?,
            ),
            None => None,
        };
        let ca =
            match &self.cluster_ca_file {
                Some(path) => Some(std::fs::read(path).map_err(|e| {
                    UsageError(format!("--cluster-ca-file {}: {e}", path.display()))
                })?),
                None => None,
            };
        Ok(Some(ClusterConfig {
            url: url.clone(),
            name: self.cluster_name.clone(),
            state_interval: Duration::from_secs(match self.state_interval {
                0 => CLUSTER_STATE_INTERVAL,
                n => n,
            }),
            secret,
            ca,
            backlog: Duration::from_secs(self.cluster_backlog),
            versions: self.cluster_versions,
        }))
    }
}

/// Level names env_logger understands on their own.
const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// A `--log` value must be a level, or an env_logger filter whose parts are
/// `MODULE=LEVEL` or a bare module of shoal's (`shoal::net`). A bare word
/// that is neither (`warning`, `verbose`) would be read as a module filter
/// and silently turn every log line off: refused instead.
fn check_log_filter(spec: &str) -> Result<(), UsageError> {
    let is_level = |w: &str| LEVELS.contains(&w.to_ascii_lowercase().as_str());
    // env_logger: `directives[/regex]`.
    let directives = spec.split('/').next().unwrap_or_default();
    for part in directives
        .split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
    {
        let ok = match part.split_once('=') {
            Some((module, level)) => !module.is_empty() && is_level(level),
            None => is_level(part) || part == "shoal" || part.starts_with("shoal::"),
        };
        if !ok {
            return Err(UsageError(format!(
                "--log {part:?} is neither a level ({}) nor a filter such as shoal::net=debug",
                LEVELS.join(", ")
            )));
        }
    }
    Ok(())
}

/// A period in seconds where 0 means off.
fn secs_or_off(secs: u64) -> Option<Duration> {
    (secs > 0).then(|| Duration::from_secs(secs))
}

impl BenchArgs {
    /// The validated benchmark configuration (of the first --target).
    pub fn to_config(&self) -> Result<BenchConfig, UsageError> {
        if self.target.len() > 2 {
            return Err(UsageError::new(
                "--target: give one tracker to load, or two to compare",
            ));
        }
        if self.rounds.is_some() && self.target.len() != 2 {
            return Err(UsageError::new(
                "--rounds compares two trackers: give --target twice",
            ));
        }
        let config = BenchConfig {
            target: self.target.first().cloned(),
            duration: Duration::from_secs_f64(self.duration),
            workers: self.workers,
            sockets: self.sockets,
            window: self.window,
            timeout: Duration::from_secs_f64(self.timeout),
            torrents: self.torrents,
            peers: self.peers,
            connect: self.connect,
            announce: self.announce,
            scrape: self.scrape,
            numwant: u32::try_from(self.numwant).ok(),
            scrape_max: self.scrape_max,
            seeder_ratio: self.seeders,
            seed: self.seed,
            server_workers: self.server_workers,
            allow_remote: self.allow_remote,
            progress: !self.quiet,
            withdraw: (!self.keep_peers).then(Withdraw::default),
        };
        config.validate().map_err(UsageError)?;
        Ok(config)
    }

    /// With two --target: the configurations of A and B, and the rounds.
    pub fn comparison(&self) -> Result<Option<(BenchConfig, BenchConfig, u32)>, UsageError> {
        let a = self.to_config()?;
        let [_, b_url] = self.target.as_slice() else {
            return Ok(None);
        };
        let b = BenchConfig {
            target: Some(b_url.clone()),
            ..a.clone()
        };
        Ok(Some((a, b, self.rounds.unwrap_or(5))))
    }

    /// The `--shed` model these flags describe.
    pub fn to_shed(&self) -> Result<ShedConfig, UsageError> {
        let interval = self.shed_interval;
        if interval == 0 || interval > 10_800 {
            return Err(UsageError::new("--shed-interval must be 1..=10800 seconds"));
        }
        let jitter = TrackerConfig::default().interval_jitter;
        let max = TrackerConfig::default_max_interval(interval);
        let config = ShedConfig {
            peers: self.shed_peers,
            load: self.shed_load,
            intervals: self.shed_intervals,
            tracker: TrackerConfig {
                interval,
                max_interval: Some(max),
                peer_timeout: TrackerConfig::default_peer_timeout(interval, jitter, max),
                ..TrackerConfig::default()
            },
            seed: self.seed,
            calm_after: self.shed_calm_after,
        };
        config.validate().map_err(UsageError)?;
        Ok(config)
    }
}

impl ClientArgs {
    /// The tracker client these options describe.
    pub fn client(&self) -> Client {
        let client = Client::new(Duration::from_secs_f64(self.timeout), self.tries);
        match &self.ca_file {
            // Checked when parsed: the file holds at least one certificate.
            Some(ca) => client.clone().with_ca_pem(&ca.pem).unwrap_or(client),
            None => client,
        }
    }
}

impl From<EventArg> for Event {
    fn from(e: EventArg) -> Event {
        match e {
            EventArg::Started => Event::Started,
            EventArg::Completed => Event::Completed,
            EventArg::Stopped => Event::Stopped,
            EventArg::None => Event::None,
        }
    }
}

impl AnnounceArgs {
    /// The announce these flags describe.
    pub fn params(&self) -> AnnounceParams {
        let mut p = if self.probe {
            AnnounceParams::probe(self.info_hash)
        } else {
            AnnounceParams::new(self.info_hash, 6881)
        };
        if let Some(port) = self.port {
            p.port = port;
        }
        if let Some(id) = self.peer_id {
            p.peer_id = id;
        }
        p.left = self.left;
        p.uploaded = self.uploaded;
        p.downloaded = self.downloaded;
        p.event = self.event.into();
        p.numwant = u32::try_from(self.numwant).ok();
        p
    }
}

/// Where the API token came from, and its text.
enum TokenSource {
    /// --api-token or SHOAL_API_TOKEN.
    Given(String),
    /// The first line of --api-token-file (SHOAL_API_TOKEN_FILE).
    File(std::path::PathBuf, String),
}

/// The API token from the flag (or its environment twin) or from the first
/// line of the file: at most one of them. The server and `shoal api` read
/// it alike.
fn token_source(
    flag: &Option<String>,
    file: &Option<std::path::PathBuf>,
) -> Result<Option<TokenSource>, UsageError> {
    match (flag, file) {
        (Some(_), Some(_)) => Err(UsageError::new(
            "give the API token once: --api-token (SHOAL_API_TOKEN) or --api-token-file \
             (SHOAL_API_TOKEN_FILE), not both",
        )),
        (Some(t), None) => Ok(Some(TokenSource::Given(t.clone()))),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| UsageError(format!("--api-token-file {}: {e}", path.display())))?;
            let first = text.lines().next().unwrap_or_default().trim().to_string();
            Ok(Some(TokenSource::File(path.clone(), first)))
        }
        (None, None) => Ok(None),
    }
}

impl ApiArgs {
    /// The token to send: --api-token (SHOAL_API_TOKEN) or the first line of
    /// --api-token-file (SHOAL_API_TOKEN_FILE), as the server reads them.
    pub fn token(&self) -> Result<Option<String>, UsageError> {
        Ok(
            token_source(&self.api_token, &self.api_token_file)?.map(|s| match s {
                TokenSource::Given(t) | TokenSource::File(_, t) => t,
            }),
        )
    }

    /// The request this command line asks for.
    pub fn request(&self) -> Request {
        match &self.command {
            ApiCommand::Stats => Request::Stats,
            ApiCommand::Torrents { limit, offset } => Request::Torrents {
                limit: *limit,
                offset: *offset,
            },
            ApiCommand::Torrent { info_hash } => Request::Torrent {
                info_hash: *info_hash,
            },
            ApiCommand::Allow { info_hash } => Request::Allow {
                info_hash: *info_hash,
            },
            ApiCommand::Disallow { info_hash } => Request::Disallow {
                info_hash: *info_hash,
            },
            ApiCommand::Keys => Request::Keys,
            ApiCommand::AddKey { valid_for } => Request::AddKey {
                valid_for: *valid_for,
            },
            ApiCommand::RemoveKey { key } => Request::RemoveKey { key: key.clone() },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_filter_is_levels_or_shoal_modules() {
        for good in [
            "info",
            "WARN",
            "off",
            "shoal",
            "shoal::net=debug,info",
            "x=trace/re",
        ] {
            assert_eq!(check_log_filter(good), Ok(()), "{good}");
        }
        for bad in ["warning", "verbose", "shoal=loud", "info,nope", "=info"] {
            let e = check_log_filter(bad).unwrap_err();
            assert!(e.message().contains("is neither a level"), "{bad}: {e}");
        }
    }
}
