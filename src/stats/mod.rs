//! Counters, one set per thread, and their Prometheus text rendering.
//!
//! Each packet worker owns one [`Counters`] and is its only writer, so an
//! increment is a relaxed load and store on a line no other thread writes:
//! no contention, no locked instruction; the control thread has its own.
//! Readers (the `/metrics` handler, the stats log line, the API) sum them
//! through the [`Registry`]; a reading may be a few increments behind, never
//! torn. The rendezvous service's series (`protocol="rendezvous"`, outcomes,
//! the registry gauges) appear only when it is enabled; other rooms render
//! their own series ([`Series`]).
//!
//! - [`render`]: the exposition format;
//! - [`procfs`]: what `/metrics` reads from `/proc` at scrape time.

mod procfs;
mod render;

pub use procfs::{fd_socket_inode, udp_drops_of};
pub use render::{metric, Series};

use crate::rendezvous::{Outcome, Rendezvous};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A monotonically increasing counter with a single writer.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        // Single writer: load+store is exact and avoids a locked add.
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    #[inline]
    pub fn incr(&self) {
        self.add(1);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Use as a gauge (single writer).
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
}

/// A closed set of metric labels. The variants, their count, the list of all
/// of them and their label text come from one declaration, so a variant added
/// later also sizes every array indexed by it (`v as usize < COUNT` always
/// holds) and appears in `/metrics`: it cannot index out of bounds (an abort
/// under `panic = "abort"`) nor be left out of the rendering.
macro_rules! labels {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $label:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Number of variants: the length of arrays indexed by this enum.
            pub const COUNT: usize = [$($label),+].len();
            /// Every variant, in declaration (= index) order.
            pub const ALL: [$name; $name::COUNT] = [$($name::$variant),+];

            /// The Prometheus label value.
            pub const fn label(self) -> &'static str {
                match self {
                    $( $name::$variant => $label, )+
                }
            }
        }
    };
}

labels! {
    /// Which protocol a request came over.
    pub enum Proto {
        Udp => "udp",
        Http => "http",
        /// The Sobani rendezvous service (`--rendezvous`).
        Rendezvous => "rendezvous",
    }
}

labels! {
    /// Address family of the client.
    pub enum Family {
        V4 => "ipv4",
        V6 => "ipv6",
    }
}

labels! {
    /// Request and response kinds.
    pub enum Kind {
        Connect => "connect",
        Announce => "announce",
        Scrape => "scrape",
        /// Responses only: a BEP 15 error frame or a bencoded `failure reason`.
        Error => "error",
        /// HTTP only: 404s and other non-tracker requests, and the replies
        /// to /health and /metrics.
        Other => "other",
        /// HTTP requests only: `GET /health`.
        Health => "health",
        /// HTTP requests only: `GET /metrics`.
        Metrics => "metrics",
    }
}

labels! {
    /// Why a request was refused or dropped.
    pub enum Reject {
        /// UDP: shorter than its action needs. Dropped.
        Truncated => "truncated",
        /// UDP: connect with the wrong magic. Dropped.
        BadProtocolId => "bad_protocol_id",
        /// UDP: unknown action. Error frame if the connection id is valid, else dropped.
        UnknownAction => "unknown_action",
        /// UDP: missing, forged, expired or another address's connection id. Dropped.
        BadConnectionId => "bad_connection_id",
        /// Announce or scrape with invalid content (port 0, no hashes, bad parameter).
        InvalidRequest => "invalid_request",
        /// HTTP: malformed or oversized request head, or a body.
        HttpMalformed => "http_malformed",
        /// HTTP: a method other than GET/HEAD.
        HttpMethod => "http_method",
        /// HTTP: an unknown path.
        HttpNotFound => "http_not_found",
        /// HTTP: the client address header was required and missing.
        HttpNoClientIp => "http_no_client_ip",
        /// Announce (or private scrape) refused by the access list (`--access-list`).
        TorrentNotAllowed => "torrent_not_allowed",
        /// Private mode (`--keys`): no key in the announce URL path.
        MissingKey => "missing_key",
        /// Private mode: a key not listed, expired or malformed.
        UnknownKey => "unknown_key",
        /// Management API (`--api`): a request without the right bearer token.
        ApiUnauthorized => "api_unauthorized",
        /// Over `--rate-limit` for its source address: no reply over UDP, a
        /// failure reason over HTTP.
        RateLimited => "rate_limited",
        /// HTTP: `--http-client-ip-header` sent by a peer outside
        /// `--http-trusted-proxy`; the header was ignored.
        UntrustedClientIpHeader => "untrusted_client_ip_header",
    }
}

labels! {
    /// Why a packet or connection was dropped by the I/O layer.
    pub enum Dropped {
        /// The socket's send buffer was full; the reply was not sent.
        SendWouldBlock => "send_would_block",
        /// `send_to` failed for another reason.
        SendError => "send_error",
        /// HTTP: a new connection over the per-worker limit, closed at once.
        /// Since full workers evict their longest-idle connection instead
        /// (`http_evicted`), only when there was none to evict; kept so
        /// dashboards keep their series.
        HttpOverLimit => "http_over_limit",
        /// HTTP: closed for idling or for being too slow to send a request.
        HttpTimeout => "http_timeout",
        /// HTTP: accept failed for want of file descriptors (EMFILE/ENFILE);
        /// the worker stops accepting until a connection closes or a short
        /// back-off passes. Counts the pauses, not the connections waiting.
        AcceptNoFds => "accept_no_fds",
        /// Rendezvous: no socket of the worker reaches the reply's address
        /// family (an IPv6 peer introduced to one that came over IPv4-only).
        RendezvousNoRoute => "rendezvous_no_route",
        /// HTTP: a new connection from an address already holding
        /// `--http-max-connections-per-ip`, closed at once.
        HttpPerIpLimit => "http_per_ip_limit",
        /// HTTP: the longest-idle connection, closed to admit a new one when
        /// every slot of the worker was taken.
        HttpEvicted => "http_evicted",
    }
}

/// One thread's counters, on cache lines of their own (workers' counters are
/// allocated back to back; without the alignment neighbours would share lines).
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Counters {
    requests: [[[Counter; Kind::COUNT]; Family::COUNT]; Proto::COUNT],
    responses: [[[Counter; Kind::COUNT]; Family::COUNT]; Proto::COUNT],
    rejects: [Counter; Reject::COUNT],
    drops: [Counter; Dropped::COUNT],
    bytes_in: [Counter; Proto::COUNT],
    bytes_out: [Counter; Proto::COUNT],
    /// HTTP connections accepted.
    pub http_connections: Counter,
    /// Rendezvous datagrams by what became of them, indexed by [`Outcome::index`].
    rendezvous: [Counter; RENDEZVOUS_OUTCOMES],
    /// Nanoseconds the thread spent working rather than waiting in `poll`
    /// (a packet worker adds each loop turn's): its utilisation.
    busy_ns: Counter,
    /// Gauge: the announce interval the worker hands out now, before
    /// jitter, seconds.
    interval: Counter,
}

/// Counters and gauges of the state file (see [`crate::state`]).
#[derive(Debug, Default)]
pub struct StateCounters {
    pub writes: Counter,
    pub write_failures: Counter,
    /// Gauges of the last successful write.
    pub last_write_micros: Counter,
    pub last_write_bytes: Counter,
    pub last_write_peers: Counter,
    /// Gauges: what the start-up load restored.
    pub loaded_torrents: Counter,
    pub loaded_peers: Counter,
}

/// Length of the rendezvous outcome array: every [`Outcome`] has its counter.
const RENDEZVOUS_OUTCOMES: usize = Outcome::ALL.len();

impl Counters {
    #[inline]
    pub fn request(&self, p: Proto, f: Family, k: Kind) {
        self.requests[p as usize][f as usize][k as usize].incr();
    }

    #[inline]
    pub fn response(&self, p: Proto, f: Family, k: Kind) {
        self.responses[p as usize][f as usize][k as usize].incr();
    }

    #[inline]
    pub fn reject(&self, r: Reject) {
        self.rejects[r as usize].incr();
    }

    #[inline]
    pub fn dropped(&self, d: Dropped) {
        self.drops[d as usize].incr();
    }

    #[inline]
    pub fn bytes(&self, p: Proto, received: usize, sent: usize) {
        self.bytes_in[p as usize].add(received as u64);
        self.bytes_out[p as usize].add(sent as u64);
    }

    pub fn requests(&self, p: Proto, f: Family, k: Kind) -> u64 {
        self.requests[p as usize][f as usize][k as usize].get()
    }

    #[inline]
    pub fn rendezvous(&self, o: Outcome) {
        if let Some(c) = self.rendezvous.get(o.index()) {
            c.incr();
        }
    }

    pub fn rendezvous_outcomes(&self, o: Outcome) -> u64 {
        self.rendezvous.get(o.index()).map_or(0, Counter::get)
    }

    pub fn responses(&self, p: Proto, f: Family, k: Kind) -> u64 {
        self.responses[p as usize][f as usize][k as usize].get()
    }

    pub fn rejects(&self, r: Reject) -> u64 {
        self.rejects[r as usize].get()
    }

    pub fn drops(&self, d: Dropped) -> u64 {
        self.drops[d as usize].get()
    }

    /// Add one loop turn's working time.
    #[inline]
    pub fn add_busy(&self, ns: u64) {
        self.busy_ns.add(ns);
    }

    /// Nanoseconds spent working since start.
    pub fn busy_ns(&self) -> u64 {
        self.busy_ns.get()
    }

    /// The interval the worker hands out from now on (seconds, before jitter).
    pub fn set_interval(&self, secs: u32) {
        self.interval.set(u64::from(secs));
    }

    /// The interval the worker hands out now.
    pub fn interval(&self) -> u64 {
        self.interval.get()
    }

    /// Requests handled, every protocol and outcome: those counted as
    /// requests and those refused or ignored (a refusal that names what was
    /// asked counts twice; the load estimate this feeds does not mind).
    pub fn handled(&self) -> u64 {
        let requests: u64 = self
            .requests
            .iter()
            .flatten()
            .flatten()
            .map(Counter::get)
            .sum();
        let rejects: u64 = self.rejects.iter().map(Counter::get).sum();
        requests + rejects
    }
}

/// Every thread's counters and the rooms' series, for readers.
#[derive(Debug, Default)]
pub struct Registry {
    /// One per packet worker.
    pub workers: Vec<Arc<Counters>>,
    /// The control thread's (operator requests, the API).
    pub control: Arc<Counters>,
    /// The warm-restart state file (`--state-file`): written by the start-up
    /// load and the state writer, one at a time.
    pub state: Arc<StateCounters>,
    /// Failed reloads of the access-list and key files, written by the
    /// reload thread only. Index 0: the access list, 1: the key file.
    pub access_reload_failures: [Counter; 2],
    /// The rendezvous service, when enabled: its registry is read for the
    /// registration gauges, and its series are rendered only then.
    pub rendezvous: Option<Arc<Rendezvous>>,
    /// The configured peer bound (`--max-peers`, 0 = none), shown as a gauge
    /// so an alert can compare `shoal_peers` with it.
    pub max_peers: u64,
    /// Series other rooms render (the cluster link's), in this order.
    pub series: Vec<Arc<dyn Series>>,
}

impl Registry {
    /// Counters for `workers` packet workers and a control thread.
    pub fn new(workers: usize) -> Registry {
        Registry {
            workers: (0..workers)
                .map(|_| Arc::new(Counters::default()))
                .collect(),
            ..Registry::default()
        }
    }

    fn sum(&self, f: impl Fn(&Counters) -> u64) -> u64 {
        self.workers
            .iter()
            .chain(std::iter::once(&self.control))
            .map(|c| f(c))
            .sum()
    }

    /// Tracker requests of one kind over both tracker protocols (UDP, HTTP)
    /// and both families; rendezvous `announce`s are not torrent announces.
    pub fn requests_of(&self, k: Kind) -> u64 {
        self.sum(|c| {
            [Proto::Udp, Proto::Http]
                .into_iter()
                .flat_map(|p| Family::ALL.into_iter().map(move |f| c.requests(p, f, k)))
                .sum()
        })
    }

    /// Requests of every kind and family over one protocol.
    pub fn requests_over(&self, p: Proto) -> u64 {
        self.sum(|c| {
            Family::ALL
                .into_iter()
                .flat_map(|f| Kind::ALL.into_iter().map(move |k| c.requests(p, f, k)))
                .sum()
        })
    }

    /// Rendezvous datagrams with this outcome, all workers.
    pub fn rendezvous_outcomes(&self, o: Outcome) -> u64 {
        self.sum(|c| c.rendezvous_outcomes(o))
    }

    pub fn rejects(&self, r: Reject) -> u64 {
        self.sum(|c| c.rejects(r))
    }

    /// Requests refused or ignored, every reason.
    pub fn rejects_total(&self) -> u64 {
        Reject::ALL.into_iter().map(|r| self.rejects(r)).sum()
    }

    /// Replies or connections dropped by the I/O layer, every reason.
    pub fn drops_total(&self) -> u64 {
        Dropped::ALL.into_iter().map(|d| self.drops(d)).sum()
    }

    /// Tracker responses of one kind (UDP and HTTP, both families), e.g. the
    /// error frames and failure reasons sent.
    pub fn responses_of(&self, k: Kind) -> u64 {
        self.sum(|c| {
            [Proto::Udp, Proto::Http]
                .into_iter()
                .flat_map(|p| Family::ALL.into_iter().map(move |f| c.responses(p, f, k)))
                .sum()
        })
    }

    pub fn drops(&self, d: Dropped) -> u64 {
        self.sum(|c| c.drops(d))
    }

    /// The shortest and longest interval the packet workers hand out now
    /// (seconds, before jitter); `None` without workers.
    pub fn interval_range(&self) -> Option<(u64, u64)> {
        let mut it = self.workers.iter().map(|c| c.interval());
        let first = it.next()?;
        Some(it.fold((first, first), |(lo, hi), i| (lo.min(i), hi.max(i))))
    }

    pub fn requests(&self, p: Proto, f: Family, k: Kind) -> u64 {
        self.sum(|c| c.requests(p, f, k))
    }

    pub fn responses(&self, p: Proto, f: Family, k: Kind) -> u64 {
        self.sum(|c| c.responses(p, f, k))
    }

    /// Payload bytes received over one protocol.
    pub fn bytes_received(&self, p: Proto) -> u64 {
        self.sum(|c| c.bytes_in[p as usize].get())
    }

    /// Payload bytes sent over one protocol.
    pub fn bytes_sent(&self, p: Proto) -> u64 {
        self.sum(|c| c.bytes_out[p as usize].get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::swarm::Totals;

    #[test]
    fn process_series_from_proc_fixtures() {
        let stat = "4242 (shoal (x) y) S 1 4242 4242 0 -1 4194560 1 0 0 0 250 50 0 0 20 0 3 0 12345 1000 300 18446744073709551615";
        let status = "Name:\tshoal\nVmRSS:\t   20480 kB\nThreads:\t3\n";
        let boot = "cpu  1 2 3\nbtime 1700000000\nprocesses 9\n";
        let p = procfs::parse(stat, status, boot, 17).unwrap();
        assert_eq!(
            p,
            procfs::Process {
                cpu_seconds: 3.0,
                resident_bytes: 20 << 20,
                start_time_secs: 1_700_000_123,
                open_fds: 17,
            }
        );
        assert_eq!(procfs::parse("garbage", status, boot, 1), None);
    }

    #[test]
    fn udp_drops_sum_our_sockets_only() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  123: 0100007F:1B39 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 5551 2 0000000000000000 7
  124: 0100007F:1B3A 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 5552 2 0000000000000000 100
  125: 0100007F:1B3B 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 5553 2 0000000000000000 5
";
        let ours = [5551, 5553].into_iter().collect();
        assert_eq!(procfs::drops_of(table, &ours), 12);
        assert_eq!(procfs::socket_inode("socket:[5551]"), Some(5551));
        assert_eq!(procfs::socket_inode("pipe:[5551]"), None);
        // Per socket, in the order asked, for a worker's own sockets.
        let mut per = [0; 3];
        procfs::add_drops(table, &[5553, 5552, 9999], &mut per);
        assert_eq!(per, [5, 100, 0]);
    }

    /// A socket's inode read through /proc/self/fd finds its row, whose
    /// drops rise when its buffer overflows.
    #[test]
    #[cfg(target_os = "linux")]
    fn a_sockets_own_drops_are_read_by_its_inode() {
        use std::os::fd::AsRawFd;
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        sock.set_recv_buffer_size(1).unwrap();
        sock.bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
        let sock: std::net::UdpSocket = sock.into();
        let inode = fd_socket_inode(sock.as_raw_fd()).expect("a socket inode");
        let to = sock.local_addr().unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // The smallest buffer holds a few datagrams: 200 overflow it.
        for _ in 0..200 {
            sender.send_to(&[0; 64], to).unwrap();
        }
        let drops = udp_drops_of(&[inode, 0]).unwrap();
        assert!(drops[0] > 0 && drops[1] == 0, "{drops:?}");
    }

    /// This process's own /proc files parse (the series are present).
    #[test]
    #[cfg(target_os = "linux")]
    fn udp_drops_read_from_this_process() {
        let _sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // Other tests in this process may have sockets of their own: only
        // presence is certain.
        assert!(procfs::udp_drops().is_some());
        let p = procfs::process().unwrap();
        assert!(p.resident_bytes > 0 && p.open_fds >= 1, "{p:?}");
    }

    #[test]
    fn a_worker_reports_its_busy_time_its_interval_and_what_it_handled() {
        let a = Arc::new(Counters::default());
        let b = Arc::new(Counters::default());
        a.add_busy(1_500_000_000);
        a.add_busy(250_000_000);
        a.set_interval(1800);
        b.set_interval(2400);
        a.request(Proto::Udp, Family::V4, Kind::Connect);
        a.request(Proto::Http, Family::V6, Kind::Announce);
        a.reject(Reject::BadConnectionId);
        assert_eq!(
            (a.busy_ns(), a.handled(), b.handled()),
            (1_750_000_000, 3, 0)
        );
        let reg = Registry {
            workers: vec![a, b],
            ..Registry::default()
        };
        assert_eq!(reg.interval_range(), Some((1800, 2400)));
        assert_eq!(Registry::default().interval_range(), None);
        let mut s = String::new();
        reg.render_prometheus(&mut s, &Totals::default(), 0);
        for line in [
            "# TYPE shoal_announce_interval_seconds gauge\n",
            "shoal_announce_interval_seconds{worker=\"0\"} 1800\n",
            "shoal_announce_interval_seconds{worker=\"1\"} 2400\n",
            "# TYPE shoal_worker_busy_seconds_total counter\n",
            "shoal_worker_busy_seconds_total{worker=\"0\"} 1.750000000\n",
            "shoal_worker_busy_seconds_total{worker=\"1\"} 0.000000000\n",
        ] {
            assert!(s.contains(line), "missing {line:?} in\n{s}");
        }
    }

    #[test]
    fn sums_workers_and_renders_prometheus() {
        let a = Arc::new(Counters::default());
        let b = Arc::new(Counters::default());
        a.request(Proto::Udp, Family::V4, Kind::Announce);
        b.request(Proto::Udp, Family::V4, Kind::Announce);
        b.request(Proto::Http, Family::V6, Kind::Scrape);
        a.reject(Reject::BadConnectionId);
        b.dropped(Dropped::SendWouldBlock);
        let reg = Registry {
            workers: vec![a, b],
            rendezvous: None,
            max_peers: 0,
            ..Registry::default()
        };
        assert_eq!(reg.requests_of(Kind::Announce), 2);
        assert_eq!(reg.requests_of(Kind::Scrape), 1);
        let totals = Totals {
            torrents: 3,
            seeders4: 1,
            leechers4: 2,
            seeders6: 0,
            leechers6: 4,
            bytes: 5000,
            max_bytes: 6000,
            evicted: [7, 0, 1],
        };
        let mut s = String::new();
        reg.render_prometheus(&mut s, &totals, 42);
        assert!(s.contains("shoal_evicted_total{reason=\"memory\"} 7"));
        assert!(s.contains("shoal_evicted_total{reason=\"torrent_share\"} 1"));
        assert!(s.contains("shoal_swarm_bytes 5000\n"));
        assert!(s.contains("shoal_max_memory_bytes 6000\n"));
        assert!(s.contains("# TYPE shoal_requests_total counter"));
        assert!(s.contains(
            "shoal_requests_total{protocol=\"udp\",family=\"ipv4\",kind=\"announce\"} 2"
        ));
        assert!(
            s.contains("shoal_requests_total{protocol=\"http\",family=\"ipv6\",kind=\"scrape\"} 1")
        );
        assert!(s.contains("shoal_rejected_total{reason=\"bad_connection_id\"} 1"));
        assert!(s.contains("shoal_dropped_total{reason=\"send_would_block\"} 1"));
        assert!(s.contains("shoal_leechers{family=\"ipv6\"} 4"));
        assert!(s.contains("shoal_torrents 3"));
        assert!(s.contains("shoal_workers 2"));
        assert!(s.contains("shoal_uptime_seconds 42"));
        // Every sample line belongs to a declared metric.
        for line in s.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(s.contains(&format!("# TYPE {name} ")), "undeclared {name}");
        }
    }

    #[test]
    fn rendezvous_series_only_when_the_service_is_on() {
        use crate::rendezvous::{DropReason, RendezvousConfig};
        let c = Arc::new(Counters::default());
        c.request(Proto::Rendezvous, Family::V6, Kind::Announce);
        c.rendezvous(Outcome::Announced);
        c.rendezvous(Outcome::Dropped(DropReason::NotJson));
        c.rendezvous(Outcome::Dropped(DropReason::NotJson));
        let off = Registry {
            workers: vec![Arc::clone(&c)],
            rendezvous: None,
            max_peers: 0,
            ..Registry::default()
        };
        let mut s = String::new();
        off.render_prometheus(&mut s, &Totals::default(), 0);
        // (Like the HTTP drop reasons, `rendezvous_no_route` is always listed.)
        assert!(!s.contains("protocol=\"rendezvous\""), "{s}");
        assert!(!s.contains("shoal_rendezvous_"), "{s}");
        // Not a torrent announce: the tracker's counts leave it out.
        assert_eq!(off.requests_of(Kind::Announce), 0);
        assert_eq!(off.requests_over(Proto::Rendezvous), 1);

        let rdv = Arc::new(Rendezvous::new(RendezvousConfig::default(), 4));
        rdv.registry()
            .announce("192.0.2.1:4000".parse().unwrap(), 0)
            .unwrap();
        let on = Registry {
            workers: vec![c],
            rendezvous: Some(rdv),
            max_peers: 0,
            ..Registry::default()
        };
        let mut s = String::new();
        on.render_prometheus(&mut s, &Totals::default(), 0);
        for line in [
            "shoal_requests_total{protocol=\"rendezvous\",family=\"ipv6\",kind=\"announce\"} 1\n",
            "shoal_rendezvous_total{outcome=\"announced\"} 1\n",
            "shoal_rendezvous_total{outcome=\"dropped_not_json\"} 2\n",
            "shoal_rendezvous_total{outcome=\"dropped_no_free_id\"} 0\n",
            "shoal_rendezvous_registrations 1\n",
            "shoal_sent_bytes_total{protocol=\"rendezvous\"} 0\n",
        ] {
            assert!(s.contains(line), "missing {line:?} in\n{s}");
        }
        // Connect and scrape mean nothing to the rendezvous protocol.
        assert!(!s.contains("protocol=\"rendezvous\",family=\"ipv4\",kind=\"connect\""));
        assert!(!s.contains("protocol=\"rendezvous\",family=\"ipv4\",kind=\"scrape\""));
        assert!(!s.contains("shoal_rendezvous_registration_bytes 0\n"));
    }

    #[test]
    fn every_variant_has_its_index_and_its_sample() {
        fn check<T: Copy + PartialEq + std::fmt::Debug>(all: &[T], index: impl Fn(T) -> usize) {
            for (i, &v) in all.iter().enumerate() {
                assert_eq!(index(v), i, "{v:?} out of place");
            }
        }
        check(&Proto::ALL, |v| v as usize);
        check(&Family::ALL, |v| v as usize);
        check(&Kind::ALL, |v| v as usize);
        check(&Reject::ALL, |v| v as usize);
        check(&Dropped::ALL, |v| v as usize);
        let c = Counters::default();
        for r in Reject::ALL {
            c.reject(r);
        }
        for d in Dropped::ALL {
            c.dropped(d);
        }
        let reg = Registry {
            workers: vec![Arc::new(c)],
            rendezvous: None,
            max_peers: 0,
            ..Registry::default()
        };
        let mut s = String::new();
        reg.render_prometheus(&mut s, &Totals::default(), 0);
        for r in Reject::ALL {
            let line = format!("shoal_rejected_total{{reason=\"{}\"}} 1\n", r.label());
            assert!(s.contains(&line), "missing {line}");
        }
        for d in Dropped::ALL {
            let line = format!("shoal_dropped_total{{reason=\"{}\"}} 1\n", d.label());
            assert!(s.contains(&line), "missing {line}");
        }
    }
}
