//! The congestion controller of one stream output: what bitrate its link
//! carries, and what video bitrate this output asks of the shared encoder.
//!
//! Why it is shaped like this:
//! - It is pure (time and measurements come in, a decision goes out), runs
//!   on the output's NetworkSendThread, which owns the socket it measures,
//!   and is tested in closed loop against a simulated bottleneck below.
//! - What the link really carries is what the peer acknowledged (TCP_INFO
//!   `tcpi_bytes_acked`): over `RATE_WINDOW` to set a cut, over the
//!   GOP-long `CAPACITY_WINDOW` to judge a probe or raise the estimate.
//!   While the link is saturated that is its capacity; while it is not, a
//!   lower bound.
//! - Congestion is a *standing* queue: the smallest StreamBuffer latency
//!   (queued timestamps + unsent kernel bytes) over `STANDING_WINDOW`. A
//!   keyframe crossing a slow link makes the queue jump for a moment without
//!   any congestion, so the instantaneous value would cut the bitrate at
//!   every GOP. A collapse is caught sooner by a second, shorter window with
//!   a higher threshold (`COLLAPSE_WINDOW`, `COLLAPSE_QUEUE_MS`).
//! - On congestion the target drops at once to what fits
//!   (`(1 - HEADROOM) * link - audio`), well before the muxer's drop
//!   thresholds, and the link estimate is remembered. If the queue still
//!   does not drain after `HOLD_AFTER_DECREASE` (an encoder that overshoots
//!   its target, or a link that keeps shrinking), it drops again by
//!   `REPEAT_DECREASE`.
//! - Recovery: with the queue clear for `PROBE_INTERVAL`, the target climbs
//!   back to the known-safe point quickly (`RETURN_STEP`), then probes above
//!   it with growing steps (`PROBE_STEPS`), each judged after `PROBE_SETTLE`:
//!   a probe that makes the queue stand, or asks for more than the link ever
//!   carried without the link carrying more, is taken back before anything
//!   drops, and probing above the safe point pauses for
//!   `QUIET_AFTER_CONGESTION`. A freed link is found again in seconds; a
//!   narrow one sees a shallow sawtooth of bitrate and no dropped frames.
//! - The user's bitrate is the ceiling and the floor is the lowest bitrate
//!   worth encoding at this size: the controller never leaves that range.
//!   Below the floor the muxer's keyframe-aware dropping is the last resort.
//! - A reconnect keeps the estimate and the target: the next session starts
//!   from the last good value, not from zero and not blindly at the ceiling.

use std::collections::VecDeque;
use std::time::Duration;

/// The acknowledged rate that sets a decrease is measured over this window:
/// short, so a cut follows the link as it is now.
pub const RATE_WINDOW: Duration = Duration::from_millis(1000);
/// The rate that judges a probe and raises the link estimate is measured
/// over this window: at least a GOP (2 s by default), so a keyframe does not
/// make a second look fast.
pub const CAPACITY_WINDOW: Duration = Duration::from_millis(2000);
/// The standing queue is the minimum latency over this window.
pub const STANDING_WINDOW: Duration = Duration::from_millis(600);
/// A standing queue above this means the link carries less than we send
/// (OBS's dynamic bitrate reacts at 200 ms of queued video, instantaneous).
pub const CONGESTED_QUEUE_MS: u64 = 200;
/// A standing queue below this means the link has room: probing may go on.
pub const CLEAR_QUEUE_MS: u64 = 120;
/// The shorter window that catches a sudden collapse.
pub const COLLAPSE_WINDOW: Duration = Duration::from_millis(300);
/// Minimum latency over `COLLAPSE_WINDOW` that is a collapse.
pub const COLLAPSE_QUEUE_MS: u64 = 600;
/// Share of the measured link left unused after a decrease: it drains the
/// queue that built up, and absorbs the encoder's overshoot.
pub const HEADROOM: f64 = 0.15;
/// After a decrease, no other decision for this long: the encoder needs a
/// few frames to follow, the queue needs time to drain.
pub const HOLD_AFTER_DECREASE: Duration = Duration::from_millis(1500);
/// A congestion that outlives the hold multiplies the target by this.
pub const REPEAT_DECREASE: f64 = 0.85;
/// Minimum time between two increases below the known-safe point.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(1000);
/// A probe above the known-safe point is judged after this long: the
/// standing window must have seen the new rate in action.
pub const PROBE_SETTLE: Duration = Duration::from_millis(1800);
/// A probe fails when the standing queue grew by more than this while it
/// was judged: the link is full at the new rate, even if not congested yet.
pub const PROBE_QUEUE_GROWTH_MS: u64 = 60;
/// A probe asking for at least this fraction of the known link capacity
/// explores beyond it...
pub const PROBE_BEYOND_LINK: f64 = 0.97;
/// ...and passes only if the link then carried this much more than known,
pub const PROBE_GAIN_NEEDED: f64 = 1.02;
/// ...or this fraction of what the probe asked for (the encoder's output
/// wanders around its target).
pub const PROBE_CARRIED: f64 = 0.95;
/// ...and a probe short of its rate fails only if the standing queue grew
/// by at least this much.
pub const PROBE_QUEUE_HINT_MS: u64 = 20;
/// Below the known-safe point, each increase multiplies by up to this.
pub const RETURN_STEP: f64 = 1.3;
/// Above the known-safe point, successive probes (each one judged clear)
/// grow by these fractions; the last one repeats.
pub const PROBE_STEPS: [f64; 4] = [0.05, 0.15, 0.30, 0.50];
/// After a congestion or a failed probe, no probing above the known-safe
/// point for this long.
pub const QUIET_AFTER_CONGESTION: Duration = Duration::from_secs(3);
/// Bits per second of RTMP/FLV framing on top of the media (chunk and tag
/// headers, about 40 bytes per frame at 80 frames/s).
pub const FRAMING_OVERHEAD_BPS: u64 = 26_000;

/// Why the target is where it is (status line, stats).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Reason {
    /// At the user's ceiling: nothing to adapt.
    Ceiling = 1,
    /// Lowered to fit what the link carries.
    Link = 2,
    /// Climbing back while the link has room.
    Probing = 3,
    /// Held at the floor: the link carries less; frames may be dropped.
    Floor = 4,
}

impl Reason {
    /// The reason stored as `r as u8` (0 = none yet).
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Ceiling),
            2 => Some(Self::Link),
            3 => Some(Self::Probing),
            4 => Some(Self::Floor),
            _ => None,
        }
    }

    /// Lower-case name as it appears in stats.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ceiling => "ceiling",
            Self::Link => "link",
            Self::Probing => "probing",
            Self::Floor => "floor",
        }
    }
}

/// One look at the link, taken by the send thread.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Observation {
    /// Monotonic time since any fixed origin.
    pub now: Duration,
    /// Bytes the peer acknowledged so far in this session.
    pub acked_bytes: u64,
    /// StreamBuffer latency now: queued timestamp span + unsent bytes, ms.
    pub queue_ms: u64,
    /// The user's video bitrate: the controller never asks for more.
    pub ceiling_bps: u32,
    /// The lowest video bitrate worth encoding: never asks for less.
    pub floor_bps: u32,
    /// The audio bitrate, which the link carries too.
    pub audio_bps: u32,
}

/// What the controller wants now.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decision {
    /// Video bitrate this output asks of the encoder, bit/s.
    pub target_bps: u32,
    /// What the link is believed to carry (media + framing), bit/s; 0 while
    /// nothing is known yet.
    pub link_bps: u64,
    /// Why the target is there.
    pub reason: Reason,
}

/// The controller of one output.
#[derive(Debug)]
pub struct CongestionController {
    target_bps: u32,
    /// Known capacity (bit/s): set on congestion, raised by any higher rate
    /// the link carried with a clear queue.
    link_bps: u64,
    reason: Reason,
    acked: VecDeque<(Duration, u64)>,
    queue: VecDeque<(Duration, u64)>,
    last_decrease: Option<(Duration, u64)>,
    last_increase: Option<Duration>,
    last_congestion: Option<Duration>,
    probe_streak: usize,
    /// The probe above the known-safe point being judged, if any.
    probe: Option<Probe>,
}

/// A probe above the known-safe point, until it is judged.
#[derive(Clone, Copy, Debug)]
struct Probe {
    /// The target before it, to go back to.
    from_bps: u32,
    /// The standing queue when it started.
    base_queue_ms: u64,
    /// When the probe asks for more than the link was ever seen to carry,
    /// that capacity: the probe only passes if the link carries more.
    beyond_link_bps: Option<u64>,
    /// What the probe asks the link to carry (video + audio + framing).
    asks_bps: f64,
}

impl CongestionController {
    /// A controller that starts at `initial_bps` (the ceiling at first).
    pub fn new(initial_bps: u32) -> Self {
        Self {
            target_bps: initial_bps,
            link_bps: 0,
            reason: Reason::Ceiling,
            acked: VecDeque::new(),
            queue: VecDeque::new(),
            last_decrease: None,
            last_increase: None,
            last_congestion: None,
            probe_streak: 0,
            probe: None,
        }
    }

    /// The current decision, without a new observation.
    pub fn decision(&self) -> Decision {
        Decision {
            target_bps: self.target_bps,
            link_bps: self.link_bps,
            reason: self.reason,
        }
    }

    /// A new session (after a reconnect) starts: measurements start over,
    /// the target and the link estimate are kept.
    pub fn on_new_session(&mut self) {
        self.acked.clear();
        self.queue.clear();
        self.last_decrease = None;
        self.last_increase = None;
        self.probe_streak = 0;
        if let Some(p) = self.probe.take() {
            self.target_bps = p.from_bps;
        }
    }

    /// Takes one observation and returns the decision.
    pub fn observe(&mut self, o: Observation) -> Decision {
        self.record(&o);
        let ceiling = o.ceiling_bps.max(o.floor_bps);
        // A lowered ceiling takes effect at once; it is the user's word.
        if self.target_bps > ceiling {
            self.target_bps = ceiling;
        }
        let rate = self.acked_rate_bps(RATE_WINDOW);
        let capacity = self.acked_rate_bps(CAPACITY_WINDOW);
        let standing = min_since(&self.queue, o.now, STANDING_WINDOW);
        let collapse = min_since(&self.queue, o.now, COLLAPSE_WINDOW);
        let congested = standing.is_some_and(|q| q > CONGESTED_QUEUE_MS)
            || collapse.is_some_and(|q| q > COLLAPSE_QUEUE_MS);
        let clear = standing.is_some_and(|q| q < CLEAR_QUEUE_MS);
        if congested {
            self.on_congestion(&o, rate, ceiling);
        } else if clear && !self.probe_failed(&o, standing, capacity) {
            if let Some(r) = capacity {
                // Carried with no standing queue: the link holds at least this.
                self.link_bps = self.link_bps.max(r);
            }
            self.maybe_increase(&o, ceiling, standing.unwrap_or(0));
        } else {
            self.maybe_undo_probe(&o);
        }
        if self.target_bps >= ceiling {
            self.reason = Reason::Ceiling;
        } else if self.target_bps <= o.floor_bps && congested {
            self.reason = Reason::Floor;
        }
        self.decision()
    }

    fn record(&mut self, o: &Observation) {
        self.acked.push_back((o.now, o.acked_bytes));
        self.queue.push_back((o.now, o.queue_ms));
        let keep = CAPACITY_WINDOW.max(RATE_WINDOW).max(STANDING_WINDOW);
        for q in [&mut self.acked, &mut self.queue] {
            while q
                .front()
                .is_some_and(|(t, _)| o.now.saturating_sub(*t) > keep)
            {
                q.pop_front();
            }
        }
    }

    /// Acknowledged bit/s over the rate window; `None` until the window has
    /// most of its span (a rate over a few ms means nothing).
    fn acked_rate_bps(&self, window: Duration) -> Option<u64> {
        let (t1, b1) = *self.acked.back()?;
        let (t0, b0) = *self
            .acked
            .iter()
            .find(|(t, _)| t1.saturating_sub(*t) <= window)?;
        let span = t1.saturating_sub(t0);
        if span < window / 2 {
            return None;
        }
        Some(b1.saturating_sub(b0) * 8 * 1000 / (span.as_millis() as u64).max(1))
    }

    fn on_congestion(&mut self, o: &Observation, rate: Option<u64>, ceiling: u32) {
        if let Some((at, queue_then)) = self.last_decrease {
            let held = o.now.saturating_sub(at) < HOLD_AFTER_DECREASE;
            // Still draining: the last decision is working, give it time.
            let draining = o.queue_ms + CLEAR_QUEUE_MS / 2 < queue_then;
            if held || draining {
                return;
            }
        }
        let mut target = f64::from(self.target_bps) * REPEAT_DECREASE;
        if let Some(r) = rate {
            self.link_bps = r;
            let fits =
                r as f64 * (1.0 - HEADROOM) - f64::from(o.audio_bps) - FRAMING_OVERHEAD_BPS as f64;
            // The first decrease of an episode goes straight to what fits;
            // a repeated one goes at least REPEAT_DECREASE lower.
            target = if self.reason == Reason::Link && self.last_decrease.is_some() {
                target.min(fits)
            } else {
                fits
            };
        }
        let target = (target.max(f64::from(o.floor_bps)) as u32).min(ceiling);
        if target < self.target_bps {
            self.target_bps = target;
            self.reason = Reason::Link;
        }
        self.last_decrease = Some((o.now, o.queue_ms));
        self.last_congestion = Some(o.now);
        self.probe_streak = 0;
        self.probe = None;
    }

    /// True when the probe being judged made the standing queue grow, or,
    /// once settled, asked for more than the link was known to carry and
    /// the link did not carry more.
    fn probe_failed(&self, o: &Observation, standing: Option<u64>, rate: Option<u64>) -> bool {
        let Some(p) = self.probe else { return false };
        let grew = |by: u64| standing.is_some_and(|q| q > p.base_queue_ms + by);
        if grew(PROBE_QUEUE_GROWTH_MS) {
            return true;
        }
        // An encoder can spend less than its target (easy content, low
        // bitrates): a rate short of the ask only counts against the probe
        // when the queue shows the link is full too.
        if !grew(PROBE_QUEUE_HINT_MS) {
            return false;
        }
        let settled = self
            .last_increase
            .is_some_and(|t| o.now.saturating_sub(t) >= PROBE_SETTLE);
        match (p.beyond_link_bps, rate) {
            (Some(link), Some(r)) if settled => {
                // Carried clearly more than known, or about what was asked.
                let enough = (link as f64 * PROBE_GAIN_NEEDED).min(p.asks_bps * PROBE_CARRIED);
                (r as f64) < enough
            }
            _ => false,
        }
    }

    /// A probe made the queue stand (not yet congested): the link is full
    /// at the previous rate. Go back to it, quietly, before anything drops.
    fn maybe_undo_probe(&mut self, o: &Observation) {
        let Some(Probe { from_bps: from, .. }) = self.probe else {
            return;
        };
        if self
            .last_increase
            .is_some_and(|t| o.now.saturating_sub(t) < STANDING_WINDOW)
        {
            return;
        }
        self.target_bps = from;
        self.reason = Reason::Link;
        self.probe = None;
        self.probe_streak = 0;
        self.last_congestion = Some(o.now);
    }

    fn maybe_increase(&mut self, o: &Observation, ceiling: u32, standing: u64) {
        self.last_decrease = None;
        if self.target_bps >= ceiling {
            return;
        }
        let interval = if self.probe.is_some() {
            PROBE_SETTLE
        } else {
            PROBE_INTERVAL
        };
        if self
            .last_increase
            .is_some_and(|t| o.now.saturating_sub(t) < interval)
        {
            return;
        }
        // The last probe stood its test: the link carries it.
        self.probe = None;
        let current = f64::from(self.target_bps);
        let safe = (self.link_bps as f64 * (1.0 - HEADROOM)
            - f64::from(o.audio_bps)
            - FRAMING_OVERHEAD_BPS as f64)
            .max(0.0);
        // (Within 2 % of the safe point counts as there: no crawling.)
        let next = if current < safe * 0.98 {
            (current * RETURN_STEP).min(safe)
        } else {
            let quiet = self
                .last_congestion
                .is_some_and(|t| o.now.saturating_sub(t) < QUIET_AFTER_CONGESTION);
            if quiet {
                return;
            }
            let step = PROBE_STEPS[self.probe_streak.min(PROBE_STEPS.len() - 1)];
            self.probe_streak += 1;
            let next = current * (1.0 + step);
            let needs = next + f64::from(o.audio_bps) + FRAMING_OVERHEAD_BPS as f64;
            self.probe = Some(Probe {
                from_bps: self.target_bps,
                base_queue_ms: standing,
                beyond_link_bps: (needs >= self.link_bps as f64 * PROBE_BEYOND_LINK)
                    .then_some(self.link_bps),
                asks_bps: needs,
            });
            next
        };
        let next = (next as u32).clamp(o.floor_bps, ceiling);
        if next >= ceiling {
            // Back at the user's bitrate: nothing left to judge.
            self.probe = None;
        }
        if next > self.target_bps {
            self.target_bps = next;
            self.reason = Reason::Probing;
            self.last_increase = Some(o.now);
        } else {
            self.probe = None;
        }
    }
}

/// Smallest value recorded within `window` of `now`; `None` until the
/// samples cover most of the window.
fn min_since(samples: &VecDeque<(Duration, u64)>, now: Duration, window: Duration) -> Option<u64> {
    let (first, _) = *samples.front()?;
    if now.saturating_sub(first) < window.mul_f64(0.9) {
        return None;
    }
    samples
        .iter()
        .filter(|(t, _)| now.saturating_sub(*t) <= window)
        .map(|(_, q)| *q)
        .min()
}

#[cfg(test)]
mod tests;
