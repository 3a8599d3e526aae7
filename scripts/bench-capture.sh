#!/usr/bin/env bash
# Screen-streaming benchmark for issue 5: onair vs `ffmpeg -f x11grab` doing the same job.
#
# What it does (why: docs/benchmarks.md, "Streaming the screen: onair vs ffmpeg x11grab"):
#  1. builds onair (release) and runs the Xvfb SHM grab+convert unit test, whose per-frame
#     cost (1920x1080 -> 1280x720) it reports;
#  2. starts its own Xvfb (free display, 1920x1080x24, -noreset) with a changing screen:
#     the root window alternates between two colours every 0.5 s (xsetroot) and a 960x540
#     window plays a moving testsrc2 at 30 fps (ffmpeg's SDL2 output; BENCH_SCENE=solid
#     keeps only the xsetroot loop);
#  3. starts a private PulseAudio (null sink onair_null, unix socket in the work dir) and
#     plays a 1 kHz tone into it (ffmpeg sine | pacat);
#  4. starts its own nginx-rtmp on a free 127.0.0.1 port (record all, record_unique on);
#  5. BENCH_RUNS times (default 2), ONE AFTER THE OTHER (onair, then ffmpeg; so neither
#     steals the other's CPU), streams the screen + desktop audio for D = BENCH_DURATION
#     seconds (default 60), 1280x720 30 fps, 2500k H.264 + 160k AAC, each under
#     /usr/bin/time:
#       onair stream rtmp://127.0.0.1:P/live/onair --video screen::N --audio desktop ...
#       ffmpeg -f x11grab -i :N -f pulse -i onair_null.monitor -vf scale=1280:720 \
#              -c:v libx264 -preset veryfast -tune zerolatency ... rtmp://127.0.0.1:P/live/ffmpeg
#  6. reports CPU seconds per streamed minute (user+sys: the machine may be shared, wall
#     time is not a measure), max RSS, video/audio frames in nginx's recording
#     (ffprobe -count_frames), onair's final --stats-json counters (duplicated, skipped,
#     capture_late_p99_ms), ffmpeg's -progress dup/drop counters, and the CPU the X server
#     spent meanwhile (it serves the grabs, and also draws the scene).
# Results: a markdown table on stdout and in $BENCH_DIR/results.md (BENCH_DIR defaults to a
# fresh /tmp/onair-bench-capture.XXXXXX, kept for inspection). Only 127.0.0.1 is used.
set -euo pipefail

D=${BENCH_DURATION:-60}
RUNS=${BENCH_RUNS:-2}
SCENE=${BENCH_SCENE:-video}
# ffmpeg 5.x reads each input in its own thread through a queue of thread_queue_size
# packets (default 8); with x11grab + pulse the x11grab queue fills and frames are lost
# ("Thread message queue blocking"): 420-1778 of 1800 frames received in a minute here.
# So ffmpeg gets -thread_queue_size 1024 on both inputs; BENCH_FFMPEG_TQS=0 runs it without.
TQS=${BENCH_FFMPEG_TQS:-1024}
SIZE=1280x720
FPS=30
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
W=${BENCH_DIR:-$(mktemp -d /tmp/onair-bench-capture.XXXXXX)}
mkdir -p "$W"
# CPU measuring shared with the other benchmarks: $CPU_TIME, cpu_fields, cpu_per_minute, load.
# shellcheck source=lib/cpu.sh
. "$ROOT/scripts/lib/cpu.sh"

PIDS=()
cleanup() {
    local pid
    # Reverse order: clients before the servers they talk to.
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        pid=${PIDS[$i]}
        # /usr/bin/time does not forward signals: stop its child first, by parent pid.
        pkill -TERM -P "$pid" 2>/dev/null || true
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "bench: $*" >&2; }
die() { log "$*"; exit 1; }

for tool in nginx ffmpeg ffprobe ss jq awk Xvfb xsetroot pulseaudio pacat pactl; do
    command -v "$tool" >/dev/null || die "$tool missing (scripts/install-deps.sh installs it)"
done
cpu_require
MODULE=/usr/lib/nginx/modules/ngx_rtmp_module.so
[ -f "$MODULE" ] || die "$MODULE missing (apt-get install libnginx-mod-rtmp)"

log "building (release)"
(cd "$ROOT" && cargo build --release -q -p onair-cli)
ONAIR=$ROOT/target/release/onair

log "per-frame grab+convert cost (unit test with its own Xvfb)"
(cd "$ROOT" && cargo test --release -q -p onair --lib video::screen -- --nocapture) \
    >"$W/screen-test.log" 2>&1 || { cat "$W/screen-test.log" >&2; die "screen tests failed"; }
GRAB=$(grep -o 'SHM grab+convert: .*/frame' "$W/screen-test.log" | sed 's/.*: //' || true)
[ -n "$GRAB" ] || GRAB="n/a (test skipped: see $W/screen-test.log)"

# ---- X server with a changing screen ----------------------------------------------------
N=
for n in $(seq 50 200); do
    if [ ! -e "/tmp/.X11-unix/X$n" ] && [ ! -e "/tmp/.X$n-lock" ]; then N=$n; break; fi
done
[ -n "$N" ] || die "no free X display"
Xvfb ":$N" -screen 0 1920x1080x24 -nolisten tcp -noreset >"$W/xvfb.log" 2>&1 &
XVFB_PID=$!
PIDS+=("$XVFB_PID")
for _ in $(seq 100); do [ -e "/tmp/.X11-unix/X$N" ] && break; sleep 0.1; done
[ -e "/tmp/.X11-unix/X$N" ] || die "Xvfb :$N did not come up"
xsetroot -display ":$N" -solid '#204080'
(
    while :; do
        xsetroot -display ":$N" -solid '#204080'; sleep 0.5
        xsetroot -display ":$N" -solid '#806020'; sleep 0.5
    done
) &
PIDS+=("$!")
if [ "$SCENE" = video ]; then
    DISPLAY=":$N" ffmpeg -nostdin -hide_banner -v error -re \
        -f lavfi -i "testsrc2=size=960x540:rate=30" -f sdl2 -window_x 200 -window_y 150 scene \
        >"$W/scene.log" 2>&1 &
    PIDS+=("$!")
fi

# ---- PulseAudio with a tone ---------------------------------------------------------------
PA=$W/pulse
mkdir -p "$PA"
HOME=$PA PULSE_RUNTIME_PATH=$PA XDG_RUNTIME_DIR=$PA \
    pulseaudio -n --daemonize=no --system=false --exit-idle-time=-1 --disallow-exit \
    --disable-shm=true -L "module-null-sink sink_name=onair_null rate=48000" \
    -L "module-native-protocol-unix socket=$PA/native auth-anonymous=1" >"$W/pulse.log" 2>&1 &
PIDS+=("$!")
export PULSE_SERVER=unix:$PA/native
for _ in $(seq 100); do pactl info >/dev/null 2>&1 && break; sleep 0.1; done
pactl info >/dev/null 2>&1 || die "pulseaudio did not come up (see $W/pulse.log)"
mkfifo "$W/tone.fifo"
pacat --playback --device=onair_null --format=s16le --rate=48000 --channels=2 <"$W/tone.fifo" &
PIDS+=("$!")
ffmpeg -nostdin -hide_banner -v error -f lavfi -i "sine=frequency=1000:sample_rate=48000" \
    -ac 2 -f s16le - >"$W/tone.fifo" 2>"$W/tone.log" &
PIDS+=("$!")

# ---- nginx-rtmp ---------------------------------------------------------------------------
# shared with bench-stream.sh: free_port, nginx_rtmp_start.
# shellcheck source=lib/nginx.sh
. "$ROOT/scripts/lib/nginx.sh"
NG=$W/nginx
nginx_rtmp_start "$NG"
log "Xvfb :$N (scene: $SCENE), pulse $PULSE_SERVER, nginx-rtmp 127.0.0.1:$PORT, work dir $W"
sleep 1
LOAD_BEFORE=$(load)

# ---- runs -------------------------------------------------------------------------------
count_frames() { # FILE STREAM -> frames read by decoding
    ffprobe -v error -count_frames -select_streams "$2" -show_entries stream=nb_read_frames \
        -of csv=p=0 "$1" | head -n1
}

# CPU seconds (user+sys) a process has used so far, from /proc (the X server's share of a
# grab is spent there, not in the grabbing client).
HZ=$(getconf CLK_TCK)
proc_cpu() { awk -v hz="$HZ" '{printf "%.2f", ($14+$15)/hz}' "/proc/$1/stat"; }

ROWS=()
row() { ROWS+=("$(printf '| %s |' "$(IFS='|'; echo "$*" | sed 's/|/ | /g')")"); }

run_one() { # RUN WHO
    local r=$1 who=$2 rc=0 pid
    local base=$W/run$r-$who
    log "run $r/$RUNS: $who streams the screen for ${D}s (load $(load))"
    local x0 x1
    x0=$(proc_cpu "$XVFB_PID")
    if [ "$who" = onair ]; then
        DISPLAY= "$CPU_TIME" -f "$CPU_TIME_FORMAT" -o "$base.time" \
            "$ONAIR" stream "rtmp://127.0.0.1:$PORT/live/onair" --video "screen::$N" --audio desktop \
            --size "$SIZE" --fps "$FPS" --video-bitrate 2500k --audio-bitrate 160k --keyint 2 \
            --duration "$D" -q --stats-json "$base.stats.jsonl" 2>"$base.log" &
    else
        local tq=()
        [ "$TQS" = 0 ] || tq=(-thread_queue_size "$TQS")
        "$CPU_TIME" -f "$CPU_TIME_FORMAT" -o "$base.time" \
            ffmpeg -nostdin -hide_banner -v error -progress "$base.progress" \
            "${tq[@]}" -f x11grab -framerate "$FPS" -video_size 1920x1080 -i ":$N" \
            "${tq[@]}" -f pulse -i onair_null.monitor -t "$D" -vf "scale=${SIZE/x/:}" \
            -c:v libx264 -preset veryfast -tune zerolatency -b:v 2500k -maxrate 2500k -bufsize 2500k \
            -g 60 -pix_fmt yuv420p -c:a aac -b:a 160k \
            -f flv "rtmp://127.0.0.1:$PORT/live/ffmpeg" 2>"$base.log" &
    fi
    pid=$!
    PIDS+=("$pid")
    wait "$pid" || rc=$?
    x1=$(proc_cpu "$XVFB_PID")
    [ "$rc" = 0 ] || { cat "$base.log" >&2; die "$who exited $rc"; }
    local load_after
    load_after=$(load)
    sleep 1 # nginx finalises a recording when the publisher's stream closes
    local f
    f=$(ls -t "$NG/rec/$who"-*.flv 2>/dev/null | head -n1 || true)
    [ -n "$f" ] || die "nginx recorded nothing for $who (see $NG/logs/error.log)"
    mv "$f" "$base.flv"

    local u s e m cpu_min rss vframes aframes dur note
    read -r u s e m < <(cpu_fields "$base.time")
    cpu_min=$(cpu_per_minute "$u" "$s" "$D")
    rss=$(awk -v m="$m" 'BEGIN {printf "%.0f", m/1024}')
    vframes=$(count_frames "$base.flv" v:0)
    aframes=$(count_frames "$base.flv" a:0)
    dur=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$base.flv")
    if [ "$who" = onair ]; then
        local fin
        fin=$(tail -n1 "$base.stats.jsonl")
        note=$(jq -r '"captured \(.video_frames_captured), duplicated \(.video_frames_duplicated), skipped \(.video_frames_skipped), capture_late_p99 \(.capture_late_p99_ms) ms (max \(.capture_late_max_ms)), audio silence frames \(.audio_silence_frames)"' <<<"$fin")
    else
        local dup drop
        dup=$(grep '^dup_frames=' "$base.progress" | tail -n1 | cut -d= -f2)
        drop=$(grep '^drop_frames=' "$base.progress" | tail -n1 | cut -d= -f2)
        note="ffmpeg dup_frames $dup, drop_frames $drop"
    fi
    row "$r" "$who" "$u" "$s" "$e" "$cpu_min" "$rss" "$vframes" "$aframes" "$dur" "$(awk -v a="$x0" -v b="$x1" 'BEGIN {printf "%.1f", b-a}')" "$load_after" "$note"
}

for r in $(seq "$RUNS"); do
    rm -f "$NG/rec/"*.flv
    run_one "$r" onair
    run_one "$r" ffmpeg
done

{
    echo "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'); load before: $LOAD_BEFORE"
    echo "Screen: Xvfb 1920x1080x24, scene '$SCENE'; streams ${D}s each, one after the other, -> $SIZE@$FPS, 2500k H.264 + 160k AAC, to nginx-rtmp on 127.0.0.1; ffmpeg -thread_queue_size: ${TQS/#0/default (8)}"
    echo "Per-frame Xvfb 1920x1080 -> 1280x720 SHM grab+convert (unit test, 30 grabs): $GRAB"
    echo
    echo "| run | who | user s | sys s | wall s | CPU s per streamed min | max RSS MB | video frames recv | audio frames recv | recording s | Xvfb CPU s meanwhile | load after (1/5/15) | notes |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
} | tee "$W/results.md"
log "results in $W/results.md"
