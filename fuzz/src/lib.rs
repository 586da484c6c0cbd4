//! Input decoding shared by the fuzz targets: how a few control bytes become a
//! clock and a source address, so that one input replays exactly.
//!
//! The tracker core is sans-IO, so a fuzz input can carry everything the net
//! layer would pass in: the time (`now`, tracker seconds) and the peer address.
//! A handful of hosts per family makes requests from one input collide on
//! connection ids and swarm entries, as real traffic does.

use shoal::tracker::{Tracker, TrackerConfig};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The tracker both core targets drive: 4 shards and small caps (4 hashes a
/// scrape, 16 peers in all) so that short inputs reach scrape truncation and a
/// full map.
pub fn small_tracker() -> Tracker {
    let config = TrackerConfig {
        max_scrape: 4,
        max_peers: 16,
        shards: 4,
        ..TrackerConfig::default()
    };
    Tracker::new(config)
}

/// Splits a big-endian `u32` off the front (zero-padded when short).
pub fn take_u32(data: &[u8]) -> (u32, &[u8]) {
    let mut b = [0u8; 4];
    let n = data.len().min(4);
    b[..n].copy_from_slice(&data[..n]);
    (u32::from_be_bytes(b), &data[n..])
}

/// A source address from a control byte: bits 0-1 pick the kind (IPv4,
/// IPv6, IPv4-mapped IPv6 — which the core must treat as IPv4 —, link-local
/// IPv6), bits 2-4 one of 8 hosts.
pub fn source(ctl: u8) -> SocketAddr {
    let host = ((ctl >> 2) & 7) + 1;
    let ip = match ctl & 3 {
        0 => IpAddr::V4(Ipv4Addr::new(10, 0, 0, host)),
        1 => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, host.into())),
        2 => IpAddr::V6(Ipv4Addr::new(10, 0, 0, host).to_ipv6_mapped()),
        _ => IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, host.into())),
    };
    SocketAddr::new(ip, 6881)
}

/// Seconds to move the clock on before a request, from bits 6-7 of a control
/// byte: none, one second, a connection-id lifetime (120 s by default) and
/// more than a peer timeout (2700 s by default).
pub fn advance(ctl: u8) -> u32 {
    [0, 1, 120, 3000][usize::from(ctl >> 6)]
}
