//! The flag definitions: every subcommand, option and environment twin shoal
//! accepts, as clap derives them, and the value parsers that check a single
//! value while the command line is read (an address, a byte count, an info
//! hash, a CA file). Nothing here acts on a value: [`super::convert`] turns
//! them into configurations, [`super::tools`] runs the tools, [`super::print`]
//! and [`super::doc`] read these same definitions back.

use super::print::Given;
use crate::client::{self, TrackerUrl};
use crate::limit::{Cidr, LimitConfig};
use crate::net::HttpConfig;
use crate::rendezvous::RendezvousConfig;
use crate::server::config::CONTROL_NICE;
use crate::server::Config;
use crate::tracker::config::MAX_INTERVAL_JITTER;
use crate::tracker::TrackerConfig;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

mod tools;
pub use tools::*;

// The whole command line: a subcommand, or the tracker's settings at the top
// level (`shoal --udp ...` is `shoal serve --udp ...`). No doc comment: clap
// would read it as the `about` text.
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

// What the command line asks for.
// Parsed once at start and matched once: the size of the serve variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the tracker (the default when no subcommand is given).
    Serve(ServeArgs),
    /// Announce to any tracker (udp://, http:// or https://) and print its reply.
    Announce(AnnounceArgs),
    /// Scrape any tracker (udp://, http:// or https://) for one or more info hashes.
    Scrape(ScrapeArgs),
    /// Load-test a UDP tracker with a simulated population (by default, an in-process shoal).
    Bench(BenchArgs),
    /// Talk to a Sobani rendezvous tracker (announce, alive, push) and print its reply, or listen for introductions.
    Rendezvous(RendezvousArgs),
    /// Ask a running shoal's management API (--api): stats, torrents, the access list, keys.
    Api(ApiArgs),
    /// Print a shell completion script (bash, zsh or fish) on stdout.
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the man page, shoal(1), in roff on stdout (`shoal man > shoal.1`).
    Man,
}

/// The shells `shoal completions` can write a script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

// `shoal` and `shoal serve`: the tracker's settings.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// UDP address to serve (repeatable; comma-separated in the environment).
    /// Default: 0.0.0.0:6969 and [::]:6969. A lone [::]:PORT serves IPv4 too.
    #[arg(help_heading = "Listeners", 
        long = "udp",
        value_name = "ADDR",
        env = "SHOAL_UDP",
        value_delimiter = ',',
        value_parser = parse_addr
    )]
    pub udp: Vec<SocketAddr>,

    /// HTTP tracker address to serve announce and scrape on (repeatable;
    /// comma-separated in the environment). Off by default.
    #[arg(help_heading = "Listeners", 
        long = "http",
        value_name = "ADDR",
        env = "SHOAL_HTTP",
        value_delimiter = ',',
        value_parser = parse_addr
    )]
    pub http: Vec<SocketAddr>,

    /// Operator address serving only /metrics and /health (repeatable;
    /// comma-separated in the environment). Works with the HTTP tracker off.
    #[arg(help_heading = "Listeners", 
        long = "metrics",
        value_name = "ADDR",
        env = "SHOAL_METRICS",
        value_delimiter = ',',
        value_parser = parse_addr
    )]
    pub metrics: Vec<SocketAddr>,

    /// Also serve /metrics and /health on the public --http addresses (off:
    /// they answer 404 there). In the environment: 1/0, true/false, yes/no, on/off.
    #[arg(help_heading = "Listeners", 
        long,
        env = "SHOAL_HTTP_METRICS",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub http_metrics: bool,

    /// HTTP: most open connections per worker; when all are taken, the one idle longest is closed to admit a newcomer.
    #[arg(help_heading = "HTTP tracker", long, value_name = "N", env = "SHOAL_HTTP_MAX_CONNECTIONS", default_value_t = HttpConfig::default().max_connections)]
    pub http_max_connections: usize,

    /// HTTP: close a connection idle (or stuck mid-request) for this long, in seconds.
    #[arg(help_heading = "HTTP tracker", long, value_name = "SECS", env = "SHOAL_HTTP_IDLE_TIMEOUT", default_value_t = HttpConfig::default().idle_timeout.as_secs())]
    pub http_idle_timeout: u64,

    /// HTTP behind a reverse proxy: take the client address from this header
    /// (X-Forwarded-For: rightmost entry; X-Real-IP). Announces without it are refused.
    #[arg(
        help_heading = "HTTP tracker",
        long,
        value_name = "NAME",
        env = "SHOAL_HTTP_CLIENT_IP_HEADER"
    )]
    pub http_client_ip_header: Option<String>,

    /// HTTP: believe --http-client-ip-header only from peers in this range
    /// (repeatable; comma-separated in the environment); from others the
    /// header is ignored and counted. Default: 127.0.0.0/8 and ::1/128.
    // The default is the prose above in --help, the completions and the man
    // page; clap holds it for the conversion and for --print-config.
    #[arg(help_heading = "HTTP tracker", 
        long = "http-trusted-proxy",
        value_name = "CIDR",
        env = "SHOAL_HTTP_TRUSTED_PROXY",
        value_delimiter = ',',
        default_values_t = LimitConfig::default().trusted_proxies,
        hide_default_value = true
    )]
    pub http_trusted_proxy: Vec<Cidr>,

    /// HTTP: most open connections per client address, over all workers (0 = no cap).
    #[arg(help_heading = "HTTP tracker", long, value_name = "N", env = "SHOAL_HTTP_MAX_CONNECTIONS_PER_IP", default_value_t = LimitConfig::default().http_max_connections_per_ip)]
    pub http_max_connections_per_ip: u32,

    /// Requests per second per source address (connect, announce and scrape
    /// together, UDP and HTTP); over it UDP gets no reply, HTTP a failure
    /// reason. 0 = off (the default: many users may share one address).
    #[arg(
        help_heading = "Memory and limits",
        long,
        value_name = "N",
        env = "SHOAL_RATE_LIMIT",
        default_value_t = 0
    )]
    pub rate_limit: u32,

    /// UDP through AF_XDP on this interface (Linux, root or CAP_BPF and
    /// CAP_NET_ADMIN, a build with the `xdp` feature): an XDP program hands
    /// the tracker's UDP datagrams straight to the workers, one AF_XDP socket
    /// per worker and receive queue; all other traffic goes to the kernel.
    #[arg(
        help_heading = "Listeners",
        long,
        value_name = "IFACE",
        env = "SHOAL_XDP"
    )]
    pub xdp: Option<String>,

    /// Requests an address may send at once before --rate-limit applies. [default: 2 × --rate-limit]
    #[arg(
        help_heading = "Memory and limits",
        long,
        value_name = "N",
        env = "SHOAL_RATE_BURST"
    )]
    pub rate_burst: Option<u32>,

    /// Serve no UDP tracker (only useful with --http or --rendezvous). In the
    /// environment: 1/0, true/false, yes/no, on/off.
    // Not `conflicts_with = "udp"`: clap counts SHOAL_NO_UDP=false as given,
    // and compose files write booleans so; `to_config` refuses a true one.
    #[arg(help_heading = "Listeners", 
        long,
        env = "SHOAL_NO_UDP",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub no_udp: bool,

    /// Worker threads, each with its own sockets and event loop [default: available cores].
    #[arg(
        help_heading = "Process",
        long,
        value_name = "N",
        env = "SHOAL_WORKERS"
    )]
    pub workers: Option<usize>,

    /// nice value of the control thread (API, metrics, sweeps) on Linux;
    /// higher = packets first on a saturated host; 0 = same as the workers.
    #[arg(help_heading = "Process", 
        long,
        value_name = "N",
        env = "SHOAL_CONTROL_NICE",
        default_value_t = CONTROL_NICE,
        allow_negative_numbers = true,
        value_parser = clap::value_parser!(i32).range(-20..=19)
    )]
    pub control_nice: i32,

    /// Announce interval sent to clients, in seconds (while a worker keeps up).
    #[arg(help_heading = "Tracker", long, value_name = "SECS", env = "SHOAL_INTERVAL", default_value_t = TrackerConfig::default().interval)]
    pub interval: u32,

    /// Spread each reply's interval uniformly within ± PERCENT of the
    /// current interval (0..=50), so clients that announced together drift apart.
    #[arg(help_heading = "Tracker", long, value_name = "PERCENT", env = "SHOAL_INTERVAL_JITTER", default_value_t = TrackerConfig::default().interval_jitter, value_parser = clap::value_parser!(u8).range(0..=i64::from(MAX_INTERVAL_JITTER)))]
    pub interval_jitter: u8,

    /// Longest interval an overloaded worker hands out, in seconds: its
    /// interval rises with the overload up to this and falls back once calm;
    /// equal to --interval: fixed. [default: 4 × --interval, at most 3 h, and
    /// below --peer-timeout if that is given]
    #[arg(
        help_heading = "Tracker",
        long,
        value_name = "SECS",
        env = "SHOAL_MAX_INTERVAL"
    )]
    pub max_interval: Option<u32>,

    /// Drop a peer that has not announced for this long, in seconds (at most
    /// 32767); must exceed the longest interval handed out. [default: the
    /// longest interval handed out (--max-interval plus its jitter) plus half
    /// of --interval]
    #[arg(
        help_heading = "Tracker",
        long,
        value_name = "SECS",
        env = "SHOAL_PEER_TIMEOUT"
    )]
    pub peer_timeout: Option<u32>,

    /// Peers sent when a client asks for the default (num_want -1).
    #[arg(help_heading = "Tracker", long, value_name = "N", env = "SHOAL_DEFAULT_NUMWANT", default_value_t = TrackerConfig::default().default_numwant)]
    pub default_numwant: u32,

    /// Most peers sent in one reply (also capped by one unfragmented datagram:
    /// 242 over IPv4, 67 over IPv6).
    #[arg(help_heading = "Tracker", long, value_name = "N", env = "SHOAL_MAX_NUMWANT", default_value_t = TrackerConfig::default().max_numwant)]
    pub max_numwant: u32,

    /// Most info hashes answered per scrape; the rest of a longer scrape is not answered.
    #[arg(help_heading = "Tracker", long, value_name = "N", env = "SHOAL_MAX_SCRAPE", default_value_t = TrackerConfig::default().max_scrape)]
    pub max_scrape: u32,

    /// How long a UDP connection id is accepted, in seconds (at least 120).
    #[arg(help_heading = "Tracker", long, value_name = "SECS", env = "SHOAL_CONNECTION_ID_LIFETIME", default_value_t = TrackerConfig::default().connection_id_lifetime)]
    pub connection_id_lifetime: u32,

    /// Most peers held in all; at the bound a new peer is still stored and
    /// the stalest peers make room. 0 = no limit.
    #[arg(help_heading = "Memory and limits", long, value_name = "N", env = "SHOAL_MAX_PEERS", default_value_t = TrackerConfig::default().max_peers)]
    pub max_peers: u64,

    /// Memory budget of the swarm map (torrents, peers, indexes, HTTP peer
    /// ids), in bytes or with a suffix: 512M, 2G (powers of 1024). Past 95 %
    /// the peers silent longest are evicted (down to 90 %); new peers are
    /// always stored. Default: half of what the process may use (its cgroup
    /// limit, `ulimit -v`, or physical RAM). 0 = no limit.
    #[arg(help_heading = "Memory and limits", long, value_name = "BYTES", env = "SHOAL_MAX_MEMORY", value_parser = parse_bytes)]
    pub max_memory: Option<u64>,

    /// Most one torrent may hold, in percent of --max-peers and of
    /// --max-memory; a new peer of a torrent at its share replaces the
    /// torrent's stalest peer.
    #[arg(help_heading = "Memory and limits", long, value_name = "PERCENT", env = "SHOAL_MAX_TORRENT_SHARE", default_value_t = TrackerConfig::default().max_torrent_share, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub max_torrent_share: u8,

    /// Access list: one info hash per line (40 hex digits; blank lines and #
    /// comments allowed). Reloaded on SIGHUP and when the file changes.
    #[arg(
        help_heading = "Access control",
        long,
        value_name = "FILE",
        env = "SHOAL_ACCESS_LIST"
    )]
    pub access_list: Option<PathBuf>,

    /// Whether the access list names the only torrents served (allow) or the
    /// torrents refused (deny).
    #[arg(help_heading = "Access control", long, value_name = "MODE", env = "SHOAL_ACCESS_MODE", value_enum, default_value_t = AccessModeArg::Allow)]
    pub access_mode: AccessModeArg,

    /// Private mode: every announce needs a key listed in FILE (one per line,
    /// 32 characters of [A-Za-z0-9], optionally an expiry in Unix seconds), sent
    /// in the URL path: /announce/KEY. Reloaded like the access list.
    #[arg(
        help_heading = "Access control",
        long,
        value_name = "FILE",
        env = "SHOAL_KEYS"
    )]
    pub keys: Option<PathBuf>,

    /// With --keys: scrapes need a key too (HTTP /scrape/KEY; UDP scrapes,
    /// which cannot carry one, are refused). In the environment: 1/true/yes/on.
    #[arg(help_heading = "Access control", 
        long,
        env = "SHOAL_PRIVATE_SCRAPE",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub private_scrape: bool,

    /// Log a one-line summary (requests/s by kind, torrents, peers) every SECS; 0 = off.
    #[arg(
        help_heading = "Process",
        long,
        value_name = "SECS",
        env = "SHOAL_STATS_INTERVAL",
        default_value_t = 0
    )]
    pub stats_interval: u64,

    /// Shards of the swarm map (rounded up to a power of two).
    #[arg(help_heading = "Process", long, value_name = "N", env = "SHOAL_SHARDS", default_value_t = TrackerConfig::default().shards)]
    pub shards: usize,

    /// Socket receive/send buffer asked of the kernel, in bytes (capped by net.core.rmem_max/wmem_max).
    #[arg(help_heading = "Process", long, value_name = "BYTES", env = "SHOAL_SOCKET_BUFFER", default_value_t = Config::default().socket_buffer)]
    pub socket_buffer: usize,

    /// Serve the Sobani rendezvous protocol (UDP) on this address (repeatable;
    /// comma-separated in the environment). Off by default.
    #[arg(help_heading = "Rendezvous", 
        long = "rendezvous",
        value_name = "ADDR",
        env = "SHOAL_RENDEZVOUS",
        value_delimiter = ',',
        value_parser = parse_addr
    )]
    pub rendezvous: Vec<SocketAddr>,

    /// Rendezvous: a registration without announce or alive for this long expires, in seconds.
    #[arg(help_heading = "Rendezvous", long, value_name = "SECS", env = "SHOAL_RENDEZVOUS_TIMEOUT", default_value_t = RendezvousConfig::default().timeout)]
    pub rendezvous_timeout: u32,

    /// Rendezvous: most registrations held (about 110 bytes each); when full, the stalest go first.
    #[arg(help_heading = "Rendezvous", long, value_name = "N", env = "SHOAL_RENDEZVOUS_MAX", default_value_t = RendezvousConfig::default().max)]
    pub rendezvous_max: usize,

    /// Rendezvous: pushes per second per registered peer (bursts of twice that).
    #[arg(help_heading = "Rendezvous", long, value_name = "N", env = "SHOAL_RENDEZVOUS_PUSH_RATE", default_value_t = RendezvousConfig::default().push_rate)]
    pub rendezvous_push_rate: u32,

    /// Share the swarm with other shoal instances through a Redis or Valkey
    /// stream (redis[s]://[USER:PASSWORD@]HOST:PORT[/DB]); every request is
    /// still answered locally.
    #[arg(
        help_heading = "Cluster",
        long,
        value_name = "URL",
        env = "SHOAL_CLUSTER"
    )]
    pub cluster: Option<String>,

    /// Cluster: the name shared by the instances: the stream is NAME:log, the
    /// state keys NAME:state:*.
    #[arg(
        help_heading = "Cluster",
        long,
        value_name = "NAME",
        env = "SHOAL_CLUSTER_NAME",
        default_value = "shoal"
    )]
    pub cluster_name: String,

    /// Cluster: a file holding the secret shared by the instances (at least
    /// 16 bytes, read once at start): every batch is signed with it, and only
    /// signed batches are applied. Without it anyone who can write to the
    /// stream can inject peers.
    #[arg(
        help_heading = "Cluster",
        long,
        value_name = "FILE",
        env = "SHOAL_CLUSTER_SECRET_FILE"
    )]
    pub cluster_secret_file: Option<PathBuf>,

    /// Cluster: PEM certificate(s) of the private CA a rediss:// server's
    /// certificate is checked against, instead of the system's roots.
    #[arg(
        help_heading = "Cluster",
        long,
        value_name = "FILE",
        env = "SHOAL_CLUSTER_CA_FILE"
    )]
    pub cluster_ca_file: Option<PathBuf>,

    /// Cluster: how long the stream keeps batches, in seconds: what an
    /// instance that reconnects or joins can catch up on. Redis holds about
    /// 48 bytes per announce for this long.
    #[arg(help_heading = "Cluster", 
        long,
        value_name = "SECS",
        env = "SHOAL_CLUSTER_BACKLOG",
        default_value_t = crate::cluster::DEFAULT_BACKLOG.as_secs()
    )]
    pub cluster_backlog: u64,

    /// Cluster: entries of the table of each peer's latest event (24 bytes
    /// each): how many recent events records arriving out of order are
    /// judged against.
    #[arg(help_heading = "Cluster", 
        long,
        value_name = "N",
        env = "SHOAL_CLUSTER_VERSIONS",
        default_value_t = crate::cluster::DEFAULT_VERSIONS
    )]
    pub cluster_versions: usize,

    /// Warm restart: load the swarms from FILE at start (if it exists) and
    /// write them to it at SIGTERM/SIGINT and every --state-interval. The file
    /// holds the connection-id key: created readable by the owner only.
    #[arg(
        help_heading = "Warm restart",
        long,
        value_name = "FILE",
        env = "SHOAL_STATE_FILE"
    )]
    pub state_file: Option<PathBuf>,

    /// With --state-file: write the state every SECS while running; 0 = only at exit.
    /// With --cluster: how often this instance stores its swarm state in Redis
    /// for joining instances (kept for three intervals; 0 = every 300 s).
    #[arg(
        help_heading = "Warm restart",
        long,
        value_name = "SECS",
        env = "SHOAL_STATE_INTERVAL",
        default_value_t = 300
    )]
    pub state_interval: u64,
    /// Management API and status page on this address (repeatable;
    /// comma-separated in the environment). Off by default; needs a token.
    /// Keep it on loopback or behind a firewall.
    #[arg(help_heading = "Management API", 
        long = "api",
        value_name = "ADDR",
        env = "SHOAL_API",
        value_delimiter = ',',
        value_parser = parse_addr
    )]
    pub api: Vec<SocketAddr>,

    /// torrust-tracker's REST API (v1) on this address (repeatable;
    /// comma-separated in the environment), so torrust-index and other tools
    /// written for torrust drive shoal. Off by default; the same token and
    /// access files as --api. Keep it on loopback or behind a firewall.
    #[arg(help_heading = "Management API", 
        long = "torrust-api",
        value_name = "ADDR",
        env = "SHOAL_TORRUST_API",
        value_delimiter = ',',
        value_parser = parse_addr
    )]
    pub torrust_api: Vec<SocketAddr>,

    /// The API's bearer token (at least 16 visible characters), for --api
    /// and --torrust-api. Prefer
    /// SHOAL_API_TOKEN or --api-token-file: a flag shows in `ps`.
    #[arg(
        help_heading = "Management API",
        long,
        value_name = "TOKEN",
        env = "SHOAL_API_TOKEN",
        hide_env_values = true
    )]
    pub api_token: Option<String>,

    /// Read the API token from the first line of FILE.
    #[arg(
        help_heading = "Management API",
        long,
        value_name = "FILE",
        env = "SHOAL_API_TOKEN_FILE"
    )]
    pub api_token_file: Option<PathBuf>,

    /// Log level: error, warn, info, debug, trace (or a RUST_LOG-style filter). [default: RUST_LOG, else info]
    #[arg(
        help_heading = "Process",
        long,
        value_name = "LEVEL",
        env = "SHOAL_LOG"
    )]
    pub log: Option<String>,

    /// Print the effective configuration as environment lines
    /// (SHOAL_X=value  # --x), then exit without serving.
    #[arg(help_heading = "Process", long)]
    pub print_config: bool,

    /// What the operator gave, as written: filled by [`super::try_parse_from`]
    /// for `--print-config`.
    #[arg(skip)]
    pub(super) given: Given,
}

/// `--access-mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AccessModeArg {
    Allow,
    Deny,
}

fn parse_url(s: &str) -> Result<TrackerUrl, String> {
    s.parse().map_err(|e: client::ClientError| e.to_string())
}

fn parse_hash(s: &str) -> Result<[u8; 20], String> {
    client::parse_hex20(s).ok_or_else(|| format!("{s:?} is not an info hash (40 hex digits)"))
}

/// A byte count: digits, optionally a suffix K, M, G or T (powers of 1024,
/// `KiB`/`KB`/`K` alike), as `--max-memory 512M`.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(digits);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?}: expected a byte count such as 512M or 2G"))?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(format!("{s:?}: unknown unit (use K, M, G or T)")),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?}: too large"))
}

/// Seconds, fractions allowed, finite, 0.001..=3600.
fn parse_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if (0.001..=3600.0).contains(&x) => Ok(x),
        _ => Err(format!("{s:?}: give seconds between 0.001 and 3600")),
    }
}

/// An address from a flag or an environment list (`a, b` as well as `a,b`).
fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.trim().parse().map_err(|_| {
        format!("{s:?} is not an IP address with a port, like 0.0.0.0:6969 or [::]:6969")
    })
}
