//! One HTTP connection's bytes through a packet worker's HTTP tracker, read
//! the way `net/conn.rs` reads them: `wire::http::parse_head` on the buffer,
//! then the worker's handler (`net::serve::TrackerHttp`: routes, rate limit,
//! client address, the core) for each complete head, pipelined requests in
//! turn, until a head is incomplete or bad, the connection closes or is
//! handed over.
//!
//! Input: `now` (4 bytes, big-endian), a control byte (bits 0-4: the client's
//! address, see `shoal_fuzz::source`; bit 5: trust an `X-Forwarded-For` header
//! for the client address; bit 6: `--http-metrics`, operator paths handed to
//! the control thread; bit 7: trust that header from any peer, not only
//! loopback, and rate-limit at 2 requests a second), then the bytes the
//! client sent.
//!
//! Checks on every reply, beyond "no panic": it is one complete HTTP/1.1
//! response whose `Content-Length` is the body that follows (no body for
//! HEAD); a hand-over writes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal::limit::{LimitConfig, RateLimiter};
use shoal::net::conn::{Handler, Request, Served};
use shoal::net::serve::{ClientAddr, TrackerHttp};
use shoal::net::Role;
use shoal::stats::Counters;
use shoal::time::Now;
use shoal::tracker::Worker;
use shoal::wire::http::{self, Method, MAX_HEAD};
use shoal_fuzz::{small_tracker, source, take_u32};

fuzz_target!(|data: &[u8]| {
    let (now, rest) = take_u32(data);
    let Some((&ctl, mut stream)) = rest.split_first() else {
        return;
    };
    let tracker = small_tracker();
    let counters = Counters::default();
    let mut worker = Worker::new();
    // Bit 7: trust every peer's client-address header (else loopback
    // only) and rate-limit at 2 requests a second.
    let mut limits = LimitConfig::default();
    if ctl & 0x80 != 0 {
        limits.trusted_proxies = vec!["::/0".parse().unwrap()];
    }
    let limiter = (ctl & 0x80 != 0).then(|| RateLimiter::new(2, 2, 64));
    let client = ClientAddr {
        header: (ctl & 0x20 != 0).then(|| "X-Forwarded-For".to_string()),
        trusted: limits.trusted_proxies,
    };
    let mut scratch = Vec::new();
    let mut handler = TrackerHttp {
        tracker: &tracker,
        worker: &mut worker,
        counters: &counters,
        outbox: None,
        client: &client,
        rate_limiter: limiter.as_ref(),
        operator_paths: ctl & 0x40 != 0,
        scratch: &mut scratch,
    };
    let peer = source(ctl);
    let mut out = Vec::new();
    loop {
        let buf = &stream[..stream.len().min(MAX_HEAD)];
        let Ok(Some((head, used))) = http::parse_head(buf) else {
            break;
        };
        assert!(used > 0 && used <= buf.len());
        out.clear();
        let req = Request {
            role: Role::Http,
            peer,
            buf,
            head: &head,
            head_len: used,
            now: Now::from_secs(now),
        };
        match handler.serve(&req, &mut out) {
            Served::Done { used: n, keep_alive } => {
                assert_eq!(n, used, "a tracker request is its head alone");
                check_reply(&out, head.method == Method::Head);
                if !keep_alive {
                    break;
                }
            }
            Served::HandOff => {
                assert!(out.is_empty(), "a hand-over answers nothing");
                break;
            }
            Served::Incomplete => panic!("the tracker reads no bodies"),
        }
        stream = &stream[used..];
    }
});

/// `out` is exactly one response: a complete head, then `Content-Length` bytes
/// (none after a HEAD request, whose length describes the GET body).
fn check_reply(out: &[u8], head_request: bool) {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut r = httparse::Response::new(&mut headers);
    let Ok(httparse::Status::Complete(head_len)) = r.parse(out) else {
        panic!("incomplete or malformed response head: {out:?}");
    };
    assert_eq!(r.version, Some(1));
    let length = r
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok()?.parse::<usize>().ok())
        .expect("a Content-Length header");
    let body = out.len() - head_len;
    if head_request {
        assert_eq!(body, 0, "a HEAD reply has no body");
    } else {
        assert_eq!(body, length, "Content-Length is the body's length");
    }
}
