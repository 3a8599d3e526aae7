//! A modern FFmpeg (9, the static build PyPI's `imageio-ffmpeg` wheel ships) as the
//! receiver and judge of what Debian's FFmpeg 5.1 cannot read: HEVC and AV1 over
//! Enhanced RTMP (ExVideoTagHeader, FourCC `hvc1` / `av01`).
//!
//! Where it is: `scripts/install-ffmpeg9.sh` (run by `scripts/install-deps.sh`) puts it at
//! `target/tools/ffmpeg9/ffmpeg` of the workspace; `ONAIR_FFMPEG9=PATH` overrides. The
//! wheel has no ffprobe, so the judges here use `ffmpeg` itself: `-f null` for decode
//! errors, `-f framecrc` to count decoded frames, the input banner for the codec.

use crate::listener::{FfmpegListener, ListenFormat};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where `scripts/install-ffmpeg9.sh` installs it, relative to the workspace root.
pub const INSTALL_PATH: &str = "target/tools/ffmpeg9/ffmpeg";

/// The FFmpeg 9 binary, if installed: `ONAIR_FFMPEG9`, else [`INSTALL_PATH`] under the
/// workspace root (found from this crate's manifest directory).
pub fn ffmpeg9() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ONAIR_FFMPEG9") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    Some(root.join(INSTALL_PATH)).filter(|p| p.is_file())
}

/// [`ffmpeg9`], or the skip policy ([`crate::procs::skip`]: a SKIP line locally, a
/// failure under CI) and `None`.
pub fn require_ffmpeg9() -> Option<PathBuf> {
    let found = ffmpeg9();
    if found.is_none() {
        crate::procs::skip(&format!(
            "FFmpeg 9 not found at {INSTALL_PATH} (run scripts/install-ffmpeg9.sh, or set ONAIR_FFMPEG9)"
        ));
    }
    found
}

/// FFmpeg 9's `ffmpeg -listen 1` copying the first publish of
/// `rtmp://127.0.0.1:PORT/live/KEY` into a Matroska file at `out` (which Debian's ffprobe
/// reads too); returns once the port is open. Killed on drop.
pub fn listen(bin: &Path, out: &Path, key: &str) -> io::Result<FfmpegListener> {
    FfmpegListener::spawn(bin, ListenFormat::Matroska, out, key, None)
}

/// What FFmpeg 9 makes of a file's first video stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Codec name from the input banner (`hevc`, `av1`, `h264`), empty if none.
    pub codec: String,
    /// Frames decoded without error.
    pub frames: u64,
    /// Everything `-v error` printed while decoding: empty means clean.
    pub errors: String,
}

/// Decodes the first video stream of `path` with FFmpeg 9 and says what it saw.
pub fn judge(bin: &Path, path: &Path) -> io::Result<Verdict> {
    let out = Command::new(bin)
        .args(["-nostdin", "-hide_banner", "-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v:0", "-f", "framecrc", "-"])
        .stdin(Stdio::null())
        .output()?;
    let mut errors = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() && errors.is_empty() {
        errors = format!("ffmpeg exited with {}", out.status);
    }
    let frames = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .count() as u64;
    // The banner (`-v info`) names the codec: "Stream #0:0...: Video: hevc (Main), ...".
    let banner = Command::new(bin)
        .args(["-nostdin", "-hide_banner", "-i"])
        .arg(path)
        .stdin(Stdio::null())
        .output()?;
    let text = String::from_utf8_lossy(&banner.stderr);
    let codec = text
        .lines()
        .find_map(|l| l.split_once("Video: ").map(|(_, rest)| rest))
        .and_then(|rest| rest.split([' ', ',']).next())
        .unwrap_or_default()
        .to_string();
    Ok(Verdict {
        codec,
        frames,
        errors,
    })
}

/// Encodes `frames` frames of FFmpeg's `testsrc2` (`w`x`h`, `fps`) with FFmpeg 9 into a raw
/// elementary stream at `out`: `-c:v libx265 -f hevc` (access unit delimiters on, so the
/// stream splits into access units) or `-c:v libsvtav1 -f obu` (temporal units start with a
/// temporal delimiter). `extra` are more output options (e.g. a GOP length).
pub fn encode_fixture(
    bin: &Path,
    codec: &str,
    (w, h, fps): (u32, u32, u32),
    frames: u32,
    extra: &[&str],
    out: &Path,
) -> io::Result<()> {
    let mut cmd = Command::new(bin);
    cmd.args(["-nostdin", "-y", "-v", "error", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={w}x{h}:rate={fps}"))
        .args(["-frames:v", &frames.to_string(), "-pix_fmt", "yuv420p"]);
    match codec {
        "hevc" => cmd.args([
            "-c:v",
            "libx265",
            "-x265-params",
            "aud=1:bframes=0:log-level=error",
            "-f",
            "hevc",
        ]),
        "av1" => cmd.args(["-c:v", "libsvtav1", "-svtav1-params", "lp=2", "-f", "obu"]),
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("no fixture encoder for {other}"),
            ))
        }
    };
    let result = cmd.args(extra).arg(out).stdin(Stdio::null()).output()?;
    if !result.status.success() {
        return Err(io::Error::other(format!(
            "ffmpeg9 fixture ({codec}) failed: {}",
            String::from_utf8_lossy(&result.stderr)
        )));
    }
    Ok(())
}
