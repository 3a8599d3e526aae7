//! The AudioEncoder: PCM in, raw AAC-LC frames out.
//!
//! Two backends behind one interface, one per build (README, "Licences"):
//! fdk-aac in the default build (`fdk.rs`, afterburner on) and FFmpeg's own
//! `aac` in the GPL build (`avcodec.rs`), because fdk-aac's licence is not
//! GPL-compatible and no binary may mix them. [`BACKEND`] names the one built.
//!
//! Why "bytes only": the encoder knows nothing about time or I/O, so it can be
//! tested on its own and can never stall the clock. Timing is applied by the
//! encoder thread ([`spawn_encoder_thread`]) from the sample positions the
//! AudioEngine put in each [`PcmChunk`]: the k-th AAC frame out of the encoder
//! is stamped with the time of the k-th block of 1024 *input* samples.
//!
//! Encoder delay: the output is delayed by the codec's look-ahead
//! ([`AudioEncoder::delay_samples`]: fdk-aac's `nDelay`, 2048 samples for LC
//! at 48 kHz; FFmpeg's `initial_padding`, 1024), i.e. the decoded signal
//! starts with that much priming before the first input sample. Stamping by
//! input sample count is the standard convention (ffmpeg and OBS do the same;
//! FLV has no edit list), so a player's audio sits that much late relative to
//! video; the figure is exposed should an output want to compensate.

use crate::audio::engine::PcmChunk;
use crate::clock::Rate;
use crate::packet::{AudioParams, EncodedPacket, MediaKind, PacketSink};
use crate::stats::{bump, EngineCounters};
use crate::Error;
use bytes::Bytes;
use crossbeam_channel::Receiver;
use std::collections::VecDeque;
use std::sync::Arc;
use std::thread::JoinHandle;

#[cfg(feature = "avcodec")]
mod avcodec;
#[cfg(feature = "avcodec")]
use avcodec as backend;
#[cfg(all(feature = "fdk-aac", not(feature = "avcodec")))]
mod fdk;
#[cfg(all(feature = "fdk-aac", not(feature = "avcodec")))]
use fdk as backend;

/// The AAC encoder this build carries ("fdk-aac" or "FFmpeg aac").
pub const BACKEND: &str = backend::NAME;

/// Samples per channel in one AAC-LC frame.
pub const AAC_FRAME_SAMPLES: u32 = 1024;

/// Thread name of the encoder thread.
pub const THREAD_NAME: &str = "onair-audio-enc";

/// AAC-LC encoder ([`BACKEND`]): raw frames, constant bitrate. Accepts PCM
/// of any length, buffers it, and emits one payload per complete AAC frame.
pub struct AudioEncoder {
    backend: backend::Opened,
    params: AudioParams,
    channels: usize,
    /// Interleaved PCM not yet handed to the codec (less than one frame between calls).
    pending: Vec<i16>,
}

impl std::fmt::Debug for AudioEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioEncoder")
            .field("params", &self.params)
            .field("delay_samples", &self.delay_samples())
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl AudioEncoder {
    /// Opens an AAC-LC encoder for `sample_rate` Hz, `channels` (1 or 2) and a
    /// constant `bitrate_bps`.
    pub fn new(sample_rate: u32, channels: u32, bitrate_bps: u32) -> Result<Self, Error> {
        if !(1..=2).contains(&channels) {
            return Err(Error::InvalidConfig {
                option: "audio channels",
                reason: format!("{channels} (only 1 or 2 are supported)"),
            });
        }
        if bitrate_bps == 0 {
            return Err(Error::InvalidConfig {
                option: "audio-bitrate",
                reason: "must be positive".into(),
            });
        }
        let backend = backend::Opened::open(sample_rate, channels, bitrate_bps)?;
        let params = AudioParams {
            sample_rate,
            channels,
            bitrate_bps,
            asc: backend.asc.clone(),
            frame_samples: AAC_FRAME_SAMPLES,
        };
        Ok(Self {
            backend,
            params,
            channels: channels as usize,
            pending: Vec::with_capacity(2 * AAC_FRAME_SAMPLES as usize * channels as usize),
        })
    }

    /// Codec parameters (the AudioSpecificConfig for the AAC sequence header).
    pub fn params(&self) -> &AudioParams {
        &self.params
    }

    /// The codec's delay in samples per channel (priming before the first
    /// input sample in the decoded output).
    pub fn delay_samples(&self) -> u32 {
        self.backend.delay_samples
    }

    /// Feeds interleaved PCM of any length (a partial sample frame at the end
    /// is kept for the next call) and returns the AAC frames completed, one
    /// raw access unit each, in order. The k-th frame ever returned belongs to
    /// input samples `k*1024 .. (k+1)*1024`.
    ///
    /// On error, everything buffered (including this call's input and any
    /// frames it completed) is discarded, so the next call starts on a fresh
    /// frame boundary; callers that track positions resynchronise (see
    /// [`spawn_encoder_thread`]).
    pub fn encode(&mut self, pcm: &[i16]) -> Result<Vec<Bytes>, Error> {
        let result = self.encode_pending(pcm);
        if result.is_err() {
            self.pending.clear();
        }
        result
    }

    fn encode_pending(&mut self, pcm: &[i16]) -> Result<Vec<Bytes>, Error> {
        self.pending.extend_from_slice(pcm);
        let frame_len = AAC_FRAME_SAMPLES as usize * self.channels;
        let mut frames = Vec::with_capacity(self.pending.len() / frame_len);
        let mut offset = 0;
        while self.pending.len() - offset >= frame_len {
            let input = &self.pending[offset..offset + frame_len];
            let (consumed, frame) = self.backend.encode(input)?;
            if consumed == 0 && frame.is_none() {
                return Err(Error::Encoder {
                    codec: "AAC",
                    reason: "encoder made no progress".into(),
                });
            }
            offset += consumed.min(frame_len);
            frames.extend(frame);
        }
        self.pending.drain(..offset);
        Ok(frames)
    }
}

/// Maps positions in the encoder's input (sample frames fed) to positions on
/// the master clock's sample timeline. Normally an identity plus offset; when
/// chunks were dropped upstream, the timeline jumps and a new segment starts.
#[derive(Debug, Default)]
struct PtsMap {
    /// (input position, stream sample) at the start of each segment, oldest first.
    segments: VecDeque<(u64, u64)>,
    /// Input sample frames fed so far.
    fed: u64,
    /// Stream sample the next chunk is expected to start at.
    expected_next: Option<u64>,
}

impl PtsMap {
    /// Records a chunk of `frames` sample frames starting at `first_sample`.
    fn feed(&mut self, first_sample: u64, frames: u64) {
        if self.expected_next != Some(first_sample) {
            self.segments.push_back((self.fed, first_sample));
        }
        self.fed += frames;
        self.expected_next = Some(first_sample + frames);
    }

    /// After the encoder discarded its input (an encode error): the next
    /// chunk's first sample becomes input position `pos` (the next frame's),
    /// whatever its stream position.
    fn resync(&mut self, pos: u64) {
        self.segments.clear();
        self.fed = pos;
        self.expected_next = None;
    }

    /// Stream sample of input position `pos`. Queries must be non-decreasing;
    /// segments entirely before `pos` are forgotten.
    fn stream_sample(&mut self, pos: u64) -> u64 {
        while self.segments.len() > 1 && self.segments.get(1).is_some_and(|s| s.0 <= pos) {
            self.segments.pop_front();
        }
        match self.segments.front() {
            Some(&(start, stream)) => stream + pos.saturating_sub(start),
            None => pos,
        }
    }
}

/// Starts the encoder thread ([`THREAD_NAME`]): encodes every [`PcmChunk`]
/// from `pcm` and pushes each AAC frame to `sink` as an audio
/// [`EncodedPacket`] with `pts = dts = time_of(stream sample of its first
/// input sample)`, keyframe, not disposable. Bumps
/// `counters.audio_frames_encoded`. Exits when `pcm` disconnects (live: the
/// partial frame still buffered is discarded, nothing is flushed).
pub fn spawn_encoder_thread(
    mut enc: AudioEncoder,
    pcm: Receiver<PcmChunk>,
    sink: Arc<dyn PacketSink>,
    counters: Arc<EngineCounters>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(THREAD_NAME.into())
        .spawn(move || {
            let rate = Rate::per_second(enc.params().sample_rate);
            let channels = enc.params().channels.max(1) as u64;
            let mut map = PtsMap::default();
            let mut emitted: u64 = 0;
            let mut last_sample: Option<u64> = None;
            for chunk in pcm.iter() {
                map.feed(chunk.first_sample, chunk.samples.len() as u64 / channels);
                let frames = match enc.encode(&chunk.samples) {
                    Ok(frames) => frames,
                    Err(e) => {
                        tracing::warn!(error = %e, "AAC encode failed; buffered audio skipped");
                        map.resync(emitted * u64::from(AAC_FRAME_SAMPLES));
                        continue;
                    }
                };
                for data in frames {
                    let mut sample = map.stream_sample(emitted * u64::from(AAC_FRAME_SAMPLES));
                    // Timestamps never go backwards, whatever the input did.
                    if let Some(last) = last_sample {
                        sample = sample.max(last + u64::from(AAC_FRAME_SAMPLES));
                    }
                    last_sample = Some(sample);
                    emitted += 1;
                    let ts = rate.time_of(sample);
                    sink.push(EncodedPacket {
                        kind: MediaKind::Audio,
                        pts_ns: ts,
                        dts_ns: ts,
                        keyframe: true,
                        disposable: false,
                        data,
                    });
                    bump(&counters.audio_frames_encoded);
                }
            }
            tracing::debug!(frames = emitted, "audio encoder thread done");
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pts_map_follows_jumps() {
        let mut m = PtsMap::default();
        m.feed(480, 480);
        m.feed(960, 480);
        assert_eq!(m.stream_sample(0), 480);
        assert_eq!(m.stream_sample(700), 1180);
        m.feed(10_000, 480); // 8560 samples dropped upstream
        assert_eq!(m.stream_sample(959), 1439);
        assert_eq!(m.stream_sample(960), 10_000);
        assert_eq!(m.stream_sample(1000), 10_040);
        assert_eq!(m.segments.len(), 1);
        // After an encoder error, input restarts at frame 2's position.
        m.resync(2048);
        m.feed(20_000, 480);
        assert_eq!(m.stream_sample(2048), 20_000);
        assert_eq!(m.stream_sample(2100), 20_052);
    }
}
