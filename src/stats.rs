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

/// Which protocol a request came over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Udp = 0,
    Http = 1,
}

/// Address family of the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4 = 0,
    V6 = 1,
}

/// Request and response kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Connect = 0,
    Announce = 1,
    Scrape = 2,
    /// Responses only: a BEP 15 error frame or a bencoded `failure reason`.
    Error = 3,
    /// HTTP only: /health, /metrics, 404s and other non-tracker requests.
    Other = 4,
}

const PROTOS: [(Proto, &str); 2] = [(Proto::Udp, "udp"), (Proto::Http, "http")];
const FAMILIES: [(Family, &str); 2] = [(Family::V4, "ipv4"), (Family::V6, "ipv6")];
const KINDS: [(Kind, &str); 5] = [
    (Kind::Connect, "connect"),
    (Kind::Announce, "announce"),
    (Kind::Scrape, "scrape"),
    (Kind::Error, "error"),
    (Kind::Other, "other"),
];

/// Why a request was refused or dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// UDP: shorter than its action needs. Dropped.
    Truncated = 0,
    /// UDP: connect with the wrong magic. Dropped.
    BadProtocolId = 1,
    /// UDP: unknown action. Error frame if the connection id is valid, else dropped.
    UnknownAction = 2,
    /// UDP: missing, forged, expired or another address's connection id. Dropped.
    BadConnectionId = 3,
    /// Announce or scrape with invalid content (port 0, no hashes, bad parameter).
    InvalidRequest = 4,
    /// HTTP: malformed or oversized request head, or a body.
    HttpMalformed = 5,
    /// HTTP: a method other than GET/HEAD.
    HttpMethod = 6,
    /// HTTP: an unknown path.
    HttpNotFound = 7,
    /// HTTP: the client address header was required and missing.
    HttpNoClientIp = 8,
    /// A new peer answered but not stored: the swarm map is at `--max-peers`.
    SwarmFull = 9,
}

const REJECTS: [(Reject, &str); 10] = [
    (Reject::Truncated, "truncated"),
    (Reject::BadProtocolId, "bad_protocol_id"),
    (Reject::UnknownAction, "unknown_action"),
    (Reject::BadConnectionId, "bad_connection_id"),
    (Reject::InvalidRequest, "invalid_request"),
    (Reject::HttpMalformed, "http_malformed"),
    (Reject::HttpMethod, "http_method"),
    (Reject::HttpNotFound, "http_not_found"),
    (Reject::HttpNoClientIp, "http_no_client_ip"),
    (Reject::SwarmFull, "swarm_full"),
];

/// Why a packet or connection was dropped by the I/O layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// The socket's send buffer was full; the reply was not sent.
    SendWouldBlock = 0,
    /// `send_to` failed for another reason.
    SendError = 1,
    /// HTTP: a new connection over the per-worker limit, closed at once.
    HttpOverLimit = 2,
    /// HTTP: closed for idling or for being too slow to send a request.
    HttpTimeout = 3,
}

const DROPS: [(Dropped, &str); 4] = [
    (Dropped::SendWouldBlock, "send_would_block"),
    (Dropped::SendError, "send_error"),
    (Dropped::HttpOverLimit, "http_over_limit"),
    (Dropped::HttpTimeout, "http_timeout"),
];

/// One worker's counters, on cache lines of their own (workers' counters are
/// allocated back to back; without the alignment neighbours would share lines).
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Counters {
    requests: [[[Counter; 5]; 2]; 2],
    responses: [[[Counter; 5]; 2]; 2],
    rejects: [Counter; 10],
    drops: [Counter; 4],
    bytes_in: [Counter; 2],
    bytes_out: [Counter; 2],
    /// HTTP connections accepted.
    pub http_connections: Counter,
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
            PROTOS
                .iter()
                .flat_map(|&(p, _)| FAMILIES.iter().map(move |&(f, _)| c.requests(p, f, k)))
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

    fn render(&self, out: &mut String, totals: &Totals, uptime_secs: u64) -> std::fmt::Result {
        header(
            out,
            "shoal_requests_total",
            "counter",
            "Requests received, by protocol, address family and kind.",
        )?;
        for &(p, pn) in &PROTOS {
            for &(f, fam) in &FAMILIES {
                for &(k, kn) in &KINDS {
                    // No request is an "error"; HTTP has no "connect".
                    if k == Kind::Error || (p == Proto::Http && k == Kind::Connect) {
                        continue;
                    }
                    let v = self.requests(p, f, k);
                    writeln!(out, "shoal_requests_total{{protocol=\"{pn}\",family=\"{fam}\",kind=\"{kn}\"}} {v}")?;
                }
            }
        }
        header(
            out,
            "shoal_responses_total",
            "counter",
            "Responses sent, by protocol, address family and kind.",
        )?;
        for &(p, pn) in &PROTOS {
            for &(f, fam) in &FAMILIES {
                for &(k, kn) in &KINDS {
                    if p == Proto::Http && k == Kind::Connect {
                        continue;
                    }
                    let v = self.responses(p, f, k);
                    writeln!(out, "shoal_responses_total{{protocol=\"{pn}\",family=\"{fam}\",kind=\"{kn}\"}} {v}")?;
                }
            }
        }
        header(
            out,
            "shoal_rejected_total",
            "counter",
            "Requests refused or ignored, by reason.",
        )?;
        for &(r, rn) in &REJECTS {
            writeln!(
                out,
                "shoal_rejected_total{{reason=\"{rn}\"}} {}",
                self.rejects(r)
            )?;
        }
        header(
            out,
            "shoal_dropped_total",
            "counter",
            "Replies or connections dropped by the I/O layer, by reason.",
        )?;
        for &(d, dn) in &DROPS {
            writeln!(
                out,
                "shoal_dropped_total{{reason=\"{dn}\"}} {}",
                self.drops(d)
            )?;
        }
        header(
            out,
            "shoal_received_bytes_total",
            "counter",
            "Payload bytes received, by protocol.",
        )?;
        for &(p, pn) in &PROTOS {
            writeln!(
                out,
                "shoal_received_bytes_total{{protocol=\"{pn}\"}} {}",
                self.sum(|c| c.bytes_in[p as usize].get())
            )?;
        }
        header(
            out,
            "shoal_sent_bytes_total",
            "counter",
            "Payload bytes sent, by protocol.",
        )?;
        for &(p, pn) in &PROTOS {
            writeln!(
                out,
                "shoal_sent_bytes_total{{protocol=\"{pn}\"}} {}",
                self.sum(|c| c.bytes_out[p as usize].get())
            )?;
        }
        header(
            out,
            "shoal_http_connections_total",
            "counter",
            "HTTP connections accepted.",
        )?;
        writeln!(
            out,
            "shoal_http_connections_total {}",
            self.sum(|c| c.http_connections.get())
        )?;
        header(
            out,
            "shoal_torrents",
            "gauge",
            "Torrents with at least one peer.",
        )?;
        writeln!(out, "shoal_torrents {}", totals.torrents)?;
        header(out, "shoal_peers", "gauge", "Peers, by address family.")?;
        writeln!(
            out,
            "shoal_peers{{family=\"ipv4\"}} {}",
            totals.seeders4 + totals.leechers4
        )?;
        writeln!(
            out,
            "shoal_peers{{family=\"ipv6\"}} {}",
            totals.seeders6 + totals.leechers6
        )?;
        header(out, "shoal_seeders", "gauge", "Seeders, by address family.")?;
        writeln!(out, "shoal_seeders{{family=\"ipv4\"}} {}", totals.seeders4)?;
        writeln!(out, "shoal_seeders{{family=\"ipv6\"}} {}", totals.seeders6)?;
        header(
            out,
            "shoal_leechers",
            "gauge",
            "Leechers, by address family.",
        )?;
        writeln!(
            out,
            "shoal_leechers{{family=\"ipv4\"}} {}",
            totals.leechers4
        )?;
        writeln!(
            out,
            "shoal_leechers{{family=\"ipv6\"}} {}",
            totals.leechers6
        )?;
        header(
            out,
            "shoal_uptime_seconds",
            "gauge",
            "Seconds since the tracker started.",
        )?;
        writeln!(out, "shoal_uptime_seconds {uptime_secs}")?;
        header(
            out,
            "shoal_workers",
            "gauge",
            "Worker threads serving requests.",
        )?;
        writeln!(out, "shoal_workers {}", self.workers.len())?;
        Ok(())
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) -> std::fmt::Result {
    writeln!(out, "# HELP {name} {help}")?;
    writeln!(out, "# TYPE {name} {kind}")
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
}
