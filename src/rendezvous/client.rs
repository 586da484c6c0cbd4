//! A small blocking Sobani rendezvous client: send one message, wait (with a
//! timeout) for the tracker's answer, parse it.
//!
//! For the `shoal rendezvous` subcommand and the integration tests. The socket
//! is connected to the tracker, so datagrams from anyone else never reach it.
//! `income` messages that arrive while waiting for another answer are queued
//! and handed out by [`RendezvousClient::next_income`], so a test can push from
//! one client and read the introduction on another without losing either.
//! [`RendezvousClient::listen`] stays registered and reports what arrives,
//! for `shoal rendezvous URL listen`.

use super::message::{Peer, Reply, ShareId};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often [`RendezvousClient::listen`] looks at its stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

/// `alive`s in a row without any answer after which
/// [`RendezvousClient::listen`] gives up on the tracker.
pub const LISTEN_MISSED: u32 = 3;

/// Why [`RendezvousClient::listen`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenEnd {
    /// The stop flag was raised (Ctrl-C).
    Stopped,
    /// The deadline passed.
    Deadline,
}

/// A reply as the client reads it.
pub type ClientReply = Reply<SocketAddr, String>;

/// The other peer of an introduction.
pub type Introduction = Peer<ShareId, SocketAddr>;

/// Why a request failed.
#[derive(Debug)]
pub enum RendezvousError {
    Io(io::Error),
    /// No answer within the timeout.
    Timeout,
    /// The tracker says the sender is not registered.
    Expired,
    /// The tracker answered `error` with this reason.
    Tracker(String),
    /// An answer that does not fit the request.
    Unexpected(ClientReply),
}

impl fmt::Display for RendezvousError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RendezvousError::Io(e) => write!(f, "{e}"),
            RendezvousError::Timeout => f.write_str("no answer from the tracker"),
            RendezvousError::Expired => f.write_str("not registered (expired)"),
            RendezvousError::Tracker(r) => write!(f, "tracker error: {r}"),
            RendezvousError::Unexpected(r) => write!(f, "unexpected answer: {r:?}"),
        }
    }
}

impl std::error::Error for RendezvousError {}

impl From<io::Error> for RendezvousError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => RendezvousError::Timeout,
            _ => RendezvousError::Io(e),
        }
    }
}

/// One client address talking to one tracker.
#[derive(Debug)]
pub struct RendezvousClient {
    socket: UdpSocket,
    timeout: Duration,
    incomes: VecDeque<Introduction>,
    buf: Vec<u8>,
}

impl RendezvousClient {
    /// A client on a fresh ephemeral port, talking to `tracker`.
    pub fn new(tracker: SocketAddr, timeout: Duration) -> io::Result<RendezvousClient> {
        let tracker = super::canonical(tracker);
        let local = match tracker {
            SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
        };
        let socket = UdpSocket::bind(local)?;
        socket.connect(tracker)?;
        Ok(RendezvousClient {
            socket,
            timeout: timeout.max(Duration::from_millis(1)),
            incomes: VecDeque::new(),
            buf: vec![0; 65_536],
        })
    }

    /// The local address (what the tracker sees, without NAT).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Send raw bytes; no answer awaited.
    pub fn send_raw(&self, bytes: &[u8]) -> io::Result<()> {
        self.socket.send(bytes).map(|_| ())
    }

    /// Next message from the tracker within the timeout, whatever it is.
    pub fn recv(&mut self) -> Result<ClientReply, RendezvousError> {
        self.recv_until(Instant::now() + self.timeout)
    }

    fn recv_until(&mut self, deadline: Instant) -> Result<ClientReply, RendezvousError> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RendezvousError::Timeout);
            }
            self.socket.set_read_timeout(Some(left))?;
            let n = match self.socket.recv(&mut self.buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            // Unparseable datagrams are skipped, as stray ones would be.
            if let Ok(r) = serde_json::from_slice(self.buf.get(..n).unwrap_or_default()) {
                return Ok(r);
            }
        }
    }

    /// Send `msg` and wait for the first answer that is not an `income`
    /// (those are queued for [`next_income`](Self::next_income)).
    pub fn request(&mut self, msg: &[u8]) -> Result<ClientReply, RendezvousError> {
        self.socket.send(msg)?;
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.recv_until(deadline)? {
                Reply::Income(p) => self.incomes.push_back(p),
                Reply::Expired => return Err(RendezvousError::Expired),
                Reply::Error(e) => return Err(RendezvousError::Tracker(e.reason)),
                r => return Ok(r),
            }
        }
    }

    /// Register; returns this client's share id.
    pub fn announce(&mut self) -> Result<ShareId, RendezvousError> {
        match self.request(br#"{"action":"announce"}"#)? {
            Reply::Announced(a) => Ok(a.share_id),
            r => Err(RendezvousError::Unexpected(r)),
        }
    }

    /// Keep the registration alive.
    pub fn alive(&mut self) -> Result<(), RendezvousError> {
        match self.request(br#"{"action":"alive"}"#)? {
            Reply::Alived => Ok(()),
            r => Err(RendezvousError::Unexpected(r)),
        }
    }

    /// Ask to be introduced to `share_id` (any string is sent as is, so tools
    /// can test the tracker's handling of bad ids). Returns the peer.
    pub fn push(&mut self, share_id: &str) -> Result<Introduction, RendezvousError> {
        let msg = serde_json::json!({"action": "push", "shareId": share_id});
        match self.request(msg.to_string().as_bytes())? {
            Reply::Pushed(p) => Ok(p),
            r => Err(RendezvousError::Unexpected(r)),
        }
    }

    /// Stay registered and report what the tracker sends, until `stop` is
    /// raised or `until` passes. Sends `alive` every `every`; an `expired`
    /// answer (the tracker restarted, or dropped this registration) is met
    /// with a new `announce`. `heard` gets every message but `alived`: the
    /// `income`s (queued ones first), `pushed`s, a new registration's
    /// `announced`, `error`s; an error it returns ends the loop. The tracker
    /// is given up on after [`LISTEN_MISSED`] `alive`s without any answer.
    pub fn listen(
        &mut self,
        every: Duration,
        until: Instant,
        stop: &AtomicBool,
        heard: &mut dyn FnMut(&ClientReply) -> io::Result<()>,
    ) -> Result<ListenEnd, RendezvousError> {
        let every = every.max(Duration::from_millis(1));
        while let Some(p) = self.incomes.pop_front() {
            heard(&Reply::Income(p))?;
        }
        let mut next_alive = Instant::now();
        let mut unanswered = 0u32;
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(ListenEnd::Stopped);
            }
            let now = Instant::now();
            if now >= until {
                return Ok(ListenEnd::Deadline);
            }
            if now >= next_alive {
                if unanswered >= LISTEN_MISSED {
                    return Err(RendezvousError::Timeout);
                }
                self.socket.send(br#"{"action":"alive"}"#)?;
                unanswered += 1;
                next_alive = now + every;
            }
            let wake = next_alive.min(until).min(now + STOP_POLL);
            let reply = match self.recv_until(wake) {
                Ok(r) => r,
                Err(RendezvousError::Timeout) => continue,
                Err(e) => return Err(e),
            };
            unanswered = 0;
            match reply {
                Reply::Alived => {}
                Reply::Expired => {
                    self.socket.send(br#"{"action":"announce"}"#)?;
                }
                r => heard(&r)?,
            }
        }
    }

    /// The next `income` (someone pushed to us): queued first, else wait.
    pub fn next_income(&mut self) -> Result<Introduction, RendezvousError> {
        if let Some(p) = self.incomes.pop_front() {
            return Ok(p);
        }
        match self.recv()? {
            Reply::Income(p) => Ok(p),
            r => Err(RendezvousError::Unexpected(r)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Rendezvous, RendezvousConfig, Replies};
    use super::*;
    use std::sync::Arc;

    /// A one-thread server over a real loopback socket, until it reads `quit`.
    fn serve(r: Arc<Rendezvous>) -> (SocketAddr, std::thread::JoinHandle<()>) {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut out = Replies::new();
            loop {
                let (n, src) = sock.recv_from(&mut buf).unwrap();
                if &buf[..n] == b"quit" {
                    return;
                }
                r.handle(0, src, &buf[..n], &mut out);
                for (dst, b) in out.iter() {
                    sock.send_to(b, dst).unwrap();
                }
            }
        });
        (addr, t)
    }

    #[test]
    fn introduces_two_clients_over_loopback() {
        let r = Arc::new(Rendezvous::new(RendezvousConfig::default(), 4));
        let (addr, server) = serve(r);
        let t = Duration::from_secs(5);
        let mut alice = RendezvousClient::new(addr, t).unwrap();
        let mut bob = RendezvousClient::new(addr, t).unwrap();
        assert!(matches!(alice.alive(), Err(RendezvousError::Expired)));
        let ida = alice.announce().unwrap();
        let idb = bob.announce().unwrap();
        assert_ne!(ida, idb);
        alice.alive().unwrap();
        let pushed = alice.push(&idb.to_string()).unwrap();
        assert_eq!(pushed.peer_addr, bob.local_addr().unwrap());
        assert_eq!(pushed.peer_share_id, idb);
        let income = bob.next_income().unwrap();
        assert_eq!(income.peer_addr, alice.local_addr().unwrap());
        assert_eq!(income.peer_share_id, ida);
        match alice.push("127.0.0.1:1") {
            Err(RendezvousError::Tracker(reason)) => assert_eq!(reason, "unknown shareId"),
            other => panic!("{other:?}"),
        }
        alice.send_raw(b"quit").unwrap();
        server.join().unwrap();
    }

    #[test]
    fn a_listener_registers_again_after_expired_and_hears_each_income() {
        let r = Arc::new(Rendezvous::new(RendezvousConfig::default(), 4));
        let (addr, server) = serve(r);
        let stop = Arc::new(AtomicBool::new(false));
        let mut c = RendezvousClient::new(addr, Duration::from_secs(5)).unwrap();
        let local = c.local_addr().unwrap();
        let (tx, heard) = std::sync::mpsc::channel();
        let listening = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let until = Instant::now() + Duration::from_secs(20);
                c.listen(Duration::from_millis(20), until, &stop, &mut |r| {
                    tx.send(r.clone()).map_err(io::Error::other)
                })
            })
        };
        let wait = Duration::from_secs(10);
        // Never announced: its first alive is answered `expired`, and it
        // registers by itself; the `announced` is the first thing heard.
        let Reply::Announced(me) = heard.recv_timeout(wait).unwrap() else {
            panic!("not announced first")
        };
        let mut pushers = Vec::new();
        for _ in 0..2 {
            let mut p = RendezvousClient::new(addr, Duration::from_secs(5)).unwrap();
            let id = p.announce().unwrap();
            let pushed = p.push(&me.share_id.to_string()).unwrap();
            assert_eq!(pushed.peer_addr, local);
            let Reply::Income(income) = heard.recv_timeout(wait).unwrap() else {
                panic!("not an income")
            };
            assert_eq!(income.peer_addr, p.local_addr().unwrap());
            assert_eq!(income.peer_share_id, id);
            pushers.push(p);
        }
        stop.store(true, Ordering::Relaxed);
        assert_eq!(listening.join().unwrap().unwrap(), ListenEnd::Stopped);
        // Alives kept it registered: nothing else (no second announced) came.
        assert!(heard.try_recv().is_err());
        pushers[0].send_raw(b"quit").unwrap();
        server.join().unwrap();
    }

    #[test]
    fn a_listener_ends_at_its_deadline_or_when_the_tracker_falls_silent() {
        let r = Arc::new(Rendezvous::new(RendezvousConfig::default(), 4));
        let (addr, server) = serve(r);
        let mut c = RendezvousClient::new(addr, Duration::from_secs(5)).unwrap();
        c.announce().unwrap();
        let start = Instant::now();
        let until = start + Duration::from_millis(300);
        let stop = AtomicBool::new(false);
        let mut heard = Vec::new();
        let end = c.listen(Duration::from_millis(20), until, &stop, &mut |r| {
            heard.push(r.clone());
            Ok(())
        });
        assert_eq!(end.unwrap(), ListenEnd::Deadline);
        assert!(start.elapsed() >= Duration::from_millis(300));
        assert!(heard.is_empty(), "{heard:?}");
        c.send_raw(b"quit").unwrap();
        server.join().unwrap();
        // Nobody answers any more: given up after LISTEN_MISSED alives.
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut c =
            RendezvousClient::new(silent.local_addr().unwrap(), Duration::from_secs(5)).unwrap();
        let until = Instant::now() + Duration::from_secs(20);
        let end = c.listen(Duration::from_millis(20), until, &stop, &mut |_| Ok(()));
        assert!(matches!(end, Err(RendezvousError::Timeout)), "{end:?}");
        let mut buf = [0u8; 64];
        silent
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        for _ in 0..LISTEN_MISSED {
            let n = silent.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], br#"{"action":"alive"}"#);
        }
    }

    #[test]
    fn times_out_on_a_silent_tracker() {
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut c =
            RendezvousClient::new(silent.local_addr().unwrap(), Duration::from_millis(50)).unwrap();
        assert!(matches!(c.announce(), Err(RendezvousError::Timeout)));
    }
}
