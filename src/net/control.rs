//! The control thread: the operator listeners (`--metrics`), the management
//! API (`--api`) and its torrust-compatible twin (`--torrust-api`), the
//! tracker port's `/metrics` and `/health` (handed over
//! by the packet workers with `--http-metrics`), and the periodic work of
//! [`super::housekeeping`]. A walk of the map, a metrics render, an fsync of
//! the access list: none of them can stall a packet, because none of them
//! runs on a packet worker.
//!
//! It is a mio loop like a packet worker's, over the same connection code
//! ([`super::conn`]), with its own counters (so a packet worker's stay
//! single-writer). On Linux it runs at a lower scheduling priority than the
//! packet workers (`nice`, [`ControlContext::nice`]): on a busy host the
//! kernel gives packets the CPU first and the control thread what is left.

use super::conn::{refuse_body, ConnConfig, Conns, Handler, Handoff, Request, Served, CONN_BASE};
use super::count;
use super::housekeeping::{Housekeeping, Sources};
use super::listen::{Listener, Role, Socket};
use super::serve::{client_ip, is_operator_path, ClientAddr, TrackerHttp, TEXT};
use super::worker::{IDLE_TICK, WAKE};
use crate::api;
use crate::cluster::{Outbox, Status};
use crate::limit::RateLimiter;
use crate::stats::{Counters, Kind, Proto, Reject};
use crate::time::Clock;
use crate::tracker::Worker;
use crate::wire::http::{self, Method};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Content type of `/metrics`.
const PROMETHEUS: &str = "text/plain; version=0.0.4";

/// What the control thread shares with the rest of the server.
#[derive(Debug, Clone)]
pub struct ControlContext {
    /// The map, the registry, the API and the rendezvous service, for the
    /// periodic work and the operator routes.
    pub sources: Sources,
    /// Its own counters (also in the registry).
    pub counters: Arc<Counters>,
    pub clock: Clock,
    pub stop: Arc<AtomicBool>,
    pub conns: ConnConfig,
    /// The cluster link, whose state `/health` tells.
    pub cluster: Option<Arc<Status>>,
    /// For tracker requests that follow an operator request on a
    /// handed-over tracker-port connection.
    pub client: Arc<ClientAddr>,
    pub rate_limiter: Option<Arc<RateLimiter>>,
    pub outbox: Option<Outbox>,
    /// The thread's nice value (Linux; 0 = as the workers).
    pub nice: i32,
}

/// The control thread's poller, listeners and hand-off queue.
#[derive(Debug)]
pub struct ControlIo {
    poll: Poll,
    streams: Vec<Option<TcpListener>>,
    roles: Vec<Option<Role>>,
    handoff: Arc<Handoff>,
}

impl ControlIo {
    /// Register the control listeners (`(listener index, socket)`) with a
    /// new poll; the waker that stops it (the hand-off queue wakes it too).
    pub fn new(
        table: &[Listener],
        sockets: Vec<(usize, Socket)>,
    ) -> io::Result<(ControlIo, Arc<Waker>)> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let mut io = ControlIo {
            poll,
            streams: (0..table.len()).map(|_| None).collect(),
            roles: vec![None; table.len()],
            handoff: Arc::new(Handoff::new(Arc::clone(&waker))),
        };
        for (i, socket) in sockets {
            let (Some(l), Socket::Stream(mut listener)) = (table.get(i), socket) else {
                continue;
            };
            io.poll
                .registry()
                .register(&mut listener, Token(i), Interest::READABLE)?;
            io.streams[i] = Some(listener);
            io.roles[i] = Some(l.role);
        }
        Ok((io, waker))
    }

    /// Where packet workers hand connections to this thread.
    pub fn handoff(&self) -> Arc<Handoff> {
        Arc::clone(&self.handoff)
    }
}

/// Run the control thread until `ctx.stop` is set.
pub fn run(mut io: ControlIo, ctx: ControlContext) {
    if ctx.nice != 0 {
        #[cfg(target_os = "linux")]
        if let Err(e) = crate::sys::nice_this_thread(ctx.nice) {
            log::warn!("cannot lower the control thread's priority: {e}");
        }
    }
    let mut events = Events::with_capacity(64);
    let mut conns = Conns::new(&ctx.conns, io.roles.clone());
    let mut housekeeping = Housekeeping::new(ctx.sources.clone(), &ctx.clock);
    let mut worker = Worker::new().with_events(ctx.outbox.is_some());
    let mut scratch = Vec::new();
    let mut text = String::new();
    let mut now = ctx.clock.now();
    let mut next = IDLE_TICK;
    log::debug!("control thread running");
    loop {
        let timeout = conns
            .wake_in_ms(now.ms())
            .map_or(next, |ms| next.min(Duration::from_millis(ms)));
        match io.poll.poll(&mut events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::error!("control thread: poll failed, it stops: {e}");
                break;
            }
        }
        if ctx.stop.load(Ordering::Relaxed) {
            break;
        }
        now = ctx.clock.now();
        // The periodic work first: a reply this turn (say `/metrics`) then
        // tells that the sweeps due at `now` are done.
        next = housekeeping.turn(now);
        let counters = &*ctx.counters;
        let mut h = ControlHttp {
            ctx: &ctx,
            worker: &mut worker,
            scratch: &mut scratch,
            text: &mut text,
        };
        conns.adopt(&mut io.poll, &io.handoff, &mut h, now);
        conns.expire(&mut io.poll, now.ms(), counters);
        conns.run_ready(&mut io.poll, &io.streams, &mut h, now);
        for event in events.iter() {
            let t = event.token().0;
            if event.token() != WAKE && (t >= CONN_BASE || io.roles.get(t).is_some()) {
                conns.on_event(&mut io.poll, &io.streams, &mut h, event, now);
            }
        }
    }
    log::debug!("control thread stopped");
}

/// The control thread's request handler.
struct ControlHttp<'a> {
    ctx: &'a ControlContext,
    /// For tracker requests on handed-over connections.
    worker: &'a mut Worker,
    scratch: &'a mut Vec<u8>,
    /// The `/metrics` text, rendered into one reused buffer.
    text: &'a mut String,
}

impl Handler for ControlHttp<'_> {
    fn counters(&self) -> &Counters {
        &self.ctx.counters
    }

    fn serve(&mut self, req: &Request<'_>, out: &mut Vec<u8>) -> Served {
        let path = req.head.path;
        let api_req = || api::Request {
            buf: req.buf,
            head: req.head,
            head_len: req.head_len,
            now: req.now,
        };
        let ctx = self.ctx;
        match (req.role, &ctx.sources.api) {
            (Role::Api, Some(api)) => served(api::serve(api, &ctx.counters, api_req(), out)),
            (Role::Torrust, Some(api)) => {
                served(api::torrust::serve(api, &ctx.counters, api_req(), out))
            }
            (Role::Http, _) if !is_operator_path(path) => {
                let mut tracker = TrackerHttp {
                    tracker: &ctx.sources.tracker,
                    worker: self.worker,
                    counters: &ctx.counters,
                    outbox: ctx.outbox.as_ref(),
                    client: &ctx.client,
                    rate_limiter: ctx.rate_limiter.as_deref(),
                    operator_paths: false,
                    scratch: self.scratch,
                };
                tracker.serve(req, out)
            }
            _ => self.operator(req, out),
        }
    }
}

fn served(s: api::Served) -> Served {
    match s {
        api::Served::Incomplete => Served::Incomplete,
        api::Served::Done { used, keep_alive } => Served::Done { used, keep_alive },
    }
}

impl ControlHttp<'_> {
    /// `/metrics` and `/health`; anything else is 404, as an unknown path.
    fn operator(&mut self, req: &Request<'_>, out: &mut Vec<u8>) -> Served {
        let head = req.head;
        let c = &*self.ctx.counters;
        if head.content_length > 0 {
            return refuse_body(req, c, out);
        }
        let fam = count::family(
            client_ip(&self.ctx.client, head, req.peer, c).unwrap_or_else(|| req.peer.ip()),
        );
        let body = &mut *self.scratch;
        body.clear();
        let (status, content_type) = match (head.method, head.path) {
            (Method::Other, _) => {
                c.reject(Reject::HttpMethod);
                body.extend_from_slice(b"method not allowed\n");
                (405, TEXT)
            }
            (_, b"/health") => {
                c.request(Proto::Http, fam, Kind::Health);
                if self.ctx.stop.load(Ordering::Relaxed) {
                    body.extend_from_slice(b"shutting down\n");
                    (503, TEXT)
                } else {
                    body.extend_from_slice(b"ok\n");
                    // Serving alone is still serving: the cluster state is
                    // told, not turned into a failing status.
                    if let Some(cl) = &self.ctx.cluster {
                        body.extend_from_slice(if cl.connected() {
                            b"cluster: connected\n"
                        } else {
                            b"cluster: disconnected, serving alone\n"
                        });
                    }
                    (200, TEXT)
                }
            }
            (_, b"/metrics") => {
                c.request(Proto::Http, fam, Kind::Metrics);
                let src = &self.ctx.sources;
                self.text.clear();
                src.registry.render_prometheus(
                    self.text,
                    &src.tracker.swarm().totals(),
                    req.now.uptime_secs(),
                );
                body.extend_from_slice(self.text.as_bytes());
                (200, PROMETHEUS)
            }
            _ => {
                c.reject(Reject::HttpNotFound);
                body.extend_from_slice(b"not found\n");
                (404, TEXT)
            }
        };
        c.response(Proto::Http, fam, Kind::Other);
        http::write_response_head(out, status, content_type, body.len(), head.keep_alive);
        if head.method != Method::Head {
            out.extend_from_slice(body);
        }
        Served::Done {
            used: req.head_len,
            keep_alive: head.keep_alive,
        }
    }
}
