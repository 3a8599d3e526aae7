//! The demuxer thread's conversions: a decoded picture to I420 at the
//! pipeline's size (swscale), decoded sound to interleaved f32 at the
//! engine's rate and channels (swresample), and the hand-over of the sound
//! to the ring. The converters are remade when a stream changes format or
//! size mid-way; the resampler is never reset between loop passes, so the
//! signal stays continuous.

use super::{AudioTrack, Shared, VideoTrack, IDLE_POLL};
use crate::video::frame::I420Frame;
use ff::format::{sample, Pixel, Sample};
use ff::software::{resampling, scaling};
use ff::{frame, ChannelLayout};
use ffmpeg_next as ff;
use std::sync::Arc;

impl VideoTrack {
    /// The decoded picture, scaled and converted to I420 at the output size.
    pub(super) fn convert(&mut self) -> Result<Arc<I420Frame>, String> {
        let key = (
            self.decoded.format(),
            self.decoded.width(),
            self.decoded.height(),
        );
        // Already I420 at the output size (a raw or lossless I420 clip, most
        // H.264 files): copied straight out of the decoded frame, without the
        // scaler's full-frame pass.
        let as_is = key == (Pixel::YUV420P, self.out.0, self.out.1);
        if !as_is && self.scaler.as_ref().is_none_or(|(_, k)| *k != key) {
            let ctx = scaling::Context::get(
                key.0,
                key.1,
                key.2,
                Pixel::YUV420P,
                self.out.0,
                self.out.1,
                scaling::Flags::BILINEAR,
            )
            .map_err(|e| {
                format!(
                    "no conversion from {:?} {}x{} to I420 {}x{}: {e}",
                    key.0, key.1, key.2, self.out.0, self.out.1
                )
            })?;
            self.scaler = Some((ctx, key));
        }
        let source = if as_is {
            &self.decoded
        } else {
            let Some((scaler, _)) = self.scaler.as_mut() else {
                return Err("no scaler".into());
            };
            scaler
                .run(&self.decoded, &mut self.scaled)
                .map_err(|e| format!("converting a picture: {e}"))?;
            &self.scaled
        };
        let (w, h) = (self.out.0 as usize, self.out.1 as usize);
        self.pool.fill(|out: &mut I420Frame| {
            for (plane, dst, pw, ph) in [
                (0, &mut out.y, w, h),
                (1, &mut out.u, w / 2, h / 2),
                (2, &mut out.v, w / 2, h / 2),
            ] {
                let stride = source.stride(plane);
                let data = source.data(plane);
                let rows = dst.chunks_exact_mut(pw).take(ph);
                if rows.len() < ph {
                    return Err("a pooled picture is smaller than the output size".to_string());
                }
                for (row, line_out) in rows.enumerate() {
                    let line = data
                        .get(row * stride..row * stride + pw)
                        .ok_or("the converted picture is smaller than its size")?;
                    line_out.copy_from_slice(line);
                }
            }
            Ok(())
        })
    }
}

impl AudioTrack {
    /// Resamples the decoded frame to the output format and writes it.
    pub(super) fn convert_and_push(&mut self, shared: &Shared) -> Result<(), String> {
        let in_layout = if self.decoded.channel_layout().is_empty() {
            let layout = ChannelLayout::default(i32::from(self.decoded.channels()));
            self.decoded.set_channel_layout(layout);
            layout
        } else {
            self.decoded.channel_layout()
        };
        let key = (self.decoded.format(), in_layout.bits(), self.decoded.rate());
        let out_layout = ChannelLayout::default(self.out_channels as i32);
        let out_format = Sample::F32(sample::Type::Packed);
        if self.resampler.as_ref().is_none_or(|(_, k)| *k != key) {
            let ctx = resampling::Context::get(
                key.0,
                in_layout,
                key.2,
                out_format,
                out_layout,
                self.out_rate,
            )
            .map_err(|e| {
                format!(
                    "no conversion from {:?} {} Hz {} ch to {} Hz {} ch: {e}",
                    key.0,
                    key.2,
                    self.decoded.channels(),
                    self.out_rate,
                    self.out_channels
                )
            })?;
            self.resampler = Some((ctx, key));
        }
        // Room for everything this frame can give (plus what the resampler
        // holds); nb_samples is the capacity going in and the count coming out.
        let capacity = (self.decoded.samples() as u64 * u64::from(self.out_rate)
            / u64::from(key.2.max(1))) as usize
            + 512;
        if self.converted_capacity < capacity {
            self.converted = frame::Audio::new(out_format, capacity, out_layout);
            self.converted_capacity = capacity;
        }
        self.converted.set_samples(capacity);
        let Some((resampler, _)) = self.resampler.as_mut() else {
            return Err("no resampler".into());
        };
        resampler
            .run(&self.decoded, &mut self.converted)
            .map_err(|e| format!("resampling its audio: {e}"))?;
        let n = self.converted.samples() * self.out_channels as usize;
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let bytes = self.converted.data(0);
        scratch.extend(
            bytes[..(n * 4).min(bytes.len())]
                .chunks_exact(4)
                .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]])),
        );
        self.push(scratch.iter().copied(), scratch.len(), shared);
        self.scratch = scratch;
        Ok(())
    }

    pub(super) fn push_silence(&mut self, frames: u64, shared: &Shared) {
        let n = frames as usize * self.out_channels as usize;
        self.push(std::iter::repeat_n(0.0, n), n, shared);
    }

    /// Writes `n` samples to the ring, waiting for room (the AudioEngine
    /// drains it in real time) unless the pipeline stopped.
    fn push(&mut self, mut samples: impl Iterator<Item = f32>, n: usize, shared: &Shared) {
        let ch = self.out_channels as usize;
        let mut left = n;
        while left > 0 {
            let room = self.ring.slots().min(left) / ch * ch;
            if room == 0 {
                if shared.stopped() {
                    return;
                }
                std::thread::sleep(IDLE_POLL);
                continue;
            }
            if let Ok(chunk) = self.ring.write_chunk_uninit(room) {
                chunk.fill_from_iter(samples.by_ref().take(room));
            }
            left -= room;
            self.written += (room / ch) as u64;
        }
    }
}
