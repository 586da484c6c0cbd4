#!/usr/bin/env bash
# One instance's replies/s with --cluster on vs off under the same `shoal bench`
# load, alternating, and redis-server's CPU per 100 k announces/s while on
# (numbers in BENCHMARKS.md, "Cluster"). A second, idle instance
# subscribes, so every batch is also delivered once. Loopback only; each run
# is bounded by DURATION seconds, ROUNDS rounds.
#
# Needs redis-server on PATH and the dist build (cargo build --profile dist),
# or SHOAL=path.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
SHOAL=${SHOAL:-target/dist/shoal}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >/dev/null &
rpid=$!; pids+=("$rpid")
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
url="redis://127.0.0.1:$port"
# Signed batches, as a cluster should run (the MAC is part of the cost).
echo "a cluster load benchmark secret.." > "$work/secret"
cluster=(--cluster "$url" --cluster-name bench --cluster-secret-file "$work/secret")
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

start() { # args... -> prints "PID UDPADDR"
  # Its own log file: the newest one may be a stopped instance's last lines.
  local log pid
  log=$(mktemp "$work/log.XXXXXX")
  "$SHOAL" --udp 127.0.0.1:0 --workers 1 --log info "$@" 2> "$log" &
  pid=$!
  for _ in $(seq 100); do grep -q "listening on udp://" "$log" && break; sleep 0.1; done
  echo "$pid $(grep -o 'listening on udp://[^ ]*' "$log" | head -1 | sed 's|.*udp://||')"
}

"$SHOAL" --udp 127.0.0.1:0 --workers 1 "${cluster[@]}" >/dev/null 2>&1 &
pids+=("$!")   # the idle subscriber

printf "round\tcluster\treplies_per_s\tannounces\tredis_cpu_s\n"
# The population stays in the tracker for what is measured after the run;
# --keep-peers where the build has it (an older one keeps it anyway).
KEEP=$("$SHOAL" bench --help 2>/dev/null | grep -o -- '--keep-peers' | head -1 || true)
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) -eq 1 ]; then order="off on"; else order="on off"; fi
  for mode in $order; do
    if [ "$mode" = on ]; then read -r pid addr < <(start "${cluster[@]}")
    else read -r pid addr < <(start); fi
    pids+=("$pid")
    r0=$(ticks "$rpid")
    "$SHOAL" bench --target "udp://$addr" $KEEP --duration "$DURATION" --quiet --json > "$work/run.json"
    r1=$(ticks "$rpid")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    python3 - "$work/run.json" "$round" "$mode" "$(( r1 - r0 ))" "$hz" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ann = r["replies_by_kind"].get("announce", 0) if isinstance(r.get("replies_by_kind"), dict) else 0
print("%s\t%s\t%.0f\t%d\t%.2f" % (sys.argv[2], sys.argv[3], r["replies_per_sec"], ann, int(sys.argv[4]) / int(sys.argv[5])))
PY
  done
done
