//! Options as JS passes them, and their translation into a validated
//! `onair::StreamerConfig`.
//!
//! Why numbers are `f64` here: a JS number converted straight to `u32` by
//! napi wraps negatives and truncates fractions silently; taking `f64` lets
//! every value be checked (integer, range) and rejected with the option's
//! name, synchronously, from the constructor.

use crate::errors::Failure;
use napi::bindgen_prelude::Either;
use onair::limits;
use onair::output::buffer::BufferLimits;
use onair::output::record::RecordFormat;
use onair::output::url::RtmpUrl;
use onair::video::encoder::{parse_codec, EncoderKind, EncoderSettings};
use onair::{
    AudioSettings, AudioSourceSpec, FileSpec, RecordConfig, StreamOutputConfig, StreamerConfig,
    VideoSettings, VideoSourceSpec,
};
use std::path::Path;
use std::time::Duration;

/// Environment variable read for the stream key when `streamKey` is absent.
pub const STREAM_KEY_ENV: &str = "ONAIR_STREAM_KEY";

/// Where pictures come from.
#[napi(string_enum = "lowercase")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VideoSource {
    /// The moving test pattern (default).
    Test,
    /// An X11 screen (`display`, default `$DISPLAY`).
    Screen,
    /// One X11 window (`window`: its name or id, on `display`).
    Window,
    /// The pictures of the media file `input` (GPL build only).
    File,
    /// No video.
    None,
}

/// Where sound comes from.
#[napi(string_enum = "lowercase")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AudioSource {
    /// A 440 Hz tone with a beep every second (default).
    Test,
    /// The default capture device.
    Default,
    /// The sound of the media file `input` (GPL build only).
    File,
    /// No audio.
    None,
}

/// Bounds of the StreamBuffer between the muxer and the network.
#[napi(object)]
#[derive(Debug, Default)]
pub struct BufferOptions {
    /// At most this many packets queued (4..=100000, default 100).
    pub packets: Option<f64>,
    /// At most this span of timestamps queued, ms (100..=60000, default 2000).
    pub ms: Option<f64>,
    /// At most this many bytes queued (65536..=1073741824; default: twice `ms` at the total bitrate, >= 1 MiB).
    pub bytes: Option<f64>,
}

/// Reconnect backoff.
#[napi(object)]
#[derive(Debug, Default)]
pub struct ReconnectOptions {
    /// Cap of the exponential backoff, ms (100..=3600000, default 30000).
    pub max_delay_ms: Option<f64>,
    /// Retries per outage before giving up (0..=1000000); absent = retry forever.
    pub max_retries: Option<f64>,
}

/// Options of `new VideoAudioStreamer(options)`; they mirror `onair stream`'s flags.
#[napi(object)]
#[derive(Debug, Default)]
pub struct StreamerOptions {
    /// `rtmp://host[:port]/app/key` or `rtmps://...` (or `rtmp://host/app` with `streamKey`).
    pub url: String,
    /// Stream key; replaces the URL's last segment. Default: `$ONAIR_STREAM_KEY`.
    pub stream_key: Option<String>,
    /// Video source (default `'test'`).
    pub video: Option<VideoSource>,
    /// X11 display for `video: 'screen'` or `'window'` (default `$DISPLAY`).
    pub display: Option<String>,
    /// The window for `video: 'window'`: its name (exact, else the first
    /// containing it) or its id (`0x1a00003`); `onair devices` lists them.
    pub window: Option<String>,
    /// Audio source (default `'test'`).
    pub audio: Option<AudioSource>,
    /// A capture device by name (overrides `audio`).
    pub audio_device: Option<String>,
    /// A media file played in real time as video and audio (unless `video` /
    /// `audio` say otherwise), like the CLI's `--input` (GPL build only).
    /// Without `loop`, the stream ends when the file has played.
    pub input: Option<String>,
    /// Play `input` again from its start at its end, without a gap.
    #[napi(js_name = "loop")]
    pub looping: Option<bool>,
    /// `'WxH'`, e.g. `'1280x720'` (default); or use `width` and `height`.
    pub size: Option<String>,
    /// Width in pixels (even, 160..=3840; at most 3840x2160 either way).
    pub width: Option<f64>,
    /// Height in pixels (even, 160..=3840; at most 3840x2160 either way).
    pub height: Option<f64>,
    /// Frames per second (1..=120, default 30).
    pub fps: Option<f64>,
    /// H.264 bitrate: bit/s as a number, or a string like `'2500k'`, `'6M'` (50k..=50M, default 2500k).
    pub video_bitrate: Option<Either<f64, String>>,
    /// AAC bitrate: bit/s or `'160k'` (32k..=512k, default 160k).
    pub audio_bitrate: Option<Either<f64, String>>,
    /// Keyframe interval, seconds (0.1..=20, default 2).
    pub keyint: Option<f64>,
    /// Video encoder, as `onair --video-encoder`: `'openh264'` (this addon's build) or, in a
    /// GPL build, `'x264'`, `'x265'`, `'svtav1'`, `'h264_vaapi'`, `'hevc_vaapi'`, `'h264_nvenc'`,
    /// `'hevc_nvenc'`.
    pub video_encoder: Option<String>,
    /// Video codec when no `videoEncoder` is named: `'h264'` (default), `'hevc'`, `'av1'`.
    pub video_codec: Option<String>,
    /// Encoder preset, as FFmpeg's `-preset` (x264: `'veryfast'`...; openh264 has none).
    pub preset: Option<String>,
    /// Encoder profile, as FFmpeg's `-profile` (x264: `'baseline'`, `'main'`, `'high'`).
    pub profile: Option<String>,
    /// B-frames between reference frames (0..=16; openh264: 0 only).
    pub bframes: Option<f64>,
    /// StreamBuffer bounds.
    pub buffer: Option<BufferOptions>,
    /// No progress on the socket for this long = link down, ms (100..=3600000, default 5000).
    pub stall_timeout_ms: Option<f64>,
    /// Reconnect backoff.
    pub reconnect: Option<ReconnectOptions>,
    /// Also record to a local file (`.flv` or `.mp4`): a path, or `{ path, overwrite }`.
    /// The recording gets the same encoded packets as the stream.
    pub record: Option<Either<String, RecordOptions>>,
    /// Adapt the video bitrate to what the link carries (default `true`);
    /// `videoBitrate` is then the ceiling. `false`: fixed bitrate, frames
    /// dropped when the link is too slow.
    pub adaptive_bitrate: Option<bool>,
    /// Lowest video bitrate adaptation may choose (bit/s or `'300k'`); below
    /// it frames are dropped instead (default: 0.01 bit per pixel and frame).
    pub min_video_bitrate: Option<Either<f64, String>>,
    /// `rtmps://` only: a PEM file of certificate authorities trusted besides
    /// the system store (which `SSL_CERT_FILE` / `SSL_CERT_DIR` can replace).
    /// A certificate that fails verification fails the output at once.
    pub ca_file: Option<String>,
}

/// The streamer's `record` option in its object form.
#[napi(object)]
#[derive(Debug, Default)]
pub struct RecordOptions {
    /// File to write: `.flv` or `.mp4` (fragmented MP4, playable after a crash).
    pub path: String,
    /// Replace an existing file (default `false`: `start()` rejects with `ERR_FILE_EXISTS`).
    pub overwrite: Option<bool>,
}

/// Options of `new VideoAudioRecorder(options)`; they mirror `onair record FILE`.
#[napi(object)]
#[derive(Debug, Default)]
pub struct RecorderOptions {
    /// File to write: `.flv` or `.mp4` (fragmented MP4, playable after a crash).
    pub path: String,
    /// Replace an existing file (default `false`: `start()` rejects with `ERR_FILE_EXISTS`).
    pub overwrite: Option<bool>,
    /// Video source (default `'test'`).
    pub video: Option<VideoSource>,
    /// X11 display for `video: 'screen'` or `'window'` (default `$DISPLAY`).
    pub display: Option<String>,
    /// The window for `video: 'window'`: its name (exact, else the first
    /// containing it) or its id (`0x1a00003`); `onair devices` lists them.
    pub window: Option<String>,
    /// Audio source (default `'test'`).
    pub audio: Option<AudioSource>,
    /// A capture device by name (overrides `audio`).
    pub audio_device: Option<String>,
    /// A media file played in real time as video and audio (unless `video` /
    /// `audio` say otherwise), like the CLI's `--input` (GPL build only).
    /// Without `loop`, the stream ends when the file has played.
    pub input: Option<String>,
    /// Play `input` again from its start at its end, without a gap.
    #[napi(js_name = "loop")]
    pub looping: Option<bool>,
    /// `'WxH'`, e.g. `'1280x720'` (default); or use `width` and `height`.
    pub size: Option<String>,
    /// Width in pixels (even, 160..=3840; at most 3840x2160 either way).
    pub width: Option<f64>,
    /// Height in pixels (even, 160..=3840; at most 3840x2160 either way).
    pub height: Option<f64>,
    /// Frames per second (1..=120, default 30).
    pub fps: Option<f64>,
    /// H.264 bitrate: bit/s as a number, or a string like `'2500k'`, `'6M'` (50k..=50M, default 2500k).
    pub video_bitrate: Option<Either<f64, String>>,
    /// AAC bitrate: bit/s or `'160k'` (32k..=512k, default 160k).
    pub audio_bitrate: Option<Either<f64, String>>,
    /// Keyframe interval, seconds (0.1..=20, default 2).
    pub keyint: Option<f64>,
    /// Video encoder, as `onair --video-encoder`: `'openh264'` (this addon's build) or, in a
    /// GPL build, `'x264'`, `'x265'`, `'svtav1'`, `'h264_vaapi'`, `'hevc_vaapi'`, `'h264_nvenc'`,
    /// `'hevc_nvenc'`.
    pub video_encoder: Option<String>,
    /// Video codec when no `videoEncoder` is named: `'h264'` (default), `'hevc'`, `'av1'`.
    pub video_codec: Option<String>,
    /// Encoder preset, as FFmpeg's `-preset` (x264: `'veryfast'`...; openh264 has none).
    pub preset: Option<String>,
    /// Encoder profile, as FFmpeg's `-profile` (x264: `'baseline'`, `'main'`, `'high'`).
    pub profile: Option<String>,
    /// B-frames between reference frames (0..=16; openh264: 0 only).
    pub bframes: Option<f64>,
}

/// The capture and encoder options both classes take, borrowed, so one
/// parser serves `StreamerOptions` and `RecorderOptions`.
struct Media<'a> {
    video: Option<VideoSource>,
    display: Option<&'a String>,
    window: Option<&'a String>,
    audio: Option<AudioSource>,
    audio_device: Option<&'a String>,
    input: Option<&'a String>,
    looping: bool,
    size: Option<&'a String>,
    width: Option<f64>,
    height: Option<f64>,
    fps: Option<f64>,
    video_bitrate: Option<&'a Either<f64, String>>,
    audio_bitrate: Option<&'a Either<f64, String>>,
    keyint: Option<f64>,
    video_encoder: Option<&'a String>,
    video_codec: Option<&'a String>,
    preset: Option<&'a String>,
    profile: Option<&'a String>,
    bframes: Option<f64>,
}

/// Borrows the shared capture/encoder fields of an options struct.
macro_rules! media_of {
    ($o:expr) => {
        Media {
            video: $o.video,
            display: $o.display.as_ref(),
            window: $o.window.as_ref(),
            audio: $o.audio,
            audio_device: $o.audio_device.as_ref(),
            input: $o.input.as_ref(),
            looping: $o.looping.unwrap_or(false),
            size: $o.size.as_ref(),
            width: $o.width,
            height: $o.height,
            fps: $o.fps,
            video_bitrate: $o.video_bitrate.as_ref(),
            audio_bitrate: $o.audio_bitrate.as_ref(),
            keyint: $o.keyint,
            video_encoder: $o.video_encoder.as_ref(),
            video_codec: $o.video_codec.as_ref(),
            preset: $o.preset.as_ref(),
            profile: $o.profile.as_ref(),
            bframes: $o.bframes,
        }
    };
}

/// A validated recorder configuration.
#[derive(Clone, Debug)]
pub struct ValidatedRecorder {
    /// What `onair::Streamer::start` gets: no stream output, one record.
    pub config: StreamerConfig,
}

/// A `RecordConfig` for `path`, its format checked now so the constructor
/// throws naming `option`.
fn record_config(
    option: &str,
    path: &str,
    overwrite: Option<bool>,
) -> Result<RecordConfig, Failure> {
    if path.trim().is_empty() {
        return Err(Failure::option(option, "expected a file path"));
    }
    if path.contains('\0') {
        return Err(Failure::option(option, "contains a NUL byte"));
    }
    let format = RecordFormat::from_path(Path::new(path)).map_err(|_| {
        Failure::option(
            option,
            format!("'{path}': unknown file type; use a .flv or .mp4 name"),
        )
    })?;
    let mut cfg = RecordConfig::new(path);
    cfg.format = Some(format);
    cfg.overwrite = overwrite.unwrap_or(false);
    Ok(cfg)
}

impl RecorderOptions {
    /// Validates everything and builds the library's config (record only).
    pub fn validate(&self) -> Result<ValidatedRecorder, Failure> {
        let record = record_config("path", &self.path, self.overwrite)?;
        let (video, audio) = media_of!(self).settings()?;
        let config = StreamerConfig {
            video,
            audio,
            outputs: Vec::new(),
            records: vec![record],
        };
        config.validate().map_err(|e| {
            let mut f = Failure::from_engine(&e, None);
            if let onair::Error::InvalidConfig {
                option: "record",
                reason,
            } = &e
            {
                f = Failure::option("path", reason);
            }
            f
        })?;
        Ok(ValidatedRecorder { config })
    }
}

impl StreamerOptions {
    fn media(&self) -> Media<'_> {
        media_of!(self)
    }
}

/// Most B-frames accepted (x264's and x265's own maximum), as the CLI.
const MAX_BFRAMES: f64 = 16.0;

impl Media<'_> {
    /// `videoEncoder`, `videoCodec`, `preset`, `profile`, `bframes`; checked
    /// against this build by `onair::StreamerConfig::validate`.
    fn encoder_settings(&self) -> Result<EncoderSettings, Failure> {
        let encoder = self
            .video_encoder
            .map(|s| EncoderKind::parse(s).map_err(|e| Failure::option("videoEncoder", e)))
            .transpose()?;
        let codec = self
            .video_codec
            .map(|s| parse_codec(s).map_err(|e| Failure::option("videoCodec", e)))
            .transpose()?;
        let bframes = match self.bframes {
            None => None,
            Some(n) if (0.0..=MAX_BFRAMES).contains(&n) => Some(whole("bframes", n)? as u32),
            Some(n) => {
                return Err(Failure::option(
                    "bframes",
                    format!("{n} is not a whole number in 0..=16"),
                ))
            }
        };
        Ok(EncoderSettings {
            encoder,
            codec,
            preset: self.preset.cloned(),
            profile: self.profile.cloned(),
            bframes,
            // libavcodec options are the CLI's (`--encoder-opt`) for now.
            options: Vec::new(),
        })
    }

    /// `input` as a file source, checked: a path, and a build that has the
    /// file source.
    fn file(&self) -> Result<Option<FileSpec>, Failure> {
        let Some(path) = self.input else {
            return Ok(None);
        };
        if path.trim().is_empty() || path.contains('\0') {
            return Err(Failure::option("input", "expected a file path"));
        }
        if !onair::FILE_SOURCE {
            return Err(Failure::option("input", onair::pipeline::NO_FILE_SOURCE));
        }
        Ok(Some(FileSpec {
            path: path.into(),
            looping: self.looping,
        }))
    }

    /// The file for a `'file'` source of `kind`, which needs `input`.
    fn needs_input(&self, kind: &str) -> Result<FileSpec, Failure> {
        self.file()?.ok_or_else(|| {
            Failure::option("input", format!("{kind} 'file' needs input: a file path"))
        })
    }

    /// Video and audio settings; errors name the option.
    fn settings(&self) -> Result<(Option<VideoSettings>, Option<AudioSettings>), Failure> {
        let mut video = VideoSettings::default();
        match (&self.size, self.width, self.height) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(Failure::option(
                    "size",
                    "give either size or width and height, not both",
                ));
            }
            (Some(s), None, None) => {
                let (w, h) = size(s)?;
                video.width = saturating_u32(whole("size", w)?);
                video.height = saturating_u32(whole("size", h)?);
            }
            (None, w, h) => {
                if let Some(w) = w {
                    video.width = saturating_u32(whole("width", w)?);
                }
                if let Some(h) = h {
                    video.height = saturating_u32(whole("height", h)?);
                }
            }
        }
        let width_alone = limits::check_size(video.width, *limits::SIDE.start());
        let name = match (self.size.is_some(), width_alone.is_ok()) {
            (true, _) => "size",
            (false, false) => "width",
            (false, true) => "height",
        };
        in_limits(name, limits::check_size(video.width, video.height))?;
        if let Some(fps) = self.fps {
            video.fps = saturating_u32(whole("fps", fps)?);
            in_limits("fps", limits::check_fps(video.fps))?;
        }
        if let Some(b) = &self.video_bitrate {
            video.bitrate_bps = bitrate("videoBitrate", b)?;
            in_limits(
                "videoBitrate",
                limits::check_video_bitrate(video.bitrate_bps),
            )?;
        }
        if let Some(k) = self.keyint {
            video.keyint_secs = k as f32;
            in_limits("keyint", limits::check_keyint(video.keyint_secs))?;
        }
        video.encoder = self.encoder_settings()?;
        let file = self.file()?;
        video.source = match self.video {
            None if file.is_some() => VideoSourceSpec::File(self.needs_input("video")?),
            Some(VideoSource::File) => VideoSourceSpec::File(self.needs_input("video")?),
            None | Some(VideoSource::Test) => VideoSourceSpec::TestPattern,
            Some(VideoSource::Screen) => VideoSourceSpec::Screen(
                self.display
                    .cloned()
                    .or_else(|| std::env::var("DISPLAY").ok())
                    .unwrap_or_else(|| ":0".into()),
            ),
            Some(VideoSource::Window) => {
                let window = self.window.ok_or_else(|| {
                    Failure::option("window", "video 'window' needs window: a name or an id")
                })?;
                VideoSourceSpec::Window(match self.display {
                    Some(d) => format!("{window}@{d}"),
                    None => window.clone(),
                })
            }
            Some(VideoSource::None) => VideoSourceSpec::TestPattern,
        };
        let video = (self.video != Some(VideoSource::None)).then_some(video);

        let mut audio = AudioSettings::default();
        if let Some(b) = &self.audio_bitrate {
            audio.bitrate_bps = bitrate("audioBitrate", b)?;
            in_limits(
                "audioBitrate",
                limits::check_audio_bitrate(audio.bitrate_bps),
            )?;
        }
        let audio = match (&self.audio_device, &self.audio) {
            (Some(d), _) if d.trim().is_empty() => {
                return Err(Failure::option("audioDevice", "is empty"));
            }
            (Some(d), _) => Some(AudioSettings {
                source: AudioSourceSpec::Device((*d).clone()),
                ..audio
            }),
            (None, None) if file.is_some() => Some(AudioSettings {
                source: AudioSourceSpec::File(self.needs_input("audio")?),
                ..audio
            }),
            (None, Some(AudioSource::File)) => Some(AudioSettings {
                source: AudioSourceSpec::File(self.needs_input("audio")?),
                ..audio
            }),
            (None, None | Some(AudioSource::Test)) => Some(audio),
            (None, Some(AudioSource::Default)) => Some(AudioSettings {
                source: AudioSourceSpec::Device("default".into()),
                ..audio
            }),
            (None, Some(AudioSource::None)) => None,
        };
        if video.is_none() && audio.is_none() {
            return Err(Failure::option(
                "video",
                "nothing to stream: no video and no audio",
            ));
        }

        Ok((video, audio))
    }
}

/// A validated streamer configuration, plus the key for scrubbing messages.
#[derive(Clone, Debug)]
pub struct Validated {
    /// What `onair::Streamer::start` gets.
    pub config: StreamerConfig,
    /// The stream key, kept only to scrub it from any text going to JS.
    pub key: Option<String>,
}

/// The largest integer an `f64` holds exactly.
const EXACT_INT_MAX: f64 = 9_007_199_254_740_992.0;

/// Checks `v` is a whole, non-negative number; its range is checked by
/// [`onair::limits`] afterwards.
fn whole(name: &str, v: f64) -> Result<u64, Failure> {
    if !v.is_finite() || v.fract() != 0.0 || !(0.0..=EXACT_INT_MAX).contains(&v) {
        return Err(Failure::option(
            name,
            format!("{v} is not a whole number >= 0"),
        ));
    }
    Ok(v as u64)
}

/// `n` as `u32`, or `u32::MAX` (outside every range) when larger.
fn saturating_u32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A limits check's reason as an error naming the option.
fn in_limits(name: &str, r: Result<(), String>) -> Result<(), Failure> {
    r.map_err(|reason| Failure::option(name, reason))
}

/// A bitrate as bit/s or `'2500k'` / `'6M'`; its range is the caller's check.
fn bitrate(name: &str, v: &Either<f64, String>) -> Result<u32, Failure> {
    match v {
        Either::A(n) => limits::bps_from_f64(*n),
        Either::B(s) => limits::parse_bitrate(s),
    }
    .map_err(|reason| Failure::option(name, reason))
}

/// `'WxH'`.
fn size(s: &str) -> Result<(f64, f64), Failure> {
    let bad = || Failure::option("size", format!("'{s}' is not WxH (e.g. 1280x720)"));
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let w: f64 = w.trim().parse().map_err(|_| bad())?;
    let h: f64 = h.trim().parse().map_err(|_| bad())?;
    Ok((w, h))
}

/// A whole number of milliseconds.
fn millis(name: &str, v: f64) -> Result<Duration, Failure> {
    Ok(Duration::from_millis(whole(name, v)?))
}

impl StreamerOptions {
    /// Validates everything and builds the library's config. Reads
    /// `$ONAIR_STREAM_KEY` when `streamKey` is absent.
    pub fn validate(&self) -> Result<Validated, Failure> {
        let key = match &self.stream_key {
            Some(k) if k.trim().is_empty() => {
                return Err(Failure::option("streamKey", "is empty"));
            }
            Some(k) => Some(k.clone()),
            None => std::env::var(STREAM_KEY_ENV).ok().filter(|k| !k.is_empty()),
        };
        let url = RtmpUrl::parse(&self.url, key.as_deref()).map_err(|e| {
            let reason = match &e {
                onair::Error::InvalidUrl(r) => r.clone(),
                other => other.to_string(),
            };
            Failure::new(
                crate::ErrorCode::ERR_INVALID_URL,
                crate::errors::scrub(&format!("invalid option url: {reason}"), key.as_deref()),
            )
        })?;
        let key = Some(url.stream_key.clone());

        let (mut video, audio) = self.media().settings()?;
        if let Some(v) = video.as_mut() {
            v.adaptive_bitrate = self.adaptive_bitrate.unwrap_or(true);
            if let Some(b) = &self.min_video_bitrate {
                let min = bitrate("minVideoBitrate", b)?;
                if min > v.bitrate_bps {
                    return Err(Failure::option(
                        "minVideoBitrate",
                        format!("{min} bit/s is above videoBitrate ({})", v.bitrate_bps),
                    ));
                }
                v.min_bitrate_bps = Some(min);
            }
        }
        let total_bps = video.as_ref().map_or(0, |v| u64::from(v.bitrate_bps))
            + audio.as_ref().map_or(0, |a| u64::from(a.bitrate_bps));
        let mut out = StreamOutputConfig::new(url);
        if let Some(path) = &self.ca_file {
            if !std::path::Path::new(path).is_file() {
                return Err(Failure::option(
                    "caFile",
                    format!("'{path}' is not a readable file"),
                ));
            }
            out.ca_file = Some(path.into());
        }
        if let Some(b) = &self.buffer {
            let mut buffer = BufferLimits::for_bitrate(total_bps);
            if let Some(p) = b.packets {
                let n = usize::try_from(whole("buffer.packets", p)?).unwrap_or(usize::MAX);
                in_limits("buffer.packets", limits::check_buffer_packets(n))?;
                buffer.max_packets = n;
            }
            if let Some(ms) = b.ms {
                let ms = whole("buffer.ms", ms)?;
                in_limits("buffer.ms", limits::check_buffer_ms(ms))?;
                buffer.max_span = Duration::from_millis(ms);
            }
            if let Some(bytes) = b.bytes {
                let n = usize::try_from(whole("buffer.bytes", bytes)?).unwrap_or(usize::MAX);
                in_limits("buffer.bytes", limits::check_buffer_bytes(n))?;
                buffer.max_bytes = n;
            }
            out.limits = Some(buffer);
        }
        if let Some(ms) = self.stall_timeout_ms {
            out.stall_timeout = millis("stallTimeoutMs", ms)?;
            in_limits(
                "stallTimeoutMs",
                limits::check_stall_timeout(out.stall_timeout),
            )?;
        }
        if let Some(r) = &self.reconnect {
            if let Some(ms) = r.max_delay_ms {
                let d = millis("reconnect.maxDelayMs", ms)?;
                in_limits("reconnect.maxDelayMs", limits::check_reconnect_max_delay(d))?;
                out.reconnect.max_delay = d;
                out.reconnect.first_delay = out.reconnect.first_delay.min(d);
            }
            if let Some(n) = r.max_retries {
                let n = saturating_u32(whole("reconnect.maxRetries", n)?);
                in_limits("reconnect.maxRetries", limits::check_max_retries(n))?;
                out.reconnect.max_retries = Some(n);
            }
        }
        let config = StreamerConfig {
            video,
            audio,
            outputs: vec![out],
            records: match &self.record {
                None => Vec::new(),
                Some(Either::A(path)) => vec![record_config("record", path, None)?],
                Some(Either::B(r)) => vec![record_config("record.path", &r.path, r.overwrite)?],
            },
        };
        config
            .validate()
            .map_err(|e| Failure::from_engine(&e, key.as_deref()))?;
        Ok(Validated { config, key })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    fn opts(url: &str) -> StreamerOptions {
        StreamerOptions {
            url: url.into(),
            stream_key: Some("SECRET".into()),
            ..StreamerOptions::default()
        }
    }

    #[test]
    fn defaults_mirror_the_cli() {
        let v = opts("rtmp://127.0.0.1/live").validate().expect("valid");
        let video = v.config.video.expect("video");
        assert_eq!((video.width, video.height, video.fps), (1280, 720, 30));
        assert_eq!(video.bitrate_bps, 2_500_000);
        assert_eq!(v.config.audio.expect("audio").bitrate_bps, 160_000);
        assert_eq!(v.key.as_deref(), Some("SECRET"));
    }

    /// Each option just inside and just outside its range in `onair::limits`:
    /// the same edges as the CLI's parsers and `StreamerConfig::validate`.
    #[test]
    fn every_limit_at_its_edges() {
        type Set = fn(&mut StreamerOptions, f64);
        fn buffer(o: &mut StreamerOptions) -> &mut BufferOptions {
            o.buffer.get_or_insert_with(Default::default)
        }
        fn reconnect(o: &mut StreamerOptions) -> &mut ReconnectOptions {
            o.reconnect.get_or_insert_with(Default::default)
        }
        let edges: &[(&str, Set, &[f64], &[f64])] = &[
            (
                "width",
                |o, v| o.width = Some(v),
                &[160.0, 3840.0],
                &[158.0, 3842.0, 161.0],
            ),
            (
                "height",
                |o, v| o.height = Some(v),
                &[160.0, 3840.0],
                &[158.0, 3842.0, 721.0],
            ),
            (
                "fps",
                |o, v| o.fps = Some(v),
                &[1.0, 120.0],
                &[0.0, 121.0, 1.5],
            ),
            (
                "videoBitrate",
                |o, v| o.video_bitrate = Some(Either::A(v)),
                &[50_000.0, 50_000_000.0],
                &[49_999.0, 50_000_001.0],
            ),
            (
                "audioBitrate",
                |o, v| o.audio_bitrate = Some(Either::A(v)),
                &[32_000.0, 512_000.0],
                &[31_999.0, 512_001.0],
            ),
            (
                "keyint",
                |o, v| o.keyint = Some(v),
                &[0.1, 20.0],
                &[0.09, 20.01],
            ),
            (
                "buffer.packets",
                |o, v| buffer(o).packets = Some(v),
                &[4.0, 100_000.0],
                &[3.0, 100_001.0],
            ),
            (
                "buffer.ms",
                |o, v| buffer(o).ms = Some(v),
                &[100.0, 60_000.0],
                &[99.0, 60_001.0],
            ),
            (
                "buffer.bytes",
                |o, v| buffer(o).bytes = Some(v),
                &[65_536.0, 1_073_741_824.0],
                &[65_535.0, 1_073_741_825.0],
            ),
            (
                "stallTimeoutMs",
                |o, v| o.stall_timeout_ms = Some(v),
                &[100.0, 3_600_000.0],
                &[99.0, 3_600_001.0],
            ),
            (
                "reconnect.maxDelayMs",
                |o, v| reconnect(o).max_delay_ms = Some(v),
                &[100.0, 3_600_000.0],
                &[99.0, 3_600_001.0],
            ),
            (
                "reconnect.maxRetries",
                |o, v| reconnect(o).max_retries = Some(v),
                &[0.0, 1_000_000.0],
                &[-1.0, 1_000_001.0],
            ),
        ];
        for (name, set, inside, outside) in edges {
            for v in *inside {
                let mut o = opts("rtmp://127.0.0.1/live/k");
                set(&mut o, *v);
                assert!(o.validate().is_ok(), "{name} = {v} refused");
            }
            for v in *outside {
                let mut o = opts("rtmp://127.0.0.1/live/k");
                set(&mut o, *v);
                let e = o.validate().expect_err(name);
                assert_eq!(e.code, ErrorCode::ERR_INVALID_OPTION, "{name} = {v}");
                assert!(e.message.contains(name), "{name} = {v}: {}", e.message);
            }
        }
        let mut o = opts("rtmp://127.0.0.1/live/k");
        o.size = Some("3840x3840".into());
        assert!(
            o.validate().is_err(),
            "3840x3840 passes and then fails in the encoder"
        );
    }

    #[test]
    fn values_are_parsed_and_bounded() {
        let mut o = opts("rtmp://127.0.0.1/live");
        o.size = Some("640x360".into());
        o.video_bitrate = Some(Either::B("1.5M".into()));
        o.buffer = Some(BufferOptions {
            packets: Some(50.0),
            ms: Some(1000.0),
            bytes: None,
        });
        let v = o.validate().expect("valid");
        let video = v.config.video.expect("video");
        assert_eq!(
            (video.width, video.height, video.bitrate_bps),
            (640, 360, 1_500_000)
        );
        let limits = v.config.outputs[0].limits.expect("limits");
        assert_eq!(limits.max_packets, 50);
        assert_eq!(limits.max_span, Duration::from_millis(1000));
    }

    #[test]
    fn errors_name_the_option_and_never_the_key() {
        let mut o = opts("rtmp://127.0.0.1/live");
        o.fps = Some(0.5);
        let e = o.validate().expect_err("fps");
        assert_eq!(e.code, ErrorCode::ERR_INVALID_OPTION);
        assert!(e.message.contains("fps"), "{}", e.message);

        let mut o = opts("rtmp://127.0.0.1/live");
        o.reconnect = Some(ReconnectOptions {
            max_delay_ms: Some(1e12),
            max_retries: None,
        });
        let e = o.validate().expect_err("maxDelayMs");
        assert!(e.message.contains("reconnect.maxDelayMs"), "{}", e.message);

        let e = opts("rtmp://127.0.0.1:70000/live/SECRET")
            .validate()
            .expect_err("port");
        assert_eq!(e.code, ErrorCode::ERR_INVALID_URL);
        assert!(!e.message.contains("SECRET"), "{}", e.message);
    }

    #[test]
    fn ca_file_must_exist_and_reaches_the_output() {
        let mut o = opts("rtmps://127.0.0.1/live/k");
        o.ca_file = Some("/nonexistent/ca.pem".into());
        let e = o.validate().expect_err("missing caFile");
        assert_eq!(e.code, ErrorCode::ERR_INVALID_OPTION);
        assert!(e.message.contains("caFile"), "{}", e.message);

        // Any readable file passes here; its certificates are read at start.
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let mut o = opts("rtmps://127.0.0.1/live/k");
        o.ca_file = Some(file.into());
        let v = o.validate().expect("valid");
        assert_eq!(
            v.config.outputs[0].ca_file.as_deref(),
            Some(std::path::Path::new(file))
        );
    }

    #[test]
    fn recorder_options_share_the_parser_and_check_the_path() {
        let o = RecorderOptions {
            path: "/tmp/out.MP4".into(),
            size: Some("640x360".into()),
            overwrite: Some(true),
            ..RecorderOptions::default()
        };
        let v = o.validate().expect("valid");
        assert!(v.config.outputs.is_empty());
        let rec = &v.config.records[0];
        assert_eq!(rec.format, Some(RecordFormat::Mp4));
        assert!(rec.overwrite);
        assert_eq!(v.config.video.expect("video").width, 640);

        for path in ["", "out.avi", "noext"] {
            let o = RecorderOptions {
                path: path.into(),
                ..RecorderOptions::default()
            };
            let e = o.validate().expect_err(path);
            assert_eq!(e.code, ErrorCode::ERR_INVALID_OPTION);
            assert!(
                e.message.starts_with("invalid option path:"),
                "{}",
                e.message
            );
        }
        let o = RecorderOptions {
            path: "a.flv".into(),
            fps: Some(0.0),
            ..RecorderOptions::default()
        };
        assert!(o.validate().expect_err("fps").message.contains("fps"));

        let mut s = opts("rtmp://127.0.0.1/live");
        s.record = Some(Either::B(RecordOptions {
            path: "x.txt".into(),
            overwrite: None,
        }));
        let e = s.validate().expect_err("record.path");
        assert!(
            e.message.starts_with("invalid option record.path:"),
            "{}",
            e.message
        );
        s.record = Some(Either::A("copy.flv".into()));
        let v = s.validate().expect("valid");
        assert_eq!(v.config.records[0].format, Some(RecordFormat::Flv));
        assert!(!v.config.records[0].overwrite);
    }
}
