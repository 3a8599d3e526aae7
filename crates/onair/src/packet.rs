//! `EncodedPacket`: the one thing that crosses from the engines to the outputs.
//!
//! Why a single type: every output (RTMP, file) and every policy (drop video
//! first, wait for a keyframe, latency span) needs the same few facts about a
//! packet, and nothing else. Payloads are `Bytes` so fanning one packet out to
//! several outputs costs a reference count, not a copy.

use bytes::Bytes;

/// Which elementary stream a packet belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    /// H.264 video.
    Video,
    /// AAC-LC audio.
    Audio,
}

/// One encoded access unit (video) or AAC frame (audio), stamped from the
/// master clock.
#[derive(Clone, Debug)]
pub struct EncodedPacket {
    /// Video or audio.
    pub kind: MediaKind,
    /// Presentation time, ns since the master clock started.
    pub pts_ns: u64,
    /// Decode time, ns since the master clock started (== pts without B-frames).
    pub dts_ns: u64,
    /// An IDR access unit (video); always true for audio.
    pub keyframe: bool,
    /// No later frame references this one (nal_ref_idc == 0): it can be dropped
    /// alone without corrupting the picture. Always false for audio.
    pub disposable: bool,
    /// Video: AVCC (4-byte big-endian length before each NAL unit), without
    /// SPS/PPS (they travel in the sequence header). Audio: one raw AAC frame.
    pub data: Bytes,
}

impl EncodedPacket {
    /// Composition time offset (pts - dts) in ms, as FLV carries it.
    pub fn composition_offset_ms(&self) -> i32 {
        let diff = i128::from(self.pts_ns) - i128::from(self.dts_ns);
        i32::try_from(diff / 1_000_000).unwrap_or(0)
    }
}

/// Codec parameters of the video stream, known before the first packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoParams {
    /// Coded width in pixels.
    pub width: u32,
    /// Coded height in pixels.
    pub height: u32,
    /// Frames per second (whole numbers; CLI range 1..=120).
    pub fps: u32,
    /// Target bitrate in bits per second at start.
    pub bitrate_bps: u32,
    /// Sequence parameter set NAL unit, without start code.
    pub sps: Bytes,
    /// Picture parameter set NAL unit, without start code.
    pub pps: Bytes,
}

/// Codec parameters of the audio stream, known before the first packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioParams {
    /// Samples per second (48000).
    pub sample_rate: u32,
    /// 1 or 2.
    pub channels: u32,
    /// Target bitrate in bits per second.
    pub bitrate_bps: u32,
    /// AudioSpecificConfig bytes from the AAC encoder.
    pub asc: Bytes,
    /// Samples per channel in one AAC frame (1024 for AAC-LC).
    pub frame_samples: u32,
}

/// Everything an output must send before media: what onMetaData and the two
/// sequence headers are built from. Fixed for the life of a pipeline.
#[derive(Clone, Debug)]
pub struct StreamHeaders {
    /// Video parameters, if the pipeline has video.
    pub video: Option<VideoParams>,
    /// Audio parameters, if the pipeline has audio.
    pub audio: Option<AudioParams>,
    /// Written in onMetaData as `encoder`.
    pub encoder_name: String,
}

/// The fan-out point from the encoders to the outputs. `push` must never
/// block: it runs on an encoder thread, and a slow output must not slow the
/// engines (golden rule 1).
pub trait PacketSink: Send + Sync {
    /// Offers one packet; the sink decides to queue or drop it.
    fn push(&self, packet: EncodedPacket);
}

/// Small, valid headers (64x64 Baseline SPS/PPS, 48 kHz stereo AAC-LC) for
/// unit tests of the muxers and writers.
#[cfg(test)]
pub(crate) fn test_headers() -> StreamHeaders {
    StreamHeaders {
        video: Some(VideoParams {
            width: 64,
            height: 64,
            fps: 30,
            bitrate_bps: 500_000,
            sps: Bytes::from_static(&[0x67, 0x42, 0xC0, 0x1E, 0xD9]),
            pps: Bytes::from_static(&[0x68, 0xCE, 0x3C, 0x80]),
        }),
        audio: Some(AudioParams {
            sample_rate: 48_000,
            channels: 2,
            bitrate_bps: 128_000,
            asc: Bytes::from_static(&[0x11, 0x90]),
            frame_samples: 1024,
        }),
        encoder_name: "test".into(),
    }
}
