use super::*;
use std::net::Ipv4Addr;

/// A worker over one socket connected to itself (nothing is sent here).
fn worker() -> Worker {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    sock.connect(addr).unwrap();
    sock.set_nonblocking(true).unwrap();
    let settings = Arc::new(Settings {
        target: addr,
        mix: [1, 1, 1],
        numwant: 30,
        scrape_max: 10,
        seed: 1,
        timeout: Duration::from_secs(1),
        window: 4,
        url_data: Vec::new(),
        seeder_ratio: 0.5,
        stop: AtomicBool::new(false),
    });
    let peers = vec![Peer {
        torrent: 0,
        port: 1,
        flags: 0,
    }];
    let live = Arc::new(Live::default());
    Worker::new(settings, live, vec![sock], peers, 0, 1, Rng::with_seed(1)).unwrap()
}

/// Puts a request of `kind` in flight, as `fill` does; its transaction id.
fn in_flight(w: &mut Worker, kind: usize, hashes: u16) -> u32 {
    let sock = &mut w.socks[0];
    let index = sock.free.pop().unwrap();
    let tx = ((sock.seq << SLOT_BITS) | u32::from(index)) ^ sock.salt;
    sock.seq = sock.seq.wrapping_add(1);
    sock.slots[usize::from(index)] = Slot {
        sent_ns: 100,
        tx,
        peer: 0,
        hashes,
        kind: kind as u8,
    };
    tx
}

/// A worker of `peers` peers over `torrents` torrents, two sockets, driving `target`.
fn loader(target: SocketAddr, seed: u64, torrents: u32, peers: usize) -> Worker {
    let settings = Arc::new(Settings {
        target,
        mix: [1, 8, 1],
        numwant: 5,
        scrape_max: 4,
        seed,
        timeout: Duration::from_millis(500),
        window: 16,
        url_data: Vec::new(),
        seeder_ratio: 0.5,
        stop: AtomicBool::new(false),
    });
    // Each socket its own address, as in a run: its peers' ports are
    // distinct only within a socket.
    let sockets = (1..=2)
        .map(|i| {
            let s = std::net::UdpSocket::bind(format!("127.0.0.{i}:0")).unwrap();
            s.connect(target).unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    let mut rng = Rng::with_seed(seed);
    let pop = population::generate(&mut rng, peers, 2, torrents, 0.5);
    let live = Arc::new(Live::default());
    Worker::new(settings, live, sockets, pop, 0, 1, rng).unwrap()
}

/// Seeders + leechers the target holds over the population's torrents.
fn held(target: SocketAddr, seed: u64, torrents: u32) -> u32 {
    let hashes: Vec<[u8; 20]> = (0..torrents)
        .map(|t| {
            let mut h = [0; 20];
            population::info_hash(seed, t, &mut h);
            h
        })
        .collect();
    let url: crate::client::TrackerUrl = format!("udp://{target}").parse().unwrap();
    crate::client::Client::new(Duration::from_secs(2), 3)
        .scrape(&url, &hashes)
        .unwrap()
        .iter()
        .map(|s| s.map_or(0, |s| s.seeders + s.leechers))
        .sum()
}

/// Against a real (in-process) shoal: after a run the population is in
/// its swarms; withdrawn, none of it is, and a withdrawal is held to its
/// rate and to its time bound.
#[test]
fn a_withdrawal_leaves_the_target_as_it_was_found() {
    use crate::server::{Config, Server};
    let config = Config {
        workers: 1,
        ..Config::for_udp(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
    };
    let server = Server::bind(config).unwrap().spawn().unwrap();
    let target = server.udp_addrs()[0];
    let run = |seed, withdraw| {
        let start = Instant::now();
        loader(target, seed, 20, 400).run(start, start + Duration::from_millis(300), withdraw)
    };
    // Kept: the population stays.
    let (totals, none) = run(1, None);
    assert!(totals.replies[ANNOUNCE] > 0 && none.is_none());
    assert!(held(target, 1, 20) > 0);
    // Withdrawn: every started peer answered, none left; the run's
    // totals do not count the withdrawal.
    let fast = WithdrawLimits {
        rate: 100_000,
        within: Duration::from_secs(10),
    };
    let (totals, w) = run(2, Some(fast));
    let w = w.unwrap();
    assert!(w.peers > 0, "{w:?}");
    assert_eq!((w.confirmed, w.left()), (w.peers, 0), "{w:?}");
    assert!(w.sent >= w.peers);
    assert_eq!(
        totals.sent.iter().sum::<u64>(),
        totals.replies.iter().sum::<u64>() + totals.timeouts
    );
    assert_eq!(held(target, 2, 20), 0);
    // Paced: 200/s (and a burst of 11) cannot send 200 stopped in under ~0.9 s.
    let (_, w) = run(
        3,
        Some(WithdrawLimits {
            rate: 200,
            within: Duration::from_secs(10),
        }),
    );
    let w = w.unwrap();
    assert!(w.peers >= 200, "{w:?}");
    let floor = Duration::from_secs_f64((w.peers - 11) as f64 / 200.0);
    assert!(w.elapsed >= floor, "{w:?} in less than {floor:?}");
    assert_eq!(w.left(), 0, "{w:?}");
    // A target gone silent after the run: given up on after 5 timeouts
    // (at least 1 s), not held for the whole bound.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut w = loader(silent.local_addr().unwrap(), 5, 20, 100);
    for sock in &mut w.socks {
        sock.conn = Some(1);
        sock.conn_at = u64::MAX / 2;
    }
    for p in &mut w.peers {
        p.flags |= STARTED;
    }
    let t = Instant::now();
    let gone = w.withdraw(fast);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!((gone.peers, gone.confirmed), (100, 0), "{gone:?}");
    // Nothing announced (never connected): nothing to wait for.
    let t = Instant::now();
    let none = loader(silent.local_addr().unwrap(), 6, 20, 100).withdraw(fast);
    assert_eq!(none, Withdrawal::default());
    assert!(t.elapsed() < Duration::from_millis(100));
    // Bounded: 20/s for 200 ms withdraws a few, says how many are left,
    // and ends within the bound plus the drain.
    let (_, w) = run(
        4,
        Some(WithdrawLimits {
            rate: 20,
            within: Duration::from_millis(200),
        }),
    );
    let w = w.unwrap();
    assert!(w.confirmed > 0 && w.left() > 0, "{w:?}");
    assert!(
        w.elapsed < Duration::from_millis(200) + MAX_DRAIN + Duration::from_millis(100),
        "{w:?}"
    );
    assert_eq!(u64::from(held(target, 4, 20)), w.left());
    server.stop();
}

/// Replies built with wire's writers are matched to their requests by
/// transaction id and checked against what was asked.
#[test]
fn test_replies_are_matched_and_checked() {
    let mut w = worker();
    let mut buf = [0u8; 256];

    let tx = in_flight(&mut w, CONNECT, 0);
    let n = udp::write_connect_response(&mut buf, tx, 0xfeed).unwrap();
    w.on_reply(0, &buf[..n], 1_100);
    assert_eq!((w.socks[0].conn, w.socks[0].conn_at), (Some(0xfeed), 1_100));

    let tx = in_flight(&mut w, ANNOUNCE, 0);
    let mut n = udp::write_announce_header(&mut buf, tx, 1800, 1, 1).unwrap();
    for port in [1, 2] {
        n += udp::write_peer4(&mut buf[n..], Ipv4Addr::LOCALHOST, port).unwrap();
    }
    w.on_reply(0, &buf[..n], 2_000);
    // The same reply again matches nothing in flight.
    w.on_reply(0, &buf[..n], 2_000);
    // A peer list cut mid-peer is malformed.
    let tx = in_flight(&mut w, ANNOUNCE, 0);
    udp::write_announce_header(&mut buf, tx, 1800, 1, 1).unwrap();
    w.on_reply(0, &buf[..n - 1], 2_000);

    // Scrapes: a trailing partial row, then one row as asked, then two rows for one hash.
    for (rows, extra) in [(1, 5), (1, 0), (2, 0)] {
        let tx = in_flight(&mut w, SCRAPE, 1);
        let mut n = udp::write_scrape_header(&mut buf, tx).unwrap();
        for _ in 0..rows {
            n += udp::write_scrape_row(&mut buf[n..], 1, 2, 3).unwrap();
        }
        w.on_reply(0, &buf[..n + extra], 3_000);
    }

    // An announce answered with a connect reply, then one with an error frame.
    let tx = in_flight(&mut w, ANNOUNCE, 0);
    let n = udp::write_connect_response(&mut buf, tx, 1).unwrap();
    w.on_reply(0, &buf[..n], 4_000);
    assert_eq!(
        w.socks[0].conn,
        Some(0xfeed),
        "not taken from a wrong reply"
    );
    let tx = in_flight(&mut w, ANNOUNCE, 0);
    let n = udp::write_error_response(&mut buf, tx, "no").unwrap();
    w.on_reply(0, &buf[..n], 5_000);
    assert_eq!(w.socks[0].conn_at, 0, "an error frame refreshes the id");

    // Garbage wire cannot decode.
    w.on_reply(0, &[0, 0, 0], 6_000);

    let t = &w.totals;
    assert_eq!(t.replies, [1, 2, 1]);
    assert_eq!(t.peers_received, 2);
    assert_eq!(
        (t.error_frames, t.malformed, t.unexpected),
        (1, 4, 2),
        "{t:?}"
    );
    assert_eq!(t.latency.count(), 8);
    assert_eq!(t.latency.min(), Some(1_000));
    let sock = &w.socks[0];
    assert_eq!(
        sock.free.len(),
        sock.slots.len(),
        "every slot is free again"
    );
}
