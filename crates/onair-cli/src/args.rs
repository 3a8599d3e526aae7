//! Command-line grammar (clap): the subcommands and their options. The value
//! parsers are in `values.rs` (numbers, sizes, bitrates, durations) and
//! `sources.rs` (`--video`, `--audio`, `--input`); `settings.rs` turns the
//! parsed options into the library's settings for a `StreamerConfig`.
//!
//! Why values are parsed by clap and not by hand later: every malformed value
//! must exit with code 2 and one line naming the option, which is what clap
//! does for a `value_parser` error.

use clap::{Args, Parser, Subcommand};
use onair::video::encoder::{parse_codec, parse_encoder_opt, EncoderKind, VideoCodec};
use std::path::PathBuf;
use std::time::Duration;

mod settings;
mod sources;
#[cfg(test)]
mod tests;
mod values;

use sources::{parse_audio, parse_input, parse_video};
pub use sources::{AudioChoice, VideoChoice};
pub use values::{
    parse_audio_bitrate, parse_on_off, parse_seconds, parse_size, parse_video_bitrate,
};
use values::{
    parse_bframes, parse_buffer_ms, parse_buffer_packets, parse_bytes, parse_ca_file, parse_fps,
    parse_keyint, parse_max_retries, parse_reconnect_max_delay, parse_stall_timeout,
};

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
