//! The recorder's tests: files it writes, what it refuses, and what a slow or
//! failing disk does.

use super::*;
use crate::flv;
use crate::packet::{EncodedPacket, MediaKind};
use bytes::Bytes;

fn headers() -> StreamHeaders {
    crate::packet::test_headers()
}

fn video(i: u64, key: bool) -> EncodedPacket {
    EncodedPacket {
        kind: MediaKind::Video,
        pts_ns: i * 33_333_333,
        dts_ns: i * 33_333_333,
        keyframe: key,
        disposable: false,
        data: Bytes::from(vec![0, 0, 0, 1, 0x65]),
    }
}

fn events() -> Sender<Event> {
    crossbeam_channel::bounded(16).0
}

#[test]
fn record_refuses_existing_file_without_overwrite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("x.flv");
    std::fs::write(&path, b"keep me").expect("write");
    let err = Recorder::start(0, RecordConfig::new(&path), &headers(), None, events())
        .err()
        .expect("must refuse");
    assert!(matches!(err, Error::FileExists { .. }), "{err}");
    assert!(err.to_string().contains("x.flv"));
    assert_eq!(std::fs::read(&path).expect("read"), b"keep me");
    let mut cfg = RecordConfig::new(&path);
    cfg.overwrite = true;
    let mut r = Recorder::start(0, cfg, &headers(), None, events()).expect("overwrite");
    r.stop();
    assert!(std::fs::read(&path).expect("read").starts_with(b"FLV"));
}

#[test]
fn record_rejects_unknown_extension_and_unwritable_dir() {
    let err = RecordFormat::from_path(Path::new("a.avi")).expect_err("avi");
    assert!(matches!(
        err,
        Error::InvalidConfig {
            option: "record",
            ..
        }
    ));
    let err = Recorder::start(
        0,
        RecordConfig::new("/nonexistent-dir/x.mp4"),
        &headers(),
        None,
        events(),
    )
    .err()
    .expect("unwritable");
    assert!(err.to_string().contains("/nonexistent-dir/x.mp4"), "{err}");
}

#[test]
fn record_flv_starts_with_keyframe_and_counts_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("x.flv");
    let mut r =
        Recorder::start(0, RecordConfig::new(&path), &headers(), None, events()).expect("start");
    let sink = r.sink();
    sink.push(video(0, false)); // before the first keyframe: skipped
    sink.push(video(1, true));
    sink.push(video(2, false));
    r.stop();
    let s = r.stats(&EngineCounters::default(), 1024);
    assert_eq!(s.video_packets_sent, 2);
    assert_eq!(s.record_packets_dropped, Some(0));
    assert_eq!(s.state, "stopped");
    let bytes = std::fs::read(&path).expect("read");
    assert_eq!(s.bytes_sent, bytes.len() as u64);
}

#[test]
fn record_queue_overflow_drops_and_waits_for_keyframe() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("x.mp4");
    let mut cfg = RecordConfig::new(&path);
    cfg.max_packets = 2;
    let r = Recorder::start(0, cfg, &headers(), None, events()).expect("start");
    // Hold the queue lock so the writer cannot drain while we push.
    let sink = r.sink.clone();
    {
        let mut st = sink.queue.state.lock().expect("lock");
        st.wait_keyframe = false;
        st.video_started = true;
        st.packets.push_back(video(0, true));
        st.packets.push_back(video(1, false));
    }
    // The writer may have drained meanwhile; fill again until a drop.
    let mut i = 2;
    while r.counters.packets_dropped.load(Ordering::Relaxed) == 0 && i < 10_000 {
        let mut st = sink.queue.state.lock().expect("lock");
        while st.packets.len() < 2 {
            st.packets.push_back(video(i, false));
            i += 1;
        }
        drop(st);
        sink.push(video(i, false));
        i += 1;
    }
    assert!(r.counters.packets_dropped.load(Ordering::Relaxed) >= 1);
    assert!(sink.queue.state.lock().expect("lock").wait_keyframe);
}

/// First (body) bytes of every FLV tag of type `tag_type` in `bytes`.
fn flv_tags(bytes: &[u8], tag_type: u8) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut pos = 13;
    while pos + 11 <= bytes.len() {
        let size = u32::from_be_bytes([0, bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]]);
        let body = pos + 11;
        let end = body + size as usize;
        if end > bytes.len() {
            break;
        }
        if bytes[pos] == tag_type {
            out.push(bytes[body..end.min(body + 2)].to_vec());
        }
        pos = end + 4;
    }
    out
}

#[test]
fn record_added_and_removed_while_running() {
    use crate::pipeline::{AudioSettings, Streamer, StreamerConfig, VideoSettings};
    let dir = tempfile::tempdir().expect("tempdir");
    let first = dir.path().join("first.flv");
    let video = VideoSettings {
        width: 320,
        height: 240,
        bitrate_bps: 300_000,
        ..VideoSettings::default()
    };
    let streamer = Streamer::start(StreamerConfig {
        video: Some(video),
        audio: Some(AudioSettings::default()),
        outputs: Vec::new(),
        records: vec![RecordConfig::new(&first)],
    })
    .expect("record-only pipeline starts at once");
    std::thread::sleep(Duration::from_millis(1500));
    let second = dir.path().join("second.flv");
    let id = streamer
        .add_recorder(RecordConfig::new(&second))
        .expect("add");
    assert_eq!(streamer.stats().len(), 2);
    std::thread::sleep(Duration::from_millis(1500));
    let removed = streamer.remove_output(id).expect("remove");
    assert_eq!(removed.state, "stopped");
    assert!(removed.video_packets_sent > 10, "{removed:?}");
    assert_eq!(removed.record_packets_dropped, Some(0));
    assert!(streamer.remove_output(id).is_err(), "already removed");
    assert_eq!(streamer.stats().len(), 1);
    std::thread::sleep(Duration::from_millis(500));
    let stats = streamer.stop();
    assert_eq!(stats.len(), 1);
    assert!(stats[0].video_packets_sent > removed.video_packets_sent);
    for path in [&first, &second] {
        let bytes = std::fs::read(path).expect("read");
        let video = flv_tags(&bytes, flv::TAG_VIDEO);
        // [0] is the sequence header; the first frame must be a keyframe.
        assert!(video.len() > 10, "{}", path.display());
        assert_eq!(video[0], [0x17, 0x00]);
        assert_eq!(
            video[1],
            [0x17, 0x01],
            "{}: first frame is a keyframe",
            path.display()
        );
    }
}
