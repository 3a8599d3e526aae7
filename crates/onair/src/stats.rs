//! Counters and the `Stats` snapshot (the SPEC's stats contract).
//!
//! Why atomics: engines, encoders, muxers and network threads each bump their
//! own counters on hot paths; a snapshot for the status line, `--stats-json`
//! or a Node event must never make any of them wait. Each counter has exactly
//! one writer thread (named on the field); readers only load.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

/// Counters written by the engines and encoders, shared by every output.
#[derive(Debug, Default)]
pub struct EngineCounters {
    /// CaptureThread: frames taken from the source (new pictures).
    pub video_frames_captured: AtomicU64,
    /// CaptureThread: frame slots filled by repeating the last picture.
    pub video_frames_duplicated: AtomicU64,
    /// CaptureThread: frames the encoder could not take in time.
    pub video_frames_skipped: AtomicU64,
    /// CaptureThread: worst lateness of a frame tick, in µs.
    pub capture_late_max_us: AtomicU64,
    /// AudioEngine: sample frames (per channel) filled with silence; stats
    /// report them as AAC-frame-equivalents (/1024).
    pub audio_silence_samples: AtomicU64,
    /// AudioEngine: ms of audio skipped, never emitted, after a stall longer
    /// than `audio::engine::MAX_BEHIND` (the process was stopped or
    /// starved): the engine jumped to the present.
    pub audio_skipped_ms: AtomicU64,
    /// AudioEngine: sample frames (per channel) dropped because the encoder's
    /// queue was full (the encoder is stuck; the clock went on).
    pub audio_samples_dropped: AtomicU64,
    /// AudioEngine: worst lateness of an audio tick, in µs.
    pub audio_late_max_us: AtomicU64,
    /// Audio devices: stereo frames the device callback could not hand over
    /// (the reader's ring was full: the AudioEngine stopped reading).
    pub audio_device_overflow_frames: AtomicU64,
    /// Audio devices: engine-rate frames dropped by the jitter buffer's
    /// bound (the device delivered faster than the clock, or in a burst).
    pub audio_device_jitter_dropped_frames: AtomicU64,
    /// Audio devices: times a device was opened again after it failed or
    /// stalled.
    pub audio_device_reopens: AtomicU64,
    /// CaptureThread: distribution of frame tick lateness (for p99).
    pub capture_lateness: LatenessHistogram,
    /// AudioEngine: distribution of audio tick lateness (for p99).
    pub audio_lateness: LatenessHistogram,
    /// VideoEncoder thread: access units produced.
    pub video_packets_encoded: AtomicU64,
    /// AudioEncoder thread: AAC frames produced.
    pub audio_frames_encoded: AtomicU64,
}

/// Number of 1 ms buckets in the lateness histogram; the last one also counts
/// everything later.
pub const LATENESS_BUCKETS: usize = 128;

/// Lock-free histogram of tick lateness in 1 ms buckets, written by one
/// thread, readable from any.
#[derive(Debug)]
pub struct LatenessHistogram {
    buckets: [AtomicU64; LATENESS_BUCKETS],
}

impl Default for LatenessHistogram {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl LatenessHistogram {
    /// Records one lateness sample in µs.
    pub fn record_us(&self, us: u64) {
        let i = usize::try_from(us / 1000)
            .unwrap_or(usize::MAX)
            .min(LATENESS_BUCKETS - 1);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Number of samples recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// Upper bound (µs) of the bucket holding the `q`-quantile (0.0..=1.0),
    /// e.g. 1000 means "under 1 ms". 0 when empty.
    pub fn quantile_us(&self, q: f64) -> u64 {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return (i as u64 + 1) * 1000;
            }
        }
        LATENESS_BUCKETS as u64 * 1000
    }

    /// p99 lateness upper bound in µs (see [`quantile_us`](Self::quantile_us)).
    pub fn p99_us(&self) -> u64 {
        self.quantile_us(0.99)
    }
}

/// Raises `slot` to `value` if larger (a lock-free running maximum).
pub fn store_max(slot: &AtomicU64, value: u64) {
    slot.fetch_max(value, Ordering::Relaxed);
}

/// Adds one to a counter.
pub fn bump(slot: &AtomicU64) {
    slot.fetch_add(1, Ordering::Relaxed);
}

/// Where an output's link is: the state machine the SPEC names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum LinkState {
    /// First connection attempt in progress.
    Connecting = 0,
    /// Publishing.
    Live = 1,
    /// Link lost; the ReconnectThread is retrying.
    Reconnecting = 2,
    /// Stopped on request.
    Stopped = 3,
    /// Gave up (rejected publish, retries exhausted).
    Failed = 4,
}

impl LinkState {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Connecting,
            1 => Self::Live,
            2 => Self::Reconnecting,
            3 => Self::Stopped,
            _ => Self::Failed,
        }
    }

    /// Lower-case name as it appears in stats.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Live => "live",
            Self::Reconnecting => "reconnecting",
            Self::Stopped => "stopped",
            Self::Failed => "failed",
        }
    }
}

/// A `LinkState` that threads can read and write without a lock.
#[derive(Debug)]
pub struct AtomicLinkState(AtomicU8);

impl AtomicLinkState {
    /// Starts in `state`.
    pub fn new(state: LinkState) -> Self {
        Self(AtomicU8::new(state as u8))
    }
    /// Current state.
    pub fn get(&self) -> LinkState {
        LinkState::from_u8(self.0.load(Ordering::Acquire))
    }
    /// Moves to `state`.
    pub fn set(&self, state: LinkState) {
        self.0.store(state as u8, Ordering::Release);
    }
}

/// Counters of one output (one destination), written by its muxer, send and
/// reconnect threads.
#[derive(Debug)]
pub struct OutputCounters {
    /// Link state (ReconnectThread / NetworkSendThread).
    pub state: AtomicLinkState,
    /// NetworkSendThread: bytes written to the socket, all sessions.
    pub bytes_sent: AtomicU64,
    /// StreamBuffer: packets queued now.
    pub buffer_packets: AtomicU64,
    /// StreamBuffer: span of queued timestamps plus unsent kernel bytes, in ms.
    pub buffer_ms: AtomicU64,
    /// StreamBuffer: bytes queued now.
    pub buffer_bytes: AtomicU64,
    /// NetworkSendThread: bytes still in the kernel's send queue (SIOCOUTQ).
    pub kernel_unsent_bytes: AtomicU64,
    /// NetworkSendThread: video packets written.
    pub video_packets_sent: AtomicU64,
    /// NetworkSendThread: audio frames written.
    pub audio_frames_sent: AtomicU64,
    /// StreamMuxer: video dropped for backpressure (incl. the wait for a keyframe).
    pub video_dropped_congestion: AtomicU64,
    /// StreamMuxer: of those, disposable (non-reference) frames dropped
    /// alone, the first to go (the picture stays intact).
    pub video_dropped_disposable: AtomicU64,
    /// StreamMuxer: video dropped while not connected.
    pub video_dropped_disconnected: AtomicU64,
    /// StreamMuxer / StreamBuffer: audio frames dropped (only while down, or at the byte cap).
    pub audio_frames_dropped: AtomicU64,
    /// ReconnectThread: successful reconnections.
    pub reconnects: AtomicU64,
    /// ReconnectThread: connection attempts that failed.
    pub connect_failures: AtomicU64,
    /// NetworkSendThread: sessions switched on a server's
    /// `NetConnection.Connect.ReconnectRequest` (not counted in `reconnects`:
    /// the link never went down).
    pub redirects: AtomicU64,
    /// StreamMuxer: IDR requests sent to the VideoEncoder.
    pub idr_requests: AtomicU64,
    /// NetworkSendThread: send rate over the last second, in bit/s.
    pub send_rate_bps: AtomicU64,
    /// ReconnectThread: the output gave up because the server refused the
    /// publish (bad key or app), not because of the network.
    pub rejected: std::sync::atomic::AtomicBool,
    /// NetworkSendThread (congestion controller): what the link is believed
    /// to carry, bit/s (0 = not known yet).
    pub link_bps: AtomicU64,
    /// NetworkSendThread (congestion controller): the video bitrate this
    /// output asks of the encoder, bit/s.
    pub wanted_video_bps: AtomicU64,
    /// NetworkSendThread: how close the buffer is to dropping video, in
    /// thousandths (1000 = at the muxer's high-water mark).
    pub congestion_milli: AtomicU64,
    /// NetworkSendThread (congestion controller): why the wish is where it
    /// is (`congestion::Reason` as u8).
    pub bitrate_reason: AtomicU8,
}

impl Default for OutputCounters {
    fn default() -> Self {
        Self {
            state: AtomicLinkState::new(LinkState::Connecting),
            bytes_sent: AtomicU64::new(0),
            buffer_packets: AtomicU64::new(0),
            buffer_ms: AtomicU64::new(0),
            buffer_bytes: AtomicU64::new(0),
            kernel_unsent_bytes: AtomicU64::new(0),
            video_packets_sent: AtomicU64::new(0),
            audio_frames_sent: AtomicU64::new(0),
            video_dropped_congestion: AtomicU64::new(0),
            video_dropped_disposable: AtomicU64::new(0),
            video_dropped_disconnected: AtomicU64::new(0),
            audio_frames_dropped: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
            redirects: AtomicU64::new(0),
            idr_requests: AtomicU64::new(0),
            send_rate_bps: AtomicU64::new(0),
            rejected: std::sync::atomic::AtomicBool::new(false),
            link_bps: AtomicU64::new(0),
            wanted_video_bps: AtomicU64::new(0),
            congestion_milli: AtomicU64::new(0),
            bitrate_reason: AtomicU8::new(0),
        }
    }
}

/// One stats object: the SPEC's fields (names fixed), plus a few extras.
/// Serialized as one JSON line per second by `--stats-json`.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Stats {
    /// Milliseconds since the pipeline started.
    pub t_ms: u64,
    /// connecting | live | reconnecting | stopped | failed.
    pub state: &'static str,
    /// Bytes written to the network.
    pub bytes_sent: u64,
    /// Send rate over the last interval, kbit/s.
    pub kbps: f64,
    /// Buffer latency (timestamp span + kernel backlog), ms.
    pub buffer_ms: u64,
    /// Packets queued in the StreamBuffer.
    pub buffer_packets: u64,
    /// Frames captured from the source.
    pub video_frames_captured: u64,
    /// Frames repeated because the source had nothing new.
    pub video_frames_duplicated: u64,
    /// Frames the encoder could not take.
    pub video_frames_skipped: u64,
    /// Video packets written to the network.
    pub video_packets_sent: u64,
    /// Video dropped for congestion.
    pub video_dropped_congestion: u64,
    /// Of those, disposable (non-reference) frames dropped alone, the first to go.
    pub video_dropped_disposable: u64,
    /// Video dropped while disconnected.
    pub video_dropped_disconnected: u64,
    /// Audio frames written to the network.
    pub audio_frames_sent: u64,
    /// Audio frames dropped.
    pub audio_frames_dropped: u64,
    /// AAC frames' worth of silence inserted by the AudioEngine.
    pub audio_silence_frames: u64,
    /// Successful reconnections.
    pub reconnects: u64,
    /// Sessions moved on the server's request (Enhanced RTMP reconnect
    /// request), without a gap.
    pub redirects: u64,
    /// Worst capture tick lateness, ms.
    pub capture_late_max_ms: f64,
    /// Worst audio tick lateness, ms.
    pub audio_late_max_ms: f64,
    /// Extra: p99 of capture tick lateness, ms (upper bound of a 1 ms bucket).
    pub capture_late_p99_ms: f64,
    /// Extra: p99 of audio tick lateness, ms (upper bound of a 1 ms bucket).
    pub audio_late_p99_ms: f64,
    /// Extra: PCM sample frames the audio encoder could not take.
    pub audio_samples_dropped: u64,
    /// Extra: ms of audio skipped after a stall of the process (the
    /// AudioEngine jumped to the present instead of replaying the span).
    pub audio_skipped_ms: u64,
    /// Extra: stereo frames an audio device could not hand over (ring full).
    pub audio_device_overflow_frames: u64,
    /// Extra: frames an audio device's jitter buffer dropped (bound reached).
    pub audio_device_jitter_dropped_frames: u64,
    /// Extra: times an audio device was reopened after a failure or stall.
    pub audio_device_reopens: u64,
    /// Extra: bytes queued in the StreamBuffer.
    pub buffer_bytes: u64,
    /// Extra: bytes the kernel has not sent yet.
    pub kernel_unsent_bytes: u64,
    /// Extra: failed connection attempts.
    pub connect_failures: u64,
    /// Extra: IDR requests made after congestion or reconnects.
    pub idr_requests: u64,
    /// The video encoder's current target bitrate, kbit/s (shared by every
    /// output: one encoder feeds them all).
    pub video_bitrate_kbps: u64,
    /// What this output's link is believed to carry (media + framing),
    /// kbit/s; 0 until measured.
    pub link_kbps: u64,
    /// How close this output's buffer is to dropping video: 0 = empty,
    /// 1 = dropping.
    pub congestion: f64,
    /// Extra: the user's video bitrate (the ceiling of adaptation), kbit/s.
    pub video_bitrate_ceiling_kbps: u64,
    /// Extra: the video bitrate this output asks of the encoder, kbit/s.
    pub wanted_video_kbps: u64,
    /// Extra: why this output's wish is where it is: ceiling | link |
    /// probing | floor (absent without a stream link or video).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bitrate_reason: Option<&'static str>,
    /// Extra: output name with any stream key redacted.
    pub output: String,
    /// Extra (recorders only): packets the recorder lost because the disk
    /// could not keep up or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_packets_dropped: Option<u64>,
    /// Extra (recorders only): write errors (the first one stops the recorder).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_errors: Option<u64>,
    /// Extra: last error, key redacted, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl Stats {
    /// Fills the engine fields from `engine` (frames, silence, lateness).
    pub fn fill_engine(&mut self, engine: &EngineCounters, audio_frame_samples: u64) {
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        self.video_frames_captured = ld(&engine.video_frames_captured);
        self.video_frames_duplicated = ld(&engine.video_frames_duplicated);
        self.video_frames_skipped = ld(&engine.video_frames_skipped);
        self.audio_silence_frames = ld(&engine.audio_silence_samples) / audio_frame_samples.max(1);
        self.audio_device_overflow_frames = ld(&engine.audio_device_overflow_frames);
        self.audio_device_jitter_dropped_frames = ld(&engine.audio_device_jitter_dropped_frames);
        self.audio_device_reopens = ld(&engine.audio_device_reopens);
        self.capture_late_max_ms = ld(&engine.capture_late_max_us) as f64 / 1000.0;
        self.audio_late_max_ms = ld(&engine.audio_late_max_us) as f64 / 1000.0;
        self.capture_late_p99_ms = engine.capture_lateness.p99_us() as f64 / 1000.0;
        self.audio_late_p99_ms = engine.audio_lateness.p99_us() as f64 / 1000.0;
        self.audio_samples_dropped = ld(&engine.audio_samples_dropped);
        self.audio_skipped_ms = ld(&engine.audio_skipped_ms);
    }

    /// Fills the per-output fields from `out`.
    pub fn fill_output(&mut self, out: &OutputCounters) {
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        self.state = out.state.get().as_str();
        self.bytes_sent = ld(&out.bytes_sent);
        self.buffer_ms = ld(&out.buffer_ms);
        self.buffer_packets = ld(&out.buffer_packets);
        self.buffer_bytes = ld(&out.buffer_bytes);
        self.kernel_unsent_bytes = ld(&out.kernel_unsent_bytes);
        self.video_packets_sent = ld(&out.video_packets_sent);
        self.audio_frames_sent = ld(&out.audio_frames_sent);
        self.video_dropped_congestion = ld(&out.video_dropped_congestion);
        self.video_dropped_disposable = ld(&out.video_dropped_disposable);
        self.video_dropped_disconnected = ld(&out.video_dropped_disconnected);
        self.audio_frames_dropped = ld(&out.audio_frames_dropped);
        self.reconnects = ld(&out.reconnects);
        self.redirects = ld(&out.redirects);
        self.connect_failures = ld(&out.connect_failures);
        self.idr_requests = ld(&out.idr_requests);
        self.kbps = ld(&out.send_rate_bps) as f64 / 1000.0;
        self.link_kbps = ld(&out.link_bps) / 1000;
        self.wanted_video_kbps = ld(&out.wanted_video_bps) / 1000;
        self.congestion = (ld(&out.congestion_milli) as f64 / 1000.0).min(1.0);
        self.bitrate_reason =
            crate::output::congestion::Reason::from_u8(out.bitrate_reason.load(Ordering::Relaxed))
                .map(|r| r.as_str());
    }

    /// Fills the encoder's bitrate fields.
    pub fn fill_bitrate(&mut self, bitrate: &crate::video::bitrate::VideoBitrate) {
        self.video_bitrate_kbps = u64::from(bitrate.current()) / 1000;
        self.video_bitrate_ceiling_kbps = u64::from(bitrate.ceiling()) / 1000;
    }
}
