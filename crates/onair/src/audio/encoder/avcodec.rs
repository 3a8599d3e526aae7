//! The GPL build's AAC backend: FFmpeg's own `aac` encoder (libavcodec).
//!
//! Why FFmpeg's encoder and not fdk-aac in this build: fdk-aac's licence is
//! not GPL-compatible, and this build links GPL code (x264, Debian's
//! libavcodec), so it takes its AAC from the same library (README,
//! "Licences"). Same contract as the fdk backend: one 1024-sample frame of
//! interleaved i16 in, at most one raw AAC-LC frame out. FFmpeg's encoder
//! holds one frame back (its MDCT overlap), so its first frame comes out
//! after the second input frame; `initial_padding` (1024 samples) is the
//! priming before the first input sample in the decoded output.

use super::AAC_FRAME_SAMPLES;
use crate::avcodec::{self, describe};
use crate::Error;
use bytes::Bytes;
use ff::format::sample::Type as SampleType;
use ff::format::Sample;
use ff::ChannelLayout;
use ffmpeg_next as ff;

/// Name in `onair --version` and errors.
pub(super) const NAME: &str = "FFmpeg aac";
/// The libavcodec encoder used.
const ENCODER: &str = "aac";

fn err(what: &str, e: ff::Error) -> Error {
    Error::Encoder {
        codec: "AAC",
        reason: describe(what, e),
    }
}

/// An opened FFmpeg AAC encoder and what it told about itself.
pub(super) struct Opened {
    enc: ff::encoder::Audio,
    layout: ChannelLayout,
    sample_rate: u32,
    channels: usize,
    /// Samples fed so far (the frames' pts, in 1/sample_rate).
    fed: i64,
    /// AudioSpecificConfig (FFmpeg writes the 2-byte LC config plus the
    /// backward-compatible SBR signalling: 5 bytes for 48 kHz stereo).
    pub(super) asc: Bytes,
    /// Priming samples before the first input sample (`initial_padding`).
    pub(super) delay_samples: u32,
    packet: ff::Packet,
}

impl Opened {
    /// Opens AAC-LC at a constant `bitrate_bps`, planar float input.
    pub(super) fn open(sample_rate: u32, channels: u32, bitrate_bps: u32) -> Result<Self, Error> {
        avcodec::init();
        let codec = ff::encoder::find_by_name(ENCODER).ok_or_else(|| Error::Encoder {
            codec: "AAC",
            reason: format!("libavcodec has no '{ENCODER}' encoder"),
        })?;
        let layout = if channels == 1 {
            ChannelLayout::MONO
        } else {
            ChannelLayout::STEREO
        };
        let rate = i32::try_from(sample_rate).map_err(|_| Error::InvalidConfig {
            option: "audio sample rate",
            reason: format!("{sample_rate} Hz"),
        })?;
        let mut ctx = ff::codec::Context::new_with_codec(codec)
            .encoder()
            .audio()
            .map_err(|e| err("creating the encoder", e))?;
        ctx.set_rate(rate);
        ctx.set_channel_layout(layout);
        ctx.set_channels(channels as i32);
        ctx.set_format(Sample::F32(SampleType::Planar));
        ctx.set_bit_rate(bitrate_bps as usize);
        ctx.set_time_base((1, rate));
        ctx.set_flags(ff::codec::Flags::GLOBAL_HEADER);
        let enc = ctx
            .open_as(codec)
            .map_err(|e| err("opening the encoder", e))?;
        if enc.frame_size() != AAC_FRAME_SAMPLES {
            return Err(Error::Encoder {
                codec: "AAC",
                reason: format!("unexpected frame size {}", enc.frame_size()),
            });
        }
        let asc = Bytes::from(avcodec::extradata(&enc));
        if asc.len() < 2 {
            return Err(Error::Encoder {
                codec: "AAC",
                reason: "encoder gave no AudioSpecificConfig".into(),
            });
        }
        // SAFETY: FFI edge: reads a plain int field of the live, opened context.
        let padding = unsafe { (*enc.as_ptr()).initial_padding };
        Ok(Self {
            enc,
            layout,
            sample_rate,
            channels: channels as usize,
            fed: 0,
            asc,
            delay_samples: u32::try_from(padding).unwrap_or(0),
            packet: ff::Packet::empty(),
        })
    }

    /// Encodes one frame of interleaved PCM (exactly 1024 sample frames).
    /// Returns the samples consumed (all) and the AAC frame completed, if any.
    pub(super) fn encode(&mut self, input: &[i16]) -> Result<(usize, Option<Bytes>), Error> {
        let n = AAC_FRAME_SAMPLES as usize;
        if input.len() != n * self.channels {
            return Err(Error::Encoder {
                codec: "AAC",
                reason: format!(
                    "{} samples given, one frame is {}",
                    input.len(),
                    n * self.channels
                ),
            });
        }
        // A new frame each time: the encoder may still hold a reference to
        // the buffers of the previous one (8 KiB, allocated 47 times a second).
        let mut frame = ff::frame::Audio::new(Sample::F32(SampleType::Planar), n, self.layout);
        frame.set_rate(self.sample_rate);
        for ch in 0..self.channels {
            let plane = frame.plane_mut::<f32>(ch);
            for (i, out) in plane.iter_mut().take(n).enumerate() {
                *out = f32::from(input[i * self.channels + ch]) / 32768.0;
            }
        }
        frame.set_pts(Some(self.fed));
        self.fed += n as i64;
        self.enc
            .send_frame(&frame)
            .map_err(|e| err("encoding", e))?;
        match self.enc.receive_packet(&mut self.packet) {
            Ok(()) => Ok((input.len(), self.packet.data().map(Bytes::copy_from_slice))),
            Err(ff::Error::Other {
                errno: ff::util::error::EAGAIN,
            }) => Ok((input.len(), None)),
            Err(e) => Err(err("encoding", e)),
        }
    }
}
