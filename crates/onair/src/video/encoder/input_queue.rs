//! How many frames wait between the CaptureThread and the video encoder
//! thread (the pipeline's bounded channel, used with `try_send`).
//!
//! Why a queue at all, and why this long: the capture side never waits for
//! the encoder (golden rule 1), so a frame that finds the queue full is
//! skipped (counted). An encoder that takes every frame in about the same
//! time (openh264) needs one slot. The encoders that hold frames do not:
//! SVT-AV1 takes ~55 frames without blocking, then `avcodec_send_frame`
//! waits while whole mini-GOPs leave its pipeline; those waits, not a lack
//! of CPU, were the frames it skipped (docs/benchmarks.md, "Encoders:
//! quality and CPU"). The queue absorbs them, bounded in time and bytes.

/// Media time the queue in front of an encoder that holds frames (every
/// libavcodec one: look-ahead, mini-GOPs, frame threads) can hold, so that
/// a burst of its blocking is absorbed instead of skipping frames. Measured
/// (docs/benchmarks.md, "Encoders: quality and CPU"; 720p30, preset 12,
/// keyint 2 s): SVT-AV1 takes 54 frames without blocking, then its first
/// `avcodec_send_frame` waits 160-200 ms (1-1.4 s with the machine's load
/// at 4-6), and one or two calls wait 30-380 ms again every 60 frames (each
/// GOP), while it averages 0.5 core; with one slot each wait skipped frames
/// (7 in a row at the first). Half a second covers those waits on a quiet machine (OBS
/// queues up to 16 raw frames for its encoders, `MAX_CACHE_SIZE` in
/// libobs' video-io.c). What it costs: nothing while the encoder keeps up
/// on average (the queue drains after each burst); an encoder too slow for
/// the frame rate keeps it full, adding this much latency on top of the
/// frames it skips.
pub const ENCODER_BURST_SLACK_MS: u64 = 500;
/// Most bytes of pictures that queue holds, whatever the size and rate:
/// 32 pictures of 1080p (more than the 30 of the slack at 60 fps), 8 of
/// 2160p.
pub const ENCODER_QUEUE_BYTES: usize = 96 << 20;

/// Length of the frame queue in front of an encoder (see
/// [`ENCODER_BURST_SLACK_MS`]): 1 unless the encoder `holds_frames`; then
/// that much media at `fps`, at most [`ENCODER_QUEUE_BYTES`] of
/// `width x height` I420 pictures, at least 1.
pub fn input_queue_frames(holds_frames: bool, width: u32, height: u32, fps: u32) -> usize {
    if !holds_frames {
        return 1;
    }
    let frames = (u64::from(fps) * ENCODER_BURST_SLACK_MS).div_ceil(1000);
    let picture = (width as usize * height as usize * 3 / 2).max(1);
    usize::try_from(frames)
        .unwrap_or(usize::MAX)
        .min(ENCODER_QUEUE_BYTES / picture)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// How SVT-AV1 takes frames (docs/benchmarks.md, "Encoders: quality and
    /// CPU"): most `avcodec_send_frame` calls return in a fraction of a
    /// millisecond, then one waits ~200 ms for a mini-GOP (16 frames) to leave
    /// its pipeline. On average it keeps up with 30 fps easily (16 frames in
    /// ~215 ms here).
    const BURST_EVERY: u64 = 16;
    const BURST_WAIT: Duration = Duration::from_millis(200);

    /// Offers `slots` frames at `fps` to a queue of `depth` with `try_send`, as
    /// the CaptureThread does (paced by deadlines; a slot the producer itself
    /// missed by more than a frame is passed over, not offered), to a consumer
    /// that blocks like SVT-AV1. Returns the frames that found the queue full.
    fn skipped_by_bursty_encoder(depth: usize, fps: u32, slots: u32) -> u64 {
        let (tx, rx) = crossbeam_channel::bounded::<u32>(depth);
        let consumer = std::thread::spawn(move || {
            let mut taken = 0u64;
            while rx.recv().is_ok() {
                taken += 1;
                std::thread::sleep(if taken.is_multiple_of(BURST_EVERY) {
                    BURST_WAIT
                } else {
                    Duration::from_millis(1)
                });
            }
        });
        let interval = Duration::from_secs(1) / fps;
        let start = Instant::now();
        let mut skipped = 0;
        for slot in 0..slots {
            let due = start + interval * slot;
            let now = Instant::now();
            if now > due + interval {
                continue;
            }
            std::thread::sleep(due.saturating_duration_since(now));
            if tx.try_send(slot).is_err() {
                skipped += 1;
            }
        }
        drop(tx);
        consumer.join().expect("consumer thread");
        skipped
    }

    #[test]
    fn encoder_bursts_are_absorbed_by_the_input_queue() {
        // Three of SVT-AV1's waits at 720p30 (2 s): the queue the pipeline gives
        // an encoder that holds frames takes them without a skip, where the one
        // slot it had before skipped ~5 frames at each (the control, run at the
        // same time, proves the bursts bite).
        let (fps, slots) = (30, 60);
        let control = std::thread::spawn(move || skipped_by_bursty_encoder(1, fps, slots));
        let depth = input_queue_frames(true, 1280, 720, fps);
        let skipped = skipped_by_bursty_encoder(depth, fps, slots);
        let control = control.join().expect("control thread");
        assert!(
            control >= 3,
            "a one-frame queue skipped only {control} frames: the bursts did not bite"
        );
        assert_eq!(skipped, 0, "a {depth}-frame queue skipped {skipped} frames");
    }

    #[test]
    fn one_frame_without_bursts_and_bounded_in_bytes() {
        assert_eq!(input_queue_frames(false, 1280, 720, 30), 1);
        assert_eq!(input_queue_frames(true, 1280, 720, 30), 15);
        assert_eq!(input_queue_frames(true, 1920, 1080, 60), 30);
        // 3840x2160 I420 is 12.4 MB a picture: the byte cap, not the half second.
        let uhd = input_queue_frames(true, 3840, 2160, 60);
        assert_eq!(uhd, ENCODER_QUEUE_BYTES / (3840 * 2160 * 3 / 2));
        assert!((1..30).contains(&uhd));
    }
}
