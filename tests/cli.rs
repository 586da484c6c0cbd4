//! The `shoal` binary as an operator runs it: help, start-up lines, bind
//! errors, and a clean exit on SIGTERM/SIGINT.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn shoal() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_shoal"));
    c.env_remove("RUST_LOG");
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("SHOAL_")) {
        c.env_remove(k);
    }
    c
}

/// Start the binary and read stderr until it reports its UDP address.
fn start(args: &[&str]) -> (Child, SocketAddr, Vec<String>) {
    let mut child = shoal()
        .args(args)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    let addr = loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "exited early: {lines:?}"
        );
        lines.push(line.clone());
        if let Some(rest) = line.split("listening on udp://").nth(1) {
            break rest.trim().parse().unwrap();
        }
    };
    // Keep draining stderr in the background so the child never blocks on it.
    std::thread::spawn(move || for _ in reader.lines() {});
    (child, addr, lines)
}

/// Start `cmd` and read its log until it says it is serving; the rest of the
/// log is drained in the background so the child never blocks on stderr.
fn start_until_serving(mut cmd: Command) -> (Child, String) {
    let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("worker(s)") {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "exited early: {seen}"
        );
        seen.push_str(&line);
    }
    std::thread::spawn(move || for _ in reader.lines() {});
    (child, seen)
}

fn connect_works(addr: SocketAddr) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut req = [0u8; 16];
    shoal::wire::udp::write_connect_request(&mut req, 5).unwrap();
    sock.send_to(&req, addr).unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    assert_eq!(n, 16);
}

fn signal_and_wait(child: Child, signal: &str) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args([signal, &pid])
        .status()
        .unwrap()
        .success());
    // Bounded wait: a hung shutdown fails the test instead of hanging it.
    let (tx, rx) = std::sync::mpsc::channel();
    let mut child = child;
    std::thread::spawn(move || tx.send(child.wait()));
    match rx.recv_timeout(Duration::from_secs(5)) {
        Ok(status) => status.unwrap(),
        Err(_) => {
            Command::new("kill").args(["-KILL", &pid]).status().ok();
            panic!("shoal did not exit within 5 s of {signal}");
        }
    }
}

#[test]
fn sigterm_and_sigint_exit_zero() {
    for signal in ["-TERM", "-INT"] {
        let (child, addr, lines) = start(&["--udp", "127.0.0.1:0", "--workers", "2"]);
        connect_works(addr);
        let status = signal_and_wait(child, signal);
        assert!(status.success(), "{signal}: {status:?}, log: {lines:?}");
    }
}

#[test]
fn env_twins_configure_the_server() {
    let mut cmd = shoal();
    cmd.env("SHOAL_UDP", "127.0.0.1:0")
        .env("SHOAL_WORKERS", "3")
        .env("SHOAL_LOG", "info");
    let (child, seen) = start_until_serving(cmd);
    assert!(seen.contains("listening on udp://127.0.0.1:"), "{seen}");
    assert!(seen.contains("serving with 3 worker(s)"), "{seen}");
    assert!(signal_and_wait(child, "-TERM").success());
}

#[test]
fn port_in_use_exits_nonzero_with_one_line_naming_the_address() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let out = shoal().args(["--udp", &addr.to_string()]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("udp://{addr}: address already in use")),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
}

#[test]
fn invalid_flags_are_refused_clearly() {
    let out = shoal()
        .args(["--interval", "100", "--peer-timeout", "50"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--peer-timeout"));
    let out = shoal().args(["--udp", "nonsense"]).output().unwrap();
    assert!(!out.status.success());
}

/// `--help` as (flag, env twin) pairs, one per option entry: an entry starts
/// with a line whose first word is the flag, and its `[env: NAME=]` follows
/// in its description. Names are compared whole, so `--http` cannot be
/// satisfied by `--http-max-connections`.
fn help_flags(help: &str) -> Vec<(String, Option<String>)> {
    let mut flags: Vec<(String, Option<String>)> = Vec::new();
    for line in help.lines() {
        let line = line.trim_start();
        if line.starts_with("--") {
            let flag = line.split([' ', '=', ',']).next().unwrap();
            flags.push((flag.to_string(), None));
        } else if let (Some(rest), Some(last)) = (line.strip_prefix("[env: "), flags.last_mut()) {
            let env = rest.split(['=', ']']).next().unwrap();
            last.1 = Some(env.to_string());
        }
    }
    flags
}

#[test]
fn help_lists_every_flag_with_its_env_twin() {
    let out = shoal().arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    let flags = help_flags(&help);
    for (flag, env) in [
        ("--udp", "SHOAL_UDP"),
        ("--no-udp", "SHOAL_NO_UDP"),
        ("--workers", "SHOAL_WORKERS"),
        ("--control-nice", "SHOAL_CONTROL_NICE"),
        ("--interval", "SHOAL_INTERVAL"),
        ("--interval-jitter", "SHOAL_INTERVAL_JITTER"),
        ("--max-interval", "SHOAL_MAX_INTERVAL"),
        ("--peer-timeout", "SHOAL_PEER_TIMEOUT"),
        ("--default-numwant", "SHOAL_DEFAULT_NUMWANT"),
        ("--max-numwant", "SHOAL_MAX_NUMWANT"),
        ("--max-scrape", "SHOAL_MAX_SCRAPE"),
        ("--connection-id-lifetime", "SHOAL_CONNECTION_ID_LIFETIME"),
        ("--stats-interval", "SHOAL_STATS_INTERVAL"),
        ("--max-peers", "SHOAL_MAX_PEERS"),
        ("--http", "SHOAL_HTTP"),
        ("--metrics", "SHOAL_METRICS"),
        ("--http-metrics", "SHOAL_HTTP_METRICS"),
        ("--http-max-connections", "SHOAL_HTTP_MAX_CONNECTIONS"),
        ("--http-idle-timeout", "SHOAL_HTTP_IDLE_TIMEOUT"),
        ("--http-client-ip-header", "SHOAL_HTTP_CLIENT_IP_HEADER"),
        ("--log", "SHOAL_LOG"),
        ("--rendezvous", "SHOAL_RENDEZVOUS"),
        ("--rendezvous-timeout", "SHOAL_RENDEZVOUS_TIMEOUT"),
        ("--rendezvous-max", "SHOAL_RENDEZVOUS_MAX"),
        ("--rendezvous-push-rate", "SHOAL_RENDEZVOUS_PUSH_RATE"),
    ] {
        let found = flags.iter().find(|(f, _)| f == flag);
        assert_eq!(
            found.map(|(_, e)| e.as_deref()),
            Some(Some(env)),
            "{flag} with [env: {env}=] in --help: {flags:?}"
        );
    }
    // Every option an operator can set has a twin (--help, --version and
    // --print-config, which are actions, excepted).
    for (flag, env) in &flags {
        assert!(
            env.is_some() || flag == "--help" || flag == "--version" || flag == "--print-config",
            "{flag} has no env twin"
        );
    }
}

#[test]
fn help_flags_are_matched_whole() {
    let help = "      --http-max-connections <N>\n          x\n          [env: SHOAL_HTTP_MAX_CONNECTIONS=]\n";
    let flags = help_flags(help);
    assert!(!flags.iter().any(|(f, _)| f == "--http"), "{flags:?}");
}

#[test]
fn fatal_errors_print_even_with_logging_off() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = shoal()
        .args(["--log", "off", "--udp", &addr])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("address already in use"), "{stderr:?}");
}

/// A word that is neither a level nor a filter would log nothing at all.
#[test]
fn a_log_word_that_is_not_a_level_is_refused() {
    for bad in ["warning", "verbose", "shoal=loud", "info,nope"] {
        let out = shoal()
            .args(["--log", bad, "--udp", "127.0.0.1:0"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "--log {bad}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            stderr.contains("is neither a level"),
            "--log {bad}: {stderr}"
        );
    }
    let out = shoal().env("SHOAL_LOG", "warning").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    for good in ["WARN", "shoal::net=debug,info", "shoal", "off"] {
        let out = shoal()
            .args(["--log", good, "--print-config"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "--log {good}: {out:?}");
    }
}

#[test]
fn environment_lists_and_booleans_read_like_an_operator_writes_them() {
    // SHOAL_NO_UDP=1 with HTTP only; a space after the comma in an address list.
    let mut cmd = shoal();
    cmd.env("SHOAL_NO_UDP", "1")
        .env("SHOAL_HTTP", "127.0.0.1:0, [::1]:0")
        .env("SHOAL_WORKERS", "1");
    let (child, seen) = start_until_serving(cmd);
    assert!(!seen.contains("udp://"), "{seen}");
    assert_eq!(seen.matches("listening on http://").count(), 2, "{seen}");
    assert!(signal_and_wait(child, "-TERM").success());
    // --no-udp with --udp is a contradiction, refused as such.
    let out = shoal()
        .args(["--no-udp", "--udp", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
    // SHOAL_NO_UDP=false (as compose files write it) is off, not a conflict.
    for no in ["false", "0", "no", "off"] {
        let mut cmd = shoal();
        cmd.env("SHOAL_NO_UDP", no)
            .env("SHOAL_HTTP_METRICS", "off")
            .args(["--udp", "127.0.0.1:0", "--workers", "1"]);
        let (child, seen) = start_until_serving(cmd);
        assert!(
            seen.contains("listening on udp://127.0.0.1:"),
            "{no}: {seen}"
        );
        assert!(signal_and_wait(child, "-TERM").success());
    }
}

/// `shoal` run through `sh -c 'ulimit ...; exec shoal ...'`, so the limit
/// applies to shoal alone.
fn shoal_with_ulimit(ulimit: &str, args: &[&str]) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(format!("ulimit {ulimit} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_shoal"))
        .args(args)
        .env_remove("RUST_LOG");
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("SHOAL_")) {
        c.env_remove(k);
    }
    c
}

/// Kills a child if the test fails before stopping it, so no server outlives it.
struct KillOnPanic(u32);

impl Drop for KillOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = Command::new("kill")
                .args(["-KILL", &self.0.to_string()])
                .status();
        }
    }
}

/// User plus system CPU time of a process so far, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) in parentheses;
    // utime and stime are fields 14 and 15 of the whole line.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn the_soft_open_file_limit_is_raised_to_the_hard_one() {
    if !std::path::Path::new("/proc/self/limits").exists() {
        return;
    }
    let hard: u64 = String::from_utf8(
        Command::new("sh")
            .args(["-c", "ulimit -H -n"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .parse()
    .unwrap_or(u64::MAX); // "unlimited"
    if hard <= 100 {
        return; // nothing to raise to
    }
    let cmd = shoal_with_ulimit("-S -n 100", &["--udp", "127.0.0.1:0", "--workers", "1"]);
    let (child, seen) = start_until_serving(cmd);
    assert!(
        seen.contains("open-file limit raised from 100 to "),
        "{seen}"
    );
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
    let soft: u64 = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert_eq!(soft, hard.min(1 << 20), "{limits}");
    assert!(signal_and_wait(child, "-TERM").success());
}

#[test]
fn out_of_descriptors_accepting_pauses_instead_of_spinning() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::sync::mpsc;
    if !std::path::Path::new("/proc/self/stat").exists() {
        return;
    }
    // 64 descriptors, soft and hard: a few for the process, the rest for
    // connections. 100 clients then leave some waiting in the listen backlog.
    let mut child = shoal_with_ulimit(
        "-n 64",
        &[
            "--udp",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--http-metrics",
            "--workers",
            "1",
            "--http-idle-timeout",
            "60",
        ],
    )
    .stderr(Stdio::piped())
    .stdout(Stdio::null())
    .spawn()
    .unwrap();
    let _guard = KillOnPanic(child.id());
    let (tx, log) = mpsc::channel();
    let reader = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in reader.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let wait_for = |what: &str| -> String {
        loop {
            let line = log
                .recv_timeout(Duration::from_secs(5))
                .unwrap_or_else(|_| panic!("no log line with {what:?} within 5 s"));
            if line.contains(what) {
                return line;
            }
        }
    };
    let http: std::net::SocketAddr = wait_for("listening on http://")
        .split("listening on http://")
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut clients: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut s = TcpStream::connect(http).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap();
            s
        })
        .collect();
    // The server runs out of descriptors (it warns once), then has nothing to
    // do but wait. Retrying accept every turn burned ~0.9 core here; measure
    // its CPU over a bounded window.
    wait_for("http: accept failed");
    let pid = child.id();
    let before = cpu_ticks(pid);
    let start = std::time::Instant::now();
    std::thread::sleep(Duration::from_millis(1500)); // the measuring window
    let ticks = cpu_ticks(pid) - before;
    let cpu = ticks as f64 / 100.0 / start.elapsed().as_secs_f64();
    eprintln!("cpu while out of descriptors: {cpu:.2} core");
    // Once descriptors free up, clients waiting in the backlog are served
    // (fewer than 64 were accepted: closing 70 frees enough for the rest).
    clients.drain(..70);
    let mut buf = [0u8; 256];
    let last = clients.last_mut().unwrap();
    let n = last
        .read(&mut buf)
        .expect("a client waiting in the backlog is served once descriptors free up");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    drop(clients);
    // The pauses are counted.
    let mut m = TcpStream::connect(http).unwrap();
    m.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    m.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut metrics = String::new();
    m.read_to_string(&mut metrics).unwrap();
    let pauses: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("shoal_dropped_total{reason=\"accept_no_fds\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no accept_no_fds sample: {metrics}"));
    assert!(pauses >= 1, "{metrics}");
    assert!(signal_and_wait(child, "-TERM").success());
    // CLK_TCK is 100 on Linux: a tick is 10 ms.
    assert!(
        cpu < 0.2,
        "a worker spun at {cpu:.2} core while out of descriptors"
    );
}

/// The printed lines as the environment of another `shoal` (the lines that
/// are settings; comments are skipped).
fn print_config_as_env(text: &str) -> Command {
    let mut cmd = shoal();
    cmd.arg("--print-config");
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (kv, comment) = line.split_once("  # --").unwrap();
        assert!(!comment.is_empty());
        let (k, v) = kv.split_once('=').unwrap();
        cmd.env(k, v);
    }
    cmd
}

#[test]
fn print_config_reads_back_as_the_same_configuration() {
    let first = shoal()
        .args([
            "serve",
            "--print-config",
            "--http",
            "127.0.0.1:8080",
            "--interval",
            "900",
        ])
        .args([
            "--peer-timeout",
            "1900",
            "--metrics",
            "127.0.0.1:9100",
            "--http-metrics",
            "--access-list",
            "/srv/shoal/deny.txt",
            "--access-mode",
            "deny",
        ])
        .output()
        .unwrap();
    assert_eq!(first.status.code(), Some(0), "{first:?}");
    let text = String::from_utf8(first.stdout).unwrap();
    for line in [
        "SHOAL_INTERVAL=900  # --interval\n",
        "SHOAL_HTTP=127.0.0.1:8080  # --http\n",
        "SHOAL_METRICS=127.0.0.1:9100  # --metrics\n",
        "SHOAL_HTTP_METRICS=true  # --http-metrics\n",
        "SHOAL_ACCESS_LIST=/srv/shoal/deny.txt  # --access-list\n",
        "SHOAL_ACCESS_MODE=deny  # --access-mode\n",
        "# SHOAL_KEYS=  # --keys (not set)\n",
        "SHOAL_PRIVATE_SCRAPE=false  # --private-scrape\n",
        "SHOAL_NO_UDP=false  # --no-udp\n",
        "# SHOAL_HTTP_CLIENT_IP_HEADER=  # --http-client-ip-header (not set)\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    // Every line is a setting or a comment; as an environment (the top-level
    // form), they give the same configuration.
    let second = print_config_as_env(&text).output().unwrap();
    assert_eq!(second.status.code(), Some(0), "{second:?}");
    assert_eq!(String::from_utf8(second.stdout).unwrap(), text);
}

#[test]
fn print_config_names_every_variable_and_reads_back_from_flags_and_env() {
    let dir = std::env::temp_dir().join(format!("shoal-cli-print-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("api-token");
    std::fs::write(&token_file, "0123456789abcdef-from-a-file\n").unwrap();
    let token_file = token_file.to_str().unwrap();
    // Half on the command line, half in the environment, as operators mix them.
    let first = shoal()
        .args(["--print-config", "--udp", "127.0.0.1:0", "--workers", "3"])
        .args(["--max-memory", "256M", "--api", "127.0.0.1:0"])
        .env("SHOAL_API_TOKEN_FILE", token_file)
        .env("SHOAL_HTTP", "127.0.0.1:0, [::1]:0")
        .env("SHOAL_HTTP_METRICS", "yes")
        .env("SHOAL_CLUSTER", "redis://127.0.0.1:6379/1")
        .env("SHOAL_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(first.status.code(), Some(0), "{first:?}");
    let text = String::from_utf8(first.stdout).unwrap();
    // Every variable clap knows for the tracker: one line each, set or commented.
    let cmd = shoal::cli::serve_command();
    let names: Vec<String> = cmd
        .get_arguments()
        .filter_map(|a| Some(a.get_env()?.to_str()?.to_string()))
        .collect();
    assert!(names.contains(&"SHOAL_API_TOKEN_FILE".to_string()));
    assert_eq!(text.lines().count(), names.len(), "{text}");
    for name in &names {
        let lines = text
            .lines()
            .filter(|l| {
                l.strip_prefix("# ")
                    .unwrap_or(l)
                    .starts_with(&format!("{name}="))
            })
            .count();
        assert_eq!(lines, 1, "{name} in\n{text}");
    }
    for line in [
        "SHOAL_WORKERS=3  # --workers\n",
        "SHOAL_MAX_MEMORY=256M  # --max-memory\n",
        &format!("SHOAL_API_TOKEN_FILE={token_file}  # --api-token-file\n"),
        "SHOAL_HTTP=127.0.0.1:0, [::1]:0  # --http\n",
        "SHOAL_HTTP_METRICS=yes  # --http-metrics\n",
        "SHOAL_LOG=warn  # --log\n",
        "# SHOAL_API_TOKEN=  # --api-token (not set)\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    // All of it from the environment alone: the same lines, so the same settings.
    let second = print_config_as_env(&text).output().unwrap();
    assert_eq!(second.status.code(), Some(0), "{second:?}");
    assert_eq!(String::from_utf8(second.stdout).unwrap(), text);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn print_config_never_shows_a_secret() {
    let out = shoal()
        .args(["--print-config", "--api", "127.0.0.1:0"])
        .env("SHOAL_API_TOKEN", "a-token-nobody-may-read")
        .env(
            "SHOAL_CLUSTER",
            "redis://shoal:a-redis-password@10.1.2.3:6379",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("a-token-nobody-may-read"), "{text}");
    assert!(!text.contains("a-redis-password"), "{text}");
    assert!(text.contains("# SHOAL_API_TOKEN=  # --api-token (set; not shown: give it again)\n"));
    assert!(text.contains("SHOAL_CLUSTER=redis://shoal:***@10.1.2.3:6379  # --cluster\n"));
}

#[test]
fn environment_mistakes_are_named() {
    // A bad value from the environment names the variable.
    let out = shoal().env("SHOAL_WORKERS", "x").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("invalid value 'x' for SHOAL_WORKERS (--workers <N>)"),
        "{stderr}"
    );
    // From the command line, the flag as clap says it.
    let out = shoal().args(["--workers", "x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!String::from_utf8(out.stderr)
        .unwrap()
        .contains("SHOAL_WORKERS"));
    // A typo'd name is warned about, with the nearest real one.
    let mut cmd = shoal();
    cmd.env("SHOAL_WORKER", "2").args([
        "--udp",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--interval",
        "60",
    ]);
    let (child, seen) = start_until_serving(cmd);
    assert!(
        seen.contains(
            "SHOAL_WORKER is not a shoal setting and is ignored; did you mean SHOAL_WORKERS?"
        ),
        "{seen}"
    );
    // Values that hurt clients are warned about too; the configuration is logged.
    assert!(seen.contains("--interval 60 is under 5 minutes"), "{seen}");
    assert!(
        seen.contains("config: interval 60 s ±10 % (up to 240 s under load), peer timeout 294 s"),
        "{seen}"
    );
    assert!(seen.contains("socket buffers: "), "{seen}");
    assert!(signal_and_wait(child, "-TERM").success());
}

/// The nice value in a `/proc/.../stat` file (Linux).
fn nice_in(stat: &std::path::Path) -> i32 {
    let stat = std::fs::read_to_string(stat).unwrap();
    // After the name in parentheses: state is field 3, nice field 19.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    rest.split(' ').nth(16).unwrap().parse().unwrap()
}

/// Nice values of a process's threads, by thread name (Linux).
fn thread_nices(pid: u32) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        let name = std::fs::read_to_string(task.join("comm")).unwrap();
        out.push((name.trim().to_string(), nice_in(&task.join("stat"))));
    }
    out
}

#[test]
fn the_control_thread_runs_at_the_nice_value_asked() {
    if !std::path::Path::new("/proc/self/task").exists() {
        return;
    }
    // Lowering priority needs no privilege; raising it back does.
    let own = nice_in(std::path::Path::new("/proc/self/stat"));
    if own > 15 {
        return;
    }
    let mut cmd = shoal();
    cmd.args(["--udp", "127.0.0.1:0", "--metrics", "127.0.0.1:0"])
        .args(["--workers", "1", "--log", "info"])
        .env("SHOAL_CONTROL_NICE", "15");
    let (child, seen) = start_until_serving(cmd);
    let _kill = KillOnPanic(child.id());
    let metrics: SocketAddr = seen
        .split("serving /metrics and /health on http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    // An answer from the control thread: it has set its priority by now.
    let mut s = std::net::TcpStream::connect(metrics).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    std::io::Write::write_all(&mut s, b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut head = [0u8; 12];
    std::io::Read::read_exact(&mut s, &mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    // A thread names itself once it runs, so a worker may still be called
    // "shoal" for a moment after start-up: wait, with a bound, for its name.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let nices = loop {
        let nices = thread_nices(child.id());
        let named = nices.iter().any(|(n, _)| n.starts_with("shoal-worker"));
        if named || std::time::Instant::now() > deadline {
            break nices;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let control = nices.iter().find(|(n, _)| n == "shoal-control");
    assert_eq!(control.map(|c| c.1), Some(15), "{nices:?}");
    let worker = nices.iter().find(|(n, _)| n.starts_with("shoal-worker"));
    assert_eq!(worker.map(|w| w.1), Some(own), "{nices:?}");
    assert!(signal_and_wait(child, "-TERM").success());
}

#[test]
fn sighup_is_logged_and_does_not_stop_the_tracker() {
    let mut child = shoal()
        .args(["--udp", "127.0.0.1:0", "--workers", "1"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in reader.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let wait_for = |what: &str| loop {
        let line = rx
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("no log line with {what:?} within 5 s"));
        if line.contains(what) {
            return line;
        }
    };
    let addr: SocketAddr = wait_for("listening on udp://")
        .split("listening on udp://")
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_for("worker(s)");
    for _ in 0..2 {
        let pid = child.id().to_string();
        assert!(Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success());
        wait_for("SIGHUP received");
    }
    connect_works(addr);
    assert!(signal_and_wait(child, "-TERM").success());
}

#[test]
fn bind_errors_say_what_to_do() {
    // The same address twice: a configuration error (2), not "in use".
    let out = shoal()
        .args(["--udp", "127.0.0.1:7", "--rendezvous", "127.0.0.1:7"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("--rendezvous 127.0.0.1:7 is also a --udp address"),
        "{stderr}"
    );
    let out = shoal()
        .args(["--udp", "127.0.0.1:0", "--http", "127.0.0.1:8,127.0.0.1:8"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("--http 127.0.0.1:8 is given twice"));
    // An address this host does not have (TEST-NET-1, RFC 5737).
    let out = shoal().args(["--udp", "192.0.2.1:0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("192.0.2.1 is not an address of this host"),
        "{stderr}"
    );
    // A port below 1024 without the capability (only testable unprivileged).
    if UdpSocket::bind("127.0.0.1:1").is_err() {
        let out = shoal().args(["--udp", "127.0.0.1:1"]).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8(out.stderr)
            .unwrap()
            .contains("CAP_NET_BIND_SERVICE"));
    }
}

#[test]
fn stats_line_shows_fractional_rates_errors_drops_rejects_and_http() {
    let mut child = shoal()
        .args([
            "--udp",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
            "--workers",
            "1",
        ])
        .args(["--stats-interval", "1", "--log", "info"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in reader.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let addr: SocketAddr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("a udp address");
        if let Some(rest) = line.split("listening on udp://").nth(1) {
            break rest.trim().parse().unwrap();
        }
    };
    // Garbage (a reject), then a connect: its reply means both were handled.
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(b"garbage", addr)
        .unwrap();
    connect_works(addr);
    let line = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("a stats line with the reject within 5 s");
        if line.contains("stats: ") && !line.contains("rejects 0/s") {
            break line;
        }
    };
    // At most one connect in about a second: a rate of at most a little
    // over 1 (fractions as such: see the unit test of the rate format).
    let total = line
        .split("stats: ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    let total: f64 = total.parse().unwrap();
    assert!(total <= 1.5, "{line}");
    for part in [
        "(connect ",
        "announce 0/s",
        ", http 0/s",
        "; errors 0/s",
        "drops 0/s",
    ] {
        assert!(line.contains(part), "missing {part:?} in {line}");
    }
    assert!(signal_and_wait(child, "-TERM").success());
}

/// `--xdp` in a build without the `xdp` feature: refused in one line,
/// exit 2, before anything is bound.
#[cfg(not(feature = "xdp"))]
#[test]
fn xdp_without_the_feature_is_refused() {
    let out = shoal()
        .args(["--udp", "127.0.0.1:0", "--xdp", "lo"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--xdp: this shoal was built without AF_XDP support"),
        "{err}"
    );
    assert_eq!(
        err.lines().filter(|l| l.contains("--xdp")).count(),
        1,
        "{err}"
    );
}
