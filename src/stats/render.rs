//! The Prometheus text exposition (format 0.0.4) of a [`Registry`]: the
//! tracker's series, the other rooms' own ([`Series`]), and the process's.

use super::{procfs, Counter, Dropped, Family, Kind, Proto, Registry, Reject, StateCounters};
use crate::rendezvous::Outcome;
use crate::swarm::{Eviction, Totals};
use std::fmt::Write as _;

/// Series a room renders itself (the cluster link's): the registry writes
/// them after its own, only while the room runs.
pub trait Series: std::fmt::Debug + Send + Sync {
    fn render(&self, out: &mut String) -> std::fmt::Result;
}

/// Request kinds of the operator endpoints (HTTP requests only).
const OPERATOR_KINDS: [Kind; 2] = [Kind::Health, Kind::Metrics];

/// Request kinds the rendezvous service counts: `announce`, and `other` for
/// `alive`, `push` and anything unparseable.
const RENDEZVOUS_REQUESTS: [Kind; 2] = [Kind::Announce, Kind::Other];
/// Reply kinds it counts: `announced`, `error` (unknown share id), and `other`
/// for `alived`, `expired`, `pushed` and `income`.
const RENDEZVOUS_RESPONSES: [Kind; 3] = [Kind::Announce, Kind::Error, Kind::Other];

impl Registry {
    /// Prometheus text exposition format, version 0.0.4.
    pub fn render_prometheus(&self, out: &mut String, totals: &Totals, uptime_secs: u64) {
        let _ = self.render(out, totals, uptime_secs);
    }

    /// Each packet worker's announce interval and busy time, labelled by
    /// its index.
    fn render_workers(&self, out: &mut String) -> std::fmt::Result {
        writeln!(
            out,
            "# HELP shoal_announce_interval_seconds The announce interval each packet worker hands out now, before jitter: --interval, more while the worker is overloaded (up to --max-interval).\n# TYPE shoal_announce_interval_seconds gauge"
        )?;
        for (i, c) in self.workers.iter().enumerate() {
            writeln!(
                out,
                "shoal_announce_interval_seconds{{worker=\"{i}\"}} {}",
                c.interval()
            )?;
        }
        writeln!(
            out,
            "# HELP shoal_worker_busy_seconds_total Time each packet worker spent working rather than waiting for packets; its rate is the worker's utilisation.\n# TYPE shoal_worker_busy_seconds_total counter"
        )?;
        for (i, c) in self.workers.iter().enumerate() {
            let ns = c.busy_ns();
            writeln!(
                out,
                "shoal_worker_busy_seconds_total{{worker=\"{i}\"}} {}.{:09}",
                ns / 1_000_000_000,
                ns % 1_000_000_000
            )?;
        }
        Ok(())
    }

    /// The state file's series (zeros without `--state-file`).
    fn render_state(&self, out: &mut String) -> std::fmt::Result {
        let st = |f: fn(&StateCounters) -> &Counter| f(&self.state).get();
        metric(
            out,
            "shoal_state_writes_total",
            "counter",
            "Snapshots written to the state file (--state-file).",
            [([], st(|s| &s.writes))],
        )?;
        metric(
            out,
            "shoal_state_write_failures_total",
            "counter",
            "Snapshot writes that failed (the previous state file stays).",
            [([], st(|s| &s.write_failures))],
        )?;
        let micros = st(|s| &s.last_write_micros);
        writeln!(
            out,
            "# HELP shoal_state_last_write_duration_seconds Time the last snapshot write took.\n# TYPE shoal_state_last_write_duration_seconds gauge\nshoal_state_last_write_duration_seconds {}.{:06}",
            micros / 1_000_000,
            micros % 1_000_000
        )?;
        metric(
            out,
            "shoal_state_last_write_bytes",
            "gauge",
            "Size of the last snapshot written.",
            [([], st(|s| &s.last_write_bytes))],
        )?;
        metric(
            out,
            "shoal_state_last_write_peers",
            "gauge",
            "Peers in the last snapshot written.",
            [([], st(|s| &s.last_write_peers))],
        )?;
        metric(
            out,
            "shoal_state_loaded_torrents",
            "gauge",
            "Torrents restored from the state file at start-up.",
            [([], st(|s| &s.loaded_torrents))],
        )?;
        metric(
            out,
            "shoal_state_loaded_peers",
            "gauge",
            "Peers restored from the state file at start-up.",
            [([], st(|s| &s.loaded_peers))],
        )
    }

    fn render(&self, out: &mut String, totals: &Totals, uptime_secs: u64) -> std::fmt::Result {
        let rendezvous = self.rendezvous.is_some();
        let protos = move || {
            Proto::ALL
                .into_iter()
                .filter(move |&p| rendezvous || p != Proto::Rendezvous)
        };
        let series = || {
            protos().flat_map(|p| {
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
                // No request is an "error"; HTTP has no "connect"; only HTTP
                // serves /health and /metrics.
                .filter(|&(p, _, k)| k != Kind::Error && !(p == Proto::Http && k == Kind::Connect))
                .filter(|&(p, _, k)| p == Proto::Http || !OPERATOR_KINDS.contains(&k))
                .filter(|&(p, _, k)| p != Proto::Rendezvous || RENDEZVOUS_REQUESTS.contains(&k))
                .map(|(p, f, k)| (pfk(p, f, k), self.requests(p, f, k))),
        )?;
        metric(
            out,
            "shoal_responses_total",
            "counter",
            "Responses sent, by protocol, address family and kind.",
            series()
                .filter(|&(p, _, k)| !(p == Proto::Http && k == Kind::Connect))
                // Their replies are "other".
                .filter(|&(_, _, k)| !OPERATOR_KINDS.contains(&k))
                .filter(|&(p, _, k)| p != Proto::Rendezvous || RENDEZVOUS_RESPONSES.contains(&k))
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
            protos().map(|p| ([("protocol", p.label())], self.bytes_received(p))),
        )?;
        metric(
            out,
            "shoal_sent_bytes_total",
            "counter",
            "Payload bytes sent, by protocol.",
            protos().map(|p| ([("protocol", p.label())], self.bytes_sent(p))),
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
            let n = self.access_reload_failures[i].get();
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
            "shoal_swarm_bytes",
            "gauge",
            "Bytes the swarm map accounts for (torrents, peers, indexes, HTTP peer ids): what --max-memory bounds.",
            [([], totals.bytes)],
        )?;
        metric(
            out,
            "shoal_max_memory_bytes",
            "gauge",
            "The swarm map's memory budget (--max-memory); 0 = no limit.",
            [([], totals.max_bytes)],
        )?;
        metric(
            out,
            "shoal_evicted_total",
            "counter",
            "Peers evicted before their timeout to stay within a bound, by the bound: memory (--max-memory), peers (--max-peers), torrent_share (--max-torrent-share).",
            Eviction::ALL.map(|e| ([("reason", e.label())], totals.evicted[e as usize])),
        )?;
        if let Some(rdv) = &self.rendezvous {
            metric(
                out,
                "shoal_rendezvous_total",
                "counter",
                "Rendezvous datagrams received, by what became of them.",
                Outcome::ALL.map(|o| ([("outcome", o.as_str())], self.rendezvous_outcomes(o))),
            )?;
            let st = rdv.registry().stats();
            metric(
                out,
                "shoal_rendezvous_registrations",
                "gauge",
                "Rendezvous registrations held (expired ones count until swept).",
                [([], st.entries)],
            )?;
            metric(
                out,
                "shoal_rendezvous_registration_bytes",
                "gauge",
                "Approximate bytes held by the rendezvous registry.",
                [([], st.bytes)],
            )?;
        }
        for s in &self.series {
            s.render(out)?;
        }
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
        )?;
        self.render_workers(out)?;
        metric(
            out,
            "shoal_max_peers",
            "gauge",
            "Most peers held in all (--max-peers); 0 = no limit.",
            [([], self.max_peers)],
        )?;
        self.render_state(out)?;
        metric(
            out,
            "shoal_build_info",
            "gauge",
            "Always 1; the version label says which shoal is running.",
            [([("version", env!("CARGO_PKG_VERSION"))], 1)],
        )?;
        if let Some(drops) = procfs::udp_drops() {
            metric(
                out,
                "shoal_udp_receive_drops_total",
                "counter",
                "Datagrams the kernel dropped for shoal's UDP sockets (receive buffer full: the host is saturated), from /proc/net/udp and /proc/net/udp6.",
                [([], drops)],
            )?;
        }
        if let Some(p) = procfs::process() {
            render_process(out, &p)?;
        }
        Ok(())
    }
}

/// The standard `process_*` series (as Prometheus client libraries name
/// them), so stock dashboards and alerts work unchanged.
fn render_process(out: &mut String, p: &procfs::Process) -> std::fmt::Result {
    writeln!(
        out,
        "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds."
    )?;
    writeln!(out, "# TYPE process_cpu_seconds_total counter")?;
    writeln!(out, "process_cpu_seconds_total {}", p.cpu_seconds)?;
    metric(
        out,
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        [([], p.resident_bytes)],
    )?;
    metric(
        out,
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        [([], p.start_time_secs)],
    )?;
    metric(
        out,
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
        [([], p.open_fds)],
    )
}

/// One metric family: its `# HELP` and `# TYPE` lines, then one sample per
/// label set (`name{k="v",...} value`, or `name value` without labels). Label
/// values are the enums' fixed labels: nothing to escape.
pub fn metric<const N: usize>(
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
