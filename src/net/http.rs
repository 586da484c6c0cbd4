//! HTTP connection state in the worker loops.
//!
//! Each worker accepts on its own `SO_REUSEPORT` listeners and owns its
//! connections outright: a slab of [`Conn`]s indexed by mio token, no thread
//! per connection, no sharing. Protocol decisions belong to the core
//! ([`Tracker::handle_http`](crate::tracker::Tracker::handle_http)); this module
//! only moves bytes and enforces limits:
//!
//! - a request head larger than [`MAX_HEAD`] gets 431 and the connection closes;
//! - a request with a body (POST, or any Content-Length) gets 413 and closes;
//! - at most `http_max_connections` per worker; more are closed at once;
//! - a connection idle for `http_idle_timeout`, or that has not finished its
//!   current request head within it (slowloris), is closed;
//! - pipelined requests are answered in order, but no more are read while
//!   [`MAX_PENDING_OUT`] bytes of replies wait for a slow reader.
//!
//! Memory per connection is fixed ([`MAX_HEAD`] in, a reply buffer out), so
//! nothing a client sends makes a worker allocate in proportion to it.

use super::Shared;
use crate::config::Config;
use crate::stats::{Counters, Dropped, Proto, Reject};
use crate::tracker::http::HttpEnv;
use crate::tracker::Worker;
use crate::wire::http::{self as wire_http, HttpError};
use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Poll, Token};
use std::io::{self, Read, Write};
use std::net::SocketAddr;

/// Largest request head accepted.
pub const MAX_HEAD: usize = 8 * 1024;
/// Replies queued for one connection before its further requests are left unread.
pub const MAX_PENDING_OUT: usize = 64 * 1024;
/// Tokens at and above this are connections; below are UDP sockets and listeners.
pub const CONN_BASE: usize = 1 << 20;
/// How often (ms) connections are checked for timeouts.
const TIMEOUT_CHECK_MS: u64 = 500;
/// Reads one connection may do per loop turn before others get a turn. With
/// edge-triggered readiness there is no new event for data already waiting, so
/// a connection cut short goes on the ready list and is driven next turn.
const READS_PER_TURN: usize = 8;

#[derive(Debug)]
struct Conn {
    stream: TcpStream,
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
    /// When the connection last made progress, or when the unfinished request
    /// in `inbuf` began (whichever the timeout should count from).
    since_ms: u64,
}

/// The HTTP connections of one worker.
#[derive(Debug)]
pub struct HttpWorker {
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    open: usize,
    first_listener: usize,
    max_conns: usize,
    timeout_ms: u64,
    next_check_ms: u64,
    client_ip_header: Option<String>,
    scratch: Vec<u8>,
    /// Connections cut short by their budget: drive them next turn.
    ready: Vec<usize>,
    ready_now: Vec<usize>,
    /// Listeners whose accept failed (e.g. EMFILE) with connections waiting.
    accept_pending: Vec<bool>,
    last_accept_warning_ms: Option<u64>,
}

impl HttpWorker {
    pub fn new(config: &Config, first_listener: usize, listeners: usize) -> HttpWorker {
        HttpWorker {
            conns: Vec::new(),
            free: Vec::new(),
            open: 0,
            first_listener,
            max_conns: config.http_max_connections,
            timeout_ms: config.http_idle_timeout.as_millis() as u64,
            next_check_ms: 0,
            client_ip_header: config.http_client_ip_header.clone(),
            scratch: Vec::new(),
            ready: Vec::new(),
            ready_now: Vec::new(),
            accept_pending: vec![false; listeners],
            last_accept_warning_ms: None,
        }
    }

    /// Whether work is left over from the last turn (the loop should not sleep).
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty() || self.accept_pending.iter().any(|&p| p)
    }

    /// Continue what the last turn cut short: connections over their budget and
    /// listeners whose accept failed.
    pub fn run_ready(
        &mut self,
        poll: &mut Poll,
        listeners: &[TcpListener],
        shared: &Shared,
        worker: &mut Worker,
        now_ms: u64,
    ) {
        for i in 0..self.accept_pending.len() {
            if std::mem::take(&mut self.accept_pending[i]) {
                if let Some(listener) = listeners.get(i) {
                    self.accept(poll, i, listener, &worker.counters, now_ms);
                }
            }
        }
        std::mem::swap(&mut self.ready, &mut self.ready_now);
        let mut ready = std::mem::take(&mut self.ready_now);
        for slot in ready.drain(..) {
            self.drive(poll, slot, shared, worker, now_ms);
        }
        self.ready_now = ready;
    }

    /// Number of open connections.
    pub fn open(&self) -> usize {
        self.open
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

    pub fn on_event(
        &mut self,
        poll: &mut Poll,
        listeners: &[TcpListener],
        shared: &Shared,
        worker: &mut Worker,
        event: &Event,
        now_ms: u64,
    ) {
        let t = event.token().0;
        if t >= CONN_BASE {
            self.drive(poll, t - CONN_BASE, shared, worker, now_ms);
        } else if let Some(i) = t.checked_sub(self.first_listener) {
            if let Some(listener) = listeners.get(i) {
                self.accept(poll, i, listener, &worker.counters, now_ms);
            }
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
        loop {
            match listener.accept() {
                Ok((stream, peer)) => {
                    if self.open >= self.max_conns {
                        // Dropping the stream closes it at once.
                        counters.dropped(Dropped::HttpOverLimit);
                        continue;
                    }
                    counters.http_connections.incr();
                    let _ = stream.set_nodelay(true);
                    let slot = self.free.pop().unwrap_or_else(|| {
                        self.conns.push(None);
                        self.conns.len() - 1
                    });
                    let mut conn = Conn {
                        stream,
                        peer,
                        inbuf: vec![0u8; MAX_HEAD].into_boxed_slice(),
                        in_len: 0,
                        out: Vec::new(),
                        out_pos: 0,
                        closing: false,
                        eof: false,
                        since_ms: now_ms,
                    };
                    if let Err(e) = poll.registry().register(
                        &mut conn.stream,
                        Token(CONN_BASE + slot),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        log::debug!("http: cannot register a connection: {e}");
                        self.free.push(slot);
                        continue;
                    }
                    self.conns[slot] = Some(conn);
                    self.open += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // EMFILE and friends: stop accepting this turn, keep serving,
                    // and try again next turn (no new event will come for the
                    // connections already waiting). Warn at most once a minute.
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
    fn drive(
        &mut self,
        poll: &mut Poll,
        slot: usize,
        shared: &Shared,
        worker: &mut Worker,
        now_ms: u64,
    ) {
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let env = HttpEnv {
            now: (now_ms / 1000) as u32,
            registry: &shared.registry,
            uptime_secs: now_ms / 1000,
            healthy: !shared.is_shutting_down(),
            client_ip_header: self.client_ip_header.as_deref(),
        };
        let mut reads = 0;
        let keep = loop {
            if !conn.flush(&worker.counters) {
                break false;
            }
            if conn.closing {
                break conn.out_pos < conn.out.len();
            }
            // Answer complete requests already buffered (pipelining).
            let mut answered = false;
            while !conn.closing && conn.out.len() - conn.out_pos < MAX_PENDING_OUT {
                match wire_http::parse_head(&conn.inbuf[..conn.in_len]) {
                    Ok(Some((head, used))) => {
                        let keep_alive = if head.content_length > 0 {
                            // We serve GET/HEAD only: a body is refused, not read.
                            worker.counters.reject(Reject::HttpMalformed);
                            error_reply(&mut conn.out, 413, "request bodies are not accepted\n");
                            false
                        } else {
                            shared.tracker.handle_http(
                                worker,
                                &env,
                                conn.peer,
                                &head,
                                &mut conn.out,
                                &mut self.scratch,
                            )
                        };
                        conn.inbuf.copy_within(used..conn.in_len, 0);
                        conn.in_len -= used;
                        conn.closing |= !keep_alive;
                        conn.since_ms = now_ms;
                        answered = true;
                    }
                    Ok(None) if conn.in_len == MAX_HEAD => {
                        worker.counters.reject(Reject::HttpMalformed);
                        error_reply(&mut conn.out, 431, "request head too large\n");
                        conn.closing = true;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        worker.counters.reject(Reject::HttpMalformed);
                        bad_request(&mut conn.out, e);
                        conn.closing = true;
                    }
                }
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
            if reads == READS_PER_TURN {
                self.ready.push(slot);
                break true;
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
                    worker.counters.bytes(Proto::Http, n, 0);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break false,
            }
        };
        if !keep {
            self.close(poll, slot);
        }
    }

    fn close(&mut self, poll: &mut Poll, slot: usize) {
        if let Some(mut conn) = self.conns.get_mut(slot).and_then(Option::take) {
            let _ = poll.registry().deregister(&mut conn.stream);
            self.free.push(slot);
            self.open -= 1;
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
        if self.out.capacity() > MAX_PENDING_OUT {
            // One large reply (e.g. /metrics) does not pin its buffer forever.
            self.out.shrink_to(4096);
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
