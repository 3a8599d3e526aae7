//! The capture and encoder options both classes share (sources, size, rate,
//! bitrates, encoder), read into `VideoSettings` and `AudioSettings`.
//!
//! Why one reader for two classes: `VideoAudioStreamer` and `VideoAudioRecorder`
//! take the same media options and must refuse the same values the same way.

use super::numbers::{bitrate, in_limits, saturating_u32, size, whole};
use super::{AudioSource, RecorderOptions, StreamerOptions, VideoSource};
use crate::errors::Failure;
use napi::bindgen_prelude::Either;
use onair::limits;
use onair::video::encoder::{parse_codec, EncoderKind, EncoderSettings};
use onair::{AudioSettings, AudioSourceSpec, FileSpec, VideoSettings, VideoSourceSpec};

/// The capture and encoder options both classes take, borrowed, so one
/// parser serves `StreamerOptions` and `RecorderOptions`.
pub(super) struct Media<'a> {
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

impl StreamerOptions {
    /// Borrows the capture and encoder options.
    pub(super) fn media(&self) -> Media<'_> {
        media_of!(self)
    }
}

impl RecorderOptions {
    /// Borrows the capture and encoder options.
    pub(super) fn media(&self) -> Media<'_> {
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
    pub(super) fn settings(
        &self,
    ) -> Result<(Option<VideoSettings>, Option<AudioSettings>), Failure> {
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
