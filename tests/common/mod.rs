//! Helpers shared by the integration tests: servers on ephemeral loopback
//! ports (in process, or the binary as an operator runs it), a blocking
//! BEP 15 client that speaks raw bytes, one-shot HTTP requests, scratch
//! directories, and bounded waits.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

mod fs;
mod http;
mod proc;
mod udp;

pub use fs::TmpDir;
pub use http::{
    announce_path, assert_closed, connect, get, hex, http_get, metric, metrics_text, pct,
    read_response, request, Resp,
};
pub use proc::Proc;
pub use shoal::net::Role;
pub use udp::{Announced, Client};

use shoal::server::{Config, Running, Server};
use shoal::time::Clock;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Upper bound for any one reply: a test that waits this long has failed.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// Upper bound for anything that takes several steps of another thread or
/// process: a start-up, a reload, a sweep, a log line, an exit.
pub const WAIT: Duration = Duration::from_secs(20);

/// The shoal binary with no `SHOAL_*` or `RUST_LOG` from the test's own
/// environment, so a developer's settings cannot change what a test sees.
pub fn shoal_command() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_shoal"));
    c.env_remove("RUST_LOG");
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("SHOAL_")) {
        c.env_remove(k);
    }
    c
}

pub fn start(config: Config) -> Running {
    Server::bind(config).expect("bind").spawn().expect("spawn")
}

/// A server whose clock the test moves by hand (seconds).
pub fn start_with_manual_clock(config: Config) -> (Running, Arc<AtomicU32>) {
    let (clock, secs) = Clock::manual();
    let server = Server::bind_with_clock(config, clock).expect("bind");
    (server.spawn().expect("spawn"), secs)
}

/// Wait until `cond` holds, checking every few milliseconds; panics naming
/// `what` after [`WAIT`]. For effects of another thread or process (the
/// control thread's sweeps, a reload, a periodic write) that no reply
/// announces: each check is a real look at the server's state, the pause
/// between checks only spares the CPU.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Wait until the control thread has done a turn of its periodic work (the
/// sweeps) at tracker second `secs` or later: its turn runs that work before
/// it answers `/metrics`, and `shoal_uptime_seconds` is the turn's clock.
/// `metrics` is a `--metrics` listener of the server.
pub fn control_at(metrics: SocketAddr, secs: u32) {
    wait_until(&format!("the control thread reached t={secs}"), || {
        metric(metrics, "shoal_uptime_seconds") >= u64::from(secs)
    });
}

/// The peers of a compact IPv4 list (BEP 23: 4 address bytes, 2 port bytes).
pub fn peers4(bytes: &[u8]) -> Vec<SocketAddr> {
    assert_eq!(bytes.len() % 6, 0, "6-byte IPv4 peers: {bytes:?}");
    bytes
        .chunks(6)
        .map(|c| SocketAddr::from(([c[0], c[1], c[2], c[3]], u16::from_be_bytes([c[4], c[5]]))))
        .collect()
}

/// The peers of a compact IPv6 list (BEP 7: 16 address bytes, 2 port bytes).
pub fn peers6(bytes: &[u8]) -> Vec<SocketAddr> {
    assert_eq!(bytes.len() % 18, 0, "18-byte IPv6 peers: {bytes:?}");
    bytes
        .chunks(18)
        .map(|c| {
            let ip: [u8; 16] = c[..16].try_into().unwrap();
            SocketAddr::from((ip, u16::from_be_bytes([c[16], c[17]])))
        })
        .collect()
}
