#!/usr/bin/env python3
"""Records lost across a subscriber outage under steady load (BENCHMARKS.md,
"Cluster").

Two instances of the shoal binary and a local redis-server: A connects
directly, B through a TCP proxy this script runs. A takes a steady load of
announces (RATE a second, each a new seeder, spread over 50 torrents). After
3 s the proxy cuts B's link (closes both of B's connections and refuses new
ones) for OUTAGE seconds, then lets B reconnect; the load goes on 3 s more,
then stops. Once B has settled, the script counts the seeders A and B hold:
what B lacks was lost across the outage.

Works with any shoal binary that has --cluster (the one before the stream,
pub/sub, and the one after), so both can be measured by the same script:

    cargo build --release
    python3 benches/cluster_outage.py --shoal target/release/shoal
    python3 benches/cluster_outage.py --shoal /path/to/older/shoal

Loopback only; bounded in time (about 20 s a run) and count (RATE x 11 s).
Needs redis-server on PATH.
"""
import argparse
import os
import re
import socket
import struct
import subprocess
import tempfile
import threading
import time

TORRENTS = 50


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Proxy:
    """Forwards 127.0.0.1:port to upstream; cut() closes every connection
    and refuses new ones until restore()."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.cut_now = False
        self.open = []
        self.lock = threading.Lock()
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                down, _ = self.listener.accept()
            except OSError:
                return
            if self.cut_now:
                down.close()
                continue
            try:
                up = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:
                down.close()
                continue
            with self.lock:
                self.open += [down, up]
            for a, b in ((down, up), (up, down)):
                threading.Thread(target=self.pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def pipe(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        self.cut_now = True
        with self.lock:
            for s in self.open:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self.open = []

    def restore(self):
        self.cut_now = False


def start_shoal(shoal, url, extra, work, name):
    log = open(os.path.join(work, name + ".log"), "w+")
    p = subprocess.Popen(
        [shoal, "--udp", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--workers", "1",
         "--cluster", url, "--cluster-name", "outage", "--log", "info"] + extra,
        stdout=subprocess.DEVNULL, stderr=log, env={"PATH": os.environ.get("PATH", "")})
    deadline = time.time() + 20
    udp = metrics = None
    while time.time() < deadline and not (udp and metrics):
        log.seek(0)
        text = log.read()
        udp = re.search(r"listening on udp://(\S+)", text)
        metrics = re.search(r"serving /metrics and /health on http://(\S+)", text)
        time.sleep(0.05)
    if not (udp and metrics):
        raise SystemExit(name + " did not start: " + text)
    h, port = udp.group(1).rsplit(":", 1)
    mh, mport = metrics.group(1).rsplit(":", 1)
    return p, (h, int(port)), (mh, int(mport))


def metric(addr, name):
    s = socket.create_connection(addr, timeout=5)
    s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    for line in data.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            if line.split(" ")[0] == name or "{" in name:
                return int(float(line.rsplit(" ", 1)[1]))
    return None


class Udp:
    def __init__(self, server):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(5)
        self.server = server
        self.tx = 0
        self.conn = self.connect()

    def roundtrip(self, req):
        self.sock.sendto(req, self.server)
        return self.sock.recvfrom(4096)[0]

    def connect(self):
        self.tx += 1
        r = self.roundtrip(struct.pack(">QII", 0x41727101980, 0, self.tx))
        return struct.unpack(">IIQ", r[:16])[2]

    def announce(self, ih, port):
        self.tx += 1
        req = struct.pack(">QII20s20sQQQIIIiH", self.conn, 1, self.tx, ih, b"-SH0000-outageoutage",
                          0, 0, 0, 0, 0, 0, 0, port)
        self.roundtrip(req)

    def seeders(self, hashes):
        self.tx += 1
        r = self.roundtrip(struct.pack(">QII", self.conn, 2, self.tx) + b"".join(hashes))
        return sum(struct.unpack(">III", r[8 + 12 * i:20 + 12 * i])[0] for i in range(len(hashes)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shoal", default="target/release/shoal")
    ap.add_argument("--rate", type=int, default=200, help="announces a second to A")
    ap.add_argument("--outage", type=float, default=5.0, help="seconds B is cut off")
    args = ap.parse_args()
    work = tempfile.mkdtemp()
    procs = []
    try:
        rport = free_port()
        procs.append(subprocess.Popen(
            ["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", work], stdout=subprocess.DEVNULL))
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", rport)).close()
                break
            except OSError:
                time.sleep(0.05)
        extra = []
        helptext = subprocess.run([args.shoal, "--help"], capture_output=True, text=True).stdout
        if "--cluster-secret-file" in helptext:
            secret = os.path.join(work, "secret")
            with open(secret, "w") as f:
                f.write("an outage measurement secret....\n")
            extra = ["--cluster-secret-file", secret]
        proxy = Proxy(rport)
        a, a_udp, a_metrics = start_shoal(args.shoal, "redis://127.0.0.1:%d" % rport, extra, work, "a")
        procs.append(a)
        b, b_udp, b_metrics = start_shoal(args.shoal, "redis://127.0.0.1:%d" % proxy.port, extra, work, "b")
        procs.append(b)
        for _ in range(400):
            if metric(a_metrics, "shoal_cluster_connected") == 1 and metric(b_metrics, "shoal_cluster_connected") == 1:
                break
            time.sleep(0.05)
        hashes = [struct.pack(">I", i) * 5 for i in range(TORRENTS)]
        load = Udp(a_udp)
        sent = 0
        start = time.time()
        phases = [(3.0, "up"), (3.0 + args.outage, "cut"), (6.0 + args.outage, "up")]
        cut_at = restored_at = None
        while True:
            t = time.time() - start
            if t >= phases[-1][0]:
                break
            if cut_at is None and t >= phases[0][0]:
                proxy.cut()
                cut_at = t
            if restored_at is None and t >= phases[1][0]:
                proxy.restore()
                restored_at = t
            due = int(t * args.rate)
            while sent < due:
                load.announce(hashes[sent % TORRENTS], 1024 + sent % 60000 + 1)
                sent += 1
            time.sleep(0.002)
        # Settle: until B's count stops growing for 2 s (at most 20 s).
        on_a, on_b = Udp(a_udp), Udp(b_udp)
        last, still, deadline = -1, time.time(), time.time() + 20
        while time.time() < deadline and time.time() - still < 2:
            n = on_b.seeders(hashes)
            if n != last:
                last, still = n, time.time()
            time.sleep(0.1)
        have_a, have_b = on_a.seeders(hashes), on_b.seeders(hashes)
        missed = metric(b_metrics, "shoal_cluster_batches_missed_total")
        print("shoal %s: %d announces to A at %d/s, B cut off for %.1f s: A holds %d seeders, "
              "B holds %d: %d lost (%.1f%%); B's shoal_cluster_batches_missed_total %s"
              % (args.shoal, sent, args.rate, args.outage, have_a, have_b, have_a - have_b,
                 100.0 * (have_a - have_b) / max(have_a, 1), missed))
    finally:
        for p in procs:
            p.kill()
            p.wait()


if __name__ == "__main__":
    main()
