//! Tests of `RtmpPublisher` against real peers: nginx-rtmp and FFmpeg's
//! listener from the test kit (skipped with a note when a tool is missing,
//! failed under CI), bare TCP listeners for the failure stages, and the raw
//! session's byte accounting.

use super::*;
use crate::flv::tests::{test_headers, SILENT_AAC_FRAME};
use onair_testkit::{
    require_tools, FfmpegListener, HttpStatusServer, NginxOptions, NginxRtmp, SCHEDULING_SLACK,
};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

const SECRET_KEY: &str = "s3cretKey_do_not_print";

/// One FLV tag: (tag type, timestamp, body).
pub(crate) type FlvTag = (u8, u32, Vec<u8>);

/// Parses an FLV file into its tags; empty if unreadable.
pub(crate) fn read_flv_tags(path: &Path) -> Vec<FlvTag> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let mut tags = Vec::new();
    if bytes.len() < 13 || &bytes[..3] != b"FLV" {
        return tags;
    }
    let mut i = 13;
    while i + 11 <= bytes.len() {
        let t = bytes[i] & 0x1F;
        let size = u32::from_be_bytes([0, bytes[i + 1], bytes[i + 2], bytes[i + 3]]) as usize;
        let ts = u32::from_be_bytes([bytes[i + 7], bytes[i + 4], bytes[i + 5], bytes[i + 6]]);
        if i + 11 + size + 4 > bytes.len() {
            break;
        }
        tags.push((t, ts, bytes[i + 11..i + 11 + size].to_vec()));
        i += 11 + size + 4;
    }
    tags
}

/// Publishes `n` fake video frames (keyframe every 10) and `n` AAC frames,
/// 33 ms apart, then closes. Returns the number of tags a faithful
/// receiver records: metadata + 2 sequence headers + 2n.
pub(crate) fn publish_synthetic(mut p: RtmpPublisher, n: u32) -> usize {
    for i in 0..n {
        let ts = i * 33;
        let key = i % 10 == 0;
        let packet = crate::packet::EncodedPacket {
            kind: MediaKind::Video,
            pts_ns: u64::from(ts) * 1_000_000,
            dts_ns: u64::from(ts) * 1_000_000,
            keyframe: key,
            disposable: false,
            data: Bytes::from_static(&[0, 0, 0, 3, 0x65, 0x88, 0x84]),
        };
        p.queue_media(MediaKind::Video, ts, flv::video_tag_body(&packet))
            .unwrap();
        let mut audio = vec![0xAF, 0x01];
        audio.extend_from_slice(SILENT_AAC_FRAME);
        p.queue_media(MediaKind::Audio, ts, Bytes::from(audio))
            .unwrap();
        p.pump(Duration::from_millis(100)).unwrap();
    }
    assert!(p.kernel_unsent_bytes() < 10_000_000);
    p.close(Duration::from_secs(2));
    3 + 2 * n as usize
}

/// A private nginx-rtmp with `extra` inside `application live { }`; `None`
/// (the test skips, or fails under CI) when nginx or its RTMP module is missing.
fn nginx(extra: &str) -> Option<NginxRtmp> {
    if !require_tools(&["nginx"]) {
        return None;
    }
    let opts = NginxOptions {
        extra_application: extra.to_string(),
        ..NginxOptions::default()
    };
    Some(NginxRtmp::start(opts).expect("nginx starts"))
}

fn url_of(nginx: &NginxRtmp, key: &str) -> RtmpUrl {
    RtmpUrl::parse(&nginx.url(key), None).unwrap()
}

/// nginx's recording of `key` (`KEY-UNIXSECONDS.flv`), once it exists.
fn recording_of(nginx: &NginxRtmp, key: &str) -> Option<PathBuf> {
    let prefix = format!("{key}-");
    nginx.recordings().into_iter().find(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
    })
}

#[test]
fn rejection_codes() {
    use super::proto::client::{is_fatal_code, is_rejection_code};
    assert!(is_rejection_code("NetStream.Publish.BadName"));
    assert!(is_rejection_code("NetConnection.Connect.Rejected"));
    assert!(!is_rejection_code("NetStream.Publish.Start"));
    assert!(is_fatal_code("NetStream.Publish.Failed"));
    assert!(!is_fatal_code("NetStream.Play.PublishNotify"));
    let e = RtmpError::Rejected {
        code: "NetStream.Publish.BadName".into(),
        description: String::new(),
    };
    assert!(e.is_rejection());
    assert!(!RtmpError::Closed { stage: Stage::Send }.is_rejection());
    assert_eq!(
        RtmpError::Timeout {
            stage: Stage::ConnectCommand
        }
        .to_string(),
        "timed out during connect-command"
    );
}

#[test]
fn closed_port_fails_fast_at_connect() {
    let closed = onair_testkit::RefusingPort::new().unwrap();
    let port = closed.port();
    let url = RtmpUrl::parse(&format!("rtmp://127.0.0.1:{port}/live/{SECRET_KEY}"), None).unwrap();
    let start = Instant::now();
    let err =
        RtmpPublisher::connect(&url, &ConnectOptions::default(), &test_headers()).unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(matches!(err, RtmpError::Connect { .. }), "{err}");
    assert!(!err.to_string().contains(SECRET_KEY));
    assert!(!format!("{err:?}").contains(SECRET_KEY));
}

#[test]
fn unresolvable_host_fails_at_resolve() {
    let url = RtmpUrl::parse("rtmp://no-such-host.invalid/live/k", None).unwrap();
    let opts = ConnectOptions {
        connect_timeout: Duration::from_secs(2),
        ..ConnectOptions::default()
    };
    let err = RtmpPublisher::connect(&url, &opts, &test_headers()).unwrap_err();
    assert!(matches!(err, RtmpError::Resolve { .. }), "{err}");
}

/// Connects over `scheme` (`rtmp`, `rtmps`) to a server that accepts and
/// never answers, with a 500 ms handshake bound: the error and how long
/// `connect` took. The server reads until the client gives up and closes.
pub(crate) fn connect_to_silent_server(scheme: &str) -> (RtmpError, Duration) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 4096];
        while matches!(std::io::Read::read(&mut s, &mut buf), Ok(n) if n > 0) {}
    });
    let url = format!("{scheme}://127.0.0.1:{port}/live/{SECRET_KEY}");
    let url = RtmpUrl::parse(&url, None).unwrap();
    let opts = ConnectOptions {
        handshake_timeout: Duration::from_millis(500),
        ..ConnectOptions::default()
    };
    let start = Instant::now();
    let err = RtmpPublisher::connect(&url, &opts, &test_headers()).unwrap_err();
    let took = start.elapsed();
    holder.join().unwrap();
    assert!(!format!("{err} {err:?}").contains(SECRET_KEY), "{err}");
    (err, took)
}

/// The socket options the publisher sets hold on its connection (under
/// TLS too: the socket is still ours).
pub(crate) fn assert_socket_options(p: &RtmpPublisher) {
    let sock = socket2::SockRef::from(p.stream.tcp());
    assert_eq!(sock.tcp_user_timeout().unwrap(), Some(DEFAULT_USER_TIMEOUT));
    assert!(sock.tcp_nodelay().unwrap());
    assert!(p.ms_since_last_ack().is_some());
}

/// Publishes 30 synthetic video and audio frames through `p` (see
/// [`publish_synthetic`]) and returns nginx's recording of `key` once it
/// holds them all, with the number of (video, audio) frames in it.
pub(crate) fn publish_and_record(
    nginx: &NginxRtmp,
    p: RtmpPublisher,
    key: &str,
) -> (Vec<FlvTag>, (usize, usize)) {
    let sent = publish_synthetic(p, 30);
    let tags = onair_testkit::wait_for(Duration::from_secs(3), || {
        let tags = read_flv_tags(&recording_of(nginx, key)?);
        (tags.len() >= sent - 1).then_some(tags)
    })
    .unwrap_or_else(|| panic!("no complete recording: {}", nginx.error_log()));
    let frames = |t: u8| {
        tags.iter()
            .filter(|tag| tag.0 == t && tag.2[1] == 0x01)
            .count()
    };
    let counts = (frames(flv::TAG_VIDEO), frames(flv::TAG_AUDIO));
    (tags, counts)
}

/// nginx stopped (SIGSTOP) until this is dropped, even when a test fails.
pub(crate) struct Frozen(String);

impl Frozen {
    pub(crate) fn new(nginx: &NginxRtmp) -> Self {
        let pid = nginx.pid().expect("nginx runs").to_string();
        assert!(Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success());
        Self(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.0]).status();
    }
}

/// Freezes nginx, queues 40 video messages of 256 KB on `p` and pumps five
/// times: each pump must return within its 100 ms bound. Returns the
/// freeze (nginx resumes when it drops) and the bytes the pumps moved.
pub(crate) fn pump_against_frozen_nginx(
    nginx: &NginxRtmp,
    p: &mut RtmpPublisher,
) -> (Frozen, usize) {
    p.pump(Duration::from_millis(500)).unwrap();
    // nginx stops reading: the receive window fills up.
    let frozen = Frozen::new(nginx);
    let big = Bytes::from(vec![0x27u8; 256 * 1024]);
    for i in 0..40 {
        p.queue_media(MediaKind::Video, i * 33, big.clone())
            .unwrap();
    }
    let mut progress = 0;
    for _ in 0..5 {
        let start = Instant::now();
        progress += p.pump(Duration::from_millis(100)).unwrap();
        let took = start.elapsed();
        assert!(
            took < Duration::from_millis(100) + SCHEDULING_SLACK,
            "pump blocked for {took:?}"
        );
    }
    assert!(p.kernel_unsent_bytes() > 0);
    (frozen, progress)
}

#[test]
fn silent_server_times_out_in_handshake() {
    let (err, took) = connect_to_silent_server("rtmp");
    assert!(
        matches!(
            err,
            RtmpError::Timeout {
                stage: Stage::Handshake
            }
        ),
        "{err}"
    );
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(1500),
        "{took:?}"
    );
}

#[test]
fn nginx_publish_records_flv() {
    let Some(nginx) = nginx("") else {
        return;
    };
    let key = "onairtest";
    let p = RtmpPublisher::connect(
        &url_of(&nginx, key),
        &ConnectOptions::default(),
        &test_headers(),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", nginx.error_log()));
    assert!(p.pending_bytes() > 0, "headers are queued");
    assert_socket_options(&p);
    assert!(format!("{p:?}").contains("****"));
    let (tags, counts) = publish_and_record(&nginx, p, key);
    assert_eq!(counts, (30, 30), "{}", nginx.error_log());
    // nginx's recorder writes the sequence headers first (the AAC one twice:
    // once from its codec context, once as received), then the media.
    let video: Vec<_> = tags.iter().filter(|t| t.0 == flv::TAG_VIDEO).collect();
    let audio: Vec<_> = tags.iter().filter(|t| t.0 == flv::TAG_AUDIO).collect();
    assert_eq!(&video[0].2[..2], &[0x17, 0x00], "{}", nginx.error_log());
    assert_eq!(&audio[0].2[..2], &[0xAF, 0x00]);
    assert_eq!(video.last().unwrap().1, 29 * 33);
    let log = nginx.error_log();
    assert!(
        log.contains("FCPublish") || log.contains("publish"),
        "{log}"
    );
}

#[test]
fn nginx_on_publish_403_is_a_rejection() {
    let http = HttpStatusServer::start(403).unwrap();
    let Some(nginx) = nginx(&format!("on_publish {};", http.url())) else {
        return;
    };
    let start = Instant::now();
    let err = RtmpPublisher::connect(
        &url_of(&nginx, SECRET_KEY),
        &ConnectOptions::default(),
        &test_headers(),
    )
    .unwrap_err();
    assert!(err.is_rejection(), "{err}\n{}", nginx.error_log());
    assert!(start.elapsed() < Duration::from_secs(3));
    assert!(!err.to_string().contains(SECRET_KEY));
    assert!(!format!("{err:?}").contains(SECRET_KEY));
}

#[test]
fn nginx_stalled_pump_is_bounded() {
    let Some(nginx) = nginx("") else {
        return;
    };
    let opts = ConnectOptions {
        send_buffer_bytes: Some(64 * 1024),
        ..ConnectOptions::default()
    };
    let mut p = RtmpPublisher::connect(&url_of(&nginx, "stall"), &opts, &test_headers()).unwrap();
    let (_frozen, progress) = pump_against_frozen_nginx(&nginx, &mut p);
    assert!(p.pending_bytes() > 5 * 1024 * 1024, "progress {progress}");
    // The write stops making progress: a later pump moves nothing.
    assert_eq!(p.pump(Duration::from_millis(50)).unwrap(), 0);
}

#[test]
fn pump_reports_server_close() {
    let dir = tempfile::tempdir().unwrap();
    let rx = crate::output::server::LocalReceiver::start(
        "127.0.0.1:0".parse().unwrap(),
        dir.path().into(),
    )
    .unwrap();
    let url = RtmpUrl::parse(&rx.url(), None).unwrap();
    let mut p = RtmpPublisher::connect(&url, &ConnectOptions::default(), &test_headers()).unwrap();
    p.pump(Duration::from_millis(200)).unwrap();
    rx.stop();
    let deadline = Instant::now() + Duration::from_secs(2);
    let err = loop {
        match p.pump(Duration::from_millis(20)) {
            Err(e) => break e,
            Ok(_) => {
                assert!(Instant::now() < deadline, "close not noticed");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    };
    assert!(
        matches!(
            err,
            RtmpError::Closed { stage: Stage::Send }
                | RtmpError::Io {
                    stage: Stage::Send,
                    ..
                }
        ),
        "{err}"
    );
    assert!(!err.is_rejection());
}

/// A real 1 s baseline H.264 + AAC FLV made by ffmpeg (with libx264), as tags.
fn ffmpeg_fixture(dir: &Path) -> Vec<(u8, u32, Vec<u8>)> {
    let path = dir.join("fixture.flv");
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg("testsrc=size=64x64:rate=30")
        .args(["-f", "lavfi", "-i", "sine=sample_rate=48000", "-t", "1"])
        .args([
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-profile:v",
            "baseline",
            "-g",
            "10",
        ])
        .args(["-c:a", "aac", "-ac", "2", "-f", "flv", "-y"])
        .arg(&path)
        .output()
        .expect("ffmpeg runs");
    assert!(
        status.status.success(),
        "ffmpeg (with libx264) made no fixture: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    read_flv_tags(&path)
}

/// Stream headers recovered from a fixture's sequence headers.
fn fixture_headers(tags: &[(u8, u32, Vec<u8>)]) -> StreamHeaders {
    let avc = &tags
        .iter()
        .find(|t| t.0 == flv::TAG_VIDEO && t.2[1] == 0)
        .unwrap()
        .2;
    let aac = &tags
        .iter()
        .find(|t| t.0 == flv::TAG_AUDIO && t.2[1] == 0)
        .unwrap()
        .2;
    StreamHeaders {
        video: Some(crate::packet::VideoParams {
            codec: crate::packet::VideoCodec::H264,
            width: 64,
            height: 64,
            fps: 30,
            bitrate_bps: 200_000,
            config: Bytes::copy_from_slice(&avc[5..]),
        }),
        audio: Some(crate::packet::AudioParams {
            sample_rate: 48_000,
            channels: 2,
            bitrate_bps: 128_000,
            asc: Bytes::copy_from_slice(&aac[2..]),
            frame_samples: 1024,
        }),
        encoder_name: "onair-test".into(),
    }
}

/// ffmpeg's own RTMP server (`-listen 1`) is stricter than nginx about the
/// handshake and chunking, and `-c copy` keeps exactly what was sent. Real
/// H.264/AAC from an ffmpeg-made fixture goes through our sequence headers
/// (which must equal ffmpeg's byte for byte) and must decode without error.
#[test]
fn ffmpeg_listen_receives_decodable_stream() {
    if !require_tools(&["ffmpeg"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fixture = ffmpeg_fixture(dir.path());
    let headers = fixture_headers(&fixture);
    let video = headers.video.as_ref().unwrap();
    let theirs = fixture.iter().find(|t| t.0 == flv::TAG_VIDEO).unwrap();
    assert_eq!(&flv::avc_sequence_header(video)[..], &theirs.2[..]);

    let out = dir.path().join("out.flv");
    let mut listener = FfmpegListener::start_with_key(&out, "key").unwrap();
    let url = RtmpUrl::parse(&listener.url(), None).unwrap();
    let mut p = RtmpPublisher::connect(&url, &ConnectOptions::default(), &headers)
        .unwrap_or_else(|e| panic!("{e}: {}", listener.stderr()));
    let media: Vec<_> = fixture
        .iter()
        .filter(|t| t.0 != flv::TAG_SCRIPT && t.2[1] == 1)
        .collect();
    for (kind, ts, body) in &media {
        let kind = if *kind == flv::TAG_VIDEO {
            MediaKind::Video
        } else {
            MediaKind::Audio
        };
        p.queue_media(kind, *ts, Bytes::copy_from_slice(body))
            .unwrap();
        p.pump(Duration::from_millis(100)).unwrap();
    }
    p.close(Duration::from_secs(2));
    let status = listener.wait(Duration::from_secs(10)).unwrap();
    assert!(status.is_some(), "ffmpeg did not finish");
    let err = listener.unexpected_stderr();
    let got: Vec<_> = read_flv_tags(&out)
        .into_iter()
        .filter(|t| t.0 != flv::TAG_SCRIPT && t.2[1] == 1)
        .collect();
    assert_eq!(got.len(), media.len(), "{err}");
    for (a, b) in got.iter().zip(&media) {
        assert_eq!((a.0, a.1, &a.2), (b.0, b.1, &b.2));
    }
    let errors = onair_testkit::ffmpeg::decode_errors(&out).unwrap();
    assert!(errors.trim().is_empty(), "{errors}");
}

/// nginx refuses a second publisher on a busy name with
/// `NetStream.Publish.BadName`: a rejection, with the key kept out.
#[test]
fn nginx_busy_name_is_a_rejection() {
    let Some(nginx) = nginx("") else {
        return;
    };
    let url = url_of(&nginx, SECRET_KEY);
    let mut first = RtmpPublisher::connect(&url, &ConnectOptions::default(), &test_headers())
        .unwrap_or_else(|e| panic!("{e}\n{}", nginx.error_log()));
    first.pump(Duration::from_millis(200)).unwrap();
    let err =
        RtmpPublisher::connect(&url, &ConnectOptions::default(), &test_headers()).unwrap_err();
    eprintln!("second publisher: {err}");
    assert!(err.is_rejection(), "{err}\n{}", nginx.error_log());
    assert!(!format!("{err} {err:?}").contains(SECRET_KEY));
    first.close(Duration::from_millis(500));
}

#[test]
fn server_closing_during_handshake_is_closed_handshake() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let t = std::thread::spawn(move || drop(listener.accept().unwrap()));
    let url = RtmpUrl::parse(&format!("rtmp://127.0.0.1:{port}/live/k"), None).unwrap();
    let err =
        RtmpPublisher::connect(&url, &ConnectOptions::default(), &test_headers()).unwrap_err();
    assert!(
        matches!(
            err,
            RtmpError::Closed {
                stage: Stage::Handshake
            } | RtmpError::Io {
                stage: Stage::Handshake,
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.is_rejection());
    t.join().unwrap();
}

/// A `?query` in the key reaches the server as publish args.
#[test]
fn nginx_key_with_query() {
    let Some(nginx) = nginx("") else {
        return;
    };
    let url = RtmpUrl::parse(
        &format!("rtmp://127.0.0.1:{}/live/", nginx.port()),
        Some("qkey?token=abc"),
    )
    .unwrap();
    let p = RtmpPublisher::connect(&url, &ConnectOptions::default(), &test_headers())
        .unwrap_or_else(|e| panic!("{e}\n{}", nginx.error_log()));
    p.close(Duration::from_millis(500));
    let log = nginx.error_log();
    assert!(log.contains("name='qkey' args='token=abc'"), "{log}");
}

/// Audio queued while a large keyframe is half-written reaches the server
/// before that keyframe ends, and nginx reassembles both intact: the chunk
/// interleaving is deterministic here because nginx is frozen while the
/// keyframe fills the kernel buffers, so most of it is still in the session
/// when the audio is queued.
#[test]
fn nginx_audio_overtakes_a_large_keyframe() {
    let Some(nginx) = nginx("") else {
        return;
    };
    let key = "overtake";
    let opts = ConnectOptions {
        send_buffer_bytes: Some(32 * 1024),
        ..ConnectOptions::default()
    };
    let mut p = RtmpPublisher::connect(&url_of(&nginx, key), &opts, &test_headers())
        .unwrap_or_else(|e| panic!("{e}\n{}", nginx.error_log()));
    // nginx records from the first keyframe: send a small one first.
    p.queue_media(
        MediaKind::Video,
        0,
        Bytes::from_static(&[0x17, 1, 0, 0, 0, 0x65]),
    )
    .unwrap();
    p.pump(Duration::from_millis(300)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let frozen = Frozen::new(&nginx);
    // A 900 KB keyframe (nginx-rtmp's max_message is 1 MB).
    let mut keyframe = vec![0x17, 0x01, 0, 0, 0];
    keyframe.extend((0..900_000u32).map(|i| (i % 253) as u8));
    let keyframe = Bytes::from(keyframe);
    let video_id = p
        .queue_media(MediaKind::Video, 33, keyframe.clone())
        .unwrap();
    for _ in 0..5 {
        p.pump(Duration::from_millis(20)).unwrap();
    }
    let left = p.pending_bytes();
    drop(frozen);
    assert!(
        left > 300_000 && left < keyframe.len(),
        "the keyframe is half-written: {left} bytes left"
    );
    let mut audio = vec![0xAF, 0x01];
    audio.extend_from_slice(SILENT_AAC_FRAME);
    let audio_id = p
        .queue_media(MediaKind::Audio, 40, Bytes::from(audio.clone()))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while p.pending_bytes() > 0 && Instant::now() < deadline {
        p.pump(Duration::from_millis(50)).unwrap();
    }
    // The writer's own account: the audio ended before the keyframe did.
    let ends: Vec<_> = p.take_sent().collect();
    let end_of = |id| ends.iter().find(|(i, _)| *i == id).map(|(_, e)| *e);
    assert!(end_of(audio_id) < end_of(video_id), "{ends:?}");
    p.close(Duration::from_secs(1));
    let tags = onair_testkit::wait_for(Duration::from_secs(3), || {
        let tags = read_flv_tags(&recording_of(&nginx, key)?);
        tags.iter()
            .any(|t| t.0 == flv::TAG_VIDEO && t.2.len() == keyframe.len())
            .then_some(tags)
    })
    .unwrap_or_else(|| panic!("no recording: {}", nginx.error_log()));
    let video_at = tags
        .iter()
        .position(|t| t.0 == flv::TAG_VIDEO && t.2.len() == keyframe.len())
        .unwrap();
    let audio_at = tags
        .iter()
        .position(|t| t.0 == flv::TAG_AUDIO && t.2 == audio)
        .unwrap_or_else(|| panic!("audio lost: {}", nginx.error_log()));
    assert_eq!(&tags[video_at].2[..], &keyframe[..], "keyframe intact");
    assert!(
        audio_at < video_at,
        "audio (tag {audio_at}) should arrive before the keyframe (tag {video_at})"
    );
}
