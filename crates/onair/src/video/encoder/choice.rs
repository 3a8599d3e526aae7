//! Which video encoder a pipeline uses: the names the CLI and Node accept,
//! what each one codes, which build carries it, and `onair encoders`.
//!
//! Why a table of named encoders instead of "any libavcodec name": each
//! entry is one onair has tested end to end (packets, timestamps, bitrate
//! changes, IDR requests), and the names are the ones streamers know from
//! OBS and FFmpeg. `--video-codec` picks the first software entry of that
//! codec, so a user who names only the codec gets an encoder every machine
//! has.

use crate::packet::VideoCodec;
use crate::Error;

/// Parses `--video-codec`: `h264|hevc|av1` (also `avc`, `h265`).
pub fn parse_codec(s: &str) -> Result<VideoCodec, String> {
    match s.to_ascii_lowercase().as_str() {
        "h264" | "avc" => Ok(VideoCodec::H264),
        "hevc" | "h265" => Ok(VideoCodec::Hevc),
        "av1" => Ok(VideoCodec::Av1),
        _ => Err(format!("'{s}' is not one of h264, hevc, av1")),
    }
}

/// Human name of a codec, for errors ("H.264").
pub fn codec_label(codec: VideoCodec) -> &'static str {
    match codec {
        VideoCodec::H264 => "H.264",
        VideoCodec::Hevc => "HEVC",
        VideoCodec::Av1 => "AV1",
    }
}

/// A device family a hardware encoder needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hardware {
    /// VA-API (Intel, AMD): a DRM render node.
    Vaapi,
    /// NVIDIA NVENC: the NVIDIA driver (libcuda, libnvidia-encode).
    Nvenc,
}

/// One of the video encoders onair knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EncoderKind {
    /// openh264 (Cisco), H.264 Constrained Baseline, built in from source.
    OpenH264,
    /// libx264 through libavcodec (GPL build).
    X264,
    /// libx265 through libavcodec (GPL build).
    X265,
    /// SVT-AV1 through libavcodec (GPL build).
    SvtAv1,
    /// H.264 on VA-API hardware (GPL build).
    H264Vaapi,
    /// HEVC on VA-API hardware (GPL build).
    HevcVaapi,
    /// H.264 on NVIDIA NVENC (GPL build).
    H264Nvenc,
    /// HEVC on NVIDIA NVENC (GPL build).
    HevcNvenc,
}

impl EncoderKind {
    /// Every encoder, in `onair encoders` order.
    pub const ALL: [Self; 8] = [
        Self::OpenH264,
        Self::X264,
        Self::X265,
        Self::SvtAv1,
        Self::H264Vaapi,
        Self::HevcVaapi,
        Self::H264Nvenc,
        Self::HevcNvenc,
    ];

    /// The name `--video-encoder` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::OpenH264 => "openh264",
            Self::X264 => "x264",
            Self::X265 => "x265",
            Self::SvtAv1 => "svtav1",
            Self::H264Vaapi => "h264_vaapi",
            Self::HevcVaapi => "hevc_vaapi",
            Self::H264Nvenc => "h264_nvenc",
            Self::HevcNvenc => "hevc_nvenc",
        }
    }

    /// Parses a `--video-encoder` name (FFmpeg's `libx264`-style names too).
    pub fn parse(s: &str) -> Result<Self, String> {
        let lower = s.to_ascii_lowercase();
        let bare = lower.strip_prefix("lib").unwrap_or(&lower);
        Self::ALL
            .into_iter()
            .find(|k| k.name() == bare || (bare == "svt-av1" && *k == Self::SvtAv1))
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|k| k.name()).collect();
                format!("'{s}' is not one of {}", names.join(", "))
            })
    }

    /// What it codes.
    pub fn codec(self) -> VideoCodec {
        match self {
            Self::OpenH264 | Self::X264 | Self::H264Vaapi | Self::H264Nvenc => VideoCodec::H264,
            Self::X265 | Self::HevcVaapi | Self::HevcNvenc => VideoCodec::Hevc,
            Self::SvtAv1 => VideoCodec::Av1,
        }
    }

    /// The device it needs, if it is a hardware encoder.
    pub fn hardware(self) -> Option<Hardware> {
        match self {
            Self::H264Vaapi | Self::HevcVaapi => Some(Hardware::Vaapi),
            Self::H264Nvenc | Self::HevcNvenc => Some(Hardware::Nvenc),
            _ => None,
        }
    }

    /// libavcodec's encoder name (`None` for openh264, which onair builds itself).
    pub fn ffmpeg_name(self) -> Option<&'static str> {
        match self {
            Self::OpenH264 => None,
            Self::X264 => Some("libx264"),
            Self::X265 => Some("libx265"),
            Self::SvtAv1 => Some("libsvtav1"),
            Self::H264Vaapi => Some("h264_vaapi"),
            Self::HevcVaapi => Some("hevc_vaapi"),
            Self::H264Nvenc => Some("h264_nvenc"),
            Self::HevcNvenc => Some("hevc_nvenc"),
        }
    }

    /// True if this build carries it (everything but openh264 needs the GPL
    /// build, feature `avcodec`).
    pub fn in_this_build(self) -> bool {
        self == Self::OpenH264 || cfg!(feature = "avcodec")
    }

    /// The software encoder of the same codec that takes over when this
    /// hardware encoder fails mid-stream.
    pub fn software_fallback(self) -> Option<Self> {
        match self.hardware()? {
            _ if self.codec() == VideoCodec::H264 => Some(Self::X264),
            _ => Some(Self::X265),
        }
    }

    /// The encoder used for `codec` when none is named: this build's best
    /// software encoder of that codec (x264 in the GPL build, openh264 in
    /// the default one).
    pub fn default_for(codec: VideoCodec) -> Result<Self, Error> {
        let kind = match codec {
            VideoCodec::H264 if cfg!(feature = "avcodec") => Self::X264,
            VideoCodec::H264 => Self::OpenH264,
            VideoCodec::Hevc => Self::X265,
            VideoCodec::Av1 => Self::SvtAv1,
        };
        if kind.in_this_build() {
            Ok(kind)
        } else {
            Err(not_in_build(kind))
        }
    }

    /// The preset used when `--preset` is not given: OBS's x264 default
    /// (veryfast) for x264 and x265, and for SVT-AV1 the slowest preset
    /// that keeps 720p30 in real time on two cores (docs/benchmarks.md).
    /// Hardware encoders keep FFmpeg's default.
    pub fn default_preset(self) -> Option<&'static str> {
        match self {
            Self::X264 | Self::X265 => Some("veryfast"),
            Self::SvtAv1 => Some("10"),
            _ => None,
        }
    }
}

impl std::fmt::Display for EncoderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

fn not_in_build(kind: EncoderKind) -> Error {
    Error::InvalidConfig {
        option: "video-encoder",
        reason: format!(
            "{kind} is in the GPL build only (this is the default build: openh264 + fdk-aac); \
             build with `--no-default-features --features gpl` (README, \"Licences\")"
        ),
    }
}

/// What the user asked of the video encoder. Every field is optional: the
/// defaults are this build's H.264 encoder with its usual settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EncoderSettings {
    /// `--video-encoder`.
    pub encoder: Option<EncoderKind>,
    /// `--video-codec`: picks [`EncoderKind::default_for`] when no encoder is named.
    pub codec: Option<VideoCodec>,
    /// `--preset`, passed to the encoder as FFmpeg's `-preset` (x264/x265:
    /// ultrafast..placebo; SVT-AV1: 0..13; NVENC: p1..p7).
    pub preset: Option<String>,
    /// `--profile`, as FFmpeg's `-profile` (x264: baseline, main, high; x265: main).
    pub profile: Option<String>,
    /// `--bframes`: B-frames between references (`None`: the preset's).
    pub bframes: Option<u32>,
    /// `--encoder-opt KEY=VALUE`, in order: libavcodec options (AVOptions)
    /// given to the encoder when it opens, as FFmpeg's `-KEY VALUE` (e.g.
    /// `x264-params` = `b-adapt=0:b-pyramid=none`, as OBS's "x264 options").
    /// Why: a user who tunes x264 or x265 needs the knobs onair does not name;
    /// the keys onair sets from its own options are refused
    /// ([`RESERVED_ENCODER_OPTS`]), so the bitrate control and the keyframe
    /// gate keep their meaning. An unknown key fails the open, naming it.
    pub options: Vec<(String, String)>,
}

/// `--encoder-opt` keys onair sets from its own options, refused with the
/// option to use instead.
pub const RESERVED_ENCODER_OPTS: &[(&str, &str)] = &[
    ("b", "--video-bitrate"),
    ("maxrate", "--video-bitrate"),
    ("bufsize", "--video-bitrate"),
    ("minrate", "--video-bitrate"),
    ("g", "--keyint"),
    ("bf", "--bframes"),
    ("preset", "--preset"),
    ("profile", "--profile"),
    ("forced-idr", "none (keyframes on request are IDRs)"),
    ("pix_fmt", "none (onair encodes I420)"),
];

/// Parses one `--encoder-opt` value, `KEY=VALUE` (the value may hold `=`
/// and `:`, as `x264-params` does), refusing the keys onair sets itself.
pub fn parse_encoder_opt(s: &str) -> Result<(String, String), String> {
    let Some((key, value)) = s.split_once('=') else {
        return Err(format!(
            "'{s}' is not KEY=VALUE (e.g. x264-params=b-adapt=0)"
        ));
    };
    let key = key.trim();
    if key.is_empty() || key.starts_with('-') {
        return Err(format!("'{s}': the key is empty or starts with '-'"));
    }
    if let Some((_, instead)) = RESERVED_ENCODER_OPTS.iter().find(|(k, _)| *k == key) {
        return Err(format!("'{key}' is set by onair; use {instead}"));
    }
    Ok((key.to_owned(), value.to_owned()))
}

impl EncoderSettings {
    /// Settings that name one encoder and keep its defaults.
    pub fn named(kind: EncoderKind) -> Self {
        Self {
            encoder: Some(kind),
            ..Self::default()
        }
    }

    /// The encoder these settings pick, checked against the codec asked
    /// for, this build, and what the encoder accepts.
    pub fn resolve(&self) -> Result<EncoderKind, Error> {
        let kind = match (self.encoder, self.codec) {
            (Some(k), Some(c)) if k.codec() != c => {
                return Err(Error::InvalidConfig {
                    option: "video-codec",
                    reason: format!(
                        "--video-encoder {k} codes {}, not {}",
                        k.codec().name(),
                        c.name()
                    ),
                })
            }
            (Some(k), _) => k,
            (None, c) => EncoderKind::default_for(c.unwrap_or(VideoCodec::H264))?,
        };
        if !kind.in_this_build() {
            return Err(not_in_build(kind));
        }
        if kind == EncoderKind::OpenH264 {
            let refuse = |option: &'static str, what: &str| Error::InvalidConfig {
                option,
                reason: format!("openh264 {what}"),
            };
            if self.preset.is_some() {
                return Err(refuse(
                    "preset",
                    "has no presets (x264's presets need the GPL build)",
                ));
            }
            if self.profile.as_deref().is_some_and(|p| p != "baseline") {
                return Err(refuse("profile", "codes Constrained Baseline only"));
            }
            if self.bframes.is_some_and(|n| n > 0) {
                return Err(refuse(
                    "bframes",
                    "codes no B-frames (Constrained Baseline)",
                ));
            }
            if let Some((key, _)) = self.options.first() {
                return Err(refuse(
                    "encoder-opt",
                    &format!(
                        "takes no libavcodec options ('{key}'): they need the GPL build's \
                         x264, x265, SVT-AV1 or hardware encoders"
                    ),
                ));
            }
        }
        Ok(kind)
    }
}

/// One line of `onair encoders`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncoderStatus {
    /// Which encoder.
    pub kind: EncoderKind,
    /// Opened successfully on this machine just now.
    pub usable: bool,
    /// Why not (or, when usable, what it is).
    pub note: String,
}

/// Every known encoder with whether this machine can use it now. Software
/// encoders and hardware ones alike are probed by opening them on a small
/// frame size and encoding one frame, not by name: a hardware encoder is
/// listed usable only if its device and driver took the frame.
pub fn list_encoders() -> Vec<EncoderStatus> {
    EncoderKind::ALL.into_iter().map(probe).collect()
}

/// Opens `kind` on a small frame and encodes one frame.
pub fn probe(kind: EncoderKind) -> EncoderStatus {
    let status = |usable, note: String| EncoderStatus { kind, usable, note };
    if !kind.in_this_build() {
        return status(false, "GPL build only".into());
    }
    match super::probe_encode(kind) {
        Ok(()) => status(
            true,
            format!("{} ({})", codec_label(kind.codec()), describe(kind)),
        ),
        Err(e) => status(false, e),
    }
}

fn describe(kind: EncoderKind) -> &'static str {
    match kind {
        EncoderKind::OpenH264 => "software, Constrained Baseline",
        EncoderKind::X264 | EncoderKind::X265 | EncoderKind::SvtAv1 => "software",
        EncoderKind::H264Vaapi | EncoderKind::HevcVaapi => "hardware, VA-API",
        EncoderKind::H264Nvenc | EncoderKind::HevcNvenc => "hardware, NVENC",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_codecs_pick_software() {
        for k in EncoderKind::ALL {
            assert_eq!(EncoderKind::parse(k.name()), Ok(k));
        }
        assert_eq!(EncoderKind::parse("libx264"), Ok(EncoderKind::X264));
        assert!(EncoderKind::parse("qsv").is_err());
        assert_eq!(parse_codec("H265"), Ok(VideoCodec::Hevc));
        let by_codec = |c| EncoderSettings {
            codec: Some(c),
            ..EncoderSettings::default()
        };
        // The GPL build's choices: tests/libav/encoders.rs.
        if !cfg!(feature = "avcodec") {
            assert_eq!(
                EncoderSettings::default().resolve().ok(),
                Some(EncoderKind::OpenH264)
            );
            let e = by_codec(VideoCodec::Hevc)
                .resolve()
                .unwrap_err()
                .to_string();
            assert!(e.contains("GPL build"), "{e}");
        }
        let mixed = EncoderSettings {
            encoder: Some(EncoderKind::X265),
            codec: Some(VideoCodec::H264),
            ..EncoderSettings::default()
        };
        assert!(mixed.resolve().is_err());
        let oh = |f: fn(&mut EncoderSettings)| {
            let mut s = EncoderSettings::named(EncoderKind::OpenH264);
            f(&mut s);
            s.resolve()
        };
        assert!(oh(|s| s.bframes = Some(2)).is_err());
        assert!(oh(|s| s.preset = Some("fast".into())).is_err());
        assert!(oh(|s| s.bframes = Some(0)).is_ok());
        assert_eq!(
            EncoderKind::H264Nvenc.software_fallback(),
            Some(EncoderKind::X264)
        );
        assert_eq!(
            EncoderKind::HevcVaapi.software_fallback(),
            Some(EncoderKind::X265)
        );
        assert_eq!(EncoderKind::X264.software_fallback(), None);
    }
}
