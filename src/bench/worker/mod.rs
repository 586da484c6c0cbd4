//! One load-generating thread and its sockets.
//!
//! Each socket keeps at most `window` requests outstanding, tracked in a slot
//! table: the transaction id is `(sequence << SLOT_BITS | slot) ^ salt`, so a
//! reply finds its slot (send time, kind, scrape size) without a map, and a
//! late reply to a reused slot is told apart by the sequence bits. A slot not
//! answered within the timeout is counted lost and reused. Connection ids are
//! per socket (trackers bind them to the client IP), obtained by connect
//! requests and refreshed every minute, as real clients do.
//!
//! The loop sends while windows have room, drains every socket to
//! `WouldBlock`, and only when a few turns in a row do nothing does it sleep
//! in `poll` (≤ 1 ms) until a reply arrives. Nothing in the loop allocates:
//! requests are written into one stack buffer, the population and the slot
//! tables are built before the clock starts.
//!
//! After the run, [`Worker::run`] can withdraw the simulated
//! peers the worker announced: a `stopped` announce for each (same peer id,
//! key, port and source address), paced to a rate and bounded in time, each
//! lost one sent again, so a target is left as it was found rather than with
//! the population in its swarms until the peer timeout.

use super::hist::Histogram;
use super::population::{self, Peer, SEEDER, STARTED};
use crate::wire::udp::{self, AnnounceRequest, Event, Response};
use fastrand::Rng;
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Request kinds, also indices into per-kind counters.
pub const CONNECT: usize = 0;
pub const ANNOUNCE: usize = 1;
pub const SCRAPE: usize = 2;
const FREE: u8 = u8::MAX;

/// Low transaction-id bits that name the slot; the window is at most 2^12.
pub const SLOT_BITS: u32 = 12;
const SLOT_MASK: u32 = (1 << SLOT_BITS) - 1;
/// Most hashes in one scrape request (BEP 15: "up to about 74").
pub const MAX_SCRAPE: usize = 74;
/// A connection id is refreshed after a minute (BEP 15: clients may use it for one).
const REFRESH_NS: u64 = 60_000_000_000;
/// Turns without progress before sleeping in `poll`.
const SPIN_TURNS: u32 = 16;
/// Longest wait for replies in flight after the run's duration: replies on
/// loopback take microseconds, so this only matters for a silent tracker.
const MAX_DRAIN: Duration = Duration::from_millis(200);

/// What every worker reads; fixed before the run.
#[derive(Debug)]
pub struct Settings {
    pub target: SocketAddr,
    /// Weights: connect, announce, scrape.
    pub mix: [u32; 3],
    /// `num_want` sent with announces (−1 = the tracker's default).
    pub numwant: i32,
    /// Most hashes per scrape; each scrape asks 1..=this many.
    pub scrape_max: usize,
    pub seed: u64,
    pub timeout: Duration,
    pub window: usize,
    /// BEP 41 URL data sent with each announce (the target URL's path).
    pub url_data: Vec<u8>,
    pub seeder_ratio: f64,
    /// Set by the main thread to end the send phase early (the deadline ends it otherwise).
    pub stop: AtomicBool,
}

/// Counters a worker publishes for the progress line (single writer each).
#[derive(Debug, Default)]
pub struct Live {
    pub sent: AtomicU64,
    pub replies: AtomicU64,
    pub timeouts: AtomicU64,
}

/// A worker's final counts; the report embeds their sum.
#[derive(Debug, Clone)]
pub struct Totals {
    /// Requests sent, by kind: [`CONNECT`], [`ANNOUNCE`], [`SCRAPE`].
    pub sent: [u64; 3],
    /// Replies to our requests (error frames included), by kind.
    pub replies: [u64; 3],
    /// BEP 15 error frames (action 3) answering one of our requests.
    pub error_frames: u64,
    /// Replies with our transaction id but the wrong action or length.
    pub malformed: u64,
    /// Datagrams matching no outstanding request (late after a timeout), or
    /// that `wire` cannot decode (garbage: too short for its action, unknown
    /// action), whose request then times out.
    pub unexpected: u64,
    /// Requests never answered within the timeout.
    pub timeouts: u64,
    /// Sends or receives refused by the OS (ICMP port unreachable: nothing listening).
    pub refused: u64,
    /// Other socket errors.
    pub io_errors: u64,
    /// Peers received in announce replies.
    pub peers_received: u64,
    /// Round-trip latency of answered requests, nanoseconds.
    pub latency: Histogram,
}

impl Totals {
    /// All zero. Fails only if the histogram cannot be made (a bug in its bounds).
    pub fn new() -> Result<Totals, hdrhistogram::CreationError> {
        Ok(Totals {
            sent: [0; 3],
            replies: [0; 3],
            error_frames: 0,
            malformed: 0,
            unexpected: 0,
            timeouts: 0,
            refused: 0,
            io_errors: 0,
            peers_received: 0,
            latency: Histogram::new()?,
        })
    }

    pub fn merge(&mut self, o: &Totals) -> Result<(), hdrhistogram::AdditionError> {
        for k in 0..3 {
            self.sent[k] += o.sent[k];
            self.replies[k] += o.replies[k];
        }
        self.error_frames += o.error_frames;
        self.malformed += o.malformed;
        self.unexpected += o.unexpected;
        self.timeouts += o.timeouts;
        self.refused += o.refused;
        self.io_errors += o.io_errors;
        self.peers_received += o.peers_received;
        self.latency.merge(&o.latency)
    }

    /// Count a socket error other than EINTR: `WouldBlock` is no error,
    /// "connection refused" (an ICMP port unreachable) is counted apart.
    fn count_io_error(&mut self, e: &io::Error) {
        match e.kind() {
            io::ErrorKind::WouldBlock => {}
            io::ErrorKind::ConnectionRefused => self.refused += 1,
            _ => self.io_errors += 1,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    sent_ns: u64,
    tx: u32,
    /// The peer announced (index into the worker's peers), for an announce.
    peer: u32,
    /// Hashes asked, for a scrape.
    hashes: u16,
    kind: u8,
}

const EMPTY: Slot = Slot {
    sent_ns: 0,
    tx: 0,
    peer: 0,
    hashes: 0,
    kind: FREE,
};

/// How a withdrawal went, for one worker or summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Withdrawal {
    /// Peers the run had announced and not stopped.
    pub peers: u64,
    /// Of those, withdrawn: the tracker answered their `stopped`.
    pub confirmed: u64,
    /// `stopped` announces sent (a lost one is sent again).
    pub sent: u64,
    /// How long it took.
    pub elapsed: Duration,
}

impl Withdrawal {
    pub fn merge(&mut self, o: &Withdrawal) {
        self.peers += o.peers;
        self.confirmed += o.confirmed;
        self.sent += o.sent;
        self.elapsed = self.elapsed.max(o.elapsed);
    }

    /// Peers left in the target (their `stopped` never answered in time).
    pub fn left(&self) -> u64 {
        self.peers - self.confirmed
    }
}

/// The withdrawal's bounds: at most `rate` `stopped`s per second (per
/// worker), and no sending after `within`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WithdrawLimits {
    pub rate: u64,
    pub within: Duration,
}

/// Pacing of the withdrawal: `stopped`s sent so far against the rate.
#[derive(Debug, Clone, Copy)]
struct Pace {
    rate: u64,
    sent: u64,
}

impl Pace {
    /// Whether one more may go at `now_ns` into the withdrawal: the rate
    /// times the time so far, plus a burst of a twentieth of a second.
    fn may_send(&self, now_ns: u64) -> bool {
        let allowed = u128::from(self.rate) * u128::from(now_ns) / 1_000_000_000
            + u128::from(self.rate / 20 + 1);
        u128::from(self.sent) < allowed
    }
}

#[derive(Debug)]
struct Sock {
    io: UdpSocket,
    salt: u32,
    seq: u32,
    conn: Option<u64>,
    conn_at: u64,
    /// A connect is outstanding (so a refresh is not sent twice).
    connecting: bool,
    slots: Box<[Slot]>,
    free: Vec<u16>,
    /// Peers of this socket: indices `index, index + sockets, …` of the worker's peers.
    peers: usize,
    /// Withdrawing: the socket's peers before this one (its `k`-th is
    /// `index + k * sockets`) have been sent their `stopped`.
    cursor: usize,
}

#[derive(Debug)]
pub struct Worker {
    settings: Arc<Settings>,
    live: Arc<Live>,
    socks: Vec<Sock>,
    peers: Vec<Peer>,
    /// Global index of this worker's first peer, and the stride between its peers.
    peer_base: u64,
    peer_stride: u64,
    rng: Rng,
    poll: Poll,
    totals: Totals,
    /// Peer entry size in announce replies: 6 (IPv4) or 18 (IPv6).
    stride: usize,
    /// Set while withdrawing: announces are then `stopped`s, in peer order.
    pace: Option<Pace>,
}

impl Worker {
    /// A worker over already bound and connected sockets, driving `peers`
    /// (global indices `peer_base + k * peer_stride`).
    pub fn new(
        settings: Arc<Settings>,
        live: Arc<Live>,
        sockets: Vec<std::net::UdpSocket>,
        peers: Vec<Peer>,
        peer_base: u64,
        peer_stride: u64,
        rng: Rng,
    ) -> io::Result<Worker> {
        let poll = Poll::new()?;
        let mut rng = rng;
        let n = sockets.len();
        let mut socks = Vec::with_capacity(n);
        for (i, s) in sockets.into_iter().enumerate() {
            let mut io = UdpSocket::from_std(s);
            poll.registry()
                .register(&mut io, Token(i), Interest::READABLE)?;
            let window = settings.window.clamp(1, 1 << SLOT_BITS);
            socks.push(Sock {
                io,
                salt: rng.u32(..),
                seq: rng.u32(..),
                conn: None,
                conn_at: 0,
                connecting: false,
                slots: vec![EMPTY; window].into_boxed_slice(),
                free: (0..window as u16).rev().collect(),
                peers: peers.len() / n + usize::from(i < peers.len() % n),
                cursor: 0,
            });
        }
        let stride = if settings.target.is_ipv4() {
            udp::PEER4_LEN
        } else {
            udp::PEER6_LEN
        };
        Ok(Worker {
            settings,
            live,
            socks,
            peers,
            peer_base,
            peer_stride,
            rng,
            poll,
            totals: Totals::new().map_err(io::Error::other)?,
            stride,
            pace: None,
        })
    }

    /// Send until `end` (or the stop flag), then wait briefly (the timeout, but
    /// at most [`MAX_DRAIN`]) for replies in flight; whatever is still
    /// unanswered counts as lost. The run ends within `MAX_DRAIN` of `end`.
    /// Then, with `withdraw`, withdraw the peers the run announced (see the
    /// module's documentation); the run's totals do not count the withdrawal.
    pub fn run(
        mut self,
        start: Instant,
        end: Instant,
        withdraw: Option<WithdrawLimits>,
    ) -> (Totals, Option<Withdrawal>) {
        self.measure(start, end);
        let Some(limits) = withdraw else {
            return (self.totals, None);
        };
        let Ok(fresh) = Totals::new() else {
            return (self.totals, None);
        };
        let totals = std::mem::replace(&mut self.totals, fresh);
        (totals, Some(self.withdraw(limits)))
    }

    fn measure(&mut self, start: Instant, end: Instant) {
        let timeout_ns = self.settings.timeout.as_nanos() as u64;
        let end_ns = end.saturating_duration_since(start).as_nanos() as u64;
        let scan_every = (timeout_ns / 8).clamp(1_000_000, 10_000_000);
        let mut next_scan = 0;
        let mut drain_until: Option<u64> = None;
        let mut idle = 0;
        let mut events = Events::with_capacity(64);
        let mut buf = [0u8; 2048];
        let mut rbuf = [0u8; 8192];
        loop {
            let now = ns(start);
            if drain_until.is_none()
                && (now >= end_ns || self.settings.stop.load(Ordering::Relaxed))
            {
                drain_until = Some(now + timeout_ns.min(MAX_DRAIN.as_nanos() as u64));
            }
            let mut progress = false;
            for s in 0..self.socks.len() {
                progress |= self.receive(s, start, &mut rbuf);
                if drain_until.is_none() {
                    progress |= self.fill(s, start, &mut buf);
                }
            }
            let now = ns(start);
            if now >= next_scan {
                self.expire(now, timeout_ns);
                self.publish();
                next_scan = now + scan_every;
            }
            if let Some(until) = drain_until {
                let outstanding = self.socks.iter().any(|s| s.free.len() < s.slots.len());
                if !outstanding || now >= until {
                    self.expire(u64::MAX, 0);
                    self.publish();
                    return;
                }
            }
            if progress {
                idle = 0;
            } else {
                idle += 1;
                if idle >= SPIN_TURNS {
                    idle = 0;
                    let wait = Duration::from_nanos(next_scan.saturating_sub(now))
                        .min(Duration::from_millis(1));
                    match self.poll.poll(&mut events, Some(wait)) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => self.totals.io_errors += 1,
                    }
                }
            }
        }
    }

    /// Send a `stopped` for every peer still started, paced and bounded by
    /// `limits`, each lost one again, and wait for the answers in flight
    /// (the timeout, at most [`MAX_DRAIN`], past `within`).
    fn withdraw(&mut self, limits: WithdrawLimits) -> Withdrawal {
        let start = Instant::now();
        let peers = self.started();
        if peers == 0 {
            // Nothing announced (a silent target never gave a connection id).
            return Withdrawal::default();
        }
        self.pace = Some(Pace {
            rate: limits.rate.max(1),
            sent: 0,
        });
        for sock in &mut self.socks {
            sock.cursor = 0;
        }
        let timeout_ns = self.settings.timeout.as_nanos() as u64;
        let send_until = limits.within.as_nanos() as u64;
        let stop_at = send_until + timeout_ns.min(MAX_DRAIN.as_nanos() as u64);
        let scan_every = (timeout_ns / 8).clamp(1_000_000, 10_000_000);
        // A target that answers nothing for this long is given up on.
        let silent_limit = (timeout_ns.saturating_mul(5)).max(1_000_000_000);
        let heard = |t: &Totals| t.replies.iter().sum::<u64>() + t.unexpected + t.malformed;
        let (mut last_heard, mut heard_count) = (0, heard(&self.totals));
        let mut next_scan = 0;
        let mut events = Events::with_capacity(64);
        let mut buf = [0u8; 2048];
        let mut rbuf = [0u8; 8192];
        loop {
            let mut progress = false;
            for s in 0..self.socks.len() {
                progress |= self.receive(s, start, &mut rbuf);
                if ns(start) < send_until {
                    progress |= self.fill(s, start, &mut buf);
                }
            }
            let now = ns(start);
            if heard(&self.totals) != heard_count {
                (last_heard, heard_count) = (now, heard(&self.totals));
            } else if now.saturating_sub(last_heard) >= silent_limit {
                break;
            }
            if now >= next_scan {
                self.expire(now, timeout_ns);
                next_scan = now + scan_every;
            }
            let outstanding = self.socks.iter().any(|s| s.free.len() < s.slots.len());
            let to_send = self.socks.iter().any(|s| s.cursor < s.peers);
            if !outstanding && (!to_send || now >= send_until) || now >= stop_at {
                break;
            }
            if !progress {
                let wait = Duration::from_nanos(next_scan.saturating_sub(now))
                    .min(Duration::from_millis(1));
                if let Err(e) = self.poll.poll(&mut events, Some(wait)) {
                    if e.kind() != io::ErrorKind::Interrupted {
                        self.totals.io_errors += 1;
                    }
                }
            }
        }
        // Unanswered `stopped`s mark their peers started again: not withdrawn.
        self.expire(u64::MAX, 0);
        let sent = self.pace.take().map_or(0, |p| p.sent);
        Withdrawal {
            peers,
            confirmed: peers.saturating_sub(self.started()),
            sent,
            elapsed: start.elapsed(),
        }
    }

    /// Peers announced and not stopped.
    fn started(&self) -> u64 {
        self.peers.iter().filter(|p| p.flags & STARTED != 0).count() as u64
    }

    /// Withdrawing: the next started peer of socket `s` (an index into the
    /// worker's peers), moving its cursor past it.
    fn next_started(&mut self, s: usize) -> Option<usize> {
        let n = self.socks.len();
        let sock = &mut self.socks[s];
        while sock.cursor < sock.peers {
            let p = s + sock.cursor * n;
            sock.cursor += 1;
            if self.peers.get(p).is_some_and(|p| p.flags & STARTED != 0) {
                return Some(p);
            }
        }
        None
    }

    /// Withdrawing: peer `p`'s `stopped` was lost or refused; send it again.
    fn unwithdraw(&mut self, s: usize, p: usize) {
        if let Some(peer) = self.peers.get_mut(p) {
            peer.flags |= STARTED;
            let k = p / self.socks.len();
            let sock = &mut self.socks[s];
            sock.cursor = sock.cursor.min(k);
        }
    }

    fn publish(&self) {
        let t = &self.totals;
        self.live.sent.store(t.sent.iter().sum(), Ordering::Relaxed);
        self.live
            .replies
            .store(t.replies.iter().sum(), Ordering::Relaxed);
        self.live.timeouts.store(t.timeouts, Ordering::Relaxed);
    }

    /// Free every slot sent before `now - timeout`, counting it lost.
    fn expire(&mut self, now: u64, timeout_ns: u64) {
        for s in 0..self.socks.len() {
            for i in 0..self.socks[s].slots.len() {
                let sock = &mut self.socks[s];
                let slot = sock.slots[i];
                if slot.kind != FREE && now.saturating_sub(slot.sent_ns) >= timeout_ns {
                    if usize::from(slot.kind) == CONNECT {
                        sock.connecting = false;
                    }
                    sock.slots[i] = EMPTY;
                    sock.free.push(i as u16);
                    self.totals.timeouts += 1;
                    if self.pace.is_some() && usize::from(slot.kind) == ANNOUNCE {
                        self.unwithdraw(s, slot.peer as usize);
                    }
                }
            }
        }
    }

    /// Read every queued datagram on socket `s`. Returns whether any arrived.
    fn receive(&mut self, s: usize, start: Instant, rbuf: &mut [u8]) -> bool {
        let mut any = false;
        loop {
            let n = match self.socks[s].io.recv(rbuf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.totals.count_io_error(&e);
                    return any;
                }
            };
            any = true;
            let now = ns(start);
            self.on_reply(s, &rbuf[..n], now);
        }
    }

    /// Match a reply to its slot by transaction id and check it is the
    /// reply its request asked for; `wire` does the decoding.
    fn on_reply(&mut self, s: usize, reply: &[u8], now: u64) {
        let Ok(response) = udp::parse_response(reply) else {
            // wire does not say which request an undecodable datagram
            // answers: it is garbage here, and its request (if any) times out.
            self.totals.unexpected += 1;
            return;
        };
        let tx = response.transaction_id();
        let sock = &mut self.socks[s];
        let index = ((tx ^ sock.salt) & SLOT_MASK) as usize;
        let slot = match sock.slots.get(index) {
            Some(slot) if slot.kind != FREE && slot.tx == tx => *slot,
            _ => {
                self.totals.unexpected += 1;
                return;
            }
        };
        sock.slots[index] = EMPTY;
        sock.free.push(index as u16);
        let kind = usize::from(slot.kind);
        if kind == CONNECT {
            sock.connecting = false;
        }
        self.totals.latency.record(now.saturating_sub(slot.sent_ns));
        let ok = match response {
            Response::Connect { connection_id, .. } => {
                if kind == CONNECT {
                    sock.conn = Some(connection_id);
                    sock.conn_at = now;
                }
                kind == CONNECT
            }
            Response::Announce { peers, .. } => {
                let ok = kind == ANNOUNCE && peers.len().is_multiple_of(self.stride);
                if ok {
                    self.totals.peers_received += (peers.len() / self.stride) as u64;
                }
                ok
            }
            // wire drops a trailing partial row; here it makes the reply malformed.
            Response::Scrape { rows, .. } => {
                kind == SCRAPE
                    && reply.len() - rows.len() == udp::SCRAPE_RESPONSE_HEADER_LEN
                    && rows.len() / udp::SCRAPE_ROW_LEN <= usize::from(slot.hashes)
            }
            Response::Error { .. } => {
                self.totals.error_frames += 1;
                // Perhaps our connection id is no longer accepted: refresh it.
                sock.conn_at = 0;
                if self.pace.is_some() && kind == ANNOUNCE {
                    self.unwithdraw(s, slot.peer as usize);
                }
                true
            }
        };
        if ok {
            self.totals.replies[kind] += 1;
        } else {
            self.totals.malformed += 1;
        }
    }

    /// Send on socket `s` while its window has room. Returns whether anything was sent.
    fn fill(&mut self, s: usize, start: Instant, buf: &mut [u8]) -> bool {
        let mut any = false;
        while let Some(&index) = self.socks[s].free.last() {
            let now = ns(start);
            let sock = &self.socks[s];
            let stale = sock.conn.is_none() || now.saturating_sub(sock.conn_at) > REFRESH_NS;
            let kind = if stale && !sock.connecting {
                CONNECT
            } else if sock.conn.is_none() {
                return any; // wait for the first connection id
            } else if let Some(pace) = self.pace {
                if !pace.may_send(now) {
                    return any;
                }
                ANNOUNCE
            } else {
                self.draw_kind()
            };
            let tx = ((self.socks[s].seq << SLOT_BITS) | u32::from(index)) ^ self.socks[s].salt;
            let (len, hashes, peer) = match kind {
                CONNECT => (udp::write_connect_request(buf, tx), 0, 0),
                ANNOUNCE if self.pace.is_some() => {
                    let Some(p) = self.next_started(s) else {
                        return any; // every peer of this socket is done
                    };
                    (self.write_stopped(s, p, tx, buf), 0, p)
                }
                ANNOUNCE => {
                    let p = self.pick_peer(s);
                    (self.write_announce(s, p, tx, buf), 0, p)
                }
                _ => {
                    let (len, hashes) = self.write_scrape(s, tx, buf);
                    (len, hashes, 0)
                }
            };
            let Some(len) = len else {
                self.totals.io_errors += 1;
                return any;
            };
            let sock = &mut self.socks[s];
            let sent = loop {
                match sock.io.send(&buf[..len]) {
                    Ok(_) => break Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => break Err(e),
                }
            };
            if let Err(e) = sent {
                self.totals.count_io_error(&e);
                if self.pace.is_some() && kind == ANNOUNCE {
                    self.unwithdraw(s, peer);
                }
                return any;
            }
            let sock = &mut self.socks[s];
            sock.free.pop();
            sock.seq = sock.seq.wrapping_add(1);
            sock.slots[usize::from(index)] = Slot {
                sent_ns: now,
                tx,
                peer: peer as u32,
                hashes,
                kind: kind as u8,
            };
            if kind == ANNOUNCE {
                if let Some(pace) = &mut self.pace {
                    pace.sent += 1;
                }
            }
            if kind == CONNECT {
                sock.connecting = true;
            }
            self.totals.sent[kind] += 1;
            any = true;
        }
        any
    }

    fn draw_kind(&mut self) -> usize {
        let [c, a, sc] = self.settings.mix;
        // Weights are validated non-zero; `max(1)` keeps an empty range from panicking.
        let r = self.rng.u32(..(c + a + sc).max(1));
        if r < c {
            CONNECT
        } else if r < c + a {
            ANNOUNCE
        } else {
            SCRAPE
        }
    }

    /// A random peer of socket `s`: its index in `self.peers`.
    fn pick_peer(&mut self, s: usize) -> usize {
        let n = self.socks.len();
        s + n * self.rng.usize(..self.socks[s].peers.max(1))
    }

    fn write_announce(&mut self, s: usize, p: usize, tx: u32, buf: &mut [u8]) -> Option<usize> {
        let seeder_ratio = self.settings.seeder_ratio;
        let roll = self.rng.u32(..1000);
        let reroll = self.rng.f64();
        let peer = self.peers.get_mut(p)?;
        // A peer starts, announces, now and then completes (a leecher) or
        // stops; a stopped peer starts again later as a seeder or leecher.
        let event = if peer.flags & STARTED == 0 {
            peer.flags = STARTED | if reroll < seeder_ratio { SEEDER } else { 0 };
            Event::Started
        } else if roll < 5 {
            peer.flags &= !STARTED;
            Event::Stopped
        } else if roll < 15 && peer.flags & SEEDER == 0 {
            peer.flags |= SEEDER;
            Event::Completed
        } else {
            Event::None
        };
        self.write_event(s, p, event, tx, buf)
    }

    /// Withdrawing: peer `p`'s `stopped`.
    fn write_stopped(&mut self, s: usize, p: usize, tx: u32, buf: &mut [u8]) -> Option<usize> {
        self.peers.get_mut(p)?.flags &= !STARTED;
        self.write_event(s, p, Event::Stopped, tx, buf)
    }

    /// An announce of peer `p` (its id, key, port, torrent and state) with `event`.
    fn write_event(
        &self,
        s: usize,
        p: usize,
        event: Event,
        tx: u32,
        buf: &mut [u8],
    ) -> Option<usize> {
        let peer = *self.peers.get(p)?;
        let mut info_hash = [0u8; 20];
        population::info_hash(self.settings.seed, peer.torrent, &mut info_hash);
        let mut peer_id = [0u8; 20];
        let global = self.peer_base + p as u64 * self.peer_stride;
        population::peer_id(self.settings.seed, global, &mut peer_id);
        let sock = &self.socks[s];
        let req = AnnounceRequest {
            left: if peer.flags & SEEDER != 0 { 0 } else { 1 << 20 },
            event,
            key: global as u32,
            num_want: if event == Event::Stopped {
                0
            } else {
                self.settings.numwant
            },
            ..AnnounceRequest::new(sock.conn.unwrap_or(0), tx, info_hash, peer_id, peer.port)
        };
        udp::write_announce_request(buf, &req, &self.settings.url_data)
    }

    /// A scrape of 1..=scrape_max torrents, chosen as random peers' torrents
    /// (so popular torrents are scraped more, as in real swarms).
    fn write_scrape(&mut self, s: usize, tx: u32, buf: &mut [u8]) -> (Option<usize>, u16) {
        let mut hashes = [[0u8; 20]; MAX_SCRAPE];
        let k = self
            .rng
            .usize(1..=self.settings.scrape_max.clamp(1, MAX_SCRAPE));
        for h in hashes.iter_mut().take(k) {
            let p = self.rng.usize(..self.peers.len().max(1));
            let torrent = self.peers.get(p).map_or(0, |p| p.torrent);
            population::info_hash(self.settings.seed, torrent, h);
        }
        let conn = self.socks[s].conn.unwrap_or(0);
        (
            udp::write_scrape_request(buf, conn, tx, &hashes[..k]),
            k as u16,
        )
    }
}

#[inline]
fn ns(start: Instant) -> u64 {
    start.elapsed().as_nanos() as u64
}

#[cfg(test)]
mod tests;
