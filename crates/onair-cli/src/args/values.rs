//! The value parsers of the options (clap `value_parser`s): numbers, sizes, bitrates,
//! durations and buffer bounds, each checked against its range in [`onair::limits`].
//!
//! Why here and not later: a malformed value must exit with code 2 and one line naming
//! the option, which is what clap does for a `value_parser` error.

use onair::limits;
use std::path::PathBuf;
use std::time::Duration;

/// `--ca-file`: a file that exists (its certificates are read when a connection starts).
pub(super) fn parse_ca_file(s: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(s);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("'{s}' is not a readable file"))
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

pub(super) fn parse_fps(s: &str) -> Result<u32, String> {
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

pub(super) fn parse_buffer_packets(s: &str) -> Result<usize, String> {
    let n = number(s, "a whole number of packets")?;
    limits::check_buffer_packets(n)?;
    Ok(n)
}

pub(super) fn parse_buffer_ms(s: &str) -> Result<u64, String> {
    let ms = number(s, "a whole number of milliseconds")?;
    limits::check_buffer_ms(ms)?;
    Ok(ms)
}

/// `4M`, `512k`, `65536` -> bytes (binary units), within [`limits::BUFFER_BYTES`].
pub(super) fn parse_bytes(s: &str) -> Result<usize, String> {
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

pub(super) fn parse_bframes(s: &str) -> Result<u32, String> {
    let n: u32 = number(s, "a whole number of B-frames")?;
    if n > MAX_BFRAMES {
        return Err(format!("{n} is more than {MAX_BFRAMES}"));
    }
    Ok(n)
}

pub(super) fn parse_keyint(s: &str) -> Result<f32, String> {
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

pub(super) fn parse_stall_timeout(s: &str) -> Result<Duration, String> {
    let d = parse_seconds(s)?;
    limits::check_stall_timeout(d)?;
    Ok(d)
}

pub(super) fn parse_reconnect_max_delay(s: &str) -> Result<Duration, String> {
    let d = parse_seconds(s)?;
    limits::check_reconnect_max_delay(d)?;
    Ok(d)
}

pub(super) fn parse_max_retries(s: &str) -> Result<u32, String> {
    let n = number(s, "a whole number of retries")?;
    limits::check_max_retries(n)?;
    Ok(n)
}
