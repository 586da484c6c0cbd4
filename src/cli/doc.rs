//! Shell completions and the man page, generated from the clap definitions in
//! [`super::defs`] (the same ones that parse the command line), so neither can
//! drift from the flags shoal actually accepts. Backs `shoal completions SHELL`
//! and `shoal man`; output goes to any writer, nothing here touches the disk.
//!
//! The man page is one page, shoal(1), for the tracker and every tool (there
//! are no per-subcommand pages to point to), written here rather than by
//! clap_mangen, which renders only the top level's options.

use super::defs::{Cli, Shell};
use clap::{Arg, ArgAction, Command, CommandFactory};
use std::io::{self, Write};

/// Write the completion script for `shell` (source it, or drop it where the
/// shell looks: e.g. `/usr/share/bash-completion/completions/shoal`).
///
/// The script is built in memory first: clap_complete panics on a write error,
/// and `shoal completions bash | head` must not panic.
pub fn completions(shell: Shell, out: &mut dyn Write) -> io::Result<()> {
    let mut cmd = Cli::command();
    let name = cmd.get_name().to_string();
    let mut buf = Vec::new();
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut cmd, name, &mut buf);
    out.write_all(&buf)
}

/// Write `shoal(1)` in roff (`shoal man > shoal.1; man ./shoal.1`): one page
/// for the tracker and every tool. Each option shows its default, its values
/// and its environment-variable twin, as `--help` does; options are grouped
/// under their `--help` headings. The prose sections (exit status, signals,
/// files, examples) are written here; everything about a flag comes from clap.
pub fn man(out: &mut dyn Write) -> io::Result<()> {
    let mut cmd = Cli::command();
    cmd.build();
    out.write_all(man_page(&cmd).as_bytes())
}

/// The page as roff text.
fn man_page(cmd: &Command) -> String {
    let mut r = Roff::default();
    let version = cmd.get_version().unwrap_or_default();
    r.line(&format!(
        ".TH SHOAL 1 \"\" {} \"User Commands\"",
        quoted(&format!("shoal {version}"))
    ));
    r.section("NAME");
    r.text(&format!(
        "shoal - {}",
        cmd.get_about().map(|s| s.to_string()).unwrap_or_default()
    ));

    r.section("SYNOPSIS");
    r.synopsis("shoal", "[OPTIONS]");
    for sub in visible_subcommands(cmd) {
        r.synopsis(
            &format!("shoal {}", sub.get_name()),
            &usage_tail(sub, false),
        );
    }

    r.section("DESCRIPTION");
    let long = cmd
        .get_long_about()
        .or(cmd.get_about())
        .map(|s| s.to_string())
        .unwrap_or_default();
    r.paragraphs(&long);
    r.text("Without a subcommand, or with");
    r.bold_inline("serve", ",");
    r.text(
        "shoal runs the tracker with the options below. The other subcommands are \
         tools: clients for any tracker, a load generator, the management API's \
         command line, and this page's and the shell completions' generators.",
    );

    r.section("OPTIONS");
    options(&mut r, cmd.get_arguments());

    r.section("COMMANDS");
    for sub in visible_subcommands(cmd) {
        let name = format!("shoal {}", sub.get_name());
        if sub.get_name() == "serve" {
            // `shoal serve` is `shoal`: its options are the ones above.
            r.subsection(&format!("{name} {}", usage_tail(sub, false)));
            r.text(&about(sub));
            r.text("It takes the options listed under OPTIONS.");
            continue;
        }
        command(&mut r, &name, sub);
    }

    r.section("EXIT STATUS");
    for (code, what) in EXIT_STATUS {
        r.tagged(&[Span::Bold(code)], what);
    }

    r.section("SIGNALS");
    for (sig, what) in SIGNALS {
        r.tagged(&[Span::Bold(sig)], what);
    }

    r.section("ENVIRONMENT");
    r.text(
        "Every option of the tracker and of shoal api has an environment-variable \
         twin; a flag on the command line wins over its variable. Lists (addresses, \
         ranges) are comma-separated, booleans 1/0, true/false, yes/no or on/off. \
         An unknown SHOAL_* name is warned about at start, with the nearest real one.",
    );
    for (name, flags) in env_twins(cmd) {
        r.tagged(
            &[Span::Bold(&name)],
            &format!("Same as {}.", flags.join(", ")),
        );
    }
    for (name, what) in OTHER_ENV {
        r.tagged(&[Span::Bold(name)], what);
    }

    r.section("FILES");
    for (file, what) in FILES {
        r.tagged(&[Span::Italic(file)], what);
    }

    r.section("EXAMPLES");
    for (what, example) in EXAMPLES {
        r.line(".PP");
        r.text(what);
        r.example(example);
    }
    r.out
}

const EXIT_STATUS: &[(&str, &str)] = &[
    (
        "0",
        "The tracker stopped on SIGTERM or SIGINT (after writing its state), or the tool did what it was asked.",
    ),
    (
        "1",
        "The host refused something (an address in use, a thread that cannot start), or a tool \
         could not reach or check its tracker (no reply, a refusal, a malformed reply).",
    ),
    (
        "2",
        "A usage error: a bad flag or variable, contradicting options, or a state, access-list \
         or key file that cannot be read or is malformed. The message names the flag or file.",
    ),
];

const SIGNALS: &[(&str, &str)] = &[
    (
        "SIGTERM, SIGINT",
        "Stop: close the listeners, finish the threads and write the final state to \
         --state-file, then exit with status 0.",
    ),
    (
        "SIGHUP",
        "Reload the access list (--access-list) and the key file (--keys); a file \
         with a bad line is refused whole and the previous one kept. Both files are also \
         reloaded when they change.",
    ),
];

const OTHER_ENV: &[(&str, &str)] = &[
    (
        "RUST_LOG",
        "The log filter when --log is not given (env_logger syntax); info by default, \
         warn for the tools.",
    ),
    (
        "SSL_CERT_FILE, SSL_CERT_DIR",
        "Where the https client of announce and scrape finds the trusted root certificates, \
         instead of the system's bundle.",
    ),
];

const FILES: &[(&str, &str)] = &[
    (
        "--state-file FILE",
        "The swarms and the connection-id key, written atomically at stop and every \
         --state-interval, loaded at start. Readable by its owner only.",
    ),
    (
        "--access-list FILE",
        "One info hash per line (40 hex digits); blank lines and # comments allowed.",
    ),
    (
        "--keys FILE",
        "One private-tracker key per line (32 characters of [A-Za-z0-9]), optionally \
         followed by its expiry in Unix seconds.",
    ),
    (
        "--api-token-file FILE",
        "The management API's token, on the first line.",
    ),
    (
        "/etc/default/shoal",
        "The Debian package's settings, as SHOAL_* lines read by its systemd unit.",
    ),
];

const EXAMPLES: &[(&str, &str)] = &[
    (
        "A public tracker on UDP port 6969 (IPv4 and IPv6), with /metrics and /health on loopback:",
        "shoal --metrics 127.0.0.1:9969",
    ),
    (
        "UDP and an HTTP tracker behind a reverse proxy, kept across restarts:",
        "shoal --http 127.0.0.1:8080 --http-client-ip-header X-Forwarded-For \\\n      --state-file /var/lib/shoal/state",
    ),
    (
        "The configuration in effect, as environment lines for a unit file:",
        "SHOAL_WORKERS=4 shoal --interval 900 --print-config",
    ),
    (
        "Check a live tracker without leaving a peer behind:",
        "shoal announce udp://tracker.example:6969 --probe \\\n      --info-hash 0123456789abcdef0123456789abcdef01234567",
    ),
    (
        "Scrape two torrents as JSON:",
        "shoal scrape https://tracker.example/announce --json HASH1 HASH2",
    ),
    (
        "Load-test a tracker running on this host for 30 seconds:",
        "shoal bench --target udp://127.0.0.1:6969 --duration 30",
    ),
    (
        "The busiest torrents, from a tracker started with --api 127.0.0.1:6970:",
        "SHOAL_API_TOKEN=... shoal api torrents --limit 10",
    ),
    (
        "Install the man page and bash completions:",
        "shoal man | gzip > /usr/share/man/man1/shoal.1.gz\n\
         shoal completions bash > /usr/share/bash-completion/completions/shoal",
    ),
];

/// A subcommand's section: what it does, its arguments and options, then its
/// own subcommands (`shoal api stats`, …), one level deeper.
fn command(r: &mut Roff, name: &str, cmd: &Command) {
    r.subsection(&format!("{name} {}", usage_tail(cmd, false)));
    r.paragraphs(&about(cmd));
    options(r, cmd.get_arguments());
    for sub in visible_subcommands(cmd) {
        let sub_name = format!("{name} {}", sub.get_name());
        r.line(".TP");
        r.line(&format!(
            "{}{}",
            Roff::bold(&sub_name),
            escape_inline(&format!(" {}", usage_tail(sub, true)))
        ));
        r.text(&about(sub));
        // Options global to `name` (`shoal api --json`) are described there.
        let args: Vec<&Arg> = sub
            .get_arguments()
            .filter(|a| shown(a) && !a.is_global_set())
            .collect();
        if !args.is_empty() {
            r.line(".RS");
            options(r, args.into_iter());
            r.line(".RE");
        }
    }
}

/// A command's description, sentence-ended (clap drops the last full stop).
fn about(cmd: &Command) -> String {
    let mut s = cmd
        .get_long_about()
        .or(cmd.get_about())
        .map(|s| s.to_string())
        .unwrap_or_default();
    if !s.is_empty() && !s.ends_with(['.', ':']) {
        s.push('.');
    }
    s
}

/// The subcommands shown in `--help` (not clap's generated `help`).
fn visible_subcommands(cmd: &Command) -> impl Iterator<Item = &Command> {
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
}

fn shown(a: &Arg) -> bool {
    !a.is_hide_set() && !matches!(a.get_id().as_str(), "help" | "version")
}

/// `[OPTIONS] URL [SHAREID]`: what follows the command's name. A nested
/// command's `[OPTIONS]` leaves out those global to its parent.
fn usage_tail(cmd: &Command, nested: bool) -> String {
    let mut parts = Vec::new();
    if cmd
        .get_arguments()
        .any(|a| shown(a) && !a.is_positional() && !(nested && a.is_global_set()))
    {
        parts.push("[OPTIONS]".to_string());
    }
    if visible_subcommands(cmd).next().is_some() {
        parts.push("COMMAND".to_string());
    }
    for a in cmd
        .get_arguments()
        .filter(|a| shown(a) && a.is_positional())
    {
        let name = value_name(a);
        let many = matches!(a.get_action(), ArgAction::Append)
            || a.get_num_args().is_some_and(|n| n.max_values() > 1);
        let name = if many { format!("{name}...") } else { name };
        parts.push(if a.is_required_set() {
            name
        } else {
            format!("[{name}]")
        });
    }
    parts.join(" ")
}

fn value_name(a: &Arg) -> String {
    a.get_value_names()
        .and_then(|v| v.first())
        .map(|s| s.to_string())
        .unwrap_or_else(|| a.get_id().as_str().to_ascii_uppercase())
}

/// The options of one command, grouped under their `--help` headings.
fn options<'a>(r: &mut Roff, args: impl Iterator<Item = &'a Arg>) {
    let args: Vec<&Arg> = args.filter(|a| shown(a)).collect();
    let mut headings: Vec<Option<&str>> = Vec::new();
    for a in &args {
        if !headings.contains(&a.get_help_heading()) {
            headings.push(a.get_help_heading());
        }
    }
    for heading in headings {
        if let Some(h) = heading {
            r.line(&format!(".SS {}", quoted(h)));
        }
        for a in args.iter().filter(|a| a.get_help_heading() == heading) {
            option(r, a);
        }
    }
}

fn option(r: &mut Roff, a: &Arg) {
    let mut tag = Vec::new();
    let long;
    let short;
    if let Some(s) = a.get_short() {
        short = format!("-{s}");
        tag.push(Span::Bold(&short));
    }
    if let Some(l) = a.get_long() {
        if !tag.is_empty() {
            tag.push(Span::Roman(", "));
        }
        long = format!("--{l}");
        tag.push(Span::Bold(&long));
    }
    let value = value_name(a);
    let takes_value = a.get_action().takes_values();
    if a.is_positional() {
        tag.push(Span::Italic(&value));
    } else if takes_value {
        tag.push(Span::Roman(" "));
        tag.push(Span::Italic(&value));
    }
    let mut help = a
        .get_long_help()
        .or(a.get_help())
        .map(|s| s.to_string())
        .unwrap_or_default();
    let mut notes = Vec::new();
    let values: Vec<String> = a
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| v.get_name().to_string())
        .collect();
    if takes_value && !values.is_empty() {
        notes.push(format!("values: {}", values.join(", ")));
    }
    let defaults: Vec<String> = a
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    if takes_value && !defaults.is_empty() && !a.is_hide_default_value_set() {
        notes.push(format!("default: {}", defaults.join(",")));
    }
    if let Some(env) = a.get_env() {
        if !a.is_hide_env_set() {
            notes.push(format!("env: {}", env.to_string_lossy()));
        }
    }
    if !help.is_empty() && !help.ends_with(['.', ':', ')', ']']) {
        help.push('.');
    }
    if !notes.is_empty() {
        help.push_str(&format!(" [{}]", notes.join("] [")));
    }
    r.tagged(&tag, &help);
}

/// Each environment variable and the flags it stands for, sorted by name.
fn env_twins(cmd: &Command) -> Vec<(String, Vec<String>)> {
    let mut twins: Vec<(String, Vec<String>)> = Vec::new();
    let mut visit = |a: &Arg, path: &str| {
        let (Some(env), Some(long)) = (a.get_env(), a.get_long()) else {
            return;
        };
        let env = env.to_string_lossy().into_owned();
        let flag = format!("{path}--{long}");
        match twins.iter_mut().find(|(n, _)| *n == env) {
            Some((_, flags)) if !flags.contains(&flag) => flags.push(flag),
            Some(_) => {}
            None => twins.push((env, vec![flag])),
        }
    };
    fn walk(cmd: &Command, path: &str, visit: &mut dyn FnMut(&Arg, &str)) {
        for a in cmd.get_arguments() {
            visit(a, path);
        }
        for sub in visible_subcommands(cmd) {
            let path = format!("{path}{} ", sub.get_name());
            // A global option is named once, where it is defined.
            for a in sub.get_arguments().filter(|a| !a.is_global_set()) {
                visit(a, &path);
            }
        }
    }
    // The top level's flags are `serve`'s: name them once, without a prefix.
    for a in cmd.get_arguments() {
        visit(a, "");
    }
    for sub in visible_subcommands(cmd).filter(|s| s.get_name() != "serve") {
        walk(sub, &format!("shoal {} ", sub.get_name()), &mut visit);
    }
    twins.sort();
    twins
}

/// A piece of a tagged paragraph's tag.
enum Span<'a> {
    Bold(&'a str),
    Italic(&'a str),
    Roman(&'a str),
}

/// A roff writer: escapes text, keeps every request on its own line.
#[derive(Default)]
struct Roff {
    out: String,
}

impl Roff {
    fn line(&mut self, l: &str) {
        self.out.push_str(l);
        self.out.push('\n');
    }

    fn section(&mut self, name: &str) {
        self.line(&format!(".SH {}", quoted(name)));
    }

    fn subsection(&mut self, name: &str) {
        self.line(&format!(".SS {}", quoted(name)));
    }

    fn bold(s: &str) -> String {
        format!("\\fB{}\\fR", escape_inline(s))
    }

    /// Running text (escaped; may span lines).
    fn text(&mut self, s: &str) {
        for l in s.lines() {
            self.line(&escape_line(l.trim()));
        }
    }

    fn bold_inline(&mut self, s: &str, after: &str) {
        self.line(&format!("{}{}", Roff::bold(s), escape_inline(after)));
    }

    /// Paragraphs separated by blank lines.
    fn paragraphs(&mut self, s: &str) {
        for (i, p) in s.split("\n\n").enumerate() {
            if i > 0 {
                self.line(".PP");
            }
            self.text(p);
        }
    }

    fn synopsis(&mut self, name: &str, tail: &str) {
        self.line(&format!(
            "{}{}",
            Roff::bold(name),
            escape_inline(&format!(" {tail}"))
        ));
        self.line(".br");
    }

    /// A `.TP` paragraph: the tag on its line, the text below, indented.
    /// `text` is already roff (it may hold `\-`), apart from line starts.
    fn tagged(&mut self, tag: &[Span<'_>], text: &str) {
        self.line(".TP");
        let mut t = String::new();
        for s in tag {
            match s {
                Span::Bold(x) => t += &format!("\\fB{}\\fR", escape_inline(x)),
                Span::Italic(x) => t += &format!("\\fI{}\\fR", escape_inline(x)),
                Span::Roman(x) => t += &escape_inline(x),
            }
        }
        self.line(&t);
        self.text(text);
    }

    /// A literal block, as typed at a shell.
    fn example(&mut self, s: &str) {
        self.line(".RS 4");
        self.line(".nf");
        for l in s.lines() {
            self.line(&format!("\\&{}", escape_inline(l)));
        }
        self.line(".fi");
        self.line(".RE");
    }
}

/// Escape text for the inside of a line: a backslash prints as itself, a
/// hyphen as a hyphen (not a typographic dash: flags are copied from man
/// pages), and anything beyond ASCII as a named glyph (`×` is `\[u00D7]`), so
/// the page reads the same whatever the reader's locale.
fn escape_inline(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            c if c.is_ascii() => out.push(c),
            c => out.push_str(&format!("\\[u{:04X}]", u32::from(c))),
        }
    }
    out
}

/// Escape one line of running text: also a leading `.` or `'`, which roff
/// would take for a request.
fn escape_line(s: &str) -> String {
    let e = escape_inline(s);
    if e.starts_with('.') || e.starts_with('\'') {
        format!("\\&{e}")
    } else {
        e
    }
}

/// A request argument in double quotes (a quote inside is doubled).
fn quoted(s: &str) -> String {
    format!("\"{}\"", escape_inline(s).replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completion(shell: Shell) -> String {
        let mut buf = Vec::new();
        completions(shell, &mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn bash_completion_knows_flags_and_subcommands() {
        let s = completion(Shell::Bash);
        assert!(s.contains("--peer-timeout"), "{s}");
        assert!(s.contains("--http-client-ip-header"));
        for sub in ["serve", "announce", "scrape", "bench"] {
            assert!(s.contains(sub), "bash completion lacks subcommand {sub}");
        }
        assert!(s.contains("complete -F"), "not a bash completion script");
    }

    #[test]
    fn zsh_and_fish_completions_know_flags() {
        let z = completion(Shell::Zsh);
        assert!(z.starts_with("#compdef shoal"), "{z}");
        assert!(z.contains("--peer-timeout"));
        let f = completion(Shell::Fish);
        assert!(f.contains("complete -c shoal"), "{f}");
        assert!(f.contains("-l peer-timeout"));
        assert!(f.contains("announce"));
    }

    fn page() -> String {
        let mut buf = Vec::new();
        man(&mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    }

    /// Every long flag of every (sub)command, with its command's path.
    fn all_flags(cmd: &Command, path: &str, out: &mut Vec<(String, String)>) {
        for a in cmd.get_arguments().filter(|a| shown(a)) {
            if let Some(l) = a.get_long() {
                out.push((path.to_string(), l.to_string()));
            }
        }
        for sub in visible_subcommands(cmd) {
            all_flags(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn man_page_documents_every_subcommands_options_and_variable() {
        let m = page();
        assert!(m.starts_with(".TH SHOAL 1 "), "{m}");
        for section in [
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "OPTIONS",
            "COMMANDS",
            "EXIT STATUS",
            "SIGNALS",
            "ENVIRONMENT",
            "FILES",
            "EXAMPLES",
        ] {
            assert!(m.contains(&format!(".SH \"{section}\"")), "lacks {section}");
        }
        let mut cmd = Cli::command();
        cmd.build();
        let mut flags = Vec::new();
        all_flags(&cmd, "shoal", &mut flags);
        // bench, announce and api flags included, not only the tracker's.
        for (path, flag) in [
            ("shoal bench", "allow-remote"),
            ("shoal announce", "probe"),
            ("shoal api", "api-url"),
            ("shoal api add-key", "valid-for"),
        ] {
            assert!(
                flags.contains(&(path.to_string(), flag.to_string())),
                "{path} --{flag} not among {flags:?}"
            );
        }
        for (path, flag) in &flags {
            let roff = format!("\\fB\\-\\-{}\\fR", flag.replace('-', "\\-"));
            assert!(m.contains(&roff), "{path} --{flag} is not documented");
        }
        for sub in visible_subcommands(&cmd) {
            let heading = format!(".SS \"shoal {}", sub.get_name());
            assert!(m.contains(&heading), "no section for {}", sub.get_name());
        }
        for name in crate::cli::env_names() {
            let entry = format!(".TP\n\\fB{}\\fR\nSame as ", name.replace('-', "\\-"));
            assert!(m.contains(&entry), "{name} is not in ENVIRONMENT");
        }
        // Every flag shows its twin where it is described too.
        assert!(m.contains("[env: SHOAL_PEER_TIMEOUT]"), "{m}");
        assert!(m.contains("values: allow, deny"), "{m}");
        assert!(
            m.contains("default: 1800") || m.contains("default: 900"),
            "{m}"
        );
    }

    #[test]
    fn man_page_points_to_no_page_that_does_not_exist() {
        let m = page();
        // There is one page: no shoal-serve(1) and the like, nor any other
        // cross-reference a reader could not open.
        let others = m.replace("shoal(1)", "");
        assert!(!others.contains("(1)"), "{m}");
        assert!(!others.contains("(5)") && !others.contains("(8)"), "{m}");
        assert!(!m.contains(".SH \"SEE ALSO\""), "{m}");
    }

    #[test]
    fn escaping_keeps_text_from_turning_into_requests() {
        assert_eq!(escape_inline("--a-b"), "\\-\\-a\\-b");
        assert_eq!(escape_inline("C:\\x"), "C:\\ex");
        assert_eq!(escape_line(".hidden"), "\\&.hidden");
        assert_eq!(escape_line("'quote"), "\\&'quote");
        assert_eq!(escape_inline("2 × N"), "2 \\[u00D7] N");
        assert_eq!(quoted("say \"x\""), "\"say \"\"x\"\"\"");
        let mut r = Roff::default();
        r.paragraphs("one\n.two\n\nthree");
        assert_eq!(r.out, "one\n\\&.two\n.PP\nthree\n");
    }

    /// groff (man-db's renderer, as `man ./shoal.1` runs it) reads the page
    /// without a warning, and the text a reader sees has every section.
    #[test]
    fn man_page_renders_cleanly_in_groff() {
        use std::process::{Command as Process, Stdio};
        let child = Process::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-rLL=100n", "-P-cbou"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let Ok(mut child) = child else {
            eprintln!("groff is not installed: rendering not checked");
            return;
        };
        let m = page();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(m.as_bytes()));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && err.is_empty(), "groff: {err}");
        let text = String::from_utf8_lossy(&out.stdout);
        let plain: String = text.replace("\u{2010}", "-").replace("\u{2212}", "-");
        for s in [
            "EXIT STATUS",
            "SIGNALS",
            "ENVIRONMENT",
            "EXAMPLES",
            "--peer-timeout",
            "shoal bench",
        ] {
            assert!(plain.contains(s), "rendered page lacks {s}:\n{plain}");
        }
    }
}
