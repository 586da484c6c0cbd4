//! A blocking BEP 15 client that speaks raw bytes, for driving a server from
//! a test.

use super::REPLY_TIMEOUT;
use shoal::wire::udp::{self, AnnounceRequest, Event, Response};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::AtomicU32;

pub struct Client {
    pub sock: UdpSocket,
    pub server: SocketAddr,
    pub connection_id: u64,
    tx: u32,
}

pub struct Announced {
    pub interval: u32,
    pub seeders: u32,
    pub leechers: u32,
    pub peers: Vec<u8>,
}

impl Client {
    /// A client bound to `local` (e.g. "127.0.0.1:0") talking to `server`.
    pub fn new(local: &str, server: SocketAddr) -> Client {
        let sock = UdpSocket::bind(local).unwrap();
        sock.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        Client {
            sock,
            server,
            connection_id: 0,
            tx: 0,
        }
    }

    /// A client on the loopback address of `server`'s family, connected.
    pub fn connected(server: SocketAddr) -> Client {
        let local = if server.is_ipv4() {
            "127.0.0.1:0"
        } else {
            "[::1]:0"
        };
        let mut c = Client::new(local, server);
        c.connect();
        c
    }

    /// The address the server sees it at.
    pub fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    pub fn port(&self) -> u16 {
        self.addr().port()
    }

    pub fn roundtrip(&self, req: &[u8]) -> Vec<u8> {
        self.sock.send_to(req, self.server).unwrap();
        let mut buf = [0u8; 4096];
        let (n, _) = self
            .sock
            .recv_from(&mut buf)
            .expect("reply within the timeout");
        buf[..n].to_vec()
    }

    pub fn next_tx(&mut self) -> u32 {
        self.tx += 1;
        self.tx
    }

    pub fn connect(&mut self) -> u64 {
        let tx = self.next_tx();
        let mut req = [0u8; 16];
        udp::write_connect_request(&mut req, tx).unwrap();
        match udp::parse_response(&self.roundtrip(&req)) {
            Ok(Response::Connect {
                transaction_id,
                connection_id,
            }) if transaction_id == tx => {
                self.connection_id = connection_id;
                connection_id
            }
            other => panic!("bad connect reply: {other:?}"),
        }
    }

    /// Move a manual clock and wait until the server's loop runs with it. A loop
    /// turn reads the clock once, so a packet may still be handled with the old
    /// time; a connect reply tells which time was used (its id starts with the
    /// issue time in seconds), so connect until it shows the new one.
    pub fn set_clock(&mut self, clock: &AtomicU32, secs: u32) {
        clock.store(secs, std::sync::atomic::Ordering::SeqCst);
        for _ in 0..10_000 {
            if (self.connect() >> 32) as u32 == secs {
                return;
            }
        }
        panic!("the server never picked up clock time {secs}");
    }

    pub fn announce_bytes(
        &mut self,
        info_hash: [u8; 20],
        event: Event,
        left: u64,
        num_want: i32,
        port: u16,
    ) -> Vec<u8> {
        let req = AnnounceRequest {
            left,
            event,
            num_want,
            ..AnnounceRequest::new(self.connection_id, self.next_tx(), info_hash, [7; 20], port)
        };
        let mut buf = [0u8; 256];
        let n = udp::write_announce_request(&mut buf, &req, b"/announce").unwrap();
        buf[..n].to_vec()
    }

    pub fn announce(
        &mut self,
        info_hash: [u8; 20],
        event: Event,
        left: u64,
        num_want: i32,
    ) -> Announced {
        let port = self.port();
        let req = self.announce_bytes(info_hash, event, left, num_want, port);
        match udp::parse_response(&self.roundtrip(&req)) {
            Ok(Response::Announce {
                interval,
                seeders,
                leechers,
                peers,
                ..
            }) => Announced {
                interval,
                seeders,
                leechers,
                peers: peers.to_vec(),
            },
            other => panic!("bad announce reply: {other:?}"),
        }
    }

    /// (seeders, completed, leechers) per hash.
    pub fn scrape(&mut self, hashes: &[[u8; 20]]) -> Vec<(u32, u32, u32)> {
        let tx = self.next_tx();
        let mut buf = vec![0u8; 16 + 20 * hashes.len()];
        udp::write_scrape_request(&mut buf, self.connection_id, tx, hashes).unwrap();
        match udp::parse_response(&self.roundtrip(&buf)) {
            Ok(Response::Scrape {
                transaction_id,
                rows,
            }) if transaction_id == tx => rows
                .chunks(12)
                .map(|r| udp::read_scrape_row(r).unwrap())
                .collect(),
            other => panic!("bad scrape reply: {other:?}"),
        }
    }
}
