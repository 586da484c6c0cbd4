#!/usr/bin/env bash
# The whole test suite from a fresh machine: the README's test command, and the
# one .ci/run starts with.
#
#   tests/run.sh                  # installs what is missing, then cargo test --no-fail-fast
#   tests/run.sh --test cluster   # arguments go to cargo test
#
# Beyond the Rust toolchain the tests need one program: redis-server
# (tests/cluster.rs starts its own on free loopback ports, persistence off;
# SHOAL_TEST_REDIS_SERVER=valkey-server runs them on Valkey instead). When it
# is missing it is installed with apt-get, as root or through sudo, after
# saying so; SHOAL_TEST_NO_INSTALL=1 never installs. When it cannot be had,
# the tests run anyway and the cluster tests fail, naming what is missing.
#
# `--no-fail-fast`: a test binary that fails never keeps the others (or the
# doctests) from running. The exit status is cargo's: non-zero if any failed.

set -uo pipefail
cd "$(dirname "$0")/.."

say() { echo "tests/run.sh: $*" >&2; }

# Run "$@" as root: directly, or through sudo (without a terminal to ask for a
# password on, sudo -n fails instead of hanging).
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null; then
        if [ -t 0 ]; then sudo "$@"; else sudo -n "$@"; fi
    else
        say "not root and no sudo: cannot run $*"
        return 1
    fi
}

# Debian packages to install, one per missing program.
missing=()
server=${SHOAL_TEST_REDIS_SERVER:-redis-server}
if ! command -v "$server" >/dev/null; then
    if [ "$server" = redis-server ]; then
        missing+=(redis-server)
    else
        say "SHOAL_TEST_REDIS_SERVER=$server is not on PATH: the cluster tests will fail"
    fi
fi

if [ "${#missing[@]}" -gt 0 ]; then
    if [ "${SHOAL_TEST_NO_INSTALL:-0}" = 1 ]; then
        say "missing ${missing[*]} (SHOAL_TEST_NO_INSTALL=1: not installing); the cluster tests will fail"
    elif ! command -v apt-get >/dev/null; then
        say "missing ${missing[*]}: install it with your package manager; the cluster tests will fail without it"
    else
        say "installing ${missing[*]} for tests/cluster.rs: apt-get update && apt-get install ${missing[*]}" \
            "$([ "$(id -u)" -eq 0 ] || echo "(through sudo)")"
        if as_root apt-get update -qq &&
            as_root env DEBIAN_FRONTEND=noninteractive \
                apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
            # The package may start its own service (port 6379); the tests do not use it.
            say "installed ${missing[*]}"
        else
            say "could not install ${missing[*]}; running the tests anyway (the cluster tests will fail)"
        fi
    fi
fi

say "cargo test --no-fail-fast $*"
exec cargo test --no-fail-fast "$@"
