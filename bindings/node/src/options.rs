//! Options as JS passes them (`js.rs`), and their translation into a validated
//! `onair::StreamerConfig`: the shared media options (`media.rs`), the stream
//! output (`stream.rs`), files to record (`record.rs`), number checks
//! (`numbers.rs`).
//!
//! Why numbers are `f64` here: a JS number converted straight to `u32` by
//! napi wraps negatives and truncates fractions silently; taking `f64` lets
//! every value be checked (integer, range) and rejected with the option's
//! name, synchronously, from the constructor.

mod js;
mod media;
mod numbers;
mod record;
mod stream;
#[cfg(test)]
mod tests;

pub use js::{
    AudioSource, BufferOptions, ReconnectOptions, RecordOptions, RecorderOptions, StreamerOptions,
    VideoSource,
};

/// Environment variable read for the stream key when `streamKey` is absent.
pub const STREAM_KEY_ENV: &str = "ONAIR_STREAM_KEY";
