//! The parsed options turned into the library's settings (`VideoSettings`,
//! `AudioSettings`, `BufferLimits`): which source wins when `--input` and
//! `--video` / `--audio` both speak, and the defaults that follow from others.

use super::{AudioChoice, CommonArgs, NetArgs, VideoChoice};
use onair::output::buffer::BufferLimits;
use onair::video::encoder::EncoderSettings;
use onair::{AudioSettings, AudioSourceSpec, FileSpec, VideoSettings, VideoSourceSpec};
use std::time::Duration;

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
