//! The tools' flags: `shoal api`, `announce`, `scrape`, `bench` and
//! `rendezvous`, beside the tracker's own in the parent module.

use super::{parse_hash, parse_secs, parse_url};
use crate::bench::{BenchConfig, ShedConfig};
use crate::client::{self, TrackerUrl};
use crate::tracker::TrackerConfig;
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;

/// `shoal api`: the management API from the command line.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    #[command(subcommand)]
    pub command: ApiCommand,

    /// Base URL of shoal's --api listener.
    #[arg(
        long,
        value_name = "URL",
        env = "SHOAL_API_URL",
        default_value = "http://127.0.0.1:6970",
        global = true
    )]
    pub api_url: String,

    /// The API token (the server's --api-token). Prefer SHOAL_API_TOKEN: a
    /// flag shows in `ps`.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "SHOAL_API_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub api_token: Option<String>,

    /// Read the API token from the first line of FILE, as the server's
    /// --api-token-file does.
    #[arg(long, value_name = "FILE", env = "SHOAL_API_TOKEN_FILE", global = true)]
    pub api_token_file: Option<PathBuf>,

    /// Print the API's JSON reply on stdout; an error too, as {"error": "..."}.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ApiCommand {
    /// Totals, request rates, rejects, limits.
    Stats,
    /// The torrents with the most peers.
    Torrents {
        /// Torrents to list (at most 1000).
        #[arg(long, value_name = "N", default_value_t = 20)]
        limit: u32,
        /// Skip this many first.
        #[arg(long, value_name = "N", default_value_t = 0)]
        offset: u64,
    },
    /// One torrent and its peers.
    Torrent {
        /// Info hash: 40 hex digits.
        #[arg(value_name = "INFO_HASH", value_parser = parse_hash)]
        info_hash: [u8; 20],
    },
    /// Put an info hash on the access list (written to the --access-list file).
    Allow {
        #[arg(value_name = "INFO_HASH", value_parser = parse_hash)]
        info_hash: [u8; 20],
    },
    /// Take an info hash off the access list.
    Disallow {
        #[arg(value_name = "INFO_HASH", value_parser = parse_hash)]
        info_hash: [u8; 20],
    },
    /// The private-tracker keys.
    Keys,
    /// Make a new random key (written to the --keys file) and print it.
    AddKey {
        /// Seconds until it expires [default: never].
        #[arg(long, value_name = "SECS")]
        valid_for: Option<u64>,
    },
    /// Remove a key.
    RemoveKey {
        #[arg(value_name = "KEY")]
        key: String,
    },
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

    /// Print the reply as JSON on stdout; an error too, as {"error": "..."}
    /// (with the same exit status as without --json).
    #[arg(long)]
    pub json: bool,

    /// https: also trust the CA certificate(s) in this PEM file (a tracker
    /// behind a private CA), besides the system's trusted roots.
    #[arg(long, value_name = "PATH", value_parser = parse_ca_file)]
    pub ca_file: Option<CaFile>,
}

/// A `--ca-file`, read and checked while the command line is parsed, so a
/// wrong path is a usage error before anything is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFile {
    pub path: PathBuf,
    pub pem: Vec<u8>,
}

/// A `--ca-file`: readable, with at least one certificate.
fn parse_ca_file(s: &str) -> Result<CaFile, String> {
    let pem = std::fs::read(s).map_err(|e| format!("cannot read {s}: {e}"))?;
    client::http::parse_ca_pem(&pem).map_err(|e| format!("{s}: {e}"))?;
    Ok(CaFile {
        path: PathBuf::from(s),
        pem,
    })
}

/// `--event` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EventArg {
    Started,
    Completed,
    Stopped,
    None,
}

#[derive(Debug, Clone, Args)]
pub struct AnnounceArgs {
    /// Tracker URL: udp://host:port[/path] or http[s]://host[:port]/announce[?query].
    #[arg(value_name = "URL", value_parser = parse_url)]
    pub url: TrackerUrl,

    /// Info hash: 40 hex digits.
    #[arg(long, value_name = "HEX", value_parser = parse_hash)]
    pub info_hash: [u8; 20],

    /// Port the (simulated) peer listens on [default: 6881; with --probe, a
    /// random one in 49152-65535].
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,

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

    /// Peers wanted; -1 (the default) asks for the tracker's default.
    #[arg(
        long,
        value_name = "N",
        default_value_t = -1,
        allow_negative_numbers = true,
        value_parser = clap::value_parser!(i64).range(-1..=i64::from(u32::MAX))
    )]
    pub numwant: i64,

    /// Check a live tracker without leaving a peer behind: announce, then at
    /// once withdraw the same peer (id, port, key) with a `stopped` announce.
    /// Prints the first reply, then the counts after the withdrawal. The
    /// peer's port, id and key are random (unless given), so the `stopped`
    /// can withdraw no other client on the same host.
    #[arg(long)]
    pub probe: bool,

    /// Peer id: 40 hex digits, or up to 20 bytes of text (a shorter text is a
    /// prefix padded with random characters) [default: -SH0100- and random].
    #[arg(long, value_name = "STR|HEX", allow_hyphen_values = true, value_parser = client::peer_id_from_arg)]
    pub peer_id: Option<[u8; 20]>,

    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ScrapeArgs {
    /// Tracker URL: udp://host:port, an http[s]:// scrape URL (…/scrape), or
    /// an http[s]:// announce URL (…/announce, scraped at …/scrape by the
    /// BEP 48 convention).
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
    /// Given twice, A then B: the two are loaded in alternating rounds
    /// (--rounds) and compared, round by round.
    #[arg(long, value_name = "URL", value_parser = parse_url)]
    pub target: Vec<TrackerUrl>,

    /// With two --target: rounds, each loading A and B for --duration (A
    /// first in odd rounds); prints each round's pair, the geometric mean of
    /// the ratios B/A and, from 5 rounds, its 95 % bootstrap interval. [default: 5]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub rounds: Option<u32>,

    /// Leave the simulated peers in the --target tracker. By default each
    /// gets a `stopped` announce at the end (at most 50 000/s, for at most
    /// 30 s), so the target is left as it was found.
    #[arg(long)]
    pub keep_peers: bool,

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

    /// Send nothing: simulate whether the announce interval sheds load. One
    /// worker, a population of BEP 15 clients that honour the interval they
    /// are handed, shoal's own tracker core and interval control law, in
    /// simulated time; a fixed interval, jitter alone and the adaptive
    /// interval side by side, one line per simulated interval.
    #[arg(long)]
    pub shed: bool,

    /// --shed: simulated clients.
    #[arg(long, value_name = "N", default_value_t = ShedConfig::default().peers)]
    pub shed_peers: u32,

    /// --shed: the clients' demand at --shed-interval over what the worker answers.
    #[arg(long, value_name = "X", default_value_t = ShedConfig::default().load)]
    pub shed_load: f64,

    /// --shed: simulated time, in intervals of --shed-interval.
    #[arg(long, value_name = "N", default_value_t = ShedConfig::default().intervals)]
    pub shed_intervals: u32,

    /// --shed: the simulated tracker's --interval, in seconds (its jitter and
    /// --max-interval are shoal's defaults for it).
    #[arg(long, value_name = "SECS", default_value_t = TrackerConfig::default().interval)]
    pub shed_interval: u32,

    /// --shed: after this many intervals three clients in four leave, to
    /// show the interval coming back [default: they all stay].
    #[arg(long, value_name = "N")]
    pub shed_calm_after: Option<u32>,
}

/// `shoal rendezvous` actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RendezvousAction {
    /// Register; prints the share id.
    Announce,
    /// Register, then send `alive` (a check that the tracker keeps registrations).
    Alive,
    /// Register, then ask to be introduced to SHAREID; prints the peer's address.
    Push,
    /// Register and stay registered (`alive` every --alive-every), printing
    /// each introduction (`income`, `pushed`) as it arrives; with SHAREID,
    /// push to it first. Ends on Ctrl-C, or after --timeout if given.
    Listen,
}

#[derive(Debug, Clone, Args)]
pub struct RendezvousArgs {
    /// Rendezvous tracker: udp://host:port or host:port.
    #[arg(value_name = "URL")]
    pub url: String,

    #[arg(value_enum, value_name = "ACTION")]
    pub action: RendezvousAction,

    /// The share id to push to (8 hex digits; anything else is sent as is).
    #[arg(value_name = "SHAREID", required_if_eq("action", "push"))]
    pub share_id: Option<String>,

    /// Seconds to wait for each answer [default: 5]. With listen: how long
    /// to listen [default: until Ctrl-C].
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub timeout: Option<f64>,

    /// With listen: seconds between `alive`s (keep it well under the
    /// tracker's --rendezvous-timeout, 300 by default).
    #[arg(long, value_name = "SECS", default_value_t = 60.0, value_parser = parse_secs)]
    pub alive_every: f64,

    /// Print the tracker's reply as JSON on stdout (errors as {"error": "..."});
    /// with listen, one JSON object a line, as each message arrives.
    #[arg(long)]
    pub json: bool,
}
