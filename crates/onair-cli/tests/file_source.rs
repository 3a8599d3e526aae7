//! The file source end to end: the `onair` binary plays a clip made by the
//! FFmpeg CLI (onair's test pattern, its frame number in the pixels, and a
//! 1 kHz sine) into a recording, and FFmpeg judges the recording.
//!
//! In a build without libavcodec the same options must be refused as a
//! usage error (exit 2) saying why; the GPL build runs the real thing.

use onair::video::source::{decode_frame_index, TestPattern};
use onair_testkit::ffmpeg::{self, make_clip, Clip};
use onair_testkit::{output_timeout, require_tools, serial};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const W: u32 = 320;
const H: u32 = 240;
const FPS: u32 = 30;
const FRAMES: u32 = 45;

fn onair() -> Command {
    Command::new(onair_testkit::onair_exe(env!("CARGO_BIN_EXE_onair")))
}

fn run(cmd: &mut Command) -> (Output, Duration) {
    let t = Instant::now();
    let out = output_timeout(cmd, Duration::from_secs(30)).expect("onair ran");
    (out, t.elapsed())
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A 1.5 s clip (320x240, 30 fps, libx264 + AAC), index at the front so a
/// cut copy still opens.
fn make(dir: &Path) -> PathBuf {
    let path = dir.join("clip.mp4");
    let mut clip = Clip::h264_aac(W, H, FPS, FRAMES);
    clip.output_args
        .extend(["-movflags".into(), "+faststart".into()]);
    let pattern = std::cell::RefCell::new(TestPattern::new(W, H).without_noise());
    make_clip(&path, &clip, |i| {
        let f = pattern.borrow_mut().render(u64::from(i));
        [f.y.as_slice(), &f.u, &f.v].concat()
    })
    .expect("ffmpeg makes the clip");
    path
}

#[test]
fn a_clip_plays_in_real_time_to_its_end_and_a_cut_one_fails_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    if !onair::FILE_SOURCE {
        // The default build: refused at parse time, saying which build has it.
        let (out, _) = run(onair()
            .args(["record", "x.flv", "--input"])
            .arg(dir.path().join("clip.mp4")));
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains("GPL build"), "{}", stderr(&out));
        let (out, _) = run(onair().args(["record", "x.flv", "--video", "file:clip.mp4"]));
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        return;
    }
    if !require_tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let _serial = serial();
    let clip = make(dir.path());
    let rec = dir.path().join("out.flv");
    let (out, took) = run(onair()
        .args(["record"])
        .arg(&rec)
        .args(["--size", "320x240", "--fps", "30", "--quiet", "--input"])
        .arg(&clip));
    eprintln!("played a 1.5 s clip in {took:?}: {}", stderr(&out));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("played to its end"),
        "{}",
        stderr(&out)
    );
    // Real time: not faster than the clip, and no slower than the clip plus
    // the start and stop of the pipeline (loose: a busy 2-core box).
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(6),
        "{took:?} for a 1.5 s clip"
    );
    let idx: Vec<Option<u64>> =
        ffmpeg::frame_indices(&rec, W, H, decode_frame_index).expect("ffmpeg decodes");
    let idx: Vec<u64> = idx.into_iter().flatten().collect();
    eprintln!("recorded frame numbers: {idx:?}");
    // Every frame of the clip, in order, each once (the output rate is the
    // clip's), save a busy machine's few skips at the encoder; then the last
    // one held for the slots until the pipeline stopped (its main loop
    // looks every 50 ms).
    let last = u64::from(FRAMES - 1);
    let held = idx.iter().rev().take_while(|&&i| i == last).count();
    let played = &idx[..idx.len() - held.saturating_sub(1)];
    assert!(
        (1..=5).contains(&held),
        "last frame held {held} times: {idx:?}"
    );
    assert!(played.windows(2).all(|w| w[1] > w[0]), "{idx:?}");
    assert!(played.first().is_some_and(|&i| i <= 1), "{idx:?}");
    assert!(played.len() >= 42, "{} of 45 frames: {idx:?}", played.len());
    assert_eq!(ffmpeg::decode_errors(&rec).expect("ffmpeg"), "");
    let pcm = ffmpeg::audio_pcm(&rec).expect("audio");
    let [tone, other] = ffmpeg::band_powers("recorded", &pcm, 48_000, 0.2, 1.3, [1000.0, 700.0]);
    assert!(tone > 0.003 && other < tone / 50.0, "{tone} {other}");

    // The same clip cut in half: exit 1, naming the file and what failed.
    let bytes = std::fs::read(&clip).expect("read");
    let cut = dir.path().join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    let (out, took) = run(onair()
        .args(["record"])
        .arg(dir.path().join("cut.flv"))
        .args(["--size", "320x240", "--quiet", "--loop", "--input"])
        .arg(&cut));
    let err = stderr(&out);
    eprintln!("cut clip, {took:?}: {err}");
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cut.mp4") && err.contains("truncated"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
