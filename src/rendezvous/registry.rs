//! The rendezvous registry: who is registered, under which share id, since when.
//!
//! Shared by every worker (each worker's socket sees different clients, and a
//! push must find a requestee that registered through another worker), so it is
//! sharded like the swarm: `parking_lot` mutexes, one lock per operation, never
//! two at once, never held across I/O.
//!
//! Guarantees:
//! - an address and its share id live in the same shard: the shard is picked by
//!   a keyed hash of the address, and the id's low bits *are* the shard index,
//!   so a lookup by id locks exactly one shard too;
//! - share ids come from SipHash-2-4 of the canonical address under a random
//!   per-process 128-bit key (nobody can compute another user's id from their
//!   address), with a counter in the hash input on the rare collision, so ids
//!   are unique and deterministic for a key;
//! - bounded memory: each shard holds at most `ceil(max / shards)` entries in a
//!   slab threaded by a doubly linked list in last-seen order, so evicting the
//!   stalest entry is O(1) and expiry pops only expired entries from the front
//!   (no scan); a refresh moves an entry to the back in O(1);
//! - an entry older than the timeout is treated as gone even before a sweep
//!   removes it;
//! - no clock: `now` (tracker seconds) is always an argument.

use super::message::ShareId;
use super::RendezvousConfig;
use ahash::RandomState;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::Hasher;
use std::net::{IpAddr, SocketAddr};

/// Candidates tried for a new id before giving up ([`Error::NoFreeId`]).
const ID_TRIES: u32 = 16;

/// End of a list.
const NIL: u32 = u32::MAX;

/// Why a registry operation did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The address is not registered (or its registration expired).
    Expired,
    /// The requester spent its push tokens, or the requestee its income tokens.
    RateLimited,
    /// No live registration has this share id.
    UnknownId,
    /// Every id candidate for the address is held by someone else.
    NoFreeId,
}

/// One registration. Slab slots are reused through the free list.
#[derive(Debug, Clone, Copy)]
struct Node {
    addr: SocketAddr,
    id: u32,
    /// Tracker seconds of the last announce or alive.
    last_seen: u32,
    /// Push tokens left (as requester) and the second they were last topped up.
    tokens: u32,
    tokens_at: u32,
    /// Income tokens left (as requestee): many requesters together cannot spray
    /// one registered peer faster than [`RendezvousConfig::income_rate`].
    incomes: u32,
    incomes_at: u32,
    /// Neighbours in last-seen order (prev = staler). `next` links the free list
    /// for free slots.
    prev: u32,
    next: u32,
}

/// Approximate bytes one registration costs: its slab node and one slot in each
/// index (key, value and hashbrown's control byte), before load-factor slack.
pub const ENTRY_BYTES: usize = std::mem::size_of::<Node>()
    + std::mem::size_of::<(SocketAddr, u32)>()
    + std::mem::size_of::<(u32, u32)>()
    + 2;

#[derive(Debug)]
struct Shard {
    nodes: Vec<Node>,
    free: u32,
    /// Stalest live entry; `tail` is the freshest.
    head: u32,
    tail: u32,
    len: usize,
    by_addr: HashMap<SocketAddr, u32, RandomState>,
    by_id: HashMap<u32, u32, RandomState>,
}

impl Shard {
    fn new(hasher: &RandomState) -> Shard {
        Shard {
            nodes: Vec::new(),
            free: NIL,
            head: NIL,
            tail: NIL,
            len: 0,
            by_addr: HashMap::with_hasher(hasher.clone()),
            by_id: HashMap::with_hasher(hasher.clone()),
        }
    }

    fn node(&self, i: u32) -> Option<&Node> {
        self.nodes.get(i as usize)
    }

    fn node_mut(&mut self, i: u32) -> Option<&mut Node> {
        self.nodes.get_mut(i as usize)
    }

    fn unlink(&mut self, i: u32) {
        let Some(&Node { prev, next, .. }) = self.node(i) else {
            return;
        };
        match self.node_mut(prev) {
            Some(p) => p.next = next,
            None => self.head = next,
        }
        match self.node_mut(next) {
            Some(n) => n.prev = prev,
            None => self.tail = prev,
        }
    }

    fn push_back(&mut self, i: u32) {
        let tail = self.tail;
        if let Some(n) = self.node_mut(i) {
            n.prev = tail;
            n.next = NIL;
        }
        match self.node_mut(tail) {
            Some(t) => t.next = i,
            None => self.head = i,
        }
        self.tail = i;
    }

    fn remove(&mut self, i: u32) {
        let Some(&Node { addr, id, .. }) = self.node(i) else {
            return;
        };
        self.unlink(i);
        self.by_addr.remove(&addr);
        self.by_id.remove(&id);
        let free = self.free;
        if let Some(n) = self.node_mut(i) {
            n.next = free;
        }
        self.free = i;
        self.len -= 1;
    }

    fn insert(&mut self, node: Node) {
        let i = if self.free != NIL {
            let i = self.free;
            if let Some(n) = self.nodes.get_mut(i as usize) {
                let next = n.next;
                *n = node;
                self.free = next;
            }
            i
        } else {
            self.nodes.push(node);
            (self.nodes.len() - 1) as u32
        };
        self.by_addr.insert(node.addr, i);
        self.by_id.insert(node.id, i);
        self.push_back(i);
        self.len += 1;
    }

    /// The live entry of `addr`; a stale one is removed on the way.
    fn live_by_addr(&mut self, addr: &SocketAddr, now: u32, timeout: u32) -> Option<u32> {
        let i = *self.by_addr.get(addr)?;
        let n = self.node(i)?;
        if now.saturating_sub(n.last_seen) < timeout {
            Some(i)
        } else {
            self.remove(i);
            None
        }
    }

    fn touch(&mut self, i: u32, now: u32) {
        if let Some(n) = self.node_mut(i) {
            // Workers' clocks may differ by a second: never move backwards, so
            // the list stays in last-seen order.
            n.last_seen = n.last_seen.max(now);
        }
        self.unlink(i);
        self.push_back(i);
    }
}

/// Token bucket in whole seconds: top `tokens` up by `rate` per second since
/// `at` (to at most `burst`), then spend one if there is one.
fn take_token(tokens: &mut u32, at: &mut u32, now: u32, rate: u32, burst: u32) -> bool {
    let earned = u64::from(now.saturating_sub(*at)) * u64::from(rate);
    *tokens = (u64::from(*tokens) + earned).min(u64::from(burst)) as u32;
    *at = (*at).max(now);
    if *tokens == 0 {
        return false;
    }
    *tokens -= 1;
    true
}

/// Entry count and memory estimate, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegistryStats {
    pub entries: u64,
    /// Bytes held by the shards' slabs and indexes (allocated capacity).
    pub bytes: u64,
}

/// The sharded registry. See the module docs.
#[derive(Debug)]
pub struct Registry {
    shards: Box<[Mutex<Shard>]>,
    /// `shards.len() - 1`; the low bits of every share id.
    mask: u32,
    key: [u8; 16],
    per_shard: usize,
    config: RendezvousConfig,
}

impl Registry {
    /// `shards` is rounded up to a power of two (at most 2^16, so ids keep 16
    /// keyed bits). `key` is the SipHash key of share ids.
    pub fn new(config: RendezvousConfig, shards: usize, key: [u8; 16]) -> Registry {
        let n = shards.clamp(1, 1 << 16).next_power_of_two();
        let hasher = RandomState::new();
        Registry {
            shards: (0..n).map(|_| Mutex::new(Shard::new(&hasher))).collect(),
            mask: (n - 1) as u32,
            key,
            per_shard: config.max.div_ceil(n).max(1),
            config,
        }
    }

    pub fn config(&self) -> &RendezvousConfig {
        &self.config
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    fn hash(&self, addr: &SocketAddr, n: u32) -> u64 {
        let mut h = siphasher::sip::SipHasher24::new_with_key(&self.key);
        match addr.ip() {
            IpAddr::V4(ip) => {
                h.write_u8(4);
                h.write(&ip.octets());
            }
            IpAddr::V6(ip) => {
                h.write_u8(6);
                h.write(&ip.octets());
            }
        }
        h.write_u16(addr.port());
        h.write_u32(n);
        h.finish()
    }

    fn shard_of_addr(&self, addr: &SocketAddr) -> u32 {
        (self.hash(addr, 0) >> 32) as u32 & self.mask
    }

    /// Candidate `n` of `addr`'s share id: keyed bits above, shard index below.
    fn candidate(&self, addr: &SocketAddr, shard: u32, n: u32) -> u32 {
        (self.hash(addr, n) as u32 & !self.mask) | shard
    }

    fn lock(&self, i: u32) -> parking_lot::MutexGuard<'_, Shard> {
        // `i` is always masked, so in range; index 0 always exists.
        self.shards[(i & self.mask) as usize].lock()
    }

    /// Register `addr` (canonical) or refresh its registration. Returns its id.
    pub fn announce(&self, addr: SocketAddr, now: u32) -> Result<ShareId, Error> {
        let timeout = self.config.timeout;
        let s = self.shard_of_addr(&addr);
        let mut shard = self.lock(s);
        if let Some(i) = shard.live_by_addr(&addr, now, timeout) {
            shard.touch(i, now);
            return shard.node(i).map(|n| ShareId(n.id)).ok_or(Error::Expired);
        }
        let mut id = None;
        for n in 0..ID_TRIES {
            let c = self.candidate(&addr, s, n);
            match shard.by_id.get(&c).copied() {
                None => {
                    id = Some(c);
                    break;
                }
                Some(i) => {
                    // A stale holder gives its id up.
                    if shard
                        .node(i)
                        .is_some_and(|h| now.saturating_sub(h.last_seen) >= timeout)
                    {
                        shard.remove(i);
                        id = Some(c);
                        break;
                    }
                }
            }
        }
        let id = id.ok_or(Error::NoFreeId)?;
        while shard.len >= self.per_shard && shard.head != NIL {
            let head = shard.head;
            shard.remove(head);
        }
        let burst = self.config.push_burst();
        shard.insert(Node {
            addr,
            id,
            last_seen: now,
            tokens: burst,
            tokens_at: now,
            incomes: self.config.income_burst(),
            incomes_at: now,
            prev: NIL,
            next: NIL,
        });
        Ok(ShareId(id))
    }

    /// Refresh a live registration of `addr`; [`Error::Expired`] if there is none.
    pub fn alive(&self, addr: SocketAddr, now: u32) -> Result<ShareId, Error> {
        let mut shard = self.lock(self.shard_of_addr(&addr));
        let i = shard
            .live_by_addr(&addr, now, self.config.timeout)
            .ok_or(Error::Expired)?;
        shard.touch(i, now);
        shard.node(i).map(|n| ShareId(n.id)).ok_or(Error::Expired)
    }

    /// Take one push token of live registration `addr`; returns its id.
    pub fn take_push(&self, addr: SocketAddr, now: u32) -> Result<ShareId, Error> {
        let (rate, burst) = (self.config.push_rate, self.config.push_burst());
        let mut shard = self.lock(self.shard_of_addr(&addr));
        let i = shard
            .live_by_addr(&addr, now, self.config.timeout)
            .ok_or(Error::Expired)?;
        let n = shard.node_mut(i).ok_or(Error::Expired)?;
        if !take_token(&mut n.tokens, &mut n.tokens_at, now, rate, burst) {
            return Err(Error::RateLimited);
        }
        Ok(ShareId(n.id))
    }

    /// The address of live registration `id`, spending one of its income tokens.
    pub fn take_income(&self, id: ShareId, now: u32) -> Result<SocketAddr, Error> {
        let (rate, burst) = (self.config.income_rate(), self.config.income_burst());
        let mut shard = self.lock(id.0);
        let i = *shard.by_id.get(&id.0).ok_or(Error::UnknownId)?;
        let n = shard.node_mut(i).ok_or(Error::UnknownId)?;
        if now.saturating_sub(n.last_seen) >= self.config.timeout {
            shard.remove(i);
            return Err(Error::UnknownId);
        }
        if !take_token(&mut n.incomes, &mut n.incomes_at, now, rate, burst) {
            return Err(Error::RateLimited);
        }
        Ok(n.addr)
    }

    /// The address of live registration `id` (no token spent).
    pub fn lookup(&self, id: ShareId, now: u32) -> Option<SocketAddr> {
        let mut shard = self.lock(id.0);
        let i = *shard.by_id.get(&id.0)?;
        let n = *shard.node(i)?;
        if now.saturating_sub(n.last_seen) < self.config.timeout {
            Some(n.addr)
        } else {
            shard.remove(i);
            None
        }
    }

    /// Remove the expired entries of shard `i` (taken modulo the shard count);
    /// returns how many. Only expired entries are visited.
    pub fn expire_shard(&self, i: usize, now: u32) -> usize {
        let mut shard = self.lock(i as u32);
        let mut removed = 0;
        while let Some(n) = shard.node(shard.head).copied() {
            if now.saturating_sub(n.last_seen) < self.config.timeout {
                break;
            }
            let head = shard.head;
            shard.remove(head);
            removed += 1;
        }
        removed
    }

    /// Entries (including expired ones not yet swept) and memory held.
    pub fn stats(&self) -> RegistryStats {
        let mut st = RegistryStats::default();
        for s in self.shards.iter() {
            let s = s.lock();
            st.entries += s.len as u64;
            st.bytes += (s.nodes.capacity() * std::mem::size_of::<Node>()
                + s.by_addr.capacity() * (std::mem::size_of::<(SocketAddr, u32)>() + 1)
                + s.by_id.capacity() * (std::mem::size_of::<(u32, u32)>() + 1))
                as u64;
        }
        st
    }

    /// Most entries held at once (`max` rounded up to a multiple of the shard count).
    pub fn capacity(&self) -> usize {
        self.per_shard * self.shards.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(max: usize) -> RendezvousConfig {
        RendezvousConfig {
            timeout: 300,
            max,
            push_rate: 2,
        }
    }

    fn addr(i: u32) -> SocketAddr {
        SocketAddr::from((std::net::Ipv4Addr::from(0x0a00_0000 + i), 4000))
    }

    /// Every shard's list and indexes agree.
    fn check(r: &Registry) {
        for (si, s) in r.shards.iter().enumerate() {
            let s = s.lock();
            let mut seen = 0;
            let mut i = s.head;
            let mut prev = NIL;
            let mut last = 0;
            while i != NIL {
                let n = s.nodes[i as usize];
                assert_eq!(n.prev, prev);
                assert!(n.last_seen >= last, "last-seen order");
                last = n.last_seen;
                assert_eq!(s.by_addr[&n.addr], i);
                assert_eq!(s.by_id[&n.id], i);
                assert_eq!(n.id & r.mask, si as u32, "id names its shard");
                prev = i;
                i = n.next;
                seen += 1;
            }
            assert_eq!(s.tail, prev);
            assert_eq!(seen, s.len);
            assert_eq!(s.by_addr.len(), s.len);
            assert_eq!(s.by_id.len(), s.len);
            assert!(s.len <= r.per_shard);
        }
    }

    #[test]
    fn ids_are_stable_unique_and_keyed() {
        let r = Registry::new(cfg(1000), 4, [7; 16]);
        let other = Registry::new(cfg(1000), 4, [8; 16]);
        let mut ids = std::collections::HashSet::new();
        for i in 0..500 {
            let id = r.announce(addr(i), 10).unwrap();
            assert_eq!(r.announce(addr(i), 11).unwrap(), id);
            assert!(ids.insert(id));
            assert_eq!(r.lookup(id, 11), Some(addr(i)));
        }
        let differs = (0..500)
            .filter(|&i| other.announce(addr(i), 10).unwrap() != r.announce(addr(i), 10).unwrap())
            .count();
        assert!(differs > 490, "another key gives other ids");
        check(&r);
    }

    #[test]
    fn collisions_take_the_next_candidate() {
        // Natural 32-bit collisions are too rare to hit in a test: plant `b`
        // under `a`'s first candidate by hand.
        let r = Registry::new(cfg(100), 1, [1; 16]);
        let a = addr(1);
        let b = addr(2);
        let id_a = r.announce(a, 0).unwrap();
        {
            let mut s = r.lock(0);
            let i = s.by_addr[&a];
            s.remove(i);
            s.insert(Node {
                addr: b,
                id: id_a.0,
                last_seen: 0,
                tokens: 1,
                tokens_at: 0,
                incomes: 1,
                incomes_at: 0,
                prev: NIL,
                next: NIL,
            });
        }
        let id_a2 = r.announce(a, 1).unwrap();
        assert_ne!(id_a2, id_a);
        assert_eq!(
            id_a2.0,
            r.candidate(&a, 0, 1),
            "deterministic next candidate"
        );
        assert_eq!(r.lookup(id_a, 1), Some(b));
        assert_eq!(r.lookup(id_a2, 1), Some(a));
        check(&r);
    }

    #[test]
    fn expiry_pops_only_expired() {
        let r = Registry::new(cfg(1000), 2, [2; 16]);
        for i in 0..10 {
            r.announce(addr(i), i).unwrap();
        }
        r.alive(addr(0), 9).unwrap();
        let removed: usize = (0..2).map(|s| r.expire_shard(s, 305)).sum();
        // 1..=5 were last seen at 1..=5, and 305 - 5 = 300 = timeout.
        assert_eq!(removed, 5);
        assert_eq!(r.stats().entries, 5);
        assert_eq!(r.alive(addr(3), 305), Err(Error::Expired));
        assert!(r.alive(addr(0), 305).is_ok());
        check(&r);
    }

    #[test]
    fn full_shard_evicts_stalest() {
        let r = Registry::new(cfg(3), 1, [3; 16]);
        for i in 0..3 {
            r.announce(addr(i), i).unwrap();
        }
        r.alive(addr(0), 10).unwrap();
        r.announce(addr(3), 11).unwrap();
        assert_eq!(r.alive(addr(1), 12), Err(Error::Expired), "stalest went");
        assert!(r.alive(addr(0), 12).is_ok());
        assert!(r.alive(addr(2), 12).is_ok());
        assert_eq!(r.stats().entries, 3);
        assert!(r.stats().bytes >= 3 * std::mem::size_of::<Node>() as u64);
        check(&r);
    }

    #[test]
    fn push_tokens_refill_at_rate() {
        let r = Registry::new(cfg(10), 1, [4; 16]);
        let a = addr(0);
        r.announce(a, 100).unwrap();
        for _ in 0..4 {
            assert!(r.take_push(a, 100).is_ok());
        }
        assert_eq!(r.take_push(a, 100), Err(Error::RateLimited));
        assert!(r.take_push(a, 101).is_ok());
        assert!(r.take_push(a, 101).is_ok());
        assert_eq!(r.take_push(a, 101), Err(Error::RateLimited));
        assert_eq!(r.take_push(addr(1), 101), Err(Error::Expired));
    }

    #[test]
    fn incomes_are_limited_per_requestee() {
        let r = Registry::new(cfg(10), 1, [5; 16]);
        let id = r.announce(addr(0), 100).unwrap();
        // push_rate 2: incomes at 8 a second, bursts of 16.
        for _ in 0..16 {
            assert_eq!(r.take_income(id, 100), Ok(addr(0)));
        }
        assert_eq!(r.take_income(id, 100), Err(Error::RateLimited));
        assert_eq!(r.take_income(id, 101), Ok(addr(0)));
        assert_eq!(r.take_income(ShareId(id.0 ^ 2), 101), Err(Error::UnknownId));
        assert_eq!(r.take_income(id, 400), Err(Error::UnknownId), "expired");
    }
}
