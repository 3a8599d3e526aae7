//! The audio side of the file source (`video::file` opens the file and runs
//! its demuxer thread): hands the AudioEngine the decoded, resampled sound.
//!
//! Why it skips what it owes: the AudioEngine asks for exactly the samples
//! the clock says exist. When the decoder is late, what is missing becomes
//! silence (counted by the engine); the file's sound must then not arrive
//! late by that much for the rest of the run, so the same number of samples
//! is dropped from the ring as soon as it has them. Audio time stays file
//! time, in step with the pictures, however often the decoder falls behind.

use super::source::AudioSource;
use crate::video::file::StopGuard;
use std::sync::Arc;

/// Interleaved f32 from a file's demuxer thread, through a lock-free ring.
pub struct FileAudioSource {
    ring: rtrb::Consumer<f32>,
    channels: usize,
    /// Sample frames the engine filled with silence while the decoder was
    /// late: skipped when they arrive.
    owed: u64,
    /// Sample frames skipped that way, for tests and logs.
    skipped: u64,
    stop: Arc<StopGuard>,
    name: String,
}

impl FileAudioSource {
    pub(crate) fn new(
        ring: rtrb::Consumer<f32>,
        channels: u32,
        stop: Arc<StopGuard>,
        name: String,
    ) -> Self {
        Self {
            ring,
            channels: channels.max(1) as usize,
            owed: 0,
            skipped: 0,
            stop,
            name,
        }
    }

    /// Samples (not frames) waiting in the ring: what can be read without
    /// the read counting as late.
    pub fn buffered_samples(&self) -> usize {
        self.ring.slots()
    }

    /// Sample frames dropped to catch up after the decoder was late.
    pub fn skipped_frames(&self) -> u64 {
        self.skipped
    }
}

impl AudioSource for FileAudioSource {
    fn read(&mut self, out: &mut [f32]) -> usize {
        let ch = self.channels;
        if self.owed > 0 {
            let skip = (self.ring.slots() / ch).min(self.owed as usize);
            if let Ok(chunk) = self.ring.read_chunk(skip * ch) {
                chunk.commit_all();
            }
            self.owed -= skip as u64;
            self.skipped += skip as u64;
        }
        let wanted = out.len() / ch;
        let n = (self.ring.slots() / ch).min(wanted);
        if let Ok(chunk) = self.ring.read_chunk(n * ch) {
            let (a, b) = chunk.as_slices();
            out[..a.len()].copy_from_slice(a);
            out[a.len()..a.len() + b.len()].copy_from_slice(b);
            chunk.commit_all();
        }
        if n < wanted {
            if self.stop.finished() {
                // The file is over: what is missing is the end, not lateness.
                self.stop.audio_drained();
            } else {
                self.owed += (wanted - n) as u64;
            }
        }
        n
    }

    fn name(&self) -> &str {
        &self.name
    }
}
