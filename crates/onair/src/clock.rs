//! The master clock: one monotonic origin that every timestamp in a stream is
//! measured from.
//!
//! Why: the seed's golden rule 6 ("the clock never stops") only holds if no
//! component keeps its own notion of time. Capture, audio and the muxer all
//! stamp from this clock, and frame/sample positions are derived from elapsed
//! time with exact integer arithmetic so that nothing drifts over hours.

use std::time::{Duration, Instant};

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// A monotonic clock started once per pipeline. Cheap to copy.
#[derive(Clone, Copy, Debug)]
pub struct MasterClock {
    origin: Instant,
}

impl MasterClock {
    /// Starts the clock now: time 0 of the stream.
    pub fn start() -> Self {
        Self {
            origin: Instant::now(),
        }
    }

    /// Nanoseconds elapsed since the clock started.
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The `Instant` at which stream time `ns` falls, for sleeping until a deadline.
    pub fn instant_at(&self, ns: u64) -> Instant {
        self.origin + Duration::from_nanos(ns)
    }
}

/// A rate as an exact fraction (e.g. 30/1 fps, 30000/1001 fps, 48000/1 Hz).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Units per `den` seconds.
    pub num: u32,
    /// Seconds per `num` units.
    pub den: u32,
}

impl Rate {
    /// A whole-number rate such as 30 fps or 48000 Hz.
    pub const fn per_second(n: u32) -> Self {
        Self { num: n, den: 1 }
    }

    /// How many units (frames, samples) should exist after `elapsed_ns`:
    /// `floor(elapsed * num / den)`. Exact for any run length; never drifts.
    pub fn expected_frames(self, elapsed_ns: u64) -> u64 {
        let units = u128::from(elapsed_ns) * u128::from(self.num)
            / (NANOS_PER_SEC * u128::from(self.den.max(1)));
        u64::try_from(units).unwrap_or(u64::MAX)
    }

    /// Stream time of unit `index` (frame or sample), rounded up to the ns,
    /// so that `expected_frames(time_of(n)) == n` exactly: at its own time a
    /// unit is due, never one nanosecond early.
    pub fn time_of(self, index: u64) -> u64 {
        let num = u128::from(self.num.max(1));
        let ns = (u128::from(index) * NANOS_PER_SEC * u128::from(self.den)).div_ceil(num);
        u64::try_from(ns).unwrap_or(u64::MAX)
    }

    /// Length of one unit in nanoseconds (rounded down); for display and sleeps only.
    pub fn interval_ns(self) -> u64 {
        self.time_of(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_frames_is_exact_over_a_day() {
        let fps = Rate::per_second(30);
        let day_ns = 24 * 3600 * 1_000_000_000u64;
        assert_eq!(fps.expected_frames(day_ns), 24 * 3600 * 30);
        let ntsc = Rate {
            num: 30000,
            den: 1001,
        };
        // 1001 seconds of NTSC video hold exactly 30000 frames.
        assert_eq!(ntsc.expected_frames(1001 * 1_000_000_000), 30000);
        let audio = Rate::per_second(48_000);
        assert_eq!(audio.expected_frames(day_ns), 48_000 * 24 * 3600);
    }

    #[test]
    fn time_of_and_expected_frames_agree_without_drift() {
        for rate in [
            Rate::per_second(30),
            Rate {
                num: 30000,
                den: 1001,
            },
            Rate::per_second(44_100),
            Rate::per_second(48_000),
        ] {
            // Frame n starts at time_of(n): at that instant exactly n+1 frames
            // are due (frames 0..=n), and just before it only n.
            for n in [1u64, 2, 999, 1_000_003, 10_000_000_019] {
                let t = rate.time_of(n);
                assert_eq!(rate.expected_frames(t), n, "{rate:?} {n}");
                assert_eq!(rate.expected_frames(t - 1), n - 1, "{rate:?} {n}");
                assert!(
                    rate.expected_frames(t + rate.interval_ns() + 1) >= n,
                    "{rate:?} {n}"
                );
                assert!(
                    rate.expected_frames(rate.time_of(n + 1)) >= n,
                    "{rate:?} {n}"
                );
            }
        }
    }

    /// The clock starts at 0 when started, runs at wall-clock speed in
    /// nanoseconds, and `instant_at` maps its readings back to the instants
    /// they were taken at (a clock frozen, started elsewhere, or counting in
    /// other units fails this).
    #[test]
    fn clock_starts_at_zero_and_follows_wall_time() {
        let before = Instant::now();
        let c = MasterClock::start();
        let after = Instant::now();
        assert!((before..=after).contains(&c.instant_at(0)));
        let a = c.now_ns();
        std::thread::sleep(Duration::from_millis(20));
        let b = c.now_ns();
        assert!(b - a >= 20_000_000, "advanced {} ns over 20 ms", b - a);
        assert!(b - a < 20_000_000_000, "advanced {} ns over 20 ms", b - a);
        let t0 = Instant::now();
        let n = c.now_ns();
        let t1 = Instant::now();
        let at = c.instant_at(n);
        assert!(at + Duration::from_nanos(1) >= t0 && at <= t1, "{n} ns");
        let mut last = c.now_ns();
        for _ in 0..10_000 {
            let now = c.now_ns();
            assert!(now >= last, "went back from {last} to {now}");
            last = now;
        }
    }
}
