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
    /// Video (H.264, HEVC or AV1: [`VideoParams::codec`] says which).
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
    /// Video, by [`VideoParams::codec`]:
    /// - H.264 and HEVC: the access unit's NAL units, each behind a 4-byte
    ///   big-endian length (AVCC/HVCC form, as MP4 samples and FLV video tags
    ///   carry them), without parameter sets (SPS/PPS/VPS travel in
    ///   [`VideoParams::config`]) and without access unit delimiters.
    /// - AV1: the temporal unit as low-overhead OBUs (every OBU with
    ///   `obu_has_size_field = 1`), without the temporal delimiter OBU, as
    ///   AV1-ISOBMFF samples and Enhanced RTMP's `av01` frames carry it.
    ///
    /// Audio: one raw AAC frame.
    pub data: Bytes,
}

impl EncodedPacket {
    /// Composition time offset (pts - dts) in ms, as FLV carries it.
    pub fn composition_offset_ms(&self) -> i32 {
        let diff = i128::from(self.pts_ns) - i128::from(self.dts_ns);
        i32::try_from(diff / 1_000_000).unwrap_or(0)
    }
}

/// Video compression format of a stream. H.264 travels as legacy FLV video
/// (codec id 7) so every RTMP server takes it; HEVC and AV1 travel as
/// Enhanced RTMP (FourCC `hvc1` / `av01`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoCodec {
    /// H.264 / AVC; [`VideoParams::config`] is an `avcC` record.
    #[default]
    H264,
    /// H.265 / HEVC; [`VideoParams::config`] is an `hvcC` record.
    Hevc,
    /// AV1; [`VideoParams::config`] is an `av1C` record.
    Av1,
}

impl VideoCodec {
    /// The ISO/Enhanced RTMP FourCC: `avc1`, `hvc1` or `av01` (the MP4 sample
    /// entry name and the `fourCcList` / ExVideoTagHeader value).
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            VideoCodec::H264 => *b"avc1",
            VideoCodec::Hevc => *b"hvc1",
            VideoCodec::Av1 => *b"av01",
        }
    }

    /// FFmpeg's name of the codec (`ffprobe`'s `codec_name`): `h264`, `hevc`
    /// or `av1`.
    pub fn name(self) -> &'static str {
        match self {
            VideoCodec::H264 => "h264",
            VideoCodec::Hevc => "hevc",
            VideoCodec::Av1 => "av1",
        }
    }
}

/// Codec parameters of the video stream, known before the first packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoParams {
    /// Compression format of the packets and of [`config`](Self::config).
    pub codec: VideoCodec,
    /// Coded width in pixels.
    pub width: u32,
    /// Coded height in pixels.
    pub height: u32,
    /// Frames per second (whole numbers; CLI range 1..=120).
    pub fps: u32,
    /// Target bitrate in bits per second at start.
    pub bitrate_bps: u32,
    /// The codec's decoder configuration record, exactly the payload of the
    /// MP4 box of that name (no box header) and of FLV's sequence header
    /// after its tag header: `avcC` (AVCDecoderConfigurationRecord), `hvcC`
    /// (HEVCDecoderConfigurationRecord) or `av1C`
    /// (AV1CodecConfigurationRecord), all with 4-byte NAL lengths. Built by
    /// [`crate::codec_config`]'s `avc_config`, `hevc_config`, `av1_config`.
    pub config: Bytes,
}

impl VideoParams {
    /// H.264 parameters with the `avcC` built from one SPS and one PPS NAL
    /// unit (without start codes).
    pub fn h264(
        width: u32,
        height: u32,
        fps: u32,
        bitrate_bps: u32,
        sps: &[u8],
        pps: &[u8],
    ) -> Self {
        Self {
            codec: VideoCodec::H264,
            width,
            height,
            fps,
            bitrate_bps,
            config: crate::codec_config::avc_config(sps, pps),
        }
    }
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

impl StreamHeaders {
    /// The configured video plus audio bitrate (bit/s): what the outputs
    /// size their queues by (a stream output's byte bound, a recorder's
    /// queue), so both read it the same way.
    pub fn total_bitrate_bps(&self) -> u64 {
        let video = self.video.as_ref().map_or(0, |v| u64::from(v.bitrate_bps));
        let audio = self.audio.as_ref().map_or(0, |a| u64::from(a.bitrate_bps));
        video + audio
    }
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
        video: Some(VideoParams::h264(
            64,
            64,
            30,
            500_000,
            &[0x67, 0x42, 0xC0, 0x1E, 0xD9],
            &[0x68, 0xCE, 0x3C, 0x80],
        )),
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
