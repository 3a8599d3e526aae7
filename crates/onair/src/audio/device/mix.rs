//! Mixing several inputs into one [`AudioSource`].
//!
//! Why: a streamer's usual sound is the desktop *and* the microphone; each
//! input keeps its own device thread and jitter buffer, and the mix only sums
//! what each has ready, so one input that stalls never holds back the other.

use crate::audio::source::AudioSource;

/// Sums several inputs, each with its own volume (applied by the input).
/// The result has as many frames as the input that had the most; inputs with
/// fewer contribute silence for the rest. The sum is clipped to -1..=1.
pub struct MixSource {
    inputs: Vec<Box<dyn AudioSource>>,
    scratch: Vec<f32>,
    name: String,
    channels: usize,
}

impl MixSource {
    /// Mixes `inputs` (all at the same rate and `channels`).
    pub fn new(inputs: Vec<Box<dyn AudioSource>>, channels: u32) -> Self {
        let name = inputs
            .iter()
            .map(|i| i.name().to_string())
            .collect::<Vec<_>>()
            .join("+");
        Self {
            inputs,
            scratch: Vec::new(),
            name,
            channels: channels.max(1) as usize,
        }
    }
}

impl AudioSource for MixSource {
    fn read(&mut self, out: &mut [f32]) -> usize {
        out.fill(0.0);
        self.scratch.resize(out.len(), 0.0);
        let mut most = 0;
        for input in &mut self.inputs {
            let got = input.read(&mut self.scratch);
            for (o, s) in out.iter_mut().zip(&self.scratch[..got * self.channels]) {
                *o += *s;
            }
            most = most.max(got);
        }
        for s in &mut out[..most * self.channels] {
            *s = s.clamp(-1.0, 1.0);
        }
        most
    }

    fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gives `left` frames of a constant, then nothing.
    struct Fixed {
        value: f32,
        left: usize,
    }

    impl AudioSource for Fixed {
        fn read(&mut self, out: &mut [f32]) -> usize {
            let n = (out.len() / 2).min(self.left);
            out[..2 * n].fill(self.value);
            self.left -= n;
            n
        }
        fn name(&self) -> &str {
            "fixed"
        }
    }

    fn fixed(value: f32, left: usize) -> Box<dyn AudioSource> {
        Box::new(Fixed { value, left })
    }

    #[test]
    fn mix_sums_pads_and_clips() {
        let mut m = MixSource::new(vec![fixed(0.25, 10), fixed(0.5, 4)], 2);
        assert_eq!(m.name(), "fixed+fixed");
        let mut out = vec![9.0f32; 2 * 16];
        assert_eq!(m.read(&mut out), 10);
        assert!(out[..8].iter().all(|&v| (v - 0.75).abs() < 1e-6));
        assert!(out[8..20].iter().all(|&v| (v - 0.25).abs() < 1e-6));
        assert_eq!(m.read(&mut out), 0);
        let mut m = MixSource::new(vec![fixed(0.8, 2), fixed(0.8, 2)], 2);
        assert_eq!(m.read(&mut out), 2);
        assert_eq!(out[0], 1.0);
    }
}
