//! Reading a live audio source the way the AudioEngine does, and judging the PCM it gave.
//!
//! Why here: a capture test must poll its source on the engine's cadence (every 10 ms,
//! never waiting), time each read to prove that none blocked, and measure tones in what
//! came back; the tests of every source share these, so none grows its own copy. The
//! source is any `FnMut(&mut [f32]) -> usize` (interleaved stereo, frames returned), so
//! this crate does not depend on onair.

use std::time::{Duration, Instant};

/// The AudioEngine's tick: how often a source is read.
pub const ENGINE_TICK: Duration = Duration::from_millis(10);
/// Frames asked per read (one tick at 48 kHz).
pub const FRAMES_PER_READ: usize = 480;
/// What a read that does not wait for the device takes, at most (a read that waited for
/// the next device period would take ~10 ms).
pub const FAST_READ: Duration = Duration::from_millis(5);

/// What [`read_like_engine`] got: the left channel and how long each read took.
#[derive(Debug, Default, Clone)]
pub struct Reads {
    /// Left channel of every frame returned, in order.
    pub left: Vec<f32>,
    /// Right channel of every frame returned, in order.
    pub right: Vec<f32>,
    /// Duration of each read call.
    pub durations: Vec<Duration>,
    /// Reads that returned no frame (the engine would fill silence).
    pub empty_reads: usize,
}

impl Reads {
    /// Frames returned.
    pub fn frames(&self) -> usize {
        self.left.len()
    }

    /// Checks that reads never waited for the device: at most 1 in 20 over [`FAST_READ`]
    /// (a busy machine's preemptions) and none over `slack`.
    pub fn never_waited(&self, slack: Duration) -> Result<(), String> {
        let slow = self.durations.iter().filter(|d| **d > FAST_READ).count();
        let slowest = self.durations.iter().max().copied().unwrap_or_default();
        if slow * 20 <= self.durations.len() && slowest < slack {
            Ok(())
        } else {
            Err(format!(
                "{slow} of {} reads over {FAST_READ:?}, slowest {slowest:?}",
                self.durations.len()
            ))
        }
    }
}

/// Reads `read` every [`ENGINE_TICK`] for `dur`, [`FRAMES_PER_READ`] stereo frames at a time.
pub fn read_like_engine(mut read: impl FnMut(&mut [f32]) -> usize, dur: Duration) -> Reads {
    let mut out = Reads::default();
    let mut buf = vec![0.0f32; FRAMES_PER_READ * 2];
    let end = Instant::now() + dur;
    while Instant::now() < end {
        let t = Instant::now();
        let n = read(&mut buf).min(FRAMES_PER_READ);
        out.durations.push(t.elapsed());
        if n == 0 {
            out.empty_reads += 1;
        }
        for f in buf[..2 * n].chunks_exact(2) {
            out.left.push(f[0]);
            out.right.push(f[1]);
        }
        std::thread::sleep(ENGINE_TICK);
    }
    out
}

/// Window over which [`wait_for_tones`] measures.
pub const TONE_WINDOW: Duration = Duration::from_millis(100);

/// Reads like the engine until each tone of `hz` has at least `min_power` (see
/// [`tone_power`]) in one [`TONE_WINDOW`] of the left channel, for at most `timeout`;
/// returns how long that took. Why: a player takes a moment to start (and a server to come
/// back), and a tone measured before it plays proves nothing.
pub fn wait_for_tones(
    mut read: impl FnMut(&mut [f32]) -> usize,
    rate: u32,
    hz: &[f64],
    min_power: f64,
    timeout: Duration,
) -> Option<Duration> {
    let start = Instant::now();
    crate::wait_for(timeout, || {
        let r = read_like_engine(&mut read, TONE_WINDOW);
        hz.iter()
            .all(|&f| tone_power(&r.left, rate, f) >= min_power)
            .then(|| start.elapsed())
    })
}

/// [`wait_for_tones`], then [`read_like_engine`] for `dur`: the tones' levels once they
/// play. `None` when they were not heard within `timeout`.
pub fn capture_after_tones(
    mut read: impl FnMut(&mut [f32]) -> usize,
    rate: u32,
    hz: &[f64],
    min_power: f64,
    timeout: Duration,
    dur: Duration,
) -> Option<Reads> {
    wait_for_tones(&mut read, rate, hz, min_power, timeout)?;
    Some(read_like_engine(read, dur))
}

/// Checks that a tone's measured power is `full_power * volume^2` within a relative
/// `tolerance`: the tone is there, at the volume asked.
pub fn check_power(
    what: &str,
    got: f64,
    full_power: f64,
    volume: f64,
    tolerance: f64,
) -> Result<(), String> {
    let want = full_power * volume * volume;
    if (got - want).abs() <= want * tolerance {
        Ok(())
    } else {
        Err(format!(
            "{what}: power {got:.5}, want {want:.5} (volume {volume})"
        ))
    }
}

/// [`check_power`] that panics with its message: the assertion form for tests.
pub fn assert_power(what: &str, got: f64, full_power: f64, volume: f64, tolerance: f64) {
    if let Err(e) = check_power(what, got, full_power, volume, tolerance) {
        panic!("{e}");
    }
}

/// [`tone_power`] of each of `hz` in `r`'s left channel, printed on stderr with `what`
/// and the frame count (the numbers a capture test reports).
pub fn tone_powers<const N: usize>(what: &str, r: &Reads, rate: u32, hz: [f64; N]) -> [f64; N] {
    let p = hz.map(|f| tone_power(&r.left, rate, f));
    let shown: Vec<String> = hz
        .iter()
        .zip(&p)
        .map(|(f, p)| format!("{f} Hz power {p:.5}"))
        .collect();
    eprintln!("{what}: {} frames, {}", r.frames(), shown.join(", "));
    p
}

/// Power of `hz` in `samples` (Goertzel), normalised so that a sine of amplitude `a`
/// gives `a * a` (1.0 for full scale): compare tones to check who is in a mix, and at
/// what volume.
pub fn tone_power(samples: &[f32], sample_rate: u32, hz: f64) -> f64 {
    if samples.is_empty() || sample_rate == 0 {
        return 0.0;
    }
    let w = 2.0 * std::f64::consts::PI * hz / f64::from(sample_rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let p = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    let n = samples.len() as f64;
    4.0 * p / (n * n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tone_power_measures_amplitude_squared_and_rejects_other_tones() {
        let rate = 48_000u32;
        let x: Vec<f32> = (0..rate)
            .map(|i| 0.5 * (std::f32::consts::TAU * 1000.0 * i as f32 / rate as f32).sin())
            .collect();
        let p = tone_power(&x, rate, 1000.0);
        assert!((p - 0.25).abs() < 0.01, "{p}");
        assert!(tone_power(&x, rate, 600.0) < 1e-6);
        assert!(check_power("x", p, 1.0, 0.5, 0.05).is_ok());
        assert!(check_power("x", p, 1.0, 0.8, 0.05).is_err());
        let found = wait_for_tones(
            |b| {
                for (i, f) in b.chunks_exact_mut(2).enumerate() {
                    f.fill(x[i]);
                }
                b.len() / 2
            },
            rate,
            &[1000.0],
            0.2,
            Duration::from_secs(1),
        );
        assert!(found.is_some());
    }

    #[test]
    fn reads_like_the_engine_and_times_each_read() {
        let mut calls = 0;
        let r = read_like_engine(
            |buf| {
                calls += 1;
                buf.fill(0.5);
                if calls % 2 == 0 {
                    0
                } else {
                    buf.len() / 2
                }
            },
            Duration::from_millis(100),
        );
        assert!(r.durations.len() >= 3);
        assert_eq!(r.frames() % FRAMES_PER_READ, 0);
        assert!(r.empty_reads >= 1);
        assert!(r.never_waited(Duration::from_millis(250)).is_ok());
    }
}
