use super::nal::{H264_IDR as NAL_IDR, H264_PPS as NAL_PPS, H264_SPS as NAL_SPS};
use super::*;
use crate::packet::MediaKind;
use crate::video::source::{
    decode_frame_index, decode_frame_index_strided, TestPattern, VideoSource,
};
use ::openh264::formats::YUVSource;
use onair_testkit::SCHEDULING_SLACK;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::{Duration, Instant};

fn cfg(width: u32, height: u32, bitrate_bps: u32) -> VideoEncoderConfig {
    VideoEncoderConfig {
        width,
        height,
        fps: 30,
        bitrate_bps,
        keyint_secs: 1.0,
        encoder: EncoderSettings::named(EncoderKind::OpenH264),
    }
}

/// Splits AVCC data into NAL units, checking the framing is exact.
fn walk_avcc(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        assert!(rest.len() >= 4, "truncated length prefix");
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        assert!(len > 0 && rest.len() >= 4 + len, "bad NAL length {len}");
        out.push(&rest[4..4 + len]);
        rest = &rest[4 + len..];
    }
    out
}

/// SPS and PPS out of the parameters' `avcC`.
fn sps_pps(params: &VideoParams) -> (bytes::Bytes, bytes::Bytes) {
    crate::codec_config::avc_parameter_sets(&params.config).expect("avcC with SPS and PPS")
}

fn annexb(params: &VideoParams, pkt: &EncodedPacket) -> Vec<u8> {
    let mut v = Vec::new();
    if pkt.keyframe {
        let (sps, pps) = sps_pps(params);
        for ps in [&sps, &pps] {
            v.extend_from_slice(&[0, 0, 0, 1]);
            v.extend_from_slice(ps);
        }
    }
    for nal in walk_avcc(&pkt.data) {
        v.extend_from_slice(&[0, 0, 0, 1]);
        v.extend_from_slice(nal);
    }
    v
}

#[test]
fn sps_pps_known_after_new() {
    let enc = VideoEncoder::new(cfg(640, 360, 1_000_000)).unwrap();
    let p = enc.params();
    let (sps, pps) = sps_pps(p);
    assert_eq!(sps[0] & 0x1f, NAL_SPS);
    assert_eq!(pps[0] & 0x1f, NAL_PPS);
    // profile_idc 66 (Baseline); level >= 4.2.
    assert_eq!(sps[1], 66);
    assert!(sps[3] >= 42, "level {}", sps[3]);
    assert_eq!(
        (p.width, p.height, p.fps, p.bitrate_bps),
        (640, 360, 30, 1_000_000)
    );
}

#[test]
fn level_fits_size_and_rate() {
    let mut c = cfg(1920, 1080, 6_000_000);
    c.fps = 60;
    let enc = VideoEncoder::new(c).unwrap();
    assert_eq!(sps_pps(enc.params()).0[3], 42);
    let enc = VideoEncoder::new(cfg(3840, 2160, 20_000_000)).unwrap();
    assert!(sps_pps(enc.params()).0[3] >= 51);
}

#[test]
fn sps_unchanged_by_bitrate_changes_and_idr() {
    let mut enc = VideoEncoder::new(cfg(320, 240, 500_000)).unwrap();
    let mut pat = TestPattern::new(320, 240);
    for (i, bps) in [(0u64, 8_000_000u32), (10, 100_000), (20, 45_000_000)] {
        enc.set_bitrate(bps).unwrap();
        enc.force_idr();
        bytes_over(&mut enc, &mut pat, i, 10);
    }
    assert_eq!(enc.param_set_changes(), 0);
}

#[test]
fn rejects_bad_config() {
    assert!(VideoEncoder::new(cfg(641, 360, 1_000_000)).is_err());
    assert!(VideoEncoder::new(cfg(640, 360, 10)).is_err());
    let mut c = cfg(640, 360, 1_000_000);
    c.fps = 0;
    assert!(VideoEncoder::new(c).is_err());
}

#[test]
fn first_packet_is_avcc_keyframe_and_gop_is_keyint() {
    let mut enc = VideoEncoder::new(cfg(320, 240, 500_000)).unwrap();
    let mut pat = TestPattern::new(320, 240);
    let fps = crate::clock::Rate::per_second(30);
    let mut keys = Vec::new();
    for i in 0..95u64 {
        let f = pat.grab(i, fps.time_of(i)).unwrap();
        let pkt = enc
            .encode(&f, fps.time_of(i))
            .unwrap()
            .pop()
            .expect("no frame skipping");
        assert_eq!(pkt.kind, MediaKind::Video);
        assert_eq!(pkt.pts_ns, fps.time_of(i));
        assert_eq!(pkt.dts_ns, pkt.pts_ns);
        let nals = walk_avcc(&pkt.data);
        assert!(nals
            .iter()
            .all(|n| !matches!(n[0] & 0x1f, NAL_SPS | NAL_PPS)));
        let has_idr = nals.iter().any(|n| n[0] & 0x1f == NAL_IDR);
        assert_eq!(pkt.keyframe, has_idr);
        assert!(
            !pkt.disposable,
            "single temporal layer: every frame is a reference"
        );
        if pkt.keyframe {
            keys.push(i);
        }
    }
    assert_eq!(keys, vec![0, 30, 60, 90]);
}

#[test]
fn force_idr_mid_gop() {
    let mut enc = VideoEncoder::new(cfg(320, 240, 500_000)).unwrap();
    let mut pat = TestPattern::new(320, 240);
    let mut keys = Vec::new();
    for i in 0..45u64 {
        if i == 7 {
            enc.force_idr();
        }
        let f = pat.render(i);
        if enc
            .encode(&f, i * 33_333_333)
            .unwrap()
            .pop()
            .unwrap()
            .keyframe
        {
            keys.push(i);
        }
    }
    // The IDR period restarts at the forced IDR.
    assert_eq!(keys, vec![0, 7, 37]);
}

#[test]
fn control_applies_idr_and_bitrate() {
    let mut enc = VideoEncoder::new(cfg(320, 240, 500_000)).unwrap();
    let ctl = test_control(500_000);
    let other = ctl.clone();
    other.request_idr();
    other.bitrate().set_ceiling(800_000);
    ctl.apply(&mut enc);
    assert_eq!(enc.bitrate_bps(), 800_000);
    assert_eq!(ctl.bitrate().current(), 800_000);
    assert!(!ctl.take_idr_request());
    // A wish below the ceiling is followed; the floor bounds it.
    let wish = ctl.bitrate().register();
    wish.set(60_000);
    ctl.apply(&mut enc);
    assert_eq!(enc.bitrate_bps(), 100_000, "held at the floor");
}

fn test_control(ceiling: u32) -> VideoControl {
    VideoControl::new(Arc::new(VideoBitrate::new(ceiling, 100_000, true)))
}

#[test]
fn wrong_size_frame_is_an_error() {
    let mut enc = VideoEncoder::new(cfg(320, 240, 500_000)).unwrap();
    assert!(enc.encode(&I420Frame::black(640, 360), 0).is_err());
}

fn bytes_over(enc: &mut VideoEncoder, pat: &mut TestPattern, from: u64, n: u64) -> usize {
    (from..from + n)
        .map(|i| {
            let f = pat.render(i);
            enc.encode(&f, i * 1_000_000_000 / 30)
                .unwrap()
                .pop()
                .unwrap()
                .data
                .len()
        })
        .sum()
}

#[test]
fn set_bitrate_changes_output_size() {
    let mut enc = VideoEncoder::new(cfg(640, 360, 500_000)).unwrap();
    let mut pat = TestPattern::new(640, 360);
    // Let the rate control settle, then measure 60 frames (2 s) at each rate.
    bytes_over(&mut enc, &mut pat, 0, 30);
    let low = bytes_over(&mut enc, &mut pat, 30, 60);
    enc.set_bitrate(4_000_000).unwrap();
    bytes_over(&mut enc, &mut pat, 90, 30);
    let high = bytes_over(&mut enc, &mut pat, 120, 60);
    enc.set_bitrate(500_000).unwrap();
    bytes_over(&mut enc, &mut pat, 180, 30);
    let low2 = bytes_over(&mut enc, &mut pat, 210, 60);
    eprintln!("2 s at 500k: {low} B, at 4000k: {high} B, back at 500k: {low2} B");
    assert!(high > 2 * low, "low {low} high {high}");
    assert!(high > 2 * low2, "low2 {low2} high {high}");
    // Rate control roughly honours the target (500 kbit/s * 2 s = 125 kB).
    assert!(low < 250_000, "{low}");
}

#[test]
fn decodes_back_with_frame_index() {
    let (w, h) = (640u32, 360u32);
    let mut enc = VideoEncoder::new(cfg(w, h, 1_000_000)).unwrap();
    let mut pat = TestPattern::new(w, h);
    let mut dec = ::openh264::decoder::Decoder::new().unwrap();
    let mut decoded = Vec::new();
    for i in 0..40u64 {
        let f = pat.render(i + 1000);
        let pkt = enc.encode(&f, i * 33_333_333).unwrap().pop().unwrap();
        if let Some(yuv) = dec.decode(&annexb(enc.params(), &pkt)).unwrap() {
            let (dw, dh) = yuv.dimensions();
            assert_eq!((dw as u32, dh as u32), (w, h));
            let stride = yuv.strides().0;
            decoded.push(decode_frame_index_strided(yuv.y(), w, h, stride));
        }
    }
    assert!(decoded.len() >= 30, "decoded {}", decoded.len());
    let first = decoded[0].expect("index readable");
    for (k, idx) in decoded.iter().enumerate() {
        assert_eq!(*idx, Some(first + k as u64));
    }
    assert!((1000..1010).contains(&first));
}

/// What the integration tests do: FFmpeg decodes the stream to grey
/// frames, `decode_frame_index` reads each one. 720p at 2.5 Mbit/s.
#[test]
fn ffmpeg_reads_frame_indices_at_streaming_bitrate() {
    if !onair_testkit::require_tools(&["ffmpeg"]) {
        return;
    }
    // Streaming default, and the smallest size at a starved bitrate.
    for (w, h, bps) in [(1280u32, 720u32, 2_500_000u32), (160, 120, 100_000)] {
        let mut enc = VideoEncoder::new(cfg(w, h, bps)).unwrap();
        let mut pat = TestPattern::new(w, h);
        let n = 90u64;
        let mut stream = Vec::new();
        for i in 0..n {
            let f = pat.render(i + 5000);
            let pkt = enc.encode(&f, i * 33_333_333).unwrap().pop().unwrap();
            stream.extend(annexb(enc.params(), &pkt));
        }
        let gray = onair_testkit::ffmpeg::decode_elementary(
            &stream,
            "h264",
            &["-f", "rawvideo", "-pix_fmt", "gray"],
        )
        .expect("FFmpeg decodes the H.264 cleanly");
        let frame_len = (w * h) as usize;
        let frames: Vec<_> = gray.chunks_exact(frame_len).collect();
        assert_eq!(frames.len() as u64, n);
        for (k, luma) in frames.iter().enumerate() {
            assert_eq!(
                decode_frame_index(luma, w, h),
                Some(5000 + k as u64),
                "{w}x{h} frame {k}"
            );
        }
    }
}

#[derive(Default)]
struct Collect(Mutex<Vec<EncodedPacket>>);
impl PacketSink for Collect {
    fn push(&self, packet: EncodedPacket) {
        self.0.lock().unwrap().push(packet);
    }
}

#[test]
fn encoder_thread_runs_until_disconnect() {
    let enc = VideoEncoder::new(cfg(320, 240, 500_000)).unwrap();
    let (tx, rx) = crossbeam_channel::bounded(1);
    let sink = Arc::new(Collect::default());
    let counters = Arc::new(EngineCounters::default());
    let ctl = test_control(500_000);
    let h = spawn_encoder_thread(enc, rx, ctl.clone(), sink.clone(), counters.clone()).unwrap();
    let mut pat = TestPattern::new(320, 240);
    for i in 0..10u64 {
        if i == 5 {
            // Once frames 0-4 are out, the request lands on the next frame
            // (waiting makes that deterministic: the thread may otherwise hold
            // one frame taken and one queued when the request is made).
            let deadline = Instant::now() + SCHEDULING_SLACK * 20;
            while sink.0.lock().unwrap().len() < 5 {
                assert!(Instant::now() < deadline, "frames 0-4 not encoded");
                std::thread::sleep(Duration::from_millis(1));
            }
            ctl.request_idr();
        }
        let frame = pat.render(i);
        tx.send(CapturedFrame {
            index: i,
            pts_ns: i * 1000,
            frame,
            duplicate: false,
        })
        .unwrap();
    }
    // A wrong-size frame is counted skipped, not a panic.
    tx.send(CapturedFrame {
        index: 10,
        pts_ns: 10_000,
        frame: Arc::new(I420Frame::black(64, 64)),
        duplicate: false,
    })
    .unwrap();
    drop(tx);
    h.join().unwrap();
    let got = sink.0.lock().unwrap();
    assert_eq!(got.len(), 10);
    assert_eq!(counters.video_packets_encoded.load(Ordering::Relaxed), 10);
    assert_eq!(counters.video_frames_skipped.load(Ordering::Relaxed), 1);
    let keys: Vec<_> = (0..10).filter(|&i| got[i].keyframe).collect();
    assert_eq!(keys, vec![0, 5]);
}

#[test]
fn long_run_bitrate_follows_target() {
    let (w, h) = (1280u32, 720u32);
    let mut enc = VideoEncoder::new(cfg(w, h, 2_500_000)).unwrap();
    let mut pat = TestPattern::new(w, h);
    bytes_over(&mut enc, &mut pat, 0, 60);
    let secs = 8u64;
    let bytes = bytes_over(&mut enc, &mut pat, 60, 30 * secs);
    let kbps = bytes as f64 * 8.0 / secs as f64 / 1000.0;
    eprintln!("720p30 target 2500 kbit/s: measured {kbps:.0} kbit/s over {secs} s");
    assert!((1500.0..3500.0).contains(&kbps), "{kbps}");
}

/// The whole video engine live: TestPattern -> CaptureThread -> encoder
/// thread -> sink, decoded back: every packet's pixels carry the index its
/// pts says, and keyframes arrive every keyint.
#[test]
fn live_pipeline_pts_match_pixels() {
    use crate::clock::{MasterClock, Rate};
    use crate::video::capture::CaptureThread;
    let (w, h) = (640u32, 360u32);
    let fps = Rate::per_second(30);
    let enc = VideoEncoder::new(cfg(w, h, 1_000_000)).unwrap();
    let params = enc.params().clone();
    let (tx, rx) = crossbeam_channel::bounded(1);
    let sink = Arc::new(Collect::default());
    let counters = Arc::new(EngineCounters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let enc_thread = spawn_encoder_thread(
        enc,
        rx,
        test_control(500_000),
        sink.clone(),
        counters.clone(),
    )
    .unwrap();
    let cap = CaptureThread::spawn(
        MasterClock::start(),
        fps,
        Box::new(TestPattern::new(w, h)),
        tx,
        counters.clone(),
        stop.clone(),
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1200));
    stop.store(true, Ordering::Release);
    cap.join();
    enc_thread.join().unwrap();
    let packets = sink.0.lock().unwrap();
    assert!(packets.len() >= 30, "{} packets", packets.len());
    assert!(packets[0].keyframe);
    let mut dec = ::openh264::decoder::Decoder::new().unwrap();
    for pkt in packets.iter() {
        // time_of rounds down, so look 1 ns later to land inside the slot.
        let index = fps.expected_frames(pkt.pts_ns + 1);
        assert_eq!(fps.time_of(index), pkt.pts_ns);
        let yuv = dec
            .decode(&annexb(&params, pkt))
            .unwrap()
            .expect("no decoder delay");
        let got = decode_frame_index_strided(yuv.y(), w, h, yuv.strides().0);
        assert_eq!(got, Some(index));
    }
    let encoded = counters.video_packets_encoded.load(Ordering::Relaxed);
    assert_eq!(encoded, packets.len() as u64);
}

// Encode speed is a benchmark, not a test: `examples/encode_speed`
// (docs/benchmarks.md) measures it in thread CPU time.

#[test]
fn openh264_input_queue_is_one_frame() {
    let enc = VideoEncoder::new(cfg(64, 64, 300_000)).expect("openh264");
    assert_eq!(enc.input_queue_frames(), 1);
}
