//! Per-worker counters and their Prometheus text rendering.
//!
//! Each worker owns one [`Counters`] and is its only writer, so an increment is
//! a relaxed load and store on a line no other thread writes: no contention, no
//! locked instruction. Readers (the `/metrics` handler, the stats log line) sum
//! all workers' counters; a reading may be a few increments behind, never torn.

use crate::swarm::Totals;
use std::fmt::Write as _;
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
        /// HTTP only: /health, /metrics, 404s and other non-tracker requests.
        Other => "other",
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
        /// A new peer answered but not stored: the swarm map is at `--max-peers`.
        SwarmFull => "swarm_full",
        /// Announce (or private scrape) refused by the access list (`--access-list`).
        TorrentNotAllowed => "torrent_not_allowed",
        /// Private mode (`--keys`): no key in the announce URL path.
        MissingKey => "missing_key",
        /// Private mode: a key not listed, expired or malformed.
        UnknownKey => "unknown_key",
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
        HttpOverLimit => "http_over_limit",
        /// HTTP: closed for idling or for being too slow to send a request.
        HttpTimeout => "http_timeout",
        /// HTTP: accept failed for want of file descriptors (EMFILE/ENFILE);
        /// the worker stops accepting until a connection closes or a short
        /// back-off passes. Counts the pauses, not the connections waiting.
        AcceptNoFds => "accept_no_fds",
    }
}

/// One worker's counters, on cache lines of their own (workers' counters are
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
    /// Failed reloads of the access-list and key files. Written only by the
    /// reloader thread (into the first worker's counters: still one writer).
    /// Index 0: the access list, 1: the key file.
    pub access_reload_failures: [Counter; 2],
}

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

    pub fn responses(&self, p: Proto, f: Family, k: Kind) -> u64 {
        self.responses[p as usize][f as usize][k as usize].get()
    }

    pub fn rejects(&self, r: Reject) -> u64 {
        self.rejects[r as usize].get()
    }

    pub fn drops(&self, d: Dropped) -> u64 {
        self.drops[d as usize].get()
    }
}

/// The counters of all workers, for readers.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    pub workers: Vec<Arc<Counters>>,
}

impl Registry {
    fn sum(&self, f: impl Fn(&Counters) -> u64) -> u64 {
        self.workers.iter().map(|c| f(c)).sum()
    }

    /// Requests of one kind over all protocols and families.
    pub fn requests_of(&self, k: Kind) -> u64 {
        self.sum(|c| {
            Proto::ALL
                .into_iter()
                .flat_map(|p| Family::ALL.into_iter().map(move |f| c.requests(p, f, k)))
                .sum()
        })
    }

    pub fn rejects(&self, r: Reject) -> u64 {
        self.sum(|c| c.rejects(r))
    }

    pub fn drops(&self, d: Dropped) -> u64 {
        self.sum(|c| c.drops(d))
    }

    pub fn requests(&self, p: Proto, f: Family, k: Kind) -> u64 {
        self.sum(|c| c.requests(p, f, k))
    }

    pub fn responses(&self, p: Proto, f: Family, k: Kind) -> u64 {
        self.sum(|c| c.responses(p, f, k))
    }

    /// Prometheus text exposition format, version 0.0.4.
    pub fn render_prometheus(&self, out: &mut String, totals: &Totals, uptime_secs: u64) {
        let _ = self.render(out, totals, uptime_secs);
    }

    /// Payload bytes received over one protocol.
    pub fn bytes_received(&self, p: Proto) -> u64 {
        self.sum(|c| c.bytes_in[p as usize].get())
    }

    /// Payload bytes sent over one protocol.
    pub fn bytes_sent(&self, p: Proto) -> u64 {
        self.sum(|c| c.bytes_out[p as usize].get())
    }

    fn render(&self, out: &mut String, totals: &Totals, uptime_secs: u64) -> std::fmt::Result {
        let series = || {
            Proto::ALL.into_iter().flat_map(|p| {
                Family::ALL
                    .into_iter()
                    .flat_map(move |f| Kind::ALL.into_iter().map(move |k| (p, f, k)))
            })
        };
        let pfk = |p: Proto, f: Family, k: Kind| {
            [
                ("protocol", p.label()),
                ("family", f.label()),
                ("kind", k.label()),
            ]
        };
        metric(
            out,
            "shoal_requests_total",
            "counter",
            "Requests received, by protocol, address family and kind.",
            series()
                // No request is an "error"; HTTP has no "connect".
                .filter(|&(p, _, k)| k != Kind::Error && !(p == Proto::Http && k == Kind::Connect))
                .map(|(p, f, k)| (pfk(p, f, k), self.requests(p, f, k))),
        )?;
        metric(
            out,
            "shoal_responses_total",
            "counter",
            "Responses sent, by protocol, address family and kind.",
            series()
                .filter(|&(p, _, k)| !(p == Proto::Http && k == Kind::Connect))
                .map(|(p, f, k)| (pfk(p, f, k), self.responses(p, f, k))),
        )?;
        metric(
            out,
            "shoal_rejected_total",
            "counter",
            "Requests refused or ignored, by reason.",
            Reject::ALL.map(|r| ([("reason", r.label())], self.rejects(r))),
        )?;
        metric(
            out,
            "shoal_dropped_total",
            "counter",
            "Replies or connections dropped by the I/O layer, by reason.",
            Dropped::ALL.map(|d| ([("reason", d.label())], self.drops(d))),
        )?;
        metric(
            out,
            "shoal_received_bytes_total",
            "counter",
            "Payload bytes received, by protocol.",
            Proto::ALL.map(|p| ([("protocol", p.label())], self.bytes_received(p))),
        )?;
        metric(
            out,
            "shoal_sent_bytes_total",
            "counter",
            "Payload bytes sent, by protocol.",
            Proto::ALL.map(|p| ([("protocol", p.label())], self.bytes_sent(p))),
        )?;
        metric(
            out,
            "shoal_http_connections_total",
            "counter",
            "HTTP connections accepted.",
            [([], self.sum(|c| c.http_connections.get()))],
        )?;
        for (i, (name, what)) in [
            ("shoal_access_list_reload_failures_total", "access-list"),
            ("shoal_keys_reload_failures_total", "key"),
        ]
        .into_iter()
        .enumerate()
        {
            let help = format!("Reloads of the {what} file that failed; the previous one stays.");
            let n = self.sum(|c| c.access_reload_failures[i].get());
            metric(out, name, "counter", &help, [([], n)])?;
        }
        metric(
            out,
            "shoal_torrents",
            "gauge",
            "Torrents with at least one peer.",
            [([], totals.torrents)],
        )?;
        let by_family = |v4: u64, v6: u64| {
            [
                ([("family", Family::V4.label())], v4),
                ([("family", Family::V6.label())], v6),
            ]
        };
        metric(
            out,
            "shoal_peers",
            "gauge",
            "Peers, by address family.",
            by_family(
                totals.seeders4 + totals.leechers4,
                totals.seeders6 + totals.leechers6,
            ),
        )?;
        metric(
            out,
            "shoal_seeders",
            "gauge",
            "Seeders, by address family.",
            by_family(totals.seeders4, totals.seeders6),
        )?;
        metric(
            out,
            "shoal_leechers",
            "gauge",
            "Leechers, by address family.",
            by_family(totals.leechers4, totals.leechers6),
        )?;
        metric(
            out,
            "shoal_uptime_seconds",
            "gauge",
            "Seconds since the tracker started.",
            [([], uptime_secs)],
        )?;
        metric(
            out,
            "shoal_workers",
            "gauge",
            "Worker threads serving requests.",
            [([], self.workers.len() as u64)],
        )
    }
}

/// One metric family: its `# HELP` and `# TYPE` lines, then one sample per
/// label set (`name{k="v",...} value`, or `name value` without labels). Label
/// values are the enums' fixed labels: nothing to escape.
fn metric<const N: usize>(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: impl IntoIterator<Item = ([(&'static str, &'static str); N], u64)>,
) -> std::fmt::Result {
    writeln!(out, "# HELP {name} {help}")?;
    writeln!(out, "# TYPE {name} {kind}")?;
    for (labels, value) in samples {
        out.push_str(name);
        for (i, (key, val)) in labels.iter().enumerate() {
            out.push(if i == 0 { '{' } else { ',' });
            write!(out, "{key}=\"{val}\"")?;
        }
        if N > 0 {
            out.push('}');
        }
        writeln!(out, " {value}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        };
        assert_eq!(reg.requests_of(Kind::Announce), 2);
        assert_eq!(reg.requests_of(Kind::Scrape), 1);
        let totals = Totals {
            torrents: 3,
            seeders4: 1,
            leechers4: 2,
            seeders6: 0,
            leechers6: 4,
        };
        let mut s = String::new();
        reg.render_prometheus(&mut s, &totals, 42);
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
