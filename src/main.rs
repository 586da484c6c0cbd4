//! The `shoal` binary: parse the command line, run the tracker or a tool.

use clap::Parser;
use shoal::access::{AccessConfig, LoadError, LoadStats, Reloaded, Reloader};
use shoal::cli::{AnnounceArgs, BenchArgs, Cli, Command, ScrapeArgs, ServeArgs};
use shoal::client;
use shoal::net::Server;
use shoal::stats::Counters;
use std::io::Write;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => serve(&cli.serve),
        Some(Command::Serve(args)) => serve(&args),
        Some(Command::Announce(args)) => tool(announce(&args)),
        Some(Command::Scrape(args)) => tool(scrape(&args)),
        Some(Command::Bench(args)) => tool(bench(&args)),
    }
}

/// Print a tool's output on stdout, or its error as one line on stderr.
fn tool(result: Result<String, String>) -> ExitCode {
    match result {
        Ok(out) => {
            // A closed pipe (`| head`) is not an error worth a panic.
            let _ = std::io::stdout().lock().write_all(out.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "shoal: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Tools log warnings only (e.g. from an in-process server), unless asked.
fn init_tool_logging() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp_millis()
        .init();
}

fn with_newline(mut s: String) -> String {
    s.push('\n');
    s
}

fn announce(args: &AnnounceArgs) -> Result<String, String> {
    init_tool_logging();
    let reply = args
        .client
        .client()
        .announce(&args.url, &args.params())
        .map_err(|e| format!("{}: {e}", args.url))?;
    Ok(if args.client.json {
        with_newline(reply.to_json())
    } else {
        reply.to_text()
    })
}

fn scrape(args: &ScrapeArgs) -> Result<String, String> {
    init_tool_logging();
    let stats = args
        .client
        .client()
        .scrape(&args.url, &args.info_hashes)
        .map_err(|e| format!("{}: {e}", args.url))?;
    Ok(if args.client.json {
        with_newline(client::scrape_to_json(&args.info_hashes, &stats))
    } else {
        client::scrape_to_text(&args.info_hashes, &stats)
    })
}

fn bench(args: &BenchArgs) -> Result<String, String> {
    init_tool_logging();
    let report = shoal::bench::run(&args.to_config()?)?;
    let out = if args.json {
        with_newline(report.to_json())
    } else {
        report.to_text()
    };
    if report.replies_total() == 0 {
        // The report still goes out (it says what was sent and lost), but a
        // run without a single reply is a failure worth an exit status.
        let _ = std::io::stdout().lock().write_all(out.as_bytes());
        return Err(format!(
            "{}: no replies (is a UDP tracker listening there?)",
            report.target
        ));
    }
    Ok(out)
}

fn init_logging(level: Option<&str>) {
    let mut builder = match level {
        Some(filter) => {
            let mut b = env_logger::Builder::new();
            b.parse_filters(filter);
            b
        }
        None => env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")),
    };
    builder.format_timestamp_millis().init();
}

/// A fatal start-up error: always on stderr, whatever the log level (an
/// operator who set `--log off` or mistyped a level must still see why shoal
/// did not start).
fn fatal(msg: impl std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("shoal: {msg}");
    ExitCode::from(code)
}

/// Raise the soft open-file limit to the hard one (one info line), and warn if
/// even that is below what the HTTP connection limit may need.
#[cfg(unix)]
fn raise_nofile_limit(config: &shoal::config::Config) {
    let limit = match shoal::net::sys::raise_nofile(1 << 20) {
        Ok(l) => l,
        Err(e) => {
            log::warn!("cannot raise the open-file limit: {e}");
            return;
        }
    };
    if limit.after > limit.before {
        log::info!(
            "open-file limit raised from {} to {} (the hard limit is {})",
            limit.before,
            limit.after,
            limit.hard
        );
    } else {
        log::info!(
            "open-file limit {} (the hard limit is {})",
            limit.after,
            limit.hard
        );
    }
    // Each worker: its sockets and poller, plus up to the HTTP connection limit.
    let per_worker = 16 + config.udp.len() + config.http.len();
    let need = config.workers
        * (per_worker + (!config.http.is_empty()) as usize * config.http_max_connections);
    if (limit.after as usize) < need {
        log::warn!(
            "the open-file limit {} is below the {need} descriptors {} workers with --http-max-connections {} may need; accepts pause when it runs out",
            limit.after,
            config.workers,
            config.http_max_connections
        );
    }
}

#[cfg(not(unix))]
fn raise_nofile_limit(_config: &shoal::config::Config) {}

/// Level names env_logger understands on their own.
const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

fn serve(args: &ServeArgs) -> ExitCode {
    if let Some(spec) = args.log.as_deref() {
        // A bare word that is not a level is a module filter to env_logger, which
        // silently turns everything else off: say so.
        for word in spec
            .split(',')
            .filter(|w| !w.contains('=') && !w.is_empty())
        {
            if !LEVELS.contains(&word.to_ascii_lowercase().as_str()) && !word.starts_with("shoal") {
                eprintln!(
                    "shoal: warning: --log {word:?} is not a level ({}); it is read as a module filter",
                    LEVELS.join(", ")
                );
            }
        }
    }
    init_logging(args.log.as_deref());
    let config = match args.to_config() {
        Ok(c) => c,
        Err(e) => return fatal(e, 2),
    };
    // A bad line in the access list or key file is a usage error: FILE:LINE.
    let access = args.access();
    let reloader = match (!access.is_open()).then(|| Reloader::start(&access)) {
        None => None,
        Some(Ok(r)) => Some(r),
        Some(Err(e)) => return fatal(e, 2),
    };
    // Signals are caught before any thread starts, so a SIGTERM during start-up
    // is not lost to the default handler.
    let mut signals = match signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ]) {
        Ok(s) => s,
        Err(e) => return fatal(format_args!("cannot install signal handlers: {e}"), 1),
    };
    let workers = config.workers;
    let server = match Server::bind(config) {
        Ok(s) => s,
        Err(e) => return fatal(e, 1),
    };
    // After binding, so a bind error stays the one line an operator sees;
    // before any connection is accepted.
    raise_nofile_limit(&server.shared().config);
    for addr in server.udp_addrs() {
        log::info!("listening on udp://{addr}");
    }
    for addr in server.http_addrs() {
        log::info!("listening on http://{addr}");
    }
    if let Some(r) = &reloader {
        log_policy(&access, r);
        if let Err(e) = server.set_access(r.handle().clone()) {
            return fatal(e, 1);
        }
    }
    let running = match server.spawn() {
        Ok(r) => r,
        Err(e) => return fatal(format_args!("cannot start worker threads: {e}"), 1),
    };
    let counters = std::sync::Arc::clone(&running.shared().registry.workers[0]);
    let reload = match reloader.map(|r| spawn_reloader(r, access, counters)) {
        Some(Err(e)) => return fatal(format_args!("cannot start the reload thread: {e}"), 1),
        Some(Ok(tx)) => Some(tx),
        None => None,
    };
    log::info!(
        "shoal {} serving with {workers} worker(s)",
        env!("CARGO_PKG_VERSION")
    );
    for sig in signals.forever() {
        if sig == signal_hook::consts::SIGHUP {
            match &reload {
                Some(tx) => {
                    log::info!("SIGHUP received, reloading the access files");
                    let _ = tx.send(());
                }
                None => log::info!("SIGHUP received; no access list or key file to reload"),
            }
            continue;
        }
        let name = if sig == signal_hook::consts::SIGINT {
            "SIGINT"
        } else {
            "SIGTERM"
        };
        log::info!("{name} received, shutting down");
        break;
    }
    running.stop();
    log::info!("stopped");
    ExitCode::SUCCESS
}

/// How often the access files are checked for changes. A change is loaded
/// once the file has held still for one check, so within two of these.
const ACCESS_POLL: Duration = Duration::from_secs(2);

/// The access policy in force, at start-up (counts, never keys).
fn log_policy(access: &AccessConfig, reloader: &Reloader) {
    let policy = reloader.handle().load();
    if let (Some((path, _)), Some((mode, list))) = (&access.list, policy.list()) {
        let mode = format!("{mode:?}").to_ascii_lowercase();
        log::info!(
            "access list {}: {} info hashes ({mode} mode)",
            path.display(),
            list.len()
        );
    }
    if let (Some(path), Some(keys)) = (&access.keys, policy.keys()) {
        log::info!(
            "private mode: {} keys from {}{}",
            keys.len(),
            path.display(),
            if access.private_scrape {
                "; scrapes need a key too"
            } else {
                ""
            }
        );
    }
}

/// The thread that reloads the access files: on a SIGHUP (a message on the
/// returned channel) and every [`ACCESS_POLL`] when a file changed. Workers
/// never wait on it: they switch to the new policy on their next request.
/// Dropping the sender ends the thread.
fn spawn_reloader(
    mut reloader: Reloader,
    access: AccessConfig,
    counters: std::sync::Arc<Counters>,
) -> std::io::Result<mpsc::Sender<()>> {
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("shoal-reload".into())
        .spawn(move || loop {
            let out = match rx.recv_timeout(ACCESS_POLL) {
                Ok(()) => reloader.reload_all(),
                Err(mpsc::RecvTimeoutError::Timeout) => reloader.poll(),
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            };
            report_reload(&access, &out, &counters);
        })?;
    Ok(tx)
}

/// One info line per file reloaded, one error line per file that failed.
fn report_reload(access: &AccessConfig, out: &Reloaded, counters: &Counters) {
    let list_path = access.list.as_ref().map(|(p, _)| p.display());
    let keys_path = access.keys.as_ref().map(|p| p.display());
    let files = [
        (&out.list, list_path, "info hashes", "access list"),
        (&out.keys, keys_path, "keys", "key file"),
    ];
    for (i, (result, path, what, file)) in files.into_iter().enumerate() {
        let path = path.map(|p| p.to_string()).unwrap_or_default();
        match result {
            None => {}
            Some(Ok(LoadStats {
                entries, elapsed, ..
            })) => log::info!(
                "reloaded {file} {path}: {entries} {what} in {} ms",
                elapsed.as_millis()
            ),
            Some(Err(e)) => {
                counters.access_reload_failures[i].incr();
                log_reload_error(file, e);
            }
        }
    }
}

/// `FILE:LINE: reason`; the text of a line is never shown (it may be a key).
fn log_reload_error(file: &str, e: &LoadError) {
    log::error!("cannot reload the {file}: {e}; the previous one stays in force");
}
