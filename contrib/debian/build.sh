#!/usr/bin/env bash
# The Debian package, target/debian/shoal_<version>-1_<arch>.deb:
#
#   contrib/debian/build.sh              # cargo build --profile dist, then package
#   contrib/debian/build.sh --no-build   # package the dist binary already built
#
# Beside the binary, the package holds what this script makes from it under
# target/dist/deb/ (Cargo.toml's [package.metadata.deb] names them): the man
# page (`shoal man`) and bash, zsh and fish completions (`shoal completions
# SHELL`); and from contrib/ the unit and /etc/default/shoal. cargo-deb strips
# the binary and writes the maintainer scripts that enable and start the unit
# (and stop it on removal).
# Needs cargo-deb: `cargo install cargo-deb`. Prints the package's path last.
set -euo pipefail
cd "$(dirname "$0")/../.."

command -v cargo-deb >/dev/null || {
    echo "contrib/debian/build.sh: needs cargo-deb (cargo install cargo-deb)" >&2
    exit 1
}
target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
[ "${1:-}" = --no-build ] || cargo build --profile dist --locked --bin shoal
bin=$target_dir/dist/shoal
[ -x "$bin" ] || { echo "contrib/debian/build.sh: no $bin (build it, or drop --no-build)" >&2; exit 1; }

gen=$target_dir/dist/deb
rm -rf "$gen"
mkdir -p "$gen/completions"
"$bin" man | gzip -9n >"$gen/shoal.1.gz"
"$bin" completions bash >"$gen/completions/shoal"
"$bin" completions zsh >"$gen/completions/_shoal"
"$bin" completions fish >"$gen/completions/shoal.fish"

cargo deb --profile dist --no-build
