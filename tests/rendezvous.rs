//! The Sobani rendezvous service over real sockets (`--rendezvous`): two peers
//! on different loopback addresses meet through shoal and then talk directly;
//! every reply rule as a client sees it; garbage counted in /metrics; IPv6,
//! dual-stack and cross-family introductions; expiry under a manual clock; and
//! the `shoal rendezvous` operator tool.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    metrics_text, shoal_command, start, start_with_manual_clock, Client, Proc, Role, REPLY_TIMEOUT,
};
use shoal::rendezvous::client::ClientReply;
use shoal::rendezvous::message::Reply;
use shoal::rendezvous::{DropReason, Outcome, ShareId};
use shoal::server::Config;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

/// One worker, rendezvous on `addrs`, nothing else unless a test adds it.
fn config(addrs: &[&str]) -> Config {
    let mut c = Config::default();
    c.listen.udp = Vec::new();
    c.listen.rendezvous = addrs.iter().map(|a| a.parse().unwrap()).collect();
    c.workers = 1;
    c.tracker.shards = 4;
    c
}

/// A Sobani peer on its own address: one socket for the tracker and for the
/// other peer, as a real client punching through its NAT would use.
struct Peer {
    sock: UdpSocket,
    tracker: SocketAddr,
}

impl Peer {
    fn new(local: &str, tracker: SocketAddr) -> Peer {
        let sock = UdpSocket::bind(local).unwrap();
        sock.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        Peer { sock, tracker }
    }

    fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    /// The next datagram: (source, bytes).
    fn recv(&self) -> (SocketAddr, Vec<u8>) {
        let mut buf = [0u8; 4096];
        let (n, src) = self.sock.recv_from(&mut buf).expect("a datagram in time");
        (src, buf[..n].to_vec())
    }

    /// The next message from a tracker (any of its addresses: an `income` may
    /// come through another socket of the right family).
    fn recv_reply(&self) -> (SocketAddr, ClientReply) {
        let (src, bytes) = self.recv();
        let reply = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)));
        (src, reply)
    }

    fn request(&self, msg: &str) -> ClientReply {
        self.sock.send_to(msg.as_bytes(), self.tracker).unwrap();
        let (src, reply) = self.recv_reply();
        assert_eq!(
            src, self.tracker,
            "the answer comes from where it was asked"
        );
        reply
    }

    fn announce(&self) -> ShareId {
        match self.request(r#"{"action":"announce","id":"ignored"}"#) {
            Reply::Announced(a) => a.share_id,
            other => panic!("announce: {other:?}"),
        }
    }

    fn push(&self, id: &str) -> ClientReply {
        self.request(&format!(r#"{{"action":"push","shareId":"{id}"}}"#))
    }
}

/// `a` pushes `b`'s id: both learn the other's address.
fn introduce(a: &Peer, b: &Peer) {
    let ida = a.announce();
    let idb = b.announce();
    assert_ne!(ida, idb);
    match a.push(&idb.to_string()) {
        Reply::Pushed(p) => {
            assert_eq!((p.peer_addr, p.peer_share_id), (b.addr(), idb));
        }
        other => panic!("push: {other:?}"),
    }
    let income = match b.recv_reply() {
        (_, Reply::Income(p)) => p,
        other => panic!("income: {other:?}"),
    };
    assert_eq!((income.peer_addr, income.peer_share_id), (a.addr(), ida));
}

/// Introduce, then the point of the service: a direct datagram each way,
/// to the addresses the tracker gave out.
fn introduce_and_talk(a: &Peer, b: &Peer) {
    introduce(a, b);
    a.sock.send_to(b"hello from a", b.addr()).unwrap();
    assert_eq!(b.recv(), (a.addr(), b"hello from a".to_vec()));
    b.sock.send_to(b"hello from b", a.addr()).unwrap();
    assert_eq!(a.recv(), (b.addr(), b"hello from b".to_vec()));
}

#[test]
fn two_peers_meet_through_shoal_and_talk_directly() {
    let mut c = config(&["127.0.0.1:0"]);
    c.workers = 2;
    let server = start(c);
    let tracker = server.rendezvous_addrs()[0];
    let a = Peer::new("127.0.0.2:0", tracker);
    let b = Peer::new("127.0.0.3:0", tracker);
    introduce_and_talk(&a, &b);
    let reg = &server.registry();
    assert_eq!(reg.rendezvous_outcomes(Outcome::Announced), 2);
    assert_eq!(reg.rendezvous_outcomes(Outcome::Pushed), 1);
    server.stop();
}

#[test]
fn every_rule_as_a_client_sees_it_and_garbage_is_counted() {
    let mut c = config(&["127.0.0.1:0"]);
    c.listen.metrics = vec!["127.0.0.1:0".parse().unwrap()];
    let server = start(c);
    let tracker = server.rendezvous_addrs()[0];
    let a = Peer::new("127.0.0.1:0", tracker);
    let stranger = Peer::new("127.0.0.1:0", tracker);
    // Unknown addresses are told they are not registered.
    assert_eq!(stranger.request(r#"{"action":"alive"}"#), Reply::Expired);
    assert_eq!(stranger.push("00000000"), Reply::Expired);
    let id = a.announce();
    assert_eq!(a.announce(), id, "same address, same id while registered");
    assert_eq!(a.request(r#"{"action":"alive"}"#), Reply::Alived);
    // Unknown ids, and things that are not ids at all, get the same error.
    for bad in ["ffffffff", "127.0.0.1:1", "123456789"] {
        match a.push(bad) {
            Reply::Error(e) => assert_eq!(e.reason, "unknown shareId", "{bad}"),
            other => panic!("push {bad}: {other:?}"),
        }
    }
    // The README's form, the id under `data`, is accepted too.
    match a.request(&format!(
        r#"{{"action":"push","data":{{"shareId":"{id}"}}}}"#
    )) {
        Reply::Pushed(p) => assert_eq!((p.peer_addr, p.peer_share_id), (a.addr(), id)),
        other => panic!("push to self: {other:?}"),
    }
    // Garbage is dropped silently: the next datagram `a` gets is the answer
    // to the alive sent after it. (`{}` has no action: not a Sobani message.)
    let big = vec![b' '; 3000];
    for junk in [&b"not json"[..], br#"{"action":"dance"}"#, b"{}", &big] {
        a.sock.send_to(junk, tracker).unwrap();
    }
    assert_eq!(a.request(r#"{"action":"alive"}"#), Reply::Alived);
    let reg = &server.registry();
    assert_eq!(
        reg.rendezvous_outcomes(Outcome::Dropped(DropReason::NotJson)),
        2
    );
    assert_eq!(
        reg.rendezvous_outcomes(Outcome::Dropped(DropReason::UnknownAction)),
        1
    );
    assert_eq!(
        reg.rendezvous_outcomes(Outcome::Dropped(DropReason::TooLarge)),
        1
    );
    let text = metrics_text(server.metrics_addrs()[0]);
    for line in [
        "shoal_rendezvous_total{outcome=\"dropped_not_json\"} 2\n",
        "shoal_rendezvous_total{outcome=\"dropped_too_large\"} 1\n",
        "shoal_rendezvous_total{outcome=\"expired\"} 2\n",
        "shoal_rendezvous_total{outcome=\"unknown_id\"} 3\n",
        "shoal_rendezvous_registrations 1\n",
        "shoal_requests_total{protocol=\"rendezvous\",family=\"ipv4\",kind=\"announce\"} 2\n",
        "shoal_responses_total{protocol=\"rendezvous\",family=\"ipv4\",kind=\"error\"} 3\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    let dropped: u64 = Outcome::ALL
        .iter()
        .filter(|o| matches!(o, Outcome::Dropped(_)))
        .map(|&o| reg.rendezvous_outcomes(o))
        .sum();
    assert_eq!(dropped, 4, "every piece of garbage counted once");
    server.stop();
}

/// The tracker's own metrics stay out of a server without the service.
#[test]
fn metrics_have_no_rendezvous_series_when_it_is_off() {
    let mut c = config(&[]);
    c.listen.udp = vec!["127.0.0.1:0".parse().unwrap()];
    c.listen.metrics = vec!["127.0.0.1:0".parse().unwrap()];
    let server = start(c);
    assert!(server.rendezvous_addrs().is_empty());
    let text = metrics_text(server.metrics_addrs()[0]);
    assert!(text.contains("shoal_requests_total{protocol=\"udp\""));
    assert!(!text.contains("protocol=\"rendezvous\""), "{text}");
    assert!(!text.contains("shoal_rendezvous_total"), "{text}");
    server.stop();
}

#[test]
fn ipv6_peers_meet() {
    let server = start(config(&["[::1]:0"]));
    let tracker = server.rendezvous_addrs()[0];
    let a = Peer::new("[::1]:0", tracker);
    let b = Peer::new("[::1]:0", tracker);
    introduce_and_talk(&a, &b);
    server.stop();
}

/// A dual-stack `[::]` socket sees IPv4 peers as IPv4-mapped; the room
/// answers with plain IPv4 addresses and shoal maps them back to send. (The
/// two peers cannot then talk: they have no family in common.)
#[test]
fn a_dual_stack_socket_introduces_ipv4_to_ipv6() {
    let server = start(config(&["[::]:0"]));
    let port = server.rendezvous_addrs()[0].port();
    let v4 = Peer::new("127.0.0.2:0", SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    let v6 = Peer::new("[::1]:0", SocketAddr::from((Ipv6Addr::LOCALHOST, port)));
    introduce(&v6, &v4);
    introduce(&v4, &v6);
    assert_eq!(server.registry().drops(shoal::stats::Dropped::SendError), 0);
    server.stop();
}

/// With an IPv4 and an IPv6 address, an introduction across families goes out
/// through the worker's socket of the requestee's family.
#[test]
fn introductions_across_families_use_the_other_socket() {
    let server = start(config(&["127.0.0.1:0", "[::1]:0"]));
    let (t4, t6) = (server.rendezvous_addrs()[0], server.rendezvous_addrs()[1]);
    let v4 = Peer::new("127.0.0.2:0", t4);
    let v6 = Peer::new("[::1]:0", t6);
    let id4 = v4.announce();
    let id6 = v6.announce();
    match v6.push(&id4.to_string()) {
        Reply::Pushed(p) => assert_eq!(p.peer_addr, v4.addr()),
        other => panic!("{other:?}"),
    }
    match v4.recv_reply() {
        (src, Reply::Income(p)) => {
            assert_eq!(src, t4, "sent from the IPv4 socket");
            assert_eq!((p.peer_addr, p.peer_share_id), (v6.addr(), id6));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        server
            .registry()
            .drops(shoal::stats::Dropped::RendezvousNoRoute),
        0
    );
    server.stop();
}

#[test]
fn registrations_expire_without_alive() {
    // A UDP tracker socket too, in the same single worker: its connect ids
    // tell when the loop has picked up a new clock time (see common::set_clock);
    // the operator listener tells when the control thread (the sweeps) has.
    let mut c = config(&["127.0.0.1:0"]);
    c.listen.udp = vec!["127.0.0.1:0".parse().unwrap()];
    c.listen.metrics = vec!["127.0.0.1:0".parse().unwrap()];
    c.rendezvous.timeout = 10;
    let (server, clock) = start_with_manual_clock(c);
    let tracker = server.rendezvous_addrs()[0];
    let mut timekeeper = Client::new("127.0.0.1:0", server.udp_addrs()[0]);
    let a = Peer::new("127.0.0.1:0", tracker);
    let b = Peer::new("127.0.0.1:0", tracker);
    a.announce();
    let idb = b.announce();
    timekeeper.set_clock(&clock, 8);
    assert_eq!(a.request(r#"{"action":"alive"}"#), Reply::Alived);
    // At 12, b (last seen at 0) is past the 10 s timeout; a (alive at 8) is not.
    timekeeper.set_clock(&clock, 12);
    common::control_at(server.metrics_addrs()[0], 12);
    let rdv = server.registry().rendezvous.as_ref().unwrap();
    assert_eq!(
        rdv.registry().stats().entries,
        1,
        "the control thread's sweep at 12 removed b"
    );
    assert_eq!(b.request(r#"{"action":"alive"}"#), Reply::Expired);
    assert_eq!(a.request(r#"{"action":"alive"}"#), Reply::Alived);
    match a.push(&idb.to_string()) {
        Reply::Error(e) => assert_eq!(e.reason, "unknown shareId"),
        other => panic!("push to an expired peer: {other:?}"),
    }
    // Announcing again registers anew.
    b.announce();
    assert_eq!(b.request(r#"{"action":"alive"}"#), Reply::Alived);
    server.stop();
}

fn shoal_tool(args: &[&str]) -> (bool, String, String) {
    let out = shoal_command().args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn the_rendezvous_tool_announces_pushes_and_reports_errors() {
    let server = start(config(&["127.0.0.1:0"]));
    let tracker = server.rendezvous_addrs()[0];
    let url = format!("udp://{tracker}");

    let (ok, out, err) = shoal_tool(&["rendezvous", &url, "announce"]);
    assert!(ok, "{err}");
    let id = out.strip_prefix("share id: ").unwrap().trim_end();
    assert!(ShareId::parse(id).is_some(), "{out:?}");

    let (ok, out, err) = shoal_tool(&["rendezvous", &tracker.to_string(), "alive", "--json"]);
    assert!(ok, "{err}");
    assert_eq!(out, "{\"action\":\"alived\"}\n");

    let (ok, out, _) = shoal_tool(&["rendezvous", &url, "announce", "--json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["action"], "announced");
    assert!(ShareId::parse(v["data"]["shareId"].as_str().unwrap()).is_some());

    // A push introduces the tool to a registered peer, who hears of it.
    let peer = Peer::new("127.0.0.2:0", tracker);
    let pid = peer.announce();
    let (ok, out, err) = shoal_tool(&["rendezvous", &url, "push", &pid.to_string()]);
    assert!(ok, "{err}");
    assert_eq!(out, format!("peer {} (share id {pid})\n", peer.addr()));
    assert!(matches!(peer.recv_reply(), (_, Reply::Income(_))));

    // Errors: one line, non-zero exit; with --json an {"error": ...} object.
    let (ok, out, err) = shoal_tool(&["rendezvous", &url, "push", "ffffffff"]);
    assert!(!ok);
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("unknown shareId"), "{err}");
    let (ok, out, _) = shoal_tool(&["rendezvous", &url, "push", "ffffffff", "--json"]);
    assert!(!ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["error"].as_str().unwrap().contains("unknown shareId"));
    server.stop();

    // Nobody answering is an error too, after --timeout.
    // (The socket stays open: a closed port would be refused, not silent.)
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let (ok, _, err) = shoal_tool(&["rendezvous", &addr, "announce", "--timeout", "0.2"]);
    assert!(!ok);
    assert!(err.contains("no answer"), "{err}");
    let (ok, _, err) = shoal_tool(&["rendezvous", "http://127.0.0.1:1", "announce"]);
    assert!(!ok);
    assert!(err.contains("udp://"), "{err}");
}

#[test]
fn the_server_binary_serves_rendezvous_from_its_env_twin() {
    let p = Proc::start_with_env(
        &[],
        &[
            ("SHOAL_NO_UDP", "1"),
            ("SHOAL_RENDEZVOUS", "127.0.0.1:0, [::1]:0"),
            ("SHOAL_RENDEZVOUS_TIMEOUT", "60"),
            ("SHOAL_WORKERS", "2"),
        ],
    );
    let addrs = p.addrs(Role::Rendezvous);
    let seen = p.log().join("\n");
    assert_eq!(addrs.len(), 2, "{seen}");
    assert!(!seen.contains("udp://"), "--no-udp: {seen}");
    let a = Peer::new("127.0.0.2:0", addrs[0]);
    let b = Peer::new("127.0.0.3:0", addrs[0]);
    introduce_and_talk(&a, &b);
    let c = Peer::new("[::1]:0", addrs[1]);
    c.announce();
}

#[test]
fn bad_rendezvous_settings_and_taken_ports_are_one_line_errors() {
    let out = shoal_command()
        .args(["--rendezvous", "127.0.0.1:0", "--rendezvous-push-rate", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a configuration error");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("--rendezvous-push-rate"), "{err}");
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let out = shoal_command()
        .args(["--no-udp", "--rendezvous", &addr.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("rendezvous://{addr}: address already in use")),
        "{err}"
    );
}
