//! The file source's timing rules, without a file (no libav: these run in
//! the default build's unit tests too). The file source against real files
//! is tested in `tests/libav/file_source.rs` (GPL build).

use super::*;
use std::sync::atomic::Ordering;

/// The video side's rules, without a file: the newest due picture, none
/// (a counted duplicate) when the decoder is late, the last one repeated
/// when the next is simply not due yet, and the passed ones skipped.
#[test]
fn video_side_takes_the_picture_due_and_reports_lateness() {
    let shared = Arc::new(Shared::new("file:test".into(), 16));
    let mut src = FileVideoSource {
        shared: Arc::clone(&shared),
        _stop: Arc::new(StopGuard(Arc::clone(&shared))),
        last: None,
        size: (16, 16),
        name: "file:test".into(),
    };
    let picture = |n: u8| {
        let mut f = I420Frame::black(16, 16);
        f.y[0] = n;
        Arc::new(f)
    };
    let ms = 1_000_000u64;
    // Nothing decoded yet: late.
    assert!(src.grab(0, 0).is_none());
    {
        let mut q = lock(&shared.video);
        for (n, at) in [(1u8, 0), (2, 40 * ms), (3, 80 * ms), (4, 120 * ms)] {
            q.push_back(TimedPicture {
                at_ns: at,
                picture: picture(n),
            });
        }
    }
    assert_eq!(src.grab(1, 0).map(|f| f.y[0]), Some(1));
    // 33 ms: picture 2 not due yet -> picture 1 again (not a duplicate).
    assert_eq!(src.grab(2, 33 * ms).map(|f| f.y[0]), Some(1));
    // 100 ms: 2 and 3 are due; 3 is shown, 2 skipped.
    assert_eq!(src.grab(3, 100 * ms).map(|f| f.y[0]), Some(3));
    assert_eq!(src.grab(4, 133 * ms).map(|f| f.y[0]), Some(4));
    // Queue empty, file not over: the decoder is late.
    assert!(src.grab(5, 166 * ms).is_none());
    // Over: the last picture stays, and the end is reported once passed.
    shared.end_ns.store(160 * ms, Ordering::Relaxed);
    shared.finished.store(true, Ordering::Release);
    assert_eq!(src.grab(6, 200 * ms).map(|f| f.y[0]), Some(4));
    assert!(shared.video_done.load(Ordering::Acquire));
    drop(src);
    assert!(
        shared.stop.load(Ordering::Relaxed),
        "dropping stops the demuxer"
    );
}

/// The audio side: a shortfall is owed and skipped when the samples come,
/// so the sound stays at its place on the clock.
#[test]
fn audio_side_skips_what_the_engine_filled_with_silence() {
    let shared = Arc::new(Shared::new("file:test".into(), 16));
    let (mut producer, consumer) = rtrb::RingBuffer::<f32>::new(1000);
    let mut src = crate::audio::file::FileAudioSource::new(
        consumer,
        2,
        Arc::new(StopGuard(Arc::clone(&shared))),
        "file:test".into(),
    );
    let mut out = [0.0f32; 20];
    // Late: 10 frames asked, none there.
    assert_eq!(src.read(&mut out), 0);
    // 30 frames arrive (values = frame number): the first 10 are owed.
    for i in 0..30 {
        producer.push(i as f32).expect("room");
        producer.push(i as f32).expect("room");
    }
    assert_eq!(src.read(&mut out), 10);
    assert_eq!(out[0], 10.0, "frames 0..10 were skipped");
    assert_eq!(src.skipped_frames(), 10);
    assert_eq!(src.read(&mut out), 10);
    assert_eq!(out[0], 20.0);
    // Over: a short read is the end, not lateness.
    shared.finished.store(true, Ordering::Release);
    assert_eq!(src.read(&mut out), 0);
    assert!(shared.audio_done.load(Ordering::Acquire));
}
