//! StreamMuxer: the passive muxer of one output, and its drop decisions.
//!
//! Why it is shaped like this:
//! - It runs on the encoder threads (it is their `PacketSink`), so it never
//!   sleeps, paces or waits on the network (golden rules 1 and 2). It builds
//!   the FLV tag body, then takes its decision inside
//!   [`StreamBuffer::admit`]: the fill level, the flags and the keyframe gate
//!   are read and the push or eviction done under the buffer's one lock, so
//!   no other thread can move anything between a check and its action.
//! - The seed's three flags live in [`MuxFlags`], under that lock:
//!   `connected` and `drop_all` change only when a session begins
//!   (ReconnectThread) or ends (NetworkSendThread), `drop_video`
//!   (backpressure) only here.
//! - Dropping one H.264 packet corrupts every frame after it until the next
//!   IDR. So once video is dropped, the gate stays closed until a keyframe;
//!   and it only reopens below a low-water mark (hysteresis), at which point
//!   the muxer asks the VideoEncoder for an IDR so recovery takes one frame,
//!   not a GOP. Disposable frames (nal_ref_idc = 0) go first, alone.
//! - Audio is never dropped while connected, except past the StreamBuffer's
//!   bounds times [`AUDIO_OVERDRAFT`] (a link that carries less than the
//!   audio bitrate for seconds). A moment's stall (TCP's retransmission
//!   timeout when a link slows down, a large keyframe still in the kernel)
//!   delays the sound past the nominal span instead of cutting it.
//! - Counters are bumped after the decision, outside the lock: they only
//!   count, nothing decides on them.

use super::buffer::{Admission, QueuedTag, StreamBuffer};
use crate::flv;
use crate::packet::{EncodedPacket, MediaKind, PacketSink, VideoCodec};
use crate::stats::{bump, OutputCounters};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Video dropping starts when the buffer reaches this fraction of any bound.
pub const VIDEO_DROP_HIGH_WATER: f64 = 0.75;
/// Video dropping ends (and an IDR is requested) below this fraction of
/// every bound: far enough below the high-water mark not to oscillate.
pub const VIDEO_RESUME_LOW_WATER: f64 = 0.30;
/// Disposable (non-reference) frames are dropped alone above this fraction.
pub const DISPOSABLE_DROP_WATER: f64 = 0.50;
/// Audio may fill the packet and span bounds this many times over (the byte
/// bound, which is the memory bound, never): the seed keeps audio whenever
/// connected, and the bounds are there to stop video. Measured: a 60 % tbf
/// link in drop-only mode reached 1.96 s of a 2 s span with the bound at 1x,
/// and lost 3 audio frames in one CI run of the kernel throttle test.
pub const AUDIO_OVERDRAFT: u32 = 2;

/// Something that can make the video encoder emit an IDR soon (the
/// VideoEncoder's control handle in a pipeline, a counter in tests).
pub trait KeyframeRequester: Send + Sync {
    /// Asks for the next encoded frame to be an IDR.
    fn request_keyframe(&self);
}

/// Why the video gate is waiting for a keyframe.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Gate {
    /// Video flows.
    Open,
    /// Video was dropped for congestion: wait for a keyframe.
    AfterCongestion,
    /// A new session (or none yet): the first video must be a keyframe.
    #[default]
    AfterDisconnect,
}

/// The seed's StreamMuxer flags and the keyframe gate of one output. They
/// live under the StreamBuffer's lock (see `buffer.rs`), so every decision
/// that reads them also acts under it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MuxFlags {
    /// A publishing session is up.
    pub connected: bool,
    /// Reconnecting: drop everything.
    pub drop_all: bool,
    /// Backpressure: drop video (set and cleared by the muxer).
    pub drop_video: bool,
    /// What the next video packet must be.
    pub gate: Gate,
}

impl Default for MuxFlags {
    /// Before the first session: nothing goes through.
    fn default() -> Self {
        Self {
            connected: false,
            drop_all: false,
            drop_video: false,
            gate: Gate::AfterDisconnect,
        }
    }
}

impl MuxFlags {
    /// A session just came up: everything flows, from a keyframe.
    pub fn new_session() -> Self {
        Self {
            connected: true,
            ..Self::default()
        }
    }

    /// The link is down: drop everything until the next session.
    pub fn down() -> Self {
        Self {
            drop_all: true,
            ..Self::default()
        }
    }

    fn up(&self) -> bool {
        self.connected && !self.drop_all
    }
}

/// What became of one packet offered to the buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Verdict {
    /// The packet itself was dropped, and why.
    dropped: Option<DropReason>,
    /// Queued video removed to make room (counted as congestion drops).
    evicted_video: u64,
    /// Ask the encoder for an IDR now.
    request_idr: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DropReason {
    Congestion,
    /// Congestion, a disposable frame alone (counted in both).
    Disposable,
    Disconnected,
}

/// Decides on one video tag, under the buffer's lock.
fn admit_video(a: &mut Admission<'_>, tag: QueuedTag, disposable: bool) -> Verdict {
    let mut v = Verdict::default();
    if !a.flags().up() {
        a.flags().gate = Gate::AfterDisconnect;
        v.dropped = Some(DropReason::Disconnected);
        return v;
    }
    let worst = a.pressure().worst();
    if a.flags().drop_video {
        if worst >= VIDEO_RESUME_LOW_WATER {
            a.flags().gate = Gate::AfterCongestion;
            v.dropped = Some(DropReason::Congestion);
            return v;
        }
        // Drained: resume at the next keyframe, and make it come now.
        a.flags().drop_video = false;
        v.request_idr = true;
    } else if worst >= VIDEO_DROP_HIGH_WATER {
        v.evicted_video = start_dropping_video(a);
        v.dropped = Some(DropReason::Congestion);
        return v;
    }
    match a.flags().gate {
        Gate::Open => {}
        closed if !tag.keyframe => {
            v.dropped = Some(match closed {
                Gate::AfterDisconnect => DropReason::Disconnected,
                _ => DropReason::Congestion,
            });
            return v;
        }
        _ => a.flags().gate = Gate::Open,
    }
    if disposable && worst >= DISPOSABLE_DROP_WATER {
        // Nothing references it: dropping it alone is harmless.
        v.dropped = Some(DropReason::Disposable);
        return v;
    }
    if a.push(tag).is_err() {
        // A hard bound (audio filled it): congestion, to the next keyframe.
        v.evicted_video = start_dropping_video(a);
        v.dropped = Some(DropReason::Congestion);
    }
    v
}

/// Decides on one audio tag, under the buffer's lock.
fn admit_audio(a: &mut Admission<'_>, tag: QueuedTag) -> Verdict {
    let mut v = Verdict::default();
    if !a.flags().up() {
        v.dropped = Some(DropReason::Disconnected);
        return v;
    }
    if let Err((rejected, tag)) = a.push(tag) {
        // Video goes first: make room by dropping the queued video, and
        // only lose audio if the link cannot even carry that.
        tracing::debug!(?rejected, "buffer full for audio: evicting queued video");
        v.evicted_video = start_dropping_video(a);
        if a.push_within(tag, AUDIO_OVERDRAFT).is_err() {
            v.dropped = Some(DropReason::Congestion);
        }
    }
    v
}

/// Enters the drop-video state: closes the keyframe gate and removes the
/// video still queued, so the buffer drains at the speed of the link
/// instead of after seconds of stale video, and audio keeps its room.
fn start_dropping_video(a: &mut Admission<'_>) -> u64 {
    let f = a.flags();
    f.drop_video = true;
    f.gate = Gate::AfterCongestion;
    a.evict_video()
}

/// The muxer of one output. Cheap to share: `Arc<StreamMuxer>` is the
/// output's `PacketSink`.
pub struct StreamMuxer {
    buffer: Arc<StreamBuffer>,
    counters: Arc<OutputCounters>,
    keyframes: Arc<dyn KeyframeRequester>,
    /// How video tags are written (legacy AVC or Enhanced RTMP).
    video_codec: VideoCodec,
}

impl StreamMuxer {
    /// A muxer feeding `buffer`, counting into `counters`.
    pub fn new(
        buffer: Arc<StreamBuffer>,
        counters: Arc<OutputCounters>,
        keyframes: Arc<dyn KeyframeRequester>,
    ) -> Self {
        Self {
            buffer,
            counters,
            keyframes,
            video_codec: VideoCodec::H264,
        }
    }

    /// The same muxer writing video tags for `codec` (H.264 by default).
    pub fn with_video_codec(mut self, codec: VideoCodec) -> Self {
        self.video_codec = codec;
        self
    }

    /// Asks the encoder for a keyframe now, counted like every IDR request:
    /// a session switch (ReconnectRequest) happens at the next keyframe, and
    /// this makes it come without waiting for the GOP to end.
    pub fn request_switch_keyframe(&self) {
        self.request_keyframe();
    }

    /// Called by the NetworkSendThread as it starts a new session: clean
    /// buffer, flags up, the next video packet sent must be an IDR, and one
    /// is requested now so the stream resumes at the present frame.
    pub fn on_new_session(&self) {
        self.count_unsent(self.buffer.begin_session());
        self.request_keyframe();
    }

    /// Called by the NetworkSendThread when its session is gone: what was
    /// queued is dropped (counted), and so is everything until the next
    /// session begins.
    pub fn on_session_lost(&self) {
        self.count_unsent(self.buffer.end_session());
    }

    /// Counts the (video, audio) a session change took out of the queue.
    fn count_unsent(&self, (video, audio): (u64, u64)) {
        self.counters
            .video_dropped_disconnected
            .fetch_add(video, Ordering::Relaxed);
        self.counters
            .audio_frames_dropped
            .fetch_add(audio, Ordering::Relaxed);
    }

    fn request_keyframe(&self) {
        bump(&self.counters.idr_requests);
        self.keyframes.request_keyframe();
    }

    fn count(&self, kind: MediaKind, v: Verdict) {
        let c = &self.counters;
        c.video_dropped_congestion
            .fetch_add(v.evicted_video, Ordering::Relaxed);
        if let Some(reason) = v.dropped {
            bump(match (kind, reason) {
                (MediaKind::Audio, _) => &c.audio_frames_dropped,
                (MediaKind::Video, DropReason::Congestion) => &c.video_dropped_congestion,
                (MediaKind::Video, DropReason::Disposable) => {
                    bump(&c.video_dropped_disposable);
                    &c.video_dropped_congestion
                }
                (MediaKind::Video, DropReason::Disconnected) => &c.video_dropped_disconnected,
            });
        }
        if v.request_idr {
            self.request_keyframe();
        }
    }
}

impl PacketSink for StreamMuxer {
    fn push(&self, packet: EncodedPacket) {
        // The tag body is built before the lock: the lock is for deciding.
        let tag = QueuedTag {
            kind: packet.kind,
            dts_ns: packet.dts_ns,
            keyframe: packet.keyframe || packet.kind == MediaKind::Audio,
            body: match packet.kind {
                MediaKind::Video => flv::codec_video_tag_body(self.video_codec, &packet),
                MediaKind::Audio => flv::audio_tag_body(&packet),
            },
        };
        let verdict = match packet.kind {
            MediaKind::Video => self
                .buffer
                .admit(|a| admit_video(a, tag, packet.disposable)),
            MediaKind::Audio => self.buffer.admit(|a| admit_audio(a, tag)),
        };
        self.count(packet.kind, verdict);
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
        counters: Arc<OutputCounters>,
        idr: Arc<CountingRequester>,
    }

    fn rig(max_packets: usize) -> Rig {
        rig_with(BufferLimits {
            max_packets,
            max_span: Duration::from_secs(100),
            max_bytes: 1 << 30,
        })
    }

    fn rig_with(limits: BufferLimits) -> Rig {
        let buffer = Arc::new(StreamBuffer::new(limits));
        let counters = Arc::new(OutputCounters::default());
        let idr = Arc::new(CountingRequester::default());
        let muxer = StreamMuxer::new(buffer.clone(), counters.clone(), idr.clone());
        muxer.on_new_session();
        Rig {
            muxer,
            buffer,
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
        r.muxer.push(audio(0));
        r.buffer.end_session();
        assert_eq!(r.buffer.flags(), MuxFlags::down());
        r.muxer.push(video(1, true));
        r.muxer.push(audio(1));
        assert!(r.buffer.is_empty());
        assert_eq!(r.counters.video_dropped_disconnected.load(Relaxed), 1);
        assert_eq!(r.counters.audio_frames_dropped.load(Relaxed), 1);
        // The next session drops nothing of its own, and starts at a keyframe.
        r.muxer.on_new_session();
        r.muxer.push(video(2, false));
        r.muxer.push(video(3, true));
        assert_eq!(r.buffer.len(), 1);
        assert_eq!(r.buffer.flags().gate, Gate::Open);
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
        assert!(!r.buffer.flags().drop_video);
        r.muxer.push(video(8 * 33, false));
        assert!(r.buffer.flags().drop_video, "high water starts dropping");
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
        assert!(!r.buffer.flags().drop_video);
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
        assert!(!r.buffer.flags().drop_video);
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
        assert!(r.buffer.flags().drop_video);
        // The gate is closed: the next inter frame is refused even after drain.
        r.muxer.push(video(133, false));
        assert!(r.buffer.is_empty());
    }

    #[test]
    fn audio_is_dropped_only_past_its_overdraft() {
        let r = rig(5);
        for i in 0..12 {
            r.muxer.push(audio(i));
        }
        assert_eq!(r.buffer.len(), 10, "twice the packet bound");
        assert_eq!(r.counters.audio_frames_dropped.load(Relaxed), 2);
        // Video stays stopped while audio overdraws.
        r.muxer.push(video(20, true));
        assert_eq!(r.buffer.len(), 10);
    }

    #[test]
    fn audio_overdraws_the_span_bound_but_not_the_byte_bound() {
        let r = rig_with(BufferLimits {
            max_packets: 1000,
            max_span: Duration::from_millis(100),
            max_bytes: 1 << 30,
        });
        for ms in (0..=300).step_by(10) {
            r.muxer.push(audio(ms));
        }
        // 0..=200 ms: a span of twice the bound; the rest is dropped.
        assert_eq!(r.buffer.len(), 21);
        assert_eq!(r.counters.audio_frames_dropped.load(Relaxed), 10);
        let r = rig_with(BufferLimits {
            max_packets: 1000,
            max_span: Duration::from_secs(100),
            max_bytes: 4 * 5, // four audio tag bodies (2-byte header + 3)
        });
        for ms in 0..6 {
            r.muxer.push(audio(ms));
        }
        assert_eq!(r.buffer.len(), 4, "the byte bound is the memory bound");
    }

    /// Golden rule "never corrupt what viewers decode", under concurrency:
    /// the video encoder thread, the audio encoder thread (whose pushes evict
    /// queued video at a bound) and the send thread all touch the buffer at
    /// once. Whatever the interleaving, every inter frame that leaves the
    /// buffer must follow the video frame it references (the previous one):
    /// a P-frame queued behind a just-evicted reference is the mid-GOP
    /// corruption the keyframe gate exists to prevent.
    #[test]
    fn concurrent_audio_evictions_never_leave_an_orphan_inter_frame() {
        const FRAMES: u64 = 100_000;
        const GOP: u64 = 8;
        // One audio frame fills 70 % of the byte bound: below the high-water
        // mark, video is let in; a second one hits the bound and evicts it.
        const MAX_BYTES: usize = 1000;
        let r = Arc::new(rig_with(BufferLimits {
            max_packets: 100,
            max_span: Duration::from_secs(100),
            max_bytes: MAX_BYTES,
        }));
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let consumer = {
            let (r, done) = (r.clone(), done.clone());
            std::thread::spawn(move || {
                let mut video = Vec::new();
                let mut n = 0u64;
                loop {
                    match r.buffer.pop(Duration::from_millis(1)) {
                        Some(t) if t.kind == MediaKind::Video => {
                            let tail: [u8; 8] = t.body[t.body.len() - 8..].try_into().unwrap();
                            video.push((u64::from_be_bytes(tail), t.keyframe));
                        }
                        Some(_) => {}
                        None if done.load(Relaxed) => return video,
                        None => {}
                    }
                    n += 1;
                    if n.is_multiple_of(3) {
                        std::thread::yield_now();
                    }
                }
            })
        };
        let audio = {
            let r = r.clone();
            std::thread::spawn(move || {
                for i in 0..FRAMES {
                    let mut a = audio(i);
                    a.data = Bytes::from(vec![0u8; MAX_BYTES * 7 / 10]);
                    r.muxer.push(a);
                    std::thread::yield_now();
                }
            })
        };
        for seq in 0..FRAMES {
            let mut p = video(seq, seq.is_multiple_of(GOP));
            let mut data = vec![0, 0, 0, 9, 0x65];
            data.extend_from_slice(&seq.to_be_bytes());
            p.data = Bytes::from(data);
            r.muxer.push(p);
            std::thread::yield_now();
        }
        audio.join().unwrap();
        done.store(true, Relaxed);
        let video = consumer.join().unwrap();
        eprintln!(
            "video out {}, congestion drops {}, audio dropped {}",
            video.len(),
            r.counters.video_dropped_congestion.load(Relaxed),
            r.counters.audio_frames_dropped.load(Relaxed)
        );
        // Enough video must come out for the order to be judged at all. How much
        // does depends on how the three threads are scheduled: 26 of 100 000
        // once on a busy 2-core machine (CI-like run, another test lane beside
        // it), thousands on a quiet one.
        assert!(video.len() > 10, "too little video got through to judge");
        assert!(video[0].1, "the first video out is a keyframe");
        let orphans: Vec<_> = video
            .windows(2)
            .filter(|w| !w[1].1 && w[1].0 != w[0].0 + 1)
            .map(|w| (w[0].0, w[1].0))
            .collect();
        assert!(
            orphans.is_empty(),
            "{} inter frames left after their reference was dropped, e.g. {:?}",
            orphans.len(),
            &orphans[..orphans.len().min(5)]
        );
    }
}
