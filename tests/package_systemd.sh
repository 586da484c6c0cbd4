#!/usr/bin/env bash
# The Debian package's unit under a real systemd. Where CI runs, systemd is not
# PID 1, so this boots one: a privileged podman container (its own network
# namespace: the unit's fixed ports touch nothing outside) from a Debian 12
# rootfs made by debootstrap (minbase + systemd, dbus, curl; cached as
# target/container/bookworm-systemd.tar). In it:
#
# - `dpkg -i` starts the unit, with every sandbox setting it has;
# - shoal runs as a dynamic (non-root) user, answers /health on
#   127.0.0.1:9969 and an announce on UDP 6969, and has a memory budget (the
#   sandbox still lets it read /proc/meminfo);
# - `systemctl restart` keeps the announced peer (the state file in
#   /var/lib/private/shoal, owner-only);
# - the management API's token given as the README says (LoadCredential= in a
#   drop-in, SHOAL_API_TOKEN_FILE=%d/api-token): the API takes that token,
#   refuses another, and the token is nowhere in the journal;
# - `systemctl stop` ends it cleanly (exit status 0, inactive, not failed);
# - `dpkg -r` stops and disables it, `dpkg -P` removes its state.
#
# Usage: tests/package_systemd.sh [--deb PATH]   (default: the newest
# target/debian/shoal_*.deb). Needs root, podman, runc, debootstrap (and the
# Debian mirror, DEBIAN_MIRROR, default http://deb.debian.org/debian, the
# first time). Every wait is bounded. Prints one line per check and
# "N passed, M failed"; exits non-zero on any failure.

set -uo pipefail
cd "$(dirname "$0")/.."

. tests/lib.sh

package_under_test "$@"
target_dir=$(target_dir)
need podman runc debootstrap python3
use_podman_conf

# ---- the machine -------------------------------------------------------------------
rootfs_tar=$target_dir/container/bookworm-systemd.tar
image=localhost/shoal-test-systemd:$$
box=shoal-test-systemd-$$
work=$(mktemp -d)
cleanup() {
    podman rm -f "$box" >/dev/null 2>&1
    podman rmi -f "$image" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT
if [ ! -s "$rootfs_tar" ]; then
    echo "     debootstrap bookworm (minbase, systemd) into $rootfs_tar"
    if debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,curl \
        bookworm "$work/rootfs" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$work/debootstrap.log" 2>&1 &&
        tar -C "$work/rootfs" -cf "$rootfs_tar.tmp" . && mv "$rootfs_tar.tmp" "$rootfs_tar"; then
        rm -rf "$work/rootfs"
    else
        fail "debootstrap bookworm:"
        tail -5 "$work/debootstrap.log" | sed 's/^/     /'
        finish
    fi
fi
check "image from the rootfs" \
    bash -c 'podman import -q --change "CMD [\"/sbin/init\"]" "$1" "$2" >/dev/null' _ "$rootfs_tar" "$image"
in_box() { podman exec "$box" "$@"; }
# Wait (at most $1 tenths of a second) until "$2..." succeeds in the container.
wait_for() {
    local n=$1 _
    shift
    for _ in $(seq "$n"); do
        in_box "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}
podman run -d --name "$box" --privileged --systemd=always "$image" /sbin/init >/dev/null 2>"$work/run.err"
check "systemd boots in the container" \
    wait_for 300 bash -c 'case $(systemctl is-system-running) in running | degraded) exit 0 ;; *) exit 1 ;; esac'
# podman leaves the container's mounts private; on a host systemd has / shared,
# and LoadCredential= needs that to hand a credential to a service.
check "mount --make-rshared / (as on a host)" in_box mount --make-rshared /

# ---- install: the unit starts ------------------------------------------------------
podman cp "$deb" "$box:/tmp/shoal.deb"
check "dpkg -i exits 0" in_box dpkg -i /tmp/shoal.deb
check "the unit is enabled" in_box systemctl is-enabled -q shoal
check "the unit is active" wait_for 100 systemctl is-active -q shoal
check "/health answers on 127.0.0.1:9969" wait_for 100 curl -sf --max-time 1 http://127.0.0.1:9969/health
pid=$(in_box systemctl show -p MainPID --value shoal)
uid=$(in_box awk '/^Uid:/ { print $2 }' "/proc/$pid/status")
check "runs as a dynamic user, not root (uid ${uid:-?})" test -n "$uid" -a "${uid:-0}" != 0
check "has a memory budget (journal: $(in_box journalctl -u shoal -o cat --no-pager | grep -o 'max memory [^(]*' | tail -1))" \
    bash -c '! podman exec "$1" journalctl -u shoal -o cat --no-pager | grep "config:" | tail -1 | grep -q "max memory no limit"' _ "$box"

hash=0123456789abcdef0123456789abcdef01234567
# The control thread lowers its own priority under the unit's syscall filter:
# its nice value is 10, the workers' 0, and the journal has no complaint.
nice_of() { # thread name -> its nice value (field 19 of /proc/PID/task/TID/stat)
    in_box sh -c 'pid=$(systemctl show -p MainPID --value shoal); for t in /proc/$pid/task/*; do
        [ "$(cat $t/comm)" = "$1" ] && awk "{print \$19}" $t/stat; done' _ "$1"
}
check "the control thread runs at nice 10, a worker at 0 ($(nice_of shoal-control) / $(nice_of shoal-worker-0))" \
    test "$(nice_of shoal-control)" = 10 -a "$(nice_of shoal-worker-0)" = 0
check "no priority complaint in the journal" \
    bash -c '! podman exec "$1" journalctl -u shoal -o cat --no-pager | grep -q "cannot lower the control thread"' _ "$box"
check "answers an announce on udp://127.0.0.1:6969" \
    in_box shoal announce udp://127.0.0.1:6969/announce --info-hash "$hash" --left 0 --timeout 1 --tries 3
seeders() {
    in_box shoal scrape udp://127.0.0.1:6969 "$hash" --json --timeout 1 --tries 3 |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["files"][0]["seeders"])' 2>/dev/null
}
check "the seeder is in a scrape" test "$(seeders)" = 1

# ---- restart: the state file -----------------------------------------------------
check "systemctl restart" in_box systemctl restart shoal
check "the unit is active again" wait_for 100 curl -sf --max-time 1 http://127.0.0.1:9969/health
check "state file /var/lib/private/shoal/state, owner only ($(in_box stat -c '%a' /var/lib/private/shoal/state 2>/dev/null))" \
    test "$(in_box stat -c '%a' /var/lib/private/shoal/state 2>/dev/null)" = 600
check "warm restart: the seeder is still there" test "$(seeders)" = 1

# ---- the API token as a credential, as the README's VPS guide gives it ---------------
token=$(head -c 24 /dev/urandom | base64)
podman exec -i "$box" bash -c 'install -d -m 0700 /etc/shoal && umask 077 && cat >/etc/shoal/api-token' <<<"$token"
printf '%s\n' '[Service]' 'LoadCredential=api-token:/etc/shoal/api-token' \
    'Environment=SHOAL_API_TOKEN_FILE=%d/api-token' |
    podman exec -i "$box" bash -c 'mkdir -p /etc/systemd/system/shoal.service.d && cat >/etc/systemd/system/shoal.service.d/override.conf'
in_box bash -c 'echo SHOAL_API=127.0.0.1:6970 >>/etc/default/shoal'
check "daemon-reload and restart with SHOAL_API and the credential" \
    bash -c 'podman exec "$1" systemctl daemon-reload && podman exec "$1" systemctl restart shoal' _ "$box"
api_status() { # the HTTP status of /api/v1/stats, with the given header
    in_box curl -s -o /dev/null -w '%{http_code}' --max-time 2 -H "$1" http://127.0.0.1:6970/api/v1/stats
}
check "the API answers" wait_for 100 curl -s -o /dev/null --max-time 1 http://127.0.0.1:6970/api/v1/stats
status=$(api_status "Authorization: Bearer $token")
check "the API accepts the credential's token (HTTP $status)" test "$status" = 200
status=$(api_status "Authorization: Bearer not-$token")
check "the API refuses another token (HTTP $status)" test "$status" = 401
check "the token is not in the journal" \
    bash -c '! podman exec "$1" journalctl --no-pager -o cat | grep -qF -- "$2"' _ "$box" "$token"

# ---- stop ------------------------------------------------------------------------------
t0=$(date +%s.%N)
check "systemctl stop" in_box systemctl stop shoal
took=$(python3 -c "import time; print(round(time.time() - $t0, 2))")
status=$(in_box systemctl show -p ExecMainStatus --value shoal)
state=$(in_box systemctl show -p LoadState,ActiveState --value shoal | paste -sd ' ')
check "stopped cleanly in ${took} s: exit status ${status:-?}, ${state:-?}" test "$status" = 0 -a "$state" = "loaded inactive"

# ---- remove ----------------------------------------------------------------------------
check "systemctl start again, then dpkg -r exits 0" \
    bash -c 'podman exec "$1" systemctl start shoal && podman exec "$1" dpkg -r shoal >/dev/null' _ "$box"
check "dpkg -r stopped the unit" bash -c '! podman exec "$1" systemctl is-active -q shoal' _ "$box"
check "dpkg -r removed the binary and the unit" \
    bash -c '! podman exec "$1" test -e /usr/bin/shoal -o -e /lib/systemd/system/shoal.service' _ "$box"
check "dpkg -P exits 0" in_box dpkg -P shoal
check "dpkg -P removed the state and the settings" \
    bash -c '! podman exec "$1" test -e /var/lib/private/shoal -o -e /var/lib/shoal -o -e /etc/default/shoal' _ "$box"

if [ "$failed" -ne 0 ]; then
    echo "---- the unit's journal"
    in_box journalctl -u shoal -o short-precise --no-pager 2>/dev/null | tail -30
    [ -s "$work/run.err" ] && cat "$work/run.err"
fi
finish
