#!/usr/bin/env bash
# Builds the Node.js addon (unless --no-build) and runs its tests (node --test) against a real
# nginx-rtmp started by the tests; FFmpeg checks the recordings. Both come from the Rust test
# kit (crates/onair-testkit, its `testkit-peer` binary), like every other test's.
# Needs nginx + libnginx-mod-rtmp and ffmpeg (scripts/install-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

# --no-build: scripts/test.sh built the addon already, before the tests started.
if [[ "${1:-}" != --no-build ]]; then
    ./scripts/build-node.sh
    # The tests' peers and judges: the test kit's `testkit-peer` binary.
    cargo build --workspace --release --bins
fi
cd bindings/node
# The generated typings must match what is committed (they are the API).
if ! git diff --quiet -- index.d.ts 2>/dev/null; then
    echo "==> warning: index.d.ts changed after the build; commit the regenerated file" >&2
fi
npm test
