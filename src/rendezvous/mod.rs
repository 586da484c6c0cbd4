//! The Sobani rendezvous service, sans-IO.
//!
//! Peers behind NATs `announce` over UDP and get a share id; a `push` naming
//! another peer's id introduces the two (`pushed` to the requester, `income` to
//! the requestee) so both can punch through their NATs. Wire-compatible with
//! the `sobani-tracker` crate, minus its gaps: registrations expire
//! (`alive` keeps them), the registry is capped, pushes are rate limited, ids
//! are keyed (not computable from an address), garbage never panics.
//!
//! This room owns the protocol decisions only: [`Rendezvous::handle`] is
//! `(now, source, request bytes) → replies + outcome`. The net layer owns the
//! socket, reads the clock once per loop turn, sends [`Replies`] and counts
//! [`Outcome`]s.
//!
//! Guarantees:
//! - no allocation per datagram once the registry is warm: requests are parsed
//!   borrowing from the datagram, replies are written into the caller's fixed
//!   buffers;
//! - amplification bound: the bytes sent to a request's source are at most
//!   [`SOURCE_FACTOR`] × the request's length, all bytes sent for a request at most
//!   [`TOTAL_FACTOR`] × (checked on every reply; a reply that would break it is
//!   dropped and counted — the well-formed protocol never gets there, see the
//!   tests); a push only sends to an address that registered and whose id the
//!   requester knew, at most `push_rate` per second per requester and at most
//!   [`INCOME_FACTOR`] × `push_rate` `income`s per second per requestee;
//! - addresses are canonical (IPv4-mapped IPv6 is IPv4; flow info and scope id
//!   dropped), as in the tracker.
//!
//! # Use from a worker loop
//!
//! ```
//! use shoal::rendezvous::{Outcome, Rendezvous, RendezvousConfig, Replies};
//! let rdv = Rendezvous::new(RendezvousConfig::default(), 64); // shared, `&self`
//! let mut out = Replies::new(); // one per worker, reused
//! let src = "192.0.2.1:4000".parse().unwrap();
//! let outcome = rdv.handle(17, src, br#"{"action":"announce"}"#, &mut out);
//! assert_eq!(outcome, Outcome::Announced); // count under outcome.as_str()
//! for (dst, bytes) in out.iter() {
//!     // socket.send_to(bytes, dst) through a socket of dst's family
//!     assert_eq!(dst, src);
//!     assert!(bytes.starts_with(br#"{"action":"announced""#));
//! }
//! // housekeeping, one shard at a time: rdv.expire_shard(i, now)
//! ```

pub mod client;
pub mod message;
pub mod registry;

#[cfg(test)]
mod tests;

pub use message::{DropReason, ShareId};
pub use registry::{Registry, RegistryStats};

use message::{Announced, ErrorData, IdField, Peer, PeerAddr, Reply, Request, ServerReply};
use std::net::SocketAddr;

/// Bytes sent back to a request's (spoofable) source ≤ this × request bytes.
/// The tightest case is the smallest push
/// (`{"action":"push","shareId":"abcdef01"}`, 38 bytes) answered with a `pushed`
/// naming a full-length IPv6 address (114 bytes): exactly 3×.
pub const SOURCE_FACTOR: usize = 3;

/// All bytes sent for one request ≤ this × request bytes (a push's two datagrams).
pub const TOTAL_FACTOR: usize = 2 * SOURCE_FACTOR;

/// A peer may receive `income`s this many times faster than one requester may
/// push: popular share ids get several introductions at once, but a shared id
/// cannot be used by many requesters together to flood its owner.
pub const INCOME_FACTOR: u32 = 4;

/// Room for any reply: the longest is a `pushed`/`income` with a full-length
/// IPv6 address (114 bytes).
pub const REPLY_MAX: usize = 128;

/// Largest `--rendezvous-max`: slab slots are `u32` indexes, and 2^28 entries
/// of ~110 bytes are already ~30 GB.
pub const MAX_REGISTRATIONS: usize = 1 << 28;

/// Rendezvous settings (`--rendezvous-*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RendezvousConfig {
    /// A registration without `announce`/`alive` for this long expires, seconds.
    pub timeout: u32,
    /// Most registrations held (rounded up to a multiple of the shard count);
    /// when full, the stalest go first.
    pub max: usize,
    /// Pushes per second per requester (bursts of twice that). Each registered
    /// peer also receives at most [`INCOME_FACTOR`] × this many `income`s per
    /// second from all requesters together.
    pub push_rate: u32,
}

impl Default for RendezvousConfig {
    fn default() -> Self {
        RendezvousConfig {
            timeout: 300,
            max: 1_000_000,
            push_rate: 4,
        }
    }
}

impl RendezvousConfig {
    /// Pushes a requester may send at once after a quiet spell.
    pub fn push_burst(&self) -> u32 {
        self.push_rate.saturating_mul(2).max(1)
    }

    /// `income`s per second one registered peer may receive.
    pub fn income_rate(&self) -> u32 {
        self.push_rate.saturating_mul(INCOME_FACTOR)
    }

    /// `income`s one registered peer may receive at once after a quiet spell.
    pub fn income_burst(&self) -> u32 {
        self.income_rate().saturating_mul(2).max(1)
    }

    /// Start-up check, with a message for the operator.
    pub fn validate(&self) -> Result<(), String> {
        if self.timeout == 0 {
            return Err("--rendezvous-timeout must be at least 1 second".into());
        }
        if self.max == 0 || self.max > MAX_REGISTRATIONS {
            return Err(format!(
                "--rendezvous-max must be between 1 and {MAX_REGISTRATIONS}"
            ));
        }
        if self.push_rate == 0 {
            return Err("--rendezvous-push-rate must be at least 1".into());
        }
        Ok(())
    }
}

/// What became of one datagram: one counter each for `/metrics` and the stats
/// line (`protocol="rendezvous"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// `announced` sent.
    Announced,
    /// `alived` sent.
    Alive,
    /// `pushed` (and `income`, unless the requester named itself) sent.
    Pushed,
    /// `expired` sent: `alive` or `push` from an unregistered address.
    Expired,
    /// `error` sent: the push named an unknown or malformed share id.
    UnknownId,
    /// A push over the requester's push rate or the requestee's income rate:
    /// nothing sent.
    RateLimited,
    /// Nothing sent.
    Dropped(DropReason),
}

impl Outcome {
    /// Every outcome, for registering metrics.
    pub const ALL: [Outcome; 12] = [
        Outcome::Announced,
        Outcome::Alive,
        Outcome::Pushed,
        Outcome::Expired,
        Outcome::UnknownId,
        Outcome::RateLimited,
        Outcome::Dropped(DropReason::TooLarge),
        Outcome::Dropped(DropReason::NotJson),
        Outcome::Dropped(DropReason::UnknownAction),
        Outcome::Dropped(DropReason::BadPush),
        Outcome::Dropped(DropReason::Amplification),
        Outcome::Dropped(DropReason::NoFreeId),
    ];

    /// Metric label (`outcome="…"`); drops are `dropped_<reason>`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Announced => "announced",
            Outcome::Alive => "alive",
            Outcome::Pushed => "pushed",
            Outcome::Expired => "expired",
            Outcome::UnknownId => "unknown_id",
            Outcome::RateLimited => "rate_limited",
            Outcome::Dropped(DropReason::TooLarge) => "dropped_too_large",
            Outcome::Dropped(DropReason::NotJson) => "dropped_not_json",
            Outcome::Dropped(DropReason::UnknownAction) => "dropped_unknown_action",
            Outcome::Dropped(DropReason::BadPush) => "dropped_bad_push",
            Outcome::Dropped(DropReason::Amplification) => "dropped_amplification",
            Outcome::Dropped(DropReason::NoFreeId) => "dropped_no_free_id",
        }
    }

    /// Index into [`Outcome::ALL`], for a counter array.
    pub fn index(self) -> usize {
        Outcome::ALL.iter().position(|&o| o == self).unwrap_or(0)
    }
}

/// Up to two datagrams to send for one request, in fixed buffers the caller
/// keeps and reuses (one per worker). Destinations are canonical: an IPv4 peer
/// is a `SocketAddr::V4` even if it reached a dual-stack IPv6 socket, so the net
/// layer sends each through a socket of the destination's family (or maps it).
#[derive(Debug, Clone)]
pub struct Replies {
    n: usize,
    dst: [SocketAddr; 2],
    len: [usize; 2],
    buf: [[u8; REPLY_MAX]; 2],
}

impl Default for Replies {
    fn default() -> Self {
        Replies::new()
    }
}

impl Replies {
    pub fn new() -> Replies {
        let any = SocketAddr::from(([0, 0, 0, 0], 0));
        Replies {
            n: 0,
            dst: [any; 2],
            len: [0; 2],
            buf: [[0; REPLY_MAX]; 2],
        }
    }

    pub fn clear(&mut self) {
        self.n = 0;
    }

    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Datagram `i`: destination and bytes.
    pub fn get(&self, i: usize) -> Option<(SocketAddr, &[u8])> {
        if i >= self.n {
            return None;
        }
        Some((
            *self.dst.get(i)?,
            self.buf.get(i)?.get(..*self.len.get(i)?)?,
        ))
    }

    pub fn iter(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> + '_ {
        (0..self.n).filter_map(|i| self.get(i))
    }

    /// Bytes of all datagrams.
    pub fn total_bytes(&self) -> usize {
        self.len.iter().take(self.n).sum()
    }

    /// Bytes of the datagrams to `dst`.
    pub fn bytes_to(&self, dst: SocketAddr) -> usize {
        self.iter()
            .filter(|(d, _)| *d == dst)
            .map(|(_, b)| b.len())
            .sum()
    }

    fn push(&mut self, dst: SocketAddr, reply: &ServerReply) -> bool {
        let i = self.n;
        let (Some(buf), Some(d), Some(l)) = (
            self.buf.get_mut(i),
            self.dst.get_mut(i),
            self.len.get_mut(i),
        ) else {
            return false;
        };
        match message::write_reply(reply, buf) {
            Some(n) => {
                *d = dst;
                *l = n;
                self.n += 1;
                true
            }
            None => false,
        }
    }
}

/// The address as the registry and the replies use it.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// A fresh random 128-bit key for share ids, from the OS's randomness (ahash's
/// `RandomState` seeds itself from `getrandom`).
pub fn random_key() -> [u8; 16] {
    let s = ahash::RandomState::new();
    let a = s.hash_one(0x5b0a_u64);
    let b = s.hash_one(0x1d5_u64);
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&a.to_le_bytes());
    key[8..].copy_from_slice(&b.to_le_bytes());
    key
}

/// The rendezvous service: the registry and the request handler. One per
/// process, shared (`&self`) by every worker.
#[derive(Debug)]
pub struct Rendezvous {
    registry: Registry,
}

impl Rendezvous {
    /// A service with a random id key and `shards` registry shards (rounded up
    /// to a power of two; use the swarm's count).
    pub fn new(config: RendezvousConfig, shards: usize) -> Rendezvous {
        Rendezvous::with_key(config, shards, random_key())
    }

    /// Same with a given id key (tests, warm restarts).
    pub fn with_key(config: RendezvousConfig, shards: usize, key: [u8; 16]) -> Rendezvous {
        Rendezvous {
            registry: Registry::new(config, shards, key),
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Sweep shard `i` (modulo the shard count) for expired registrations; for
    /// the net layer's housekeeping. Returns how many were removed.
    pub fn expire_shard(&self, i: usize, now: u32) -> usize {
        self.registry.expire_shard(i, now)
    }

    pub fn shard_count(&self) -> usize {
        self.registry.shard_count()
    }

    /// Handle one datagram `bytes` from `src` at tracker time `now` (seconds):
    /// `out` is cleared and filled with what to send.
    pub fn handle(&self, now: u32, src: SocketAddr, bytes: &[u8], out: &mut Replies) -> Outcome {
        out.clear();
        let src = canonical(src);
        let outcome = self.decide(now, src, bytes, out);
        // The bound is checked on what was actually written, whatever the path.
        let outcome = if out.bytes_to(src) > SOURCE_FACTOR * bytes.len()
            || out.total_bytes() > TOTAL_FACTOR * bytes.len()
        {
            out.clear();
            Outcome::Dropped(DropReason::Amplification)
        } else {
            outcome
        };
        log::trace!("rendezvous {src}: {}", outcome.as_str());
        outcome
    }

    fn decide(&self, now: u32, src: SocketAddr, bytes: &[u8], out: &mut Replies) -> Outcome {
        let request = match Request::parse(bytes) {
            Ok(r) => r,
            Err(e) => return Outcome::Dropped(e),
        };
        let r = &self.registry;
        match request {
            Request::Announce => match r.announce(src, now) {
                Ok(id) => {
                    out.push(src, &Reply::Announced(Announced { share_id: id }));
                    Outcome::Announced
                }
                Err(_) => Outcome::Dropped(DropReason::NoFreeId),
            },
            Request::Alive => match r.alive(src, now) {
                Ok(_) => {
                    out.push(src, &Reply::Alived);
                    Outcome::Alive
                }
                Err(_) => {
                    out.push(src, &Reply::Expired);
                    Outcome::Expired
                }
            },
            Request::Push(field) => {
                // Check the requester first (and spend its token even on a bad
                // id, so guessing ids is rate limited too); one lock at a time.
                let own_id = match r.take_push(src, now) {
                    Ok(id) => id,
                    Err(registry::Error::RateLimited) => return Outcome::RateLimited,
                    Err(_) => {
                        out.push(src, &Reply::Expired);
                        return Outcome::Expired;
                    }
                };
                let target = match field {
                    IdField::Str(s) => ShareId::parse(s),
                    IdField::NotAnId => None,
                };
                let found = match target {
                    Some(id) => r.take_income(id, now).map(|peer| (id, peer)),
                    None => Err(registry::Error::UnknownId),
                };
                let (id, peer) = match found {
                    Ok(p) => p,
                    Err(registry::Error::RateLimited) => return Outcome::RateLimited,
                    Err(_) => {
                        out.push(
                            src,
                            &Reply::Error(ErrorData {
                                reason: message::UNKNOWN_SHARE_ID,
                            }),
                        );
                        return Outcome::UnknownId;
                    }
                };
                out.push(
                    src,
                    &Reply::Pushed(Peer {
                        peer_addr: PeerAddr(peer),
                        peer_share_id: id,
                    }),
                );
                // Naming oneself gets the `pushed` only: never two datagrams
                // to the (spoofable) source.
                if peer != src {
                    out.push(
                        peer,
                        &Reply::Income(Peer {
                            peer_addr: PeerAddr(src),
                            peer_share_id: own_id,
                        }),
                    );
                }
                Outcome::Pushed
            }
        }
    }
}
