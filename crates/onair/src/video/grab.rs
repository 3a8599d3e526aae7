//! GrabThread: runs a video source whose work can block (a screen grab over
//! X11, its conversion to I420, a reconnect to a lost display) on a thread of
//! its own, so the CaptureThread only picks up the latest finished picture.
//!
//! Why: the CaptureThread owns the frame cadence (golden rule 1). A screen
//! grab costs milliseconds on a healthy local server, but a remote display can
//! take a whole `X_IO_TIMEOUT` per request, a `GetImage` fallback pushes 8 MB
//! through a socket, and a reconnect resolves a name and opens TCP. None of
//! that may happen on the CaptureThread. Here the grabber works at its own
//! pace (never faster than the frame rate); the CaptureThread's `grab` takes
//! what is ready, or gets `None` and repeats the last picture (counted as a
//! duplicate). The hand-over is one slot under a `Mutex` held only to swap an
//! `Arc`, never across a grab.
//!
//! Policies: [`GRAB_THREAD_NAME`]; the grabber sleeps until the next frame
//! slot after each grab, and after a grab that found nothing (the source lost
//! its display) it waits [`IDLE_RETRY`] before asking again.

use super::frame::I420Frame;
use super::source::VideoSource;
use crate::clock::Rate;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Thread name, visible in `top -H` and panics.
pub const GRAB_THREAD_NAME: &str = "onair-grab";
/// After a grab that returned nothing, wait this long before the next one
/// (the source is reconnecting at its own interval; no need to spin).
pub const IDLE_RETRY: Duration = Duration::from_millis(20);

/// What the grab thread and the CaptureThread share.
#[derive(Debug, Default)]
struct Shared {
    /// The newest finished picture not yet taken by the CaptureThread.
    latest: Mutex<Option<Arc<I420Frame>>>,
    stop: AtomicBool,
    /// Pictures the grabber produced that the CaptureThread never took
    /// (the grabber was faster than the frame slots for a moment).
    replaced: AtomicU64,
}

/// A [`VideoSource`] that runs another one on its own thread ([`GRAB_THREAD_NAME`]).
pub struct GrabThread {
    shared: Arc<Shared>,
    handle: Option<JoinHandle<()>>,
    name: String,
    size_hint: Option<(u32, u32)>,
}

impl GrabThread {
    /// Moves `source` to a new grab thread that grabs at most `fps` times a
    /// second. The inner source's `index` and `pts_ns` are the grabber's own
    /// count and its time since start: sources that paint them (the test
    /// pattern) should not be wrapped; the CaptureThread stamps every frame
    /// with its own slot anyway.
    pub fn spawn(source: Box<dyn VideoSource>, fps: Rate) -> std::io::Result<GrabThread> {
        let name = source.name().to_string();
        let size_hint = source.size_hint();
        let shared = Arc::new(Shared::default());
        let thread_shared = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name(GRAB_THREAD_NAME.into())
            .spawn(move || run(source, fps, &thread_shared))?;
        Ok(GrabThread {
            shared,
            handle: Some(handle),
            name,
            size_hint,
        })
    }

    /// Pictures grabbed but superseded before the CaptureThread took them.
    pub fn replaced_frames(&self) -> u64 {
        self.shared.replaced.load(Ordering::Relaxed)
    }
}

fn run(mut source: Box<dyn VideoSource>, fps: Rate, shared: &Shared) {
    let interval = Duration::from_nanos(fps.interval_ns().max(1));
    let started = Instant::now();
    let mut index = 0u64;
    let mut next = started;
    while !shared.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
            continue;
        }
        let pts_ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        match source.grab(index, pts_ns) {
            Some(frame) => {
                let previous = lock(&shared.latest).replace(frame);
                if previous.is_some() {
                    shared.replaced.fetch_add(1, Ordering::Relaxed);
                }
                // The next slot after this one; after a slow grab, not a burst
                // of catch-up grabs.
                next = (next + interval).max(Instant::now());
            }
            None => next = Instant::now() + IDLE_RETRY,
        }
        index += 1;
    }
    tracing::debug!(source = source.name(), "grab thread stopped");
}

/// The slot's lock: held only to swap an `Arc`, so a poisoned lock (a panic
/// elsewhere while holding it) still holds a consistent value.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl VideoSource for GrabThread {
    fn grab(&mut self, _index: u64, _pts_ns: u64) -> Option<Arc<I420Frame>> {
        lock(&self.shared.latest).take()
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn size_hint(&self) -> Option<(u32, u32)> {
        self.size_hint
    }
}

impl Drop for GrabThread {
    /// Tells the grabber to stop without waiting for it: a grab blocked on a
    /// stalled display must not hold up whoever drops the source (the
    /// pipeline stopping). The thread ends after its current grab.
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        drop(self.handle.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::MasterClock;
    use crate::stats::EngineCounters;
    use crate::video::capture::CaptureThread;

    /// A source whose grab blocks for `block` every `every` grabs (a stalled
    /// remote display), and otherwise returns a tiny picture.
    struct Slow {
        grabs: u64,
        every: u64,
        block: Duration,
    }
    impl VideoSource for Slow {
        fn grab(&mut self, _index: u64, _pts_ns: u64) -> Option<Arc<I420Frame>> {
            self.grabs += 1;
            if self.grabs.is_multiple_of(self.every) {
                std::thread::sleep(self.block);
            }
            Some(Arc::new(I420Frame::black(16, 16)))
        }
        fn name(&self) -> &str {
            "slow"
        }
        fn size_hint(&self) -> Option<(u32, u32)> {
            Some((16, 16))
        }
    }

    /// Runs a CaptureThread on `source` for `run`, draining its output.
    fn capture(source: Box<dyn VideoSource>, run: Duration) -> Arc<EngineCounters> {
        let counters = Arc::new(EngineCounters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = crossbeam_channel::bounded(4);
        let t = CaptureThread::spawn(
            MasterClock::start(),
            Rate::per_second(30),
            source,
            tx,
            counters.clone(),
            stop.clone(),
        )
        .expect("capture thread");
        let end = Instant::now() + run;
        while Instant::now() < end {
            while rx.try_recv().is_ok() {}
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, Ordering::Release);
        t.join();
        counters
    }

    /// The point of the module, shown both ways: a source that blocks for
    /// 400 ms makes the CaptureThread late by that much when it runs there,
    /// and not at all behind a GrabThread (its slots are duplicates instead).
    #[test]
    fn a_blocking_source_stalls_the_capture_thread_unless_it_grabs_on_its_own() {
        let slow = || Slow {
            grabs: 0,
            every: 20,
            block: Duration::from_millis(400),
        };
        let direct = capture(Box::new(slow()), Duration::from_millis(2500));
        let direct_late = direct.capture_late_max_us.load(Ordering::Relaxed);
        assert!(direct_late >= 300_000, "direct: late {direct_late} µs");

        let grabbed = GrabThread::spawn(Box::new(slow()), Rate::per_second(30)).expect("spawn");
        let counters = capture(Box::new(grabbed), Duration::from_millis(2500));
        let late = counters.capture_late_max_us.load(Ordering::Relaxed);
        let dup = counters.video_frames_duplicated.load(Ordering::Relaxed);
        let new = counters.video_frames_captured.load(Ordering::Relaxed);
        eprintln!("behind a GrabThread: late {late} µs, {new} new, {dup} duplicated");
        assert!(
            late < onair_testkit::SCHEDULING_SLACK.as_micros() as u64,
            "late {late} µs"
        );
        assert!(dup >= 10, "the stalls show as duplicates: {dup}");
        assert!(new >= 30, "pictures still flow: {new}");
        assert_eq!(counters.video_frames_skipped.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn drop_does_not_wait_for_a_blocked_grab() {
        let g = GrabThread::spawn(
            Box::new(Slow {
                grabs: 0,
                every: 1,
                block: Duration::from_secs(5),
            }),
            Rate::per_second(30),
        )
        .expect("spawn");
        std::thread::sleep(Duration::from_millis(50));
        let t = Instant::now();
        drop(g);
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    }
}
