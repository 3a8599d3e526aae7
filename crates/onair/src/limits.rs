//! The accepted range of every option, in one place.
//!
//! Why: the engine (`StreamerConfig::validate`, the video encoder), the CLI's value
//! parsers and the Node addon's options all check the same values. Written once, a
//! value that one front end accepts can never fail later in another layer (a size that
//! passes the size check and then fails in the encoder, a keyframe interval one layer
//! takes and another refuses). Each `check_*` returns the reason as text; the caller
//! names the option in its own spelling (`--video-bitrate`, `videoBitrate`).

use std::ops::RangeInclusive;
use std::time::Duration;

/// Width and height of the output picture, each side (and both even: 4:2:0 chroma).
pub const SIDE: RangeInclusive<u32> = 160..=3840;
/// The shorter side at most: the encoder takes up to 3840x2160 in either orientation
/// (3840x3840 would need more macroblocks than its highest level allows).
pub const SHORT_SIDE_MAX: u32 = 2160;
/// The smallest side the video encoder itself takes (one macroblock); the options'
/// lower bound, [`SIDE`], is higher because nothing smaller is worth streaming.
pub const ENCODER_SIDE_MIN: u32 = 16;
/// Frames per second.
pub const FPS: RangeInclusive<u32> = 1..=120;
/// H.264 bitrate, bit/s: openh264 misbehaves far below the minimum, and the maximum is
/// level 4.2's limit, so a bitrate change never makes the encoder raise the level (and
/// alter the SPS the viewers already have).
pub const VIDEO_BITRATE_BPS: RangeInclusive<u32> = 50_000..=50_000_000;
/// AAC-LC bitrate (stereo, 48 kHz), bit/s: what fdk-aac accepts.
pub const AUDIO_BITRATE_BPS: RangeInclusive<u32> = 32_000..=512_000;
/// Keyframe interval, seconds. Ingests want 2 to 4 s; 20 s is already far beyond what a
/// viewer joining mid-stream should wait for a picture.
pub const KEYINT_SECS: RangeInclusive<f32> = 0.1..=20.0;
/// StreamBuffer bound in packets: under 4 a single frame's audio would not fit.
pub const BUFFER_PACKETS: RangeInclusive<usize> = 4..=100_000;
/// StreamBuffer bound in milliseconds of media.
pub const BUFFER_MS: RangeInclusive<u64> = 100..=60_000;
/// StreamBuffer bound in bytes: a keyframe must fit; a gigabyte is no longer a bound.
pub const BUFFER_BYTES: RangeInclusive<usize> = 65_536..=1 << 30;
/// No progress on the socket for this long = link down.
pub const STALL_TIMEOUT: RangeInclusive<Duration> =
    Duration::from_millis(100)..=Duration::from_secs(3600);
/// Cap of the reconnect backoff.
pub const RECONNECT_MAX_DELAY: RangeInclusive<Duration> =
    Duration::from_millis(100)..=Duration::from_secs(3600);
/// Retries per outage before giving up (absent = forever).
pub const MAX_RETRIES: RangeInclusive<u32> = 0..=1_000_000;
/// How long the CLI runs (`--duration`): more than zero, at most a year.
pub const DURATION_MAX: Duration = Duration::from_secs(365 * 24 * 3600);

/// `value` within `range`, or "VALUE is outside LO..=HI".
fn within<T: PartialOrd>(
    value: T,
    range: &RangeInclusive<T>,
    show: impl Fn(&T) -> String,
) -> Result<(), String> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "{} is outside {}..={}",
            show(&value),
            show(range.start()),
            show(range.end())
        ))
    }
}

/// A bitrate as people write it: `50000`, `50k`, `50M`.
fn show_bps(bps: &u32) -> String {
    match *bps {
        b if b >= 1_000_000 && b % 1_000_000 == 0 => format!("{}M", b / 1_000_000),
        b if b >= 1_000 && b % 1_000 == 0 => format!("{}k", b / 1_000),
        b => b.to_string(),
    }
}

fn show_duration(d: &Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

/// Checks a picture size: each side in [`SIDE`], even, the shorter one at most
/// [`SHORT_SIDE_MAX`].
pub fn check_size(width: u32, height: u32) -> Result<(), String> {
    let (lo, hi) = (SIDE.start(), SIDE.end());
    if !SIDE.contains(&width) || !SIDE.contains(&height) {
        return Err(format!("{width}x{height} is outside {lo}..={hi} per side"));
    }
    if !width.is_multiple_of(2) || !height.is_multiple_of(2) {
        return Err(format!("{width}x{height}: width and height must be even"));
    }
    if width.min(height) > SHORT_SIDE_MAX {
        return Err(format!(
            "{width}x{height} is larger than the encoder takes: at most {hi}x{SHORT_SIDE_MAX} \
             (either orientation)"
        ));
    }
    Ok(())
}

/// Checks a frame rate against [`FPS`].
pub fn check_fps(fps: u32) -> Result<(), String> {
    within(fps, &FPS, u32::to_string)
}

/// Checks an H.264 bitrate against [`VIDEO_BITRATE_BPS`].
pub fn check_video_bitrate(bps: u32) -> Result<(), String> {
    within(bps, &VIDEO_BITRATE_BPS, show_bps).map_err(|e| format!("{e} bit/s"))
}

/// Checks an AAC bitrate against [`AUDIO_BITRATE_BPS`].
pub fn check_audio_bitrate(bps: u32) -> Result<(), String> {
    within(bps, &AUDIO_BITRATE_BPS, show_bps).map_err(|e| format!("{e} bit/s"))
}

/// Checks a keyframe interval against [`KEYINT_SECS`] (NaN is outside).
pub fn check_keyint(secs: f32) -> Result<(), String> {
    within(secs, &KEYINT_SECS, f32::to_string).map_err(|e| format!("{e} seconds"))
}

/// Checks a StreamBuffer packet bound against [`BUFFER_PACKETS`].
pub fn check_buffer_packets(packets: usize) -> Result<(), String> {
    within(packets, &BUFFER_PACKETS, usize::to_string).map_err(|e| format!("{e} packets"))
}

/// Checks a StreamBuffer span bound against [`BUFFER_MS`].
pub fn check_buffer_ms(ms: u64) -> Result<(), String> {
    within(ms, &BUFFER_MS, u64::to_string).map_err(|e| format!("{e} ms"))
}

/// Checks a StreamBuffer byte bound against [`BUFFER_BYTES`].
pub fn check_buffer_bytes(bytes: usize) -> Result<(), String> {
    within(bytes, &BUFFER_BYTES, usize::to_string).map_err(|e| format!("{e} bytes"))
}

/// Checks a stall timeout against [`STALL_TIMEOUT`].
pub fn check_stall_timeout(d: Duration) -> Result<(), String> {
    within(d, &STALL_TIMEOUT, show_duration)
}

/// Checks a reconnect backoff cap against [`RECONNECT_MAX_DELAY`].
pub fn check_reconnect_max_delay(d: Duration) -> Result<(), String> {
    within(d, &RECONNECT_MAX_DELAY, show_duration)
}

/// Checks a retry count against [`MAX_RETRIES`].
pub fn check_max_retries(n: u32) -> Result<(), String> {
    within(n, &MAX_RETRIES, u32::to_string)
}

/// Parses a bitrate as the CLI and the Node addon take it: bit/s (`800000`) or with a
/// `k` / `M` suffix (`2500k`, `2.5M`). Only the text; the range is the caller's check.
pub fn parse_bitrate(text: &str) -> Result<u32, String> {
    let lower = text.trim().to_ascii_lowercase();
    let (num, mult) = if let Some(n) = lower.strip_suffix('k') {
        (n, 1_000.0)
    } else if let Some(n) = lower.strip_suffix('m') {
        (n, 1_000_000.0)
    } else {
        (lower.as_str(), 1.0)
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("'{text}' is not a bitrate (e.g. 2500k, 6M)"))?;
    bps_from_f64(v * mult)
}

/// A bitrate given as a number (JS numbers are `f64`): a whole, non-negative number of
/// bit/s that fits `u32`, or the reason it is not.
pub fn bps_from_f64(bps: f64) -> Result<u32, String> {
    if !bps.is_finite() || bps < 0.0 || bps > f64::from(u32::MAX) {
        return Err(format!("{bps} is not a bitrate in bit/s"));
    }
    Ok(bps.round() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_edges() {
        assert!(check_size(160, 160).is_ok());
        assert!(check_size(3840, 2160).is_ok());
        assert!(check_size(2160, 3840).is_ok());
        assert!(check_size(158, 720).is_err());
        assert!(check_size(1280, 158).is_err());
        assert!(check_size(3842, 2160).is_err());
        assert!(check_size(3840, 2162).is_err());
        assert!(
            check_size(3840, 3840).is_err(),
            "the encoder cannot take it"
        );
        assert!(check_size(161, 720).is_err());
        assert!(check_size(1280, 721).is_err());
    }

    #[test]
    fn rate_edges() {
        assert!(check_fps(1).is_ok() && check_fps(120).is_ok());
        assert!(check_fps(0).is_err() && check_fps(121).is_err());
        assert!(check_video_bitrate(50_000).is_ok() && check_video_bitrate(50_000_000).is_ok());
        assert!(check_video_bitrate(49_999).is_err());
        assert_eq!(
            check_video_bitrate(50_000_001),
            Err("50000001 is outside 50k..=50M bit/s".to_string())
        );
        assert!(check_audio_bitrate(32_000).is_ok() && check_audio_bitrate(512_000).is_ok());
        assert!(check_audio_bitrate(31_999).is_err() && check_audio_bitrate(512_001).is_err());
        assert!(check_keyint(0.1).is_ok() && check_keyint(20.0).is_ok());
        assert!(check_keyint(0.09).is_err() && check_keyint(20.01).is_err());
        assert!(check_keyint(f32::NAN).is_err());
    }

    #[test]
    fn output_edges() {
        assert!(check_buffer_packets(4).is_ok() && check_buffer_packets(100_000).is_ok());
        assert!(check_buffer_packets(3).is_err() && check_buffer_packets(100_001).is_err());
        assert!(check_buffer_ms(100).is_ok() && check_buffer_ms(60_000).is_ok());
        assert!(check_buffer_ms(99).is_err() && check_buffer_ms(60_001).is_err());
        assert!(check_buffer_bytes(65_536).is_ok() && check_buffer_bytes(1 << 30).is_ok());
        assert!(check_buffer_bytes(65_535).is_err() && check_buffer_bytes((1 << 30) + 1).is_err());
        let ms = Duration::from_millis;
        for check in [check_stall_timeout, check_reconnect_max_delay] {
            assert!(check(ms(100)).is_ok() && check(ms(3_600_000)).is_ok());
            assert!(check(ms(99)).is_err() && check(ms(3_600_001)).is_err());
        }
        assert!(check_max_retries(0).is_ok() && check_max_retries(1_000_000).is_ok());
        assert!(check_max_retries(1_000_001).is_err());
    }

    /// `StreamerConfig::validate` applies the same edges and names the option.
    #[test]
    fn streamer_config_uses_these_limits() {
        use crate::output::buffer::BufferLimits;
        use crate::output::url::RtmpUrl;
        use crate::{StreamOutputConfig, StreamerConfig, VideoSettings};
        let url = RtmpUrl::parse("rtmp://127.0.0.1/live/k", None).unwrap();
        let base = StreamerConfig {
            video: Some(VideoSettings::default()),
            audio: Some(crate::AudioSettings::default()),
            outputs: vec![StreamOutputConfig::new(url)],
            records: Vec::new(),
        };
        assert!(base.validate().is_ok());
        let option = |f: &dyn Fn(&mut StreamerConfig)| {
            let mut c = base.clone();
            f(&mut c);
            match c.validate() {
                Ok(()) => None,
                Err(crate::Error::InvalidConfig { option, .. }) => Some(option),
                Err(e) => panic!("{e}"),
            }
        };
        let set_video =
            |f: fn(&mut VideoSettings)| move |c: &mut StreamerConfig| f(c.video.as_mut().unwrap());
        assert_eq!(
            option(&set_video(|v| (v.width, v.height) = (3840, 2160))),
            None
        );
        assert_eq!(
            option(&set_video(|v| (v.width, v.height) = (3840, 3840))),
            Some("size")
        );
        assert_eq!(option(&set_video(|v| v.fps = 120)), None);
        assert_eq!(option(&set_video(|v| v.fps = 121)), Some("fps"));
        assert_eq!(option(&set_video(|v| v.bitrate_bps = 50_000)), None);
        assert_eq!(
            option(&set_video(|v| v.bitrate_bps = 49_999)),
            Some("video-bitrate")
        );
        assert_eq!(option(&set_video(|v| v.keyint_secs = 20.0)), None);
        assert_eq!(
            option(&set_video(|v| v.keyint_secs = 20.01)),
            Some("keyint")
        );
        assert_eq!(
            option(&|c| c.audio.as_mut().unwrap().bitrate_bps = 512_001),
            Some("audio-bitrate")
        );
        let with_limits = |f: fn(&mut BufferLimits)| {
            move |c: &mut StreamerConfig| {
                let mut l = BufferLimits::for_bitrate(2_660_000);
                f(&mut l);
                c.outputs[0].limits = Some(l);
            }
        };
        assert_eq!(option(&with_limits(|l| l.max_packets = 4)), None);
        assert_eq!(
            option(&with_limits(|l| l.max_packets = 3)),
            Some("buffer-packets")
        );
        assert_eq!(
            option(&with_limits(|l| l.max_span = Duration::from_millis(60_001))),
            Some("buffer-ms")
        );
        assert_eq!(
            option(&with_limits(|l| l.max_bytes = 65_535)),
            Some("buffer-bytes")
        );
        assert_eq!(
            option(&|c| c.outputs[0].stall_timeout = Duration::from_millis(99)),
            Some("stall-timeout")
        );
        assert_eq!(
            option(&|c| c.outputs[0].reconnect.max_delay = Duration::from_secs(3601)),
            Some("reconnect-max-delay")
        );
        assert_eq!(
            option(&|c| c.outputs[0].reconnect.max_retries = Some(1_000_001)),
            Some("max-retries")
        );
    }

    #[test]
    fn bitrate_text() {
        assert_eq!(parse_bitrate("2500k"), Ok(2_500_000));
        assert_eq!(parse_bitrate("2.5M"), Ok(2_500_000));
        assert_eq!(parse_bitrate(" 160000 "), Ok(160_000));
        assert!(parse_bitrate("fast").is_err());
        assert!(parse_bitrate("-1k").is_err());
        assert!(parse_bitrate("99999M").is_err());
        assert!(bps_from_f64(f64::NAN).is_err());
    }
}
