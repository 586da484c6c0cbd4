//! Byte fixtures and properties of the frames.
//!
//! The fixtures were written by scapy 2.8, an implementation independent of
//! this one, with a BEP 15 connect request and its response as payloads:
//! ```text
//! cm, tm = "02:00:00:00:00:01", "02:00:00:00:00:02"
//! Ether(src=cm, dst=tm)/IP(src="10.0.0.1", dst="10.0.0.2", id=0x1c46, flags="DF", ttl=64)/UDP(sport=40000, dport=6969)/Raw(REQ)
//! Ether(src=tm, dst=cm)/IP(src="10.0.0.2", dst="10.0.0.1", id=0, flags="DF", ttl=64)/UDP(sport=6969, dport=40000)/Raw(REP)
//! Ether(src=cm, dst=tm)/IPv6(src="fd00::1", dst="fd00::2", hlim=64)/UDP(sport=40000, dport=6969)/Raw(REQ)
//! Ether(src=tm, dst=cm)/IPv6(src="fd00::2", dst="fd00::1", hlim=64)/UDP(sport=6969, dport=40000)/Raw(REP)
//! ```

use super::*;

const V4_REQ: &str = "020000000002 020000000001 0800
    4500002c1c46400040110a790a0000010a000002 9c401b3900188a13
    0000041727101980 00000000 a1b2c3d4";
const V4_REP: &str = "020000000001 020000000002 0800
    4500002c00004000401126bf0a0000020a000001 1b399c4000183095
    00000000 a1b2c3d4 0123456789abcdef";
const V6_REQ: &str = "020000000002 020000000001 86dd
    6000000000181140 fd000000000000000000000000000001 fd000000000000000000000000000002
    9c401b390018a411
    0000041727101980 00000000 a1b2c3d4";
const V6_REP: &str = "020000000001 020000000002 86dd
    6000000000181140 fd000000000000000000000000000002 fd000000000000000000000000000001
    1b399c4000184a93
    00000000 a1b2c3d4 0123456789abcdef";
const CONNECT_REQ: &str = "0000041727101980 00000000 a1b2c3d4";
const CONNECT_REP: &str = "00000000 a1b2c3d4 0123456789abcdef";

const CLIENT_MAC: Mac = [2, 0, 0, 0, 0, 1];
const TRACKER_MAC: Mac = [2, 0, 0, 0, 0, 2];
const PORTS: &[u16] = &[6969];

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The RFC 1071 sum the plain way, 16 bits at a time: an oracle for the
/// 32-bit-word sum the module uses.
fn rfc1071(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in bytes.chunks(2) {
        let word = u32::from(pair[0]) << 8 | u32::from(*pair.get(1).unwrap_or(&0));
        sum += word;
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// True if the UDP checksum of the frame (no padding) verifies.
fn udp_checksum_ok(frame: &[u8]) -> bool {
    let (at, mut pseudo) = match BigEndian::read_u16(&frame[eth::ETHERTYPE]) {
        ETHERTYPE_IPV4 => (ipv4::END, frame[ipv4::SRC.start..ipv4::END].to_vec()),
        _ => (ipv6::END, frame[ipv6::SRC.start..ipv6::END].to_vec()),
    };
    let len = BigEndian::read_u16(&frame[at + 4..at + 6]);
    pseudo.extend_from_slice(&[0, IPPROTO_UDP]);
    pseudo.extend_from_slice(&len.to_be_bytes());
    pseudo.extend_from_slice(&frame[at..at + usize::from(len)]);
    rfc1071(&pseudo) == 0
}

/// Recomputes the IPv4 header checksum after a test edited the header.
fn fix_v4(frame: &mut [u8]) {
    BigEndian::write_u16(&mut frame[ipv4::CHECKSUM], 0);
    let sum = rfc1071(&frame[ipv4::HEADER]);
    BigEndian::write_u16(&mut frame[ipv4::CHECKSUM], sum);
}

fn v4(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}

fn v6(last: u8, port: u16) -> SocketAddr {
    let mut ip = [0u8; 16];
    ip[0] = 0xfd;
    ip[15] = last;
    SocketAddr::from((ip, port))
}

#[test]
fn test_field_tables_tile_the_headers() {
    assert_eq!(eth::DST.end, eth::SRC.start);
    assert_eq!(eth::SRC.end, eth::ETHERTYPE.start);
    assert_eq!(eth::ETHERTYPE.end, eth::END);
    assert_eq!(ipv4::HEADER, eth::END..ipv4::END);
    assert_eq!(ipv4::VER_IHL, eth::END);
    assert_eq!(ipv4::DST.end, ipv4::END);
    assert_eq!(ipv6::VER_TC_FLOW.start, eth::END);
    assert_eq!(ipv6::DST.end, ipv6::END);
    assert_eq!(ipv6::END - eth::END, 40);
    assert_eq!(udp::CHECKSUM.end, udp::HEADER);
}

#[test]
fn test_parse_v4_connect() {
    let frame = hex(V4_REQ);
    let (d, payload) = parse(&frame, PORTS).unwrap();
    assert_eq!(d.src(), v4([10, 0, 0, 1], 40000));
    assert_eq!(d.dst(), v4([10, 0, 0, 2], 6969));
    assert_eq!(d.src_mac(), CLIENT_MAC);
    assert_eq!(d.dst_mac(), TRACKER_MAC);
    assert_eq!(payload, hex(CONNECT_REQ));
    assert!(udp_checksum_ok(&frame));
}

#[test]
fn test_parse_v6_connect() {
    let frame = hex(V6_REQ);
    let (d, payload) = parse(&frame, PORTS).unwrap();
    assert_eq!(d.src(), v6(1, 40000));
    assert_eq!(d.dst(), v6(2, 6969));
    assert_eq!(d.src_mac(), CLIENT_MAC);
    assert_eq!(d.dst_mac(), TRACKER_MAC);
    assert_eq!(payload, hex(CONNECT_REQ));
}

/// A short frame arrives padded to 60 bytes: the payload ends where the IP
/// length says, not at the padding.
#[test]
fn test_parse_ignores_ethernet_padding() {
    let mut frame = hex(V4_REQ);
    frame.resize(MIN_FRAME, 0);
    let (_, payload) = parse(&frame, PORTS).unwrap();
    assert_eq!(payload, hex(CONNECT_REQ));
}

/// The reply a worker writes is byte for byte scapy's (plus the padding to
/// 60 bytes for IPv4): MACs, addresses and ports swapped, IPv4 header
/// checksum and UDP checksum right.
#[test]
fn test_write_reply_matches_fixtures() {
    for (req, rep) in [(V4_REQ, V4_REP), (V6_REQ, V6_REP)] {
        let (d, _) = parse(&hex(req), PORTS).unwrap();
        let r = d.reply();
        let mut out = [0xAAu8; 2048];
        let body = hex(CONNECT_REP);
        let at = r.header_len();
        out[at..at + body.len()].copy_from_slice(&body);
        let n = r.write(&mut out, body.len()).unwrap();
        let mut want = hex(rep);
        want.resize(want.len().max(MIN_FRAME), 0);
        assert_eq!(out[..n], want[..], "{req}");
        assert!(udp_checksum_ok(&out[..n]));
    }
}

#[test]
fn test_write_refuses_what_does_not_fit() {
    let (d, _) = parse(&hex(V6_REQ), PORTS).unwrap();
    let mut out = [0u8; 100];
    assert_eq!(d.write(&mut out, 100 - HEADERS_V6), Some(100));
    assert_eq!(d.write(&mut out, 101 - HEADERS_V6), None);
    let mut big = vec![0u8; 70_000];
    assert_eq!(d.write(&mut big, 65_535 - udp::HEADER + 1), None);
    let (d4, _) = parse(&hex(V4_REQ), PORTS).unwrap();
    // An IPv4 total length must fit in 16 bits with its own header.
    assert_eq!(d4.write(&mut big, 65_535 - 28 + 1), None);
    assert!(d4.write(&mut big, 65_535 - 28).is_some());
    // Too small even for the padded minimum.
    assert_eq!(d4.write(&mut [0u8; 59], 0), None);
    assert!(Datagram::new(CLIENT_MAC, TRACKER_MAC, v4([1, 2, 3, 4], 1), v6(1, 1)).is_none());
}

/// Each rule, one edit of a good frame.
#[test]
fn test_parse_refusals() {
    let edit = |base: &str, f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = hex(base);
        f(&mut b);
        parse(&b, PORTS).map(|_| ()).unwrap_err()
    };
    let v4e = |f: &dyn Fn(&mut Vec<u8>)| {
        edit(V4_REQ, &|b: &mut Vec<u8>| {
            f(b);
            fix_v4(b)
        })
    };
    // Ethernet.
    assert_eq!(edit(V4_REQ, &|b| b.truncate(41)), Skip::Truncated);
    assert_eq!(
        edit(V4_REQ, &|b| b[12..14].copy_from_slice(&[8, 6])),
        Skip::NotIp
    ); // ARP
    assert_eq!(
        edit(V4_REQ, &|b| b[12..14].copy_from_slice(&[0x81, 0])),
        Skip::NotIp
    ); // 802.1Q
    assert_eq!(edit(V4_REQ, &|b| b[6] = 3), Skip::BadSource); // group MAC
                                                              // IPv4.
    assert_eq!(v4e(&|b| b[14] = 0x65), Skip::BadVersion);
    assert_eq!(v4e(&|b| b[14] = 0x44), Skip::BadLength);
    assert_eq!(v4e(&|b| b[14] = 0x46), Skip::IpOptions);
    assert_eq!(v4e(&|b| b[20] = 0x20), Skip::Fragment); // MF
    assert_eq!(v4e(&|b| b[21] = 1), Skip::Fragment); // offset 8
    assert_eq!(v4e(&|b| b[20] = 0x41), Skip::Fragment); // DF and an offset
    assert_eq!(v4e(&|b| b[23] = 6), Skip::NotUdp); // TCP
    assert_eq!(v4e(&|b| b[17] = 0x2d), Skip::BadLength); // past the frame
    assert_eq!(v4e(&|b| b[17] = 27), Skip::BadLength); // shorter than a UDP header
    assert_eq!(v4e(&|b| b[39] = 0x17), Skip::BadLength); // UDP length != IP's
    assert_eq!(edit(V4_REQ, &|b| b[22] = 63), Skip::BadChecksum); // TTL without a new checksum
    assert_eq!(
        v4e(&|b| b[26..30].copy_from_slice(&[255; 4])),
        Skip::BadSource
    );
    assert_eq!(v4e(&|b| b[26] = 224), Skip::BadSource);
    assert_eq!(v4e(&|b| b[26..30].fill(0)), Skip::BadSource);
    // UDP.
    assert_eq!(edit(V4_REQ, &|b| b[37] = 0x3a), Skip::OtherPort);
    assert_eq!(edit(V4_REQ, &|b| b[34..36].fill(0)), Skip::BadSource);
    // IPv6.
    assert_eq!(edit(V6_REQ, &|b| b.truncate(61)), Skip::Truncated);
    assert_eq!(edit(V6_REQ, &|b| b[14] = 0x40), Skip::BadVersion);
    assert_eq!(edit(V6_REQ, &|b| b[20] = 44), Skip::Fragment);
    assert_eq!(edit(V6_REQ, &|b| b[20] = 0), Skip::IpOptions); // hop-by-hop
    assert_eq!(edit(V6_REQ, &|b| b[20] = 60), Skip::IpOptions);
    assert_eq!(edit(V6_REQ, &|b| b[20] = 58), Skip::NotUdp); // ICMPv6
    assert_eq!(edit(V6_REQ, &|b| b[19] = 0x19), Skip::BadLength);
    assert_eq!(edit(V6_REQ, &|b| b[19] = 7), Skip::BadLength);
    assert_eq!(edit(V6_REQ, &|b| b[59] = 0x17), Skip::BadLength);
    assert_eq!(edit(V6_REQ, &|b| b[60..62].fill(0)), Skip::BadChecksum);
    assert_eq!(edit(V6_REQ, &|b| b[22] = 0xff), Skip::BadSource);
    assert_eq!(edit(V6_REQ, &|b| b[22..38].fill(0)), Skip::BadSource);
    assert_eq!(edit(V6_REQ, &|b| b[57] = 0x3a), Skip::OtherPort);
    assert_eq!(parse(&hex(V6_REQ), &[1, 2, 6969]).map(|_| ()), Ok(()));
    assert_eq!(parse(&hex(V6_REQ), &[]).map(|_| ()), Err(Skip::OtherPort));
}

#[test]
fn test_checksum_agrees_with_rfc1071() {
    for len in 0..64 {
        let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
        assert_eq!(checksum(&bytes), rfc1071(&bytes), "{len}");
    }
    assert_eq!(checksum(&[0xFF; 4000]), rfc1071(&[0xFF; 4000]));
}

mod proptests {
    use super::*;
    use proptest::prelude::*;

    fn ends() -> impl Strategy<Value = (SocketAddr, SocketAddr)> {
        let port = 1..=u16::MAX;
        prop_oneof![
            (
                any::<[u8; 4]>(),
                port.clone(),
                any::<[u8; 4]>(),
                port.clone()
            )
                .prop_map(|(s, sp, d, dp)| (v4(s, sp), v4(d, dp))),
            (any::<[u8; 16]>(), port.clone(), any::<[u8; 16]>(), port)
                .prop_map(|(s, sp, d, dp)| (SocketAddr::from((s, sp)), SocketAddr::from((d, dp)))),
        ]
        .prop_filter("answerable ends", |(s, d)| answerable(s) && answerable(d))
    }

    /// What [`parse`] accepts as a source.
    fn answerable(a: &SocketAddr) -> bool {
        match a.ip() {
            IpAddr::V4(ip) => !(ip.is_broadcast() || ip.is_multicast() || ip.is_unspecified()),
            IpAddr::V6(ip) => !(ip.is_multicast() || ip.is_unspecified()),
        }
    }

    fn mutate(base: &str, edits: &[(usize, u8)], cut: usize) -> Vec<u8> {
        let mut b = hex(base);
        for &(i, v) in edits {
            let n = b.len();
            b[i % n] = v;
        }
        b.truncate(b.len() - cut % 8);
        b
    }

    proptest! {
        /// A frame written from any answerable end to any other reads back
        /// as the same two ends and payload, with checksums that verify;
        /// its reply reads back with the ends swapped.
        #[test]
        fn write_parse_round_trip(
            (src, dst) in ends(),
            macs in any::<(Mac, Mac)>(),
            body in proptest::collection::vec(any::<u8>(), 0..1500),
        ) {
            let src_mac = [macs.0[0] & !1, macs.0[1], macs.0[2], macs.0[3], macs.0[4], macs.0[5]];
            let d = Datagram::new(src_mac, macs.1, src, dst).unwrap();
            let mut frame = vec![0u8; 1600];
            let at = d.header_len();
            frame[at..at + body.len()].copy_from_slice(&body);
            let n = d.write(&mut frame, body.len()).unwrap();
            prop_assert_eq!(n, (at + body.len()).max(MIN_FRAME));
            prop_assert!(udp_checksum_ok(&frame[..n]));
            let (got, payload) = parse(&frame[..n], &[dst.port()]).unwrap();
            prop_assert_eq!(got, d);
            prop_assert_eq!(got.src(), src);
            prop_assert_eq!(got.dst(), dst);
            prop_assert_eq!(payload, &body[..]);

            let r = got.reply();
            prop_assert_eq!((r.src(), r.dst()), (dst, src));
            if r.src_mac()[0] & 1 == 0 {
                let n = r.write(&mut frame, body.len()).unwrap();
                let (back, payload) = parse(&frame[..n], &[src.port()]).unwrap();
                prop_assert_eq!(back, r);
                prop_assert_eq!(payload, &body[..]);
            }
        }

        #[test]
        fn no_input_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok((d, payload)) = parse(&bytes, PORTS) {
                prop_assert!(payload.len() <= bytes.len());
                let mut out = [0u8; 256];
                let _ = d.reply().write(&mut out, payload.len());
            }
        }

        /// Edits of good frames (most of which fail a check, some of which
        /// pass) never panic, and a frame that still parses still has a
        /// payload inside it.
        #[test]
        fn no_edit_of_a_good_frame_panics(
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
            cut in any::<usize>(),
        ) {
            for base in [V4_REQ, V6_REQ] {
                let b = mutate(base, &edits, cut);
                if let Ok((_, payload)) = parse(&b, PORTS) {
                    prop_assert!(payload.len() <= b.len() - HEADERS_V4);
                }
            }
        }
    }
}
