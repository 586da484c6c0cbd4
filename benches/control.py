#!/usr/bin/env python3
"""UDP latency while a client polls the management API: does a walk of the
map (GET /api/v1/torrents?limit=1000) stall the packets, compared with a
cheap endpoint (GET /api/v1/stats)?

For each build (NAME=PATH) a shoal with one packet worker and --api runs on
loopback; `shoal bench` fills it with a population, then in alternating
rounds a poller thread hits one endpoint as fast as it answers while
`shoal bench` measures UDP replies/s and latency. Prints every round, then
per build and endpoint the medians, and the ratio torrents/stats of the
UDP p99 (the figure BENCHMARKS.md quotes), with the API's own latency.

  benches/control.py target/dist/shoal
  benches/control.py old=/tmp/old/target/dist/shoal new=target/dist/shoal
  benches/control.py "nice0=target/dist/shoal::--control-nice 0" nice10=target/dist/shoal
  ROUNDS=5 DURATION=8 benches/control.py new=target/dist/shoal -- --stats-interval 5

A build is NAME=PATH, optionally ::ARGS (its own extra flags, split on
spaces); flags after `--` go to every build.

Everything is on 127.0.0.1, bounded in time; the shoals are killed at exit.
Standard library only.
"""
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time

ROUNDS = int(os.environ.get("ROUNDS", "5"))
DURATION = int(os.environ.get("DURATION", "8"))
TORRENTS = int(os.environ.get("TORRENTS", "160000"))
PEERS = int(os.environ.get("PEERS", "320000"))
FILL_SECS = int(os.environ.get("FILL_SECS", "20"))
TOKEN = "control-bench-token-0123456789"
ENDPOINTS = {"stats": "/api/v1/stats", "torrents": "/api/v1/torrents?limit=1000"}


def start(binary, extra):
    """A shoal with one worker, UDP and the API on free loopback ports."""
    env = dict(os.environ, SHOAL_API_TOKEN=TOKEN, RUST_LOG="info")
    env.pop("SHOAL_LOG", None)
    p = subprocess.Popen(
        [binary, "--udp", "127.0.0.1:0", "--api", "127.0.0.1:0", "--workers", "1", *extra],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env, text=True)
    udp = api = None
    deadline = time.time() + 30
    for line in p.stderr:
        m = re.search(r"listening on udp://(\S+)", line)
        if m:
            udp = m.group(1)
        m = re.search(r"status page on http://(\S+)", line)
        if m:
            api = m.group(1)
        if "worker(s)" in line or time.time() > deadline:
            break
    if not (udp and api):
        p.kill()
        sys.exit(f"{binary} did not start")
    threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
    return p, udp, api


def bench(shoal, udp, secs):
    out = subprocess.run(
        [shoal, "bench", "--target", f"udp://{udp}", "--duration", str(secs), "--quiet",
         "--json", "--torrents", str(TORRENTS), "--peers", str(PEERS)],
        capture_output=True, text=True, timeout=secs + 60)
    return json.loads(out.stdout)


def get(conn, path):
    conn.request("GET", path, headers={"Authorization": f"Bearer {TOKEN}"})
    r = conn.getresponse()
    body = r.read()
    if r.status != 200:
        raise RuntimeError(f"{path}: {r.status} {body[:200]!r}")
    return body


class Poller(threading.Thread):
    """Polls one endpoint back to back on a keep-alive connection."""

    def __init__(self, api, path):
        super().__init__(daemon=True)
        self.api, self.path = api, path
        self.stop = threading.Event()
        self.latencies = []

    def run(self):
        host, port = self.api.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        while not self.stop.is_set():
            t = time.perf_counter()
            get(conn, self.path)
            self.latencies.append(time.perf_counter() - t)


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * (len(xs) - 1)))] if xs else float("nan")


def main():
    args = sys.argv[1:]
    extra = []
    if "--" in args:
        i = args.index("--")
        args, extra = args[:i], args[i + 1:]
    builds = []
    for a in args:
        spec, _, own = a.partition("::")
        name, _, binary = spec.rpartition("=")
        builds.append((name or os.path.basename(binary), binary, own.split()))
    if not builds:
        sys.exit(__doc__)
    shoal_for_bench = builds[-1][1]
    results = {}
    for name, binary, own in builds:
        p, udp, api = start(binary, own + extra)
        try:
            bench(shoal_for_bench, udp, FILL_SECS)
            host, port = api.rsplit(":", 1)
            stats = json.loads(get(http.client.HTTPConnection(host, int(port)), ENDPOINTS["stats"]))
            print(f"{name}: {stats['torrents']} torrents, {stats['peers']['total']} peers after the fill",
                  flush=True)
            for r in range(ROUNDS):
                for ep in ("stats", "torrents"):
                    poller = Poller(api, ENDPOINTS[ep])
                    poller.start()
                    time.sleep(0.3)
                    rep = bench(shoal_for_bench, udp, DURATION)
                    poller.stop.set()
                    poller.join(timeout=15)
                    row = {
                        "replies_per_sec": rep["replies_per_sec"],
                        "p50_us": rep["latency_us"]["p50"],
                        "p99_us": rep["latency_us"]["p99"],
                        "api_per_sec": len(poller.latencies) / DURATION,
                        "api_p50_ms": 1000 * pct(poller.latencies, 0.5),
                        "api_p99_ms": 1000 * pct(poller.latencies, 0.99),
                    }
                    results.setdefault((name, ep), []).append(row)
                    print(f"{name} round {r + 1} {ep:8}: udp {row['replies_per_sec']:9.0f} replies/s "
                          f"p50 {row['p50_us']:8.0f} µs p99 {row['p99_us']:8.0f} µs | api "
                          f"{row['api_per_sec']:7.1f}/s p50 {row['api_p50_ms']:7.2f} ms "
                          f"p99 {row['api_p99_ms']:7.2f} ms", flush=True)
        finally:
            p.terminate()
            p.wait(timeout=20)
    print()
    for name, _, _ in builds:
        med = {ep: {k: statistics.median(row[k] for row in results[(name, ep)])
                    for k in results[(name, ep)][0]} for ep in ENDPOINTS}
        for ep in ENDPOINTS:
            m = med[ep]
            print(f"{name} {ep:8} median: udp {m['replies_per_sec']:.0f} replies/s, p99 {m['p99_us']:.0f} µs; "
                  f"api {m['api_per_sec']:.1f}/s, p50 {m['api_p50_ms']:.2f} ms, p99 {m['api_p99_ms']:.2f} ms")
        ratios = [t["p99_us"] / s["p99_us"] for s, t in zip(results[(name, "stats")], results[(name, "torrents")])]
        rate = [t["replies_per_sec"] / s["replies_per_sec"]
                for s, t in zip(results[(name, "stats")], results[(name, "torrents")])]
        print(f"{name}: udp p99 torrents/stats per round {', '.join(f'{x:.2f}' for x in ratios)}; "
              f"median {statistics.median(ratios):.2f}; replies/s torrents/stats median "
              f"{statistics.median(rate):.2f}")


if __name__ == "__main__":
    main()
