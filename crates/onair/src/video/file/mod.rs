//! The file source: a media file (any container and codecs FFmpeg reads)
//! played in real time, optionally looped, feeding the CaptureThread and the
//! AudioEngine through the same [`VideoSource`] / [`AudioSource`] traits as
//! live capture. GPL build only (`avcodec` feature: libavformat/libavcodec).
//!
//! Why this shape:
//! - **One demuxer thread per file** ([`DEMUX_THREAD_NAME`], `demux.rs`)
//!   owns every FFmpeg object (the format context, both decoders, the
//!   scaler, the resampler): they are not `Send`, and a slow read (a file on
//!   a network share) or a costly decode must never reach an engine. When the
//!   same file feeds video and audio, it is opened once and both streams come
//!   out of one read loop, in the file's own interleaving.
//! - **The engines keep the clock.** The thread decodes ahead of what was
//!   consumed by a bounded amount ([`VIDEO_AHEAD_FRAMES`], [`AUDIO_AHEAD_MS`])
//!   and then waits, so it is paced by consumption, and consumption is paced
//!   by the engines' clock: media time 0 of the file is stream time 0. The
//!   video side ([`FileVideoSource`]) hands the CaptureThread the newest
//!   picture due at the slot's time; when the decoder is late it has nothing
//!   (`None`: the CaptureThread repeats, counted in `video_frames_duplicated`)
//!   and, once it catches up, the frames whose time passed are skipped, so
//!   picture time never drifts from the clock. The audio side
//!   (`audio::file::FileAudioSource`) gives what is decoded; a shortfall is
//!   silence (counted by the engine in `audio_silence_samples`) and the same
//!   amount is skipped once the decoder catches up, for the same reason.
//! - **Loop without a seam.** Each pass of the file continues the media
//!   timeline where the previous one ended (`pass_start + pass_length`,
//!   where the length is the longer of the two streams), and audio is padded
//!   to that length so both streams stay in step pass after pass; the
//!   resampler is never reset, so the signal is continuous.
//! - **A clear end.** Without loop, the input reports [`InputState::Ended`]
//!   once everything decoded was consumed (the last picture's time passed,
//!   the audio ring is empty): the CLI then stops cleanly (exit 0), as
//!   `ffmpeg -re -i clip` ends its stream when the clip ends. A read or
//!   decode failure (a truncated or corrupt file) reports
//!   [`InputState::Failed`] with the file's name and what failed, at once;
//!   the CLI stops with exit 1 and that message. The engines never see either:
//!   they keep repeating the last picture and filling silence until stopped.

// Outside the GPL build the front is compiled for unit tests only: nothing
// opens a file there, so what only the demuxer uses is unused.
#![cfg_attr(not(feature = "avcodec"), allow(dead_code, unused_imports))]

#[cfg(feature = "avcodec")]
mod demux;

use super::frame::I420Frame;
use super::source::VideoSource;
use crate::audio::source::AudioSource;
use crate::pipeline::{FileSpec, InputState};
use crate::Error;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Thread name, visible in `top -H` and panics.
pub const DEMUX_THREAD_NAME: &str = "onair-file";
/// The thread keeps decoding until this many pictures wait for the
/// CaptureThread (and the audio target is met): a few frames of slack
/// against a slow decode, little memory (converted pictures, at the
/// pipeline's size).
pub const VIDEO_AHEAD_FRAMES: usize = 8;
/// Pictures the file source recycles (`FramePool`): the ones decoded ahead
/// plus those the engines hold at once (the same count as the screen path's
/// [`CONVERT_POOL_SIZE`](crate::video::convert::CONVERT_POOL_SIZE): shown, handed
/// over, encoding), so in steady state no picture is allocated. A queue grown
/// past it (audio far ahead) allocates the extra ones.
pub const VIDEO_POOL_FRAMES: usize = VIDEO_AHEAD_FRAMES + crate::video::convert::CONVERT_POOL_SIZE;
/// While audio is short, the thread keeps reading past
/// [`VIDEO_AHEAD_FRAMES`] (files whose audio comes in chunks of a second or
/// more, far from the pictures of the same time), but never holds more
/// pictures than fit in this many bytes: 2 s of 1080p30, 4 s of 720p30.
/// Beyond it the audio waits (silence, counted) instead of memory growing.
pub const VIDEO_QUEUE_BYTES: usize = 192 << 20;
/// Bounds of the picture queue's length, whatever the size (see
/// [`VIDEO_QUEUE_BYTES`]).
pub const VIDEO_QUEUE_FRAMES: std::ops::RangeInclusive<usize> = 16..=120;

/// The picture queue's bound for pictures of `width x height`.
fn video_queue_max(width: u32, height: u32) -> usize {
    let bytes = (width as usize * height as usize * 3 / 2).max(1);
    (VIDEO_QUEUE_BYTES / bytes).clamp(*VIDEO_QUEUE_FRAMES.start(), *VIDEO_QUEUE_FRAMES.end())
}
/// The thread keeps decoding until this much audio waits for the engine.
pub const AUDIO_AHEAD_MS: u32 = 300;
/// Capacity of the audio ring (decoder thread -> AudioEngine), ms.
pub const AUDIO_RING_MS: u32 = 2000;
/// How long opening waits for the file to be probed and its decoders
/// opened (a file on a hung network share must not hang the start).
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long opening waits for the first [`VIDEO_AHEAD_FRAMES`] /
/// [`AUDIO_AHEAD_MS`] to be decoded, so the stream's first frame is the
/// file's first frame and not a counted duplicate. Not an error when it
/// passes: the stream starts and counts what is late.
pub const PREFETCH_WAIT: Duration = Duration::from_secs(3);
/// A picture whose time is within this of a slot's time is due in that slot
/// (the file's and the pipeline's frame times round differently to ns).
pub const DUE_SLACK_NS: u64 = 1_000_000;
/// How long the demuxer sleeps while waiting for room in the audio ring or
/// for its input (EAGAIN), and how often opening checks the prefetch.
const IDLE_POLL: Duration = Duration::from_millis(5);
/// How long the demuxer sleeps when it is far enough ahead
/// ([`VIDEO_AHEAD_FRAMES`], [`AUDIO_AHEAD_MS`]): a fraction of that slack
/// (8 frames are 133 ms even at 60 fps), so the engines never wait, without
/// waking 200 times a second for nothing (it was [`IDLE_POLL`]: ~2,400
/// context switches of the file thread in a 20 s run, more than the
/// encoder thread's).
const AHEAD_SLEEP: Duration = Duration::from_millis(20);

/// What the demuxer thread, the two sources and the Streamer share: the
/// picture queue (the only lock, held to push or pop an `Arc`) and atomics.
/// The audio samples travel in their own lock-free ring.
#[derive(Debug)]
struct Shared {
    /// `file:PATH` as the user gave it, for messages.
    name: String,
    /// Decoded pictures at the pipeline's size, in media-time order.
    video: Mutex<VecDeque<TimedPicture>>,
    /// Most pictures `video` may hold (`video_queue_max`).
    video_max: usize,
    /// Set when every source was dropped (the pipeline stopped).
    stop: AtomicBool,
    /// The demuxer reached the end of the file and will not loop: nothing
    /// more will come; `end_ns` is valid.
    finished: AtomicBool,
    /// Media time at which the last pass ends (valid once `finished`).
    end_ns: AtomicU64,
    /// The video side consumed everything (its clock passed `end_ns`).
    video_done: AtomicBool,
    /// The audio side consumed everything.
    audio_done: AtomicBool,
    /// What failed, with the file's name (first failure only).
    failure: Mutex<Option<String>>,
    /// Passes started after the first (loops), for logs and tests.
    loops: AtomicU64,
    /// Audio samples filled in because a stream was shorter than the pass
    /// (or started late), sample frames; for tests.
    padded_frames: AtomicU64,
}

impl Shared {
    /// The state of a file about to be opened: nothing decoded, nothing
    /// failed, not at its end; at most `video_max` pictures queued.
    fn new(name: String, video_max: usize) -> Self {
        Self {
            name,
            video: Mutex::new(VecDeque::new()),
            video_max,
            stop: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            end_ns: AtomicU64::new(u64::MAX),
            video_done: AtomicBool::new(false),
            audio_done: AtomicBool::new(false),
            failure: Mutex::new(None),
            loops: AtomicU64::new(0),
            padded_frames: AtomicU64::new(0),
        }
    }
}

/// One decoded picture and the media time it is due at.
#[derive(Debug)]
struct TimedPicture {
    at_ns: u64,
    picture: Arc<I420Frame>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Held only to push/pop; a panic elsewhere leaves a consistent value.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn fail(&self, what: String) {
        let mut f = lock(&self.failure);
        if f.is_none() {
            tracing::error!("{what}");
            *f = Some(what);
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Sets the stop flag when the last source holding it is dropped: the
/// demuxer thread ends after its current read (it is never joined, so a read
/// blocked on a stalled share cannot hold up the pipeline's stop).
/// It also carries the two questions the audio side asks the shared state.
#[derive(Debug)]
pub(crate) struct StopGuard(Arc<Shared>);

impl StopGuard {
    /// The demuxer reached the end and will not loop.
    pub(crate) fn finished(&self) -> bool {
        self.0.finished.load(Ordering::Acquire)
    }

    /// The audio side gave out everything there was.
    pub(crate) fn audio_drained(&self) {
        self.0.audio_done.store(true, Ordering::Release);
    }
}

impl Drop for StopGuard {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::Relaxed);
    }
}

/// The state of an opened file, for whoever decides when the run ends (the
/// Streamer, hence the CLI and the Node addon).
#[derive(Clone, Debug)]
pub struct FileStatus {
    shared: Arc<Shared>,
    has_video: bool,
    has_audio: bool,
}

impl FileStatus {
    /// Playing, played to its end (no loop), or failed (and why).
    pub fn state(&self) -> InputState {
        if let Some(f) = lock(&self.shared.failure).clone() {
            return InputState::Failed(f);
        }
        let s = &self.shared;
        let done = s.finished.load(Ordering::Acquire)
            && (!self.has_video || s.video_done.load(Ordering::Acquire))
            && (!self.has_audio || s.audio_done.load(Ordering::Acquire));
        if done {
            InputState::Ended
        } else {
            InputState::Live
        }
    }

    /// The demuxer reached the file's end and will not loop: what is
    /// decoded is all there will be (the sources may still hold some).
    pub fn finished(&self) -> bool {
        self.shared.finished.load(Ordering::Acquire)
    }

    /// Times the file started again from its beginning (`--loop`).
    pub fn loops(&self) -> u64 {
        self.shared.loops.load(Ordering::Relaxed)
    }

    /// Audio sample frames of silence put in to keep a pass's streams the
    /// same length (audio shorter than the video, or starting late).
    pub fn padded_audio_frames(&self) -> u64 {
        self.shared.padded_frames.load(Ordering::Relaxed)
    }
}

/// What the pipeline wants out of a file: pictures at its size, sound at its
/// format. `None` = that stream is not read (its packets are skipped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileWants {
    /// Output picture size (even), or no video from this file.
    pub video: Option<(u32, u32)>,
    /// Output sample rate and channel count (1 or 2), or no audio.
    pub audio: Option<(u32, u32)>,
}

/// An opened file: its sources (take each once) and its status.
pub struct FileInput {
    video: Option<FileVideoSource>,
    audio: Option<crate::audio::file::FileAudioSource>,
    status: FileStatus,
}

impl FileInput {
    #[cfg(feature = "avcodec")]
    /// Opens `spec` on a new demuxer thread and waits until its streams are
    /// known (at most [`OPEN_TIMEOUT`]) and the first frames decoded (at most
    /// [`PREFETCH_WAIT`]). Fails, naming the file, when it cannot be read or
    /// has no stream of a kind `wants` asks for.
    pub fn open(spec: &FileSpec, wants: FileWants) -> Result<FileInput, Error> {
        let name = format!("file:{}", spec.path.display());
        let source_error = |reason: String| Error::Source {
            name: name.clone(),
            reason,
        };
        let shared = Arc::new(Shared::new(
            name.clone(),
            wants.video.map_or(0, |(w, h)| video_queue_max(w, h)),
        ));
        let ring = wants.audio.map(|(rate, channels)| {
            let frames = (u64::from(rate) * u64::from(AUDIO_RING_MS) / 1000).max(1) as usize;
            rtrb::RingBuffer::<f32>::new(frames * channels as usize)
        });
        let (producer, consumer) = match ring {
            Some((p, c)) => (Some(p), Some(c)),
            None => (None, None),
        };
        let (opened_tx, opened_rx) = crossbeam_channel::bounded(1);
        let job = demux::Job {
            path: spec.path.clone(),
            looping: spec.looping,
            wants,
            shared: Arc::clone(&shared),
            audio_out: producer,
            opened: opened_tx,
        };
        let stopper = Arc::new(StopGuard(Arc::clone(&shared)));
        std::thread::Builder::new()
            .name(DEMUX_THREAD_NAME.into())
            .spawn(move || demux::run(job))
            .map_err(|e| Error::io(format!("starting the demuxer thread of {name}"), e))?;
        let info = match opened_rx.recv_timeout(OPEN_TIMEOUT) {
            Ok(Ok(info)) => info,
            Ok(Err(reason)) => return Err(source_error(reason)),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                return Err(source_error(
                    "the demuxer thread ended while opening".into(),
                ))
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                return Err(source_error(format!(
                    "not opened within {} s (is the file on a stalled share?)",
                    OPEN_TIMEOUT.as_secs()
                )))
            }
        };
        tracing::info!(file = %name, "{info}");
        let has_video = wants.video.is_some();
        let has_audio = wants.audio.is_some();
        let status = FileStatus {
            shared: Arc::clone(&shared),
            has_video,
            has_audio,
        };
        let input = FileInput {
            video: wants.video.map(|size| FileVideoSource {
                shared: Arc::clone(&shared),
                _stop: Arc::clone(&stopper),
                last: None,
                size,
                name: name.clone(),
            }),
            audio: consumer.zip(wants.audio).map(|(c, (_, channels))| {
                crate::audio::file::FileAudioSource::new(
                    c,
                    channels,
                    Arc::clone(&stopper),
                    name.clone(),
                )
            }),
            status,
        };
        input.wait_for_prefetch(wants);
        if let InputState::Failed(reason) = input.status.state() {
            return Err(source_error(reason));
        }
        Ok(input)
    }

    /// Waits (bounded) until the demuxer filled its first look-ahead.
    fn wait_for_prefetch(&self, wants: FileWants) {
        let deadline = Instant::now() + PREFETCH_WAIT;
        let audio_target = wants
            .audio
            .map_or(0, |(rate, ch)| (rate * AUDIO_AHEAD_MS / 1000 * ch) as usize);
        while Instant::now() < deadline {
            let s = &self.status.shared;
            if lock(&s.failure).is_some() || s.finished.load(Ordering::Acquire) {
                return;
            }
            let queued = lock(&s.video).len();
            let video_ok = wants.video.is_none() || queued >= VIDEO_AHEAD_FRAMES.min(2);
            // A full picture queue: the demuxer waits for the clock whatever
            // the audio has (a file whose audio comes far from its pictures).
            let audio_ok = queued >= s.video_max
                || self
                    .audio
                    .as_ref()
                    .is_none_or(|a| a.buffered_samples() >= audio_target / 2);
            if video_ok && audio_ok {
                return;
            }
            std::thread::sleep(IDLE_POLL);
        }
        tracing::warn!(
            file = %self.status.shared.name,
            "the first frames took longer than {} s to decode",
            PREFETCH_WAIT.as_secs()
        );
    }

    /// The picture source (once; `None` if video was not wanted).
    pub fn take_video(&mut self) -> Option<FileVideoSource> {
        self.video.take()
    }

    /// The sound source (once; `None` if audio was not wanted).
    pub fn take_audio(&mut self) -> Option<crate::audio::file::FileAudioSource> {
        self.audio.take()
    }

    /// The file's status (shared with the demuxer thread).
    pub fn status(&self) -> FileStatus {
        self.status.clone()
    }
}

#[cfg(feature = "avcodec")]
/// Opens the files the two specs name: one [`FileInput`] when both name the
/// same file with the same loop setting (one demuxer thread reads both
/// streams), else one each. Returns the sources and the statuses.
pub fn open_file_sources(
    video: Option<(&FileSpec, u32, u32)>,
    audio: Option<(&FileSpec, u32, u32)>,
) -> Result<OpenedFiles, Error> {
    let mut opened = OpenedFiles::default();
    match (video, audio) {
        (Some((v, w, h)), Some((a, rate, ch))) if v == a => {
            let mut input = FileInput::open(
                v,
                FileWants {
                    video: Some((w, h)),
                    audio: Some((rate, ch)),
                },
            )?;
            opened.video = input.take_video().map(|v| Box::new(v) as _);
            opened.audio = input.take_audio().map(|a| Box::new(a) as _);
            opened.statuses.push(input.status());
        }
        (v, a) => {
            if let Some((v, w, h)) = v {
                let mut input = FileInput::open(
                    v,
                    FileWants {
                        video: Some((w, h)),
                        audio: None,
                    },
                )?;
                opened.video = input.take_video().map(|v| Box::new(v) as _);
                opened.statuses.push(input.status());
            }
            if let Some((a, rate, ch)) = a {
                let mut input = FileInput::open(
                    a,
                    FileWants {
                        video: None,
                        audio: Some((rate, ch)),
                    },
                )?;
                opened.audio = input.take_audio().map(|a| Box::new(a) as _);
                opened.statuses.push(input.status());
            }
        }
    }
    Ok(opened)
}

/// What [`open_file_sources`] opened.
#[derive(Default)]
pub struct OpenedFiles {
    /// The picture source, if video comes from a file.
    pub video: Option<Box<dyn VideoSource>>,
    /// The sound source, if audio comes from a file.
    pub audio: Option<Box<dyn AudioSource>>,
    /// One per opened file.
    pub statuses: Vec<FileStatus>,
}

/// The video side of a file: hands the CaptureThread the newest picture due
/// at each slot (see the module docs for lateness and skipping).
pub struct FileVideoSource {
    shared: Arc<Shared>,
    _stop: Arc<StopGuard>,
    /// The picture on screen now: repeated (as a new grab, not a counted
    /// duplicate) while the file's next picture is not due yet.
    last: Option<Arc<I420Frame>>,
    size: (u32, u32),
    name: String,
}

impl VideoSource for FileVideoSource {
    fn grab(&mut self, _index: u64, pts_ns: u64) -> Option<Arc<I420Frame>> {
        let s = &self.shared;
        let due = pts_ns.saturating_add(DUE_SLACK_NS);
        let (newest, more_queued) = {
            let mut q = lock(&s.video);
            let mut newest = None;
            while q.front().is_some_and(|p| p.at_ns <= due) {
                newest = q.pop_front();
            }
            (newest, !q.is_empty())
        };
        if let Some(p) = newest {
            self.last = Some(Arc::clone(&p.picture));
            return Some(p.picture);
        }
        let finished = s.finished.load(Ordering::Acquire);
        if finished && pts_ns >= s.end_ns.load(Ordering::Relaxed) {
            s.video_done.store(true, Ordering::Release);
        }
        if more_queued || finished {
            // On time: the file's next picture is simply not due yet (a file
            // slower than the output rate), or the file is over.
            return self.last.clone();
        }
        // Nothing decoded for this slot: the decoder is late (counted by the
        // CaptureThread as a duplicate).
        None
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn size_hint(&self) -> Option<(u32, u32)> {
        Some(self.size)
    }
}

#[cfg(test)]
mod tests;
