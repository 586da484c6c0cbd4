//! The BEP 15 side of the core: one datagram in, one reply and an outcome out.

use super::{
    random_pair, record_event, role, scrape_counts, Asked, CompactPeer, Handled, Outcome, PeerSink,
    Refusal, Tracker, Worker,
};
use crate::access::{self, PresentedKey};
use crate::swarm::{Announce, PeerId};
use crate::time::Now;
use crate::wire::udp::{self, Event, ParseError, Request};
use std::net::{IpAddr, SocketAddr};

impl Tracker {
    /// Start fetching the swarm's memory that [`Tracker::handle_udp`] will
    /// read for `req` (see [`crate::swarm::Swarm::prefetch`]): for a datagram
    /// a few places further in the batch than the one being answered.
    /// Changes nothing, checks nothing, emits nothing; at most
    /// [`super::PREFETCH_HASHES`] of a scrape's hashes.
    #[inline]
    pub fn prefetch_udp(&self, req: &[u8]) {
        for info_hash in udp::peek_info_hashes(req)
            .iter()
            .take(super::PREFETCH_HASHES)
        {
            self.swarm.prefetch(info_hash);
        }
    }

    /// Handle one UDP datagram from `src`: write the reply into `out` and say
    /// what happened. `now` is the loop turn's clock reading.
    pub fn handle_udp(
        &self,
        w: &mut Worker,
        now: Now,
        src: SocketAddr,
        req: &[u8],
        out: &mut [u8],
    ) -> Handled {
        let now = now.secs();
        let ip = src.ip().to_canonical();
        let Worker {
            rng,
            policy,
            events,
            interval,
            spread,
            event,
            ..
        } = w;
        let request = match udp::parse_request(req) {
            Ok(r) => r,
            Err(e) => return self.udp_parse_error(e, now, ip, req, out),
        };
        match &request {
            Request::Connect(r) => {
                let id = self.conn_ids.issue(now, ip);
                let n = udp::write_connect_response(out, r.transaction_id, id);
                Handled::sent(Outcome::Connected, n.unwrap_or(0))
            }
            Request::Announce(a) => {
                if !self.conn_ids.check(a.connection_id, now, ip) {
                    return Handled::dropped(Refusal::BadConnectionId);
                }
                let tx = a.transaction_id;
                let refuse = |why: Refusal, msg: &str, out: &mut [u8]| {
                    log::trace!("udp announce from {src} refused: {msg}");
                    udp_error(Some(Asked::Announce), why, tx, msg, out)
                };
                let checks = self.checks(policy, now);
                if let Some(checks) = checks {
                    let key = || access::key_from_options(&a.options);
                    if let Err(d) = checks.announce_key(key) {
                        return refuse(d.into(), d.as_str(), out);
                    }
                }
                if a.port == 0 {
                    return refuse(Refusal::InvalidRequest, "invalid port 0", out);
                }
                let role = role(a.event, a.left);
                let req = Announce {
                    info_hash: a.info_hash,
                    addr: SocketAddr::new(ip, a.port),
                    role,
                    completed: a.event == Event::Completed,
                    now,
                    want: self.want(role, i64::from(a.num_want)),
                    random: random_pair(rng),
                    peer_id: None,
                    emit_ids: false,
                };
                let header = udp::ANNOUNCE_RESPONSE_HEADER_LEN;
                let Some(peer_buf) = out.get_mut(header..) else {
                    return Handled::dropped(Refusal::InvalidRequest);
                };
                let mut peers = CompactPeers {
                    out: peer_buf,
                    at: 0,
                };
                let Some(announced) = self.announce(req, checks, &mut peers) else {
                    let d = crate::access::Deny::TorrentNotAllowed;
                    return refuse(d.into(), d.as_str(), out);
                };
                let at = header + peers.at;
                let counts = announced.counts;
                let written = udp::write_announce_header(
                    out,
                    tx,
                    self.spread(*interval, spread).draw(rng),
                    counts.leechers,
                    counts.seeders,
                );
                log::trace!(
                    "announce {src} peers={} seeders={} leechers={}",
                    announced.peers,
                    counts.seeders,
                    counts.leechers
                );
                let reply = written.map_or(0, |_| at);
                record_event(*events, event, &req);
                Handled::sent(Outcome::Announced, reply)
            }
            Request::Scrape(s) => {
                if !self.conn_ids.check(s.connection_id, now, ip) {
                    return Handled::dropped(Refusal::BadConnectionId);
                }
                let tx = s.transaction_id;
                let asked = Some(Asked::Scrape);
                if s.is_empty() {
                    return udp_error(asked, Refusal::InvalidRequest, tx, "no info hash", out);
                }
                let checks = self.checks(policy, now);
                if let Some(checks) = checks {
                    // A UDP scrape carries no URL data, so no key.
                    if let Err(d) = checks.scrape_request(|| PresentedKey::Missing) {
                        return udp_error(asked, d.into(), tx, d.as_str(), out);
                    }
                }
                let Some(mut at) = udp::write_scrape_header(out, tx) else {
                    return Handled::sent(Outcome::Scraped, 0);
                };
                for info_hash in s.info_hashes().take(self.config.max_scrape as usize) {
                    let counts = scrape_counts(&self.swarm, checks, info_hash);
                    match udp::write_scrape_row(
                        &mut out[at..],
                        counts.seeders,
                        counts.completed,
                        counts.leechers,
                    ) {
                        Some(n) => at += n,
                        None => break,
                    }
                }
                Handled::sent(Outcome::Scraped, at)
            }
        }
    }

    /// A datagram that did not parse: an error frame when we know who asked
    /// (valid connection id for their address), silence otherwise.
    fn udp_parse_error(
        &self,
        e: ParseError,
        now: u32,
        ip: IpAddr,
        req: &[u8],
        out: &mut [u8],
    ) -> Handled {
        log::trace!("udp request from {ip} refused: {}", e.as_str());
        let why = Refusal::from(e);
        let answerable = udp::parse_header(req).filter(|h| {
            e != ParseError::BadProtocolId && self.conn_ids.check(h.connection_id, now, ip)
        });
        match answerable {
            Some(h) => udp_error(None, why, h.transaction_id, e.as_str(), out),
            None => Handled::dropped(why),
        }
    }
}

/// A BEP 15 error frame saying `msg`.
fn udp_error(
    asked: Option<Asked>,
    why: Refusal,
    transaction_id: u32,
    msg: &str,
    out: &mut [u8],
) -> Handled {
    let n = udp::write_error_response(out, transaction_id, msg);
    Handled::sent(Outcome::Refused(asked, why), n.unwrap_or(0))
}

/// The peer list of a BEP 15 announce reply: compact peers of the client's
/// family written straight into the datagram, as many as fit unfragmented.
struct CompactPeers<'o> {
    /// The reply after its header.
    out: &'o mut [u8],
    /// Bytes written.
    at: usize,
}

impl PeerSink for CompactPeers<'_> {
    const BOTH_FAMILIES: bool = false;

    fn room<P: CompactPeer>(&self) -> usize {
        let cap = (P::MAX_DATAGRAM - udp::ANNOUNCE_RESPONSE_HEADER_LEN).min(self.out.len());
        cap.saturating_sub(self.at) / P::LEN
    }

    fn push<P: CompactPeer>(&mut self, p: &P, _: Option<&PeerId>) {
        if let Some(rest) = self.out.get_mut(self.at..) {
            self.at += p.write_compact(rest).unwrap_or(0);
        }
    }
}
