//! What a [`super::Streamer`] runs: its sources, encoder settings and outputs, and the
//! one place their values are checked against [`crate::limits`].
//!
//! Why apart from the Streamer: the CLI and the Node addon build and validate a
//! `StreamerConfig` without starting anything (their option errors come from here).

use crate::limits;
use crate::output::record::RecordConfig;
use crate::output::stream::StreamOutputConfig;
use crate::video::bitrate::default_floor_bps;
use crate::video::encoder::EncoderSettings;
use crate::{Error, Result};

/// Where pictures come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VideoSourceSpec {
    /// The moving test pattern that carries its frame number.
    TestPattern,
    /// An X11 screen: `[DISPLAY][+X,Y,WxH]` (empty = $DISPLAY), see
    /// `video::screen::ScreenSpec`.
    Screen(String),
    /// One X11 window: `NAME|ID[@DISPLAY]`, see `video::window::WindowSpec`.
    Window(String),
    /// A media file played in real time (GPL build only: `video::file`).
    File(FileSpec),
}

/// Where sound comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AudioSourceSpec {
    /// A 440 Hz tone with a 1 kHz beep at the start of every second.
    Tone,
    /// Capture devices: `default`, `desktop`, `mic`, a device name, or a mix
    /// such as `desktop+mic@0.5` (see `audio::device`).
    Device(String),
    /// The sound of a media file played in real time (GPL build only).
    File(FileSpec),
}

/// A media file as a source: what `file:PATH` and `--loop` say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSpec {
    /// The file (any container and codecs FFmpeg reads).
    pub path: std::path::PathBuf,
    /// Start again from the beginning at the end, without a gap (else the
    /// input ends, see [`InputState::Ended`]).
    pub looping: bool,
}

/// True when this build has the file source (the GPL build, with libavcodec).
pub const FILE_SOURCE: bool = cfg!(feature = "avcodec");

/// Why a build without libavcodec refuses a file source.
pub const NO_FILE_SOURCE: &str =
    "this build has no file source: it needs the GPL build with libavcodec (see the README's Licences)";

/// How the pipeline's inputs are doing. Live capture and the test sources
/// are always `Live`; a file without loop ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputState {
    /// Producing (or waiting for a device to come back).
    Live,
    /// Every file input played to its end (no loop): a run should stop
    /// cleanly, as `ffmpeg -re -i clip` does.
    Ended,
    /// A file input failed (truncated, corrupt, unreadable): why, naming
    /// the file. A run should stop with this error.
    Failed(String),
}

/// Video settings.
#[derive(Clone, Debug, PartialEq)]
pub struct VideoSettings {
    /// Source.
    pub source: VideoSourceSpec,
    /// Output width (even).
    pub width: u32,
    /// Output height (even).
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Video bitrate, bit/s.
    pub bitrate_bps: u32,
    /// Keyframe interval, seconds.
    pub keyint_secs: f32,
    /// Adapt the bitrate to each destination's link (`bitrate_bps` is then
    /// the ceiling). On by default.
    pub adaptive_bitrate: bool,
    /// The lowest bitrate adaptation may choose; below it frames are
    /// dropped instead. `None` = `video::bitrate::default_floor_bps`.
    pub min_bitrate_bps: Option<u32>,
    /// Which encoder (`--video-encoder`, `--video-codec`, `--preset`,
    /// `--profile`, `--bframes`); default: this build's H.264 encoder.
    pub encoder: EncoderSettings,
}

impl VideoSettings {
    /// The floor of adaptation for these settings.
    pub fn floor_bps(&self) -> u32 {
        self.min_bitrate_bps
            .unwrap_or_else(|| default_floor_bps(self.width, self.height, self.fps))
    }
}

impl Default for VideoSettings {
    fn default() -> Self {
        Self {
            source: VideoSourceSpec::TestPattern,
            width: 1280,
            height: 720,
            fps: 30,
            bitrate_bps: 2_500_000,
            keyint_secs: 2.0,
            adaptive_bitrate: true,
            min_bitrate_bps: None,
            encoder: EncoderSettings::default(),
        }
    }
}

/// Audio settings.
#[derive(Clone, Debug, PartialEq)]
pub struct AudioSettings {
    /// Source.
    pub source: AudioSourceSpec,
    /// Sample rate (48000).
    pub sample_rate: u32,
    /// Channels (2).
    pub channels: u32,
    /// AAC bitrate, bit/s.
    pub bitrate_bps: u32,
}

impl Default for AudioSettings {
    fn default() -> Self {
        Self {
            source: AudioSourceSpec::Tone,
            sample_rate: 48_000,
            channels: 2,
            bitrate_bps: 160_000,
        }
    }
}

/// Everything a Streamer runs.
#[derive(Clone, Debug)]
pub struct StreamerConfig {
    /// Video, or none.
    pub video: Option<VideoSettings>,
    /// Audio, or none.
    pub audio: Option<AudioSettings>,
    /// Stream destinations.
    pub outputs: Vec<StreamOutputConfig>,
    /// Files to record to (each its own queue and writer thread).
    pub records: Vec<RecordConfig>,
}

impl StreamerConfig {
    /// Checks every value against its range in [`crate::limits`]; the error
    /// names the option as the CLI spells it.
    pub fn validate(&self) -> Result<()> {
        fn check(option: &'static str, r: std::result::Result<(), String>) -> Result<()> {
            r.map_err(|reason| Error::InvalidConfig { option, reason })
        }
        if let Some(v) = &self.video {
            v.encoder.resolve()?;
            check("size", limits::check_size(v.width, v.height))?;
            check("fps", limits::check_fps(v.fps))?;
            check("video-bitrate", limits::check_video_bitrate(v.bitrate_bps))?;
            check("keyint", limits::check_keyint(v.keyint_secs))?;
            if let Some(min) = v.min_bitrate_bps {
                check("min-video-bitrate", limits::check_video_bitrate(min))?;
                if min > v.bitrate_bps {
                    return Err(Error::InvalidConfig {
                        option: "min-video-bitrate",
                        reason: format!(
                            "{min} bit/s is above the video bitrate ({})",
                            v.bitrate_bps
                        ),
                    });
                }
            }
        }
        if let Some(a) = &self.audio {
            check("audio-bitrate", limits::check_audio_bitrate(a.bitrate_bps))?;
        }
        for o in &self.outputs {
            if let Some(l) = &o.limits {
                check(
                    "buffer-packets",
                    limits::check_buffer_packets(l.max_packets),
                )?;
                let ms = u64::try_from(l.max_span.as_millis()).unwrap_or(u64::MAX);
                check("buffer-ms", limits::check_buffer_ms(ms))?;
                check("buffer-bytes", limits::check_buffer_bytes(l.max_bytes))?;
            }
            check(
                "stall-timeout",
                limits::check_stall_timeout(o.stall_timeout),
            )?;
            check(
                "reconnect-max-delay",
                limits::check_reconnect_max_delay(o.reconnect.max_delay),
            )?;
            if let Some(n) = o.reconnect.max_retries {
                check("max-retries", limits::check_max_retries(n))?;
            }
        }
        if self.video.is_none() && self.audio.is_none() {
            return Err(Error::InvalidConfig {
                option: "video",
                reason: "nothing to stream: no video and no audio".into(),
            });
        }
        Ok(())
    }
}
