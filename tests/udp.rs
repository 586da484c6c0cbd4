//! The UDP tracker over real sockets on ephemeral loopback ports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{peers4, start, start_with_manual_clock, Client};
use shoal::server::Config;
use shoal::wire::udp::{self, Event, Response};
use std::net::SocketAddr;

fn loopback_config(workers: usize) -> Config {
    Config {
        workers,
        ..Config::for_udp("127.0.0.1:0".parse().unwrap())
    }
}

#[test]
fn ipv4_swarm_over_two_workers() {
    let server = start(loopback_config(2));
    let addr = server.udp_addrs()[0];
    let ih = [0x11; 20];
    let mut seeder = Client::new("127.0.0.1:0", addr);
    seeder.connect();
    let r = seeder.announce(ih, Event::Started, 0, -1);
    assert_eq!((r.seeders, r.leechers, r.peers.len()), (1, 0, 0));
    // --interval 1800 spread by the default ±10 %.
    assert!((1620..=1980).contains(&r.interval), "{}", r.interval);
    let mut leechers: Vec<Client> = (0..5).map(|_| Client::new("127.0.0.1:0", addr)).collect();
    for (i, l) in leechers.iter_mut().enumerate() {
        l.connect();
        let r = l.announce(ih, Event::Started, 100, -1);
        assert_eq!((r.seeders, r.leechers as usize), (1, i + 1));
        let peers = peers4(&r.peers);
        assert_eq!(peers.len(), i + 1, "everyone but itself");
        assert!(peers.contains(&SocketAddr::from(([127, 0, 0, 1], seeder.port()))));
        assert!(!peers.contains(&SocketAddr::from(([127, 0, 0, 1], l.port()))));
    }
    // The seeder is sent leechers only.
    let r = seeder.announce(ih, Event::None, 0, -1);
    assert_eq!(peers4(&r.peers).len(), 5);
    // One completes; scrape reports exact counts.
    leechers[0].announce(ih, Event::Completed, 0, -1);
    leechers[1].announce(ih, Event::Stopped, 100, -1);
    assert_eq!(seeder.scrape(&[ih, [0; 20]]), vec![(2, 1, 3), (0, 0, 0)]);
    server.stop();
}

#[test]
fn ipv6_gets_18_byte_ipv6_peers_only() {
    let server = start({
        let mut c = loopback_config(1);
        c.listen.udp = vec!["127.0.0.1:0".parse().unwrap(), "[::1]:0".parse().unwrap()];
        c
    });
    let (a4, a6) = (server.udp_addrs()[0], server.udp_addrs()[1]);
    assert!(a6.is_ipv6());
    let ih = [0x22; 20];
    let mut c4 = Client::new("127.0.0.1:0", a4);
    c4.connect();
    c4.announce(ih, Event::Started, 1, -1);
    let mut first6 = Client::new("[::1]:0", a6);
    first6.connect();
    first6.announce(ih, Event::Started, 1, -1);
    let mut c6 = Client::new("[::1]:0", a6);
    c6.connect();
    let r = c6.announce(ih, Event::Started, 1, -1);
    assert_eq!(r.peers.len(), 18, "one IPv6 peer, 18 bytes, no IPv4 peer");
    assert_eq!(&r.peers[..16], &std::net::Ipv6Addr::LOCALHOST.octets());
    assert_eq!(
        u16::from_be_bytes([r.peers[16], r.peers[17]]),
        first6.port()
    );
    assert_eq!(r.leechers, 3, "counts cover both families");
    let r = c4.announce(ih, Event::None, 1, -1);
    assert!(r.peers.is_empty(), "IPv4 client sees no IPv6 peers");
    server.stop();
}

#[test]
fn lone_ipv6_wildcard_is_dual_stack() {
    let server = start(Config::for_udp("[::]:0".parse().unwrap()));
    let port = server.udp_addrs()[0].port();
    let ih = [0x33; 20];
    let mut c6 = Client::new(
        "[::1]:0",
        SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)),
    );
    c6.connect();
    c6.announce(ih, Event::Started, 1, -1);
    let mut a = Client::new("127.0.0.1:0", SocketAddr::from(([127, 0, 0, 1], port)));
    a.connect();
    a.announce(ih, Event::Started, 1, -1);
    let mut b = Client::new("127.0.0.1:0", SocketAddr::from(([127, 0, 0, 1], port)));
    b.connect();
    let r = b.announce(ih, Event::Started, 1, -1);
    assert_eq!(
        peers4(&r.peers),
        vec![SocketAddr::from(([127, 0, 0, 1], a.port()))],
        "mapped sources are IPv4"
    );
    server.stop();
}

#[test]
fn default_pair_binds_both_families_on_one_port() {
    // 0.0.0.0:P plus [::]:P, as the defaults do: the IPv6 socket must be v6-only.
    // Port 0 would give the two addresses different ports, so the test picks
    // a free port P and binds it, which races with anything else on the host
    // taking P meanwhile. The server refuses a port anyone holds (it probes
    // without SO_REUSEPORT), so a lost race is a clean AddrInUse: pick again.
    let (server, port) = (0..20)
        .find_map(|_| {
            let probe = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
            let port = probe.local_addr().unwrap().port();
            drop(probe);
            match shoal::server::Server::bind({
                let mut c = loopback_config(2);
                c.listen.udp = vec![
                    SocketAddr::from(([0, 0, 0, 0], port)),
                    SocketAddr::from(([0u16; 8], port)),
                ];
                c
            }) {
                Ok(server) => Some((server.spawn().unwrap(), port)),
                Err(shoal::server::StartError::Bind(shoal::net::BindError::Bind {
                    error, ..
                })) if error.kind() == std::io::ErrorKind::AddrInUse => None,
                Err(e) => panic!("{e}"),
            }
        })
        .expect("a port free on both families within 20 tries");
    for local in ["127.0.0.1:0", "[::1]:0"] {
        let target = if local.starts_with('[') {
            format!("[::1]:{port}")
        } else {
            format!("127.0.0.1:{port}")
        };
        let mut c = Client::new(local, target.parse().unwrap());
        c.connect();
    }
    server.stop();
}

#[test]
fn connection_ids_expire_and_are_bound_to_the_address() {
    let (server, clock) = start_with_manual_clock(loopback_config(1));
    let addr = server.udp_addrs()[0];
    let mut a = Client::new("127.0.0.1:0", addr);
    let id = a.connect();
    let ih = [0x44; 20];
    // Another client (another source port, same IP) may use the id: ids are per IP.
    let mut b = Client::new("127.0.0.1:0", addr);
    b.connection_id = id;
    b.announce(ih, Event::Started, 1, -1);
    // After the lifetime, the announce is ignored: the next reply on the socket
    // is the one to the following connect, not to the stale announce.
    let mut timekeeper = Client::new("127.0.0.1:0", addr);
    timekeeper.set_clock(&clock, 121);
    let stale = a.announce_bytes(ih, Event::None, 1, -1, 1);
    a.sock.send_to(&stale, addr).unwrap();
    let mut req = [0u8; 16];
    udp::write_connect_request(&mut req, 0xfeed).unwrap();
    let reply = a.roundtrip(&req);
    assert!(matches!(
        udp::parse_response(&reply),
        Ok(Response::Connect {
            transaction_id: 0xfeed,
            ..
        })
    ));
    let reg = &server.registry();
    assert_eq!(reg.rejects(shoal::stats::Reject::BadConnectionId), 1);
    server.stop();
}

#[test]
fn peers_expire_with_time_and_empty_torrents_go() {
    let mut config = loopback_config(1);
    config.tracker.interval = 60;
    config.tracker.peer_timeout = 100;
    config.tracker.shards = 4;
    config.listen.metrics = vec!["127.0.0.1:0".parse().unwrap()];
    let (server, clock) = start_with_manual_clock(config);
    let addr = server.udp_addrs()[0];
    let metrics = server.metrics_addrs()[0];
    let mut a = Client::new("127.0.0.1:0", addr);
    a.connect();
    a.announce([1; 20], Event::Started, 1, -1);
    a.announce([2; 20], Event::Started, 0, -1);
    a.set_clock(&clock, 90);
    a.announce([2; 20], Event::None, 0, -1); // refreshed at t=90
    assert_eq!(server.tracker().swarm().totals().torrents, 2);
    // At t=150 the t=0 peer is past the 100 s timeout; the t=90 one is not.
    // The control thread sweeps what is due at the start of its turn.
    a.set_clock(&clock, 150);
    common::control_at(metrics, 150);
    assert_eq!(a.scrape(&[[1; 20], [2; 20]]), vec![(0, 0, 0), (1, 0, 0)]);
    assert_eq!(
        server.tracker().swarm().totals().torrents,
        1,
        "empty torrent dropped"
    );
    server.stop();
}

#[test]
fn stop_is_prompt_and_releases_the_port() {
    let server = start(loopback_config(2));
    let addr = server.udp_addrs()[0];
    let started = std::time::Instant::now();
    server.stop();
    // Workers are woken, not polled: far below the 250 ms idle tick (generous bound for CI).
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    // The port is free again: binding it without SO_REUSEPORT succeeds.
    std::net::UdpSocket::bind(addr).expect("port released");
}

#[test]
fn port_in_use_is_a_clear_error() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = shoal::server::Server::bind(Config::for_udp(addr))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!("cannot listen on udp://{addr}: address already in use")
    );
}

#[test]
fn garbage_never_stops_the_server() {
    let server = start(loopback_config(1));
    let addr = server.udp_addrs()[0];
    let junk = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut x = 88172645463325252u64;
    for len in 0..=300usize {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        junk.send_to(&bytes, addr).unwrap();
    }
    let mut c = Client::new("127.0.0.1:0", addr);
    c.connect();
    c.announce([9; 20], Event::Started, 1, -1);
    server.stop();
}
