#!/usr/bin/env bash
# The project's one test command: ./scripts/test.sh [extra cargo test args]
# Installs the system deps, then format check, clippy (warnings are errors) and the
# whole test suite in release mode (the encoders must run in real time for the
# integration tests against real servers). Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

# A fresh root shell may not have the sbin dirs on PATH.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

step() { echo "==> $*" >&2; }

# Under CI (CI=true) a test that cannot run (a missing tool, no network namespace)
# fails instead of skipping, and the kernel fault tests need root: say so up front.
if [[ -n "${CI:-}" && "${CI}" != "false" && "${CI}" != "0" && "$(id -u)" != 0 ]]; then
    echo "==> CI is set but this is not root: the network-namespace fault tests need root" >&2
    exit 1
fi

step "install deps"
./scripts/install-deps.sh
# install-deps may have just installed Rust with rustup (~/.cargo/bin).
if ! command -v cargo >/dev/null 2>&1 && [[ -f "$HOME/.cargo/env" ]]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
# --release: the build scripts (openh264 and fdk-aac, compiled from C and asm)
# then run once and are shared with the release test build below.
cargo clippy --workspace --all-targets --release -- -D warnings

step "cargo test --release"
cargo test --workspace --release "$@"

step "node addon (build + node --test)"
./scripts/test-node.sh

step "all checks passed"
