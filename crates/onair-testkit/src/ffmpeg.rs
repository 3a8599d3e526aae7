//! FFmpeg as the judge.
//!
//! Why: onair's output is only correct if a real decoder says so. The receiver that keeps
//! what was actually sent is [`crate::listener::FfmpegListener`]. The judges wrap
//! ffprobe/ffmpeg: stream shape ([`probe`]), per-frame keyframe flags ([`video_frames`]),
//! packet timestamps ([`packet_times`]), decode errors ([`decode_errors`]), and the lost
//! references FFmpeg conceals silently at `-v error` ([`frame_num_gaps`]). [`gray_frames`]
//! and [`audio_pcm`] give tests the decoded pixels (for the frame index painted in the test
//! pattern) and PCM (for tone checks).

use crate::procs::ChildGuard;
use serde_json::Value;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::process::{ChildStdout, Command, Stdio};
use std::time::Duration;

/// One stream as seen by `ffprobe -count_frames`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamInfo {
    /// Stream index in the container.
    pub index: u32,
    /// "video", "audio", "data", ...
    pub codec_type: String,
    /// "h264", "aac", ...
    pub codec_name: String,
    /// Codec profile ("High", "LC", ...), empty if unknown.
    pub profile: String,
    /// Video width (0 for audio).
    pub width: u32,
    /// Video height (0 for audio).
    pub height: u32,
    /// Audio sample rate (0 for video).
    pub sample_rate: u32,
    /// Audio channels (0 for video).
    pub channels: u32,
    /// Frames the decoder actually produced (`nb_read_frames`).
    pub nb_read_frames: u64,
    /// Stream duration in seconds, if known.
    pub duration: Option<f64>,
    /// Average frame rate (`avg_frame_rate`), if known.
    pub avg_frame_rate: Option<f64>,
}

/// The result of [`probe`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Probe {
    /// Container format name ("flv", ...).
    pub format_name: String,
    /// Container duration in seconds, if known.
    pub duration: Option<f64>,
    /// All streams.
    pub streams: Vec<StreamInfo>,
    /// The raw ffprobe JSON, for anything not parsed above.
    pub raw: Value,
}

impl Probe {
    /// The first video stream.
    pub fn video(&self) -> Option<&StreamInfo> {
        self.streams.iter().find(|s| s.codec_type == "video")
    }
    /// The first audio stream.
    pub fn audio(&self) -> Option<&StreamInfo> {
        self.streams.iter().find(|s| s.codec_type == "audio")
    }
}

/// One decoded video frame (`ffprobe -show_frames`).
#[derive(Debug, Clone, PartialEq)]
pub struct FrameInfo {
    /// Presentation time in seconds (`pts_time`, else `best_effort_timestamp_time`).
    pub pts_time: Option<f64>,
    /// True for a keyframe.
    pub key_frame: bool,
    /// "I", "P", "B" or "?".
    pub pict_type: String,
}

/// One demuxed packet (`ffprobe -show_packets`).
#[derive(Debug, Clone, PartialEq)]
pub struct PacketInfo {
    /// Presentation time in seconds.
    pub pts_time: Option<f64>,
    /// Decode time in seconds.
    pub dts_time: Option<f64>,
    /// Payload size in bytes.
    pub size: u64,
    /// True if the container flags the packet as a keyframe.
    pub key: bool,
}

fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn text(v: &Value) -> String {
    v.as_str().map(str::to_string).unwrap_or_default()
}

fn rate(v: &Value) -> Option<f64> {
    let s = v.as_str()?;
    let (a, b) = s.split_once('/')?;
    let (a, b): (f64, f64) = (a.parse().ok()?, b.parse().ok()?);
    (b != 0.0).then(|| a / b)
}

fn run_json(cmd: &mut Command) -> io::Result<Value> {
    let out = cmd.stdin(Stdio::null()).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{:?} failed ({}): {}",
            cmd.get_program(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// `ffprobe -v error -count_frames -show_streams -show_format -of json PATH`.
pub fn probe(path: &Path) -> io::Result<Probe> {
    let v = run_json(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-count_frames",
                "-show_streams",
                "-show_format",
            ])
            .args(["-of", "json"])
            .arg(path),
    )?;
    let streams = v["streams"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| StreamInfo {
                    index: num(&s["index"]).unwrap_or(0.0) as u32,
                    codec_type: text(&s["codec_type"]),
                    codec_name: text(&s["codec_name"]),
                    profile: text(&s["profile"]),
                    width: num(&s["width"]).unwrap_or(0.0) as u32,
                    height: num(&s["height"]).unwrap_or(0.0) as u32,
                    sample_rate: num(&s["sample_rate"]).unwrap_or(0.0) as u32,
                    channels: num(&s["channels"]).unwrap_or(0.0) as u32,
                    nb_read_frames: num(&s["nb_read_frames"]).unwrap_or(0.0) as u64,
                    duration: num(&s["duration"]),
                    avg_frame_rate: rate(&s["avg_frame_rate"]),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Probe {
        format_name: text(&v["format"]["format_name"]),
        duration: num(&v["format"]["duration"]),
        streams,
        raw: v,
    })
}

/// Every decoded frame of the first video stream, in output order.
pub fn video_frames(path: &Path) -> io::Result<Vec<FrameInfo>> {
    let v = run_json(
        Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0", "-show_frames"])
            .args([
                "-show_entries",
                "frame=pts_time,best_effort_timestamp_time,key_frame,pict_type",
            ])
            .args(["-of", "json"])
            .arg(path),
    )?;
    Ok(v["frames"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| FrameInfo {
                    pts_time: num(&f["pts_time"]).or_else(|| num(&f["best_effort_timestamp_time"])),
                    key_frame: num(&f["key_frame"]) == Some(1.0),
                    pict_type: f["pict_type"].as_str().unwrap_or("?").to_string(),
                })
                .collect()
        })
        .unwrap_or_default())
}

/// Packets of one stream; `stream` is an ffprobe stream specifier ("v:0", "a:0", "1").
pub fn packet_times(path: &Path, stream: &str) -> io::Result<Vec<PacketInfo>> {
    let v = run_json(
        Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", stream, "-show_packets"])
            .args(["-show_entries", "packet=pts_time,dts_time,size,flags"])
            .args(["-of", "json"])
            .arg(path),
    )?;
    Ok(v["packets"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| PacketInfo {
                    pts_time: num(&p["pts_time"]),
                    dts_time: num(&p["dts_time"]),
                    size: num(&p["size"]).unwrap_or(0.0) as u64,
                    key: p["flags"].as_str().is_some_and(|f| f.contains('K')),
                })
                .collect()
        })
        .unwrap_or_default())
}

/// Stderr of `ffmpeg -v error -i PATH -f null -`: empty means the file decodes cleanly.
pub fn decode_errors(path: &Path) -> io::Result<String> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .stdin(Stdio::null())
        .output()?;
    let mut s = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() && s.is_empty() {
        s = format!("ffmpeg exited with {}", out.status);
    }
    Ok(s)
}

/// Counts "frame num gap" lines in `ffmpeg -v debug` decoding output: each is a lost
/// reference frame (a mid-GOP drop) that FFmpeg conceals without an error at `-v error`.
pub fn frame_num_gaps(path: &Path) -> io::Result<usize> {
    let child = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "debug", "-i"])
        .arg(path)
        .args(["-map", "0:v:0", "-f", "null", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut g = ChildGuard::new("ffmpeg-debug", child);
    let stderr = g
        .child_mut()
        .and_then(|c| c.stderr.take())
        .ok_or_else(|| io::Error::other("no stderr pipe"))?;
    let mut r = BufReader::new(stderr);
    let mut line = Vec::new();
    let mut n = 0;
    while r.read_until(b'\n', &mut line)? > 0 {
        if line
            .to_ascii_lowercase()
            .windows(13)
            .any(|w| w == b"frame num gap")
        {
            n += 1;
        }
        line.clear();
    }
    g.wait_timeout(Duration::from_secs(30))?;
    Ok(n)
}

/// Decoded luma planes (`-f rawvideo -pix_fmt gray`, scaled to `w`x`h` if needed), one
/// `Vec<u8>` of `w*h` bytes per decoded frame, streamed from a piped ffmpeg.
#[derive(Debug)]
pub struct GrayFrames {
    child: ChildGuard,
    stdout: Option<ChildStdout>,
    frame_len: usize,
}

impl Iterator for GrayFrames {
    type Item = Vec<u8>;
    fn next(&mut self) -> Option<Vec<u8>> {
        let out = self.stdout.as_mut()?;
        let mut buf = vec![0u8; self.frame_len];
        match out.read_exact(&mut buf) {
            Ok(()) => Some(buf),
            Err(_) => {
                self.stdout = None;
                let _ = self.child.wait_timeout(Duration::from_secs(5));
                None
            }
        }
    }
}

/// Decodes the first video stream of `path` to gray frames of `w`x`h`.
/// `-fps_mode passthrough`: no frame is duplicated or dropped to fit a rate.
pub fn gray_frames(path: &Path, w: u32, h: u32) -> io::Result<GrayFrames> {
    let child = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v:0", "-fps_mode", "passthrough", "-s"])
        .arg(format!("{w}x{h}"))
        .args(["-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut child = ChildGuard::new("ffmpeg-gray", child);
    let stdout = child.child_mut().and_then(|c| c.stdout.take());
    Ok(GrayFrames {
        child,
        stdout,
        frame_len: (w as usize) * (h as usize),
    })
}

/// Decodes every frame and applies `decode` (e.g. the test pattern's frame-index reader,
/// `|luma, w, h| decode_frame_index(luma, w, h)`) to each luma plane.
pub fn frame_indices<F>(path: &Path, w: u32, h: u32, decode: F) -> io::Result<Vec<Option<u64>>>
where
    F: Fn(&[u8], u32, u32) -> Option<u64>,
{
    Ok(gray_frames(path, w, h)?.map(|f| decode(&f, w, h)).collect())
}

/// Decodes an elementary stream held in memory (`format`: FFmpeg's demuxer, e.g. `h264`,
/// `aac`) and returns what `output_args` write to stdout (e.g. `-f rawvideo -pix_fmt
/// gray`). An error if FFmpeg fails or prints anything at `-v error`: a decode error. Why:
/// the encoders' unit tests judge the bytes they produce by a real decoder.
pub fn decode_elementary(stream: &[u8], format: &str, output_args: &[&str]) -> io::Result<Vec<u8>> {
    let dir = tempfile::tempdir()?;
    let input = dir.path().join(format!("in.{format}"));
    std::fs::write(&input, stream)?;
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-f", format, "-i"])
        .arg(&input)
        .args(output_args)
        .arg("-")
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() || !out.stderr.is_empty() {
        return Err(io::Error::other(format!(
            "ffmpeg decoding {format} ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(out.stdout)
}

/// The first audio stream as mono 48 kHz signed 16-bit samples.
pub fn audio_pcm(path: &Path) -> io::Result<Vec<i16>> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args([
            "-map", "0:a:0", "-ac", "1", "-ar", "48000", "-f", "s16le", "-",
        ])
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "ffmpeg audio decode failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(out
        .stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect())
}

/// Relative power of `freq` Hz in `samples` (Goertzel), normalised to 0..=1 for a
/// full-scale sine: compare a tone against its neighbours to check an audio source.
pub fn tone_power(samples: &[i16], sample_rate: u32, freq: f64) -> f64 {
    if samples.is_empty() || sample_rate == 0 {
        return 0.0;
    }
    let w = 2.0 * std::f64::consts::PI * freq / f64::from(sample_rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) / 32768.0 + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let p = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    let n = samples.len() as f64;
    4.0 * p / (n * n)
}

/// [`tone_power`] of `hz` over seconds `from..to` of `samples` at `sample_rate` (clamped
/// to what there is): a tone's level in one part of a recording.
pub fn band_power(samples: &[i16], sample_rate: u32, from: f64, to: f64, hz: f64) -> f64 {
    let at = |s: f64| ((s * f64::from(sample_rate)) as usize).min(samples.len());
    let (a, b) = (at(from), at(to));
    tone_power(&samples[a..b.max(a)], sample_rate, hz)
}

/// [`band_power`] of each of `hz` over seconds `from..to`, printed on stderr with `what`
/// (the numbers a capture test reports).
pub fn band_powers<const N: usize>(
    what: &str,
    samples: &[i16],
    rate: u32,
    from: f64,
    to: f64,
    hz: [f64; N],
) -> [f64; N] {
    let p = hz.map(|f| band_power(samples, rate, from, to, f));
    let shown: Vec<String> = hz
        .iter()
        .zip(&p)
        .map(|(f, p)| format!("{f} Hz power {p:.5}"))
        .collect();
    eprintln!("{what}, {from:.1}..{to:.1} s: {}", shown.join(", "));
    p
}

/// Root mean square of `samples`, 0..=1 (0 = digital silence).
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let s: f64 = samples
        .iter()
        .map(|&x| (f64::from(x) / 32768.0).powi(2))
        .sum();
    (s / samples.len() as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listener::FfmpegListener;
    use crate::procs::require_tools;

    /// Publishes 2 s of 160x120@15 (GOP 15) + 440 Hz tone to `url`.
    fn publish(url: &str) -> std::process::Output {
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-re", "-f", "lavfi", "-i"])
            .arg("testsrc2=size=160x120:rate=15")
            .args(["-f", "lavfi", "-i", "sine=f=440:r=48000", "-t", "2"])
            .args(X264_ULTRAFAST_GOP15)
            .args(["-bf", "0"])
            .args(["-c:a", "aac", "-f", "flv", url])
            .output()
            .expect("run ffmpeg publisher")
    }

    #[test]
    fn listener_and_judges() {
        if !require_tools(&["ffmpeg", "ffprobe"]) {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("got.flv");
        let mut l = FfmpegListener::start(&out).expect("listener");
        let p = publish(&l.url());
        assert!(p.status.success(), "publish: {p:?}");
        let st = l.wait(Duration::from_secs(10)).expect("wait");
        assert!(
            st.is_some_and(|s| s.success()),
            "listener did not exit cleanly after publisher left: {st:?}"
        );
        assert!(
            l.unexpected_stderr().is_empty(),
            "listener stderr: {}",
            l.stderr()
        );

        let pr = probe(&out).expect("probe");
        let v = pr.video().expect("video stream");
        assert_eq!(
            (v.codec_name.as_str(), v.width, v.height),
            ("h264", 160, 120)
        );
        assert!((28..=32).contains(&v.nb_read_frames), "{v:?}");
        let a = pr.audio().expect("audio stream");
        assert_eq!(a.codec_name, "aac");

        let frames = video_frames(&out).expect("frames");
        assert_eq!(frames.len() as u64, v.nb_read_frames);
        assert!(frames[0].key_frame && frames[0].pict_type == "I");
        assert_eq!(frames.iter().filter(|f| f.key_frame).count(), 2);
        let pk = packet_times(&out, "v:0").expect("packets");
        assert_eq!(pk.len(), frames.len());
        assert!(pk[0].key);

        assert_eq!(decode_errors(&out).expect("decode"), "");
        assert_eq!(frame_num_gaps(&out).expect("gaps"), 0);

        let idx = frame_indices(&out, 160, 120, |luma, w, h| {
            assert_eq!(luma.len(), (w * h) as usize);
            Some(luma.len() as u64)
        })
        .expect("gray");
        assert_eq!(idx.len() as u64, v.nb_read_frames);

        let pcm = audio_pcm(&out).expect("pcm");
        assert!(pcm.len() > 48_000, "{} samples", pcm.len());
        let tone = tone_power(&pcm, 48_000, 440.0);
        let off = tone_power(&pcm, 48_000, 1000.0);
        assert!(tone > 10.0 * off, "440 Hz {tone} vs 1 kHz {off}");
        assert!(rms(&pcm) > 0.01);
    }

    #[test]
    fn gaps_detected_when_reference_dropped() {
        if !require_tools(&["ffmpeg", "ffprobe"]) {
            return;
        }
        // Build an H.264 Annex-B stream, drop one P frame mid-GOP, and check the judge sees it.
        let dir = tempfile::tempdir().expect("tempdir");
        let es = dir.path().join("a.h264");
        let st = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-f", "lavfi", "-i"])
            .arg("testsrc2=size=160x120:rate=15")
            .args([
                "-t",
                "1",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-g",
                "15",
            ])
            .args(["-bf", "0", "-x264-params", "slices=1"])
            .arg(&es)
            .status()
            .expect("encode");
        assert!(st.success());
        let data = std::fs::read(&es).expect("read es");
        // Split at 4-byte start codes; drop the 4th non-IDR slice (NAL type 1).
        let mut starts: Vec<usize> = data
            .windows(4)
            .enumerate()
            .filter(|(_, w)| *w == [0, 0, 0, 1])
            .map(|(i, _)| i)
            .collect();
        starts.push(data.len());
        let mut outb = Vec::new();
        let mut slices = 0;
        for w in starts.windows(2) {
            let nal = &data[w[0]..w[1]];
            if nal.len() > 4 && nal[4] & 0x1f == 1 {
                slices += 1;
                if slices == 4 {
                    continue;
                }
            }
            outb.extend_from_slice(nal);
        }
        let cut = dir.path().join("cut.h264");
        std::fs::write(&cut, outb).expect("write cut");
        assert_eq!(frame_num_gaps(&es).expect("gaps"), 0);
        assert!(frame_num_gaps(&cut).expect("gaps") >= 1);
    }
}

/// A media file made by the FFmpeg CLI for a file-source test: raw I420 pictures given by
/// the test (e.g. onair's test pattern, which carries its frame number) and a sine tone.
#[derive(Debug, Clone)]
pub struct Clip {
    /// Picture size.
    pub width: u32,
    /// Picture size.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Number of pictures.
    pub frames: u32,
    /// A sine of this frequency as the sound (none: no audio stream).
    pub tone_hz: Option<u32>,
    /// Sample rate of the sound.
    pub sample_rate: u32,
    /// Channels of the sound (the sine on each).
    pub channels: u32,
    /// Extra output options before the file name (codecs, `-movflags +faststart`, ...).
    pub output_args: Vec<String>,
}

/// libx264 at its fastest with a keyframe every 15 frames: the test kit's quick H.264.
const X264_ULTRAFAST_GOP15: [&str; 6] = ["-c:v", "libx264", "-preset", "ultrafast", "-g", "15"];

impl Clip {
    /// H.264 (libx264 ultrafast, a keyframe every 15 frames, yuv420p) with a 1 kHz tone in
    /// AAC, 48 kHz stereo: the clip the file-source tests play, in the codecs most files
    /// have. Change the fields or add to `output_args` for a variant.
    pub fn h264_aac(width: u32, height: u32, fps: u32, frames: u32) -> Clip {
        let args = X264_ULTRAFAST_GOP15
            .iter()
            .chain(&["-pix_fmt", "yuv420p", "-c:a", "aac"]);
        Clip {
            width,
            height,
            fps,
            frames,
            tone_hz: Some(1000),
            sample_rate: 48_000,
            channels: 2,
            output_args: args.map(|s| s.to_string()).collect(),
        }
    }
}

/// Encodes `clip` into `path`: `picture(i)` gives picture `i` as I420 bytes (tightly
/// packed planes), the sound lasts exactly as long as the pictures. Why FFmpeg: a file
/// source must read what real encoders and muxers write, not a file made by onair.
pub fn make_clip(path: &Path, clip: &Clip, picture: impl Fn(u32) -> Vec<u8>) -> io::Result<()> {
    use std::io::Write;
    let duration = f64::from(clip.frames) / f64::from(clip.fps);
    let mut cmd = Command::new("ffmpeg");
    cmd.args([
        "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "yuv420p",
    ])
    .args(["-s", &format!("{}x{}", clip.width, clip.height)])
    .args(["-r", &clip.fps.to_string(), "-i", "pipe:0"]);
    if let Some(hz) = clip.tone_hz {
        cmd.args(["-f", "lavfi", "-i"]).arg(format!(
            "sine=frequency={hz}:sample_rate={}:duration={duration}",
            clip.sample_rate
        ));
        cmd.args(["-ac", &clip.channels.to_string()]);
    }
    cmd.args(&clip.output_args).arg(path);
    let child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut child = ChildGuard::new("ffmpeg-clip", child);
    let mut stdin = child
        .child_mut()
        .and_then(|c| c.stdin.take())
        .ok_or_else(|| io::Error::other("no stdin"))?;
    for i in 0..clip.frames {
        stdin.write_all(&picture(i))?;
    }
    drop(stdin);
    let status = child
        .wait_timeout(Duration::from_secs(60))?
        .ok_or_else(|| io::Error::other("ffmpeg did not finish the clip in 60 s"))?;
    let mut err = String::new();
    if let Some(mut e) = child.child_mut().and_then(|c| c.stderr.take()) {
        let _ = e.read_to_string(&mut err);
    }
    if !status.success() {
        return Err(io::Error::other(format!("ffmpeg made no clip: {err}")));
    }
    Ok(())
}
