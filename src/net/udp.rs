//! The BEP 15 tracker's datagrams on a packet worker: receive a batch,
//! answer each through the core, count and publish what it says happened,
//! send the replies in a batch.

use super::count;
use super::worker::publish;
use crate::cluster::Outbox;
use crate::limit::RateLimiter;
use crate::stats::{Counters, Dropped, Proto, Reject};
use crate::time::Now;
use crate::tracker::{Tracker, Worker};
use mio::net::UdpSocket;
use std::io;
use std::net::SocketAddr;

/// Datagrams handled per socket per loop turn before other sockets and
/// housekeeping get a turn.
pub(crate) const UDP_BUDGET: usize = 512;
/// How many datagrams of a receive batch ahead of the one being answered the
/// loop prefetches the swarm's lines for ([`Tracker::prefetch_udp`]): a DRAM
/// miss lands well within the microsecond one request takes, and a few
/// requests' lines are little next to the caches. 4 is the only distance
/// measured (`benches/profile.sh`, BENCHMARKS.md).
const PREFETCH_AHEAD: usize = 4;

/// What answering a datagram needs besides its bytes: the core, the
/// worker's own state, and where its outcome is counted and published.
#[derive(Debug)]
pub struct Answer<'a> {
    pub tracker: &'a Tracker,
    pub worker: &'a mut Worker,
    pub counters: &'a Counters,
    pub outbox: Option<&'a Outbox>,
    pub rate_limiter: Option<&'a RateLimiter>,
}

impl Answer<'_> {
    /// Answer one datagram into `out`, as a packet worker does: the reply's
    /// length, if one is to be sent. Over its rate, a source gets silence.
    #[inline]
    pub fn answer(
        &mut self,
        now: Now,
        src: SocketAddr,
        req: &[u8],
        out: &mut [u8],
    ) -> Option<usize> {
        if self
            .rate_limiter
            .is_some_and(|l| !l.allow(src.ip(), now.ms()))
        {
            self.counters.reject(Reject::RateLimited);
            return None;
        }
        let handled = self.tracker.handle_udp(self.worker, now, src, req, out);
        let reply = handled.reply_len();
        let fam = count::family_of(src);
        count::outcome(
            self.counters,
            Proto::Udp,
            fam,
            &handled.outcome,
            reply.is_some(),
        );
        publish(self.outbox, now, &handled.outcome, self.worker);
        reply
    }
}

/// Per-worker UDP buffers: batched syscalls on Linux, one datagram at a time elsewhere.
pub(crate) struct UdpIo {
    #[cfg(target_os = "linux")]
    batch: super::mmsg::Batch,
    #[cfg(not(target_os = "linux"))]
    bufs: Box<([u8; 2048], [u8; 2048])>,
}

impl UdpIo {
    pub(crate) fn new() -> UdpIo {
        UdpIo {
            #[cfg(target_os = "linux")]
            batch: super::mmsg::Batch::new(),
            #[cfg(not(target_os = "linux"))]
            bufs: Box::new(([0; 2048], [0; 2048])),
        }
    }

    /// Receive and answer datagrams until the socket is empty or the budget is
    /// spent. Returns whether datagrams may remain.
    #[cfg(target_os = "linux")]
    pub(crate) fn drain(&mut self, sock: &UdpSocket, a: &mut Answer<'_>, now: Now) -> bool {
        use super::mmsg;
        use std::os::fd::AsRawFd;
        let fd = sock.as_raw_fd();
        let batch = &mut self.batch;
        let tracker = a.tracker;
        for _ in 0..UDP_BUDGET / mmsg::BATCH {
            let n = match batch.rx.recv(fd) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug!("udp recv error: {e}");
                    return false;
                }
            };
            let mut received = 0;
            // The swarm lines of datagram i + PREFETCH_AHEAD are fetched
            // while datagram i is answered.
            let ahead = |rx: &mmsg::RxBatch, i| {
                if let Some(req) = rx.payload(i) {
                    tracker.prefetch_udp(req);
                }
            };
            (0..PREFETCH_AHEAD).for_each(|i| ahead(&batch.rx, i));
            for i in 0..n {
                ahead(&batch.rx, i + PREFETCH_AHEAD);
                let Some((req, src)) = batch.rx.received(i) else {
                    continue;
                };
                received += req.len();
                // The reply batch is flushed after every receive batch, and both
                // hold BATCH datagrams, so a reply buffer is always free here.
                let Some(out) = batch.tx.reply_buf() else {
                    break;
                };
                if let Some(len) = a.answer(now, src, req, out) {
                    batch.tx.push_reply(len, src);
                }
            }
            let flushed = batch.tx.flush(fd);
            let c = a.counters;
            c.bytes(Proto::Udp, received, flushed.bytes);
            for _ in 0..flushed.would_block {
                c.dropped(Dropped::SendWouldBlock);
            }
            for _ in 0..flushed.failed {
                c.dropped(Dropped::SendError);
            }
            // A short batch means the queue was empty when we asked; a later
            // datagram raises a new readiness event.
            if n < mmsg::BATCH {
                return false;
            }
        }
        true
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn drain(&mut self, sock: &UdpSocket, a: &mut Answer<'_>, now: Now) -> bool {
        let (buf, out) = &mut *self.bufs;
        let mut errors = 0;
        for _ in 0..UDP_BUDGET {
            match sock.recv_from(buf) {
                Ok((n, src)) => {
                    let sent = match a.answer(now, src, &buf[..n], out) {
                        Some(m) => send_to(sock, &out[..m], src, a.counters),
                        None => 0,
                    };
                    a.counters.bytes(Proto::Udp, n, sent);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::debug!("udp recv error: {e}");
                    errors += 1;
                    if errors > 8 {
                        return true;
                    }
                }
            }
        }
        true
    }
}

/// `send_to`, retried on `EINTR`; failures counted, never fatal. Returns bytes sent.
pub(crate) fn send_to(
    sock: &UdpSocket,
    bytes: &[u8],
    dst: SocketAddr,
    counters: &Counters,
) -> usize {
    loop {
        match sock.send_to(bytes, dst) {
            Ok(n) => return n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                counters.dropped(Dropped::SendWouldBlock);
                return 0;
            }
            Err(e) => {
                log::debug!("udp send to {dst} failed: {e}");
                counters.dropped(Dropped::SendError);
                return 0;
            }
        }
    }
}
