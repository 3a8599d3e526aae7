//! The encoder options of the `onair` binary, in whichever build it is:
//! `--version` names the build's licence and encoders truthfully, `onair
//! encoders` lists what this machine can use, and the encoder options are
//! checked against the build (exit 2 with one line naming the option).
//! In the GPL build (feature `gpl`), a recording with x264, B-frames and an
//! `--encoder-opt` that reaches x264, and an unknown `--encoder-opt` refused.

use onair_testkit::output_timeout;
use std::process::{Command, Output};
use std::time::Duration;

fn onair(args: &[&str]) -> Output {
    output_timeout(
        Command::new(onair_testkit::onair_exe(env!("CARGO_BIN_EXE_onair"))).args(args),
        Duration::from_secs(60),
    )
    .expect("onair ran")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn version_names_the_build_and_its_licence() {
    let out = onair(&["--version"]);
    assert!(out.status.success());
    let v = text(&out.stdout);
    if cfg!(feature = "gpl") {
        assert!(v.contains("build: GPL"), "{v}");
        assert!(v.contains("licence: GPL-2.0-or-later"), "{v}");
        assert!(v.contains("FFmpeg aac") && v.contains("no fdk-aac"), "{v}");
        assert!(!v.contains("audio encoders: fdk-aac"), "{v}");
    } else {
        assert!(v.contains("build: default (no GPL code)"), "{v}");
        assert!(v.contains("fdk-aac") && v.contains("no GPL code"), "{v}");
        assert!(!v.contains("x264"), "{v}");
    }
}

#[test]
fn encoders_lists_what_this_machine_can_use() {
    let out = onair(&["encoders"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        "",
        "nothing on stderr (no codec banners)"
    );
    let list = text(&out.stdout);
    eprintln!("{list}");
    let line = |name: &str| {
        list.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} not listed:\n{list}"))
            .to_string()
    };
    assert!(line("openh264").contains(" yes "), "{list}");
    for sw in ["x264", "x265", "svtav1"] {
        let l = line(sw);
        if cfg!(feature = "gpl") {
            assert!(l.contains(" yes "), "{l}");
        } else {
            assert!(l.contains(" no ") && l.contains("GPL build only"), "{l}");
        }
    }
    for hw in ["h264_vaapi", "hevc_vaapi", "h264_nvenc", "hevc_nvenc"] {
        let l = line(hw);
        if l.contains(" no ") {
            eprintln!("SKIP {hw} device part: {l}");
        }
    }
    assert!(list.contains("audio encoder: "), "{list}");
}

#[test]
fn encoder_options_are_checked_against_the_build() {
    let refused = |args: &[&str], needle: &str| {
        let mut argv = vec!["record", "/nonexistent-dir/x.mp4"];
        argv.extend_from_slice(args);
        let out = onair(&argv);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
    };
    refused(&["--video-encoder", "qsv"], "not one of");
    refused(&["--video-codec", "vp9"], "not one of h264, hevc, av1");
    refused(&["--bframes", "17"], "more than 16");
    refused(
        &["--video-encoder", "openh264", "--bframes", "2"],
        "bframes",
    );
    refused(
        &["--video-encoder", "x265", "--video-codec", "h264"],
        "video-codec",
    );
    refused(&["--encoder-opt", "x264-params"], "KEY=VALUE");
    refused(&["--encoder-opt", "b=900k"], "use --video-bitrate");
    refused(&["--encoder-opt", "g=10"], "use --keyint");
    refused(
        &[
            "--video-encoder",
            "openh264",
            "--encoder-opt",
            "x264-params=b-adapt=0",
        ],
        "encoder-opt",
    );
    if !cfg!(feature = "gpl") {
        refused(&["--video-encoder", "x264"], "GPL build");
    }
}

/// GPL build: an `--encoder-opt` key the encoder does not have stops the
/// start with a message naming it (libavcodec alone would ignore it).
#[cfg(feature = "gpl")]
#[test]
fn gpl_unknown_encoder_opt_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mp4 = dir.path().join("x.mp4");
    let out = onair(&[
        "record",
        mp4.to_str().expect("utf-8 path"),
        "--video-encoder",
        "x264",
        "--encoder-opt",
        "no-such-option=1",
        "--size",
        "320x180",
        "--duration",
        "1",
        "--quiet",
    ]);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("libx264 has no option 'no-such-option'"),
        "{err}"
    );
}

/// GPL build: `onair record` with x264 High and 2 B-frames to MP4, FFmpeg's
/// AAC beside it; FFmpeg decodes it all without an error.
#[cfg(feature = "gpl")]
#[test]
fn gpl_record_x264_bframes_to_mp4() {
    use onair_testkit::{ffmpeg, require_tools};
    if !require_tools(&["ffmpeg", "ffprobe"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mp4 = dir.path().join("x264.mp4");
    let path = mp4.to_str().expect("utf-8 path");
    let out = onair(&[
        "record",
        path,
        "--video-encoder",
        "x264",
        "--bframes",
        "2",
        "--preset",
        "veryfast",
        "--profile",
        "high",
        "--encoder-opt",
        "x264-params=b-adapt=0:b-pyramid=none",
        "--size",
        "640x360",
        "--duration",
        "3",
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let p = ffmpeg::probe(&mp4).expect("ffprobe");
    let v = p.video().expect("video");
    assert_eq!(
        (v.codec_name.as_str(), v.profile.as_str()),
        ("h264", "High")
    );
    assert_eq!((v.width, v.height), (640, 360));
    assert!(
        (80..=92).contains(&v.nb_read_frames),
        "{} frames",
        v.nb_read_frames
    );
    assert_eq!(p.audio().expect("audio").codec_name, "aac");
    assert_eq!(ffmpeg::decode_errors(&mp4).expect("decode"), "");
    let packets = ffmpeg::packet_times(&mp4, "v").expect("packets");
    assert!(
        packets.iter().any(|p| p.pts_time > p.dts_time),
        "no B-frames"
    );
    // x264 writes its settings into the stream: --encoder-opt reached it.
    let bytes = std::fs::read(&mp4).expect("read the recording");
    let settings = String::from_utf8_lossy(&bytes);
    assert!(
        settings.contains(" b_pyramid=0 b_adapt=0 "),
        "x264's settings do not show --encoder-opt"
    );
}
