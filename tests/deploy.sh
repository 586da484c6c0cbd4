#!/usr/bin/env bash
# Checks contrib/shoal.service, the systemd unit the README recommends:
#
# - `systemd-analyze verify` accepts it with no complaint at all (verify exits
#   0 on unknown keys and unparsable values, only printing them, so any output
#   is a failure here; the man page the unit names is looked up where the
#   package installs it, by tests/package.sh, and not here);
# - `systemd-analyze security --offline` rates its sandbox at most 2.0 ("OK"),
#   so a later edit cannot quietly drop the hardening;
# - the settings this unit is about are present: ExecStart, DynamicUser, the
#   empty CapabilityBoundingSet, SIGTERM, the state file under StateDirectory=,
#   the metrics listener on loopback, the EnvironmentFile, and every SHOAL_*
#   name it or contrib/debian/shoal.default mentions is one `shoal --help`
#   documents;
# - with its commented LoadCredential= lines for the API token turned on, the
#   unit still verifies;
# - if strace is installed: every system call shoal makes while starting,
#   answering UDP (BEP 15 connect, from python3) and HTTP (curl) and stopping
#   on SIGTERM, writing its state file, is one the unit's SystemCallFilter allows (a call outside it
#   would fail with EPERM in production only, e.g. pinning workers with
#   sched_setaffinity, which is in the denied @resources).
#
# verify needs ExecStart's binary to exist, so the check runs on a temporary
# copy whose ExecStart points at a built shoal (target/debug, release or dist), else
# /bin/true. Installs nothing and builds nothing; starts shoal on loopback
# only for the strace check. About 1 s. Skips (exit 0, saying so) only when
# systemd-analyze is absent; each optional check says when it is skipped.
#
# Usage: tests/deploy.sh   (from anywhere)

set -uo pipefail
cd "$(dirname "$0")/.."
unit=contrib/shoal.service

if ! command -v systemd-analyze >/dev/null; then
    echo "SKIP tests/deploy.sh: systemd-analyze is not installed (apt-get install systemd)"
    exit 0
fi

. tests/lib.sh

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/cred"

bin=/bin/true
for b in target/debug/shoal target/release/shoal target/dist/shoal; do
    if [ -x "$b" ]; then
        bin=$(realpath "$b")
        break
    fi
done

grep -qx 'ExecStart=shoal' "$unit" &&
    pass "ExecStart=shoal (found in /usr/local/bin or /usr/bin)" || fail "ExecStart is not shoal"

sed "s|^ExecStart=shoal\$|ExecStart=$bin|" "$unit" >"$tmp/shoal.service"
out=$(cd "$tmp" && systemd-analyze verify --man=no ./shoal.service 2>&1)
rc=$?
if [ $rc -eq 0 ] && [ -z "$out" ]; then
    pass "systemd-analyze verify: no complaints"
else
    fail "systemd-analyze verify (exit $rc):"
    printf '%s\n' "$out" | sed 's/^/     /'
fi

# `security --offline` arrived in systemd 250; older ones cannot rate a unit file.
if systemd-analyze security --help 2>&1 | grep -q -- '--offline'; then
    out=$(cd "$tmp" && systemd-analyze security --offline=true --threshold=20 ./shoal.service 2>&1)
    rc=$?
    level=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for shoal.service: \([0-9.]*\).*/\1/p')
    if [ $rc -eq 0 ] && [ -n "$level" ]; then
        pass "systemd-analyze security: exposure $level <= 2.0"
    else
        fail "systemd-analyze security: exposure ${level:-?} (exit $rc), want <= 2.0"
        printf '%s\n' "$out" | grep '✗' | sed 's/^/     /'
    fi
else
    echo "skip systemd-analyze security --offline (systemd < 250)"
fi

for line in DynamicUser=yes NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes \
    'CapabilityBoundingSet=' '#AmbientCapabilities=CAP_NET_BIND_SERVICE' \
    'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' 'SystemCallFilter=@system-service' \
    MemoryDenyWriteExecute=yes KillSignal=SIGTERM Restart=on-failure StateDirectory=shoal \
    LimitNOFILE=65536 'Environment=SHOAL_STATE_FILE=%S/shoal/state' \
    'Environment=SHOAL_METRICS=127.0.0.1:9969' 'EnvironmentFile=-/etc/default/shoal' \
    '#LoadCredential=api-token:/etc/shoal/api-token' '#Environment=SHOAL_API_TOKEN_FILE=%d/api-token'; do
    grep -qxF -- "$line" "$unit" && pass "$line" || fail "missing line: $line"
done

# The API token as a credential: the commented lines, turned on, still verify.
sed -e 's|^#LoadCredential=|LoadCredential=|' -e 's|^#Environment=SHOAL_API_TOKEN_FILE=|Environment=SHOAL_API_TOKEN_FILE=|' \
    "$tmp/shoal.service" >"$tmp/cred/shoal.service"
out=$(cd "$tmp/cred" && systemd-analyze verify --man=no ./shoal.service 2>&1)
rc=$?
if [ $rc -eq 0 ] && [ -z "$out" ] && grep -q '^LoadCredential=' "$tmp/cred/shoal.service"; then
    pass "systemd-analyze verify with LoadCredential= on: no complaints"
else
    fail "systemd-analyze verify with LoadCredential= on (exit $rc):"
    printf '%s\n' "$out" | sed 's/^/     /'
fi

# Every SHOAL_* the unit or the settings file names must be one shoal knows,
# or it is ignored in production (with only a warning in the journal).
if [ "$bin" != /bin/true ]; then
    known=$("$bin" --help 2>&1 | grep -o 'SHOAL_[A-Z][A-Z_]*' | sort -u)
    for name in $(grep -ho 'SHOAL_[A-Z][A-Z_]*' "$unit" contrib/debian/shoal.default | sort -u); do
        if printf '%s\n' "$known" | grep -qx "$name"; then
            pass "$name is a shoal setting"
        else
            fail "$name is not in \`shoal --help\`"
        fi
    done
else
    echo "skip SHOAL_* names check: no built shoal in target/ (run cargo build first)"
fi

# ---- the system call filter against what shoal actually calls ---------------
syscall_check() {
    strace -f -qq -o "$tmp/strace" "$bin" --udp 127.0.0.1:0 --http 127.0.0.1:0 \
        --http-metrics --workers 2 --state-file "$tmp/state" --log info >"$tmp/log" 2>&1 &
    local pid=$! udp= http=
    for _ in $(seq 100); do
        udp=$(sed -n 's|.*listening on udp://\([0-9.:]*\).*|\1|p' "$tmp/log" | head -1)
        http=$(sed -n 's|.*listening on http://\([0-9.:]*\).*|\1|p' "$tmp/log" | head -1)
        [ -n "$udp" ] && [ -n "$http" ] && break
        sleep 0.1
    done
    if [ -z "$http" ]; then
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        fail "syscall check: shoal did not start under strace"
        return
    fi
    python3 - "$udp" <<'PY'
import socket, struct, sys
host, port = sys.argv[1].rsplit(":", 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(struct.pack(">QII", 0x41727101980, 0, 7), (host, int(port)))
assert struct.unpack(">II", s.recv(16)[:8]) == (0, 7)
PY
    curl -sS --max-time 5 -o /dev/null "http://$http/metrics"
    curl -sS --max-time 5 -o /dev/null \
        "http://$http/announce?info_hash=$(printf '%%%02x' $(seq 20))&peer_id=$(printf '%%%02x' $(seq 20))&port=1&left=0"
    # Stop shoal itself (strace blocks SIGTERM while it runs a command); strace
    # exits with it. Bounded: after 10 s both are killed.
    local child
    child=$(pgrep -P "$pid" | head -1)
    [ -n "$child" ] && kill -TERM "$child"
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        fail "syscall check: shoal did not stop on SIGTERM within 10 s"
        [ -n "$child" ] && kill -KILL "$child" 2>/dev/null
        kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    if [ -s "$tmp/state" ]; then
        pass "syscall check: the state file was written at SIGTERM (its calls are counted)"
    else
        fail "syscall check: no state file written at SIGTERM"
    fi
    local report
    report=$(systemd-analyze syscall-filter 2>/dev/null | python3 -c '
import re, sys
groups, cur = {}, None
for line in sys.stdin:
    s = line.strip()
    if not s or s.startswith("#"):
        continue
    if not line.startswith(" ") and s.startswith("@"):
        cur = groups.setdefault(s, [])
    elif cur is not None:
        cur.append(s)
def expand(g):
    out = set()
    for x in groups.get(g, []):
        out |= expand(x) if x.startswith("@") else {x}
    return out
unit = open(sys.argv[1]).read()
# Lines apply in order, as systemd applies them: after the first (an allow
# list), a ~ line takes calls out and a plain line puts them back.
allowed = set()
for value in re.findall(r"^SystemCallFilter=(.*)$", unit, re.M):
    neg = value.startswith("~")
    names = set()
    for w in value.lstrip("~").split():
        names |= expand(w) if w.startswith("@") else {w}
    if neg:
        allowed -= names
    else:
        allowed |= names
used = set(re.findall(r"^\d+\s+([a-z0-9_]+)\(", open(sys.argv[2]).read(), re.M))
bad = sorted(n for n in used if n not in allowed)
print(len(used), " ".join(bad))
' "$unit" "$tmp/strace")
    local n=${report%% *} bad=${report#* }
    [ "$bad" = "$report" ] && bad=
    if [ -n "$n" ] && [ "$n" -gt 20 ] && [ -z "$bad" ]; then
        pass "all $n system calls shoal made are allowed by SystemCallFilter"
    else
        fail "SystemCallFilter would deny: ${bad:-?} (report: $report)"
    fi
}
if [ "$bin" = /bin/true ]; then
    echo "skip syscall check: no built shoal in target/"
elif ! command -v strace >/dev/null || ! command -v python3 >/dev/null || ! command -v curl >/dev/null; then
    echo "skip syscall check: needs strace, python3 and curl"
elif ! strace -f -qq -o /dev/null true 2>/dev/null; then
    echo "skip syscall check: strace cannot trace here (ptrace not permitted)"
else
    syscall_check
fi

finish
