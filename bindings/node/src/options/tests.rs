//! Each option at its edges, errors naming the option (never the key), and the
//! recorder's path checks.

use super::*;
use crate::ErrorCode;
use napi::bindgen_prelude::Either;
use onair::output::record::RecordFormat;
use std::time::Duration;

fn opts(url: &str) -> StreamerOptions {
    StreamerOptions {
        url: url.into(),
        stream_key: Some("SECRET".into()),
        ..StreamerOptions::default()
    }
}

#[test]
fn defaults_mirror_the_cli() {
    let v = opts("rtmp://127.0.0.1/live").validate().expect("valid");
    let video = v.config.video.expect("video");
    assert_eq!((video.width, video.height, video.fps), (1280, 720, 30));
    assert_eq!(video.bitrate_bps, 2_500_000);
    assert_eq!(v.config.audio.expect("audio").bitrate_bps, 160_000);
    assert_eq!(v.key.as_deref(), Some("SECRET"));
}

/// Each option just inside and just outside its range in `onair::limits`:
/// the same edges as the CLI's parsers and `StreamerConfig::validate`.
#[test]
fn every_limit_at_its_edges() {
    type Set = fn(&mut StreamerOptions, f64);
    fn buffer(o: &mut StreamerOptions) -> &mut BufferOptions {
        o.buffer.get_or_insert_with(Default::default)
    }
    fn reconnect(o: &mut StreamerOptions) -> &mut ReconnectOptions {
        o.reconnect.get_or_insert_with(Default::default)
    }
    let edges: &[(&str, Set, &[f64], &[f64])] = &[
        (
            "width",
            |o, v| o.width = Some(v),
            &[160.0, 3840.0],
            &[158.0, 3842.0, 161.0],
        ),
        (
            "height",
            |o, v| o.height = Some(v),
            &[160.0, 3840.0],
            &[158.0, 3842.0, 721.0],
        ),
        (
            "fps",
            |o, v| o.fps = Some(v),
            &[1.0, 120.0],
            &[0.0, 121.0, 1.5],
        ),
        (
            "videoBitrate",
            |o, v| o.video_bitrate = Some(Either::A(v)),
            &[50_000.0, 50_000_000.0],
            &[49_999.0, 50_000_001.0],
        ),
        (
            "audioBitrate",
            |o, v| o.audio_bitrate = Some(Either::A(v)),
            &[32_000.0, 512_000.0],
            &[31_999.0, 512_001.0],
        ),
        (
            "keyint",
            |o, v| o.keyint = Some(v),
            &[0.1, 20.0],
            &[0.09, 20.01],
        ),
        (
            "buffer.packets",
            |o, v| buffer(o).packets = Some(v),
            &[4.0, 100_000.0],
            &[3.0, 100_001.0],
        ),
        (
            "buffer.ms",
            |o, v| buffer(o).ms = Some(v),
            &[100.0, 60_000.0],
            &[99.0, 60_001.0],
        ),
        (
            "buffer.bytes",
            |o, v| buffer(o).bytes = Some(v),
            &[65_536.0, 1_073_741_824.0],
            &[65_535.0, 1_073_741_825.0],
        ),
        (
            "stallTimeoutMs",
            |o, v| o.stall_timeout_ms = Some(v),
            &[100.0, 3_600_000.0],
            &[99.0, 3_600_001.0],
        ),
        (
            "reconnect.maxDelayMs",
            |o, v| reconnect(o).max_delay_ms = Some(v),
            &[100.0, 3_600_000.0],
            &[99.0, 3_600_001.0],
        ),
        (
            "reconnect.maxRetries",
            |o, v| reconnect(o).max_retries = Some(v),
            &[0.0, 1_000_000.0],
            &[-1.0, 1_000_001.0],
        ),
    ];
    for (name, set, inside, outside) in edges {
        for v in *inside {
            let mut o = opts("rtmp://127.0.0.1/live/k");
            set(&mut o, *v);
            assert!(o.validate().is_ok(), "{name} = {v} refused");
        }
        for v in *outside {
            let mut o = opts("rtmp://127.0.0.1/live/k");
            set(&mut o, *v);
            let e = o.validate().expect_err(name);
            assert_eq!(e.code, ErrorCode::ERR_INVALID_OPTION, "{name} = {v}");
            assert!(e.message.contains(name), "{name} = {v}: {}", e.message);
        }
    }
    let mut o = opts("rtmp://127.0.0.1/live/k");
    o.size = Some("3840x3840".into());
    assert!(
        o.validate().is_err(),
        "3840x3840 passes and then fails in the encoder"
    );
}

#[test]
fn values_are_parsed_and_bounded() {
    let mut o = opts("rtmp://127.0.0.1/live");
    o.size = Some("640x360".into());
    o.video_bitrate = Some(Either::B("1.5M".into()));
    o.buffer = Some(BufferOptions {
        packets: Some(50.0),
        ms: Some(1000.0),
        bytes: None,
    });
    let v = o.validate().expect("valid");
    let video = v.config.video.expect("video");
    assert_eq!(
        (video.width, video.height, video.bitrate_bps),
        (640, 360, 1_500_000)
    );
    let limits = v.config.outputs[0].limits.expect("limits");
    assert_eq!(limits.max_packets, 50);
    assert_eq!(limits.max_span, Duration::from_millis(1000));
}

#[test]
fn errors_name_the_option_and_never_the_key() {
    let mut o = opts("rtmp://127.0.0.1/live");
    o.fps = Some(0.5);
    let e = o.validate().expect_err("fps");
    assert_eq!(e.code, ErrorCode::ERR_INVALID_OPTION);
    assert!(e.message.contains("fps"), "{}", e.message);

    let mut o = opts("rtmp://127.0.0.1/live");
    o.reconnect = Some(ReconnectOptions {
        max_delay_ms: Some(1e12),
        max_retries: None,
    });
    let e = o.validate().expect_err("maxDelayMs");
    assert!(e.message.contains("reconnect.maxDelayMs"), "{}", e.message);

    let e = opts("rtmp://127.0.0.1:70000/live/SECRET")
        .validate()
        .expect_err("port");
    assert_eq!(e.code, ErrorCode::ERR_INVALID_URL);
    assert!(!e.message.contains("SECRET"), "{}", e.message);
}

#[test]
fn ca_file_must_exist_and_reaches_the_output() {
    let mut o = opts("rtmps://127.0.0.1/live/k");
    o.ca_file = Some("/nonexistent/ca.pem".into());
    let e = o.validate().expect_err("missing caFile");
    assert_eq!(e.code, ErrorCode::ERR_INVALID_OPTION);
    assert!(e.message.contains("caFile"), "{}", e.message);

    // Any readable file passes here; its certificates are read at start.
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let mut o = opts("rtmps://127.0.0.1/live/k");
    o.ca_file = Some(file.into());
    let v = o.validate().expect("valid");
    assert_eq!(
        v.config.outputs[0].ca_file.as_deref(),
        Some(std::path::Path::new(file))
    );
}

#[test]
fn recorder_options_share_the_parser_and_check_the_path() {
    let o = RecorderOptions {
        path: "/tmp/out.MP4".into(),
        size: Some("640x360".into()),
        overwrite: Some(true),
        ..RecorderOptions::default()
    };
    let v = o.validate().expect("valid");
    assert!(v.config.outputs.is_empty());
    let rec = &v.config.records[0];
    assert_eq!(rec.format, Some(RecordFormat::Mp4));
    assert!(rec.overwrite);
    assert_eq!(v.config.video.expect("video").width, 640);

    for path in ["", "out.avi", "noext"] {
        let o = RecorderOptions {
            path: path.into(),
            ..RecorderOptions::default()
        };
        let e = o.validate().expect_err(path);
        assert_eq!(e.code, ErrorCode::ERR_INVALID_OPTION);
        assert!(
            e.message.starts_with("invalid option path:"),
            "{}",
            e.message
        );
    }
    let o = RecorderOptions {
        path: "a.flv".into(),
        fps: Some(0.0),
        ..RecorderOptions::default()
    };
    assert!(o.validate().expect_err("fps").message.contains("fps"));

    let mut s = opts("rtmp://127.0.0.1/live");
    s.record = Some(Either::B(RecordOptions {
        path: "x.txt".into(),
        overwrite: None,
    }));
    let e = s.validate().expect_err("record.path");
    assert!(
        e.message.starts_with("invalid option record.path:"),
        "{}",
        e.message
    );
    s.record = Some(Either::A("copy.flv".into()));
    let v = s.validate().expect("valid");
    assert_eq!(v.config.records[0].format, Some(RecordFormat::Flv));
    assert!(!v.config.records[0].overwrite);
}
