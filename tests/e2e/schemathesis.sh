#!/usr/bin/env bash
# The management API against its spec: start shoal with --api (and an access
# list and key file, so every endpoint can succeed), put a few torrents in
# it with `shoal bench`, and run schemathesis (from PyPI, in a venv under
# target/) over docs/openapi.yaml. A reply that does not match the spec, any
# 5xx, or shoal dying fails the run. Bounded: schemathesis gets --max-time,
# the whole script a timeout.
#
# Usage: tests/e2e/schemathesis.sh [--shoal PATH]   (default target/release/shoal)
set -euo pipefail
cd "$(dirname "$0")/../.."
shoal=target/release/shoal
if [[ "${1:-}" == "--shoal" ]]; then shoal=$2; fi
[[ -x "$shoal" ]] || { echo "schemathesis.sh: no shoal binary at $shoal" >&2; exit 1; }

venv=target/e2e/venv
version=4.32.5
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$version"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$version"
fi

work=$(mktemp -d)
pid=
cleanup() {
  if [[ -n "$pid" ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
: > "$work/allow.txt"
: > "$work/keys.txt"
token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
SHOAL_API_TOKEN=$token "$shoal" --udp 127.0.0.1:0 --api 127.0.0.1:0 --workers 2 \
  --access-list "$work/allow.txt" --access-mode deny --keys "$work/keys.txt" \
  --log info 2> "$work/log" &
pid=$!
for _ in $(seq 100); do
  grep -q "worker(s)" "$work/log" && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/log" >&2; exit 1; }
  sleep 0.1
done
api=$(grep -o 'status page on http://[^ ]*' "$work/log" | sed 's|.*http://||')
udp=$(grep -o 'listening on udp://[^ ]*' "$work/log" | sed 's|.*udp://||')
[[ -n "$api" && -n "$udp" ]] || { echo "schemathesis.sh: shoal did not start" >&2; cat "$work/log" >&2; exit 1; }
if grep -q "$token" "$work/log"; then echo "schemathesis.sh: the token was logged" >&2; exit 1; fi

# Some torrents and peers (private mode is on: announces are refused, which
# still counts requests and rejects; the swarm stays empty unless keys match).
"$shoal" bench --target "udp://$udp" --duration 2 --keep-peers --torrents 50 --peers 200 --quiet > /dev/null || true

# From the scratch directory: schemathesis keeps a cache (.schemathesis/) in
# its working directory, which must not land in the checkout.
spec=$PWD/docs/openapi.yaml
st=$PWD/$venv/bin/schemathesis
# A schema-violating body over the API's 1 KiB cap is refused with 413 before
# it is parsed, and a request head over 8 KiB (schemathesis repeats a query
# parameter hundreds of times) with 431 before the route is read: rejections,
# as the negative-data check wants, but not among its default statuses.
# (schemathesis's own config format, written here only.)
cat > "$work/schemathesis.toml" <<'CONF'
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "431", "5xx"]
CONF
(cd "$work" && timeout 600 "$st" --config-file "$work/schemathesis.toml" run "$spec" \
  --url "http://$api" \
  -H "Authorization: Bearer $token" \
  --checks all \
  --exclude-checks positive_data_acceptance,use_after_free,ensure_resource_availability \
  --max-time 90 \
  --workers 1 \
  --no-color)
kill -0 "$pid" || { echo "schemathesis.sh: shoal died" >&2; cat "$work/log" >&2; exit 1; }
echo "schemathesis.sh: ok"
