//! The AF_XDP path on a real interface: a veth pair between two network
//! namespaces this test creates (and deletes), the tracker's side in one,
//! a sender in the other. Only with `--features xdp`, and only as root
//! (network namespaces, BPF): otherwise each test says why in one line and
//! passes without checking anything.
//!
//! ```sh
//! cargo test --features xdp --test xdp
//! ```
#![cfg(all(feature = "xdp", target_os = "linux"))]
// setns(2) moves a test thread into a namespace: the one unsafe call here.
#![allow(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use shoal::time::Clock;
use shoal::tracker::{Tracker, TrackerConfig, Worker};
use shoal::xdp::path::XdpPath;
use shoal::xdp::prog::{Error, Program};
use shoal::xdp::xsk::Xsk;
use std::fs::File;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;
use std::time::Instant;

/// Why these tests cannot run here, if they cannot.
fn unable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => {}
        _ => return Some("no `ip` command (iproute2)".into()),
    }
    // A container may deny namespaces even to root.
    let probe = format!("shoal-xdp-probe-{}", std::process::id());
    let made = Command::new("ip").args(["netns", "add", &probe]).output();
    let _ = Command::new("ip").args(["netns", "del", &probe]).output();
    match made {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "no network namespaces: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("no network namespaces: {e}")),
    }
}

macro_rules! skip_unless_able {
    () => {
        if let Some(why) = unable() {
            eprintln!(
                "skipped: the AF_XDP tests need root, iproute2 and network namespaces: {why}"
            );
            return;
        }
    };
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two namespaces joined by a veth pair: `a` (the tracker's, 10.231.N.1 and
/// fd31:N::1 on `iface_a`) and `b` (the sender's, .2 and ::2). Deleted on drop.
struct Link {
    a: String,
    b: String,
    iface_a: String,
    v4_a: String,
    v6_a: String,
}

impl Link {
    fn new(tag: u8) -> Link {
        Link::with_peer_queues(tag, "1")
    }

    /// With `peer_tx` TX queues on the sender's end.
    fn with_peer_queues(tag: u8, peer_tx: &str) -> Link {
        let id = std::process::id();
        let (a, b) = (
            format!("shoal-xdp-{id}-{tag}a"),
            format!("shoal-xdp-{id}-{tag}b"),
        );
        let (va, vb) = (format!("sx{id}{tag}a"), format!("sx{id}{tag}b"));
        let link = Link {
            a: a.clone(),
            b: b.clone(),
            iface_a: va.clone(),
            v4_a: format!("10.231.{tag}.1"),
            v6_a: format!("fd31:{tag}::1"),
        };
        ip(&["netns", "add", &a]);
        ip(&["netns", "add", &b]);
        ip(&[
            "link",
            "add",
            &va,
            "netns",
            &a,
            "numtxqueues",
            "1",
            "numrxqueues",
            "1",
            "type",
            "veth",
            "peer",
            "name",
            &vb,
            "netns",
            &b,
            "numtxqueues",
            peer_tx,
            "numrxqueues",
            "1",
        ]);
        for (ns, dev, n) in [(&a, &va, 1), (&b, &vb, 2)] {
            let v4 = format!("10.231.{tag}.{n}/24");
            let v6 = format!("fd31:{tag}::{n}/64");
            ip(&["-n", ns, "addr", "add", &v4, "dev", dev]);
            ip(&["-n", ns, "addr", "add", &v6, "dev", dev, "nodad"]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        link
    }

    /// Runs `f` on a thread inside namespace `ns`.
    fn within<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let file = File::open(format!("/run/netns/{ns}")).unwrap();
        std::thread::spawn(move || {
            // SAFETY: a valid namespace fd; only this thread changes namespace.
            let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap()
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end inside it, and so the pair.
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Receives one datagram within a bound; its length.
fn recv_len(s: &UdpSocket) -> usize {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 4096];
    s.recv_from(&mut buf).expect("a datagram within 5 s").0
}

/// With no AF_XDP socket in its map, the program must leave every frame to
/// the kernel: its own sockets still get everything, including what the
/// program matched (its fallback is XDP_PASS). What it matched must be
/// exactly the unfragmented UDP datagrams to the tracker's port, IPv4 and
/// IPv6; not another port, not the fragments of a large datagram, not ARP
/// (the sender has no static neighbour entry, so ARP and ND go through it
/// first).
#[test]
fn program_matches_only_tracker_datagrams_and_passes_the_rest() {
    skip_unless_able!();
    let link = Link::new(1);
    let (iface, v4_a, v6_a) = (link.iface_a.clone(), link.v4_a.clone(), link.v6_a.clone());
    let (tx, rx) = std::sync::mpsc::channel::<(SocketAddr, SocketAddr, SocketAddr)>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let b = link.b.clone();
    let a = link.a.clone();
    let tracker = std::thread::spawn(move || {
        Link::within(&a, move || {
            // Dual-stack sockets on ports the kernel picks in this namespace.
            let port = UdpSocket::bind("[::]:0").unwrap();
            let other = UdpSocket::bind("[::]:0").unwrap();
            let p = port.local_addr().unwrap().port();
            let q = other.local_addr().unwrap().port();
            let prog = Program::attach(&iface, &[p]).expect("attach in native mode");
            tx.send((
                format!("{v4_a}:{p}").parse().unwrap(),
                format!("[{v6_a}]:{p}").parse().unwrap(),
                format!("{v4_a}:{q}").parse().unwrap(),
            ))
            .unwrap();
            let mut got = vec![recv_len(&port), recv_len(&port)];
            let other_len = recv_len(&other);
            got.push(recv_len(&port));
            got.push(recv_len(&port));
            got.sort();
            let matched = prog.matched().unwrap();
            done_rx.recv().unwrap();
            (got, other_len, matched)
        })
    });
    let (to_v4, to_v6, to_other) = rx.recv().unwrap();
    Link::within(&b, move || {
        let s4 = UdpSocket::bind("0.0.0.0:0").unwrap();
        let s6 = UdpSocket::bind("[::]:0").unwrap();
        s4.send_to(&[1; 16], to_v4).unwrap();
        s6.send_to(&[2; 17], to_v6).unwrap();
        s4.send_to(&[3; 18], to_other).unwrap();
        // Larger than the 1500-byte MTU: sent as fragments.
        s4.send_to(&[4; 3000], to_v4).unwrap();
        s6.send_to(&[5; 3001], to_v6).unwrap();
    });
    done_tx.send(()).unwrap();
    let (got, other_len, matched) = tracker.join().unwrap();
    assert_eq!(got, vec![16, 17, 3000, 3001]);
    assert_eq!(other_len, 18);
    assert_eq!(
        matched, 2,
        "only the two unfragmented datagrams to the port"
    );
}

/// Start-up errors say what is wrong: no such interface, or one that already
/// runs an XDP program; dropping the program detaches it.
#[test]
fn attach_errors_and_detach_on_drop() {
    skip_unless_able!();
    let link = Link::new(2);
    let iface = link.iface_a.clone();
    Link::within(&link.a, move || {
        let e = Program::attach("shoal-no-such0", &[6969]).unwrap_err();
        assert!(matches!(e, Error::NoInterface(_)), "{e}");
        assert!(e.to_string().contains("no network interface"), "{e}");
        let first = Program::attach(&iface, &[6969]).unwrap();
        let e = Program::attach(&iface, &[6969]).unwrap_err();
        assert!(matches!(e, Error::Busy(_)), "{e}");
        assert!(!e.to_string().contains('\n'));
        drop(first);
        Program::attach(&iface, &[6969]).expect("attach again after the first is dropped");
    });
}

/// A BEP 15 exchange over AF_XDP, answered by the tracker core: from the
/// peer namespace, an IPv4 connect, an announce with the connection id it
/// got, and an IPv6 connect, through ordinary kernel sockets; on the
/// tracker's side an AF_XDP socket on queue 0 receives the frames and
/// `Tracker::handle_udp` answers in the TX frames. The sender's kernel
/// accepts the replies, so their MACs, addresses, ports, lengths and
/// checksums are right; the tracker's own kernel socket on that port gets
/// none of the datagrams.
#[test]
fn bep15_over_af_xdp_answered_by_the_tracker_core() {
    skip_unless_able!();
    let link = Link::new(3);
    let (iface, v4_a, v6_a) = (link.iface_a.clone(), link.v4_a.clone(), link.v6_a.clone());
    let (tx, rx) = std::sync::mpsc::channel::<(SocketAddr, SocketAddr)>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let a = link.a.clone();
    let tracker = std::thread::spawn(move || {
        Link::within(&a, move || {
            let kernel = UdpSocket::bind("[::]:0").unwrap();
            let p = kernel.local_addr().unwrap().port();
            let mut path = XdpPath::open(&iface, &[p], 4).expect("the AF_XDP path");
            assert_eq!(path.queues, 1);
            assert_eq!(
                path.sockets.len(),
                1,
                "one socket: one queue, though 4 workers"
            );
            let mut xsk = path.sockets.pop().unwrap();
            tx.send((
                format!("{v4_a}:{p}").parse().unwrap(),
                format!("[{v6_a}]:{p}").parse().unwrap(),
            ))
            .unwrap();
            let core = Tracker::new(TrackerConfig::default());
            let mut w = Worker::new();
            let clock = Clock::system();
            let mut total = shoal::xdp::xsk::Served::default();
            let deadline = Instant::now() + Duration::from_secs(10);
            while done_rx.try_recv().is_err() {
                assert!(Instant::now() < deadline, "sender done within 10 s");
                xsk.wait(Duration::from_millis(50)).unwrap();
                let s = xsk
                    .serve(&[p], |src, req, out| {
                        core.handle_udp(&mut w, clock.now(), src, req, out).reply
                    })
                    .unwrap();
                total.received += s.received;
                total.skipped += s.skipped;
                total.replied += s.replied;
                total.dropped += s.dropped;
            }
            kernel.set_nonblocking(true).unwrap();
            let leaked = kernel.recv_from(&mut [0u8; 64]).is_ok();
            (total, path.matched().unwrap(), leaked)
        })
    });
    let (to_v4, to_v6) = rx.recv().unwrap();
    Link::within(&link.b.clone(), move || {
        let exchange = |s: &UdpSocket, to: SocketAddr, req: &[u8]| -> Vec<u8> {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.send_to(req, to).unwrap();
            let mut buf = [0u8; 1500];
            let (n, from) = s.recv_from(&mut buf).expect("a reply within 5 s");
            assert_eq!(
                from, to,
                "the reply comes from the tracker's address and port"
            );
            buf[..n].to_vec()
        };
        let connect = |tid: u32| {
            let mut r = 0x0417_2710_1980u64.to_be_bytes().to_vec();
            r.extend_from_slice(&0u32.to_be_bytes());
            r.extend_from_slice(&tid.to_be_bytes());
            r
        };
        let s4 = UdpSocket::bind("0.0.0.0:0").unwrap();
        let rep = exchange(&s4, to_v4, &connect(0xA1B2_C3D4));
        assert_eq!(rep.len(), 16);
        assert_eq!(rep[..8], [0, 0, 0, 0, 0xA1, 0xB2, 0xC3, 0xD4]);
        let conn_id = &rep[8..16];
        // An announce (BEP 15): connection id, action 1, transaction id,
        // info hash, peer id, downloaded, left, uploaded, event, ip, key,
        // num_want, port.
        let mut ann = conn_id.to_vec();
        ann.extend_from_slice(&1u32.to_be_bytes());
        ann.extend_from_slice(&7u32.to_be_bytes());
        ann.extend_from_slice(&[0x11; 20]);
        ann.extend_from_slice(b"-SH0100-xdpxdpxdpxdp");
        ann.extend_from_slice(&[0; 8]);
        ann.extend_from_slice(&100u64.to_be_bytes());
        ann.extend_from_slice(&[0; 8]);
        ann.extend_from_slice(&2u32.to_be_bytes()); // started
        ann.extend_from_slice(&[0; 4]);
        ann.extend_from_slice(&9u32.to_be_bytes());
        ann.extend_from_slice(&50i32.to_be_bytes());
        ann.extend_from_slice(&6881u16.to_be_bytes());
        let rep = exchange(&s4, to_v4, &ann);
        assert_eq!(rep[..8], [0, 0, 0, 1, 0, 0, 0, 7], "an announce response");
        assert_eq!(rep.len(), 20, "no other peers yet");
        assert_eq!(
            rep[12..16],
            1u32.to_be_bytes(),
            "the announcer counted as a leecher"
        );
        let s6 = UdpSocket::bind("[::]:0").unwrap();
        let rep = exchange(&s6, to_v6, &connect(0x0506_0708));
        assert_eq!(rep.len(), 16);
        assert_eq!(rep[..8], [0, 0, 0, 0, 5, 6, 7, 8]);
    });
    done_tx.send(()).unwrap();
    let (served, matched, leaked) = tracker.join().unwrap();
    assert_eq!(served.replied, 3, "{served:?}");
    assert_eq!(served.received, 3, "{served:?}");
    assert_eq!((served.skipped, served.dropped), (0, 0), "{served:?}");
    assert_eq!(matched, 3);
    assert!(!leaked, "no datagram reached the kernel's socket");
}

/// Without privileges, attaching fails with one line that says what is
/// needed. The thread drops root with a raw setresuid, which (unlike
/// glibc's) changes only the calling thread's credentials and capabilities.
#[test]
fn without_privileges_attach_says_what_it_needs() {
    skip_unless_able!();
    let link = Link::new(4);
    let iface = link.iface_a.clone();
    let (e, sock) = Link::within(&link.a, move || {
        let nobody = 65534;
        // SAFETY: a raw system call with integer arguments.
        let r = unsafe { libc::syscall(libc::SYS_setresuid, nobody, nobody, nobody) };
        assert_eq!(r, 0, "setresuid: {}", std::io::Error::last_os_error());
        let e = Program::attach(&iface, &[6969]).unwrap_err();
        let sock = Xsk::bind(1, 0).unwrap_err();
        (e, sock)
    });
    assert!(matches!(e, Error::NotPermitted(_)), "{e:?}");
    let line = e.to_string();
    assert!(
        line.contains("root or with CAP_BPF and CAP_NET_ADMIN"),
        "{line}"
    );
    assert!(!line.contains('\n'));
    assert_eq!(sock.raw_os_error(), Some(libc::EPERM), "{sock}");
}

/// A refusal from the kernel comes with the kernel's own reason on the same
/// line: here veth's, for a peer with more TX queues than this end has RX
/// queues.
#[test]
fn kernel_refusal_carries_the_kernels_reason() {
    skip_unless_able!();
    let link = Link::with_peer_queues(5, "2");
    let iface = link.iface_a.clone();
    let e = Link::within(&link.a, move || {
        Program::attach(&iface, &[6969]).unwrap_err()
    });
    let line = e.to_string();
    assert!(
        line.starts_with("--xdp: attaching the XDP program failed: "),
        "{line}"
    );
    assert!(
        line.contains("veth: XDP expects number of rx queues"),
        "{line}"
    );
    assert!(!line.contains('\n'), "{line}");
}

/// UDP datagrams the kernel's UDP stack of namespace `ns` has taken in.
fn kernel_udp_in(ns: &str) -> u64 {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "cat", "/proc/net/snmp"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut udp = text.lines().filter(|l| l.starts_with("Udp: "));
    let (names, values) = (udp.next().unwrap(), udp.next().unwrap());
    let at = names.split(' ').position(|n| n == "InDatagrams").unwrap();
    values.split(' ').nth(at).unwrap().parse().unwrap()
}

/// The binary with `--xdp`: a BEP 15 connect from the peer namespace is
/// answered, the tracker namespace's kernel UDP stack never sees it (its
/// InDatagrams counter does not move), SIGTERM ends it with status 0 and
/// the program is detached. The port is fixed: the namespace is this
/// test's own, so nothing else can hold it.
#[test]
fn shoal_with_xdp_answers_over_af_xdp() {
    skip_unless_able!();
    let link = Link::new(6);
    let mut child = Command::new("ip")
        .args(["netns", "exec", &link.a, env!("CARGO_BIN_EXE_shoal")])
        .args([
            "--udp",
            "10.231.6.1:6969",
            "--workers",
            "1",
            "--xdp",
            &link.iface_a,
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let connect = |b: &str, tid: u8| {
        Link::within(b, move || {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut req = 0x0417_2710_1980u64.to_be_bytes().to_vec();
            req.extend_from_slice(&[0, 0, 0, 0, 9, 8, 7, tid]);
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut buf = [0u8; 64];
            // Until the server is up: each try waits 200 ms for its reply.
            while Instant::now() < deadline {
                s.send_to(&req, "10.231.6.1:6969").unwrap();
                if let Ok((n, _)) = s.recv_from(&mut buf) {
                    return buf[..n].to_vec();
                }
            }
            Vec::new()
        })
    };
    // Once one connect is answered the workers run, so the sockets are in
    // the program's map (a datagram that came before may have been the
    // kernel's).
    let first = connect(&link.b, 1);
    let before = kernel_udp_in(&link.a);
    let answered = connect(&link.b, 6);
    let after = kernel_udp_in(&link.a);
    let link_shows = || {
        let out = Command::new("ip")
            .args(["-n", &link.a, "link", "show", "dev", &link.iface_a])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let running = link_shows();
    // SAFETY: kill(2) on our own child's id.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let mut log = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut log).unwrap();
    assert_eq!(first.len(), 16, "a connect response; log:\n{log}");
    assert_eq!(answered.len(), 16, "a connect response; log:\n{log}");
    assert_eq!(answered[..8], [0, 0, 0, 0, 9, 8, 7, 6]);
    assert_eq!(
        after, before,
        "the kernel's UDP stack saw none of it; log:\n{log}"
    );
    assert!(log.contains("AF_XDP on 1 of 1 receive queues"), "{log}");
    assert!(status.success(), "{status}; log:\n{log}");
    assert!(
        running.contains("prog/xdp"),
        "attached while running: {running}"
    );
    let shown = link_shows();
    assert!(
        !shown.contains("prog/xdp"),
        "the program is detached at exit: {shown}; log:\n{log}"
    );
}

/// Without privileges the binary says so in one line and exits 1.
#[test]
fn shoal_with_xdp_without_privileges_exits_1() {
    skip_unless_able!();
    let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["--udp", "127.0.0.1:0", "--workers", "1", "--xdp", "lo"])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("--xdp")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("run as root or with CAP_BPF and CAP_NET_ADMIN"),
        "{err}"
    );
}
