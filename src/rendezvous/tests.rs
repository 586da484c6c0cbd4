//! Tests of the sans-IO handler: every rule of the service, with a manual clock
//! (`now` is an argument) and exact JSON on the wire.

use super::*;
use proptest::prelude::*;

const KEY: [u8; 16] = [0x42; 16];

fn rdv() -> Rendezvous {
    Rendezvous::with_key(RendezvousConfig::default(), 8, KEY)
}

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Send `req` and return (outcome, [(dst, json)]).
fn send(r: &Rendezvous, now: u32, src: &str, req: &str) -> (Outcome, Vec<(SocketAddr, String)>) {
    let mut out = Replies::new();
    let o = r.handle(now, a(src), req.as_bytes(), &mut out);
    let v = out
        .iter()
        .map(|(d, b)| (d, String::from_utf8(b.to_vec()).unwrap()))
        .collect();
    (o, v)
}

fn announce(r: &Rendezvous, now: u32, src: &str) -> String {
    let (o, v) = send(r, now, src, r#"{"action":"announce"}"#);
    assert_eq!(o, Outcome::Announced);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].0, canonical(a(src)));
    let j: serde_json::Value = serde_json::from_str(&v[0].1).unwrap();
    let id = j["data"]["shareId"].as_str().unwrap().to_string();
    assert_eq!(
        v[0].1,
        format!(r#"{{"action":"announced","data":{{"shareId":"{id}"}}}}"#)
    );
    assert!(ShareId::parse(&id).is_some(), "8 lowercase hex: {id}");
    id
}

fn push_msg(id: &str) -> String {
    format!(r#"{{"action":"push","shareId":"{id}"}}"#)
}

const EXPIRED: &str = r#"{"action":"expired"}"#;
const UNKNOWN: &str = r#"{"action":"error","data":{"reason":"unknown shareId"}}"#;

#[test]
fn announce_gives_a_stable_keyed_id() {
    let r = rdv();
    let id = announce(&r, 0, "192.0.2.1:4000");
    assert_eq!(
        announce(&r, 5, "192.0.2.1:4000"),
        id,
        "same id on re-announce"
    );
    assert_eq!(
        send(
            &r,
            6,
            "192.0.2.1:4000",
            r#"{"action":"announce","id":"x","data":{}}"#
        )
        .1[0]
            .1,
        format!(r#"{{"action":"announced","data":{{"shareId":"{id}"}}}}"#),
        "other fields are ignored"
    );
    assert_ne!(announce(&r, 0, "192.0.2.1:4001"), id, "the port counts");
    // Keyed: another process (another key) gives another id.
    let other = Rendezvous::with_key(RendezvousConfig::default(), 8, [1; 16]);
    assert_ne!(announce(&other, 0, "192.0.2.1:4000"), id);
}

#[test]
fn push_introduces_both_peers() {
    let r = rdv();
    let alice = "192.0.2.1:4000";
    let bob = "198.51.100.7:23333";
    let ida = announce(&r, 0, alice);
    let idb = announce(&r, 0, bob);
    let (o, v) = send(&r, 1, alice, &push_msg(&idb));
    assert_eq!(o, Outcome::Pushed);
    assert_eq!(
        v,
        vec![
            (
                a(alice),
                format!(
                    r#"{{"action":"pushed","data":{{"peeraddr":"{bob}","peerShareId":"{idb}"}}}}"#
                )
            ),
            (
                a(bob),
                format!(
                    r#"{{"action":"income","data":{{"peeraddr":"{alice}","peerShareId":"{ida}"}}}}"#
                )
            ),
        ]
    );
    // The README's form: the id inside `data`.
    let (o, v2) = send(
        &r,
        1,
        alice,
        &format!(r#"{{"action":"push","data":{{"shareId":"{idb}"}}}}"#),
    );
    assert_eq!(o, Outcome::Pushed);
    assert_eq!(v2, v);
}

#[test]
fn push_to_self_sends_one_datagram() {
    let r = rdv();
    let id = announce(&r, 0, "192.0.2.1:4000");
    let (o, v) = send(&r, 0, "192.0.2.1:4000", &push_msg(&id));
    assert_eq!(o, Outcome::Pushed);
    assert_eq!(v.len(), 1);
    assert!(v[0].1.starts_with(r#"{"action":"pushed""#));
}

#[test]
fn push_from_unregistered_is_expired() {
    let r = rdv();
    let idb = announce(&r, 0, "198.51.100.7:1");
    let (o, v) = send(&r, 0, "192.0.2.1:4000", &push_msg(&idb));
    assert_eq!(o, Outcome::Expired);
    assert_eq!(v, vec![(a("192.0.2.1:4000"), EXPIRED.to_string())]);
}

#[test]
fn push_naming_unknown_or_malformed_id_is_an_error() {
    let r = rdv();
    let alice = "192.0.2.1:4000";
    let ida = announce(&r, 0, alice);
    let unknown = format!("{:08x}", u32::from_str_radix(&ida, 16).unwrap() ^ 0x100);
    for (t, req) in [
        push_msg(&unknown),
        push_msg("198.51.100.7:23333"), // makes the reference panic
        push_msg("[::1]:80"),
        r#"{"action":"push","shareId":12345678}"#.to_string(),
        push_msg(&format!("{ida}0")), // 9 characters
        push_msg(&ida[..7]),
        push_msg(&ida.to_uppercase()),
        r#"{"action":"push","shareId":{"a":1}}"#.to_string(),
        r#"{"action":"push","data":{"shareId":[1]}}"#.to_string(),
    ]
    .into_iter()
    .enumerate()
    {
        // A second apart: more requests than one burst of push tokens.
        let (o, v) = send(&r, t as u32, alice, &req);
        assert_eq!(o, Outcome::UnknownId, "{req}");
        assert_eq!(v, vec![(a(alice), UNKNOWN.to_string())], "{req}");
    }
}

#[test]
fn alive_refreshes_until_timeout() {
    let r = rdv();
    let alice = "192.0.2.1:4000";
    let ida = announce(&r, 0, alice);
    assert_eq!(
        send(&r, 299, alice, r#"{"action":"alive"}"#),
        (
            Outcome::Alive,
            vec![(a(alice), r#"{"action":"alived"}"#.to_string())]
        )
    );
    // Refreshed at 299: alive until 598, expired from 599 (timeout 300 s).
    let bob = "198.51.100.7:1";
    announce(&r, 598, bob);
    assert_eq!(send(&r, 598, bob, &push_msg(&ida)).0, Outcome::Pushed);
    assert_eq!(send(&r, 599, bob, &push_msg(&ida)).0, Outcome::UnknownId);
    assert_eq!(
        send(&r, 599, alice, r#"{"action":"alive"}"#),
        (Outcome::Expired, vec![(a(alice), EXPIRED.to_string())])
    );
    assert_eq!(
        send(&r, 0, "192.0.2.9:1", r#"{"action":"alive"}"#).0,
        Outcome::Expired,
        "never registered"
    );
    // Expired requester; a sweep removes what is left.
    assert_eq!(send(&r, 898, bob, &push_msg(&ida)).0, Outcome::Expired);
    announce(&r, 1000, alice);
    let swept: usize = (0..r.shard_count()).map(|i| r.expire_shard(i, 1300)).sum();
    assert_eq!(swept, 1);
    assert_eq!(r.registry().stats().entries, 0);
}

#[test]
fn cap_evicts_the_stalest() {
    let cfg = RendezvousConfig {
        max: 4,
        ..RendezvousConfig::default()
    };
    let r = Rendezvous::with_key(cfg, 1, KEY);
    let addrs: Vec<String> = (1..=5).map(|i| format!("192.0.2.{i}:1")).collect();
    for (t, s) in addrs.iter().take(4).enumerate() {
        announce(&r, t as u32, s);
    }
    // Refresh the oldest; the next stalest (2) goes when 5 arrives.
    assert_eq!(
        send(&r, 10, &addrs[0], r#"{"action":"alive"}"#).0,
        Outcome::Alive
    );
    announce(&r, 11, &addrs[4]);
    assert_eq!(r.registry().stats().entries, 4);
    let alive = |s: &str| send(&r, 12, s, r#"{"action":"alive"}"#).0;
    assert_eq!(alive(&addrs[1]), Outcome::Expired);
    for s in [&addrs[0], &addrs[2], &addrs[3], &addrs[4]] {
        assert_eq!(alive(s), Outcome::Alive, "{s}");
    }
}

#[test]
fn pushes_are_rate_limited_per_requester() {
    let r = rdv(); // push_rate 4: bursts of 8, then 4 a second
    let alice = "192.0.2.1:4000";
    announce(&r, 0, alice);
    let idb = announce(&r, 0, "198.51.100.7:1");
    for _ in 0..8 {
        assert_eq!(send(&r, 0, alice, &push_msg(&idb)).0, Outcome::Pushed);
    }
    let (o, v) = send(&r, 0, alice, &push_msg(&idb));
    assert_eq!((o, v.len()), (Outcome::RateLimited, 0), "nothing sent");
    // Guessing ids spends tokens too.
    assert_eq!(
        send(&r, 0, alice, &push_msg("00000000")).0,
        Outcome::RateLimited
    );
    for _ in 0..4 {
        assert_eq!(send(&r, 1, alice, &push_msg(&idb)).0, Outcome::Pushed);
    }
    assert_eq!(send(&r, 1, alice, &push_msg(&idb)).0, Outcome::RateLimited);
    // Another requester has its own tokens.
    announce(&r, 1, "192.0.2.2:4000");
    assert_eq!(
        send(&r, 1, "192.0.2.2:4000", &push_msg(&idb)).0,
        Outcome::Pushed
    );
}

#[test]
fn incomes_are_rate_limited_per_requestee() {
    let r = rdv(); // push_rate 4: incomes at 16 a second, bursts of 32
    let victim = announce(&r, 0, "198.51.100.7:1");
    let push = |t: u32, i: u32| {
        let src = format!("10.0.{}.{}:1", i / 256, i % 256);
        announce(&r, t, &src);
        send(&r, t, &src, &push_msg(&victim))
    };
    for i in 0..32 {
        assert_eq!(push(0, i).0, Outcome::Pushed);
    }
    let (o, v) = push(0, 32);
    assert_eq!((o, v.len()), (Outcome::RateLimited, 0));
    for i in 100..116 {
        assert_eq!(push(1, i).0, Outcome::Pushed);
    }
    assert_eq!(push(1, 116).0, Outcome::RateLimited);
}

#[test]
fn ipv6_and_mapped_addresses() {
    let r = rdv();
    let v6 = "[2001:db8::7]:5000";
    let id6 = announce(&r, 0, v6);
    // IPv4-mapped is IPv4: same registration, written as IPv4.
    let mapped = "[::ffff:192.0.2.1]:4000";
    let id4 = announce(&r, 0, mapped);
    assert_eq!(announce(&r, 0, "192.0.2.1:4000"), id4);
    let (o, v) = send(&r, 0, mapped, &push_msg(&id6));
    assert_eq!(o, Outcome::Pushed);
    assert_eq!(
        v,
        vec![
            (
                a("192.0.2.1:4000"),
                format!(
                    r#"{{"action":"pushed","data":{{"peeraddr":"[2001:db8::7]:5000","peerShareId":"{id6}"}}}}"#
                )
            ),
            (
                a(v6),
                format!(
                    r#"{{"action":"income","data":{{"peeraddr":"192.0.2.1:4000","peerShareId":"{id4}"}}}}"#
                )
            ),
        ]
    );
    // Scope id and flow info are not part of the address.
    let scoped: SocketAddr =
        std::net::SocketAddrV6::new("2001:db8::7".parse().unwrap(), 5000, 9, 3).into();
    let mut out = Replies::new();
    assert_eq!(
        r.handle(0, scoped, br#"{"action":"alive"}"#, &mut out),
        Outcome::Alive
    );
    assert_eq!(out.get(0).unwrap().0, a(v6));
}

#[test]
fn garbage_is_dropped_silently() {
    let r = rdv();
    announce(&r, 0, "192.0.2.1:1");
    let mut big = String::from(r#"{"action":"announce","pad":""#);
    big.push_str(&" ".repeat(MAX_REQUEST_FOR_TEST));
    big.push_str(r#""}"#);
    for (req, why) in [
        ("", DropReason::NotJson),
        ("announce", DropReason::NotJson),
        ("{}", DropReason::NotJson),
        (r#"{"action":7}"#, DropReason::NotJson),
        (r#"{"action":null}"#, DropReason::NotJson),
        (r#"{"action":"ANNOUNCE"}"#, DropReason::UnknownAction),
        (r#"{"action":"announced"}"#, DropReason::UnknownAction),
        (r#"{"action":"push"}"#, DropReason::BadPush),
        (r#"{"action":"push","shareId":null}"#, DropReason::BadPush),
        (r#"{"action":"push","data":5}"#, DropReason::BadPush),
        (big.as_str(), DropReason::TooLarge),
    ] {
        let (o, v) = send(&r, 0, "192.0.2.1:1", req);
        assert_eq!(o, Outcome::Dropped(why), "{req}");
        assert!(v.is_empty());
    }
}

const MAX_REQUEST_FOR_TEST: usize = message::MAX_REQUEST;

/// The smallest well-formed requests against the longest addresses stay within
/// the bound, so the guard never hurts a real client.
#[test]
fn amplification_bound_holds_for_minimal_requests() {
    let r = rdv();
    let long6 = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe]:65535";
    let long4 = "255.255.255.254:65535";
    let id6 = announce(&r, 0, long6);
    let id4 = announce(&r, 0, long4);
    for (src, req, want) in [
        (
            long6,
            r#"{"action":"announce"}"#.to_string(),
            Outcome::Announced,
        ),
        (long6, r#"{"action":"alive"}"#.to_string(), Outcome::Alive),
        (
            "192.0.2.1:1",
            r#"{"action":"alive"}"#.to_string(),
            Outcome::Expired,
        ),
        ("192.0.2.1:1", push_msg(&id6), Outcome::Expired),
        (long4, push_msg(&id6), Outcome::Pushed),
        (long6, push_msg(&id4), Outcome::Pushed),
        (long4, push_msg(&id4), Outcome::Pushed),
        (
            long4,
            r#"{"action":"push","shareId":0}"#.to_string(),
            Outcome::UnknownId,
        ),
    ] {
        let mut out = Replies::new();
        let o = r.handle(0, a(src), req.as_bytes(), &mut out);
        assert_eq!(o, want, "{req}");
        assert!(!out.is_empty());
        let n = req.len();
        assert!(out.bytes_to(a(src)) <= SOURCE_FACTOR * n, "{req}");
        assert!(out.total_bytes() <= TOTAL_FACTOR * n, "{req}");
    }
    // The tightest case is exact: 114 bytes for 38.
    let mut out = Replies::new();
    let req = push_msg(&id6);
    r.handle(0, a(long4), req.as_bytes(), &mut out);
    assert_eq!((req.len(), out.get(0).unwrap().1.len()), (38, 114));
}

#[test]
fn outcome_labels_are_distinct() {
    let mut seen = std::collections::HashSet::new();
    for (i, o) in Outcome::ALL.iter().enumerate() {
        assert!(seen.insert(o.as_str()));
        assert_eq!(o.index(), i);
    }
    for d in DropReason::ALL {
        assert!(Outcome::ALL.contains(&Outcome::Dropped(d)));
    }
}

fn arb_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
    ]
}

fn check_bound(req: &[u8], src: SocketAddr, out: &Replies) {
    let src = canonical(src);
    assert!(out.bytes_to(src) <= SOURCE_FACTOR * req.len());
    assert!(out.total_bytes() <= TOTAL_FACTOR * req.len());
    assert!(out.len() <= 2);
    for (_, b) in out.iter() {
        assert!(b.len() <= REPLY_MAX);
        serde_json::from_slice::<serde_json::Value>(b).unwrap();
    }
}

/// Every prefix and every one-byte corruption of every valid message: no panic,
/// replies bounded.
#[test]
fn truncated_and_corrupted_messages() {
    let r = rdv();
    let src = a("192.0.2.1:1");
    let id = announce(&r, 0, "192.0.2.1:1");
    let mut out = Replies::new();
    for msg in [
        r#"{"action":"announce","id":"x"}"#.to_string(),
        r#"{"action":"alive"}"#.to_string(),
        push_msg(&id),
        format!(r#"{{"action":"push","data":{{"shareId":"{id}"}}}}"#),
    ] {
        let b = msg.as_bytes();
        for n in 0..=b.len() {
            r.handle(0, src, &b[..n], &mut out);
            check_bound(&b[..n], src, &out);
        }
        for i in 0..b.len() {
            for v in [0u8, b'"', b'{', b'}', b'\\', 0xff, b' '] {
                let mut m = b.to_vec();
                m[i] = v;
                r.handle(0, src, &m, &mut out);
                check_bound(&m, src, &out);
            }
        }
    }
}

#[test]
fn config_validation() {
    assert!(RendezvousConfig::default().validate().is_ok());
    for bad in [
        RendezvousConfig {
            timeout: 0,
            ..Default::default()
        },
        RendezvousConfig {
            max: 0,
            ..Default::default()
        },
        RendezvousConfig {
            max: MAX_REGISTRATIONS + 1,
            ..Default::default()
        },
        RendezvousConfig {
            push_rate: 0,
            ..Default::default()
        },
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), src in arb_addr(), now in any::<u32>()) {
        let r = rdv();
        let mut out = Replies::new();
        r.handle(now, src, &bytes, &mut out);
        check_bound(&bytes, src, &out);
    }

    /// Near-miss JSON: real actions and fields with arbitrary values, from a
    /// population of registered addresses, at arbitrary times.
    #[test]
    fn protocol_shaped_requests_stay_bounded(
        steps in proptest::collection::vec(
            (0usize..4, 0usize..6, "[a-f0-9:\\[\\].]{0,12}", 0u32..700),
            1..60,
        ),
        addrs in proptest::collection::vec(arb_addr(), 1..4),
    ) {
        let r = Rendezvous::with_key(RendezvousConfig { max: 3, ..RendezvousConfig::default() }, 2, KEY);
        let mut out = Replies::new();
        let mut ids: Vec<String> = Vec::new();
        let mut now = 0u32;
        for (who, kind, s, dt) in steps {
            now = now.saturating_add(dt);
            let src = addrs[who % addrs.len()];
            let id = ids.get(who % ids.len().max(1)).cloned().unwrap_or_default();
            let req = match kind {
                0 => r#"{"action":"announce"}"#.to_string(),
                1 => r#"{"action":"alive"}"#.to_string(),
                2 => push_msg(&id),
                3 => push_msg(&s),
                4 => format!(r#"{{"action":"push","data":{{"shareId":"{id}"}}}}"#),
                _ => format!(r#"{{"action":"{s}"}}"#),
            };
            let o = r.handle(now, src, req.as_bytes(), &mut out);
            check_bound(req.as_bytes(), src, &out);
            if o == Outcome::Announced {
                let (_, b) = out.get(0).unwrap();
                let j: serde_json::Value = serde_json::from_slice(b).unwrap();
                ids.push(j["data"]["shareId"].as_str().unwrap().to_string());
            }
            prop_assert!(o != Outcome::Dropped(DropReason::Amplification), "{req}");
            prop_assert!(r.registry().stats().entries <= 4);
        }
    }
}
