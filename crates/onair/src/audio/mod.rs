//! Audio side of the engines: sources, the AudioEngine (master clock ticks)
//! and the AudioEncoder.

pub mod device;
pub mod encoder;
pub mod engine;
#[cfg(feature = "avcodec")]
pub mod file;
pub mod source;
