//! The operator's tools as an operator runs them: the `shoal` binary's
//! bench, announce, api and rendezvous subcommands against real trackers on
//! loopback, checked by what the tracker holds afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use shoal::client::{Client, TrackerUrl};
use shoal::server::Config;
use std::net::SocketAddr;
use std::process::Output;
use std::time::Duration;

fn shoal(args: &[&str]) -> Output {
    common::shoal_command().args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(o), stderr(o)))
}

fn udp_tracker() -> (shoal::server::Running, SocketAddr) {
    let server = common::start(Config {
        workers: 1,
        ..Config::for_udp(SocketAddr::from(([127, 0, 0, 1], 0)))
    });
    let addr = server.udp_addrs()[0];
    (server, addr)
}

/// Seeders + leechers `target` holds in the first `torrents` torrents of
/// bench's population `seed`.
fn bench_peers_held(target: SocketAddr, seed: u64, torrents: u32) -> u32 {
    let hashes: Vec<[u8; 20]> = (0..torrents)
        .map(|t| {
            let mut h = [0; 20];
            shoal::bench::info_hash(seed, t, &mut h);
            h
        })
        .collect();
    let url: TrackerUrl = format!("udp://{target}").parse().unwrap();
    Client::new(Duration::from_secs(2), 3)
        .scrape(&url, &hashes)
        .unwrap()
        .iter()
        .map(|s| s.map_or(0, |s| s.seeders + s.leechers))
        .sum()
}

/// `shoal bench --target` withdraws the population it announced (a tracker
/// scraped afterwards holds none of it) and says so; `--keep-peers` leaves
/// it, and says that too.
#[test]
fn bench_target_withdraws_its_peers_unless_told_to_keep_them() {
    let (_server, addr) = udp_tracker();
    let target = format!("udp://{addr}");
    let bench = |seed: &str, extra: &[&str]| {
        let mut args = vec![
            "bench",
            "--target",
            &target,
            "--duration",
            "0.5",
            "--torrents",
            "50",
            "--peers",
            "2000",
            "--seed",
            seed,
            "--quiet",
        ];
        args.extend_from_slice(extra);
        let o = shoal(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        o
    };
    let o = bench("7", &["--json"]);
    let doc = json(&o);
    let withdrawn = &doc["withdrawn"];
    assert!(withdrawn["peers"].as_u64().unwrap() > 0, "{doc}");
    assert_eq!(withdrawn["left"], 0, "{doc}");
    assert_eq!(withdrawn["confirmed"], withdrawn["peers"], "{doc}");
    assert_eq!(bench_peers_held(addr, 7, 50), 0);
    let o = bench("7", &[]);
    assert!(
        stdout(&o).contains("withdrawn     ") && stdout(&o).contains("simulated peers"),
        "{}",
        stdout(&o)
    );
    assert_eq!(bench_peers_held(addr, 7, 50), 0);

    let o = bench("8", &["--keep-peers"]);
    assert!(
        stdout(&o).contains("stay in the target (--keep-peers)"),
        "{}",
        stdout(&o)
    );
    assert!(bench_peers_held(addr, 8, 50) > 0);
    let o = bench("9", &["--keep-peers", "--json"]);
    assert!(json(&o)["withdrawn"].is_null());
}

/// `shoal bench --target A --target B --rounds N`: each round loads both, A
/// first in odd rounds; the per-round ratios, their geometric mean and,
/// from 5 rounds, a bootstrap interval, in text and JSON.
#[test]
fn bench_compares_two_targets_in_alternating_rounds() {
    let (_a, a) = udp_tracker();
    let (_b, b) = udp_tracker();
    let (ta, tb) = (format!("udp://{a}"), format!("udp://{b}"));
    let common = [
        "--duration",
        "0.2",
        "--torrents",
        "100",
        "--peers",
        "1000",
        "--quiet",
    ];
    let mut args = vec![
        "bench", "--target", &ta, "--target", &tb, "--rounds", "5", "--json",
    ];
    args.extend_from_slice(&common);
    let o = shoal(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc = json(&o);
    assert_eq!(
        (doc["a"].as_str(), doc["b"].as_str()),
        (Some(ta.as_str()), Some(tb.as_str()))
    );
    let rounds = doc["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 5, "{doc}");
    for (i, r) in rounds.iter().enumerate() {
        assert_eq!(r["round"], i + 1);
        assert_eq!(r["first"], if i % 2 == 0 { "a" } else { "b" });
        let (ra, rb) = (r["a"].as_f64().unwrap(), r["b"].as_f64().unwrap());
        assert!(ra > 0.0 && rb > 0.0, "{r}");
        assert!((r["ratio"].as_f64().unwrap() - rb / ra).abs() < 1e-9);
    }
    let summary = &doc["summary"];
    assert_eq!(summary["rounds"], 5);
    let (lo, hi) = (
        summary["interval"][0].as_f64().unwrap(),
        summary["interval"][1].as_f64().unwrap(),
    );
    let mean = summary["geometric_mean"].as_f64().unwrap();
    assert!(lo <= mean && mean <= hi, "{summary}");
    // Each round withdrew its peers: neither tracker keeps the population.
    let seed = shoal::bench::BenchConfig::default().seed;
    assert_eq!(
        bench_peers_held(a, seed, 100) + bench_peers_held(b, seed, 100),
        0
    );

    // Text, two rounds: the pairs, and no interval yet.
    let mut args = vec!["bench", "--target", &ta, "--target", &tb, "--rounds", "2"];
    args.extend_from_slice(&common);
    let o = shoal(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("round   2 (B first):  replies/s A "),
        "{text}"
    );
    assert!(
        text.contains("B / A, 2 rounds: geometric mean of ratios"),
        "{text}"
    );
    assert!(text.contains("give --rounds 5 or more"), "{text}");

    // --rounds needs two targets; three are refused. Usage errors, status 2.
    for args in [
        vec!["bench", "--target", &ta, "--rounds", "3"],
        vec!["bench", "--target", &ta, "--target", &tb, "--target", &ta],
    ] {
        let o = shoal(&args);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).starts_with("shoal: --"), "{}", stderr(&o));
    }
}

/// `shoal announce --probe` leaves a real client on the same host alone:
/// the probe is a peer of its own (random port, id and key), so its
/// `stopped` withdraws only itself, where it once reused port 6881.
#[test]
fn a_probe_withdraws_only_itself() {
    let (_server, addr) = udp_tracker();
    let url = format!("udp://{addr}");
    let hash = "0123456789abcdef0123456789abcdef01234567";
    // The "real client": a leecher on 127.0.0.1:6881.
    let o = shoal(&[
        "announce",
        &url,
        "--info-hash",
        hash,
        "--port",
        "6881",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json(&o)["leechers"], 1);
    for _ in 0..2 {
        let o = shoal(&["announce", &url, "--info-hash", hash, "--probe", "--json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let doc = json(&o);
        // The probe saw itself and the client, then left the client alone.
        assert_eq!(doc["leechers"], 2, "{doc}");
        assert_eq!(doc["after_stopped"]["leechers"], 1, "{doc}");
        let peers = doc["peers"].as_array().unwrap();
        assert!(peers.iter().any(|p| p == "127.0.0.1:6881"), "{doc}");
    }
    let o = shoal(&["scrape", &url, hash, "--json"]);
    assert_eq!(json(&o)["files"][0]["leechers"], 1, "{}", stdout(&o));
}

/// `shoal api` reads SHOAL_API_TOKEN_FILE (or --api-token-file) as the
/// server does.
#[test]
fn shoal_api_reads_the_token_file() {
    let dir = common::TmpDir::new("api-token-file");
    let token_file = dir.write("token", "0123456789abcdef-secret\n");
    let token_file = token_file.to_str().unwrap();
    let server = common::Proc::start_with_env(
        &["--udp", "127.0.0.1:0", "--api", "127.0.0.1:0"],
        &[("SHOAL_API_TOKEN_FILE", token_file)],
    );
    let api_url = format!("http://{}", server.addr(common::Role::Api));
    let o = common::shoal_command()
        .args(["api", "stats", "--json", "--api-url", &api_url])
        .env("SHOAL_API_TOKEN_FILE", token_file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(json(&o).is_object());
    let o = shoal(&[
        "api",
        "stats",
        "--api-url",
        &api_url,
        "--api-token-file",
        token_file,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // A wrong token in the file is the API's 401, not a missing token.
    let wrong = dir.write("wrong", "fedcba9876543210-wrong\n");
    let o = shoal(&[
        "api",
        "stats",
        "--api-url",
        &api_url,
        "--api-token-file",
        wrong.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(!stderr(&o).contains("no API token"), "{}", stderr(&o));
}

/// Settings that would be silently ignored are refused, naming the flag.
#[test]
fn a_rate_burst_without_a_rate_limit_is_refused() {
    let o = shoal(&[
        "--udp",
        "127.0.0.1:0",
        "--rate-burst",
        "10",
        "--print-config",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "shoal: --rate-burst (SHOAL_RATE_BURST) needs --rate-limit (SHOAL_RATE_LIMIT) above 0\n"
    );
    let o = common::shoal_command()
        .args(["--udp", "127.0.0.1:0", "--print-config"])
        .env("SHOAL_RATE_BURST", "10")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = shoal(&["--rate-limit", "5", "--rate-burst", "10", "--print-config"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("SHOAL_RATE_BURST=10"), "{}", stdout(&o));
}

/// `--print-config` is portable: what this host's cores and memory made of
/// the defaults is commented and marked as detected, so the lines pasted
/// into a unit file do not pin them on another machine; the UDP addresses
/// show their default; every variable has its line.
#[test]
fn print_config_comments_what_it_detected_on_this_host() {
    let o = shoal(&["--print-config"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for name in ["SHOAL_WORKERS", "SHOAL_MAX_MEMORY"] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("# {name}=")))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"));
        assert!(
            line.ends_with("(detected on this host; uncomment to pin it)"),
            "{line}"
        );
        assert!(!text.contains(&format!("\n{name}=")), "{text}");
    }
    assert!(
        text.contains("# SHOAL_UDP=0.0.0.0:6969,[::]:6969  # --udp (default)\n"),
        "{text}"
    );
    assert!(
        text.contains("# SHOAL_API_TOKEN_FILE=  # --api-token-file (not set)\n"),
        "{text}"
    );
    // Given, a detected setting is the operator's: printed as a setting.
    let o = shoal(&["--print-config", "--workers", "3"]);
    assert!(
        stdout(&o).contains("\nSHOAL_WORKERS=3  # --workers\n"),
        "{}",
        stdout(&o)
    );
}

/// `shoal rendezvous URL listen` stays registered and prints each
/// introduction as it arrives (JSON lines with --json), then ends cleanly on
/// Ctrl-C, or after --timeout.
#[test]
fn rendezvous_listen_prints_each_income_as_it_arrives() {
    use shoal::rendezvous::client::RendezvousClient;
    use std::io::BufRead;
    let tracker = common::Proc::start(&["--no-udp", "--rendezvous", "127.0.0.1:0"]);
    let addr = tracker.addr(common::Role::Rendezvous);
    let mut child = common::shoal_command()
        .args([
            "rendezvous",
            &addr.to_string(),
            "listen",
            "--json",
            "--alive-every",
            "0.2",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let _ = tx.send(line.unwrap());
        }
    });
    let next = || -> serde_json::Value {
        let line = lines
            .recv_timeout(common::WAIT)
            .expect("a line from listen");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    };
    let registered = next();
    assert_eq!(registered["action"], "announced", "{registered}");
    let share_id = registered["data"]["shareId"].as_str().unwrap().to_string();
    // Two peers push to it: each income is printed as it comes.
    for _ in 0..2 {
        let mut peer = RendezvousClient::new(addr, common::REPLY_TIMEOUT).unwrap();
        let peer_id = peer.announce().unwrap();
        peer.push(&share_id).unwrap();
        let income = next();
        assert_eq!(income["action"], "income", "{income}");
        assert_eq!(
            income["data"]["peeraddr"],
            peer.local_addr().unwrap().to_string()
        );
        assert_eq!(income["data"]["peerShareId"], peer_id.to_string());
    }
    // Ctrl-C: a clean exit.
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = std::time::Instant::now() + common::WAIT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "listen did not stop on SIGINT"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(0));

    // --timeout ends it by itself; text lines.
    let started = std::time::Instant::now();
    let o = shoal(&[
        "rendezvous",
        &format!("udp://{addr}"),
        "listen",
        "--timeout",
        "0.5",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert!(
        stdout(&o).starts_with("registered: share id "),
        "{}",
        stdout(&o)
    );
}

/// `shoal --help` groups the tracker's options by area, each flag under
/// its heading.
#[test]
fn help_is_grouped_by_area() {
    for args in [&["--help"][..], &["serve", "--help"]] {
        let o = shoal(args);
        assert!(o.status.success());
        let text = stdout(&o);
        let mut heading = "";
        let mut seen = Vec::new();
        for line in text.lines() {
            if !line.starts_with(' ') && line.ends_with(':') {
                heading = line;
                seen.push(line);
            } else if let Some(flag) = Some(line.trim_start())
                .filter(|t| t.starts_with('-'))
                .and_then(|t| t.find("--").map(|i| &t[i + 2..]))
            {
                let flag = flag.split([' ', ',']).next().unwrap();
                seen.push(flag);
                let want = match flag {
                    "udp" | "no-udp" | "http" | "metrics" | "xdp" => "Listeners:",
                    "interval" | "peer-timeout" => "Tracker:",
                    "max-memory" | "rate-burst" => "Memory and limits:",
                    "http-client-ip-header" => "HTTP tracker:",
                    "keys" | "access-list" => "Access control:",
                    "state-file" => "Warm restart:",
                    "cluster" => "Cluster:",
                    "rendezvous-timeout" => "Rendezvous:",
                    "api-token-file" | "torrust-api" => "Management API:",
                    "workers" | "log" => "Process:",
                    _ => continue,
                };
                assert_eq!(heading, want, "--{flag} in\n{text}");
            }
        }
        assert!(
            seen.contains(&"api-token-file") && seen.contains(&"Process:"),
            "{text}"
        );
        // No tracker flag is left ungrouped: under "Options:" only --help and --version.
        let options = seen
            .iter()
            .skip_while(|s| **s != "Options:")
            .skip(1)
            .take_while(|s| !s.ends_with(':'))
            .copied()
            .collect::<Vec<_>>();
        assert!(options.contains(&"help"), "{text}");
        assert!(
            options.iter().all(|o| ["help", "version"].contains(o)),
            "{options:?}"
        );
    }
}

/// `shoal announce HOST:PORT` is a UDP tracker, as `shoal rendezvous` takes
/// it; a probe there works the same.
#[test]
fn announce_takes_host_and_port_alone() {
    let (_server, addr) = udp_tracker();
    let hash = "89abcdef0123456789abcdef0123456789abcdef";
    let o = shoal(&["announce", &addr.to_string(), "--info-hash", hash, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json(&o)["leechers"], 1);
    let o = shoal(&["scrape", &addr.to_string(), hash]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(hash));
}

/// A rendezvous-only start logs the rendezvous settings, not the tracker's
/// (which govern nothing there).
#[test]
fn a_rendezvous_only_start_logs_what_runs() {
    let p = common::Proc::start(&["--no-udp", "--rendezvous", "127.0.0.1:0"]);
    let config = p
        .log()
        .iter()
        .find(|l| l.contains("config: "))
        .unwrap_or_else(|| panic!("no config line in {:?}", p.log()))
        .clone();
    assert!(
        config.contains("no UDP or HTTP tracker; rendezvous registrations expire after 300 s"),
        "{config}"
    );
    for tracker_setting in ["interval", "peer timeout", "numwant", "max scrape"] {
        assert!(!config.contains(tracker_setting), "{config}");
    }
    // With a tracker, its settings are there.
    let p = common::Proc::start(&["--udp", "127.0.0.1:0", "--rendezvous", "127.0.0.1:0"]);
    assert!(
        p.log()
            .iter()
            .any(|l| l.contains("config: interval 1800 s")),
        "{:?}",
        p.log()
    );
}
