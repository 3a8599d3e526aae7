//! `onair-node`: the napi-rs addon that gives Node.js the whole onair engine.
//!
//! Why a native addon and not a child process running the CLI: the seed's
//! engine lives inside a Node/Electron app, next to an existing recorder
//! addon, and the app needs live stats, events and control calls (reconnect
//! now, stop with drain) without parsing a child's output.
//!
//! Layers, bottom up:
//! - `options`: JS options (`#[napi(object)]`) -> a validated
//!   `onair::StreamerConfig`; every failure names the option.
//! - `errors`: `onair::Error` -> JS `Error` with a stable `code`, scrubbed of
//!   the stream key.
//! - `events`: the typed event and stats objects handed to JS.
//! - `streamer`: `NativeStreamer`, which owns an `onair::Streamer`, runs the
//!   blocking calls (start, stop) on worker threads and forwards events to JS
//!   through a bounded ThreadsafeFunction, coalescing stats.
//!
//! `lib.js` wraps the native class in an `EventEmitter` (`VideoAudioStreamer`,
//! `VideoAudioRecorder`); `lib.d.ts` types that wrapper.

#![warn(missing_docs)]

#[macro_use]
extern crate napi_derive;

mod errors;
mod events;
mod options;
mod streamer;

pub use errors::ErrorCode;
pub use events::{EventKind, NativeEvent, RecorderStats, StreamState, StreamStats};
pub use options::{
    AudioSource, BufferOptions, ReconnectOptions, RecordOptions, RecorderOptions, StreamerOptions,
    VideoSource,
};
pub use streamer::{shutdown_all, NativeRecorder, NativeStreamer};
