//! Read-only walks over the swarm for the management API: the top torrents
//! by peers, and one torrent with its peers.
//!
//! Guarantees: a walk takes one shard lock at a time and holds it only to copy
//! out a shard's (hash, counts) pairs (a few microseconds for a thousand
//! torrents), so an announce waits at most that long, never for the whole
//! walk; ranking happens after the lock is released. Nothing here is on the
//! per-packet path: it allocates freely, in proportion to what is asked for
//! (`offset + limit` entries, at most [`MAX_PEERS_SHOWN`] peers).

use super::peers::Stamp;
use super::torrent::PeerFamily;
use super::{Counts, InfoHash, Peer4, Peer6, Swarm};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::IpAddr;

/// Most peers listed for one torrent: the counts stay exact, the list stops.
pub const MAX_PEERS_SHOWN: usize = 1000;

/// One torrent of a ranking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TorrentSummary {
    pub info_hash: InfoHash,
    pub counts: Counts,
}

/// A ranking: a page of torrents and how many torrents there are in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranking {
    pub torrents: Vec<TorrentSummary>,
    pub total: u64,
}

/// One stored peer as an operator sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerView {
    pub ip: IpAddr,
    pub port: u16,
    pub seeder: bool,
    /// Seconds since its last announce.
    pub idle_secs: u32,
    /// Announced over HTTP (its peer id is kept); else over UDP.
    pub http: bool,
}

/// One torrent with (up to [`MAX_PEERS_SHOWN`] of) its peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorrentDetail {
    pub counts: Counts,
    /// Seeders first within each family, IPv4 before IPv6.
    pub peers: Vec<PeerView>,
}

/// Ranking key: more peers first, then the smaller hash (a stable order for
/// paging through torrents with equal counts).
type Key = (u32, Reverse<InfoHash>);

impl Swarm {
    /// The torrents with the most peers (seeders + leechers): entries
    /// `offset..offset + limit` of that ranking, and the number of torrents.
    pub fn top_torrents(&self, limit: usize, offset: usize) -> Ranking {
        let keep = offset.saturating_add(limit);
        // A min-heap of the best `keep` seen so far.
        let mut best: BinaryHeap<Reverse<(Key, [u32; 3])>> = BinaryHeap::new();
        let mut copied: Vec<(InfoHash, Counts)> = Vec::new();
        let mut total = 0u64;
        for shard in self.shards.iter() {
            copied.clear();
            {
                let s = shard.lock();
                total += s.torrents.len() as u64;
                if keep == 0 {
                    continue;
                }
                copied.extend(s.torrents.iter().map(|(ih, t)| (*ih, t.counts())));
            }
            for (ih, c) in &copied {
                let key = (c.seeders.saturating_add(c.leechers), Reverse(*ih));
                let item = Reverse((key, [c.seeders, c.leechers, c.completed]));
                if best.len() < keep {
                    best.push(item);
                } else if best.peek().is_some_and(|min| item < *min) {
                    // `item < min` in reverse order: `item` ranks higher.
                    best.pop();
                    best.push(item);
                }
            }
        }
        let mut ranked: Vec<_> = best.into_iter().map(|Reverse(x)| x).collect();
        ranked.sort_unstable_by_key(|x| Reverse(x.0));
        let torrents = ranked
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(
                |((_, Reverse(info_hash)), [seeders, leechers, completed])| TorrentSummary {
                    info_hash,
                    counts: Counts {
                        seeders,
                        leechers,
                        completed,
                    },
                },
            )
            .collect();
        Ranking { torrents, total }
    }

    /// One torrent's counts and peers at tracker time `now`; `None` if it is
    /// not stored.
    pub fn torrent_detail(&self, info_hash: &InfoHash, now: u32) -> Option<TorrentDetail> {
        let guard = self.shard(info_hash).lock();
        let torrent = guard.torrents.get(info_hash)?;
        let mut peers = Vec::new();
        let ids = &guard.peer_ids;
        push_peers::<Peer4>(&mut peers, torrent, ids, info_hash, now);
        push_peers::<Peer6>(&mut peers, torrent, ids, info_hash, now);
        Some(TorrentDetail {
            counts: torrent.counts(),
            peers,
        })
    }
}

fn push_peers<P: PeerFamily>(
    out: &mut Vec<PeerView>,
    torrent: &super::Torrent,
    ids: &super::shard::PeerIds,
    info_hash: &InfoHash,
    now: u32,
) {
    let (set, seeders) = torrent.peers::<P>();
    let room = MAX_PEERS_SHOWN.saturating_sub(out.len());
    for (i, p) in set.iter().enumerate().take(room) {
        let (ip, port) = P::socket_addr(&p.addr());
        // Signed 16-bit age, as the expiry reads it (a stamp a second
        // ahead of `now` is zero seconds old).
        let age = (now as Stamp).wrapping_sub(p.stamp()) as i16;
        out.push(PeerView {
            ip,
            port,
            seeder: i < seeders,
            idle_secs: age.max(0) as u32,
            http: ids.contains_key(&(*info_hash, ip, port)),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::swarm::{Announce, Role};
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn hash(n: u8) -> InfoHash {
        [n; 20]
    }

    fn announce4(s: &Swarm, ih: InfoHash, host: u8, role: Role, now: u32) {
        let req = Announce {
            info_hash: ih,
            addr: (Ipv4Addr::new(10, 0, 0, host), 6881),
            role,
            completed: false,
            now,
            want: 0,
            random: (1, 2),
            peer_id: None,
            emit_ids: false,
        };
        s.announce::<Peer4>(&req, |_, _| {});
    }

    #[test]
    fn ranks_by_peers_then_hash_and_pages() {
        let s = Swarm::new(16, 100);
        // Torrent n has n peers (n = 1..=9), plus two torrents of 3 peers.
        for n in 1..=9u8 {
            for h in 0..n {
                announce4(&s, hash(n), h, Role::Leecher, 0);
            }
        }
        for (ih, n) in [(hash(0x31), 3u8), (hash(0x21), 3)] {
            for h in 0..n {
                announce4(&s, ih, h, Role::Seeder, 0);
            }
        }
        let all = s.top_torrents(100, 0);
        assert_eq!(all.total, 11);
        let order: Vec<u8> = all.torrents.iter().map(|t| t.info_hash[0]).collect();
        assert_eq!(order, [9, 8, 7, 6, 5, 4, 3, 0x21, 0x31, 2, 1]);
        let page = s.top_torrents(3, 5);
        let order: Vec<u8> = page.torrents.iter().map(|t| t.info_hash[0]).collect();
        assert_eq!(order, [4, 3, 0x21]);
        assert_eq!(page.torrents[1].counts.leechers, 3);
        assert_eq!(page.torrents[2].counts.seeders, 3);
        assert!(s.top_torrents(10, 20).torrents.is_empty());
        let none = s.top_torrents(0, 0);
        assert!(none.torrents.is_empty());
        assert_eq!(none.total, 11);
    }

    #[test]
    fn detail_lists_peers_with_role_age_and_protocol() {
        let s = Swarm::new(4, 100);
        let ih = hash(7);
        announce4(&s, ih, 1, Role::Seeder, 10);
        announce4(&s, ih, 2, Role::Leecher, 40);
        let id = [b'x'; 20];
        let req = Announce {
            info_hash: ih,
            addr: (Ipv6Addr::LOCALHOST, 51413),
            role: Role::Leecher,
            completed: false,
            now: 45,
            want: 0,
            random: (1, 2),
            peer_id: Some(&id),
            emit_ids: false,
        };
        s.announce::<Peer6>(&req, |_, _| {});
        let d = s.torrent_detail(&ih, 50).unwrap();
        assert_eq!((d.counts.seeders, d.counts.leechers), (1, 2));
        assert_eq!(d.peers.len(), 3);
        let p1 = d.peers[0];
        assert_eq!(p1.ip, IpAddr::from(Ipv4Addr::new(10, 0, 0, 1)));
        assert!(p1.seeder && !p1.http);
        assert_eq!(p1.idle_secs, 40);
        assert_eq!((d.peers[1].seeder, d.peers[1].idle_secs), (false, 10));
        let p6 = d.peers[2];
        assert_eq!((p6.ip, p6.port), (IpAddr::from(Ipv6Addr::LOCALHOST), 51413));
        assert!(p6.http && !p6.seeder);
        assert_eq!(p6.idle_secs, 5);
        assert_eq!(s.torrent_detail(&hash(8), 50), None);
    }
}
