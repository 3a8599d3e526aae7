//! The libavcodec backends through the VideoEncoder interface. FFmpeg's CLI
//! judges what a viewer would decode.

use onair::clock::Rate;
use onair::codec_config;
use onair::packet::{EncodedPacket, VideoParams};
use onair::video::encoder::{
    list_encoders, EncoderKind, EncoderSettings, VideoCodec, VideoEncoder, VideoEncoderConfig,
};
use onair::video::frame::I420Frame;
use onair::video::source::{decode_frame_index, TestPattern};
use std::sync::Arc;

/// H.264 `nal_unit_type`s (ITU-T H.264 table 7-1): IDR slice, SPS, PPS.
const H264_IDR: u8 = 5;
const H264_SPS: u8 = 7;
const H264_PPS: u8 = 8;
/// The device node NVIDIA's driver creates; without it NVENC cannot open.
const NVIDIA_CONTROL_DEVICE: &str = "/dev/nvidiactl";

fn cfg(kind: EncoderKind, w: u32, h: u32, bps: u32) -> VideoEncoderConfig {
    VideoEncoderConfig {
        width: w,
        height: h,
        fps: 30,
        bitrate_bps: bps,
        keyint_secs: 1.0,
        encoder: EncoderSettings::named(kind),
    }
}

/// Encodes frames `from..from+n` of the test pattern at their capture
/// times; with `flush`, drains the encoder at the end.
fn encode_range(
    enc: &mut VideoEncoder,
    pat: &mut TestPattern,
    from: u64,
    n: u64,
    flush: bool,
) -> Vec<EncodedPacket> {
    let rate = Rate::per_second(30);
    let mut out = Vec::new();
    for i in from..from + n {
        out.extend(enc.encode(&pat.render(i), rate.time_of(i)).expect("encode"));
    }
    if flush {
        out.extend(enc.flush().expect("flush"));
    }
    out
}

/// The frame slots (counted from `offset_ns`) of the keyframes, in order.
fn key_slots(packets: &[EncodedPacket], rate: Rate, offset_ns: u64) -> Vec<u64> {
    let mut keys: Vec<u64> = packets
        .iter()
        .filter(|p| p.keyframe)
        .map(|p| rate.expected_frames(p.pts_ns - offset_ns))
        .collect();
    keys.sort_unstable();
    keys
}

/// The calling thread's scheduling policy (`SCHED_OTHER`, `SCHED_FIFO`, ...).
fn own_policy() -> i32 {
    // SAFETY: FFI edge: sched_getscheduler(0) only reads the calling thread's
    // policy.
    unsafe { libc::sched_getscheduler(0) }
}

/// Length-prefixed H.264 to Annex B, parameter sets before the first packet.
fn annexb(params: &VideoParams, packets: &[EncodedPacket]) -> Vec<u8> {
    let mut v = Vec::new();
    let (sps, pps) = sps_pps(params);
    for ps in [&sps, &pps] {
        v.extend_from_slice(&[0, 0, 0, 1]);
        v.extend_from_slice(ps);
    }
    for p in packets {
        let mut rest = &p.data[..];
        while rest.len() >= 4 {
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            v.extend_from_slice(&[0, 0, 0, 1]);
            v.extend_from_slice(&rest[4..4 + len]);
            rest = &rest[4 + len..];
        }
        assert!(rest.is_empty(), "bad length prefix");
    }
    v
}

/// FFmpeg decodes the stream to grey frames; returns each frame's index
/// (in presentation order) and asserts it printed no error.
fn ffmpeg_frame_indices(stream: &[u8], w: u32, h: u32) -> Option<Vec<Option<u64>>> {
    if !onair_testkit::require_tools(&["ffmpeg"]) {
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.h264");
    std::fs::write(&input, stream).expect("write");
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-f", "h264", "-i"])
        .arg(&input)
        .args(["-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .expect("ffmpeg");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.is_empty(), "{stderr}");
    let frame_len = (w * h) as usize;
    Some(
        out.stdout
            .chunks_exact(frame_len)
            .map(|l| decode_frame_index(l, w, h))
            .collect(),
    )
}

#[test]
fn x264_high_with_bframes_gives_every_frame_in_order() {
    let (w, h) = (640, 360);
    let mut c = cfg(EncoderKind::X264, w, h, 1_000_000);
    c.encoder.bframes = Some(3);
    let mut enc = VideoEncoder::new(c).expect("x264 opens");
    assert!(enc.holds_frames());
    let p = enc.params().clone();
    let (sps, pps) = sps_pps(&p);
    assert_eq!(sps[0] & 0x1f, H264_SPS);
    assert_eq!(pps[0] & 0x1f, H264_PPS);
    assert_eq!(sps[1], 100, "High profile (x264's default)");
    let offset = enc.timeline_offset_ns();
    let rate = Rate::per_second(30);
    assert_eq!(
        offset,
        rate.time_of(2),
        "B-pyramid: two frames of reorder delay"
    );
    let mut pat = TestPattern::new(w, h);
    let n = 75u64;
    let packets = encode_range(&mut enc, &mut pat, 500, n, true);
    assert_eq!(
        packets.len() as u64,
        n,
        "one packet per frame after the flush"
    );
    assert_eq!(enc.negative_dts(), 0);
    assert!(packets[0].keyframe);
    // Every capture time comes back once, shifted by the offset.
    let mut pts: Vec<u64> = packets.iter().map(|p| p.pts_ns - offset).collect();
    pts.sort_unstable();
    let want: Vec<u64> = (500..500 + n).map(|i| rate.time_of(i)).collect();
    assert_eq!(pts, want);
    // Decode order: dts strictly increasing, never after pts; B-frames reorder.
    for w2 in packets.windows(2) {
        assert!(w2[1].dts_ns > w2[0].dts_ns, "dts not increasing");
    }
    assert!(packets.iter().all(|p| p.dts_ns <= p.pts_ns));
    let reordered = packets
        .windows(2)
        .filter(|w2| w2[1].pts_ns < w2[0].pts_ns)
        .count();
    assert!(reordered > 5, "B-frames expected, {reordered} reorderings");
    let disposable = packets.iter().filter(|p| p.disposable).count();
    assert!(
        disposable > 5,
        "non-reference B-frames expected, got {disposable}"
    );
    assert!(packets.iter().filter(|p| p.disposable).all(|p| !p.keyframe));
    // Keyframes are IDRs, at most keyint (30 frames) apart; x264 may place
    // one a little early to end a B-frame run (min-keyint 25).
    let keys = key_slots(&packets, rate, offset);
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert_eq!(keys[0], 500);
    assert!(
        keys.windows(2).all(|k| (25..=30).contains(&(k[1] - k[0]))),
        "{keys:?}"
    );
    for k in packets.iter().filter(|p| p.keyframe) {
        assert!(annexb(&p, std::slice::from_ref(k))
            .windows(5)
            .any(|w5| w5[..4] == [0, 0, 0, 1] && w5[4] & 0x1f == H264_IDR));
    }
    if let Some(indices) = ffmpeg_frame_indices(&annexb(&p, &packets), w, h) {
        let want: Vec<_> = (500..500 + n).map(Some).collect();
        assert_eq!(indices, want);
    }
}

fn sps_pps(params: &VideoParams) -> (bytes::Bytes, bytes::Bytes) {
    assert_eq!(params.codec, VideoCodec::H264);
    codec_config::avc_parameter_sets(&params.config).expect("avcC")
}

/// The adaptive bitrate controller's lever: a live change of x264's target
/// moves the output size without reopening (no new parameter sets).
#[test]
fn x264_set_bitrate_while_running() {
    let (w, h) = (640, 360);
    let mut enc = VideoEncoder::new(cfg(EncoderKind::X264, w, h, 400_000)).expect("x264");
    let mut pat = TestPattern::new(w, h);
    let bytes = |p: &[EncodedPacket]| p.iter().map(|p| p.data.len()).sum::<usize>();
    encode_range(&mut enc, &mut pat, 0, 30, false);
    let low = bytes(&encode_range(&mut enc, &mut pat, 30, 60, false));
    enc.set_bitrate(3_000_000).expect("set");
    assert_eq!(enc.bitrate_bps(), 3_000_000);
    encode_range(&mut enc, &mut pat, 90, 30, false);
    let high = bytes(&encode_range(&mut enc, &mut pat, 120, 60, false));
    enc.set_bitrate(400_000).expect("set");
    encode_range(&mut enc, &mut pat, 180, 30, false);
    let low2 = bytes(&encode_range(&mut enc, &mut pat, 210, 60, false));
    eprintln!("x264, 2 s at 400k: {low} B, at 3000k: {high} B, back at 400k: {low2} B");
    assert!(high > 3 * low, "low {low} high {high}");
    assert!(high > 3 * low2, "low2 {low2} high {high}");
    assert!(low2 < 2 * 100_000, "back near 400 kbit/s: {low2}");
    assert_eq!(enc.param_set_changes(), 0);
}

#[test]
fn x264_idr_on_request() {
    let (w, h) = (320, 240);
    let mut c = cfg(EncoderKind::X264, w, h, 500_000);
    c.keyint_secs = 10.0;
    let mut enc = VideoEncoder::new(c).expect("x264");
    let offset = enc.timeline_offset_ns();
    let rate = Rate::per_second(30);
    let mut pat = TestPattern::new(w, h);
    let mut packets = Vec::new();
    for i in 0..60u64 {
        if i == 20 || i == 41 {
            enc.force_idr();
        }
        packets.extend(enc.encode(&pat.render(i), rate.time_of(i)).expect("encode"));
    }
    packets.extend(enc.flush().expect("flush"));
    let keys = key_slots(&packets, rate, offset);
    assert_eq!(keys, vec![0, 20, 41]);
}

/// A failing encoder is replaced mid-stream without a gap in the frames,
/// on the same timeline; the replacement's different parameter sets travel
/// in-band, and FFmpeg decodes the whole stream (announced headers first)
/// without an error. No hardware here: the failure is injected into x264
/// (Main profile), and the software fallback is x264 (High).
#[test]
fn injected_failure_falls_back_without_stopping() {
    let (w, h) = (320, 240);
    let mut c = cfg(EncoderKind::X264, w, h, 500_000);
    c.encoder.profile = Some("main".into());
    let mut enc = VideoEncoder::new(c).expect("x264");
    let announced = enc.params().clone();
    assert_eq!(sps_pps(&announced).0[1], 77, "Main");
    let mut pat = TestPattern::new(w, h);
    let mut packets = encode_range(&mut enc, &mut pat, 0, 40, false);
    enc.inject_failure();
    packets.extend(encode_range(&mut enc, &mut pat, 40, 40, true));
    let (from, why) = enc.fell_back_from().expect("fell back").clone();
    assert_eq!(from, EncoderKind::X264);
    assert!(why.contains("injected"), "{why}");
    assert_eq!(enc.param_set_changes(), 1);
    for w2 in packets.windows(2) {
        assert!(
            w2[1].dts_ns > w2[0].dts_ns,
            "dts not increasing across the fallback"
        );
    }
    // Frames held by the "dead" encoder are lost (its look-ahead); from the
    // failed frame on, everything is there.
    let indices = match ffmpeg_frame_indices(&annexb(&announced, &packets), w, h) {
        Some(i) => i,
        None => return,
    };
    assert!(indices.iter().all(Option::is_some));
    let decoded: Vec<u64> = indices.into_iter().flatten().collect();
    assert!(
        decoded.windows(2).all(|w| w[1] > w[0]),
        "out of order: {decoded:?}"
    );
    for i in 40..80 {
        assert!(
            decoded.contains(&i),
            "frame {i} missing after the fallback: {decoded:?}"
        );
    }
}

#[test]
fn x265_and_svtav1_open_and_encode() {
    for kind in [EncoderKind::X265, EncoderKind::SvtAv1] {
        let mut enc = match VideoEncoder::new(cfg(kind, 320, 240, 500_000)) {
            Ok(e) => e,
            Err(e) => panic!("{kind}: {e}"),
        };
        assert_eq!(enc.params().codec, kind.codec());
        let mut pat = TestPattern::new(320, 240);
        let rate = Rate::per_second(30);
        let mut packets = Vec::new();
        for i in 0..30u64 {
            packets.extend(enc.encode(&pat.render(i), rate.time_of(i)).expect("encode"));
        }
        packets.extend(enc.flush().expect("flush"));
        eprintln!(
            "{kind}: {} packets, offset {} ns, first key {}",
            packets.len(),
            enc.timeline_offset_ns(),
            packets[0].keyframe
        );
        assert_eq!(packets.len(), 30, "{kind}");
        assert!(packets[0].keyframe, "{kind}");
    }
}

/// The GPL build picks its software encoders when none is named: x264 for
/// H.264 (the default), SVT-AV1 for AV1, x265 for HEVC.
#[test]
fn codecs_pick_the_gpl_builds_software_encoders() {
    let by_codec = |c| EncoderSettings {
        codec: Some(c),
        ..EncoderSettings::default()
    };
    assert_eq!(
        EncoderSettings::default().resolve().ok(),
        Some(EncoderKind::X264)
    );
    assert_eq!(
        by_codec(VideoCodec::Av1).resolve().ok(),
        Some(EncoderKind::SvtAv1)
    );
    assert_eq!(
        by_codec(VideoCodec::Hevc).resolve().ok(),
        Some(EncoderKind::X265)
    );
}

/// An encoder opened and then dropped, or flushed and dropped, before any
/// frame (the pipeline failed to start after opening it: an output file
/// that exists, a source that does not open) returns: SVT-AV1 hung the
/// process there, waiting for the answer to an end of stream that followed
/// no frame.
#[test]
fn svtav1_unused_encoder_drops_without_hanging() {
    let (done_tx, done_rx) = crossbeam_channel::bounded(2);
    std::thread::spawn(move || {
        let enc = VideoEncoder::new(cfg(EncoderKind::SvtAv1, 320, 240, 500_000)).expect("open");
        drop(enc);
        done_tx.send("dropped").expect("send");
        let mut enc = VideoEncoder::new(cfg(EncoderKind::SvtAv1, 320, 240, 500_000)).expect("open");
        assert!(enc.flush().expect("flush").is_empty());
        drop(enc);
        done_tx.send("flushed and dropped").expect("send");
    });
    for what in ["dropped", "flushed and dropped"] {
        let got = done_rx.recv_timeout(std::time::Duration::from_secs(20));
        assert_eq!(got, Ok(what), "an unused SVT-AV1 encoder {what}: hung");
    }
}

/// Opening SVT-AV1 leaves the opening thread, and the threads started after,
/// at normal scheduling: run by root, SVT-AV1 made them `SCHED_FIFO` 99, and
/// its workers then held the cores for 100+ ms while the CaptureThread
/// waited. Only root can be switched: other users check the same, which
/// holds with or without the fix.
#[test]
fn svtav1_open_keeps_normal_scheduling() {
    let before = own_policy();
    let enc = VideoEncoder::new(cfg(EncoderKind::SvtAv1, 320, 240, 500_000)).expect("open");
    assert_eq!(own_policy(), before, "the opening thread");
    let child = std::thread::spawn(own_policy).join().expect("thread");
    assert_eq!(child, before, "a thread started after the open");
    drop(enc);
}

/// `onair encoders`: software encoders are usable here; hardware ones are
/// probed up to their device and say why not when it is missing.
#[test]
fn probes_say_what_is_usable() {
    let list = list_encoders();
    assert_eq!(list.len(), EncoderKind::ALL.len());
    for s in &list {
        eprintln!("{:<12} {} {}", s.kind, s.usable, s.note);
        if s.kind.hardware().is_none() {
            assert!(s.usable, "{}: {}", s.kind, s.note);
        } else if !s.usable {
            assert!(!s.note.is_empty());
        }
    }
    let vaapi = list
        .iter()
        .find(|s| s.kind == EncoderKind::H264Vaapi)
        .expect("listed");
    if !std::path::Path::new("/dev/dri").exists() {
        assert!(!vaapi.usable);
        assert!(vaapi.note.contains("/dev/dri"), "{}", vaapi.note);
        eprintln!("SKIP hardware part: no VA-API device (/dev/dri) on this machine");
    }
    let nvenc = list
        .iter()
        .find(|s| s.kind == EncoderKind::H264Nvenc)
        .expect("listed");
    if !std::path::Path::new(NVIDIA_CONTROL_DEVICE).exists() {
        assert!(!nvenc.usable);
        assert!(nvenc.note.contains("NVIDIA"), "{}", nvenc.note);
        eprintln!("SKIP hardware part: no NVIDIA driver on this machine");
    }
}

/// Zero-copy hand-off: x264 gets each picture's own planes (no copy), the
/// caller drops its `Arc` right after `encode` while the test pattern keeps
/// recycling (and rewriting) every buffer it can, and the decoded stream
/// still shows every frame's own index, in order: a picture is never
/// recycled while libavcodec holds it. Once the encoder is gone, no picture
/// is left alive (each plane's reference was released). A width whose
/// chroma lines are not 16-byte multiples falls back to the copy and
/// decodes the same.
#[test]
fn x264_borrows_shared_pictures_and_releases_them() {
    for (w, h, by_reference) in [(640u32, 360u32, true), (648, 360, false)] {
        let mut c = cfg(EncoderKind::X264, w, h, 1_000_000);
        c.encoder.bframes = Some(3);
        let mut enc = VideoEncoder::new(c).expect("x264 opens");
        let mut pat = TestPattern::new(w, h);
        let rate = Rate::per_second(30);
        let n = 40u64;
        let mut packets = Vec::new();
        let mut released = Vec::new();
        for i in 0..n {
            // A picture of its own (malloc'd planes), as a source hands out.
            let picture = Arc::new(I420Frame::clone(&pat.render(i)));
            released.push(Arc::downgrade(&picture));
            packets.extend(
                enc.encode_shared(&picture, rate.time_of(i))
                    .expect("encode"),
            );
            drop(picture);
            // Rewrites whatever pattern buffer is free meanwhile.
            drop(pat.render(i + 1000));
        }
        packets.extend(enc.flush().expect("flush"));
        let want_by_ref = if by_reference { n } else { 0 };
        assert_eq!(enc.frames_by_reference(), want_by_ref, "{w}x{h}");
        let p = enc.params().clone();
        drop(enc);
        assert!(
            released.iter().all(|w| w.upgrade().is_none()),
            "{w}x{h}: a picture outlived the encoder (a plane reference leaked)"
        );
        assert_eq!(packets.len() as u64, n);
        if let Some(indices) = ffmpeg_frame_indices(&annexb(&p, &packets), w, h) {
            let want: Vec<_> = (0..n).map(Some).collect();
            assert_eq!(indices, want, "{w}x{h}");
        }
    }
}
