#!/usr/bin/env bash
# The status page in headless Chromium (tests/e2e/status_page.js), with
# playwright-core from npm installed under target/e2e/node (not in git).
# Needs /usr/bin/chromium (Debian's `chromium`, installed by .ci/run).
#
# Usage: tests/e2e/status_page.sh [--shoal PATH]   (default target/release/shoal)
set -euo pipefail
cd "$(dirname "$0")/../.."
shoal=target/release/shoal
if [[ "${1:-}" == "--shoal" ]]; then shoal=$2; fi
version=1.65.1
dir=target/e2e/node
if [[ "$(node -p "require('./$dir/node_modules/playwright-core/package.json').version" 2>/dev/null)" != "$version" ]]; then
  mkdir -p "$dir"
  (cd "$dir" && npm install --no-audit --no-fund --no-save --silent "playwright-core@$version")
fi
timeout 300 node tests/e2e/status_page.js "$shoal"
