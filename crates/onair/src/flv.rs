//! FLV tag bodies and a minimal FLV file writer, shared by every output.
//!
//! Why one module: RTMP audio/video/data messages carry exactly the bodies of
//! FLV tags, so the RTMP publisher, the embedded local receiver and the file
//! recorder all build them here, once, against bytes checked by tests. Keeping
//! the byte layout in one place means a fix (say, to the composition time)
//! reaches every output at the same time.
//!
//! AMF0 is encoded by hand for the few shapes we need (strings, numbers,
//! booleans, null, ECMA arrays) so that onMetaData keeps a stable key order:
//! `rml_amf0` serializes objects from a `HashMap`, whose order changes from run
//! to run and would make the bytes untestable.

use std::io::{self, Write};

use bytes::{BufMut, Bytes, BytesMut};

use crate::amf0::{self, Value};
use crate::packet::{
    AudioParams, EncodedPacket, MediaKind, StreamHeaders, VideoCodec, VideoParams,
};

/// FLV tag type of an audio tag.
pub const TAG_AUDIO: u8 = 8;
/// FLV tag type of a video tag.
pub const TAG_VIDEO: u8 = 9;
/// FLV tag type of a script data (onMetaData) tag.
pub const TAG_SCRIPT: u8 = 18;

/// FLV codec id of AVC (H.264), as written in video tags and `videocodecid`.
pub const VIDEO_CODEC_AVC: u8 = 7;
/// FLV sound format of AAC, as written in `audiocodecid`.
pub const AUDIO_CODEC_AAC: u8 = 10;

/// First byte of every AAC audio tag: format 10 (AAC), 44 kHz, 16-bit, stereo.
/// The FLV spec requires AAC tags to say 44 kHz/stereo whatever the real
/// format is; the AudioSpecificConfig carries the truth.
pub const AAC_TAG_HEADER: u8 = 0xAF;

/// AVC packet type: sequence header (AVCDecoderConfigurationRecord).
const AVC_SEQUENCE_HEADER: u8 = 0;
/// AVC packet type: one or more NAL units.
const AVC_NALU: u8 = 1;
/// AAC packet type: sequence header (AudioSpecificConfig).
const AAC_SEQUENCE_HEADER: u8 = 0;
/// AAC packet type: raw AAC frame.
const AAC_RAW: u8 = 1;
/// FLV video frame type of a keyframe.
const FRAME_KEY: u8 = 1;
/// FLV video frame type of an inter frame.
const FRAME_INTER: u8 = 2;
/// Enhanced RTMP: first-byte flag of an ExVideoTagHeader (`isExVideoHeader`).
const EX_VIDEO_HEADER: u8 = 0x80;
/// Enhanced RTMP VideoPacketType: the codec configuration record.
const EX_SEQUENCE_START: u8 = 0;
/// Enhanced RTMP VideoPacketType: frames, with a composition time for
/// `hvc1` (`av01` carries none).
const EX_CODED_FRAMES: u8 = 1;
/// Enhanced RTMP VideoPacketType: end of the sequence.
const EX_SEQUENCE_END: u8 = 2;
/// Enhanced RTMP VideoPacketType: `hvc1` frames whose composition time is 0.
const EX_CODED_FRAMES_X: u8 = 3;
/// Size of an FLV tag header (type, size, timestamp, stream id).
const TAG_HEADER_LEN: usize = 11;
/// Largest body an FLV tag can carry (24-bit size field).
pub const MAX_TAG_BODY: usize = 0x00FF_FFFF;

/// AVC sequence header tag body: `0x17 0x00 00 00 00` followed by the
/// AVCDecoderConfigurationRecord ([`VideoParams::config`]).
pub fn avc_sequence_header(video: &VideoParams) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + video.config.len());
    out.put_u8((FRAME_KEY << 4) | VIDEO_CODEC_AVC);
    out.put_u8(AVC_SEQUENCE_HEADER);
    out.put_slice(&[0, 0, 0]);
    out.put_slice(&video.config);
    out.freeze()
}

/// Video tag body of one H.264 access unit: frame type (1 key / 2 inter)
/// and codec 7, AVC packet type 1, the composition time as a signed 24-bit
/// big-endian number of ms, then the AVCC payload. The payload is copied
/// once.
pub fn video_tag_body(packet: &EncodedPacket) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + packet.data.len());
    out.put_u8((frame_type(packet) << 4) | VIDEO_CODEC_AVC);
    out.put_u8(AVC_NALU);
    put_composition_time(&mut out, packet);
    out.put_slice(&packet.data);
    out.freeze()
}

/// Sequence header tag body of a stream's video, by codec: the legacy AVC
/// one for H.264 (every RTMP server takes it), an Enhanced RTMP
/// SequenceStart carrying the `hvcC` / `av1C` record for HEVC / AV1.
pub fn video_sequence_header(video: &VideoParams) -> Bytes {
    match video.codec {
        VideoCodec::H264 => avc_sequence_header(video),
        VideoCodec::Hevc | VideoCodec::Av1 => {
            let mut out = BytesMut::with_capacity(5 + video.config.len());
            put_ex_header(&mut out, FRAME_KEY, EX_SEQUENCE_START, video.codec);
            out.put_slice(&video.config);
            out.freeze()
        }
    }
}

/// Video tag body of one access unit of `codec`: legacy AVC for H.264;
/// for HEVC an Enhanced RTMP CodedFrames with its composition time, or
/// CodedFramesX when that is 0 (3 bytes fewer, as the spec intends); for
/// AV1 a CodedFrames, which has no composition time (AV1 has no reordering
/// at the container level).
pub fn codec_video_tag_body(codec: VideoCodec, packet: &EncodedPacket) -> Bytes {
    if codec == VideoCodec::H264 {
        return video_tag_body(packet);
    }
    let mut out = BytesMut::with_capacity(8 + packet.data.len());
    let cts = packet.composition_offset_ms();
    match codec {
        VideoCodec::Hevc if cts != 0 => {
            put_ex_header(&mut out, frame_type(packet), EX_CODED_FRAMES, codec);
            put_composition_time(&mut out, packet);
        }
        VideoCodec::Hevc => put_ex_header(&mut out, frame_type(packet), EX_CODED_FRAMES_X, codec),
        _ => put_ex_header(&mut out, frame_type(packet), EX_CODED_FRAMES, codec),
    }
    out.put_slice(&packet.data);
    out.freeze()
}

/// Tag body that ends the video sequence at stop, for Enhanced RTMP codecs
/// (an ExVideoTagHeader SequenceEnd); `None` for H.264, which stays on the
/// legacy tags every server knows.
pub fn video_sequence_end(video: &VideoParams) -> Option<Bytes> {
    if video.codec == VideoCodec::H264 {
        return None;
    }
    let mut out = BytesMut::with_capacity(5);
    put_ex_header(&mut out, FRAME_KEY, EX_SEQUENCE_END, video.codec);
    Some(out.freeze())
}

/// `videocodecid` of onMetaData: the legacy id 7 for H.264, the FourCC as a
/// big-endian number for Enhanced RTMP codecs (`hvc1` = 1752589105).
pub fn video_codec_id(codec: VideoCodec) -> f64 {
    match codec {
        VideoCodec::H264 => f64::from(VIDEO_CODEC_AVC),
        other => f64::from(u32::from_be_bytes(other.fourcc())),
    }
}

fn frame_type(packet: &EncodedPacket) -> u8 {
    if packet.keyframe {
        FRAME_KEY
    } else {
        FRAME_INTER
    }
}

fn put_ex_header(out: &mut BytesMut, frame: u8, packet_type: u8, codec: VideoCodec) {
    out.put_u8(EX_VIDEO_HEADER | (frame << 4) | packet_type);
    out.put_slice(&codec.fourcc());
}

/// The composition time as FLV writes it: signed 24-bit big-endian ms.
fn put_composition_time(out: &mut BytesMut, packet: &EncodedPacket) {
    let cts = packet.composition_offset_ms().clamp(-0x80_0000, 0x7F_FFFF);
    out.put_slice(&cts.to_be_bytes()[1..4]);
}

/// AAC sequence header tag body: `0xAF 0x00` + AudioSpecificConfig.
pub fn aac_sequence_header(audio: &AudioParams) -> Bytes {
    let mut out = BytesMut::with_capacity(2 + audio.asc.len());
    out.put_u8(AAC_TAG_HEADER);
    out.put_u8(AAC_SEQUENCE_HEADER);
    out.put_slice(&audio.asc);
    out.freeze()
}

/// Audio tag body of one AAC frame: `0xAF 0x01` + raw frame.
pub fn audio_tag_body(packet: &EncodedPacket) -> Bytes {
    let mut out = BytesMut::with_capacity(2 + packet.data.len());
    out.put_u8(AAC_TAG_HEADER);
    out.put_u8(AAC_RAW);
    out.put_slice(&packet.data);
    out.freeze()
}

/// Tag body of any packet, by its kind (video of `codec`).
pub fn tag_body(codec: VideoCodec, packet: &EncodedPacket) -> Bytes {
    match packet.kind {
        MediaKind::Video => codec_video_tag_body(codec, packet),
        MediaKind::Audio => audio_tag_body(packet),
    }
}

/// FLV tag type of a media kind.
pub fn tag_type(kind: MediaKind) -> u8 {
    match kind {
        MediaKind::Video => TAG_VIDEO,
        MediaKind::Audio => TAG_AUDIO,
    }
}

/// One onMetaData value.
#[derive(Clone, Debug, PartialEq)]
pub enum MetaValue {
    /// AMF0 number.
    Number(f64),
    /// AMF0 boolean.
    Bool(bool),
    /// AMF0 string.
    Str(String),
}

/// The onMetaData properties of a stream, in the order they are written.
pub fn metadata_fields(headers: &StreamHeaders) -> Vec<(&'static str, MetaValue)> {
    let mut fields = Vec::with_capacity(11);
    if let Some(v) = &headers.video {
        fields.push(("width", MetaValue::Number(f64::from(v.width))));
        fields.push(("height", MetaValue::Number(f64::from(v.height))));
        fields.push(("framerate", MetaValue::Number(f64::from(v.fps))));
        fields.push(("videocodecid", MetaValue::Number(video_codec_id(v.codec))));
        fields.push((
            "videodatarate",
            MetaValue::Number(f64::from(v.bitrate_bps) / 1000.0),
        ));
    }
    if let Some(a) = &headers.audio {
        fields.push((
            "audiocodecid",
            MetaValue::Number(f64::from(AUDIO_CODEC_AAC)),
        ));
        fields.push((
            "audiodatarate",
            MetaValue::Number(f64::from(a.bitrate_bps) / 1000.0),
        ));
        fields.push((
            "audiosamplerate",
            MetaValue::Number(f64::from(a.sample_rate)),
        ));
        fields.push(("audiosamplesize", MetaValue::Number(16.0)));
        fields.push(("stereo", MetaValue::Bool(a.channels >= 2)));
    }
    fields.push(("encoder", MetaValue::Str(headers.encoder_name.clone())));
    fields
}

/// Script tag body for files: AMF0 `"onMetaData"` + ECMA array of
/// [`metadata_fields`].
pub fn script_tag_body(headers: &StreamHeaders) -> Bytes {
    script_body_from_fields(&metadata_fields(headers))
}

/// Script tag body (`"onMetaData"` + ECMA array) from arbitrary fields.
pub fn script_body_from_fields<K: AsRef<str>>(fields: &[(K, MetaValue)]) -> Bytes {
    let array = Value::EcmaArray(
        fields
            .iter()
            .map(|(k, v)| (k.as_ref().to_string(), v.to_amf0()))
            .collect(),
    );
    amf0::encode_all(&[Value::String("onMetaData".into()), array]).freeze()
}

/// RTMP data message body that sets the stream's metadata:
/// `"@setDataFrame"` followed by the script tag body.
pub fn set_data_frame_body(headers: &StreamHeaders) -> Bytes {
    let script = script_tag_body(headers);
    let mut out = amf0::encode_all(&[Value::String("@setDataFrame".into())]);
    out.put_slice(&script);
    out.freeze()
}

impl MetaValue {
    /// The AMF0 value it is written as.
    fn to_amf0(&self) -> Value {
        match self {
            MetaValue::Number(n) => Value::Number(*n),
            MetaValue::Bool(b) => Value::Boolean(*b),
            MetaValue::Str(s) => Value::String(s.clone()),
        }
    }
}

/// Writes an FLV file: the header, then tags with their PreviousTagSize.
///
/// Timestamps are written as FLV wants them: the low 24 bits, then the high
/// 8 bits in the "extended" byte, so files longer than 4.6 hours stay right.
pub struct FlvWriter<W: Write> {
    out: W,
    bytes_written: u64,
}

impl<W: Write> FlvWriter<W> {
    /// Writes the 9-byte FLV header and PreviousTagSize0, flagging audio
    /// and/or video as present.
    pub fn new(mut out: W, has_audio: bool, has_video: bool) -> io::Result<Self> {
        let flags = (u8::from(has_audio) << 2) | u8::from(has_video);
        out.write_all(&[b'F', b'L', b'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0])?;
        Ok(Self {
            out,
            bytes_written: 13,
        })
    }

    /// Header flags from stream headers.
    pub fn for_headers(out: W, headers: &StreamHeaders) -> io::Result<Self> {
        Self::new(out, headers.audio.is_some(), headers.video.is_some())
    }

    /// Writes one tag (type 8 audio / 9 video / 18 script) and its
    /// PreviousTagSize.
    pub fn write_tag(&mut self, tag_type: u8, timestamp_ms: u32, body: &[u8]) -> io::Result<()> {
        if body.len() > MAX_TAG_BODY {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("FLV tag body of {} bytes exceeds 16 MiB", body.len()),
            ));
        }
        let size = body.len() as u32; // fits: checked above
        let ts = timestamp_ms.to_be_bytes();
        let mut header = [0u8; TAG_HEADER_LEN];
        header[0] = tag_type & 0x1F;
        header[1..4].copy_from_slice(&size.to_be_bytes()[1..4]);
        header[4..7].copy_from_slice(&ts[1..4]);
        header[7] = ts[0];
        // bytes 8..11: stream id, always 0
        self.out.write_all(&header)?;
        self.out.write_all(body)?;
        let prev = (TAG_HEADER_LEN as u32) + size;
        self.out.write_all(&prev.to_be_bytes())?;
        self.bytes_written += u64::from(prev) + 4;
        Ok(())
    }

    /// Bytes written so far, header included.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The underlying writer (e.g. to commit what was written so far).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Returns the underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Baseline-profile SPS/PPS of a 64x64 stream (from x264/openh264-like output).
    pub(crate) fn test_video() -> VideoParams {
        VideoParams::h264(
            64,
            64,
            30,
            500_000,
            &[0x67, 0x42, 0xC0, 0x1E, 0xDA, 0x04],
            &[0x68, 0xCE, 0x3C, 0x80],
        )
    }

    pub(crate) fn test_audio() -> AudioParams {
        AudioParams {
            sample_rate: 48_000,
            channels: 2,
            bitrate_bps: 128_000,
            asc: Bytes::from_static(&[0x11, 0x90]),
            frame_samples: 1024,
        }
    }

    pub(crate) fn test_headers() -> StreamHeaders {
        StreamHeaders {
            video: Some(test_video()),
            audio: Some(test_audio()),
            encoder_name: "onair-test".into(),
        }
    }

    fn packet(
        kind: MediaKind,
        pts_ms: u64,
        dts_ms: u64,
        key: bool,
        data: &'static [u8],
    ) -> EncodedPacket {
        EncodedPacket {
            kind,
            pts_ns: pts_ms * 1_000_000,
            dts_ns: dts_ms * 1_000_000,
            keyframe: key,
            disposable: false,
            data: Bytes::from_static(data),
        }
    }

    #[test]
    fn avc_sequence_header_bytes() {
        let got = avc_sequence_header(&test_video());
        let want: &[u8] = &[
            0x17, 0x00, 0, 0, 0, // tag header
            0x01, 0x42, 0xC0, 0x1E, 0xFF, 0xE1, // record header
            0x00, 0x06, 0x67, 0x42, 0xC0, 0x1E, 0xDA, 0x04, // sps
            0x01, 0x00, 0x04, 0x68, 0xCE, 0x3C, 0x80, // pps
        ];
        assert_eq!(&got[..], want);
    }

    #[test]
    fn video_tag_key_and_inter_with_composition_time() {
        let data: &[u8] = &[0, 0, 0, 2, 0x65, 0x88];
        let key = video_tag_body(&packet(
            MediaKind::Video,
            40,
            0,
            true,
            &[0, 0, 0, 2, 0x65, 0x88],
        ));
        let mut want = vec![0x17, 0x01, 0x00, 0x00, 0x28];
        want.extend_from_slice(data);
        assert_eq!(&key[..], &want[..]);

        // Negative composition time is a signed 24-bit number.
        let inter = video_tag_body(&packet(MediaKind::Video, 0, 2, false, &[0xAB]));
        assert_eq!(&inter[..], &[0x27, 0x01, 0xFF, 0xFF, 0xFE, 0xAB]);
    }

    #[test]
    fn aac_bodies() {
        assert_eq!(
            &aac_sequence_header(&test_audio())[..],
            &[0xAF, 0x00, 0x11, 0x90]
        );
        let p = packet(MediaKind::Audio, 0, 0, true, &[0x21, 0x10]);
        assert_eq!(&audio_tag_body(&p)[..], &[0xAF, 0x01, 0x21, 0x10]);
        assert_eq!(
            &tag_body(VideoCodec::H264, &p)[..],
            &[0xAF, 0x01, 0x21, 0x10]
        );
    }

    #[test]
    fn script_body_bytes() {
        let headers = StreamHeaders {
            video: None,
            audio: None,
            encoder_name: "x".into(),
        };
        let got = script_tag_body(&headers);
        let mut want = vec![0x02, 0x00, 0x0A];
        want.extend_from_slice(b"onMetaData");
        want.extend_from_slice(&[0x08, 0, 0, 0, 1]);
        want.extend_from_slice(&[0x00, 0x07]);
        want.extend_from_slice(b"encoder");
        want.extend_from_slice(&[0x02, 0x00, 0x01, b'x']);
        want.extend_from_slice(&[0, 0, 9]);
        assert_eq!(&got[..], &want[..]);

        let fields = metadata_fields(&test_headers());
        let names: Vec<_> = fields.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            names,
            [
                "width",
                "height",
                "framerate",
                "videocodecid",
                "videodatarate",
                "audiocodecid",
                "audiodatarate",
                "audiosamplerate",
                "audiosamplesize",
                "stereo",
                "encoder"
            ]
        );
        assert_eq!(fields[4].1, MetaValue::Number(500.0));
        assert_eq!(fields[9].1, MetaValue::Bool(true));
        // Numbers are big-endian IEEE doubles.
        let n = amf0::encode_all(&[Value::Number(1.0)]);
        assert_eq!(&n[..], &[0, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0]);
        let sdf = set_data_frame_body(&test_headers());
        assert_eq!(&sdf[..16], b"\x02\x00\x0D@setDataFrame");
    }

    #[test]
    fn writer_header_and_tags() {
        let mut w = FlvWriter::new(Vec::new(), true, true).unwrap();
        w.write_tag(TAG_AUDIO, 0x0123_4567, &[0xAF, 0x01]).unwrap();
        assert_eq!(w.bytes_written(), 13 + 11 + 2 + 4);
        let bytes = w.into_inner();
        let want: &[u8] = &[
            b'F', b'L', b'V', 1, 5, 0, 0, 0, 9, 0, 0, 0, 0, // header + PreviousTagSize0
            8, 0, 0, 2, 0x23, 0x45, 0x67, 0x01, 0, 0, 0, // tag header, extended ts 0x01
            0xAF, 0x01, // body
            0, 0, 0, 13, // PreviousTagSize
        ];
        assert_eq!(&bytes[..], want);
        let v = FlvWriter::new(Vec::new(), false, true)
            .unwrap()
            .into_inner();
        assert_eq!(v[4], 1);
    }

    /// A tiny but decodable FLV: headers + AAC frames (silent AAC-LC frames
    /// are a few bytes) and checks that ffprobe sees both streams.
    #[test]
    fn ffprobe_reads_written_file() {
        if !onair_testkit::require_tools(&["ffprobe"]) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.flv");
        let headers = test_headers();
        let file = std::fs::File::create(&path).unwrap();
        let mut w = FlvWriter::for_headers(io::BufWriter::new(file), &headers).unwrap();
        w.write_tag(TAG_SCRIPT, 0, &script_tag_body(&headers))
            .unwrap();
        w.write_tag(TAG_VIDEO, 0, &avc_sequence_header(&test_video()))
            .unwrap();
        w.write_tag(TAG_AUDIO, 0, &aac_sequence_header(&test_audio()))
            .unwrap();
        for i in 0..10u64 {
            let a = packet(MediaKind::Audio, i * 21, i * 21, true, SILENT_AAC_FRAME);
            w.write_tag(TAG_AUDIO, (i * 21) as u32, &audio_tag_body(&a))
                .unwrap();
        }
        w.flush().unwrap();
        drop(w);
        let out = ffprobe_streams(&path);
        assert!(out.contains("codec_name=aac"), "{out}");
        assert!(out.contains("codec_name=h264"), "{out}");
    }

    /// One silent stereo AAC-LC frame (as produced by common encoders).
    pub(crate) const SILENT_AAC_FRAME: &[u8] = &[0x21, 0x10, 0x04, 0x60, 0x8C, 0x1C];

    /// `ffprobe -show_streams` output (stdout + stderr) of a file.
    pub(crate) fn ffprobe_streams(path: &std::path::Path) -> String {
        let out = std::process::Command::new("ffprobe")
            .args(["-v", "error", "-show_streams", "-show_format"])
            .arg(path)
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}
