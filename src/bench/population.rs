//! The simulated population: torrents with skewed popularity and the peers
//! that announce to them, generated once before the clock starts.
//!
//! Torrent popularity follows Zipf's law with exponent 1 (the usual fit for
//! torrent swarm sizes): a peer's torrent rank is `floor((T+1)^u) - 1` for a
//! uniform `u`, so rank `r` gets a share `ln((r+2)/(r+1)) / ln(T+1) ≈ 1/((r+1) ln T)`.
//! With 1 M torrents the largest swarm holds about 5 % of the peers and most
//! torrents have none or one.
//!
//! Info hashes and peer ids are derived from indices by a keyed mix (no
//! 20-byte tables), and a peer is 8 bytes, so memory is `8 * peers` bytes per
//! run, whatever the number of torrents.

use fastrand::Rng;

/// One simulated peer: 8 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Torrent index (0 = most popular).
    pub torrent: u32,
    /// The port it announces.
    pub port: u16,
    /// [`SEEDER`] | [`STARTED`].
    pub flags: u8,
}

/// The peer has the whole torrent (announces `left` = 0).
pub const SEEDER: u8 = 1;
/// The peer has announced `started` and not `stopped` since.
pub const STARTED: u8 = 2;

/// A Zipf(1)-distributed torrent index in `0..torrents`.
pub fn zipf_torrent(rng: &mut Rng, torrents: u32) -> u32 {
    let n = f64::from(torrents) + 1.0;
    let rank = (n.powf(rng.f64()) - 1.0) as u32;
    rank.min(torrents.saturating_sub(1))
}

/// The peers one worker drives: `count` peers for `sockets` sockets, peer
/// `i` belonging to socket `i % sockets`. Ports are distinct per socket (the
/// socket's address is the peer's IP) until a socket has more than 64 512 peers.
pub fn generate(
    rng: &mut Rng,
    count: usize,
    sockets: usize,
    torrents: u32,
    seeder_ratio: f64,
) -> Vec<Peer> {
    (0..count)
        .map(|i| Peer {
            torrent: zipf_torrent(rng, torrents),
            port: 1024 + ((i / sockets.max(1)) % 64_512) as u16,
            flags: if rng.f64() < seeder_ratio { SEEDER } else { 0 },
        })
        .collect()
}

/// SplitMix64's finaliser: a bijective, well-mixing `u64 → u64`.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The info hash of torrent `index` in the population keyed by `seed`.
#[inline]
pub fn info_hash(seed: u64, index: u32, out: &mut [u8; 20]) {
    let base = mix64(seed ^ 0x5348_4f41_4c00_0000) ^ u64::from(index);
    out[..8].copy_from_slice(&mix64(base).to_be_bytes());
    out[8..16].copy_from_slice(&mix64(base ^ 0xaaaa_aaaa_aaaa_aaaa).to_be_bytes());
    out[16..].copy_from_slice(&mix64(base ^ 0x5555_5555_5555_5555).to_be_bytes()[..4]);
}

/// The peer id of global peer `index`: the client prefix and 12 derived bytes.
#[inline]
pub fn peer_id(seed: u64, index: u64, out: &mut [u8; 20]) {
    out[..8].copy_from_slice(crate::client::PEER_ID_PREFIX);
    let h = mix64(seed ^ mix64(index));
    out[8..16].copy_from_slice(&h.to_be_bytes());
    out[16..].copy_from_slice(&mix64(h).to_be_bytes()[..4]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_is_skewed_and_in_range() {
        let mut rng = Rng::with_seed(7);
        let torrents = 10_000;
        let mut counts = vec![0u32; torrents as usize];
        for _ in 0..100_000 {
            counts[zipf_torrent(&mut rng, torrents) as usize] += 1;
        }
        // Rank 0 expects ln 2 / ln 10001 ≈ 7.5 % of draws.
        assert!((6_500..8_500).contains(&counts[0]), "{}", counts[0]);
        assert!(counts[0] > counts[10] && counts[10] > counts[1000]);
        assert_eq!(zipf_torrent(&mut rng, 1), 0);
    }

    #[test]
    fn population_shape() {
        let mut rng = Rng::with_seed(1);
        let peers = generate(&mut rng, 10_000, 4, 100, 0.75);
        assert_eq!(peers.len(), 10_000);
        let seeders = peers.iter().filter(|p| p.flags & SEEDER != 0).count();
        assert!((7_200..7_800).contains(&seeders), "{seeders}");
        // Peers of one socket have distinct ports.
        let mut ports: Vec<u16> = peers.iter().step_by(4).map(|p| p.port).collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 2_500);
        let (mut a, mut b) = ([0; 20], [0; 20]);
        info_hash(1, 0, &mut a);
        info_hash(1, 1, &mut b);
        assert_ne!(a, b);
        info_hash(2, 0, &mut b);
        assert_ne!(a, b);
        peer_id(1, 5, &mut a);
        assert_eq!(&a[..8], crate::client::PEER_ID_PREFIX);
    }
}
