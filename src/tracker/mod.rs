//! The sans-IO tracker: request bytes in, reply bytes and an [`Outcome`] out.
//!
//! [`Tracker::handle_udp`] is a function of (now, source address, datagram)
//! plus the shared swarm: no sockets, no clock, no allocation, no counters.
//! It writes the reply into the caller's buffer and returns what happened
//! ([`Handled`]): the worker counts it and publishes what was stored; tests
//! and benches call it directly with bytes and assert bytes and outcomes.
//! [`Tracker::http_announce`] and [`Tracker::http_scrape`] do the same for
//! the HTTP tracker's two routes (the rest of HTTP — routing, operator
//! paths, rate limits, proxies — is the connection layer's).
//!
//! Decisions made here (each tested in `tests.rs`):
//! - a request with a bad connection id is dropped (never a full reply); so is
//!   anything shorter than 16 bytes or a connect with the wrong magic;
//! - answerable mistakes (valid connection id, bad content) get a BEP 15 error;
//! - the reply's address family follows the packet: IPv4 (and IPv4-mapped)
//!   sources get only IPv4 peers in 6-byte form, IPv6 sources 18-byte IPv6 peers;
//! - the announce's `ip` field is ignored: the source address is the peer;
//! - an announce reply's interval is the worker's current one ([`Worker::set_interval`],
//!   which its load moves between `--interval` and `--max-interval`), spread by
//!   ± `--interval-jitter` with the worker's own generator ([`interval`]);
//! - `num_want` < 0 → the default, 0 → none, capped by `max_numwant` and by what
//!   fits in one unfragmented datagram;
//! - a scrape answers at most `max_scrape` hashes, in request order; the rest of
//!   the hashes are not answered (the reply is simply shorter);
//! - with an access policy ([`Tracker::set_access`]): an announce the policy
//!   refuses (torrent not allowed, key missing or unknown) gets an error frame
//!   with the policy's words, only after a valid connection id, and stores
//!   nothing; a scrape answers zeros for a hash not allowed. The key is read
//!   from BEP 41 URL data (`udp://host:port/announce/KEY`). Each worker checks
//!   through its own [`PolicyReader`]: no global lock per request. The access
//!   list is asked by the swarm, under the shard lock, only about a torrent
//!   it does not hold under the current policy ([`Admission`]): a stored
//!   torrent's announces and scrapes never touch the list.

pub mod config;
pub mod connid;
mod http;
pub mod interval;
mod outcome;
mod udp;

pub use config::{TrackerConfig, MAX_PEER_TIMEOUT};
pub use interval::{Governor, Intervals, Load, Spread};
pub use outcome::{Asked, Handled, Outcome, PeerEvent, Refusal};

use crate::access::{Deny, Policy, PolicyHandle, PolicyReader, PresentedKey};
use crate::swarm::peers::Peer;
use crate::swarm::{
    Admission, Announce, Announced, Counts, InfoHash, Limits, Open, Peer4, Peer6, PeerFamily,
    PeerId, Role, Swarm,
};
use crate::time::Now;
use crate::wire::udp::{self as wire_udp, Event};
use connid::ConnectionIds;
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;

/// Largest UDP payload that crosses a 1500-byte Ethernet path unfragmented over IPv4.
pub const MAX_DATAGRAM_V4: usize = 1500 - 20 - 8;
/// Largest UDP payload guaranteed unfragmented over IPv6 (the 1280-byte minimum MTU).
pub const MAX_DATAGRAM_V6: usize = 1280 - 40 - 8;

/// Most IPv4 peers one announce reply can carry.
pub const MAX_PEERS_V4: usize =
    (MAX_DATAGRAM_V4 - wire_udp::ANNOUNCE_RESPONSE_HEADER_LEN) / wire_udp::PEER4_LEN;
/// Most IPv6 peers one announce reply can carry.
pub const MAX_PEERS_V6: usize =
    (MAX_DATAGRAM_V6 - wire_udp::ANNOUNCE_RESPONSE_HEADER_LEN) / wire_udp::PEER6_LEN;

/// Most of one scrape's hashes [`Tracker::prefetch_udp`] looks ahead at: it
/// bounds the look-ahead's work for one datagram (a scrape's later hashes
/// wait for their misses as they did before).
pub const PREFETCH_HASHES: usize = 4;

/// State shared by every worker: configuration, connection-id key, swarm map.
#[derive(Debug)]
pub struct Tracker {
    config: TrackerConfig,
    /// The interval settings replies read, resolved from `config` once.
    intervals: Intervals,
    conn_ids: ConnectionIds,
    swarm: Swarm,
    /// Who may use the tracker; unset: everyone. Set once before serving, so
    /// the per-request cost of an open tracker is one load of this cell.
    access: OnceLock<Access>,
}

/// An access policy and the clock it needs.
#[derive(Debug)]
struct Access {
    handle: PolicyHandle,
    /// Unix seconds at tracker second 0: key expiries are Unix times, the
    /// core's `now` counts from start.
    unix_at_zero: u64,
}

/// One thread's private context for the core: its random numbers, its
/// reply buffers and its view of the access policy. Nothing in it is shared,
/// so a request takes no lock for it.
#[derive(Debug)]
pub struct Worker {
    /// Seeds peer sampling. One generator per worker: no shared state, and
    /// workers seeded apart draw different samples.
    rng: fastrand::Rng,
    /// Reusable buffers for the two peer lists of an HTTP reply (own and other
    /// address family), so a request allocates nothing once they are warm.
    http_peers: [Vec<u8>; 2],
    /// This worker's view of the access policy, taken on its first request
    /// when the tracker has one.
    policy: Option<PolicyReader>,
    /// Whether announces record their [`PeerEvent`]: a worker that
    /// publishes nothing (no cluster) does not pay for building it.
    events: bool,
    /// The interval this worker hands out now, before jitter, seconds;
    /// clamped to `[--interval, --max-interval]` (so 0, the start, is the
    /// base). Set by the packet worker when its governor moves it.
    interval: u32,
    /// What replies carry at `interval`: worked out by the first reply
    /// after a change ([`Tracker::spread`]), then one draw per reply.
    spread: Spread,
    /// The last announce's event (with `events`).
    event: Option<PeerEvent>,
}

impl Default for Worker {
    fn default() -> Self {
        Worker::new()
    }
}

impl Worker {
    /// A worker whose generator is seeded from fastrand's per-thread entropy.
    pub fn new() -> Worker {
        Worker::with_rng(fastrand::Rng::new())
    }

    /// A worker with a given generator (e.g. `fastrand::Rng::with_seed`, for
    /// reproducible samples in tests and benches).
    pub fn with_rng(rng: fastrand::Rng) -> Worker {
        Worker {
            rng,
            http_peers: [Vec::new(), Vec::new()],
            policy: None,
            events: true,
            interval: 0,
            spread: Spread::UNSET,
            event: None,
        }
    }

    /// Hand out `secs` (before jitter) from now on, clamped to the
    /// configured range.
    #[inline]
    pub fn set_interval(&mut self, secs: u32) {
        self.interval = secs;
        self.spread = Spread::UNSET;
    }

    /// Whether announces record their [`PeerEvent`] (by default they do).
    pub fn with_events(mut self, events: bool) -> Worker {
        self.events = events;
        self
    }

    /// What the last announce told the cluster, after an
    /// [`Outcome::Announced`] (`None` for a worker without events).
    pub fn event(&self) -> Option<&PeerEvent> {
        self.event.as_ref()
    }
}

/// The role an announce gives its peer: the one place it is decided, for
/// both protocols. `stopped` leaves whatever `left` says; `left == 0` seeds.
pub fn role(event: Event, left: u64) -> Role {
    match (event, left) {
        (Event::Stopped, _) => Role::Stopped,
        (_, 0) => Role::Seeder,
        _ => Role::Leecher,
    }
}

/// Record what the announce `req` tells the other instances of a cluster,
/// if the worker wants events.
#[inline]
fn record_event(events: bool, slot: &mut Option<PeerEvent>, req: &Announce<'_, SocketAddr>) {
    if events {
        *slot = Some(PeerEvent {
            info_hash: req.info_hash,
            addr: req.addr,
            role: req.role,
            completed: req.completed,
        });
    }
}

/// Two random words for one announce's sampling.
fn random_pair(rng: &mut fastrand::Rng) -> (u64, u64) {
    (rng.u64(..), rng.u64(..))
}

/// A worker's policy for one request, with the Unix time key expiries are
/// checked against. `None`: an open tracker, nothing to check.
#[derive(Clone, Copy)]
struct Checks<'w> {
    policy: &'w Policy,
    now_unix: u64,
    /// The policy's [`Admission::stamp`].
    stamp: u32,
}

/// The access list as the swarm asks it ([`Admission`]): only a policy with
/// a list; without one every torrent is admitted ([`Open`]).
#[derive(Clone, Copy)]
struct Listed<'w> {
    policy: &'w Policy,
    stamp: u32,
}

impl Admission for Listed<'_> {
    #[inline]
    fn stamp(&self) -> u32 {
        self.stamp
    }
    #[inline]
    fn admits(&self, info_hash: &InfoHash) -> bool {
        self.policy.torrent_allowed(info_hash)
    }
}

impl<'w> Checks<'w> {
    /// The key rule of an announce; `key` is only called in private mode.
    /// Checked before the list ([`Policy::check_announce`]'s order), so a
    /// client without a valid key learns nothing about which torrents are
    /// listed.
    #[inline]
    fn announce_key(&self, key: impl FnOnce() -> PresentedKey) -> Result<(), Deny> {
        if !self.policy.is_private() {
            return Ok(());
        }
        self.policy.check_key(&key(), self.now_unix)
    }

    /// The access list, if the policy has one.
    #[inline]
    fn listed(self) -> Option<Listed<'w>> {
        self.policy.list().map(|_| Listed {
            policy: self.policy,
            stamp: self.stamp,
        })
    }

    /// A scrape request as a whole; `key` is only called under `--private-scrape`.
    #[inline]
    fn scrape_request(&self, key: impl FnOnce() -> PresentedKey) -> Result<(), Deny> {
        if !self.policy.scrape_needs_key() {
            return Ok(());
        }
        self.policy.check_scrape_request(&key(), self.now_unix)
    }
}

/// A hash's scrape counts, zeros when the policy does not allow it.
fn scrape_counts(swarm: &Swarm, checks: Option<Checks<'_>>, info_hash: &InfoHash) -> Counts {
    match checks.and_then(Checks::listed) {
        Some(l) => swarm.scrape_admitted(info_hash, &l),
        None => swarm.scrape(info_hash),
    }
}

/// A policy generation as an [`Admission::stamp`]: nonzero; a value comes
/// back only after 2^32 - 1 reloads.
fn stamp_of(generation: u64) -> u32 {
    (generation % u64::from(u32::MAX)) as u32 + 1
}

impl Tracker {
    pub fn new(config: TrackerConfig) -> Tracker {
        let swarm = Swarm::new(
            config.shards,
            config.peer_timeout.min(u32::from(u16::MAX)) as u16,
        )
        .with_limits(Limits {
            max_bytes: config.max_memory,
            max_peers: config.max_peers,
            torrent_share: config.max_torrent_share,
        });
        Tracker {
            conn_ids: ConnectionIds::new(config.connection_id_lifetime),
            intervals: Intervals::of(&config),
            config,
            swarm,
            access: OnceLock::new(),
        }
    }

    /// Enforce the policy behind `handle` (access list, private keys) from now
    /// on. Call once, before the first request: a request served earlier was
    /// served open. `unix_at_zero` is the Unix time at tracker second 0. Gives
    /// the handle back if a policy is already set.
    pub fn set_access(&self, handle: PolicyHandle, unix_at_zero: u64) -> Result<(), PolicyHandle> {
        self.access
            .set(Access {
                handle,
                unix_at_zero,
            })
            .map_err(|a| a.handle)
    }

    /// Whether an access policy is set.
    pub fn has_access_policy(&self) -> bool {
        self.access.get().is_some()
    }

    /// The worker's policy for a request at `now`: its reader is taken on
    /// first use, then each call is one atomic load (see [`PolicyReader::get`]).
    #[inline]
    fn checks<'w>(&self, reader: &'w mut Option<PolicyReader>, now: u32) -> Option<Checks<'w>> {
        let access = self.access.get()?;
        let reader = reader.get_or_insert_with(|| access.handle.reader());
        let (policy, generation) = reader.get_with_generation();
        Some(Checks {
            policy,
            now_unix: access.unix_at_zero + u64::from(now),
            stamp: stamp_of(generation),
        })
    }

    /// Sweep shard `shard` ([`Swarm::expire_shard`]), dropping also the
    /// torrents the worker's policy no longer allows: a hash that left an
    /// allow list loses its swarm within one sweep period.
    pub fn expire_shard(&self, w: &mut Worker, shard: usize, now: Now) -> usize {
        let now = now.secs();
        match self.checks(&mut w.policy, now).and_then(Checks::listed) {
            Some(l) => self.swarm.expire_shard_admitted(shard, now, &l),
            None => self.swarm.expire_shard(shard, now),
        }
    }

    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    /// The interval settings in force (the configuration's, resolved).
    pub fn intervals(&self) -> Intervals {
        self.intervals
    }

    /// What a worker's replies carry at its `interval`: `spread`, worked
    /// out first if the interval changed since the last reply.
    #[inline(always)]
    fn spread(&self, interval: u32, spread: &mut Spread) -> Spread {
        if spread.is_unset() {
            *spread = self.work_out_spread(interval);
        }
        *spread
    }

    #[cold]
    #[inline(never)]
    fn work_out_spread(&self, interval: u32) -> Spread {
        self.intervals.spread(interval)
    }

    pub fn swarm(&self) -> &Swarm {
        &self.swarm
    }

    /// Issue and check connection ids with `ids` (a key restored by a warm
    /// restart); before serving.
    pub fn set_connection_ids(&mut self, ids: ConnectionIds) {
        self.conn_ids = ids;
    }

    /// The connection-id key, for the warm-restart state. A secret: never log it.
    pub fn connection_id_key(&self) -> [u8; 16] {
        self.conn_ids.key()
    }

    /// Issue a connection id (for tests and tools that bypass the connect round trip).
    pub fn connection_id(&self, now: Now, ip: IpAddr) -> u64 {
        self.conn_ids.issue(now.secs(), ip.to_canonical())
    }

    /// How many peers to send for a requested `num_want` (before the datagram
    /// cap): none to a peer that is leaving.
    fn want(&self, role: Role, num_want: i64) -> usize {
        if role == Role::Stopped {
            return 0;
        }
        let want = if num_want < 0 {
            self.config.default_numwant
        } else {
            num_want.min(i64::from(u32::MAX)) as u32
        };
        want.min(self.config.max_numwant) as usize
    }

    /// The one announce path of both protocols and both families: announce
    /// `req` (a canonical address) into its family's peer set and pass the
    /// sampled peers to `sink`, capped by what it has room for; a sink that
    /// carries both families (HTTP, BEP 7) gets the other family's peers for
    /// what is left of `want`. `None`: the access list of `checks` refuses
    /// the torrent (nothing stored, nothing sent to `sink`).
    fn announce<S: PeerSink>(
        &self,
        req: Announce<'_, SocketAddr>,
        checks: Option<Checks<'_>>,
        sink: &mut S,
    ) -> Option<Announced> {
        match checks.and_then(Checks::listed) {
            Some(l) => self.announce_family(req, &l, sink),
            None => self.announce_family(req, &Open, sink),
        }
    }

    fn announce_family<S: PeerSink, A: Admission>(
        &self,
        req: Announce<'_, SocketAddr>,
        adm: &A,
        sink: &mut S,
    ) -> Option<Announced> {
        match req.addr {
            SocketAddr::V4(a) => self.announce_in::<Peer4, Peer6, S, A>(
                req.with_addr((*a.ip(), a.port())),
                adm,
                sink,
            ),
            SocketAddr::V6(a) => self.announce_in::<Peer6, Peer4, S, A>(
                req.with_addr((*a.ip(), a.port())),
                adm,
                sink,
            ),
        }
    }

    fn announce_in<Own, Other, S, A>(
        &self,
        req: Announce<'_, Own::Addr>,
        adm: &A,
        sink: &mut S,
    ) -> Option<Announced>
    where
        Own: CompactPeer,
        Other: CompactPeer,
        S: PeerSink,
        A: Admission,
    {
        let want = req.want;
        let req = Announce {
            want: want.min(sink.room::<Own>()),
            ..req
        };
        let announced = self
            .swarm
            .announce_admitted::<Own, A>(&req, adm, |p, id| sink.push(p, id))?;
        if S::BOTH_FAMILIES {
            let rest = (want - announced.peers).min(sink.room::<Other>());
            if rest > 0 {
                self.swarm
                    .sample::<Other, _>(&req, rest, |p, id| sink.push(p, id));
            }
        }
        Some(announced)
    }
}

/// Where an announce reply's peers go: a BEP 15 datagram or an HTTP body.
trait PeerSink {
    /// Whether the reply also carries the other family's peers (HTTP, BEP 7).
    const BOTH_FAMILIES: bool;
    /// Most further peers of family `P` that fit.
    fn room<P: CompactPeer>(&self) -> usize;
    fn push<P: CompactPeer>(&mut self, p: &P, id: Option<&PeerId>);
}

/// A stored peer as a BEP 15 compact peer of its family.
trait CompactPeer: PeerFamily {
    /// Bytes per compact peer.
    const LEN: usize;
    /// Largest unfragmented reply over this family.
    const MAX_DATAGRAM: usize;
    fn write_compact(&self, out: &mut [u8]) -> Option<usize>;
}

impl CompactPeer for Peer4 {
    const LEN: usize = wire_udp::PEER4_LEN;
    const MAX_DATAGRAM: usize = MAX_DATAGRAM_V4;
    fn write_compact(&self, out: &mut [u8]) -> Option<usize> {
        let (ip, port) = self.addr();
        wire_udp::write_peer4(out, ip, port)
    }
}

impl CompactPeer for Peer6 {
    const LEN: usize = wire_udp::PEER6_LEN;
    const MAX_DATAGRAM: usize = MAX_DATAGRAM_V6;
    fn write_compact(&self, out: &mut [u8]) -> Option<usize> {
        let (ip, port) = self.addr();
        wire_udp::write_peer6(out, ip, port)
    }
}

#[cfg(test)]
mod tests;
