//! The BEP 15 client: connect, then announce or scrape, with retries.
//!
//! A [`Session`] owns one UDP socket connected to the tracker (so datagrams
//! from anyone else never reach it) and caches the connection id for the
//! minute BEP 15 lets a client use it. Every request carries a fresh random
//! transaction id and only a reply with that id is accepted; stray or late
//! datagrams are skipped. Try `n` (from 0) waits `timeout * 2^n`; connect and
//! request share the try counter, as in BEP 15 ("if a response is not received
//! after 15 * 2 ^ n seconds, the client should retransmit the request").
//! Announces carry the URL's path and query as BEP 41 URL data.

use super::{backoff, AnnounceParams, AnnounceResponse, Client, ClientError, ScrapeStats};
use crate::wire::udp::{self, AnnounceRequest, Response};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// How long a client may use a connection id (BEP 15: one minute).
pub const CONNECTION_ID_LIFETIME: Duration = Duration::from_secs(60);

/// Largest reply read: any datagram fits.
const MAX_DATAGRAM: usize = 65_536;

/// A BEP 15 conversation with one tracker address.
#[derive(Debug)]
pub struct Session {
    socket: UdpSocket,
    tracker: SocketAddr,
    url_data: Vec<u8>,
    timeout: Duration,
    tries: u32,
    /// The connection id and when it was received.
    connection: Option<(u64, Instant)>,
    rng: fastrand::Rng,
    buf: Vec<u8>,
}

impl Session {
    /// A session with `tracker`, sending `url_data` (the tracker URL's path
    /// and query, may be empty) with each announce.
    pub fn new(tracker: SocketAddr, url_data: &[u8], client: &Client) -> io::Result<Session> {
        let tracker = SocketAddr::new(tracker.ip().to_canonical(), tracker.port());
        let local = match tracker {
            SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
        };
        let socket = UdpSocket::bind(local)?;
        socket.connect(tracker)?;
        Ok(Session {
            socket,
            tracker,
            url_data: url_data.to_vec(),
            timeout: client.timeout.max(Duration::from_millis(1)),
            tries: client.tries.max(1),
            connection: None,
            rng: fastrand::Rng::new(),
            buf: vec![0; MAX_DATAGRAM],
        })
    }

    /// The local address the tracker sees (before NAT).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    pub fn announce(&mut self, p: &AnnounceParams) -> Result<AnnounceResponse, ClientError> {
        let stride = if self.tracker.is_ipv4() {
            udp::PEER4_LEN
        } else {
            udp::PEER6_LEN
        };
        let url_data = std::mem::take(&mut self.url_data);
        let result = self.exchange(
            udp::Action::Announce,
            |out, connection_id, transaction_id| {
                let req = AnnounceRequest {
                    downloaded: p.downloaded,
                    left: p.left,
                    uploaded: p.uploaded,
                    event: p.event,
                    ip: 0,
                    key: p.key,
                    num_want: p
                        .numwant
                        .map_or(-1, |n| i32::try_from(n).unwrap_or(i32::MAX)),
                    ..AnnounceRequest::new(
                        connection_id,
                        transaction_id,
                        p.info_hash,
                        p.peer_id,
                        p.port,
                    )
                };
                udp::write_announce_request(out, &req, &url_data)
            },
        );
        self.url_data = url_data;
        let n = result?;
        match udp::parse_response(&self.buf[..n]) {
            Ok(Response::Announce {
                interval,
                leechers,
                seeders,
                peers,
                ..
            }) => Ok(AnnounceResponse {
                interval,
                min_interval: None,
                seeders,
                leechers,
                peers: compact_peers(peers, stride)?,
                warning: None,
            }),
            _ => Err(ClientError::Malformed("not an announce reply".into())),
        }
    }

    /// Scrape `info_hashes` in requests of at most [`super::SCRAPE_CHUNK`].
    pub fn scrape(
        &mut self,
        info_hashes: &[[u8; 20]],
    ) -> Result<Vec<Option<ScrapeStats>>, ClientError> {
        let mut stats = Vec::with_capacity(info_hashes.len());
        for chunk in info_hashes.chunks(super::SCRAPE_CHUNK) {
            let n = self.exchange(udp::Action::Scrape, |out, connection_id, transaction_id| {
                udp::write_scrape_request(out, connection_id, transaction_id, chunk)
            })?;
            let Ok(Response::Scrape { rows, .. }) = udp::parse_response(&self.buf[..n]) else {
                return Err(ClientError::Malformed("not a scrape reply".into()));
            };
            if rows.len() > chunk.len() * udp::SCRAPE_ROW_LEN {
                return Err(ClientError::Malformed(format!(
                    "{} scrape rows for {} info hashes",
                    rows.len() / udp::SCRAPE_ROW_LEN,
                    chunk.len()
                )));
            }
            for i in 0..chunk.len() {
                let row = rows
                    .get(i * udp::SCRAPE_ROW_LEN..)
                    .and_then(udp::read_scrape_row);
                stats.push(row.map(|(seeders, completed, leechers)| ScrapeStats {
                    seeders,
                    completed,
                    leechers,
                }));
            }
        }
        Ok(stats)
    }

    /// Send the request `write` builds (given connection and transaction ids)
    /// until a reply of `action` with its transaction id arrives, connecting
    /// first when the id is missing or a minute old. Returns the reply's
    /// length in `self.buf`.
    fn exchange(
        &mut self,
        action: udp::Action,
        write: impl Fn(&mut [u8], u64, u32) -> Option<usize>,
    ) -> Result<usize, ClientError> {
        let mut req = [0u8; 2048];
        let mut n = 0;
        while n < self.tries {
            let wait = backoff(self.timeout, n);
            let connection_id = match self.connection {
                Some((id, at)) if at.elapsed() < CONNECTION_ID_LIFETIME => id,
                _ => {
                    let tx = self.rng.u32(..);
                    let len = udp::write_connect_request(&mut req, tx).ok_or_else(too_long)?;
                    match self.send_and_wait(&req[..len], tx, udp::Action::Connect, wait)? {
                        Some(m) => match udp::parse_response(&self.buf[..m]) {
                            Ok(Response::Connect { connection_id, .. }) => {
                                self.connection = Some((connection_id, Instant::now()));
                                connection_id
                            }
                            _ => return Err(ClientError::Malformed("bad connect reply".into())),
                        },
                        None => {
                            n += 1;
                            continue;
                        }
                    }
                }
            };
            let tx = self.rng.u32(..);
            let len = write(&mut req, connection_id, tx).ok_or_else(too_long)?;
            match self.send_and_wait(&req[..len], tx, action, wait)? {
                Some(m) => return Ok(m),
                None => n += 1,
            }
        }
        Err(ClientError::Timeout {
            tries: self.tries,
            first_timeout: self.timeout,
        })
    }

    /// Send `req` once and wait up to `wait` for the reply with transaction id
    /// `tx`: `Some(length)` of a reply of `action`, `None` on timeout, an error
    /// for an error frame, a reply of another action or a socket error.
    fn send_and_wait(
        &mut self,
        req: &[u8],
        tx: u32,
        action: udp::Action,
        wait: Duration,
    ) -> Result<Option<usize>, ClientError> {
        send(&self.socket, req)?;
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.socket.set_read_timeout(Some(left))?;
            let n = match self.socket.recv(&mut self.buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(ClientError::Io(e)),
            };
            let reply = &self.buf[..n];
            match udp::parse_response(reply) {
                Ok(r) if r.transaction_id() != tx => continue, // stray or late
                Ok(Response::Error { message, .. }) => {
                    return Err(ClientError::Tracker(
                        String::from_utf8_lossy(message).trim().to_string(),
                    ))
                }
                Ok(r) if reply_action(&r) == action => return Ok(Some(n)),
                Ok(_) => {
                    return Err(ClientError::Malformed(format!(
                        "a reply of another action to a {action:?} request"
                    )))
                }
                // Too short or an unknown action: it cannot be ours, or the
                // tracker is broken; keep listening until the deadline.
                Err(_) => continue,
            }
        }
    }
}

fn send(socket: &UdpSocket, req: &[u8]) -> io::Result<()> {
    loop {
        match socket.send(req) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

fn too_long() -> ClientError {
    ClientError::Malformed("request does not fit a datagram".into())
}

fn reply_action(r: &Response<'_>) -> udp::Action {
    match r {
        Response::Connect { .. } => udp::Action::Connect,
        Response::Announce { .. } => udp::Action::Announce,
        Response::Scrape { .. } => udp::Action::Scrape,
        Response::Error { .. } => udp::Action::Error,
    }
}

/// Compact peers: 6-byte IPv4 or 18-byte IPv6 entries (`stride`).
pub fn compact_peers(bytes: &[u8], stride: usize) -> Result<Vec<SocketAddr>, ClientError> {
    if !bytes.len().is_multiple_of(stride) {
        return Err(ClientError::Malformed(format!(
            "peer list of {} bytes is not a multiple of {stride}",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(stride)
        .filter_map(|c| {
            let (ip, port) = c.split_at(stride - 2);
            let port = u16::from_be_bytes([port[0], port[1]]);
            let ip: std::net::IpAddr = match <[u8; 4]>::try_from(ip) {
                Ok(v4) => Ipv4Addr::from(v4).into(),
                Err(_) => Ipv6Addr::from(<[u8; 16]>::try_from(ip).ok()?).into(),
            };
            Some(SocketAddr::new(ip, port))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_compact_peers() {
        let v4 = [10, 0, 0, 1, 0x1a, 0xe1, 127, 0, 0, 1, 0, 80];
        assert_eq!(
            compact_peers(&v4, 6).unwrap(),
            vec![
                "10.0.0.1:6881".parse::<SocketAddr>().unwrap(),
                "127.0.0.1:80".parse().unwrap()
            ]
        );
        let mut v6 = [0u8; 18];
        v6[15] = 1;
        v6[17] = 80;
        assert_eq!(
            compact_peers(&v6, 18).unwrap(),
            vec!["[::1]:80".parse::<SocketAddr>().unwrap()]
        );
        assert!(compact_peers(&v4[..7], 6).is_err());
        assert!(compact_peers(&[], 18).unwrap().is_empty());
    }

    /// Against a fake tracker on loopback: stray datagrams and wrong
    /// transaction ids are skipped, an error frame becomes `Tracker`.
    #[test]
    fn test_session_skips_strays_and_reads_error_frames() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let fake = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let mut out = [0u8; 64];
            // connect: answer with a wrong transaction id first, then a short datagram, then right.
            let (n, from) = server.recv_from(&mut buf).unwrap();
            let Ok(udp::Request::Connect(c)) = udp::parse_request(&buf[..n]) else {
                panic!()
            };
            let m = udp::write_connect_response(&mut out, c.transaction_id ^ 1, 7).unwrap();
            server.send_to(&out[..m], from).unwrap();
            server.send_to(&[1, 2, 3], from).unwrap();
            let m = udp::write_connect_response(&mut out, c.transaction_id, 7).unwrap();
            server.send_to(&out[..m], from).unwrap();
            // announce: an error frame.
            let (n, from) = server.recv_from(&mut buf).unwrap();
            let Ok(udp::Request::Announce(a)) = udp::parse_request(&buf[..n]) else {
                panic!()
            };
            assert_eq!(a.connection_id, 7);
            let mut url = [0u8; 64];
            let u = a.options.copy_url_data(&mut url);
            assert_eq!(&url[..u], b"/announce?k=1");
            let m = udp::write_error_response(&mut out, a.transaction_id, "go away").unwrap();
            server.send_to(&out[..m], from).unwrap();
        });
        let client = Client::new(Duration::from_secs(5), 1);
        let mut s = Session::new(addr, b"/announce?k=1", &client).unwrap();
        match s.announce(&AnnounceParams::new([1; 20], 1)) {
            Err(ClientError::Tracker(m)) => assert_eq!(m, "go away"),
            other => panic!("{other:?}"),
        }
        fake.join().unwrap();
    }
}
