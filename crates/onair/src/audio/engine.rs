//! The AudioEngine: the seed's master clock owner. Every [`TICK`] it emits
//! exactly the PCM that the elapsed time calls for.
//!
//! Why samples are derived from the clock: the number of samples that exist
//! at time `t` is `expected_frames(t)`, computed with exact integer
//! arithmetic, so the audio timeline *is* the clock and never drifts, however
//! long the stream runs or however late a tick wakes up. Whatever the source
//! cannot supply becomes silence (counted), and the hand-off to the encoder is
//! a `try_send` on a bounded channel, so a stuck encoder costs dropped samples
//! (counted) instead of a stopped clock (golden rules 1 and 6).
//!
//! Live sources (`audio/device.rs`) deliver in bursts. Each keeps its own
//! jitter buffer, the engine reads at the expected rate (this module does not
//! know the difference), and the source drops whatever exceeds its bound, so
//! device clock drift shows up as occasional dropped or silent samples, never
//! as growing latency.

use crate::audio::source::AudioSource;
use crate::clock::{MasterClock, Rate};
use crate::stats::{store_max, EngineCounters};
use crossbeam_channel::{Sender, TrySendError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Period of the engine's ticks. Short enough that the encoder sees a steady
/// flow (an AAC frame is ~21 ms), long enough to cost nothing.
pub const TICK: Duration = Duration::from_millis(10);

/// [`TICK`] in nanoseconds.
const TICK_NS: u64 = TICK.as_nanos() as u64;

/// If a tick wakes up more than this late (the process was suspended or
/// starved, the machine swapped), the engine stops trying to honour each
/// missed tick: the missing span is skipped (not emitted: a chunk's
/// `first_sample` jumps, counted as `audio_skipped_ms`), and the
/// schedule resumes at the present. Why skip rather than fill with silence:
/// an hour's stall would otherwise be one ~690 MB chunk of zeros, encoded
/// and sent as an hour of backlog. Up to this much, the gap is filled with
/// counted silence so that short hiccups keep the timeline continuous.
pub const MAX_BEHIND: Duration = Duration::from_secs(1);

/// Thread name, visible in `top -H` and panics.
pub const THREAD_NAME: &str = "onair-audio";

/// One tick's worth of PCM for the encoder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcmChunk {
    /// Index (per channel, from the master clock's origin) of the first
    /// sample frame in `samples`. Consecutive chunks are contiguous unless
    /// some were dropped because the encoder's queue was full.
    pub first_sample: u64,
    /// Interleaved signed 16-bit samples (`frames * channels` values).
    pub samples: Vec<i16>,
}

/// How many sample frames are due at `now_ns` when `produced` have already
/// been emitted: `expected_frames(now) - produced`, never negative.
///
/// Emitting exactly this on every tick keeps `produced == expected_frames(now)`
/// after each tick, for any tick timing.
pub fn samples_due(produced: u64, now_ns: u64, rate: Rate) -> u64 {
    rate.expected_frames(now_ns).saturating_sub(produced)
}

/// What one tick does: skip `skipped_frames` (the span missed in a stall,
/// never emitted), then emit `read_frames` from the source starting at
/// `first_sample` (whatever the source lacks is silence).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TickPlan {
    skipped_frames: u64,
    first_sample: u64,
    read_frames: u64,
}

/// Pure tick planning (testable without threads): after a normal tick, read
/// everything due from the source; after a stall longer than [`MAX_BEHIND`],
/// skip the missed span and read only one nominal tick's worth (a live
/// source has nothing valid for that span anyway). Memory per tick is then
/// bounded by [`MAX_BEHIND`] whatever the stall.
fn plan_tick(produced: u64, now_ns: u64, rate: Rate) -> TickPlan {
    let due = samples_due(produced, now_ns, rate);
    let limit = rate.expected_frames(MAX_BEHIND.as_nanos() as u64);
    let skipped_frames = if due > limit {
        due - rate.expected_frames(TICK_NS).min(due)
    } else {
        0
    };
    TickPlan {
        skipped_frames,
        first_sample: produced + skipped_frames,
        read_frames: due - skipped_frames,
    }
}

/// The next tick index after tick `k` was served at `now_ns`: normally
/// `k + 1`; after a stall beyond [`MAX_BEHIND`], the first tick in the future
/// (missed ticks are not replayed one by one).
fn next_tick(k: u64, now_ns: u64) -> u64 {
    let next = k + 1;
    if now_ns.saturating_sub(next.saturating_mul(TICK_NS)) > MAX_BEHIND.as_nanos() as u64 {
        now_ns / TICK_NS + 1
    } else {
        next
    }
}

/// Converts one f32 sample (nominally -1..=1) to i16, clamping out-of-range
/// values (and mapping NaN to 0).
fn f32_to_i16(v: f32) -> i16 {
    // `as` saturates and maps NaN to 0.
    (v.clamp(-1.0, 1.0) * f32::from(i16::MAX)).round() as i16
}

/// The running AudioEngine thread ([`THREAD_NAME`]).
#[derive(Debug)]
pub struct AudioEngine {
    handle: JoinHandle<()>,
}

/// State owned by the engine thread.
struct EngineLoop {
    clock: MasterClock,
    rate: Rate,
    channels: usize,
    source: Box<dyn AudioSource>,
    out: Sender<PcmChunk>,
    counters: Arc<EngineCounters>,
    stop: Arc<AtomicBool>,
    produced: u64,
    scratch: Vec<f32>,
}

impl AudioEngine {
    /// Starts the engine thread. It ticks every [`TICK`] on deadlines of
    /// `clock`, pulls from `source` (interleaved f32, `sample_rate` Hz,
    /// `channels` channels), and `try_send`s one [`PcmChunk`] per tick to
    /// `out` (a bounded channel). It stops when `stop` is set or when the
    /// receiver is gone.
    ///
    /// Counters: `audio_late_max_us`, `audio_silence_samples` (sample frames),
    /// `audio_samples_dropped` (sample frames the encoder could not take).
    pub fn spawn(
        clock: MasterClock,
        sample_rate: u32,
        channels: u32,
        source: Box<dyn AudioSource>,
        out: Sender<PcmChunk>,
        counters: Arc<EngineCounters>,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<AudioEngine> {
        let mut engine = EngineLoop {
            clock,
            rate: Rate::per_second(sample_rate.max(1)),
            channels: channels.max(1) as usize,
            source,
            out,
            counters,
            stop,
            produced: 0,
            scratch: Vec::new(),
        };
        let handle = std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || engine.run())?;
        Ok(AudioEngine { handle })
    }

    /// Waits for the thread to finish (after `stop` was set). A panic in the
    /// thread is logged, not propagated.
    pub fn join(self) {
        if self.handle.join().is_err() {
            tracing::error!("audio engine thread panicked");
        }
    }
}

impl EngineLoop {
    fn run(&mut self) {
        tracing::debug!(source = self.source.name(), "audio engine started");
        let mut k: u64 = 1;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                // The audio runs up to the moment it was stopped, even if this
                // thread saw the flag late (starved): what is due now goes out.
                self.tick(self.clock.now_ns());
                break;
            }
            let deadline = k.saturating_mul(TICK_NS);
            let wake_at = self.clock.instant_at(deadline);
            let now = Instant::now();
            if wake_at > now {
                std::thread::sleep(wake_at - now);
            }
            if self.stop.load(Ordering::Relaxed) {
                continue;
            }
            let now_ns = self.clock.now_ns();
            let late_us = now_ns.saturating_sub(deadline) / 1_000;
            store_max(&self.counters.audio_late_max_us, late_us);
            self.counters.audio_lateness.record_us(late_us);
            if !self.tick(now_ns) {
                tracing::debug!("audio encoder gone; audio engine stops");
                break;
            }
            k = next_tick(k, now_ns);
        }
        tracing::debug!(produced = self.produced, "audio engine stopped");
    }

    /// Emits everything due at `now_ns`. Returns false when the receiver is gone.
    fn tick(&mut self, now_ns: u64) -> bool {
        let plan = plan_tick(self.produced, now_ns, self.rate);
        if plan.skipped_frames > 0 {
            let skipped_ms = plan.skipped_frames * 1000 / u64::from(self.rate.num.max(1));
            tracing::warn!(
                skipped_ms,
                "audio engine was stalled: jumping to the present"
            );
            self.counters
                .audio_skipped_ms
                .fetch_add(skipped_ms, Ordering::Relaxed);
            self.produced += plan.skipped_frames;
        }
        let total = plan.read_frames;
        if total == 0 {
            return true;
        }
        let ch = self.channels;
        let read_len = plan.read_frames as usize * ch;
        self.scratch.resize(read_len, 0.0);
        let got = self
            .source
            .read(&mut self.scratch)
            .min(plan.read_frames as usize);
        let silence = total - got as u64;
        if silence > 0 {
            self.counters
                .audio_silence_samples
                .fetch_add(silence, Ordering::Relaxed);
        }
        let mut samples = vec![0i16; total as usize * ch];
        for (dst, &src) in samples.iter_mut().zip(&self.scratch[..got * ch]) {
            *dst = f32_to_i16(src);
        }
        self.produced += total;
        let chunk = PcmChunk {
            first_sample: plan.first_sample,
            samples,
        };
        match self.out.try_send(chunk) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.counters
                    .audio_samples_dropped
                    .fetch_add(total, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::source::{NullSource, ToneSource};
    use crossbeam_channel::bounded;
    use onair_testkit::SCHEDULING_SLACK;

    const RATE: Rate = Rate::per_second(48_000);

    /// A tiny deterministic PRNG (xorshift64*), enough for jitter.
    struct Jitter(u64);
    impl Jitter {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
    }

    #[test]
    fn accounting_is_exact_over_a_simulated_day_with_jitter() {
        let day_ns = 24 * 3600 * 1_000_000_000u64;
        let mut rng = Jitter(0x9E37_79B9_7F4A_7C15);
        let mut produced = 0u64;
        let mut k = 1u64;
        let mut ticks = 0u64;
        let mut stalls = 0u64;
        let mut prev_now = 0u64;
        loop {
            // Wake 0..3 ms late, sometimes up to 40 ms, rarely 1.5 s (suspend).
            let r = rng.next();
            let late = match r % 100_000 {
                0 => 1_500_000_000,
                1..=99 => (r >> 20) % 40_000_000,
                _ => (r >> 20) % 3_000_000,
            };
            // Real wake times are monotonic: a tick due while the previous one
            // was late wakes immediately, not in the past.
            let now = (k * TICK_NS + late).max(prev_now);
            prev_now = now;
            if now > day_ns {
                break;
            }
            let plan = plan_tick(produced, now, RATE);
            assert_eq!(plan.first_sample, produced + plan.skipped_frames);
            if plan.skipped_frames > 0 {
                stalls += 1;
                assert_eq!(plan.read_frames, 480);
            }
            produced += plan.skipped_frames + plan.read_frames;
            assert_eq!(produced, RATE.expected_frames(now), "tick {k}");
            k = next_tick(k, now);
            ticks += 1;
        }
        assert!(ticks > 8_000_000, "{ticks}");
        assert!(stalls > 0);
        // About one day's samples (plus the last tick's lateness).
        assert!(produced >= 48_000 * 24 * 3600 - 48_000 * 2);
        assert!(produced <= 48_000 * 24 * 3600 + 48_000 * 2);
    }

    #[test]
    fn samples_due_never_negative_and_catches_up() {
        assert_eq!(samples_due(0, 0, RATE), 0);
        assert_eq!(samples_due(0, 10_000_000, RATE), 480);
        assert_eq!(samples_due(1000, 10_000_000, RATE), 0);
        assert_eq!(samples_due(480, 1_000_000_000, RATE), 47_520);
    }

    #[test]
    fn stall_plan_reads_one_tick_and_skips_ahead() {
        let plan = plan_tick(480, 3_000_000_000, RATE);
        assert_eq!(plan.read_frames, 480);
        assert_eq!(plan.skipped_frames, 144_000 - 480 - 480);
        assert_eq!(plan.first_sample, 144_000 - 480);
        // An hour's stall: still one tick's worth of memory.
        let plan = plan_tick(0, 3600 * 1_000_000_000, RATE);
        assert_eq!(plan.read_frames, 480);
        assert_eq!(plan.skipped_frames, 48_000 * 3600 - 480);
        assert_eq!(next_tick(1, 3_000_000_000), 301);
        assert_eq!(next_tick(1, 15_000_000), 2);
    }

    #[test]
    fn f32_conversion_clamps() {
        assert_eq!(f32_to_i16(0.0), 0);
        assert_eq!(f32_to_i16(1.0), i16::MAX);
        assert_eq!(f32_to_i16(5.0), i16::MAX);
        assert_eq!(f32_to_i16(-5.0), -i16::MAX);
        assert_eq!(f32_to_i16(f32::NAN), 0);
        assert_eq!(f32_to_i16(0.5), 16384);
    }

    /// Runs the engine for about `run` and returns the chunks, the counters and
    /// the clock (ns) just before `stop` was set and just after the engine ended.
    fn run_engine(
        source: Box<dyn AudioSource>,
        run: Duration,
    ) -> (Vec<PcmChunk>, Arc<EngineCounters>, (u64, u64)) {
        let clock = MasterClock::start();
        let (tx, rx) = bounded(1024);
        let counters = Arc::new(EngineCounters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let engine =
            AudioEngine::spawn(clock, 48_000, 2, source, tx, counters.clone(), stop.clone())
                .expect("spawn");
        std::thread::sleep(run);
        let stopping = clock.now_ns();
        stop.store(true, Ordering::Relaxed);
        engine.join();
        let ended = clock.now_ns();
        let chunks: Vec<PcmChunk> = rx.try_iter().collect();
        (chunks, counters, (stopping, ended))
    }

    fn check_contiguous(chunks: &[PcmChunk]) -> u64 {
        let mut next = 0u64;
        for c in chunks {
            assert_eq!(c.first_sample, next);
            assert_eq!(c.samples.len() % 2, 0);
            next += c.samples.len() as u64 / 2;
        }
        next
    }

    #[test]
    fn threaded_run_keeps_real_time_with_tone_and_no_silence() {
        let (chunks, counters, (stopping, ended)) =
            run_engine(Box::new(ToneSource::new(48_000, 2)), Duration::from_secs(1));
        let total = check_contiguous(&chunks);
        // The audio ran up to the moment it stopped, by the clock, whatever
        // this thread's and the engine's scheduling: it is never behind the
        // clock when `stop` was set, never ahead of it once the engine ended.
        let (min, max) = (RATE.expected_frames(stopping), RATE.expected_frames(ended));
        assert!((min..=max).contains(&total), "{total} not in {min}..={max}");
        assert!(total >= 48_000, "{total}");
        let expected = RATE.expected_frames(stopping);
        assert_eq!(counters.audio_silence_samples.load(Ordering::Relaxed), 0);
        assert_eq!(counters.audio_samples_dropped.load(Ordering::Relaxed), 0);
        let late_us = counters.audio_late_max_us.load(Ordering::Relaxed);
        eprintln!("1 s run: {total} sample frames (clock says {expected}), worst tick lateness {late_us} µs");
        assert!(
            late_us < SCHEDULING_SLACK.as_micros() as u64,
            "late {late_us} µs"
        );
        // The beep of second 0 is in the data (loud), the tone after it is quiet.
        let first_frames: Vec<i16> = chunks
            .iter()
            .flat_map(|c| c.samples.iter().copied())
            .collect();
        let peak = |r: std::ops::Range<usize>| {
            first_frames[r]
                .iter()
                .map(|s| s.unsigned_abs())
                .max()
                .unwrap_or(0)
        };
        assert!(peak(0..2 * 4_800) > 20_000);
        assert!(peak(2 * 5_000..2 * 40_000) < 4_000);
    }

    #[test]
    fn threaded_run_with_null_source_is_all_counted_silence() {
        let (chunks, counters, _) = run_engine(Box::new(NullSource), Duration::from_millis(300));
        let total = check_contiguous(&chunks);
        assert!(total > 10_000, "{total}");
        assert!(chunks.iter().all(|c| c.samples.iter().all(|&s| s == 0)));
        assert_eq!(
            counters.audio_silence_samples.load(Ordering::Relaxed),
            total
        );
    }

    #[test]
    fn full_channel_drops_and_counts_without_blocking() {
        let clock = MasterClock::start();
        let (tx, rx) = bounded(2);
        let counters = Arc::new(EngineCounters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let engine = AudioEngine::spawn(
            clock,
            48_000,
            2,
            Box::new(ToneSource::new(48_000, 2)),
            tx,
            counters.clone(),
            stop.clone(),
        )
        .expect("spawn");
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        engine.join();
        let kept: u64 = rx.try_iter().map(|c| c.samples.len() as u64 / 2).sum();
        let dropped = counters.audio_samples_dropped.load(Ordering::Relaxed);
        assert!(dropped > 5_000, "{dropped}");
        // Still ticked on time while nobody consumed.
        let late_us = counters.audio_late_max_us.load(Ordering::Relaxed);
        assert!(
            late_us < SCHEDULING_SLACK.as_micros() as u64,
            "late {late_us} µs"
        );
        assert!(kept + dropped > 10_000);
    }

    #[test]
    fn engine_stops_when_receiver_is_gone() {
        let (tx, rx) = bounded(4);
        drop(rx);
        let engine = AudioEngine::spawn(
            MasterClock::start(),
            48_000,
            2,
            Box::new(NullSource),
            tx,
            Arc::new(EngineCounters::default()),
            Arc::new(AtomicBool::new(false)),
        )
        .expect("spawn");
        // Without a receiver the engine must exit by itself (its stop flag
        // is never set): a join that does not return in time is a failure.
        let (done_tx, done_rx) = bounded(1);
        std::thread::spawn(move || {
            engine.join();
            let _ = done_tx.send(());
        });
        assert!(
            done_rx.recv_timeout(Duration::from_secs(5)).is_ok(),
            "the engine kept running with no receiver"
        );
    }
}
