//! The objects JS receives: stats snapshots and events.
//!
//! Why stats keep snake_case names: the SPEC fixes them for the stats JSON
//! and the Node events alike, so a consumer can treat both the same way.

use crate::errors::{is_certificate_refusal, scrub, ErrorCode};
use onair::{Event, LinkState, Stats};

/// Link state of the stream (the SPEC's state machine).
#[napi(string_enum = "lowercase")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamState {
    /// First connection attempt in progress.
    Connecting,
    /// Publishing.
    Live,
    /// Link lost; retrying with backoff.
    Reconnecting,
    /// Stopped on request.
    Stopped,
    /// Gave up (rejected publish, retries exhausted).
    Failed,
}

impl From<LinkState> for StreamState {
    fn from(s: LinkState) -> Self {
        match s {
            LinkState::Connecting => Self::Connecting,
            LinkState::Live => Self::Live,
            LinkState::Reconnecting => Self::Reconnecting,
            LinkState::Stopped => Self::Stopped,
            LinkState::Failed => Self::Failed,
        }
    }
}

impl StreamState {
    /// From the library's state name.
    pub fn from_name(name: &str) -> Self {
        match name {
            "connecting" => Self::Connecting,
            "live" => Self::Live,
            "reconnecting" => Self::Reconnecting,
            "stopped" => Self::Stopped,
            _ => Self::Failed,
        }
    }
}

/// One stats snapshot: the SPEC's fields (names fixed), plus extras.
#[napi(object)]
#[derive(Debug)]
pub struct StreamStats {
    /// Milliseconds since the pipeline started.
    #[napi(js_name = "t_ms")]
    pub t_ms: f64,
    /// Link state.
    pub state: StreamState,
    /// Bytes written to the network.
    #[napi(js_name = "bytes_sent")]
    pub bytes_sent: f64,
    /// Send rate over the last second, kbit/s.
    pub kbps: f64,
    /// Buffer latency (timestamp span + kernel backlog), ms.
    #[napi(js_name = "buffer_ms")]
    pub buffer_ms: f64,
    /// Packets queued in the StreamBuffer.
    #[napi(js_name = "buffer_packets")]
    pub buffer_packets: f64,
    /// Frames captured from the source.
    #[napi(js_name = "video_frames_captured")]
    pub video_frames_captured: f64,
    /// Frames repeated because the source had nothing new.
    #[napi(js_name = "video_frames_duplicated")]
    pub video_frames_duplicated: f64,
    /// Frames the encoder could not take.
    #[napi(js_name = "video_frames_skipped")]
    pub video_frames_skipped: f64,
    /// Video packets written to the network.
    #[napi(js_name = "video_packets_sent")]
    pub video_packets_sent: f64,
    /// Video dropped for congestion.
    #[napi(js_name = "video_dropped_congestion")]
    pub video_dropped_congestion: f64,
    /// Of those, disposable (non-reference) frames dropped alone, the first to go.
    #[napi(js_name = "video_dropped_disposable")]
    pub video_dropped_disposable: f64,
    /// Video dropped while disconnected.
    #[napi(js_name = "video_dropped_disconnected")]
    pub video_dropped_disconnected: f64,
    /// Audio frames written to the network.
    #[napi(js_name = "audio_frames_sent")]
    pub audio_frames_sent: f64,
    /// Audio frames dropped.
    #[napi(js_name = "audio_frames_dropped")]
    pub audio_frames_dropped: f64,
    /// AAC frames' worth of silence inserted by the AudioEngine.
    #[napi(js_name = "audio_silence_frames")]
    pub audio_silence_frames: f64,
    /// Stereo frames an audio device could not hand over (its ring was full).
    #[napi(js_name = "audio_device_overflow_frames")]
    pub audio_device_overflow_frames: f64,
    /// Frames an audio device's jitter buffer dropped (its bound was reached).
    #[napi(js_name = "audio_device_jitter_dropped_frames")]
    pub audio_device_jitter_dropped_frames: f64,
    /// Times an audio device was reopened after a failure or a stall.
    #[napi(js_name = "audio_device_reopens")]
    pub audio_device_reopens: f64,
    /// Ms of audio skipped after a stall of the process (the engine jumped
    /// to the present instead of replaying the span).
    #[napi(js_name = "audio_skipped_ms")]
    pub audio_skipped_ms: f64,
    /// Successful reconnections.
    pub reconnects: f64,
    /// Sessions moved on the server's request (Enhanced RTMP reconnect
    /// request) without a gap; not counted in `reconnects`.
    pub redirects: f64,
    /// Worst capture tick lateness, ms.
    #[napi(js_name = "capture_late_max_ms")]
    pub capture_late_max_ms: f64,
    /// Worst audio tick lateness, ms.
    #[napi(js_name = "audio_late_max_ms")]
    pub audio_late_max_ms: f64,
    /// Extra: bytes queued in the StreamBuffer.
    #[napi(js_name = "buffer_bytes")]
    pub buffer_bytes: f64,
    /// Extra: bytes the kernel has not sent yet.
    #[napi(js_name = "kernel_unsent_bytes")]
    pub kernel_unsent_bytes: f64,
    /// Extra: failed connection attempts.
    #[napi(js_name = "connect_failures")]
    pub connect_failures: f64,
    /// Extra: IDR requests made after congestion or reconnects.
    #[napi(js_name = "idr_requests")]
    pub idr_requests: f64,
    /// The video encoder's current target bitrate, kbit/s.
    #[napi(js_name = "video_bitrate_kbps")]
    pub video_bitrate_kbps: f64,
    /// What the link is believed to carry, kbit/s (0 until measured).
    #[napi(js_name = "link_kbps")]
    pub link_kbps: f64,
    /// How close the buffer is to dropping video: 0..1.
    pub congestion: f64,
    /// Extra: the user's video bitrate, the ceiling of adaptation, kbit/s.
    #[napi(js_name = "video_bitrate_ceiling_kbps")]
    pub video_bitrate_ceiling_kbps: f64,
    /// Extra: why the bitrate is where it is: ceiling | link | probing | floor.
    #[napi(js_name = "bitrate_reason")]
    pub bitrate_reason: Option<String>,
    /// Extra: the destination, stream key redacted.
    pub output: String,
    /// Extra: last error, stream key redacted, if any.
    #[napi(js_name = "last_error")]
    pub last_error: Option<String>,
    /// Extra: the `record` option's recorder, when set.
    pub recording: Option<RecorderStats>,
}

/// One stats snapshot of a recorder (a `VideoAudioRecorder`, or the
/// streamer's `record` option). Names follow `StreamStats`.
#[napi(object)]
#[derive(Debug)]
pub struct RecorderStats {
    /// Milliseconds since the pipeline started.
    #[napi(js_name = "t_ms")]
    pub t_ms: f64,
    /// `'live'` while writing, then `'stopped'`, or `'failed'` after a write error.
    pub state: StreamState,
    /// The file, as given.
    pub output: String,
    /// Bytes written to the file.
    #[napi(js_name = "bytes_sent")]
    pub bytes_sent: f64,
    /// Latency of the write queue (timestamp span), ms.
    #[napi(js_name = "buffer_ms")]
    pub buffer_ms: f64,
    /// Packets waiting in the write queue.
    #[napi(js_name = "buffer_packets")]
    pub buffer_packets: f64,
    /// Bytes waiting in the write queue.
    #[napi(js_name = "buffer_bytes")]
    pub buffer_bytes: f64,
    /// Frames captured from the source.
    #[napi(js_name = "video_frames_captured")]
    pub video_frames_captured: f64,
    /// Frames repeated because the source had nothing new.
    #[napi(js_name = "video_frames_duplicated")]
    pub video_frames_duplicated: f64,
    /// Frames the encoder could not take.
    #[napi(js_name = "video_frames_skipped")]
    pub video_frames_skipped: f64,
    /// Video packets written to the file.
    #[napi(js_name = "video_packets_sent")]
    pub video_packets_sent: f64,
    /// Audio frames written to the file.
    #[napi(js_name = "audio_frames_sent")]
    pub audio_frames_sent: f64,
    /// AAC frames' worth of silence inserted by the AudioEngine.
    #[napi(js_name = "audio_silence_frames")]
    pub audio_silence_frames: f64,
    /// Stereo frames an audio device could not hand over (its ring was full).
    #[napi(js_name = "audio_device_overflow_frames")]
    pub audio_device_overflow_frames: f64,
    /// Frames an audio device's jitter buffer dropped (its bound was reached).
    #[napi(js_name = "audio_device_jitter_dropped_frames")]
    pub audio_device_jitter_dropped_frames: f64,
    /// Times an audio device was reopened after a failure or a stall.
    #[napi(js_name = "audio_device_reopens")]
    pub audio_device_reopens: f64,
    /// Ms of audio skipped after a stall of the process (the engine jumped
    /// to the present instead of replaying the span).
    #[napi(js_name = "audio_skipped_ms")]
    pub audio_skipped_ms: f64,
    /// Worst capture tick lateness, ms.
    #[napi(js_name = "capture_late_max_ms")]
    pub capture_late_max_ms: f64,
    /// Worst audio tick lateness, ms.
    #[napi(js_name = "audio_late_max_ms")]
    pub audio_late_max_ms: f64,
    /// Packets lost because the disk could not keep up (queue full) or after a write error.
    #[napi(js_name = "record_packets_dropped")]
    pub record_packets_dropped: f64,
    /// Write errors (the first one stops the recorder: state `'failed'`).
    #[napi(js_name = "record_errors")]
    pub record_errors: f64,
    /// Last error, if any.
    #[napi(js_name = "last_error")]
    pub last_error: Option<String>,
}

impl RecorderStats {
    /// Converts a recorder's library snapshot.
    pub fn from_stats(s: &Stats) -> Self {
        Self {
            t_ms: s.t_ms as f64,
            state: StreamState::from_name(s.state),
            output: s.output.clone(),
            bytes_sent: s.bytes_sent as f64,
            buffer_ms: s.buffer_ms as f64,
            buffer_packets: s.buffer_packets as f64,
            buffer_bytes: s.buffer_bytes as f64,
            video_frames_captured: s.video_frames_captured as f64,
            video_frames_duplicated: s.video_frames_duplicated as f64,
            video_frames_skipped: s.video_frames_skipped as f64,
            video_packets_sent: s.video_packets_sent as f64,
            audio_frames_sent: s.audio_frames_sent as f64,
            audio_silence_frames: s.audio_silence_frames as f64,
            audio_device_overflow_frames: s.audio_device_overflow_frames as f64,
            audio_device_jitter_dropped_frames: s.audio_device_jitter_dropped_frames as f64,
            audio_device_reopens: s.audio_device_reopens as f64,
            audio_skipped_ms: s.audio_skipped_ms as f64,
            capture_late_max_ms: s.capture_late_max_ms,
            audio_late_max_ms: s.audio_late_max_ms,
            record_packets_dropped: s.record_packets_dropped.unwrap_or(0) as f64,
            record_errors: s.record_errors.unwrap_or(0) as f64,
            last_error: s.last_error.clone(),
        }
    }
}

impl StreamStats {
    /// Converts a library snapshot; `key` is scrubbed from the texts.
    pub fn from_stats(s: &Stats, key: Option<&str>) -> Self {
        Self {
            t_ms: s.t_ms as f64,
            state: StreamState::from_name(s.state),
            bytes_sent: s.bytes_sent as f64,
            kbps: s.kbps,
            buffer_ms: s.buffer_ms as f64,
            buffer_packets: s.buffer_packets as f64,
            video_frames_captured: s.video_frames_captured as f64,
            video_frames_duplicated: s.video_frames_duplicated as f64,
            video_frames_skipped: s.video_frames_skipped as f64,
            video_packets_sent: s.video_packets_sent as f64,
            video_dropped_congestion: s.video_dropped_congestion as f64,
            video_dropped_disposable: s.video_dropped_disposable as f64,
            video_dropped_disconnected: s.video_dropped_disconnected as f64,
            audio_frames_sent: s.audio_frames_sent as f64,
            audio_frames_dropped: s.audio_frames_dropped as f64,
            audio_silence_frames: s.audio_silence_frames as f64,
            audio_device_overflow_frames: s.audio_device_overflow_frames as f64,
            audio_device_jitter_dropped_frames: s.audio_device_jitter_dropped_frames as f64,
            audio_device_reopens: s.audio_device_reopens as f64,
            audio_skipped_ms: s.audio_skipped_ms as f64,
            reconnects: s.reconnects as f64,
            redirects: s.redirects as f64,
            capture_late_max_ms: s.capture_late_max_ms,
            audio_late_max_ms: s.audio_late_max_ms,
            buffer_bytes: s.buffer_bytes as f64,
            kernel_unsent_bytes: s.kernel_unsent_bytes as f64,
            connect_failures: s.connect_failures as f64,
            idr_requests: s.idr_requests as f64,
            video_bitrate_kbps: s.video_bitrate_kbps as f64,
            link_kbps: s.link_kbps as f64,
            congestion: s.congestion,
            video_bitrate_ceiling_kbps: s.video_bitrate_ceiling_kbps as f64,
            bitrate_reason: s.bitrate_reason.map(str::to_owned),
            output: scrub(&s.output, key),
            last_error: s.last_error.as_deref().map(|e| scrub(e, key)),
            recording: None,
        }
    }
}

/// Which event a `NativeEvent` is.
#[napi(string_enum = "lowercase")]
#[derive(Debug, PartialEq, Eq)]
pub enum EventKind {
    /// `state` is set.
    State,
    /// `stats` is set.
    Stats,
    /// `code` and `message` are set.
    Error,
    /// `attempt`, `delayMs` and `reason` are set.
    Reconnecting,
    /// `downtimeMs` is set.
    Reconnected,
    /// The `input` file played to its end (no `loop`); nothing is set.
    End,
}

/// An event as the native object hands it to `lib.js`, which re-emits it
/// as `emitter.emit(kind, payload)`.
#[napi(object)]
#[derive(Debug)]
pub struct NativeEvent {
    /// Which event.
    pub kind: EventKind,
    /// New state (`state` events).
    pub state: Option<StreamState>,
    /// Snapshot (`stats` events of a streamer).
    pub stats: Option<StreamStats>,
    /// Snapshot (`stats` events of a recorder).
    pub record_stats: Option<RecorderStats>,
    /// Error code (`error` events).
    pub code: Option<ErrorCode>,
    /// Error message, key redacted (`error` events).
    pub message: Option<String>,
    /// Attempts so far in this outage (`reconnecting`).
    pub attempt: Option<u32>,
    /// Wait before the next attempt, ms (`reconnecting`).
    pub delay_ms: Option<f64>,
    /// Why the link went down or the last attempt failed (`reconnecting`).
    pub reason: Option<String>,
    /// From failure detection to live again, ms (`reconnected`).
    pub downtime_ms: Option<f64>,
}

impl NativeEvent {
    fn empty(kind: EventKind) -> Self {
        Self {
            kind,
            state: None,
            stats: None,
            record_stats: None,
            code: None,
            message: None,
            attempt: None,
            delay_ms: None,
            reason: None,
            downtime_ms: None,
        }
    }

    /// A `state` event.
    pub fn state(state: StreamState) -> Self {
        Self {
            state: Some(state),
            ..Self::empty(EventKind::State)
        }
    }

    /// A `stats` event.
    pub fn stats(stats: StreamStats) -> Self {
        Self {
            stats: Some(stats),
            ..Self::empty(EventKind::Stats)
        }
    }

    /// A recorder's `stats` event.
    pub fn record_stats(stats: RecorderStats) -> Self {
        Self {
            record_stats: Some(stats),
            ..Self::empty(EventKind::Stats)
        }
    }

    /// An `error` event.
    pub fn error(code: ErrorCode, message: String) -> Self {
        Self {
            code: Some(code),
            message: Some(message),
            ..Self::empty(EventKind::Error)
        }
    }

    /// An `end` event: the input file played to its end.
    pub fn end() -> Self {
        Self::empty(EventKind::End)
    }

    /// Converts a library event of the object's primary output (index 0);
    /// `key` is scrubbed. A recorder's failure is `ERR_IO`; a stream's is
    /// `ERR_PUBLISH_REJECTED`, `ERR_CERTIFICATE` (the server's certificate
    /// failed verification) or `ERR_CONNECT`.
    pub fn from_event(e: &Event, key: Option<&str>, recorder: bool) -> Self {
        match e {
            Event::State { state, .. } => Self {
                state: Some((*state).into()),
                ..Self::empty(EventKind::State)
            },
            Event::Reconnecting {
                attempt,
                delay_ms,
                reason,
                ..
            } => Self {
                attempt: Some(*attempt),
                delay_ms: Some(*delay_ms as f64),
                reason: Some(scrub(reason, key)),
                ..Self::empty(EventKind::Reconnecting)
            },
            Event::Reconnected { downtime_ms, .. } => Self {
                downtime_ms: Some(*downtime_ms as f64),
                ..Self::empty(EventKind::Reconnected)
            },
            Event::Error {
                rejected, message, ..
            } => Self::error(
                if recorder {
                    ErrorCode::ERR_IO
                } else if *rejected {
                    ErrorCode::ERR_PUBLISH_REJECTED
                } else if is_certificate_refusal(message) {
                    ErrorCode::ERR_CERTIFICATE
                } else {
                    ErrorCode::ERR_CONNECT
                },
                scrub(message, key),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onair::output::rtmp::RtmpError;

    /// A stream output that gave up on a refused certificate is
    /// `ERR_CERTIFICATE` (the library says `rejected: false`: the server did
    /// not refuse the publish); other failures keep their codes.
    #[test]
    fn error_events_get_the_code_of_their_cause() {
        let error = |rejected, message: String| Event::Error {
            output: 0,
            rejected,
            message,
        };
        let refused = RtmpError::Certificate {
            target: "localhost:4443".into(),
            reason: "wrong name: not valid for localhost".into(),
        }
        .to_string();
        let code = |e: &Event, recorder| NativeEvent::from_event(e, None, recorder).code;
        let cert = error(false, refused);
        assert_eq!(code(&cert, false), Some(ErrorCode::ERR_CERTIFICATE));
        assert_eq!(code(&cert, true), Some(ErrorCode::ERR_IO));
        let rejected = error(
            true,
            "server rejected the stream: NetStream.Publish.BadName".into(),
        );
        assert_eq!(
            code(&rejected, false),
            Some(ErrorCode::ERR_PUBLISH_REJECTED)
        );
        let down = error(false, "connect to 127.0.0.1:1: Connection refused".into());
        assert_eq!(code(&down, false), Some(ErrorCode::ERR_CONNECT));
    }
}
