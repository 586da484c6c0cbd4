# Shared by the shell tests (sourced, not run): one line per check, then
# "N passed, M failed", and the few facts several of them need.
#
#   . "$(dirname "$0")/lib.sh"
#   check "what a user cares about" command args...
#   finish    # prints the counts; exits non-zero if any check failed

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
# check LABEL COMMAND...: passes when COMMAND exits 0.
check() {
    local label=$1
    shift
    if "$@"; then pass "$label"; else fail "$label"; fi
}
finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}
# Exit through finish, with one failure, unless every tool named is on PATH.
need() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || {
            fail "needs $tool"
            finish
        }
    done
}

# Cargo's target directory (CARGO_TARGET_DIR and cargo's config honoured).
target_dir() {
    cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
}

# The Debian package to test: the script's `--deb PATH` ($1 $2), else the
# newest one contrib/debian/build.sh made. Sets deb; exits through finish if
# there is none. Needs root too: both package tests install it.
package_under_test() {
    deb=""
    if [ "${1:-}" = --deb ]; then deb=${2:-}; fi
    [ -n "$deb" ] || deb=$(ls -t "$(target_dir)"/debian/shoal_*.deb 2>/dev/null | head -1)
    [ -n "$deb" ] && [ -f "$deb" ] || {
        fail "no package (build it with contrib/debian/build.sh, or pass --deb PATH)"
        finish
    }
    [ "$(id -u)" -eq 0 ] || {
        fail "needs root: it installs the package"
        finish
    }
}

# podman as this host allows it, for the rest of the script: a containers.conf
# under target/container/ (exported as CONTAINERS_CONF) with
# - ulimits this shell may set: podman's defaults (nofile 1048576) are above
#   the host's hard limit, and runc then refuses to start a container (nproc
#   at this shell's own hard limit is refused too; 4096 is plenty here);
# - runc, not crun: Debian 12's crun 1.8 refuses a host whose cgroups are in
#   hybrid mode.
use_podman_conf() {
    local dir
    dir=$(target_dir)/container
    mkdir -p "$dir"
    export CONTAINERS_CONF=$dir/containers.conf
    cat >"$CONTAINERS_CONF" <<EOF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=4096:4096"]

[engine]
runtime = "runc"
EOF
}
