//! Command-line grammar (clap) and its translation into a `StreamerConfig`.
//!
//! Why values are parsed here and not by hand later: every malformed value
//! must exit with code 2 and one line naming the option, which is what clap
//! does for a `value_parser` error.

use clap::{Args, Parser, Subcommand};
use onair::limits;
use onair::output::buffer::BufferLimits;
use onair::video::encoder::{
    parse_codec, parse_encoder_opt, EncoderKind, EncoderSettings, VideoCodec,
};
use onair::{AudioSettings, AudioSourceSpec, FileSpec, VideoSettings, VideoSourceSpec};
use std::path::PathBuf;
use std::time::Duration;

/// onair: live streaming (H.264 + AAC over RTMP) that survives bad networks.
#[derive(Debug, Parser)]
#[command(name = "onair", version, long_version = LONG_VERSION, about, long_about = None, after_help = EXIT_CODES)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `onair --version`: the version, the commit it was built from (build.rs),
/// and what this build can encode and publish, so a bug report or a package
/// says exactly what it runs. The licence follows from the encoders (README).
#[cfg(not(feature = "gpl"))]
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\ncommit: ",
    env!("ONAIR_COMMIT"),
    "\nbuild: default (no GPL code)",
    "\nvideo encoders: openh264 (H.264 Constrained Baseline)",
    "\naudio encoders: fdk-aac (AAC-LC)",
    "\noutputs: RTMP and RTMPS (own socket, rustls, adaptive bitrate), FLV and fragmented MP4 files, built-in local receiver",
    "\nsources: test pattern, X11 screen (MIT-SHM), ALSA/PulseAudio devices, test tone",
    "\nlicence: MIT OR Apache-2.0 for onair's code; the binary includes openh264 (BSD-2-Clause) and \
     fdk-aac (Fraunhofer FDK AAC licence, not GPL-compatible); no GPL code",
);

/// `onair --version` of the GPL build (feature `gpl`): libavcodec's encoders
/// and FFmpeg's AAC, no fdk-aac; the binary as a whole is GPL.
#[cfg(feature = "gpl")]
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\ncommit: ",
    env!("ONAIR_COMMIT"),
    "\nbuild: GPL (libavcodec)",
    "\nvideo encoders: openh264, x264, x265, SVT-AV1, VA-API, NVENC (libavcodec; `onair encoders` \
     lists what this machine can use)",
    "\naudio encoders: FFmpeg aac (AAC-LC)",
    "\noutputs: RTMP (own socket, adaptive bitrate), FLV and fragmented MP4 files, built-in local receiver",
    "\nsources: test pattern, X11 screen (MIT-SHM), ALSA/PulseAudio devices, test tone",
    "\nlicence: GPL-2.0-or-later for this binary as a whole (it links libx264, libx265 and Debian's \
     libavcodec, which are GPL); onair's own code is MIT OR Apache-2.0; no fdk-aac",
);

const EXIT_CODES: &str = "Exit codes: 0 success, 1 runtime failure (one-line reason on stderr), 2 usage error \
(including a recording file that exists without --overwrite).\n\
Outputs are isolated: a failed recording (disk full, I/O error) does not stop the streams, but makes \
onair exit 1 at the end; an --also destination that gives up does not stop the others.\n\
The stream key may be given in ONAIR_STREAM_KEY instead of the URL, so it stays out of shell history and `ps`; \
it is never printed.";

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Publish to an RTMP server. Without URL, publish to a built-in local
    /// receiver that records what it gets (nothing else needed).
    Stream(StreamArgs),
    /// List the screens, audio inputs and PulseAudio sinks, with the names the options accept.
    Devices,
    /// List the video encoders --video-encoder accepts and whether this machine can use
    /// each now (each is opened and given a frame; hardware ones need their device).
    Encoders,
    /// Record to a file only (.flv, or .mp4 written as fragmented MP4 so a
    /// crash leaves a playable file), no network.
    Record(RecordArgs),
    /// Draw the timeline of a session from its --stats-json file (SVG).
    Report(ReportArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the man pages (roff: onair.1 and one per subcommand) into DIR,
    /// as the Debian package installs them.
    #[command(hide = true)]
    Man {
        /// Where to write them.
        dir: PathBuf,
    },
}

/// `onair stream`.
#[derive(Debug, Args)]
pub struct StreamArgs {
    /// rtmp://host[:port]/app/streamkey, or rtmps:// for RTMP over TLS (port 443 by
    /// default; the key may come from ONAIR_STREAM_KEY).
    pub url: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub net: NetArgs,
}

/// `onair record`.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Output file: .flv or .mp4 (fragmented). Refused if it exists, unless --overwrite.
    pub file: PathBuf,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `onair report`.
#[derive(Debug, Args)]
#[command(after_help = REPORT_HELP)]
pub struct ReportArgs {
    /// The JSON Lines file written by `--stats-json`.
    #[arg(value_name = "STATS.jsonl")]
    pub stats: PathBuf,
    /// Picture to write, SVG only (for a PNG: rsvg-convert -o x.png x.svg).
    /// Default: the stats file's name with .svg.
    #[arg(short = 'o', long = "out", value_name = "FILE.svg", value_parser = crate::report::parse_svg_path)]
    pub out: Option<PathBuf>,
    /// Draw only this output: its name as in the stats' `output` field, or
    /// its 0-based position in the stats' `outputs` list (recorders included).
    /// Default: every stream output, stacked; recorders only when there is
    /// no stream output.
    #[arg(long, value_name = "NAME|INDEX")]
    pub output: Option<String>,
}

const REPORT_HELP: &str = "Per output, on one time axis (time since start): kbit/s sent, \
the encoder's target and the link estimate; buffer latency and congestion (0..1); video and audio \
dropped per second; the link state as background bands (connecting, live, reconnecting, stopped, \
failed) and each reconnect as a vertical line. Fields missing from older stats files are left out.\n\
A line that is not a stats object (e.g. the truncated last line of a killed run) is skipped with \
a warning naming the line; a missing or empty file, or one with no good line, exits 1; an --output \
the file does not have exits 2.";

/// Options shared by stream and record.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Video source: test | screen[:DISPLAY][+X,Y,WxH] | window:NAME|ID[@DISPLAY] |
    /// file:PATH | none (X11; e.g. screen::0+0,0,1280x720, window:Firefox; `onair devices`
    /// lists screens and windows). file:PATH plays a media file in real time, scaled to
    /// --size (GPL build only). Default: test, or the --input file.
    #[arg(long, value_parser = parse_video)]
    pub video: Option<VideoChoice>,
    /// Audio source: test | none | desktop | mic | pulse:SOURCE | default | ALSA card name |
    /// file:PATH, mixed with '+' and an optional @volume each (e.g. desktop+mic@0.6). desktop =
    /// the PulseAudio/PipeWire default sink's monitor, mic = its default source. `onair
    /// devices` lists the names. file:PATH plays a file's sound (GPL build only). Default:
    /// test, or the --input file.
    #[arg(long, value_parser = parse_audio)]
    pub audio: Option<AudioChoice>,
    /// Play this media file as both video and audio (unless --video / --audio say otherwise),
    /// in real time, like `--video file:PATH --audio file:PATH` (one reader for both). At its
    /// end the run stops cleanly (exit 0) unless --loop; a file that cannot be read to its end
    /// (truncated, corrupt) stops the run with exit 1 naming the file. GPL build only.
    #[arg(long, value_name = "PATH", value_parser = parse_input)]
    pub input: Option<PathBuf>,
    /// Play file sources again from the start at their end, without a gap (timestamps go on).
    #[arg(long = "loop")]
    pub looping: bool,
    /// Output size WxH (even, 160..=3840 per side, at most 3840x2160 either way).
    #[arg(long, default_value = "1280x720", value_parser = parse_size)]
    pub size: (u32, u32),
    /// Frames per second (1..=120).
    #[arg(long, default_value_t = 30, value_parser = parse_fps)]
    pub fps: u32,
    /// H.264 bitrate, e.g. 2500k, 6M, 800000 (50k..=50M). With adaptive
    /// bitrate, the ceiling: onair lowers it to fit a slow link and never
    /// goes above it.
    #[arg(long, default_value = "2500k", value_parser = parse_video_bitrate)]
    pub video_bitrate: u32,
    /// Adapt the video bitrate to what each destination's link carries
    /// (on), or keep it fixed and drop frames when the link is too slow (off).
    #[arg(long, default_value = "on", value_parser = parse_on_off, value_name = "on|off", action = clap::ArgAction::Set)]
    pub adaptive_bitrate: bool,
    /// Lowest video bitrate adaptation may choose; below it, frames are
    /// dropped instead (default: 0.01 bit per pixel and frame, e.g. 276k at
    /// 720p30).
    #[arg(long, value_parser = parse_video_bitrate)]
    pub min_video_bitrate: Option<u32>,
    /// AAC bitrate, e.g. 160k (32k..=512k).
    #[arg(long, default_value = "160k", value_parser = parse_audio_bitrate)]
    pub audio_bitrate: u32,
    /// Video encoder: openh264 | x264 | x265 | svtav1 | h264_vaapi | hevc_vaapi | h264_nvenc |
    /// hevc_nvenc (all but openh264 need the GPL build; `onair encoders` lists what this machine
    /// can use). Default: the one --video-codec picks.
    #[arg(long, value_parser = EncoderKind::parse, value_name = "NAME")]
    pub video_encoder: Option<EncoderKind>,
    /// Video codec when no --video-encoder is named: h264 (x264 in the GPL build, openh264 in
    /// the default one), hevc (x265), av1 (SVT-AV1).
    #[arg(long, value_parser = parse_codec, value_name = "h264|hevc|av1")]
    pub video_codec: Option<VideoCodec>,
    /// Encoder preset, as FFmpeg's -preset: x264/x265 ultrafast..placebo (default veryfast),
    /// SVT-AV1 0..13 (default 10), NVENC p1..p7.
    #[arg(long)]
    pub preset: Option<String>,
    /// Encoder profile, as FFmpeg's -profile (x264: baseline, main, high; x265: main).
    #[arg(long)]
    pub profile: Option<String>,
    /// B-frames between reference frames (0..=16; default: the preset's, 3 for x264
    /// veryfast; openh264 has none).
    #[arg(long, value_parser = parse_bframes)]
    pub bframes: Option<u32>,
    /// A libavcodec option of the encoder, KEY=VALUE, as FFmpeg's -KEY VALUE (repeatable;
    /// GPL build's encoders only), e.g. x264-params=b-adapt=0:b-pyramid=none, as OBS's
    /// "x264 options". Keys onair sets from its own options (b, g, bf, preset...) are refused.
    #[arg(long = "encoder-opt", value_name = "KEY=VALUE", value_parser = parse_encoder_opt)]
    pub encoder_opts: Vec<(String, String)>,
    /// Keyframe interval in seconds (0.1..=20).
    #[arg(long, default_value_t = 2.0, value_parser = parse_keyint)]
    pub keyint: f32,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long, value_parser = parse_seconds, allow_negative_numbers = true)]
    pub duration: Option<Duration>,
    /// Write stats as JSON Lines: one object per second and a final one.
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
    /// At the end, draw the session's timeline to this SVG file (as `onair
    /// report` would from the stats file; needs no --stats-json). A picture
    /// that cannot be written is a warning: the exit code stays the run's.
    #[arg(long, value_name = "FILE.svg", value_parser = crate::report::parse_svg_path)]
    pub report: Option<PathBuf>,
    /// No live status line on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    /// Replace the recording file if it exists (otherwise onair refuses, exit 2).
    #[arg(long)]
    pub overwrite: bool,
}

/// Network options of `onair stream`.
#[derive(Debug, Args)]
pub struct NetArgs {
    /// Also record what is encoded to this file (.flv or .mp4), whatever the
    /// network does: the recorder has its own queue and thread.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Also publish to this URL (repeatable). Each destination has its own
    /// buffer, send and reconnect threads; one that is down never affects
    /// another. ONAIR_STREAM_KEY applies to the main URL only.
    #[arg(long = "also", value_name = "URL")]
    pub also: Vec<String>,
    /// StreamBuffer bound in packets (4..=100000).
    #[arg(long, default_value_t = onair::output::buffer::DEFAULT_MAX_PACKETS, value_parser = parse_buffer_packets)]
    pub buffer_packets: usize,
    /// StreamBuffer bound in milliseconds of media (timestamp span + kernel backlog; 100..=60000).
    #[arg(long, default_value_t = 2000, value_parser = parse_buffer_ms)]
    pub buffer_ms: u64,
    /// StreamBuffer bound in bytes, e.g. 4M (64k..=1024M; default: twice the span at the
    /// stream's bitrate, at least 1 MiB).
    #[arg(long, value_parser = parse_bytes)]
    pub buffer_bytes: Option<usize>,
    /// Seconds without progress before the link is declared dead (0.1..=3600).
    #[arg(long, default_value = "5", value_parser = parse_stall_timeout)]
    pub stall_timeout: Duration,
    /// Cap of the reconnect backoff, seconds (0.1..=3600).
    #[arg(long, default_value = "30", value_parser = parse_reconnect_max_delay)]
    pub reconnect_max_delay: Duration,
    /// Retries per outage before giving up (0..=1000000; default: unlimited).
    #[arg(long, value_parser = parse_max_retries)]
    pub max_retries: Option<u32>,
    /// rtmps:// only: also trust the certificate authorities in this PEM file (besides
    /// the system store, which SSL_CERT_FILE / SSL_CERT_DIR can replace). A certificate
    /// that fails verification stops onair at once (exit 1), without retrying.
    #[arg(long, value_name = "PATH", value_parser = parse_ca_file)]
    pub ca_file: Option<PathBuf>,
}

/// Parsed `--video`.
#[derive(Clone, Debug, PartialEq)]
pub enum VideoChoice {
    /// A source.
    Some(VideoSourceSpec),
    /// No video.
    None,
}

/// Parsed `--audio`.
#[derive(Clone, Debug, PartialEq)]
pub enum AudioChoice {
    /// A source.
    Some(AudioSourceSpec),
    /// No audio.
    None,
}

/// `file:PATH` -> the path (looping is set later from --loop), refused by a
/// build without the file source.
fn parse_file(s: &str) -> Option<Result<FileSpec, String>> {
    let path = s.strip_prefix("file:")?;
    Some(parse_input(path).map(|path| FileSpec {
        path,
        looping: false,
    }))
}

fn parse_input(path: &str) -> Result<PathBuf, String> {
    if !onair::FILE_SOURCE {
        return Err(onair::pipeline::NO_FILE_SOURCE.into());
    }
    if path.is_empty() {
        return Err("empty file name".into());
    }
    Ok(PathBuf::from(path))
}

fn parse_ca_file(s: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(s);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("'{s}' is not a readable file"))
    }
}

fn parse_video(s: &str) -> Result<VideoChoice, String> {
    if let Some(file) = parse_file(s) {
        return file.map(|f| VideoChoice::Some(VideoSourceSpec::File(f)));
    }
    match s {
        "test" => Ok(VideoChoice::Some(VideoSourceSpec::TestPattern)),
        "none" => Ok(VideoChoice::None),
        "screen" => Ok(VideoChoice::Some(VideoSourceSpec::Screen(String::new()))),
        _ => match (s.strip_prefix("screen:"), s.strip_prefix("window:")) {
            (Some(display), _) if !display.is_empty() => {
                Ok(VideoChoice::Some(VideoSourceSpec::Screen(display.into())))
            }
            (_, Some(window)) if !window.is_empty() => {
                Ok(VideoChoice::Some(VideoSourceSpec::Window(window.into())))
            }
            _ => Err(format!(
                "'{s}' is not one of test, screen, screen:DISPLAY, window:NAME|ID[@DISPLAY], file:PATH, none"
            )),
        },
    }
}

fn parse_audio(s: &str) -> Result<AudioChoice, String> {
    if let Some(file) = parse_file(s) {
        return file.map(|f| AudioChoice::Some(AudioSourceSpec::File(f)));
    }
    match s {
        "test" => Ok(AudioChoice::Some(AudioSourceSpec::Tone)),
        "none" => Ok(AudioChoice::None),
        "" => Err("empty audio source".into()),
        device => Ok(AudioChoice::Some(AudioSourceSpec::Device(device.into()))),
    }
}

/// `1280x720` -> (1280, 720), within [`limits::check_size`].
pub fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("'{s}' is not WxH (e.g. 1280x720)"))?;
    let w: u32 = w.parse().map_err(|_| format!("'{s}': bad width"))?;
    let h: u32 = h.parse().map_err(|_| format!("'{s}': bad height"))?;
    limits::check_size(w, h)?;
    Ok((w, h))
}

/// Parses `on` / `off` (also true/false, yes/no, 1/0).
pub fn parse_on_off(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(format!("'{s}' is not on or off")),
    }
}

fn number<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, String> {
    s.trim().parse().map_err(|_| format!("'{s}' is not {what}"))
}

fn parse_fps(s: &str) -> Result<u32, String> {
    let fps = number(s, "a whole number of frames per second")?;
    limits::check_fps(fps)?;
    Ok(fps)
}

/// `2500k`, `2.5M`, `800000` -> bit/s, within [`limits::VIDEO_BITRATE_BPS`].
pub fn parse_video_bitrate(s: &str) -> Result<u32, String> {
    let bps = limits::parse_bitrate(s)?;
    limits::check_video_bitrate(bps)?;
    Ok(bps)
}

/// `160k` -> bit/s, within [`limits::AUDIO_BITRATE_BPS`].
pub fn parse_audio_bitrate(s: &str) -> Result<u32, String> {
    let bps = limits::parse_bitrate(s)?;
    limits::check_audio_bitrate(bps)?;
    Ok(bps)
}

fn parse_buffer_packets(s: &str) -> Result<usize, String> {
    let n = number(s, "a whole number of packets")?;
    limits::check_buffer_packets(n)?;
    Ok(n)
}

fn parse_buffer_ms(s: &str) -> Result<u64, String> {
    let ms = number(s, "a whole number of milliseconds")?;
    limits::check_buffer_ms(ms)?;
    Ok(ms)
}

/// `4M`, `512k`, `65536` -> bytes (binary units), within [`limits::BUFFER_BYTES`].
fn parse_bytes(s: &str) -> Result<usize, String> {
    let lower = s.trim().to_ascii_lowercase();
    let (num, mult) = if let Some(n) = lower.strip_suffix("mib").or(lower.strip_suffix('m')) {
        (n, 1 << 20)
    } else if let Some(n) = lower.strip_suffix("kib").or(lower.strip_suffix('k')) {
        (n, 1 << 10)
    } else {
        (lower.as_str(), 1)
    };
    let v: usize = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size in bytes (e.g. 4M)"))?;
    let bytes = v.saturating_mul(mult);
    limits::check_buffer_bytes(bytes)?;
    Ok(bytes)
}

/// Most B-frames accepted: x264's and x265's own maximum.
const MAX_BFRAMES: u32 = 16;

fn parse_bframes(s: &str) -> Result<u32, String> {
    let n: u32 = number(s, "a whole number of B-frames")?;
    if n > MAX_BFRAMES {
        return Err(format!("{n} is more than {MAX_BFRAMES}"));
    }
    Ok(n)
}

fn parse_keyint(s: &str) -> Result<f32, String> {
    let v: f32 = number(s, "a number of seconds")?;
    limits::check_keyint(v)?;
    Ok(v)
}

/// Seconds as a decimal number, more than 0 and at most [`limits::DURATION_MAX`].
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = number(s, "a number of seconds")?;
    if !(v > 0.0 && v <= limits::DURATION_MAX.as_secs_f64()) {
        return Err(format!(
            "{v} must be more than 0 and at most {} seconds",
            limits::DURATION_MAX.as_secs()
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

fn parse_stall_timeout(s: &str) -> Result<Duration, String> {
    let d = parse_seconds(s)?;
    limits::check_stall_timeout(d)?;
    Ok(d)
}

fn parse_reconnect_max_delay(s: &str) -> Result<Duration, String> {
    let d = parse_seconds(s)?;
    limits::check_reconnect_max_delay(d)?;
    Ok(d)
}

fn parse_max_retries(s: &str) -> Result<u32, String> {
    let n = number(s, "a whole number of retries")?;
    limits::check_max_retries(n)?;
    Ok(n)
}

impl CommonArgs {
    /// A file source as the options say: --input's when no explicit choice,
    /// --loop applied.
    fn file(&self) -> Option<FileSpec> {
        self.input.as_ref().map(|path| FileSpec {
            path: path.clone(),
            looping: self.looping,
        })
    }

    fn video_choice(&self) -> VideoChoice {
        match (&self.video, self.file()) {
            (Some(VideoChoice::Some(VideoSourceSpec::File(f))), _) => {
                VideoChoice::Some(VideoSourceSpec::File(FileSpec {
                    looping: self.looping,
                    ..f.clone()
                }))
            }
            (Some(choice), _) => choice.clone(),
            (None, Some(f)) => VideoChoice::Some(VideoSourceSpec::File(f)),
            (None, None) => VideoChoice::Some(VideoSourceSpec::TestPattern),
        }
    }

    fn audio_choice(&self) -> AudioChoice {
        match (&self.audio, self.file()) {
            (Some(AudioChoice::Some(AudioSourceSpec::File(f))), _) => {
                AudioChoice::Some(AudioSourceSpec::File(FileSpec {
                    looping: self.looping,
                    ..f.clone()
                }))
            }
            (Some(choice), _) => choice.clone(),
            (None, Some(f)) => AudioChoice::Some(AudioSourceSpec::File(f)),
            (None, None) => AudioChoice::Some(AudioSourceSpec::Tone),
        }
    }

    /// Video settings, if any video.
    pub fn video_settings(&self) -> Option<VideoSettings> {
        match self.video_choice() {
            VideoChoice::None => None,
            VideoChoice::Some(source) => Some(VideoSettings {
                source,
                width: self.size.0,
                height: self.size.1,
                fps: self.fps,
                bitrate_bps: self.video_bitrate,
                keyint_secs: self.keyint,
                adaptive_bitrate: self.adaptive_bitrate,
                min_bitrate_bps: self.min_video_bitrate,
                encoder: EncoderSettings {
                    encoder: self.video_encoder,
                    codec: self.video_codec,
                    preset: self.preset.clone(),
                    profile: self.profile.clone(),
                    bframes: self.bframes,
                    options: self.encoder_opts.clone(),
                },
            }),
        }
    }

    /// Audio settings, if any audio.
    pub fn audio_settings(&self) -> Option<AudioSettings> {
        match self.audio_choice() {
            AudioChoice::None => None,
            AudioChoice::Some(source) => Some(AudioSettings {
                source,
                bitrate_bps: self.audio_bitrate,
                ..AudioSettings::default()
            }),
        }
    }
}

impl NetArgs {
    /// Buffer bounds from the options, the byte bound defaulting by bitrate.
    pub fn limits(&self, total_bps: u64) -> BufferLimits {
        let mut limits =
            BufferLimits::for_bitrate_and_span(total_bps, Duration::from_millis(self.buffer_ms));
        limits.max_packets = self.buffer_packets;
        if let Some(b) = self.buffer_bytes {
            limits.max_bytes = b;
        }
        limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn ca_file_must_be_a_readable_file() {
        assert!(parse_ca_file("/nonexistent/ca.pem").is_err());
        assert!(
            parse_ca_file(env!("CARGO_MANIFEST_DIR")).is_err(),
            "a directory"
        );
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        assert_eq!(parse_ca_file(file), Ok(PathBuf::from(file)));
    }

    #[test]
    fn sizes_and_bitrates() {
        assert_eq!(parse_size("1280x720"), Ok((1280, 720)));
        assert!(parse_size("720p").is_err());
        assert_eq!(parse_video_bitrate("2500k"), Ok(2_500_000));
        assert_eq!(parse_video_bitrate("2.5M"), Ok(2_500_000));
        assert_eq!(parse_audio_bitrate("160000"), Ok(160_000));
        assert!(parse_video_bitrate("fast").is_err());
        assert_eq!(parse_on_off("on"), Ok(true));
        assert_eq!(parse_on_off("OFF"), Ok(false));
        assert!(parse_on_off("maybe").is_err());
        assert_eq!(parse_seconds("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("NaN").is_err());
    }

    /// Every option's parser at its edges, just inside and just outside,
    /// through clap as a user types them (exit 2 on the outside ones).
    #[test]
    fn every_limit_at_its_edges_through_the_parser() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["onair", "stream", "rtmp://h/app/k"];
            argv.extend_from_slice(extra);
            Cli::try_parse_from(argv)
        };
        let edges: &[(&str, &[&str], &[&str])] = &[
            (
                "--size",
                &["160x160", "3840x2160", "2160x3840"],
                &["158x160", "3842x2160", "3840x3840", "161x160"],
            ),
            ("--fps", &["1", "120"], &["0", "121"]),
            ("--video-bitrate", &["50k", "50M"], &["49999", "50000001"]),
            ("--audio-bitrate", &["32k", "512k"], &["31999", "512001"]),
            ("--keyint", &["0.1", "20"], &["0.09", "20.01"]),
            ("--buffer-packets", &["4", "100000"], &["3", "100001"]),
            ("--buffer-ms", &["100", "60000"], &["99", "60001"]),
            ("--buffer-bytes", &["64k", "1024M"], &["65535", "1025M"]),
            ("--stall-timeout", &["0.1", "3600"], &["0.099", "3600.001"]),
            (
                "--reconnect-max-delay",
                &["0.1", "3600"],
                &["0.099", "3600.001"],
            ),
            ("--max-retries", &["0", "1000000"], &["-1", "1000001"]),
        ];
        for (opt, inside, outside) in edges {
            for v in *inside {
                let r = parse(&[opt, v]);
                assert!(r.is_ok(), "{opt} {v} refused: {r:?}");
            }
            for v in *outside {
                let arg = format!("{opt}={v}");
                let e = parse(&[&arg]).expect_err(&arg);
                assert_eq!(e.exit_code(), 2, "{arg}");
            }
        }
    }

    #[test]
    fn sources() {
        assert_eq!(
            parse_video("test"),
            Ok(VideoChoice::Some(VideoSourceSpec::TestPattern))
        );
        assert_eq!(
            parse_video("screen:1"),
            Ok(VideoChoice::Some(VideoSourceSpec::Screen("1".into())))
        );
        assert_eq!(
            parse_video("window:Firefox@:1"),
            Ok(VideoChoice::Some(VideoSourceSpec::Window(
                "Firefox@:1".into()
            )))
        );
        assert!(parse_video("window:").is_err());
        assert!(parse_video("file:").is_err());
        assert!(parse_video("webcam").is_err());
        assert_eq!(parse_audio("none"), Ok(AudioChoice::None));
    }

    /// `file:PATH`, `--input` and `--loop`: a file source in the GPL build,
    /// a usage error naming the build otherwise.
    #[test]
    fn file_sources_need_the_gpl_build_and_take_loop() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["onair", "record", "x.flv"];
            argv.extend_from_slice(extra);
            Cli::try_parse_from(argv)
        };
        if !onair::FILE_SOURCE {
            for a in [
                &["--input", "c.mp4"][..],
                &["--video", "file:c.mp4"],
                &["--audio", "file:c.mp4"],
            ] {
                let e = parse(a).expect_err("refused");
                assert_eq!(e.exit_code(), 2);
                assert!(e.to_string().contains("GPL build"), "{e}");
            }
            return;
        }
        let common = |extra: &[&str]| match parse(extra).expect("parses").command {
            Command::Record(r) => r.common,
            other => panic!("{other:?}"),
        };
        let file = |path: &str, looping| FileSpec {
            path: path.into(),
            looping,
        };
        let c = common(&["--input", "c.mp4", "--loop", "--audio", "none"]);
        let v = c.video_settings().expect("video");
        assert_eq!(v.source, VideoSourceSpec::File(file("c.mp4", true)));
        assert!(c.audio_settings().is_none());
        let c = common(&["--video", "file:a.mkv", "--audio", "file:b.wav"]);
        let v = c.video_settings().expect("video");
        let a = c.audio_settings().expect("audio");
        assert_eq!(v.source, VideoSourceSpec::File(file("a.mkv", false)));
        assert_eq!(a.source, AudioSourceSpec::File(file("b.wav", false)));
        // --input fills only what is not chosen.
        let c = common(&["--input", "c.mp4", "--video", "test"]);
        let v = c.video_settings().expect("video");
        let a = c.audio_settings().expect("audio");
        assert_eq!(v.source, VideoSourceSpec::TestPattern);
        assert_eq!(a.source, AudioSourceSpec::File(file("c.mp4", false)));
        // Without any file the defaults stay.
        let c = common(&[]);
        let v = c.video_settings().expect("video");
        assert_eq!(v.source, VideoSourceSpec::TestPattern);
    }
}
