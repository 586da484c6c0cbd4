//! HTTP connections, for the packet workers and the control thread alike.
//!
//! Each loop accepts on its own listeners and owns its connections outright:
//! a slab of [`Conn`]s indexed by mio token, no thread per connection, no
//! sharing. What a request means is its [`Handler`]'s business (the packet
//! workers' tracker routes, the control thread's operator routes and API);
//! this module only moves bytes and enforces limits:
//!
//! - a request head larger than [`MAX_HEAD`] gets 431 and the connection closes;
//! - a request body is read only when the handler asks for it (the API's,
//!   up to [`crate::api::MAX_BODY`]); elsewhere it gets 413 and closes;
//! - at most `http_max_connections` per worker: when all are taken, the
//!   longest-idle one is closed to admit the newcomer (first come, first
//!   served let idle sockets lock every announce out);
//! - at most `--http-max-connections-per-ip` per client address, counted over
//!   all workers; more are closed at once;
//! - a connection idle for `http_idle_timeout`, or that has not finished its
//!   current request head within it (slowloris), is closed;
//! - pipelined requests are answered in order, but no more are read while
//!   [`MAX_PENDING_OUT`] bytes of replies wait for a slow reader, and once
//!   they are written the reply buffer goes back to [`OUT_KEEP`] bytes: a
//!   client that stops reading holds at most ~2 × `MAX_PENDING_OUT` (plus the
//!   head buffer), one that drained holds `OUT_KEEP`;
//! - one connection gets a bounded share of each loop turn (a few reads, a few
//!   dozen requests) and is queued at most once to continue the next turn, so
//!   a pipelining client cannot starve the worker's UDP sockets;
//! - when descriptors run out (EMFILE), accepting pauses until a connection
//!   closes or a short back-off passes, instead of retrying every turn.
//!
//! A handler may hand a connection over ([`Served::HandOff`]): a packet
//! worker passes a tracker-port connection that asks for `/metrics` or
//! `/health` (`--http-metrics`) to the control thread, whole — its unread
//! bytes, its queued replies and its place in the per-address count — so
//! no packet worker ever renders metrics.
//!
//! Memory per connection is fixed ([`MAX_HEAD`] in, a reply buffer out), so
//! nothing a client sends makes a loop allocate in proportion to it.

use super::listen::Role;
use crate::limit::ConnLimiter;
use crate::stats::{Counters, Dropped, Proto, Reject};
use crate::time::Now;
use crate::wire::http::{self as wire_http, Head, HttpError, MAX_HEAD};
use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Poll, Token};
use parking_lot::Mutex;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Replies queued for one connection before its further requests are left unread.
pub const MAX_PENDING_OUT: usize = 64 * 1024;
/// Reply buffer capacity kept by a connection between bursts: an announce
/// reply fits; a bigger one (a pipelined burst, /metrics) is freed once written.
pub const OUT_KEEP: usize = 4096;
/// Tokens at and above this are connections; below are listeners (by their
/// index in the listener table).
pub const CONN_BASE: usize = 1 << 20;
/// How often (ms) connections are checked for timeouts.
const TIMEOUT_CHECK_MS: u64 = 500;
/// Reads one connection may do per loop turn before others get a turn. With
/// edge-triggered readiness there is no new event for data already waiting, so
/// a connection cut short goes on the ready list and is driven next turn.
const READS_PER_TURN: usize = 8;
/// Requests one connection may have answered per loop turn. Eight reads of
/// pipelined `/health` are ~2000 requests: without this bound one client held
/// a debug-build worker ~25 ms a turn, and its UDP sockets waited as long.
const REQUESTS_PER_TURN: usize = 64;
/// After an accept fails for want of descriptors (or another resource), no
/// accept is tried for this long unless a connection closes first. Retrying
/// every turn instead kept a worker at 0.9 core while the limit held.
const ACCEPT_BACKOFF_MS: u64 = 100;

/// One request as a [`Handler`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The role of the listener that accepted the connection.
    pub role: Role,
    pub peer: SocketAddr,
    /// The buffered bytes: the head (`head_len` bytes), then whatever
    /// followed it (a body, pipelined requests).
    pub buf: &'a [u8],
    pub head: &'a Head<'a>,
    pub head_len: usize,
    /// The loop turn's clock.
    pub now: Now,
}

impl Request<'_> {
    /// The body, once `Content-Length` bytes of it are buffered.
    pub fn body(&self) -> Option<&[u8]> {
        let len = usize::try_from(self.head.content_length).ok()?;
        self.buf.get(self.head_len..self.head_len.checked_add(len)?)
    }
}

/// What became of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// Its body is not all here yet: read more and ask again.
    Incomplete,
    /// Answered (appended to the reply buffer); `used` bytes were this
    /// request; `keep_alive`: the connection may carry another.
    Done { used: usize, keep_alive: bool },
    /// Not answered: the connection, this request included, goes to the
    /// loop's [`Handoff`].
    HandOff,
}

/// What answers a loop's requests.
pub trait Handler {
    /// Answer `req`, appending the whole response to `out`.
    fn serve(&mut self, req: &Request<'_>, out: &mut Vec<u8>) -> Served;
    /// The counters this loop writes.
    fn counters(&self) -> &Counters;
}

/// Answer a request whose body this handler does not read: 413, and the
/// connection closes.
pub fn refuse_body(req: &Request<'_>, counters: &Counters, out: &mut Vec<u8>) -> Served {
    counters.reject(Reject::HttpMalformed);
    error_reply(out, 413, "request bodies are not accepted\n");
    Served::Done {
        used: req.head_len,
        keep_alive: false,
    }
}

/// Connections handed from the packet workers to the control thread, and
/// the waker of the control thread's poll. Bounded: past [`HANDOFF_QUEUE`]
/// waiting connections a hand-off closes the connection instead.
#[derive(Debug)]
pub struct Handoff {
    queue: Mutex<Vec<Conn>>,
    waker: Arc<mio::Waker>,
}

/// Connections waiting for the control thread at most.
const HANDOFF_QUEUE: usize = 256;

impl Handoff {
    pub fn new(waker: Arc<mio::Waker>) -> Handoff {
        Handoff {
            queue: Mutex::new(Vec::new()),
            waker,
        }
    }

    /// Queue `conn` for the control thread; false (and `conn` dropped, so
    /// closed) when the queue is full.
    fn push(&self, conn: Conn) -> bool {
        let mut q = self.queue.lock();
        if q.len() >= HANDOFF_QUEUE {
            return false;
        }
        q.push(conn);
        drop(q);
        if let Err(e) = self.waker.wake() {
            log::debug!("cannot wake the control thread: {e}");
        }
        true
    }

    fn take(&self) -> Vec<Conn> {
        std::mem::take(&mut *self.queue.lock())
    }
}

/// Limits of one loop's connections.
#[derive(Debug, Clone)]
pub struct ConnConfig {
    /// Most open connections; the longest-idle one makes room for a newcomer.
    pub max_conns: usize,
    /// A connection idle (or stuck mid-request) this long is closed.
    pub idle_timeout: Duration,
    /// `--http-max-connections-per-ip`, shared by every loop.
    pub limiter: Option<Arc<ConnLimiter>>,
}

#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    /// The role of the listener that accepted it.
    role: Role,
    peer: SocketAddr,
    /// Bytes of the current (and any pipelined) request heads.
    inbuf: Box<[u8]>,
    in_len: usize,
    /// Replies not yet written.
    out: Vec<u8>,
    out_pos: usize,
    /// Close once `out` is flushed.
    closing: bool,
    /// The peer closed its side: no more requests will come.
    eof: bool,
    /// On `HttpWorker::ready`. A connection that also gets an event while
    /// queued would otherwise be pushed again each turn it is cut short, and a
    /// pipelining client grew the list without bound (246 entries, each a
    /// full drive per turn), starving the worker's UDP sockets.
    queued: bool,
    /// When the connection last made progress, or when the unfinished request
    /// in `inbuf` began (whichever the timeout should count from).
    since_ms: u64,
    /// Its count in the per-address table, given back on close.
    ip_slot: Option<usize>,
}

/// The HTTP connections of one loop.
#[derive(Debug)]
pub struct Conns {
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    open: usize,
    /// The role of each listener, by index in the listener table (`None`
    /// for indexes this loop does not listen on).
    roles: Vec<Option<Role>>,
    max_conns: usize,
    timeout_ms: u64,
    next_check_ms: u64,
    /// Connections cut short by their budget: drive them next turn. Each at
    /// most once (its `queued` flag), so the list is bounded by `open`.
    ready: Vec<usize>,
    ready_now: Vec<usize>,
    /// Listeners with connections waiting that were not accepted (accepting
    /// was paused, or failed): try them when accepting resumes, as no new
    /// event comes for connections already queued.
    accept_pending: Vec<bool>,
    /// Accepting is paused until then (ms), after EMFILE and the like. A
    /// closed connection frees a descriptor and ends the pause early.
    accept_paused_until: Option<u64>,
    last_accept_warning_ms: Option<u64>,
    /// `--http-max-connections-per-ip`, shared by every loop.
    conn_limiter: Option<Arc<ConnLimiter>>,
    /// Where [`Served::HandOff`] sends a connection (the packet workers').
    handoff: Option<Arc<Handoff>>,
}

impl Conns {
    /// Connections for a loop listening on the stream listeners `roles`
    /// (by listener index).
    pub fn new(config: &ConnConfig, roles: Vec<Option<Role>>) -> Conns {
        let listeners = roles.len();
        Conns {
            roles,
            conns: Vec::new(),
            free: Vec::new(),
            open: 0,
            max_conns: config.max_conns,
            timeout_ms: config.idle_timeout.as_millis() as u64,
            next_check_ms: 0,
            ready: Vec::new(),
            ready_now: Vec::new(),
            accept_pending: vec![false; listeners],
            accept_paused_until: None,
            last_accept_warning_ms: None,
            conn_limiter: config.limiter.clone(),
            handoff: None,
        }
    }

    /// Send connections a handler hands over to `handoff`.
    pub fn with_handoff(mut self, handoff: Arc<Handoff>) -> Conns {
        self.handoff = Some(handoff);
        self
    }

    /// Open connections.
    pub fn open(&self) -> usize {
        self.open
    }

    /// Take the connections handed to this loop through `handoff` (the
    /// control thread): each is registered with `poll` and driven now, its
    /// pending request first.
    pub fn adopt<H: Handler>(
        &mut self,
        poll: &mut Poll,
        handoff: &Handoff,
        handler: &mut H,
        now: Now,
    ) {
        for mut conn in handoff.take() {
            if self.open >= self.max_conns {
                match self.longest_idle() {
                    Some(victim) => {
                        handler.counters().dropped(Dropped::HttpEvicted);
                        self.close(poll, victim);
                    }
                    None => {
                        handler.counters().dropped(Dropped::HttpOverLimit);
                        self.release(conn.ip_slot);
                        continue;
                    }
                }
            }
            let slot = self.free.pop().unwrap_or_else(|| {
                self.conns.push(None);
                self.conns.len() - 1
            });
            conn.queued = false;
            if let Err(e) = poll.registry().register(
                &mut conn.stream,
                Token(CONN_BASE + slot),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                log::debug!("http: cannot register a handed-over connection: {e}");
                self.free.push(slot);
                self.release(conn.ip_slot);
                continue;
            }
            self.conns[slot] = Some(conn);
            self.open += 1;
            self.drive(poll, slot, handler, now);
        }
    }

    /// The connection idle longest (oldest `since_ms`), if any.
    fn longest_idle(&self) -> Option<usize> {
        self.conns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().map(|c| (c.since_ms, i)))
            .min()
            .map(|(_, i)| i)
    }

    /// Whether work is left over from the last turn (the loop should not sleep).
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
            || (self.accept_paused_until.is_none() && self.accept_pending.iter().any(|&p| p))
    }

    /// How long the loop may sleep before this side has something to do
    /// (accepting resumes after a pause); `None` = no deadline.
    pub fn wake_in_ms(&self, now_ms: u64) -> Option<u64> {
        if self.has_ready() {
            return Some(0);
        }
        self.accept_paused_until.map(|t| t.saturating_sub(now_ms))
    }

    fn accept_paused(&mut self, now_ms: u64) -> bool {
        match self.accept_paused_until {
            Some(until) if now_ms < until => true,
            Some(_) => {
                self.accept_paused_until = None;
                false
            }
            None => false,
        }
    }

    /// Continue what the last turn cut short: connections over their budget and
    /// listeners whose accept failed.
    pub fn run_ready<H: Handler>(
        &mut self,
        poll: &mut Poll,
        listeners: &[Option<TcpListener>],
        handler: &mut H,
        now: Now,
    ) {
        for i in 0..self.accept_pending.len() {
            if self.accept_paused(now.ms()) {
                break;
            }
            if std::mem::take(&mut self.accept_pending[i]) {
                if let Some(Some(listener)) = listeners.get(i) {
                    self.accept(poll, i, listener, handler.counters(), now.ms());
                }
            }
        }
        std::mem::swap(&mut self.ready, &mut self.ready_now);
        let mut ready = std::mem::take(&mut self.ready_now);
        for slot in ready.drain(..) {
            if let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) {
                conn.queued = false;
            }
            self.drive(poll, slot, handler, now);
        }
        self.ready_now = ready;
    }

    /// Close connections that idled or stalled past the timeout.
    pub fn expire(&mut self, poll: &mut Poll, now_ms: u64, counters: &Counters) {
        if now_ms < self.next_check_ms || self.open == 0 {
            return;
        }
        self.next_check_ms = now_ms + TIMEOUT_CHECK_MS;
        for slot in 0..self.conns.len() {
            let stale = self.conns[slot]
                .as_ref()
                .is_some_and(|c| now_ms.saturating_sub(c.since_ms) >= self.timeout_ms);
            if stale {
                counters.dropped(Dropped::HttpTimeout);
                self.close(poll, slot);
            }
        }
    }

    pub fn on_event<H: Handler>(
        &mut self,
        poll: &mut Poll,
        listeners: &[Option<TcpListener>],
        handler: &mut H,
        event: &Event,
        now: Now,
    ) {
        let t = event.token().0;
        if let Some(slot) = t.checked_sub(CONN_BASE) {
            let queued = self
                .conns
                .get(slot)
                .and_then(Option::as_ref)
                .is_some_and(|c| c.queued);
            // A queued connection is driven next turn anyway (reading, writing
            // and closing); driving it now too would give it two budgets a turn.
            if !queued {
                self.drive(poll, slot, handler, now);
            }
        } else if let Some(Some(listener)) = listeners.get(t) {
            self.accept(poll, t, listener, handler.counters(), now.ms());
        }
    }

    fn accept(
        &mut self,
        poll: &mut Poll,
        index: usize,
        listener: &TcpListener,
        counters: &Counters,
        now_ms: u64,
    ) {
        if self.accept_paused(now_ms) {
            if let Some(p) = self.accept_pending.get_mut(index) {
                *p = true;
            }
            return;
        }
        loop {
            match listener.accept() {
                Ok((stream, peer)) => {
                    let ip_slot = match &self.conn_limiter {
                        Some(l) => match l.acquire(peer.ip()) {
                            Some(slot) => Some(slot),
                            None => {
                                // Dropping the stream closes it at once.
                                counters.dropped(Dropped::HttpPerIpLimit);
                                continue;
                            }
                        },
                        None => None,
                    };
                    if self.open >= self.max_conns {
                        // Full: the newcomer takes the place of the connection
                        // idle longest, so idle sockets cannot lock it out.
                        match self.longest_idle() {
                            Some(victim) => {
                                counters.dropped(Dropped::HttpEvicted);
                                self.close(poll, victim);
                            }
                            None => {
                                counters.dropped(Dropped::HttpOverLimit);
                                self.release(ip_slot);
                                continue;
                            }
                        }
                    }
                    counters.http_connections.incr();
                    let _ = stream.set_nodelay(true);
                    let slot = self.free.pop().unwrap_or_else(|| {
                        self.conns.push(None);
                        self.conns.len() - 1
                    });
                    let mut conn = Conn {
                        stream,
                        role: self
                            .roles
                            .get(index)
                            .copied()
                            .flatten()
                            .unwrap_or(Role::Metrics),
                        peer,
                        inbuf: vec![0u8; MAX_HEAD].into_boxed_slice(),
                        in_len: 0,
                        out: Vec::new(),
                        out_pos: 0,
                        closing: false,
                        eof: false,
                        queued: false,
                        since_ms: now_ms,
                        ip_slot,
                    };
                    if let Err(e) = poll.registry().register(
                        &mut conn.stream,
                        Token(CONN_BASE + slot),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        log::debug!("http: cannot register a connection: {e}");
                        self.free.push(slot);
                        self.release(ip_slot);
                        continue;
                    }
                    self.conns[slot] = Some(conn);
                    self.open += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // The client gave up while queued: the next one may be fine.
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(e) => {
                    // EMFILE and friends: keep serving the open connections,
                    // stop accepting until one closes or the back-off passes,
                    // then try the waiting connections again (no new event
                    // comes for them). Warn at most once a minute.
                    counters.dropped(Dropped::AcceptNoFds);
                    self.accept_paused_until = Some(now_ms + ACCEPT_BACKOFF_MS);
                    if self
                        .last_accept_warning_ms
                        .is_none_or(|t| now_ms >= t + 60_000)
                    {
                        log::warn!("http: accept failed: {e}");
                        self.last_accept_warning_ms = Some(now_ms);
                    }
                    if let Some(p) = self.accept_pending.get_mut(index) {
                        *p = true;
                    }
                    return;
                }
            }
        }
    }

    /// Read what there is, answer every complete request, write what we can.
    fn drive<H: Handler>(&mut self, poll: &mut Poll, slot: usize, handler: &mut H, now: Now) {
        let now_ms = now.ms();
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let mut reads = 0;
        let mut served = 0;
        let mut hand_off = false;
        let keep = loop {
            if !conn.flush(handler.counters()) {
                break false;
            }
            if conn.closing {
                break conn.out_pos < conn.out.len();
            }
            if served == REQUESTS_PER_TURN || reads == READS_PER_TURN {
                // Out of budget with work maybe left: edge-triggered readiness
                // brings no new event for bytes already waiting, so go on the
                // ready list (once) and carry on next turn.
                if !conn.queued {
                    conn.queued = true;
                    self.ready.push(slot);
                }
                break true;
            }
            // Answer complete requests already buffered (pipelining).
            let mut answered = false;
            while !conn.closing
                && served < REQUESTS_PER_TURN
                && conn.out.len() - conn.out_pos < MAX_PENDING_OUT
            {
                match wire_http::parse_head(&conn.inbuf[..conn.in_len]) {
                    Ok(Some((head, used))) => {
                        let req = Request {
                            role: conn.role,
                            peer: conn.peer,
                            buf: &conn.inbuf[..conn.in_len],
                            head: &head,
                            head_len: used,
                            now,
                        };
                        let (used, keep_alive) = match handler.serve(&req, &mut conn.out) {
                            Served::Done { used, keep_alive } => (used, keep_alive),
                            Served::Incomplete => break, // the body is still arriving
                            Served::HandOff => {
                                hand_off = true;
                                break;
                            }
                        };
                        let used = used.min(conn.in_len);
                        conn.inbuf.copy_within(used..conn.in_len, 0);
                        conn.in_len -= used;
                        conn.closing |= !keep_alive;
                        conn.since_ms = now_ms;
                        answered = true;
                        served += 1;
                    }
                    Ok(None) if conn.in_len == MAX_HEAD => {
                        handler.counters().reject(Reject::HttpMalformed);
                        error_reply(&mut conn.out, 431, "request head too large\n");
                        conn.closing = true;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        handler.counters().reject(Reject::HttpMalformed);
                        bad_request(&mut conn.out, e);
                        conn.closing = true;
                    }
                }
            }
            if hand_off {
                break true;
            }
            if answered || conn.closing {
                continue; // flush what we produced
            }
            if conn.eof {
                // Everything complete is answered; close once it is written.
                conn.closing = true;
                continue;
            }
            if conn.out.len() - conn.out_pos >= MAX_PENDING_OUT {
                break true; // wait until the client reads (a writable event)
            }
            reads += 1;
            // Read more.
            match conn.stream.read(&mut conn.inbuf[conn.in_len..]) {
                Ok(0) => {
                    conn.eof = true;
                    // Answer what is complete, then close.
                    continue;
                }
                Ok(n) => {
                    if conn.in_len == 0 {
                        conn.since_ms = now_ms; // a new request starts its clock
                    }
                    conn.in_len += n;
                    handler.counters().bytes(Proto::Http, n, 0);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break false,
            }
        };
        if hand_off {
            self.hand_off(poll, slot, handler.counters());
        } else if !keep {
            self.close(poll, slot);
        }
    }

    /// Give the connection in `slot` to the hand-off queue: it leaves this
    /// loop's poll and count, keeping its per-address slot. Without a queue
    /// (or with a full one), it is closed.
    fn hand_off(&mut self, poll: &mut Poll, slot: usize, counters: &Counters) {
        let Some(handoff) = self.handoff.clone() else {
            self.close(poll, slot);
            return;
        };
        let Some(mut conn) = self.conns.get_mut(slot).and_then(Option::take) else {
            return;
        };
        if conn.queued {
            self.ready.retain(|&s| s != slot);
        }
        let _ = poll.registry().deregister(&mut conn.stream);
        self.free.push(slot);
        self.open -= 1;
        self.accept_paused_until = None;
        let ip_slot = conn.ip_slot;
        if !handoff.push(conn) {
            counters.dropped(Dropped::HttpOverLimit);
            self.release(ip_slot);
        }
    }

    fn release(&self, ip_slot: Option<usize>) {
        if let (Some(l), Some(slot)) = (&self.conn_limiter, ip_slot) {
            l.release(slot);
        }
    }

    fn close(&mut self, poll: &mut Poll, slot: usize) {
        if let Some(mut conn) = self.conns.get_mut(slot).and_then(Option::take) {
            if conn.queued {
                // The slot may be reused before the next turn: a stale entry
                // would queue the new connection twice.
                self.ready.retain(|&s| s != slot);
            }
            let _ = poll.registry().deregister(&mut conn.stream);
            self.release(conn.ip_slot);
            self.free.push(slot);
            self.open -= 1;
            // Its descriptor is free once `conn` drops: a paused accept can go on.
            self.accept_paused_until = None;
        }
    }
}

impl Conn {
    /// Write queued replies; false if the connection is broken.
    fn flush(&mut self, counters: &Counters) -> bool {
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => return false,
                Ok(n) => {
                    self.out_pos += n;
                    counters.bytes(Proto::Http, 0, n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        self.out.clear();
        self.out_pos = 0;
        if self.out.capacity() > OUT_KEEP {
            // A burst of pipelined replies or one large reply (/metrics) does
            // not pin its buffer for the connection's life.
            self.out.shrink_to(OUT_KEEP);
        }
        true
    }
}

fn error_reply(out: &mut Vec<u8>, status: u16, body: &str) {
    wire_http::write_response_head(out, status, "text/plain", body.len(), false);
    out.extend_from_slice(body.as_bytes());
}

fn bad_request(out: &mut Vec<u8>, e: HttpError) {
    let status = e.status();
    let msg = e.as_str();
    wire_http::write_response_head(out, status, "text/plain", msg.len() + 1, false);
    out.extend_from_slice(msg.as_bytes());
    out.push(b'\n');
}

#[cfg(test)]
mod tests;
