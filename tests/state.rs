//! Warm restart (`--state-file`) over real sockets: the binary restarted with
//! SIGTERM finds the same peers (UDP over IPv4 and IPv6, HTTP with peer ids)
//! and counts, and accepts a connection id issued before the restart; a
//! corrupt or truncated file is moved aside and shoal starts empty; an
//! unwritable path is refused at start; periodic writes happen; and (through
//! the library, with a manual clock) peers expire after a restart when their
//! remaining lifetime runs out, not a full timeout later.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    announce_path, http_get, peers4, peers6, start_with_manual_clock, wait_until, Client, Proc,
    Role, TmpDir,
};
use shoal::server::Config;
use shoal::state::StateConfig;
use shoal::wire::udp::Event;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};

/// The binary on UDP (both families) and HTTP (with /metrics there),
/// keeping its state in `state`, and `args`.
fn start(state: &Path, args: &[&str]) -> Proc {
    let mut all = vec![
        "--udp",
        "127.0.0.1:0",
        "--udp",
        "[::1]:0",
        "--http",
        "127.0.0.1:0",
    ];
    all.extend(["--http-metrics", "--workers", "2"]);
    all.extend(["--state-file", state.to_str().unwrap()]);
    all.extend_from_slice(args);
    Proc::start(&all)
}

fn udp4(p: &Proc) -> SocketAddr {
    *p.addrs(Role::Udp).iter().find(|a| a.is_ipv4()).unwrap()
}

fn udp6(p: &Proc) -> SocketAddr {
    *p.addrs(Role::Udp).iter().find(|a| a.is_ipv6()).unwrap()
}

/// An HTTP announce; the body of the reply.
fn http_announce(
    addr: SocketAddr,
    ih: [u8; 20],
    peer_id: &[u8; 20],
    port: u16,
    left: u64,
    extra: &str,
) -> Vec<u8> {
    http_get(addr, &announce_path(ih, peer_id, port, left, extra))
}

const A: [u8; 20] = [0xa1; 20];
const B: [u8; 20] = [0xb2; 20];
const C: [u8; 20] = [0xc3; 20];
const SEEDER_ID: &[u8; 20] = b"-XX0001-seeder-id-01";

#[test]
fn a_sigterm_restart_keeps_peers_counts_ids_and_connection_ids() {
    let d = TmpDir::new("restart");
    let state = d.path("shoal.state");
    let p = start(&state, &[]);
    assert!(p.log().join("\n").contains("starting empty"));

    // IPv4: a seeder that completed and a leecher on A.
    let mut seed4 = Client::connected(udp4(&p));
    seed4.announce(A, Event::Completed, 0, 0);
    let mut leech4 = Client::connected(udp4(&p));
    leech4.announce(A, Event::Started, 100, 0);
    // IPv6: a seeder on B.
    let mut seed6 = Client::connected(udp6(&p));
    seed6.announce(B, Event::Completed, 0, 0);
    // HTTP: a seeder with its peer id on C.
    http_announce(
        p.addr(Role::Http),
        C,
        SEEDER_ID,
        7001,
        0,
        "&event=completed",
    );
    let before = seed4.scrape(&[A, B, C]);
    assert_eq!(before, vec![(1, 1, 1), (1, 1, 0), (1, 1, 0)]);
    let old_id = seed4.connection_id;

    let log = p.stop(libc::SIGTERM);
    assert!(log.contains("state written to"), "{log}");
    assert!(log.contains("4 peers"), "{log}");
    let mode = std::fs::metadata(&state).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the file holds the connection-id key");

    let mut p = start(&state, &[]);
    let loaded = p.wait_for("state loaded from");
    assert!(
        loaded.contains("3 torrents, 4 peers (1 HTTP peer ids)"),
        "{loaded}"
    );
    assert_eq!(p.metric("shoal_state_loaded_peers"), 4);

    // The id issued before the restart is accepted by the new process.
    seed4.server = udp4(&p);
    assert_eq!(seed4.connection_id, old_id);
    assert_eq!(seed4.scrape(&[A, B, C]), before, "the same counts");

    // A newcomer on each family finds the peers only the snapshot knew.
    let mut new4 = Client::connected(udp4(&p));
    let got = new4.announce(A, Event::Started, 100, 50);
    assert_eq!((got.seeders, got.leechers), (1, 2));
    let mut want = vec![seed4.addr(), leech4.addr()];
    want.sort();
    let mut peers = peers4(&got.peers);
    peers.sort();
    assert_eq!(peers, want);
    let mut new6 = Client::connected(udp6(&p));
    let got = new6.announce(B, Event::Started, 100, 50);
    assert_eq!(peers6(&got.peers), vec![seed6.addr()]);
    // The HTTP seeder comes back with its peer id (non-compact reply).
    let body = http_announce(
        p.addr(Role::Http),
        C,
        b"-XX0001-newcomer-002",
        7002,
        100,
        "&compact=0",
    );
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("-XX0001-seeder-id-01"), "{text}");
    assert!(text.contains("i7001e"), "{text}");
    p.stop(libc::SIGTERM);
}

#[test]
fn a_corrupt_or_truncated_file_is_moved_aside_and_shoal_starts_empty() {
    let d = TmpDir::new("corrupt");
    let state = d.path("shoal.state");
    // A real snapshot with one peer, then truncated by one byte.
    let p = start(&state, &[]);
    let mut c = Client::connected(udp4(&p));
    c.announce(A, Event::Started, 0, 0);
    p.stop(libc::SIGTERM);
    let bytes = std::fs::read(&state).unwrap();
    for (name, bad) in [
        ("truncated", bytes[..bytes.len() - 1].to_vec()),
        ("foreign", b"not a state file at all, just text\n".to_vec()),
    ] {
        std::fs::write(&state, &bad).unwrap();
        let mut p = start(&state, &[]);
        let warn = p.wait_for("refused");
        assert!(warn.contains("moved aside"), "{name}: {warn}");
        let aside = d.files("shoal.state.corrupt-");
        assert_eq!(aside.len(), 1, "{name}: {aside:?}");
        assert_eq!(std::fs::read(&aside[0]).unwrap(), bad, "{name}: kept as is");
        std::fs::remove_file(&aside[0]).unwrap();
        assert!(!state.exists());
        let mut c = Client::connected(udp4(&p));
        assert_eq!(c.scrape(&[A]), vec![(0, 0, 0)], "{name}: started empty");
        assert_eq!(p.metric("shoal_state_loaded_peers"), 0);
        let log = p.stop(libc::SIGTERM);
        let warnings = log
            .lines()
            .filter(|l| l.contains("WARN") && l.contains("state file"));
        assert_eq!(warnings.count(), 1, "{name}: one warning: {log}");
        // The next snapshot is a good one again.
        assert!(state.exists(), "{name}");
    }
}

#[test]
fn an_unwritable_state_file_is_refused_at_start() {
    let d = TmpDir::new("unwritable");
    for bad in [d.path("no/such/dir/shoal.state"), d.path("")] {
        let out = common::shoal_command()
            .args(["--udp", "127.0.0.1:0", "--state-file"])
            .arg(&bad)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains("--state-file"), "{err}");
    }
}

#[test]
fn periodic_writes_happen_at_the_interval() {
    let d = TmpDir::new("interval");
    let state = d.path("shoal.state");
    let p = start(&state, &["--state-interval", "1"]);
    let mut c = Client::connected(udp4(&p));
    c.announce(A, Event::Started, 0, 0);
    // Written while running (no SIGTERM), with the peer in it.
    wait_until("a periodic write with the peer", || {
        p.metric("shoal_state_last_write_peers") == 1
    });
    let first = p.metric("shoal_state_writes_total");
    assert!(first >= 1);
    wait_until("another periodic write", || {
        p.metric("shoal_state_writes_total") > first
    });
    assert_eq!(p.metric("shoal_state_write_failures_total"), 0);
    let loaded = shoal::snapshot::load(&state, shoal::time::unix_now(), 3600)
        .unwrap()
        .unwrap();
    assert_eq!(loaded.counts(), (1, 1));
    p.stop(libc::SIGTERM);
}

/// Moves a manual clock and waits until the server's loop runs with it. With
/// a state file, connection ids count Unix seconds (not the tracker clock that
/// `common::Client::set_clock` reads them as), so a connect before the move
/// gives the base and the id's time must advance by the same amount.
fn set_clock(c: &mut Client, clock: &AtomicU32, secs: u32) {
    let base = (c.connect() >> 32) as u32;
    let step = secs - clock.load(Ordering::SeqCst);
    clock.store(secs, Ordering::SeqCst);
    for _ in 0..10_000 {
        if (c.connect() >> 32) as u32 == base.wrapping_add(step) {
            return;
        }
    }
    panic!("the server never picked up clock time {secs}");
}

#[test]
fn peers_expire_after_a_restart_when_their_remaining_lifetime_runs_out() {
    let d = TmpDir::new("expiry");
    let config = || {
        let mut c = Config::for_udp("127.0.0.1:0".parse().unwrap());
        c.tracker.interval = 60;
        c.tracker.peer_timeout = 100;
        // One shard: each clock step below is longer than the sweep period
        // (12.5 s), so the control thread sweeps it at every step.
        c.tracker.shards = 1;
        c.state = Some(StateConfig {
            path: d.path("shoal.state"),
            interval: None,
        });
        c.listen.metrics = vec!["127.0.0.1:0".parse().unwrap()];
        c
    };
    let (server, clock) = start_with_manual_clock(config());
    let addr = server.udp_addrs()[0];
    let mut x = Client::new("127.0.0.1:0", addr);
    let mut y = Client::new("127.0.0.1:0", addr);
    x.connect();
    x.announce(A, Event::Started, 0, 0); // at t=0: 100 s to live
    set_clock(&mut y, &clock, 60);
    y.announce(A, Event::Started, 0, 0); // at t=60
    server.stop(); // final write at t=60: x is 60 s old, y 0 s

    // The new process's clock starts at 0. Wall-clock downtime here is a
    // second or two at most, so x has 38..40 s left and y 98..100 s.
    let (server, clock) = start_with_manual_clock(config());
    let addr = server.udp_addrs()[0];
    let metrics = server.metrics_addrs()[0];
    let mut t = Client::connected(addr);
    assert_eq!(t.scrape(&[A]), vec![(2, 0, 0)]);
    // Each step: the clock moves, the control thread sweeps at the new
    // time, then the scrape shows what is left.
    let mut step = |secs: u32| {
        clock.store(secs, std::sync::atomic::Ordering::SeqCst);
        common::control_at(metrics, secs);
        t.scrape(&[A])
    };
    assert_eq!(step(37), vec![(2, 0, 0)], "x still has a few seconds");
    assert_eq!(
        step(55),
        vec![(1, 0, 0)],
        "x expired 40 s after the restart, not 100 s"
    );
    assert_eq!(step(80), vec![(1, 0, 0)], "y lives on");
    assert_eq!(step(103), vec![(0, 0, 0)], "y expired at 100 s");
    assert_eq!(server.tracker().swarm().totals().torrents, 0);
    server.stop();
}
