//! Audio sources: where the AudioEngine pulls PCM from.
//!
//! Why a pull interface that never blocks: the AudioEngine is the master
//! clock. It decides *how many* samples exist (from elapsed time) and asks the
//! source for at most that many; whatever the source cannot give right now is
//! filled with silence by the engine. A source therefore can never stall the
//! clock, and a device that disappears simply turns into silence.
//!
//! Live devices (`audio/device.rs`) deliver in bursts from their own callback
//! thread. The source keeps a small jitter buffer filled from the device
//! callback, `read` hands out what is buffered up to the amount asked, and the
//! source itself drops the oldest samples beyond a bound (a few ticks) so that
//! device clock drift never accumulates into latency.

use std::f32::consts::TAU;

/// A producer of interleaved f32 PCM at the engine's sample rate and channel
/// count, polled by the AudioEngine on every tick.
pub trait AudioSource: Send {
    /// Writes up to `out.len() / channels` sample frames of interleaved f32
    /// (nominally in -1.0..=1.0) into `out` and returns how many sample frames
    /// (not samples) were written. Never blocks; returns 0 when the source has
    /// nothing right now (gone, or late), and the engine fills silence.
    fn read(&mut self, out: &mut [f32]) -> usize;

    /// A short human-readable name for logs and errors.
    fn name(&self) -> &str;
}

/// Frequency of the continuous background tone, Hz.
pub const TONE_HZ: u32 = 440;
/// Amplitude of the continuous background tone (quiet).
pub const TONE_AMPLITUDE: f32 = 0.1;
/// Frequency of the sync beep at the start of every second, Hz.
pub const BEEP_HZ: u32 = 1000;
/// Amplitude of the sync beep (loud).
pub const BEEP_AMPLITUDE: f32 = 0.8;
/// Length of the sync beep, ms.
pub const BEEP_MS: u64 = 100;

/// A test source that is always "live": a quiet continuous 440 Hz tone plus a
/// loud 1 kHz beep during the first [`BEEP_MS`] of every second of its own
/// sample count, so that A/V sync can be checked (beep starts at pts = k s
/// when the engine never had to insert silence).
///
/// Phases are derived from the integer sample index, so the signal is
/// phase-continuous across reads and never drifts.
#[derive(Debug, Clone)]
pub struct ToneSource {
    sample_rate: u32,
    channels: u32,
    /// Sample frames produced so far.
    position: u64,
}

impl ToneSource {
    /// A tone at `sample_rate` Hz with `channels` interleaved channels
    /// (each channel carries the same signal).
    pub fn new(sample_rate: u32, channels: u32) -> Self {
        Self {
            sample_rate: sample_rate.max(1),
            channels: channels.max(1),
            position: 0,
        }
    }

    /// The signal value at sample frame `index`.
    pub fn sample_at(&self, index: u64) -> f32 {
        let rate = u64::from(self.sample_rate);
        let within_second = index % rate;
        // Phase of a whole-number frequency, reduced modulo one period using
        // integers so precision does not degrade over a long run.
        let phase = |hz: u64| -> f32 {
            let cycles_num = (index % rate) * hz % rate;
            TAU * cycles_num as f32 / rate as f32
        };
        let mut v = TONE_AMPLITUDE * phase(u64::from(TONE_HZ)).sin();
        let beep_len = rate * BEEP_MS / 1000;
        if within_second < beep_len {
            v += BEEP_AMPLITUDE * phase(u64::from(BEEP_HZ)).sin();
        }
        v
    }
}

impl AudioSource for ToneSource {
    fn read(&mut self, out: &mut [f32]) -> usize {
        let ch = self.channels as usize;
        let frames = out.len() / ch;
        for frame in out.chunks_exact_mut(ch) {
            let v = self.sample_at(self.position);
            frame.fill(v);
            self.position += 1;
        }
        frames
    }

    fn name(&self) -> &str {
        "test tone"
    }
}

/// A source that never has anything: every tick becomes silence. Used to
/// test the engine's silence insertion (and as a stand-in for a device that
/// vanished).
#[derive(Debug, Clone, Copy, Default)]
pub struct NullSource;

impl AudioSource for NullSource {
    fn read(&mut self, _out: &mut [f32]) -> usize {
        0
    }

    fn name(&self) -> &str {
        "null"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tone_fills_whole_request_and_is_phase_continuous() {
        let mut a = ToneSource::new(48_000, 2);
        let mut b = ToneSource::new(48_000, 2);
        // One big read vs. many small, odd-sized reads: identical signal.
        let mut big = vec![0.0f32; 2 * 9_600];
        assert_eq!(a.read(&mut big), 9_600);
        let mut small = Vec::new();
        let mut buf = vec![0.0f32; 2 * 37];
        while small.len() < big.len() {
            let n = b.read(&mut buf);
            assert_eq!(n, 37);
            small.extend_from_slice(&buf[..2 * n]);
        }
        small.truncate(big.len());
        assert_eq!(big, small);
        // Both channels carry the same value.
        assert!(big.chunks_exact(2).all(|f| f[0] == f[1]));
    }

    #[test]
    fn tone_has_beep_at_start_of_each_second_only() {
        let rate = 48_000u64;
        let t = ToneSource::new(rate as u32, 1);
        let peak =
            |from: u64, to: u64| (from..to).map(|i| t.sample_at(i).abs()).fold(0.0, f32::max);
        for k in [0u64, 1, 3600] {
            let s = k * rate;
            assert!(peak(s, s + rate / 10) > 0.7, "beep missing at {k} s");
            assert!(
                peak(s + rate / 10 + 1, s + rate) <= TONE_AMPLITUDE + 1e-3,
                "loud outside beep at {k} s"
            );
        }
    }

    #[test]
    fn tone_frequency_is_440_outside_beep() {
        let rate = 48_000u64;
        let t = ToneSource::new(rate as u32, 1);
        // Zero crossings over 0.5 s of tone (after the beep): 2 per cycle.
        let start = rate / 5;
        let v: Vec<f32> = (start..start + rate / 2).map(|i| t.sample_at(i)).collect();
        let crossings = v
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count();
        assert!((435..=445).contains(&crossings), "{crossings}");
    }

    #[test]
    fn null_source_never_has_data() {
        let mut n = NullSource;
        let mut buf = [1.0f32; 64];
        assert_eq!(n.read(&mut buf), 0);
        assert_eq!(n.name(), "null");
    }
}
