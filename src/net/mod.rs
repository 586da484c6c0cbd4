//! Sockets, mio worker loops and shutdown.
//!
//! [`Server::bind`] opens every socket up front (so start-up errors surface
//! before any thread runs, and tests can read the ephemeral ports), then
//! [`Server::spawn`] starts one thread per worker. Each worker owns a mio `Poll`
//! and its own `SO_REUSEPORT` socket for every address, so the kernel spreads
//! clients over workers and no two threads ever share a socket. A worker
//! decodes a datagram, calls the sans-IO core (which touches the shared swarm
//! map directly) and sends the reply: no channels, no async runtime.
//!
//! The loop reads the clock once per turn, drains ready sockets until
//! `WouldBlock` (with a per-turn budget so one flooded socket cannot starve the
//! others or the housekeeping), retries on `EINTR`, and does housekeeping at the
//! start of each turn: a few shards of peer expiry, HTTP timeouts, the stats
//! line. A [`Shutdown`] handle wakes every loop at once.
//!
//! With `--rendezvous`, each worker also has one `SO_REUSEPORT` UDP socket per
//! rendezvous address, drained the same way into the sans-IO
//! [`crate::rendezvous`] room (plain `recv_from`/`send_to`: its traffic is a
//! keep-alive every few minutes per peer, not worth batching), and a few
//! registry shards are swept per turn next to the peer sweep.

pub mod http;
#[cfg(target_os = "linux")]
mod mmsg;
mod socket;
#[cfg(unix)]
pub mod sys;

use crate::config::Config;
use crate::limit::{ConnLimiter, RateLimiter};
use crate::rendezvous::{message::MAX_REQUEST, Outcome, Rendezvous, Replies};
use crate::stats::{Counters, Dropped, Family, Kind, Proto, Registry, Reject};
use crate::tracker::{Tracker, Worker};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use socket::Reach;
use std::io;
use std::net::{SocketAddr, SocketAddrV6};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use socket::{BindError, Buffers};

/// The tracker's clock, read once per loop turn: whole seconds since start.
#[derive(Debug, Clone)]
pub enum Clock {
    /// Real monotonic time.
    System(Instant),
    /// Time set by hand, for tests of expiry and connection-id lifetimes.
    Manual(Arc<AtomicU32>),
}

impl Clock {
    pub fn system() -> Clock {
        Clock::System(Instant::now())
    }

    /// Milliseconds since start (manual clocks move in whole seconds).
    pub fn now_ms(&self) -> u64 {
        match self {
            Clock::System(start) => start.elapsed().as_millis() as u64,
            Clock::Manual(secs) => u64::from(secs.load(Ordering::Relaxed)) * 1000,
        }
    }
}

/// State every worker shares.
#[derive(Debug)]
pub struct Shared {
    pub tracker: Tracker,
    pub registry: Registry,
    pub clock: Clock,
    pub config: Config,
    /// Next shard to sweep, counted from start (taken with compare-exchange so
    /// workers split the sweep without a lock).
    sweep_cursor: AtomicU64,
    sweep_period_ms: u64,
    /// When (ms) evictions may next be logged, and the eviction total last
    /// logged: at most one line a minute, whatever the flood.
    evict_log_at: AtomicU64,
    evicted_logged: AtomicU64,
    shutdown: AtomicBool,
    /// The rendezvous service, when enabled.
    pub rendezvous: Option<RendezvousState>,
    /// The warm-restart state file (`--state-file`), when configured.
    pub state: Option<crate::state::StateFile>,
    /// The management API (`--api`), when enabled.
    pub api: Option<crate::api::Api>,
    /// The cluster link (`--cluster`): the workers' record buffers and the
    /// link's state; its threads start with the workers.
    pub cluster: Option<Arc<crate::cluster::Status>>,
    /// `--rate-limit`: one table for every worker (see `limit`).
    pub rate_limiter: Option<RateLimiter>,
    /// `--http-max-connections-per-ip`: counts over every worker.
    pub conn_limiter: Option<Arc<ConnLimiter>>,
}

/// The rendezvous service and its own expiry sweep (same scheme as the
/// peers': a cursor workers advance with compare-exchange, no lock).
#[derive(Debug)]
pub struct RendezvousState {
    /// Shared with the stats registry, which reads its gauges for /metrics.
    pub service: Arc<Rendezvous>,
    sweep_cursor: AtomicU64,
    /// Every registry shard is swept once per period.
    sweep_period_ms: u64,
}

impl Shared {
    pub fn uptime_secs(&self) -> u64 {
        self.clock.now_ms() / 1000
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed)
    }
}

/// Stops a running server: every worker leaves its loop at its next wake-up,
/// and `shutdown` wakes them all at once.
#[derive(Debug, Clone)]
pub struct Shutdown {
    shared: Arc<Shared>,
    wakers: Arc<Vec<Waker>>,
}

impl Shutdown {
    pub fn shutdown(&self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        for w in self.wakers.iter() {
            if let Err(e) = w.wake() {
                log::warn!("could not wake a worker: {e}");
            }
        }
    }
}

const WAKE: Token = Token(usize::MAX - 1);

/// Sockets and poller of one worker, bound but not yet running.
struct WorkerIo {
    poll: Poll,
    udp: Vec<UdpSocket>,
    /// HTTP tracker listeners, then operator (`--metrics`) listeners.
    http: Vec<mio::net::TcpListener>,
    /// How many of `http` are tracker listeners.
    tracker_listeners: usize,
    /// How many of `http` are operator listeners (after the tracker's; the
    /// API's follow them).
    operator_listeners: usize,
    /// Rendezvous sockets; their tokens follow the HTTP listeners'.
    rdv: Vec<RdvSocket>,
}

/// A rendezvous socket and the destinations it can send to.
struct RdvSocket {
    sock: UdpSocket,
    reach: Reach,
}

/// A bound server. Nothing runs until [`Server::spawn`].
#[derive(Debug)]
pub struct Server {
    shared: Arc<Shared>,
    workers: Vec<WorkerIo>,
    wakers: Vec<Waker>,
    udp_addrs: Vec<SocketAddr>,
    http_addrs: Vec<SocketAddr>,
    rendezvous_addrs: Vec<SocketAddr>,
    metrics_addrs: Vec<SocketAddr>,
    api_addrs: Vec<SocketAddr>,
    buffers: Option<Buffers>,
}

impl std::fmt::Debug for WorkerIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerIo")
            .field("udp", &self.udp.len())
            .field("http", &self.http.len())
            .field("rdv", &self.rdv.len())
            .field("tracker_listeners", &self.tracker_listeners)
            .finish()
    }
}

impl Server {
    /// Bind every configured address for every worker.
    pub fn bind(config: Config) -> Result<Server, BindError> {
        Server::bind_with_clock(config, Clock::system())
    }

    /// As [`Server::bind`], with a given clock (tests use a manual one).
    pub fn bind_with_clock(config: Config, clock: Clock) -> Result<Server, BindError> {
        config.validate().map_err(BindError::Config)?;
        let n = config.workers;
        let mut udp = socket::bind_group(
            &config.udp,
            n,
            config.socket_buffer,
            config.default_addrs,
            socket::Kind::Udp,
        )?;
        let mut http = socket::bind_group(
            &config.http,
            n,
            config.socket_buffer,
            config.default_addrs,
            socket::Kind::Tcp,
        )?;
        let mut metrics = socket::bind_group(
            &config.metrics,
            n,
            config.socket_buffer,
            false,
            socket::Kind::Metrics,
        )?;
        let mut api = socket::bind_group(
            &config.api,
            n,
            config.socket_buffer,
            false,
            socket::Kind::Api,
        )?;
        let mut rdv = socket::bind_group(
            &config.rendezvous,
            n,
            config.socket_buffer,
            false,
            socket::Kind::Rendezvous,
        )?;
        // The smallest grant over every datagram socket: what the operator
        // should compare with --socket-buffer.
        let buffers = udp
            .iter()
            .chain(&rdv)
            .filter_map(|g| g.buffers)
            .reduce(|a, b| Buffers {
                recv: a.recv.min(b.recv),
                send: a.send.min(b.send),
            });
        let mut workers = Vec::with_capacity(n);
        let mut wakers = Vec::with_capacity(n);
        let mut udp_addrs = Vec::new();
        let mut http_addrs = Vec::new();
        let mut rendezvous_addrs = Vec::new();
        let mut metrics_addrs = Vec::new();
        let mut api_addrs = Vec::new();
        for w in 0..n {
            let poll = Poll::new().map_err(BindError::Poll)?;
            wakers.push(Waker::new(poll.registry(), WAKE).map_err(BindError::Poll)?);
            let mut io = WorkerIo {
                poll,
                udp: Vec::new(),
                http: Vec::new(),
                rdv: Vec::new(),
                tracker_listeners: 0,
                operator_listeners: 0,
            };
            let n_udp = udp.len();
            // Operator listeners follow the tracker's in `io.http` (their
            // role is told apart by index: see `http::Role`).
            let rdv_base = n_udp + http.len() + metrics.len() + api.len();
            for (i, group) in udp.iter_mut().enumerate() {
                let std_sock = group.next_udp().ok_or(BindError::Missing)?;
                if w == 0 {
                    udp_addrs.push(group.addr);
                }
                let mut sock = UdpSocket::from_std(std_sock);
                io.poll
                    .registry()
                    .register(&mut sock, Token(i), Interest::READABLE)
                    .map_err(BindError::Poll)?;
                io.udp.push(sock);
            }
            for (i, group) in http.iter_mut().enumerate() {
                let std_listener = group.next_tcp().ok_or(BindError::Missing)?;
                if w == 0 {
                    http_addrs.push(group.addr);
                }
                let mut l = mio::net::TcpListener::from_std(std_listener);
                io.poll
                    .registry()
                    .register(&mut l, Token(n_udp + i), Interest::READABLE)
                    .map_err(BindError::Poll)?;
                io.http.push(l);
            }
            for (i, group) in metrics.iter_mut().enumerate() {
                let std_listener = group.next_tcp().ok_or(BindError::Missing)?;
                if w == 0 {
                    metrics_addrs.push(group.addr);
                }
                let mut l = mio::net::TcpListener::from_std(std_listener);
                let token = Token(n_udp + http.len() + i);
                io.poll
                    .registry()
                    .register(&mut l, token, Interest::READABLE)
                    .map_err(BindError::Poll)?;
                io.http.push(l);
            }
            for (i, group) in api.iter_mut().enumerate() {
                let std_listener = group.next_tcp().ok_or(BindError::Missing)?;
                if w == 0 {
                    api_addrs.push(group.addr);
                }
                let mut l = mio::net::TcpListener::from_std(std_listener);
                let token = Token(n_udp + http.len() + metrics.len() + i);
                io.poll
                    .registry()
                    .register(&mut l, token, Interest::READABLE)
                    .map_err(BindError::Poll)?;
                io.http.push(l);
            }
            for (i, group) in rdv.iter_mut().enumerate() {
                let std_sock = group.next_udp().ok_or(BindError::Missing)?;
                if w == 0 {
                    rendezvous_addrs.push(group.addr);
                }
                let mut sock = UdpSocket::from_std(std_sock);
                io.poll
                    .registry()
                    .register(&mut sock, Token(rdv_base + i), Interest::READABLE)
                    .map_err(BindError::Poll)?;
                io.rdv.push(RdvSocket {
                    sock,
                    reach: group.reach,
                });
            }
            io.tracker_listeners = http.len();
            io.operator_listeners = metrics.len();
            workers.push(io);
        }
        let rendezvous = (!config.rendezvous.is_empty()).then(|| {
            let settings = &config.rendezvous_settings;
            RendezvousState {
                service: Arc::new(Rendezvous::new(settings.clone(), config.shards)),
                sweep_cursor: AtomicU64::new(0),
                // Expired entries are already ignored; the sweep frees their
                // memory an eighth of the timeout late at most (1 s..60 s).
                sweep_period_ms: (u64::from(settings.timeout) * 1000 / 8).clamp(1000, 60_000),
            }
        });
        let cluster = config
            .cluster
            .as_ref()
            .map(|_| Arc::new(crate::cluster::Status::new(n)));
        let registry = Registry {
            workers: (0..n).map(|_| Arc::new(Counters::default())).collect(),
            rendezvous: rendezvous.as_ref().map(|r| Arc::clone(&r.service)),
            max_peers: config.tracker.max_peers,
            cluster: cluster.clone(),
        };
        let peer_timeout_ms = u64::from(config.tracker.peer_timeout) * 1000;
        let mut tracker = Tracker::new(config.tracker.clone(), config.shards);
        // Loaded whole before any worker runs: no request sees a half map.
        let state = match &config.state_file {
            Some(path) => Some(
                crate::state::StateFile::open(
                    path,
                    config.state_interval,
                    &mut tracker,
                    (clock.now_ms() / 1000) as u32,
                )
                .map_err(BindError::Config)?,
            ),
            None => None,
        };
        if let Some(st) = &state {
            st.record_load(&registry.workers[0]);
        }
        let shared = Arc::new(Shared {
            tracker,
            registry,
            clock,
            sweep_cursor: AtomicU64::new(0),
            // Every shard is swept once per period: peers leave at most this late.
            sweep_period_ms: (peer_timeout_ms / 8).clamp(1000, 60_000),
            evict_log_at: AtomicU64::new(EVICT_LOG_MS),
            evicted_logged: AtomicU64::new(0),
            shutdown: AtomicBool::new(false),
            rendezvous,
            api: config
                .api_token
                .clone()
                .filter(|_| !config.api.is_empty())
                .map(crate::api::Api::new),
            cluster,
            rate_limiter: config.limits.rate_limiter(),
            conn_limiter: config.limits.conn_limiter().map(Arc::new),
            config,
            state,
        });
        Ok(Server {
            shared,
            workers,
            wakers,
            udp_addrs,
            http_addrs,
            rendezvous_addrs,
            metrics_addrs,
            api_addrs,
            buffers,
        })
    }

    /// The socket buffers the kernel granted (the smallest over the UDP and
    /// rendezvous sockets); `None` without datagram sockets.
    pub fn socket_buffers(&self) -> Option<Buffers> {
        self.buffers
    }

    /// The bound UDP addresses (ports resolved), one per configured address.
    pub fn udp_addrs(&self) -> &[SocketAddr] {
        &self.udp_addrs
    }

    /// The bound HTTP addresses (ports resolved).
    pub fn http_addrs(&self) -> &[SocketAddr] {
        &self.http_addrs
    }

    /// The bound rendezvous addresses (ports resolved).
    pub fn rendezvous_addrs(&self) -> &[SocketAddr] {
        &self.rendezvous_addrs
    }

    /// The bound operator (`--metrics`) addresses (ports resolved).
    pub fn metrics_addrs(&self) -> &[SocketAddr] {
        &self.metrics_addrs
    }

    /// The bound management API (`--api`) addresses (ports resolved).
    pub fn api_addrs(&self) -> &[SocketAddr] {
        &self.api_addrs
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Let the management API change the access list and keys behind
    /// `handle`, writing them back to the files `access` names. Without
    /// `--api` this does nothing; without it, the API answers 409.
    pub fn manage_access(
        &self,
        access: &crate::access::AccessConfig,
        handle: crate::access::PolicyHandle,
    ) {
        if let Some(api) = &self.shared.api {
            let files =
                crate::api::manage::Files::new(handle, access.list.clone(), access.keys.clone());
            if api.set_files(files).is_err() {
                log::warn!("the API already manages the access files");
            }
        }
    }

    /// Enforce the access policy behind `handle` (see [`crate::access`]).
    /// Before [`Server::spawn`], so no request is served without it. Key
    /// expiries are Unix times: the server's clock is anchored to the system
    /// time here.
    pub fn set_access(&self, handle: crate::access::PolicyHandle) -> Result<(), String> {
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let unix_at_zero = unix.saturating_sub(self.shared.uptime_secs());
        self.shared
            .tracker
            .set_access(handle, unix_at_zero)
            .map_err(|_| "an access policy is already set".to_string())
    }

    /// Start the workers. With `--cluster`, first load the other instances'
    /// state (a bounded wait when Redis is unreachable), then start the
    /// cluster threads next to the workers.
    pub fn spawn(self) -> io::Result<Running> {
        let shutdown = Shutdown {
            shared: Arc::clone(&self.shared),
            wakers: Arc::new(self.wakers),
        };
        crate::cluster::join_state(&self.shared);
        let mut threads = crate::cluster::spawn(&self.shared)?;
        for (id, io) in self.workers.into_iter().enumerate() {
            let shared = Arc::clone(&self.shared);
            let t = std::thread::Builder::new()
                .name(format!("shoal-worker-{id}"))
                .spawn(move || worker_loop(id, io, shared))?;
            threads.push(t);
        }
        let state = crate::state::Writer::spawn(&self.shared)?;
        Ok(Running {
            shutdown,
            threads,
            state,
            udp_addrs: self.udp_addrs,
            http_addrs: self.http_addrs,
            rendezvous_addrs: self.rendezvous_addrs,
            metrics_addrs: self.metrics_addrs,
            api_addrs: self.api_addrs,
        })
    }
}

/// A running server.
#[derive(Debug)]
pub struct Running {
    shutdown: Shutdown,
    threads: Vec<JoinHandle<()>>,
    /// Periodic state writes and the final one (`--state-file`).
    state: Option<crate::state::Writer>,
    udp_addrs: Vec<SocketAddr>,
    http_addrs: Vec<SocketAddr>,
    rendezvous_addrs: Vec<SocketAddr>,
    metrics_addrs: Vec<SocketAddr>,
    api_addrs: Vec<SocketAddr>,
}

impl Running {
    pub fn udp_addrs(&self) -> &[SocketAddr] {
        &self.udp_addrs
    }

    pub fn http_addrs(&self) -> &[SocketAddr] {
        &self.http_addrs
    }

    pub fn rendezvous_addrs(&self) -> &[SocketAddr] {
        &self.rendezvous_addrs
    }

    pub fn metrics_addrs(&self) -> &[SocketAddr] {
        &self.metrics_addrs
    }

    pub fn api_addrs(&self) -> &[SocketAddr] {
        &self.api_addrs
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shutdown.shared
    }

    /// A handle that stops the server from elsewhere (a signal thread).
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Stop every worker and wait for them.
    pub fn stop(self) {
        self.shutdown.shutdown();
        self.join();
    }

    /// Wait for the workers to finish (after a shutdown), then write the
    /// final state snapshot (`--state-file`): nothing changes the map any more.
    pub fn join(self) {
        for t in self.threads {
            if t.join().is_err() {
                log::error!("a worker thread panicked");
            }
        }
        if let Some(w) = self.state {
            w.finish();
        }
    }
}

/// Datagrams handled per socket per loop turn before other sockets and
/// housekeeping get a turn.
const UDP_BUDGET: usize = 512;
/// How many datagrams of a receive batch ahead of the one being answered the
/// loop prefetches the swarm's lines for ([`Tracker::prefetch_udp`]): a DRAM
/// miss lands well within the microsecond one request takes, and a few
/// requests' lines are little next to the caches. 4 is the only distance
/// measured (`benches/profile.sh`, BENCHMARKS.md).
const PREFETCH_AHEAD: usize = 4;
/// Shards swept at most per loop turn, unless more are needed to keep pace
/// (see [`housekeeping`]).
const SWEEP_BUDGET: u64 = 64;
/// Longest a loop sleeps with nothing to do, so sweeps and timeouts run when idle.
const IDLE_TICK: Duration = Duration::from_millis(250);

fn worker_loop(id: usize, mut io: WorkerIo, shared: Arc<Shared>) {
    let counters = Arc::clone(&shared.registry.workers[id]);
    let mut worker = Worker::new(Arc::clone(&counters));
    worker.cluster = shared.cluster.as_ref().map(|c| c.outbox(id));
    let mut events = Events::with_capacity(256);
    let mut udp_io = UdpIo::new();
    // Sockets that still had datagrams queued when their budget ran out.
    let mut pending = vec![false; io.udp.len()];
    let roles = (0..io.http.len()).map(|i| {
        if i < io.tracker_listeners {
            http::Role::Tracker
        } else if i < io.tracker_listeners + io.operator_listeners {
            http::Role::Operator
        } else {
            http::Role::Api
        }
    });
    let mut http = http::HttpWorker::new(&shared.config, io.udp.len(), roles.collect());
    http.set_conn_limiter(shared.conn_limiter.clone());
    let mut rdv = RdvIo::new(io.udp.len() + io.http.len(), io.rdv.len());
    let mut stats = StatsLine::new(&shared);
    log::debug!("worker {id} running");
    let mut now_ms = shared.clock.now_ms();
    loop {
        // Last turn's clock is close enough to bound the sleep.
        let timeout = if pending.iter().any(|&p| p) || rdv.has_pending() {
            Duration::ZERO
        } else {
            http.wake_in_ms(now_ms)
                .map_or(IDLE_TICK, |ms| IDLE_TICK.min(Duration::from_millis(ms)))
        };
        match io.poll.poll(&mut events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::error!("worker {id}: poll failed, worker stops: {e}");
                break;
            }
        }
        if shared.is_shutting_down() {
            break;
        }
        now_ms = shared.clock.now_ms();
        let now = (now_ms / 1000) as u32;
        housekeeping(&shared, &mut worker, now_ms, now);
        expire_rendezvous(&shared, now_ms, now);
        if id == 0 {
            stats.maybe_log(&shared, now_ms);
            if let Some(api) = &shared.api {
                api.tick(&shared.registry, || shared.tracker.swarm().totals(), now_ms);
            }
        }
        http.expire(&mut io.poll, now_ms, &counters);
        http.run_ready(&mut io.poll, &io.http, &shared, &mut worker, now_ms);
        for event in events.iter() {
            let t = event.token().0;
            if t < io.udp.len() {
                pending[t] = true;
            } else if let Some(p) = rdv.pending_of(t) {
                *p = true;
            } else if event.token() != WAKE {
                http.on_event(&mut io.poll, &io.http, &shared, &mut worker, event, now_ms);
            }
        }
        for (i, sock) in io.udp.iter().enumerate() {
            if pending[i] {
                let limit = shared.rate_limiter.as_ref();
                pending[i] = udp_io.drain(sock, &shared.tracker, &mut worker, limit, now_ms);
            }
        }
        if let Some(r) = &shared.rendezvous {
            rdv.run(&io.rdv, &r.service, &counters, now);
        }
    }
    log::debug!("worker {id} stopped");
}

/// Per-worker UDP buffers: batched syscalls on Linux, one datagram at a time elsewhere.
struct UdpIo {
    #[cfg(target_os = "linux")]
    batch: mmsg::Batch,
    #[cfg(not(target_os = "linux"))]
    bufs: Box<([u8; 2048], [u8; 2048])>,
}

impl UdpIo {
    fn new() -> UdpIo {
        UdpIo {
            #[cfg(target_os = "linux")]
            batch: mmsg::Batch::new(),
            #[cfg(not(target_os = "linux"))]
            bufs: Box::new(([0; 2048], [0; 2048])),
        }
    }

    /// Receive and answer datagrams until the socket is empty or the budget is
    /// spent. Returns whether datagrams may remain.
    #[cfg(target_os = "linux")]
    fn drain(
        &mut self,
        sock: &UdpSocket,
        tracker: &Tracker,
        worker: &mut Worker,
        limit: Option<&RateLimiter>,
        now_ms: u64,
    ) -> bool {
        let now = (now_ms / 1000) as u32;
        use std::os::fd::AsRawFd;
        let fd = sock.as_raw_fd();
        let batch = &mut self.batch;
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
            let ahead = |i| {
                if let Some(req) = batch.rx.payload(i) {
                    tracker.prefetch_udp(req);
                }
            };
            (0..PREFETCH_AHEAD).for_each(ahead);
            for i in 0..n {
                ahead(i + PREFETCH_AHEAD);
                let Some((req, src)) = batch.rx.received(i) else {
                    continue;
                };
                received += req.len();
                if limit.is_some_and(|l| !l.allow(src.ip(), now_ms)) {
                    worker.counters.reject(Reject::RateLimited);
                    continue; // over its rate: silence
                }
                // The reply batch is flushed after every receive batch, and both
                // hold BATCH datagrams, so a reply buffer is always free here.
                let Some(out) = batch.tx.reply_buf() else {
                    break;
                };
                if let Some(len) = tracker.handle_udp(worker, now, src, req, out) {
                    batch.tx.push_reply(len, src);
                }
            }
            let flushed = batch.tx.flush(fd);
            let c = &worker.counters;
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
    fn drain(
        &mut self,
        sock: &UdpSocket,
        tracker: &Tracker,
        worker: &mut Worker,
        limit: Option<&RateLimiter>,
        now_ms: u64,
    ) -> bool {
        let now = (now_ms / 1000) as u32;
        let (buf, out) = &mut *self.bufs;
        let mut errors = 0;
        for _ in 0..UDP_BUDGET {
            match sock.recv_from(buf) {
                Ok((n, src)) => {
                    if limit.is_some_and(|l| !l.allow(src.ip(), now_ms)) {
                        worker.counters.reject(Reject::RateLimited);
                        worker.counters.bytes(Proto::Udp, n, 0);
                        continue; // over its rate: silence
                    }
                    let reply = tracker.handle_udp(worker, now, src, &buf[..n], out);
                    let sent = match reply {
                        Some(m) => send_reply(sock, &out[..m], src, &worker.counters),
                        None => 0,
                    };
                    worker.counters.bytes(Proto::Udp, n, sent);
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

#[cfg(not(target_os = "linux"))]
fn send_reply(sock: &UdpSocket, reply: &[u8], dst: SocketAddr, counters: &Counters) -> usize {
    send_to(sock, reply, dst, counters)
}

/// Sweep the shards that are due: shard `k` (counted from start) is due at
/// `k * period / shards`. Workers claim shards with compare-exchange.
///
/// Every shard is swept within its period whatever the load: a turn may sweep
/// enough shards to keep pace even when the loop only wakes every
/// [`IDLE_TICK`] (twice the rate needed), and after a stall the cursor skips
/// whole rounds only, so the shards keep their order and none is passed over.
fn housekeeping(shared: &Shared, worker: &mut Worker, now_ms: u64, now: u32) {
    let swarm = shared.tracker.swarm();
    // Past 95 % of a bound: a share of the relief sweep (no-op otherwise).
    swarm.relieve(now, RELIEF_SHARDS);
    log_evictions(shared, now_ms);
    let shards = swarm.shard_count() as u64;
    let period = shared.sweep_period_ms;
    let due = now_ms * shards / period;
    let per_tick = (2 * shards * IDLE_TICK.as_millis() as u64).div_ceil(period);
    for _ in 0..SWEEP_BUDGET.max(per_tick) {
        let cursor = shared.sweep_cursor.load(Ordering::Relaxed);
        if cursor >= due {
            return;
        }
        // More than a round behind: one round covers everything that is due.
        let next = cursor + (due - cursor - 1) / shards * shards;
        if shared
            .sweep_cursor
            .compare_exchange(cursor, next + 1, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            // Through the worker's access policy: torrents it no longer allows go too.
            let removed = shared
                .tracker
                .expire_shard(worker, (next % shards) as usize, now);
            if removed > 0 {
                log::trace!("expired {removed} peers from shard {}", next % shards);
            }
        }
    }
}

/// Shards a worker tallies or sweeps per loop turn while the map is being
/// relieved ([`crate::swarm::Swarm::relieve`]): 1024 shards of a 20 M-peer
/// map take about 64 turns, each a few milliseconds.
const RELIEF_SHARDS: usize = 32;
/// Evictions are logged at most this often.
const EVICT_LOG_MS: u64 = 60_000;

/// Log the peers evicted since the last line, at most once a minute (the
/// totals lock each shard in turn: fine once a minute, not per turn).
fn log_evictions(shared: &Shared, now_ms: u64) {
    let due = shared.evict_log_at.load(Ordering::Relaxed);
    if now_ms < due
        || shared
            .evict_log_at
            .compare_exchange(
                due,
                now_ms + EVICT_LOG_MS,
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_err()
    {
        return;
    }
    let swarm = shared.tracker.swarm();
    let t = swarm.totals();
    let before = shared
        .evicted_logged
        .swap(t.evicted_total(), Ordering::Relaxed);
    let n = t.evicted_total().saturating_sub(before);
    if n > 0 {
        let limits = swarm.limits();
        let bound = |v: u64| match v {
            0 => "no limit".to_string(),
            v => v.to_string(),
        };
        log::warn!(
            "evicted {n} peers since the last report to stay within bounds (total by reason: {}); \
             the map holds {} peers in {} torrents, {} MiB of --max-memory {} bytes, --max-peers {}",
            crate::swarm::Eviction::ALL
                .map(|e| format!("{} {}", e.label(), t.evicted[e as usize]))
                .join(", "),
            t.peers(),
            t.torrents,
            t.bytes >> 20,
            bound(limits.max_bytes),
            bound(limits.max_peers),
        );
    }
}

/// Sweep the rendezvous registry shards that are due, as [`housekeeping`]
/// does the swarm's, with the service's own cursor and period.
fn expire_rendezvous(shared: &Shared, now_ms: u64, now: u32) {
    let Some(r) = &shared.rendezvous else {
        return;
    };
    let shards = r.service.shard_count() as u64;
    let due = now_ms * shards / r.sweep_period_ms;
    for _ in 0..SWEEP_BUDGET {
        let cursor = r.sweep_cursor.load(Ordering::Relaxed);
        if cursor >= due {
            return;
        }
        let next = cursor.max(due.saturating_sub(shards));
        if r.sweep_cursor
            .compare_exchange(cursor, next + 1, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            let removed = r.service.expire_shard((next % shards) as usize, now);
            if removed > 0 {
                log::trace!("expired {removed} rendezvous registrations");
            }
        }
    }
}

/// One worker's rendezvous side: which sockets have datagrams left, and the
/// buffers every datagram reuses (allocated once, at start).
struct RdvIo {
    /// Token of the first rendezvous socket.
    base: usize,
    pending: Vec<bool>,
    /// One byte over the largest request, so an oversized datagram (truncated
    /// by the kernel to the buffer) is still seen as too large.
    buf: Box<[u8]>,
    replies: Replies,
}

impl RdvIo {
    fn new(base: usize, sockets: usize) -> RdvIo {
        RdvIo {
            base,
            pending: vec![false; sockets],
            buf: vec![0; MAX_REQUEST + 1].into_boxed_slice(),
            replies: Replies::new(),
        }
    }

    fn has_pending(&self) -> bool {
        self.pending.iter().any(|&p| p)
    }

    /// The pending flag of the socket with this token, if it is one of ours.
    fn pending_of(&mut self, token: usize) -> Option<&mut bool> {
        self.pending.get_mut(token.checked_sub(self.base)?)
    }

    /// Drain every ready socket (up to the per-turn budget each).
    fn run(&mut self, socks: &[RdvSocket], rdv: &Rendezvous, c: &Counters, now: u32) {
        for i in 0..socks.len() {
            if self.pending.get(i).copied().unwrap_or(false) {
                let more = self.drain(socks, i, rdv, c, now);
                if let Some(p) = self.pending.get_mut(i) {
                    *p = more;
                }
            }
        }
    }

    /// Receive and answer datagrams on socket `i` until it is empty or the
    /// budget is spent. Returns whether datagrams may remain.
    fn drain(
        &mut self,
        socks: &[RdvSocket],
        i: usize,
        rdv: &Rendezvous,
        c: &Counters,
        now: u32,
    ) -> bool {
        let Some(own) = socks.get(i) else {
            return false;
        };
        let mut errors = 0;
        for _ in 0..UDP_BUDGET {
            let (n, src) = match own.sock.recv_from(&mut self.buf) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug!("rendezvous recv error: {e}");
                    errors += 1;
                    if errors > 8 {
                        return true;
                    }
                    continue;
                }
            };
            let req = self.buf.get(..n).unwrap_or_default();
            let outcome = rdv.handle(now, src, req, &mut self.replies);
            let fam = family(src);
            c.rendezvous(outcome);
            let (req_kind, reply_kind) = match outcome {
                Outcome::Announced => (Kind::Announce, Kind::Announce),
                Outcome::Dropped(crate::rendezvous::DropReason::NoFreeId) => {
                    (Kind::Announce, Kind::Other)
                }
                Outcome::UnknownId => (Kind::Other, Kind::Error),
                _ => (Kind::Other, Kind::Other),
            };
            c.request(Proto::Rendezvous, fam, req_kind);
            let mut sent = 0;
            for (dst, bytes) in self.replies.iter() {
                let Some((sock, to)) = route(socks, i, dst) else {
                    log::debug!("rendezvous: no socket reaches {dst}; reply dropped");
                    c.dropped(Dropped::RendezvousNoRoute);
                    continue;
                };
                let n = send_to(sock, bytes, to, c);
                if n > 0 {
                    c.response(Proto::Rendezvous, family(dst), reply_kind);
                }
                sent += n;
            }
            c.bytes(Proto::Rendezvous, n, sent);
        }
        true
    }
}

fn family(addr: SocketAddr) -> Family {
    match crate::rendezvous::canonical(addr) {
        SocketAddr::V4(_) => Family::V4,
        SocketAddr::V6(_) => Family::V6,
    }
}

/// The socket to send a reply to `dst` (canonical) through, and the address
/// in the form that socket takes: the receiving socket `i` if it reaches
/// `dst`'s family (a dual-stack socket takes IPv4 as IPv4-mapped IPv6), else
/// another rendezvous socket of this worker that does.
fn route(socks: &[RdvSocket], i: usize, dst: SocketAddr) -> Option<(&UdpSocket, SocketAddr)> {
    let fit = |s: &RdvSocket| match (s.reach, dst) {
        (Reach::V4, SocketAddr::V4(_)) | (Reach::V6 | Reach::Dual, SocketAddr::V6(_)) => Some(dst),
        (Reach::Dual, SocketAddr::V4(a)) => Some(SocketAddr::V6(SocketAddrV6::new(
            a.ip().to_ipv6_mapped(),
            a.port(),
            0,
            0,
        ))),
        _ => None,
    };
    let own = socks.get(i).and_then(|s| Some((&s.sock, fit(s)?)));
    own.or_else(|| socks.iter().find_map(|s| Some((&s.sock, fit(s)?))))
}

/// `send_to`, retried on `EINTR`; failures counted, never fatal. Returns bytes sent.
fn send_to(sock: &UdpSocket, bytes: &[u8], dst: SocketAddr, counters: &Counters) -> usize {
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

/// Counters the stats line reports as rates, in this order.
const STATS_SERIES: usize = 8;

/// The periodic one-line summary (worker 0 only).
struct StatsLine {
    every_ms: Option<u64>,
    next_ms: u64,
    /// When `last` was read: rates divide by the time that really passed, as
    /// a busy or stalled loop logs later than `every_ms` after the last line.
    last_ms: u64,
    last: [u64; STATS_SERIES],
}

impl StatsLine {
    fn new(shared: &Shared) -> StatsLine {
        let every_ms = shared
            .config
            .stats_interval
            .map(|d| d.as_millis().max(1) as u64);
        StatsLine::starting(every_ms, shared.clock.now_ms())
    }

    fn starting(every_ms: Option<u64>, now_ms: u64) -> StatsLine {
        StatsLine {
            every_ms,
            next_ms: now_ms + every_ms.unwrap_or(0),
            last_ms: now_ms,
            last: [0; STATS_SERIES],
        }
    }

    /// Per-second rates of the counts `cur` since the last line, if a line
    /// is due.
    fn rates<const N: usize>(&mut self, now_ms: u64, cur: [u64; N]) -> Option<[f64; N]> {
        let every = self.every_ms?;
        if now_ms < self.next_ms {
            return None;
        }
        let secs = (now_ms.saturating_sub(self.last_ms) as f64 / 1000.0).max(0.001);
        let rates = std::array::from_fn(|i| {
            cur[i].wrapping_sub(self.last.get(i).copied().unwrap_or(0)) as f64 / secs
        });
        self.next_ms = now_ms + every;
        self.last_ms = now_ms;
        for (l, c) in self.last.iter_mut().zip(cur) {
            *l = c;
        }
        Some(rates)
    }

    fn maybe_log(&mut self, shared: &Shared, now_ms: u64) {
        if self.every_ms.is_none() || now_ms < self.next_ms {
            return;
        }
        let r = &shared.registry;
        let cur: [u64; STATS_SERIES] = [
            r.requests_of(Kind::Connect),
            r.requests_of(Kind::Announce),
            r.requests_of(Kind::Scrape),
            r.requests_over(Proto::Rendezvous),
            r.requests_over(Proto::Http),
            r.responses_of(Kind::Error),
            r.rejects_total(),
            r.drops_total(),
        ];
        let Some([connect, announce, scrape, rdv, http, errors, rejects, drops]) =
            self.rates(now_ms, cur)
        else {
            return;
        };
        let t = shared.tracker.swarm().totals();
        // Only when the service is on: the registry read locks each of its
        // shards once, once per line.
        let rendezvous = shared.rendezvous.as_ref().map(|s| {
            format!(
                "; rendezvous {} req/s, {} registrations",
                rate(rdv),
                s.service.registry().stats().entries
            )
        });
        let http = (!shared.config.http.is_empty() || !shared.config.metrics.is_empty())
            .then(|| format!(", http {}/s", rate(http)));
        log::info!(
            "stats: {} req/s (connect {}/s, announce {}/s, scrape {}/s{}); errors {}/s, rejects {}/s, drops {}/s; {} torrents, {} peers ({} seeders, {} leechers){}",
            rate(connect + announce + scrape),
            rate(connect),
            rate(announce),
            rate(scrape),
            http.as_deref().unwrap_or(""),
            rate(errors),
            rate(rejects),
            rate(drops),
            t.torrents,
            t.peers(),
            t.seeders4 + t.seeders6,
            t.leechers4 + t.leechers6,
            rendezvous.as_deref().unwrap_or(""),
        );
    }
}

/// A rate as a person reads it: two significant digits below 1 (an idle
/// tracker's 0.017/s is not "0"), one decimal below 100, whole above.
fn rate(x: f64) -> String {
    if x <= 0.0 {
        "0".into()
    } else if x < 0.001 {
        "<0.001".into()
    } else if x < 1.0 {
        let decimals = (1.0 - x.log10().floor()) as usize;
        format!("{x:.decimals$}")
    } else if x < 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::swarm::{Announce, Peer4, Role};
    use std::net::Ipv4Addr;

    #[test]
    fn stats_rates_divide_by_the_time_that_passed() {
        let mut line = StatsLine::starting(Some(1000), 0);
        assert_eq!(line.rates(999, [5, 5, 5, 5]), None, "not due yet");
        // A loop that was busy logs late: 300 announces in 3 s are 100/s,
        // not 300/s over the configured 1 s.
        assert_eq!(
            line.rates(3000, [0, 300, 30, 3]),
            Some([0.0, 100.0, 10.0, 1.0])
        );
        assert_eq!(line.rates(3500, [0, 400, 30, 3]), None);
        assert_eq!(
            line.rates(5000, [20, 400, 30, 9]),
            Some([10.0, 50.0, 0.0, 3.0])
        );
        assert_eq!(
            StatsLine::starting(None, 0).rates(10_000, [1, 1, 1, 1]),
            None
        );
    }

    #[test]
    fn rates_read_as_fractions_when_small() {
        assert_eq!(rate(0.0), "0");
        assert_eq!(rate(1.0 / 60.0), "0.017");
        assert_eq!(rate(0.1), "0.10");
        assert_eq!(rate(0.25), "0.25");
        assert_eq!(rate(0.0004), "<0.001");
        assert_eq!(rate(3.04), "3.0");
        assert_eq!(rate(99.94), "99.9");
        assert_eq!(rate(12345.6), "12346");
    }

    /// Regression: with a 4 s peer timeout, 64 shards per 250 ms idle tick
    /// could not keep up with 1024 shards a second, and the catch-up skipped
    /// shards: 28 of 300 peers were still stored 45 s later.
    #[test]
    fn an_idle_tracker_sweeps_every_shard_within_its_period() {
        let mut config = Config::for_udp("127.0.0.1:0".parse().unwrap());
        config.tracker.peer_timeout = 4;
        config.tracker.interval = 2;
        let secs = Arc::new(AtomicU32::new(0));
        let server = Server::bind_with_clock(config, Clock::Manual(secs)).unwrap();
        let shared = &server.shared;
        let swarm = shared.tracker.swarm();
        let mut worker = Worker::new(Arc::clone(&shared.registry.workers[0]));
        for i in 0..300u32 {
            let mut info_hash = [0u8; 20];
            info_hash[..4].copy_from_slice(&i.to_be_bytes());
            let req = Announce {
                info_hash,
                addr: (Ipv4Addr::new(10, 0, 0, 1), 6881),
                role: Role::Seeder,
                completed: false,
                now: 0,
                want: 0,
                random: (0, 0),
                peer_id: None,
                emit_ids: false,
            };
            swarm.announce::<Peer4>(&req, |_, _| {});
        }
        // An idle worker: one loop turn per IDLE_TICK.
        let tick = IDLE_TICK.as_millis() as u64;
        let mut ms = 0;
        while ms <= 4_000 {
            housekeeping(shared, &mut worker, ms, (ms / 1000) as u32);
            ms += tick;
        }
        assert_eq!(swarm.totals().peers(), 300, "nobody expires early");
        // Stale from t = 5 s; the sweep period is 1 s: gone by 6 s and a tick.
        while ms <= 6_000 + tick {
            housekeeping(shared, &mut worker, ms, (ms / 1000) as u32);
            ms += tick;
        }
        assert_eq!(swarm.totals().peers(), 0, "every shard was swept");
    }
}
