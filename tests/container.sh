#!/usr/bin/env bash
# What the Docker image relies on, checked on a machine without Docker:
#
# - the release binary runs from an empty directory, as an unprivileged user,
#   configured by environment variables alone (the Dockerfile's ENV block plus
#   SHOAL_UDP on a free loopback port), from an otherwise empty environment;
# - it answers a BEP 15 connect (sent by python3, independent of shoal's client);
# - the Dockerfile's HEALTHCHECK command, run as written (port aside), exits 0
#   against the running tracker and non-zero when nothing listens;
# - SIGTERM (the image's STOPSIGNAL) stops it with exit status 0;
# - the Dockerfile's ENV names exist, and its exec-form lines are valid JSON.
#
# Usage: tests/container.sh   (from anywhere; needs cargo, python3, and either
# root with setpriv/runuser or an ordinary user). Every wait is bounded. Prints
# one line per check and "N passed, M failed"; exits non-zero on any failure.

set -uo pipefail
cd "$(dirname "$0")/.."

passed=0
failed=0
pass() {
    echo "ok   $1"
    passed=$((passed + 1))
}
fail() {
    echo "FAIL $1"
    failed=$((failed + 1))
}
check() {
    local name=$1
    shift
    if "$@"; then pass "$name"; else fail "$name"; fi
}
finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

command -v python3 >/dev/null || {
    fail "python3 is needed for the BEP 15 probe and the Dockerfile checks"
    finish
}

# ---- build -----------------------------------------------------------------
target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
bin="$target_dir/release/shoal"
if cargo build --release --locked --bin shoal; then
    pass "release build (cargo build --release --locked)"
else
    fail "release build (cargo build --release --locked)"
    finish
fi

# ---- the Dockerfile ----------------------------------------------------------

# Instructions with their continuation lines joined; comment lines dropped.
instructions() {
    awk '
        /^[[:space:]]*#/ { next }
        { line = line $0 }
        /\\$/ { sub(/\\$/, " ", line); next }
        { if (line ~ /[^[:space:]]/) print line; line = "" }
    ' Dockerfile
}

# The KEY=VALUE pairs of every ENV instruction, one a line.
mapfile -t image_env < <(instructions | awk '$1 == "ENV" { for (i = 2; i <= NF; i++) print $i }')
# The HEALTHCHECK's exec-form command, one argument a line.
health_json=$(instructions | sed -n 's/^HEALTHCHECK .*CMD[[:space:]]*\(\[.*\]\)[[:space:]]*$/\1/p')
entry_json=$(instructions | sed -n 's/^ENTRYPOINT[[:space:]]*\(\[.*\]\)[[:space:]]*$/\1/p')

# A Dockerfile exec form (a JSON list of strings), one element a line; fails if it is not one.
json_list() {
    python3 -c '
import json, sys
v = json.loads(sys.argv[1])
assert isinstance(v, list) and v and all(isinstance(a, str) for a in v)
print("\n".join(v))' "$1" 2>/dev/null
}

check "Dockerfile: multi-stage (two FROM lines or more)" \
    test "$(instructions | grep -c '^FROM ')" -ge 2
user=$(instructions | awk '$1 == "USER" { u = $2 } END { print u }')
check "Dockerfile: runtime USER is not root (${user:-none})" \
    bash -c '[ -n "$1" ] && [[ ! "$1" =~ ^(root|0)(:|$) ]]' _ "$user"
check "Dockerfile: EXPOSE 6969/udp" grep -q '^EXPOSE 6969/udp$' Dockerfile
check "Dockerfile: ENTRYPOINT is exec-form JSON naming shoal" \
    bash -c '[[ "$1" == */shoal* ]]' _ "$(json_list "$entry_json")"
mapfile -t health_cmd < <(json_list "$health_json")
check "Dockerfile: HEALTHCHECK CMD is exec-form JSON running shoal scrape" \
    test "${#health_cmd[@]}" -gt 2 -a "${health_cmd[1]:-}" = scrape
help=$(env -i "$bin" --help)
unknown=()
for kv in "${image_env[@]}"; do
    grep -qF "[env: ${kv%%=*}=" <<<"$help" || unknown+=("${kv%%=*}")
done
check "Dockerfile: ENV names are shoal's (${#image_env[@]} variables)" \
    test "${#image_env[@]}" -gt 0 -a "${#unknown[@]}" -eq 0
[ "${#unknown[@]}" -eq 0 ] || echo "     not in shoal --help: ${unknown[*]}"

# ---- an empty directory, an unprivileged user --------------------------------
work=$(mktemp -d)    # holds the binary only
logs=$(mktemp -d)    # the log is written by this script, not by shoal
pid=""
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null; fi
    rm -rf "$work" "$logs"
}
trap cleanup EXIT
chmod 0755 "$work"
install -m 0755 "$bin" "$work/shoal"

# Run "$@" as an unprivileged user: nobody when we are root, else ourselves.
if [ "$(id -u)" -ne 0 ]; then
    as_user=()
elif command -v setpriv >/dev/null; then
    group=$(getent group nogroup >/dev/null && echo nogroup || echo nobody)
    as_user=(setpriv --reuid=nobody --regid="$group" --clear-groups)
elif command -v runuser >/dev/null; then
    as_user=(runuser -u nobody --)
else
    fail "running as root without setpriv or runuser: cannot drop privileges"
    finish
fi

free_udp_port() {
    python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}
port=$(free_udp_port)
dead_port=$(free_udp_port)
# The image's environment, with the address moved to a free port and one worker.
run_env=("${image_env[@]}" "SHOAL_UDP=127.0.0.1:$port" "SHOAL_WORKERS=1")

(cd "$work" && exec "${as_user[@]}" env -i "${run_env[@]}" ./shoal) >"$logs/shoal.log" 2>&1 &
pid=$!

listening=false
for _ in $(seq 100); do    # at most 10 s
    if grep -q "listening on udp://127.0.0.1:$port" "$logs/shoal.log"; then
        listening=true
        break
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
check "starts from an empty environment and logs its address" $listening

uid=$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
check "runs unprivileged (uid ${uid:-?})" test -n "$uid" -a "${uid:-0}" != 0
check "runs in the empty directory" test "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$work"

# An independent BEP 15 connect: 16 bytes out, 16 back with action 0 and our id.
probe() {
    python3 - "$1" <<'EOF'
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1.0)
tid = 0x5EED1234
for _ in range(3):
    s.sendto(struct.pack(">QII", 0x41727101980, 0, tid), ("127.0.0.1", int(sys.argv[1])))
    try:
        reply = s.recv(2048)
    except socket.timeout:
        continue
    sys.exit(0 if len(reply) == 16 and struct.unpack(">II", reply[:8]) == (0, tid) else 1)
sys.exit(1)
EOF
}
check "answers a BEP 15 connect (python3 probe)" probe "$port"

# The HEALTHCHECK as Docker runs it: the same user, the image's environment.
health=("${health_cmd[@]}")
health[0]=./shoal
health=("${health[@]/udp:\/\/127.0.0.1:6969/udp://127.0.0.1:$port}")
run_health() {
    (cd "$work" && timeout 10 "${as_user[@]}" env -i "${run_env[@]}" "$@") >"$logs/health.out" 2>&1
}
check "HEALTHCHECK command passes: ${health[*]}" run_health "${health[@]}"
dead=("${health[@]/:$port/:$dead_port}")
if run_health "${dead[@]}"; then
    fail "HEALTHCHECK command fails when nothing listens"
else
    pass "HEALTHCHECK command fails when nothing listens"
fi

check "wrote nothing to its directory" test "$(ls -A "$work")" = shoal

# ---- SIGTERM -----------------------------------------------------------------
kill -TERM "$pid"
status=""
for _ in $(seq 100); do    # at most 10 s
    if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid"
        status=$?
        break
    fi
    sleep 0.1
done
check "SIGTERM: exits with status 0 (got ${status:-no exit within 10 s})" test "$status" = 0
check "SIGTERM: logs a clean stop" grep -q "stopped" "$logs/shoal.log"

if [ "$failed" -ne 0 ]; then
    for f in shoal.log health.out; do
        [ -s "$logs/$f" ] && { echo "---- $f"; cat "$logs/$f"; }
    done
fi
finish
