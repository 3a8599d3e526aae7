//! The Fanout: one set of encoders feeding every output.
//!
//! Why a sink of its own: outputs come and go while the encoders run; each output's
//! `push` is non-blocking, so one dead or slow output never delays another.

use super::OutputId;
use crate::output::muxer::KeyframeRequester;
use crate::packet::{EncodedPacket, PacketSink};
use crate::video::encoder::VideoControl;
use std::sync::{Arc, RwLock};

impl KeyframeRequester for VideoControl {
    fn request_keyframe(&self) {
        self.request_idr();
    }
}

/// A keyframe requester for pipelines without video.
pub(super) struct NoVideo;
impl KeyframeRequester for NoVideo {
    fn request_keyframe(&self) {}
}

/// Hands every encoded packet to every output. Outputs can be added and
/// removed while running; the lock is taken for writing only then. Each
/// sink's `push` is non-blocking, so a dead or slow output never delays
/// another.
#[derive(Default)]
pub(super) struct Fanout {
    sinks: RwLock<Vec<(OutputId, Arc<dyn PacketSink>)>>,
}

impl Fanout {
    /// Starts handing packets to `sink`, known as `id`.
    pub(super) fn add(&self, id: OutputId, sink: Arc<dyn PacketSink>) {
        let mut sinks = self.sinks.write().unwrap_or_else(|e| e.into_inner());
        sinks.push((id, sink));
    }

    /// Stops handing packets to the sink known as `id`.
    pub(super) fn remove(&self, id: OutputId) {
        let mut sinks = self.sinks.write().unwrap_or_else(|e| e.into_inner());
        sinks.retain(|(i, _)| *i != id);
    }
}

impl PacketSink for Fanout {
    fn push(&self, packet: EncodedPacket) {
        let sinks = self.sinks.read().unwrap_or_else(|e| e.into_inner());
        for (_, sink) in sinks.iter() {
            sink.push(packet.clone());
        }
    }
}
