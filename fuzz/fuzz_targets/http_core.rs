//! One HTTP connection's bytes through the HTTP tracker core, read the way
//! `net/http.rs` reads them: `wire::http::parse_head` on the buffer, then
//! `Tracker::handle_http` for each complete head, pipelined requests in turn,
//! until a head is incomplete or bad, has a body, or closes the connection.
//!
//! Input: `now` (4 bytes, big-endian), a control byte (bits 0-4: the client's
//! address, see `shoal_fuzz::source`; bit 5: trust an `X-Forwarded-For` header
//! for the client address; bit 6: the server is shutting down; bit 7: trust
//! that header from any peer, not only loopback, and rate-limit at 2 requests
//! a second), then the bytes the client sent.
//!
//! Checks on every reply, beyond "no panic": it is one complete HTTP/1.1
//! response whose `Content-Length` is the body that follows (no body for HEAD).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal::limit::{LimitConfig, RateLimiter};
use shoal::stats::{Counters, Registry};
use shoal::tracker::http::HttpEnv;
use shoal::tracker::Worker;
use shoal::wire::http::{self, Method};
use shoal_fuzz::{small_tracker, source, take_u32};
use std::sync::Arc;

/// What the net layer buffers for one request head (`net::http::MAX_HEAD`).
const MAX_HEAD: usize = 8 * 1024;

fuzz_target!(|data: &[u8]| {
    let (now, rest) = take_u32(data);
    let Some((&ctl, mut stream)) = rest.split_first() else {
        return;
    };
    let tracker = small_tracker();
    let counters = Arc::new(Counters::default());
    let registry = Registry {
        workers: vec![counters.clone()],
        rendezvous: None,
        max_peers: 0,
        cluster: None,
    };
    let mut worker = Worker::new(counters);
    // Bit 7: trust every peer's client-address header (else loopback
    // only) and rate-limit at 2 requests a second.
    let mut limits = LimitConfig::default();
    if ctl & 0x80 != 0 {
        limits.trusted_proxies = vec!["::/0".parse().unwrap()];
    }
    let limiter = (ctl & 0x80 != 0).then(|| RateLimiter::new(2, 2, 64));
    let env = HttpEnv {
        now,
        registry: &registry,
        uptime_secs: u64::from(now),
        healthy: ctl & 0x40 == 0,
        client_ip_header: (ctl & 0x20 != 0).then_some("X-Forwarded-For"),
        trusted_proxies: &limits.trusted_proxies,
        rate_limiter: limiter.as_ref(),
        now_ms: u64::from(now) * 1000,
    };
    let peer = source(ctl);
    let (mut out, mut scratch) = (Vec::new(), Vec::new());
    loop {
        let buf = &stream[..stream.len().min(MAX_HEAD)];
        let Ok(Some((head, used))) = http::parse_head(buf) else {
            break;
        };
        assert!(used > 0 && used <= buf.len());
        if head.content_length > 0 {
            break; // net/ answers 413 and closes
        }
        out.clear();
        let keep_alive =
            tracker.handle_http(&mut worker, &env, peer, &head, &mut out, &mut scratch);
        assert_eq!(keep_alive, head.keep_alive);
        check_reply(&out, head.method == Method::Head);
        if !keep_alive {
            break;
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
