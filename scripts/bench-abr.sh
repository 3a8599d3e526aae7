#!/usr/bin/env bash
# Slow link, side by side (issue 9): the same throttle for onair without and with adaptive
# bitrate, the FFmpeg CLI and OBS Studio 29, judged from what nginx-rtmp recorded.
#
#   scripts/bench-abr.sh [--out DIR] [--only LIST]      # ~6 min for the four publishers
#   ONAIR_BIN=/path/to/onair scripts/bench-abr.sh        # an already built onair (no cargo)
#   scripts/bench-abr.sh --judge /tmp/onair-bench-abr.XXXXXX  # judge a previous run again
#
# LIST is a comma-separated subset of onair-off,onair-abr,ffmpeg,obs (default: all).
# Timeline per publisher, counted from the moment nginx sees the publish (its recording file
# appears): BENCH_FREE s unthrottled (10), BENCH_THROTTLE s at BENCH_LINK_KBIT kbit/s (40 at
# 1500: 60 % of 2500k video + 160k audio), then BENCH_AFTER s freed (20); then SIGINT.
# The link: a private network namespace (ip netns add onair-bench-$$) whose lo (MTU 1500)
# carries nginx-rtmp and the publisher; the throttle is `tc qdisc add dev lo root tbf rate
# 1500kbit burst 32kb latency 400ms` on that lo only. The host's loopback is never touched.
# One publisher at a time, all to 127.0.0.1:1935 in the namespace:
#  1. onair --adaptive-bitrate off (a binary without that option: its only policy, labelled
#     "onair (drop only)");
#  2. onair --adaptive-bitrate on (skipped when the binary has no such option);
#  3. ffmpeg -re testsrc2 720p30 + sine -> libx264 veryfast 2500k (maxrate 2500k, bufsize
#     5000k, -g 60) + aac 160k -> flv;
#  4. OBS Studio 29 (Debian obs-studio) headless under Xvfb with software GL: custom RTMP
#     server, x264 CBR 2500k veryfast keyint 2 s, DynamicBitrate=true, a Media Source looping
#     a 20 s testsrc2 + sine clip made here; --startstreaming, stopped with SIGINT.
# The judge (scripts/bench_abr_judge.py, see its docstring for the time axes) reads each
# recording with ffprobe/ffmpeg. Output: Markdown tables on stdout and in DIR/results.md;
# per-second CSV timelines DIR/NAME.csv; onair's stats DIR/NAME.stats.jsonl (for
# `onair report`); OBS's dynamic-bitrate log lines DIR/obs-dbr.log. DIR defaults to
# target/bench-abr/. Work files (recordings, logs) stay in the /tmp directory it prints.
# Needs root (network namespace, tc). Every process started here is stopped by pid on exit
# and the namespace deleted.
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

OUT=$ROOT/target/bench-abr
ONLY=onair-off,onair-abr,ffmpeg,obs
JUDGE_DIR=
while [ $# -gt 0 ]; do
    case "$1" in
    --out) OUT=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --judge) JUDGE_DIR=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-abr: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
FREE=${BENCH_FREE:-10}
THROTTLE=${BENCH_THROTTLE:-40}
AFTER=${BENCH_AFTER:-20}
LINK=${BENCH_LINK_KBIT:-1500}
JUDGED_AFTER=$(awk -v t="$THROTTLE" 'BEGIN {j = 10; if (j > t / 2) j = t / 2; print j}')
SIZE=1280x720
FPS=30
PORT=1935

log() { echo "bench-abr: $*" >&2; }
die() { log "$*"; exit 1; }
want() { [[ ",$ONLY," == *",$1,"* ]]; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

if [ -z "$JUDGE_DIR" ]; then # ---- the runs (--judge DIR: only judge a previous run's DIR) ----
[ "$(id -u)" = 0 ] || die "needs root (ip netns, tc)"

if [ -z "${ONAIR_BIN:-}" ]; then
    "$ROOT/scripts/install-deps.sh"
else
    "$ROOT/scripts/install-deps.sh" >/dev/null 2>&1 || true
fi
# Benchmark-only packages (not test dependencies).
if want obs; then
    missing=()
    for p in obs-studio xvfb libgl1-mesa-dri; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
    fi
fi
for tool in ip tc nginx ffmpeg ffprobe python3 awk; do
    command -v "$tool" >/dev/null || die "$tool missing (scripts/install-deps.sh installs it)"
done
MODULE=/usr/lib/nginx/modules/ngx_rtmp_module.so
[ -f "$MODULE" ] || die "$MODULE missing (apt-get install libnginx-mod-rtmp)"

if [ -n "${ONAIR_BIN:-}" ]; then
    ONAIR=$ONAIR_BIN
else
    log "building onair (release)"
    (cd "$ROOT" && cargo build --release -q -p onair-cli)
    ONAIR=${CARGO_TARGET_DIR:-$ROOT/target}/release/onair
fi
[ -x "$ONAIR" ] || die "no onair binary at $ONAIR"
HAS_ABR=
"$ONAIR" stream --help 2>/dev/null | grep -q adaptive-bitrate && HAS_ABR=1

W=$(mktemp -d /tmp/onair-bench-abr.XXXXXX)
REC=$W/rec
mkdir -p "$REC" "$W/nginx/logs"
NS=onair-bench-$$

PIDS=()
NS_MADE=
cleanup() {
    local i pid
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        kill -TERM "${PIDS[$i]}" 2>/dev/null || true
    done
    sleep 0.5
    for pid in "${PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "$NS_MADE" ]; then
        # Anything still in our private namespace was started by this script.
        for pid in $(ip netns pids "$NS" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
        ip netns del "$NS" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { echo "$EPOCHREALTIME"; }
sleep_until() { # EPOCH
    local d
    d=$(awk -v t="$1" -v n="$EPOCHREALTIME" 'BEGIN {d = t - n; if (d < 0) d = 0; printf "%.3f", d}')
    sleep "$d"
}
add() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.6f", a + b}'; }

# ---- the namespace and nginx-rtmp ------------------------------------------------------------
ip netns add "$NS"
NS_MADE=1
ip -n "$NS" link set lo up
ip -n "$NS" link set lo mtu 1500
cat >"$W/nginx/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $W/nginx/logs/nginx.pid;
error_log $W/nginx/logs/error.log info;
load_module $MODULE;
events { worker_connections 64; }
rtmp {
    server {
        listen 127.0.0.1:$PORT;
        chunk_size 4096;
        application live {
            live on;
            record all;
            record_path $REC;
            record_unique on;
            record_append off;
        }
    }
}
CONF
ip netns exec "$NS" nginx -p "$W/nginx" -e "$W/nginx/logs/error.log" -c "$W/nginx/nginx.conf" &
PIDS+=("$!")
for _ in $(seq 100); do
    ip netns exec "$NS" ss -Hltn "sport = :$PORT" | grep -q . && break
    sleep 0.1
done
ip netns exec "$NS" ss -Hltn "sport = :$PORT" | grep -q . ||
    { cat "$W/nginx/logs/error.log" >&2; die "nginx did not start"; }

# Recording sizes every 0.2 s: nginx writes each frame as it arrives, so this tells when
# each packet reached the server (the judge's arrival time).
(
    while :; do
        t=$EPOCHREALTIME
        for f in "$REC"/*.flv; do
            [ -e "$f" ] && echo "$t $f $(stat -c %s "$f" 2>/dev/null || echo 0)"
        done
        sleep 0.2
    done
) >"$W/sizes.txt" 2>/dev/null &
PIDS+=("$!")
log "namespace $NS, nginx-rtmp 127.0.0.1:$PORT in it, work dir $W"

# ---- OBS profile ------------------------------------------------------------------------------
obs_setup() {
    local home=$W/obs-home cfg=$W/obs-home/.config/obs-studio
    mkdir -p "$cfg/basic/profiles/bench" "$cfg/basic/scenes"
    log "making OBS's clip (20 s testsrc2 + sine, 720p30)"
    ffmpeg -nostdin -hide_banner -v error -y -f lavfi -i "testsrc2=size=$SIZE:rate=$FPS" \
        -f lavfi -i "sine=frequency=440:sample_rate=48000" -t 20 -c:v libx264 -preset veryfast \
        -crf 18 -g 60 -pix_fmt yuv420p -c:a aac -b:a 192k -ar 48000 "$W/clip.mp4"
    cat >"$cfg/global.ini" <<INI
[General]
FirstRun=true
LastVersion=486539266
ConfirmOnExit=false

[Basic]
Profile=bench
ProfileDir=bench
SceneCollection=bench
SceneCollectionFile=bench

[BasicWindow]
PreviewEnabled=false
SysTrayEnabled=false
WarnBeforeStartingStream=false
WarnBeforeStoppingStream=false
WarnBeforeStartingRecord=false

[OBSWebSocket]
ServerEnabled=false
ServerPort=4455
AuthRequired=false
FirstLoad=false
AlertsEnabled=false
INI
    cat >"$cfg/basic/profiles/bench/basic.ini" <<INI
[General]
Name=bench

[Video]
BaseCX=1280
BaseCY=720
OutputCX=1280
OutputCY=720
FPSType=0
FPSCommon=30

[Audio]
SampleRate=48000
ChannelSetup=Stereo

[Output]
Mode=Advanced
Reconnect=true
RetryDelay=2
MaxRetries=25
DynamicBitrate=true

[AdvOut]
Encoder=obs_x264
TrackIndex=1
AudioEncoder=ffmpeg_aac
Track1Bitrate=160
ApplyServiceSettings=false
INI
    cat >"$cfg/basic/profiles/bench/streamEncoder.json" <<JSON
{"rate_control":"CBR","bitrate":2500,"keyint_sec":2,"preset":"veryfast","profile":"high"}
JSON
    cat >"$cfg/basic/profiles/bench/service.json" <<JSON
{"type":"rtmp_custom","settings":{"server":"rtmp://127.0.0.1:$PORT/live","key":"obs"}}
JSON
    cat >"$cfg/basic/scenes/bench.json" <<JSON
{
  "name": "bench",
  "current_scene": "Scene",
  "current_program_scene": "Scene",
  "scene_order": [{"name": "Scene"}],
  "sources": [
    {"id": "scene", "versioned_id": "scene", "name": "Scene", "enabled": true, "flags": 0,
     "mixers": 0, "volume": 1.0, "muted": false,
     "settings": {"id_counter": 1, "custom_size": false, "items": [
       {"name": "Clip", "id": 1, "visible": true, "locked": false, "rot": 0.0,
        "pos": {"x": 0.0, "y": 0.0}, "scale": {"x": 1.0, "y": 1.0}, "align": 5,
        "bounds_type": 0, "bounds_align": 0, "bounds": {"x": 0.0, "y": 0.0}}]}},
    {"id": "ffmpeg_source", "versioned_id": "ffmpeg_source", "name": "Clip", "enabled": true,
     "flags": 0, "mixers": 255, "volume": 1.0, "muted": false, "monitoring_type": 0,
     "settings": {"is_local_file": true, "local_file": "$W/clip.mp4", "looping": true,
                  "restart_on_activate": true, "hw_decode": false, "close_when_inactive": false}}
  ],
  "groups": [],
  "quick_transitions": [],
  "transitions": [],
  "current_transition": "Fade",
  "transition_duration": 300,
  "preview_locked": false,
  "scaling_enabled": false,
  "saved_projectors": [],
  "modules": {}
}
JSON
}

XVFB_N=
start_xvfb() {
    local n
    for n in $(seq 90 200); do
        if [ ! -e "/tmp/.X11-unix/X$n" ] && [ ! -e "/tmp/.X$n-lock" ]; then XVFB_N=$n; break; fi
    done
    [ -n "$XVFB_N" ] || die "no free X display"
    ip netns exec "$NS" Xvfb ":$XVFB_N" -screen 0 1280x720x24 -nolisten tcp >"$W/xvfb.log" 2>&1 &
    XVFB_PID=$!
    PIDS+=("$XVFB_PID")
    for _ in $(seq 100); do [ -e "/tmp/.X11-unix/X$XVFB_N" ] && break; sleep 0.1; done
    [ -e "/tmp/.X11-unix/X$XVFB_N" ] || die "Xvfb :$XVFB_N did not come up"
}

# ---- one publisher ----------------------------------------------------------------------------
# run_one NAME LABEL NOTE -- COMMAND...: starts COMMAND in the namespace (SIGINT restored to
# its default: a background job of a script inherits it ignored), waits for nginx to record
# the publish (t0), throttles at t0+FREE, frees at t0+FREE+THROTTLE, SIGINTs at the end.
RAN=()
run_one() {
    local name=$1 label=$2 note=$3 wait_publish=$4
    shift 5
    local ev=$W/$name.events pid t0 ton toff tstop rc=0
    local dead=""
    log "$label: starting (load $(uptime | sed 's/.*load average: //'))"
    echo "launch=$(now)" >"$ev"
    ip netns exec "$NS" env --default-signal=INT "$@" >"$W/$name.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    local deadline
    deadline=$(add "$(now)" "$wait_publish")
    until compgen -G "$REC/$name-*.flv" >/dev/null; do
        kill -0 "$pid" 2>/dev/null || { tail -n 20 "$W/$name.log" >&2; die "$label exited before publishing"; }
        awk -v d="$deadline" -v n="$EPOCHREALTIME" 'BEGIN {exit !(n > d)}' &&
            { tail -n 20 "$W/$name.log" >&2; die "$label did not publish within ${wait_publish}s"; }
        sleep 0.05
    done
    t0=$(now)
    {
        echo "t0=$t0"
        echo "judged_after=$JUDGED_AFTER"
        echo "recovery_window=$AFTER"
        echo "ceiling_kbps=2500"
        echo "fps=$FPS"
        echo "link_kbit=$LINK"
    } >>"$ev"
    log "$label: publishing; throttle to ${LINK} kbit/s in ${FREE}s"
    sleep_until "$(add "$t0" "$FREE")"
    tc -n "$NS" qdisc add dev lo root tbf rate "${LINK}kbit" burst 32kb latency 400ms
    echo "throttle_on=$(now)" >>"$ev"
    kill -0 "$pid" 2>/dev/null || dead="exited during the first ${FREE}s"
    sleep_until "$(add "$t0" "$((FREE + THROTTLE))")"
    tc -n "$NS" qdisc del dev lo root
    echo "throttle_off=$(now)" >>"$ev"
    log "$label: link freed"
    [ -n "$dead" ] || kill -0 "$pid" 2>/dev/null || dead="exited while throttled"
    sleep_until "$(add "$t0" "$((FREE + THROTTLE + AFTER))")"
    echo "stop=$(now)" >>"$ev"
    if kill -0 "$pid" 2>/dev/null; then
        kill -INT "$pid" 2>/dev/null || true
        for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            log "$label: still running 15 s after SIGINT, killed"
            note="${note:+$note; }did not stop within 15 s of SIGINT (killed)"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    else
        [ -n "$dead" ] || dead="exited while freed"
    fi
    wait "$pid" 2>/dev/null || rc=$?
    [ -z "$dead" ] || note="${note:+$note; }$dead (status $rc) before the end"
    # 130/255: what ffmpeg (and others) return after a SIGINT they handled.
    case "$rc" in 0 | 130 | 255) ;; *) [ -n "$dead" ] || note="${note:+$note; }exit status $rc after SIGINT" ;; esac
    echo "note=$note" >>"$ev"
    echo "label=$label" >>"$ev"
    RAN+=("$name")
    log "$label: done (status $rc)"
    sleep 1 # nginx closes the recording when the publisher's stream ends
}

COMMON=(--size "$SIZE" --fps "$FPS" --video-bitrate 2500k --audio-bitrate 160k --keyint 2 -q)
SKIPPED=()
if want onair-off; then
    if [ -n "$HAS_ABR" ]; then
        run_one onair-off "onair --adaptive-bitrate off" "" 15 -- \
            "$ONAIR" stream "rtmp://127.0.0.1:$PORT/live/onair-off" --adaptive-bitrate off \
            "${COMMON[@]}" --stats-json "$W/onair-off.stats.jsonl"
    else
        run_one onair-off "onair (drop only)" "binary without --adaptive-bitrate" 15 -- \
            "$ONAIR" stream "rtmp://127.0.0.1:$PORT/live/onair-off" \
            "${COMMON[@]}" --stats-json "$W/onair-off.stats.jsonl"
    fi
fi
if want onair-abr; then
    if [ -n "$HAS_ABR" ]; then
        run_one onair-abr "onair --adaptive-bitrate on" "" 15 -- \
            "$ONAIR" stream "rtmp://127.0.0.1:$PORT/live/onair-abr" --adaptive-bitrate on \
            "${COMMON[@]}" --stats-json "$W/onair-abr.stats.jsonl"
    else
        log "onair --adaptive-bitrate on: skipped ($ONAIR has no --adaptive-bitrate option)"
        SKIPPED+=("onair --adaptive-bitrate on: skipped, $ONAIR has no --adaptive-bitrate option")
    fi
fi
if want ffmpeg; then
    run_one ffmpeg "FFmpeg CLI (libx264, no adaptation)" "" 15 -- \
        ffmpeg -nostdin -hide_banner -v warning -re \
        -f lavfi -i "testsrc2=size=$SIZE:rate=$FPS" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
        -c:v libx264 -preset veryfast -b:v 2500k -maxrate 2500k -bufsize 5000k -g 60 \
        -c:a aac -b:a 160k -f flv "rtmp://127.0.0.1:$PORT/live/ffmpeg"
fi
OBS_LOG=
if want obs; then
    command -v obs >/dev/null || die "obs missing (apt-get install obs-studio)"
    obs_setup
    start_xvfb
    run_one obs "OBS Studio $(dpkg-query -W -f='${Version}' obs-studio | sed 's/[+~-].*//') (dynamic bitrate on)" \
        "" 90 -- \
        env HOME="$W/obs-home" DISPLAY=":$XVFB_N" LIBGL_ALWAYS_SOFTWARE=1 TZ=UTC QT_QPA_PLATFORM=xcb \
        obs --multi --profile bench --collection bench --scene Scene --disable-missing-files-check \
        --verbose --startstreaming
    OBS_LOG=$(ls -t "$W/obs-home/.config/obs-studio/logs/"*.txt 2>/dev/null | head -n1 || true)
    [ -n "$OBS_LOG" ] && cp "$OBS_LOG" "$W/obs.log"
    kill -TERM "$XVFB_PID" 2>/dev/null || true
fi
{
    echo "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), load after the runs $(uptime | sed 's/.*load average: //')"
    echo "onair: $ONAIR ($("$ONAIR" --version 2>/dev/null || echo '?'))$([ -n "$HAS_ABR" ] || echo ', no --adaptive-bitrate option'); $(ffmpeg -version | head -n1 | cut -d' ' -f1-3); nginx $(nginx -v 2>&1 | sed 's/.*nginx\///')$(want obs && echo "; obs-studio $(dpkg-query -W -f='${Version}' obs-studio)")"
    echo "Link: ${FREE} s free, ${THROTTLE} s tbf ${LINK} kbit/s (burst 32kb, latency 400ms) on the namespace's lo, ${AFTER} s freed; 1280x720@30, 2500k video + 160k audio"
    for s in "${SKIPPED[@]}"; do echo "$s"; done
} >"$W/header.md"
printf '%s\n' "${RAN[@]}" >"$W/ran.txt"

else # ---- --judge DIR -----------------------------------------------------------------------------
W=$(cd "$JUDGE_DIR" && pwd)
REC=$W/rec
[ -f "$W/ran.txt" ] || die "$W/ran.txt missing: not a bench-abr work directory"
mapfile -t RAN <"$W/ran.txt"
ONAIR=${ONAIR_BIN:-}
fi

# ---- judge --------------------------------------------------------------------------------------
log "judging the recordings"
JSONS=()
for name in "${RAN[@]}"; do
    ev=$W/$name.events
    label=$(sed -n 's/^label=//p' "$ev")
    note=$(sed -n 's/^note=//p' "$ev")
    args=(--label "$label" --events "$ev" --sizes "$W/sizes.txt" --csv "$OUT/$name.csv"
        --json "$W/$name.judge.json")
    [ -n "$note" ] && args+=(--note "$note")
    case $name in
    onair-*)
        args+=(--stats-json "$W/$name.stats.jsonl")
        cp "$W/$name.stats.jsonl" "$OUT/$name.stats.jsonl" 2>/dev/null || true
        # The session picture, when the binary can draw it.
        if [ -n "$ONAIR" ] && "$ONAIR" report --help >/dev/null 2>&1; then
            "$ONAIR" report "$W/$name.stats.jsonl" -o "$OUT/$name.svg" >>"$W/$name.report.log" 2>&1 ||
                log "onair report failed for $name (see $W/$name.report.log)"
        fi
        ;;
    obs) [ -f "$W/obs.log" ] && args+=(--obs-log "$W/obs.log") ;;
    esac
    mapfile -t recs < <(ls "$REC/$name"-*.flv 2>/dev/null || true)
    python3 "$ROOT/scripts/bench_abr_judge.py" judge "${args[@]}" "${recs[@]}" 2>"$W/$name.judge.log" ||
        { cat "$W/$name.judge.log" >&2; die "judge failed for $name"; }
    cp "$W/$name.judge.json" "$OUT/$name.json"
    JSONS+=("$W/$name.judge.json")
done
if [ -f "$W/obs.judge.json" ]; then
    python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1])).get("obs_log_lines", [])))' \
        "$W/obs.judge.json" >"$OUT/obs-dbr.log"
fi

{
    cat "$W/header.md"
    echo
    [ ${#JSONS[@]} -eq 0 ] || python3 "$ROOT/scripts/bench_abr_judge.py" table "${JSONS[@]}"
} | tee "$OUT/results.md"
log "results in $OUT (results.md, per-second CSVs), work files in $W"
