//! The options as JS passes them (`#[napi(object)]`, `#[napi(string_enum)]`): the
//! shapes `index.d.ts` is generated from, with each option's range and default.
//!
//! Why apart from their checks: these are the API's types; how they are read into an
//! `onair::StreamerConfig` is `media.rs`, `stream.rs` and `record.rs`.

use napi::bindgen_prelude::Either;

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
