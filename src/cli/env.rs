//! The environment twins: every `SHOAL_*` name shoal reads (from clap's own
//! argument list), a warning for a `SHOAL_*` name it does not read, and a
//! usage error that names the variable when the bad value came from it.

use super::defs::Cli;
use clap::CommandFactory;
use std::ffi::OsString;

/// A bad value that came from the environment, not the command line: clap
/// names only the flag (`invalid value 'x' for '--workers <N>'`), which the
/// operator never typed. The text then names the variable first:
/// `invalid value 'x' for SHOAL_WORKERS (--workers <N>)`. `None` when the
/// value was on the command line, or for other errors.
pub(super) fn env_value_error(
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

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
}
