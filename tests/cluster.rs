//! `--cluster` with real parts: a `redis-server` of our own on a free loopback
//! port (persistence off), several shoal instances in this process, real UDP
//! clients. Without `redis-server` on PATH these tests fail (CI installs it,
//! see `.ci/run`); `SHOAL_TEST_REDIS_SERVER=valkey-server` runs them on Valkey.
//!
//! Nothing waits by sleeping: every wait polls a reply or the link's state,
//! with a bound.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod alloc_count;
mod common;

use alloc_count::allocs;
use common::{metric, peers4, start, wait_until, Client, WAIT};
use shoal::cluster::ClusterConfig;
use shoal::server::Config;
use shoal::server::Running;
use shoal::wire::udp::Event;
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: alloc_count::Counting = alloc_count::Counting;

/// A throwaway redis-server (or valkey-server) on 127.0.0.1, killed on drop.
struct Redis {
    child: Child,
    port: u16,
}

fn server_binary() -> String {
    std::env::var("SHOAL_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into())
}

impl Redis {
    /// A server on a free port: pick one by binding port 0 and letting it go,
    /// and try again with another if someone took it in between.
    fn start() -> Redis {
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            if let Some(r) = Redis::start_on(port) {
                return r;
            }
        }
        panic!("could not start {} on a free port", server_binary());
    }

    /// A server on `port`; `None` if it exits before answering (port taken).
    fn start_on(port: u16) -> Option<Redis> {
        let bin = server_binary();
        let child = Command::new(&bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {bin} ({e}): the cluster tests need it on PATH (apt-get install redis-server; CI: .ci/run)")
            });
        let mut r = Redis { child, port };
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if r.child.try_wait().unwrap().is_some() {
                return None;
            }
            if r.ping() {
                return Some(r);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("{bin} on port {port} never answered PING");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn ping(&self) -> bool {
        let Ok(client) = redis::Client::open(self.url()) else {
            return false;
        };
        let Ok(mut con) = client.get_connection_with_timeout(Duration::from_millis(200)) else {
            return false;
        };
        redis::cmd("PING").query::<String>(&mut con).is_ok()
    }

    fn stop(mut self) -> u16 {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.port
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn instance(url: &str, name: &str) -> Running {
    let mut c = {
        let mut c = Config::for_udp("127.0.0.1:0".parse().unwrap());
        c.cluster = Some(ClusterConfig {
            url: url.into(),
            name: name.into(),
            state_interval: Duration::from_secs(1),
        });
        c
    };
    c.listen.metrics = vec!["127.0.0.1:0".parse().unwrap()];
    start(c)
}

fn connected(s: &Running) -> bool {
    s.cluster().unwrap().connected()
}

fn state_writes(s: &Running) -> u64 {
    let c = s.cluster().unwrap();
    c.state_writes.load(Ordering::Relaxed)
}

/// A client of `server`, connected.
fn client(server: &Running) -> Client {
    Client::connected(server.udp_addrs()[0])
}

/// Whether a leecher announce of `c` gets `peer` back.
fn sees(c: &mut Client, ih: [u8; 20], peer: SocketAddr) -> bool {
    peers4(&c.announce(ih, Event::None, 100, -1).peers).contains(&peer)
}

#[test]
fn three_instances_share_one_swarm_and_survive_redis_going_away() {
    let redis = Redis::start();
    let url = redis.url();
    let [a, b, c] = ["a", "b", "c"].map(|_| instance(&url, "t1"));
    let all = [&a, &b, &c];
    wait_until("all three are subscribed", || {
        all.iter().all(|s| connected(s))
    });
    let ih = [0x42; 20];

    // A seeder announces to A only (and completes there).
    let mut seeder = client(&a);
    seeder.announce(ih, Event::Started, 100, 0);
    let r = seeder.announce(ih, Event::Completed, 0, 0);
    assert_eq!((r.seeders, r.leechers), (1, 0));
    // It appears in B's and C's replies.
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
    seeder.server = b.udp_addrs()[0];
    seeder.connect();
    seeder.announce(ih, Event::Stopped, 0, 0);
    for (i, s) in scrapers.iter_mut().enumerate() {
        wait_until(&format!("instance {i} forgets the stopped seeder"), || {
            s.scrape(&[ih]) == vec![(0, 1, 2)]
        });
    }
    assert!(!sees(&mut on_c, ih, seeder.addr()));

    // Redis goes away: every instance keeps answering, and says so.
    let port = redis.stop();
    wait_until("all three see Redis gone", || {
        all.iter().all(|s| !connected(s))
    });
    for s in &all {
        let mut lone = client(s);
        let r = lone.announce(ih, Event::Started, 100, -1);
        assert!(r.leechers >= 3, "answered from the local map");
    }
    assert_eq!(metric(a.metrics_addrs()[0], "shoal_cluster_connected"), 0);
    let health = common::get(a.metrics_addrs()[0], "/health");
    assert_eq!(health.status, 200, "{}", health.head);
    let body = health.text();
    assert!(body.contains("cluster: disconnected"), "{body}");

    // Redis is back (same port): sync resumes without a restart.
    let _redis = Redis::start_on(port).expect("restart redis on its port");
    wait_until("all three reconnect", || all.iter().all(|s| connected(s)));
    assert_eq!(metric(a.metrics_addrs()[0], "shoal_cluster_connected"), 1);
    assert!(common::get(a.metrics_addrs()[0], "/health")
        .text()
        .contains("cluster: connected"));
    let mut seeder2 = client(&a);
    seeder2.announce(ih, Event::Started, 0, 0);
    wait_until("B hands out a seeder announced after the outage", || {
        sees(&mut on_b, ih, seeder2.addr())
    });

    // A fresh instance D gets the swarm from the stored state at start: its
    // first reply already has the seeder.
    let written = state_writes(&a);
    wait_until("A stores its state twice more", || {
        state_writes(&a) >= written + 2
    });
    let d = instance(&url, "t1");
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

#[test]
fn redis_down_at_start_serves_alone_then_joins() {
    // A port nobody listens on (yet).
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let a = instance(&url, "t2");
    let b = instance(&url, "t2");
    let mut c = client(&a);
    assert_eq!(c.announce([1; 20], Event::Started, 0, -1).seeders, 1);
    assert!(!connected(&a));
    assert_eq!(metric(a.metrics_addrs()[0], "shoal_cluster_connected"), 0);
    let _redis = Redis::start_on(port).expect("redis on the chosen port");
    wait_until("both connect once Redis is up", || {
        connected(&a) && connected(&b)
    });
    let mut seeder = client(&a);
    seeder.announce([2; 20], Event::Started, 0, 0);
    let mut on_b = client(&b);
    wait_until("B sees A's seeder", || {
        sees(&mut on_b, [2; 20], seeder.addr())
    });
    a.stop();
    b.stop();
}

#[test]
fn foreign_and_malformed_messages_on_the_channel_are_dropped() {
    let redis = Redis::start();
    let a = instance(&redis.url(), "t3");
    wait_until("A is subscribed", || connected(&a));
    let client_ = redis::Client::open(redis.url()).unwrap();
    let mut con = client_.get_connection().unwrap();
    for junk in [&b"hello"[..], b"SHCL\x01\x00\x00\x01", &[0u8; 72]] {
        let _: i64 = redis::cmd("PUBLISH")
            .arg("t3")
            .arg(junk)
            .query(&mut con)
            .unwrap();
    }
    let status = a.cluster().unwrap().clone();
    let rejected = || {
        shoal::cluster::batch::BatchError::ALL
            .iter()
            .map(|&e| status.rejected(e))
            .sum::<u64>()
    };
    wait_until("three messages rejected", || rejected() == 3);
    assert_eq!(a.tracker().swarm().totals().peers(), 0);
    // Still serving and still subscribed.
    assert!(connected(&a));
    assert_eq!(
        client(&a).announce([1; 20], Event::Started, 0, -1).seeders,
        1
    );
    a.stop();
}

/// Announce on A → visible in B's reply, 40 times: the delay's median and
/// p99 go to stderr (BENCHMARKS.md quotes them); bounded at 2 s.
#[test]
fn propagation_delay() {
    let redis = Redis::start();
    let (a, b) = (instance(&redis.url(), "t4"), instance(&redis.url(), "t4"));
    wait_until("both subscribed", || connected(&a) && connected(&b));
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

/// The request path with `--cluster`: a stored announce appends its record
/// to the worker's buffer without allocating, also when the buffer is full
/// (then the record is dropped and counted); the publisher's swap gives the
/// records back as announced.
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
    let mut w = Worker::new();
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
        publish(Some(&outbox), &h.outcome, &w);
    }
    let mut spare = Vec::with_capacity(OUTBOX_RECORDS);
    status.take(0, &mut spare);
    assert_eq!(spare.len(), 50);
    assert_eq!(spare[7].addr, SocketAddr::new(ip, 1007));
    assert_eq!((spare[7].role, spare[7].completed), (Role::Seeder, true));
    assert_eq!(spare[8].role, Role::Leecher);
    spare.clear();
    let before = allocs();
    let rounds = OUTBOX_RECORDS / 50 + 2;
    for _ in 0..rounds {
        for d in &datagrams {
            let h = t.handle_udp(&mut w, now, src, d, &mut out);
            publish(Some(&outbox), &h.outcome, &w);
        }
    }
    assert_eq!(allocs() - before, 0, "no allocation, full buffer included");
    assert_eq!(status.dropped(), (rounds * 50 - OUTBOX_RECORDS) as u64);
}
