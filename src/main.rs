//! The `shoal` binary: parse the command line, run the tracker or a tool.

use shoal::cli::{BenchArgs, Command, RendezvousArgs, ServeArgs};
use shoal::server::Server;
use std::io::Write;
use std::process::ExitCode;

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
        Some(Command::Completions { shell }) => written(shoal::cli::doc::completions(
            shell,
            &mut std::io::stdout().lock(),
        )),
        Some(Command::Man) => written(shoal::cli::doc::man(&mut std::io::stdout().lock())),
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
        return written(
            std::io::stdout()
                .lock()
                .write_all(shoal::cli::print_config(&config, args.log.as_deref()).as_bytes()),
        );
    }
    init_logging(args.log.as_deref());
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
        Err(e) => return fatal(&e, e.exit_code()),
    };
    // After binding, so a bind error stays the one line an operator sees;
    // before any connection is accepted.
    let vars = std::env::vars_os().filter_map(|(k, _)| k.into_string().ok());
    for w in shoal::cli::unknown_env_warnings(vars) {
        log::warn!("{w}");
    }
    server.log_start();
    let running = match server.spawn() {
        Ok(r) => r,
        Err(e) => return fatal(&e, e.exit_code()),
    };
    log::info!(
        "shoal {} serving with {workers} worker(s)",
        env!("CARGO_PKG_VERSION")
    );
    for sig in signals.forever() {
        if sig == signal_hook::consts::SIGHUP {
            if running.reload_access() {
                log::info!("SIGHUP received, reloading the access files");
            } else {
                log::info!("SIGHUP received; no access list or key file to reload");
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
    // Stops every thread, then writes the final state snapshot (--state-file).
    running.stop();
    log::info!("stopped");
    ExitCode::SUCCESS
}
