#!/usr/bin/env bash
# Instructions per UDP announce through the core, counted by callgrind on the
# criterion bench binary (benches/core.rs). Deterministic where criterion's
# timings on a shared 2-core machine move by ±25 % from run to run: use it to
# tell whether a change to the announce path added work, and criterion to see
# what that work costs in time. See BENCHMARKS.md, "One-peer announce".
#
#   benches/instructions.sh                     # this tree
#   BUILDS="old=/tmp/old/target/release/deps/core-HASH this=" benches/instructions.sh
#
# BUILDS names bench binaries as name=path (an empty path: this tree's, built
# here); an older commit's: `git worktree add /tmp/old COMMIT && (cd /tmp/old
# && cargo bench --bench core --no-run)`, path printed as "Executable".
#
# For each case the bench runs under valgrind --tool=callgrind for PROFILE_TIME
# seconds (--profile-time: no analysis, no timing). The count is the inclusive
# cost of criterion's measurement loop divided by the connection-id checks in
# it (one per announce: ConnectionIds::tag is never inlined), less those of
# the set-up (the torrents' prefill), counted by a run that benches nothing. `existing/N`
# counts one announce and the bench loop (about 40 instructions); `new/N`
# counts one new peer's announce and, untimed in criterion but counted here,
# its removal by a stop; in brackets, the announce alone (Tracker::handle_udp's
# instructions per call, where the build left it a call).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "needs valgrind (apt install valgrind)"; exit 1; }
CASES=${CASES:-"existing/1 new/1 existing/100 new/100 existing/10000 new/10000"}
PROFILE_TIME=${PROFILE_TIME:-2}
OUT=${OUT:-$(mktemp -d /tmp/shoal-instructions.XXXXXX)}
BUILDS=${BUILDS:-"this="}

this_bin() {
  cargo bench --bench core --no-run 2>&1 | sed -n 's/.*Executable benches\/core.rs (\(.*\))/\1/p' | tail -1
}

count() { # callgrind file, set-up's callgrind file -> instructions per announce
  python3 - "$1" "$2" <<'PY'
import re, sys


def parse(path):
    """Calls and inclusive instructions per called function."""
    names, calls, incl = {}, {}, {}
    cfn, pending = None, None
    for line in open(path, errors="replace"):
        m = re.match(r"^(c?fn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
        if m:
            kind, i, name = m.groups()
            if name:
                names[i] = name
            if kind == "cfn":
                cfn = names.get(i, i)
            continue
        m = re.match(r"^calls=(\d+)", line)
        if m:
            pending = int(m.group(1))
            continue
        if pending is not None:
            parts = line.split()
            if len(parts) >= 2:
                calls[cfn] = calls.get(cfn, 0) + pending
                incl[cfn] = incl.get(cfn, 0) + int(parts[1])
            pending = None
    return calls, incl


def tags(calls):
    return sum(n for f, n in calls.items() if f.endswith("ConnectionIds::tag"))


calls, incl = parse(sys.argv[1])
setup, _ = parse(sys.argv[2])
loop = sum(n for f, n in incl.items()
           if re.search(r"criterion::bencher::Bencher<M>::iter(_custom)?$", f))
announces = tags(calls) - tags(setup)
if not loop or announces <= 0:
    sys.exit("callgrind output lacks the bench loop or ConnectionIds::tag")
# A new peer's join alone, where handle_udp stayed a call of its own (the
# bench loop of new/N also holds the untimed stop): printed in brackets.
udp = [f for f in calls if f.endswith("Tracker::handle_udp")]
join = ""
if ".new_" in sys.argv[1] and udp:
    join = " (%.0f)" % (sum(incl[f] for f in udp) / sum(calls[f] for f in udp))
print("%.0f%s" % (loop / announces, join))
PY
}

cg() { # name, bin, filter, file
  valgrind --tool=callgrind --callgrind-out-file="$4" "$2" --bench "$3" \
    --profile-time "$PROFILE_TIME" > /dev/null 2>&1
}
declare -A BIN
printf '%-16s' case
for b in $BUILDS; do
  name=${b%%=*}; bin=${b#*=}
  [ -n "$bin" ] || bin=$(this_bin)
  BIN[$name]=$bin
  cg "$name" "$bin" 'announce/none$' "$OUT/$name.setup.cg"
  printf '%14s' "$name"
done
echo
for c in $CASES; do
  printf '%-16s' "$c"
  for b in $BUILDS; do
    name=${b%%=*}
    file="$OUT/$name.${c//\//_}.cg"
    cg "$name" "${BIN[$name]}" "announce/$c\$" "$file"
    printf '%14s' "$(count "$file" "$OUT/$name.setup.cg")"
  done
  echo
done
echo "callgrind files in $OUT"
