//! Criterion benchmarks of the AF_XDP frame code: what a worker adds per
//! datagram when it reads and writes whole Ethernet frames instead of
//! handing payloads to sockets.
//!
//! - `xdp/parse/{v4,v6}`: reading a connect request's frame (Ethernet, IP
//!   with the IPv4 header checksum verified, UDP, the port check).
//! - `xdp/reply/{v4,v6}/{16,320,1480}`: writing a reply's headers with
//!   both checksums around a payload already in place: a connect response
//!   (16 bytes), an announce response with 50 IPv4 peers (320) and the
//!   largest payload of a 1500-byte MTU (1472 over IPv4, 1452 over IPv6).
//!
//! ```sh
//! cargo bench --bench xdp
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shoal::xdp::frame::{self, Datagram};
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

const CONNECT: [u8; 16] = [
    0, 0, 4, 0x17, 0x27, 0x10, 0x19, 0x80, 0, 0, 0, 0, 0xa1, 0xb2, 0xc3, 0xd4,
];

/// A connect request's frame from `client` to `tracker`.
fn request(client: SocketAddr, tracker: SocketAddr) -> Vec<u8> {
    let d = Datagram::new([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], client, tracker).unwrap();
    let mut f = vec![0u8; 128];
    let at = d.header_len();
    f[at..at + CONNECT.len()].copy_from_slice(&CONNECT);
    let n = d.write(&mut f, CONNECT.len()).unwrap();
    f.truncate(n);
    f
}

fn frames(c: &mut Criterion) {
    let mut g = c.benchmark_group("xdp");
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(2));
    let pairs: [(&str, SocketAddr, SocketAddr); 2] = [
        (
            "v4",
            "10.0.0.1:40000".parse().unwrap(),
            "10.0.0.2:6969".parse().unwrap(),
        ),
        (
            "v6",
            "[fd00::1]:40000".parse().unwrap(),
            "[fd00::2]:6969".parse().unwrap(),
        ),
    ];
    for (name, client, tracker) in pairs {
        let req = request(client, tracker);
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("parse/{name}"), |b| {
            b.iter(|| frame::parse(black_box(&req), black_box(&[6969])).unwrap())
        });
        let (d, _) = frame::parse(&req, &[6969]).unwrap();
        let r = d.reply();
        for len in [16, 320, 1472] {
            let len = len.min(1514 - r.header_len());
            let mut out = vec![0x5Au8; 2048];
            g.bench_function(format!("reply/{name}/{len}"), |b| {
                b.iter(|| black_box(&r).write(black_box(&mut out), len).unwrap())
            });
        }
    }
    g.finish();
}

criterion_group!(benches, frames);
criterion_main!(benches);
