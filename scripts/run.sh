#!/usr/bin/env bash
# Builds and runs the `onair` CLI: ./scripts/run.sh [onair args]  (default: `stream`,
# which publishes the test pattern to the built-in local receiver).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh --build
# install-deps may have just installed Rust with rustup (~/.cargo/bin).
if ! command -v cargo >/dev/null 2>&1 && [[ -f "$HOME/.cargo/env" ]]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
cargo build --release -p onair-cli >&2
if (($# == 0)); then
    set -- stream
fi
exec target/release/onair "$@"
