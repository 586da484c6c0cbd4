//! Stateless BEP 15 connection ids.
//!
//! An id is `issued_at (32 bits, tracker seconds) ‖ tag (32 bits)` where the tag
//! is SipHash-2-4, under a random 128-bit key, of the issue time and the
//! client's IP address. Checking one needs no table: recompute the tag for the
//! claimed issue time and source address, and check the age against the
//! configured lifetime. A forged id, another address's id or an expired id
//! fails, so a spoofed source never gets more than a connect reply (16 bytes for
//! 16 bytes sent): no reflection amplification.
//!
//! SipHash is a PRF made to be keyed (unlike ahash, which documents itself as
//! no MAC), so seeing the tags of one's own address tells nothing about another
//! address's tags: forging one means guessing 32 bits per packet. The key is
//! explicit ([`ConnectionIds::with_key`], [`ConnectionIds::key`]) so a warm
//! restart can keep the ids it handed out valid. It is never logged (the
//! `Debug` impl hides it).

use siphasher::sip::SipHasher24;
use std::hash::Hasher as _;
use std::net::IpAddr;

/// Seconds by which two workers' loop-turn clocks may differ.
pub const CLOCK_SKEW: u32 = 2;

/// Issues and checks connection ids under one key.
#[derive(Clone)]
pub struct ConnectionIds {
    key: [u8; 16],
    lifetime: u32,
    /// Added to the tracker clock before an issue time is stamped or checked:
    /// 0 counts from start; a warm restart sets the Unix time at tracker second
    /// 0, so ids stamped by the process before it read the same after it.
    epoch: u32,
}

impl std::fmt::Debug for ConnectionIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionIds")
            .field("key", &"<secret>")
            .field("lifetime", &self.lifetime)
            .field("epoch", &self.epoch)
            .finish()
    }
}

impl ConnectionIds {
    /// A fresh key from the OS; ids live for `lifetime` seconds.
    pub fn new(lifetime: u32) -> ConnectionIds {
        ConnectionIds::with_key(random_key(), lifetime)
    }

    /// Ids under a given key (e.g. one saved by [`ConnectionIds::key`] before a
    /// restart): ids issued under the same key stay valid.
    pub fn with_key(key: [u8; 16], lifetime: u32) -> ConnectionIds {
        ConnectionIds {
            key,
            lifetime,
            epoch: 0,
        }
    }

    /// The same ids with issue times counted from `epoch` (e.g. the Unix time
    /// at tracker second 0, so that the count goes on across restarts).
    pub fn with_epoch(mut self, epoch: u32) -> ConnectionIds {
        self.epoch = epoch;
        self
    }

    /// The key, to be saved across a warm restart. A secret: do not log it.
    pub fn key(&self) -> [u8; 16] {
        self.key
    }

    fn tag(&self, issued_at: u32, ip: IpAddr) -> u32 {
        let mut h = SipHasher24::new_with_key(&self.key);
        // One fixed-width write per family: the length of the input is implied
        // by the family, and an IPv4 address never collides with an IPv6 one
        // because SipHash includes the message length.
        match ip {
            IpAddr::V4(v4) => h.write_u64(u64::from(issued_at) << 32 | u64::from(v4.to_bits())),
            IpAddr::V6(v6) => {
                h.write_u32(issued_at);
                h.write_u128(v6.to_bits());
            }
        }
        let h = h.finish();
        (h ^ (h >> 32)) as u32
    }

    /// The id to hand a client at `ip` at time `now`. `ip` must be canonical
    /// (IPv4-mapped IPv6 addresses turned into IPv4).
    pub fn issue(&self, now: u32, ip: IpAddr) -> u64 {
        let now = now.wrapping_add(self.epoch);
        (u64::from(now) << 32) | u64::from(self.tag(now, ip))
    }

    /// Whether `id` was issued to `ip` no more than `lifetime` seconds before `now`.
    /// An id up to [`CLOCK_SKEW`] seconds "from the future" is accepted too: each
    /// worker reads the clock once per loop turn, so another worker may have
    /// issued it a second after this worker's `now`.
    pub fn check(&self, id: u64, now: u32, ip: IpAddr) -> bool {
        let now = now.wrapping_add(self.epoch);
        let issued_at = (id >> 32) as u32;
        let age = now.wrapping_sub(issued_at);
        // One word compared with one instruction: no early exit on a prefix.
        (age <= self.lifetime || age > u32::MAX - CLOCK_SKEW)
            && (self.tag(issued_at, ip) ^ id as u32) == 0
    }
}

/// 16 bytes from the OS (`/dev/urandom`); if that cannot be read, bytes derived
/// from std's per-process random hash keys (also OS-seeded, but less direct).
fn random_key() -> [u8; 16] {
    use std::io::Read as _;
    let mut key = [0u8; 16];
    match std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut key)) {
        Ok(()) => key,
        Err(e) => {
            log::warn!(
                "connection-id key: cannot read /dev/urandom ({e}); using std's RandomState"
            );
            use std::hash::BuildHasher as _;
            let s = std::collections::hash_map::RandomState::new();
            key[..8].copy_from_slice(&s.hash_one(0u8).to_le_bytes());
            key[8..].copy_from_slice(&s.hash_one(1u8).to_le_bytes());
            key
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn valid_for_lifetime_for_the_same_ip_only() {
        let ids = ConnectionIds::new(120);
        let ip4 = ip("192.0.2.1");
        let id = ids.issue(1000, ip4);
        assert!(ids.check(id, 1000, ip4));
        assert!(ids.check(id, 1120, ip4), "valid for the whole lifetime");
        assert!(!ids.check(id, 1121, ip4), "expired");
        assert!(
            ids.check(id, 999, ip4),
            "a worker a second behind accepts it"
        );
        assert!(!ids.check(id, 997, ip4), "not from further in the future");
        assert!(
            !ids.check(id, 1000, ip("192.0.2.2")),
            "bound to the client IP"
        );
        assert!(
            !ids.check(id, 1000, ip("::ffff:192.0.2.1")),
            "an IPv6 address is another address"
        );
        let v6 = ip("2001:db8::1");
        assert!(ids.check(ids.issue(5, v6), 6, v6));
        assert!(!ids.check(ids.issue(5, v6), 6, ip("2001:db8::2")));
    }

    #[test]
    fn forged_tags_fail() {
        let ids = ConnectionIds::new(120);
        let ip4 = ip("192.0.2.1");
        let id = ids.issue(1000, ip4);
        for bit in 0..32 {
            assert!(
                !ids.check(id ^ (1 << bit), 1000, ip4),
                "tag bit {bit} is checked"
            );
        }
        assert!(
            !ids.check(id + (1 << 32), 1001, ip4),
            "issue time is covered by the tag"
        );
    }

    #[test]
    fn key_round_trip() {
        let ids = ConnectionIds::new(120);
        let ip4 = ip("198.51.100.7");
        let id = ids.issue(50, ip4);
        // Same key (a warm restart): the old ids stay valid.
        let restored = ConnectionIds::with_key(ids.key(), 120);
        assert!(restored.check(id, 60, ip4));
        assert_eq!(restored.issue(50, ip4), id);
        // Another key (another process): they do not.
        let other = ConnectionIds::new(120);
        assert_ne!(other.key(), ids.key(), "keys are random");
        assert!(!other.check(id, 60, ip4));
        assert!(!ConnectionIds::with_key([0; 16], 120).check(id, 60, ip4));
        assert!(
            !format!("{ids:?}").contains(&format!("{:?}", ids.key())),
            "Debug hides the key"
        );
    }

    #[test]
    fn an_epoch_carries_ids_across_a_restart() {
        // Process A started at Unix second 1_000_000 and issued an id at its
        // tracker second 500; process B (same key) started at 1_000_530.
        let a = ConnectionIds::new(120).with_epoch(1_000_000);
        let b = ConnectionIds::with_key(a.key(), 120).with_epoch(1_000_530);
        let ip4 = ip("203.0.113.9");
        let id = a.issue(500, ip4);
        assert!(b.check(id, 0, ip4), "30 s old after the restart");
        assert!(b.check(id, 90, ip4), "valid for the rest of its lifetime");
        assert!(!b.check(id, 91, ip4), "and no longer");
        // Without the epoch, B would read it as issued in its future.
        assert!(!ConnectionIds::with_key(a.key(), 120).check(id, 0, ip4));
    }
}
