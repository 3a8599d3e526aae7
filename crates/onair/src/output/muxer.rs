//! StreamMuxer: the passive muxer of one output, and its drop decisions.
//!
//! Why it is shaped like this:
//! - It runs on the encoder threads (it is their `PacketSink`), so it never
//!   sleeps, paces or waits on the network (golden rules 1 and 2). Every
//!   decision reads a few atomics and the StreamBuffer's fill level.
//! - The seed's three flags live in `LinkFlags`: `connected` and `drop_all`
//!   (written by the send/reconnect threads) and `drop_video` (backpressure,
//!   written here).
//! - Dropping one H.264 packet corrupts every frame after it until the next
//!   IDR. So once video is dropped, the gate stays closed until a keyframe;
//!   and it only reopens below a low-water mark (hysteresis), at which point
//!   the muxer asks the VideoEncoder for an IDR so recovery takes one frame,
//!   not a GOP. Disposable frames (nal_ref_idc = 0) go first, alone.
//! - Audio is never dropped while connected, except at the StreamBuffer's
//!   hard bounds (a link slower than the audio bitrate).

use super::buffer::{Pressure, QueuedTag, StreamBuffer};
use crate::flv;
use crate::packet::{EncodedPacket, MediaKind, PacketSink};
use crate::stats::{bump, OutputCounters};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;

/// Video dropping starts when the buffer reaches this fraction of any bound.
pub const VIDEO_DROP_HIGH_WATER: f64 = 0.75;
/// Video dropping ends (and an IDR is requested) below this fraction of
/// every bound: far enough below the high-water mark not to oscillate.
pub const VIDEO_RESUME_LOW_WATER: f64 = 0.30;
/// Disposable (non-reference) frames are dropped alone above this fraction.
pub const DISPOSABLE_DROP_WATER: f64 = 0.50;

/// Something that can make the video encoder emit an IDR soon (the
/// VideoEncoder's control handle in a pipeline, a counter in tests).
pub trait KeyframeRequester: Send + Sync {
    /// Asks for the next encoded frame to be an IDR.
    fn request_keyframe(&self);
}

/// The seed's StreamMuxer flags, shared by the muxer (reads `connected` and
/// `drop_all`, owns `drop_video`), the NetworkSendThread (clears `connected`
/// when the link fails) and the ReconnectThread (sets both on success).
#[derive(Debug, Default)]
pub struct LinkFlags {
    /// A publishing session is up.
    pub connected: AtomicBool,
    /// Reconnecting: drop everything.
    pub drop_all: AtomicBool,
    /// Backpressure: drop video (set and cleared by the muxer).
    pub drop_video: AtomicBool,
}

/// Why the video gate is waiting for a keyframe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Gate {
    /// Video flows.
    Open = 0,
    /// Video was dropped for congestion: wait for a keyframe.
    AfterCongestion = 1,
    /// A new session (or none yet): the first video must be a keyframe.
    AfterDisconnect = 2,
}

impl Gate {
    fn load(a: &AtomicU8) -> Self {
        match a.load(Ordering::Acquire) {
            0 => Self::Open,
            1 => Self::AfterCongestion,
            _ => Self::AfterDisconnect,
        }
    }
}

/// The muxer of one output. Cheap to share: `Arc<StreamMuxer>` is the
/// output's `PacketSink`.
pub struct StreamMuxer {
    buffer: Arc<StreamBuffer>,
    flags: Arc<LinkFlags>,
    counters: Arc<OutputCounters>,
    keyframes: Arc<dyn KeyframeRequester>,
    /// Only the video encoder thread writes this (one video producer).
    gate: AtomicU8,
}

impl StreamMuxer {
    /// A muxer feeding `buffer`, reading `flags`, counting into `counters`.
    pub fn new(
        buffer: Arc<StreamBuffer>,
        flags: Arc<LinkFlags>,
        counters: Arc<OutputCounters>,
        keyframes: Arc<dyn KeyframeRequester>,
    ) -> Self {
        Self {
            buffer,
            flags,
            counters,
            keyframes,
            gate: AtomicU8::new(Gate::AfterDisconnect as u8),
        }
    }

    /// Called by the ReconnectThread when a new session is up: the next video
    /// packet sent must be an IDR, and one is requested now so the stream
    /// resumes at the present frame.
    pub fn on_new_session(&self) {
        self.gate
            .store(Gate::AfterDisconnect as u8, Ordering::Release);
        self.flags.drop_video.store(false, Ordering::Release);
        self.request_keyframe();
    }

    fn request_keyframe(&self) {
        bump(&self.counters.idr_requests);
        self.keyframes.request_keyframe();
    }

    fn is_up(&self) -> bool {
        self.flags.connected.load(Ordering::Acquire) && !self.flags.drop_all.load(Ordering::Acquire)
    }

    fn drop_video(&self, gate: Gate) {
        self.gate.store(gate as u8, Ordering::Release);
        let counter = match gate {
            Gate::AfterDisconnect => &self.counters.video_dropped_disconnected,
            _ => &self.counters.video_dropped_congestion,
        };
        bump(counter);
    }

    fn write_video(&self, packet: &EncodedPacket) {
        if !self.is_up() {
            self.drop_video(Gate::AfterDisconnect);
            return;
        }
        let pressure: Pressure = self.buffer.pressure();
        let worst = pressure.worst();
        if self.flags.drop_video.load(Ordering::Acquire) {
            if worst >= VIDEO_RESUME_LOW_WATER {
                self.drop_video(Gate::AfterCongestion);
                return;
            }
            // Drained: resume at the next keyframe, and make it come now.
            self.flags.drop_video.store(false, Ordering::Release);
            self.request_keyframe();
        } else if worst >= VIDEO_DROP_HIGH_WATER {
            self.start_dropping_video();
            self.drop_video(Gate::AfterCongestion);
            return;
        }
        let gate = Gate::load(&self.gate);
        if gate != Gate::Open {
            if !packet.keyframe {
                self.drop_video(gate);
                return;
            }
            self.gate.store(Gate::Open as u8, Ordering::Release);
        }
        if packet.disposable && worst >= DISPOSABLE_DROP_WATER {
            // Nothing references it: dropping it alone is harmless.
            bump(&self.counters.video_dropped_congestion);
            return;
        }
        let tag = QueuedTag {
            kind: MediaKind::Video,
            dts_ns: packet.dts_ns,
            keyframe: packet.keyframe,
            body: flv::video_tag_body(packet),
        };
        if self.buffer.push(tag).is_err() {
            // A hard bound was hit between the check and the push (audio
            // filled it): treat as congestion.
            self.start_dropping_video();
            self.drop_video(Gate::AfterCongestion);
        }
    }

    /// Enters the drop-video state: closes the keyframe gate and removes the
    /// video still queued, so the buffer drains at the speed of the link
    /// instead of after seconds of stale video, and audio keeps its room.
    fn start_dropping_video(&self) {
        self.flags.drop_video.store(true, Ordering::Release);
        self.gate
            .store(Gate::AfterCongestion as u8, Ordering::Release);
        let evicted = self.buffer.evict_video();
        self.counters
            .video_dropped_congestion
            .fetch_add(evicted, Ordering::Relaxed);
    }

    fn write_audio(&self, packet: &EncodedPacket) {
        if !self.is_up() {
            bump(&self.counters.audio_frames_dropped);
            return;
        }
        let tag = QueuedTag {
            kind: MediaKind::Audio,
            dts_ns: packet.dts_ns,
            keyframe: true,
            body: flv::audio_tag_body(packet),
        };
        if let Err(rejected) = self.buffer.push(tag.clone()) {
            // Video goes first: make room by dropping the queued video, and
            // only lose audio if the link cannot even carry that.
            tracing::debug!(?rejected, "buffer full for audio: evicting queued video");
            self.start_dropping_video();
            if self.buffer.push(tag).is_err() {
                bump(&self.counters.audio_frames_dropped);
            }
        }
    }
}

impl PacketSink for StreamMuxer {
    fn push(&self, packet: EncodedPacket) {
        match packet.kind {
            MediaKind::Video => self.write_video(&packet),
            MediaKind::Audio => self.write_audio(&packet),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::buffer::BufferLimits;
    use bytes::Bytes;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    use std::time::Duration;

    #[derive(Default)]
    struct CountingRequester(AtomicU64);
    impl KeyframeRequester for CountingRequester {
        fn request_keyframe(&self) {
            self.0.fetch_add(1, Relaxed);
        }
    }

    struct Rig {
        muxer: StreamMuxer,
        buffer: Arc<StreamBuffer>,
        flags: Arc<LinkFlags>,
        counters: Arc<OutputCounters>,
        idr: Arc<CountingRequester>,
    }

    fn rig(max_packets: usize) -> Rig {
        let limits = BufferLimits {
            max_packets,
            max_span: Duration::from_secs(100),
            max_bytes: 1 << 30,
        };
        let buffer = Arc::new(StreamBuffer::new(limits, 2_000_000));
        let flags = Arc::new(LinkFlags::default());
        let counters = Arc::new(OutputCounters::default());
        let idr = Arc::new(CountingRequester::default());
        let muxer = StreamMuxer::new(buffer.clone(), flags.clone(), counters.clone(), idr.clone());
        flags.connected.store(true, Relaxed);
        muxer.on_new_session();
        Rig {
            muxer,
            buffer,
            flags,
            counters,
            idr,
        }
    }

    fn video(ms: u64, keyframe: bool) -> EncodedPacket {
        EncodedPacket {
            kind: MediaKind::Video,
            pts_ns: ms * 1_000_000,
            dts_ns: ms * 1_000_000,
            keyframe,
            disposable: false,
            data: Bytes::from_static(&[0, 0, 0, 1, 0x65]),
        }
    }

    fn audio(ms: u64) -> EncodedPacket {
        EncodedPacket {
            kind: MediaKind::Audio,
            pts_ns: ms * 1_000_000,
            dts_ns: ms * 1_000_000,
            keyframe: true,
            disposable: false,
            data: Bytes::from_static(&[1, 2, 3]),
        }
    }

    fn drain(b: &StreamBuffer) -> Vec<QueuedTag> {
        std::iter::from_fn(|| b.pop(Duration::ZERO)).collect()
    }

    #[test]
    fn first_video_of_a_session_is_a_keyframe() {
        let r = rig(100);
        assert_eq!(r.idr.0.load(Relaxed), 1, "a new session asks for an IDR");
        r.muxer.push(video(0, false));
        r.muxer.push(audio(1));
        r.muxer.push(video(33, true));
        r.muxer.push(video(66, false));
        let kinds: Vec<_> = drain(&r.buffer)
            .iter()
            .map(|t| (t.kind, t.keyframe))
            .collect();
        assert_eq!(
            kinds,
            [
                (MediaKind::Audio, true),
                (MediaKind::Video, true),
                (MediaKind::Video, false)
            ]
        );
        assert_eq!(r.counters.video_dropped_disconnected.load(Relaxed), 1);
    }

    #[test]
    fn disconnected_drops_everything_and_counts_by_reason() {
        let r = rig(100);
        r.flags.connected.store(false, Relaxed);
        r.muxer.push(video(0, true));
        r.muxer.push(audio(0));
        r.flags.connected.store(true, Relaxed);
        r.flags.drop_all.store(true, Relaxed);
        r.muxer.push(audio(1));
        assert!(r.buffer.is_empty());
        assert_eq!(r.counters.video_dropped_disconnected.load(Relaxed), 1);
        assert_eq!(r.counters.audio_frames_dropped.load(Relaxed), 2);
    }

    #[test]
    fn congestion_drops_video_to_the_next_keyframe_with_hysteresis_and_keeps_audio() {
        let r = rig(20);
        r.muxer.push(video(0, true));
        // Fill to the high-water mark (15 of 20): video and audio.
        for i in 1..8 {
            r.muxer.push(video(i * 33, false));
        }
        for i in 0..7 {
            r.muxer.push(audio(300 + i));
        }
        assert_eq!(r.buffer.len(), 15);
        assert!(!r.flags.drop_video.load(Relaxed));
        r.muxer.push(video(8 * 33, false));
        assert!(
            r.flags.drop_video.load(Relaxed),
            "high water starts dropping"
        );
        // The queued video went with it (unsent, so the picture stays valid);
        // the audio stayed, and more audio is still accepted.
        assert_eq!(r.buffer.len(), 7);
        assert_eq!(r.counters.video_dropped_congestion.load(Relaxed), 9);
        r.muxer.push(audio(400));
        assert_eq!(r.buffer.len(), 8);
        // At 40%: still above the low-water mark, video still dropped.
        let idr_before = r.idr.0.load(Relaxed);
        r.muxer.push(video(600, true));
        assert_eq!(
            r.buffer.len(),
            8,
            "no video above low water, even a keyframe"
        );
        // Drain below low water: the next packet triggers an IDR request, and
        // inter frames are still refused until that keyframe arrives.
        for _ in 0..3 {
            r.buffer.pop(Duration::ZERO);
        }
        r.muxer.push(video(633, false));
        assert!(!r.flags.drop_video.load(Relaxed));
        assert_eq!(r.idr.0.load(Relaxed), idr_before + 1);
        r.muxer.push(video(666, false));
        r.muxer.push(video(700, true));
        r.muxer.push(video(733, false));
        let tail: Vec<_> = drain(&r.buffer).into_iter().rev().take(2).collect();
        assert!(
            tail[1].keyframe && !tail[0].keyframe,
            "resumed exactly at the keyframe"
        );
        assert_eq!(r.counters.video_dropped_congestion.load(Relaxed), 12);
        assert_eq!(r.counters.audio_frames_dropped.load(Relaxed), 0);
    }

    #[test]
    fn disposable_frames_go_first_without_closing_the_gate() {
        let r = rig(20);
        r.muxer.push(video(0, true));
        for i in 1..10 {
            r.muxer.push(audio(i));
        }
        let mut p = video(400, false);
        p.disposable = true;
        r.muxer.push(p);
        r.muxer.push(video(433, false));
        let tags = drain(&r.buffer);
        assert_eq!(tags.len(), 11, "disposable dropped, next inter frame kept");
        assert_eq!(r.counters.video_dropped_congestion.load(Relaxed), 1);
        assert!(!r.flags.drop_video.load(Relaxed));
    }

    #[test]
    fn audio_at_a_bound_evicts_queued_video_first() {
        let r = rig(6);
        r.muxer.push(video(0, true));
        r.muxer.push(video(33, false));
        r.muxer.push(video(66, false));
        r.muxer.push(video(99, false));
        for i in 0..3 {
            r.muxer.push(audio(100 + i));
        }
        // 4 video + 2 audio fill the bound (video stopped at 75%: 5 of 6);
        // the 3rd audio frame gets in by evicting the queued video.
        let kinds: Vec<_> = drain(&r.buffer).iter().map(|t| t.kind).collect();
        assert!(kinds.iter().all(|k| *k == MediaKind::Audio), "{kinds:?}");
        assert_eq!(kinds.len(), 3);
        assert_eq!(r.counters.audio_frames_dropped.load(Relaxed), 0);
        assert!(r.flags.drop_video.load(Relaxed));
        // The gate is closed: the next inter frame is refused even after drain.
        r.muxer.push(video(133, false));
        assert!(r.buffer.is_empty());
    }

    #[test]
    fn audio_is_dropped_only_at_a_hard_bound() {
        let r = rig(5);
        for i in 0..7 {
            r.muxer.push(audio(i));
        }
        assert_eq!(r.buffer.len(), 5);
        assert_eq!(r.counters.audio_frames_dropped.load(Relaxed), 2);
    }
}
