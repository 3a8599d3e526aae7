//! HEVC and AV1 through the real output path (StreamMuxer -> StreamBuffer ->
//! NetworkSendThread -> our RTMP client, Enhanced RTMP tags) to FFmpeg 9's
//! `-listen 1` receiver, and through the MP4 and FLV recorders; FFmpeg 9
//! judges all three (codec, frame count, 0 decode errors), and the FLV file
//! must end with the Enhanced RTMP SequenceEnd the live path sends too. Debian's FFmpeg 5.1 cannot demux
//! Enhanced RTMP, so this is the test that says the wire format is right.
//!
//! The access units come from a fixture FFmpeg 9 encodes in the test
//! (libx265 / libsvtav1), split into the packet interface of `packet.rs`:
//! length-prefixed NAL units without parameter sets, OBUs without temporal
//! delimiters, and the configuration record built by `codec_config`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use onair_testkit::ffmpeg9;

use super::muxer::KeyframeRequester;
use super::record::{RecordConfig, Recorder};
use super::stream::{StreamOutput, StreamOutputConfig};
use super::url::RtmpUrl;
use crate::codec_config;
use crate::packet::{EncodedPacket, MediaKind, StreamHeaders, VideoCodec, VideoParams};

const SIZE: (u32, u32, u32) = (320, 240, 30);
/// 2 s at 30 fps, a keyframe every 0.5 s.
const FRAMES: u32 = 60;
const GOP: &str = "15";
/// Frames in a GOP of the fixtures.
pub(super) const GOP_FRAMES: u32 = 15;

pub(super) struct NoKeyframes;
impl KeyframeRequester for NoKeyframes {
    fn request_keyframe(&self) {}
}

/// Access units of an Annex B HEVC stream written with access unit
/// delimiters: (length-prefixed NAL units without AUD/VPS/SPS/PPS, IRAP?),
/// and the parameter sets of the first access unit.
fn split_hevc(stream: &[u8]) -> (Vec<(Bytes, bool)>, Vec<Vec<u8>>) {
    let mut units = Vec::new();
    let mut params = Vec::new();
    let mut current = BytesMut::new();
    let mut key = false;
    let mut started = false;
    for nal in codec_config::annex_b_nal_units(stream) {
        let kind = (nal[0] >> 1) & 0x3F;
        match kind {
            35 => {
                if started && !current.is_empty() {
                    units.push((current.split().freeze(), key));
                }
                started = true;
                key = false;
            }
            32..=34 => {
                if units.is_empty() {
                    params.push(nal.to_vec());
                }
            }
            _ => {
                key |= (16..=23).contains(&kind);
                current.put_u32(nal.len() as u32);
                current.put_slice(nal);
            }
        }
    }
    if !current.is_empty() {
        units.push((current.freeze(), key));
    }
    (units, params)
}

/// Temporal units of a low-overhead AV1 stream: (OBUs without the temporal
/// delimiter, has a sequence header = key?), and the first sequence header.
fn split_av1(stream: &[u8]) -> (Vec<(Bytes, bool)>, Vec<u8>) {
    let mut units = Vec::new();
    let mut seq = Vec::new();
    let mut current = BytesMut::new();
    let mut key = false;
    let mut at = 0;
    while at < stream.len() {
        let header = stream[at];
        let kind = (header >> 3) & 0x0F;
        let ext = usize::from(header & 0x04 != 0);
        assert!(header & 0x02 != 0, "OBU without size field at {at}");
        let mut size = 0usize;
        let mut len = 0;
        loop {
            let b = stream[at + 1 + ext + len];
            size |= usize::from(b & 0x7F) << (7 * len);
            len += 1;
            if b & 0x80 == 0 {
                break;
            }
        }
        let end = at + 1 + ext + len + size;
        let obu = &stream[at..end];
        match kind {
            2 => {
                if !current.is_empty() {
                    units.push((current.split().freeze(), key));
                }
                key = false;
            }
            _ => {
                if kind == 1 {
                    key = true;
                    if seq.is_empty() {
                        seq = obu.to_vec();
                    }
                }
                current.put_slice(obu);
            }
        }
        at = end;
    }
    if !current.is_empty() {
        units.push((current.freeze(), key));
    }
    (units, seq)
}

/// Headers and `frames` packets (30 fps, a keyframe every 15) of a fixture
/// of `codec`, encoded now by FFmpeg 9.
pub(super) fn fixture(
    bin: &Path,
    codec: VideoCodec,
    dir: &Path,
    frames: u32,
) -> (StreamHeaders, Vec<EncodedPacket>) {
    let (name, file) = match codec {
        VideoCodec::Hevc => ("hevc", "f.hevc"),
        VideoCodec::Av1 => ("av1", "f.obu"),
        VideoCodec::H264 => unreachable!("H.264 has its own tests"),
    };
    let path = dir.join(file);
    ffmpeg9::encode_fixture(bin, name, SIZE, frames, &["-g", GOP], &path).expect("fixture");
    let stream = std::fs::read(&path).expect("fixture file");
    let (units, config) = match codec {
        VideoCodec::Hevc => {
            let (units, params) = split_hevc(&stream);
            let refs: Vec<&[u8]> = params.iter().map(Vec::as_slice).collect();
            (units, codec_config::hevc_config(&refs).expect("hvcC"))
        }
        _ => {
            let (units, seq) = split_av1(&stream);
            (units, codec_config::av1_config(&seq).expect("av1C"))
        }
    };
    assert_eq!(units.len(), frames as usize, "{name} fixture access units");
    assert!(units[0].1, "{name} fixture starts with a keyframe");
    let frame_ns = 1_000_000_000 / u64::from(SIZE.2);
    let packets = units
        .into_iter()
        .enumerate()
        .map(|(i, (data, keyframe))| EncodedPacket {
            kind: MediaKind::Video,
            pts_ns: i as u64 * frame_ns,
            dts_ns: i as u64 * frame_ns,
            keyframe,
            disposable: false,
            data,
        })
        .collect();
    let headers = StreamHeaders {
        video: Some(VideoParams {
            codec,
            width: SIZE.0,
            height: SIZE.1,
            fps: SIZE.2,
            bitrate_bps: 1_000_000,
            config,
        }),
        audio: None,
        encoder_name: "onair-test".into(),
    };
    (headers, packets)
}

/// Publishes a fixture to FFmpeg 9's listener in real time through a
/// StreamOutput, records it to MP4 and FLV at the same time, and judges
/// all three.
fn publish_and_record(codec: VideoCodec) {
    let Some(bin) = ffmpeg9::require_ffmpeg9() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (headers, packets) = fixture(&bin, codec, dir.path(), FRAMES);
    let received = dir.path().join("received.mkv");
    let mut listener = ffmpeg9::listen(&bin, &received, "ertmp").expect("listener");
    let url = RtmpUrl::parse(&listener.url(), None).expect("url");
    let (events, _events_rx) = crossbeam_channel::unbounded();
    let mut output = StreamOutput::start(
        0,
        StreamOutputConfig::new(url),
        &headers,
        Arc::new(NoKeyframes),
        None,
        events.clone(),
    )
    .expect("output");
    let mp4 = dir.path().join("recorded.mp4");
    let flv = dir.path().join("recorded.flv");
    let mut recorder = Recorder::start(1, RecordConfig::new(&mp4), &headers, None, events.clone())
        .expect("recorder");
    let mut flv_recorder =
        Recorder::start(2, RecordConfig::new(&flv), &headers, None, events).expect("FLV recorder");
    // The first packets wait for the session (the muxer drops video until
    // one is live): give it the time to connect, as a pipeline would.
    let live = onair_testkit::wait_for(Duration::from_secs(5), || {
        (output.state() == crate::stats::LinkState::Live).then_some(())
    });
    assert!(live.is_some(), "not live: {:?}", output.last_error());
    let sink = output.sink();
    let record = recorder.sink();
    let record_flv = flv_recorder.sink();
    let start = Instant::now();
    let frame = Duration::from_nanos(1_000_000_000 / u64::from(SIZE.2));
    for (i, p) in packets.into_iter().enumerate() {
        if let Some(wait) = (frame * i as u32).checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        record.push(p.clone());
        record_flv.push(p.clone());
        sink.push(p);
    }
    output.stop();
    recorder.stop();
    flv_recorder.stop();
    let exited = listener.wait(Duration::from_secs(10)).expect("wait");
    assert!(exited.is_some(), "the listener did not see the stream end");
    assert_eq!(listener.unexpected_stderr(), "", "listener errors");
    let video = headers.video.as_ref().expect("video");
    let end = crate::flv::video_sequence_end(video).expect("an Enhanced RTMP codec");
    let tags = super::rtmp::tests::read_flv_tags(&flv);
    let last_video = tags.iter().rev().find(|t| t.0 == crate::flv::TAG_VIDEO);
    assert_eq!(
        last_video.map(|t| &t.2[..]),
        Some(&end[..]),
        "the FLV file ends its video with SequenceEnd"
    );
    for (what, path) in [("received", &received), ("recorded", &mp4), ("FLV", &flv)] {
        let v = ffmpeg9::judge(&bin, path).expect("judge");
        assert_eq!(v.codec, codec.name(), "{what}: {v:?}");
        assert_eq!(v.errors, "", "{what}: decode errors");
        assert_eq!(v.frames, u64::from(FRAMES), "{what}: frames");
    }
}

#[test]
fn hevc_over_enhanced_rtmp_and_mp4() {
    publish_and_record(VideoCodec::Hevc);
}

#[test]
fn av1_over_enhanced_rtmp_and_mp4() {
    publish_and_record(VideoCodec::Av1);
}
