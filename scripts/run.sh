#!/usr/bin/env bash
# Builds and runs the `onair` CLI: ./scripts/run.sh [onair args]  (default: `stream`,
# which publishes the test pattern to the built-in local receiver).
#
# Builds the GPL variant (x264 and the other libavcodec encoders, FFmpeg's AAC; the binary is
# GPL as a whole), the one users should get. ONAIR_BUILD=default builds the default variant
# instead (openh264 + fdk-aac, no GPL code). README, "Licences".
set -euo pipefail
# Run from the caller's directory (the local receiver records into ./onair-recordings).
root="$(cd "$(dirname "$0")/.." && pwd)"

"$root/scripts/install-deps.sh" --build
# install-deps may have just installed Rust with rustup (~/.cargo/bin).
if ! command -v cargo >/dev/null 2>&1 && [[ -f "$HOME/.cargo/env" ]]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
case "${ONAIR_BUILD:-gpl}" in
gpl) features=(--no-default-features --features gpl) ;;
default) features=() ;;
*)
    echo "run.sh: ONAIR_BUILD must be gpl or default, not '${ONAIR_BUILD}'" >&2
    exit 2
    ;;
esac
cargo build --release --manifest-path "$root/Cargo.toml" -p onair-cli "${features[@]}" >&2
if (($# == 0)); then
    set -- stream
fi
exec "$root/target/release/onair" "$@"
