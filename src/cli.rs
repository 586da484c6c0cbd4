//! Command-line parsing: clap turns flags and `SHOAL_*` environment variables
//! into a plain [`Config`] (for `serve`) or a tool invocation. Nothing else.

use crate::config::{Config, TrackerConfig, DEFAULT_PORT};
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "shoal",
    version,
    about = "A fast, UDP-first BitTorrent tracker (BEP 15), with optional HTTP.",
    long_about = "A fast, UDP-first BitTorrent tracker (BEP 15), with optional HTTP.\n\n\
        With no arguments, `shoal` serves a public tracker on UDP port 6969 (IPv4 and IPv6).\n\
        Every option has an environment-variable twin, shown as [env: ...].",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the tracker (the default when no subcommand is given).
    Serve(ServeArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// UDP address to serve (repeatable; comma-separated in the environment).
    /// Default: 0.0.0.0:6969 and [::]:6969. A lone [::]:PORT serves IPv4 too.
    #[arg(
        long = "udp",
        value_name = "ADDR",
        env = "SHOAL_UDP",
        value_delimiter = ','
    )]
    pub udp: Vec<SocketAddr>,

    /// HTTP address to serve announce/scrape, /health and /metrics on (repeatable;
    /// comma-separated in the environment). Off by default.
    #[arg(
        long = "http",
        value_name = "ADDR",
        env = "SHOAL_HTTP",
        value_delimiter = ','
    )]
    pub http: Vec<SocketAddr>,

    /// HTTP: most open connections per worker; more are closed at once.
    #[arg(long, value_name = "N", env = "SHOAL_HTTP_MAX_CONNECTIONS", default_value_t = Config::default().http_max_connections)]
    pub http_max_connections: usize,

    /// HTTP: close a connection idle (or stuck mid-request) for this long, in seconds.
    #[arg(long, value_name = "SECS", env = "SHOAL_HTTP_IDLE_TIMEOUT", default_value_t = Config::default().http_idle_timeout.as_secs())]
    pub http_idle_timeout: u64,

    /// HTTP behind a reverse proxy: take the client address from this header
    /// (X-Forwarded-For: rightmost entry; X-Real-IP). Announces without it are refused.
    #[arg(long, value_name = "NAME", env = "SHOAL_HTTP_CLIENT_IP_HEADER")]
    pub http_client_ip_header: Option<String>,

    /// Serve no UDP at all (only useful with --http).
    #[arg(long, env = "SHOAL_NO_UDP")]
    pub no_udp: bool,

    /// Worker threads, each with its own sockets and event loop [default: available cores].
    #[arg(long, value_name = "N", env = "SHOAL_WORKERS")]
    pub workers: Option<usize>,

    /// Announce interval sent to clients, in seconds.
    #[arg(long, value_name = "SECS", env = "SHOAL_INTERVAL", default_value_t = TrackerConfig::default().interval)]
    pub interval: u32,

    /// Drop a peer that has not announced for this long, in seconds (at most 32767).
    #[arg(long, value_name = "SECS", env = "SHOAL_PEER_TIMEOUT", default_value_t = TrackerConfig::default().peer_timeout)]
    pub peer_timeout: u32,

    /// Peers sent when a client asks for the default (num_want -1).
    #[arg(long, value_name = "N", env = "SHOAL_DEFAULT_NUMWANT", default_value_t = TrackerConfig::default().default_numwant)]
    pub default_numwant: u32,

    /// Most peers sent in one reply (also capped by one unfragmented datagram:
    /// 242 over IPv4, 67 over IPv6).
    #[arg(long, value_name = "N", env = "SHOAL_MAX_NUMWANT", default_value_t = TrackerConfig::default().max_numwant)]
    pub max_numwant: u32,

    /// Most info hashes answered per scrape; the rest of a longer scrape is not answered.
    #[arg(long, value_name = "N", env = "SHOAL_MAX_SCRAPE", default_value_t = TrackerConfig::default().max_scrape)]
    pub max_scrape: u32,

    /// How long a UDP connection id is accepted, in seconds (at least 120).
    #[arg(long, value_name = "SECS", env = "SHOAL_CONNECTION_ID_LIFETIME", default_value_t = TrackerConfig::default().connection_id_lifetime)]
    pub connection_id_lifetime: u32,

    /// Log a one-line summary (requests/s by kind, torrents, peers) every SECS; 0 = off.
    #[arg(
        long,
        value_name = "SECS",
        env = "SHOAL_STATS_INTERVAL",
        default_value_t = 0
    )]
    pub stats_interval: u64,

    /// Shards of the swarm map (rounded up to a power of two).
    #[arg(long, value_name = "N", env = "SHOAL_SHARDS", default_value_t = Config::default().shards)]
    pub shards: usize,

    /// Socket receive/send buffer asked of the kernel, in bytes (capped by net.core.rmem_max/wmem_max).
    #[arg(long, value_name = "BYTES", env = "SHOAL_SOCKET_BUFFER", default_value_t = Config::default().socket_buffer)]
    pub socket_buffer: usize,

    /// Log level: error, warn, info, debug, trace (or a RUST_LOG-style filter). [default: RUST_LOG, else info]
    #[arg(long, value_name = "LEVEL", env = "SHOAL_LOG")]
    pub log: Option<String>,
}

impl ServeArgs {
    /// The validated configuration these flags describe.
    pub fn to_config(&self) -> Result<Config, String> {
        let defaults = Config::default();
        let default_addrs = self.udp.is_empty() && !self.no_udp;
        if self.http_idle_timeout == 0 {
            return Err("--http-idle-timeout must be at least 1 second".into());
        }
        let udp = if self.no_udp {
            Vec::new()
        } else if self.udp.is_empty() {
            defaults.udp.clone()
        } else {
            self.udp.clone()
        };
        let config = Config {
            tracker: TrackerConfig {
                interval: self.interval,
                peer_timeout: self.peer_timeout,
                default_numwant: self.default_numwant,
                max_numwant: self.max_numwant,
                max_scrape: self.max_scrape,
                connection_id_lifetime: self.connection_id_lifetime,
            },
            udp,
            http: self.http.clone(),
            http_max_connections: self.http_max_connections,
            http_idle_timeout: Duration::from_secs(self.http_idle_timeout),
            http_client_ip_header: self.http_client_ip_header.clone(),
            workers: self.workers.unwrap_or(defaults.workers),
            shards: self.shards,
            stats_interval: (self.stats_interval > 0)
                .then(|| Duration::from_secs(self.stats_interval)),
            socket_buffer: self.socket_buffer,
            default_addrs,
        };
        config.validate()?;
        Ok(config)
    }
}

/// The default UDP port, for help texts and tools.
pub const fn default_port() -> u16 {
    DEFAULT_PORT
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("shoal").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn no_arguments_serve_the_defaults() {
        let cli = parse(&[]);
        assert!(cli.command.is_none());
        let c = cli.serve.to_config().unwrap();
        assert_eq!(c.udp, Config::default().udp);
        assert!(c.default_addrs);
        assert_eq!(c.tracker, TrackerConfig::default());
    }

    #[test]
    fn serve_subcommand_and_flags() {
        let cli = parse(&[
            "serve",
            "--udp",
            "127.0.0.1:0",
            "--udp",
            "[::1]:7000",
            "--workers",
            "3",
            "--interval",
            "60",
            "--peer-timeout",
            "90",
        ]);
        let Some(Command::Serve(args)) = cli.command else {
            panic!()
        };
        let c = args.to_config().unwrap();
        assert_eq!(c.udp.len(), 2);
        assert!(!c.default_addrs);
        assert_eq!(
            (c.workers, c.tracker.interval, c.tracker.peer_timeout),
            (3, 60, 90)
        );
        // Invalid combinations are refused with the flag's name.
        let cli = parse(&["--interval", "600", "--peer-timeout", "300"]);
        assert!(cli
            .serve
            .to_config()
            .unwrap_err()
            .contains("--peer-timeout"));
        assert!(Cli::try_parse_from(["shoal", "--udp", "not-an-address"]).is_err());
    }
}
