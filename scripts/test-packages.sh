#!/usr/bin/env bash
# Builds the Debian and npm packages and proves they work where a user puts
# them, outside the repository:
# - the .deb is installed with apt (root only: under CI=true a non-root run
#   fails), then `onair --version`, a 3 s `onair stream` to the built-in
#   receiver, `man onair` and the bash completion of `onair <TAB>`;
# - the npm tarballs are installed into a fresh project with no Rust on PATH,
#   and a 10-line ESM script and a CommonJS one each stream 3 s to nginx-rtmp
#   (the test kit's), judged by FFmpeg; `tsc` resolves the package's types.
# Usage: scripts/test-packages.sh [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
step() { echo "==> packages: $*" >&2; }
fail() { echo "==> packages: FAILED: $*" >&2; exit 1; }

TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
PEER="$ROOT/target/$TRIPLE/release/testkit-peer"
BUILD_ARG="${1:-}"
DEB="$(./scripts/package-deb.sh "$BUILD_ARG" | tail -1)"
mapfile -t TGZ < <(./scripts/package-npm.sh "$BUILD_ARG")
[[ -x "$PEER" ]] || fail "$PEER missing (cargo build --release --workspace --bins)"

WORK="$(mktemp -d /tmp/onair-packages-XXXXXX)"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

# --- Debian package ---------------------------------------------------------
if [[ "$(id -u)" != 0 ]]; then
    if [[ -n "${CI:-}" && "${CI}" != false && "${CI}" != 0 ]]; then
        fail "installing the .deb needs root"
    fi
    echo "SKIP packages: installing $DEB needs root" >&2
else
    step "apt-get install $DEB"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$ROOT/$DEB" >/dev/null
    cd "$WORK"
    onair_bin="$(command -v onair)"
    [[ "$onair_bin" == /usr/bin/onair ]] || fail "onair resolves to $onair_bin, not the package's"
    /usr/bin/onair --version | tee "$WORK/version.txt" >&2
    grep -q '^commit: [0-9a-f]' "$WORK/version.txt" || fail "--version names no commit"
    grep -q 'video encoders: openh264' "$WORK/version.txt" || fail "--version names no encoders"
    step "onair stream (3 s, built-in receiver) from $WORK"
    timeout 60 /usr/bin/onair stream --duration 3 --size 640x360 2>"$WORK/stream.err" ||
        fail "onair stream: $(cat "$WORK/stream.err")"
    rec="$(ls "$WORK"/onair-recordings/*.flv | head -1)"
    judged="$("$PEER" judge "$rec")"
    echo "$judged" >&2
    node -e 'const j = JSON.parse(process.argv[1]); if (!(j.frames.h264 >= 60 && j.frames.aac >= 100 && j.decode_errors === "")) process.exit(1)' "$judged" ||
        fail "the recording of the installed onair: $judged"
    step "man onair, onair <TAB>"
    man -w onair >/dev/null || fail "man onair: no page"
    man onair 2>/dev/null | grep -q 'onair' || fail "man onair renders nothing"
    words="$(bash -c '. /usr/share/bash-completion/completions/onair
        COMP_WORDS=(onair ""); COMP_CWORD=1; COMP_LINE="onair "; COMP_POINT=6
        _onair onair "" onair; echo "${COMPREPLY[*]}"')"
    for w in stream record devices report; do
        [[ " $words " == *" $w "* ]] || fail "onair <TAB> offers '$words', not $w"
    done
    cd "$ROOT"
fi

# --- npm packages -----------------------------------------------------------
step "npm install ${TGZ[*]} into a fresh project, no Rust on PATH"
APP="$WORK/app"
mkdir -p "$APP"
NODE_PATH_DIRS="$(dirname "$(command -v node)"):/usr/bin:/bin"
(cd "$APP" && PATH="$NODE_PATH_DIRS" npm init -y >/dev/null &&
    PATH="$NODE_PATH_DIRS" npm install --no-audit --no-fund --offline "${TGZ[@]}" >/dev/null) ||
    fail "npm install of the tarballs"
if PATH="$NODE_PATH_DIRS" command -v cargo >/dev/null || PATH="$NODE_PATH_DIRS" command -v rustc >/dev/null; then
    fail "Rust is still on the PATH the app runs with"
fi
[[ -f "$APP/node_modules/@onair/node-linux-x64-gnu/onair.linux-x64-gnu.node" ]] ||
    fail "the platform package was not installed"

# nginx-rtmp from the test kit; it lives as long as its stdin (a fifo) is open.
mkfifo "$WORK/nginx.in"
"$PEER" nginx <"$WORK/nginx.in" >"$WORK/nginx.out" &
PIDS+=($!)
exec 7>"$WORK/nginx.in"
for _ in $(seq 100); do [[ -s "$WORK/nginx.out" ]] && break; sleep 0.1; done
PORT="$(node -p 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).port' "$WORK/nginx.out")"
RECS="$(node -p 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).record_dir' "$WORK/nginx.out")"

cat >"$APP/esm.mjs" <<'JS'
import { VideoAudioStreamer } from '@onair/node'
const url = `rtmp://127.0.0.1:${process.argv[2]}/live/esm`
const s = new VideoAudioStreamer({ url, size: '640x360', fps: 30 })
s.on('error', (e) => { console.error(e); process.exit(1) })
await s.start()
await new Promise((r) => setTimeout(r, 3000))
const stats = await s.stop()
console.log(JSON.stringify({ state: stats.state, video: stats.video_packets_sent }))
if (stats.video_packets_sent < 60) process.exit(1)
JS
cat >"$APP/cjs.cjs" <<'JS'
const { VideoAudioStreamer } = require('@onair/node')
const url = `rtmp://127.0.0.1:${process.argv[2]}/live/cjs`
const s = new VideoAudioStreamer({ url, size: '640x360', fps: 30 })
s.on('error', (e) => { console.error(e); process.exit(1) })
s.start().then(() => new Promise((r) => setTimeout(r, 3000))).then(() => s.stop()).then((stats) => {
  console.log(JSON.stringify({ state: stats.state, video: stats.video_packets_sent }))
  if (stats.video_packets_sent < 60) process.exit(1)
})
JS
cat >"$APP/types.mts" <<'TS'
import { VideoAudioStreamer, type StreamerOptions } from '@onair/node'
const options: StreamerOptions = { url: 'rtmp://127.0.0.1/live/x', fps: 30 }
const s: VideoAudioStreamer = new VideoAudioStreamer(options)
void s
TS
for script in esm.mjs cjs.cjs; do
    step "node $script (3 s to nginx-rtmp)"
    (cd "$APP" && PATH="$NODE_PATH_DIRS" timeout 60 node "$script" "$PORT") || fail "node $script"
done
step "tsc resolves @onair/node's types"
"$ROOT/bindings/node/node_modules/.bin/tsc" --noEmit --strict --module nodenext \
    --moduleResolution nodenext --target es2022 --types node \
    --typeRoots "$ROOT/bindings/node/node_modules/@types" "$APP/types.mts" || fail "tsc"
for key in esm cjs; do
    for _ in $(seq 50); do compgen -G "$RECS/$key*.flv" >/dev/null && break; sleep 0.1; done
    rec="$(ls "$RECS"/$key*.flv | head -1)"
    judged="$("$PEER" judge "$rec")"
    echo "$key: $judged" >&2
    node -e 'const j = JSON.parse(process.argv[1]); if (!(j.frames.h264 >= 50 && j.frames.aac >= 80 && j.decode_errors === "")) process.exit(1)' "$judged" ||
        fail "the $key recording: $judged"
done
exec 7>&- # the test kit's nginx stops (and its recordings go) with its stdin
step "all package checks passed"
