//! The connection layer driven turn by turn: budgets, bounded output, hand-over.

use super::*;

use crate::stats::{Family, Kind};
use mio::Events;
use std::net::TcpStream as StdStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Answers every request with `ok`, as `/health` does, counting them.
struct Answers(Counters);

impl Handler for Answers {
    fn counters(&self) -> &Counters {
        &self.0
    }

    fn serve(&mut self, req: &Request<'_>, out: &mut Vec<u8>) -> Served {
        self.0.request(Proto::Http, Family::V4, Kind::Health);
        wire_http::write_response_head(out, 200, "text/plain", 3, req.head.keep_alive);
        out.extend_from_slice(b"ok\n");
        Served::Done {
            used: req.head_len,
            keep_alive: req.head.keep_alive,
        }
    }
}

impl Answers {
    fn served(&self) -> u64 {
        self.0.requests(Proto::Http, Family::V4, Kind::Health)
    }
}

/// One loop's connections that the test drives turn by turn, behind a
/// listener on an ephemeral loopback port.
struct Harness {
    handler: Answers,
    poll: Poll,
    listeners: [Option<TcpListener>; 1],
    http: Conns,
    addr: std::net::SocketAddr,
    events: Events,
    start: Instant,
}

impl Harness {
    fn new() -> Harness {
        let config = ConnConfig {
            max_conns: 64,
            idle_timeout: Duration::from_secs(15),
            limiter: None,
        };
        let poll = Poll::new().unwrap();
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std_listener.local_addr().unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let mut listener = TcpListener::from_std(std_listener);
        poll.registry()
            .register(&mut listener, Token(0), Interest::READABLE)
            .unwrap();
        Harness {
            handler: Answers(Counters::default()),
            poll,
            listeners: [Some(listener)],
            http: Conns::new(&config, vec![Some(Role::Http)]),
            addr,
            events: Events::with_capacity(64),
            start: Instant::now(),
        }
    }

    /// One loop turn as the worker runs it: poll (for at most `idle`
    /// when nothing is queued), then the ready list, then the events.
    fn turn(&mut self, idle: Duration) {
        let Harness {
            handler,
            poll,
            listeners,
            http,
            events,
            start,
            ..
        } = self;
        let timeout = if http.has_ready() {
            Duration::ZERO
        } else {
            idle
        };
        poll.poll(events, Some(timeout)).unwrap();
        let now = Now::from_ms(start.elapsed().as_millis() as u64);
        http.run_ready(poll, listeners, handler, now);
        for event in events.iter() {
            http.on_event(poll, listeners, handler, event, now);
        }
    }
}

/// Read from `reader` (on its own thread) until `n` `/health` replies
/// have arrived.
fn read_replies(mut reader: StdStream, n: usize) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        let mut all = Vec::new();
        let count = |all: &[u8]| all.windows(7).filter(|w| w == b"\r\n\r\nok\n").count();
        while count(&all) < n {
            let got = reader.read(&mut buf).unwrap();
            assert!(got > 0, "closed after {} replies", count(&all));
            all.extend_from_slice(&buf[..got]);
        }
    })
}

/// One pipelining client that never lets up: every turn the connection is
/// both cut short by its read budget (queued) and readable again (an
/// event), the case that queued it once more per turn. The ready list
/// must hold it at most once, whatever the interleaving.
#[test]
fn ready_list_holds_a_connection_at_most_once() {
    let mut h = Harness::new();
    let addr = h.addr;

    let stop = Arc::new(AtomicBool::new(false));
    let client = StdStream::connect(addr).unwrap();
    let mut reader = client.try_clone().unwrap();
    let mut writer = client;
    let w_stop = Arc::clone(&stop);
    let w = std::thread::spawn(move || {
        let req = b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n".repeat(256);
        while !w_stop.load(Ordering::Relaxed) && writer.write_all(&req).is_ok() {}
    });
    let r_stop = Arc::clone(&stop);
    let r = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        while !r_stop.load(Ordering::Relaxed) && matches!(reader.read(&mut buf), Ok(n) if n > 0) {}
    });

    let mut queued_turns = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while queued_turns < 200 && Instant::now() < deadline {
        h.turn(Duration::from_millis(50));
        let http = &h.http;
        let mut seen = http.ready.clone();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(
            seen.len(),
            http.ready.len(),
            "a connection queued twice: {:?}",
            http.ready
        );
        assert!(http.ready.len() <= http.open);
        queued_turns += usize::from(!http.ready.is_empty());
    }
    assert!(queued_turns > 0, "the read budget was never reached");
    stop.store(true, Ordering::Relaxed);
    // Closing our side ends both client threads.
    for slot in 0..h.http.conns.len() {
        h.http.close(&mut h.poll, slot);
    }
    w.join().unwrap();
    r.join().unwrap();
}

/// A client that pipelines requests without reading the replies: the
/// server stops reading from it once `MAX_PENDING_OUT` bytes wait, the
/// queue stays bounded, and once the client reads everything the reply
/// buffer shrinks back to `OUT_KEEP` bytes, however far the backlog grew it.
#[test]
fn a_client_that_does_not_read_holds_bounded_output() {
    let mut h = Harness::new();
    let addr = h.addr;

    // Small kernel buffers on the reply path, so replies back up into
    // the server's queue quickly.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&addr.into()).unwrap();
    let client = StdStream::from(sock);
    const REQUESTS: usize = 3000;
    let mut writer = client.try_clone().unwrap();
    let w = std::thread::spawn(move || {
        let req = b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n".repeat(REQUESTS);
        writer.write_all(&req).unwrap();
    });

    let deadline = Instant::now() + Duration::from_secs(20);
    let turn = |h: &mut Harness| {
        h.turn(Duration::from_millis(10));
        assert!(Instant::now() < deadline, "timed out");
    };
    let conn = |http: &Conns| {
        http.conns
            .iter()
            .flatten()
            .next()
            .map(|c| (c.out.len() - c.out_pos, c.out.capacity()))
    };
    // Bound: the queue that stops reading, one turn's worth of replies
    // more at most, and what a partial write leaves before it.
    let bound = 2 * MAX_PENDING_OUT + REQUESTS_PER_TURN * 128;
    let mut shrunk = false;
    loop {
        turn(&mut h);
        if let Some((pending, cap)) = conn(&h.http) {
            assert!(cap <= bound, "reply buffer {cap} bytes");
            if pending >= MAX_PENDING_OUT {
                break;
            }
            if !shrunk {
                // Small socket buffers for the server's side too.
                let c = h.http.conns.iter().flatten().next().unwrap();
                socket2::SockRef::from(&c.stream)
                    .set_send_buffer_size(4096)
                    .unwrap();
                shrunk = true;
            }
        }
    }
    // Stalled: no more requests are answered (nor read) until the client reads.
    let served = h.handler.served();
    assert!(served < REQUESTS as u64);
    for _ in 0..20 {
        turn(&mut h);
        assert_eq!(h.handler.served(), served);
        assert!(conn(&h.http).unwrap().1 <= bound);
    }
    // The client reads every reply; the queue drains and gives its memory back.
    let r = read_replies(client.try_clone().unwrap(), REQUESTS);
    while !r.is_finished() || conn(&h.http).is_some_and(|(p, _)| p > 0) {
        turn(&mut h);
    }
    r.join().unwrap();
    w.join().unwrap();
    assert_eq!(h.handler.served(), REQUESTS as u64);
    let (pending, cap) = conn(&h.http).unwrap();
    assert_eq!(pending, 0);
    assert!(cap <= OUT_KEEP, "drained reply buffer kept {cap} bytes");
    // A smaller burst, under the stop-reading mark, that the client reads
    // only once all of it is answered: the buffer grew past OUT_KEEP and
    // must not keep that size.
    let mut client = client;
    client
        .write_all(&b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n".repeat(400))
        .unwrap();
    while h.handler.served() < REQUESTS as u64 + 400 {
        turn(&mut h);
    }
    let (pending, cap) = conn(&h.http).unwrap();
    assert!(pending > OUT_KEEP && pending < MAX_PENDING_OUT, "{pending}");
    assert!(cap > OUT_KEEP);
    let r = read_replies(client.try_clone().unwrap(), 400);
    while !r.is_finished() || conn(&h.http).is_some_and(|(p, _)| p > 0) {
        turn(&mut h);
    }
    r.join().unwrap();
    let (_, cap) = conn(&h.http).unwrap();
    assert!(cap <= OUT_KEEP, "drained reply buffer kept {cap} bytes");
    drop(client);
}

/// Answers `GET /PATH` with `PATH` and the name of the loop that
/// answered; `handoff`: the paths it hands over instead.
struct Named {
    name: &'static str,
    handoff: &'static [u8],
    counters: Counters,
}

impl Handler for Named {
    fn counters(&self) -> &Counters {
        &self.counters
    }

    fn serve(&mut self, req: &Request<'_>, out: &mut Vec<u8>) -> Served {
        if req.head.path == self.handoff {
            return Served::HandOff;
        }
        let body = format!(
            "{} by {}\n",
            String::from_utf8_lossy(req.head.path),
            self.name
        );
        wire_http::write_response_head(out, 200, "text/plain", body.len(), true);
        out.extend_from_slice(body.as_bytes());
        Served::Done {
            used: req.head_len,
            keep_alive: true,
        }
    }
}

/// A pipelining client whose second request is handed over: the first is
/// answered by the loop that accepted it, the rest, in order, by the
/// loop that adopted the connection; the connection leaves the first
/// loop's count and joins the second's.
#[test]
fn a_handed_over_connection_keeps_its_order_and_bytes() {
    let config = ConnConfig {
        max_conns: 8,
        idle_timeout: Duration::from_secs(15),
        limiter: Some(Arc::new(ConnLimiter::new(4, 64))),
    };
    let mut poll_a = Poll::new().unwrap();
    let mut poll_b = Poll::new().unwrap();
    let waker = Arc::new(mio::Waker::new(poll_b.registry(), Token(usize::MAX - 1)).unwrap());
    let handoff = Arc::new(Handoff::new(waker));
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_listener.local_addr().unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let mut listener = TcpListener::from_std(std_listener);
    poll_a
        .registry()
        .register(&mut listener, Token(0), Interest::READABLE)
        .unwrap();
    let listeners = [Some(listener)];
    let mut a = Conns::new(&config, vec![Some(Role::Http)]).with_handoff(Arc::clone(&handoff));
    let mut b = Conns::new(&config, vec![None]);
    let mut worker = Named {
        name: "worker",
        handoff: b"/metrics",
        counters: Counters::default(),
    };
    let mut control = Named {
        name: "control",
        handoff: b"",
        counters: Counters::default(),
    };

    let mut client = StdStream::connect(addr).unwrap();
    client
        .write_all(b"GET /a HTTP/1.1\r\n\r\nGET /metrics HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
        .unwrap();
    let (mut events_a, mut events_b) = (Events::with_capacity(8), Events::with_capacity(8));
    let deadline = Instant::now() + Duration::from_secs(10);
    let now = Now::from_secs(1);
    while b.open() == 0 {
        assert!(Instant::now() < deadline, "never handed over");
        poll_a
            .poll(&mut events_a, Some(Duration::from_millis(50)))
            .unwrap();
        a.run_ready(&mut poll_a, &listeners, &mut worker, now);
        for e in events_a.iter() {
            a.on_event(&mut poll_a, &listeners, &mut worker, e, now);
        }
        poll_b.poll(&mut events_b, Some(Duration::ZERO)).unwrap();
        b.adopt(&mut poll_b, &handoff, &mut control, now);
    }
    assert_eq!((a.open(), b.open()), (0, 1), "the connection moved");
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 1024];
    while seen.matches("\r\n\r\n").count() < 3 || !seen.ends_with("control\n") {
        assert!(Instant::now() < deadline, "replies so far: {seen:?}");
        poll_b
            .poll(&mut events_b, Some(Duration::from_millis(20)))
            .unwrap();
        b.run_ready(&mut poll_b, &[None], &mut control, now);
        for e in events_b.iter() {
            b.on_event(&mut poll_b, &[None], &mut control, e, now);
        }
        client.set_nonblocking(true).unwrap();
        if let Ok(n) = client.read(&mut buf) {
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        client.set_nonblocking(false).unwrap();
    }
    let bodies: Vec<&str> = seen
        .split("\r\n\r\n")
        .skip(1)
        .map(|chunk| chunk.split("HTTP/1.1").next().unwrap())
        .collect();
    assert_eq!(
        bodies,
        ["/a by worker\n", "/metrics by control\n", "/b by control\n"]
    );
    // Closing it gives its per-address slot back, from the adopting loop.
    drop(client);
    while b.open() > 0 {
        assert!(Instant::now() < deadline, "never closed");
        poll_b
            .poll(&mut events_b, Some(Duration::from_millis(20)))
            .unwrap();
        for e in events_b.iter() {
            b.on_event(&mut poll_b, &[None], &mut control, e, now);
        }
    }
    let limiter = config.limiter.as_ref().unwrap();
    let slots: Vec<usize> = (0..4)
        .map_while(|_| limiter.acquire("127.0.0.1".parse().unwrap()))
        .collect();
    assert_eq!(slots.len(), 4, "every slot is free again");
}
