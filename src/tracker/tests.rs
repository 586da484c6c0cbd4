//! Byte-level tests of the sans-IO core: bytes in, bytes out, time as an argument.

use super::*;
use crate::wire::udp::{self, AnnounceRequest, Response};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

fn tracker() -> Tracker {
    tracker_with(TrackerConfig::default())
}

fn tracker_with(config: TrackerConfig) -> Tracker {
    Tracker::new(TrackerConfig {
        shards: 16,
        ..config
    })
}

fn worker() -> Worker {
    Worker::new()
}

fn v4(last: u8, port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, last], port))
}

fn v6(last: u16, port: u16) -> SocketAddr {
    SocketAddr::from((Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last), port))
}

struct Client<'t> {
    t: &'t Tracker,
    w: Worker,
    out: [u8; 2048],
    /// Every outcome, in order.
    outcomes: Vec<Outcome>,
    /// The event of every announce taken, in order.
    events: Vec<PeerEvent>,
}

impl<'t> Client<'t> {
    fn new(t: &'t Tracker) -> Self {
        Client {
            t,
            w: worker(),
            out: [0; 2048],
            outcomes: Vec::new(),
            events: Vec::new(),
        }
    }

    fn send(&mut self, now: u32, src: SocketAddr, req: &[u8]) -> Option<Vec<u8>> {
        let h = self
            .t
            .handle_udp(&mut self.w, Now::from_secs(now), src, req, &mut self.out);
        self.outcomes.push(h.outcome);
        if h.outcome == Outcome::Announced {
            self.events.extend(self.w.event().copied());
        }
        let n = h.reply_len()?;
        Some(self.out[..n].to_vec())
    }

    /// How many requests were refused or dropped for `why`.
    fn refused(&self, why: Refusal) -> usize {
        self.outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Refused(_, r) | Outcome::Dropped(r) if *r == why))
            .count()
    }

    fn connect(&mut self, now: u32, src: SocketAddr) -> u64 {
        let mut req = [0u8; 16];
        udp::write_connect_request(&mut req, 77).unwrap();
        let resp = self.send(now, src, &req).expect("connect reply");
        match udp::parse_response(&resp) {
            Ok(Response::Connect {
                transaction_id: 77,
                connection_id,
            }) => connection_id,
            other => panic!("bad connect reply {other:?}"),
        }
    }
}

fn announce_bytes(conn: u64, ih: u8, event: Event, left: u64, num_want: i32, port: u16) -> Vec<u8> {
    let req = AnnounceRequest {
        event,
        left,
        num_want,
        ..AnnounceRequest::new(conn, 0x1234, [ih; 20], [0x2d; 20], port)
    };
    let mut buf = [0u8; 256];
    let n = udp::write_announce_request(&mut buf, &req, b"").unwrap();
    buf[..n].to_vec()
}

struct Announce {
    interval: u32,
    seeders: u32,
    leechers: u32,
    peers: Vec<u8>,
}

fn parse_announce(resp: &[u8]) -> Announce {
    match udp::parse_response(resp) {
        Ok(Response::Announce {
            transaction_id: 0x1234,
            interval,
            leechers,
            seeders,
            peers,
        }) => Announce {
            interval,
            seeders,
            leechers,
            peers: peers.to_vec(),
        },
        other => panic!("not an announce reply: {other:?}"),
    }
}

#[test]
fn connect_fixture() {
    let t = tracker();
    let mut c = Client::new(&t);
    let req = [
        0, 0, 4, 0x17, 0x27, 0x10, 0x19, 0x80, 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef,
    ];
    let resp = c.send(100, v4(1, 1), &req).unwrap();
    assert_eq!(resp.len(), 16);
    assert_eq!(&resp[..8], &[0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef]);
    let id = u64::from_be_bytes(resp[8..16].try_into().unwrap());
    assert!(t.conn_ids.check(id, 100, "10.0.0.1".parse().unwrap()));
    assert_eq!(c.outcomes, [Outcome::Connected]);
}

#[test]
fn garbage_is_silent() {
    let t = tracker();
    let mut c = Client::new(&t);
    // Too short, wrong magic, unknown action with a forged id, error action.
    assert_eq!(c.send(0, v4(1, 1), &[0; 15]), None);
    let mut bad_magic = [0u8; 16];
    udp::write_connect_request(&mut bad_magic, 1).unwrap();
    bad_magic[7] ^= 1;
    assert_eq!(c.send(0, v4(1, 1), &bad_magic), None);
    let mut unknown = [0u8; 16];
    unknown[11] = 9;
    assert_eq!(c.send(0, v4(1, 1), &unknown), None);
    assert_eq!(
        c.outcomes,
        [
            Outcome::Dropped(Refusal::Truncated),
            Outcome::Dropped(Refusal::BadProtocolId),
            Outcome::Dropped(Refusal::UnknownAction)
        ]
    );
}

#[test]
fn bad_connection_ids_get_nothing() {
    let t = tracker();
    let mut c = Client::new(&t);
    let id = c.connect(1000, v4(1, 1));
    let req = announce_bytes(id, 1, Event::Started, 10, -1, 6881);
    // Forged, another IP's, expired.
    assert_eq!(
        c.send(
            1000,
            v4(1, 1),
            &announce_bytes(id ^ 0xff, 1, Event::Started, 10, -1, 6881)
        ),
        None
    );
    assert_eq!(c.send(1000, v4(2, 1), &req), None);
    assert_eq!(c.send(1000 + 121, v4(1, 1), &req), None);
    let mut scrape = [0u8; 36];
    udp::write_scrape_request(&mut scrape, id, 5, &[[1; 20]]).unwrap();
    assert_eq!(c.send(1000, v4(2, 1), &scrape), None);
    assert_eq!(c.refused(Refusal::BadConnectionId), 4);
    // Still valid at the end of the lifetime, from the same address on another port.
    assert!(c.send(1000 + 120, v4(1, 9), &req).is_some());
    // An unknown action with a valid id is answerable: BEP 15 error.
    let mut unknown = [0u8; 16];
    unknown[..8].copy_from_slice(&id.to_be_bytes());
    unknown[11] = 7;
    unknown[15] = 42;
    let resp = c.send(1000, v4(1, 1), &unknown).unwrap();
    assert_eq!(
        udp::parse_response(&resp),
        Ok(Response::Error {
            transaction_id: 42,
            message: b"unknown action"
        })
    );
}

#[test]
fn no_reply_to_an_unauthenticated_packet_is_larger_than_it() {
    let t = tracker();
    let mut c = Client::new(&t);
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for len in 0..=256usize {
        for action in 0..5u32 {
            let mut buf = vec![0u8; len];
            for b in buf.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            if len >= 12 {
                buf[8..12].copy_from_slice(&action.to_be_bytes());
            }
            if len >= 8 && action == 0 {
                buf[..8].copy_from_slice(&udp::PROTOCOL_ID.to_be_bytes());
            }
            if let Some(resp) = c.send(0, v4(1, 1), &buf) {
                assert!(
                    resp.len() <= len,
                    "{len}-byte action {action} got {} bytes",
                    resp.len()
                );
            }
        }
    }
}

#[test]
fn announce_fixture_and_counts() {
    // No jitter: the fixture's interval is exactly --interval.
    let t = tracker_with(TrackerConfig {
        interval_jitter: 0,
        ..TrackerConfig::default()
    });
    let mut c = Client::new(&t);
    let id1 = c.connect(0, v4(1, 1));
    let id2 = c.connect(0, v4(2, 1));
    let r = parse_announce(
        &c.send(
            0,
            v4(1, 1),
            &announce_bytes(id1, 1, Event::Started, 100, -1, 6881),
        )
        .unwrap(),
    );
    assert_eq!((r.interval, r.seeders, r.leechers), (1800, 0, 1));
    assert!(r.peers.is_empty(), "never sent itself");
    let resp = c
        .send(
            0,
            v4(2, 1),
            &announce_bytes(id2, 1, Event::Started, 100, -1, 7000),
        )
        .unwrap();
    // Exact bytes: action 1, tx, interval 1800, leechers 2, seeders 0, peer 10.0.0.1:6881.
    assert_eq!(
        resp,
        vec![
            0, 0, 0, 1, 0, 0, 0x12, 0x34, 0, 0, 0x07, 0x08, 0, 0, 0, 2, 0, 0, 0, 0, 10, 0, 0, 1,
            0x1a, 0xe1
        ]
    );
    // Peer 1 completes: seeder, counted once, and gets the leecher (peer 2) only.
    let r = parse_announce(
        &c.send(
            1,
            v4(1, 1),
            &announce_bytes(id1, 1, Event::Completed, 0, -1, 6881),
        )
        .unwrap(),
    );
    assert_eq!((r.seeders, r.leechers), (1, 1));
    assert_eq!(r.peers, vec![10, 0, 0, 2, 0x1b, 0x58]);
    c.send(
        2,
        v4(1, 1),
        &announce_bytes(id1, 1, Event::Completed, 0, -1, 6881),
    )
    .unwrap();
    assert_eq!(t.swarm().scrape(&[1; 20]).completed, 1);
    // Event 4 (libtorrent's "paused") is a plain announce.
    let mut paused = announce_bytes(id2, 1, Event::None, 100, -1, 7000);
    paused[83] = 4;
    let r = parse_announce(&c.send(3, v4(2, 1), &paused).unwrap());
    assert_eq!((r.seeders, r.leechers), (1, 1));
    // Stopped removes the peer and gets no peers even when asking for them.
    let r = parse_announce(
        &c.send(
            4,
            v4(2, 1),
            &announce_bytes(id2, 1, Event::Stopped, 100, 50, 7000),
        )
        .unwrap(),
    );
    assert_eq!((r.seeders, r.leechers, r.peers.len()), (1, 0, 0));
}

#[test]
fn ip_field_is_ignored_and_bep41_options_are_accepted() {
    let t = tracker();
    let mut c = Client::new(&t);
    let id = c.connect(0, v4(1, 1));
    let mut req = announce_bytes(id, 3, Event::Started, 1, -1, 6881);
    req[84..88].copy_from_slice(&[192, 0, 2, 99]);
    // libtorrent's URL data, then a malformed option: the announce still works.
    req.extend_from_slice(&[2, 9]);
    req.extend_from_slice(b"/announce");
    req.extend_from_slice(&[2, 200, b'x']);
    assert!(c.send(0, v4(1, 1), &req).is_some());
    let id2 = c.connect(0, v4(2, 1));
    let r = parse_announce(
        &c.send(
            0,
            v4(2, 1),
            &announce_bytes(id2, 3, Event::Started, 1, -1, 1),
        )
        .unwrap(),
    );
    assert_eq!(
        r.peers,
        vec![10, 0, 0, 1, 0x1a, 0xe1],
        "the source address, not the ip field"
    );
}

#[test]
fn port_zero_gets_an_error() {
    let t = tracker();
    let mut c = Client::new(&t);
    let id = c.connect(0, v4(1, 1));
    let resp = c
        .send(
            0,
            v4(1, 1),
            &announce_bytes(id, 3, Event::Started, 1, -1, 0),
        )
        .unwrap();
    assert!(matches!(
        udp::parse_response(&resp),
        Ok(Response::Error {
            transaction_id: 0x1234,
            ..
        })
    ));
    assert_eq!(t.swarm().scrape(&[3; 20]).leechers, 0);
}

#[test]
fn num_want_default_zero_cap_and_datagram_limit() {
    let cfg = TrackerConfig {
        default_numwant: 10,
        max_numwant: 400,
        ..TrackerConfig::default()
    };
    let t = Tracker::new(TrackerConfig { shards: 4, ..cfg });
    let mut c = Client::new(&t);
    for i in 0..300u16 {
        let src = SocketAddr::from((Ipv4Addr::from(0x0a01_0000 + u32::from(i)), 1));
        let id = c.connect(0, src);
        c.send(
            0,
            src,
            &announce_bytes(id, 9, Event::Started, 1, 0, 1000 + i),
        )
        .unwrap();
    }
    let src = v4(250, 1);
    let id = c.connect(0, src);
    let peers = |c: &mut Client, nw: i32| {
        parse_announce(
            &c.send(0, src, &announce_bytes(id, 9, Event::None, 1, nw, 1))
                .unwrap(),
        )
        .peers
        .len()
    };
    assert_eq!(peers(&mut c, -1), 10 * 6, "default");
    assert_eq!(peers(&mut c, 0), 0, "none");
    assert_eq!(peers(&mut c, 5), 5 * 6);
    assert_eq!(
        peers(&mut c, 1000),
        MAX_PEERS_V4 * 6,
        "one unfragmented datagram"
    );
    let resp = c
        .send(0, src, &announce_bytes(id, 9, Event::None, 1, 1000, 1))
        .unwrap();
    assert!(resp.len() <= MAX_DATAGRAM_V4);

    // IPv6: 18-byte peers, capped at the IPv6 minimum-MTU datagram.
    for i in 0..100u16 {
        let src = v6(i + 1, 1);
        let id = c.connect(0, src);
        c.send(
            0,
            src,
            &announce_bytes(id, 9, Event::Started, 1, 0, 2000 + i),
        )
        .unwrap();
    }
    let src6 = v6(999, 1);
    let id6 = c.connect(0, src6);
    let resp = c
        .send(0, src6, &announce_bytes(id6, 9, Event::None, 1, 1000, 1))
        .unwrap();
    let r = parse_announce(&resp);
    assert_eq!(r.peers.len(), MAX_PEERS_V6 * 18);
    assert!(resp.len() <= MAX_DATAGRAM_V6);
    assert_eq!(r.peers[..2], [0x20, 0x01], "only IPv6 peers over IPv6");
    // Counts cover both families.
    assert_eq!(r.leechers, 301 + 101);
}

#[test]
fn ipv4_mapped_source_is_ipv4() {
    let t = tracker();
    let mut c = Client::new(&t);
    let id = c.connect(0, v4(1, 1));
    c.send(
        0,
        v4(1, 1),
        &announce_bytes(id, 4, Event::Started, 1, -1, 6881),
    )
    .unwrap();
    let mapped = SocketAddr::from((Ipv4Addr::new(10, 0, 0, 2).to_ipv6_mapped(), 5));
    let idm = c.connect(0, mapped);
    // The id is bound to the canonical address: usable over plain IPv4 too.
    assert!(t.conn_ids.check(idm, 0, "10.0.0.2".parse().unwrap()));
    let r = parse_announce(
        &c.send(
            0,
            mapped,
            &announce_bytes(idm, 4, Event::Started, 1, -1, 7000),
        )
        .unwrap(),
    );
    assert_eq!(r.peers, vec![10, 0, 0, 1, 0x1a, 0xe1], "6-byte IPv4 peers");
    // The peer the cluster is told about is the canonical IPv4 address.
    let announced: Vec<SocketAddr> = c.events.iter().map(|ev| ev.addr).collect();
    assert_eq!(announced.len(), 2);
    assert!(announced.iter().all(SocketAddr::is_ipv4), "{announced:?}");
}

#[test]
fn scrape_in_order_with_duplicates_unknown_zero_and_limit() {
    let cfg = TrackerConfig {
        max_scrape: 3,
        ..TrackerConfig::default()
    };
    let t = Tracker::new(TrackerConfig { shards: 4, ..cfg });
    let mut c = Client::new(&t);
    let id = c.connect(0, v4(1, 1));
    c.send(
        0,
        v4(1, 1),
        &announce_bytes(id, 1, Event::Started, 0, -1, 1),
    )
    .unwrap();
    c.send(
        0,
        v4(1, 1),
        &announce_bytes(id, 2, Event::Started, 5, -1, 1),
    )
    .unwrap();
    let mut req = [0u8; 16 + 20 * 4];
    let n =
        udp::write_scrape_request(&mut req, id, 5, &[[2; 20], [9; 20], [2; 20], [1; 20]]).unwrap();
    let resp = c.send(0, v4(1, 1), &req[..n]).unwrap();
    assert_eq!(
        resp,
        vec![
            0, 0, 0, 2, 0, 0, 0, 5, // header
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, // [2]: 0 seeders, 0 completed, 1 leecher
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // [9]: unknown
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, // [2] again
        ],
        "first max_scrape hashes, request order, duplicates repeated"
    );
    // No hashes: an error, not an empty scrape.
    let resp = c.send(0, v4(1, 1), &req[..16]).unwrap();
    assert!(matches!(
        udp::parse_response(&resp),
        Ok(Response::Error {
            transaction_id: 5,
            ..
        })
    ));
}

#[test]
fn truncated_announce_with_valid_id_gets_error() {
    let t = tracker();
    let mut c = Client::new(&t);
    let id = c.connect(0, v4(1, 1));
    let req = announce_bytes(id, 1, Event::Started, 1, -1, 1);
    let resp = c.send(0, v4(1, 1), &req[..60]).unwrap();
    assert_eq!(
        udp::parse_response(&resp),
        Ok(Response::Error {
            transaction_id: 0x1234,
            message: b"truncated request"
        })
    );
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn random_datagrams_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), v6src in any::<bool>()) {
            let t = tracker();
            let mut w = worker();
            let mut out = [0u8; 1500];
            let src = if v6src { v6(1, 1) } else { v4(1, 1) };
            let now = Now::from_secs(0);
            let h = t.handle_udp(&mut w, now, src, &bytes, &mut out);
            // Only a connect is answered without a valid connection id.
            if h.reply > 0 {
                prop_assert!(matches!(h.outcome, Outcome::Connected | Outcome::Refused(None, _)));
            }
            // With a valid connection id spliced in, the full request paths run too.
            if bytes.len() >= 16 {
                let mut b = bytes.clone();
                b[..8].copy_from_slice(&t.connection_id(now, src.ip()).to_be_bytes());
                if let Some(n) = t.handle_udp(&mut w, now, src, &b, &mut out).reply_len() {
                    prop_assert!(udp::parse_response(&out[..n]).is_ok());
                }
            }
        }
    }
}

/// An allow list of `[1; 20]` with one key, `K`, that expires at Unix second 1000.
fn with_policy(t: &Tracker, unix_at_zero: u64) {
    use crate::access::{AccessList, Key, KeySet, Mode, Policy};
    let list = AccessList::from_hashes([[1; 20]]);
    let keys = KeySet::from_entries([(Key(*K), Some(1000))]);
    let policy = Policy::new(
        Some((Mode::Allow, Arc::new(list))),
        Some(Arc::new(keys)),
        false,
    );
    t.set_access(PolicyHandle::new(policy), unix_at_zero)
        .unwrap();
}

const K: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz012345";

fn keyed_announce(conn: u64, ih: u8, url_data: &[u8]) -> Vec<u8> {
    let req = AnnounceRequest {
        left: 0,
        ..AnnounceRequest::new(conn, 0x1234, [ih; 20], [0x2d; 20], 6881)
    };
    let mut buf = [0u8; 256];
    let n = udp::write_announce_request(&mut buf, &req, url_data).unwrap();
    buf[..n].to_vec()
}

fn error_frame(tx: u32, msg: &str) -> Vec<u8> {
    let mut v = vec![0, 0, 0, 3];
    v.extend_from_slice(&tx.to_be_bytes());
    v.extend_from_slice(msg.as_bytes());
    v
}

#[test]
fn test_policy_refusals_are_error_frames_and_store_nothing() {
    let t = tracker();
    with_policy(&t, 0);
    let mut c = Client::new(&t);
    let src = v4(1, 6881);
    let conn = c.connect(10, src);
    let key = [&b"/announce/"[..], K].concat();
    let cases: [(u8, &[u8], Option<&str>); 5] = [
        (1, &key, None),
        (2, &key, Some("torrent not allowed")),
        (1, b"/announce", Some("missing key")),
        (
            1,
            b"/announce/abcdefghijklmnopqrstuvwxyz01234X",
            Some("unknown key"),
        ),
        (2, b"", Some("missing key")),
    ];
    for (ih, data, refusal) in cases {
        let resp = c.send(10, src, &keyed_announce(conn, ih, data)).unwrap();
        match refusal {
            Some(msg) => assert_eq!(resp, error_frame(0x1234, msg), "{msg}"),
            None => assert_eq!(parse_announce(&resp).seeders, 1),
        }
    }
    assert_eq!(
        t.swarm().totals().torrents,
        1,
        "refused hashes are not stored"
    );
    assert_eq!(c.refused(Refusal::TorrentNotAllowed), 1);
    assert_eq!(c.refused(Refusal::MissingKey), 2);
    assert_eq!(c.refused(Refusal::UnknownKey), 1);
    // A forged connection id gets nothing, refusal or not.
    assert_eq!(c.send(10, src, &keyed_announce(conn ^ 1, 2, b"")), None);
}

#[test]
fn test_key_expiry_follows_the_unix_clock() {
    let t = tracker();
    // Tracker second 0 is Unix second 990: the key expires at tracker second 10.
    with_policy(&t, 990);
    let mut c = Client::new(&t);
    let src = v4(1, 6881);
    let key = [&b"/announce/"[..], K].concat();
    let conn = c.connect(9, src);
    let ok = c.send(9, src, &keyed_announce(conn, 1, &key)).unwrap();
    assert_eq!(parse_announce(&ok).seeders, 1);
    let refused = c.send(10, src, &keyed_announce(conn, 1, &key)).unwrap();
    assert_eq!(refused, error_frame(0x1234, "unknown key"));
}

#[test]
fn test_scrape_of_a_hash_not_allowed_is_zeros_and_it_is_swept_away() {
    use crate::access::{AccessList, Mode, Policy};
    let t = tracker();
    let both = AccessList::from_hashes([[1; 20], [2; 20]]);
    let handle = PolicyHandle::new(Policy::new(
        Some((Mode::Allow, Arc::new(both))),
        None,
        false,
    ));
    t.set_access(handle.clone(), 0).unwrap();
    let mut c = Client::new(&t);
    let src = v4(1, 6881);
    let conn = c.connect(10, src);
    for ih in [1, 2] {
        c.send(
            10,
            src,
            &announce_bytes(conn, ih, Event::Started, 0, -1, 6881),
        );
    }
    // [2; 20] leaves the list.
    let one = AccessList::from_hashes([[1; 20]]);
    handle.store(Policy::new(Some((Mode::Allow, Arc::new(one))), None, false));
    let mut scrape = [0u8; 56];
    udp::write_scrape_request(&mut scrape, conn, 5, &[[1; 20], [2; 20]]).unwrap();
    let resp = c.send(10, src, &scrape).unwrap();
    assert_eq!(
        &resp[8..],
        [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(t.swarm().totals().torrents, 2, "still stored until a sweep");
    // Its stored swarm does not let it through: announces are refused at
    // once (the torrent's admission is from the old list) and change nothing.
    let again = announce_bytes(conn, 2, Event::None, 0, -1, 6882);
    let refused = c.send(10, src, &again).unwrap();
    assert_eq!(refused, error_frame(0x1234, "torrent not allowed"));
    assert_eq!(t.swarm().scrape(&[2; 20]).seeders, 1);
    let swept: usize = (0..t.swarm().shard_count())
        .map(|i| t.expire_shard(&mut c.w, i, Now::from_secs(11)))
        .sum();
    assert_eq!(swept, 1);
    assert_eq!(t.swarm().totals().torrents, 1);
    assert_eq!(t.swarm().scrape(&[1; 20]).seeders, 1);
}

/// The interval of every announce reply, UDP and HTTP, is the worker's
/// current one spread by the jitter, clamped to [--interval, --max-interval].
#[test]
fn replies_carry_the_workers_interval_spread_by_the_jitter() {
    let t = tracker_with(TrackerConfig {
        interval: 1000,
        interval_jitter: 20,
        max_interval: Some(3000),
        peer_timeout: 5000,
        ..TrackerConfig::default()
    });
    let mut c = Client::new(&t);
    let id = c.connect(0, v4(1, 1));
    let udp_interval = |c: &mut Client<'_>| {
        let req = announce_bytes(id, 1, Event::None, 0, 0, 6881);
        parse_announce(&c.send(0, v4(1, 1), &req).unwrap()).interval
    };
    let http_interval = |w: &mut Worker| {
        let mut body = Vec::new();
        let q = b"info_hash=%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01&peer_id=-TR3000-aaaaaaaaaaaa&port=6881&compact=1";
        let o = t.http_announce(
            w,
            Now::from_secs(0),
            v4(2, 1).ip(),
            b"/announce",
            q,
            &mut body,
        );
        assert!(matches!(o, Outcome::Announced), "{o:?}");
        let text = String::from_utf8_lossy(&body).into_owned();
        let int = |key: &str| -> u32 {
            let at = text.find(key).unwrap() + key.len();
            text[at..].split('e').next().unwrap().parse().unwrap()
        };
        (int("8:intervali"), int("12:min intervali"))
    };
    let mut http_worker = Worker::with_rng(fastrand::Rng::with_seed(5));
    for (set, lo, hi) in [(0, 800, 1200), (2000, 1600, 2400), (99_999, 2400, 3600)] {
        c.w.set_interval(set);
        http_worker.set_interval(set);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let u = udp_interval(&mut c);
            let (h, min) = http_interval(&mut http_worker);
            assert!(
                (lo..=hi).contains(&u) && (lo..=hi).contains(&h),
                "{set}: {u} {h}"
            );
            assert_eq!(min, (lo + hi) / 4, "half the current interval");
            assert!(min < h);
            seen.insert(u);
            seen.insert(h);
        }
        // Spread, not one value: 200 draws from 400 values.
        assert!(seen.len() > 100, "{set}: {} distinct", seen.len());
    }
}
