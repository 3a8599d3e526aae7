//! The `onair-record` thread's side of a recorder: the container being
//! written, the file that only ever receives whole units, commits, syncs,
//! and what a disk error does.
//!
//! Why apart from the queue: this is the only code that touches the file,
//! on the one thread that owns it.

use super::fmp4::Fmp4Writer;
use super::queue::{Queue, RecordCounters};
use super::{Event, RecordFormat, RECORD_FLUSH_INTERVAL, RECORD_SYNC_INTERVAL};
use crate::flv::{self, FlvWriter};
use crate::packet::{EncodedPacket, MediaKind, StreamHeaders, VideoCodec};
use crate::stats::{bump, LinkState};
use bytes::Bytes;
use crossbeam_channel::Sender;
use std::fs::File;
use std::io::{self, Write};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A file that receives whole units only: `write` appends to memory,
/// [`ChunkFile::commit`] hands everything to the OS in one `write`, and on
/// an error cuts the file back to the last committed length.
pub(super) struct ChunkFile {
    pub(super) file: File,
    pub(super) pending: Vec<u8>,
    pub(super) committed: u64,
    pub(super) counters: Arc<RecordCounters>,
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
    pub(super) fn commit(&mut self) -> io::Result<()> {
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
pub(super) enum Container {
    Flv {
        writer: FlvWriter<ChunkFile>,
        origin_ns: Option<u64>,
        codec: VideoCodec,
        /// Written at close (Enhanced RTMP codecs: SequenceEnd), as the
        /// live RTMP path sends it.
        sequence_end: Option<Bytes>,
        /// Timestamp of the last video tag, for the sequence end.
        last_video_ts: u32,
    },
    Mp4 {
        writer: Box<Fmp4Writer>,
        out: ChunkFile,
    },
}

impl Container {
    pub(super) fn open(
        format: RecordFormat,
        file: ChunkFile,
        headers: &StreamHeaders,
    ) -> io::Result<Self> {
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
                    sequence_end: headers.video.as_ref().and_then(flv::video_sequence_end),
                    last_video_ts: 0,
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
    pub(super) fn write(&mut self, p: &EncodedPacket) -> io::Result<bool> {
        match self {
            Self::Flv {
                writer,
                origin_ns,
                codec,
                last_video_ts,
                ..
            } => {
                let origin = *origin_ns.get_or_insert(p.dts_ns);
                let ms = p.dts_ns.saturating_sub(origin) / 1_000_000;
                let ts = u32::try_from(ms).unwrap_or(u32::MAX);
                if p.kind == MediaKind::Video {
                    *last_video_ts = ts;
                }
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

    /// What closes the container: the last MP4 fragment, or the FLV
    /// sequence end of an Enhanced RTMP codec (after every video tag).
    pub(super) fn finish(&mut self) -> io::Result<()> {
        match self {
            Self::Mp4 { writer, out } => {
                if let Some(fragment) = writer.finish()? {
                    out.write_all(&fragment)?;
                }
            }
            Self::Flv {
                writer,
                sequence_end,
                last_video_ts,
                ..
            } => {
                if let Some(end) = sequence_end.take() {
                    writer.write_tag(flv::TAG_VIDEO, *last_video_ts, &end)?;
                }
            }
        }
        Ok(())
    }

    pub(super) fn file(&mut self) -> &mut ChunkFile {
        match self {
            Self::Flv { writer, .. } => writer.get_mut(),
            Self::Mp4 { out, .. } => out,
        }
    }
}

/// Everything the writer thread owns.
pub(super) struct WriterContext {
    pub(super) queue: Arc<Queue>,
    pub(super) counters: Arc<RecordCounters>,
    pub(super) container: Container,
    pub(super) last_error: Arc<Mutex<Option<String>>>,
    pub(super) name: String,
    pub(super) output: usize,
    pub(super) events: Sender<Event>,
}

impl WriterContext {
    pub(super) fn fail(&mut self, what: &str, e: &io::Error) {
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

    pub(super) fn run(mut self) {
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
