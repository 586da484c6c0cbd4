//! `--print-config`: the effective configuration as environment lines,
//! `SHOAL_X=value  # --x`, one per setting of `shoal serve`.
//!
//! The lines come from clap's own argument list ([`serve_command`]), not
//! from a list of names kept beside it: a new flag with an environment twin
//! is printed without a change here. Each value is, in order:
//!
//! 1. what the operator gave, on the command line or in the environment,
//!    as written ([`Given`]);
//! 2. for a default found on the host at start-up (worker count, memory
//!    budget), the value found (`detected`);
//! 3. the default the flag's definition declares;
//! 4. otherwise the setting is off or derived, and the line is a comment.
//!
//! Read back as the environment of another `shoal`, the lines give the same
//! configuration, with two deliberate exceptions: a secret (an argument
//! whose environment value clap hides from `--help`, the API token) is a
//! comment saying it is set, and a password in a URL is `***`. The output
//! ends up in tickets and chat; neither may.

use super::defs::ServeArgs;
use crate::server::Config;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args};
use std::ffi::OsString;

/// The `shoal serve` arguments as clap defines them, built (so flags show
/// their implicit `false` default).
pub fn serve_command() -> clap::Command {
    let mut cmd = ServeArgs::augment_args(clap::Command::new("shoal"));
    cmd.build();
    cmd
}

/// What the operator gave for each setting, on the command line or in the
/// environment, as written (before parsing): what `--print-config` prints
/// back. Defaults are not in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Given(Vec<(String, Vec<OsString>)>);

impl Given {
    /// The values in `matches` that the operator gave.
    pub fn from_matches(matches: &ArgMatches) -> Given {
        let mut given = Vec::new();
        for id in matches.ids() {
            let id = id.as_str();
            if !matches!(
                matches.value_source(id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            ) {
                continue;
            }
            if let Ok(Some(raw)) = matches.try_get_raw(id) {
                given.push((id.to_string(), raw.map(OsString::from).collect()));
            }
        }
        Given(given)
    }

    /// The values given for the argument `id`, if any.
    fn get(&self, id: &str) -> Option<&[OsString]> {
        self.0
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, values)| values.as_slice())
    }
}

/// What one line says about its setting.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    /// Given by the operator, or the definition's default.
    Set(String),
    /// Not given; the default found on this host. Printed as a setting, so
    /// the output read back elsewhere keeps this host's value.
    Detected(String),
    /// A secret that is set: never printed.
    Secret,
    /// Not given and without a default: off, or derived from other settings.
    Unset,
}

/// For settings whose default is found on the host at start-up rather than
/// declared by the flag ("[default: available cores]"), or derived from
/// other settings, the value found, as the configuration holds it.
fn detected(id: &str, config: &Config) -> Option<String> {
    match id {
        "workers" => Some(config.workers.to_string()),
        "max_memory" => Some(config.tracker.max_memory.to_string()),
        // Derived from each other and from --interval: printed as derived,
        // so the lines read back give the same pair.
        "max_interval" => Some(config.tracker.max_interval().to_string()),
        "peer_timeout" => Some(config.tracker.peer_timeout.to_string()),
        _ => None,
    }
}

/// The effective configuration of `args` (which `config` was built from) as
/// `SHOAL_X=value  # --x` lines; a setting that is off is a commented line.
pub fn print_config(args: &ServeArgs, config: &Config) -> String {
    let cmd = serve_command();
    let mut out = String::new();
    // Actions (--print-config, --help) have no environment twin and no line.
    for arg in cmd.get_arguments() {
        let Some(env) = arg.get_env().map(|e| e.to_string_lossy()) else {
            continue;
        };
        let flag = arg.get_long().unwrap_or_default();
        let line = match value(arg, &args.given, config) {
            Value::Set(v) | Value::Detected(v) => format!("{env}={v}  # --{flag}\n"),
            Value::Secret => format!("# {env}=  # --{flag} (set; not shown: give it again)\n"),
            Value::Unset => format!("# {env}=  # --{flag} (not set)\n"),
        };
        out.push_str(&line);
    }
    out
}

/// The value of one argument's line: see the module's documentation.
fn value(arg: &clap::Arg, given: &Given, config: &Config) -> Value {
    let id = arg.get_id().as_str();
    if let Some(values) = given.get(id) {
        if arg.is_hide_env_values_set() {
            return Value::Secret;
        }
        return Value::Set(join(arg, values.iter().map(|v| v.to_string_lossy())));
    }
    if let Some(v) = detected(id, config) {
        return Value::Detected(v);
    }
    let defaults = arg.get_default_values();
    if defaults.is_empty() {
        return Value::Unset;
    }
    Value::Set(join(arg, defaults.iter().map(|v| v.to_string_lossy())))
}

/// Several values as one environment value: separated as clap splits that
/// variable; each with any URL password redacted.
fn join<'a>(arg: &clap::Arg, values: impl Iterator<Item = std::borrow::Cow<'a, str>>) -> String {
    let sep = arg.get_value_delimiter().unwrap_or(',').to_string();
    values
        .map(|v| redact_url_password(&v))
        .collect::<Vec<_>>()
        .join(&sep)
}

/// `redis://user:secret@host` as `redis://user:***@host` (`redis://secret@host`
/// as `redis://:***@host`: some clients read a lone userinfo as the
/// password); anything that is not a URL with credentials unchanged.
fn redact_url_password(value: &str) -> String {
    let Some((scheme, rest)) = value.split_once("://") else {
        return value.to_string();
    };
    let authority = rest.split('/').next().unwrap_or_default();
    match authority.rsplit_once('@') {
        Some((userinfo, _)) => {
            let user = userinfo.split_once(':').map_or("", |(u, _)| u);
            let host = &rest[userinfo.len() + 1..];
            format!("{scheme}://{user}:***@{host}")
        }
        None => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{try_parse_from, Command};
    use super::*;

    fn serve(args: &[&str]) -> ServeArgs {
        match try_parse_from(std::iter::once("shoal").chain(args.iter().copied())).unwrap() {
            Command::Serve(serve) => serve,
            other => panic!("{other:?}"),
        }
    }

    /// The configuration `args` give, and its printed form.
    fn printed(args: &[&str]) -> (Config, String) {
        let serve = serve(args);
        let config = serve.to_config().unwrap();
        let text = print_config(&serve, &config);
        (config, text)
    }

    /// The printed settings as a command line (`--flag=value`; a flag that
    /// takes no value is given when true). The environment form is read
    /// back by tests/cli.rs, through the binary.
    fn as_flags(text: &str) -> Vec<String> {
        let cmd = serve_command();
        let mut flags = Vec::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (setting, flag) = line.split_once("  # --").unwrap();
            let (_, value) = setting.split_once('=').unwrap();
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_long() == Some(flag))
                .unwrap_or_else(|| panic!("no flag --{flag}"));
            if arg.get_action().takes_values() {
                flags.push(format!("--{flag}={value}"));
            } else if value == "true" {
                flags.push(format!("--{flag}"));
            } else {
                assert_eq!(value, "false", "{line}");
            }
        }
        flags
    }

    #[test]
    fn every_setting_is_one_line_named_by_its_variable_and_flag() {
        let cmd = serve_command();
        let settings: Vec<(String, String)> = cmd
            .get_arguments()
            .filter_map(|a| {
                let env = a.get_env()?.to_str()?.to_string();
                Some((env, a.get_long()?.to_string()))
            })
            .collect();
        assert!(settings.len() > 40, "{settings:?}");
        for args in [&[][..], &["--http", "127.0.0.1:0", "--log", "info"]] {
            let (_, text) = printed(args);
            assert_eq!(text.lines().count(), settings.len(), "{text}");
            for (line, (env, long)) in text.lines().zip(&settings) {
                let setting = line.strip_prefix("# ").unwrap_or(line);
                assert!(setting.starts_with(&format!("{env}=")), "{line}");
                assert!(line.contains(&format!("  # --{long}")), "{line}");
            }
        }
        assert!(settings.iter().any(|(e, _)| e == "SHOAL_API_TOKEN_FILE"));
    }

    #[test]
    fn the_printed_settings_give_the_same_configuration() {
        let dir = std::env::temp_dir().join(format!("shoal-print-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let token = dir.join("token");
        std::fs::write(&token, "0123456789abcdef-token\n").unwrap();
        let token = token.to_str().unwrap();
        let cases: [&[&str]; 5] = [
            &[],
            &[
                "--udp",
                "127.0.0.1:7000",
                "--udp",
                "[::1]:7000",
                "--http",
                "127.0.0.1:8080,127.0.0.1:8081",
                "--http-metrics",
                "--http-trusted-proxy",
                "10.0.0.0/8",
                "--http-client-ip-header",
                "X-Real-IP",
                "--workers",
                "3",
                "--max-memory",
                "64M",
                "--shards",
                "1000",
                "--rate-limit",
                "20",
                "--rate-burst",
                "30",
                "--stats-interval",
                "60",
                "--control-nice=-5",
                "--log",
                "shoal::net=debug,info",
            ],
            &[
                "--no-udp",
                "--rendezvous",
                "127.0.0.1:7001",
                "--rendezvous-max",
                "1000",
                "--state-file",
                "/var/lib/shoal/state",
                "--state-interval",
                "0",
                "--cluster",
                "redis://127.0.0.1:6379/2",
                "--cluster-name",
                "edge",
            ],
            &[
                "--access-list",
                "/etc/shoal/deny.txt",
                "--access-mode",
                "deny",
                "--keys",
                "/etc/shoal/keys.txt",
                "--private-scrape",
            ],
            &["--api", "127.0.0.1:6970", "--api-token-file", token],
        ];
        for args in cases {
            let (config, text) = printed(args);
            let flags = as_flags(&text);
            let back: Vec<&str> = flags.iter().map(String::as_str).collect();
            let (again, text_again) = printed(&back);
            assert_eq!(again, config, "{args:?} printed as\n{text}");
            assert_eq!(text_again, text, "{args:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn secrets_are_never_printed() {
        let secret = "do-not-print-this-token";
        let (_, text) = printed(&[
            "--api",
            "127.0.0.1:6970",
            "--api-token",
            secret,
            "--cluster",
            "redis://admin:hunter2hunter2@10.0.0.5:6379/0",
        ]);
        assert!(!text.contains(secret), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(
            text.contains("# SHOAL_API_TOKEN=  # --api-token (set; not shown: give it again)\n")
        );
        assert!(text.contains("SHOAL_CLUSTER=redis://admin:***@10.0.0.5:6379/0  # --cluster\n"));
        let (_, text) = printed(&[]);
        assert!(text.contains("# SHOAL_API_TOKEN=  # --api-token (not set)\n"));
    }

    #[test]
    fn url_passwords_are_redacted() {
        for (url, shown) in [
            ("redis://u:pw@h:6379", "redis://u:***@h:6379"),
            ("redis://:pw@h", "redis://:***@h"),
            ("redis://pw@h/1", "redis://:***@h/1"),
            ("redis://u:p@ss@h", "redis://u:***@h"),
            ("redis://h:6379/0", "redis://h:6379/0"),
            ("valkey://h/a@b", "valkey://h/a@b"),
            ("/srv/shoal@1/state", "/srv/shoal@1/state"),
        ] {
            assert_eq!(redact_url_password(url), shown, "{url}");
        }
    }

    /// The settings whose default is found on the host are flags without a
    /// declared default; printed with the value found, or as given.
    #[test]
    fn host_detected_defaults_print_the_value_found() {
        let cmd = serve_command();
        let (config, text) = printed(&[]);
        for (id, env) in [
            ("workers", "SHOAL_WORKERS"),
            ("max_memory", "SHOAL_MAX_MEMORY"),
            ("max_interval", "SHOAL_MAX_INTERVAL"),
            ("peer_timeout", "SHOAL_PEER_TIMEOUT"),
        ] {
            let arg = cmd.get_arguments().find(|a| a.get_id() == id).unwrap();
            assert!(arg.get_default_values().is_empty(), "{id}");
            let found = detected(id, &config).unwrap();
            assert!(text.contains(&format!("\n{env}={found}  # ")), "{text}");
        }
        assert_eq!(detected("interval", &config), None);
        let (_, text) = printed(&["--workers", "5", "--max-memory", "1G"]);
        assert!(text.contains("\nSHOAL_WORKERS=5  # --workers\n"), "{text}");
        assert!(
            text.contains("\nSHOAL_MAX_MEMORY=1G  # --max-memory\n"),
            "{text}"
        );
    }

    /// --http-trusted-proxy hides clap's default from --help and states it
    /// in prose; the two must agree.
    #[test]
    fn the_trusted_proxy_default_in_the_help_is_the_real_one() {
        let cmd = serve_command();
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_id() == "http_trusted_proxy")
            .unwrap();
        let help = arg.get_help().unwrap().to_string();
        let defaults = crate::limit::LimitConfig::default().trusted_proxies;
        let shown: Vec<String> = defaults.iter().map(ToString::to_string).collect();
        // clap drops the sentence's final period.
        let prose = help
            .split("Default: ")
            .nth(1)
            .map(|d| d.trim_end_matches('.'));
        assert_eq!(prose, Some(&*shown.join(" and ")), "{help}");
        let declared: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        assert_eq!(declared, shown);
    }
}
