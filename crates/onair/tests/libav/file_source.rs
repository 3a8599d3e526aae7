//! The file source against real files made by the FFmpeg CLI: onair's test
//! pattern (its frame number in the pixels) encoded with libx264, and a sine
//! encoded with AAC at another rate and channel count than the engine's.

use onair::audio::engine::{AudioEngine, PcmChunk};
use onair::audio::source::AudioSource;
use onair::clock::{MasterClock, Rate};
use onair::stats::EngineCounters;
use onair::video::capture::{CaptureThread, CapturedFrame};
use onair::video::file::*;
use onair::video::source::VideoSource;
use onair::video::source::{decode_frame_index, TestPattern};
use onair::{FileSpec, InputState};
use onair_testkit::ffmpeg::{make_clip, Clip};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Clip: 320x240 at 30 fps, 45 frames (1.5 s), a 1 kHz sine, mono 44.1 kHz.
const CLIP_W: u32 = 320;
const CLIP_H: u32 = 240;
const CLIP_FPS: u32 = 30;
const CLIP_FRAMES: u32 = 45;
const TONE_HZ: u32 = 1000;
/// The pipeline's size: twice the clip's, so the frame number stays readable
/// (its blocks scale with the width, and the aspect is the same).
const OUT: (u32, u32) = (640, 480);

fn clip(faststart: bool) -> Clip {
    let mut c = Clip::h264_aac(CLIP_W, CLIP_H, CLIP_FPS, CLIP_FRAMES);
    c.tone_hz = Some(TONE_HZ);
    c.sample_rate = 44_100;
    c.channels = 1;
    c.output_args.extend(["-b:a".into(), "96k".into()]);
    if faststart {
        c.output_args
            .extend(["-movflags".into(), "+faststart".into()]);
    }
    c
}

/// Encodes `clip` of `pattern`'s pictures (frame numbers 0, 1, ...) into `path`.
fn make_pattern_clip(path: &Path, clip: &Clip, mut pattern: TestPattern) {
    let pattern = std::cell::RefCell::new(&mut pattern);
    make_clip(path, clip, |i| {
        let f = pattern.borrow_mut().render(u64::from(i));
        [f.y.as_slice(), &f.u, &f.v].concat()
    })
    .expect("ffmpeg makes the clip");
}

/// Makes the clip in `dir`, or None (skipped, or failed under CI) without ffmpeg.
fn make(dir: &Path, name: &str, faststart: bool) -> Option<PathBuf> {
    if !onair_testkit::require_tools(&["ffmpeg"]) {
        return None;
    }
    let path = dir.join(name);
    let pattern = TestPattern::new(CLIP_W, CLIP_H).without_noise();
    make_pattern_clip(&path, &clip(faststart), pattern);
    Some(path)
}

fn spec(path: &Path, looping: bool) -> FileSpec {
    FileSpec {
        path: path.to_path_buf(),
        looping,
    }
}

const BOTH: FileWants = FileWants {
    video: Some(OUT),
    audio: Some((48_000, 2)),
};

/// Real time through the real engines (CaptureThread + AudioEngine), with
/// loop: every picture shows the file frame due at its slot's time (wall
/// time = media time), the file starts again after its end with no stall,
/// and the sound is the file's tone, continuous.
#[test]
fn plays_in_real_time_and_loops_without_a_seam() {
    let _serial = onair_testkit::serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(path) = make(dir.path(), "clip.mp4", false) else {
        return;
    };
    let mut input = FileInput::open(&spec(&path, true), BOTH).expect("opens");
    let status = input.status();
    let counters = Arc::new(EngineCounters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let clock = MasterClock::start();
    let fps = Rate::per_second(CLIP_FPS);
    let (vtx, vrx) = crossbeam_channel::bounded::<CapturedFrame>(1);
    let (atx, arx) = crossbeam_channel::bounded::<PcmChunk>(1024);
    let capture = CaptureThread::spawn(
        clock,
        fps,
        Box::new(input.take_video().expect("video")),
        vtx,
        Arc::clone(&counters),
        Arc::clone(&stop),
    )
    .expect("capture");
    let audio = AudioEngine::spawn(
        clock,
        48_000,
        2,
        Box::new(input.take_audio().expect("audio")),
        atx,
        Arc::clone(&counters),
        Arc::clone(&stop),
    )
    .expect("audio engine");
    // 1.5 s clip, 3.4 s run: two seams.
    let run = Duration::from_millis(3400);
    let started = Instant::now();
    let mut frames = Vec::new();
    while started.elapsed() < run {
        if let Ok(f) = vrx.recv_timeout(Duration::from_millis(50)) {
            frames.push(f);
        }
    }
    stop.store(true, Ordering::Release);
    capture.join();
    audio.join();
    let pass_ns = u64::from(CLIP_FRAMES) * 1_000_000_000 / u64::from(CLIP_FPS);
    let mut off_by_more_than_one = 0;
    let mut seams = 0;
    let mut prev: Option<u64> = None;
    for f in &frames {
        let idx = decode_frame_index(&f.frame.y, OUT.0, OUT.1)
            .unwrap_or_else(|| panic!("slot {}: no frame number in the picture", f.index));
        // The frame of the file due at this slot's time.
        let due = (f.pts_ns % pass_ns) * u64::from(CLIP_FPS) / 1_000_000_000;
        if idx.abs_diff(due) > 1 && idx.abs_diff(due) < u64::from(CLIP_FRAMES) - 1 {
            off_by_more_than_one += 1;
        }
        if prev.is_some_and(|p| idx < p) {
            seams += 1;
            assert!(
                idx <= 1,
                "after the end the file starts again at 0, got {idx}"
            );
        }
        prev = Some(idx);
    }
    let dup = counters.video_frames_duplicated.load(Ordering::Relaxed);
    let silence = counters.audio_silence_samples.load(Ordering::Relaxed);
    let pcm: Vec<i16> = arx
        .try_iter()
        .flat_map(|c| c.samples.into_iter().step_by(2))
        .collect();
    let seconds = pcm.len() as f64 / 48_000.0;
    let p =
        |from: f64, to: f64, hz: f64| onair_testkit::ffmpeg::band_power(&pcm, 48_000, from, to, hz);
    eprintln!(
        "{} pictures in {run:?}, {seams} seams, {} loops, {dup} duplicated, {off_by_more_than_one} off the clock; \
         {seconds:.2} s of sound, {silence} silent frames, 1 kHz power {:.3} (0.2..3.2 s), 700 Hz {:.4}, padded {}",
        frames.len(),
        status.loops(),
        p(0.2, 3.2, 1000.0),
        p(0.2, 3.2, 700.0),
        status.padded_audio_frames()
    );
    assert!(
        frames.len() >= 90,
        "{} pictures in 3.4 s at 30 fps",
        frames.len()
    );
    assert!(seams >= 2, "the file looped twice: {seams}");
    assert!(status.loops() >= 2);
    assert_eq!(status.state(), InputState::Live);
    assert!(
        off_by_more_than_one <= 3,
        "{off_by_more_than_one} pictures not the one due at their time"
    );
    assert!(dup <= 5, "{dup} duplicated: the decoder fell behind");
    // The sine is there across both seams, and nothing else.
    // The file's tone, at its level (mono spread on two channels at -3 dB
    // by FFmpeg's rematrix: half its power on each), before and after the
    // first seam.
    let file_pcm = onair_testkit::ffmpeg::audio_pcm(&path).expect("ffmpeg decodes the clip");
    let file_power = onair_testkit::ffmpeg::band_power(&file_pcm, 48_000, 0.1, 1.4, 1000.0);
    for (from, to) in [(0.1, 1.4), (1.6, 2.9)] {
        let tone = p(from, to, f64::from(TONE_HZ));
        assert!(
            (0.35..0.65).contains(&(tone / file_power)),
            "{from}..{to} s: 1 kHz power {tone}, the file's {file_power}"
        );
        assert!(
            p(from, to, 700.0) < tone / 50.0,
            "{from}..{to} s: not a clean tone"
        );
    }
    // No gap at the seams: the longest near-silent run is the file's own
    // end (AAC pads its last frame: at most 1024 samples at 44.1 kHz).
    let mut run = 0usize;
    let mut longest = 0usize;
    for &s in &pcm[4_800..] {
        run = if s.unsigned_abs() < 50 { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    eprintln!("file 1 kHz power {file_power:.4}; longest near-silent run {longest} samples");
    assert!(longest <= 1_440, "a gap of {longest} samples in the sound");
    // Silence only while the engine started (at most a tick or two).
    assert!(silence <= 2_000, "{silence} silent frames");
}

/// Plays the file on a clock running as fast as the decoder allows: one
/// picture slot at a time, the audio of that slot read only as far as it is
/// decoded (nothing is late, so nothing is skipped). What the tests of the
/// end and of failures need, in a fraction of real time. Returns the frame
/// numbers shown (each once) and the audio frames read.
fn drain_fast(input: &mut FileInput, limit: Duration) -> (Vec<u64>, usize) {
    let status = input.status();
    let mut video = input.take_video().expect("video");
    let mut audio = input.take_audio().expect("audio");
    let started = Instant::now();
    let mut indices = Vec::new();
    let mut audio_frames = 0usize;
    let mut buf = vec![0.0f32; 480 * 2];
    let mut slot = 0u64;
    while started.elapsed() < limit && status.state() == InputState::Live {
        let pts = slot * 1_000_000_000 / u64::from(CLIP_FPS);
        let Some(f) = video.grab(slot, pts) else {
            // The decoder has not got there yet: same slot again.
            std::thread::sleep(Duration::from_millis(1));
            continue;
        };
        if let Some(i) = decode_frame_index(&f.y, OUT.0, OUT.1) {
            if indices.last() != Some(&i) {
                indices.push(i);
            }
        }
        let target = ((slot + 1) * 48_000 / u64::from(CLIP_FPS)) as usize;
        while audio_frames < target && started.elapsed() < limit {
            let there = audio.buffered_samples() / 2;
            if there == 0 {
                if status.finished() {
                    // The end: one short read tells the source so.
                    audio_frames += audio.read(&mut buf);
                    break;
                }
                if !matches!(status.state(), InputState::Live) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            let n = there.min(target - audio_frames).min(480);
            audio_frames += audio.read(&mut buf[..2 * n]);
        }
        slot += 1;
    }
    (indices, audio_frames)
}

/// Without loop the input ends once everything was given: every frame once,
/// the sound as long as the pictures.
#[test]
fn ends_cleanly_without_loop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(path) = make(dir.path(), "clip.mp4", false) else {
        return;
    };
    let mut input = FileInput::open(&spec(&path, false), BOTH).expect("opens");
    let status = input.status();
    let (indices, audio_frames) = drain_fast(&mut input, Duration::from_secs(10));
    eprintln!(
        "{} pictures, {audio_frames} audio frames, state {:?}",
        indices.len(),
        status.state()
    );
    assert_eq!(status.state(), InputState::Ended);
    let expected: Vec<u64> = (0..u64::from(CLIP_FRAMES)).collect();
    assert_eq!(indices, expected, "every frame of the file, in order");
    // 1.5 s at 48 kHz (the AAC's own framing may add a frame or so).
    assert!(
        (72_000..=74_000).contains(&audio_frames),
        "{audio_frames} audio frames"
    );
    // Sound alone (the pictures' packets skipped) is decoded too.
    let wants = FileWants {
        video: None,
        audio: Some((48_000, 2)),
    };
    let mut only_audio = FileInput::open(&spec(&path, false), wants).expect("audio only");
    assert!(only_audio.take_video().is_none());
    let a = only_audio.take_audio().expect("audio");
    let got = onair_testkit::wait_for(Duration::from_secs(5), || {
        (a.buffered_samples() >= 14_400).then_some(())
    });
    assert!(got.is_some(), "{} samples decoded", a.buffered_samples());
}

/// A file cut short: a clear error naming the file and what failed, after
/// what could be played; no panic, no hang.
#[test]
fn truncated_file_fails_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(path) = make(dir.path(), "whole.mp4", true) else {
        return;
    };
    let bytes = std::fs::read(&path).expect("read");
    let cut = dir.path().join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    let mut input = FileInput::open(&spec(&cut, true), BOTH).expect("the index is intact");
    let status = input.status();
    let started = Instant::now();
    let (indices, _) = drain_fast(&mut input, Duration::from_secs(10));
    let InputState::Failed(why) = status.state() else {
        panic!("a truncated file must fail, got {:?}", status.state());
    };
    eprintln!(
        "failed after {} pictures in {:?}: {why}",
        indices.len(),
        started.elapsed()
    );
    assert!(why.contains("cut.mp4"), "names the file: {why}");
    assert!(why.contains("truncated"), "says what failed: {why}");
    assert!(!indices.is_empty(), "what was there was played");

    // Cut before the index (moov at the end): refused when opened.
    let plain = make(dir.path(), "plain.mp4", false).expect("made once already");
    let bytes = std::fs::read(&plain).expect("read");
    let cut = dir.path().join("no-index.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    let err = FileInput::open(&spec(&cut, false), BOTH)
        .err()
        .expect("refused");
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(
        msg.contains("no-index.mp4") && msg.contains("media file"),
        "{msg}"
    );

    // Not there at all.
    let msg = FileInput::open(&spec(&dir.path().join("missing.mp4"), false), BOTH)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        msg.contains("missing.mp4") && msg.contains("No such file"),
        "{msg}"
    );
}

/// Asking for audio from a file without any: a clear error at open.
#[test]
fn a_missing_stream_is_refused_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    if !onair_testkit::require_tools(&["ffmpeg"]) {
        return;
    }
    let path = dir.path().join("silent.mkv");
    let mut c = clip(false);
    c.tone_hz = None;
    c.frames = 5;
    make_pattern_clip(&path, &c, TestPattern::new(CLIP_W, CLIP_H));
    let msg = FileInput::open(&spec(&path, false), BOTH)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        msg.contains("silent.mkv") && msg.contains("no audio stream"),
        "{msg}"
    );
    // Video alone is fine.
    let mut only_video = FileInput::open(
        &spec(&path, false),
        FileWants {
            video: Some(OUT),
            audio: None,
        },
    )
    .expect("video only");
    assert!(only_video.take_audio().is_none());
    assert!(only_video.take_video().is_some());
}
