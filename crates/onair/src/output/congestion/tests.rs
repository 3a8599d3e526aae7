//! The controller in closed loop against a simulated bottleneck: an encoder
//! that follows its target a frame late and overshoots it, periodic
//! keyframes, audio, a FIFO link of a given capacity, and the acknowledged
//! byte count the kernel would report.

use super::*;

const CEILING: u32 = 2_500_000;
const AUDIO: u32 = 160_000;
const FLOOR: u32 = 300_000;
const FPS: u64 = 30;
const GOP: u64 = 60;
/// openh264 on the noisy test pattern: 2.67 Mbit/s for a 2.5 Mbit/s target.
const OVERSHOOT: f64 = 1.07;
/// A keyframe is this many times an inter frame.
const KEYFRAME_WEIGHT: f64 = 6.0;
const TICK_MS: u64 = 10;
const OBSERVE_EVERY_MS: u64 = 100;
/// The muxer starts dropping video at 75 % of the 2000 ms span bound.
const DROP_QUEUE_MS: u64 = 1500;

/// One simulated run: per-100 ms samples of (t ms, target, queue ms, link).
struct Trace {
    samples: Vec<(u64, u32, u64, u64)>,
    ctl: CongestionController,
}

impl Trace {
    fn between(&self, from_s: u64, to_s: u64) -> impl Iterator<Item = &(u64, u32, u64, u64)> {
        self.samples
            .iter()
            .filter(move |s| s.0 >= from_s * 1000 && s.0 < to_s * 1000)
    }

    fn max_queue(&self, from_s: u64, to_s: u64) -> u64 {
        self.between(from_s, to_s).map(|s| s.2).max().unwrap_or(0)
    }

    fn targets(&self, from_s: u64, to_s: u64) -> (u32, u32) {
        let t: Vec<u32> = self.between(from_s, to_s).map(|s| s.1).collect();
        (
            t.iter().copied().min().unwrap_or(0),
            t.iter().copied().max().unwrap_or(0),
        )
    }

    fn mean_target(&self, from_s: u64, to_s: u64) -> f64 {
        let t: Vec<f64> = self.between(from_s, to_s).map(|s| f64::from(s.1)).collect();
        t.iter().sum::<f64>() / t.len().max(1) as f64
    }

    /// Share of the span's samples whose target is above `bps`.
    fn share_above(&self, from_s: u64, to_s: u64, bps: f64) -> f64 {
        let t: Vec<u32> = self.between(from_s, to_s).map(|s| s.1).collect();
        t.iter().filter(|x| f64::from(**x) > bps).count() as f64 / t.len().max(1) as f64
    }

    /// Number of target decreases in the span (probes taken back included).
    fn decreases(&self, from_s: u64, to_s: u64) -> usize {
        let t: Vec<u32> = self.between(from_s, to_s).map(|s| s.1).collect();
        t.windows(2).filter(|w| w[1] < w[0]).count()
    }

    /// First time (s, fractional) at or after `from_s` the target reaches `bps`.
    fn first_at_least(&self, from_s: u64, bps: u32) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s.0 >= from_s * 1000 && s.1 >= bps)
            .map(|s| s.0 as f64 / 1000.0)
    }

    /// First time at or after `from_s` the target is at most `bps`.
    fn first_at_most(&self, from_s: u64, bps: u32) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s.0 >= from_s * 1000 && s.1 <= bps)
            .map(|s| s.0 as f64 / 1000.0)
    }
}

/// Runs `secs` seconds; `capacity(t_ms)` is the link in bit/s, `ceiling(t_ms)`
/// the user's bitrate. The queue is a FIFO of timestamped chunks, so its
/// latency is a timestamp span, as in the StreamBuffer.
fn simulate(
    secs: u64,
    capacity: impl Fn(u64) -> u64,
    ceiling: impl Fn(u64) -> u32,
    ctl: CongestionController,
) -> Trace {
    simulate_encoder(OVERSHOOT, secs, capacity, ceiling, ctl)
}

/// Like [`simulate`] with an encoder that spends `overshoot` times its target.
fn simulate_encoder(
    overshoot: f64,
    secs: u64,
    capacity: impl Fn(u64) -> u64,
    ceiling: impl Fn(u64) -> u32,
    mut ctl: CongestionController,
) -> Trace {
    let mut fifo: VecDeque<(u64, f64)> = VecDeque::new();
    let mut acked = 0u64;
    let mut applied = ctl.decision().target_bps;
    let mut samples = Vec::new();
    let frame_ms = 1000 / FPS;
    for t in (0..secs * 1000).step_by(TICK_MS as usize) {
        // The encoder: one frame per frame interval at the target applied
        // a frame ago; keyframes weigh more, the GOP averages to the target.
        if t % frame_ms < TICK_MS {
            let frame = t / frame_ms;
            let avg = f64::from(applied) * overshoot / 8.0 / FPS as f64;
            let inter = avg * GOP as f64 / (GOP as f64 - 1.0 + KEYFRAME_WEIGHT);
            let size = if frame.is_multiple_of(GOP) {
                inter * KEYFRAME_WEIGHT
            } else {
                inter
            };
            fifo.push_back((t, size));
            applied = ctl.decision().target_bps.min(ceiling(t));
        }
        fifo.push_back((t, f64::from(AUDIO) / 8.0 * TICK_MS as f64 / 1000.0));
        let mut budget = capacity(t) as f64 / 8.0 * TICK_MS as f64 / 1000.0;
        while let Some((at, bytes)) = fifo.front_mut() {
            let sent = budget.min(*bytes);
            *bytes -= sent;
            budget -= sent;
            acked += sent as u64;
            let _ = at;
            if *bytes > 0.0 {
                break;
            }
            fifo.pop_front();
        }
        if t % OBSERVE_EVERY_MS == 0 {
            let queue_ms = fifo.front().map_or(0, |(oldest, _)| t - oldest);
            let d = ctl.observe(Observation {
                now: Duration::from_millis(t),
                acked_bytes: acked,
                queue_ms,
                ceiling_bps: ceiling(t),
                floor_bps: FLOOR,
                audio_bps: AUDIO,
            });
            samples.push((t, d.target_bps, queue_ms, d.link_bps));
        }
    }
    Trace { samples, ctl }
}

fn total(video: u32) -> u64 {
    (f64::from(video) * OVERSHOOT) as u64 + u64::from(AUDIO)
}

/// 60 % of what the stream needs at the ceiling, from 10 s to 50 s.
fn throttle_60(t: u64) -> u64 {
    if (10_000..50_000).contains(&t) {
        total(CEILING) * 6 / 10
    } else {
        100_000_000
    }
}

#[test]
fn an_unconstrained_link_stays_at_the_ceiling_through_keyframes() {
    // 1.3x the stream's rate: each keyframe queues for a moment, no more.
    let link = total(CEILING) * 13 / 10;
    let tr = simulate(
        60,
        |_| link,
        |_| CEILING,
        CongestionController::new(CEILING),
    );
    assert_eq!(tr.targets(0, 60), (CEILING, CEILING));
    assert!(tr.max_queue(0, 60) > 50, "keyframes do make a queue");
    assert_eq!(tr.ctl.decision().reason, Reason::Ceiling);
}

#[test]
fn a_throttle_converges_within_3_s_without_dropping_and_without_oscillating() {
    let tr = simulate(
        50,
        throttle_60,
        |_| CEILING,
        CongestionController::new(CEILING),
    );
    let link = throttle_60(20_000);
    let fits = (link as f64 / OVERSHOOT) as u32 - AUDIO;
    let converged = tr.first_at_most(10, fits).expect("the target comes down");
    assert!(converged <= 13.0, "converged at {converged} s");
    // Never near the muxer's drop threshold: no frame is dropped.
    let q = tr.max_queue(10, 50);
    assert!(q < DROP_QUEUE_MS * 2 / 3, "queue reached {q} ms");
    // Steady state: the link is used, and the target moves little and
    // rarely (brief probes above the link are taken back before a drop).
    let fits = f64::from(fits);
    let (lo, _) = tr.targets(15, 50);
    assert!(
        f64::from(lo) >= fits * 0.7,
        "target fell to {lo}, link fits {fits}"
    );
    let mean = tr.mean_target(15, 50);
    assert!(
        (0.8..=1.05).contains(&(mean / fits)),
        "mean target {mean}, link fits {fits}"
    );
    let above = tr.share_above(15, 50, fits * 1.1);
    assert!(above <= 0.15, "{above} of the time above the link");
    let q = tr.max_queue(15, 50);
    assert!(q < DROP_QUEUE_MS / 3, "steady queue reached {q} ms");
    let d = tr.decreases(15, 50);
    assert!(d <= 8, "{d} decreases in 35 s of a steady throttle");
    let est = tr.ctl.decision().link_bps as f64;
    assert!(
        (est / link as f64 - 1.0).abs() < 0.1,
        "link estimate {est} vs {link}"
    );
}

#[test]
fn a_freed_link_is_back_to_80_percent_of_the_ceiling_within_14_s() {
    let tr = simulate(
        70,
        throttle_60,
        |_| CEILING,
        CongestionController::new(CEILING),
    );
    let back = tr
        .first_at_least(50, CEILING * 8 / 10)
        .expect("recovers after the throttle");
    assert!(back - 50.0 <= 14.0, "back to 80 % after {} s", back - 50.0);
    let (_, hi) = tr.targets(50, 70);
    assert_eq!(hi, CEILING, "climbs all the way to the ceiling");
}

#[test]
fn a_collapse_below_the_floor_holds_the_floor() {
    // 15 % of the stream: less than the floor plus audio.
    let tr = simulate(
        40,
        |t| {
            if t >= 5_000 {
                total(CEILING) * 15 / 100
            } else {
                100_000_000
            }
        },
        |_| CEILING,
        CongestionController::new(CEILING),
    );
    let at = tr.first_at_most(5, FLOOR).expect("down to the floor");
    assert!(at <= 9.0, "reached the floor at {at} s");
    assert_eq!(tr.targets(at as u64 + 1, 40), (FLOOR, FLOOR));
    assert_eq!(tr.ctl.decision().reason, Reason::Floor);
}

#[test]
fn steps_down_and_up_follow_the_link() {
    // 100 % -> 70 % -> 45 % -> 70 % -> free, 15 s each.
    let cap = |t: u64| match t / 15_000 {
        1 | 3 => total(CEILING) * 7 / 10,
        2 => total(CEILING) * 45 / 100,
        _ => 100_000_000,
    };
    let tr = simulate(75, cap, |_| CEILING, CongestionController::new(CEILING));
    for (from, pct) in [(15u64, 70u64), (30, 45), (45, 70)] {
        let link = total(CEILING) * pct / 100;
        let fits = ((link as f64 / OVERSHOOT) as u32).saturating_sub(AUDIO);
        let (lo, _) = tr.targets(from + 5, from + 15);
        let mean = tr.mean_target(from + 5, from + 15) / f64::from(fits);
        assert!(
            (0.7..=1.05).contains(&mean) && f64::from(lo) >= f64::from(fits) * 0.55,
            "{pct} % step: target {lo}.., mean {mean} of fits {fits}"
        );
        let q = tr.max_queue(from, from + 15);
        assert!(q < DROP_QUEUE_MS, "{pct} % step: queue reached {q} ms");
    }
    assert!(tr
        .first_at_least(60, CEILING * 8 / 10)
        .is_some_and(|t| t <= 74.0));
}

#[test]
fn the_ceiling_is_the_users_and_is_never_fought() {
    // Throttled from 5 s; the user lowers the bitrate to 800k at 20 s, then
    // raises it to 4M at 35 s while the throttle goes on.
    let ceiling = |t: u64| match t {
        0..20_000 => CEILING,
        20_000..35_000 => 800_000,
        _ => 4_000_000,
    };
    let link = total(CEILING) * 6 / 10;
    let tr = simulate(
        60,
        |t| if t >= 5_000 { link } else { 100_000_000 },
        ceiling,
        CongestionController::new(CEILING),
    );
    // At the lower ceiling the link has room: the target sits at the ceiling
    // at once, never above it.
    let (lo, hi) = tr.targets(20, 35);
    assert_eq!(hi, 800_000);
    assert!(lo >= 700_000, "{lo}");
    // A higher ceiling does not make the controller forget the link.
    let fits = f64::from((link as f64 / OVERSHOOT) as u32 - AUDIO);
    let mean = tr.mean_target(45, 60);
    assert!(mean <= fits * 1.05, "{mean} vs {fits}");
    assert!(tr.share_above(45, 60, fits * 1.1) <= 0.15);
    assert!(
        tr.max_queue(35, 60) < DROP_QUEUE_MS,
        "no drops after the raise"
    );
}

#[test]
fn a_new_session_starts_from_the_last_good_estimate() {
    let mut tr = simulate(
        30,
        throttle_60,
        |_| CEILING,
        CongestionController::new(CEILING),
    );
    let before = tr.ctl.decision();
    assert!(before.target_bps < CEILING);
    tr.ctl.on_new_session();
    let after = tr.ctl.decision();
    assert_eq!(after.target_bps, before.target_bps);
    assert_eq!(after.link_bps, before.link_bps);
    // The first observations of the new session change nothing (not enough
    // history), so the first frames go out at the last good target.
    let d = tr.ctl.observe(Observation {
        now: Duration::from_secs(31),
        acked_bytes: 0,
        queue_ms: 0,
        ceiling_bps: CEILING,
        floor_bps: FLOOR,
        audio_bps: AUDIO,
    });
    assert_eq!(d.target_bps, before.target_bps);
}

#[test]
fn an_encoder_that_spends_less_than_its_target_still_climbs_back() {
    // Easy content at a low bitrate: the encoder spends 75 % of its target,
    // so what the link carries never matches what a probe asked for. A
    // collapse to the floor from 5 s to 15 s, then a free link.
    let tr = simulate_encoder(
        0.75,
        45,
        |t| {
            if (5_000..15_000).contains(&t) {
                total(CEILING) * 15 / 100
            } else {
                100_000_000
            }
        },
        |_| CEILING,
        CongestionController::new(CEILING),
    );
    assert!(tr.first_at_most(5, FLOOR).is_some(), "down to the floor");
    let back = tr
        .first_at_least(15, CEILING * 8 / 10)
        .expect("climbs back with a free link");
    assert!(back - 15.0 <= 16.0, "back to 80 % after {} s", back - 15.0);
}
