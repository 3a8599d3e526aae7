//! The encoders' side of a recorder: the bounded queue `push` appends to,
//! and the recorder's counters.
//!
//! Why apart from the writer: `push` runs on the encoder threads and must
//! never wait for the disk; everything here is a short lock and a few
//! atomics, and the overflow policy (drop, count, wait for a keyframe) is
//! decided here alone.

use crate::packet::{EncodedPacket, MediaKind, PacketSink};
use crate::stats::{bump, AtomicLinkState, LinkState};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// Counters of one recorder (writer thread and `push`).
#[derive(Debug)]
pub(super) struct RecordCounters {
    pub(super) state: AtomicLinkState,
    pub(super) bytes_written: AtomicU64,
    pub(super) video_packets_written: AtomicU64,
    pub(super) audio_frames_written: AtomicU64,
    pub(super) packets_dropped: AtomicU64,
    pub(super) errors: AtomicU64,
    pub(super) queue_packets: AtomicU64,
    pub(super) queue_bytes: AtomicU64,
    pub(super) queue_ms: AtomicU64,
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

/// What the queue's lock guards: the packets and the decisions about them.
#[derive(Default)]
pub(super) struct QueueState {
    pub(super) packets: VecDeque<EncodedPacket>,
    pub(super) bytes: usize,
    /// Video is skipped until a keyframe: at start (a recorder added while
    /// running) and after an overflow dropped video.
    pub(super) wait_keyframe: bool,
    /// True once a first video keyframe was queued (drops before it are the
    /// normal start of a file, not losses).
    pub(super) video_started: bool,
    /// The writer stopped for good: everything is dropped and counted.
    pub(super) failed: bool,
    /// Stop requested: the writer drains what is queued and exits.
    pub(super) closed: bool,
    /// The "disk too slow" warning was logged.
    pub(super) warned: bool,
}

/// The bounded queue between `push` and the writer thread, with its bounds.
pub(super) struct Queue {
    pub(super) state: Mutex<QueueState>,
    pub(super) ready: Condvar,
    pub(super) max_span_ns: u64,
    pub(super) max_packets: usize,
    pub(super) max_bytes: usize,
}

/// What the encoders push into. Never blocks beyond a short lock.
pub(super) struct RecordSink {
    pub(super) queue: Arc<Queue>,
    pub(super) counters: Arc<RecordCounters>,
    pub(super) name: String,
}

impl RecordSink {
    pub(super) fn publish(&self, st: &QueueState) {
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
