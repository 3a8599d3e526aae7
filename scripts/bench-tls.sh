#!/usr/bin/env bash
# RTMPS against RTMP on loopback, onair and the FFmpeg CLI in the same run:
#
# 1. connect-to-first-frame: seconds from starting the publisher to nginx-rtmp
#    holding its first coded video frame (scripts/bench_tls_first_frame.py),
#    RUNS times per publisher and scheme, interleaved; median, min and max.
# 2. CPU cost of TLS: onair streaming 720p30 at a fixed 6 Mbit/s for SECONDS
#    over RTMP, then over RTMPS (RUNS2 times each, interleaved), user+system
#    CPU seconds from /usr/bin/time, given per streamed minute, with the
#    bitrate actually sent (from --stats-json); and the CPU of onair's send
#    thread alone ("onair-send", where TLS encrypts; scripts/bench_thread_cpu.py),
#    since the encoders' run-to-run noise is larger than TLS's whole cost.
#
# The TLS side is nginx's stream module (OpenSSL) in front of nginx-rtmp,
# with a CA and a server certificate made here with openssl; onair trusts the
# CA with --ca-file. FFmpeg (Debian's, GnuTLS) does not verify certificates
# unless asked, so it is given -tls_verify 1 -ca_file like onair. FFmpeg runs
# libx264 with -tune zerolatency (no lookahead), as onair's openh264 has none.
#
# Usage: scripts/bench-tls.sh [RUNS (default 10)] [SECONDS (default 30)] [RUNS2 (default 2)]
# Needs: nginx + libnginx-mod-rtmp + libnginx-mod-stream, ffmpeg, openssl, python3,
# GNU time (/usr/bin/time). Prints markdown tables (docs/benchmarks.md, "## RTMPS").
set -euo pipefail

RUNS="${1:-10}"
SECONDS_CPU="${2:-30}"
RUNS2="${3:-2}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARGET_DIR="$ROOT/target/${CARGO_BUILD_TARGET:-}/release"
BIN="$TARGET_DIR/onair"
[ -n "${CARGO_BUILD_TARGET:-}" ] || BIN="$ROOT/target/release/onair"
# shellcheck source=lib/cpu.sh
. "$ROOT/scripts/lib/cpu.sh"
PROBE="$ROOT/scripts/bench_tls_first_frame.py"

die() { echo "bench-tls: $*" >&2; exit 1; }
cpu_require
for t in nginx ffmpeg openssl python3; do command -v "$t" >/dev/null || die "$t is required"; done
MODULE="$(ls /usr/lib/nginx/modules/ngx_rtmp_module.so 2>/dev/null || true)"
STREAM_MODULE="$(ls /usr/lib/nginx/modules/ngx_stream_module.so 2>/dev/null || true)"
[ -n "$MODULE" ] || die "ngx_rtmp_module.so not found (libnginx-mod-rtmp)"
[ -n "$STREAM_MODULE" ] || die "ngx_stream_module.so not found (libnginx-mod-stream)"

(cd "$ROOT" && cargo build --release -q --workspace --bin onair)
[ -x "$BIN" ] || die "$BIN not built"

WORK="$(mktemp -d /tmp/onair-bench-tls.XXXXXX)"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

# A CA and a server certificate for 127.0.0.1 (IP SAN).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=onair bench CA" -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=127.0.0.1" -keyout "$WORK/server.key" -out "$WORK/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$WORK/ext.cnf"
openssl x509 -req -in "$WORK/server.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
    -CAcreateserial -days 2 -extfile "$WORK/ext.cnf" -out "$WORK/server.pem" 2>/dev/null

# shellcheck source=lib/nginx.sh
. "$ROOT/scripts/lib/nginx.sh"
nginx_rtmp_start "$WORK" "$WORK/server.pem" "$WORK/server.key"

url() { # scheme key
    if [ "$1" = rtmp ]; then echo "rtmp://127.0.0.1:$PORT/live/$2"; else echo "rtmps://127.0.0.1:$TLS_PORT/live/$2"; fi
}
publish_cmd() { # tool scheme key
    local u; u="$(url "$2" "$3")"
    if [ "$1" = onair ]; then
        echo "$BIN stream $u --duration 8 --ca-file $WORK/ca.pem"
    else
        local tls=""
        [ "$2" = rtmps ] && tls="-tls_verify 1 -ca_file $WORK/ca.pem"
        echo "ffmpeg -nostdin -v error -re -f lavfi -i testsrc2=size=1280x720:rate=30 \
-f lavfi -i sine=f=440:r=48000 -t 8 -c:v libx264 -preset veryfast -tune zerolatency -g 60 -b:v 2500k \
-c:a aac -b:a 160k $tls -f flv $u"
    fi
}

stats() { # values... -> "median (min–max)"
    python3 -c 'import statistics,sys; v=sorted(float(x) for x in sys.argv[1:]); print(f"{statistics.median(v)*1000:.0f} ms ({v[0]*1000:.0f}–{v[-1]*1000:.0f}, n={len(v)})")' "$@"
}

echo "load before: $(load)" >&2
declare -A T
n=0
for run in $(seq "$RUNS"); do
    for tool in onair ffmpeg; do
        for scheme in rtmp rtmps; do
            n=$((n + 1))
            # shellcheck disable=SC2046
            t="$(python3 "$PROBE" "$WORK/rec" 20 -- $(publish_cmd "$tool" "$scheme" "ff$n"))" \
                || die "$tool over $scheme: no frame reached nginx (run $run)"
            T[$tool-$scheme]+="$t "
        done
    done
done
echo
echo "| publisher | rtmp:// first frame | rtmps:// first frame |"
echo "|---|---|---|"
for tool in onair ffmpeg; do
    # shellcheck disable=SC2086
    echo "| $tool | $(stats ${T[$tool-rtmp]}) | $(stats ${T[$tool-rtmps]}) |"
done

# CPU of TLS at 6 Mbit/s (fixed bitrate: adaptation off).
declare -A CPU KBPS SEND
for run in $(seq "$RUNS2"); do
    for scheme in rtmp rtmps; do
        n=$((n + 1))
        python3 "$ROOT/scripts/bench_thread_cpu.py" "cpu$n" onair-send 10 >"$WORK/send$n" &
        sampler=$!
        "$CPU_TIME" -f "$CPU_TIME_FORMAT" -o "$WORK/time" "$BIN" stream "$(url "$scheme" "cpu$n")" \
            --duration "$SECONDS_CPU" --video-bitrate 6M --adaptive-bitrate off \
            --ca-file "$WORK/ca.pem" --quiet --stats-json "$WORK/stats$n.jsonl" >/dev/null 2>&1 \
            || die "onair over $scheme failed"
        wait "$sampler" || die "no send thread sampled"
        SEND[$scheme]+="$(awk -v d="$SECONDS_CPU" '{ printf "%.2f", $1 * 60 / d }' "$WORK/send$n") "
        read -r u s _ _ < <(cpu_fields "$WORK/time")
        CPU[$scheme]+="$(cpu_per_minute "$u" "$s" "$SECONDS_CPU") "
        KBPS[$scheme]+="$(python3 -c 'import json,sys; l=[json.loads(x) for x in open(sys.argv[1]) if x.strip()]; f=l[-1]; print(round(f["bytes_sent"]*8/f["t_ms"]))' "$WORK/stats$n.jsonl") "
    done
done
echo
echo "| onair, 720p30, 6 Mbit/s, ${SECONDS_CPU} s | process CPU s per streamed minute (each run) | send thread CPU s per minute | kbit/s sent |"
echo "|---|---|---|---|"
for scheme in rtmp rtmps; do
    echo "| $scheme:// | ${CPU[$scheme]}| ${SEND[$scheme]}| ${KBPS[$scheme]}|"
done
echo
echo "load after: $(load)" >&2
