//! The command line as parsed and converted: flags and subcommands to
//! configurations and tool parameters, and the refusals on the way.

use super::defs::parse_bytes;
use super::*;
use crate::access::Mode;
use crate::bench::BenchConfig;
use crate::client::{self, Client, Event};
use crate::limit::LimitConfig;
use crate::rendezvous::RendezvousConfig;
use crate::server::Config;
use crate::tracker::TrackerConfig;
use std::path::PathBuf;
use std::time::Duration;

fn parse(args: &[&str]) -> Command {
    try_parse_from(std::iter::once("shoal").chain(args.iter().copied())).unwrap()
}

/// The tracker's flags of a command line that serves.
fn serve(args: &[&str]) -> ServeArgs {
    match parse(args) {
        Command::Serve(serve) => serve,
        other => panic!("{args:?} does not serve: {other:?}"),
    }
}

#[test]
fn no_arguments_serve_the_defaults() {
    let Command::Serve(args) = parse(&[]) else {
        panic!("no arguments serve")
    };
    let c = args.to_config().unwrap();
    assert_eq!(c.listen.udp, Config::default().listen.udp);
    assert!(c.listen.defaults);
    // The memory budget defaults to half of what the process may use.
    let budget = crate::server::host::default_max_memory().0;
    assert!(budget > 0, "a limit is found here (at least MemTotal)");
    assert_eq!(
        c.tracker,
        TrackerConfig {
            max_memory: budget,
            // Resolved by the conversion: the default's value.
            max_interval: Some(TrackerConfig::default().max_interval()),
            ..TrackerConfig::default()
        }
    );
}

#[test]
fn byte_counts_take_binary_suffixes() {
    assert_eq!(parse_bytes("0"), Ok(0));
    assert_eq!(parse_bytes("4096"), Ok(4096));
    assert_eq!(parse_bytes("512M"), Ok(512 << 20));
    assert_eq!(parse_bytes("2G"), Ok(2 << 30));
    assert_eq!(parse_bytes("3gib"), Ok(3 << 30));
    assert_eq!(parse_bytes("1 KB"), Ok(1024));
    for bad in ["", "M", "1.5G", "12X", "-1", "99999999999T"] {
        assert!(parse_bytes(bad).is_err(), "{bad:?}");
    }
    let c = serve(&["--max-memory", "64M"]).to_config().unwrap();
    assert_eq!(c.tracker.max_memory, 64 << 20);
}

#[test]
fn limit_flags() {
    let c = serve(&[]).to_config().unwrap();
    assert_eq!(c.limits, LimitConfig::default());
    let c = serve(&[
        "--rate-limit",
        "20",
        "--http-trusted-proxy",
        "10.0.0.0/8",
        "--http-trusted-proxy",
        "2001:db8::/32",
        "--http-max-connections-per-ip",
        "0",
    ])
    .to_config()
    .unwrap();
    let l = &c.limits;
    assert_eq!(
        (l.rate_limit, l.burst(), l.http_max_connections_per_ip),
        (20, 40, 0)
    );
    assert!(l.is_trusted_proxy("10.9.8.7".parse().unwrap()));
    assert!(l.is_trusted_proxy("2001:db8::1".parse().unwrap()));
    assert!(
        !l.is_trusted_proxy("127.0.0.1".parse().unwrap()),
        "replaces the default"
    );
    let c = serve(&["--rate-limit", "5", "--rate-burst", "7"])
        .to_config()
        .unwrap();
    assert_eq!(c.limits.burst(), 7);
    assert!(serve(&["--rate-limit", "5", "--rate-burst", "0"])
        .to_config()
        .unwrap_err()
        .message()
        .contains("--rate-burst"));
    assert!(try_parse_from(["shoal", "--http-trusted-proxy", "10.0.0.0/33"]).is_err());
}

#[test]
fn serve_subcommand_and_flags() {
    let cli = parse(&[
        "serve",
        "--udp",
        "127.0.0.1:0",
        "--udp",
        "[::1]:7000",
        "--workers",
        "3",
        "--interval",
        "60",
        "--peer-timeout",
        "90",
    ]);
    let Command::Serve(args) = cli else { panic!() };
    let c = args.to_config().unwrap();
    assert_eq!(c.listen.udp.len(), 2);
    assert!(!c.listen.defaults);
    assert_eq!(
        (c.workers, c.tracker.interval, c.tracker.peer_timeout),
        (3, 60, 90)
    );
    // Invalid combinations are refused with the flag's name.
    let cli = serve(&["--interval", "600", "--peer-timeout", "300"]);
    assert!(cli
        .to_config()
        .unwrap_err()
        .message()
        .contains("--peer-timeout"));
    assert!(try_parse_from(["shoal", "--udp", "not-an-address"]).is_err());
}

/// --max-interval and --peer-timeout: one given alone sets the other's
/// default; both given must agree; the jitter is bounded.
#[test]
fn interval_flags_and_the_peer_timeout_they_need() {
    let t = |args: &[&str]| serve(args).to_config().map(|c| c.tracker);
    let d = t(&[]).unwrap();
    assert_eq!(
        (
            d.interval,
            d.interval_jitter,
            d.max_interval(),
            d.peer_timeout
        ),
        (1800, 10, 7200, 8820)
    );
    let c = t(&["--max-interval", "3600"]).unwrap();
    assert_eq!((c.max_interval(), c.peer_timeout), (3600, 3960 + 900));
    let c = t(&["--peer-timeout", "2700"]).unwrap();
    assert_eq!((c.max_interval(), c.peer_timeout), (2454, 2700));
    let c = t(&["--interval", "600", "--interval-jitter", "0"]).unwrap();
    assert_eq!((c.max_interval(), c.peer_timeout), (2400, 2700));
    let c = t(&["--max-interval", "1800"]).unwrap();
    assert!(!crate::tracker::Intervals::of(&c).adaptive());
    let e = t(&["--max-interval", "7200", "--peer-timeout", "2700"]).unwrap_err();
    assert!(e.message().contains("--peer-timeout (2700)"), "{e}");
    assert!(e.message().contains("--max-interval 7200"), "{e}");
    let e = t(&["--max-interval", "600"]).unwrap_err();
    assert!(e.message().contains("--max-interval (600)"), "{e}");
    assert!(try_parse_from(["shoal", "--interval-jitter", "51"]).is_err());
}

#[test]
fn rendezvous_flags() {
    let c = serve(&[]).to_config().unwrap();
    assert!(c.listen.rendezvous.is_empty(), "off by default");
    assert_eq!(c.rendezvous, RendezvousConfig::default());
    let cli = serve(&[
        "--rendezvous",
        "127.0.0.1:0",
        "--rendezvous",
        "[::1]:7001",
        "--rendezvous-timeout",
        "60",
        "--rendezvous-max",
        "1000",
        "--rendezvous-push-rate",
        "2",
    ]);
    let c = cli.to_config().unwrap();
    assert_eq!(c.listen.rendezvous.len(), 2);
    assert_eq!(
        c.rendezvous,
        RendezvousConfig {
            timeout: 60,
            max: 1000,
            push_rate: 2
        }
    );
    // The UDP tracker keeps its defaults; rendezvous alone is enough to serve.
    assert!(c.listen.defaults);
    let c = serve(&["--no-udp", "--rendezvous", "127.0.0.1:0"])
        .to_config()
        .unwrap();
    assert!(c.listen.udp.is_empty());
    for (flag, value) in [
        ("--rendezvous-timeout", "0"),
        ("--rendezvous-max", "0"),
        ("--rendezvous-push-rate", "0"),
    ] {
        let err = serve(&[flag, value]).to_config().unwrap_err();
        assert!(err.message().contains(flag), "{flag}: {err}");
    }
    let err = serve(&["--udp", "127.0.0.1:7000", "--rendezvous", "127.0.0.1:7000"])
        .to_config()
        .unwrap_err();
    assert!(
        err.message().contains("--rendezvous 127.0.0.1:7000"),
        "{err}"
    );
}

#[test]
fn rendezvous_subcommand() {
    let cli = parse(&[
        "rendezvous",
        "udp://127.0.0.1:7000",
        "push",
        "1a2b3c4d",
        "--json",
    ]);
    let Command::Rendezvous(r) = cli else {
        panic!()
    };
    assert_eq!(r.action, RendezvousAction::Push);
    assert_eq!(r.share_id.as_deref(), Some("1a2b3c4d"));
    assert!(r.json);
    assert_eq!(r.timeout, 5.0);
    let cli = parse(&["rendezvous", "[::1]:7000", "announce"]);
    assert!(matches!(cli, Command::Rendezvous(_)));
    // push needs an id; unknown actions are refused.
    assert!(try_parse_from(["shoal", "rendezvous", "h:1", "push"]).is_err());
    assert!(try_parse_from(["shoal", "rendezvous", "h:1", "dance"]).is_err());
}

const HASH: &str = "0123456789abcdef0123456789abcdef01234567";

#[test]
fn announce_subcommand() {
    let cli = parse(&[
        "announce",
        "udp://127.0.0.1:6969/announce",
        "--info-hash",
        HASH,
        "--port",
        "7000",
        "--left",
        "0",
        "--event",
        "completed",
        "--numwant",
        "5",
        "--peer-id",
        "-XX0001-",
        "--timeout",
        "0.5",
        "--tries",
        "2",
        "--json",
    ]);
    let Command::Announce(a) = cli else { panic!() };
    let p = a.params();
    assert_eq!(p.info_hash, client::parse_hex20(HASH).unwrap());
    assert_eq!(
        (p.port, p.left, p.event, p.numwant),
        (7000, 0, Event::Completed, Some(5))
    );
    assert_eq!(&p.peer_id[..8], b"-XX0001-");
    assert_eq!(
        a.client.client(),
        Client::new(Duration::from_millis(500), 2)
    );
    assert!(a.client.json);
    // Defaults: a started leecher, the tracker's numwant, 5 s × 3 tries.
    let cli = parse(&["announce", "http://h/announce", "--info-hash", HASH]);
    let Command::Announce(a) = cli else { panic!() };
    let p = a.params();
    assert_eq!(
        (p.port, p.left, p.event, p.numwant),
        (6881, 1, Event::Started, None)
    );
    assert_eq!(a.client.client(), Client::new(Duration::from_secs(5), 3));
    assert!(!a.probe);
    // -1 asks for the tracker's default, as in `bench`; https and --probe.
    let cli = parse(&[
        "announce",
        "https://h/announce",
        "--info-hash",
        HASH,
        "--numwant",
        "-1",
        "--probe",
    ]);
    let Command::Announce(a) = cli else { panic!() };
    assert_eq!(a.params().numwant, None);
    assert!(a.probe);
    assert_eq!(a.url.scheme(), client::Scheme::Https);
    let cli = parse(&[
        "announce",
        "udp://h:1",
        "--info-hash",
        HASH,
        "--numwant",
        "0",
    ]);
    let Command::Announce(a) = cli else { panic!() };
    assert_eq!(a.params().numwant, Some(0));
    // Bad input is refused by clap with the reason.
    for bad in [
        &["announce", "udp://h:1", "--info-hash", "abc"][..],
        &["announce", "ftp://h/announce", "--info-hash", HASH],
        &[
            "announce",
            "udp://h:1",
            "--info-hash",
            HASH,
            "--numwant",
            "-2",
        ],
        &[
            "announce",
            "udp://h:1",
            "--info-hash",
            HASH,
            "--ca-file",
            "/nonexistent/ca.pem",
        ],
        &["announce", "udp://h", "--info-hash", HASH],
        &["announce", "udp://h:1"],
        &[
            "announce",
            "udp://h:1",
            "--info-hash",
            HASH,
            "--event",
            "paused",
        ],
        &[
            "announce",
            "udp://h:1",
            "--info-hash",
            HASH,
            "--timeout",
            "0",
        ],
        &["announce", "udp://h:1", "--info-hash", HASH, "--tries", "0"],
        &[
            "announce",
            "udp://h:1",
            "--info-hash",
            HASH,
            "--peer-id",
            "much-too-long-for-a-peer-id",
        ],
    ] {
        assert!(
            try_parse_from(std::iter::once("shoal").chain(bad.iter().copied())).is_err(),
            "{bad:?}"
        );
    }
}

#[test]
fn ca_file_is_read_and_checked_when_parsed() {
    let dir = std::env::temp_dir().join(format!("shoal-cli-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("ca.pem");
    std::fs::write(
        &good,
        "-----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let cli = parse(&[
        "scrape",
        "https://h/scrape",
        HASH,
        "--ca-file",
        good.to_str().unwrap(),
    ]);
    let Command::Scrape(s) = cli else { panic!() };
    assert_eq!(s.client.ca_file.as_ref().unwrap().path, good);
    assert_ne!(s.client.client(), Client::new(Duration::from_secs(5), 3));
    let err = try_parse_from([
        "shoal",
        "scrape",
        "https://h/scrape",
        HASH,
        "--ca-file",
        empty.to_str().unwrap(),
    ])
    .unwrap_err()
    .to_string();
    assert!(err.contains("no certificate"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

#[test]
fn json_usage_errors() {
    let args = os(&[
        "shoal",
        "announce",
        "udp://h:1",
        "--info-hash",
        "xyz",
        "--json",
    ]);
    let e = try_parse_from(&args).unwrap_err();
    let run = json_usage_error(&args, &e).unwrap();
    assert_eq!(run.code, 2);
    assert!(run.stderr.is_empty());
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let msg = doc["error"].as_str().unwrap();
    assert!(msg.contains("not an info hash"), "{msg}");
    assert!(!msg.contains('\n') && !msg.starts_with("error:"), "{msg}");
    assert_eq!(run.stdout.matches('\n').count(), 1);
    // Without --json, or for --help, or another subcommand: clap's own output.
    let args = os(&["shoal", "announce", "udp://h:1", "--info-hash", "xyz"]);
    let e = try_parse_from(&args).unwrap_err();
    assert!(json_usage_error(&args, &e).is_none());
    let args = os(&["shoal", "scrape", "--help", "--json"]);
    let e = try_parse_from(&args).unwrap_err();
    assert!(json_usage_error(&args, &e).is_none());
    let args = os(&["shoal", "bench", "--duration", "0", "--json"]);
    let e = try_parse_from(&args).unwrap_err();
    assert!(json_usage_error(&args, &e).is_none());
}

#[test]
fn probe_refuses_a_stopped_event() {
    let cli = parse(&[
        "announce",
        "udp://127.0.0.1:1",
        "--info-hash",
        HASH,
        "--probe",
        "--event",
        "stopped",
        "--json",
    ]);
    let Command::Announce(a) = cli else { panic!() };
    let run = run_announce(&a);
    assert_eq!(run.code, 2);
    assert!(run
        .stdout
        .contains("--probe sends the stopped announce itself"));
}

#[test]
fn access_flags() {
    let cli = serve(&[
        "--access-list",
        "/etc/shoal/allow.txt",
        "--access-mode",
        "deny",
        "--keys",
        "/etc/shoal/keys.txt",
        "--private-scrape",
    ]);
    let a = cli.access();
    assert_eq!(
        a.list,
        Some((PathBuf::from("/etc/shoal/allow.txt"), Mode::Deny))
    );
    assert_eq!(a.keys, Some(PathBuf::from("/etc/shoal/keys.txt")));
    assert!(a.private_scrape);
    // Open by default; allow mode unless told.
    assert!(serve(&[]).access().is_open());
    let a = serve(&["--access-list", "a.txt"]).access();
    assert_eq!(a.list.map(|(_, m)| m), Some(Mode::Allow));
    // --private-scrape means nothing without keys.
    let err = serve(&["--private-scrape"]).to_config().unwrap_err();
    assert!(
        err.message().contains("--private-scrape needs --keys"),
        "{err}"
    );
}

#[test]
fn scrape_subcommand() {
    let cli = parse(&["scrape", "udp://[::1]:6969", HASH, HASH, "--json"]);
    let Command::Scrape(s) = cli else { panic!() };
    assert_eq!(s.info_hashes.len(), 2);
    assert!(s.client.json);
    assert!(try_parse_from(["shoal", "scrape", "udp://h:1"]).is_err());
}

#[test]
fn bench_subcommand() {
    let cli = parse(&["bench"]);
    let Command::Bench(b) = cli else { panic!() };
    let c = b.to_config().unwrap();
    let d = BenchConfig::default();
    assert!(c.target.is_none());
    assert_eq!(
        (c.duration, c.workers, c.sockets, c.peers),
        (d.duration, d.workers, d.sockets, d.peers)
    );
    assert_eq!(c.numwant, Some(30));
    let cli = parse(&[
        "bench",
        "--target",
        "udp://127.0.0.1:7000",
        "--duration",
        "2.5",
        "--workers",
        "2",
        "--connect",
        "0",
        "--scrape",
        "0",
        "--numwant",
        "-1",
        "--json",
        "--quiet",
    ]);
    let Command::Bench(b) = cli else { panic!() };
    let c = b.to_config().unwrap();
    assert_eq!(c.target.unwrap().port(), 7000);
    assert_eq!(
        (c.duration, c.workers, c.numwant),
        (Duration::from_millis(2500), 2, None)
    );
    assert_eq!(
        (c.connect, c.announce, c.scrape, c.progress),
        (0, 50, 0, false)
    );
    let cli = parse(&["bench", "--duration", "3600", "--workers", "0"]);
    let Command::Bench(b) = cli else { panic!() };
    assert!(b.to_config().unwrap_err().message().contains("--workers"));
    assert!(try_parse_from(["shoal", "bench", "--duration", "3601"]).is_err());
}

#[test]
fn control_nice_flag() {
    let c = serve(&[]).to_config().unwrap();
    assert_eq!(c.control_nice, crate::server::config::CONTROL_NICE);
    for (value, nice) in [("0", 0), ("-20", -20), ("19", 19), ("-5", -5)] {
        let c = serve(&["--control-nice", value]).to_config().unwrap();
        assert_eq!(c.control_nice, nice, "{value}");
    }
    for bad in ["20", "-21", "x"] {
        let e = try_parse_from(["shoal", "--control-nice", bad]).unwrap_err();
        assert!(e.to_string().contains("--control-nice"), "{bad}: {e}");
    }
}
