//! Command-line parsing: clap turns flags and `SHOAL_*` environment variables
//! into a plain [`Config`] (for `serve`) or a tool invocation (`announce`,
//! `scrape`, `bench`: typed parameters for [`crate::client`] and
//! [`crate::bench`]).
//!
//! Also the client tools' runs ([`run_announce`], [`run_scrape`]): what they
//! print and how they exit, as a value ([`ToolRun`]) that `main` writes out,
//! so the text and `--json` forms of output and errors are tested without a
//! process.

use crate::access::{AccessConfig, Mode};
use crate::api::ApiConfig;
use crate::bench::BenchConfig;
use crate::client::{self, AnnounceParams, Client, Event, TrackerUrl};
use crate::limit::{Cidr, LimitConfig};
use crate::net::HttpConfig;
use crate::rendezvous::RendezvousConfig;
use crate::server::{Config, Listen};
use crate::state::StateConfig;
use crate::tracker::TrackerConfig;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
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
    /// Talk to a Sobani rendezvous tracker (announce, alive, push) and print its reply.
    Rendezvous(RendezvousArgs),
    /// Ask a running shoal's management API (--api): stats, torrents, the access list, keys.
    Api(ApiArgs),
    /// Print a shell completion script (bash, zsh or fish) on stdout.
    Completions {
        #[arg(value_enum)]
        shell: crate::docgen::Shell,
    },
    /// Print the man page, shoal(1), in roff on stdout (`shoal man > shoal.1`).
    Man,
}

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

impl ApiArgs {
    /// The request this command line asks for.
    pub fn request(&self) -> crate::api::client::Request {
        use crate::api::client::Request;
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

    /// Send it; the text to print, or a one-line error.
    pub fn run(&self) -> Result<String, String> {
        let token = self
            .api_token
            .as_deref()
            .ok_or("no API token: set SHOAL_API_TOKEN (or give --api-token)")?;
        crate::api::client::run(&self.api_url, token, &self.request(), self.json)
    }
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

impl ClientArgs {
    pub fn client(&self) -> Client {
        let client = Client::new(Duration::from_secs_f64(self.timeout), self.tries);
        match &self.ca_file {
            // Checked when parsed: the file holds at least one certificate.
            Some(ca) => client.clone().with_ca_pem(&ca.pem).unwrap_or(client),
            None => client,
        }
    }
}

/// A `--ca-file`, read and checked while the command line is parsed, so a
/// wrong path is a usage error before anything is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFile {
    pub path: PathBuf,
    pub pem: Vec<u8>,
}

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
    /// Tracker URL: udp://host:port[/path] or http[s]://host[:port]/announce[?query].
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
    /// Prints the first reply, then the counts after the withdrawal.
    #[arg(long)]
    pub probe: bool,

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
        p.numwant = u32::try_from(self.numwant).ok();
        p
    }
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

/// The command line, parsed. Exits on a usage error (or `--help`) as clap
/// does, except that `announce` and `scrape` with `--json` report a usage
/// error as `{"error": "..."}` on stdout, with the same status (2).
pub fn parse() -> Cli {
    let args: Vec<OsString> = std::env::args_os().collect();
    match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => match json_usage_error(&args, &e) {
            Some(run) => {
                let code = run.code;
                let _ = run.finish();
                std::process::exit(i32::from(code))
            }
            None => match env_value_error(&args, &e, |name| std::env::var_os(name).is_some()) {
                Some(text) => {
                    let _ = std::io::stderr().lock().write_all(text.as_bytes());
                    std::process::exit(e.exit_code())
                }
                None => e.exit(),
            },
        },
    }
}

/// A bad value that came from the environment, not the command line: clap
/// names only the flag (`invalid value 'x' for '--workers <N>'`), which the
/// operator never typed. The text then names the variable first:
/// `invalid value 'x' for SHOAL_WORKERS (--workers <N>)`. `None` when the
/// value was on the command line, or for other errors.
fn env_value_error(
    args: &[OsString],
    e: &clap::Error,
    is_set: impl Fn(&str) -> bool,
) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(
        e.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return None;
    }
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let flag = arg.split(' ').next()?;
    let on_command_line = args.iter().filter_map(|a| a.to_str()).any(|a| {
        a == flag
            || a.strip_prefix(flag)
                .is_some_and(|rest| rest.starts_with('='))
    });
    if on_command_line {
        return None;
    }
    let cmd = Cli::command();
    let env = all_args(&cmd)
        .find(|a| {
            a.get_long()
                .is_some_and(|l| flag.strip_prefix("--") == Some(l))
        })?
        .get_env()?
        .to_str()?
        .to_string();
    if !is_set(&env) {
        return None;
    }
    let text = e.render().to_string();
    Some(text.replacen(&format!("'{arg}'"), &format!("{env} ({arg})"), 1))
}

/// Every argument of the command and its subcommands.
fn all_args(cmd: &clap::Command) -> Box<dyn Iterator<Item = &clap::Arg> + '_> {
    Box::new(
        cmd.get_arguments()
            .chain(cmd.get_subcommands().flat_map(all_args)),
    )
}

/// Every `SHOAL_*` variable shoal reads.
pub fn env_names() -> Vec<String> {
    let cmd = Cli::command();
    let mut names: Vec<String> = all_args(&cmd)
        .filter_map(|a| Some(a.get_env()?.to_str()?.to_string()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// A warning for each `SHOAL_*` name in `vars` that shoal does not read (a
/// typo such as `SHOAL_WORKER` is otherwise silently ignored), naming the
/// nearest real one.
pub fn unknown_env_warnings<I: IntoIterator<Item = String>>(vars: I) -> Vec<String> {
    let known = env_names();
    vars.into_iter()
        .filter(|v| v.starts_with("SHOAL_") && !known.contains(v))
        .map(|v| {
            let nearest = known.iter().min_by_key(|k| edit_distance(&v, k));
            match nearest {
                Some(k) if edit_distance(&v, k) <= 3 => {
                    format!("{v} is not a shoal setting and is ignored; did you mean {k}?")
                }
                _ => {
                    format!("{v} is not a shoal setting and is ignored (`shoal --help` lists them)")
                }
            }
        })
        .collect()
}

/// Levenshtein distance over bytes (the names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.as_bytes().iter().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let next = (diag + usize::from(ca != cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// The `--json` form of a usage error of `announce` or `scrape`, if that is
/// what `args` ran; `None` for anything else (and for `--help`).
fn json_usage_error(args: &[OsString], e: &clap::Error) -> Option<ToolRun> {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        return None;
    }
    let tool = args.get(1)?.to_str()?;
    if !matches!(tool, "announce" | "scrape") || !args.iter().skip(2).any(|a| a == "--json") {
        return None;
    }
    // clap's first line says what is wrong; the rest is usage and a `--help` hint.
    let text = e.render().to_string();
    let line = text.lines().next().unwrap_or_default();
    let line = line.strip_prefix("error: ").unwrap_or(line);
    Some(ToolRun::error(
        line,
        u8::try_from(e.exit_code()).unwrap_or(2),
        true,
    ))
}

/// What a client tool prints and how it exits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolRun {
    pub stdout: String,
    pub stderr: String,
    /// 0: done; 1: the tracker could not be reached or checked; 2: a usage error.
    pub code: u8,
}

impl ToolRun {
    fn ok(stdout: String) -> ToolRun {
        ToolRun {
            stdout,
            stderr: String::new(),
            code: 0,
        }
    }

    /// A failure, one line: `shoal: MESSAGE` on stderr, or with `json`
    /// `{"error":"MESSAGE"}` on stdout (where a script reads the reply).
    fn error(message: &str, code: u8, json: bool) -> ToolRun {
        if json {
            // Cannot fail: a map of one string.
            let doc = serde_json::json!({ "error": message });
            ToolRun {
                stdout: format!("{doc}\n"),
                stderr: String::new(),
                code,
            }
        } else {
            ToolRun {
                stdout: String::new(),
                stderr: format!("shoal: {message}\n"),
                code,
            }
        }
    }

    /// Writes the output out; the exit status.
    pub fn finish(self) -> ExitCode {
        // A closed pipe (`| head`) is not an error worth a panic.
        let _ = std::io::stdout().lock().write_all(self.stdout.as_bytes());
        let _ = std::io::stderr().lock().write_all(self.stderr.as_bytes());
        ExitCode::from(self.code)
    }
}

/// `shoal announce`: the reply as text or JSON. With `--probe`, announce and
/// withdraw; the first reply, then the counts after the `stopped`.
pub fn run_announce(args: &AnnounceArgs) -> ToolRun {
    let json = args.client.json;
    let fail = |e: &dyn std::fmt::Display| ToolRun::error(&format!("{}: {e}", args.url), 1, json);
    let client = args.client.client();
    let params = args.params();
    if !args.probe {
        return match client.announce(&args.url, &params) {
            Ok(r) if json => ToolRun::ok(r.to_json() + "\n"),
            Ok(r) => ToolRun::ok(r.to_text()),
            Err(e) => fail(&e),
        };
    }
    if params.event == Event::Stopped {
        return ToolRun::error(
            "--probe sends the stopped announce itself: give --event started, completed or none",
            2,
            json,
        );
    }
    let probe = match client.probe(&args.url, &params) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let r = &probe.reply;
    match &probe.stopped {
        Ok(after) if json => {
            #[derive(serde::Serialize)]
            struct Counts {
                seeders: u32,
                leechers: u32,
            }
            #[derive(serde::Serialize)]
            struct ProbeJson<'a> {
                #[serde(flatten)]
                reply: &'a client::AnnounceResponse,
                after_stopped: Counts,
            }
            let doc = ProbeJson {
                reply: r,
                after_stopped: Counts {
                    seeders: after.seeders,
                    leechers: after.leechers,
                },
            };
            // Cannot fail: numbers, strings and addresses, no maps with other keys.
            ToolRun::ok(serde_json::to_string(&doc).unwrap_or_default() + "\n")
        }
        Ok(after) => ToolRun::ok(format!(
            "{}after stopped: {} seeders, {} leechers\n",
            r.to_text(),
            after.seeders,
            after.leechers
        )),
        Err(e) => fail(&format_args!(
            "announced ({} seeders, {} leechers, {} peers), but the stopped announce failed \
             (the peer stays until the tracker times it out): {e}",
            r.seeders,
            r.leechers,
            r.peers.len()
        )),
    }
}

/// `shoal scrape`: a table, or JSON.
pub fn run_scrape(args: &ScrapeArgs) -> ToolRun {
    let json = args.client.json;
    match args.client.client().scrape(&args.url, &args.info_hashes) {
        Ok(stats) if json => ToolRun::ok(client::scrape_to_json(&args.info_hashes, &stats) + "\n"),
        Ok(stats) => ToolRun::ok(client::scrape_to_text(&args.info_hashes, &stats)),
        Err(e) => ToolRun::error(&format!("{}: {e}", args.url), 1, json),
    }
}

fn parse_url(s: &str) -> Result<TrackerUrl, String> {
    s.parse().map_err(|e: client::ClientError| e.to_string())
}

fn parse_hash(s: &str) -> Result<[u8; 20], String> {
    client::parse_hex20(s).ok_or_else(|| format!("{s:?} is not an info hash (40 hex digits)"))
}

/// Seconds, fractions allowed, finite, 0.001..=3600.
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

    /// HTTP tracker address to serve announce and scrape on (repeatable;
    /// comma-separated in the environment). Off by default.
    #[arg(
        long = "http",
        value_name = "ADDR",
        env = "SHOAL_HTTP",
        value_delimiter = ',',
        value_parser = parse_addr
    )]
    pub http: Vec<SocketAddr>,

    /// Operator address serving only /metrics and /health (repeatable;
    /// comma-separated in the environment). Works with the HTTP tracker off.
    #[arg(
        long = "metrics",
        value_name = "ADDR",
        env = "SHOAL_METRICS",
        value_delimiter = ',',
        value_parser = parse_addr
    )]
    pub metrics: Vec<SocketAddr>,

    /// Also serve /metrics and /health on the public --http addresses (off:
    /// they answer 404 there). In the environment: 1/0, true/false, yes/no, on/off.
    #[arg(
        long,
        env = "SHOAL_HTTP_METRICS",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub http_metrics: bool,

    /// HTTP: most open connections per worker; more are closed at once.
    #[arg(long, value_name = "N", env = "SHOAL_HTTP_MAX_CONNECTIONS", default_value_t = HttpConfig::default().max_connections)]
    pub http_max_connections: usize,

    /// HTTP: close a connection idle (or stuck mid-request) for this long, in seconds.
    #[arg(long, value_name = "SECS", env = "SHOAL_HTTP_IDLE_TIMEOUT", default_value_t = HttpConfig::default().idle_timeout.as_secs())]
    pub http_idle_timeout: u64,

    /// HTTP behind a reverse proxy: take the client address from this header
    /// (X-Forwarded-For: rightmost entry; X-Real-IP). Announces without it are refused.
    #[arg(long, value_name = "NAME", env = "SHOAL_HTTP_CLIENT_IP_HEADER")]
    pub http_client_ip_header: Option<String>,

    /// HTTP: believe --http-client-ip-header only from peers in this range
    /// (repeatable; comma-separated in the environment); from others the
    /// header is ignored and counted. Default: 127.0.0.0/8 and ::1/128.
    #[arg(
        long = "http-trusted-proxy",
        value_name = "CIDR",
        env = "SHOAL_HTTP_TRUSTED_PROXY",
        value_delimiter = ','
    )]
    pub http_trusted_proxy: Vec<Cidr>,

    /// HTTP: most open connections per client address, over all workers (0 = no cap).
    #[arg(long, value_name = "N", env = "SHOAL_HTTP_MAX_CONNECTIONS_PER_IP", default_value_t = LimitConfig::default().http_max_connections_per_ip)]
    pub http_max_connections_per_ip: u32,

    /// Requests per second per source address (connect, announce and scrape
    /// together, UDP and HTTP); over it UDP gets no reply, HTTP a failure
    /// reason. 0 = off (the default: many users may share one address).
    #[arg(long, value_name = "N", env = "SHOAL_RATE_LIMIT", default_value_t = 0)]
    pub rate_limit: u32,

    /// Requests an address may send at once before --rate-limit applies. [default: 2 × --rate-limit]
    #[arg(long, value_name = "N", env = "SHOAL_RATE_BURST")]
    pub rate_burst: Option<u32>,

    /// Serve no UDP tracker (only useful with --http or --rendezvous). In the
    /// environment: 1/0, true/false, yes/no, on/off.
    // Not `conflicts_with = "udp"`: clap counts SHOAL_NO_UDP=false as given,
    // and compose files write booleans so; `to_config` refuses a true one.
    #[arg(
        long,
        env = "SHOAL_NO_UDP",
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

    /// Most peers held in all; at the bound a new peer is still stored and
    /// the stalest peers make room. 0 = no limit.
    #[arg(long, value_name = "N", env = "SHOAL_MAX_PEERS", default_value_t = TrackerConfig::default().max_peers)]
    pub max_peers: u64,

    /// Memory budget of the swarm map (torrents, peers, indexes, HTTP peer
    /// ids), in bytes or with a suffix: 512M, 2G (powers of 1024). Past 95 %
    /// the peers silent longest are evicted (down to 90 %); new peers are
    /// always stored. Default: half of what the process may use (its cgroup
    /// limit, `ulimit -v`, or physical RAM). 0 = no limit.
    #[arg(long, value_name = "BYTES", env = "SHOAL_MAX_MEMORY", value_parser = parse_bytes)]
    pub max_memory: Option<u64>,

    /// Most one torrent may hold, in percent of --max-peers and of
    /// --max-memory; a new peer of a torrent at its share replaces the
    /// torrent's stalest peer.
    #[arg(long, value_name = "PERCENT", env = "SHOAL_MAX_TORRENT_SHARE", default_value_t = TrackerConfig::default().max_torrent_share, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub max_torrent_share: u8,

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
    #[arg(long, value_name = "N", env = "SHOAL_SHARDS", default_value_t = TrackerConfig::default().shards)]
    pub shards: usize,

    /// Socket receive/send buffer asked of the kernel, in bytes (capped by net.core.rmem_max/wmem_max).
    #[arg(long, value_name = "BYTES", env = "SHOAL_SOCKET_BUFFER", default_value_t = Config::default().socket_buffer)]
    pub socket_buffer: usize,

    /// Serve the Sobani rendezvous protocol (UDP) on this address (repeatable;
    /// comma-separated in the environment). Off by default.
    #[arg(
        long = "rendezvous",
        value_name = "ADDR",
        env = "SHOAL_RENDEZVOUS",
        value_delimiter = ',',
        value_parser = parse_addr
    )]
    pub rendezvous: Vec<SocketAddr>,

    /// Rendezvous: a registration without announce or alive for this long expires, in seconds.
    #[arg(long, value_name = "SECS", env = "SHOAL_RENDEZVOUS_TIMEOUT", default_value_t = RendezvousConfig::default().timeout)]
    pub rendezvous_timeout: u32,

    /// Rendezvous: most registrations held (about 110 bytes each); when full, the stalest go first.
    #[arg(long, value_name = "N", env = "SHOAL_RENDEZVOUS_MAX", default_value_t = RendezvousConfig::default().max)]
    pub rendezvous_max: usize,

    /// Rendezvous: pushes per second per registered peer (bursts of twice that).
    #[arg(long, value_name = "N", env = "SHOAL_RENDEZVOUS_PUSH_RATE", default_value_t = RendezvousConfig::default().push_rate)]
    pub rendezvous_push_rate: u32,

    /// Share the swarm with other shoal instances through Redis or Valkey
    /// pub/sub (redis://HOST:PORT[/DB]); every request is still answered locally.
    #[arg(long, value_name = "URL", env = "SHOAL_CLUSTER")]
    pub cluster: Option<String>,

    /// Cluster: the pub/sub channel shared by the instances, and the prefix of their state keys.
    #[arg(
        long,
        value_name = "NAME",
        env = "SHOAL_CLUSTER_NAME",
        default_value = "shoal"
    )]
    pub cluster_name: String,

    /// Warm restart: load the swarms from FILE at start (if it exists) and
    /// write them to it at SIGTERM/SIGINT and every --state-interval. The file
    /// holds the connection-id key: created readable by the owner only.
    #[arg(long, value_name = "FILE", env = "SHOAL_STATE_FILE")]
    pub state_file: Option<PathBuf>,

    /// With --state-file: write the state every SECS while running; 0 = only at exit.
    /// With --cluster: how often this instance stores its swarm state in Redis
    /// for joining instances (kept for three intervals; 0 = every 300 s).
    #[arg(
        long,
        value_name = "SECS",
        env = "SHOAL_STATE_INTERVAL",
        default_value_t = 300
    )]
    pub state_interval: u64,
    /// Management API and status page on this address (repeatable;
    /// comma-separated in the environment). Off by default; needs a token.
    /// Keep it on loopback or behind a firewall.
    #[arg(
        long = "api",
        value_name = "ADDR",
        env = "SHOAL_API",
        value_delimiter = ',',
        value_parser = parse_addr
    )]
    pub api: Vec<SocketAddr>,

    /// The API's bearer token (at least 16 visible characters). Prefer
    /// SHOAL_API_TOKEN or --api-token-file: a flag shows in `ps`.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "SHOAL_API_TOKEN",
        hide_env_values = true
    )]
    pub api_token: Option<String>,

    /// Read the API token from the first line of FILE.
    #[arg(long, value_name = "FILE", env = "SHOAL_API_TOKEN_FILE")]
    pub api_token_file: Option<PathBuf>,

    /// Log level: error, warn, info, debug, trace (or a RUST_LOG-style filter). [default: RUST_LOG, else info]
    #[arg(long, value_name = "LEVEL", env = "SHOAL_LOG")]
    pub log: Option<String>,

    /// Print the effective configuration as environment lines
    /// (SHOAL_X=value  # --x), then exit without serving.
    #[arg(long)]
    pub print_config: bool,
}

impl ServeArgs {
    /// The validated configuration these flags describe.
    pub fn to_config(&self) -> Result<Config, String> {
        let defaults = Config::default();
        let default_addrs = self.udp.is_empty() && !self.no_udp;
        // Checked here, not by clap's `requires`: SHOAL_PRIVATE_SCRAPE=false
        // in the environment must not demand --keys.
        if self.private_scrape && self.keys.is_none() {
            return Err("--private-scrape needs --keys (private mode)".into());
        }
        if self.http_idle_timeout == 0 {
            return Err("--http-idle-timeout must be at least 1 second".into());
        }
        if self.no_udp && !self.udp.is_empty() {
            return Err("--no-udp cannot be used with --udp (SHOAL_NO_UDP, SHOAL_UDP)".into());
        }
        let udp = if self.no_udp {
            Vec::new()
        } else if self.udp.is_empty() {
            defaults.listen.udp.clone()
        } else {
            self.udp.clone()
        };
        let api_token = match (&self.api_token, &self.api_token_file) {
            (Some(_), Some(_)) => {
                return Err("give the API token once: --api-token (SHOAL_API_TOKEN) or --api-token-file, not both".into())
            }
            (Some(t), None) => Some(crate::api::ApiToken::parse(t)?),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("--api-token-file {}: {e}", path.display()))?;
                let first = text.lines().next().unwrap_or_default();
                Some(
                    crate::api::ApiToken::parse(first)
                        .map_err(|e| format!("--api-token-file {}: {e}", path.display()))?,
                )
            }
            (None, None) => None,
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
                max_memory: self
                    .max_memory
                    .unwrap_or_else(|| crate::server::host::default_max_memory().0),
                max_torrent_share: self.max_torrent_share,
                shards: self.shards,
            },
            listen: Listen {
                udp,
                http: self.http.clone(),
                metrics: self.metrics.clone(),
                api: self.api.clone(),
                rendezvous: self.rendezvous.clone(),
                defaults: default_addrs,
            },
            http: HttpConfig {
                max_connections: self.http_max_connections,
                idle_timeout: Duration::from_secs(self.http_idle_timeout),
                client_ip_header: self.http_client_ip_header.clone(),
                metrics_on_tracker_port: self.http_metrics,
            },
            workers: self.workers.unwrap_or(defaults.workers),
            stats_interval: (self.stats_interval > 0)
                .then(|| Duration::from_secs(self.stats_interval)),
            socket_buffer: self.socket_buffer,
            rendezvous: RendezvousConfig {
                timeout: self.rendezvous_timeout,
                max: self.rendezvous_max,
                push_rate: self.rendezvous_push_rate,
            },
            state: self.state_file.clone().map(|path| StateConfig {
                path,
                interval: (self.state_interval > 0)
                    .then(|| Duration::from_secs(self.state_interval)),
            }),
            api: ApiConfig { token: api_token },
            access: self.access(),
            control_nice: defaults.control_nice,
            cluster: self
                .cluster
                .as_ref()
                .map(|url| crate::cluster::ClusterConfig {
                    url: url.clone(),
                    name: self.cluster_name.clone(),
                    state_interval: Duration::from_secs(match self.state_interval {
                        0 => 300,
                        n => n,
                    }),
                }),
            limits: LimitConfig {
                rate_limit: self.rate_limit,
                rate_burst: self.rate_burst,
                trusted_proxies: if self.http_trusted_proxy.is_empty() {
                    LimitConfig::default().trusted_proxies
                } else {
                    self.http_trusted_proxy.clone()
                },
                http_max_connections_per_ip: self.http_max_connections_per_ip,
            },
        };
        config.validate()?;
        Ok(config)
    }
}

/// The effective configuration as `SHOAL_X=value  # --x` lines, one per
/// server setting, that read back (as the environment of another `shoal`)
/// give the same configuration. A setting that is off is a commented line.
/// `redis://user:secret@host` as `redis://user:***@host`: `--print-config`
/// output ends up in tickets and chat, the password must not.
fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or("", |(u, _)| u);
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_string(),
    }
}

pub fn print_config(config: &Config, log: Option<&str>) -> String {
    let access = &config.access;
    fn list(addrs: &[SocketAddr]) -> String {
        addrs
            .iter()
            .map(SocketAddr::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
    let t = &config.tracker;
    let off = |v: &str| (!v.is_empty()).then(|| v.to_string());
    // The built-in UDP addresses stay implicit: written out, a host without
    // IPv6 would fail on [::] instead of skipping it.
    let udp = (!config.listen.defaults).then(|| list(&config.listen.udp));
    let mut lines: Vec<(&str, &str, Option<String>)> = vec![
        ("SHOAL_UDP", "--udp", udp.and_then(|u| off(&u))),
        (
            "SHOAL_NO_UDP",
            "--no-udp",
            Some(config.listen.udp.is_empty().to_string()),
        ),
        ("SHOAL_HTTP", "--http", off(&list(&config.listen.http))),
        (
            "SHOAL_METRICS",
            "--metrics",
            off(&list(&config.listen.metrics)),
        ),
        (
            "SHOAL_HTTP_METRICS",
            "--http-metrics",
            Some(config.http.metrics_on_tracker_port.to_string()),
        ),
        (
            "SHOAL_HTTP_MAX_CONNECTIONS",
            "--http-max-connections",
            Some(config.http.max_connections.to_string()),
        ),
        (
            "SHOAL_HTTP_IDLE_TIMEOUT",
            "--http-idle-timeout",
            Some(config.http.idle_timeout.as_secs().to_string()),
        ),
        (
            "SHOAL_HTTP_CLIENT_IP_HEADER",
            "--http-client-ip-header",
            config.http.client_ip_header.clone(),
        ),
        (
            "SHOAL_WORKERS",
            "--workers",
            Some(config.workers.to_string()),
        ),
        ("SHOAL_INTERVAL", "--interval", Some(t.interval.to_string())),
        (
            "SHOAL_PEER_TIMEOUT",
            "--peer-timeout",
            Some(t.peer_timeout.to_string()),
        ),
        (
            "SHOAL_DEFAULT_NUMWANT",
            "--default-numwant",
            Some(t.default_numwant.to_string()),
        ),
        (
            "SHOAL_MAX_NUMWANT",
            "--max-numwant",
            Some(t.max_numwant.to_string()),
        ),
        (
            "SHOAL_MAX_SCRAPE",
            "--max-scrape",
            Some(t.max_scrape.to_string()),
        ),
        (
            "SHOAL_CONNECTION_ID_LIFETIME",
            "--connection-id-lifetime",
            Some(t.connection_id_lifetime.to_string()),
        ),
        (
            "SHOAL_MAX_PEERS",
            "--max-peers",
            Some(t.max_peers.to_string()),
        ),
        (
            "SHOAL_MAX_MEMORY",
            "--max-memory",
            Some(t.max_memory.to_string()),
        ),
        (
            "SHOAL_MAX_TORRENT_SHARE",
            "--max-torrent-share",
            Some(t.max_torrent_share.to_string()),
        ),
        (
            "SHOAL_STATS_INTERVAL",
            "--stats-interval",
            Some(config.stats_interval.map_or(0, |d| d.as_secs()).to_string()),
        ),
        ("SHOAL_SHARDS", "--shards", Some(t.shards.to_string())),
        (
            "SHOAL_SOCKET_BUFFER",
            "--socket-buffer",
            Some(config.socket_buffer.to_string()),
        ),
        (
            "SHOAL_RENDEZVOUS",
            "--rendezvous",
            off(&list(&config.listen.rendezvous)),
        ),
    ];
    lines.push(("SHOAL_API", "--api", off(&list(&config.listen.api))));
    let r = &config.rendezvous;
    lines.extend([
        (
            "SHOAL_RENDEZVOUS_TIMEOUT",
            "--rendezvous-timeout",
            Some(r.timeout.to_string()),
        ),
        (
            "SHOAL_RENDEZVOUS_MAX",
            "--rendezvous-max",
            Some(r.max.to_string()),
        ),
        (
            "SHOAL_RENDEZVOUS_PUSH_RATE",
            "--rendezvous-push-rate",
            Some(r.push_rate.to_string()),
        ),
    ]);
    let cluster = config.cluster.as_ref();
    lines.extend([
        (
            "SHOAL_CLUSTER",
            "--cluster",
            cluster.map(|c| redact_url_password(&c.url)),
        ),
        (
            "SHOAL_CLUSTER_NAME",
            "--cluster-name",
            Some(cluster.map_or("shoal".into(), |c| c.name.clone())),
        ),
    ]);
    let l = &config.limits;
    lines.extend([
        (
            "SHOAL_HTTP_TRUSTED_PROXY",
            "--http-trusted-proxy",
            Some(
                l.trusted_proxies
                    .iter()
                    .map(Cidr::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        ),
        (
            "SHOAL_HTTP_MAX_CONNECTIONS_PER_IP",
            "--http-max-connections-per-ip",
            Some(l.http_max_connections_per_ip.to_string()),
        ),
        (
            "SHOAL_RATE_LIMIT",
            "--rate-limit",
            Some(l.rate_limit.to_string()),
        ),
        (
            "SHOAL_RATE_BURST",
            "--rate-burst",
            l.rate_burst.map(|b| b.to_string()),
        ),
    ]);
    let path = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string());
    let state_file = config.state.as_ref().map(|s| s.path.clone());
    let state_interval = config
        .state
        .as_ref()
        .map_or(300, |s| s.interval.map_or(0, |d| d.as_secs()));
    lines.extend([
        ("SHOAL_STATE_FILE", "--state-file", path(&state_file)),
        (
            "SHOAL_STATE_INTERVAL",
            "--state-interval",
            Some(state_interval.to_string()),
        ),
    ]);
    let list = access.list.as_ref().map(|(p, _)| p.clone());
    let mode = match access.list.as_ref().map(|(_, m)| *m) {
        Some(Mode::Deny) => "deny",
        _ => "allow",
    };
    lines.extend([
        ("SHOAL_ACCESS_LIST", "--access-list", path(&list)),
        ("SHOAL_ACCESS_MODE", "--access-mode", Some(mode.to_string())),
        ("SHOAL_KEYS", "--keys", path(&access.keys)),
        (
            "SHOAL_PRIVATE_SCRAPE",
            "--private-scrape",
            Some(access.private_scrape.to_string()),
        ),
        ("SHOAL_LOG", "--log", log.map(str::to_string)),
    ]);
    let mut out = String::new();
    for (env, flag, value) in lines {
        match value {
            Some(v) => out.push_str(&format!("{env}={v}  # {flag}\n")),
            None => out.push_str(&format!("# {env}=  # {flag} (not set)\n")),
        }
    }
    // The token itself is a secret: never printed.
    out.push_str(match config.api.token {
        Some(_) => "# SHOAL_API_TOKEN=  # --api-token (set; not shown: give it again)\n",
        None => "# SHOAL_API_TOKEN=  # --api-token (not set)\n",
    });
    out
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

    /// Seconds to wait for each answer.
    #[arg(long, value_name = "SECS", default_value_t = 5.0, value_parser = parse_secs)]
    pub timeout: f64,

    /// Print the tracker's reply as JSON on stdout (errors as {"error": "..."}).
    #[arg(long)]
    pub json: bool,
}

impl RendezvousArgs {
    /// Run the action. `Ok` is the output to print; `Err` the one-line error
    /// (a JSON object with `--json`). Every action registers first: each run
    /// is a fresh UDP port, which the tracker has never seen.
    pub fn run(&self) -> Result<String, String> {
        use crate::rendezvous::client::{ClientReply, RendezvousClient};
        use crate::rendezvous::message::{Announced, Reply};
        let fail = |e: String| {
            if self.json {
                serde_json::json!({ "error": e }).to_string()
            } else {
                e
            }
        };
        let tracker = resolve_rendezvous(&self.url).map_err(|e| fail(e.clone()))?;
        let timeout = Duration::from_secs_f64(self.timeout);
        let mut c = RendezvousClient::new(tracker, timeout)
            .map_err(|e| fail(format!("{}: {e}", self.url)))?;
        let err =
            |e: crate::rendezvous::client::RendezvousError| fail(format!("{}: {e}", self.url));
        let id = c.announce().map_err(err)?;
        let (reply, text): (ClientReply, String) = match self.action {
            RendezvousAction::Announce => (
                Reply::Announced(Announced { share_id: id }),
                format!("share id: {id}"),
            ),
            RendezvousAction::Alive => {
                c.alive().map_err(err)?;
                (Reply::Alived, format!("alived (share id {id})"))
            }
            RendezvousAction::Push => {
                let target = self.share_id.as_deref().unwrap_or_default();
                let peer = c.push(target).map_err(err)?;
                let text = format!("peer {} (share id {})", peer.peer_addr, peer.peer_share_id);
                (Reply::Pushed(peer), text)
            }
        };
        let mut out = if self.json {
            serde_json::to_string(&reply).map_err(|e| fail(e.to_string()))?
        } else {
            text
        };
        out.push('\n');
        Ok(out)
    }
}

/// `udp://host:port`, `host:port` or `[v6]:port`, resolved (first address).
fn resolve_rendezvous(url: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let rest = match url.split_once("://") {
        Some(("udp", rest)) => rest,
        Some((scheme, _)) => {
            return Err(format!(
                "{url}: a rendezvous tracker is udp://host:port, not {scheme}://"
            ))
        }
        None => url,
    };
    let host_port = rest.strip_suffix('/').unwrap_or(rest);
    host_port
        .to_socket_addrs()
        .map_err(|e| format!("{url}: {e}"))?
        .next()
        .ok_or_else(|| format!("{url}: the host has no address"))
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

    #[test]
    fn unknown_environment_names_get_the_nearest_real_one() {
        assert_eq!(edit_distance("SHOAL_WORKER", "SHOAL_WORKERS"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        let w = unknown_env_warnings(
            [
                "SHOAL_WORKER",
                "SHOAL_WORKERS",
                "PATH",
                "SHOAL_ZZZZZZZZZZZZZZZZ",
                "SHOAL_HTTP_METRIC",
            ]
            .map(String::from),
        );
        assert_eq!(
            w,
            [
                "SHOAL_WORKER is not a shoal setting and is ignored; did you mean SHOAL_WORKERS?",
                "SHOAL_ZZZZZZZZZZZZZZZZ is not a shoal setting and is ignored (`shoal --help` lists them)",
                "SHOAL_HTTP_METRIC is not a shoal setting and is ignored; did you mean SHOAL_HTTP_METRICS?",
            ]
        );
        assert!(env_names().contains(&"SHOAL_METRICS".to_string()));
    }

    #[test]
    fn a_bad_value_from_the_environment_names_the_variable() {
        let args: Vec<OsString> = vec!["shoal".into(), "--interval".into(), "x".into()];
        let e = Cli::try_parse_from(&args).unwrap_err();
        assert_eq!(
            env_value_error(&args, &e, |_| true),
            None,
            "typed on the command line"
        );
        // As if SHOAL_WORKERS=x: clap's error for the flag, the variable named.
        let args: Vec<OsString> = vec!["shoal".into(), "--workers=x".into()];
        let e = Cli::try_parse_from(&args).unwrap_err();
        let text = env_value_error(&["shoal".into()], &e, |n| n == "SHOAL_WORKERS").unwrap();
        assert!(
            text.starts_with("error: invalid value 'x' for SHOAL_WORKERS (--workers <N>)"),
            "{text}"
        );
    }

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("shoal").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn no_arguments_serve_the_defaults() {
        let cli = parse(&[]);
        assert!(cli.command.is_none());
        let c = cli.serve.to_config().unwrap();
        assert_eq!(c.listen.udp, Config::default().listen.udp);
        assert!(c.listen.defaults);
        // The memory budget defaults to half of what the process may use.
        let budget = crate::server::host::default_max_memory().0;
        assert!(budget > 0, "a limit is found here (at least MemTotal)");
        assert_eq!(
            c.tracker,
            TrackerConfig {
                max_memory: budget,
                ..TrackerConfig::default()
            }
        );
    }

    #[test]
    fn byte_counts_take_binary_suffixes() {
        assert_eq!(parse_bytes("0"), Ok(0));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("512M"), Ok(512 << 20));
        assert_eq!(parse_bytes("2G"), Ok(2 << 30));
        assert_eq!(parse_bytes("3gib"), Ok(3 << 30));
        assert_eq!(parse_bytes("1 KB"), Ok(1024));
        for bad in ["", "M", "1.5G", "12X", "-1", "99999999999T"] {
            assert!(parse_bytes(bad).is_err(), "{bad:?}");
        }
        let c = parse(&["--max-memory", "64M"]).serve.to_config().unwrap();
        assert_eq!(c.tracker.max_memory, 64 << 20);
    }

    #[test]
    fn limit_flags() {
        let c = parse(&[]).serve.to_config().unwrap();
        assert_eq!(c.limits, LimitConfig::default());
        let c = parse(&[
            "--rate-limit",
            "20",
            "--http-trusted-proxy",
            "10.0.0.0/8",
            "--http-trusted-proxy",
            "2001:db8::/32",
            "--http-max-connections-per-ip",
            "0",
        ])
        .serve
        .to_config()
        .unwrap();
        let l = &c.limits;
        assert_eq!(
            (l.rate_limit, l.burst(), l.http_max_connections_per_ip),
            (20, 40, 0)
        );
        assert!(l.is_trusted_proxy("10.9.8.7".parse().unwrap()));
        assert!(l.is_trusted_proxy("2001:db8::1".parse().unwrap()));
        assert!(
            !l.is_trusted_proxy("127.0.0.1".parse().unwrap()),
            "replaces the default"
        );
        let c = parse(&["--rate-limit", "5", "--rate-burst", "7"])
            .serve
            .to_config()
            .unwrap();
        assert_eq!(c.limits.burst(), 7);
        assert!(parse(&["--rate-limit", "5", "--rate-burst", "0"])
            .serve
            .to_config()
            .unwrap_err()
            .contains("--rate-burst"));
        assert!(Cli::try_parse_from(["shoal", "--http-trusted-proxy", "10.0.0.0/33"]).is_err());
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
        assert_eq!(c.listen.udp.len(), 2);
        assert!(!c.listen.defaults);
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

    #[test]
    fn rendezvous_flags() {
        let c = parse(&[]).serve.to_config().unwrap();
        assert!(c.listen.rendezvous.is_empty(), "off by default");
        assert_eq!(c.rendezvous, RendezvousConfig::default());
        let cli = parse(&[
            "--rendezvous",
            "127.0.0.1:0",
            "--rendezvous",
            "[::1]:7001",
            "--rendezvous-timeout",
            "60",
            "--rendezvous-max",
            "1000",
            "--rendezvous-push-rate",
            "2",
        ]);
        let c = cli.serve.to_config().unwrap();
        assert_eq!(c.listen.rendezvous.len(), 2);
        assert_eq!(
            c.rendezvous,
            RendezvousConfig {
                timeout: 60,
                max: 1000,
                push_rate: 2
            }
        );
        // The UDP tracker keeps its defaults; rendezvous alone is enough to serve.
        assert!(c.listen.defaults);
        let c = parse(&["--no-udp", "--rendezvous", "127.0.0.1:0"])
            .serve
            .to_config()
            .unwrap();
        assert!(c.listen.udp.is_empty());
        for (flag, value) in [
            ("--rendezvous-timeout", "0"),
            ("--rendezvous-max", "0"),
            ("--rendezvous-push-rate", "0"),
        ] {
            let err = parse(&[flag, value]).serve.to_config().unwrap_err();
            assert!(err.contains(flag), "{flag}: {err}");
        }
        let err = parse(&["--udp", "127.0.0.1:7000", "--rendezvous", "127.0.0.1:7000"])
            .serve
            .to_config()
            .unwrap_err();
        assert!(err.contains("--rendezvous 127.0.0.1:7000"), "{err}");
    }

    #[test]
    fn rendezvous_subcommand() {
        let cli = parse(&[
            "rendezvous",
            "udp://127.0.0.1:7000",
            "push",
            "1a2b3c4d",
            "--json",
        ]);
        let Some(Command::Rendezvous(r)) = cli.command else {
            panic!()
        };
        assert_eq!(r.action, RendezvousAction::Push);
        assert_eq!(r.share_id.as_deref(), Some("1a2b3c4d"));
        assert!(r.json);
        assert_eq!(r.timeout, 5.0);
        let cli = parse(&["rendezvous", "[::1]:7000", "announce"]);
        assert!(matches!(cli.command, Some(Command::Rendezvous(_))));
        // push needs an id; unknown actions are refused.
        assert!(Cli::try_parse_from(["shoal", "rendezvous", "h:1", "push"]).is_err());
        assert!(Cli::try_parse_from(["shoal", "rendezvous", "h:1", "dance"]).is_err());
    }

    #[test]
    fn rendezvous_urls() {
        let v4 = SocketAddr::from(([127, 0, 0, 1], 7000));
        assert_eq!(resolve_rendezvous("udp://127.0.0.1:7000"), Ok(v4));
        assert_eq!(resolve_rendezvous("udp://127.0.0.1:7000/"), Ok(v4));
        assert_eq!(resolve_rendezvous("127.0.0.1:7000"), Ok(v4));
        assert_eq!(
            resolve_rendezvous("[::1]:7000"),
            Ok(SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 7000)))
        );
        assert!(resolve_rendezvous("http://127.0.0.1:7000")
            .unwrap_err()
            .contains("udp://"));
        assert!(resolve_rendezvous("127.0.0.1").is_err(), "a port is needed");
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
        assert!(!a.probe);
        // -1 asks for the tracker's default, as in `bench`; https and --probe.
        let cli = parse(&[
            "announce",
            "https://h/announce",
            "--info-hash",
            HASH,
            "--numwant",
            "-1",
            "--probe",
        ]);
        let Some(Command::Announce(a)) = cli.command else {
            panic!()
        };
        assert_eq!(a.params().numwant, None);
        assert!(a.probe);
        assert_eq!(a.url.scheme(), client::Scheme::Https);
        let cli = parse(&[
            "announce",
            "udp://h:1",
            "--info-hash",
            HASH,
            "--numwant",
            "0",
        ]);
        let Some(Command::Announce(a)) = cli.command else {
            panic!()
        };
        assert_eq!(a.params().numwant, Some(0));
        // Bad input is refused by clap with the reason.
        for bad in [
            &["announce", "udp://h:1", "--info-hash", "abc"][..],
            &["announce", "ftp://h/announce", "--info-hash", HASH],
            &[
                "announce",
                "udp://h:1",
                "--info-hash",
                HASH,
                "--numwant",
                "-2",
            ],
            &[
                "announce",
                "udp://h:1",
                "--info-hash",
                HASH,
                "--ca-file",
                "/nonexistent/ca.pem",
            ],
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
    fn ca_file_is_read_and_checked_when_parsed() {
        let dir = std::env::temp_dir().join(format!("shoal-cli-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("ca.pem");
        std::fs::write(
            &good,
            "-----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let cli = parse(&[
            "scrape",
            "https://h/scrape",
            HASH,
            "--ca-file",
            good.to_str().unwrap(),
        ]);
        let Some(Command::Scrape(s)) = cli.command else {
            panic!()
        };
        assert_eq!(s.client.ca_file.as_ref().unwrap().path, good);
        assert_ne!(s.client.client(), Client::new(Duration::from_secs(5), 3));
        let err = Cli::try_parse_from([
            "shoal",
            "scrape",
            "https://h/scrape",
            HASH,
            "--ca-file",
            empty.to_str().unwrap(),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("no certificate"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn json_usage_errors() {
        let args = os(&[
            "shoal",
            "announce",
            "udp://h:1",
            "--info-hash",
            "xyz",
            "--json",
        ]);
        let e = Cli::try_parse_from(&args).unwrap_err();
        let run = json_usage_error(&args, &e).unwrap();
        assert_eq!(run.code, 2);
        assert!(run.stderr.is_empty());
        let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        let msg = doc["error"].as_str().unwrap();
        assert!(msg.contains("not an info hash"), "{msg}");
        assert!(!msg.contains('\n') && !msg.starts_with("error:"), "{msg}");
        assert_eq!(run.stdout.matches('\n').count(), 1);
        // Without --json, or for --help, or another subcommand: clap's own output.
        let args = os(&["shoal", "announce", "udp://h:1", "--info-hash", "xyz"]);
        let e = Cli::try_parse_from(&args).unwrap_err();
        assert!(json_usage_error(&args, &e).is_none());
        let args = os(&["shoal", "scrape", "--help", "--json"]);
        let e = Cli::try_parse_from(&args).unwrap_err();
        assert!(json_usage_error(&args, &e).is_none());
        let args = os(&["shoal", "bench", "--duration", "0", "--json"]);
        let e = Cli::try_parse_from(&args).unwrap_err();
        assert!(json_usage_error(&args, &e).is_none());
    }

    #[test]
    fn tool_errors_are_one_line_in_either_form() {
        let text = ToolRun::error("udp://h:1: no reply", 1, false);
        assert_eq!(
            (text.stdout.as_str(), text.stderr.as_str(), text.code),
            ("", "shoal: udp://h:1: no reply\n", 1)
        );
        let json = ToolRun::error("say \"hi\"\n", 1, true);
        assert_eq!(
            (json.stdout.as_str(), json.stderr.as_str(), json.code),
            ("{\"error\":\"say \\\"hi\\\"\\n\"}\n", "", 1)
        );
    }

    #[test]
    fn probe_refuses_a_stopped_event() {
        let cli = parse(&[
            "announce",
            "udp://127.0.0.1:1",
            "--info-hash",
            HASH,
            "--probe",
            "--event",
            "stopped",
            "--json",
        ]);
        let Some(Command::Announce(a)) = cli.command else {
            panic!()
        };
        let run = run_announce(&a);
        assert_eq!(run.code, 2);
        assert!(run
            .stdout
            .contains("--probe sends the stopped announce itself"));
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
        let err = parse(&["--private-scrape"]).serve.to_config().unwrap_err();
        assert!(err.contains("--private-scrape needs --keys"), "{err}");
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
