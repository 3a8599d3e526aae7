//! Recorder: writes what the encoders produce to a local file (FLV or
//! fragmented MP4), beside any number of stream outputs.
//!
//! Why its own queue and thread: a recording must not lose anything because
//! a network link is down or slow, and a slow or failing disk must not slow
//! the encoders or the other outputs. So the recorder is one more
//! `PacketSink` on the Fanout whose `push` only appends to a generous,
//! bounded queue (packets, bytes and timestamp span: about
//! [`RECORD_QUEUE_SPAN`] of media); the `onair-record` thread does the file
//! I/O. If the disk cannot keep up the queue overflows: packets are dropped,
//! counted (`record_packets_dropped`), logged once, and video waits for the
//! next keyframe so the file never holds a broken GOP. A write error (ENOSPC,
//! EIO) is logged once, counted (`record_errors`), the file is cut back to
//! its last complete tag/fragment and the recorder stops; the stream goes on.
//!
//! Crash safety: the writer appends only whole units (FLV tags, MP4
//! fragments) to the file, in one `write` per flush, at least every
//! [`RECORD_FLUSH_INTERVAL`]; a kill -9 therefore leaves a file that ends on
//! a unit boundary and loses at most ~1-2 s. `fdatasync` runs every
//! [`RECORD_SYNC_INTERVAL`] (the page cache survives a process crash; the
//! sync bounds what a power loss takes) and at close.

mod fmp4;
mod queue;
mod writer;

pub use fmp4::{Fmp4Writer, FRAGMENT_DURATION_NS, VIDEO_TIMESCALE};

use self::queue::{Queue, QueueState, RecordCounters, RecordSink};
use self::writer::{ChunkFile, Container, WriterContext};
use super::muxer::KeyframeRequester;
use super::Event;
use crate::packet::{PacketSink, StreamHeaders};
use crate::stats::{EngineCounters, LinkState, Stats};
use crate::{Error, Result};
use crossbeam_channel::Sender;
use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Queue bound in media time: ten seconds of slack for a slow disk.
pub const RECORD_QUEUE_SPAN: Duration = Duration::from_secs(10);
/// Queue bound in packets (10 s at 120 fps video + 48 kHz AAC fits).
pub const RECORD_QUEUE_MAX_PACKETS: usize = 4096;
/// Queue bound in bytes: this many times the span at the stream's bitrate
/// (encoders overshoot on keyframes)...
pub const RECORD_QUEUE_BITRATE_FACTOR: u64 = 2;
/// ...and never below this.
pub const RECORD_QUEUE_MIN_BYTES: usize = 16 << 20;
/// Whole units are handed to the OS at least this often.
pub const RECORD_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// `fdatasync` at most this often (and at close).
pub const RECORD_SYNC_INTERVAL: Duration = Duration::from_secs(5);

/// File formats a recorder writes, chosen by extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordFormat {
    /// `.flv`: FLV tags, the same bodies as the RTMP stream.
    Flv,
    /// `.mp4`: fragmented MP4 (playable after a crash).
    Mp4,
}

impl RecordFormat {
    /// The format for `path`'s extension (case-insensitive `.flv`, `.mp4`).
    pub fn from_path(path: &Path) -> Result<Self> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("flv") => Ok(Self::Flv),
            Some("mp4") | Some("m4v") => Ok(Self::Mp4),
            _ => Err(Error::InvalidConfig {
                option: "record",
                reason: format!(
                    "{}: unknown file type; use a .flv or .mp4 name",
                    path.display()
                ),
            }),
        }
    }
}

/// Settings of one recorder.
#[derive(Clone, Debug)]
pub struct RecordConfig {
    /// The file to write.
    pub path: PathBuf,
    /// Format; `None` = from the extension.
    pub format: Option<RecordFormat>,
    /// Replace an existing file (otherwise refuse to start).
    pub overwrite: bool,
    /// Queue bound in media time.
    pub max_span: Duration,
    /// Queue bound in packets.
    pub max_packets: usize,
    /// Queue bound in bytes; `None` = from the bitrate.
    pub max_bytes: Option<usize>,
}

impl RecordConfig {
    /// Defaults for `path` (format from the extension, no overwrite).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            format: None,
            overwrite: false,
            max_span: RECORD_QUEUE_SPAN,
            max_packets: RECORD_QUEUE_MAX_PACKETS,
            max_bytes: None,
        }
    }
}

/// A running recorder: one file, one queue, one `onair-record` thread.
pub struct Recorder {
    name: String,
    sink: Arc<RecordSink>,
    counters: Arc<RecordCounters>,
    last_error: Arc<Mutex<Option<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl Recorder {
    /// Opens the file (refusing an existing one unless `overwrite`), writes
    /// the container header and starts the writer thread. `keyframes` is
    /// asked for an IDR when `running` (a recorder added to a live pipeline
    /// starts at the next keyframe).
    pub fn start(
        output: usize,
        cfg: RecordConfig,
        headers: &StreamHeaders,
        keyframes: Option<Arc<dyn KeyframeRequester>>,
        events: Sender<Event>,
    ) -> Result<Self> {
        let format = match cfg.format {
            Some(f) => f,
            None => RecordFormat::from_path(&cfg.path)?,
        };
        let name = cfg.path.display().to_string();
        let mut opts = OpenOptions::new();
        opts.write(true);
        if cfg.overwrite {
            opts.create(true).truncate(true);
        } else {
            opts.create_new(true);
        }
        let file = opts.open(&cfg.path).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                Error::FileExists { path: name.clone() }
            } else {
                Error::io(format!("cannot create recording {name}"), e)
            }
        })?;
        let counters = Arc::new(RecordCounters::default());
        let chunk = ChunkFile {
            file,
            pending: Vec::with_capacity(1 << 20),
            committed: 0,
            counters: counters.clone(),
        };
        let mut container = Container::open(format, chunk, headers)
            .map_err(|e| Error::io(format!("writing recording {name}"), e))?;
        container
            .file()
            .commit()
            .map_err(|e| Error::io(format!("writing recording {name}"), e))?;
        let total_bps = headers.total_bitrate_bps();
        let by_rate = total_bps / 8 * cfg.max_span.as_secs().max(1) * RECORD_QUEUE_BITRATE_FACTOR;
        let max_bytes = cfg.max_bytes.unwrap_or_else(|| {
            usize::try_from(by_rate)
                .unwrap_or(usize::MAX)
                .max(RECORD_QUEUE_MIN_BYTES)
        });
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState {
                wait_keyframe: headers.video.is_some(),
                ..QueueState::default()
            }),
            ready: Condvar::new(),
            max_span_ns: u64::try_from(cfg.max_span.as_nanos()).unwrap_or(u64::MAX),
            max_packets: cfg.max_packets.max(1),
            max_bytes,
        });
        let last_error = Arc::new(Mutex::new(None));
        let ctx = WriterContext {
            queue: queue.clone(),
            counters: counters.clone(),
            container,
            last_error: last_error.clone(),
            name: name.clone(),
            output,
            events,
        };
        let thread = std::thread::Builder::new()
            .name("onair-record".into())
            .spawn(move || ctx.run())
            .map_err(|e| Error::io("spawning the recorder thread", e))?;
        if let Some(k) = keyframes {
            k.request_keyframe();
        }
        Ok(Self {
            sink: Arc::new(RecordSink {
                queue,
                counters: counters.clone(),
                name: name.clone(),
            }),
            name,
            counters,
            last_error,
            thread: Some(thread),
        })
    }

    /// The sink the encoders push into.
    pub fn sink(&self) -> Arc<dyn PacketSink> {
        self.sink.clone()
    }

    /// The file path, as given.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// live (writing), stopped, or failed (a write error stopped it).
    pub fn state(&self) -> LinkState {
        self.counters.state.get()
    }

    /// The write error that stopped the recorder, if any.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// A stats snapshot: `bytes_sent` = bytes written, `*_sent` = written,
    /// `buffer_*` = the recorder's queue, plus `record_packets_dropped` and
    /// `record_errors`.
    pub fn stats(&self, engine: &EngineCounters, audio_frame_samples: u64) -> Stats {
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let c = &self.counters;
        let mut s = Stats::default();
        s.fill_engine(engine, audio_frame_samples);
        s.state = c.state.get().as_str();
        s.bytes_sent = ld(&c.bytes_written);
        s.video_packets_sent = ld(&c.video_packets_written);
        s.audio_frames_sent = ld(&c.audio_frames_written);
        s.buffer_packets = ld(&c.queue_packets);
        s.buffer_bytes = ld(&c.queue_bytes);
        s.buffer_ms = ld(&c.queue_ms);
        s.record_packets_dropped = Some(ld(&c.packets_dropped));
        s.record_errors = Some(ld(&c.errors));
        s.output = self.name.clone();
        s.last_error = self.last_error();
        s
    }

    /// Writes what is queued, closes the file (last fragment, sync) and
    /// joins the thread. Call after the encoders stopped pushing to it.
    pub fn stop(&mut self) {
        {
            let mut st = self
                .sink
                .queue
                .state
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            st.closed = true;
        }
        self.sink.queue.ready.notify_all();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!(recording = %self.name, "the recorder thread panicked");
                self.counters.state.set(LinkState::Failed);
            }
        }
        if self.counters.state.get() != LinkState::Failed {
            self.counters.state.set(LinkState::Stopped);
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests;
