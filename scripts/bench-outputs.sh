#!/usr/bin/env bash
# Extra CPU of an added output: `onair stream` to 1, 2 and 3 nginx-rtmp
# destinations, with and without --record, measured with /usr/bin/time.
#
# Why: the encoders run once whatever the number of outputs; an extra
# destination should only cost FLV muxing and socket I/O, an extra recording
# only file writes. This prints user+system CPU seconds per configuration as
# a markdown table (for docs/benchmarks.md, "## Extra outputs").
#
# Usage: scripts/bench-outputs.sh [SECONDS (default 30)] [RUNS (default 1)]
# Needs: nginx + libnginx-mod-rtmp, GNU time (/usr/bin/time). Loopback only.
set -euo pipefail

DURATION="${1:-30}"
RUNS="${2:-1}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/target/${CARGO_BUILD_TARGET:+$CARGO_BUILD_TARGET/}release/onair"
TIME=/usr/bin/time

[ -x "$TIME" ] || { echo "bench-outputs: /usr/bin/time (GNU time) is required" >&2; exit 1; }
command -v nginx >/dev/null || { echo "bench-outputs: nginx is required" >&2; exit 1; }
MODULE="$(ls /usr/lib/nginx/modules/ngx_rtmp_module.so 2>/dev/null || true)"
[ -n "$MODULE" ] || { echo "bench-outputs: ngx_rtmp_module.so not found (libnginx-mod-rtmp)" >&2; exit 1; }

(cd "$ROOT" && cargo build --release -q --workspace --bin onair)

WORK="$(mktemp -d /tmp/onair-bench-outputs.XXXXXX)"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
die() { echo "bench-outputs: $*" >&2; exit 1; }

# The ingest (it also records each publish: file writes on nginx's side, not onair's).
# shellcheck source=lib/nginx.sh
. "$ROOT/scripts/lib/nginx.sh"
nginx_rtmp_start "$WORK/nginx"

URL="rtmp://127.0.0.1:$PORT/live"
# name | extra arguments after `onair stream URL/a`
CONFIGS=(
    "1 destination|"
    "2 destinations|--also $URL/b"
    "3 destinations|--also $URL/b --also $URL/c"
    "1 destination + --record .flv|--record $WORK/rec.flv --overwrite"
    "1 destination + --record .mp4|--record $WORK/rec.mp4 --overwrite"
    "3 destinations + --record .mp4|--also $URL/b --also $URL/c --record $WORK/rec.mp4 --overwrite"
)

echo "| outputs | user s | sys s | total CPU s | CPU % of one core |"
echo "|---|---|---|---|---|"
for entry in "${CONFIGS[@]}"; do
    name="${entry%%|*}"
    extra="${entry#*|}"
    for run in $(seq "$RUNS"); do
        # shellcheck disable=SC2086 # $extra is a list of arguments
        "$TIME" -f '%U %S' -o "$WORK/time" "$BIN" stream "$URL/a" --duration "$DURATION" -q $extra \
            2>"$WORK/stderr" || { echo "bench-outputs: '$name' failed:" >&2; cat "$WORK/stderr" >&2; exit 1; }
        read -r user sys <"$WORK/time"
        awk -v n="$name" -v u="$user" -v s="$sys" -v d="$DURATION" -v r="$run" -v R="$RUNS" 'BEGIN {
            label = (R > 1) ? n " (run " r ")" : n;
            printf "| %s | %.2f | %.2f | %.2f | %.1f |\n", label, u, s, u + s, 100 * (u + s) / d }'
    done
done
