//! Replies per second over a veth pair: the AF_XDP path against the socket
//! path, alternating, one tracker thread each (not criterion).
//!
//! Two network namespaces joined by a veth pair (made and deleted here, root
//! only): the tracker side runs either shoal's socket server with one worker
//! (`Server::bind`, mio + recvmmsg/sendmmsg) or one thread serving an
//! AF_XDP socket on queue 0 through the same `Tracker::handle_udp`; the
//! other side runs `shoal bench`'s load generator (1 worker, 4 sockets, 16
//! in flight each, 50:50:1 connect:announce:scrape). Rounds alternate; the
//! medians and the ratio are printed, with the CPU time of the tracker's
//! thread per reply (from getrusage / /proc), which is what tells the two
//! paths apart when the load generator is the limit. The AF_XDP thread does
//! not count outcomes (the socket worker does, a few ns a request).
//!
//! ```sh
//! cargo bench --features xdp --bench xdp_veth            # 3 rounds of 5 s each
//! cargo bench --features xdp --bench xdp_veth -- 5 10    # 5 rounds of 10 s
//! ```
#![allow(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use shoal::bench::{self, BenchConfig};
use shoal::server::{Config, Server};
use shoal::time::Clock;
use shoal::tracker::{Tracker, TrackerConfig, Worker};
use shoal::xdp::prog::Program;
use shoal::xdp::xsk::Xsk;
use std::fs::File;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn ip(args: &[&str]) {
    let ok = Command::new("ip").args(args).status().unwrap().success();
    assert!(ok, "ip {}", args.join(" "));
}

/// Runs `f` on a thread inside namespace `ns`.
fn within<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let file = File::open(format!("/run/netns/{ns}")).unwrap();
    std::thread::spawn(move || {
        // SAFETY: a valid namespace fd; only this thread changes namespace.
        assert_eq!(
            unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        f()
    })
    .join()
    .unwrap()
}

struct Namespaces([String; 2]);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// One load run from namespace `b` against `target`; replies per second.
fn load(b: &str, target: SocketAddr, secs: u64) -> f64 {
    within(b, move || {
        let config = BenchConfig {
            target: Some(format!("udp://{target}").parse().unwrap()),
            duration: Duration::from_secs(secs),
            torrents: 10_000,
            peers: 20_000,
            allow_remote: true,
            progress: false,
            ..BenchConfig::default()
        };
        bench::run(&config).unwrap().replies_per_sec()
    })
}

/// CPU seconds (user + system) of this process's thread named `name`.
fn thread_cpu(name: &str) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let dir = task.unwrap().path();
        if std::fs::read_to_string(dir.join("comm"))
            .unwrap_or_default()
            .trim()
            != name
        {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap();
        // Fields after the ")" that ends the name: utime and stime are the
        // 12th and 13th.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split(' ').collect();
        return (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / tick;
    }
    panic!("no thread named {name}");
}

/// CPU seconds of the calling thread.
fn own_cpu() -> f64 {
    // SAFETY: a zeroed rusage is valid; getrusage fills it.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a live rusage.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut r) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(r.ru_utime) + t(r.ru_stime)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("xdp_veth: needs root (network namespaces, BPF); skipped");
        return;
    }
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let rounds = args.first().copied().unwrap_or(3).clamp(1, 20);
    let secs = args.get(1).copied().unwrap_or(5).clamp(1, 60);
    let id = std::process::id();
    let (a, b) = (format!("shoal-xdpb-{id}a"), format!("shoal-xdpb-{id}b"));
    let (va, vb) = (format!("sxb{id}a"), format!("sxb{id}b"));
    ip(&["netns", "add", &a]);
    let _ns = Namespaces([a.clone(), b.clone()]);
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
        "1",
        "numrxqueues",
        "1",
    ]);
    for (ns, dev, addr) in [(&a, &va, "10.232.0.1/24"), (&b, &vb, "10.232.0.2/24")] {
        ip(&["-n", ns, "addr", "add", addr, "dev", dev]);
        ip(&["-n", ns, "link", "set", dev, "up"]);
    }

    let (mut xdp, mut sock) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // The AF_XDP path.
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let (ns, dev, stop2) = (a.clone(), va.clone(), stop.clone());
        let server = std::thread::spawn(move || {
            within(&ns, move || {
                let p = 6969;
                let prog = Program::attach(&dev, &[p]).unwrap();
                let mut xsk = Xsk::bind(prog.ifindex(), 0).unwrap();
                prog.insert(0, xsk.as_raw_fd()).unwrap();
                tx.send(SocketAddr::from(([10, 232, 0, 1], p))).unwrap();
                let core = Tracker::new(TrackerConfig::default());
                let mut w = Worker::new();
                let clock = Clock::system();
                let cpu = own_cpu();
                while !stop2.load(Ordering::Relaxed) {
                    xsk.wait(Duration::from_millis(10)).unwrap();
                    let now = clock.now();
                    xsk.serve(&[p], |src, req, out| {
                        core.handle_udp(&mut w, now, src, req, out).reply
                    })
                    .unwrap();
                }
                own_cpu() - cpu
            })
        });
        let target = rx.recv().unwrap();
        let r = load(&b, target, secs);
        stop.store(true, Ordering::Relaxed);
        let xdp_cpu = server.join().unwrap() / secs as f64;
        xdp.push(r);

        // The socket path.
        let running = within(&a, || {
            let config = Config {
                workers: 1,
                ..Config::for_udp(SocketAddr::from(([10, 232, 0, 1], 0)))
            };
            Server::bind(config).unwrap().spawn().unwrap()
        });
        let target = running.udp_addrs()[0];
        let cpu = thread_cpu("shoal-worker-0");
        let r2 = load(&b, target, secs);
        let sock_cpu = (thread_cpu("shoal-worker-0") - cpu) / secs as f64;
        running.stop();
        sock.push(r2);
        println!(
            "round {round}: af_xdp {r:.0} replies/s ({:.0} % of a core, {:.0} ns CPU a reply), \
             sockets {r2:.0} replies/s ({:.0} %, {:.0} ns), ratio {:.2}",
            xdp_cpu * 100.0,
            xdp_cpu / r * 1e9,
            sock_cpu * 100.0,
            sock_cpu / r2 * 1e9,
            r / r2
        );
    }
    let (mx, ms) = (median(&mut xdp), median(&mut sock));
    println!(
        "median of {rounds} rounds of {secs} s: af_xdp {mx:.0} replies/s, sockets {ms:.0} replies/s, ratio {:.2}",
        mx / ms
    );
}
