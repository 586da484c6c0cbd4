//! The HTTP tracker's routes on a packet worker: which core function a
//! request goes to, the rate limit, the client's address behind a proxy,
//! and the HTTP head around the core's bencoded body.
//!
//! Routes: `/announce…` (any path starting so, extra query parameters
//! ignored), `/scrape…`, and the passkey-first `/KEY/announce` and
//! `/KEY/scrape` ([`route`]); with `--http-metrics`, `/metrics` and `/health` are
//! handed to the control thread with their connection ([`Served::HandOff`]);
//! anything else is 404, a method other than GET or HEAD is 405. Tracker
//! errors are 200 with a bencoded `failure reason` (what BitTorrent clients
//! expect), never an HTTP error status. Paths carry keys in private mode, so
//! nothing here logs a request path.

use super::conn::{refuse_body, Handler, Request, Served};
use super::count;
use super::worker::publish;
use crate::access::keys::{self, ANNOUNCE, SCRAPE};
use crate::cluster::Outbox;
use crate::limit::{Cidr, RateLimiter};
use crate::stats::{Counters, Kind, Proto, Reject};
use crate::tracker::{Tracker, Worker};
use crate::wire::bencode;
use crate::wire::http::{self, Head, Method};
use std::net::{IpAddr, SocketAddr};

/// Content type of bencoded replies (what opentracker and most trackers send).
pub const TEXT: &str = "text/plain";

/// The operator endpoints.
pub fn is_operator_path(path: &[u8]) -> bool {
    path == b"/metrics" || path == b"/health"
}

/// The tracker route a request path (query removed) asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Announce,
    Scrape,
    /// Anything else: 404.
    Other,
}

/// `/announce…` and `/scrape…` first (what every tracker URL has been), then
/// the passkey-first `/KEY/announce` and `/KEY/scrape`, where the key comes
/// before the route so that the last segment names it (BEP 48's scrape
/// convention then works). No allocation: this runs on every HTTP request.
pub fn route(path: &[u8]) -> Route {
    if path.starts_with(ANNOUNCE) {
        Route::Announce
    } else if path.starts_with(SCRAPE) {
        Route::Scrape
    } else if keys::key_first(path, ANNOUNCE).is_some() {
        Route::Announce
    } else if keys::key_first(path, SCRAPE).is_some() {
        Route::Scrape
    } else {
        Route::Other
    }
}

/// How the HTTP tracker finds its client's address.
#[derive(Debug, Clone, Default)]
pub struct ClientAddr {
    /// Take the client address from this header (e.g. `X-Forwarded-For`)...
    pub header: Option<String>,
    /// ...when the connection comes from one of these (`--http-trusted-proxy`);
    /// from anyone else the header is ignored and counted.
    pub trusted: Vec<Cidr>,
}

/// A packet worker's HTTP tracker: the core, the worker's own state, and
/// what a request needs besides.
#[derive(Debug)]
pub struct TrackerHttp<'a> {
    pub tracker: &'a Tracker,
    pub worker: &'a mut Worker,
    pub counters: &'a Counters,
    pub outbox: Option<&'a Outbox>,
    pub client: &'a ClientAddr,
    /// `--rate-limit`, shared with UDP, keyed by the client address.
    pub rate_limiter: Option<&'a RateLimiter>,
    /// `--http-metrics`: operator paths go to the control thread.
    pub operator_paths: bool,
    /// A reusable buffer for the body.
    pub scratch: &'a mut Vec<u8>,
}

impl Handler for TrackerHttp<'_> {
    fn counters(&self) -> &Counters {
        self.counters
    }

    fn serve(&mut self, req: &Request<'_>, out: &mut Vec<u8>) -> Served {
        let head = req.head;
        if self.operator_paths && is_operator_path(head.path) && head.method != Method::Other {
            return Served::HandOff;
        }
        if head.content_length > 0 {
            // We serve GET/HEAD only: a body is refused, not read.
            return refuse_body(req, self.counters, out);
        }
        let keep_alive = self.answer(req, out);
        Served::Done {
            used: req.head_len,
            keep_alive,
        }
    }
}

impl TrackerHttp<'_> {
    /// Answer one request head; append the whole response to `out`.
    /// Returns whether the connection may stay open.
    fn answer(&mut self, req: &Request<'_>, out: &mut Vec<u8>) -> bool {
        let head = req.head;
        let c = self.counters;
        let body = &mut *self.scratch;
        body.clear();
        // Requests and replies are counted under the client's family as the
        // swarm sees it (behind a proxy: the forwarded address), so the
        // per-family metrics add up; the socket peer's when there is none.
        let client = client_ip(self.client, head, req.peer, c);
        let fam = count::family(client.unwrap_or_else(|| req.peer.ip()));
        let route = route(head.path);
        let announce = route == Route::Announce;
        let scrape = route == Route::Scrape;
        // Announce and scrape count against the client's rate (a HEAD
        // announce too: it costs a request).
        let limited = (announce || scrape)
            && head.method != Method::Other
            && self.rate_limiter.is_some_and(|l| {
                let ip = client.unwrap_or_else(|| req.peer.ip().to_canonical());
                !l.allow(ip, req.now.ms())
            });
        let status = match head.method {
            Method::Other => {
                c.reject(Reject::HttpMethod);
                body.extend_from_slice(b"method not allowed\n");
                c.response(Proto::Http, fam, Kind::Other);
                405
            }
            _ if limited => {
                let kind = if announce {
                    Kind::Announce
                } else {
                    Kind::Scrape
                };
                c.request(Proto::Http, fam, kind);
                c.reject(Reject::RateLimited);
                bencode::failure(body, "rate limited: too many requests from this address");
                c.response(Proto::Http, fam, Kind::Error);
                200
            }
            Method::Head if announce => {
                // HEAD asks for a GET's head without its effects, and an
                // announce changes the swarm: answer without announcing.
                c.request(Proto::Http, fam, Kind::Other);
                c.response(Proto::Http, fam, Kind::Other);
                200
            }
            _ if announce => {
                match client {
                    Some(ip) => {
                        let o = self.tracker.http_announce(
                            self.worker,
                            req.now,
                            ip,
                            head.path,
                            head.query,
                            body,
                        );
                        count::outcome(c, Proto::Http, fam, &o, true);
                        publish(self.outbox, req.now, &o, self.worker);
                    }
                    None => {
                        c.request(Proto::Http, fam, Kind::Announce);
                        c.reject(Reject::HttpNoClientIp);
                        bencode::failure(body, "missing or invalid client address header");
                        c.response(Proto::Http, fam, Kind::Error);
                    }
                }
                200
            }
            _ if scrape => {
                let o = self
                    .tracker
                    .http_scrape(self.worker, req.now, head.path, head.query, body);
                count::outcome(c, Proto::Http, fam, &o, true);
                200
            }
            _ => {
                c.reject(Reject::HttpNotFound);
                body.extend_from_slice(b"not found\n");
                c.response(Proto::Http, fam, Kind::Other);
                404
            }
        };
        http::write_response_head(out, status, TEXT, body.len(), head.keep_alive);
        if head.method != Method::Head {
            out.extend_from_slice(body);
        }
        head.keep_alive
    }
}

/// The client's address: the socket peer, or (behind a proxy, when the
/// operator configured it) the rightmost `X-Forwarded-For` entry or the header's
/// value. `None` when the header is configured but missing or unparsable.
pub fn client_ip(
    cfg: &ClientAddr,
    head: &Head<'_>,
    peer: SocketAddr,
    c: &Counters,
) -> Option<IpAddr> {
    let peer_ip = peer.ip().to_canonical();
    let Some(name) = cfg.header.as_deref() else {
        return Some(peer_ip);
    };
    // The rightmost entry of the last such header is the one our proxy added.
    let value = head
        .headers()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .last();
    // Anyone who reaches the port directly could otherwise store arbitrary
    // peer addresses: only a trusted proxy's word is taken.
    if !cfg.trusted.iter().any(|n| n.contains(peer_ip)) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Family;
    use crate::time::Now;
    use crate::tracker::TrackerConfig;

    const QUERY: &str = "info_hash=%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01\
                         &peer_id=-XX0000-000000000000&port=6881&left=0&compact=1";

    struct Setup {
        tracker: Tracker,
        worker: Worker,
        counters: Counters,
        client: ClientAddr,
        scratch: Vec<u8>,
    }

    impl Setup {
        fn new(header: Option<&str>) -> Setup {
            Setup {
                tracker: Tracker::new(TrackerConfig {
                    shards: 4,
                    ..TrackerConfig::default()
                }),
                worker: Worker::new(),
                counters: Counters::default(),
                // Every peer is a proxy here; the trust check has its own test.
                client: ClientAddr {
                    header: header.map(str::to_string),
                    trusted: vec!["::/0".parse().unwrap(), "0.0.0.0/0".parse().unwrap()],
                },
                scratch: Vec::new(),
            }
        }

        /// Send one request head; the response bytes.
        fn send(&mut self, peer: &str, req: &str) -> Vec<u8> {
            let (head, used) = http::parse_head(req.as_bytes()).unwrap().unwrap();
            let mut h = TrackerHttp {
                tracker: &self.tracker,
                worker: &mut self.worker,
                counters: &self.counters,
                outbox: None,
                client: &self.client,
                rate_limiter: None,
                operator_paths: false,
                scratch: &mut self.scratch,
            };
            let req = Request {
                role: super::super::listen::Role::Http,
                peer: peer.parse().unwrap(),
                buf: req.as_bytes(),
                head: &head,
                head_len: used,
                now: Now::from_secs(10),
            };
            let mut out = Vec::new();
            h.serve(&req, &mut out);
            out
        }
    }

    #[test]
    fn routes_read_the_route_before_or_after_the_key() {
        const K: &str = "abcdefghijklmnopqrstuvwxyzABCDEF";
        for (path, want) in [
            ("/announce".to_string(), Route::Announce),
            ("/announce.php".to_string(), Route::Announce),
            (format!("/announce/{K}"), Route::Announce),
            (format!("/{K}/announce"), Route::Announce),
            ("/scrape".to_string(), Route::Scrape),
            (format!("/scrape/{K}"), Route::Scrape),
            (format!("/{K}/scrape"), Route::Scrape),
            // Route first: a path that reads both ways.
            ("/scrape/announce".to_string(), Route::Scrape),
            ("/announce/scrape".to_string(), Route::Announce),
            (format!("/{K}/announce/x"), Route::Other),
            (format!("/x/{K}/announce"), Route::Other),
            ("//announce".to_string(), Route::Other),
            ("/".to_string(), Route::Other),
            ("/metrics".to_string(), Route::Other),
        ] {
            assert_eq!(route(path.as_bytes()), want, "{path}");
        }
    }

    #[test]
    fn head_announce_does_not_announce() {
        let mut s = Setup::new(None);
        let head = format!("HEAD /announce?{QUERY} HTTP/1.1\r\nHost: x\r\n\r\n");
        let out = s.send("127.0.0.1:5000", &head);
        assert!(
            out.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&out)
        );
        assert!(out.ends_with(b"\r\n\r\n"), "no body");
        assert_eq!(
            s.tracker.swarm().totals().peers(),
            0,
            "the swarm is unchanged"
        );
        // The same request as GET does announce.
        let get = format!("GET /announce?{QUERY} HTTP/1.1\r\nHost: x\r\n\r\n");
        s.send("127.0.0.1:5000", &get);
        assert_eq!(s.tracker.swarm().totals().seeders4, 1);
    }

    #[test]
    fn behind_a_proxy_requests_and_replies_count_under_the_client_family() {
        let mut s = Setup::new(Some("X-Forwarded-For"));
        let req = format!("GET /announce?{QUERY} HTTP/1.1\r\nX-Forwarded-For: 2001:db8::7\r\n\r\n");
        s.send("127.0.0.1:5000", &req);
        assert_eq!(
            s.tracker.swarm().totals().seeders6,
            1,
            "the swarm sees an IPv6 client"
        );
        let c = &s.counters;
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

    #[test]
    fn operator_paths_are_handed_over_only_with_http_metrics() {
        let mut s = Setup::new(None);
        let out = s.send("127.0.0.1:5000", "GET /metrics HTTP/1.1\r\n\r\n");
        assert!(out.starts_with(b"HTTP/1.1 404"), "not disclosed");
        assert_eq!(s.counters.rejects(Reject::HttpNotFound), 1);
        let (head, used) = http::parse_head(b"GET /health HTTP/1.1\r\n\r\n")
            .unwrap()
            .unwrap();
        let mut h = TrackerHttp {
            tracker: &s.tracker,
            worker: &mut s.worker,
            counters: &s.counters,
            outbox: None,
            client: &s.client,
            rate_limiter: None,
            operator_paths: true,
            scratch: &mut s.scratch,
        };
        let req = Request {
            role: super::super::listen::Role::Http,
            peer: "127.0.0.1:5000".parse().unwrap(),
            buf: b"GET /health HTTP/1.1\r\n\r\n",
            head: &head,
            head_len: used,
            now: Now::from_secs(1),
        };
        let mut out = Vec::new();
        assert_eq!(h.serve(&req, &mut out), Served::HandOff);
        assert!(out.is_empty(), "nothing answered on the packet worker");
    }
}
