//! HTTP/1.x tracker requests (BEP 3, 7, 23, 48): the head, then the query.
//!
//! Two layers, one file each:
//! - [`head`]: the HTTP request head ([`parse_head`], header limits, keep-alive
//!   and body framing) and the response head ([`write_response_head`]);
//! - [`query`]: the tracker query inside the request target: percent-decoding
//!   ([`percent_decode_into`]), [`query_pairs`], announce ([`parse_announce`]) and
//!   scrape ([`scrape_hashes`]).
//!
//! Everything public is re-exported here, so callers write `wire::http::parse_head`
//! and `wire::http::parse_announce`. Bodies and connection state belong to `net/`,
//! reply bodies to the core (with [`super::bencode`]).
//!
//! Guarantees: parsers borrow from their input, never allocate and never panic on
//! any input; their errors are `Copy` enums whose [`HttpError::as_str`] /
//! [`QueryError::as_str`] is a short human message fit for a bencoded
//! `failure reason`. HTTP/1.1 keep-alive and pipelining: [`parse_head`] returns
//! how many bytes the head used, and the next request starts right after it (and
//! after any body).

pub mod head;
pub mod query;

pub use head::{
    parse_head, reason_phrase, write_response_head, Head, Headers, HttpError, Method, MAX_HEAD,
    MAX_HEADERS,
};
pub use query::{
    parse_announce, percent_decode_into, query_pairs, scrape_hashes, AnnounceQuery, QueryError,
    QueryPairs, ScrapeHashes,
};

/// Requests and values shared by the tests of both layers.
#[cfg(test)]
mod fixtures {
    pub const HASH: [u8; 20] = [
        0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66,
        0x77, 0x88, 0x99, 0xaa, 0xbb,
    ];
    pub const HASH_ESCAPED: &str = "%124Vx%9A%BC%DE%F0%00%11%223DUfw%88%99%AA%BB";
    pub const PEER_ID: &[u8; 20] = b"-lt2010-abcdefghijkl";

    pub fn libtorrent_request() -> Vec<u8> {
        format!(
            "GET /announce?info_hash={HASH_ESCAPED}&peer_id=-lt2010-abcdefghijkl&port=6881\
         &uploaded=0&downloaded=0&left=100&corrupt=0&key=ABCD&event=started&numwant=200\
         &compact=1&no_peer_id=1 HTTP/1.1\r\nHost: 127.0.0.1:1234\r\n\
         User-Agent: libtorrent/2.0\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n"
        )
        .into_bytes()
    }

    /// Percent-encodes every byte.
    pub fn escape_all(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("%{b:02X}")).collect()
    }
}

/// Head and query together, as the core reads a request.
#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::head::is_target_byte;
    use super::*;
    use crate::wire::udp::Event;
    use proptest::prelude::*;

    fn head(buf: &[u8]) -> (Head<'_>, usize) {
        parse_head(buf).unwrap().unwrap()
    }

    #[test]
    fn test_parse_libtorrent_announce() {
        let req = libtorrent_request();
        let (h, len) = head(&req);
        assert_eq!(len, req.len());
        assert_eq!(h.method, Method::Get);
        assert_eq!(h.path, b"/announce");
        assert!(h.query.starts_with(b"info_hash=%124Vx"));
        assert!(h.query.ends_with(b"&no_peer_id=1"));
        assert_eq!(h.minor_version, 1);
        assert!(!h.keep_alive);
        assert_eq!(h.content_length, 0);
        assert_eq!(h.header("host"), Some(&b"127.0.0.1:1234"[..]));
        assert_eq!(h.header("USER-AGENT"), Some(&b"libtorrent/2.0"[..]));
        assert_eq!(h.header("Accept-Encoding"), Some(&b"gzip"[..]));
        assert_eq!(h.header("X-Real-IP"), None);
        assert_eq!(h.headers().count(), 4);

        let a = parse_announce(h.query).unwrap();
        assert_eq!(
            a,
            AnnounceQuery {
                info_hash: HASH,
                peer_id: *PEER_ID,
                port: 6881,
                uploaded: 0,
                downloaded: 0,
                left: 100,
                event: Event::Started,
                compact: true,
                no_peer_id: true,
                numwant: Some(200),
                key: Some(0xABCD),
            }
        );
    }

    #[test]
    fn test_raw_bytes_in_target() {
        // Hash bytes sent unescaped, not valid UTF-8; `+` is literal.
        let mut req = b"GET /announce?info_hash=".to_vec();
        let raw: [u8; 20] = [
            0xff,
            0xfe,
            b'+',
            0x80,
            0xc3,
            b'a',
            0x9f,
            b'=',
            b'/',
            b'?',
            0xe2,
            0x82,
            0xff,
            1 + b'0',
            b'~',
            0xaa,
            0xbb,
            0xcc,
            0xdd,
            0xee,
        ];
        req.extend_from_slice(&raw);
        req.extend_from_slice(b"&peer_id=-qB4650-abcdef%2B%2bwxyz&port=1 HTTP/1.1\r\n\r\n");
        let (h, _) = head(&req);
        assert_eq!(h.path, b"/announce");
        let a = parse_announce(h.query).unwrap();
        assert_eq!(a.info_hash, raw);
        assert_eq!(&a.peer_id, b"-qB4650-abcdef++wxyz");
    }

    proptest! {
        #[test]
        fn prop_head_round_trip(ih in any::<[u8; 20]>(), raw_mask in any::<u32>()) {
            // Raw bytes are only safe in a request line when visible or >= 0x80.
            let mut target = b"/announce?info_hash=".to_vec();
            for (i, &b) in ih.iter().enumerate() {
                if raw_mask >> i & 1 == 1 && is_target_byte(b) && b != b'%' && b != b'&' {
                    target.push(b);
                } else {
                    target.extend_from_slice(format!("%{b:02X}").as_bytes());
                }
            }
            let mut req = b"GET ".to_vec();
            req.extend_from_slice(&target);
            req.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
            let (h, len) = parse_head(&req).unwrap().unwrap();
            prop_assert_eq!(len, req.len());
            let hashes: Vec<_> = scrape_hashes(h.query).collect();
            prop_assert_eq!(hashes, vec![Ok(ih)]);
        }

        #[test]
        fn prop_random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(Some((h, len))) = parse_head(&bytes) {
                prop_assert!(len <= bytes.len());
                let _ = h.header("connection");
                let _ = h.headers().count();
            }
            let _ = parse_announce(&bytes);
            let _ = scrape_hashes(&bytes).count();
            let _ = query_pairs(&bytes).count();
            let _ = percent_decode_into(&bytes, &mut [0u8; 20]);
        }

        #[test]
        fn prop_request_shaped_bytes_never_panic(
            tail in proptest::collection::vec(
                prop_oneof![Just(b'\r'), Just(b'\n'), Just(b' '), Just(b':'), Just(b'%'), Just(b'&'), Just(b'='), any::<u8>()],
                0..200,
            ),
            prefix in prop_oneof![Just(&b"GET /announce?"[..]), Just(&b"GET / HTTP/1.1\r\n"[..]), Just(&b""[..])],
        ) {
            let mut buf = prefix.to_vec();
            buf.extend_from_slice(&tail);
            let _ = parse_head(&buf);
            let _ = parse_announce(&buf);
            let _ = scrape_hashes(&buf).count();
        }
    }
}
