//! A sequence of datagrams through the whole UDP tracker core
//! (`Tracker::handle_udp`), with the clock and the source addresses taken from
//! the input.
//!
//! Input: `now` (4 bytes, big-endian), then records `[ctl] [len] [len bytes]`
//! (the last one may be short). `ctl` picks the source address and how far the
//! clock moves first (see `shoal_fuzz::source` and `advance`); bit 5 overwrites
//! bytes 0..8 with the connection id the tracker issues to that source at that
//! time, so fuzzing gets past the id check into announce and scrape.
//!
//! Each datagram is also looked ahead at (`Tracker::prefetch_udp`) first.
//! Checks on every outcome, beyond "no panic": a dropped request has no
//! reply, and a reply fits the buffer and one
//! unfragmented datagram of the source's family, parses as a BEP 15 response,
//! echoes the request's transaction id, and an announce reply carries whole
//! compact peers of the source's family (6 bytes IPv4, 18 bytes IPv6).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal::time::Now;
use shoal::tracker::{Outcome, Worker, MAX_DATAGRAM_V4, MAX_DATAGRAM_V6};
use shoal::wire::udp::{self, Response};
use shoal_fuzz::{advance, small_tracker, source, take_u32};

fuzz_target!(|data: &[u8]| {
    let (mut now, mut rest) = take_u32(data);
    let tracker = small_tracker();
    let mut worker = Worker::new();
    let mut out = [0u8; 2048];
    let mut req = Vec::with_capacity(256);
    while let [ctl, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        req.clear();
        req.extend_from_slice(&tail[..n]);
        rest = &tail[n..];

        now = now.wrapping_add(advance(*ctl));
        let src = source(*ctl);
        let t = Now::from_secs(now);
        if ctl & 0x20 != 0 && req.len() >= 8 {
            let id = tracker.connection_id(t, src.ip().to_canonical());
            req[..8].copy_from_slice(&id.to_be_bytes());
        }
        // As the net loop does for the datagrams after the one it answers.
        tracker.prefetch_udp(&req);
        let handled = tracker.handle_udp(&mut worker, t, src, &req, &mut out);
        let Some(len) = handled.reply_len() else {
            continue;
        };
        assert!(!matches!(handled.outcome, Outcome::Dropped(_)));
        let v4 = src.ip().to_canonical().is_ipv4();
        assert!(len <= out.len());
        assert!(len <= if v4 { MAX_DATAGRAM_V4 } else { MAX_DATAGRAM_V6 });
        let reply = udp::parse_response(&out[..len]).expect("the core writes valid frames");
        let header = udp::parse_header(&req).expect("only a full header is answered");
        assert_eq!(reply.transaction_id(), header.transaction_id);
        if let Response::Announce { peers, .. } = reply {
            let stride = if v4 { udp::PEER4_LEN } else { udp::PEER6_LEN };
            assert_eq!(
                peers.len() % stride,
                0,
                "whole peers of the source's family"
            );
        }
    }
});
