#!/usr/bin/env bash
# Soak: shoal bounded below its population, under `shoal bench`, for SOAK_SECS
# (default 660: ten minutes and a warm-up), resident memory sampled every
# 10 s. See BENCHMARKS.md, "Soak".
#
# The server runs with --max-peers SOAK_MAX_PEERS (default 1 000 000) and
# --max-memory SOAK_MAX_MEMORY (default 48M), both below what the load test's
# default population (2 M peers in 1 M Zipf-weighted torrents) needs, so the
# map sits at its bound and evicts the whole time. Each sample is VmRSS (from
# /proc/PID/status) and, from /metrics, the peers, torrents, accounted bytes
# and evictions; the table is printed as Markdown on stdout, the bench's JSON
# report after it.
#
# SHOAL=path measures another build (default: target/dist/shoal, the profile
# that ships, built here). Bounded in time (SOAK_SECS + 30 s at most) and loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."

SOAK_SECS=${SOAK_SECS:-660}
SOAK_MAX_PEERS=${SOAK_MAX_PEERS:-1000000}
SOAK_MAX_MEMORY=${SOAK_MAX_MEMORY:-48M}
PORT=${PORT:-3101}
if [ -z "${SHOAL:-}" ]; then
  cargo build --profile dist --quiet --bin shoal
  SHOAL=$PWD/target/dist/shoal
fi
OUT=$(mktemp -d /tmp/shoal-soak.XXXXXX)

"$SHOAL" --udp "127.0.0.1:$PORT" --metrics "127.0.0.1:$((PORT + 1))" --workers 1 \
  --max-peers "$SOAK_MAX_PEERS" --max-memory "$SOAK_MAX_MEMORY" --log info > "$OUT/server.log" 2>&1 &
PID=$!
BENCH=
trap 'kill -TERM $PID $BENCH 2>/dev/null || true' EXIT
# Ready when it answers a scrape (bounded: 10 s).
for _ in $(seq 100); do
  "$SHOAL" scrape "udp://127.0.0.1:$PORT" 0000000000000000000000000000000000000000 --timeout 0.1 --tries 1 >/dev/null 2>&1 && break
done

sample() { # t -> one Markdown row
  local rss
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status")
  python3 - "$1" "$rss" "$((PORT + 1))" <<'EOF'
import sys, urllib.request as u
t, rss, port = sys.argv[1], int(sys.argv[2]), sys.argv[3]
m = u.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
def v(name):
    return int(sum(float(l.split()[-1]) for l in m.splitlines()
                   if l.split('{')[0].split(' ')[0] == name))
print(f"| {t} | {rss / 1024:.1f} | {v('shoal_peers')} | {v('shoal_torrents')} | "
      f"{v('shoal_swarm_bytes') / 2**20:.1f} | {v('shoal_evicted_total')} |")
EOF
}

echo "shoal --max-peers $SOAK_MAX_PEERS --max-memory $SOAK_MAX_MEMORY under shoal bench (defaults: 2 M peers in 1 M torrents) for $SOAK_SECS s"
echo
echo "| t (s) | VmRSS (MiB) | peers | torrents | accounted (MiB) | evicted |"
echo "|---:|---:|---:|---:|---:|---:|"
sample 0
"$SHOAL" bench --target "udp://127.0.0.1:$PORT" --duration "$SOAK_SECS" --quiet --json > "$OUT/bench.json" &
BENCH=$!
start=$(date +%s)
# A sample every 10 s (on a fixed schedule: the time a sample takes does not
# add up) until the bench ends (bounded by its duration).
next=$((start + 10))
while kill -0 "$BENCH" 2>/dev/null && [ $(($(date +%s) - start)) -le $((SOAK_SECS + 30)) ]; do
  sleep $((next > $(date +%s) ? next - $(date +%s) : 0))
  next=$((next + 10))
  kill -0 "$BENCH" 2>/dev/null || break
  sample $(($(date +%s) - start))
done
wait "$BENCH" || true
BENCH=
echo
cat "$OUT/bench.json"
echo
grep -c "evicted" "$OUT/server.log" | sed 's/^/eviction log lines: /'
