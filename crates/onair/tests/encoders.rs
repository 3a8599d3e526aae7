//! The GPL build's encoders end to end (feature `avcodec`): each software
//! encoder through a whole pipeline to a real server and to an MP4 file,
//! judged by FFmpeg; B-frames' timestamps in both containers; and B-frames
//! under a throttled link, where the non-reference ones must go first and
//! the picture must stay intact.
#![cfg(feature = "avcodec")]

mod common;

use common::{
    assert_clean, assert_decodes, config, config_fixed_bitrate, judge, run_script, serial,
    small_buffer_proxy, FPS, HEIGHT, WIDTH,
};
use onair::video::encoder::{EncoderKind, EncoderSettings};
use onair::{FileSpec, RecordConfig, Streamer, VideoSourceSpec};
use onair_testkit::ffmpeg::{self, PacketInfo};
use onair_testkit::nginx::{NginxOptions, NginxRtmp};
use onair_testkit::{output_timeout, require_tools};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const SEC: Duration = Duration::from_secs(1);

fn x264_with_bframes(n: u32) -> EncoderSettings {
    EncoderSettings {
        bframes: Some(n),
        ..EncoderSettings::named(EncoderKind::X264)
    }
}

/// Decode order and composition offsets as a container reports them:
/// dts strictly increasing, pts never before dts, some pts after dts
/// (B-frames), and every pts distinct, on the frame grid, with at most
/// `skipped` slots missing (frames the encoder skipped for lack of CPU).
fn assert_bframe_timestamps(path: &Path, packets: &[PacketInfo], skipped: u64) {
    let label = path.display();
    assert!(
        packets.len() > 60,
        "{label}: {} video packets",
        packets.len()
    );
    let dts: Vec<f64> = packets.iter().map(|p| p.dts_time.expect("dts")).collect();
    let pts: Vec<f64> = packets.iter().map(|p| p.pts_time.expect("pts")).collect();
    assert!(
        dts.windows(2).all(|w| w[1] > w[0]),
        "{label}: dts not increasing"
    );
    assert!(
        pts.iter().zip(&dts).all(|(p, d)| p >= d),
        "{label}: a pts before its dts"
    );
    // x264's adaptive B-frame decision places few on the test pattern (its
    // bottom quarter is fresh noise every frame): some, not many.
    let reordered = pts.windows(2).filter(|w| w[1] < w[0]).count();
    assert!(reordered >= 1, "{label}: no reordering: no B-frames?");
    let mut sorted = pts.clone();
    sorted.sort_by(f64::total_cmp);
    // Whole frame intervals apart (ms rounding in FLV), never the same.
    let step = 1.0 / f64::from(FPS);
    let mut missing = 0u64;
    for w in sorted.windows(2) {
        let slots = (w[1] - w[0]) / step;
        assert!(
            slots > 0.9 && (slots - slots.round()).abs() < 0.1,
            "{label}: pts step {} s",
            w[1] - w[0]
        );
        missing += slots.round() as u64 - 1;
    }
    assert!(
        missing <= skipped,
        "{label}: {missing} frame slots missing, {skipped} skipped"
    );
}

/// x264 (High, 2 B-frames) streams to nginx-rtmp and records to MP4 at the
/// same time: right codec, profile and size, every frame, no decode error,
/// frame numbers in order, and B-frame timestamps right in FLV and MP4.
#[test]
fn x264_with_bframes_to_nginx_and_mp4() {
    if !require_tools(&["nginx", "ffmpeg", "ffprobe"]) {
        return;
    }
    let _serial = serial();
    let nginx = NginxRtmp::start(NginxOptions::default()).expect("nginx");
    let dir = tempfile::tempdir().expect("tempdir");
    let mp4 = dir.path().join("x264.mp4");
    let mut cfg = config(&nginx.url("x264"));
    if let Some(v) = cfg.video.as_mut() {
        v.encoder = x264_with_bframes(2);
    }
    cfg.records.push(RecordConfig::new(&mp4));
    let streamer = Streamer::start(cfg).expect("starts");
    let run = run_script(streamer, 5 * SEC, Vec::new());
    let encoded = run.final_stats.video_frames_captured;
    eprintln!(
        "captured {encoded}, sent {}, skipped {}",
        run.final_stats.video_packets_sent, run.final_stats.video_frames_skipped
    );
    let flv = nginx.stop_and_collect();
    assert_eq!(flv.len(), 1, "one nginx recording: {flv:?}");
    for path in [&flv[0], &mp4] {
        let p = ffmpeg::probe(path).expect("ffprobe");
        let v = p.video().expect("video stream");
        assert_eq!(v.codec_name, "h264", "{}", path.display());
        assert_eq!(v.profile, "High", "{}", path.display());
        assert_eq!((v.width, v.height), (WIDTH, HEIGHT));
        assert_eq!(p.audio().expect("audio").codec_name, "aac");
        let j = judge(path);
        assert_clean(path, &j);
        // Every captured frame, but for the first ones nginx may miss
        // while the session starts, and none invented.
        assert!(
            j.video_frames + 10 >= encoded && j.video_frames <= encoded,
            "{}: {} frames of {encoded}",
            path.display(),
            j.video_frames
        );
        let packets = ffmpeg::packet_times(path, "v").expect("packets");
        assert_bframe_timestamps(path, &packets, run.final_stats.video_frames_skipped);
    }
}

/// A 2 s clip of FFmpeg's `testsrc2` (shapes moving over a still
/// background) at the test size, in MJPEG (the file source decodes it with
/// a fraction of a core). Why not the test pattern: its bottom quarter is
/// fresh noise every frame, on which x264 places almost no B-frames even
/// when told to (measured: 3 in 120 frames with `b-adapt=0`; 88 in 120 on
/// this clip), so a test of disposable frames needs content like this.
fn bframe_friendly_clip(dir: &Path) -> PathBuf {
    let clip = dir.join("testsrc2.mkv");
    let out = output_timeout(
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}"))
            .args(["-t", "2", "-c:v", "mjpeg", "-q:v", "4"])
            .arg(&clip),
        Duration::from_secs(60),
    )
    .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "ffmpeg made no clip: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    clip
}

/// B-frames over a link that carries less than half the bitrate, fixed
/// bitrate (no adaptation, so the muxer must drop): the muxer drops
/// disposable frames alone first (counted apart), then video to the next
/// keyframe, and the recording decodes without an error or a lost
/// reference (no frame_num gap): dropping a non-reference B-frame never
/// breaks the picture. x264 is told to place three non-reference B-frames
/// between references (`b-adapt=0:b-pyramid=none`: three frames in four
/// disposable) on content where it can (the clip above, looped).
#[test]
fn throttled_bframes_drop_disposable_first() {
    if !require_tools(&["nginx", "ffmpeg", "ffprobe"]) {
        return;
    }
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let clip = bframe_friendly_clip(dir.path());
    let nginx = NginxRtmp::start(NginxOptions::default()).expect("nginx");
    let proxy = small_buffer_proxy(nginx.addr());
    let mut cfg = config_fixed_bitrate(&proxy.rtmp_url("slow"));
    if let Some(v) = cfg.video.as_mut() {
        v.source = VideoSourceSpec::File(FileSpec {
            path: clip,
            looping: true,
        });
        v.encoder = x264_with_bframes(3);
        v.encoder.options = vec![("x264-params".into(), "b-adapt=0:b-pyramid=none".into())];
    }
    let streamer = Streamer::start(cfg).expect("starts");
    let run = run_script(
        streamer,
        9 * SEC,
        vec![(2 * SEC, Box::new(|_| proxy.throttle(Some(1_000_000 / 8))))],
    );
    let s = &run.final_stats;
    eprintln!(
        "dropped for congestion {} (disposable {}), audio dropped {}",
        s.video_dropped_congestion, s.video_dropped_disposable, s.audio_frames_dropped
    );
    let first = run
        .samples
        .iter()
        .find(|x| x.stats.video_dropped_congestion > 0)
        .expect("the throttle made no drop");
    let (drops, disposable) = (
        first.stats.video_dropped_congestion,
        first.stats.video_dropped_disposable,
    );
    eprintln!("first drops seen: {drops}, of which disposable {disposable}");
    // The stats are sampled every 10 ms; the disposable band lasts about
    // ten frames before the gate closes, so the first drops seen are
    // disposable ones alone.
    assert!(
        disposable > 0 && disposable == drops,
        "the first drops were not disposable frames alone: {drops} dropped, {disposable} disposable"
    );
    assert!(
        s.video_dropped_disposable >= 3,
        "{} disposable frames dropped",
        s.video_dropped_disposable
    );
    assert!(
        s.video_dropped_congestion > s.video_dropped_disposable,
        "the link carries less than half the bitrate: dropping disposable frames alone cannot be enough"
    );
    assert_eq!(s.audio_frames_dropped, 0, "audio is never dropped first");
    let recs = nginx.stop_and_collect();
    assert!(!recs.is_empty());
    for path in &recs {
        // The clip carries no frame numbers: the decoder judges the picture.
        assert_decodes(path, &judge(path));
    }
}

/// x265 and SVT-AV1 through a whole pipeline (360p, so two busy cores keep
/// real time): streamed over Enhanced RTMP to FFmpeg 9's listener and
/// recorded to MP4 (hvc1 / av01) at once; FFmpeg 9 decodes both with the
/// right codec, size, every frame and no error.
#[test]
fn hevc_and_av1_to_enhanced_rtmp_and_mp4() {
    if !require_tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let Some(ff9) = onair_testkit::ffmpeg9::require_ffmpeg9() else {
        return;
    };
    let _serial = serial();
    for (kind, name) in [(EncoderKind::X265, "hevc"), (EncoderKind::SvtAv1, "av1")] {
        let dir = tempfile::tempdir().expect("tempdir");
        let received = dir.path().join("received.mkv");
        let mp4 = dir.path().join("recorded.mp4");
        let mut listener = onair_testkit::ffmpeg9::listen(&ff9, &received, "x").expect("listener");
        let mut cfg = config(&listener.url());
        if let Some(v) = cfg.video.as_mut() {
            v.width = 640;
            v.height = 360;
            v.bitrate_bps = 800_000;
            v.encoder = EncoderSettings::named(kind);
        }
        cfg.records.push(RecordConfig::new(&mp4));
        let streamer = Streamer::start(cfg).expect("starts");
        let run = run_script(streamer, 4 * SEC, Vec::new());
        let _ = listener.wait(10 * SEC);
        let s = &run.final_stats;
        let encoded = s
            .video_frames_captured
            .saturating_sub(s.video_frames_skipped);
        eprintln!(
            "{kind}: captured {}, skipped {}, sent {}",
            s.video_frames_captured, s.video_frames_skipped, s.video_packets_sent
        );
        assert_eq!(listener.unexpected_stderr(), "", "{kind}: listener");
        // The receiver decodes exactly what was sent (an encoder with a long
        // look-ahead, SVT-AV1, hands its last second over at the stop, which
        // the stream's buffer may drop); the recording holds every frame.
        for (path, want) in [(&received, s.video_packets_sent), (&mp4, encoded)] {
            let v = onair_testkit::ffmpeg9::judge(&ff9, path).expect("judge");
            eprintln!("{kind} {}: {v:?}", path.display());
            assert_eq!(v.codec, name, "{}", path.display());
            assert_eq!(v.errors, "", "{}", path.display());
            assert!(
                v.frames + 3 >= want && v.frames <= s.video_frames_captured,
                "{}: {} frames, {want} expected",
                path.display(),
                v.frames
            );
        }
        let p = ffmpeg::probe(&mp4).expect("ffprobe");
        let v = p.video().expect("video");
        assert_eq!((v.codec_name.as_str(), v.width, v.height), (name, 640, 360));
        assert_eq!(p.audio().expect("audio").codec_name, "aac");
    }
}
