//! A packet worker: one thread, one mio `Poll`, its own `SO_REUSEPORT`
//! socket for every data-plane listener, so the kernel spreads clients over
//! workers and no two threads share a socket. Each turn reads the clock
//! once, then drains ready sockets until `WouldBlock` (with a per-turn
//! budget, so one flooded socket cannot starve the others), retrying on
//! `EINTR`. A datagram goes straight to the sans-IO core, which touches the
//! shared swarm map; the worker counts and publishes what the core says
//! happened. No channels, no async runtime, and no management work: map
//! walks, metrics, the API and file writes belong to the control thread.
//! Each turn adds its working time to the worker's counters and takes the
//! announce interval the control thread set for it ([`super::load`]).

use super::conn::{ConnConfig, Conns, Handoff, CONN_BASE};
use super::listen::{Listener, Role, Socket};
use super::load::Target;
use super::rendezvous::{RdvIo, RdvSocket};
use super::serve::{ClientAddr, TrackerHttp};
use super::udp::{Answer, UdpIo};
use crate::cluster::{Outbox, Record};
use crate::limit::RateLimiter;
use crate::rendezvous::Rendezvous;
use crate::stats::Counters;
use crate::time::{Clock, Now};
use crate::tracker::{Outcome, Tracker, Worker};
#[cfg(all(feature = "xdp", target_os = "linux"))]
use crate::xdp::xsk::{Xsk, BATCH as XSK_BATCH};
use mio::net::{TcpListener, UdpSocket};
use mio::{Events, Interest, Poll, Token, Waker};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The token of a loop's waker (a shutdown, a hand-off).
pub const WAKE: Token = Token(usize::MAX - 1);
/// The token of a worker's AF_XDP socket (`--xdp`).
#[cfg(all(feature = "xdp", target_os = "linux"))]
const XSK: Token = Token(usize::MAX - 2);
/// Longest a loop sleeps with nothing to do, so time-outs run when idle.
pub const IDLE_TICK: Duration = Duration::from_millis(250);

/// What a packet worker shares with the rest of the server: no more.
#[derive(Debug, Clone)]
pub struct WorkerContext {
    pub tracker: Arc<Tracker>,
    /// This worker's counters (it is their only writer).
    pub counters: Arc<Counters>,
    pub clock: Clock,
    /// Set once, at shutdown; the loop leaves at its next wake-up.
    pub stop: Arc<AtomicBool>,
    /// `--rate-limit`: one table for every worker.
    pub rate_limiter: Option<Arc<RateLimiter>>,
    /// HTTP connection limits.
    pub conns: ConnConfig,
    /// The HTTP tracker's client address behind a proxy.
    pub client: Arc<ClientAddr>,
    /// `--http-metrics`: the tracker port's operator paths go to the
    /// control thread through this.
    pub handoff: Option<Arc<Handoff>>,
    /// `--rendezvous`.
    pub rendezvous: Option<Arc<Rendezvous>>,
    /// `--cluster`: this worker's record buffer.
    pub outbox: Option<Outbox>,
    /// The announce interval the control thread sets for this worker.
    pub interval: Arc<Target>,
}

/// A worker's poller and sockets, bound but not yet running.
#[derive(Debug)]
pub struct WorkerIo {
    poll: Poll,
    udp: Vec<(usize, UdpSocket)>,
    /// Stream listeners by listener index (`None`: not a stream listener).
    streams: Vec<Option<TcpListener>>,
    roles: Vec<Option<Role>>,
    rdv: Vec<RdvSocket>,
    /// `--xdp`: this worker's AF_XDP socket and the tracker's UDP ports.
    #[cfg(all(feature = "xdp", target_os = "linux"))]
    xsk: Option<(Xsk, Vec<u16>)>,
}

impl WorkerIo {
    /// Register a worker's sockets (`(listener index, socket)`) with a new
    /// poll; the waker that stops it.
    pub fn new(
        table: &[Listener],
        sockets: Vec<(usize, Socket)>,
    ) -> io::Result<(WorkerIo, Arc<Waker>)> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let mut io = WorkerIo {
            poll,
            udp: Vec::new(),
            streams: (0..table.len()).map(|_| None).collect(),
            roles: vec![None; table.len()],
            rdv: Vec::new(),
            #[cfg(all(feature = "xdp", target_os = "linux"))]
            xsk: None,
        };
        for (i, socket) in sockets {
            let Some(l) = table.get(i) else { continue };
            match socket {
                Socket::Datagram(mut sock) => {
                    io.poll
                        .registry()
                        .register(&mut sock, Token(i), Interest::READABLE)?;
                    if l.role == Role::Rendezvous {
                        io.rdv.push(RdvSocket {
                            sock,
                            reach: l.reach,
                            token: i,
                        });
                    } else {
                        io.udp.push((i, sock));
                    }
                }
                Socket::Stream(mut listener) => {
                    io.poll
                        .registry()
                        .register(&mut listener, Token(i), Interest::READABLE)?;
                    io.streams[i] = Some(listener);
                    io.roles[i] = Some(l.role);
                }
            }
        }
        Ok((io, waker))
    }

    /// `--xdp`: serve the tracker's `ports` from this AF_XDP socket too.
    #[cfg(all(feature = "xdp", target_os = "linux"))]
    pub fn set_xsk(&mut self, mut xsk: Xsk, ports: Vec<u16>) -> io::Result<()> {
        self.poll
            .registry()
            .register(&mut xsk, XSK, Interest::READABLE)?;
        self.xsk = Some((xsk, ports));
        Ok(())
    }

    /// The inodes of the worker's tracker UDP sockets, whose receive drops
    /// are its load signal (empty where `/proc` cannot tell).
    pub fn udp_inodes(&self) -> Vec<u64> {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            self.udp
                .iter()
                .filter_map(|(_, sock)| crate::stats::fd_socket_inode(sock.as_raw_fd()))
                .collect()
        }
        #[cfg(not(target_os = "linux"))]
        Vec::new()
    }
}

/// Tell the other instances of a cluster about an announce the swarm took
/// at `now`: a fixed-size record into the worker's own buffer. Always
/// inlined: without a cluster it is one test, not a call.
#[inline(always)]
pub fn publish(outbox: Option<&Outbox>, now: Now, o: &Outcome, w: &Worker) {
    if let (Some(out), Outcome::Announced, Some(ev)) = (outbox, o, w.event()) {
        // A port-0 peer is not worth a record (the batch format refuses it).
        if ev.addr.port() != 0 {
            out.push(Record::from(*ev), now);
        }
    }
}

/// Run a packet worker until `ctx.stop` is set.
pub fn run(id: usize, mut io: WorkerIo, ctx: WorkerContext) {
    let mut events = Events::with_capacity(256);
    let mut udp_io = UdpIo::new();
    let mut worker = Worker::new().with_events(ctx.outbox.is_some());
    // Sockets that still had datagrams queued when their budget ran out.
    let mut pending = vec![false; io.udp.len()];
    let mut conns = Conns::new(&ctx.conns, io.roles.clone());
    if let Some(h) = &ctx.handoff {
        conns = conns.with_handoff(Arc::clone(h));
    }
    let mut rdv = RdvIo::new(io.rdv.len());
    let mut scratch = Vec::new();
    let counters = &*ctx.counters;
    let outbox = ctx.outbox.as_ref();
    log::debug!("worker {id} running");
    let mut now = ctx.clock.now();
    let mut interval = 0;
    let mut turn_start = Instant::now();
    // The AF_XDP socket had frames left when its batch ran out.
    #[cfg_attr(not(all(feature = "xdp", target_os = "linux")), allow(unused_mut))]
    let mut xsk_pending = false;
    loop {
        // Last turn's clock is close enough to bound the sleep.
        let timeout = if pending.iter().any(|&p| p) || rdv.has_pending() || xsk_pending {
            Duration::ZERO
        } else {
            conns
                .wake_in_ms(now.ms())
                .map_or(IDLE_TICK, |ms| IDLE_TICK.min(Duration::from_millis(ms)))
        };
        // The turn's work ends here; what poll waits is idle time.
        counters.add_busy(turn_start.elapsed().as_nanos() as u64);
        let polled = io.poll.poll(&mut events, Some(timeout));
        turn_start = Instant::now();
        match polled {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::error!("worker {id}: poll failed, worker stops: {e}");
                break;
            }
        }
        if ctx.stop.load(Ordering::Relaxed) {
            break;
        }
        now = ctx.clock.now();
        let wanted = ctx.interval.get();
        if wanted != interval {
            interval = wanted;
            worker.set_interval(wanted);
            counters.set_interval(ctx.tracker.intervals().centre(wanted));
        }
        conns.expire(&mut io.poll, now.ms(), counters);
        {
            let mut http = TrackerHttp {
                tracker: &ctx.tracker,
                worker: &mut worker,
                counters,
                outbox,
                client: &ctx.client,
                rate_limiter: ctx.rate_limiter.as_deref(),
                operator_paths: ctx.handoff.is_some(),
                scratch: &mut scratch,
            };
            conns.run_ready(&mut io.poll, &io.streams, &mut http, now);
            for event in events.iter() {
                let t = event.token().0;
                match io.roles.get(t).copied().flatten() {
                    _ if event.token() == WAKE => {}
                    #[cfg(all(feature = "xdp", target_os = "linux"))]
                    _ if event.token() == XSK => xsk_pending = true,
                    Some(_) => {
                        conns.on_event(&mut io.poll, &io.streams, &mut http, event, now);
                    }
                    None if t >= CONN_BASE => {
                        conns.on_event(&mut io.poll, &io.streams, &mut http, event, now);
                    }
                    None => {
                        if let Some(i) = io.udp.iter().position(|(tok, _)| *tok == t) {
                            pending[i] = true;
                        } else {
                            rdv.ready(&io.rdv, t);
                        }
                    }
                }
            }
        }
        let mut answer = Answer {
            tracker: &ctx.tracker,
            worker: &mut worker,
            counters,
            outbox,
            rate_limiter: ctx.rate_limiter.as_deref(),
        };
        for (i, (_, sock)) in io.udp.iter().enumerate() {
            if pending[i] {
                pending[i] = udp_io.drain(sock, &mut answer, now);
            }
        }
        #[cfg(all(feature = "xdp", target_os = "linux"))]
        if let (true, Some((xsk, ports))) = (xsk_pending, io.xsk.as_mut()) {
            xsk_pending = match xsk.serve(ports, |src, req, out| {
                answer.answer(now, src, req, out).unwrap_or(0)
            }) {
                Ok(s) => s.received == XSK_BATCH,
                Err(e) => {
                    log::warn!("worker {id}: AF_XDP socket: {e}");
                    false
                }
            };
        }
        if let Some(r) = &ctx.rendezvous {
            rdv.run(&io.rdv, r, counters, now.secs());
        }
    }
    log::debug!("worker {id} stopped");
}
