//! The HTTP tracker's two routes (BEP 3, 7, 23, 48): an announce or a scrape
//! in, a bencoded body and an [`Outcome`] out.
//!
//! Like the UDP side it is sans-IO: no sockets, no clock reads, no counters.
//! The connection layer routes, rate-limits, resolves the client address
//! behind a proxy and writes the HTTP head; these functions answer with the
//! body only. Tracker errors are bencoded `failure reason`s (what BitTorrent
//! clients expect). It shares the swarm with UDP, so a peer announced over
//! one protocol is handed to clients of the other.
//!
//! In private mode the key is the path segment after the route:
//! `/announce/KEY?…`, `/scrape/KEY?…` (under `--private-scrape`). A refusal by
//! the access policy is a `failure reason` with the policy's words; nothing is
//! stored. Paths carry keys, so nothing here logs a request path.

use super::{
    random_pair, record_event, role, scrape_counts, Asked, CompactPeer, Outcome, PeerSink, Refusal,
    Tracker, Worker,
};
use crate::access::{self, keys, Deny};
use crate::swarm::peers::Peer;
use crate::swarm::{Announce, PeerId};
use crate::time::Now;
use crate::wire::bencode;
use crate::wire::http;
use crate::wire::udp::Event;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};

impl Tracker {
    /// Announce the query `query` for client `ip` (its canonical address, as
    /// the connection layer resolved it); the bencoded reply goes to `body`.
    /// `path` is the request path, which carries the key in private mode.
    pub fn http_announce(
        &self,
        w: &mut Worker,
        now: Now,
        ip: IpAddr,
        path: &[u8],
        query: &[u8],
        body: &mut Vec<u8>,
    ) -> Outcome {
        let now = now.secs();
        let Worker {
            rng,
            http_peers,
            policy,
            events,
            interval,
            spread,
            event,
        } = w;
        let asked = Some(Asked::Announce);
        let q = match http::parse_announce(query) {
            Ok(q) => q,
            Err(e) => {
                bencode::failure(body, e.as_str());
                return Outcome::Refused(asked, Refusal::InvalidRequest);
            }
        };
        let checks = self.checks(policy, now);
        let refuse = |body: &mut Vec<u8>, d: Deny| {
            log::trace!("http announce from {ip} refused: {d}");
            bencode::failure(body, d.as_str());
            Outcome::Refused(asked, d.into())
        };
        if let Some(checks) = checks {
            let key = || access::key_from_path(path, keys::ANNOUNCE);
            if let Err(d) = checks.announce_key(key) {
                return refuse(body, d);
            }
        }
        let role = role(q.event, q.left);
        let req = Announce {
            info_hash: q.info_hash,
            addr: SocketAddr::new(ip, q.port),
            role,
            completed: q.event == Event::Completed,
            now,
            want: self.want(role, q.numwant.map_or(-1, i64::from)),
            random: random_pair(rng),
            peer_id: Some(&q.peer_id),
            emit_ids: !q.compact && !q.no_peer_id,
        };
        let [v4_buf, v6_buf] = http_peers;
        let mut lists = PeerLists {
            v4: PeerList::new(q.compact, v4_buf),
            v6: PeerList::new(q.compact, v6_buf),
        };
        let Some(announced) = self.announce(req, checks, &mut lists) else {
            return refuse(body, Deny::TorrentNotAllowed);
        };
        let PeerLists {
            v4: v4_list,
            v6: v6_list,
        } = lists;
        let counts = announced.counts;
        // Keys in raw byte order: complete, incomplete, interval, min interval, peers, peers6.
        bencode::dict_start(body);
        bencode::bytes(body, b"complete");
        bencode::int(body, i64::from(counts.seeders));
        bencode::bytes(body, b"incomplete");
        bencode::int(body, i64::from(counts.leechers));
        let spread = self.spread(*interval, spread);
        bencode::bytes(body, b"interval");
        bencode::int(body, i64::from(spread.draw(rng)));
        bencode::bytes(body, b"min interval");
        bencode::int(body, i64::from(spread.min_interval()));
        bencode::bytes(body, b"peers");
        if q.compact {
            bencode::bytes(body, v4_list.bytes);
            if !v6_list.bytes.is_empty() {
                bencode::bytes(body, b"peers6");
                bencode::bytes(body, v6_list.bytes);
            }
        } else {
            // Non-compact: one list of dicts, both families.
            bencode::list_start(body);
            body.extend_from_slice(v4_list.bytes);
            body.extend_from_slice(v6_list.bytes);
            bencode::end(body);
        }
        bencode::end(body);
        record_event(*events, event, &req);
        Outcome::Announced
    }

    /// Scrape the hashes of `query`; the bencoded reply goes to `body`.
    /// `path` carries the key under `--private-scrape`.
    pub fn http_scrape(
        &self,
        w: &mut Worker,
        now: Now,
        path: &[u8],
        query: &[u8],
        body: &mut Vec<u8>,
    ) -> Outcome {
        let asked = Some(Asked::Scrape);
        let checks = self.checks(&mut w.policy, now.secs());
        if let Some(checks) = checks {
            let key = || access::key_from_path(path, keys::SCRAPE);
            if let Err(d) = checks.scrape_request(key) {
                bencode::failure(body, d.as_str());
                return Outcome::Refused(asked, d.into());
            }
        }
        // A bencoded dict needs sorted, unique keys: collect the requested hashes
        // (bounded by max_scrape, on the stack), sort and deduplicate them.
        let mut hashes = [[0u8; 20]; 256];
        let limit = (self.config.max_scrape as usize).min(hashes.len());
        let mut n = 0;
        for h in http::scrape_hashes(query) {
            match h {
                Ok(h) if n < limit => {
                    hashes[n] = h;
                    n += 1;
                }
                Ok(_) => {}
                Err(e) => {
                    bencode::failure(body, e.as_str());
                    return Outcome::Refused(asked, Refusal::InvalidRequest);
                }
            }
        }
        if n == 0 {
            // A full scrape (no info_hash) would leak the whole map; refuse it.
            bencode::failure(body, "scrape requires at least one info_hash");
            return Outcome::Refused(asked, Refusal::InvalidRequest);
        }
        let hashes = &mut hashes[..n];
        hashes.sort_unstable();
        bencode::dict_start(body);
        bencode::bytes(body, b"files");
        bencode::dict_start(body);
        let mut last: Option<[u8; 20]> = None;
        for h in hashes.iter() {
            if last == Some(*h) {
                continue;
            }
            last = Some(*h);
            let counts = scrape_counts(&self.swarm, checks, h);
            bencode::bytes(body, h);
            bencode::dict_start(body);
            bencode::bytes(body, b"complete");
            bencode::int(body, i64::from(counts.seeders));
            bencode::bytes(body, b"downloaded");
            bencode::int(body, i64::from(counts.completed));
            bencode::bytes(body, b"incomplete");
            bencode::int(body, i64::from(counts.leechers));
            bencode::end(body);
        }
        bencode::end(body);
        bencode::end(body);
        Outcome::Scraped
    }
}

/// The two peer lists of an HTTP announce reply: the client's family fills
/// `want` first, the other family (BEP 7) what is left.
struct PeerLists<'b> {
    v4: PeerList<'b>,
    v6: PeerList<'b>,
}

impl PeerSink for PeerLists<'_> {
    const BOTH_FAMILIES: bool = true;

    fn room<P: CompactPeer>(&self) -> usize {
        // A TCP reply has no datagram to fit: `want` (capped by max_numwant) rules.
        usize::MAX
    }

    fn push<P: CompactPeer>(&mut self, p: &P, id: Option<&PeerId>) {
        if P::IS_V6 { &mut self.v6 } else { &mut self.v4 }.push(p, id);
    }
}

/// Peers of one family as they go into the reply: compact bytes, or bencoded
/// dicts for `compact=0`. Written into a buffer that lives for one request.
struct PeerList<'b> {
    compact: bool,
    bytes: &'b mut Vec<u8>,
}

impl<'b> PeerList<'b> {
    fn new(compact: bool, bytes: &'b mut Vec<u8>) -> PeerList<'b> {
        bytes.clear();
        PeerList { compact, bytes }
    }

    fn push<P: Peer>(&mut self, p: &P, id: Option<&PeerId>) {
        let (ip, port) = P::socket_addr(&p.addr());
        if self.compact {
            match ip {
                IpAddr::V4(v4) => self.bytes.extend_from_slice(&v4.octets()),
                IpAddr::V6(v6) => self.bytes.extend_from_slice(&v6.octets()),
            }
            self.bytes.extend_from_slice(&port.to_be_bytes());
        } else {
            let b = &mut *self.bytes;
            bencode::dict_start(b);
            bencode::bytes(b, b"ip");
            let mut text = [0u8; 45];
            let mut cursor = std::io::Cursor::new(&mut text[..]);
            let _ = write!(cursor, "{ip}");
            let len = cursor.position() as usize;
            bencode::bytes(b, &text[..len]);
            if let Some(id) = id {
                bencode::bytes(b, b"peer id");
                bencode::bytes(b, id);
            }
            bencode::bytes(b, b"port");
            bencode::int(b, i64::from(port));
            bencode::end(b);
        }
    }
}
