#!/usr/bin/env bash
# Build every fuzz target, replay the saved crash inputs, then fuzz each target
# for a bounded time. Exits non-zero if any target crashes (or fails to build).
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]   # default: 60 s, all targets
#   SANITIZER=address fuzz/run.sh 600 udp_core     # longer, with ASan
#
# Works with only a stable toolchain: cargo-fuzz passes nightly -Z flags to
# rustc, which RUSTC_BOOTSTRAP=1 lets stable accept. New inputs found while
# fuzzing go to fuzz/work/corpus/TARGET (not committed); the committed seeds in
# fuzz/corpus/TARGET are read, never written. A crash input is copied to
# fuzz/regressions/TARGET/ so that it is replayed on every later run: commit it
# with the fix.
set -euo pipefail
cd "$(dirname "$0")"

secs=${1:-60}
shift || true
if [ $# -gt 0 ]; then
  targets=("$@")
else
  targets=(udp_core http_core client_parsers snapshot cluster_batch xdp_frame)
fi
# No sanitizer by default: shoal's parsing and core code is safe Rust (the one
# unsafe module, net/mmsg.rs, is not reachable from these targets), so ASan
# would only slow fuzzing down. Panics and overflow checks are the findings.
sanitizer=${SANITIZER:-none}

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
if ! rustc --version | grep -q nightly; then
  export RUSTC_BOOTSTRAP=1
fi
# -O: optimised; -a: debug assertions and overflow checks stay on.
flags=(-O -a -s "$sanitizer")

echo "== building ${targets[*]}"
for t in "${targets[@]}"; do
  cargo fuzz build "${flags[@]}" "$t"
done

failed=()
for t in "${targets[@]}"; do
  mkdir -p "work/corpus/$t" "regressions/$t"
  saved=(regressions/"$t"/*)
  if [ -e "${saved[0]}" ]; then
    echo "== $t: replaying ${#saved[@]} saved crash input(s)"
    if ! cargo fuzz run "${flags[@]}" "$t" "${saved[@]}" -- -rss_limit_mb=2048; then
      failed+=("$t (regression)")
      continue
    fi
  fi
  echo "== $t: fuzzing for ${secs}s"
  rm -rf "artifacts/$t"
  if ! cargo fuzz run "${flags[@]}" "$t" "work/corpus/$t" "corpus/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1; then
    for f in artifacts/"$t"/*; do
      [ -e "$f" ] || continue
      cp "$f" "regressions/$t/"
      echo "!! $t crashed; input saved as fuzz/regressions/$t/$(basename "$f")"
    done
    failed+=("$t")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "== FAILED: ${failed[*]}"
  exit 1
fi
echo "== all targets ran ${secs}s without a crash"
