//! The send thread's measurements of its link: the congestion controller in
//! its place ([`Adaptation`]) and the send rate ([`RateMeter`]).
//!
//! Why here and not in `congestion.rs`: the controller is pure (numbers in,
//! a decision out); this is where it meets the session's counters and the
//! encoder's bitrate, on the thread that owns both.

use super::super::congestion::{CongestionController, Observation};
use super::{SendContext, Session, OBSERVE_INTERVAL};
use crate::stats::OutputCounters;
use crate::video::bitrate::{BitrateWish, VideoBitrate};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The congestion controller in its place: observes the session every
/// `OBSERVE_INTERVAL` and states the output's wish.
pub struct Adaptation {
    ctl: CongestionController,
    bitrate: Arc<VideoBitrate>,
    wish: Arc<BitrateWish>,
    origin: Instant,
    next_at: Instant,
}

impl Adaptation {
    pub fn new(bitrate: Arc<VideoBitrate>) -> Self {
        let wish = bitrate.register();
        Self {
            ctl: CongestionController::new(bitrate.ceiling()),
            bitrate,
            wish,
            origin: Instant::now(),
            next_at: Instant::now(),
        }
    }

    /// A session begins: measurements start over; the last good target is
    /// kept (and stated at once, so the session's first IDR is sized for it).
    pub fn on_new_session(&mut self) {
        self.ctl.on_new_session();
        self.next_at = Instant::now();
    }

    pub fn observe(&mut self, ctx: &SendContext, s: &Session) {
        let now = Instant::now();
        if now < self.next_at {
            return;
        }
        self.next_at = now + OBSERVE_INTERVAL;
        // Bytes the peer acknowledged: TCP_INFO, or what left the kernel's
        // send queue where TCP_INFO does not say.
        let acked = s
            .publisher
            .bytes_acked()
            .filter(|b| *b > 0)
            .unwrap_or_else(|| {
                s.written
                    .saturating_sub(s.publisher.kernel_unsent_bytes() as u64)
            });
        let d = self.ctl.observe(Observation {
            now: now - self.origin,
            acked_bytes: acked,
            queue_ms: ctx.buffer.latency_ms(),
            ceiling_bps: self.bitrate.ceiling(),
            floor_bps: self.bitrate.floor(),
            audio_bps: ctx.audio_bps,
        });
        self.wish.set(d.target_bps);
        let c = &ctx.counters;
        c.link_bps.store(d.link_bps, Ordering::Relaxed);
        c.wanted_video_bps
            .store(u64::from(d.target_bps), Ordering::Relaxed);
        c.bitrate_reason.store(d.reason as u8, Ordering::Relaxed);
    }
}

/// The send rate is measured over windows this long.
pub const RATE_WINDOW: Duration = Duration::from_secs(1);

/// Measures the send rate (`send_rate_bps`) over windows of `RATE_WINDOW`.
pub struct RateMeter {
    window_start: Instant,
    window_bytes: u64,
}

impl RateMeter {
    pub fn new() -> Self {
        Self {
            window_start: Instant::now(),
            window_bytes: 0,
        }
    }

    pub fn add(&mut self, bytes: u64, counters: &OutputCounters) {
        self.window_bytes += bytes;
        let elapsed = self.window_start.elapsed();
        if elapsed >= RATE_WINDOW {
            let bps = self.window_bytes * 8 * 1000 / (elapsed.as_millis() as u64).max(1);
            counters.send_rate_bps.store(bps, Ordering::Relaxed);
            *self = Self::new();
        }
    }
}
