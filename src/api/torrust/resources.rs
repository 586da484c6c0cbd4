//! The torrust v1 resources as JSON, from shoal's counters, swarm and keys.
//!
//! Shapes follow torrust-tracker's `Stats`, `Torrent`, `ListItem`, `Peer` and
//! `AuthKey` resources. Where shoal keeps no such number the field is `null`,
//! never an invented value: torrust's `udp_requests_aborted`,
//! `udp_requests_banned`, `udp_banned_ips_total` and the average processing
//! times have no counterpart in shoal, nor do a peer's id (here), bytes
//! uploaded, downloaded and left, and last event.

use super::super::serve::hex;
use super::super::Api;
use super::Reply;
use crate::access::Key;
use crate::stats::{Family, Kind, Proto, Registry};
use crate::swarm::walk::PeerView;
use crate::swarm::{Counts, InfoHash, Swarm};
use serde_json::{json, Value};
use std::collections::BinaryHeap;

/// One torrent of a list: torrust's `ListItem`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListItem {
    pub info_hash: InfoHash,
    pub counts: Counts,
}

impl ListItem {
    pub fn new(info_hash: &InfoHash, counts: &Counts) -> ListItem {
        ListItem {
            info_hash: *info_hash,
            counts: *counts,
        }
    }

    pub fn json(&self) -> Value {
        json!({
            "info_hash": hex(&self.info_hash),
            "seeders": self.counts.seeders,
            "completed": self.counts.completed,
            "leechers": self.counts.leechers,
        })
    }
}

/// torrust's stats fields in its order, with shoal's value for each, or
/// `None` where shoal has no such counter. "Handled" is what shoal answered:
/// its replies of that kind (a refusal is an error reply, not a handled
/// announce). An HTTP tracker has no connections to count apart from its
/// requests, so torrust counts each announce and scrape as one; so does this.
pub fn stats(api: &Api) -> Vec<(&'static str, Option<u64>)> {
    let totals = api.tracker.swarm().totals();
    let r = &*api.registry;
    let replies = |p, f, k| r.responses(p, f, k);
    let all = |f: fn(&Registry, Proto, Family, Kind) -> u64, p, fam| {
        Kind::ALL.into_iter().map(|k| f(r, p, fam, k)).sum::<u64>()
    };
    let mut v = vec![
        ("torrents", Some(totals.torrents)),
        ("seeders", Some(totals.seeders4 + totals.seeders6)),
        ("completed", Some(completed(api.tracker.swarm()))),
        ("leechers", Some(totals.leechers4 + totals.leechers6)),
    ];
    for (names, fam) in TCP_NAMES.into_iter().zip(Family::ALL) {
        let announces = replies(Proto::Http, fam, Kind::Announce);
        let scrapes = replies(Proto::Http, fam, Kind::Scrape);
        v.extend(
            names
                .into_iter()
                .zip([announces + scrapes, announces, scrapes].map(Some)),
        );
    }
    v.extend([
        ("udp_requests_aborted", None),
        ("udp_requests_banned", None),
        ("udp_banned_ips_total", None),
        ("udp_avg_connect_processing_time_ns", None),
        ("udp_avg_announce_processing_time_ns", None),
        ("udp_avg_scrape_processing_time_ns", None),
    ]);
    for (names, fam) in UDP_NAMES.into_iter().zip(Family::ALL) {
        let values = [
            all(Registry::requests, Proto::Udp, fam),
            replies(Proto::Udp, fam, Kind::Connect),
            replies(Proto::Udp, fam, Kind::Announce),
            replies(Proto::Udp, fam, Kind::Scrape),
            all(Registry::responses, Proto::Udp, fam),
            replies(Proto::Udp, fam, Kind::Error),
        ];
        v.extend(names.into_iter().zip(values.map(Some)));
    }
    v
}

/// The HTTP tracker's fields of each family (IPv4, IPv6), in torrust's order.
const TCP_NAMES: [[&str; 3]; 2] = [
    [
        "tcp4_connections_handled",
        "tcp4_announces_handled",
        "tcp4_scrapes_handled",
    ],
    [
        "tcp6_connections_handled",
        "tcp6_announces_handled",
        "tcp6_scrapes_handled",
    ],
];

/// The UDP fields of each family, in torrust's order.
const UDP_NAMES: [[&str; 6]; 2] = [
    [
        "udp4_requests",
        "udp4_connections_handled",
        "udp4_announces_handled",
        "udp4_scrapes_handled",
        "udp4_responses",
        "udp4_errors_handled",
    ],
    [
        "udp6_requests",
        "udp6_connections_handled",
        "udp6_announces_handled",
        "udp6_scrapes_handled",
        "udp6_responses",
        "udp6_errors_handled",
    ],
];

/// Downloads completed over every torrent the swarm holds (torrust's
/// `completed`): a walk of the map, one shard lock at a time.
fn completed(swarm: &Swarm) -> u64 {
    let mut sum = 0u64;
    for shard in 0..swarm.shard_count() {
        swarm.visit_shard(shard, |_, completed, _, _| sum += u64::from(completed));
    }
    sum
}

/// Torrents `offset..offset + limit` in info-hash order (torrust's order),
/// with their counts. Each shard's torrents are copied out under its lock
/// and ranked after; at most `offset + limit` are kept at any time.
pub fn page_by_hash(swarm: &Swarm, offset: usize, limit: usize) -> Vec<ListItem> {
    let keep = offset.saturating_add(limit);
    if limit == 0 {
        return Vec::new();
    }
    // A max-heap of the smallest `keep` hashes seen so far.
    let mut best: BinaryHeap<(InfoHash, [u32; 3])> = BinaryHeap::new();
    let mut copied: Vec<(InfoHash, [u32; 3])> = Vec::new();
    for shard in 0..swarm.shard_count() {
        copied.clear();
        swarm.visit_shard(shard, |ih, completed, (p4, s4), (p6, s6)| {
            let seeders = s4 + s6;
            let leechers = (p4.len() - s4) + (p6.len() - s6);
            let n = |x: usize| u32::try_from(x).unwrap_or(u32::MAX);
            copied.push((*ih, [n(seeders), n(leechers), completed]));
        });
        for &entry in &copied {
            if best.len() < keep {
                best.push(entry);
            } else if best.peek().is_some_and(|top| entry.0 < top.0) {
                best.pop();
                best.push(entry);
            }
        }
    }
    let mut page = best.into_sorted_vec();
    page.drain(..offset.min(page.len()));
    page.iter()
        .map(|&(ih, [seeders, leechers, completed])| ListItem {
            info_hash: ih,
            counts: Counts {
                seeders,
                leechers,
                completed,
            },
        })
        .collect()
}

/// One peer as torrust's `Peer` has it. `updated` is the Unix time of its
/// last announce in milliseconds (torrust's meaning), and
/// `updated_milliseconds_ago` the time since it, as the name says.
pub fn peer_json(p: &PeerView, unix_now: u64) -> Value {
    let addr = std::net::SocketAddr::new(p.ip, p.port);
    let idle = u64::from(p.idle_secs);
    json!({
        "peer_id": { "id": null, "client": null },
        "peer_addr": addr.to_string(),
        "updated": unix_now.saturating_sub(idle) * 1000,
        "updated_milliseconds_ago": idle * 1000,
        "uploaded": null,
        "downloaded": null,
        "left": null,
        "event": null,
    })
}

/// torrust's `AuthKey`: the key, its expiry in Unix seconds and as a UTC
/// date (both `null` for a key that does not expire).
pub fn auth_key(key: &Key, until: Option<u64>) -> Reply {
    let v = json!({
        "key": String::from_utf8_lossy(&key.0),
        "valid_until": until,
        "expiry_time": until.map(utc),
    });
    let body = serde_json::to_vec(&v).unwrap_or_default();
    Reply::with(200, AUTH_KEY_TYPE, body)
}

/// torrust sends the key resource with a charset.
const AUTH_KEY_TYPE: &str = "application/json; charset=utf-8";

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC`, the form torrust's
/// `expiry_time` has for a whole second.
pub fn utc(unix: u64) -> String {
    let (y, m, d) = civil_from_days(unix / 86_400);
    let s = unix % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// The proleptic Gregorian date of day `days` after 1970-01-01: count in
/// 400-year eras of 146 097 days from 0000-03-01, so that the leap day ends
/// its year and the month lengths repeat in a five-month pattern.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        // torrust's own fixture: 60 s after the epoch.
        assert_eq!(utc(60), "1970-01-01 00:01:00 UTC");
        // torrust's documented example: valid_until 1680009900.
        assert_eq!(utc(1_680_009_900), "2023-03-28 13:25:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(951_868_799), "2000-02-29 23:59:59 UTC");
        assert_eq!(utc(4_102_444_800), "2100-01-01 00:00:00 UTC");
        assert_eq!(utc(253_402_300_799), "9999-12-31 23:59:59 UTC");
    }

    #[test]
    fn civil_dates_step_one_day_at_a_time() {
        // Every day for 1000 years follows the one before it.
        let mut prev = civil_from_days(0);
        for days in 1..365_250 {
            let (y, m, d) = civil_from_days(days);
            let next_day = (y, m, d) == (prev.0, prev.1, prev.2 + 1);
            let next_month = (y, m, d) == (prev.0, prev.1 + 1, 1);
            let next_year = (y, m, d) == (prev.0 + 1, 1, 1) && prev.1 == 12 && prev.2 == 31;
            assert!(
                next_day || next_month || next_year,
                "{prev:?} then {:?}",
                (y, m, d)
            );
            let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
            let len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            assert!(d <= len, "{y}-{m}-{d}");
            prev = (y, m, d);
        }
    }

    #[test]
    fn pages_by_hash_across_shards() {
        use crate::swarm::{Announce, Role};
        let s = Swarm::new(8, 100);
        for n in [9u8, 3, 7, 1, 5] {
            for host in 0..n {
                let req = Announce {
                    info_hash: [n; 20],
                    addr: (std::net::Ipv4Addr::new(10, 0, 0, host), 6881),
                    role: if host == 0 {
                        Role::Seeder
                    } else {
                        Role::Leecher
                    },
                    completed: false,
                    now: 0,
                    want: 0,
                    random: (1, 2),
                    peer_id: None,
                    emit_ids: false,
                };
                s.announce::<crate::swarm::Peer4>(&req, |_, _| {});
            }
        }
        let first =
            |page: Vec<ListItem>| -> Vec<u8> { page.iter().map(|t| t.info_hash[0]).collect() };
        assert_eq!(first(page_by_hash(&s, 0, 10)), [1, 3, 5, 7, 9]);
        assert_eq!(first(page_by_hash(&s, 1, 2)), [3, 5]);
        assert_eq!(first(page_by_hash(&s, 4, 2)), [9]);
        assert!(page_by_hash(&s, 5, 2).is_empty());
        assert!(page_by_hash(&s, 0, 0).is_empty());
        let seven = page_by_hash(&s, 3, 1)[0];
        assert_eq!(
            (seven.counts.seeders, seven.counts.leechers),
            (1, 6),
            "counts as scrape has them"
        );
        assert_eq!(seven.counts, s.scrape(&[7; 20]));
    }
}
