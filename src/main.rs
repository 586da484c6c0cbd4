//! The `shoal` binary: parse the command line, run the tracker or a tool.

use shoal::access::{AccessConfig, LoadError, LoadStats, Reloaded, Reloader};
use shoal::cli::{BenchArgs, Command, RendezvousArgs, ServeArgs};
use shoal::net::Server;
use shoal::stats::Counters;
use std::io::Write;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

fn main() -> ExitCode {
    let cli = shoal::cli::parse();
    match cli.command {
        None => serve(&cli.serve),
        Some(Command::Serve(args)) => serve(&args),
        Some(Command::Announce(args)) => {
            init_tool_logging();
            shoal::cli::run_announce(&args).finish()
        }
        Some(Command::Scrape(args)) => {
            init_tool_logging();
            shoal::cli::run_scrape(&args).finish()
        }
        Some(Command::Bench(args)) => tool(bench(&args)),
        Some(Command::Rendezvous(args)) => rendezvous(&args),
        Some(Command::Api(args)) => api(&args),
        Some(Command::Completions { shell }) => written(shoal::docgen::completions(
            shell,
            &mut std::io::stdout().lock(),
        )),
        Some(Command::Man) => written(shoal::docgen::man(&mut std::io::stdout().lock())),
    }
}

/// The exit status after writing generated text to stdout.
fn written(result: std::io::Result<()>) -> ExitCode {
    match result {
        // A closed pipe (`| head`) is not a failure.
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "shoal: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `shoal rendezvous`: with `--json`, the error object goes to stdout too.
fn rendezvous(args: &RendezvousArgs) -> ExitCode {
    init_tool_logging();
    match args.run() {
        Err(e) if args.json => {
            let _ = writeln!(std::io::stdout().lock(), "{e}");
            ExitCode::FAILURE
        }
        result => tool(result),
    }
}

/// `shoal api`: with `--json`, the error goes to stdout as `{"error": "..."}` too.
fn api(args: &shoal::cli::ApiArgs) -> ExitCode {
    init_tool_logging();
    match args.run() {
        Err(e) if args.json => {
            let _ = writeln!(
                std::io::stdout().lock(),
                "{}",
                serde_json::json!({ "error": e })
            );
            ExitCode::FAILURE
        }
        result => tool(result),
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
    let per_worker =
        16 + config.udp.len() + config.http.len() + config.metrics.len() + config.rendezvous.len();
    let listens = !config.http.is_empty() || !config.metrics.is_empty();
    let need = config.workers * (per_worker + listens as usize * config.http_max_connections);
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

/// Log what the kernel granted for --socket-buffer, and warn (once, for all
/// sockets) when it is less than asked: the kernel silently caps the request
/// at net.core.rmem_max / wmem_max.
fn log_socket_buffers(granted: Option<shoal::net::Buffers>, asked: usize) {
    let Some(b) = granted else {
        return;
    };
    log::info!(
        "socket buffers: {} bytes receive, {} bytes send granted ({asked} asked)",
        b.recv,
        b.send
    );
    let mut short = Vec::new();
    if b.recv < asked {
        short.push(format!("sysctl -w net.core.rmem_max={asked}"));
    }
    if b.send < asked {
        short.push(format!("sysctl -w net.core.wmem_max={asked}"));
    }
    if !short.is_empty() {
        log::warn!(
            "the kernel granted smaller socket buffers than --socket-buffer {asked} asks (receive {}, send {}): bursts beyond them are dropped (see shoal_udp_receive_drops_total); raise the caps with `{}` (and in /etc/sysctl.d/ to keep them)",
            b.recv,
            b.send,
            short.join("` and `")
        );
    }
}

/// Level names env_logger understands on their own.
const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// A `--log` value must be a level, or an env_logger filter whose parts are
/// `MODULE=LEVEL` or a bare module of shoal's (`shoal::net`). A bare word
/// that is neither (`warning`, `verbose`) would be read as a module filter
/// and silently turn every log line off: refused instead.
fn check_log_filter(spec: &str) -> Result<(), String> {
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
            return Err(format!(
                "--log {part:?} is neither a level ({}) nor a filter such as shoal::net=debug",
                LEVELS.join(", ")
            ));
        }
    }
    Ok(())
}

fn serve(args: &ServeArgs) -> ExitCode {
    if let Some(spec) = args.log.as_deref() {
        if let Err(e) = check_log_filter(spec) {
            return fatal(e, 2);
        }
    }
    let config = match args.to_config() {
        Ok(c) => c,
        Err(e) => return fatal(e, 2),
    };
    if args.print_config {
        return written(std::io::stdout().lock().write_all(
            shoal::cli::print_config(&config, &args.access(), args.log.as_deref()).as_bytes(),
        ));
    }
    // An unwritable state file is a usage error found now, not at the first
    // SIGTERM (the load itself happens in `Server::bind`).
    if let Some(path) = &config.state_file {
        if let Err(e) = shoal::snapshot::check_writable(path) {
            return fatal(
                format_args!("--state-file {}: cannot write there: {e}", path.display()),
                2,
            );
        }
    }
    init_logging(args.log.as_deref());
    // A bad line in the access list or key file is a usage error: FILE:LINE.
    let access = args.access();
    let reloader = match (!access.is_open()).then(|| Reloader::start(&access)) {
        None => None,
        Some(Ok(r)) => Some(r),
        Some(Err(e)) => return fatal(e, 2),
    };
    // Signals are caught before any thread starts, so a SIGTERM during start-up
    // is not lost to the default handler.
    // SIGHUP too: its default action would end the tracker (a closed
    // terminal, or `systemctl reload`); it is logged instead.
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
    let config = &server.shared().config;
    let vars = std::env::vars_os().filter_map(|(k, _)| k.into_string().ok());
    for w in shoal::cli::unknown_env_warnings(vars) {
        log::warn!("{w}");
    }
    log::info!("shoal {} {}", env!("CARGO_PKG_VERSION"), config.summary());
    for w in config.warnings() {
        log::warn!("{w}");
    }
    raise_nofile_limit(config);
    log_socket_buffers(
        server.socket_buffers(),
        server.shared().config.socket_buffer,
    );
    for addr in server.udp_addrs() {
        log::info!("listening on udp://{addr}");
    }
    for addr in server.http_addrs() {
        log::info!("listening on http://{addr}");
    }
    for addr in server.rendezvous_addrs() {
        log::info!("listening on rendezvous://{addr}");
    }
    for addr in server.metrics_addrs() {
        log::info!("serving /metrics and /health on http://{addr}");
    }
    for addr in server.api_addrs() {
        log::info!("serving the management API and status page on http://{addr}");
        if !addr.ip().is_loopback() {
            log::warn!(
                "the management API on {addr} is not on loopback: keep it behind a firewall"
            );
        }
    }
    if let Some(r) = &reloader {
        log_policy(&access, r);
        if let Err(e) = server.set_access(r.handle().clone()) {
            return fatal(e, 1);
        }
        server.manage_access(&access, r.handle().clone());
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
    // Stops the workers, then writes the final state snapshot (--state-file).
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
