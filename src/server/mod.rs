//! The one place that assembles shoal: it alone knows every other room.
//!
//! [`Server::bind`] checks the configuration, loads what start-up must load
//! (the access files, the state file) and binds every listener, so a
//! mistake surfaces as one [`StartError`] before any thread runs, and tests
//! can read the ephemeral ports. [`Server::spawn`] then starts, in order:
//! the cluster's join and threads, the packet workers, the control thread,
//! the state writer and the access reloader. [`Running::stop`] stops them in
//! the order that loses nothing: every loop first, then the reloader, then
//! the final state write, once nothing changes the map any more.
//!
//! Each room gets a narrow context — the tracker, a clock, its own counters,
//! the stop flag — never the whole server.
//!
//! - [`config`]: [`Config`], each room's settings composed, and their checks;
//! - [`host`]: what the host allows (the default memory budget);
//! - [`start`]: the start-up log.

pub mod config;
pub mod host;
mod replicate;
mod start;

pub use config::{Config, Listen, DEFAULT_PORT};

use crate::access::reload::{ReloadThread, Which};
use crate::access::{LoadError, Reloader};
use crate::api::manage::Files;
use crate::api::{self, Api};
use crate::cluster::{self, Status};
use crate::limit::{ConnLimiter, RateLimiter};
use crate::net::control::{self, ControlContext, ControlIo};
use crate::net::housekeeping::Sources;
use crate::net::listen::{self, Wanted};
use crate::net::load::{Link, Target};
use crate::net::serve::ClientAddr;
use crate::net::worker::{self, WorkerContext, WorkerIo};
use crate::net::{BindError, Buffers, ConnConfig, Listener, Role, Stop};
use crate::rendezvous::Rendezvous;
use crate::state::{self, OpenError, StateFile};
use crate::stats::Registry;
use crate::time::{Clock, Epoch};
use crate::tracker::Tracker;
use mio::Waker;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;

/// Why shoal did not start. Its `Display` is the one line an operator sees.
#[derive(Debug)]
pub enum StartError {
    /// A setting is invalid (the message names the flag).
    Config(String),
    /// The state file cannot be written, or read.
    State(OpenError),
    /// A line of the access list or key file is bad (`FILE:LINE: reason`).
    Access(LoadError),
    /// A listener cannot be set up.
    Bind(BindError),
    /// A thread or event loop cannot be created.
    Spawn(io::Error),
    /// `--xdp`: the XDP program or an AF_XDP socket cannot be put in place
    /// (privileges, driver support): the one-line reason.
    Xdp(String),
}

impl StartError {
    /// The exit status: 2 for what the operator wrote (settings, files), 1
    /// for what the host refused.
    pub fn exit_code(&self) -> u8 {
        match self {
            StartError::Config(_) | StartError::State(_) | StartError::Access(_) => 2,
            StartError::Bind(_) | StartError::Spawn(_) | StartError::Xdp(_) => 1,
        }
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Config(m) => write!(f, "invalid configuration: {m}"),
            StartError::State(e) => e.fmt(f),
            StartError::Access(e) => e.fmt(f),
            StartError::Bind(e) => e.fmt(f),
            StartError::Spawn(e) => write!(f, "cannot start a thread: {e}"),
            StartError::Xdp(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for StartError {}

impl From<BindError> for StartError {
    fn from(e: BindError) -> StartError {
        StartError::Bind(e)
    }
}

/// A bound server. Nothing runs until [`Server::spawn`].
#[derive(Debug)]
pub struct Server {
    config: Config,
    clock: Clock,
    stop: Arc<AtomicBool>,
    tracker: Arc<Tracker>,
    registry: Arc<Registry>,
    table: Vec<Listener>,
    buffers: Option<Buffers>,
    workers: Vec<(WorkerIo, Arc<Waker>)>,
    control: (ControlIo, Arc<Waker>),
    state: Option<StateFile>,
    reloader: Option<Reloader>,
    rendezvous: Option<Arc<Rendezvous>>,
    cluster: Option<Arc<Status>>,
    /// The access files, shared by the API and the cluster.
    files: Option<Arc<Files>>,
    api: Option<Arc<Api>>,
    rate_limiter: Option<Arc<RateLimiter>>,
    conn_limiter: Option<Arc<ConnLimiter>>,
    /// `--xdp`: the attached program, detached when the server is done.
    #[cfg(all(feature = "xdp", target_os = "linux"))]
    xdp: Option<crate::xdp::path::XdpPath>,
}

impl Server {
    /// Check `config`, load the access and state files, bind every listener.
    pub fn bind(config: Config) -> Result<Server, StartError> {
        Server::bind_with_clock(config, Clock::system())
    }

    /// As [`Server::bind`], with a given clock (tests use a manual one).
    pub fn bind_with_clock(config: Config, clock: Clock) -> Result<Server, StartError> {
        config.validate().map_err(StartError::Config)?;
        // An unwritable state file is a usage error found now, not at the
        // first SIGTERM; the load itself waits until the listeners are bound.
        if let Some(st) = &config.state {
            crate::snapshot::check_writable(&st.path)
                .map_err(|e| StartError::State(OpenError::Unwritable(st.path.clone(), e)))?;
        }
        let reloader = if config.access.is_open() {
            None
        } else {
            Some(Reloader::start(&config.access).map_err(StartError::Access)?)
        };
        let n = config.workers;
        let l = &config.listen;
        let wanted = [
            Wanted {
                role: Role::Udp,
                addrs: &l.udp,
            },
            Wanted {
                role: Role::Http,
                addrs: &l.http,
            },
            Wanted {
                role: Role::Rendezvous,
                addrs: &l.rendezvous,
            },
            Wanted {
                role: Role::Metrics,
                addrs: &l.metrics,
            },
            Wanted {
                role: Role::Api,
                addrs: &l.api,
            },
            Wanted {
                role: Role::Torrust,
                addrs: &l.torrust,
            },
        ];
        let bound = listen::bind(&wanted, n, config.socket_buffer, l.defaults)?;
        let mut workers = Vec::with_capacity(n);
        for sockets in bound.workers {
            workers.push(WorkerIo::new(&bound.table, sockets).map_err(BindError::Poll)?);
        }
        let control = ControlIo::new(&bound.table, bound.control).map_err(BindError::Poll)?;
        #[cfg(all(feature = "xdp", target_os = "linux"))]
        let xdp = match &config.xdp.iface {
            Some(iface) => {
                let ports: Vec<u16> = bound
                    .table
                    .iter()
                    .filter(|l| l.role == Role::Udp)
                    .map(|l| l.addr.port())
                    .collect();
                let mut path = crate::xdp::path::XdpPath::open(iface, &ports, n)
                    .map_err(|e| StartError::Xdp(e.to_string()))?;
                for (w, xsk) in workers.iter_mut().zip(path.sockets.drain(..)) {
                    w.0.set_xsk(xsk, ports.clone()).map_err(BindError::Poll)?;
                }
                log::info!(
                    "--xdp {iface}: AF_XDP on {} of {} receive queues, UDP ports {ports:?}",
                    n.min(path.queues as usize),
                    path.queues
                );
                Some(path)
            }
            None => None,
        };

        let mut tracker = Tracker::new(config.tracker.clone());
        // Loaded whole before any worker runs: no request sees a half map.
        let state = match &config.state {
            Some(st) => {
                Some(StateFile::open(st, &mut tracker, clock.now()).map_err(StartError::State)?)
            }
            None => None,
        };
        if let Some(r) = &reloader {
            // Key expiries are Unix times: the clock is anchored to them here.
            let unix_at_zero = Epoch::of(&clock).unix_at_zero();
            if tracker
                .set_access(r.handle().clone(), unix_at_zero)
                .is_err()
            {
                return Err(StartError::Config("an access policy is already set".into()));
            }
        }
        let tracker = Arc::new(tracker);
        let rendezvous = (!l.rendezvous.is_empty()).then(|| {
            Arc::new(Rendezvous::new(
                config.rendezvous.clone(),
                config.tracker.shards,
            ))
        });
        // One buffer per packet worker, and one for the control thread (a
        // tracker request that follows a handed-over operator request).
        let cluster = config
            .cluster
            .as_ref()
            .map(|c| Arc::new(Status::for_config(n + 1, c)));
        let mut registry = Registry::new(n);
        for c in &registry.workers {
            c.set_interval(config.tracker.interval);
        }
        registry.rendezvous = rendezvous.clone();
        registry.max_peers = config.tracker.max_peers;
        if let Some(c) = &cluster {
            registry
                .series
                .push(Arc::clone(c) as Arc<dyn crate::stats::Series>);
        }
        if let Some(st) = &state {
            st.record_load(&registry.state);
        }
        let registry = Arc::new(registry);
        // One API behind both surfaces: one token, one set of files.
        let api_wanted = !l.api.is_empty() || !l.torrust.is_empty();
        let api = match (&config.api.token, api_wanted) {
            (Some(token), true) => Some(Arc::new(Api::new(
                token.clone(),
                Arc::clone(&tracker),
                Arc::clone(&registry),
                api::Facts {
                    workers: n,
                    http_max_connections: config.http.max_connections,
                    http_idle_timeout: config.http.idle_timeout,
                },
            ))),
            _ => None,
        };
        // The access files, for changes made through the API and changes
        // from other instances of a cluster.
        let files = reloader
            .as_ref()
            .filter(|_| api.is_some() || cluster.is_some())
            .map(|r| {
                let a = &config.access;
                Arc::new(Files::new(
                    r.handle().clone(),
                    a.list.clone(),
                    a.keys.clone(),
                ))
            });
        if let (Some(api), Some(files)) = (&api, &files) {
            if api.set_files(Arc::clone(files)).is_err() {
                log::warn!("the API already manages the access files");
            }
        }
        if let (Some(status), Some(files)) = (&cluster, &files) {
            let hook = Arc::new(replicate::ToCluster(Arc::clone(status)));
            if files.set_replicate(hook).is_err() {
                log::warn!("the access files already replicate");
            }
        }
        Ok(Server {
            rate_limiter: config.limits.rate_limiter().map(Arc::new),
            conn_limiter: config.limits.conn_limiter().map(Arc::new),
            clock,
            stop: Arc::new(AtomicBool::new(false)),
            tracker,
            registry,
            #[cfg(all(feature = "xdp", target_os = "linux"))]
            xdp,
            table: bound.table,
            buffers: bound.buffers,
            workers,
            control,
            state,
            reloader,
            rendezvous,
            cluster,
            files,
            api,
            config,
        })
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Every bound listener (ports resolved), in token order.
    pub fn listeners(&self) -> &[Listener] {
        &self.table
    }

    /// The bound addresses of one role.
    pub fn addrs(&self, role: Role) -> Vec<SocketAddr> {
        listen::addrs_of(&self.table, role)
    }

    /// The socket buffers the kernel granted (the smallest over the datagram
    /// sockets); `None` without datagram sockets.
    pub fn socket_buffers(&self) -> Option<Buffers> {
        self.buffers
    }

    pub fn tracker(&self) -> &Arc<Tracker> {
        &self.tracker
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Start everything. With `--cluster`, first load the other instances'
    /// state (a bounded wait when Redis is unreachable).
    pub fn spawn(self) -> Result<Running, StartError> {
        let Server {
            config,
            clock,
            stop,
            tracker,
            registry,
            table,
            workers,
            control,
            state,
            reloader,
            rendezvous,
            cluster,
            files,
            api,
            rate_limiter,
            conn_limiter,
            #[cfg(all(feature = "xdp", target_os = "linux"))]
            xdp,
            ..
        } = self;
        let spawn_err = StartError::Spawn;
        let mut threads = Vec::new();
        if let (Some(cfg), Some(status)) = (&config.cluster, &cluster) {
            let ctx = cluster::Context {
                tracker: Arc::clone(&tracker),
                clock: clock.clone(),
                stop: Arc::clone(&stop),
                access: files
                    .clone()
                    .map(|f| Arc::new(replicate::ToFiles(f)) as Arc<dyn cluster::AccessSink>),
            };
            threads.extend(cluster::start(cfg, status, &ctx).map_err(spawn_err)?);
        }
        let conns = ConnConfig {
            max_conns: config.http.max_connections,
            idle_timeout: config.http.idle_timeout,
            limiter: conn_limiter,
        };
        let client = Arc::new(ClientAddr {
            header: config.http.client_ip_header.clone(),
            trusted: config.limits.trusted_proxies.clone(),
        });
        let (control_io, control_waker) = control;
        let handoff = config
            .http
            .metrics_on_tracker_port
            .then(|| control_io.handoff());
        let mut wakers = vec![control_waker];
        let mut links = Vec::with_capacity(workers.len());
        for (id, (io, waker)) in workers.into_iter().enumerate() {
            wakers.push(waker);
            let link = Link {
                target: Arc::new(Target::new(config.tracker.interval)),
                inodes: io.udp_inodes(),
            };
            let ctx = WorkerContext {
                tracker: Arc::clone(&tracker),
                counters: Arc::clone(&registry.workers[id]),
                clock: clock.clone(),
                stop: Arc::clone(&stop),
                rate_limiter: rate_limiter.clone(),
                conns: conns.clone(),
                client: Arc::clone(&client),
                handoff: handoff.clone(),
                rendezvous: rendezvous.clone(),
                outbox: cluster.as_ref().map(|c| c.outbox(id)),
                interval: Arc::clone(&link.target),
            };
            links.push(link);
            let t = std::thread::Builder::new()
                .name(format!("shoal-worker-{id}"))
                .spawn(move || worker::run(id, io, ctx))
                .map_err(spawn_err)?;
            threads.push(t);
        }
        let n = registry.workers.len();
        let control_ctx = ControlContext {
            sources: Sources {
                tracker: Arc::clone(&tracker),
                registry: Arc::clone(&registry),
                api,
                rendezvous,
                stats_interval: config.stats_interval,
                http: !config.listen.http.is_empty() || !config.listen.metrics.is_empty(),
                links,
            },
            counters: Arc::clone(&registry.control),
            clock: clock.clone(),
            stop: Arc::clone(&stop),
            conns,
            cluster: cluster.clone(),
            client,
            rate_limiter,
            outbox: cluster.as_ref().map(|c| c.outbox(n)),
            nice: config.control_nice,
        };
        threads.push(
            std::thread::Builder::new()
                .name("shoal-control".into())
                .spawn(move || control::run(control_io, control_ctx))
                .map_err(spawn_err)?,
        );
        let stop = Stop::new(stop, wakers);
        let writer = match state {
            Some(file) => {
                let ctx = state::Context {
                    tracker: Arc::clone(&tracker),
                    clock: clock.clone(),
                    counters: Arc::clone(&registry.state),
                };
                Some(state::Writer::spawn(file, ctx).map_err(spawn_err)?)
            }
            None => None,
        };
        let reload = match reloader {
            Some(r) => {
                let reg = Arc::clone(&registry);
                let failed = move |w: Which| reg.access_reload_failures[w as usize].incr();
                Some(ReloadThread::spawn(r, config.access.clone(), failed).map_err(spawn_err)?)
            }
            None => None,
        };
        Ok(Running {
            stop,
            threads,
            writer,
            reload,
            table,
            tracker,
            registry,
            cluster,
            #[cfg(all(feature = "xdp", target_os = "linux"))]
            _xdp: xdp,
        })
    }
}

/// A running server.
#[derive(Debug)]
pub struct Running {
    stop: Stop,
    /// Packet workers, the control thread, the cluster's threads.
    threads: Vec<JoinHandle<()>>,
    /// Periodic state writes and the final one (`--state-file`).
    writer: Option<state::Writer>,
    /// The access files' reloader.
    reload: Option<ReloadThread>,
    table: Vec<Listener>,
    tracker: Arc<Tracker>,
    registry: Arc<Registry>,
    cluster: Option<Arc<Status>>,
    /// `--xdp`: held for its drop, which detaches the program after the
    /// workers have stopped (`join` drops it last).
    #[cfg(all(feature = "xdp", target_os = "linux"))]
    _xdp: Option<crate::xdp::path::XdpPath>,
}

impl Running {
    /// Every bound listener (ports resolved), in token order.
    pub fn listeners(&self) -> &[Listener] {
        &self.table
    }

    /// The bound addresses of one role.
    pub fn addrs(&self, role: Role) -> Vec<SocketAddr> {
        listen::addrs_of(&self.table, role)
    }

    pub fn udp_addrs(&self) -> Vec<SocketAddr> {
        self.addrs(Role::Udp)
    }

    pub fn http_addrs(&self) -> Vec<SocketAddr> {
        self.addrs(Role::Http)
    }

    pub fn rendezvous_addrs(&self) -> Vec<SocketAddr> {
        self.addrs(Role::Rendezvous)
    }

    pub fn metrics_addrs(&self) -> Vec<SocketAddr> {
        self.addrs(Role::Metrics)
    }

    pub fn api_addrs(&self) -> Vec<SocketAddr> {
        self.addrs(Role::Api)
    }

    pub fn torrust_addrs(&self) -> Vec<SocketAddr> {
        self.addrs(Role::Torrust)
    }

    pub fn tracker(&self) -> &Arc<Tracker> {
        &self.tracker
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The cluster link's state (`--cluster`).
    pub fn cluster(&self) -> Option<&Arc<Status>> {
        self.cluster.as_ref()
    }

    /// A handle that stops the server from elsewhere.
    pub fn stop_handle(&self) -> Stop {
        self.stop.clone()
    }

    /// Whether there are access files to reload.
    pub fn has_access_files(&self) -> bool {
        self.reload.is_some()
    }

    /// Reload the access files now (SIGHUP); false without any.
    pub fn reload_access(&self) -> bool {
        match &self.reload {
            Some(r) => {
                r.reload();
                true
            }
            None => false,
        }
    }

    /// Stop every thread and wait for them; then write the final state.
    pub fn stop(self) {
        self.stop.stop();
        self.join();
    }

    /// Wait for every loop to finish (after a stop), end the reloader, then
    /// write the final state snapshot: nothing changes the map any more.
    pub fn join(self) {
        for t in self.threads {
            if t.join().is_err() {
                log::error!("a thread panicked");
            }
        }
        if let Some(r) = self.reload {
            r.stop();
        }
        if let Some(w) = self.writer {
            w.finish();
        }
    }
}
