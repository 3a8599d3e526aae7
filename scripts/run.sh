#!/usr/bin/env bash
# Builds and runs the `onair` CLI: ./scripts/run.sh [onair args]  (default: `stream`,
# which publishes the test pattern to the built-in local receiver).
set -euo pipefail
# Run from the caller's directory (the local receiver records into ./onair-recordings).
root="$(cd "$(dirname "$0")/.." && pwd)"

"$root/scripts/install-deps.sh" --build
# install-deps may have just installed Rust with rustup (~/.cargo/bin).
if ! command -v cargo >/dev/null 2>&1 && [[ -f "$HOME/.cargo/env" ]]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
cargo build --release --manifest-path "$root/Cargo.toml" -p onair-cli >&2
if (($# == 0)); then
    set -- stream
fi
exec "$root/target/release/onair" "$@"
