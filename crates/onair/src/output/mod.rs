//! Outputs: everything after the encoders. One stream output = one
//! StreamMuxer, one StreamBuffer, one NetworkSendThread and one
//! ReconnectThread, isolated from every other output. One recorder = one
//! bounded queue and one writer thread (`record.rs`).

pub mod buffer;
pub mod congestion;
pub mod muxer;
pub mod reconnect;
pub mod record;
pub mod rtmp;
pub mod send;
pub mod server;
pub mod stream;
pub mod url;

use crate::stats::LinkState;

/// What an output tells the API user (CLI status line, Node events).
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The output's link state changed.
    State {
        /// Output index.
        output: usize,
        /// New state.
        state: LinkState,
    },
    /// A connection attempt failed; the next one is in `delay_ms`.
    Reconnecting {
        /// Output index.
        output: usize,
        /// Attempts so far in this outage.
        attempt: u32,
        /// Wait before the next attempt.
        delay_ms: u64,
        /// Why the last attempt failed (key redacted).
        reason: String,
    },
    /// Publishing again after an outage.
    Reconnected {
        /// Output index.
        output: usize,
        /// From failure detection to live again.
        downtime_ms: u64,
    },
    /// The output gave up.
    Error {
        /// Output index.
        output: usize,
        /// The server refused the publish (bad key), as opposed to a network fault.
        rejected: bool,
        /// What happened (key redacted).
        message: String,
    },
}

#[cfg(test)]
mod enhanced_rtmp_tests;
