#!/usr/bin/env bash
# Installs the system tools onair builds and tests with (Debian/Ubuntu, apt).
#
#   scripts/install-deps.sh           everything: build tools + test peers and judges
#   scripts/install-deps.sh --build   build tools only (what scripts/run.sh needs)
#
# Idempotent and fast when everything is present: apt-get update runs once, and only
# when a package is missing. The system nginx service is never left running: the test
# harness starts its own private nginx instances.
set -euo pipefail

BUILD_PKGS=(build-essential pkg-config nasm curl ca-certificates)
TEST_PKGS=(nginx libnginx-mod-rtmp ffmpeg iproute2 iptables procps)

# Build and test packages that parts of the project add (one name per line),
# e.g. scripts/apt-packages-capture.txt for X11 / PulseAudio capture.
here="$(cd "$(dirname "$0")" && pwd)"
for list in "$here"/apt-packages-*.txt; do
    [[ -f "$list" ]] || continue
    while read -r p; do
        [[ -n "$p" && "$p" != \#* ]] && BUILD_PKGS+=("$p")
    done <"$list"
done
# Node.js for the addon: scripts/build-node.sh installs it only when npm is
# missing (the machine may carry a non-Debian Node that apt's npm conflicts with).

pkgs=("${BUILD_PKGS[@]}")
if [[ "${1:-}" != "--build" ]]; then
    pkgs+=("${TEST_PKGS[@]}")
fi

log() { echo "install-deps: $*" >&2; }

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

missing=()
for p in "${pkgs[@]}"; do
    installed "$p" || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
    log "all present (${pkgs[*]})"
else
    log "missing: ${missing[*]}"
    SUDO=()
    if [[ $(id -u) -ne 0 ]]; then
        if command -v sudo >/dev/null 2>&1; then
            SUDO=(sudo)
        else
            log "ERROR: not root and no sudo; install by hand: apt-get install ${missing[*]}"
            if [[ -n "${CI:-}" ]]; then exit 1; fi
            exit 0
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        log "ERROR: no apt-get; install by hand: ${missing[*]}"
        exit 1
    fi
    # Keep apt from starting services (nginx) while installing: policy-rc.d exit 101.
    # Respect an existing policy-rc.d (container images ship one) and only remove ours.
    created_policy=""
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
        "${SUDO[@]}" chmod +x /usr/sbin/policy-rc.d
        created_policy=1
    fi
    cleanup() {
        if [[ -n "$created_policy" ]]; then "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d; fi
    }
    trap cleanup EXIT
    export DEBIAN_FRONTEND=noninteractive
    log "apt-get update"
    "${SUDO[@]}" apt-get update -qq
    log "installing: ${missing[*]}"
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    cleanup
    trap - EXIT
    # If the service started anyway (no policy-rc.d support), stop it: it would hold :80
    # and is never what the tests talk to.
    if [[ " ${missing[*]} " == *" nginx "* ]]; then
        "${SUDO[@]}" service nginx stop >/dev/null 2>&1 || true
    fi
fi

# Rust: Debian's rustc is too old (the workspace needs >= 1.80), so use rustup.
if ! command -v cargo >/dev/null 2>&1 && [[ -f "$HOME/.cargo/env" ]]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
if ! command -v cargo >/dev/null 2>&1; then
    log "installing Rust (rustup, stable, minimal + rustfmt + clippy) into ~/.cargo"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
        sh -s -- -y --profile minimal --component rustfmt,clippy >&2
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
elif command -v rustup >/dev/null 2>&1; then
    for c in rustfmt clippy; do
        if ! rustup component list --installed 2>/dev/null | grep -q "^$c"; then
            log "adding rustup component $c"
            rustup component add "$c" >&2
        fi
    done
fi

if ! command -v nasm >/dev/null 2>&1; then
    log "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    log "WARNING: nasm is still missing: openh264 will build WITHOUT its assembly"
    log "and a 720p30 encode will not keep real time. Install nasm."
    log "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
fi

# A static modern FFmpeg (PyPI imageio-ffmpeg) for the Enhanced RTMP tests.
if [[ "${1:-}" != "--build" ]]; then
    "$here/install-ffmpeg9.sh"
fi
