//! The `shoal` binary: parse the command line, run the tracker or a tool.

use clap::Parser;
use shoal::cli::{Cli, Command, ServeArgs};
use shoal::net::Server;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => serve(&cli.serve),
        Some(Command::Serve(args)) => serve(&args),
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

fn serve(args: &ServeArgs) -> ExitCode {
    init_logging(args.log.as_deref());
    let config = match args.to_config() {
        Ok(c) => c,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::from(2);
        }
    };
    // Signals are caught before any thread starts, so a SIGTERM during start-up
    // is not lost to the default handler.
    let mut signals = match signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ]) {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let workers = config.workers;
    let server = match Server::bind(config) {
        Ok(s) => s,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    for addr in server.udp_addrs() {
        log::info!("listening on udp://{addr}");
    }
    for addr in server.http_addrs() {
        log::info!("listening on http://{addr}");
    }
    let running = match server.spawn() {
        Ok(r) => r,
        Err(e) => {
            log::error!("cannot start worker threads: {e}");
            return ExitCode::FAILURE;
        }
    };
    log::info!(
        "shoal {} serving with {workers} worker(s)",
        env!("CARGO_PKG_VERSION")
    );
    if let Some(sig) = signals.forever().next() {
        let name = if sig == signal_hook::consts::SIGINT {
            "SIGINT"
        } else {
            "SIGTERM"
        };
        log::info!("{name} received, shutting down");
    }
    running.stop();
    log::info!("stopped");
    ExitCode::SUCCESS
}
