#!/usr/bin/env bash
# Criterion's announce/* (or, with FILTER, udp/*) cases of several builds' bench binaries, run in turn
# ROUNDS times, so each round compares the builds under the same machine load.
# Prints each build's median ns per case and, per case, the median over rounds
# of each build's ratio to the first. See BENCHMARKS.md, "The one-peer
# announce, counted and then timed"; benches/instructions.sh counts the same
# cases' instructions, which do not drift with the machine.
#
#   BUILDS="old=/tmp/old/target/release/deps/core-HASH main=" benches/announce_ab.sh
#
# BUILDS names bench binaries as name=path (an empty path: this tree's).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-8}
MEASURE=${MEASURE:-1}   # seconds of measurement per case and run
FILTER=${FILTER:-'announce/(new|existing)/(1|100|10000)$'}
BUILDS=${BUILDS:-"this="}
OUT=${OUT:-$(mktemp -d /tmp/shoal-announce-ab.XXXXXX)}

this_bin() {
  cargo bench --bench core --no-run 2>&1 | sed -n 's/.*Executable benches\/core.rs (\(.*\))/\1/p' | tail -1
}

declare -A BIN
NAMES=()
for b in $BUILDS; do
  name=${b%%=*}; bin=${b#*=}
  [ -n "$bin" ] || bin=$(this_bin)
  BIN[$name]=$bin
  NAMES+=("$name")
done

: > "$OUT/runs.txt"
for r in $(seq "$ROUNDS"); do
  for name in "${NAMES[@]}"; do
    # criterion prints "announce/new/1   time:   [lo mid hi]" (the name on its
    # own line when it is long); keep the middle estimate, in ns.
    "${BIN[$name]}" --bench "$FILTER" --measurement-time "$MEASURE" --warm-up-time 1 --noplot 2>/dev/null |
      awk -v n="$name" -v r="$r" '
        /^(announce|udp)\// { c = $1 }
        /time:/ {
          for (i = 1; i <= NF; i++) if ($i == "time:") { v = $(i + 3); u = $(i + 4) }
          if (u == "µs") v *= 1000
          print n, r, c, v
        }' >> "$OUT/runs.txt"
  done
done

python3 - "$OUT/runs.txt" <<'PY'
import collections, statistics, sys

values = collections.defaultdict(list)
rounds = collections.defaultdict(dict)
names = []
for line in open(sys.argv[1]):
    name, r, case, v = line.split()
    values[(case, name)].append(float(v))
    rounds[(case, r)][name] = float(v)
    if name not in names:
        names.append(name)
cases = sorted({c for c, _ in values})
print("median ns".ljust(26) + "".join(n.rjust(10) for n in names))
for c in cases:
    print(c.ljust(26) + "".join(("%.0f" % statistics.median(values[(c, n)])).rjust(10) for n in names))
first = names[0]
print("median over rounds of the ratio to " + first)
for c in cases:
    row = c.ljust(26)
    for n in names[1:]:
        ratios = [m[n] / m[first] for (cc, _), m in rounds.items() if cc == c and n in m and first in m]
        row += ("%.2f" % statistics.median(ratios)).rjust(10)
    print(row)
PY
echo "raw runs in $OUT/runs.txt"
