//! Command-line parsing: clap turns flags and `SHOAL_*` environment variables
//! into a plain [`Config`] (for `serve`) or a tool invocation (`announce`,
//! `scrape`, `bench`: typed parameters for [`crate::client`] and
//! [`crate::bench`]). Nothing else.

use crate::access::{AccessConfig, Mode};
use crate::bench::BenchConfig;
use crate::client::{self, AnnounceParams, Client, Event, TrackerUrl};
use crate::config::{Config, TrackerConfig};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
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
    /// Announce to any tracker (udp:// or http://) and print its reply.
    Announce(AnnounceArgs),
    /// Scrape any tracker (udp:// or http://) for one or more info hashes.
    Scrape(ScrapeArgs),
    /// Load-test a UDP tracker with a simulated population (by default, an in-process shoal).
    Bench(BenchArgs),
}

/// Options every client tool shares.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Seconds to wait for the first try (and for host lookup, HTTP connect and
    /// reads); each retry doubles it, as BEP 15 prescribes (it starts at 15).
    #[arg(long, value_name = "SECS", default_value_t = 5.0, value_parser = parse_secs)]
    pub timeout: f64,

    /// Tries before giving up. The default waits at most 5 + 10 + 20 s.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10))]
    pub tries: u32,

    /// Print the reply as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

impl ClientArgs {
    pub fn client(&self) -> Client {
        Client::new(Duration::from_secs_f64(self.timeout), self.tries)
    }
}

/// `--event` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EventArg {
    Started,
    Completed,
    Stopped,
    None,
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

#[derive(Debug, Clone, Args)]
pub struct AnnounceArgs {
    /// Tracker URL: udp://host:port[/path] or http://host[:port]/announce[?query].
    #[arg(value_name = "URL", value_parser = parse_url)]
    pub url: TrackerUrl,

    /// Info hash: 40 hex digits.
    #[arg(long, value_name = "HEX", value_parser = parse_hash)]
    pub info_hash: [u8; 20],

    /// Port the (simulated) peer listens on.
    #[arg(long, value_name = "N", default_value_t = 6881)]
    pub port: u16,

    /// Bytes left to download; 0 announces a seeder. The default, 1, is a
    /// leecher, which gets seeders as well as leechers back.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub left: u64,

    /// Bytes uploaded so far, as reported to the tracker.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub uploaded: u64,

    /// Bytes downloaded so far, as reported to the tracker.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub downloaded: u64,

    #[arg(long, value_enum, default_value_t = EventArg::Started)]
    pub event: EventArg,

    /// Peers wanted [default: the tracker's default].
    #[arg(long, value_name = "N")]
    pub numwant: Option<u32>,

    /// Peer id: 40 hex digits, or up to 20 bytes of text (a shorter text is a
    /// prefix padded with random characters) [default: -SH0100- and random].
    #[arg(long, value_name = "STR|HEX", allow_hyphen_values = true, value_parser = client::peer_id_from_arg)]
    pub peer_id: Option<[u8; 20]>,

    #[command(flatten)]
    pub client: ClientArgs,
}

impl AnnounceArgs {
    pub fn params(&self) -> AnnounceParams {
        let mut p = AnnounceParams::new(self.info_hash, self.port);
        if let Some(id) = self.peer_id {
            p.peer_id = id;
        }
        p.left = self.left;
        p.uploaded = self.uploaded;
        p.downloaded = self.downloaded;
        p.event = self.event.into();
        p.numwant = self.numwant;
        p
    }
}

#[derive(Debug, Clone, Args)]
pub struct ScrapeArgs {
    /// Tracker URL: udp://host:port or http://host[:port]/announce (scraped at
    /// /scrape by the BEP 48 convention).
    #[arg(value_name = "URL", value_parser = parse_url)]
    pub url: TrackerUrl,

    /// Info hashes: 40 hex digits each.
    #[arg(value_name = "HEX", required = true, num_args = 1.., value_parser = parse_hash)]
    pub info_hashes: Vec<[u8; 20]>,

    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// UDP tracker to load [default: an in-process shoal on 127.0.0.1].
    #[arg(long, value_name = "URL", value_parser = parse_url)]
    pub target: Option<TrackerUrl>,

    /// Seconds to send for (at most 3600).
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = parse_secs)]
    pub duration: f64,

    /// Load-generating threads.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub workers: usize,

    /// Sockets per worker, each from its own 127.0.0.x address on loopback.
    #[arg(long, value_name = "N", default_value_t = BenchConfig::default().sockets)]
    pub sockets: usize,

    /// Requests in flight per socket.
    #[arg(long, value_name = "N", default_value_t = BenchConfig::default().window)]
    pub window: usize,

    /// Seconds after which an unanswered request counts as lost.
    #[arg(long, value_name = "SECS", default_value_t = 1.0, value_parser = parse_secs)]
    pub timeout: f64,

    /// Simulated torrents (popularity: Zipf, exponent 1).
    #[arg(long, value_name = "N", default_value_t = BenchConfig::default().torrents)]
    pub torrents: u32,

    /// Simulated peers, each with its own torrent, port and seeder state.
    #[arg(long, value_name = "N", default_value_t = BenchConfig::default().peers)]
    pub peers: u32,

    /// Weight of connect requests in the mix.
    #[arg(long, value_name = "W", default_value_t = BenchConfig::default().connect)]
    pub connect: u32,

    /// Weight of announce requests in the mix.
    #[arg(long, value_name = "W", default_value_t = BenchConfig::default().announce)]
    pub announce: u32,

    /// Weight of scrape requests in the mix.
    #[arg(long, value_name = "W", default_value_t = BenchConfig::default().scrape)]
    pub scrape: u32,

    /// Peers wanted per announce; negative asks for the tracker's default.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 30,
        allow_negative_numbers = true
    )]
    pub numwant: i64,

    /// Most info hashes per scrape (each scrape asks for 1..=N).
    #[arg(long, value_name = "N", default_value_t = BenchConfig::default().scrape_max)]
    pub scrape_max: usize,

    /// Share of peers that are seeders (0..=1).
    #[arg(long, value_name = "RATIO", default_value_t = BenchConfig::default().seeder_ratio)]
    pub seeders: f64,

    /// Seed of the simulated population (same seed, same torrents and peers).
    #[arg(long, value_name = "N", default_value_t = BenchConfig::default().seed)]
    pub seed: u64,

    /// Worker threads of the in-process shoal (without --target).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub server_workers: usize,

    /// Allow a target outside 127.0.0.0/8 and ::1. Only load trackers you run.
    #[arg(long)]
    pub allow_remote: bool,

    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,

    /// Print the final report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

impl BenchArgs {
    /// The validated benchmark configuration.
    pub fn to_config(&self) -> Result<BenchConfig, String> {
        let config = BenchConfig {
            target: self.target.clone(),
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
        };
        config.validate()?;
        Ok(config)
    }
}

fn parse_url(s: &str) -> Result<TrackerUrl, String> {
    s.parse().map_err(|e: client::ClientError| e.to_string())
}

fn parse_hash(s: &str) -> Result<[u8; 20], String> {
    client::parse_hex20(s).ok_or_else(|| format!("{s:?} is not an info hash (40 hex digits)"))
}

/// Seconds, fractions allowed, finite, 0.001..=3600.
fn parse_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if (0.001..=3600.0).contains(&x) => Ok(x),
        _ => Err(format!("{s:?}: give seconds between 0.001 and 3600")),
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// UDP address to serve (repeatable; comma-separated in the environment).
    /// Default: 0.0.0.0:6969 and [::]:6969. A lone [::]:PORT serves IPv4 too.
    #[arg(
        long = "udp",
        value_name = "ADDR",
        env = "SHOAL_UDP",
        value_delimiter = ',',
        value_parser = parse_addr
    )]
    pub udp: Vec<SocketAddr>,

    /// HTTP address to serve announce/scrape, /health and /metrics on (repeatable;
    /// comma-separated in the environment). Off by default.
    #[arg(
        long = "http",
        value_name = "ADDR",
        env = "SHOAL_HTTP",
        value_delimiter = ',',
        value_parser = parse_addr
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

    /// Serve no UDP at all (only useful with --http). In the environment: 1/true/yes/on.
    #[arg(
        long,
        env = "SHOAL_NO_UDP",
        conflicts_with = "udp",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
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

    /// Most peers held in all, bounding memory (about 50 bytes each); announces
    /// of new peers beyond it are answered but not stored. 0 = no limit.
    #[arg(long, value_name = "N", env = "SHOAL_MAX_PEERS", default_value_t = TrackerConfig::default().max_peers)]
    pub max_peers: u64,

    /// Access list: one info hash per line (40 hex digits; blank lines and #
    /// comments allowed). Reloaded on SIGHUP and when the file changes.
    #[arg(long, value_name = "FILE", env = "SHOAL_ACCESS_LIST")]
    pub access_list: Option<PathBuf>,

    /// Whether the access list names the only torrents served (allow) or the
    /// torrents refused (deny).
    #[arg(long, value_name = "MODE", env = "SHOAL_ACCESS_MODE", value_enum, default_value_t = AccessModeArg::Allow)]
    pub access_mode: AccessModeArg,

    /// Private mode: every announce needs a key listed in FILE (one per line,
    /// 32 characters of [A-Za-z0-9], optionally an expiry in Unix seconds), sent
    /// in the URL path: /announce/KEY. Reloaded like the access list.
    #[arg(long, value_name = "FILE", env = "SHOAL_KEYS")]
    pub keys: Option<PathBuf>,

    /// With --keys: scrapes need a key too (HTTP /scrape/KEY; UDP scrapes,
    /// which cannot carry one, are refused). In the environment: 1/true/yes/on.
    #[arg(
        long,
        env = "SHOAL_PRIVATE_SCRAPE",
        requires = "keys",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub private_scrape: bool,

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
                max_peers: self.max_peers,
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

/// `--access-mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AccessModeArg {
    Allow,
    Deny,
}

impl ServeArgs {
    /// Who may use the tracker: the files to load (by the caller, which
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
}

/// An address from a flag or an environment list (`a, b` as well as `a,b`).
fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.trim().parse().map_err(|_| {
        format!("{s:?} is not an IP address with a port, like 0.0.0.0:6969 or [::]:6969")
    })
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

    const HASH: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn announce_subcommand() {
        let cli = parse(&[
            "announce",
            "udp://127.0.0.1:6969/announce",
            "--info-hash",
            HASH,
            "--port",
            "7000",
            "--left",
            "0",
            "--event",
            "completed",
            "--numwant",
            "5",
            "--peer-id",
            "-XX0001-",
            "--timeout",
            "0.5",
            "--tries",
            "2",
            "--json",
        ]);
        let Some(Command::Announce(a)) = cli.command else {
            panic!()
        };
        let p = a.params();
        assert_eq!(p.info_hash, client::parse_hex20(HASH).unwrap());
        assert_eq!(
            (p.port, p.left, p.event, p.numwant),
            (7000, 0, Event::Completed, Some(5))
        );
        assert_eq!(&p.peer_id[..8], b"-XX0001-");
        assert_eq!(
            a.client.client(),
            Client::new(Duration::from_millis(500), 2)
        );
        assert!(a.client.json);
        // Defaults: a started leecher, the tracker's numwant, 5 s × 3 tries.
        let cli = parse(&["announce", "http://h/announce", "--info-hash", HASH]);
        let Some(Command::Announce(a)) = cli.command else {
            panic!()
        };
        let p = a.params();
        assert_eq!(
            (p.port, p.left, p.event, p.numwant),
            (6881, 1, Event::Started, None)
        );
        assert_eq!(a.client.client(), Client::new(Duration::from_secs(5), 3));
        // Bad input is refused by clap with the reason.
        for bad in [
            &["announce", "udp://h:1", "--info-hash", "abc"][..],
            &["announce", "https://h/announce", "--info-hash", HASH],
            &["announce", "udp://h", "--info-hash", HASH],
            &["announce", "udp://h:1"],
            &[
                "announce",
                "udp://h:1",
                "--info-hash",
                HASH,
                "--event",
                "paused",
            ],
            &[
                "announce",
                "udp://h:1",
                "--info-hash",
                HASH,
                "--timeout",
                "0",
            ],
            &["announce", "udp://h:1", "--info-hash", HASH, "--tries", "0"],
            &[
                "announce",
                "udp://h:1",
                "--info-hash",
                HASH,
                "--peer-id",
                "much-too-long-for-a-peer-id",
            ],
        ] {
            assert!(
                Cli::try_parse_from(std::iter::once("shoal").chain(bad.iter().copied())).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn access_flags() {
        let cli = parse(&[
            "--access-list",
            "/etc/shoal/allow.txt",
            "--access-mode",
            "deny",
            "--keys",
            "/etc/shoal/keys.txt",
            "--private-scrape",
        ]);
        let a = cli.serve.access();
        assert_eq!(
            a.list,
            Some((PathBuf::from("/etc/shoal/allow.txt"), Mode::Deny))
        );
        assert_eq!(a.keys, Some(PathBuf::from("/etc/shoal/keys.txt")));
        assert!(a.private_scrape);
        // Open by default; allow mode unless told.
        assert!(parse(&[]).serve.access().is_open());
        let a = parse(&["--access-list", "a.txt"]).serve.access();
        assert_eq!(a.list.map(|(_, m)| m), Some(Mode::Allow));
        // --private-scrape means nothing without keys.
        assert!(Cli::try_parse_from(["shoal", "--private-scrape"]).is_err());
    }

    #[test]
    fn scrape_subcommand() {
        let cli = parse(&["scrape", "udp://[::1]:6969", HASH, HASH, "--json"]);
        let Some(Command::Scrape(s)) = cli.command else {
            panic!()
        };
        assert_eq!(s.info_hashes.len(), 2);
        assert!(s.client.json);
        assert!(Cli::try_parse_from(["shoal", "scrape", "udp://h:1"]).is_err());
    }

    #[test]
    fn bench_subcommand() {
        let cli = parse(&["bench"]);
        let Some(Command::Bench(b)) = cli.command else {
            panic!()
        };
        let c = b.to_config().unwrap();
        let d = BenchConfig::default();
        assert!(c.target.is_none());
        assert_eq!(
            (c.duration, c.workers, c.sockets, c.peers),
            (d.duration, d.workers, d.sockets, d.peers)
        );
        assert_eq!(c.numwant, Some(30));
        let cli = parse(&[
            "bench",
            "--target",
            "udp://127.0.0.1:7000",
            "--duration",
            "2.5",
            "--workers",
            "2",
            "--connect",
            "0",
            "--scrape",
            "0",
            "--numwant",
            "-1",
            "--json",
            "--quiet",
        ]);
        let Some(Command::Bench(b)) = cli.command else {
            panic!()
        };
        let c = b.to_config().unwrap();
        assert_eq!(c.target.unwrap().port(), 7000);
        assert_eq!(
            (c.duration, c.workers, c.numwant),
            (Duration::from_millis(2500), 2, None)
        );
        assert_eq!(
            (c.connect, c.announce, c.scrape, c.progress),
            (0, 50, 0, false)
        );
        let cli = parse(&["bench", "--duration", "3600", "--workers", "0"]);
        let Some(Command::Bench(b)) = cli.command else {
            panic!()
        };
        assert!(b.to_config().unwrap_err().contains("--workers"));
        assert!(Cli::try_parse_from(["shoal", "bench", "--duration", "3601"]).is_err());
    }
}
