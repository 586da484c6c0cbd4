#!/usr/bin/env bash
# shoal's resident memory per torrent and per peer (see BENCHMARKS.md, "Memory").
#
# 1. The long tail: `cargo bench --bench flood` floods a fresh shoal (the `bench` profile) with
#    FLOOD_TORRENTS announces for distinct info hashes (one peer each) and
#    prints RSS growth per stored torrent; `-- inproc` prints the map's own
#    accounting (Swarm::approx_bytes) beside RSS for the same fill.
# 2. The load test's default population: a fresh shoal (one worker, as in
#    compare.sh) driven by `shoal bench` for MEM_DURATION seconds (2 M peers
#    in 1 M Zipf-weighted torrents; 60 s lets every peer announce), then its
#    VmRSS divided by its peer count (shoal_peers from /metrics on PORT+1).
#
# SHOAL=path measures another build (default: target/dist/shoal, the profile
# that ships, built here);
# FLOOD=0 skips part 1.
# Every run is bounded in time and sends only to 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

MEM_DURATION=${MEM_DURATION:-60}
PORT=${PORT:-3001}
if [ -z "${SHOAL:-}" ]; then
  cargo build --profile dist --quiet --bin shoal
  SHOAL=$PWD/target/dist/shoal
fi
export SHOAL
OUT=$(mktemp -d /tmp/shoal-memory.XXXXXX)

if [ "${FLOOD:-1}" = 1 ]; then
  cargo bench --quiet --bench flood
  cargo bench --quiet --bench flood -- inproc
fi

"$SHOAL" --udp "127.0.0.1:$PORT" --http "127.0.0.1:$((PORT + 1))" --http-metrics --workers 1 --log info > "$OUT/server.log" 2>&1 &
PID=$!
trap 'kill -TERM $PID 2>/dev/null || true' EXIT
# Ready when it answers a scrape (bounded: 10 s).
for _ in $(seq 100); do
  "$SHOAL" scrape "udp://127.0.0.1:$PORT" 0000000000000000000000000000000000000000 --timeout 0.1 --tries 1 >/dev/null 2>&1 && break
done
base=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status")
"$SHOAL" bench --target "udp://127.0.0.1:$PORT" --duration "$MEM_DURATION" --quiet --json > "$OUT/bench.json"
rss=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status")
metric() { # name -> value summed over its label sets, from /metrics
  python3 -c "import sys, urllib.request as u
m = u.urlopen('http://127.0.0.1:$((PORT + 1))/metrics', timeout=5).read().decode()
print(int(sum(float(l.split()[-1]) for l in m.splitlines() if l.split('{')[0].split(' ')[0] == sys.argv[1])))" "$1"
}
torrents=$(metric shoal_torrents)
peers=$(metric shoal_peers)
echo "population: $peers peers in $torrents torrents; RSS $((base / 1024)) MiB at start, $((rss / 1024)) MiB filled:" \
  "$((rss * 1024 / peers)) B per peer (RSS), $(((rss - base) * 1024 / peers)) B per peer (growth)"
