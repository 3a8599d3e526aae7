#!/usr/bin/env bash
# Installs a modern static FFmpeg (the one PyPI's imageio-ffmpeg wheel ships: FFmpeg 9
# with Enhanced RTMP demuxing, libx265, libsvtav1, libdav1d, libvmaf) as
#   target/tools/ffmpeg9/ffmpeg
# for the tests that need what Debian's FFmpeg 5.1 lacks (HEVC/AV1 over Enhanced RTMP).
# The test kit finds it there (onair_testkit::ffmpeg9). Idempotent; called by
# scripts/install-deps.sh. Only the wheel comes from the registry, through pip.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/target/tools/ffmpeg9"
log() { echo "install-ffmpeg9: $*" >&2; }

if [[ -x "$dest/ffmpeg" ]] && "$dest/ffmpeg" -hide_banner -version 2>/dev/null | grep -q "version n\?9"; then
    log "present: $dest/ffmpeg"
    exit 0
fi

pip=()
if python3 -m pip --version >/dev/null 2>&1; then
    pip=(python3 -m pip)
else
    log "installing python3-pip (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-pip >&2
    pip=(python3 -m pip)
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
log "pip download imageio-ffmpeg"
# The wheel for this machine (0.8.x: manylinux_2_28, FFmpeg 9), binary only.
"${pip[@]}" download --quiet --no-deps --only-binary=:all: -d "$tmp" "imageio-ffmpeg>=0.8" >&2
wheel="$(ls "$tmp"/imageio_ffmpeg-*.whl | head -n1)"
mkdir -p "$dest"
python3 - "$wheel" "$dest/ffmpeg" <<'PY'
import sys, zipfile, shutil
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.startswith("imageio_ffmpeg/binaries/ffmpeg-linux-x86_64")]
    if not names:
        sys.exit("no linux x86_64 ffmpeg in " + wheel)
    with z.open(names[0]) as src, open(out + ".part", "wb") as dst:
        shutil.copyfileobj(src, dst)
import os
os.chmod(out + ".part", 0o755)
os.replace(out + ".part", out)
PY
"$dest/ffmpeg" -hide_banner -version | head -n1 >&2
log "installed $dest/ffmpeg"
