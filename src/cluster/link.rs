//! The cluster's connection to Redis and its start: the client (TLS on
//! rustls, ACL users through the URL), time-outs, back-off, the link's
//! up/down log lines, and [`start`], which joins the cluster and spawns the
//! publisher ([`super::publish`]) and the subscriber ([`super::subscribe`]).
//! All the Redis I/O runs on those threads (and at start), none on a worker.

use super::auth::Keys;
use super::{state, AccessSink, ClusterConfig, Status};
use crate::time::Clock;
use crate::tracker::Tracker;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the cluster's threads need of the server: the map (and its peer
/// timeout), the tracker's clock, the shutdown flag, and where other
/// instances' access changes go. No more.
#[derive(Debug, Clone)]
pub struct Context {
    pub tracker: Arc<Tracker>,
    pub clock: Clock,
    pub stop: Arc<AtomicBool>,
    /// This instance's access files (`None`: there are none, and changes
    /// from other instances are counted as failed).
    pub access: Option<Arc<dyn AccessSink>>,
}

impl Context {
    pub(super) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    pub(super) fn now(&self) -> u32 {
        self.clock.now().secs()
    }

    pub(super) fn peer_timeout(&self) -> u32 {
        self.tracker.config().peer_timeout
    }
}

/// Longest wait for a TCP connect (and TLS handshake) or a reply from Redis.
pub(super) const IO_TIMEOUT: Duration = Duration::from_secs(1);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Reconnection back-off: doubles from 100 ms to 5 s, reset on success.
#[derive(Debug)]
pub(super) struct Backoff {
    pub(super) next: Instant,
    delay: Duration,
}

impl Backoff {
    pub(super) fn new() -> Backoff {
        Backoff {
            next: Instant::now(),
            delay: BACKOFF_MIN,
        }
    }

    pub(super) fn due(&self) -> bool {
        Instant::now() >= self.next
    }

    pub(super) fn failed(&mut self) {
        self.next = Instant::now() + self.delay;
        self.delay = (self.delay * 2).min(BACKOFF_MAX);
    }

    pub(super) fn reset(&mut self) {
        self.delay = BACKOFF_MIN;
    }
}

/// The URL without its user and password, for logs.
pub(super) fn redacted(url: &str) -> &str {
    match url.rsplit_once('@') {
        Some((_, host)) => host,
        None => url.split_once("://").map_or(url, |(_, rest)| rest),
    }
}

/// The Redis client `cfg` describes: `rediss://` on rustls, trusting
/// `--cluster-ca-file` (only) when given, else the system's roots.
pub(super) fn client(cfg: &ClusterConfig) -> redis::RedisResult<redis::Client> {
    match &cfg.ca {
        Some(pem) => redis::Client::build_with_tls(
            cfg.redis_url(),
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            },
        ),
        None => redis::Client::open(cfg.redis_url()),
    }
}

/// A connection with every wait bounded by [`IO_TIMEOUT`].
pub(super) fn connect(client: &redis::Client) -> redis::RedisResult<redis::Connection> {
    let con = client.get_connection_with_timeout(IO_TIMEOUT)?;
    con.set_write_timeout(Some(IO_TIMEOUT))?;
    con.set_read_timeout(Some(IO_TIMEOUT))?;
    Ok(con)
}

impl Status {
    /// One side lost Redis: log once for the instance until it is back.
    pub(super) fn note_down(
        &self,
        flag: &AtomicBool,
        cfg: &ClusterConfig,
        e: &dyn std::fmt::Display,
    ) {
        flag.store(false, Ordering::Relaxed);
        self.connect_failures.fetch_add(1, Ordering::Relaxed);
        if !self.down_logged.swap(true, Ordering::Relaxed) {
            log::warn!(
                "cluster: Redis at {} unreachable ({e}); serving alone, retrying with back-off",
                redacted(&cfg.url)
            );
        }
    }

    pub(super) fn note_up(&self, flag: &AtomicBool, cfg: &ClusterConfig) {
        flag.store(true, Ordering::Relaxed);
        if self.connected() && self.down_logged.swap(false, Ordering::Relaxed) {
            log::info!(
                "cluster: Redis at {} reachable, sync resumed",
                redacted(&cfg.url)
            );
        }
    }
}

/// Join the cluster and start the publisher and the subscriber: load the
/// newest state the other instances stored (a bounded wait when Redis is
/// unreachable), then read the stream from the position that state
/// reflects, so the first replies carry full peer lists and nothing since
/// is missed.
pub fn start(
    cfg: &ClusterConfig,
    status: &Arc<Status>,
    ctx: &Context,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    status.hlc.anchor(&ctx.clock);
    if cfg.secret.is_none() {
        log::warn!(
            "cluster: no --cluster-secret-file: anyone who can write to {}:log on {} can inject peers and access changes",
            cfg.name,
            redacted(&cfg.url)
        );
    }
    let keys = Keys::derive(cfg.secret.as_ref(), &cfg.name);
    let client = client(cfg).map_err(std::io::Error::other)?;
    let from = state::join(cfg, &keys, status, ctx, &client);
    let publisher = {
        let (ctx, status, cfg, client, keys) = (
            ctx.clone(),
            Arc::clone(status),
            cfg.clone(),
            client.clone(),
            keys.clone(),
        );
        std::thread::Builder::new()
            .name("shoal-cluster-pub".into())
            .spawn(move || super::publish::run(&ctx, &status, &cfg, &client, &keys))?
    };
    let subscriber = {
        let (ctx, status, cfg) = (ctx.clone(), Arc::clone(status), cfg.clone());
        std::thread::Builder::new()
            .name("shoal-cluster-sub".into())
            .spawn(move || super::subscribe::run(&ctx, &status, &cfg, &client, &keys, from))?
    };
    Ok(vec![publisher, subscriber])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_logged_without_credentials() {
        assert_eq!(
            redacted("redis://:secret@10.0.0.1:6379/2"),
            "10.0.0.1:6379/2"
        );
        assert_eq!(redacted("rediss://shoal:p@ss@h:1"), "h:1");
        assert_eq!(redacted("redis://h:1"), "h:1");
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::new();
        assert!(b.due());
        for _ in 0..10 {
            b.failed();
        }
        assert_eq!(b.delay, BACKOFF_MAX);
        assert!(!b.due());
        b.reset();
        assert_eq!(b.delay, BACKOFF_MIN);
    }
}
