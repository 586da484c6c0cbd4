#!/usr/bin/env bash
# shoal against aquatic_udp 0.9, side by side on this machine (see BENCHMARKS.md).
#
# Both trackers run with their default settings but one server worker. Each is
# driven by aquatic_udp_load_test (1 worker, default mix and population) and by
# `shoal bench` (same shape), in alternating order, ROUNDS times. Then each is
# filled with the load test's default population (1 M torrents, 2 M peers) and
# its resident memory read. Prints one line per run and a summary of medians
# and ratios; raw results stay in $OUT.
#
# Each run also records the server's CPU time per reply (user + system, every
# thread, over the window the rate is taken from) and the kernel's drops at
# the server's socket. aquatic_udp_load_test sends only while it has had 90 %
# of its requests answered since it started, so a server that drops a few
# percent more can tip it into near silence for tens of seconds; its replies/s
# is then bimodal, and the CPU per reply is the steadier comparison (see
# BENCHMARKS.md, "What the 0.72x was").
#
# Needs aquatic_udp and aquatic_udp_load_test on PATH (or AQUATIC_BIN=dir):
#   cargo install aquatic_udp@0.9.0 aquatic_udp_load_test@0.9.0
# Every run is bounded in time and sends only to 127.0.0.1.
# Memory per one-peer torrent and per peer without aquatic: benches/memory.sh.
#
# BASELINE=path/to/another/shoal puts that build (run with the same flags) in
# aquatic_udp's place: this tree against an older commit, e.g.
#   git worktree add /tmp/old COMMIT && (cd /tmp/old && cargo build --profile dist)
#   BASELINE=/tmp/old/target/dist/shoal ROUND_TOOLS=aquatic_udp_load_test benches/compare.sh
# aquatic_udp_load_test is needed only when ROUND_TOOLS names it or memory is
# measured: BASELINE=... ROUND_TOOLS=shoal_bench SKIP_MEMORY=1 runs without it.
# SHOAL=path measures that build instead of this tree's `dist` build (the
# profile that ships; see BENCHMARKS.md, "Build profiles"); it is also the
# `shoal bench` load generator for both trackers.
# Pool the rounds of several runs into per-round ratios: benches/rounds.py OUT...
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-30}          # seconds per throughput run
SUMMARIZE=${SUMMARIZE:-20}        # load test: report the last N seconds only
MEM_DURATION=${MEM_DURATION:-60}  # seconds of load before reading memory
TORRENTS=${TORRENTS:-1000000}     # simulated population (both load generators)
PEERS=${PEERS:-2000000}
ROUND_TOOLS=${ROUND_TOOLS:-"aquatic_udp_load_test shoal_bench"}
SKIP_MEMORY=${SKIP_MEMORY:-0}     # 1: throughput rounds only
PORT_AQ=${PORT_AQ:-3000}
PORT_SH=${PORT_SH:-3001}
AQ_DIR=${AQUATIC_BIN:-$(dirname "$(command -v aquatic_udp || echo /opt/aquatic/bin/aquatic_udp)")}
AQUATIC="$AQ_DIR/aquatic_udp"
LOADTEST="$AQ_DIR/aquatic_udp_load_test"
OUT=${OUT:-$(mktemp -d /tmp/shoal-compare.XXXXXX)}
mkdir -p "$OUT"
BASELINE=${BASELINE:-}
NEED_LOADTEST=0
[[ " $ROUND_TOOLS " == *" aquatic_udp_load_test "* ]] || [ "$SKIP_MEMORY" != 1 ] && NEED_LOADTEST=1
{ [ "$NEED_LOADTEST" = 0 ] || [ -x "$LOADTEST" ]; } && { [ -n "$BASELINE" ] || [ -x "$AQUATIC" ]; } ||
  { echo "aquatic_udp / aquatic_udp_load_test not found (set AQUATIC_BIN)"; exit 1; }
OPPONENT=${BASELINE:+baseline}; OPPONENT=${OPPONENT:-aquatic_udp}

if [ -z "${SHOAL:-}" ]; then
  cargo build --profile dist --quiet --bin shoal
  SHOAL=$PWD/target/dist/shoal
fi

[ -n "$BASELINE" ] || "$AQUATIC" -p | sed -e "s/^address = .*/address = \"127.0.0.1:$PORT_AQ\"/" > "$OUT/aquatic.toml"
[ "$NEED_LOADTEST" = 0 ] || for port in $PORT_AQ $PORT_SH; do
  "$LOADTEST" -p | sed -e "s/^server_address = .*/server_address = \"127.0.0.1:$port\"/" \
    -e "s/^duration = .*/duration = $DURATION/" -e "s/^summarize_last = .*/summarize_last = $SUMMARIZE/" \
    -e "s/^number_of_torrents = .*/number_of_torrents = $TORRENTS/" -e "s/^number_of_peers = .*/number_of_peers = $PEERS/" \
    > "$OUT/load-$port.toml"
  sed -e "s/^duration = .*/duration = $MEM_DURATION/" "$OUT/load-$port.toml" > "$OUT/mem-$port.toml"
done

SERVER_PID=
start_server() { # tracker -> sets SERVER_PID and PORT
  case $1 in
    aquatic) if [ -n "$BASELINE" ]; then
               "$BASELINE" --udp "127.0.0.1:$PORT_AQ" --workers 1 --stats-interval 5 --log info > "$OUT/server.log" 2>&1 &
             else
               "$AQUATIC" -c "$OUT/aquatic.toml" > "$OUT/server.log" 2>&1 &
             fi
             PORT=$PORT_AQ ;;
    shoal) "$SHOAL" --udp "127.0.0.1:$PORT_SH" --workers 1 --stats-interval 5 --log info > "$OUT/server.log" 2>&1 & PORT=$PORT_SH ;;
  esac
  SERVER_PID=$!
  # Ready when it answers a scrape (bounded: 10 s).
  for _ in $(seq 100); do
    "$SHOAL" scrape "udp://127.0.0.1:$PORT" 0000000000000000000000000000000000000000 --timeout 0.1 --tries 1 >/dev/null 2>&1 && return 0
  done
  echo "$1 did not start"; cat "$OUT/server.log"; exit 1
}
stop_server() { kill -TERM "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$SERVER_PID/status"; }

# The server's CPU time (user + system, every thread) in clock ticks, and the
# kernel's receive-buffer drops at the server's socket.
TICK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$SERVER_PID/stat"; }
# Datagrams the kernel dropped at the server's own socket(s) (its port, IPv4).
rcvbuf_drops() { awk -v port=":$(printf '%04X' "$PORT")" '$2 ~ port"$" {n += $NF} END {print n + 0}' /proc/net/udp; }

echo -e "tool\ttracker\tround\treplies_per_s\tp50_us\tp99_us\tp999_us\tcpu_us_per_reply\trcvbuf_drops" > "$OUT/throughput.tsv"
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) -eq 1 ]; then order="aquatic shoal"; else order="shoal aquatic"; fi
  for tool in $ROUND_TOOLS; do
    for tracker in $order; do
      start_server "$tracker"
      if [ $tool = aquatic_udp_load_test ]; then
        timeout $((DURATION + 60)) "$LOADTEST" -c "$OUT/load-$PORT.toml" > "$OUT/run.log" 2>&1 &
        load_pid=$!
        # The server's CPU and the kernel's drops over the window the load
        # test averages: its 5 s reports after the first (DURATION -
        # SUMMARIZE) / 5 (its clock starts once its peers are generated,
        # so wait for the reports, not for the time).
        skip=$(((DURATION - SUMMARIZE) / 5))
        while kill -0 $load_pid 2>/dev/null && [ "$(grep -c "Responses in:" "$OUT/run.log")" -lt "$skip" ]; do
          sleep 0.2
        done
        t0=$(cpu_ticks); d0=$(rcvbuf_drops)
        wait $load_pid
        t1=$(cpu_ticks); d1=$(rcvbuf_drops); window=$SUMMARIZE
        # The average over that window (not the last 5 s report).
        rate=$(grep "Average responses per second:" "$OUT/run.log" | awk '{print $5}')
        line="$tool\t$tracker\t$round\t$rate\t\t\t"
      else
        t0=$(cpu_ticks); d0=$(rcvbuf_drops)
        "$SHOAL" bench --target "udp://127.0.0.1:$PORT" --duration "$DURATION" --torrents "$TORRENTS" --peers "$PEERS" \
          --quiet --json > "$OUT/run.json"
        t1=$(cpu_ticks); d1=$(rcvbuf_drops); window=$DURATION
        line=$(python3 - "$OUT/run.json" "$tool" "$tracker" "$round" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); l = r["latency_us"]
print("\t".join(sys.argv[2:5] + [str(r["replies_per_sec"]), str(l["p50"]), str(l["p99"]), str(l["p999"])]))
PY
)
        rate=$(echo -e "$line" | cut -f4)
      fi
      cpu_us=$(python3 -c "r = float('${rate:-0}' or 0) * $window; print(round(($t1 - $t0) * 1e6 / $TICK / r, 3) if r else '')")
      line="$line\t$cpu_us\t$((d1 - d0))"
      stop_server
      echo -e "$line" | tee -a "$OUT/throughput.tsv"
    done
  done
done

echo -e "tracker\trss_kb\tpeers\ttorrents" > "$OUT/memory.tsv"
[ "$SKIP_MEMORY" = 1 ] || for tracker in aquatic shoal; do
  start_server "$tracker"
  timeout $((MEM_DURATION + 60)) "$LOADTEST" -c "$OUT/mem-$PORT.toml" > "$OUT/mem-run.log" 2>&1
  rss=$(rss_kb)
  stop_server
  peers=""; torrents=""
  if [ $tracker = shoal ]; then  # shoal's own count, from its last stats line
    last=$(grep "stats:" "$OUT/server.log" | tail -1)
    torrents=$(echo "$last" | sed -E 's/.*; ([0-9]+) torrents.*/\1/')
    peers=$(echo "$last" | sed -E 's/.* ([0-9]+) peers \(.*/\1/')
  fi
  echo -e "$tracker\t$rss\t$peers\t$torrents" | tee -a "$OUT/memory.tsv"
done

python3 - "$OUT" "$OPPONENT" <<'PY'
import csv, statistics, sys
out, opp = sys.argv[1], sys.argv[2]
rows = list(csv.DictReader(open(f"{out}/throughput.tsv"), delimiter="\t"))
def med(tool, tracker, key):
    v = [float(r[key]) for r in rows if r["tool"] == tool and r["tracker"] == tracker and r[key]]
    return statistics.median(v) if v else float("nan")
print("\nmedians over", len({r['round'] for r in rows}), "rounds")
for tool in ("aquatic_udp_load_test", "shoal_bench"):
    a, s = med(tool, "aquatic", "replies_per_s"), med(tool, "shoal", "replies_per_s")
    print(f"{tool:24} replies/s  {opp} {a:10.0f}   shoal {s:10.0f}   ratio {s / a:.2f}x")
for tool in ("aquatic_udp_load_test", "shoal_bench"):
    a, s = med(tool, "aquatic", "cpu_us_per_reply"), med(tool, "shoal", "cpu_us_per_reply")
    print(f"{tool:24} CPU us/reply {opp} {a:8.2f}   shoal {s:10.2f}   ratio {s / a:.2f}x (lower is better)")
for key in ("p50_us", "p99_us", "p999_us"):
    a, s = med("shoal_bench", "aquatic", key), med("shoal_bench", "shoal", key)
    print(f"{'shoal_bench':24} {key:9}  {opp} {a:10.0f}   shoal {s:10.0f}   ratio {s / a:.2f}x")
mem = {r["tracker"]: r for r in csv.DictReader(open(f"{out}/memory.tsv"), delimiter="\t")}
if not mem:
    print("raw results:", out); sys.exit(0)
a, s = int(mem["aquatic"]["rss_kb"]), int(mem["shoal"]["rss_kb"])
print(f"resident memory after the default population: aquatic_udp {a / 1024:.0f} MiB, shoal {s / 1024:.0f} MiB, ratio {s / a:.2f}x")
if mem["shoal"]["peers"]:
    p = int(mem["shoal"]["peers"])
    print(f"shoal held {p} peers in {mem['shoal']['torrents']} torrents: {s * 1024 / p:.0f} bytes of RSS per peer "
          f"(aquatic_udp, same population: {a * 1024 / p:.0f})")
print("raw results:", out)
PY
