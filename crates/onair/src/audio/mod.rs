//! Audio side of the engines: sources, the AudioEngine (master clock ticks)
//! and the AudioEncoder.

pub mod device;
pub mod encoder;
pub mod engine;
// The file source's front (the queue the sources read, their timing rules)
// needs no libav: the default build compiles it for its unit tests too.
#[cfg(any(feature = "avcodec", test))]
pub mod file;
pub mod source;
