//! The announce interval under load, on the binary as an operator runs it:
//! a flood that overflows a small socket buffer makes the worker hand out a
//! longer interval (in `/metrics`, in the replies, in the log); once the
//! flood stops the interval comes back to `--interval`. The stats line
//! shows it too.
//!
//! Every wait is on a metric or a reply, with a bound; the flood is bounded
//! in time and in datagrams.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{metric, Client, Proc, Role};
use shoal::wire::udp::{self, AnnounceRequest, Event, Response};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const INTERVAL: &str = "shoal_announce_interval_seconds{worker=\"0\"}";
/// Longest the flood runs, whatever happens.
const FLOOD_FOR: Duration = Duration::from_secs(40);
/// Most datagrams one flooding thread sends.
const FLOOD_MAX: u64 = 40_000_000;
/// Bound on the interval's way back: hold until the clients told the
/// raised interval return (6 s), the filter's fall (about 10 s), then
/// 0.2 s per s from 6 s down to 2 s (20 s); three times that.
const RETURN_WITHIN: Duration = Duration::from_secs(100);

/// Threads sending connect requests to `to` as fast as they can until
/// `stop` is set, [`FLOOD_FOR`] passes or each has sent [`FLOOD_MAX`].
fn flood(
    to: SocketAddr,
    threads: usize,
    stop: &Arc<AtomicBool>,
    sent: &Arc<AtomicU64>,
) -> Vec<JoinHandle<()>> {
    (0..threads)
        .map(|i| {
            let (stop, sent) = (Arc::clone(stop), Arc::clone(sent));
            std::thread::spawn(move || {
                let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
                let mut req = [0u8; 16];
                udp::write_connect_request(&mut req, i as u32).unwrap();
                let end = Instant::now() + FLOOD_FOR;
                let mut n = 0u64;
                while n < FLOOD_MAX && !stop.load(Ordering::Relaxed) {
                    // The replies are never read: this socket's own buffer
                    // overflows too, which is the kernel's business, not shoal's.
                    let _ = sock.send_to(&req, to);
                    n += 1;
                    if n.is_multiple_of(4096) && Instant::now() > end {
                        break;
                    }
                }
                sent.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect()
}

/// An announce that may be dropped in the flood: sent again every 100 ms,
/// at most 300 times. Its reply's interval.
fn announce_through(c: &mut Client, info_hash: [u8; 20]) -> u32 {
    c.sock
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let port = c.port();
    for _ in 0..300 {
        let tx = c.next_tx();
        let req = AnnounceRequest {
            left: 0,
            num_want: 0,
            event: Event::None,
            ..AnnounceRequest::new(c.connection_id, tx, info_hash, [9; 20], port)
        };
        let mut buf = [0u8; 128];
        let n = udp::write_announce_request(&mut buf, &req, b"").unwrap();
        c.sock.send_to(&buf[..n], c.server).unwrap();
        let deadline = Instant::now() + Duration::from_millis(100);
        let mut reply = [0u8; 1500];
        while Instant::now() < deadline {
            let Ok(len) = c.sock.recv(&mut reply) else {
                break;
            };
            if let Ok(Response::Announce {
                transaction_id,
                interval,
                ..
            }) = udp::parse_response(&reply[..len])
            {
                if transaction_id == tx {
                    return interval;
                }
            }
        }
    }
    panic!("no announce got through the flood in 300 tries");
}

/// Wait until `what` holds of the interval metric, at most `bound`.
fn wait_interval(
    metrics: SocketAddr,
    bound: Duration,
    what: &str,
    cond: impl Fn(u64) -> bool,
) -> u64 {
    let deadline = Instant::now() + bound;
    loop {
        let v = metric(metrics, INTERVAL);
        if cond(v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "the interval never {what}: still {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_flood_raises_the_interval_and_calm_brings_it_back() {
    let mut p = Proc::start(&[
        "--udp",
        "127.0.0.1:0",
        "--metrics",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--interval",
        "2",
        "--max-interval",
        "6",
        "--interval-jitter",
        "0",
        // The kernel rounds it up to its minimum: a few datagrams.
        "--socket-buffer",
        "4096",
        "--stats-interval",
        "1",
        "--log",
        "info",
    ]);
    let udp = p.addr(Role::Udp);
    let metrics = p.addr(Role::Metrics);
    assert_eq!(metric(metrics, INTERVAL), 2);
    let line = p.wait_for("stats: ");
    assert!(line.contains("; interval 2 s"), "{line}");
    let mut c = Client::connected(udp);
    assert_eq!(c.announce([1; 20], Event::Started, 0, 0).interval, 2);
    let drops_before = p.metric("shoal_udp_receive_drops_total");

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let threads = flood(udp, 2, &stop, &sent);
    let raised = wait_interval(metrics, Duration::from_secs(30), "rose", |v| v > 2);
    // A reply in the flood carries the raised interval (it may rise further
    // meanwhile, never past --max-interval).
    let replied = announce_through(&mut c, [1; 20]);
    assert!(
        (raised..=6).contains(&u64::from(replied)),
        "{raised} then {replied}"
    );
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let drops = p.metric("shoal_udp_receive_drops_total") - drops_before;
    assert!(
        drops > 0,
        "the flood overflowed nothing ({} sent)",
        sent.load(Ordering::Relaxed)
    );
    let changed =
        p.wait_for("announce interval (--interval 2 s, --max-interval 6 s): worker 0 2 s -> ");
    assert!(changed.contains("receive drops"), "{changed}");
    eprintln!(
        "flood: {} datagrams, {drops} dropped; interval {raised} s in /metrics, {replied} s in a reply; {changed}",
        sent.load(Ordering::Relaxed)
    );

    // Calm: back to the base, and so are the replies.
    wait_interval(metrics, RETURN_WITHIN, "came back", |v| v == 2);
    c.sock
        .set_read_timeout(Some(common::REPLY_TIMEOUT))
        .unwrap();
    assert_eq!(c.announce([1; 20], Event::None, 0, 0).interval, 2);
    let log = p.stop(libc::SIGTERM);
    assert!(!log.contains("panicked"), "{log}");
}
