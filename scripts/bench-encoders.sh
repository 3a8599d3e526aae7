#!/usr/bin/env bash
# Encoder quality and CPU benchmark (issue 11): onair's encoders vs the FFmpeg CLI with the same
# encoder and settings, on the same clips, side by side in one run.
#
# Needs the GPL build (the file source, `onair record --input FILE`, and the libavcodec encoders).
#
# What it does (why: docs/benchmarks.md, "Encoders: quality and CPU"):
#  1. builds the GPL onair CLI (release; `--input FILE` needs it) unless BENCH_ONAIR names one;
#  2. makes two clips with FFmpeg's own sources (kept out of git, in $BENCH_DIR), raw I420 in
#     NUT (no decoding cost: the file source is never late and both sides pay the same ~0):
#       screen  - a UI drawn with drawbox + scrolling monospaced text (drawtext), like a terminal
#                 or editor being scrolled: flat colours, sharp edges, most of the frame static;
#       camera  - a pan across a detailed still (a Mandelbrot set at twice the frame size) with
#                 temporal noise (grain, as a camera sensor gives): every pixel changes every frame;
#  3. for each clip and each encoder row, in turn (never two at once):
#       onair record OUT.mp4 --input CLIP --audio none --video-encoder E [--preset P]
#             --video-bitrate B --adaptive-bitrate off --keyint 2   (real time: the file source
#             plays the clip at its own pace, as a live source)
#       ffmpeg -re -i CLIP -an -c:v LIBE [-preset P] -b:v B [-maxrate B -bufsize B] -g 2*fps
#             -flags +cgop OUT.mp4   (the same libx264/libx265/libsvtav1 from Debian's FFmpeg 5.1
#             that onair links, with onair's settings: 1 s VBV for x264/x265, VBR for SVT-AV1,
#             closed GOPs); for x264 the option strings x264 writes into both streams are
#             compared and any difference printed;
#     each under /usr/bin/time (user+sys CPU, whole process), BENCH_NICE applied to both;
#     onair's row is marked REJECTED when its source repeated or skipped > 0.5 % of the frames;
#  4. judges every output against the clip with FFmpeg 9's libvmaf (vmaf_v0.6.1) and psnr
#     (target/tools/ffmpeg9, installed by scripts/install-ffmpeg9.sh), frames paired by timestamp,
#     and reports VMAF, PSNR-Y, the video bitrate, frames, CPU seconds per streamed minute,
#     and the onair/FFmpeg CPU ratio.
# Rows: openh264 (onair only: FFmpeg 5.1 has no libopenh264 encoder here), x264 veryfast,
# x264 faster, x265 veryfast, SVT-AV1 preset 10.
# Environment: BENCH_SIZE (1280x720), BENCH_FPS (30), BENCH_BITRATE (2500k), BENCH_SECONDS (20),
# BENCH_CLIPS ("screen camera"), BENCH_ROWS (all), BENCH_DIR (fresh /tmp dir, kept; clips are
# reused), BENCH_NICE (e.g. -19, as root), BENCH_ONAIR (a built binary).
# Results: a markdown table on stdout and in $BENCH_DIR/results-<height>p<fps>.md.
set -euo pipefail

SIZE=${BENCH_SIZE:-1280x720}
FPS=${BENCH_FPS:-30}
BITRATE=${BENCH_BITRATE:-2500k}
SECS=${BENCH_SECONDS:-20}
CLIPS=${BENCH_CLIPS:-screen camera}
ROWS=${BENCH_ROWS:-openh264 x264:veryfast x264:faster x265:veryfast svtav1:10}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
W=${BENCH_DIR:-$(mktemp -d /tmp/onair-bench-enc.XXXXXX)}
mkdir -p "$W"
TIME=/usr/bin/time
# BENCH_NICE=-5 (as root) runs the timed encodes ahead of other work on a shared machine, so a
# real-time row is not late because a compiler holds the cores (CPU seconds do not change).
NICE=${BENCH_NICE:+nice -n $BENCH_NICE}
W_PX=${SIZE%x*}
H_PX=${SIZE#*x}
GOP=$((2 * FPS))

log() { echo "bench: $*" >&2; }
die() {
    log "$*"
    exit 1
}

for tool in ffmpeg awk jq; do
    command -v "$tool" >/dev/null || die "$tool missing (scripts/install-deps.sh installs it)"
done
[ -x "$TIME" ] || die "$TIME missing (apt-get install time)"
"$ROOT/scripts/install-ffmpeg9.sh" >&2
FF9=$ROOT/target/tools/ffmpeg9/ffmpeg
[ -x "$FF9" ] || die "FFmpeg 9 missing at $FF9"

# BENCH_ONAIR=PATH takes that binary and builds nothing.
ONAIR=${BENCH_ONAIR:-$ROOT/target/${CARGO_BUILD_TARGET:+$CARGO_BUILD_TARGET/}release/onair}
if [ -z "${BENCH_ONAIR:-}" ]; then
    log "building the GPL CLI (release)"
    # --workspace: the same feature set as the GPL test build, so nothing recompiles twice.
    (cd "$ROOT" && cargo build --release -q --workspace --no-default-features --features onair-cli/gpl)
fi
[ -x "$ONAIR" ] || die "no onair binary at $ONAIR"

make_clip() {
    local name=$1 out=$W/$1-${SIZE}-${FPS}.nut
    CLIP=$out
    [ -s "$out" ] && return
    log "making the $name clip ($SIZE, $FPS fps, $SECS s)"
    # Raw I420 in NUT: the file source reads it with no decoding cost, so the decoder is never
    # late (a lossless codec is not: FFV1 decodes this grainy camera clip at ~33 fps 720p on one
    # core) and both sides spend their CPU on the encoder alone.
    case $name in
    screen)
        # A dark editor: title bar, side bar, a text pane whose lines scroll up 2 px per frame,
        # and a status bar; the caret blinks. Text: this script itself, looped.
        local text=$W/text.txt
        for _ in 1 2 3 4 5 6; do cat "$ROOT/scripts/bench-encoders.sh"; done >"$text"
        ffmpeg -v error -y -f lavfi -i "color=c=0x1e1e1e:s=${SIZE}:r=${FPS}:d=${SECS}" -vf "\
drawbox=x=0:y=0:w=iw:h=32:c=0x3c3c3c:t=fill,\
drawbox=x=0:y=32:w=220:h=ih-56:c=0x252526:t=fill,\
drawbox=x=0:y=ih-24:w=iw:h=24:c=0x007acc:t=fill,\
drawtext=textfile=${text}:expansion=none:fontcolor=0xd4d4d4:fontsize=18:x=236:y=40-2*n:line_spacing=4,\
drawtext=text='onair  bench-encoders.sh':fontcolor=white:fontsize=16:x=12:y=8,\
drawtext=text='EXPLORER':fontcolor=0xbbbbbb:fontsize=14:x=16:y=44,\
drawtext=text='frame %{n}':fontcolor=white:fontsize=14:x=w-140:y=h-20,\
drawtext=text='_':fontcolor=white:fontsize=20:x=236+mod(n*7\,600):y=h-64:enable='lt(mod(n\,30)\,15)'" \
            -pix_fmt yuv420p -c:v rawvideo "$out"
        ;;
    camera)
        # A camera panning over a detailed scene (a Mandelbrot still twice the frame's size,
        # drawn once) with temporal noise (grain, as a sensor gives): every pixel changes every
        # frame. The pan moves 3 px right and 1 px down per frame at 720p30, scaled to the size
        # and rate.
        local still=$W/still-${SIZE}.png
        [ -s "$still" ] || ffmpeg -v error -y -f lavfi \
            -i "mandelbrot=s=$((2 * W_PX))x$((2 * H_PX)):maxiter=256:start_scale=0.3:end_pts=0" \
            -frames:v 1 "$still"
        local dx dy
        dx=$(awk -v w="$W_PX" -v f="$FPS" 'BEGIN { printf "%.3f", 3 * w / 1280 * 30 / f }')
        dy=$(awk -v w="$W_PX" -v f="$FPS" 'BEGIN { printf "%.3f", w / 1280 * 30 / f }')
        ffmpeg -v error -y -loop 1 -framerate "$FPS" -i "$still" -t "$SECS" -vf "\
crop=${W_PX}:${H_PX}:x='${W_PX}/8+${dx}*n':y='${H_PX}/8+${dy}*n',noise=alls=6:allf=t,format=yuv420p" \
            -c:v rawvideo "$out"
        ;;
    *) die "unknown clip $name" ;;
    esac
}

# CPU seconds (user + sys) of the last timed command, from /usr/bin/time -f '%U %S'.
cpu_of() { awk '{ printf "%.2f", $1 + $2 }' "$1"; }

# VMAF mean and PSNR-Y average of DIST against REF. Frames are paired by timestamp (both start at
# 0; FFmpeg's framesync): a frame missing from DIST is judged as the repeat a viewer would see.
judge() {
    local dist=$1 ref=$2 json=$3
    "$FF9" -v error -nostdin -i "$dist" -i "$ref" -lavfi \
        "[0:v]setpts=PTS-STARTPTS,format=yuv420p[d];[1:v]setpts=PTS-STARTPTS,format=yuv420p[r];\
[d]split[d1][d2];[r]split[r1][r2];\
[d1][r1]libvmaf=log_fmt=json:log_path=${json}:n_threads=2;\
[d2][r2]psnr=stats_file=${json%.json}.psnr" -f null - 2>"${json%.json}.err" || {
        cat "${json%.json}.err" >&2
        die "judging $dist failed"
    }
    local vmaf psnr
    vmaf=$(jq '.pooled_metrics.vmaf.mean' "$json")
    psnr=$(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^psnr_y:/) { split($i, a, ":"); if (a[2] != "inf") { s += a[2]; n++ } } }
        END { printf "%.2f", s / n }' "${json%.json}.psnr")
    printf '%.2f %s\n' "$vmaf" "$psnr"
}

frames_and_kbps() {
    ffprobe -v error -count_frames -select_streams v:0 \
        -show_entries stream=nb_read_frames:format=duration,size -of json "$1" |
        jq -r '[.streams[0].nb_read_frames, ((.format.size | tonumber) * 8 / (.format.duration | tonumber) / 1000 | floor)] | @tsv'
}

RESULTS=$W/results-${H_PX}p${FPS}.md
{
    echo "| clip | encoder | who | VMAF | PSNR-Y dB | kbit/s | frames | CPU s / streamed min | onair/ffmpeg CPU | load before |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
} >"$RESULTS"

for clip in $CLIPS; do
    make_clip "$clip"
    tag=$clip-${H_PX}p$FPS
    for row in $ROWS; do
        enc=${row%%:*}
        preset=${row#*:}
        [ "$preset" = "$row" ] && preset=""
        label=$enc${preset:+ $preset}
        declare -A lib=([x264]=libx264 [x265]=libx265 [svtav1]=libsvtav1)
        # onair
        out=$W/$tag-$enc-$preset-onair.mp4
        # The clip from the page cache for both sides: a cold read of a raw clip from a shared
        # disk is slower than real time and shows as duplicated frames, not as encoder cost.
        cat "$CLIP" >/dev/null
        load=$(cut -d' ' -f1 /proc/loadavg)
        log "$clip / $label: onair (load $load)"
        rm -f "$out"
        $NICE "$TIME" -f '%U %S' -o "$W/time.onair" "$ONAIR" record "$out" --input "$CLIP" --audio none \
            --size "$SIZE" --fps "$FPS" --video-encoder "$enc" ${preset:+--preset "$preset"} \
            --video-bitrate "$BITRATE" --adaptive-bitrate off --keyint 2 --quiet \
            --stats-json "$W/$tag-$enc-$preset.stats.jsonl" 2>"$W/$tag-$enc-$preset.onair.err" ||
            { cat "$W/$tag-$enc-$preset.onair.err" >&2; die "onair failed"; }
        dup=$(tail -n1 "$W/$tag-$enc-$preset.stats.jsonl" | jq '.outputs[0].video_frames_duplicated // .video_frames_duplicated // "?"')
        skip=$(tail -n1 "$W/$tag-$enc-$preset.stats.jsonl" | jq '.outputs[0].video_frames_skipped // .video_frames_skipped // "?"')
        cpu_onair=$(cpu_of "$W/time.onair")
        read -r vmaf psnr < <(judge "$out" "$CLIP" "$W/$tag-$enc-$preset-onair.json")
        read -r frames kbps < <(frames_and_kbps "$out")
        per_min=$(awk -v c="$cpu_onair" -v s="$SECS" 'BEGIN { printf "%.1f", c / s * 60 }')
        # A row whose source repeated or skipped more than 0.5 % of the frames is not comparable
        # (the viewer saw repeats the clip does not have: the judge pairs frames by timestamp, so
        # a gap is a repeated picture): it stays in the table, marked REJECTED. Fewer are shown.
        note=""
        if [ "$dup" != 0 ] || [ "$skip" != 0 ]; then
            note=" (dup $dup, skip $skip)"
            if [ "$dup" = "?" ] || [ "$skip" = "?" ] || [ $((1000 * (dup + skip))) -gt $((5 * SECS * FPS)) ]; then
                note=" REJECTED (duplicated $dup, skipped $skip)"
            fi
        fi
        onair_line="| $clip | $label | onair | $vmaf | $psnr | $kbps | $frames$note | $per_min |"
        if [ -z "${lib[$enc]:-}" ]; then
            echo "$onair_line | | $load |" >>"$RESULTS"
            continue
        fi
        # FFmpeg CLI, same encoder and settings
        out=$W/$tag-$enc-$preset-ffmpeg.mp4
        cat "$CLIP" >/dev/null
        load2=$(cut -d' ' -f1 /proc/loadavg)
        log "$clip / $label: ffmpeg (load $load2)"
        extra=()
        case $enc in
        x264 | x265) extra=(-maxrate "$BITRATE" -bufsize "$BITRATE") ;;
        esac
        [ "$enc" = x265 ] && extra+=(-x265-params log-level=error)
        $NICE "$TIME" -f '%U %S' -o "$W/time.ffmpeg" ffmpeg -v error -nostdin -y -re -i "$CLIP" -an \
            -c:v "${lib[$enc]}" ${preset:+-preset "$preset"} -b:v "$BITRATE" "${extra[@]}" \
            -g "$GOP" -flags +cgop "$out"
        cpu_ff=$(cpu_of "$W/time.ffmpeg")
        read -r vmaf2 psnr2 < <(judge "$out" "$CLIP" "$W/$tag-$enc-$preset-ffmpeg.json")
        read -r frames2 kbps2 < <(frames_and_kbps "$out")
        per_min2=$(awk -v c="$cpu_ff" -v s="$SECS" 'BEGIN { printf "%.1f", c / s * 60 }')
        if [ "$enc" = x264 ]; then
            # x264 writes its whole option string into the stream (an SEI): both should match.
            for who in onair ffmpeg; do
                strings "$W/$tag-$enc-$preset-$who.mp4" | grep -m1 -o 'options: .*' |
                    tr ' ' '\n' >"$W/$tag-$enc-$preset-$who.x264opts" || true
            done
            if ! diff -q "$W/$tag-$enc-$preset-onair.x264opts" "$W/$tag-$enc-$preset-ffmpeg.x264opts" >/dev/null; then
                log "x264 options differ (onair < > ffmpeg):"
                diff "$W/$tag-$enc-$preset-onair.x264opts" "$W/$tag-$enc-$preset-ffmpeg.x264opts" >&2 || true
            fi
        fi
        ratio=$(awk -v a="$cpu_onair" -v b="$cpu_ff" 'BEGIN { printf "%.2f", a / b }')
        echo "$onair_line $ratio | $load |" >>"$RESULTS"
        echo "| $clip | $label | ffmpeg | $vmaf2 | $psnr2 | $kbps2 | $frames2 | $per_min2 | | $load2 |" >>"$RESULTS"
    done
done
echo "clips: $SIZE ${FPS} fps, ${SECS} s; video bitrate $BITRATE; judge: FFmpeg 9 libvmaf + psnr; CPU: user+sys" >>"$RESULTS"
cat "$RESULTS"
log "results in $RESULTS"
