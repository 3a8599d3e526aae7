//! JS numbers read as whole numbers, bitrates, sizes and durations.
//!
//! Why numbers are `f64` here: a JS number converted straight to `u32` by napi wraps
//! negatives and truncates fractions silently; taking `f64` lets every value be checked
//! (integer, range) and rejected with the option's name.

use crate::errors::Failure;
use napi::bindgen_prelude::Either;
use onair::limits;
use std::time::Duration;

/// The largest integer an `f64` holds exactly.
const EXACT_INT_MAX: f64 = 9_007_199_254_740_992.0;

/// Checks `v` is a whole, non-negative number; its range is checked by
/// [`onair::limits`] afterwards.
pub(super) fn whole(name: &str, v: f64) -> Result<u64, Failure> {
    if !v.is_finite() || v.fract() != 0.0 || !(0.0..=EXACT_INT_MAX).contains(&v) {
        return Err(Failure::option(
            name,
            format!("{v} is not a whole number >= 0"),
        ));
    }
    Ok(v as u64)
}

/// `n` as `u32`, or `u32::MAX` (outside every range) when larger.
pub(super) fn saturating_u32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A limits check's reason as an error naming the option.
pub(super) fn in_limits(name: &str, r: Result<(), String>) -> Result<(), Failure> {
    r.map_err(|reason| Failure::option(name, reason))
}

/// A bitrate as bit/s or `'2500k'` / `'6M'`; its range is the caller's check.
pub(super) fn bitrate(name: &str, v: &Either<f64, String>) -> Result<u32, Failure> {
    match v {
        Either::A(n) => limits::bps_from_f64(*n),
        Either::B(s) => limits::parse_bitrate(s),
    }
    .map_err(|reason| Failure::option(name, reason))
}

/// `'WxH'`.
pub(super) fn size(s: &str) -> Result<(f64, f64), Failure> {
    let bad = || Failure::option("size", format!("'{s}' is not WxH (e.g. 1280x720)"));
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let w: f64 = w.trim().parse().map_err(|_| bad())?;
    let h: f64 = h.trim().parse().map_err(|_| bad())?;
    Ok((w, h))
}

/// A whole number of milliseconds.
pub(super) fn millis(name: &str, v: f64) -> Result<Duration, Failure> {
    Ok(Duration::from_millis(whole(name, v)?))
}
