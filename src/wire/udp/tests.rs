//! Byte fixtures and properties of the BEP 15 frames.

use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The table is the only copy of the layouts: each frame's fields must tile
/// it from byte 0 with no gap or overlap, to the BEP 15 lengths.
#[test]
fn test_field_table_tiles_each_frame() {
    use field::*;
    fn tiles(fields: &[Field], len: usize) {
        assert_eq!(fields[0].start, 0);
        for w in fields.windows(2) {
            assert_eq!(w[0].end, w[1].start, "{w:?}");
        }
        assert_eq!(fields[fields.len() - 1].end, len);
    }
    let head = [
        request::CONNECTION_ID,
        request::ACTION,
        request::TRANSACTION_ID,
    ];
    tiles(&head, 16);
    let body = [
        announce::INFO_HASH,
        announce::PEER_ID,
        announce::DOWNLOADED,
        announce::LEFT,
        announce::UPLOADED,
        announce::EVENT,
        announce::IP,
        announce::KEY,
        announce::NUM_WANT,
        announce::PORT,
    ];
    tiles(&[&head[..], &body[..]].concat(), 98);
    assert_eq!(announce::OPTIONS.start, 98);
    assert_eq!(scrape::INFO_HASHES.start, 16);
    let resp = [response::ACTION, response::TRANSACTION_ID];
    tiles(&resp, 8);
    tiles(
        &[&resp[..], &[connect_response::CONNECTION_ID]].concat(),
        16,
    );
    let ann = [
        announce_response::INTERVAL,
        announce_response::LEECHERS,
        announce_response::SEEDERS,
    ];
    tiles(&[&resp[..], &ann[..]].concat(), 20);
    assert_eq!(announce_response::PEERS.start, 20);
    assert_eq!(scrape_response::ROWS.start, 8);
    assert_eq!(error_response::MESSAGE.start, 8);
    let row = [
        scrape_row::SEEDERS,
        scrape_row::COMPLETED,
        scrape_row::LEECHERS,
    ];
    tiles(&row, 12);
    tiles(&[peer4::IP, peer4::PORT], 6);
    tiles(&[peer6::IP, peer6::PORT], 18);
    assert_eq!((option::KIND, option::LEN, option::DATA.start), (0, 1, 2));
    assert_eq!(HASH_LEN, 20);
}

#[test]
fn test_parse_connect() {
    let buf = hex("00000417 27101980 00000000 deadbeef");
    assert_eq!(
        parse_request(&buf),
        Ok(Request::Connect(ConnectRequest {
            transaction_id: 0xdeadbeef
        }))
    );
}

#[test]
fn test_connect_bad_magic_and_short() {
    let buf = hex("00000417 27101981 00000000 deadbeef");
    assert_eq!(parse_request(&buf), Err(ParseError::BadProtocolId));
    assert_eq!(parse_request(&buf[..15]), Err(ParseError::Truncated));
    assert_eq!(parse_request(&[]), Err(ParseError::Truncated));
}

const ANNOUNCE_HEX: &str = "
    0102030405060708 00000001 0000abcd
    1111111111111111111111111111111111111111
    2d5452343030302d6162636465666768696a6b6c
    0000000000000010 0000000000000020 0000000000000030
    00000004 7f000001 00001234 ffffffff 1ae1";

#[test]
fn test_parse_announce() {
    let buf = hex(ANNOUNCE_HEX);
    assert_eq!(buf.len(), 98);
    let Ok(Request::Announce(a)) = parse_request(&buf) else {
        panic!("not an announce")
    };
    assert_eq!(a.connection_id, 0x0102030405060708);
    assert_eq!(a.transaction_id, 0xabcd);
    assert_eq!(a.info_hash, [0x11; 20]);
    assert_eq!(&a.peer_id[..8], b"-TR4000-");
    assert_eq!((a.downloaded, a.left, a.uploaded), (16, 32, 48));
    assert_eq!(a.event, Event::None, "event 4 (paused) reads as none");
    assert_eq!(a.ip, 0x7f000001);
    assert_eq!(a.key, 0x1234);
    assert_eq!(a.num_want, -1);
    assert_eq!(a.port, 6881);
    assert_eq!(a.options.iter().count(), 0);
    assert_eq!(parse_request(&buf[..97]), Err(ParseError::Truncated));
}

#[test]
fn test_announce_roundtrip_with_url_data() {
    let buf = hex(ANNOUNCE_HEX);
    let Ok(Request::Announce(a)) = parse_request(&buf) else {
        panic!()
    };
    let mut out = [0u8; 1024];
    let url = b"/announce?passkey=abc";
    let n = write_announce_request(&mut out, &a, url).unwrap();
    assert_eq!(n, 98 + 2 + url.len());
    // event 4 does not survive the round trip: it was read as "none" (0).
    assert_eq!(&out[..80], &buf[..80]);
    assert_eq!(&out[80..84], &[0, 0, 0, 0]);
    assert_eq!(&out[84..98], &buf[84..98]);
    let Ok(Request::Announce(b)) = parse_request(&out[..n]) else {
        panic!()
    };
    let mut url_buf = [0u8; 64];
    let m = b.options.copy_url_data(&mut url_buf);
    assert_eq!(&url_buf[..m], url);
}

#[test]
fn test_bep41_options() {
    // libtorrent's "02 01 2f" for a tracker URL without a path.
    let o = Options(&[2, 1, b'/']);
    assert_eq!(
        o.iter().collect::<Vec<_>>(),
        vec![AnnounceOption::UrlData(b"/")]
    );
    // NOPs, two URL pieces that concatenate, then end-of-options hides the rest.
    let bytes = [
        1, 1, 2, 2, b'/', b'a', 1, 2, 3, b'b', b'?', b'x', 0, 2, 1, b'z',
    ];
    let o = Options(&bytes);
    let mut buf = [0u8; 16];
    let n = o.copy_url_data(&mut buf);
    assert_eq!(&buf[..n], b"/ab?x");
    // Unknown types are skipped by their length.
    let o = Options(&[9, 2, 0xaa, 0xbb, 2, 1, b'/']);
    assert_eq!(
        o.iter().collect::<Vec<_>>(),
        vec![
            AnnounceOption::Unknown(9, &[0xaa, 0xbb]),
            AnnounceOption::UrlData(b"/")
        ]
    );
    // Truncated length or payload: iteration stops, no panic.
    assert_eq!(Options(&[2]).iter().count(), 0);
    assert_eq!(Options(&[2, 5, b'/']).iter().count(), 0);
    // copy_url_data stops at a full buffer.
    let mut small = [0u8; 2];
    assert_eq!(
        Options(&[2, 3, b'a', b'b', b'c']).copy_url_data(&mut small),
        2
    );
}

#[test]
fn test_parse_scrape() {
    let mut buf = hex("0102030405060708 00000002 00000007");
    buf.extend_from_slice(&[0xaa; 20]);
    buf.extend_from_slice(&[0xbb; 20]);
    buf.extend_from_slice(&[0xaa; 20]);
    buf.extend_from_slice(&[0xcc; 7]); // trailing partial hash: ignored
    let Ok(Request::Scrape(s)) = parse_request(&buf) else {
        panic!()
    };
    assert_eq!(s.connection_id, 0x0102030405060708);
    assert_eq!(s.transaction_id, 7);
    let hashes: Vec<_> = s.info_hashes().copied().collect();
    assert_eq!(hashes, vec![[0xaa; 20], [0xbb; 20], [0xaa; 20]]);
    assert_eq!(s.len(), 3);
}

#[test]
fn test_unknown_action() {
    let buf = hex("0102030405060708 00000003 00000007");
    assert_eq!(parse_request(&buf), Err(ParseError::UnknownAction));
    let buf = hex("0102030405060708 00000009 00000007");
    assert_eq!(parse_request(&buf), Err(ParseError::UnknownAction));
}

#[test]
fn test_emit_connect() {
    let mut out = [0u8; 16];
    assert_eq!(
        write_connect_response(&mut out, 0xdeadbeef, 0x0102030405060708),
        Some(16)
    );
    assert_eq!(out.to_vec(), hex("00000000 deadbeef 0102030405060708"));
    assert_eq!(write_connect_response(&mut out[..15], 1, 1), None);
}

#[test]
fn test_emit_announce() {
    let mut out = [0u8; 64];
    let mut n = write_announce_header(&mut out, 5, 1800, 3, 4).unwrap();
    n += write_peer4(&mut out[n..], Ipv4Addr::new(10, 0, 0, 1), 6881).unwrap();
    assert_eq!(
        out[..n].to_vec(),
        hex("00000001 00000005 00000708 00000003 00000004 0a000001 1ae1")
    );
    let mut out6 = [0u8; 18];
    write_peer6(&mut out6, Ipv6Addr::LOCALHOST, 80).unwrap();
    assert_eq!(out6.to_vec(), hex("00000000000000000000000000000001 0050"));
    assert_eq!(write_peer6(&mut out6[..17], Ipv6Addr::LOCALHOST, 80), None);
}

#[test]
fn test_emit_scrape_and_error() {
    let mut out = [0u8; 32];
    let mut n = write_scrape_header(&mut out, 9).unwrap();
    n += write_scrape_row(&mut out[n..], 1, 2, 3).unwrap();
    assert_eq!(
        out[..n].to_vec(),
        hex("00000002 00000009 00000001 00000002 00000003")
    );
    let n = write_error_response(&mut out, 9, "bad").unwrap();
    assert_eq!(out[..n].to_vec(), hex("00000003 00000009 626164"));
    // The message is truncated, never overflows.
    let n = write_error_response(&mut out[..10], 9, "a long message").unwrap();
    assert_eq!(n, 10);
}

#[test]
fn test_parse_responses() {
    let buf = hex("00000000 deadbeef 0102030405060708");
    assert_eq!(
        parse_response(&buf),
        Ok(Response::Connect {
            transaction_id: 0xdeadbeef,
            connection_id: 0x0102030405060708
        })
    );
    let buf = hex("00000001 00000005 00000708 00000003 00000004 0a000001 1ae1");
    let Ok(Response::Announce {
        seeders,
        leechers,
        peers,
        ..
    }) = parse_response(&buf)
    else {
        panic!()
    };
    assert_eq!((seeders, leechers, peers.len()), (4, 3, 6));
    let buf = hex("00000002 00000009 00000001 00000002 00000003");
    let Ok(Response::Scrape { rows, .. }) = parse_response(&buf) else {
        panic!()
    };
    assert_eq!(read_scrape_row(rows), Some((1, 2, 3)));
    let buf = hex("00000003 00000009 626164");
    assert_eq!(
        parse_response(&buf),
        Ok(Response::Error {
            transaction_id: 9,
            message: b"bad"
        })
    );
}

#[test]
fn test_scrape_request_roundtrip() {
    let mut out = [0u8; 100];
    let n = write_scrape_request(&mut out, 42, 7, &[[1; 20], [2; 20]]).unwrap();
    let Ok(Request::Scrape(s)) = parse_request(&out[..n]) else {
        panic!()
    };
    assert_eq!((s.connection_id, s.transaction_id, s.len()), (42, 7, 2));
    let mut c = [0u8; 16];
    write_connect_request(&mut c, 3).unwrap();
    assert_eq!(
        parse_request(&c),
        Ok(Request::Connect(ConnectRequest { transaction_id: 3 }))
    );
}

mod proptests {
    use super::*;
    use proptest::prelude::*;

    /// The look-ahead reads the hashes the parser reads, wherever the parser
    /// reads some; where it does not, at most what the bytes hold at the
    /// announce's place (a truncated announce), never past the end.
    fn peek_agrees(bytes: &[u8]) {
        let peeked = peek_info_hashes(bytes);
        match parse_request(bytes) {
            Ok(Request::Announce(a)) => assert_eq!(peeked, &[a.info_hash]),
            Ok(Request::Scrape(s)) => assert_eq!(peeked.as_flattened(), s.info_hashes),
            Ok(Request::Connect(_)) => assert!(peeked.is_empty()),
            Err(_) => {
                assert!(peeked.len() <= 1);
                if let Some(h) = peeked.first() {
                    assert_eq!(&bytes[16..36], h);
                }
            }
        }
    }

    proptest! {
        #[test]
        fn no_input_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1500)) {
            if let Ok(Request::Announce(a)) = parse_request(&bytes) {
                let mut buf = [0u8; 64];
                let _ = a.options.copy_url_data(&mut buf);
                let _ = a.options.iter().count();
            }
            let _ = parse_response(&bytes);
            peek_agrees(&bytes);
        }

        #[test]
        fn every_action_every_length(action in 0u32..5, len in 0usize..=256, fill in any::<u8>()) {
            let mut bytes = vec![fill; len];
            if len >= 12 {
                bytes[8..12].copy_from_slice(&action.to_be_bytes());
            }
            if len >= 8 && action == 0 {
                bytes[0..8].copy_from_slice(&PROTOCOL_ID.to_be_bytes());
            }
            let _ = parse_request(&bytes);
            peek_agrees(&bytes);
        }

        #[test]
        fn announce_roundtrip(
            connection_id in any::<u64>(), transaction_id in any::<u32>(),
            info_hash in any::<[u8; 20]>(), peer_id in any::<[u8; 20]>(),
            downloaded in any::<u64>(), left in any::<u64>(), uploaded in any::<u64>(),
            event in 0u32..4, ip in any::<u32>(), key in any::<u32>(), num_want in any::<i32>(),
            port in any::<u16>(), url in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let req = AnnounceRequest {
                connection_id, transaction_id, info_hash, peer_id, downloaded, left, uploaded,
                event: Event::from_u32(event), ip, key, num_want, port, options: Options(&[]),
            };
            let mut out = [0u8; 2048];
            let n = write_announce_request(&mut out, &req, &url).unwrap();
            let Ok(Request::Announce(back)) = parse_request(&out[..n]) else { panic!() };
            prop_assert_eq!(Request::Announce(AnnounceRequest { options: Options(&[]), ..back }), Request::Announce(req));
            let mut url_back = [0u8; 1024];
            let m = back.options.copy_url_data(&mut url_back);
            prop_assert_eq!(&url_back[..m], &url[..]);
        }

        #[test]
        fn scrape_roundtrip(connection_id in any::<u64>(), tx in any::<u32>(),
                            hashes in proptest::collection::vec(any::<[u8; 20]>(), 0..80)) {
            let mut out = [0u8; 2048];
            let n = write_scrape_request(&mut out, connection_id, tx, &hashes).unwrap();
            let Ok(Request::Scrape(s)) = parse_request(&out[..n]) else { panic!() };
            prop_assert_eq!(s.connection_id, connection_id);
            prop_assert_eq!(s.info_hashes().copied().collect::<Vec<_>>(), hashes);
        }
    }
}
