//! Replies per second over a veth pair: the AF_XDP path against the socket
//! path, alternating, one tracker thread each (not criterion).
//!
//! Two network namespaces joined by a veth pair (made and deleted here, root
//! only): the tracker side runs shoal's server with one worker
//! (`Server::bind`), with `--xdp` on the veth (its worker serves an AF_XDP
//! socket on queue 0) or without (mio + recvmmsg/sendmmsg); the
//! other side runs `shoal bench`'s load generator (1 worker, 4 sockets, 16
//! in flight each, 50:50:1 connect:announce:scrape). Rounds alternate; the
//! medians and the ratio are printed, with the CPU time of the tracker's
//! worker per reply (from /proc), which is what tells the two paths apart
//! when the load generator is the limit. Both count outcomes the same way.
//!
//! ```sh
//! cargo bench --features xdp --bench xdp_veth            # 3 rounds of 5 s each
//! cargo bench --features xdp --bench xdp_veth -- 5 10    # 5 rounds of 10 s
//! ```
#![allow(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use shoal::bench::{self, BenchConfig};
use shoal::server::{Config, Server};
use shoal::xdp::XdpConfig;
use std::fs::File;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::process::Command;
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
        // The AF_XDP path: the same server, with --xdp on the veth.
        let dev = va.clone();
        let running = within(&a, move || {
            let config = Config {
                workers: 1,
                xdp: XdpConfig { iface: Some(dev) },
                ..Config::for_udp(SocketAddr::from(([10, 232, 0, 1], 0)))
            };
            Server::bind(config).unwrap().spawn().unwrap()
        });
        let target = running.udp_addrs()[0];
        let cpu = thread_cpu("shoal-worker-0");
        let r = load(&b, target, secs);
        let xdp_cpu = (thread_cpu("shoal-worker-0") - cpu) / secs as f64;
        // Stopped in the namespace it runs in: detaching the program goes
        // through that namespace's netlink.
        within(&a, move || running.stop());
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
