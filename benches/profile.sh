#!/usr/bin/env bash
# Where a UDP server's CPU goes under aquatic_udp_load_test, by part of the
# request path: `perf record` (cpu-clock: no hardware counters needed) on the
# server while the load test runs, then every sample in the binary assigned to
# a part by its inlined call chain (addr2line -i on the dist build's line
# tables), so a part is counted wherever LTO inlined it. See BENCHMARKS.md,
# "Where a reply's CPU goes at 20 M peers".
#
#   benches/profile.sh                                   # this tree's dist build
#   BUILDS="old=/tmp/old/target/dist/shoal this=" benches/profile.sh
#
# BUILDS names shoal binaries as name=path (an empty path: this tree's
# target/dist/shoal, built here with `--profile dist`, the profile that ships). Builds run in turn, one server at a time
# on 127.0.0.1 (one worker, as compare.sh runs them). Per build: the load test
# runs DURATION seconds at TORRENTS / PEERS; perf samples the server for
# WINDOW seconds once SKIP of the load test's 5 s reports have passed (the map
# filled). Output: replies/s (the load test's average over its last
# SUMMARIZE s), then per part its share of the server's samples and its CPU
# per reply in ns (share x the server's CPU time in the window / replies in
# the window), which is the figure to compare across builds: their rates differ;
# and, from the 10 s after the window, replies per recvmmsg, sendmmsg and
# epoll_wait call (syscall tracepoints).
# Needs perf, addr2line (binutils), aquatic_udp_load_test on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILDS=${BUILDS:-"this="}
DURATION=${DURATION:-230}
SUMMARIZE=${SUMMARIZE:-100}
WINDOW=${WINDOW:-90}
SKIP=${SKIP:-20}
TORRENTS=${TORRENTS:-10000000}
PEERS=${PEERS:-20000000}
PORT=${PORT:-3011}
OUT=${OUT:-$(mktemp -d /tmp/shoal-profile.XXXXXX)}; mkdir -p "$OUT"
LOADTEST=${LOADTEST:-$(command -v aquatic_udp_load_test || true)}
[ -x "$LOADTEST" ] || { echo "aquatic_udp_load_test not found (cargo install aquatic_udp_load_test@0.9.0)"; exit 1; }
command -v perf >/dev/null || { echo "needs perf (apt install linux-perf)"; exit 1; }
[ $((SKIP * 5 + WINDOW + 20)) -lt "$DURATION" ] || { echo "SKIP * 5 + WINDOW + 20 must end before DURATION"; exit 1; }

for b in $BUILDS; do
  [ -n "${b#*=}" ] || { cargo build --profile dist --quiet --bin shoal; break; }
done
"$LOADTEST" -p | sed -e "s/^server_address = .*/server_address = \"127.0.0.1:$PORT\"/" \
  -e "s/^duration = .*/duration = $DURATION/" -e "s/^summarize_last = .*/summarize_last = $SUMMARIZE/" \
  -e "s/^number_of_torrents = .*/number_of_torrents = $TORRENTS/" -e "s/^number_of_peers = .*/number_of_peers = $PEERS/" \
  > "$OUT/load.toml"

for b in $BUILDS; do
  name=${b%%=*}; bin=${b#*=}; bin=$(realpath "${bin:-target/dist/shoal}")
  "$bin" --udp "127.0.0.1:$PORT" --workers 1 --log warn > "$OUT/$name.server.log" 2>&1 &
  spid=$!
  for _ in $(seq 100); do  # ready when it answers a scrape (bounded: 10 s)
    "$bin" scrape "udp://127.0.0.1:$PORT" 0000000000000000000000000000000000000000 --timeout 0.1 --tries 1 >/dev/null 2>&1 && break
  done
  timeout $((DURATION + 120)) "$LOADTEST" -c "$OUT/load.toml" > "$OUT/$name.run.log" 2>&1 &
  lpid=$!
  while kill -0 $lpid 2>/dev/null && [ "$(grep -c 'Responses in:' "$OUT/$name.run.log")" -lt "$SKIP" ]; do sleep 0.5; done
  t0=$(awk '{print $14 + $15}' "/proc/$spid/stat")
  r0=$(grep -c 'Responses in:' "$OUT/$name.run.log")
  perf record -q -F 999 -e cpu-clock -p $spid -o "$OUT/$name.perf" -- sleep "$WINDOW" >/dev/null 2>&1
  t1=$(awk '{print $14 + $15}' "/proc/$spid/stat")
  # Then the syscalls of the next 10 s: how full the batches are.
  r1=$(grep -c 'Responses in:' "$OUT/$name.run.log")
  perf stat -x, -e syscalls:sys_enter_recvmmsg,syscalls:sys_enter_sendmmsg,syscalls:sys_enter_epoll_wait \
    -p $spid -- sleep 10 2> "$OUT/$name.stat" >/dev/null || true
  # The load test's 5 s reports that fell in a window: its responses in it.
  replies_in() { grep 'Responses in:' "$OUT/$name.run.log" | awk -v a="$1" -v s="$2" \
    'NR > a && NR <= a + s / 5 {n += $3 * 5} END {print n + 0}'; }
  replies=$(replies_in "$r0" "$WINDOW")
  wait $lpid || true
  kill -TERM $spid; wait $spid || true
  rate=$(grep "Average responses per second:" "$OUT/$name.run.log" | awk '{print $5}')
  echo "== $name ($bin): ${rate:-?} replies/s over the load test's last $SUMMARIZE s"
  awk -F, -v r="$(replies_in "$r1" 10)" '$3 ~ /sys_enter/ && r > 0 {
    sub(/.*sys_enter_/, "", $3); printf "  %-12s %6.1f replies a call (10 s after the window)\n", $3, r / $1 }' "$OUT/$name.stat"
  python3 - "$OUT/$name.perf" "$bin" "$(( (t1 - t0) ))" "$(getconf CLK_TCK)" "$replies" <<'PY'
import collections, re, subprocess, sys
perf, binary, ticks, hz, replies = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
# Symbol start addresses, to turn perf's symbol+offset into a file address.
syms = {}
nm = subprocess.run(["nm", "-C", "--defined-only", binary], capture_output=True, text=True).stdout
for line in nm.splitlines():
    parts = line.split(" ", 2)
    if len(parts) == 3 and parts[1] in "tTwW":
        syms.setdefault(parts[2], int(parts[0], 16))
script = subprocess.run(["perf", "script", "-F", "ip,sym,symoff,dso", "-i", perf],
                        capture_output=True, text=True).stdout
total, kernel, other_dso, addrs = 0, 0, 0, collections.Counter()
for line in script.splitlines():
    total += 1
    m = re.match(r"\s*[0-9a-f]+ (.*)\+0x([0-9a-f]+) \((.*)\)$", line)
    if m and m.group(3) == binary and m.group(1) in syms:
        addrs[syms[m.group(1)] + int(m.group(2), 16)] += 1
    elif "kernel" in line:
        kernel += 1
    else:
        other_dso += 1
chains, cur = {}, None
keys = sorted(addrs)
for i in range(0, len(keys), 2000):
    out = subprocess.run(["addr2line", "-a", "-f", "-i", "-C", "-e", binary] + [hex(a) for a in keys[i:i + 2000]],
                         capture_output=True, text=True).stdout
    for l in out.splitlines():
        if l.startswith("0x"):
            cur = int(l, 16); chains[cur] = []
        else:
            chains[cur].append(l)
# First rule whose pattern occurs anywhere in the inlined chain wins.
RULES = [
    ("sweep (expiry, relief)", ["expire_shard", "::sweep", "relieve", "expire_by"]),
    ("map bookkeeping (publish)", ["publish"]),
    ("look-ahead (prefetch)", ["prefetch", "peek_info_hashes"]),
    ("peer sampling", ["::sample", "peers::walk"]),
    ("torrent lookup (table)", ["position_hashed", "get_or_insert", "insert_new", "Torrents::", "Slots::", "HashMap", "hashbrown"]),
    ("peer store (upsert)", ["upsert", "::store", "::find", "heap_bytes"]),
    ("announce, rest", ["announce"]),
    ("connection ids", ["connid", "ConnectionIds"]),
    ("request parse", ["parse_request", "wire::udp"]),
    ("batched syscalls (mmsg)", ["mmsg"]),
    ("scrape", ["scrape"]),
    ("tracker, rest", ["tracker::"]),
]
parts = collections.Counter()
for a, n in addrs.items():
    ch = " | ".join(chains.get(a, []))
    parts[next((name for name, pats in RULES if any(p in ch for p in pats)), "other in the binary")] += n
per_reply = lambda n: n / total * ticks / hz / replies * 1e9 if replies and total else float("nan")
print(f"  {total} samples; {replies:.0f} replies and {ticks / hz:.1f} s of server CPU in the window")
print(f"  {'part':30} {'share':>7} {'ns/reply':>9}")
rows = [("kernel", kernel), ("other libraries", other_dso)] + parts.most_common()
rows.insert(2, ("the binary, all", sum(addrs.values())))
for name, n in rows:
    print(f"  {name:30} {100 * n / total:6.2f}% {per_reply(n):9.1f}")
PY
done
echo "(perf data and logs in $OUT)"
