//! HTTP tracker requests (BEP 3, 7, 23, 48) and the operator endpoints.
//!
//! [`Tracker::handle_http`] turns one parsed request head into one complete
//! response (head and body) appended to a caller-owned buffer. Like the UDP
//! path it is sans-IO: no sockets, no clock reads. It shares the swarm with
//! UDP, so a peer announced over one protocol is handed to clients of the other.
//!
//! Routes: `/announce…` (any path starting so, extra query parameters ignored),
//! `/scrape…`, `/health`, `/metrics`; anything else is 404, a method other than
//! GET or HEAD is 405. Tracker errors are 200 with a bencoded `failure reason`
//! (what BitTorrent clients expect), never an HTTP error status.
//!
//! In private mode the key is the path segment after the route:
//! `/announce/KEY?…`, `/scrape/KEY?…` (under `--private-scrape`). A refusal by
//! the access policy is a `failure reason` with the policy's words; nothing is
//! stored. Paths carry keys, so nothing here logs a request path.

use super::{
    deny_reason, random_pair, role, scrape_counts, CompactPeer, PeerSink, Tracker, Worker,
};
use crate::access::{self, keys, Deny};
use crate::limit::{Cidr, RateLimiter};
use crate::stats::{Family, Kind, Proto, Registry, Reject};
use crate::swarm::peers::Peer;
use crate::swarm::{Announce, PeerId};
use crate::wire::bencode;
use crate::wire::http::{self, Head, Method};
use crate::wire::udp::Event;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// What the HTTP side needs besides the tracker: counters for `/metrics`,
/// whether the server is healthy, and the reverse-proxy client-address header.
#[derive(Debug, Clone, Copy)]
pub struct HttpEnv<'a> {
    /// Tracker seconds, read once per loop turn.
    pub now: u32,
    pub registry: &'a Registry,
    pub uptime_secs: u64,
    pub healthy: bool,
    /// Take the client address from this header (e.g. `X-Forwarded-For`)...
    pub client_ip_header: Option<&'a str>,
    /// ...when the connection comes from one of these (`--http-trusted-proxy`);
    /// from anyone else the header is ignored and counted.
    pub trusted_proxies: &'a [Cidr],
    /// `--rate-limit`, shared with UDP, keyed by the client address.
    pub rate_limiter: Option<&'a RateLimiter>,
    /// Milliseconds on the same clock as `now`, for the rate limiter.
    pub now_ms: u64,
}

/// Content type of bencoded replies (what opentracker and most trackers send).
const TEXT: &str = "text/plain";
const PROMETHEUS: &str = "text/plain; version=0.0.4";

impl Tracker {
    /// Handle one request; append the whole response to `out`. `scratch` is a
    /// reusable buffer for the body. Returns whether the connection may stay open.
    pub fn handle_http(
        &self,
        w: &mut Worker,
        env: &HttpEnv<'_>,
        peer: SocketAddr,
        head: &Head<'_>,
        out: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
    ) -> bool {
        scratch.clear();
        let counters = Arc::clone(&w.counters);
        let c = &*counters;
        // Requests and replies are counted under the client's family as the
        // swarm sees it (behind a proxy: the forwarded address), so the
        // per-family metrics add up; the socket peer's when there is none.
        let client = client_ip(env, head, peer, c);
        let fam = family(client.unwrap_or_else(|| peer.ip().to_canonical()));
        let announce = head.path.starts_with(b"/announce");
        let scrape = head.path.starts_with(b"/scrape");
        // Announce and scrape count against the client's rate (a HEAD
        // announce too: it costs a request); health and metrics do not.
        let limited = (announce || scrape)
            && head.method != Method::Other
            && env.rate_limiter.is_some_and(|l| {
                let ip = client.unwrap_or_else(|| peer.ip().to_canonical());
                !l.allow(ip, env.now_ms)
            });
        let (status, content_type) = match (head.method, head.path) {
            (Method::Other, _) => {
                c.reject(Reject::HttpMethod);
                scratch.extend_from_slice(b"method not allowed\n");
                (405, TEXT)
            }
            (_, _) if limited => {
                let kind = if announce {
                    Kind::Announce
                } else {
                    Kind::Scrape
                };
                c.request(Proto::Http, fam, kind);
                c.reject(Reject::RateLimited);
                bencode::failure(scratch, "rate limited: too many requests from this address");
                c.response(Proto::Http, fam, Kind::Error);
                (200, TEXT)
            }
            (Method::Head, _) if announce => {
                // HEAD asks for a GET's head without its effects, and an
                // announce changes the swarm: answer without announcing.
                c.request(Proto::Http, fam, Kind::Other);
                (200, TEXT)
            }
            (_, _) if announce => {
                c.request(Proto::Http, fam, Kind::Announce);
                match client {
                    Some(ip) => self.http_announce(w, env.now, ip, head, scratch),
                    None => {
                        c.reject(Reject::HttpNoClientIp);
                        bencode::failure(scratch, "missing or invalid client address header");
                        c.response(Proto::Http, fam, Kind::Error);
                    }
                }
                (200, TEXT)
            }
            (_, p) if p.starts_with(b"/scrape") => {
                c.request(Proto::Http, fam, Kind::Scrape);
                self.http_scrape(w, env.now, fam, head, scratch);
                (200, TEXT)
            }
            (_, b"/health") => {
                c.request(Proto::Http, fam, Kind::Health);
                if env.healthy {
                    scratch.extend_from_slice(b"ok\n");
                    // Serving alone is still serving: the cluster state is
                    // told, not turned into a failing status.
                    if let Some(cl) = &env.registry.cluster {
                        scratch.extend_from_slice(if cl.connected() {
                            b"cluster: connected\n"
                        } else {
                            b"cluster: disconnected, serving alone\n"
                        });
                    }
                    (200, TEXT)
                } else {
                    scratch.extend_from_slice(b"shutting down\n");
                    (503, TEXT)
                }
            }
            (_, b"/metrics") => {
                c.request(Proto::Http, fam, Kind::Metrics);
                let mut text = String::new();
                env.registry
                    .render_prometheus(&mut text, &self.swarm.totals(), env.uptime_secs);
                scratch.extend_from_slice(text.as_bytes());
                (200, PROMETHEUS)
            }
            _ => {
                c.reject(Reject::HttpNotFound);
                scratch.extend_from_slice(b"not found\n");
                (404, TEXT)
            }
        };
        // Tracker replies were counted by kind where they were made; the rest
        // (health, metrics, errors of HTTP itself) are "other".
        let tracker_reply = (announce && head.method != Method::Head) || scrape || limited;
        if !(status == 200 && tracker_reply) {
            c.response(Proto::Http, fam, Kind::Other);
        }
        http::write_response_head(out, status, content_type, scratch.len(), head.keep_alive);
        if head.method != Method::Head {
            out.extend_from_slice(scratch);
        }
        head.keep_alive
    }

    fn http_announce(
        &self,
        w: &mut Worker,
        now: u32,
        ip: IpAddr,
        head: &Head<'_>,
        body: &mut Vec<u8>,
    ) {
        let Worker {
            rng,
            counters,
            http_peers,
            policy,
            cluster,
        } = w;
        let c = &**counters;
        let fam = family(ip);
        let q = match http::parse_announce(head.query) {
            Ok(q) => q,
            Err(e) => {
                c.reject(Reject::InvalidRequest);
                bencode::failure(body, e.as_str());
                c.response(Proto::Http, fam, Kind::Error);
                return;
            }
        };
        let checks = self.checks(policy, now);
        let refuse = |body: &mut Vec<u8>, d: Deny| {
            c.reject(deny_reason(d));
            log::trace!("http announce from {ip} refused: {d}");
            bencode::failure(body, d.as_str());
            c.response(Proto::Http, fam, Kind::Error);
        };
        if let Some(checks) = checks {
            let key = || access::key_from_path(head.path, keys::ANNOUNCE);
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
        super::to_cluster(cluster, &req, &announced);
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
        bencode::bytes(body, b"interval");
        bencode::int(body, i64::from(self.config.interval));
        bencode::bytes(body, b"min interval");
        bencode::int(body, i64::from((self.config.interval / 2).max(1)));
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
        c.response(Proto::Http, fam, Kind::Announce);
    }

    fn http_scrape(
        &self,
        w: &mut Worker,
        now: u32,
        fam: Family,
        head: &Head<'_>,
        body: &mut Vec<u8>,
    ) {
        let c = &*w.counters;
        let checks = self.checks(&mut w.policy, now);
        if let Some(checks) = checks {
            let key = || access::key_from_path(head.path, keys::SCRAPE);
            if let Err(d) = checks.scrape_request(key) {
                c.reject(deny_reason(d));
                bencode::failure(body, d.as_str());
                c.response(Proto::Http, fam, Kind::Error);
                return;
            }
        }
        // A bencoded dict needs sorted, unique keys: collect the requested hashes
        // (bounded by max_scrape, on the stack), sort and deduplicate them.
        let mut hashes = [[0u8; 20]; 256];
        let limit = (self.config.max_scrape as usize).min(hashes.len());
        let mut n = 0;
        for h in http::scrape_hashes(head.query) {
            match h {
                Ok(h) if n < limit => {
                    hashes[n] = h;
                    n += 1;
                }
                Ok(_) => {}
                Err(e) => {
                    c.reject(Reject::InvalidRequest);
                    bencode::failure(body, e.as_str());
                    c.response(Proto::Http, fam, Kind::Error);
                    return;
                }
            }
        }
        if n == 0 {
            // A full scrape (no info_hash) would leak the whole map; refuse it.
            c.reject(Reject::InvalidRequest);
            bencode::failure(body, "scrape requires at least one info_hash");
            c.response(Proto::Http, fam, Kind::Error);
            return;
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
        c.response(Proto::Http, fam, Kind::Scrape);
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

fn family(ip: IpAddr) -> Family {
    match ip {
        IpAddr::V4(_) => Family::V4,
        IpAddr::V6(_) => Family::V6,
    }
}

/// The client's address: the socket peer, or (behind a proxy, when the
/// operator configured it) the rightmost `X-Forwarded-For` entry or the header's
/// value. `None` when the header is configured but missing or unparsable.
fn client_ip(
    env: &HttpEnv<'_>,
    head: &Head<'_>,
    peer: SocketAddr,
    c: &crate::stats::Counters,
) -> Option<IpAddr> {
    let peer_ip = peer.ip().to_canonical();
    let Some(name) = env.client_ip_header else {
        return Some(peer_ip);
    };
    // The rightmost entry of the last such header is the one our proxy added.
    let value = head
        .headers()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .last();
    // Anyone who reaches the port directly could otherwise store arbitrary
    // peer addresses: only a trusted proxy's word is taken.
    if !env.trusted_proxies.iter().any(|n| n.contains(peer_ip)) {
        if value.is_some() {
            c.reject(Reject::UntrustedClientIpHeader);
        }
        return Some(peer_ip);
    }
    let value = value?.1;
    let last = value.rsplit(|&b| b == b',').next()?;
    let text = std::str::from_utf8(last).ok()?.trim();
    let ip: IpAddr = text
        .parse()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|s| s.ip()))?;
    Some(ip.to_canonical())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrackerConfig;
    use crate::stats::Counters;
    use std::sync::Arc;

    const QUERY: &str = "info_hash=%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01\
                         &peer_id=-XX0000-000000000000&port=6881&left=0&compact=1";

    /// Send one request head; the response bytes.
    fn send(t: &Tracker, w: &mut Worker, env: &HttpEnv<'_>, peer: &str, req: &str) -> Vec<u8> {
        let (head, _) = http::parse_head(req.as_bytes()).unwrap().unwrap();
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        t.handle_http(w, env, peer.parse().unwrap(), &head, &mut out, &mut scratch);
        out
    }

    fn setup() -> (Tracker, Worker, Registry) {
        let counters = Arc::new(Counters::default());
        let registry = Registry {
            workers: vec![Arc::clone(&counters)],
            rendezvous: None,
            max_peers: 0,
            cluster: None,
        };
        (
            Tracker::new(TrackerConfig::default(), 4),
            Worker::new(counters),
            registry,
        )
    }

    fn env<'a>(registry: &'a Registry, header: Option<&'a str>) -> HttpEnv<'a> {
        HttpEnv {
            now: 10,
            registry,
            uptime_secs: 10,
            healthy: true,
            client_ip_header: header,
            // Every peer is a proxy here; the trust check has its own test.
            trusted_proxies: Box::leak(Box::new(["::/0".parse().unwrap()])),
            rate_limiter: None,
            now_ms: 10_000,
        }
    }

    #[test]
    fn head_announce_does_not_announce() {
        let (t, mut w, registry) = setup();
        let env = env(&registry, None);
        let head = format!("HEAD /announce?{QUERY} HTTP/1.1\r\nHost: x\r\n\r\n");
        let out = send(&t, &mut w, &env, "127.0.0.1:5000", &head);
        assert!(
            out.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&out)
        );
        assert!(out.ends_with(b"\r\n\r\n"), "no body");
        assert_eq!(t.swarm().totals().peers(), 0, "the swarm is unchanged");
        // The same request as GET does announce.
        let get = format!("GET /announce?{QUERY} HTTP/1.1\r\nHost: x\r\n\r\n");
        send(&t, &mut w, &env, "127.0.0.1:5000", &get);
        assert_eq!(t.swarm().totals().seeders4, 1);
    }

    #[test]
    fn behind_a_proxy_requests_and_replies_count_under_the_client_family() {
        let (t, mut w, registry) = setup();
        let env = env(&registry, Some("X-Forwarded-For"));
        let req = format!("GET /announce?{QUERY} HTTP/1.1\r\nX-Forwarded-For: 2001:db8::7\r\n\r\n");
        send(&t, &mut w, &env, "127.0.0.1:5000", &req);
        assert_eq!(
            t.swarm().totals().seeders6,
            1,
            "the swarm sees an IPv6 client"
        );
        let c = &w.counters;
        for (f, n) in [(Family::V4, 0), (Family::V6, 1)] {
            assert_eq!(
                c.requests(Proto::Http, f, Kind::Announce),
                n,
                "{f:?} requests"
            );
            assert_eq!(
                c.responses(Proto::Http, f, Kind::Announce),
                n,
                "{f:?} replies"
            );
        }
    }
}
