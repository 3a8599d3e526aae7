//! StreamBuffer: the bounded queue between a StreamMuxer and its
//! NetworkSendThread, and the one lock under which every drop decision of
//! the output is taken.
//!
//! Why it measures what it measures:
//! - Latency is the span of *timestamps* queued (newest dts minus oldest), not
//!   wall time since some packet: that is what a viewer would wait for.
//! - Bytes the send thread already handed to the RTMP session or the kernel
//!   are invisible to a plain queue, yet on Linux they can hold seconds of
//!   media. The send thread measures the media time they hold from the
//!   timestamps it wrote (`set_backlog_ms`): exact whatever the bitrate,
//!   which adaptive bitrate moves, and it is added in.
//! - Three hard bounds (packets, span, bytes) keep memory flat whatever the
//!   network does; the StreamMuxer stops video well before them (see
//!   `Pressure`). Audio may overdraw the packet and span bounds by a fixed
//!   factor (`Admission::push_within`, the muxer's `AUDIO_OVERDRAFT`), never
//!   the byte bound: so it is only lost when the link carries less than the
//!   audio bitrate for seconds, not when it stalls for a moment.
//!
//! Why one lock for queue *and* flags: a drop decision reads the fill level
//! and the keyframe gate, then pushes or evicts. Three threads take such
//! decisions (the two encoder threads through the muxer, and the send and
//! reconnect threads when a session ends or begins); if the check and the
//! action were not under one owner, an inter frame could be queued right
//! after the audio thread evicted the frame it references. So the muxer
//! decides inside [`StreamBuffer::admit`], and sessions begin and end
//! through [`StreamBuffer::begin_session`] / [`StreamBuffer::end_session`].
//! The lock is held for a decision, a push or a pop only, never across I/O,
//! and the Condvar lets the send thread sleep when the queue is empty.

use super::muxer::MuxFlags;
use crate::packet::MediaKind;
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Default packet bound (the seed's value).
pub const DEFAULT_MAX_PACKETS: usize = 100;
/// Default timestamp-span bound (the seed's value).
pub const DEFAULT_MAX_SPAN: Duration = Duration::from_millis(2000);
/// Floor of the default byte bound; the bound grows with the bitrate.
pub const MIN_DEFAULT_MAX_BYTES: usize = 1024 * 1024;

/// The three bounds of a StreamBuffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferLimits {
    /// At most this many packets queued.
    pub max_packets: usize,
    /// At most this span of timestamps (plus kernel backlog) queued.
    pub max_span: Duration,
    /// At most this many payload bytes queued.
    pub max_bytes: usize,
}

impl BufferLimits {
    /// The seed's defaults, with a byte cap of twice `max_span` at the total
    /// bitrate (never below 1 MiB): room for the span, not for a backlog.
    pub fn for_bitrate(total_bps: u64) -> Self {
        Self::for_bitrate_and_span(total_bps, DEFAULT_MAX_SPAN)
    }

    /// Like [`for_bitrate`](Self::for_bitrate) with another span bound: the
    /// byte cap follows the span (twice `max_span` at `total_bps`), so a
    /// longer buffer is not cut short by a byte cap sized for the default.
    pub fn for_bitrate_and_span(total_bps: u64, max_span: Duration) -> Self {
        let span_bytes = u128::from(total_bps / 8) * max_span.as_millis() / 1000;
        let max_bytes = usize::try_from(span_bytes * 2)
            .unwrap_or(usize::MAX)
            .max(MIN_DEFAULT_MAX_BYTES);
        Self {
            max_packets: DEFAULT_MAX_PACKETS,
            max_span,
            max_bytes,
        }
    }
}

/// One FLV tag body waiting to be sent.
#[derive(Clone, Debug)]
pub struct QueuedTag {
    /// Audio or video.
    pub kind: MediaKind,
    /// Decode time on the master clock, ns.
    pub dts_ns: u64,
    /// Video keyframe (always true for audio).
    pub keyframe: bool,
    /// The FLV tag body (see `crate::flv`).
    pub body: Bytes,
}

/// How full the buffer is, as fractions of each bound (1.0 = at the bound).
/// The StreamMuxer's drop policy reads this.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Pressure {
    /// Queued packets / max_packets.
    pub packets: f64,
    /// (Timestamp span + backlog ms) / max_span.
    pub latency: f64,
    /// Queued bytes / max_bytes.
    pub bytes: f64,
}

impl Pressure {
    /// The worst of the three fractions.
    pub fn worst(&self) -> f64 {
        self.packets.max(self.latency).max(self.bytes)
    }
}

/// Why `push` refused a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// The packet bound is reached.
    Packets,
    /// The span bound would be exceeded.
    Span,
    /// The byte bound would be exceeded.
    Bytes,
}

#[derive(Debug, Default)]
struct Queue {
    tags: VecDeque<QueuedTag>,
    bytes: usize,
    newest_dts_ns: u64,
}

impl Queue {
    fn span_ns(&self) -> u64 {
        self.tags
            .front()
            .map_or(0, |oldest| self.newest_dts_ns.saturating_sub(oldest.dts_ns))
    }

    /// Empties the queue; returns what was dropped as (video, audio) counts.
    fn clear(&mut self) -> (u64, u64) {
        let video = self
            .tags
            .iter()
            .filter(|t| t.kind == MediaKind::Video)
            .count() as u64;
        let audio = self.tags.len() as u64 - video;
        *self = Queue::default();
        (video, audio)
    }
}

/// What the lock guards: the queue and the muxer's flags and gate.
#[derive(Debug, Default)]
struct State {
    queue: Queue,
    flags: MuxFlags,
}

/// The queue as the StreamMuxer sees it while it decides, inside
/// [`StreamBuffer::admit`]: every read and change here happens under the
/// buffer's lock, so nothing moves between a check and the action.
pub struct Admission<'a> {
    state: &'a mut State,
    limits: BufferLimits,
    backlog_ms: u64,
    pushed: bool,
}

impl Admission<'_> {
    /// The muxer's flags and keyframe gate.
    pub fn flags(&mut self) -> &mut MuxFlags {
        &mut self.state.flags
    }

    /// How full the queue is against each bound.
    pub fn pressure(&self) -> Pressure {
        let q = &self.state.queue;
        pressure(
            &self.limits,
            q.tags.len(),
            q.bytes,
            q.span_ns() / 1_000_000 + self.backlog_ms,
        )
    }

    /// Queues `tag` unless it would break a bound; gives it back if not.
    pub fn push(&mut self, tag: QueuedTag) -> Result<(), (Rejected, QueuedTag)> {
        self.push_within(tag, 1)
    }

    /// Like [`push`](Self::push), with the packet and span bounds
    /// multiplied by `overdraft` (the byte bound stays as it is: it is the
    /// memory bound). The muxer gives audio this room so that a link that
    /// stalls for a moment (a retransmission timeout, a large keyframe still
    /// in the kernel) delays the sound instead of cutting it.
    pub fn push_within(
        &mut self,
        tag: QueuedTag,
        overdraft: u32,
    ) -> Result<(), (Rejected, QueuedTag)> {
        let q = &mut self.state.queue;
        let max_packets = self.limits.max_packets.saturating_mul(overdraft as usize);
        let max_span_ms =
            (self.limits.max_span.as_millis() as u64).saturating_mul(u64::from(overdraft));
        if q.tags.len() >= max_packets {
            return Err((Rejected::Packets, tag));
        }
        if q.bytes + tag.body.len() > self.limits.max_bytes {
            return Err((Rejected::Bytes, tag));
        }
        let newest = q.newest_dts_ns.max(tag.dts_ns);
        let oldest = q
            .tags
            .front()
            .map_or(tag.dts_ns, |t| t.dts_ns.min(tag.dts_ns));
        let span_ms = newest.saturating_sub(oldest) / 1_000_000 + self.backlog_ms;
        if !q.tags.is_empty() && span_ms > max_span_ms {
            return Err((Rejected::Span, tag));
        }
        q.bytes += tag.body.len();
        q.newest_dts_ns = newest;
        q.tags.push_back(tag);
        self.pushed = true;
        Ok(())
    }

    /// Removes every queued video tag (they are all unsent, so the picture
    /// stays valid as long as no video follows until a keyframe: the
    /// muxer's gate sees to that). Returns how many were removed. This is
    /// how room is made for audio: video always goes first.
    pub fn evict_video(&mut self) -> u64 {
        let q = &mut self.state.queue;
        let before = q.tags.len();
        let mut freed = 0usize;
        q.tags.retain(|t| {
            let keep = t.kind != MediaKind::Video;
            if !keep {
                freed += t.body.len();
            }
            keep
        });
        q.bytes -= freed;
        (before - q.tags.len()) as u64
    }
}

fn pressure(limits: &BufferLimits, packets: usize, bytes: usize, latency_ms: u64) -> Pressure {
    Pressure {
        packets: packets as f64 / limits.max_packets.max(1) as f64,
        latency: latency_ms as f64 / limits.max_span.as_millis().max(1) as f64,
        bytes: bytes as f64 / limits.max_bytes.max(1) as f64,
    }
}

/// The bounded queue. Shared (`Arc`) by one StreamMuxer (producer, called
/// from the encoder threads), one NetworkSendThread (consumer; ends
/// sessions) and the ReconnectThread (begins sessions).
#[derive(Debug)]
pub struct StreamBuffer {
    limits: BufferLimits,
    state: Mutex<State>,
    not_empty: Condvar,
    /// Media past the queue but not yet on the wire (RTMP session +
    /// kernel), in ms at the bitrate of the moment; the send thread writes it.
    backlog_ms: AtomicU64,
}

impl StreamBuffer {
    /// An empty buffer with `limits`, before any session (everything
    /// offered is dropped until [`begin_session`](Self::begin_session)).
    pub fn new(limits: BufferLimits) -> Self {
        Self {
            limits,
            state: Mutex::new(State::default()),
            not_empty: Condvar::new(),
            backlog_ms: AtomicU64::new(0),
        }
    }

    /// The configured bounds.
    pub fn limits(&self) -> BufferLimits {
        self.limits
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the queue inconsistent
        // (every mutation is a single push/pop plus counters), so recover.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn backlog_ms(&self) -> u64 {
        self.backlog_ms.load(Ordering::Relaxed)
    }

    /// Runs one drop decision of the muxer, and the push or eviction it
    /// leads to, under the buffer's lock.
    pub fn admit<R>(&self, decide: impl FnOnce(&mut Admission<'_>) -> R) -> R {
        let mut state = self.lock();
        let mut a = Admission {
            state: &mut state,
            limits: self.limits,
            backlog_ms: self.backlog_ms(),
            pushed: false,
        };
        let r = decide(&mut a);
        let pushed = a.pushed;
        drop(state);
        if pushed {
            self.not_empty.notify_one();
        }
        r
    }

    /// A session is up (ReconnectThread): empties the queue, sets
    /// `connected`, clears `drop_all` and `drop_video`, and closes the
    /// keyframe gate so the session's first video is a keyframe. Returns what
    /// was dropped as (video, audio) counts.
    pub fn begin_session(&self) -> (u64, u64) {
        let mut s = self.lock();
        s.flags = MuxFlags::new_session();
        s.queue.clear()
    }

    /// The session is gone (NetworkSendThread): clears `connected`, sets
    /// `drop_all` and empties the queue. Returns what was dropped as
    /// (video, audio) counts.
    pub fn end_session(&self) -> (u64, u64) {
        let mut s = self.lock();
        s.flags = MuxFlags::down();
        self.backlog_ms.store(0, Ordering::Relaxed);
        s.queue.clear()
    }

    /// The muxer's flags as they are now (stats, tests).
    pub fn flags(&self) -> MuxFlags {
        self.lock().flags
    }

    /// Takes the oldest tag, waiting up to `wait` for one.
    pub fn pop(&self, wait: Duration) -> Option<QueuedTag> {
        let mut s = self.lock();
        if s.queue.tags.is_empty() && !wait.is_zero() {
            s = self
                .not_empty
                .wait_timeout_while(s, wait, |s| s.queue.tags.is_empty())
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        let tag = s.queue.tags.pop_front()?;
        s.queue.bytes -= tag.body.len();
        Some(tag)
    }

    /// Reports the media time (ms) already past the queue but not yet
    /// acknowledged (RTMP session output plus the kernel's send queue).
    /// Called by the send thread, which knows the timestamps it wrote.
    pub fn set_backlog_ms(&self, ms: u64) {
        self.backlog_ms.store(ms, Ordering::Relaxed);
    }

    /// Packets queued.
    pub fn len(&self) -> usize {
        self.lock().queue.tags.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Latency in ms: timestamp span of the queue plus the backlog.
    pub fn latency_ms(&self) -> u64 {
        self.lock().queue.span_ns() / 1_000_000 + self.backlog_ms()
    }

    /// A consistent snapshot: (packets, bytes, latency ms).
    pub fn snapshot(&self) -> (usize, usize, u64) {
        let s = self.lock();
        (
            s.queue.tags.len(),
            s.queue.bytes,
            s.queue.span_ns() / 1_000_000 + self.backlog_ms(),
        )
    }

    /// How full the buffer is against each bound.
    pub fn pressure(&self) -> Pressure {
        let (packets, bytes, latency_ms) = self.snapshot();
        pressure(&self.limits, packets, bytes, latency_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(kind: MediaKind, ms: u64, len: usize) -> QueuedTag {
        QueuedTag {
            kind,
            dts_ns: ms * 1_000_000,
            keyframe: true,
            body: Bytes::from(vec![0u8; len]),
        }
    }

    fn push(b: &StreamBuffer, t: QueuedTag) -> Result<(), Rejected> {
        b.admit(|a| a.push(t).map_err(|(r, _)| r))
    }

    fn limits(packets: usize, span_ms: u64, bytes: usize) -> BufferLimits {
        BufferLimits {
            max_packets: packets,
            max_span: Duration::from_millis(span_ms),
            max_bytes: bytes,
        }
    }

    #[test]
    fn packet_bound_rejects_the_extra_packet() {
        let b = StreamBuffer::new(limits(3, 10_000, 1 << 20));
        for i in 0..3 {
            assert_eq!(push(&b, tag(MediaKind::Audio, i, 10)), Ok(()));
        }
        assert_eq!(
            push(&b, tag(MediaKind::Audio, 3, 10)),
            Err(Rejected::Packets)
        );
        assert_eq!(b.len(), 3);
    }

    #[test]
    fn byte_bound_rejects_what_would_overflow() {
        let b = StreamBuffer::new(limits(100, 10_000, 100));
        assert_eq!(push(&b, tag(MediaKind::Video, 0, 60)), Ok(()));
        assert_eq!(push(&b, tag(MediaKind::Video, 1, 60)), Err(Rejected::Bytes));
        assert_eq!(push(&b, tag(MediaKind::Audio, 1, 40)), Ok(()));
        assert_eq!(b.snapshot().1, 100);
    }

    #[test]
    fn latency_is_the_timestamp_span_not_wall_time() {
        let b = StreamBuffer::new(limits(100, 2000, 1 << 20));
        push(&b, tag(MediaKind::Video, 1000, 1)).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(
            b.latency_ms(),
            0,
            "one packet spans nothing, however long it waited"
        );
        push(&b, tag(MediaKind::Audio, 1500, 1)).unwrap();
        assert_eq!(b.latency_ms(), 500);
        // Out-of-order arrival between streams does not shrink the span.
        push(&b, tag(MediaKind::Video, 1400, 1)).unwrap();
        assert_eq!(b.latency_ms(), 500);
        b.pop(Duration::ZERO).unwrap();
        assert_eq!(b.latency_ms(), 0, "oldest is now 1500 == newest");
    }

    #[test]
    fn span_bound_rejects_and_backlog_counts() {
        let b = StreamBuffer::new(limits(100, 1000, 1 << 20));
        push(&b, tag(MediaKind::Audio, 0, 1)).unwrap();
        assert_eq!(
            push(&b, tag(MediaKind::Audio, 1001, 1)),
            Err(Rejected::Span)
        );
        push(&b, tag(MediaKind::Audio, 600, 1)).unwrap();
        b.set_backlog_ms(300);
        assert_eq!(b.latency_ms(), 900);
        assert_eq!(push(&b, tag(MediaKind::Audio, 800, 1)), Err(Rejected::Span));
        let p = b.pressure();
        assert!((p.latency - 0.9).abs() < 1e-9, "{p:?}");
    }

    #[test]
    fn clear_counts_by_kind_and_pop_waits() {
        let b = std::sync::Arc::new(StreamBuffer::new(limits(100, 5000, 1 << 20)));
        push(&b, tag(MediaKind::Video, 0, 5)).unwrap();
        push(&b, tag(MediaKind::Audio, 1, 5)).unwrap();
        push(&b, tag(MediaKind::Audio, 2, 5)).unwrap();
        assert_eq!(b.end_session(), (1, 2));
        assert!(b.is_empty());
        assert_eq!(b.snapshot(), (0, 0, 0));
        assert!(b.pop(Duration::from_millis(5)).is_none());
        let b2 = b.clone();
        let t = std::thread::spawn(move || b2.pop(Duration::from_secs(5)));
        std::thread::sleep(Duration::from_millis(20));
        push(&b, tag(MediaKind::Audio, 3, 5)).unwrap();
        let got = t.join().unwrap().expect("woken by push");
        assert_eq!(got.dts_ns, 3_000_000);
    }

    #[test]
    fn evicting_video_keeps_audio_in_order() {
        let b = StreamBuffer::new(limits(100, 5000, 1 << 20));
        push(&b, tag(MediaKind::Audio, 0, 5)).unwrap();
        push(&b, tag(MediaKind::Video, 1, 50)).unwrap();
        push(&b, tag(MediaKind::Audio, 2, 5)).unwrap();
        push(&b, tag(MediaKind::Video, 3, 50)).unwrap();
        assert_eq!(b.admit(|a| a.evict_video()), 2);
        assert_eq!(b.snapshot().1, 10);
        let left: Vec<u64> = std::iter::from_fn(|| b.pop(Duration::ZERO))
            .map(|t| t.dts_ns)
            .collect();
        assert_eq!(left, [0, 2_000_000]);
    }

    #[test]
    fn default_byte_cap_scales_with_bitrate() {
        assert_eq!(
            BufferLimits::for_bitrate(100_000).max_bytes,
            MIN_DEFAULT_MAX_BYTES
        );
        // 2660 kbit/s for 2 s, twice: 1.33 MB.
        assert_eq!(BufferLimits::for_bitrate(2_660_000).max_bytes, 1_330_000);
    }
}
