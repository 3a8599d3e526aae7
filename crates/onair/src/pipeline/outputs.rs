//! The outputs of a running pipeline (RTMP destinations and recorders) as the Streamer
//! holds them, and the wait for a first live session at start.
//!
//! Why one enum: stats, states, errors and stop are asked of every output alike,
//! whichever kind it is; only start and the Fanout's sink differ.

use crate::output::record::Recorder;
use crate::output::stream::StreamOutput;
use crate::stats::{EngineCounters, LinkState, Stats};
use crate::{Error, Result};

/// How long `Streamer::start` waits for a first output to go live before
/// starting the engines anyway (the outputs keep trying in the background).
/// Starting the clock once a session is up means the stream's first frame is
/// frame 0 instead of a frame dropped while connecting.
pub const INITIAL_CONNECT_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// Identifies one output of a running [`super::Streamer`]; its number is the
/// `output` field of the [`crate::output::Event`]s that output sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutputId(pub usize);

/// One running output: an RTMP destination or a file.
pub(super) enum OutputKind {
    Stream(StreamOutput),
    Record(Recorder),
}

/// One running output and its id.
pub(super) struct OutputSlot {
    /// Its id, as events and `remove_output` name it.
    pub(super) id: OutputId,
    /// What it is.
    pub(super) kind: OutputKind,
}

impl OutputSlot {
    pub(super) fn state(&self) -> LinkState {
        match &self.kind {
            OutputKind::Stream(o) => o.state(),
            OutputKind::Record(r) => r.state(),
        }
    }

    pub(super) fn last_error(&self) -> Option<String> {
        match &self.kind {
            OutputKind::Stream(o) => o.last_error(),
            OutputKind::Record(r) => r.last_error(),
        }
    }

    pub(super) fn stats(&self, engine: &EngineCounters, audio_frame_samples: u64) -> Stats {
        match &self.kind {
            OutputKind::Stream(o) => o.stats(engine, audio_frame_samples),
            OutputKind::Record(r) => r.stats(engine, audio_frame_samples),
        }
    }

    pub(super) fn stop(&mut self) {
        match &mut self.kind {
            OutputKind::Stream(o) => o.stop(),
            OutputKind::Record(r) => r.stop(),
        }
    }
}

/// Waits until one stream output is live (Ok), every stream output failed
/// (Err with the first failure), or `INITIAL_CONNECT_WAIT` passed (Ok: they
/// keep trying). Without stream outputs (record only) it returns at once.
pub(super) fn wait_for_first_session(slots: &[OutputSlot]) -> Result<()> {
    let outputs: Vec<&StreamOutput> = slots
        .iter()
        .filter_map(|s| match &s.kind {
            OutputKind::Stream(o) => Some(o),
            OutputKind::Record(_) => None,
        })
        .collect();
    let deadline = std::time::Instant::now() + INITIAL_CONNECT_WAIT;
    while !outputs.is_empty() && std::time::Instant::now() < deadline {
        if outputs.iter().any(|o| o.state() == LinkState::Live) {
            return Ok(());
        }
        if let Some(failed) = outputs.iter().find(|o| o.state() == LinkState::Failed) {
            if outputs.iter().all(|o| o.state() == LinkState::Failed) {
                return Err(Error::Publish {
                    output: failed.name().to_owned(),
                    reason: failed.last_error().unwrap_or_else(|| "failed".into()),
                    rejected: failed.rejected(),
                });
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Ok(())
}
