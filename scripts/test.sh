#!/usr/bin/env bash
# The project's one test command: ./scripts/test.sh [extra cargo test args]
# Installs the system deps, then format check, clippy (warnings are errors), one
# release build of every test binary and the Node addon, and the whole test suite
# in release mode (the encoders must run in real time for the integration tests
# against real servers), in two lanes. Exits non-zero on any failure.
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

# napi build (the Node addon) always passes `--target HOST` to cargo, and an
# explicit target gets its own directory (target/HOST/release): without this,
# the addon build compiled every dependency again (6.5 of the 13 minutes
# measured; 1.5 min with this). With the host named here too, every build
# shares one directory.
CARGO_BUILD_TARGET="$(rustc -vV | sed -n 's/^host: //p')"
export CARGO_BUILD_TARGET

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
# --release: the build scripts (openh264 and fdk-aac, compiled from C and asm)
# then run once and are shared with the release test build below.
cargo clippy --workspace --all-targets --release -- -D warnings

step "build: every test binary and the Node addon"
# Everything is compiled before the real-time tests start: a compiler running
# next to them (720p30 pipelines, lateness asserted) would starve them. Doc
# tests compile as they run, so they run here. Every later cargo command says
# --workspace: with `-p PKG` cargo unifies features over fewer packages and
# builds onair again, in the middle of the real-time tests.
# The addon first: napi's build changes onair-node's build environment, so the
# test build after it leaves every test binary fresh for the lanes.
./scripts/build-node.sh
# Every binary too: the Node tests drive the test kit's `testkit-peer`.
cargo build --workspace --release --bins
cargo test --workspace --release --no-run
cargo test --workspace --release --doc

# The GPL build (README, "Licences"): libavcodec's encoders, FFmpeg's AAC and
# the file source, no fdk-aac. --no-default-features, so no member brings
# fdk-aac back through feature unification (onair's lib.rs refuses both at
# once). It shares target/ with the default build: only onair and what
# depends on it compile again. Its own tests run here, before the lanes,
# because they use the GPL `onair` binary, which shares its path with the
# default one: the default binaries are linked again after them.
GPL=(--no-default-features --features onair-cli/gpl)
GPL_PKGS=(-p onair -p onair-cli)
GPL_TESTS=(--test encoders --test encoders_cli --test file_source)
step "GPL build: clippy, its test binaries, its tests"
gpl_started=$SECONDS
cargo clippy --workspace --all-targets --release "${GPL[@]}" -- -D warnings
cargo test --release "${GPL_PKGS[@]}" "${GPL[@]}" --lib "${GPL_TESTS[@]}" --no-run
echo "==> the GPL build took $((SECONDS - gpl_started)) s" >&2
gpl_tests_started=$SECONDS
cargo test --release "${GPL_PKGS[@]}" "${GPL[@]}" --lib "$@" -- \
    video::encoder audio::encoder pipeline::interleave video::file
cargo test --release "${GPL_PKGS[@]}" "${GPL[@]}" "${GPL_TESTS[@]}" "$@"
echo "==> the GPL build's tests took $((SECONDS - gpl_tests_started)) s" >&2
# The default build's binaries back in place: cargo links the fresh
# artifacts again, it compiles nothing.
cargo build --workspace --release --bins
cargo test --workspace --release --no-run

# The tests run in two lanes at once. Lane A: the library's integration tests
# (the fault tests, one pipeline at a time behind their serial() lock: the
# longest run). Lane B: everything else, one binary after the other: unit
# tests, the CLI's end-to-end tests, the test kit's, the Node addon's and the
# packages'. A pipeline uses about 0.4 of a core (measured: 6.4 s of CPU for a
# 15.5 s fault test, nginx and FFmpeg included), so one of each lane fits the
# 2 cores. A third lane (the CLI tests apart) was tried: 2.5 min shorter, but
# three pipelines and the unit tests' fuzzing at once made engine ticks late
# (audio p99 26-43 ms in the capture tests) and the adaptive test's healthy
# viewer lose frames. ONAIR_TEST_LANES=1 runs the lanes one after the other.

# `--test NAME` for each integration test file of the crates in "$@".
tests_of() {
    local f
    for crate in "$@"; do
        for f in "$crate"/tests/*.rs; do
            [[ -e "$f" ]] && printf -- '--test\n%s\n' "$(basename "$f" .rs)"
        done
    done
}
mapfile -t LANE_A_TESTS < <(tests_of crates/onair)
mapfile -t LANE_B_TESTS < <(tests_of crates/onair-cli crates/onair-testkit bindings/node)

# Without a --test, cargo would run every target: both lists must be non-empty.
if ((${#LANE_A_TESTS[@]} == 0 || ${#LANE_B_TESTS[@]} == 0)); then
    echo "==> no integration tests found for a lane (crates/onair/tests, crates/onair-cli/tests)" >&2
    exit 1
fi
lane_a() {
    cargo test --workspace --release "${LANE_A_TESTS[@]}" "$@"
}
lane_b() {
    cargo test --workspace --release --lib --bins "$@" &&
        cargo test --workspace --release "${LANE_B_TESTS[@]}" "$@" &&
        ./scripts/test-node.sh --no-build &&
        ./scripts/test-packages.sh --no-build
}

LANES=(a b)
if [[ "${ONAIR_TEST_LANES:-2}" == 1 ]]; then
    for lane in "${LANES[@]}"; do
        step "tests, lane ${lane^^}"
        "lane_$lane" "$@"
    done
else
    step "tests: lanes A (library integration: faults) and B (unit, CLI, test kit, Node, packages) at once, each logged to target/lane-X.log"
    mkdir -p target
    declare -A pids
    for lane in "${LANES[@]}"; do
        "lane_$lane" "$@" >"target/lane-$lane.log" 2>&1 &
        pids[$lane]=$!
    done
    failed=()
    for lane in "${LANES[@]}"; do
        status=0
        wait "${pids[$lane]}" || status=$?
        step "lane ${lane^^} output (exit $status)"
        cat "target/lane-$lane.log" >&2
        ((status == 0)) || failed+=("${lane^^} (exit $status)")
    done
    if ((${#failed[@]} > 0)); then
        echo "==> FAILED: lane ${failed[*]}" >&2
        exit 1
    fi
fi

step "all checks passed"
