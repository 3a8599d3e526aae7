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

pub use fmp4::{Fmp4Writer, FRAGMENT_DURATION_NS, VIDEO_TIMESCALE};

use super::muxer::KeyframeRequester;
use super::Event;
use crate::flv::{self, FlvWriter};
use crate::packet::{EncodedPacket, MediaKind, PacketSink, StreamHeaders, VideoCodec};
use crate::stats::{bump, AtomicLinkState, EngineCounters, LinkState, Stats};
use crate::{Error, Result};
use crossbeam_channel::Sender;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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

/// Counters of one recorder (writer thread and `push`).
#[derive(Debug)]
struct RecordCounters {
    state: AtomicLinkState,
    bytes_written: AtomicU64,
    video_packets_written: AtomicU64,
    audio_frames_written: AtomicU64,
    packets_dropped: AtomicU64,
    errors: AtomicU64,
    queue_packets: AtomicU64,
    queue_bytes: AtomicU64,
    queue_ms: AtomicU64,
}

impl Default for RecordCounters {
    fn default() -> Self {
        Self {
            state: AtomicLinkState::new(LinkState::Live),
            bytes_written: AtomicU64::new(0),
            video_packets_written: AtomicU64::new(0),
            audio_frames_written: AtomicU64::new(0),
            packets_dropped: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            queue_packets: AtomicU64::new(0),
            queue_bytes: AtomicU64::new(0),
            queue_ms: AtomicU64::new(0),
        }
    }
}

#[derive(Default)]
struct QueueState {
    packets: VecDeque<EncodedPacket>,
    bytes: usize,
    /// Video is skipped until a keyframe: at start (a recorder added while
    /// running) and after an overflow dropped video.
    wait_keyframe: bool,
    /// True once a first video keyframe was queued (drops before it are the
    /// normal start of a file, not losses).
    video_started: bool,
    /// The writer stopped for good: everything is dropped and counted.
    failed: bool,
    /// Stop requested: the writer drains what is queued and exits.
    closed: bool,
    /// The "disk too slow" warning was logged.
    warned: bool,
}

struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
    max_span_ns: u64,
    max_packets: usize,
    max_bytes: usize,
}

/// What the encoders push into. Never blocks beyond a short lock.
struct RecordSink {
    queue: Arc<Queue>,
    counters: Arc<RecordCounters>,
    name: String,
}

impl RecordSink {
    fn publish(&self, st: &QueueState) {
        let c = &self.counters;
        c.queue_packets
            .store(st.packets.len() as u64, Ordering::Relaxed);
        c.queue_bytes.store(st.bytes as u64, Ordering::Relaxed);
        let span = match (st.packets.front(), st.packets.back()) {
            (Some(a), Some(b)) => b.dts_ns.saturating_sub(a.dts_ns) / 1_000_000,
            _ => 0,
        };
        c.queue_ms.store(span, Ordering::Relaxed);
    }
}

impl PacketSink for RecordSink {
    fn push(&self, packet: EncodedPacket) {
        let mut st = self.queue.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.failed || st.closed {
            if st.failed {
                bump(&self.counters.packets_dropped);
            }
            return;
        }
        if packet.kind == MediaKind::Video && st.wait_keyframe {
            if !packet.keyframe {
                if st.video_started {
                    bump(&self.counters.packets_dropped);
                }
                return;
            }
            st.wait_keyframe = false;
            st.video_started = true;
        }
        let span = st
            .packets
            .front()
            .map_or(0, |f| packet.dts_ns.saturating_sub(f.dts_ns));
        let full = st.packets.len() >= self.queue.max_packets
            || st.bytes + packet.data.len() > self.queue.max_bytes
            || span > self.queue.max_span_ns;
        if full {
            bump(&self.counters.packets_dropped);
            if packet.kind == MediaKind::Video {
                st.wait_keyframe = true;
            }
            if !st.warned {
                st.warned = true;
                tracing::error!(
                    recording = %self.name,
                    "the disk cannot keep up with the recording: dropping packets (counted in record_packets_dropped)"
                );
            }
            return;
        }
        st.bytes += packet.data.len();
        st.packets.push_back(packet);
        self.publish(&st);
        drop(st);
        self.queue.ready.notify_one();
    }
}

/// A file that receives whole units only: `write` appends to memory,
/// [`ChunkFile::commit`] hands everything to the OS in one `write`, and on
/// an error cuts the file back to the last committed length.
struct ChunkFile {
    file: File,
    pending: Vec<u8>,
    committed: u64,
    counters: Arc<RecordCounters>,
}

impl Write for ChunkFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ChunkFile {
    fn commit(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.file.write_all(&self.pending) {
            // Leave a file that ends on a whole tag / fragment.
            let _ = self.file.set_len(self.committed);
            self.pending.clear();
            return Err(e);
        }
        self.committed += self.pending.len() as u64;
        self.counters
            .bytes_written
            .store(self.committed, Ordering::Relaxed);
        self.pending.clear();
        Ok(())
    }
}

/// The container being written.
enum Container {
    Flv {
        writer: FlvWriter<ChunkFile>,
        origin_ns: Option<u64>,
        codec: VideoCodec,
    },
    Mp4 {
        writer: Box<Fmp4Writer>,
        out: ChunkFile,
    },
}

impl Container {
    fn open(format: RecordFormat, file: ChunkFile, headers: &StreamHeaders) -> io::Result<Self> {
        match format {
            RecordFormat::Flv => {
                let mut writer = FlvWriter::for_headers(file, headers)?;
                writer.write_tag(flv::TAG_SCRIPT, 0, &flv::script_tag_body(headers))?;
                if let Some(v) = &headers.video {
                    writer.write_tag(flv::TAG_VIDEO, 0, &flv::video_sequence_header(v))?;
                }
                if let Some(a) = &headers.audio {
                    writer.write_tag(flv::TAG_AUDIO, 0, &flv::aac_sequence_header(a))?;
                }
                Ok(Self::Flv {
                    writer,
                    origin_ns: None,
                    codec: headers.video.as_ref().map(|v| v.codec).unwrap_or_default(),
                })
            }
            RecordFormat::Mp4 => {
                let writer = Box::new(Fmp4Writer::new(headers));
                let mut out = file;
                out.write_all(&writer.init_segment()?)?;
                Ok(Self::Mp4 { writer, out })
            }
        }
    }

    /// Appends one packet; true if a whole fragment is ready to commit.
    fn write(&mut self, p: &EncodedPacket) -> io::Result<bool> {
        match self {
            Self::Flv {
                writer,
                origin_ns,
                codec,
            } => {
                let origin = *origin_ns.get_or_insert(p.dts_ns);
                let ms = p.dts_ns.saturating_sub(origin) / 1_000_000;
                let ts = u32::try_from(ms).unwrap_or(u32::MAX);
                writer.write_tag(flv::tag_type(p.kind), ts, &flv::tag_body(*codec, p))?;
                Ok(false)
            }
            Self::Mp4 { writer, out } => match writer.push(p)? {
                Some(fragment) => {
                    out.write_all(&fragment)?;
                    Ok(true)
                }
                None => Ok(false),
            },
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        if let Self::Mp4 { writer, out } = self {
            if let Some(fragment) = writer.finish()? {
                out.write_all(&fragment)?;
            }
        }
        Ok(())
    }

    fn file(&mut self) -> &mut ChunkFile {
        match self {
            Self::Flv { writer, .. } => writer.get_mut(),
            Self::Mp4 { out, .. } => out,
        }
    }
}

/// Everything the writer thread owns.
struct WriterContext {
    queue: Arc<Queue>,
    counters: Arc<RecordCounters>,
    container: Container,
    last_error: Arc<Mutex<Option<String>>>,
    name: String,
    output: usize,
    events: Sender<Event>,
}

impl WriterContext {
    fn fail(&mut self, what: &str, e: &io::Error) {
        bump(&self.counters.errors);
        let message = format!("recording {} failed ({what}): {e}", self.name);
        tracing::error!("{message}; the recording stops here, other outputs go on");
        if let Ok(mut slot) = self.last_error.lock() {
            *slot = Some(message.clone());
        }
        self.counters.state.set(LinkState::Failed);
        let lost = {
            let mut st = self.queue.state.lock().unwrap_or_else(|e| e.into_inner());
            st.failed = true;
            let n = st.packets.len() as u64;
            st.packets.clear();
            st.bytes = 0;
            n
        };
        self.counters
            .packets_dropped
            .fetch_add(lost, Ordering::Relaxed);
        self.counters.queue_packets.store(0, Ordering::Relaxed);
        self.counters.queue_bytes.store(0, Ordering::Relaxed);
        self.counters.queue_ms.store(0, Ordering::Relaxed);
        let _ = self.events.try_send(Event::Error {
            output: self.output,
            rejected: false,
            message,
        });
    }

    fn run(mut self) {
        let mut last_flush = Instant::now();
        let mut last_sync = Instant::now();
        loop {
            let (batch, closed) = {
                let mut st = self.queue.state.lock().unwrap_or_else(|e| e.into_inner());
                if st.packets.is_empty() && !st.closed {
                    let wait = RECORD_FLUSH_INTERVAL.saturating_sub(last_flush.elapsed());
                    st = match self.queue.ready.wait_timeout(st, wait) {
                        Ok((g, _)) => g,
                        Err(e) => e.into_inner().0,
                    };
                }
                let batch: Vec<EncodedPacket> = st.packets.drain(..).collect();
                st.bytes = 0;
                (batch, st.closed)
            };
            self.counters.queue_packets.store(0, Ordering::Relaxed);
            self.counters.queue_bytes.store(0, Ordering::Relaxed);
            self.counters.queue_ms.store(0, Ordering::Relaxed);
            let mut commit_now = false;
            for (i, p) in batch.iter().enumerate() {
                match self.container.write(p) {
                    Ok(fragment_done) => {
                        commit_now |= fragment_done;
                        match p.kind {
                            MediaKind::Video => bump(&self.counters.video_packets_written),
                            MediaKind::Audio => bump(&self.counters.audio_frames_written),
                        }
                    }
                    Err(e) => {
                        self.counters
                            .packets_dropped
                            .fetch_add((batch.len() - i) as u64, Ordering::Relaxed);
                        self.fail("muxing", &e);
                        return;
                    }
                }
            }
            if closed {
                break;
            }
            if commit_now || last_flush.elapsed() >= RECORD_FLUSH_INTERVAL {
                last_flush = Instant::now();
                if let Err(e) = self.container.file().commit() {
                    self.fail("writing", &e);
                    return;
                }
                if last_sync.elapsed() >= RECORD_SYNC_INTERVAL {
                    last_sync = Instant::now();
                    if let Err(e) = self.container.file().file.sync_data() {
                        self.fail("syncing", &e);
                        return;
                    }
                }
            }
        }
        let result = self
            .container
            .finish()
            .and_then(|()| self.container.file().commit())
            .and_then(|()| self.container.file().file.sync_all());
        if let Err(e) = result {
            self.fail("closing", &e);
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
        let total_bps = headers
            .video
            .as_ref()
            .map_or(0, |v| u64::from(v.bitrate_bps))
            + headers
                .audio
                .as_ref()
                .map_or(0, |a| u64::from(a.bitrate_bps));
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
mod tests {
    use super::*;
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
        let mut r = Recorder::start(0, RecordConfig::new(&path), &headers(), None, events())
            .expect("start");
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
}
