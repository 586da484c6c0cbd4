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
        ("--interval", "SHOAL_INTERVAL"),
        ("--peer-timeout", "SHOAL_PEER_TIMEOUT"),
        ("--default-numwant", "SHOAL_DEFAULT_NUMWANT"),
        ("--max-numwant", "SHOAL_MAX_NUMWANT"),
        ("--max-scrape", "SHOAL_MAX_SCRAPE"),
        ("--connection-id-lifetime", "SHOAL_CONNECTION_ID_LIFETIME"),
        ("--stats-interval", "SHOAL_STATS_INTERVAL"),
        ("--max-peers", "SHOAL_MAX_PEERS"),
        ("--http", "SHOAL_HTTP"),
        ("--http-max-connections", "SHOAL_HTTP_MAX_CONNECTIONS"),
        ("--http-idle-timeout", "SHOAL_HTTP_IDLE_TIMEOUT"),
        ("--http-client-ip-header", "SHOAL_HTTP_CLIENT_IP_HEADER"),
        ("--log", "SHOAL_LOG"),
    ] {
        let found = flags.iter().find(|(f, _)| f == flag);
        assert_eq!(
            found.map(|(_, e)| e.as_deref()),
            Some(Some(env)),
            "{flag} with [env: {env}=] in --help: {flags:?}"
        );
    }
    // Every option an operator can set has a twin (--help and --version excepted).
    for (flag, env) in &flags {
        assert!(
            env.is_some() || flag == "--help" || flag == "--version",
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
fn fatal_errors_print_even_with_logging_off_or_mistyped() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    for level in ["off", "warning"] {
        let out = shoal()
            .args(["--log", level, "--udp", &addr])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            stderr.contains("address already in use"),
            "--log {level}: {stderr:?}"
        );
        if level == "warning" {
            assert!(stderr.contains("is not a level"), "{stderr}");
        }
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
}
