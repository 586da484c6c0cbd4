//! The sans-IO tracker: request bytes in, reply bytes out.
//!
//! [`Tracker::handle_udp`] is a pure function of (now, source address, datagram)
//! plus the shared swarm: no sockets, no clock, no allocation. The net layer
//! calls it once per datagram; tests and benches call it directly with bytes.
//!
//! Decisions made here (each tested below):
//! - a request with a bad connection id is dropped (never a full reply); so is
//!   anything shorter than 16 bytes or a connect with the wrong magic;
//! - answerable mistakes (valid connection id, bad content) get a BEP 15 error;
//! - the reply's address family follows the packet: IPv4 (and IPv4-mapped)
//!   sources get only IPv4 peers in 6-byte form, IPv6 sources 18-byte IPv6 peers;
//! - the announce's `ip` field is ignored: the source address is the peer;
//! - `num_want` < 0 → the default, 0 → none, capped by `max_numwant` and by what
//!   fits in one unfragmented datagram;
//! - a scrape answers at most `max_scrape` hashes, in request order; the rest of
//!   the hashes are not answered (the reply is simply shorter).

pub mod connid;
pub mod http;

use crate::config::TrackerConfig;
use crate::stats::{Counters, Family, Kind, Proto, Reject};
use crate::swarm::peers::Peer;
use crate::swarm::{Announced, Family as SwarmFamily, Peer4, Peer6, Role, Swarm};
use crate::wire::udp::{self, Event, ParseError, Request};
use connid::ConnectionIds;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Largest UDP payload that crosses a 1500-byte Ethernet path unfragmented over IPv4.
pub const MAX_DATAGRAM_V4: usize = 1500 - 20 - 8;
/// Largest UDP payload guaranteed unfragmented over IPv6 (the 1280-byte minimum MTU).
pub const MAX_DATAGRAM_V6: usize = 1280 - 40 - 8;

/// Most IPv4 peers one announce reply can carry.
pub const MAX_PEERS_V4: usize =
    (MAX_DATAGRAM_V4 - udp::ANNOUNCE_RESPONSE_HEADER_LEN) / udp::PEER4_LEN;
/// Most IPv6 peers one announce reply can carry.
pub const MAX_PEERS_V6: usize =
    (MAX_DATAGRAM_V6 - udp::ANNOUNCE_RESPONSE_HEADER_LEN) / udp::PEER6_LEN;

/// State shared by every worker: configuration, connection-id key, swarm map.
#[derive(Debug)]
pub struct Tracker {
    config: TrackerConfig,
    conn_ids: ConnectionIds,
    swarm: Swarm,
}

/// One worker's private context: its random numbers and its counters.
#[derive(Debug)]
pub struct Worker {
    rng: Rng,
    pub counters: Arc<Counters>,
    /// Reusable buffers for the two peer lists of an HTTP reply (own and other
    /// address family), so a request allocates nothing once they are warm.
    http_peers: [Vec<u8>; 2],
}

impl Worker {
    pub fn new(counters: Arc<Counters>) -> Worker {
        Worker {
            rng: Rng::new(),
            counters,
            http_peers: [Vec::new(), Vec::new()],
        }
    }

    pub fn random_pair(&mut self) -> (u64, u64) {
        (self.rng.next_u64(), self.rng.next_u64())
    }
}

impl Tracker {
    pub fn new(config: TrackerConfig, shards: usize) -> Tracker {
        let swarm = Swarm::new(shards, config.peer_timeout.min(u32::from(u16::MAX)) as u16)
            .with_max_peers(config.max_peers);
        Tracker {
            conn_ids: ConnectionIds::new(config.connection_id_lifetime),
            config,
            swarm,
        }
    }

    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    pub fn swarm(&self) -> &Swarm {
        &self.swarm
    }

    /// How many peers to send for a requested `num_want` (before the datagram cap).
    fn want(&self, num_want: i64) -> usize {
        let want = if num_want < 0 {
            self.config.default_numwant
        } else {
            num_want.min(i64::from(u32::MAX)) as u32
        };
        want.min(self.config.max_numwant) as usize
    }

    /// Handle one UDP datagram from `src`; write the reply into `out` and return
    /// its length, or `None` to send nothing. `now` is tracker seconds.
    pub fn handle_udp(
        &self,
        w: &mut Worker,
        now: u32,
        src: SocketAddr,
        req: &[u8],
        out: &mut [u8],
    ) -> Option<usize> {
        let ip = src.ip().to_canonical();
        let fam = match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        };
        let Worker { rng, counters, .. } = w;
        let c = &**counters;
        let request = match udp::parse_request(req) {
            Ok(r) => r,
            Err(e) => return self.udp_parse_error(c, e, now, ip, fam, req, out),
        };
        match request {
            Request::Connect(r) => {
                c.request(Proto::Udp, fam, Kind::Connect);
                let n = udp::write_connect_response(
                    out,
                    r.transaction_id,
                    self.conn_ids.issue(now, ip),
                )?;
                c.response(Proto::Udp, fam, Kind::Connect);
                Some(n)
            }
            Request::Announce(a) => {
                if !self.conn_ids.check(a.connection_id, now, ip) {
                    c.reject(Reject::BadConnectionId);
                    return None;
                }
                c.request(Proto::Udp, fam, Kind::Announce);
                if a.port == 0 {
                    c.reject(Reject::InvalidRequest);
                    return self.udp_error(c, fam, a.transaction_id, "invalid port 0", out);
                }
                let role = match (a.event, a.left) {
                    (Event::Stopped, _) => Role::Stopped,
                    (_, 0) => Role::Seeder,
                    _ => Role::Leecher,
                };
                let want = if role == Role::Stopped {
                    0
                } else {
                    self.want(i64::from(a.num_want))
                };
                let completed = a.event == Event::Completed;
                let random = (rng.next_u64(), rng.next_u64());
                let header = udp::ANNOUNCE_RESPONSE_HEADER_LEN;
                let (announced, at) = match ip {
                    IpAddr::V4(v4) => self.udp_announce::<Peer4>(
                        &a.info_hash,
                        (v4, a.port),
                        role,
                        completed,
                        now,
                        want,
                        random,
                        out.get_mut(header..)?,
                    ),
                    IpAddr::V6(v6) => self.udp_announce::<Peer6>(
                        &a.info_hash,
                        (v6, a.port),
                        role,
                        completed,
                        now,
                        want,
                        random,
                        out.get_mut(header..)?,
                    ),
                };
                let at = header + at;
                if announced.full {
                    c.reject(Reject::SwarmFull);
                }
                let counts = announced.counts;
                udp::write_announce_header(
                    out,
                    a.transaction_id,
                    self.config.interval,
                    counts.leechers,
                    counts.seeders,
                )?;
                log::trace!(
                    "announce {src} peers={} seeders={} leechers={}",
                    announced.peers,
                    counts.seeders,
                    counts.leechers
                );
                c.response(Proto::Udp, fam, Kind::Announce);
                Some(at)
            }
            Request::Scrape(s) => {
                if !self.conn_ids.check(s.connection_id, now, ip) {
                    c.reject(Reject::BadConnectionId);
                    return None;
                }
                c.request(Proto::Udp, fam, Kind::Scrape);
                if s.is_empty() {
                    c.reject(Reject::InvalidRequest);
                    return self.udp_error(c, fam, s.transaction_id, "no info hash", out);
                }
                let mut at = udp::write_scrape_header(out, s.transaction_id)?;
                for info_hash in s.info_hashes().take(self.config.max_scrape as usize) {
                    let counts = self.swarm.scrape(info_hash);
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
                c.response(Proto::Udp, fam, Kind::Scrape);
                Some(at)
            }
        }
    }

    /// Announce into the swarm and write the sampled peers, in the compact form
    /// of the client's family, into `peers_out`; returns the announce and the
    /// bytes written. The peer count is capped by one unfragmented datagram.
    #[allow(clippy::too_many_arguments)]
    fn udp_announce<P: CompactPeer>(
        &self,
        info_hash: &[u8; 20],
        addr: P::Addr,
        role: Role,
        completed: bool,
        now: u32,
        want: usize,
        random: (u64, u64),
        peers_out: &mut [u8],
    ) -> (Announced, usize) {
        let room = peers_out
            .len()
            .min(P::MAX_DATAGRAM - udp::ANNOUNCE_RESPONSE_HEADER_LEN);
        let mut at = 0;
        let announced = self.swarm.announce::<P>(
            info_hash,
            addr,
            role,
            completed,
            now,
            want.min(room / P::LEN),
            random,
            |p| at += p.write_compact(&mut peers_out[at..]).unwrap_or(0),
        );
        (announced, at)
    }

    /// A datagram that did not parse: an error frame when we know who asked
    /// (valid connection id for their address), silence otherwise.
    #[allow(clippy::too_many_arguments)]
    fn udp_parse_error(
        &self,
        c: &Counters,
        e: ParseError,
        now: u32,
        ip: IpAddr,
        fam: Family,
        req: &[u8],
        out: &mut [u8],
    ) -> Option<usize> {
        let reason = match e {
            ParseError::Truncated => Reject::Truncated,
            ParseError::BadProtocolId => Reject::BadProtocolId,
            ParseError::UnknownAction => Reject::UnknownAction,
        };
        c.reject(reason);
        log::trace!("udp request from {ip} refused: {}", e.as_str());
        let header = udp::parse_header(req)?;
        if e == ParseError::BadProtocolId || !self.conn_ids.check(header.connection_id, now, ip) {
            return None;
        }
        self.udp_error(c, fam, header.transaction_id, e.as_str(), out)
    }

    fn udp_error(
        &self,
        c: &Counters,
        fam: Family,
        transaction_id: u32,
        msg: &str,
        out: &mut [u8],
    ) -> Option<usize> {
        let n = udp::write_error_response(out, transaction_id, msg)?;
        c.response(Proto::Udp, fam, Kind::Error);
        Some(n)
    }

    /// Issue a connection id (for tests and tools that bypass the connect round trip).
    pub fn connection_id(&self, now: u32, ip: IpAddr) -> u64 {
        self.conn_ids.issue(now, ip.to_canonical())
    }
}

/// A stored peer as a BEP 15 compact peer of its family.
trait CompactPeer: SwarmFamily {
    /// Bytes per compact peer.
    const LEN: usize;
    /// Largest unfragmented reply over this family.
    const MAX_DATAGRAM: usize;
    fn write_compact(&self, out: &mut [u8]) -> Option<usize>;
}

impl CompactPeer for Peer4 {
    const LEN: usize = udp::PEER4_LEN;
    const MAX_DATAGRAM: usize = MAX_DATAGRAM_V4;
    fn write_compact(&self, out: &mut [u8]) -> Option<usize> {
        let (ip, port) = self.addr();
        udp::write_peer4(out, ip, port)
    }
}

impl CompactPeer for Peer6 {
    const LEN: usize = udp::PEER6_LEN;
    const MAX_DATAGRAM: usize = MAX_DATAGRAM_V6;
    fn write_compact(&self, out: &mut [u8]) -> Option<usize> {
        let (ip, port) = self.addr();
        udp::write_peer6(out, ip, port)
    }
}

/// A small, fast, non-cryptographic generator (wyrand) for peer sampling.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded from ahash's per-process randomness and the thread, so workers differ.
    pub fn new() -> Rng {
        Rng(ahash::RandomState::new().hash_one(std::thread::current().id()))
    }

    pub fn from_seed(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db);
        (t as u64) ^ ((t >> 64) as u64)
    }
}

impl Default for Rng {
    fn default() -> Self {
        Rng::new()
    }
}

#[cfg(test)]
mod tests;
