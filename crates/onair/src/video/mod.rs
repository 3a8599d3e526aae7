//! Video side of the engines: sources, the CaptureThread and the VideoEncoder.

pub mod bitrate;
pub mod capture;
pub mod convert;
pub mod encoder;
// The file source's front (the queue the sources read, their timing rules)
// needs no libav: the default build compiles it for its unit tests too.
#[cfg(any(feature = "avcodec", test))]
pub mod file;
pub mod frame;
pub mod grab;
pub mod screen;
pub mod source;
pub mod window;
mod x11;
