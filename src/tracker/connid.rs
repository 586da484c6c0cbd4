//! Stateless BEP 15 connection ids.
//!
//! An id is `issued_at (32 bits, tracker seconds) ‖ tag (32 bits)` where the tag
//! is a keyed hash, under a random per-process key, of the issue time and the
//! client's IP address. Checking one needs no table: recompute the tag for the
//! claimed issue time and source address, and check the age against the
//! configured lifetime. A forged id, another address's id or an expired id
//! fails, so a spoofed source never gets more than a connect reply (16 bytes for
//! 16 bytes sent): no reflection amplification.
//!
//! The key is not a cryptographic MAC key, but the tag is never revealed for any
//! address other than the asker's own, so forging one means guessing 32 bits per
//! packet.

use std::net::IpAddr;

/// Seconds by which two workers' loop-turn clocks may differ.
pub const CLOCK_SKEW: u32 = 2;

#[derive(Debug, Clone)]
pub struct ConnectionIds {
    key: ahash::RandomState,
    lifetime: u32,
}

impl ConnectionIds {
    /// A fresh random key; ids live for `lifetime` seconds.
    pub fn new(lifetime: u32) -> ConnectionIds {
        ConnectionIds {
            key: ahash::RandomState::new(),
            lifetime,
        }
    }

    fn tag(&self, issued_at: u32, ip: IpAddr) -> u32 {
        let h = match ip {
            IpAddr::V4(v4) => self.key.hash_one((issued_at, v4.to_bits())),
            IpAddr::V6(v6) => self.key.hash_one((issued_at, v6.to_bits())),
        };
        (h ^ (h >> 32)) as u32
    }

    /// The id to hand a client at `ip` at time `now`. `ip` must be canonical
    /// (IPv4-mapped IPv6 addresses turned into IPv4).
    pub fn issue(&self, now: u32, ip: IpAddr) -> u64 {
        (u64::from(now) << 32) | u64::from(self.tag(now, ip))
    }

    /// Whether `id` was issued to `ip` no more than `lifetime` seconds before `now`.
    /// An id up to [`CLOCK_SKEW`] seconds "from the future" is accepted too: each
    /// worker reads the clock once per loop turn, so another worker may have
    /// issued it a second after this worker's `now`.
    pub fn check(&self, id: u64, now: u32, ip: IpAddr) -> bool {
        let issued_at = (id >> 32) as u32;
        let age = now.wrapping_sub(issued_at);
        (age <= self.lifetime || age > u32::MAX - CLOCK_SKEW)
            && self.tag(issued_at, ip) == id as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_for_lifetime_for_the_same_ip_only() {
        let ids = ConnectionIds::new(120);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let id = ids.issue(1000, ip);
        assert!(ids.check(id, 1000, ip));
        assert!(ids.check(id, 1120, ip), "valid for the whole lifetime");
        assert!(!ids.check(id, 1121, ip), "expired");
        assert!(
            ids.check(id, 999, ip),
            "a worker a second behind accepts it"
        );
        assert!(!ids.check(id, 997, ip), "not from further in the future");
        assert!(!ids.check(id, 1000, other), "bound to the client IP");
        assert!(!ids.check(id ^ 1, 1000, ip), "tag is checked");
        assert!(
            !ids.check(id + (1 << 32), 1001, ip),
            "issue time is covered by the tag"
        );
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert!(ids.check(ids.issue(5, v6), 6, v6));
        // Another process (another key) does not accept our ids.
        assert!(!ConnectionIds::new(120).check(id, 1000, ip));
    }
}
