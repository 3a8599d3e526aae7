//! The grammar through clap as a user types it, and each parser at its edges.

use super::*;
use clap::CommandFactory;
use onair::{AudioSourceSpec, FileSpec, VideoSourceSpec};

#[test]
fn cli_definition_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn ca_file_must_be_a_readable_file() {
    assert!(parse_ca_file("/nonexistent/ca.pem").is_err());
    assert!(
        parse_ca_file(env!("CARGO_MANIFEST_DIR")).is_err(),
        "a directory"
    );
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    assert_eq!(parse_ca_file(file), Ok(PathBuf::from(file)));
}

#[test]
fn sizes_and_bitrates() {
    assert_eq!(parse_size("1280x720"), Ok((1280, 720)));
    assert!(parse_size("720p").is_err());
    assert_eq!(parse_video_bitrate("2500k"), Ok(2_500_000));
    assert_eq!(parse_video_bitrate("2.5M"), Ok(2_500_000));
    assert_eq!(parse_audio_bitrate("160000"), Ok(160_000));
    assert!(parse_video_bitrate("fast").is_err());
    assert_eq!(parse_on_off("on"), Ok(true));
    assert_eq!(parse_on_off("OFF"), Ok(false));
    assert!(parse_on_off("maybe").is_err());
    assert_eq!(parse_seconds("1.5"), Ok(Duration::from_millis(1500)));
    assert!(parse_seconds("-1").is_err());
    assert!(parse_seconds("NaN").is_err());
}

/// Every option's parser at its edges, just inside and just outside,
/// through clap as a user types them (exit 2 on the outside ones).
#[test]
fn every_limit_at_its_edges_through_the_parser() {
    let parse = |extra: &[&str]| {
        let mut argv = vec!["onair", "stream", "rtmp://h/app/k"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv)
    };
    let edges: &[(&str, &[&str], &[&str])] = &[
        (
            "--size",
            &["160x160", "3840x2160", "2160x3840"],
            &["158x160", "3842x2160", "3840x3840", "161x160"],
        ),
        ("--fps", &["1", "120"], &["0", "121"]),
        ("--video-bitrate", &["50k", "50M"], &["49999", "50000001"]),
        ("--audio-bitrate", &["32k", "512k"], &["31999", "512001"]),
        ("--keyint", &["0.1", "20"], &["0.09", "20.01"]),
        ("--buffer-packets", &["4", "100000"], &["3", "100001"]),
        ("--buffer-ms", &["100", "60000"], &["99", "60001"]),
        ("--buffer-bytes", &["64k", "1024M"], &["65535", "1025M"]),
        ("--stall-timeout", &["0.1", "3600"], &["0.099", "3600.001"]),
        (
            "--reconnect-max-delay",
            &["0.1", "3600"],
            &["0.099", "3600.001"],
        ),
        ("--max-retries", &["0", "1000000"], &["-1", "1000001"]),
    ];
    for (opt, inside, outside) in edges {
        for v in *inside {
            let r = parse(&[opt, v]);
            assert!(r.is_ok(), "{opt} {v} refused: {r:?}");
        }
        for v in *outside {
            let arg = format!("{opt}={v}");
            let e = parse(&[&arg]).expect_err(&arg);
            assert_eq!(e.exit_code(), 2, "{arg}");
        }
    }
}

#[test]
fn sources() {
    assert_eq!(
        parse_video("test"),
        Ok(VideoChoice::Some(VideoSourceSpec::TestPattern))
    );
    assert_eq!(
        parse_video("screen:1"),
        Ok(VideoChoice::Some(VideoSourceSpec::Screen("1".into())))
    );
    assert_eq!(
        parse_video("window:Firefox@:1"),
        Ok(VideoChoice::Some(VideoSourceSpec::Window(
            "Firefox@:1".into()
        )))
    );
    assert!(parse_video("window:").is_err());
    assert!(parse_video("file:").is_err());
    assert!(parse_video("webcam").is_err());
    assert_eq!(parse_audio("none"), Ok(AudioChoice::None));
}

/// `file:PATH`, `--input` and `--loop`: a file source in the GPL build,
/// a usage error naming the build otherwise.
#[test]
fn file_sources_need_the_gpl_build_and_take_loop() {
    let parse = |extra: &[&str]| {
        let mut argv = vec!["onair", "record", "x.flv"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv)
    };
    if !onair::FILE_SOURCE {
        for a in [
            &["--input", "c.mp4"][..],
            &["--video", "file:c.mp4"],
            &["--audio", "file:c.mp4"],
        ] {
            let e = parse(a).expect_err("refused");
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains("GPL build"), "{e}");
        }
        return;
    }
    let common = |extra: &[&str]| match parse(extra).expect("parses").command {
        Command::Record(r) => r.common,
        other => panic!("{other:?}"),
    };
    let file = |path: &str, looping| FileSpec {
        path: path.into(),
        looping,
    };
    let c = common(&["--input", "c.mp4", "--loop", "--audio", "none"]);
    let v = c.video_settings().expect("video");
    assert_eq!(v.source, VideoSourceSpec::File(file("c.mp4", true)));
    assert!(c.audio_settings().is_none());
    let c = common(&["--video", "file:a.mkv", "--audio", "file:b.wav"]);
    let v = c.video_settings().expect("video");
    let a = c.audio_settings().expect("audio");
    assert_eq!(v.source, VideoSourceSpec::File(file("a.mkv", false)));
    assert_eq!(a.source, AudioSourceSpec::File(file("b.wav", false)));
    // --input fills only what is not chosen.
    let c = common(&["--input", "c.mp4", "--video", "test"]);
    let v = c.video_settings().expect("video");
    let a = c.audio_settings().expect("audio");
    assert_eq!(v.source, VideoSourceSpec::TestPattern);
    assert_eq!(a.source, AudioSourceSpec::File(file("c.mp4", false)));
    // Without any file the defaults stay.
    let c = common(&[]);
    let v = c.video_settings().expect("video");
    assert_eq!(v.source, VideoSourceSpec::TestPattern);
}
