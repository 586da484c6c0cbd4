#!/usr/bin/env bash
# The Debian package (contrib/debian/build.sh), installed and removed for real:
#
# - `dpkg -i` installs it: the binary runs, the man page and the bash, zsh and
#   fish completions are where man and the shells look, /etc/default/shoal is a
#   conffile, the unit is installed and enabled;
# - `systemd-analyze verify` accepts the installed unit with no complaint;
# - the installed binary runs as the unit runs it: an unprivileged user, the
#   unit's Environment= lines with /etc/default/shoal over them, the state file
#   in a private state directory. It answers an announce, /health on the
#   metrics listener, and, stopped with SIGTERM (exit 0) and started again,
#   still knows the peer from its state file (warm restart on by default);
# - `dpkg -r` removes every file it installed but the conffile and exits 0;
#   `dpkg -P` then removes the conffile and the unit's enablement.
#
# systemd cannot run as PID 1 where CI runs, so the unit itself is not started:
# its environment and command line are, by this script.
#
# Usage: tests/package.sh [--deb PATH]   (default: target/debian/shoal_*.deb,
# made by contrib/debian/build.sh). Needs root, dpkg, python3, curl and
# systemd-analyze; INSTALLS AND REMOVES the package "shoal" on this machine
# (a shoal package already installed is removed first). Every wait is bounded;
# shoal listens on free loopback ports only. Prints one line per check and
# "N passed, M failed"; exits non-zero on any failure.

set -uo pipefail
cd "$(dirname "$0")/.."

. tests/lib.sh

package_under_test "$@"
need dpkg python3 curl systemd-analyze setpriv readelf
echo "package: $deb ($(du -k "$deb" | cut -f1) KiB)"

work=$(mktemp -d)
pid=""
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null; fi
    rm -rf "$work"
}
trap cleanup EXIT

if dpkg -s shoal >/dev/null 2>&1; then
    echo "removing the shoal package already installed"
    dpkg -P shoal >/dev/null
fi

# ---- install -----------------------------------------------------------------
check "dpkg -i exits 0" dpkg -i "$deb"
mapfile -t files < <(dpkg -L shoal 2>/dev/null | while read -r f; do [ -f "$f" ] && echo "$f"; done)
check "dpkg -L lists the installed files (${#files[@]})" test "${#files[@]}" -ge 7
check "/usr/bin/shoal runs (--version: $(/usr/bin/shoal --version 2>&1))" /usr/bin/shoal --version
check "the binary is stripped (no .symtab)" bash -c '! readelf -S /usr/bin/shoal | grep -q "\.symtab"'
check "man page shoal(1) in /usr/share/man/man1" \
    bash -c 'zcat /usr/share/man/man1/shoal.1.gz | grep -q "^\.TH [Ss][Hh][Oo][Aa][Ll] 1"'
check "bash completion loads and completes shoal" \
    bash -c 'source /usr/share/bash-completion/completions/shoal && complete -p shoal >/dev/null'
check "zsh completion (#compdef shoal)" \
    bash -c 'head -1 /usr/share/zsh/vendor-completions/_shoal | grep -q "^#compdef shoal"'
check "fish completion (complete -c shoal)" \
    grep -q '^complete -c shoal' /usr/share/fish/vendor_completions.d/shoal.fish
check "/etc/default/shoal is a conffile" \
    bash -c 'dpkg-query -W -f="\${Conffiles}\n" shoal | grep -q "^ /etc/default/shoal "'
unit=$(dpkg -L shoal | grep '/systemd/system/shoal\.service$' | head -1)
check "unit installed (${unit:-none})" test -n "$unit" -a -f "$unit"
check "unit is contrib/shoal.service" cmp -s "$unit" contrib/shoal.service
check "unit enabled (multi-user.target.wants/shoal.service)" \
    test -L /etc/systemd/system/multi-user.target.wants/shoal.service

out=$(systemd-analyze verify "$unit" 2>&1)
rc=$?
if [ $rc -eq 0 ] && [ -z "$out" ]; then
    pass "systemd-analyze verify $unit: no complaints"
else
    fail "systemd-analyze verify $unit (exit $rc):"
    printf '%s\n' "$out" | sed 's/^/     /'
fi

# ---- run it as the unit does ---------------------------------------------------
free_port() { # udp or tcp
    python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if sys.argv[1] == "udp" else socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
EOF
}
udp_port=$(free_port udp)
metrics_port=$(free_port tcp)
# The operator's overrides, as a reader of /etc/default/shoal would write them;
# removed again before dpkg -r so the conffile is as shipped.
cp /etc/default/shoal "$work/default.orig"
printf 'SHOAL_UDP=127.0.0.1:%s\nSHOAL_METRICS=127.0.0.1:%s\n' "$udp_port" "$metrics_port" >>/etc/default/shoal

state_dir=$work/state/shoal    # %S/shoal: StateDirectory=shoal
mkdir -p "$state_dir"
chmod 0755 "$work" "$work/state"
chown nobody "$state_dir"
chmod 0700 "$state_dir"
# The unit's environment: its Environment= lines (specifiers %S and %d
# expanded), then the EnvironmentFile's assignments over them, as systemd
# orders them.
mapfile -t unit_env < <(python3 - "$unit" /etc/default/shoal "$work/state" <<'EOF'
import re, shlex, sys
unit, envfile, state = sys.argv[1:]
env = {}
for line in open(unit):
    m = re.match(r"^Environment=(.*)$", line.rstrip("\n"))
    if m:
        for kv in shlex.split(m.group(1)):
            k, v = kv.split("=", 1)
            env[k] = v.replace("%S", state)
for line in open(envfile):
    line = line.strip()
    if line and not line.startswith("#"):
        k, v = line.split("=", 1)
        env[k] = v
for k, v in env.items():
    print(f"{k}={v}")
EOF
)
check "unit environment: state file under the state directory" \
    bash -c 'printf "%s\n" "$@" | grep -qx "SHOAL_STATE_FILE=$0/shoal/state"' "$work/state" "${unit_env[@]}"
check "unit environment: metrics listener on loopback" \
    bash -c 'printf "%s\n" "$@" | grep -q "^SHOAL_METRICS=127\.0\.0\.1:"' "${unit_env[@]}"
# ExecStart=shoal: systemd finds it in /usr/local/bin, else /usr/bin.
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
[ -x "/usr/local/bin/$exec_start" ] && exec_start=/usr/local/bin/$exec_start
[ "${exec_start#/}" != "$exec_start" ] || exec_start=/usr/bin/$exec_start
check "the unit runs the package's binary ($exec_start)" test "$exec_start" = /usr/bin/shoal
group=$(getent group nogroup >/dev/null && echo nogroup || echo nobody)
start_shoal() {
    (cd / && exec setpriv --reuid=nobody --regid="$group" --clear-groups \
        env -i "${unit_env[@]}" $exec_start) >>"$work/log" 2>&1 &
    pid=$!
    local _
    for _ in $(seq 100); do # at most 10 s
        curl -sf --max-time 1 -o /dev/null "http://127.0.0.1:$metrics_port/health" && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
stop_shoal() { # SIGTERM, as KillSignal=; sets status to the exit status
    status=none
    kill -TERM "$pid"
    local _
    for _ in $(seq 300); do # at most 30 s, the unit's TimeoutStopSec
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid"
            status=$?
            return
        fi
        sleep 0.1
    done
}
hash=0123456789abcdef0123456789abcdef01234567
scrape_seeders() {
    /usr/bin/shoal scrape "udp://127.0.0.1:$udp_port" "$hash" --json --timeout 1 --tries 3 |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["files"][0]["seeders"])' 2>/dev/null
}

check "starts with the unit's environment and answers /health on 127.0.0.1:$metrics_port" start_shoal
check "answers an announce (udp://127.0.0.1:$udp_port)" \
    /usr/bin/shoal announce "udp://127.0.0.1:$udp_port/announce" --info-hash "$hash" --left 0 \
    --port 51413 --timeout 1 --tries 3
check "the announced seeder is in a scrape" test "$(scrape_seeders)" = 1
stop_shoal
check "SIGTERM: exit status 0 (got $status)" test "$status" = 0
check "state file written, owner only" \
    test "$(stat -c '%a %U' "$state_dir/state" 2>/dev/null)" = "600 nobody"
check "starts again from its state file" start_shoal
check "warm restart: the seeder is still there" test "$(scrape_seeders)" = 1
stop_shoal
check "SIGTERM again: exit status 0 (got $status)" test "$status" = 0
pid=""
cp "$work/default.orig" /etc/default/shoal

# ---- remove, purge -------------------------------------------------------------
check "dpkg -r exits 0" dpkg -r shoal
left=()
for f in "${files[@]}"; do
    [ "$f" = /etc/default/shoal ] && continue
    [ -e "$f" ] && left+=("$f")
done
check "dpkg -r removed every installed file but the conffile (left: ${left[*]:-none})" test "${#left[@]}" -eq 0
check "dpkg -r kept /etc/default/shoal" test -f /etc/default/shoal
check "dpkg -P exits 0" dpkg -P shoal
check "dpkg -P removed /etc/default/shoal" test ! -e /etc/default/shoal
check "dpkg -P removed the unit's enablement" test ! -e /etc/systemd/system/multi-user.target.wants/shoal.service
check "the package is gone" bash -c '! dpkg -s shoal >/dev/null 2>&1'

if [ "$failed" -ne 0 ] && [ -s "$work/log" ]; then
    echo "---- shoal's log"
    cat "$work/log"
fi
finish
