//! The `shoal` binary: parse the command line, then run the tracker until a
//! signal, or run a tool and print what it says.
//!
//! What belongs to the process stays here: the logger, the signal handlers,
//! the tracker's life from bind to the final state write, and exit codes.

use shoal::cli::{self, Command, ServeArgs, ToolRun, UsageError};
use shoal::server::Server;
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::parse() {
        Command::Serve(args) => serve(&args),
        Command::Announce(args) => tool(|| cli::run_announce(&args)),
        Command::Scrape(args) => tool(|| cli::run_scrape(&args)),
        Command::Bench(args) => tool(|| cli::run_bench(&args)),
        Command::Rendezvous(args) => tool(|| cli::run_rendezvous(&args)),
        Command::Api(args) => tool(|| cli::run_api(&args)),
        Command::Completions { shell } => {
            written(cli::doc::completions(shell, &mut std::io::stdout().lock()))
        }
        Command::Man => written(cli::doc::man(&mut std::io::stdout().lock())),
    }
}

/// Run a tool and write out what it printed. Tools log warnings only (e.g.
/// from an in-process server), unless RUST_LOG asks for more.
fn tool(run: impl FnOnce() -> ToolRun) -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp_millis()
        .init();
    run().finish()
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

fn serve(args: &ServeArgs) -> ExitCode {
    let config = match args.to_config() {
        Ok(c) => c,
        Err(e) => return fatal(e, UsageError::EXIT_CODE),
    };
    if args.print_config {
        return written(
            std::io::stdout()
                .lock()
                .write_all(cli::print_config(args, &config).as_bytes()),
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
    for w in cli::unknown_env_warnings(vars) {
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
            // Said before the reload starts, so its lines follow this one.
            if running.has_access_files() {
                log::info!("SIGHUP received, reloading the access files");
                running.reload_access();
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
