//! Recording and multiple outputs, end to end: the `onair` binary against
//! real nginx-rtmp servers, the testkit fault proxy, and FFmpeg as the judge.
//!
//! Why end to end: the promises here (the file is complete whatever the
//! network does, a crash leaves a playable file, a dead destination does not
//! hurt a live one, a full disk does not stop the stream) only mean something
//! for the real binary, a real decoder and real files.
//!
//! The tests encode 720p30 each; they take a global lock so that on a small
//! machine they do not starve each other (a starved encoder skips frames,
//! which would show up as missing frame indices).

use onair::video::source::decode_frame_index;
use onair_testkit::{
    ffmpeg, output_timeout, require_root, require_tools, stats, FaultProxy, NginxOptions,
};
use onair_testkit::{serial, spawn, NginxRtmp};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

fn onair() -> Command {
    Command::new(onair_testkit::onair_exe(env!("CARGO_BIN_EXE_onair")))
}

fn run(cmd: &mut Command, timeout_s: u64) -> Output {
    output_timeout(cmd, Duration::from_secs(timeout_s)).expect("onair ran")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Checks that `path` holds h264 1280x720 + AAC, decodes without errors,
/// and has video frames whose indices increase from 0 (when `from_zero`)
/// with no gap the engine does not account for: `skipped` is the final
/// `video_frames_skipped` (frames the encoder never got on a busy machine;
/// they are not the recorder's to write), and the file must hold
/// `frames - skipped` ± `tol` frames. `skipped: None` (a killed process, no
/// final stats) allows gaps up to a tenth of the frames. Returns the audio
/// duration in seconds.
fn judge(path: &Path, frames: u64, tol: u64, from_zero: bool, skipped: Option<u64>) -> f64 {
    let p = ffmpeg::probe(path).expect("ffprobe");
    let v = p.video().expect("video stream");
    assert_eq!(v.codec_name, "h264", "{}", path.display());
    assert_eq!((v.width, v.height), (1280, 720));
    let a = p.audio().expect("audio stream");
    assert_eq!(a.codec_name, "aac");
    let expected = frames.saturating_sub(skipped.unwrap_or(0));
    assert!(
        v.nb_read_frames.abs_diff(expected) <= tol,
        "{}: {} frames, expected {expected} ± {tol} ({skipped:?} skipped by the engine)",
        path.display(),
        v.nb_read_frames
    );
    let idx = ffmpeg::frame_indices(path, 1280, 720, decode_frame_index).expect("decode");
    let idx: Vec<u64> = idx
        .into_iter()
        .enumerate()
        .map(|(i, x)| x.unwrap_or_else(|| panic!("frame {i} has no readable index")))
        .collect();
    assert!(!idx.is_empty());
    if from_zero {
        assert_eq!(idx[0], 0, "the recording starts at frame 0");
    }
    let mut gaps = 0;
    for (i, w) in idx.windows(2).enumerate() {
        assert!(w[1] > w[0], "frame {i}: index {} then {}", w[0], w[1]);
        gaps += w[1] - w[0] - 1;
    }
    let allowed = skipped.unwrap_or(idx.len() as u64 / 10);
    assert!(
        gaps <= allowed,
        "{}: {gaps} frame indices missing, the engine skipped {allowed}",
        path.display()
    );
    let errors = ffmpeg::decode_errors(path).expect("ffmpeg");
    assert_eq!(errors, "", "{}: decode errors", path.display());
    let pcm = ffmpeg::audio_pcm(path).expect("audio");
    pcm.len() as f64 / 48_000.0
}

/// `video_frames_skipped` of the final stats object.
fn skipped(stats: &[serde_json::Value]) -> Option<u64> {
    stats::last(stats).and_then(|o| stats::field_u64(o, "video_frames_skipped"))
}

fn record_only(ext: &str) {
    if !require_tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let _g = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join(format!("rec.{ext}"));
    let stats_path = dir.path().join("stats.jsonl");
    let out = run(
        onair()
            .arg("record")
            .arg(&file)
            .args(["--duration", "10", "-q", "--stats-json"])
            .arg(&stats_path),
        40,
    );
    assert!(out.status.success(), "onair failed: {}", stderr(&out));
    let s = stats::read_stats(&stats_path).expect("stats");
    let audio_s = judge(&file, 300, 3, true, skipped(&s));
    assert!((audio_s - 10.0).abs() < 0.3, "audio lasts {audio_s} s");
    let last = stats::last(&s).expect("final stats");
    assert_eq!(stats::field_str(last, "state"), Some("stopped"));
    assert_eq!(stats::field_u64(last, "record_packets_dropped"), Some(0));
    assert_eq!(stats::field_u64(last, "record_errors"), Some(0));
    let on_disk = std::fs::metadata(&file).expect("file").len();
    assert_eq!(stats::field_u64(last, "bytes_sent"), Some(on_disk));
}

#[test]
fn record_only_flv() {
    record_only("flv");
}

#[test]
fn record_only_mp4() {
    record_only("mp4");
}

/// Stream through a proxy that cuts the link for ~4 s while recording: the
/// stream shows drops and a reconnect, the recording misses nothing.
#[test]
fn recording_is_complete_while_the_stream_link_is_cut() {
    if !require_tools(&["nginx", "ffmpeg", "ffprobe"]) {
        return;
    }
    let _g = serial();
    let nginx = NginxRtmp::start(NginxOptions::default()).expect("nginx");
    let proxy = FaultProxy::start(nginx.addr()).expect("proxy");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("rec.mp4");
    let stats_path = dir.path().join("stats.jsonl");
    let mut cmd = onair();
    cmd.arg("stream")
        .arg(proxy.rtmp_url("cut"))
        .arg("--record")
        .arg(&file)
        .args(["--duration", "20", "-q", "--reconnect-max-delay", "1"])
        .arg("--stats-json")
        .arg(&stats_path);
    let t = std::thread::spawn(move || run(&mut cmd, 60));
    std::thread::sleep(Duration::from_secs(7));
    proxy.refuse(true);
    proxy.reset_all();
    std::thread::sleep(Duration::from_secs(4));
    proxy.refuse(false);
    let out = t.join().expect("thread");
    assert!(out.status.success(), "onair failed: {}", stderr(&out));

    let s = stats::read_stats(&stats_path).expect("stats");
    let audio_s = judge(&file, 600, 8, true, skipped(&s));
    assert!((audio_s - 20.0).abs() < 0.5, "audio lasts {audio_s} s");

    let last = stats::last(&s).expect("final");
    let outputs = last["outputs"].as_array().expect("outputs array");
    assert_eq!(outputs.len(), 2);
    let stream = &outputs[0];
    let rec = &outputs[1];
    assert!(stats::field_u64(stream, "reconnects").unwrap_or(0) >= 1);
    let dropped = stats::field_u64(stream, "video_dropped_disconnected").unwrap_or(0)
        + stats::field_u64(stream, "video_dropped_congestion").unwrap_or(0);
    assert!(dropped > 0, "the stream dropped video while cut: {stream}");
    assert_eq!(stats::field_u64(rec, "record_packets_dropped"), Some(0));
    assert_eq!(stats::field_u64(rec, "record_errors"), Some(0));
    assert!(stats::field_str(rec, "output").is_some_and(|o| o.ends_with("rec.mp4")));
    drop(nginx.stop_and_collect());
}

/// The main URL goes nowhere (nothing listens) for the whole run; the
/// `--also` destination (nginx) must be perfect.
#[test]
fn a_dead_destination_does_not_hurt_a_live_one() {
    if !require_tools(&["nginx", "ffmpeg", "ffprobe"]) {
        return;
    }
    let _g = serial();
    let nginx = NginxRtmp::start(NginxOptions::default()).expect("nginx");
    let dead = onair_testkit::RefusingPort::new().expect("port");
    let dead_port = dead.port();
    let dir = tempfile::tempdir().expect("tempdir");
    let stats_path = dir.path().join("stats.jsonl");
    let out = run(
        onair()
            .arg("stream")
            .arg(format!("rtmp://127.0.0.1:{dead_port}/live/dead"))
            .arg("--also")
            .arg(nginx.url("alive"))
            .args(["--duration", "10", "-q", "--stats-json"])
            .arg(&stats_path),
        40,
    );
    assert!(out.status.success(), "onair failed: {}", stderr(&out));
    let recs = nginx.stop_and_collect();
    assert_eq!(
        recs.len(),
        1,
        "one session on the live destination: {recs:?}"
    );
    let s = stats::read_stats(&stats_path).expect("stats");
    judge(&recs[0], 300, 6, true, skipped(&s));
    assert_eq!(ffmpeg::frame_num_gaps(&recs[0]).expect("ffmpeg"), 0);
    let last = stats::last(&s).expect("final");
    let outputs = last["outputs"].as_array().expect("outputs");
    assert_eq!(outputs.len(), 2);
    assert_eq!(stats::field_u64(&outputs[0], "video_packets_sent"), Some(0));
    let live = &outputs[1];
    assert_eq!(stats::field_u64(live, "video_dropped_congestion"), Some(0));
    assert_eq!(stats::field_u64(live, "audio_frames_dropped"), Some(0));
}

fn killed_while_recording(ext: &str) {
    if !require_tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let _g = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join(format!("crash.{ext}"));
    let mut child = spawn(
        onair()
            .arg("record")
            .arg(&file)
            .args(["--duration", "60", "-q"]),
    )
    .expect("spawn");
    std::thread::sleep(Duration::from_secs(6));
    child.signal(libc::SIGKILL).expect("kill -9");
    let _ = child.wait_timeout(Duration::from_secs(5));
    let p = ffmpeg::probe(&file).expect("ffprobe reads the crashed file");
    let duration = p.duration.unwrap_or(0.0);
    assert!(duration >= 4.0, "{ext}: {duration} s survived");
    let frames = p.video().expect("video").nb_read_frames;
    // Whatever survived: consecutive indices from 0, no decode error.
    judge(&file, frames, 0, true, None);
}

#[test]
fn kill_9_leaves_a_playable_mp4() {
    killed_while_recording("mp4");
}

#[test]
fn kill_9_leaves_a_playable_flv() {
    killed_while_recording("flv");
}

/// An existing file is refused (exit 2, usage: `--overwrite` allows it) and
/// left untouched; a directory that does not exist is a runtime error
/// (exit 1); both name the path on one line.
#[test]
fn existing_file_and_unwritable_path_are_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("keep.flv");
    std::fs::write(&file, b"precious").expect("write");
    for sub in [
        &["record"][..],
        &["stream", "rtmp://127.0.0.1:9/live/x", "--record"][..],
    ] {
        let out = run(onair().args(sub).arg(&file).args(["--duration", "1"]), 20);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains(&*file.to_string_lossy()) && err.contains("--overwrite"));
        assert_eq!(std::fs::read(&file).expect("read"), b"precious");
    }
    let out = run(
        onair().args(["record", "/nonexistent-onair-dir/x.mp4", "--duration", "1"]),
        20,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains("/nonexistent-onair-dir/x.mp4"), "{err}");
    let out = run(onair().args(["record", "x.avi", "--duration", "1"]), 20);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // --overwrite replaces it.
    let _g = serial();
    let out = run(
        onair()
            .arg("record")
            .arg(&file)
            .args(["--overwrite", "--duration", "2", "-q"]),
        20,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::read(&file).expect("read").starts_with(b"FLV"));
}

/// Unmounts the tmpfs on drop.
struct Tmpfs(PathBuf);
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A 2 MiB tmpfs fills after ~6 s of recording: the recorder fails and says
/// so (stats, stderr, exit 1), the stream to nginx goes on to the end intact,
/// and what was recorded before the disk filled still plays.
#[test]
fn disk_full_stops_the_recording_not_the_stream() {
    if !require_tools(&["nginx", "ffmpeg", "ffprobe", "mount"])
        || !require_root("mounting a small tmpfs")
    {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).expect("mkdir");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    assert!(mounted, "root could not mount a tmpfs");
    let _tmpfs = Tmpfs(mnt.clone());
    let _g = serial();
    let nginx = NginxRtmp::start(NginxOptions::default()).expect("nginx");
    let file = mnt.join("rec.flv");
    let stats_path = dir.path().join("stats.jsonl");
    let out = run(
        onair()
            .arg("stream")
            .arg(nginx.url("full"))
            .arg("--record")
            .arg(&file)
            .args(["--duration", "12", "-q", "--stats-json"])
            .arg(&stats_path),
        40,
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("No space left"), "{err}");
    let s = stats::read_stats(&stats_path).expect("stats");
    let last = stats::last(&s).expect("final");
    let outputs = last["outputs"].as_array().expect("outputs");
    let rec = &outputs[1];
    assert_eq!(stats::field_str(rec, "state"), Some("failed"));
    assert!(stats::field_u64(rec, "record_errors").unwrap_or(0) >= 1);
    assert!(stats::field_u64(rec, "record_packets_dropped").unwrap_or(0) > 0);
    let stream = &outputs[0];
    assert_eq!(
        stats::field_u64(stream, "video_dropped_congestion"),
        Some(0)
    );
    // The stream is whole.
    let recs = nginx.stop_and_collect();
    assert_eq!(recs.len(), 1);
    judge(&recs[0], 360, 6, true, skipped(&s));
    // The partial recording ends on a whole tag and plays.
    let p = ffmpeg::probe(&file).expect("ffprobe");
    let frames = p.video().expect("video").nb_read_frames;
    assert!(frames > 60, "{frames} frames before the disk filled");
    judge(&file, frames, 0, true, None);
}
