#!/usr/bin/env bash
# The project's one test command: ./scripts/test.sh [args for every test binary,
# e.g. a test name filter]
# Installs the system deps, then format check, one release build of every test
# binary and the Node addon, the GPL build, clippy of both builds (warnings are
# errors), and the whole test suite in release mode (the encoders must run in
# real time for the integration tests against real servers): the GPL build's
# tests and the unit tests each alone, then the rest in four lanes at once.
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

# A fresh root shell may not have the sbin dirs on PATH.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

step() { echo "==> [${SECONDS} s] $*" >&2; }

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

step "build: the Node addon, every binary and test binary of the default build"
# The default build is compiled before any real-time test starts, at full
# speed. Every cargo command says --workspace: with `-p PKG` cargo unifies
# features over fewer packages and builds onair again.
# The addon first: napi's build changes onair-node's build environment, so the
# test build after it leaves every test binary fresh. It builds the whole
# workspace, every target, in the same cargo run: built for the addon alone,
# onair and about 50 dependencies were compiled again with the workspace's
# features (measured on a fresh clone: 118 s for `--bins` after the addon, and
# the test build compiled some of them a third time with the dev-dependencies').
./scripts/build-node.sh --workspace --all-targets
# That run built every binary too (the Node tests drive the test kit's
# `testkit-peer`; every CLI test and the .deb take `onair`), with the features
# the tests' dependencies add: a separate `cargo build --bins` compiled the
# CLI and a few dependencies again without them (21 s of a fresh run).
TESTS_DIR="target/tests"
mkdir -p "$TESTS_DIR"
# One line per test binary (scripts/test_binaries.py): the lanes run them
# themselves, each with the `onair` build it tests (ONAIR_EXE), since the
# GPL build below links its own `onair` at the path cargo gives both.
cargo test --workspace --release --no-run --message-format=json-render-diagnostics |
    python3 scripts/test_binaries.py >"$TESTS_DIR/default.tsv"
# Doc tests compile as they run: here, before the real-time tests.
cargo test --workspace --release --doc
# The default build's `onair`, kept where the GPL build below cannot link
# over it: every CLI test runs ONAIR_EXE (the test kit's `onair_exe`), the .deb
# packs it (scripts/package-deb.sh).
cp "target/$CARGO_BUILD_TARGET/release/onair" "$TESTS_DIR/onair"
DEFAULT_ONAIR="$ROOT/$TESTS_DIR/onair"

# Then, still before the tests: the GPL build, and clippy of both builds.
# (Tried beside the lanes in the SCHED_IDLE class, to use the core the lanes
# leave idle: a fault test's engine ticks were then late, audio p99 37 ms and
# max 186 ms, where they stay under 10 ms with nothing compiling beside them.)
# The GPL build (README, "Licences"): libavcodec's encoders, FFmpeg's AAC and
# the file source, no fdk-aac. --no-default-features, so no member brings
# fdk-aac back through feature unification (onair's lib.rs refuses both at
# once). It shares target/ with the default build: only onair, what depends on
# it and FFmpeg's bindings compile. Its test binaries get their own file names
# (the features are in cargo's hash); its `onair` is copied to target/gpl/,
# and its test binaries run with ONAIR_EXE naming it.
GPL=(--no-default-features --features onair-cli/gpl)
GPL_DIR="target/gpl"
GPL_ONAIR="$ROOT/$GPL_DIR/onair"
# The GPL build's own tests are integration tests (its encoders, AAC and file
# source: nothing private), so the GPL build compiles onair's library once and
# not again with its unit tests, which the default build runs.
GPL_TESTS=(--test encoders --test libav --test aac --test encoders_cli --test file_source)
rm -rf "$GPL_DIR"
mkdir -p "$GPL_DIR"
gpl_build_and_clippy() {
    local started=$SECONDS
    cargo test --release -p onair -p onair-cli "${GPL[@]}" "${GPL_TESTS[@]}" --no-run \
        --message-format=json-render-diagnostics |
        python3 scripts/test_binaries.py >"$GPL_DIR/tests.tsv"
    cp "target/$CARGO_BUILD_TARGET/release/onair" "$GPL_ONAIR"
    "$GPL_ONAIR" --version | grep -q "build: GPL" || {
        echo "==> $GPL_ONAIR is not the GPL build" >&2
        return 1
    }
    echo "==> the GPL build took $((SECONDS - started)) s" >&2
    cargo clippy --workspace --all-targets --release "${GPL[@]}" -- -D warnings
    cargo clippy --workspace --all-targets --release -- -D warnings
    echo "==> the GPL build and clippy took $((SECONDS - started)) s" >&2
}
step "the GPL build, clippy of both builds"
gpl_build_and_clippy

# The unit tests run first, alone (both cores: ~50 s): they are CPU-bound at
# times (fuzzing, encoders at full speed), and one at a time beside the lanes
# they made a fault test's encoder skip 6 frames in 600 (its bound is 1 %).
# Then the real-time tests run in four lanes at once, each one test binary
# after the other (a lane's log is printed when all are done). Three lanes
# kept a core idle (257 CPU s in 268 s of wall time, measured with
# /usr/bin/time over them: a pipeline, nginx and FFmpeg included, uses about
# 0.4 of a core); four used 60 % of the two cores and took 209 s. Five took
# 161-196 s, but in three fresh-clone runs out of four a timing-bound test
# failed there (an RTMPS publish skipped a frame, an adaptive test saw 3.5 s
# without an ACK, a sound-server restart came back late): four it is.
# Lanes, by the durations measured with four:
# - A: the fault tests on a kernel-made fault or a throttle (~120 s), golden
#   rules, hostile server, AAC (~180 s);
# - B: the adaptive bitrate tests (~170 s), then the packages' (~210 s);
# - C: the CLI's integration tests but the capture ones, the test kit's
#   (~200 s);
# - D: the other fault tests (~75 s), the CLI's capture tests, then the Node
#   addon's (~195 s).
# Together they take every test binary (the fault tests split by test name:
# A names its tests, D runs the rest, new ones included).
# ONAIR_TEST_LANES=1 runs the lanes one after the other.

# Runs the test binaries of a list (scripts/test_binaries.py's lines) whose
# package directory, relative to the root, matches the regex $2, whose kind
# matches the regex $3 and whose name matches $4 but not $5, each from its
# package's directory as cargo would, with ONAIR_EXE=$6; the rest of the args
# go to every binary.
run_tests() {
    local list=$1 dirs=$2 kinds=$3 names=$4 except=$5 exe=$6 kind dir bin name ran=0
    shift 6
    while IFS=$'\t' read -r kind dir bin name; do
        [[ "${dir#"$ROOT"/}" =~ ^($dirs)$ && "$kind" =~ ^($kinds)$ ]] || continue
        [[ "$name" =~ ^($names)$ && ! "$name" =~ ^($except)$ ]] || continue
        echo "==> [${SECONDS} s] running $name ($kind, ${dir#"$ROOT"/})" >&2
        (cd "$dir" && ONAIR_EXE="$exe" "$bin" "$@") || return 1
        ran=$((ran + 1))
    done <"$list"
    if ((ran == 0)); then
        echo "==> no test binary of kind $kinds named $names in $dirs in $list" >&2
        return 1
    fi
}

DEFAULT_LIST="$TESTS_DIR/default.tsv"
NONE='$^'
# The fault tests, split by test name between lanes A and D: the named ones
# in A, the rest (and any new one) in D. The adaptive tests are lane B's.
FAULTS=faults
FAULTS_NAMED=(kernel_ throttled_link dead_link_is_detected)
ADAPTIVE=adaptive
# The CLI's capture tests (lane D); the rest are C's.
CAPTURE=capture_e2e
# The test kit's own tests (real servers, ~10 s) run in lane C, not alone.
TESTKIT='onair_testkit|testkit-peer'

# Runs crates/onair's test binary $2 with only the tests whose names contain
# one of the array named $3 ($1 = named) or with all the others ($1 = rest);
# the rest of the args go to the binary.
split_tests() {
    local which=$1 binary=$2 name filters=()
    local -n names=$3
    shift 3
    for name in "${names[@]}"; do
        if [[ $which == named ]]; then
            filters+=("$name")
        else
            filters+=(--skip "$name")
        fi
    done
    run_tests "$DEFAULT_LIST" crates/onair test "$binary" "$NONE" "$DEFAULT_ONAIR" "$@" "${filters[@]}"
}
unit_tests() {
    run_tests "$DEFAULT_LIST" '.*' 'lib|bin' '.*' "$TESTKIT" "$DEFAULT_ONAIR" "$@"
}
lane_a() {
    split_tests named "$FAULTS" FAULTS_NAMED "$@" &&
        run_tests "$DEFAULT_LIST" crates/onair test '.*' "$ADAPTIVE|$FAULTS" "$DEFAULT_ONAIR" "$@"
}
lane_b() {
    run_tests "$DEFAULT_LIST" crates/onair test "$ADAPTIVE" "$NONE" "$DEFAULT_ONAIR" "$@" &&
        ONAIR_EXE="$DEFAULT_ONAIR" ./scripts/test-packages.sh --no-build
}
lane_c() {
    run_tests "$DEFAULT_LIST" 'crates/onair-.*|bindings/.*' test '.*' "$CAPTURE" "$DEFAULT_ONAIR" "$@" &&
        run_tests "$DEFAULT_LIST" '.*' 'lib|bin' "$TESTKIT" "$NONE" "$DEFAULT_ONAIR" "$@"
}
lane_d() {
    split_tests rest "$FAULTS" FAULTS_NAMED "$@" &&
        run_tests "$DEFAULT_LIST" crates/onair-cli test "$CAPTURE" "$NONE" "$DEFAULT_ONAIR" "$@" &&
        ONAIR_EXE="$DEFAULT_ONAIR" ./scripts/test-node.sh --no-build
}
LANES=(a b c d)

# The GPL build's tests, alone: x265 and SVT-AV1 take both cores, and beside
# the lanes they starved the lanes' encoders (7 frames skipped in the RTMPS
# publish).
step "the GPL build's tests"
run_tests "$GPL_DIR/tests.tsv" '.*' test '.*' "$NONE" "$GPL_ONAIR" "$@"

step "the unit tests, alone"
unit_tests "$@"

mkdir -p target
if [[ "${ONAIR_TEST_LANES:-${#LANES[@]}}" == 1 ]]; then
    for lane in "${LANES[@]}"; do
        step "tests, lane ${lane^^}"
        "lane_$lane" "$@"
    done
    step "all checks passed"
    exit 0
fi

step "tests: lanes ${LANES[*]^^} at once (A: kernel and throttle faults, golden rules; B: adaptive, packages; C: CLI, test kit; D: other faults, CLI capture, Node), each logged to target/lane-X.log"
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
    ((status == 0)) || failed+=("lane ${lane^^} (exit $status)")
done
if ((${#failed[@]} > 0)); then
    echo "==> FAILED: ${failed[*]}" >&2
    exit 1
fi

step "all checks passed"
