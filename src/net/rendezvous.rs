//! The Sobani rendezvous service's datagrams on a packet worker: drained
//! like the tracker's into the sans-IO [`crate::rendezvous`] room (plain
//! `recv_from`/`send_to`: its traffic is a keep-alive every few minutes per
//! peer, not worth batching), each reply routed to a socket that reaches its
//! address family.

use super::socket::Reach;
use super::udp::{send_to, UDP_BUDGET};
use crate::rendezvous::{message::MAX_REQUEST, Outcome, Rendezvous, Replies};
use crate::stats::{Counters, Dropped, Family, Kind, Proto};
use mio::net::UdpSocket;
use std::io;
use std::net::{SocketAddr, SocketAddrV6};

/// A rendezvous socket, the destinations it can send to, and its token.
#[derive(Debug)]
pub struct RdvSocket {
    pub sock: UdpSocket,
    pub reach: Reach,
    pub token: usize,
}

/// One worker's rendezvous side: which sockets have datagrams left, and the
/// buffers every datagram reuses (allocated once, at start).
pub struct RdvIo {
    /// Whether each socket (in [`RdvSocket`] order) may have datagrams left.
    pending: Vec<bool>,
    /// One byte over the largest request, so an oversized datagram (truncated
    /// by the kernel to the buffer) is still seen as too large.
    buf: Box<[u8]>,
    replies: Replies,
}

impl RdvIo {
    pub fn new(sockets: usize) -> RdvIo {
        RdvIo {
            pending: vec![false; sockets],
            buf: vec![0; MAX_REQUEST + 1].into_boxed_slice(),
            replies: Replies::new(),
        }
    }

    pub fn has_pending(&self) -> bool {
        self.pending.iter().any(|&p| p)
    }

    /// Note that the socket with this token is readable.
    pub fn ready(&mut self, socks: &[RdvSocket], token: usize) {
        if let Some(i) = socks.iter().position(|s| s.token == token) {
            if let Some(p) = self.pending.get_mut(i) {
                *p = true;
            }
        }
    }

    /// Drain every ready socket (up to the per-turn budget each).
    pub fn run(&mut self, socks: &[RdvSocket], rdv: &Rendezvous, c: &Counters, now: u32) {
        for i in 0..socks.len() {
            if self.pending.get(i).copied().unwrap_or(false) {
                let more = self.drain(socks, i, rdv, c, now);
                if let Some(p) = self.pending.get_mut(i) {
                    *p = more;
                }
            }
        }
    }

    /// Receive and answer datagrams on socket `i` until it is empty or the
    /// budget is spent. Returns whether datagrams may remain.
    fn drain(
        &mut self,
        socks: &[RdvSocket],
        i: usize,
        rdv: &Rendezvous,
        c: &Counters,
        now: u32,
    ) -> bool {
        let Some(own) = socks.get(i) else {
            return false;
        };
        let mut errors = 0;
        for _ in 0..UDP_BUDGET {
            let (n, src) = match own.sock.recv_from(&mut self.buf) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug!("rendezvous recv error: {e}");
                    errors += 1;
                    if errors > 8 {
                        return true;
                    }
                    continue;
                }
            };
            let req = self.buf.get(..n).unwrap_or_default();
            let outcome = rdv.handle(now, src, req, &mut self.replies);
            let fam = family(src);
            c.rendezvous(outcome);
            let (req_kind, reply_kind) = match outcome {
                Outcome::Announced => (Kind::Announce, Kind::Announce),
                Outcome::Dropped(crate::rendezvous::DropReason::NoFreeId) => {
                    (Kind::Announce, Kind::Other)
                }
                Outcome::UnknownId => (Kind::Other, Kind::Error),
                _ => (Kind::Other, Kind::Other),
            };
            c.request(Proto::Rendezvous, fam, req_kind);
            let mut sent = 0;
            for (dst, bytes) in self.replies.iter() {
                let Some((sock, to)) = route(socks, i, dst) else {
                    log::debug!("rendezvous: no socket reaches {dst}; reply dropped");
                    c.dropped(Dropped::RendezvousNoRoute);
                    continue;
                };
                let n = send_to(sock, bytes, to, c);
                if n > 0 {
                    c.response(Proto::Rendezvous, family(dst), reply_kind);
                }
                sent += n;
            }
            c.bytes(Proto::Rendezvous, n, sent);
        }
        true
    }
}

fn family(addr: SocketAddr) -> Family {
    match crate::rendezvous::canonical(addr) {
        SocketAddr::V4(_) => Family::V4,
        SocketAddr::V6(_) => Family::V6,
    }
}

/// The socket to send a reply to `dst` (canonical) through, and the address
/// in the form that socket takes: the receiving socket `i` if it reaches
/// `dst`'s family (a dual-stack socket takes IPv4 as IPv4-mapped IPv6), else
/// another rendezvous socket of this worker that does.
fn route(socks: &[RdvSocket], i: usize, dst: SocketAddr) -> Option<(&UdpSocket, SocketAddr)> {
    let fit = |s: &RdvSocket| match (s.reach, dst) {
        (Reach::V4, SocketAddr::V4(_)) | (Reach::V6 | Reach::Dual, SocketAddr::V6(_)) => Some(dst),
        (Reach::Dual, SocketAddr::V4(a)) => Some(SocketAddr::V6(SocketAddrV6::new(
            a.ip().to_ipv6_mapped(),
            a.port(),
            0,
            0,
        ))),
        _ => None,
    };
    let own = socks.get(i).and_then(|s| Some((&s.sock, fit(s)?)));
    own.or_else(|| socks.iter().find_map(|s| Some((&s.sock, fit(s)?))))
}
