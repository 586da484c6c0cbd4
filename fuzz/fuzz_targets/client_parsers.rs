//! The client's reply parsers on arbitrary bytes: bencode, the HTTP tracker's
//! announce and scrape replies, and BEP 15 response frames with their compact
//! peers and scrape rows. They read what a remote tracker sends `shoal
//! announce`/`scrape`/`bench`, so no input may panic them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal::client::{bencode, http, udp as client_udp};
use shoal::wire::udp::{self, Response};

/// The hashes a scrape asks for; the seeds' `files` dicts use the first.
const HASHES: [[u8; 20]; 2] = [*b"aaaaaaaaaaaaaaaaaaaa", [0x11; 20]];

fuzz_target!(|data: &[u8]| {
    let _ = bencode::decode(data);
    let _ = http::parse_announce(data);
    let _ = http::parse_scrape(data, &HASHES);
    let _ = client_udp::compact_peers(data, udp::PEER4_LEN);
    let _ = client_udp::compact_peers(data, udp::PEER6_LEN);
    match udp::parse_response(data) {
        Ok(Response::Announce { peers, .. }) => {
            let _ = client_udp::compact_peers(peers, udp::PEER4_LEN);
            let _ = client_udp::compact_peers(peers, udp::PEER6_LEN);
        }
        Ok(Response::Scrape { rows, .. }) => {
            assert_eq!(rows.len() % udp::SCRAPE_ROW_LEN, 0);
            for row in rows.chunks(udp::SCRAPE_ROW_LEN) {
                assert!(udp::read_scrape_row(row).is_some());
            }
        }
        _ => {}
    }
});
