#!/usr/bin/env bash
# Prometheus's own linter on shoal's /metrics: `promtool check metrics` parses
# the body with the real text-format parser and lints it (counter suffixes,
# HELP text, naming conventions). tests/metrics_format.rs checks the format
# rules in-process; this catches whatever Prometheus itself would object to.
#
# Starts the built binary (target/debug/shoal, else target/release/shoal; run
# `cargo build` first) on 127.0.0.1:0 for UDP and HTTP, reads the bound HTTP
# address from its log, sends an HTTP announce and scrape with curl so
# labelled series are non-zero, and fails on any promtool complaint. Every
# wait is bounded; shoal is stopped on exit. About one second.
#
# Needs: curl, promtool (Debian: apt-get install prometheus). Skips, exit 0,
# saying so, when promtool is absent.
# Usage: tests/promtool.sh   (from anywhere)

set -uo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null; then
    echo "SKIP tests/promtool.sh: promtool not installed (apt-get install prometheus)"
    exit 0
fi
bin=
for b in target/debug/shoal target/release/shoal; do
    [ -x "$b" ] && bin=$b && break
done
if [ -z "$bin" ]; then
    echo "FAIL no built shoal in target/ (run cargo build --bin shoal)"
    exit 1
fi

tmp=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

"$bin" --udp 127.0.0.1:0 --http 127.0.0.1:0 --metrics 127.0.0.1:0 --workers 1 --log info >"$tmp/log" 2>&1 &
pid=$!
# shoal logs "listening on http://ADDR" once the socket is bound (before the
# workers start; a bound socket queues connections). Wait at most 10 s.
http=
ops=
for _ in $(seq 100); do
    http=$(sed -n 's|.*listening on http://\([0-9.:]*\).*|\1|p' "$tmp/log" | head -1)
    ops=$(sed -n 's|.*/health on http://\([0-9.:]*\).*|\1|p' "$tmp/log" | head -1)
    [ -n "$http" ] && [ -n "$ops" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$http" ] || [ -z "$ops" ]; then
    echo "FAIL shoal did not report its HTTP and --metrics addresses; its log:"
    sed 's/^/     /' "$tmp/log"
    exit 1
fi

ih=$(printf '%%%02x' $(seq 1 20))
peer=$(printf '%%%02x' $(seq 101 120))
curl -sS --max-time 5 -o /dev/null \
    "http://$http/announce?info_hash=$ih&peer_id=$peer&port=6881&uploaded=0&downloaded=0&left=0" || {
    echo "FAIL announce to http://$http"
    exit 1
}
curl -sS --max-time 5 -o /dev/null "http://$http/scrape?info_hash=$ih" || {
    echo "FAIL scrape to http://$http"
    exit 1
}
if ! curl -fsS --max-time 5 -o "$tmp/metrics" "http://$ops/metrics"; then
    echo "FAIL GET http://$ops/metrics"
    exit 1
fi
out=$(promtool check metrics <"$tmp/metrics" 2>&1)
rc=$?
if [ $rc -ne 0 ] || [ -n "$out" ]; then
    echo "FAIL promtool check metrics (exit $rc):"
    printf '%s\n' "$out" | sed 's/^/     /'
    exit 1
fi
families=$(grep -c '^# TYPE ' "$tmp/metrics")
echo "ok   promtool check metrics: $families families, no complaints ($(promtool --version 2>&1 | head -1))"
