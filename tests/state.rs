//! Warm restart (`--state-file`) over real sockets: the binary restarted with
//! SIGTERM finds the same peers (UDP over IPv4 and IPv6, HTTP with peer ids)
//! and counts, and accepts a connection id issued before the restart; a
//! corrupt or truncated file is moved aside and shoal starts empty; an
//! unwritable path is refused at start; periodic writes happen; and (through
//! the library, with a manual clock) peers expire after a restart when their
//! remaining lifetime runs out, not a full timeout later.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// Sending SIGTERM to the child with libc::kill.
#![allow(unsafe_code)]

mod common;

use common::{start_with_manual_clock, Client, REPLY_TIMEOUT};
use shoal::server::Config;
use shoal::state::StateConfig;
use shoal::wire::udp::Event;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Bound on any wait for the binary (start-up, a log line, an exit, a metric).
const WAIT: Duration = Duration::from_secs(20);

/// A scratch directory, removed at the end.
struct TmpDir(PathBuf);

impl TmpDir {
    fn new(name: &str) -> TmpDir {
        let d = std::env::temp_dir().join(format!("shoal-it-state-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TmpDir(d)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Files whose name starts with `prefix`.
    fn files(&self, prefix: &str) -> Vec<PathBuf> {
        std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .collect()
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running binary: its addresses and its log, line by line.
struct Proc {
    child: Child,
    udp4: SocketAddr,
    udp6: SocketAddr,
    http: SocketAddr,
    log: mpsc::Receiver<String>,
    /// Every line read so far.
    seen: Vec<String>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn start(state: &Path, args: &[&str]) -> Proc {
        let mut child = common::shoal_command()
            .args(["--udp", "127.0.0.1:0", "--udp", "[::1]:0"])
            .args(["--http", "127.0.0.1:0", "--http-metrics", "--workers", "2"])
            .arg("--state-file")
            .arg(state)
            .args(args)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                if tx.send(line.unwrap_or_default()).is_err() {
                    return;
                }
            }
        });
        let any: SocketAddr = "0.0.0.0:0".parse().unwrap();
        let mut p = Proc {
            child,
            udp4: any,
            udp6: any,
            http: any,
            log,
            seen: Vec::new(),
        };
        p.wait_for("worker(s)");
        let addrs = |scheme: &str| -> Vec<SocketAddr> {
            p.seen
                .iter()
                .filter_map(|l| l.split(scheme).nth(1))
                .map(|a| a.trim().parse().unwrap())
                .collect()
        };
        let udp = addrs("listening on udp://");
        p.udp4 = *udp.iter().find(|a| a.is_ipv4()).unwrap();
        p.udp6 = *udp.iter().find(|a| a.is_ipv6()).unwrap();
        p.http = addrs("listening on http://")[0];
        p
    }

    /// The first line of the log that contains `text`, reading on (bounded)
    /// until there is one.
    fn wait_for(&mut self, text: &str) -> String {
        if let Some(line) = self.seen.iter().find(|l| l.contains(text)) {
            return line.clone();
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(e) => panic!("no log line with {text:?} ({e}); saw {:#?}", self.seen),
            }
        }
    }

    /// SIGTERM, then wait (bounded) for a clean exit; returns the whole log.
    fn terminate(mut self) -> String {
        let pid = self.child.id() as libc::pid_t;
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        self.wait_for("stopped");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "exit status {status}");
                break;
            }
            assert!(Instant::now() < deadline, "shoal did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
        while let Ok(line) = self.log.recv_timeout(Duration::from_millis(100)) {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }

    fn metric(&self, name: &str) -> u64 {
        let text = String::from_utf8(http_get(self.http, "/metrics")).unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .unwrap_or_else(|| panic!("no {name} in {text}"));
        line[name.len() + 1..].parse().unwrap()
    }
}

/// Repeat `f` until it returns true, bounded by [`WAIT`]. Each try reads
/// the server's state; the pause between tries only spares CPU.
fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The body of a `GET`, asserting a 200.
fn http_get(addr: SocketAddr, target: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    assert!(
        all.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&all)
    );
    let at = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    all[at..].to_vec()
}

fn pct(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02x}")).collect()
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
    http_get(
        addr,
        &format!(
            "/announce?info_hash={}&peer_id={}&port={port}&uploaded=0&downloaded=0&left={left}{extra}",
            pct(&ih),
            pct(peer_id)
        ),
    )
}

/// (port, ...) of the compact IPv4 peers of an announce reply.
fn ports4(peers: &[u8]) -> Vec<u16> {
    peers
        .chunks(6)
        .map(|p| u16::from_be_bytes([p[4], p[5]]))
        .collect()
}

fn ports6(peers: &[u8]) -> Vec<u16> {
    peers
        .chunks(18)
        .map(|p| u16::from_be_bytes([p[16], p[17]]))
        .collect()
}

const A: [u8; 20] = [0xa1; 20];
const B: [u8; 20] = [0xb2; 20];
const C: [u8; 20] = [0xc3; 20];
const SEEDER_ID: &[u8; 20] = b"-XX0001-seeder-id-01";

#[test]
fn a_sigterm_restart_keeps_peers_counts_ids_and_connection_ids() {
    let d = TmpDir::new("restart");
    let state = d.path("shoal.state");
    let p = Proc::start(&state, &[]);
    assert!(p.seen.join("\n").contains("starting empty"));

    // IPv4: a seeder that completed and a leecher on A.
    let mut seed4 = Client::new("127.0.0.1:0", p.udp4);
    seed4.connect();
    seed4.announce(A, Event::Completed, 0, 0);
    let mut leech4 = Client::new("127.0.0.1:0", p.udp4);
    leech4.connect();
    leech4.announce(A, Event::Started, 100, 0);
    // IPv6: a seeder on B.
    let mut seed6 = Client::new("[::1]:0", p.udp6);
    seed6.connect();
    seed6.announce(B, Event::Completed, 0, 0);
    // HTTP: a seeder with its peer id on C.
    http_announce(p.http, C, SEEDER_ID, 7001, 0, "&event=completed");
    let before = seed4.scrape(&[A, B, C]);
    assert_eq!(before, vec![(1, 1, 1), (1, 1, 0), (1, 1, 0)]);
    let old_id = seed4.connection_id;

    let log = p.terminate();
    assert!(log.contains("state written to"), "{log}");
    assert!(log.contains("4 peers"), "{log}");
    let mode = std::fs::metadata(&state).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the file holds the connection-id key");

    let mut p = Proc::start(&state, &[]);
    let loaded = p.wait_for("state loaded from");
    assert!(
        loaded.contains("3 torrents, 4 peers (1 HTTP peer ids)"),
        "{loaded}"
    );
    assert_eq!(p.metric("shoal_state_loaded_peers"), 4);

    // The id issued before the restart is accepted by the new process.
    seed4.server = p.udp4;
    assert_eq!(seed4.connection_id, old_id);
    assert_eq!(seed4.scrape(&[A, B, C]), before, "the same counts");

    // A newcomer on each family finds the peers only the snapshot knew.
    let mut new4 = Client::new("127.0.0.1:0", p.udp4);
    new4.connect();
    let got = new4.announce(A, Event::Started, 100, 50);
    assert_eq!((got.seeders, got.leechers), (1, 2));
    let mut want = vec![seed4.port(), leech4.port()];
    want.sort();
    let mut ports = ports4(&got.peers);
    ports.sort();
    assert_eq!(ports, want);
    let mut new6 = Client::new("[::1]:0", p.udp6);
    new6.connect();
    let got = new6.announce(B, Event::Started, 100, 50);
    assert_eq!(ports6(&got.peers), vec![seed6.port()]);
    // The HTTP seeder comes back with its peer id (non-compact reply).
    let body = http_announce(p.http, C, b"-XX0001-newcomer-002", 7002, 100, "&compact=0");
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("-XX0001-seeder-id-01"), "{text}");
    assert!(text.contains("i7001e"), "{text}");
    p.terminate();
}

#[test]
fn a_corrupt_or_truncated_file_is_moved_aside_and_shoal_starts_empty() {
    let d = TmpDir::new("corrupt");
    let state = d.path("shoal.state");
    // A real snapshot with one peer, then truncated by one byte.
    let p = Proc::start(&state, &[]);
    let mut c = Client::new("127.0.0.1:0", p.udp4);
    c.connect();
    c.announce(A, Event::Started, 0, 0);
    p.terminate();
    let bytes = std::fs::read(&state).unwrap();
    for (name, bad) in [
        ("truncated", bytes[..bytes.len() - 1].to_vec()),
        ("foreign", b"not a state file at all, just text\n".to_vec()),
    ] {
        std::fs::write(&state, &bad).unwrap();
        let mut p = Proc::start(&state, &[]);
        let warn = p.wait_for("refused");
        assert!(warn.contains("moved aside"), "{name}: {warn}");
        let aside = d.files("shoal.state.corrupt-");
        assert_eq!(aside.len(), 1, "{name}: {aside:?}");
        assert_eq!(std::fs::read(&aside[0]).unwrap(), bad, "{name}: kept as is");
        std::fs::remove_file(&aside[0]).unwrap();
        assert!(!state.exists());
        let mut c = Client::new("127.0.0.1:0", p.udp4);
        c.connect();
        assert_eq!(c.scrape(&[A]), vec![(0, 0, 0)], "{name}: started empty");
        assert_eq!(p.metric("shoal_state_loaded_peers"), 0);
        let log = p.terminate();
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
    let p = Proc::start(&state, &["--state-interval", "1"]);
    let mut c = Client::new("127.0.0.1:0", p.udp4);
    c.connect();
    c.announce(A, Event::Started, 0, 0);
    // Written while running (no SIGTERM), with the peer in it.
    until("a periodic write with the peer", || {
        p.metric("shoal_state_last_write_peers") == 1
    });
    let first = p.metric("shoal_state_writes_total");
    assert!(first >= 1);
    until("another periodic write", || {
        p.metric("shoal_state_writes_total") > first
    });
    assert_eq!(p.metric("shoal_state_write_failures_total"), 0);
    let loaded = shoal::snapshot::load(&state, shoal::time::unix_now(), 3600)
        .unwrap()
        .unwrap();
    assert_eq!(loaded.counts(), (1, 1));
    p.terminate();
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
    let mut t = Client::new("127.0.0.1:0", addr);
    t.connect();
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
