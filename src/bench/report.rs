//! The outcome of a `shoal bench` run: what was run, the workers' merged
//! [`Totals`], and the two ways it is printed — a human-readable table and one
//! JSON object (through serde; its field names are relied upon by scripts
//! such as `benches/compare.sh`, so they do not change).

use super::worker::{Totals, Withdrawal, ANNOUNCE, CONNECT, SCRAPE};
use serde::Serialize;
use std::fmt::Write as _;
use std::time::Duration;

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct Report {
    /// The target as given (or the in-process server's address).
    pub target: String,
    pub in_process: bool,
    /// Length of the send phase.
    pub duration: Duration,
    pub workers: usize,
    pub sockets: usize,
    pub window: usize,
    pub torrents: u32,
    pub peers: u32,
    /// Whether every socket got its own loopback address.
    pub distinct_addresses: bool,
    /// Everything the workers counted, summed.
    pub totals: Totals,
    /// The simulated peers' withdrawal from a target; `None` for an
    /// in-process shoal or with `--keep-peers`.
    pub withdrawal: Option<Withdrawal>,
}

impl Report {
    pub fn sent_total(&self) -> u64 {
        self.totals.sent.iter().sum()
    }

    pub fn replies_total(&self) -> u64 {
        self.totals.replies.iter().sum()
    }

    pub fn replies_per_sec(&self) -> f64 {
        self.replies_total() as f64 / self.duration.as_secs_f64().max(1e-9)
    }

    /// Requests never answered within the timeout, as a percentage of those sent.
    pub fn loss_pct(&self) -> f64 {
        if self.sent_total() == 0 {
            return 0.0;
        }
        100.0 * self.totals.timeouts as f64 / self.sent_total() as f64
    }

    /// Average peers per announce reply (0 without replies).
    pub fn peers_per_announce(&self) -> f64 {
        let announces = self.totals.replies[ANNOUNCE];
        if announces == 0 {
            0.0
        } else {
            self.totals.peers_received as f64 / announces as f64
        }
    }

    fn us(ns: Option<u64>) -> String {
        ns.map_or_else(|| "-".into(), |v| format!("{:.1}", v as f64 / 1000.0))
    }

    /// The human-readable report.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let t = &self.totals;
        let h = &t.latency;
        let _ = writeln!(
            s,
            "target        {}{}",
            self.target,
            if self.in_process {
                " (in-process shoal)"
            } else {
                ""
            }
        );
        let _ = writeln!(
            s,
            "load          {} worker(s) × {} socket(s) × window {}, {} torrents, {} peers{}",
            self.workers,
            self.sockets,
            self.window,
            self.torrents,
            self.peers,
            if self.distinct_addresses {
                ""
            } else {
                " (one source address)"
            }
        );
        let _ = writeln!(s, "duration      {:.2} s", self.duration.as_secs_f64());
        let _ = writeln!(
            s,
            "sent          {} (connect {}, announce {}, scrape {})",
            self.sent_total(),
            t.sent[CONNECT],
            t.sent[ANNOUNCE],
            t.sent[SCRAPE]
        );
        let _ = writeln!(
            s,
            "replies       {} (connect {}, announce {}, scrape {})",
            self.replies_total(),
            t.replies[CONNECT],
            t.replies[ANNOUNCE],
            t.replies[SCRAPE]
        );
        let _ = writeln!(s, "replies/s     {:.0}", self.replies_per_sec());
        let _ = writeln!(
            s,
            "peers/reply   {:.1} per announce reply",
            self.peers_per_announce()
        );
        let _ = writeln!(s, "loss          {:.3} %", self.loss_pct());
        let _ = writeln!(
            s,
            "latency µs    p50 {}  p99 {}  p99.9 {}  max {}",
            Self::us(h.quantile(0.5)),
            Self::us(h.quantile(0.99)),
            Self::us(h.quantile(0.999)),
            Self::us(h.max())
        );
        let _ = writeln!(
            s,
            "errors        error frames {}, malformed {}, timeouts {}, unexpected {}, refused {}, I/O {}",
            t.error_frames, t.malformed, t.timeouts, t.unexpected, t.refused, t.io_errors
        );
        match &self.withdrawal {
            Some(w) => {
                let _ = write!(
                    s,
                    "withdrawn     {} of {} simulated peers (stopped announces, {:.2} s)",
                    w.confirmed,
                    w.peers,
                    w.elapsed.as_secs_f64()
                );
                if w.left() > 0 {
                    let _ = write!(
                        s,
                        "; {} unanswered stay until the tracker's peer timeout",
                        w.left()
                    );
                }
                s.push('\n');
            }
            None if !self.in_process => {
                s.push_str(
                    "withdrawn     none: the simulated peers stay in the target (--keep-peers)\n",
                );
            }
            None => {}
        }
        s
    }

    /// The report as one JSON object (latencies in microseconds, floats
    /// rounded to 3 decimals, `null` where there is no value).
    pub fn to_json(&self) -> String {
        let t = &self.totals;
        let h = &t.latency;
        let us = |ns: Option<u64>| ns.and_then(|ns| round3(ns as f64 / 1000.0));
        let json = JsonReport {
            target: &self.target,
            in_process: self.in_process,
            duration_secs: round3(self.duration.as_secs_f64()),
            workers: self.workers,
            sockets_per_worker: self.sockets,
            window: self.window,
            torrents: self.torrents,
            peers: self.peers,
            distinct_addresses: self.distinct_addresses,
            sent: self.sent_total(),
            sent_by_kind: ByKind::from(&t.sent),
            replies: self.replies_total(),
            replies_by_kind: ByKind::from(&t.replies),
            replies_per_sec: round3(self.replies_per_sec()),
            loss_pct: round3(self.loss_pct()),
            peers_per_announce: round3(self.peers_per_announce()),
            latency_us: LatencyUs {
                p50: us(h.quantile(0.5)),
                p99: us(h.quantile(0.99)),
                p999: us(h.quantile(0.999)),
                min: us(h.min()),
                max: us(h.max()),
                mean: h.mean().and_then(|ns| round3(ns / 1000.0)),
            },
            errors: Errors {
                error_frames: t.error_frames,
                malformed: t.malformed,
                timeouts: t.timeouts,
                unexpected: t.unexpected,
                refused: t.refused,
                io: t.io_errors,
            },
            withdrawn: self.withdrawal.map(|w| Withdrawn {
                peers: w.peers,
                confirmed: w.confirmed,
                left: w.left(),
                sent: w.sent,
                secs: round3(w.elapsed.as_secs_f64()),
            }),
        };
        // Cannot fail: plain structs of numbers and strings, no maps.
        serde_json::to_string(&json).unwrap_or_default()
    }
}

/// A finite float rounded to 3 decimals; `None` (JSON `null`) otherwise.
fn round3(x: f64) -> Option<f64> {
    x.is_finite().then(|| (x * 1000.0).round() / 1000.0)
}

/// The JSON shape of a [`Report`]; field order is output order.
#[derive(Serialize)]
struct JsonReport<'a> {
    target: &'a str,
    in_process: bool,
    duration_secs: Option<f64>,
    workers: usize,
    sockets_per_worker: usize,
    window: usize,
    torrents: u32,
    peers: u32,
    distinct_addresses: bool,
    sent: u64,
    sent_by_kind: ByKind,
    replies: u64,
    replies_by_kind: ByKind,
    replies_per_sec: Option<f64>,
    loss_pct: Option<f64>,
    peers_per_announce: Option<f64>,
    latency_us: LatencyUs,
    errors: Errors,
    /// `null` for an in-process shoal or with `--keep-peers`.
    withdrawn: Option<Withdrawn>,
}

#[derive(Serialize)]
struct Withdrawn {
    peers: u64,
    confirmed: u64,
    left: u64,
    sent: u64,
    secs: Option<f64>,
}

#[derive(Serialize)]
struct ByKind {
    connect: u64,
    announce: u64,
    scrape: u64,
}

impl From<&[u64; 3]> for ByKind {
    fn from(c: &[u64; 3]) -> ByKind {
        ByKind {
            connect: c[CONNECT],
            announce: c[ANNOUNCE],
            scrape: c[SCRAPE],
        }
    }
}

#[derive(Serialize)]
struct LatencyUs {
    p50: Option<f64>,
    p99: Option<f64>,
    p999: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    mean: Option<f64>,
}

#[derive(Serialize)]
struct Errors {
    error_frames: u64,
    malformed: u64,
    timeouts: u64,
    unexpected: u64,
    refused: u64,
    io: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_json_shape() {
        let mut totals = Totals::new().unwrap();
        totals.sent = [10, 20, 1];
        totals.replies = [9, 18, 1];
        totals.timeouts = 3;
        totals.peers_received = 36;
        totals.latency.record(1_500);
        let r = Report {
            target: "udp://127.0.0.1:1/\"x\"".into(),
            in_process: false,
            duration: Duration::from_millis(1500),
            workers: 1,
            sockets: 4,
            window: 16,
            torrents: 100,
            peers: 1000,
            distinct_addresses: true,
            totals,
            withdrawal: None,
        };
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["target"], "udp://127.0.0.1:1/\"x\"");
        assert_eq!(v["duration_secs"], 1.5);
        assert_eq!(
            (v["sent"].as_u64(), v["replies"].as_u64()),
            (Some(31), Some(28))
        );
        assert_eq!(v["sent_by_kind"]["announce"], 20);
        assert_eq!(v["replies_by_kind"]["connect"], 9);
        assert_eq!(v["loss_pct"], 9.677);
        assert_eq!(v["peers_per_announce"], 2.0);
        assert_eq!(v["latency_us"]["p50"], 1.5);
        assert_eq!(v["errors"]["timeouts"], 3);
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 19, "{keys:?}");
        assert!(v["withdrawn"].is_null());
        assert!(r.to_text().contains("stay in the target (--keep-peers)"));
        let withdrawn = Report {
            totals: Totals::new().unwrap(),
            withdrawal: Some(Withdrawal {
                peers: 10,
                confirmed: 8,
                sent: 12,
                elapsed: Duration::from_millis(250),
            }),
            ..r.clone()
        };
        let v: serde_json::Value = serde_json::from_str(&withdrawn.to_json()).unwrap();
        assert_eq!(v["withdrawn"]["left"], 2);
        assert_eq!(v["withdrawn"]["secs"], 0.25);
        let text = withdrawn.to_text();
        assert!(
            text.contains(
                "withdrawn     8 of 10 simulated peers (stopped announces, 0.25 s); 2 unanswered"
            ),
            "{text}"
        );
        // No latencies recorded: null, not 0.
        let empty = Report {
            totals: Totals::new().unwrap(),
            ..r
        };
        let v: serde_json::Value = serde_json::from_str(&empty.to_json()).unwrap();
        assert!(v["latency_us"]["p99"].is_null() && v["latency_us"]["mean"].is_null());
        assert_eq!(v["replies_per_sec"], 0.0);
    }
}
