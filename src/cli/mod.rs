//! The command line: clap turns flags and `SHOAL_*` environment variables
//! into a plain, validated [`crate::server::Config`] (for `serve`) or a tool
//! invocation (`announce`, `scrape`, `bench`, `rendezvous`, `api`).
//!
//! This room knows the other rooms' configurations and tools, and no other
//! room knows it. Its parts lean one way, from the definitions outwards:
//!
//! - [`defs`]: every subcommand, flag and environment twin (clap derive), and
//!   the value parsers that refuse a bad single value while parsing;
//! - [`convert`]: parsed flags → each room's configuration, composed and
//!   validated; the tools' arguments → their parameters;
//! - [`print`](mod@print): `--print-config`, the effective configuration as environment lines;
//! - [`env`](mod@env): the `SHOAL_*` names, typo warnings, errors that name the variable;
//! - [`doc`]: shell completions and the man page;
//! - [`tools`]: the client tools' runs, as values `main` writes out.
//!
//! What the binary does with the result (logging, signals, the server's life,
//! exit codes) stays in `main.rs`.

pub mod convert;
pub mod defs;
pub mod doc;
pub mod env;
pub mod print;
pub mod tools;

pub use defs::{
    AccessModeArg, AnnounceArgs, ApiArgs, ApiCommand, BenchArgs, CaFile, Cli, ClientArgs, Command,
    EventArg, RendezvousAction, RendezvousArgs, ScrapeArgs, ServeArgs, Shell,
};
pub use env::{env_names, unknown_env_warnings};
pub use print::{print_config, serve_command, Given};
pub use tools::{run_announce, run_api, run_bench, run_rendezvous, run_scrape, ToolRun};

use clap::{CommandFactory, FromArgMatches};
use std::ffi::OsString;
use std::fmt;
use std::io::Write;

/// A command line that cannot run: a bad value, or flags that contradict
/// each other. The message names the flag (or its environment twin).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(String);

impl UsageError {
    /// The exit status of a usage error, the same as clap's own.
    pub const EXIT_CODE: u8 = 2;

    fn new(message: impl Into<String>) -> UsageError {
        UsageError(message.into())
    }

    /// The one line to show (`main` prefixes it with `shoal: `).
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The command line, parsed. Exits on a usage error (or `--help`) as clap
/// does, except that `announce` and `scrape` with `--json` report a usage
/// error as `{"error": "..."}` on stdout, with the same status (2).
pub fn parse() -> Command {
    let args: Vec<OsString> = std::env::args_os().collect();
    let e = match try_parse_from(&args) {
        Ok(command) => return command,
        Err(e) => e,
    };
    if let Some(run) = json_usage_error(&args, &e) {
        let code = run.code;
        let _ = run.finish();
        std::process::exit(i32::from(code))
    }
    match env::env_value_error(&args, &e, |name| std::env::var_os(name).is_some()) {
        Some(text) => {
            let _ = std::io::stderr().lock().write_all(text.as_bytes());
            std::process::exit(e.exit_code())
        }
        None => e.exit(),
    }
}

/// `args` (the program name first) parsed, with the environment twins.
/// `shoal` without a subcommand is [`Command::Serve`] as `shoal serve` is;
/// its [`ServeArgs`] carry what the operator gave, for `--print-config`.
pub fn try_parse_from<I, T>(args: I) -> Result<Command, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = Cli::command().try_get_matches_from(args)?;
    let cli = Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut Cli::command()))?;
    let (mut serve, matches) = match cli.command {
        None => (cli.serve, &matches),
        Some(Command::Serve(serve)) => match matches.subcommand_matches("serve") {
            Some(sub) => (serve, sub),
            None => return Ok(Command::Serve(serve)),
        },
        Some(tool) => return Ok(tool),
    };
    serve.given = Given::from_matches(matches);
    Ok(Command::Serve(serve))
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

#[cfg(test)]
mod tests;
