//! VideoBitrate: who sets the encoder's target bitrate, and how several
//! destinations that share one encoder agree on it.
//!
//! Why it is shaped like this:
//! - One encoder feeds every output (encode once), so its bitrate is one
//!   number, and it has one owner: the video encoder thread, which resolves
//!   it before each frame ([`VideoBitrate::resolve`]) and publishes what it
//!   applied ([`VideoBitrate::current`]). Everybody else only states what
//!   they want, each through its own atomic: the user (the ceiling), each
//!   stream output's congestion controller (a [`BitrateWish`]). Nobody
//!   reads, decides and writes across threads.
//! - The user's bitrate is the ceiling, never fought: a bitrate set while
//!   running replaces the ceiling, and the controllers work below it.
//! - Several destinations: the encoder follows the slowest one, but not
//!   below `SHARED_MIN_FRACTION` of what the fastest one wants, and never
//!   below the floor. A destination whose link carries even less keeps its
//!   own congestion to itself: its muxer drops frames (keyframe-aware) in
//!   its own buffer, and the healthy destinations keep their picture.
//!   Recorders never state a wish: a file never lowers the bitrate.
//! - A destination keeps its wish while it reconnects, so its next session
//!   starts from its last good estimate; the wish goes away with the output.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// A healthy destination never gets less than this fraction of what its
/// own link carries because another destination is slower.
pub const SHARED_MIN_FRACTION: f64 = 0.5;
/// The default floor is this many bits per pixel per frame: below it a
/// picture is mush, and dropping frames serves the viewer better.
pub const FLOOR_BITS_PER_PIXEL: f64 = 0.01;
/// The default floor is never below this (openh264's own minimum).
pub const MIN_FLOOR_BPS: u32 = 50_000;

/// The default floor for a picture size and rate: 276 kbit/s at 720p30,
/// 622 kbit/s at 1080p30.
pub fn default_floor_bps(width: u32, height: u32, fps: u32) -> u32 {
    let bps = f64::from(width) * f64::from(height) * f64::from(fps) * FLOOR_BITS_PER_PIXEL;
    (bps as u32).max(MIN_FLOOR_BPS)
}

/// What one stream output wants of the encoder, bit/s (0 = nothing yet).
/// Written only by that output's NetworkSendThread.
#[derive(Debug, Default)]
pub struct BitrateWish(AtomicU32);

impl BitrateWish {
    /// States the wish.
    pub fn set(&self, bps: u32) {
        self.0.store(bps, Ordering::Relaxed);
    }

    /// The wish now.
    pub fn get(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The encoder's bitrate: the ceiling, the floor, the wishes, and what was
/// applied. Shared (`Arc`) by the Streamer, the video encoder thread and
/// every stream output.
#[derive(Debug)]
pub struct VideoBitrate {
    ceiling: AtomicU32,
    floor: u32,
    adaptive: AtomicBool,
    current: AtomicU32,
    wishes: Mutex<Vec<Weak<BitrateWish>>>,
}

impl VideoBitrate {
    /// Starts at `ceiling_bps`; adaptation (when `adaptive`) never goes
    /// below `floor_bps` (unless the ceiling itself is lower).
    pub fn new(ceiling_bps: u32, floor_bps: u32, adaptive: bool) -> Self {
        Self {
            ceiling: AtomicU32::new(ceiling_bps),
            floor: floor_bps,
            adaptive: AtomicBool::new(adaptive),
            current: AtomicU32::new(ceiling_bps),
            wishes: Mutex::new(Vec::new()),
        }
    }

    /// The user's bitrate: the new ceiling, from the next frame on.
    pub fn set_ceiling(&self, bps: u32) {
        self.ceiling.store(bps, Ordering::Relaxed);
    }

    /// The user's bitrate.
    pub fn ceiling(&self) -> u32 {
        self.ceiling.load(Ordering::Relaxed)
    }

    /// The lowest bitrate adaptation may choose.
    pub fn floor(&self) -> u32 {
        self.floor.min(self.ceiling())
    }

    /// Whether the controllers' wishes count.
    pub fn adaptive(&self) -> bool {
        self.adaptive.load(Ordering::Relaxed)
    }

    /// The target the encoder applied last, bit/s.
    pub fn current(&self) -> u32 {
        self.current.load(Ordering::Relaxed)
    }

    /// A new wish for one stream output (starts empty); dropping it removes it.
    pub fn register(&self) -> Arc<BitrateWish> {
        let wish = Arc::new(BitrateWish::default());
        let mut w = self.wishes.lock().unwrap_or_else(|e| e.into_inner());
        w.retain(|x| x.strong_count() > 0);
        w.push(Arc::downgrade(&wish));
        wish
    }

    /// The target now (see the module doc for the policy). Called by the
    /// video encoder thread before each frame.
    pub fn resolve(&self) -> u32 {
        let ceiling = self.ceiling();
        if !self.adaptive() {
            return ceiling;
        }
        let (mut lo, mut hi) = (u32::MAX, 0u32);
        {
            let w = self.wishes.lock().unwrap_or_else(|e| e.into_inner());
            for bps in w.iter().filter_map(Weak::upgrade).map(|x| x.get()) {
                if bps > 0 {
                    lo = lo.min(bps);
                    hi = hi.max(bps);
                }
            }
        }
        if hi == 0 {
            return ceiling;
        }
        let shared = (f64::from(hi) * SHARED_MIN_FRACTION) as u32;
        lo.max(shared).max(self.floor).min(ceiling)
    }

    /// Records what the encoder applied (the encoder thread only).
    pub fn set_current(&self, bps: u32) {
        self.current.store(bps, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_wishes_or_adaptation_the_ceiling_rules() {
        let b = VideoBitrate::new(2_500_000, 300_000, true);
        assert_eq!(b.resolve(), 2_500_000);
        let w = b.register();
        assert_eq!(b.resolve(), 2_500_000, "an empty wish does not count");
        w.set(1_000_000);
        assert_eq!(b.resolve(), 1_000_000);
        let off = VideoBitrate::new(2_500_000, 300_000, false);
        let w2 = off.register();
        w2.set(1_000_000);
        assert_eq!(off.resolve(), 2_500_000, "adaptation off: wishes ignored");
    }

    #[test]
    fn floor_and_ceiling_bound_every_wish() {
        let b = VideoBitrate::new(2_500_000, 300_000, true);
        let w = b.register();
        w.set(100_000);
        assert_eq!(b.resolve(), 300_000);
        w.set(9_000_000);
        assert_eq!(b.resolve(), 2_500_000);
        // The user's ceiling wins even over the floor.
        b.set_ceiling(200_000);
        assert_eq!(b.resolve(), 200_000);
        assert_eq!(b.floor(), 200_000);
    }

    #[test]
    fn a_slow_destination_drags_a_healthy_one_down_only_so_far() {
        let b = VideoBitrate::new(2_500_000, 300_000, true);
        let healthy = b.register();
        let slow = b.register();
        healthy.set(2_500_000);
        slow.set(1_800_000);
        assert_eq!(b.resolve(), 1_800_000, "follows the slowest while it can");
        slow.set(400_000);
        assert_eq!(b.resolve(), 1_250_000, "but not below half the healthy one");
        drop(slow);
        assert_eq!(
            b.resolve(),
            2_500_000,
            "a removed output's wish goes with it"
        );
    }

    #[test]
    fn default_floor_suits_the_size() {
        assert_eq!(default_floor_bps(1280, 720, 30), 276_480);
        assert_eq!(default_floor_bps(1920, 1080, 30), 622_080);
        assert_eq!(default_floor_bps(160, 120, 1), MIN_FLOOR_BPS);
    }
}
