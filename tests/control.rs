//! Management work runs on the control thread, never on a packet worker.
//!
//! One in-process server (one packet worker), a map of many torrents, and
//! a client that walks it through the API (`/api/v1/torrents?limit=1000`)
//! and scrapes `/metrics`, then through the torrust API (a deep page, the
//! stats): the CPU time those requests take shows on the
//! thread named `shoal-control`, while the packet worker's stays near zero
//! — and UDP keeps answering meanwhile. Thread CPU times come from
//! `/proc/self/task/*/stat` (Linux), so this says where the work ran, not
//! how fast: no timing is asserted. (How much a walk costs UDP latency is
//! measured by `benches/control.py`, in BENCHMARKS.md.) One test in this
//! file, so no other server's threads share the process.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Client;
use shoal::api::ApiToken;
use shoal::server::Config;
use shoal::swarm::{Announce, Peer4, Role};
use shoal::wire::udp::Event;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};

const TOKEN: &str = "control-test-token-0123456789";

/// CPU time (user + system, in clock ticks) of this process's threads, by name.
fn thread_ticks() -> HashMap<String, u64> {
    let mut by_name = HashMap::new();
    for entry in std::fs::read_dir("/proc/self/task").unwrap() {
        let dir = entry.unwrap().path();
        let (Ok(comm), Ok(stat)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read_to_string(dir.join("stat")),
        ) else {
            continue; // the thread ended meanwhile
        };
        // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = after.split_whitespace().collect();
        let ticks = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
        *by_name.entry(comm.trim().to_string()).or_default() += ticks;
    }
    by_name
}

/// One API request on a fresh connection: the status line and the body.
/// The token goes as Bearer; the torrust API takes it as well.
fn api_get(addr: SocketAddr, path: &str) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(common::REPLY_TIMEOUT)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let at = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let status = String::from_utf8_lossy(&all[..at])
        .lines()
        .next()
        .unwrap()
        .to_string();
    (status, all[at + 4..].to_vec())
}

#[test]
fn walks_and_metrics_run_on_the_control_thread_not_the_packet_worker() {
    let mut config = Config::for_udp("127.0.0.1:0".parse().unwrap());
    config.listen.api = vec!["127.0.0.1:0".parse().unwrap()];
    config.listen.torrust = vec!["127.0.0.1:0".parse().unwrap()];
    config.listen.metrics = vec!["127.0.0.1:0".parse().unwrap()];
    config.api.token = Some(ApiToken::parse(TOKEN).unwrap());
    let server = common::start(config);
    let swarm = server.tracker().swarm();
    for i in 0..100_000u32 {
        let mut info_hash = [0u8; 20];
        info_hash[..4].copy_from_slice(&i.to_be_bytes());
        let req = Announce {
            info_hash,
            addr: (Ipv4Addr::new(10, 0, (i >> 8) as u8, i as u8), 6881),
            role: Role::Seeder,
            completed: false,
            now: 0,
            want: 0,
            random: (0, 0),
            peer_id: None,
            emit_ids: false,
        };
        swarm.announce::<Peer4>(&req, |_, _| {});
    }
    let (api, metrics) = (server.api_addrs()[0], server.metrics_addrs()[0]);
    let torrust = server.torrust_addrs()[0];
    let mut udp = Client::new("127.0.0.1:0", server.udp_addrs()[0]);
    udp.connect();

    // Rounds of `walk`, a UDP announce after each, at least 40 and until the
    // control thread has 20 clock ticks (10 ms each) to show, at most 400
    // (an optimised build walks faster): where did the CPU time go?
    let mut rounds = |what: &str, walk: &mut dyn FnMut(u32)| {
        let before = thread_ticks();
        let mut after = before.clone();
        let delta = |after: &HashMap<String, u64>, name: &str| {
            after.get(name).unwrap_or(&0) - before.get(name).unwrap_or(&0)
        };
        for round in 0..400 {
            walk(round);
            // The packet worker answers between walks as ever.
            let r = udp.announce([7; 20], Event::None, 0, 0);
            assert_eq!(r.seeders, 1);
            after = thread_ticks();
            if round >= 39 && delta(&after, "shoal-control") >= 20 {
                break;
            }
        }
        let (control, worker) = (
            delta(&after, "shoal-control"),
            delta(&after, "shoal-worker-0"),
        );
        assert!(
            control >= 20,
            "{what}: the walks' CPU time shows on the control thread: {control} ticks ({after:?})"
        );
        assert!(
            worker * 10 <= control,
            "{what}: the packet worker did no walk: worker {worker} ticks, control {control}"
        );
    };

    rounds("--api and /metrics", &mut |round| {
        let (status, body) = api_get(api, "/api/v1/torrents?limit=1000");
        assert!(status.contains(" 200 "), "{status}");
        let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(page["total"].as_u64().unwrap() >= 100_000);
        assert_eq!(page["torrents"].as_array().unwrap().len(), 1000);
        if round % 4 == 0 {
            common::http_get(metrics, "/metrics");
        }
    });
    // The torrust API's walks: a page deep in info-hash order, and the
    // stats, whose `completed` sums over every torrent.
    rounds("--torrust-api", &mut |round| {
        let path = if round % 2 == 0 {
            "/api/v1/torrents?offset=90000&limit=1000"
        } else {
            "/api/v1/stats"
        };
        let (status, body) = api_get(torrust, path);
        assert!(status.contains(" 200 "), "{status}");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if round % 2 == 0 {
            assert_eq!(v.as_array().unwrap().len(), 1000);
        } else {
            assert!(v["torrents"].as_u64().unwrap() >= 100_000);
        }
    });
    server.stop();
}
