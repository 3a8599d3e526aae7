//! The device ring's producer side, shared by both backends.
//!
//! Why one type: the overflow policy (a full ring drops the newest frames and
//! counts them in `audio_device_overflow_frames`) must be the same whether
//! the cpal callback or the PulseAudio device thread fills the ring.

use super::RING_MS;
use crate::stats::EngineCounters;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The producer side of a device ring: converts to stereo f32 and counts
/// what does not fit. Used by both backends, so the overflow policy is one.
pub(super) struct RingWriter {
    producer: rtrb::Producer<f32>,
    counters: Arc<EngineCounters>,
}

impl RingWriter {
    /// A ring for [`RING_MS`] of stereo audio at `rate`.
    pub(super) fn new(rate: u32, counters: Arc<EngineCounters>) -> (Self, rtrb::Consumer<f32>) {
        let (producer, consumer) =
            rtrb::RingBuffer::<f32>::new((rate * RING_MS / 1000).max(1) as usize * 2);
        (Self { producer, counters }, consumer)
    }

    /// Pushes `count` stereo frames; the ones that do not fit are dropped
    /// (the newest) and counted as `audio_device_overflow_frames`.
    pub(super) fn push(&mut self, frames: impl Iterator<Item = (f32, f32)>, count: usize) {
        let room = self.producer.slots() / 2;
        let take = count.min(room);
        if let Ok(chunk) = self.producer.write_chunk_uninit(take * 2) {
            chunk.fill_from_iter(frames.take(take).flat_map(|(l, r)| [l, r]));
        }
        if count > take {
            self.counters
                .audio_device_overflow_frames
                .fetch_add((count - take) as u64, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_ring_drops_the_newest_and_counts_them() {
        let counters = Arc::new(EngineCounters::default());
        // 1000 Hz: RING_MS of it is RING_MS frames.
        let (mut w, mut r) = RingWriter::new(1000, Arc::clone(&counters));
        let n = RING_MS as usize + 7;
        w.push((0..n).map(|i| (i as f32, -(i as f32))), n);
        let overflow = counters
            .audio_device_overflow_frames
            .load(Ordering::Relaxed);
        assert_eq!(overflow, 7);
        assert_eq!(r.slots(), RING_MS as usize * 2);
        assert_eq!(r.pop(), Ok(0.0));
        assert_eq!(r.pop(), Ok(-0.0));
        assert_eq!(r.pop(), Ok(1.0));
    }
}
