#!/usr/bin/env bash
# Builds the Node.js addon (bindings/node): installs the pinned npm deps
# (@napi-rs/cli) from package-lock.json, then `napi build --release`, which
# compiles the onair-node crate and regenerates index.js and index.d.ts.
# Usage: scripts/build-node.sh [cargo args], e.g. `--workspace --all-targets`
# (scripts/test.sh: the whole workspace in the same cargo run, so that onair
# and its dependencies compile once, with the features every test build uses).
set -euo pipefail
cd "$(dirname "$0")/../bindings/node"

if ! command -v npm >/dev/null 2>&1; then
    echo "==> npm not found: installing nodejs and npm from apt" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi

npm ci --no-audit --no-fund
if (($# > 0)); then
    npm run build -- -- "$@"
else
    npm run build
fi
